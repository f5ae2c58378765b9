// Command subscriber subscribes to the seed's topic with go-micro's broker.Subscribe (seed
// style) and prints, for each message, `received header=<header JSON> body=<body>`. It
// prints `ready <broker address>` once subscribed and exits after --count messages.
//
//	subscriber --broker=mqtt --broker_address=tcp://127.0.0.1:1883
//	subscriber --broker=http --registry_address=127.0.0.1:8500
//	subscriber --broker=nsq --broker_address=127.0.0.1:4150     (nsqd's TCP address)
//	subscriber --broker=kafka --broker_address=127.0.0.1:9092   (a bootstrap broker)
//
// nsq: the plugin subscribes on an ephemeral channel `<uuid>#ephemeral` of the topic, straight
// on nsqd (no nsqlookupd); `ready` comes once go-nsq has connected and sent SUB (nsqd keeps
// what is published to the topic meanwhile for the channel).
//
// kafka: the plugin joins a new consumer group (a random uuid) that starts at the newest
// offset, so `ready` waits until sarama fetches the partition from that offset (see
// brokers.KafkaSubscribed; up to 30 s); sarama's log goes to standard error. The plugin adds
// Micro-Topic and, when absent, Content-Type: application/json to every message's header.
// Topics need one partition (the test Kafka's num.partitions=1).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go-micro.dev/v4/broker"

	"rmicro.test/interop/go/brokers"
	"rmicro.test/interop/go/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	kind := flag.String("broker", "mqtt", "mqtt, http, nsq or kafka")
	topic := flag.String("topic", peer.Topic, "topic")
	count := flag.Int("count", 1, "exit after this many messages")
	flag.Parse()

	var subscribed <-chan struct{}
	if *kind == "kafka" {
		subscribed = brokers.KafkaSubscribed(*topic)
	}
	b := brokers.New(*kind, &f)
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
	if subscribed != nil {
		select {
		case <-subscribed:
		case <-time.After(30 * time.Second):
			peer.Fail("kafka: no partition of %q fetched within 30 s (sarama's log above)", *topic)
		}
	}
	fmt.Printf("ready %s\n", b.Address())
	<-done
	// The last handler has returned, but its broker has not yet answered the publisher (the
	// http broker's response, mqtt's PUBACK, nsq's FIN, kafka's offset): let it, before
	// disconnecting cuts the connection under the publisher.
	time.Sleep(300 * time.Millisecond)
	_ = b.Disconnect()
	os.Exit(0)
}
