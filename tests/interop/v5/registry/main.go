// Command registry drives go-micro v5's own NATS registry (go-micro.dev/v5/registry/nats),
// so that the interop tests can check rmicro's nats registry against it on the wire.
//
//	registry --address=nats://127.0.0.1:4222 get <service>
//	    prints `service <JSON>` per version found (go-micro's GetService), exit 1 if none
//	registry --address=... register <service> <node id> <node address>
//	    registers one node (version v5, endpoint Greeter.Hello), prints `registered`, waits
//	    for standard input to close, deregisters, prints `deregistered`, exits a second later
//	registry --address=... watch <service> <count>
//	    prints `ready`, then `change <JSON>` for each of <count> watch results
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/registry/nats"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "registry: "+format+"\n", args...)
	os.Exit(2)
}

func print(kind string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("encode: %v", err)
	}
	fmt.Printf("%s %s\n", kind, b)
}

func main() {
	address := flag.String("address", "nats://127.0.0.1:4222", "NATS server")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fail("usage: registry [--address=URL] get|register|watch <service> ...")
	}
	r := nats.NewNatsRegistry(registry.Addrs(*address))
	name := args[1]
	switch args[0] {
	case "get":
		services, err := r.GetService(name)
		if err != nil {
			fail("get %s: %v", name, err)
		}
		for _, s := range services {
			print("service", s)
		}
		if len(services) == 0 {
			os.Exit(1)
		}
	case "register":
		if len(args) != 4 {
			fail("usage: register <service> <node id> <node address>")
		}
		s := &registry.Service{
			Name:    name,
			Version: "v5",
			Endpoints: []*registry.Endpoint{{
				Name:     "Greeter.Hello",
				Request:  &registry.Value{Name: "Request", Type: "Request"},
				Response: &registry.Value{Name: "Response", Type: "Response"},
				Metadata: map[string]string{"stream": "false"},
			}},
			Nodes: []*registry.Node{{
				Id:       args[2],
				Address:  args[3],
				Metadata: map[string]string{"protocol": "mucp", "registry": "nats"},
			}},
		}
		if err := r.Register(s); err != nil {
			fail("register: %v", err)
		}
		fmt.Println("registered")
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
		}
		if err := r.Deregister(s); err != nil {
			fail("deregister: %v", err)
		}
		fmt.Println("deregistered")
		// nats.go sends publishes from a buffer in the background, and go-micro's registry
		// has no Close: exiting at once could drop the `delete`. A go-micro service goes on
		// stopping its server after Deregister; this stands for that.
		time.Sleep(time.Second)
	case "watch":
		var count int
		if len(args) != 3 {
			fail("usage: watch <service> <count>")
		}
		if _, err := fmt.Sscan(args[2], &count); err != nil {
			fail("count: %v", err)
		}
		w, err := r.Watch(registry.WatchService(name))
		if err != nil {
			fail("watch: %v", err)
		}
		// go-micro's nats watcher subscribes without flushing, so its SUB can reach the
		// server after a change published right after Watch returns (seen once in CI: the
		// change never came). nats.go flushes within its flusher's cycle; give it that.
		time.Sleep(200 * time.Millisecond)
		fmt.Println("ready")
		for i := 0; i < count; i++ {
			res, err := w.Next()
			if err != nil {
				fail("watch next: %v", err)
			}
			print("change", res)
		}
	default:
		fail("unknown command %q", args[0])
	}
}
