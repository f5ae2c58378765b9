// Command subscriber subscribes to the seed's topic with go-micro's broker.Subscribe (seed
// style) and prints, for each message, `received header=<header JSON> body=<body>`. It
// prints `ready` once subscribed and exits after --count messages.
//
//	subscriber --broker=mqtt --broker_address=tcp://127.0.0.1:1883
//	subscriber --broker=http --registry_address=127.0.0.1:8500
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/go-micro/plugins/v4/broker/mqtt"
	"go-micro.dev/v4/broker"

	"rmicro.test/interop/go/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	kind := flag.String("broker", "mqtt", "mqtt or http")
	topic := flag.String("topic", peer.Topic, "topic")
	count := flag.Int("count", 1, "exit after this many messages")
	flag.Parse()

	var b broker.Broker
	switch *kind {
	case "mqtt":
		peer.Loopback("broker", f.BrokerAddress)
		b = mqtt.NewBroker(broker.Addrs(f.BrokerAddress))
	case "http":
		b = broker.NewBroker(broker.Registry(f.Consul()), broker.Addrs("127.0.0.1:0"))
	default:
		peer.Fail("unknown broker %q", *kind)
	}
	if err := b.Connect(); err != nil {
		peer.Fail("broker connection failed: %v", err)
	}

	done := make(chan struct{})
	seen := 0
	_, err := b.Subscribe(*topic, func(e broker.Event) error {
		header, _ := json.Marshal(e.Message().Header)
		var student peer.Student
		if err := json.Unmarshal(e.Message().Body, &student); err != nil {
			fmt.Printf("undecodable body %q: %v\n", e.Message().Body, err)
		}
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
	_ = b.Disconnect()
	os.Exit(0)
}
