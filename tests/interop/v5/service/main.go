// Command service is the seed's student_service written with go-micro v5: endpoint
// `StudentService.GetStudent`, registered through the registry the flags name with TTL
// 10 s, re-registered every 5 s, serving on 127.0.0.1. It prints `ready <node address>` once
// registered and `called <request JSON> as <content type>` for each call (and Greeter.Hello,
// see Greeter). It also
// subscribes to the seed's topic with micro.RegisterSubscriber (go-micro's server-side
// subscriber, on the broker the flags name) and prints `event <student JSON> as <content
// type> id <Micro-ID>` for each message. It deregisters and exits when standard input
// closes.
//
//	service --registry=etcd --registry_address=127.0.0.1:2379 [--broker=nats --broker_address=nats://127.0.0.1:4222]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/errors"
	"go-micro.dev/v5/metadata"
	"go-micro.dev/v5/server"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"rmicro.test/interop/v5/peer"
)

// StudentService is the handler; go-micro names its endpoint `StudentService.GetStudent`.
type StudentService struct{}

// GetStudent answers for davie and returns go-micro's 404 for anybody else.
func (s *StudentService) GetStudent(ctx context.Context, req *peer.StudentRequest, rsp *peer.Student) error {
	fmt.Printf("called {\"name\":%q} as %s\n", req.Name, contentType(ctx))
	if req.Name != "davie" {
		return errors.NotFound("student_service", "no student named %s", req.Name)
	}
	*rsp = peer.Davie()
	return nil
}

// ListStudents streams every student of the class whose name starts with the request's name.
func (s *StudentService) ListStudents(ctx context.Context, stream server.Stream) error {
	var req peer.StudentRequest
	if err := stream.Recv(&req); err != nil {
		return err
	}
	fmt.Printf("streaming students named %q*\n", req.Name)
	for _, student := range peer.Roster() {
		if strings.HasPrefix(student.Name, req.Name) {
			if err := stream.Send(&student); err != nil {
				return err
			}
			// go-micro v5.30's server queues each message with its codec's write buffer,
			// which the next Send resets and fills again: messages sent back to back can
			// leave with the last one's body (seen: "doug", "doug" for "dora", "doug"). A
			// pause lets each one leave first.
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// GetStudents answers each request on the stream with that student.
func (s *StudentService) GetStudents(ctx context.Context, stream server.Stream) error {
	for {
		var req peer.StudentRequest
		err := stream.Recv(&req)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		found := false
		for _, student := range peer.Roster() {
			if student.Name == req.Name {
				found = true
				if err := stream.Send(&student); err != nil {
					return err
				}
			}
		}
		if !found {
			return errors.NotFound("student_service", "no student named `%s`", req.Name)
		}
	}
}

// Greeter takes and returns protobuf's well-known StringValue: protoc-gen-go's own type, which
// go-micro's grpc server needs to decode protobuf (the hand-written Student types are refused
// there). It prints `hello <value> as <content type>`.
type Greeter struct{}

// Hello answers "hello <value>".
func (g *Greeter) Hello(ctx context.Context, req *wrapperspb.StringValue, rsp *wrapperspb.StringValue) error {
	fmt.Printf("hello %s as %s\n", req.GetValue(), contentType(ctx))
	rsp.Value = "hello " + req.GetValue()
	return nil
}

// TopStudent reads names until the caller ends its side, then answers with the best grade among
// them; a name not in the class is go-micro's 404.
func (s *StudentService) TopStudent(ctx context.Context, stream server.Stream) error {
	var top *peer.Student
	for {
		var req peer.StudentRequest
		err := stream.Recv(&req)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		found := false
		for _, student := range peer.Roster() {
			if student.Name == req.Name {
				found = true
				if top == nil || student.Grade > top.Grade {
					student := student
					top = &student
				}
			}
		}
		if !found {
			return errors.NotFound("student_service", "no student named `%s`", req.Name)
		}
	}
	if top == nil {
		return errors.BadRequest("student_service", "no student named on the stream")
	}
	fmt.Printf("top student %s\n", top.Name)
	return stream.Send(top)
}

// contentType is the call's content type from its metadata, whatever the key's case (go-micro's
// grpc server keeps gRPC's lowercase keys, its mucp server Go's canonical ones).
func contentType(ctx context.Context) string {
	md, _ := metadata.FromContext(ctx)
	for k, v := range md {
		if strings.EqualFold(k, "Content-Type") {
			return v
		}
	}
	return ""
}

// onMessage is the server-side subscriber: go-micro decodes the payload by its Content-Type.
func onMessage(ctx context.Context, student *peer.Student) error {
	md, _ := metadata.FromContext(ctx)
	ct, _ := md.Get("Content-Type")
	id, _ := md.Get("Micro-ID")
	body, err := json.Marshal(student)
	if err != nil {
		return err
	}
	fmt.Printf("event %s as %s id %s\n", body, ct, id)
	return nil
}

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	flag.Parse()

	reg := f.NewRegistry()
	b := f.NewBroker(reg)
	srv := f.NewServer(
		server.Name("student_service"),
		server.Version("v1.0.0"),
		server.Address("127.0.0.1:0"),
		server.Registry(reg),
		server.Broker(b),
		server.RegisterTTL(10*time.Second),
		server.RegisterInterval(5*time.Second),
	)
	if err := b.Connect(); err != nil {
		peer.Fail("broker: %v", err)
	}
	if err := micro.RegisterHandler(srv, new(StudentService)); err != nil {
		peer.Fail("register handler: %v", err)
	}
	if err := micro.RegisterHandler(srv, new(Greeter)); err != nil {
		peer.Fail("register handler: %v", err)
	}
	if err := micro.RegisterSubscriber(peer.Topic, srv, onMessage); err != nil {
		peer.Fail("register subscriber: %v", err)
	}
	if err := srv.Start(); err != nil {
		peer.Fail("start: %v", err)
	}
	fmt.Printf("ready %s\n", srv.Options().Address)
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "service: stop: %v\n", err)
	}
	_ = b.Disconnect()
	fmt.Println("stopped")
}
