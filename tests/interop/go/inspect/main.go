// Command inspect reads a service from Consul the way go-micro does
// (registry.GetService) and prints, per node, `node <JSON>` with the service's name and
// version, the node's id, address and metadata, and the endpoints' names and metadata.
//
//	inspect --registry_address=127.0.0.1:8500 [--service=student_service]
package main

import (
	"flag"
	"os"

	"rmicro.test/interop/go/peer"
)

type endpoint struct {
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata"`
	Request  string            `json:"request,omitempty"`
	Response string            `json:"response,omitempty"`
}

type node struct {
	Service   string            `json:"service"`
	Version   string            `json:"version"`
	ID        string            `json:"id"`
	Address   string            `json:"address"`
	Metadata  map[string]string `json:"metadata"`
	Endpoints []endpoint        `json:"endpoints"`
}

func main() {
	var f peer.Flags
	f.Register(flag.CommandLine)
	name := flag.String("service", "student_service", "service to read")
	flag.Parse()

	services, err := f.Consul().GetService(*name)
	if err != nil {
		peer.Fail("get service %s: %v", *name, err)
	}
	for _, s := range services {
		eps := make([]endpoint, 0, len(s.Endpoints))
		for _, e := range s.Endpoints {
			ep := endpoint{Name: e.Name, Metadata: e.Metadata}
			if e.Request != nil {
				ep.Request = e.Request.Type
			}
			if e.Response != nil {
				ep.Response = e.Response.Type
			}
			eps = append(eps, ep)
		}
		for _, n := range s.Nodes {
			peer.Print("node", node{s.Name, s.Version, n.Id, n.Address, n.Metadata, eps})
		}
	}
	if len(services) == 0 {
		os.Exit(1)
	}
}
