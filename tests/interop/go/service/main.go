// Command service is the seed's student_service written with go-micro: endpoint
// `StudentService.GetStudent`, registered in Consul with TTL 10 s, re-registered every 5 s,
// serving on 127.0.0.1. It prints `ready <node address>` once registered, and
// `called <request JSON> as <content type>` for each call. It also subscribes to the seed's
// topic with micro.RegisterSubscriber (go-micro's server-side subscriber, on the http broker
// through Consul) and prints `event <student JSON> as <content type>` for each message.
//
//	service --registry_address=127.0.0.1:8500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go-micro.dev/v4"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"

	"rmicro.test/interop/go/peer"
)

// StudentService is the handler; go-micro names its endpoint `StudentService.GetStudent`.
type StudentService struct{}

// GetStudent answers for davie and returns go-micro's 404 for anybody else.
func (s *StudentService) GetStudent(ctx context.Context, req *peer.StudentRequest, rsp *peer.Student) error {
	md, _ := metadata.FromContext(ctx)
	ct, _ := md.Get("Content-Type")
	fmt.Printf("called {\"name\":%q} as %s\n", req.Name, ct)
	if req.Name != "davie" {
		return errors.NotFound("student_service", "no student named %s", req.Name)
	}
	*rsp = peer.Davie()
	return nil
}

// onMessage is the server-side subscriber: go-micro decodes the payload by its Content-Type.
func onMessage(ctx context.Context, student *peer.Student) error {
	md, _ := metadata.FromContext(ctx)
	ct, _ := md.Get("Content-Type")
	body, err := json.Marshal(student)
	if err != nil {
		return err
	}
	fmt.Printf("event %s as %s\n", body, ct)
	return nil
}

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	flag.Parse()

	reg := f.Consul()
	var service micro.Service
	service = micro.NewService(
		micro.Name("student_service"),
		micro.Version("v1.0.0"),
		micro.Registry(reg),
		micro.Address("127.0.0.1:0"),
		micro.RegisterTTL(10*time.Second),
		micro.RegisterInterval(5*time.Second),
		micro.AfterStart(func() error {
			fmt.Printf("ready %s\n", service.Server().Options().Address)
			return nil
		}),
	)
	if err := micro.RegisterHandler(service.Server(), new(StudentService)); err != nil {
		peer.Fail("register handler: %v", err)
	}
	if err := micro.RegisterSubscriber(peer.Topic, service.Server(), onMessage); err != nil {
		peer.Fail("register subscriber: %v", err)
	}
	if err := service.Run(); err != nil {
		peer.Fail("run: %v", err)
	}
}
