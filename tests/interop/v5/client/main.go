// Command client is a go-micro v5 client: it finds a service through the registry the flags
// name and calls one endpoint with a JSON request (go-micro's default content type unless
// --content_type says otherwise), then prints `reply <student JSON>`; --calls makes that many
// calls one after another, over go-micro's pooled connections. --client=grpc calls with
// go-micro's grpc client (go-micro.dev/v5/client/grpc). On an error it prints
// `error <go-micro error JSON>` (what errors.Parse read from the error) and exits 1.
//
//	client --registry=consul --registry_address=127.0.0.1:8500 [--endpoint=StudentService.GetStudent] [--name=davie]
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"go-micro.dev/v5/client"
	"go-micro.dev/v5/errors"

	"rmicro.test/interop/v5/peer"
)

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	service := flag.String("service", "student_service", "service to call")
	endpoint := flag.String("endpoint", "StudentService.GetStudent", "endpoint to call")
	name := flag.String("name", "davie", "the student asked for")
	contentType := flag.String("content_type", "application/json", "request content type")
	calls := flag.Int("calls", 1, "how many calls to make, one after another (pooled connections)")
	flag.Parse()

	c := f.NewClient(client.Registry(f.NewRegistry()), client.ContentType(*contentType))
	req := c.NewRequest(*service, *endpoint, &peer.StudentRequest{Name: *name})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < *calls; i++ {
		var rsp peer.Student
		if err := c.Call(ctx, req, &rsp, client.WithRequestTimeout(5*time.Second)); err != nil {
			peer.Print("error", errors.Parse(err.Error()))
			os.Exit(1)
		}
		peer.Print("reply", rsp)
	}
}
