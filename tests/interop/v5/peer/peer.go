// Package peer holds what the go-micro v5 interop programs share: the seed's message types,
// the registry and broker flags as go-micro names them, and the plugins built from them.
//
// Every address must be on 127.0.0.1. The mdns registry (go-micro's default) takes no
// address: the tests run it only inside a network namespace of their own whose one
// interface is lo, with 224.0.0.0/4 routed to it.
package peer

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/broker/nats"
	"go-micro.dev/v5/broker/rabbitmq"
	"go-micro.dev/v5/client"
	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/registry/consul"
	"go-micro.dev/v5/registry/etcd"
	natsreg "go-micro.dev/v5/registry/nats"
	"go-micro.dev/v5/server"
)

// Student is the seed's message.Student with its JSON names and its protobuf fields, written
// by hand: golang/protobuf (which go-micro v5's proto codec uses) encodes a message from
// these struct tags, so one type speaks application/json and application/protobuf.
type Student struct {
	Name    string `json:"name" protobuf:"bytes,1,opt,name=name,proto3"`
	Classes string `json:"classes" protobuf:"bytes,2,opt,name=classes,proto3"`
	Grade   int32  `json:"grade" protobuf:"varint,3,opt,name=grade,proto3"`
	Phone   string `json:"phone" protobuf:"bytes,4,opt,name=phone,proto3"`
}

// Reset, String and ProtoMessage make Student a (legacy) proto.Message.
func (s *Student) Reset()         { *s = Student{} }
func (s *Student) String() string { return fmt.Sprintf("%+v", *s) }
func (*Student) ProtoMessage()    {}

// StudentRequest is the seed's message.StudentRequest.
type StudentRequest struct {
	Name string `json:"name" protobuf:"bytes,1,opt,name=name,proto3"`
}

// Reset, String and ProtoMessage make StudentRequest a (legacy) proto.Message.
func (r *StudentRequest) Reset()         { *r = StudentRequest{} }
func (r *StudentRequest) String() string { return fmt.Sprintf("%+v", *r) }
func (*StudentRequest) ProtoMessage()    {}

// Davie is the seed's student.
func Davie() Student {
	return Student{Name: "davie", Classes: "软件工程专业", Grade: 80, Phone: "12345678901"}
}

// Roster is the class the streaming endpoints list: the seed's student and two classmates (as
// rmicro's examples have it).
func Roster() []Student {
	dora, doug := Davie(), Davie()
	dora.Name, dora.Grade, dora.Phone = "dora", 91, "12345678902"
	doug.Name, doug.Grade, doug.Phone = "doug", 73, "12345678903"
	return []Student{Davie(), dora, doug}
}

// Topic is the seed's topic.
const Topic = "go.micro.srv.message"

// Flags are go-micro's own flag names for the plugins.
type Flags struct {
	Registry        string
	RegistryAddress string
	Broker          string
	BrokerAddress   string
	// Server and Client are go-micro's `--server` and `--client`: mucp or grpc.
	Server string
	Client string
}

// Register adds --registry, --registry_address, --broker and --broker_address.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Registry, "registry", "mdns", "mdns, consul, etcd or nats")
	fs.StringVar(&f.RegistryAddress, "registry_address", "", "the registry's address on 127.0.0.1 (not for mdns)")
	fs.StringVar(&f.Broker, "broker", "http", "http, nats or rabbitmq")
	fs.StringVar(&f.BrokerAddress, "broker_address", "", "the broker's address on 127.0.0.1 (not for http)")
	fs.StringVar(&f.Server, "server", "mucp", "mucp or grpc (go-micro.dev/v5/server/grpc)")
	fs.StringVar(&f.Client, "client", "mucp", "mucp or grpc (go-micro.dev/v5/client/grpc)")
}

// The grpc server and client, set by grpc.go in a build with `-tags grpc`. They are kept out
// of the other builds because importing go-micro v5's grpc packages registers their codecs
// with grpc-go in place of its own, after which etcd's client (grpc-go with protoc-gen-go
// messages) fails every call: "grpc: error while marshaling: invalid message".
var (
	newGRPCServer func(...server.Option) server.Server
	newGRPCClient func(...client.Option) client.Client
)

// NewServer builds the server the flags name.
func (f *Flags) NewServer(opts ...server.Option) server.Server {
	switch {
	case f.Server == "mucp":
		return server.NewRPCServer(opts...)
	case f.Server == "grpc" && newGRPCServer != nil:
		return newGRPCServer(opts...)
	case f.Server == "grpc":
		Fail("--server=grpc needs the build with -tags grpc (interop-bin/v5/grpc/)")
	}
	Fail("unknown server %q (mucp or grpc)", f.Server)
	return nil
}

// NewClient builds the client the flags name.
func (f *Flags) NewClient(opts ...client.Option) client.Client {
	switch {
	case f.Client == "mucp":
		return client.NewClient(opts...)
	case f.Client == "grpc" && newGRPCClient != nil:
		return newGRPCClient(opts...)
	case f.Client == "grpc":
		Fail("--client=grpc needs the build with -tags grpc (interop-bin/v5/grpc/)")
	}
	Fail("unknown client %q (mucp or grpc)", f.Client)
	return nil
}

// Loopback refuses any address that is not on 127.0.0.1.
func Loopback(what, addr string) {
	host := addr
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	if !strings.HasPrefix(host, "127.0.0.1:") {
		Fail("%s address %q must be 127.0.0.1:<port>", what, addr)
	}
}

// NewRegistry builds the registry the flags name; it also becomes registry.DefaultRegistry,
// so that nothing falls back to another.
func (f *Flags) NewRegistry() registry.Registry {
	var r registry.Registry
	switch f.Registry {
	case "mdns":
		r = registry.NewMDNSRegistry()
	case "consul":
		Loopback("registry", f.RegistryAddress)
		r = consul.NewConsulRegistry(registry.Addrs(f.RegistryAddress))
	case "etcd":
		Loopback("registry", f.RegistryAddress)
		r = etcd.NewEtcdRegistry(registry.Addrs(f.RegistryAddress))
	case "nats":
		Loopback("registry", f.RegistryAddress)
		r = natsreg.NewNatsRegistry(registry.Addrs(f.RegistryAddress))
	default:
		Fail("unknown registry %q (mdns, consul, etcd or nats)", f.Registry)
	}
	registry.DefaultRegistry = r
	return r
}

// NewBroker builds the broker the flags name, with reg for the http broker.
func (f *Flags) NewBroker(reg registry.Registry) broker.Broker {
	switch f.Broker {
	case "http":
		return broker.NewHttpBroker(broker.Registry(reg), broker.Addrs("127.0.0.1:0"))
	case "nats":
		Loopback("broker", f.BrokerAddress)
		return nats.NewNatsBroker(broker.Addrs(f.BrokerAddress))
	case "rabbitmq":
		Loopback("broker", f.BrokerAddress)
		return rabbitmq.NewBroker(broker.Addrs(f.BrokerAddress))
	}
	Fail("unknown broker %q (http, nats or rabbitmq)", f.Broker)
	return nil
}

// StandaloneBroker builds the broker the flags name for a program without a server: the
// http broker gets the registry it finds its peers through.
func (f *Flags) StandaloneBroker() broker.Broker {
	if f.Broker == "http" {
		return f.NewBroker(f.NewRegistry())
	}
	return f.NewBroker(nil)
}

// Fail prints an error and exits with status 2.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(2)
}

// Print writes one line: a label and v as JSON.
func Print(label string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Fail("json: %v", err)
	}
	fmt.Printf("%s %s\n", label, b)
}
