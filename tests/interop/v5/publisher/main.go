// Command publisher publishes the seed's student once through go-micro v5's client.Publish
// (micro.NewEvent's way: Content-Type, Micro-Topic and Micro-ID headers, the body in the
// client's content type, application/json unless --content_type says otherwise) on the
// broker the flags name, or with --raw through broker.Publish (seed style: header `name`,
// the student as JSON, no other header). It prints `published` and exits.
//
//	publisher --broker=nats --broker_address=nats://127.0.0.1:4222
//	publisher --broker=http --registry=consul --registry_address=127.0.0.1:8500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/client"

	"rmicro.test/interop/v5/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	topic := flag.String("topic", peer.Topic, "topic")
	raw := flag.Bool("raw", false, "publish through broker.Publish (seed style)")
	contentType := flag.String("content_type", "application/json", "the event's content type")
	flag.Parse()

	b := f.StandaloneBroker()
	if err := b.Connect(); err != nil {
		peer.Fail("broker connection failed: %v", err)
	}
	student := peer.Davie()
	if *raw {
		body, err := json.Marshal(&student)
		if err != nil {
			peer.Fail("json: %v", err)
		}
		msg := &broker.Message{Header: map[string]string{"name": student.Name}, Body: body}
		if err := b.Publish(*topic, msg); err != nil {
			peer.Fail("publish: %v", err)
		}
	} else {
		c := client.NewClient(client.Broker(b), client.ContentType(*contentType))
		if err := c.Publish(context.Background(), c.NewMessage(*topic, &student)); err != nil {
			peer.Fail("publish: %v", err)
		}
	}
	// Let a publish that returned before the broker took it leave.
	time.Sleep(300 * time.Millisecond)
	_ = b.Disconnect()
	fmt.Println("published")
}
