// Command publisher publishes the seed's student once, seed style: go-micro's
// broker.Publish with header `name` and the student as JSON (no other header), or with
// --event go-micro's client.Publish (micro.NewEvent), which adds Content-Type, Micro-Topic
// and Micro-ID. It prints `published` and exits.
//
//	publisher --broker=mqtt --broker_address=tcp://127.0.0.1:1883
//	publisher --broker=http --registry_address=127.0.0.1:8500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/go-micro/plugins/v4/broker/mqtt"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"

	"rmicro.test/interop/go/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	kind := flag.String("broker", "mqtt", "mqtt or http")
	topic := flag.String("topic", peer.Topic, "topic")
	event := flag.Bool("event", false, "publish through client.Publish (go-micro's event headers)")
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

	student := peer.Davie()
	if *event {
		c := client.NewClient(client.Broker(b))
		msg := c.NewMessage(*topic, &student)
		if err := c.Publish(context.Background(), msg); err != nil {
			peer.Fail("publish: %v", err)
		}
	} else {
		body, err := json.Marshal(&student)
		if err != nil {
			peer.Fail("json: %v", err)
		}
		msg := &broker.Message{Header: map[string]string{"name": student.Name}, Body: body}
		if err := b.Publish(*topic, msg); err != nil {
			peer.Fail("publish: %v", err)
		}
	}
	// The mqtt plugin returns before the QoS 1 publish completes; let it leave.
	time.Sleep(500 * time.Millisecond)
	_ = b.Disconnect()
	fmt.Println("published")
}
