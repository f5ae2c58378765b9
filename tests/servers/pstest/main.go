// Command pstest serves Google's in-process Cloud Pub/Sub fake
// (cloud.google.com/go/pubsub/v2/pstest) on a TCP address, for tests on machines without the
// Google Cloud SDK's Pub/Sub emulator. It speaks gRPC only (google.pubsub.v1 Publisher,
// Subscriber and SchemaService; no REST), keeps everything in memory and serves until it is
// killed (SIGINT/SIGTERM close it cleanly).
//
//	pstest -addr 127.0.0.1:8085
//
// Clients find it the way they find the emulator: PUBSUB_EMULATOR_HOST=127.0.0.1:8085.
// Built and cached by scripts/pstest.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on")
	flag.Parse()

	// NewServerWithAddress listens before it returns (and panics when it cannot).
	srv := pstest.NewServerWithAddress(*addr)
	fmt.Printf("pstest: serving Cloud Pub/Sub (gRPC) on %s\n", srv.Addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	_ = srv.Close()
}
