// Package peer holds what the interop programs share: the seed's message types, the
// loopback-only flags, and go-micro's Consul registry built from them.
//
// Every program builds its plugins itself from explicit 127.0.0.1 addresses, so go-micro's
// default registry (mDNS, which sends on the default-route interface) is never used.
package peer

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/go-micro/plugins/v4/registry/consul"
	"go-micro.dev/v4/registry"
)

// Student is the seed's message.Student (examples/proto/student.proto) with its JSON names
// and its protobuf fields. It is written by hand, not generated: the struct tags are what
// golang/protobuf reads to encode a message without generated descriptors, so the same type
// speaks application/json and application/protobuf.
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

// Topic is the seed's topic.
const Topic = "go.micro.srv.message"

// Flags are the addresses every program takes, as go-micro's own flags are named.
type Flags struct {
	RegistryAddress string
	BrokerAddress   string
}

// Register adds --registry_address and --broker_address (defaults from
// MICRO_REGISTRY_ADDRESS and MICRO_BROKER_ADDRESS).
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.RegistryAddress, "registry_address", os.Getenv("MICRO_REGISTRY_ADDRESS"), "consul agent, 127.0.0.1:<port>")
	fs.StringVar(&f.BrokerAddress, "broker_address", os.Getenv("MICRO_BROKER_ADDRESS"), "broker address on 127.0.0.1")
}

// Loopback refuses any address that is not on 127.0.0.1.
func Loopback(what, addr string) {
	host := addr
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if !strings.HasPrefix(host, "127.0.0.1:") {
		Fail("%s address %q must be 127.0.0.1:<port>", what, addr)
	}
}

// Consul is go-micro's Consul registry on the agent named by the flags; it also becomes
// registry.DefaultRegistry so that nothing falls back to mDNS.
func (f *Flags) Consul() registry.Registry {
	Loopback("registry", f.RegistryAddress)
	r := consul.NewRegistry(registry.Addrs(f.RegistryAddress))
	registry.DefaultRegistry = r
	return r
}

// Fail prints an error and exits with status 2.
func Fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(2)
}

// Print writes one line: a label and v as JSON.
func Print(label string, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		Fail("json: %v", err)
	}
	fmt.Printf("%s %s\n", label, b)
}
