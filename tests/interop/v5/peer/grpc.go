//go:build grpc

package peer

import (
	grpcclient "go-micro.dev/v5/client/grpc"
	grpcserver "go-micro.dev/v5/server/grpc"
)

// This build can run go-micro v5's grpc server and client (`--server=grpc`, `--client=grpc`).
func init() {
	newGRPCServer = grpcserver.NewServer
	newGRPCClient = grpcclient.NewClient
}
