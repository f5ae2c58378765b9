// Command subscriber subscribes to the seed's topic with go-micro v5's broker.Subscribe (seed
// style) on the broker the flags name and prints, for each message, `received
// header=<header JSON> body=<body>`. It prints `ready <broker address>` once subscribed and
// exits after --count messages.
//
//	subscriber --broker=rabbitmq --broker_address=amqp://guest:guest@127.0.0.1:5672
//	subscriber --broker=http --registry=etcd --registry_address=127.0.0.1:2379
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go-micro.dev/v5/broker"

	"rmicro.test/interop/v5/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	topic := flag.String("topic", peer.Topic, "topic")
	count := flag.Int("count", 1, "exit after this many messages")
	flag.Parse()

	b := f.StandaloneBroker()
	if err := b.Connect(); err != nil {
		peer.Fail("broker connection failed: %v", err)
	}
	done := make(chan struct{})
	seen := 0
	sub, err := b.Subscribe(*topic, func(e broker.Event) error {
		header, _ := json.Marshal(e.Message().Header)
		fmt.Printf("received header=%s body=%s\n", header, e.Message().Body)
		seen++
		if seen == *count {
			close(done)
		}
		return nil
	})
	if err != nil {
		peer.Fail("subscribe: %v", err)
	}
	fmt.Printf("ready %s\n", b.Address())
	<-done
	// Let the broker hear the last handler's answer before the connection goes; then leave
	// (the http broker deregisters its node on unsubscribe).
	time.Sleep(300 * time.Millisecond)
	_ = sub.Unsubscribe()
	_ = b.Disconnect()
	os.Exit(0)
}
