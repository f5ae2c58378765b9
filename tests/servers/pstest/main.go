// Command pstest serves Google's in-process Cloud Pub/Sub fake
// (cloud.google.com/go/pubsub/v2/pstest) on a TCP address, for tests on machines without the
// Google Cloud SDK's Pub/Sub emulator. It speaks gRPC only (google.pubsub.v1 Publisher,
// Subscriber and SchemaService; no REST), keeps everything in memory and serves until it is
// killed (SIGINT/SIGTERM close it cleanly).
//
//	pstest -addr 127.0.0.1:8085
//
// Clients find it the way they find the emulator: PUBSUB_EMULATOR_HOST=127.0.0.1:8085.
//
// With -tls-cert, -tls-key and -token it stands in for Google Cloud's endpoint instead: gRPC
// over TLS (that certificate), and every call must carry `authorization: Bearer <token>`, or
// it fails with UNAUTHENTICATED as Google's does. (pstest's own listener then serves on a
// private loopback port; its service is registered on a gRPC server of this program's.)
//
//	pstest -addr 127.0.0.1:8443 -tls-cert server.pem -tls-key server.key -token ya29.test
//
// Built and cached by scripts/pstest.sh.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on")
	certFile := flag.String("tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key and -token)")
	keyFile := flag.String("tls-key", "", "the PEM key of -tls-cert")
	token := flag.String("token", "", "the bearer token every call must carry (with -tls-cert)")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	if *certFile == "" {
		// NewServerWithAddress listens before it returns (and panics when it cannot).
		srv := pstest.NewServerWithAddress(*addr)
		fmt.Printf("pstest: serving Cloud Pub/Sub (gRPC) on %s\n", srv.Addr)
		<-stop
		_ = srv.Close()
		return
	}
	if *keyFile == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "pstest: -tls-cert needs -tls-key and -token")
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pstest: %v\n", err)
		os.Exit(1)
	}
	fake := pstest.NewServerWithAddress("127.0.0.1:0")
	want := "Bearer " + *token
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) != 1 || got[0] != want {
			return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		}
		return nil
	}
	gsrv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return handler(srv, ss)
		}),
	)
	pubsubpb.RegisterPublisherServer(gsrv, &fake.GServer)
	pubsubpb.RegisterSubscriberServer(gsrv, &fake.GServer)
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pstest: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("pstest: serving Cloud Pub/Sub (gRPC over TLS, bearer token required) on %s\n", lis.Addr())
	go func() { _ = gsrv.Serve(lis) }()
	<-stop
	gsrv.Stop()
	_ = fake.Close()
}
