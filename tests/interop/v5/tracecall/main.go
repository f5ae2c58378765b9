// Command tracecall calls an rmicro service through go-micro v5's client with go-micro's own
// OpenTelemetry call wrapper (go-micro.dev/v5/wrapper/trace/opentelemetry), exporting its span
// over OTLP/HTTP to where OTEL_EXPORTER_OTLP_ENDPOINT says, so that the interop tests can see
// one trace run from a go-micro client into an rmicro service.
//
//	tracecall --address=127.0.0.1:<port>
//	    calls student_service's StudentService.GetStudent {"name":"davie"} at that address
//	    (no registry), prints the reply as JSON, exports its span as service
//	    `go-micro-v5-client`, exits 0 (1 when the call fails)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"go-micro.dev/v5/client"
	"go-micro.dev/v5/wrapper/trace/opentelemetry"

	"rmicro.test/interop/v5/traces"
)

func main() {
	address := flag.String("address", "", "the rmicro service's host:port")
	flag.Parse()
	ctx := context.Background()

	tp, err := traces.Start(ctx, "go-micro-v5-client")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracecall: exporter: %v\n", err)
		os.Exit(2)
	}

	c := client.DefaultClient
	if err := c.Init(client.WrapCall(opentelemetry.NewCallWrapper(opentelemetry.WithTraceProvider(tp)))); err != nil {
		fmt.Fprintf(os.Stderr, "tracecall: client: %v\n", err)
		os.Exit(2)
	}
	req := c.NewRequest("student_service", "StudentService.GetStudent",
		map[string]string{"name": "davie"}, client.WithContentType("application/json"))
	var rsp map[string]any
	callErr := c.Call(ctx, req, &rsp, client.WithAddress(*address))
	if err := tp.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "tracecall: flushing the span: %v\n", err)
	}
	if callErr != nil {
		fmt.Println(callErr.Error())
		os.Exit(1)
	}
	out, _ := json.Marshal(rsp)
	fmt.Println(string(out))
}
