// Command streamclient is a go-micro v5 client of student_service's streaming endpoints, through
// go-micro's client.Stream (mucp over the http transport, go-micro's default stack; with
// --client=grpc, in the `-tags grpc` build, go-micro's grpc client):
//
//	streamclient [registry flags] --list=<prefix>
//	    StudentService.ListStudents: sends one request, prints `reply <student JSON>` for each
//	    message until the server ends the stream, then `end`
//	streamclient [registry flags] --get=<name>,<name>,...
//	    StudentService.GetStudents: for each name sends a request and prints `reply <student
//	    JSON>` for the answer; then closes the stream and prints `end`
//	streamclient [registry flags] --client=grpc --top=<name>,<name>,...
//	    StudentService.TopStudent: sends a request per name, ends its side (CloseSend, which
//	    only go-micro's grpc client has) and prints `reply <student JSON>` for the one answer,
//	    then `end`
//
// A stream error prints `error <go-micro error JSON>` and exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go-micro.dev/v5/client"
	merrors "go-micro.dev/v5/errors"
	"google.golang.org/grpc/status"

	"rmicro.test/interop/v5/peer"
)

// fail prints go-micro's error: from a gRPC status's message when the stream is grpc (go-micro's
// grpc client hands stream errors back as gRPC statuses, whose message is go-micro's JSON).
func fail(err error) {
	text := err.Error()
	if s, ok := status.FromError(err); ok {
		text = s.Message()
	}
	peer.Print("error", merrors.Parse(text))
	os.Exit(1)
}

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	list := flag.String("list", "", "list the students whose names start with this")
	get := flag.String("get", "", "comma-separated names to ask for, one message each")
	top := flag.String("top", "", "comma-separated names: the best grade among them, one answer")
	contentType := flag.String("content_type", "application/json", "the stream's content type")
	flag.Parse()

	c := f.NewClient(client.Registry(f.NewRegistry()), client.ContentType(*contentType))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	endpoint := "StudentService.ListStudents"
	switch {
	case *get != "":
		endpoint = "StudentService.GetStudents"
	case *top != "":
		endpoint = "StudentService.TopStudent"
	}
	// As go-micro's generated clients do: the request given to Stream is an empty message
	// (the server drops it); the real requests follow with Send.
	stream, err := c.Stream(ctx, c.NewRequest("student_service", endpoint, &peer.StudentRequest{}))
	if err != nil {
		fail(err)
	}
	switch {
	case *top != "":
		for _, name := range strings.Split(*top, ",") {
			if err := stream.Send(&peer.StudentRequest{Name: name}); err != nil {
				fail(err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			fail(err)
		}
		var student peer.Student
		if err := stream.Recv(&student); err != nil {
			fail(err)
		}
		peer.Print("reply", student)
	case *get == "":
		if err := stream.Send(&peer.StudentRequest{Name: *list}); err != nil {
			fail(err)
		}
		for {
			var student peer.Student
			err := stream.Recv(&student)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fail(err)
			}
			peer.Print("reply", student)
		}
	default:
		for _, name := range strings.Split(*get, ",") {
			if err := stream.Send(&peer.StudentRequest{Name: name}); err != nil {
				fail(err)
			}
			var student peer.Student
			if err := stream.Recv(&student); err != nil {
				fail(err)
			}
			peer.Print("reply", student)
		}
	}
	if err := stream.Close(); err != nil {
		fail(err)
	}
	fmt.Println("end")
}
