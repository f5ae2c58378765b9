// Command publisher publishes the seed's student once, seed style: go-micro's
// broker.Publish with header `name` and the student as JSON (no other header), or with
// --event go-micro's client.Publish (micro.NewEvent), which adds Content-Type, Micro-Topic
// and Micro-ID. It prints `published` and exits.
//
//	publisher --broker=mqtt --broker_address=tcp://127.0.0.1:1883
//	publisher --broker=http --registry_address=127.0.0.1:8500
//	publisher --broker=nsq --broker_address=127.0.0.1:4150     (nsqd's TCP address)
//	publisher --broker=kafka --broker_address=127.0.0.1:9092   (a bootstrap broker)
//
// The nsq and kafka plugins put go-micro's JSON envelope on the wire, {"Header":{..},
// "Body":"<base64>"}: nsq as the body of a PUB to nsqd (go-nsq, no nsqlookupd), kafka as a
// record's value (sarama's SyncProducer: no key, so a random partition, and no record
// headers). Both return once the broker has taken the message; mqtt and http are given
// half a second to send it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"

	"rmicro.test/interop/go/brokers"
	"rmicro.test/interop/go/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	kind := flag.String("broker", "mqtt", "mqtt, http, nsq or kafka")
	topic := flag.String("topic", peer.Topic, "topic")
	event := flag.Bool("event", false, "publish through client.Publish (go-micro's event headers)")
	flag.Parse()

	b := brokers.New(*kind, &f)
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
	if *kind == "mqtt" || *kind == "http" {
		// The mqtt plugin returns before the QoS 1 publish completes; let it leave.
		time.Sleep(500 * time.Millisecond)
	}
	_ = b.Disconnect()
	fmt.Println("published")
}
