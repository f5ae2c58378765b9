// Command traceserve serves the seed's student_service (StudentService.GetStudent) with
// go-micro v5's server and go-micro's own OpenTelemetry handler wrapper
// (go-micro.dev/v5/wrapper/trace/opentelemetry), registered in go-micro v5's nats registry,
// exporting its spans over OTLP/HTTP to where OTEL_EXPORTER_OTLP_ENDPOINT says, so that the
// interop tests can see one trace run from an rmicro client into a go-micro service.
//
//	traceserve --registry_address=nats://127.0.0.1:<port>
//	    prints `ready <host:port>` once registered, serves until standard input closes,
//	    then deregisters, flushes its spans (service `go-micro-v5-server`) and exits 0
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/registry/nats"
	"go-micro.dev/v5/server"
	"go-micro.dev/v5/wrapper/trace/opentelemetry"

	"rmicro.test/interop/v5/traces"
)

// StudentRequest and Student are the seed's messages, in JSON.
type StudentRequest struct {
	Name string `json:"name"`
}

type Student struct {
	Name    string `json:"name"`
	Classes string `json:"classes"`
	Grade   int32  `json:"grade"`
	Phone   string `json:"phone"`
}

type StudentService struct{}

func (StudentService) GetStudent(_ context.Context, req *StudentRequest, rsp *Student) error {
	*rsp = Student{Name: req.Name, Classes: "软件工程专业", Grade: 80, Phone: "12345678901"}
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "traceserve: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	address := flag.String("registry_address", "nats://127.0.0.1:4222", "the NATS server of the registry")
	flag.Parse()
	ctx := context.Background()

	tp, err := traces.Start(ctx, "go-micro-v5-server")
	if err != nil {
		fail("exporter: %v", err)
	}

	srv := server.NewRPCServer(
		server.Name("student_service"),
		server.Address("127.0.0.1:0"),
		server.Registry(nats.NewNatsRegistry(registry.Addrs(*address))),
		server.WrapHandler(opentelemetry.NewHandlerWrapper(opentelemetry.WithTraceProvider(tp))),
	)
	if err := srv.Handle(srv.NewHandler(StudentService{})); err != nil {
		fail("handle: %v", err)
	}
	if err := srv.Start(); err != nil {
		fail("start: %v", err)
	}
	fmt.Printf("ready %s\n", srv.Options().Address)

	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "traceserve: stop: %v\n", err)
	}
	if err := tp.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "traceserve: flushing the spans: %v\n", err)
	}
}
