//! What this process announces: its registered nodes and the records that answer for them.
//!
//! Per node, as go-micro's `util/mdns` zone: PTR `<service>.<domain>` -> `<node id>.<service>.
//! <domain>`, SRV (priority 10, weight 1) -> port and target, TXT = the encoded node description,
//! A/AAAA = the node's IP. go-micro names the SRV target after the machine's host name; we name
//! it after the instance itself, which go-micro's client reads the same way (it follows the SRV
//! target when it differs from the instance name) and which cannot mix up two nodes of one
//! machine that advertise different addresses.
//!
//! Per service, the listing entry go-micro's `ListServices` asks for: PTR `_services.<domain>`
//! -> `<service>._services.<domain>`, with SRV port 9999, A 0.0.0.0 and an empty TXT.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::registry::{Node, Service};
use crate::{Error, Result};

use super::ERROR_ID;
use super::txt::{self, MdnsTxt};
use super::wire::{self, Question, Rec, RecData};

/// The port of the listing entries, as go-micro.
const LISTING_PORT: u16 = 9999;

/// The fully qualified names of a domain, without trailing dots.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// `micro`.
    pub domain: String,
    /// `_services.micro`: the listing name.
    pub listing: String,
    /// `._services.micro`: the suffix of listing entries.
    pub listing_suffix: String,
}

impl Names {
    /// The names of `domain` (given with or without dots around it).
    pub(crate) fn new(domain: &str) -> Result<Self> {
        let domain = domain.trim_matches('.').to_owned();
        check_name("domain", &domain)?;
        Ok(Self {
            listing: format!("_services.{domain}"),
            listing_suffix: format!("._services.{domain}"),
            domain,
        })
    }

    /// `<service>.<domain>`.
    pub(crate) fn service(&self, service: &str) -> String {
        format!("{service}.{}", self.domain)
    }

    /// `.<service>.<domain>`: the suffix that leaves the node id of an instance name.
    pub(crate) fn instance_suffix(&self, service: &str) -> String {
        format!(".{service}.{}", self.domain)
    }
}

/// One registered node and its records' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZoneNode {
    /// The node id.
    pub id: String,
    /// `<service>.<domain>`.
    pub service_name: String,
    /// `<node id>.<service>.<domain>`.
    pub instance: String,
    /// The RPC port.
    pub port: u16,
    /// The node's address.
    pub ip: IpAddr,
    /// The TXT strings.
    pub txt: Vec<String>,
    /// Record TTL in seconds.
    pub ttl: u32,
}

impl ZoneNode {
    /// Checks and encodes one node of `service`.
    pub(crate) fn new(names: &Names, service: &Service, node: &Node, ttl: u32) -> Result<Self> {
        if node.id.is_empty() {
            return Err(Error::bad_request(
                ERROR_ID,
                format!("a node of service `{}` has an empty id", service.name),
            ));
        }
        let addr: SocketAddr = node.address.parse().map_err(|_| {
            Error::bad_request(
                ERROR_ID,
                format!(
                    "node `{}` has address `{}`, expected an IP address and port such as `127.0.0.1:8080`",
                    node.id, node.address
                ),
            )
        })?;
        if addr.port() == 0 {
            return Err(Error::bad_request(
                ERROR_ID,
                format!(
                    "node `{}` has address `{}` without a port",
                    node.id, node.address
                ),
            ));
        }
        let service_name = names.service(&service.name);
        let instance = format!("{}.{service_name}", node.id);
        check_name("node id", &instance)?;
        let txt = txt::encode(&MdnsTxt {
            service: service.name.clone(),
            version: service.version.clone(),
            endpoints: service.endpoints.clone(),
            metadata: node.metadata.clone(),
        })
        .map_err(|e| {
            Error::internal_server_error(ERROR_ID, format!("cannot encode node `{}`: {e}", node.id))
        })?;
        Ok(Self {
            id: node.id.clone(),
            service_name,
            instance,
            port: addr.port(),
            ip: addr.ip(),
            txt,
            ttl,
        })
    }

    /// PTR, SRV, TXT and A or AAAA, with `ttl`.
    fn records(&self, ttl: u32) -> [Rec<'_>; 4] {
        let rec = |name, data| Rec { name, ttl, data };
        [
            rec(&self.service_name, RecData::Ptr(&self.instance)),
            rec(&self.instance, RecData::Srv(self.port, &self.instance)),
            rec(&self.instance, RecData::Txt(&self.txt)),
            rec(
                &self.instance,
                match self.ip {
                    IpAddr::V4(ip) => RecData::A(ip),
                    IpAddr::V6(ip) => RecData::Aaaa(ip),
                },
            ),
        ]
    }

    /// An unsolicited response announcing the node (`goodbye`: with TTL 0).
    pub(crate) fn announcement(&self, goodbye: bool) -> Result<Vec<u8>> {
        let ttl = if goodbye { 0 } else { self.ttl };
        wire::response(0, None, &self.records(ttl)).map_err(|e| build_error(&self.instance, e))
    }
}

/// A registered service: its listing entry and its nodes.
#[derive(Debug)]
struct ZoneService {
    /// `<service>._services.<domain>`.
    listing_entry: String,
    /// Node id -> node.
    nodes: BTreeMap<String, ZoneNode>,
}

impl ZoneService {
    fn listing_packet(
        &self,
        names: &Names,
        id: u16,
        question: Option<&Question>,
    ) -> Result<Vec<u8>> {
        let ttl = self
            .nodes
            .values()
            .map(|n| n.ttl)
            .max()
            .unwrap_or(super::DEFAULT_TTL);
        let entry = self.listing_entry.as_str();
        let rec = |name, data| Rec { name, ttl, data };
        wire::response(
            id,
            question,
            &[
                rec(&names.listing, RecData::Ptr(entry)),
                rec(entry, RecData::Srv(LISTING_PORT, entry)),
                rec(entry, RecData::Txt(&[])),
                rec(entry, RecData::A(Ipv4Addr::UNSPECIFIED)),
            ],
        )
        .map_err(|e| build_error(entry, e))
    }
}

/// Every service this process registered.
#[derive(Debug)]
pub(crate) struct Zone {
    names: Names,
    /// Service name -> service.
    services: BTreeMap<String, ZoneService>,
}

impl Zone {
    /// An empty zone in the domain of `names`.
    pub(crate) fn new(names: Names) -> Self {
        Self {
            names,
            services: BTreeMap::new(),
        }
    }

    /// The number of services and of nodes.
    pub(crate) fn size(&self) -> (usize, usize) {
        let nodes = self.services.values().map(|s| s.nodes.len()).sum();
        (self.services.len(), nodes)
    }

    /// Adds `nodes` to `service`, replacing nodes with the same id.
    pub(crate) fn upsert(&mut self, service: &str, nodes: Vec<ZoneNode>) {
        let entry = self
            .services
            .entry(service.to_owned())
            .or_insert_with(|| ZoneService {
                listing_entry: format!("{service}{}", self.names.listing_suffix),
                nodes: BTreeMap::new(),
            });
        for node in nodes {
            entry.nodes.insert(node.id.clone(), node);
        }
    }

    /// Removes the nodes of `service` with these ids and returns them; a service left without
    /// nodes is removed too.
    pub(crate) fn remove<'a>(
        &mut self,
        service: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> Vec<ZoneNode> {
        let Some(entry) = self.services.get_mut(service) else {
            return Vec::new();
        };
        let removed: Vec<ZoneNode> = ids.filter_map(|id| entry.nodes.remove(id)).collect();
        if entry.nodes.is_empty() {
            self.services.remove(service);
        }
        removed
    }

    /// The response packets answering `question`, one per node or listing entry, as go-micro's
    /// client reads one instance per packet. Each has `id` and echoes the question.
    pub(crate) fn answer(&self, question: &Question, id: u16, out: &mut Vec<Vec<u8>>) {
        let q = question;
        let echoed = Some(q);
        let listing_type = matches!(q.qtype, wire::TYPE_PTR | wire::TYPE_ANY);
        let instance_type = matches!(
            q.qtype,
            wire::TYPE_PTR
                | wire::TYPE_ANY
                | wire::TYPE_SRV
                | wire::TYPE_TXT
                | wire::TYPE_A
                | wire::TYPE_AAAA
        );
        if !instance_type {
            return;
        }
        let mut push = |packet: Result<Vec<u8>>| match packet {
            Ok(bytes) => out.push(bytes),
            Err(e) => tracing::debug!(error = %e, "mdns: cannot build an answer"),
        };
        if listing_type && q.name.eq_ignore_ascii_case(&self.names.listing) {
            for service in self.services.values() {
                push(service.listing_packet(&self.names, id, echoed));
            }
            return;
        }
        for service in self.services.values() {
            if q.name.eq_ignore_ascii_case(&service.listing_entry) {
                push(service.listing_packet(&self.names, id, echoed));
                return;
            }
            for node in service.nodes.values() {
                let whole = listing_type && q.name.eq_ignore_ascii_case(&node.service_name);
                if whole || q.name.eq_ignore_ascii_case(&node.instance) {
                    push(
                        wire::response(id, echoed, &node.records(node.ttl))
                            .map_err(|e| build_error(&node.instance, e)),
                    );
                }
            }
        }
    }
}

fn build_error(name: &str, e: simple_dns::SimpleDnsError) -> Error {
    Error::internal_server_error(
        ERROR_ID,
        format!("cannot build the records of `{name}`: {e}"),
    )
}

/// Checks that `name` fits in DNS: labels of 1 to 63 bytes, 253 bytes in all.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::bad_request(
            ERROR_ID,
            format!("mdns cannot announce {what} `{name}`: {why}"),
        ))
    };
    if name.len() > 253 {
        return bad("names are at most 253 bytes long");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (two dots in a row, or a dot at an end)");
        }
        if label.len() > 63 {
            return bad(&format!(
                "label `{label}` is longer than the 63 bytes DNS allows (node ids are \
                 `<service>-<uuid>`, which leaves 26 bytes for the last dot-separated part of a \
                 service name)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(nodes: &[(&str, &str)]) -> Service {
        Service {
            name: "greeter".into(),
            version: "1.0.0".into(),
            nodes: nodes
                .iter()
                .map(|(id, address)| Node {
                    id: (*id).into(),
                    address: (*address).into(),
                    metadata: Default::default(),
                })
                .collect(),
            ..Service::default()
        }
    }

    fn zone_with(nodes: &[(&str, &str)]) -> Zone {
        let names = Names::new("micro.").expect("names");
        let svc = service(nodes);
        let nodes = svc
            .nodes
            .iter()
            .map(|n| ZoneNode::new(&names, &svc, n, 30).expect("node"))
            .collect();
        let mut zone = Zone::new(names);
        zone.upsert("greeter", nodes);
        zone
    }

    fn ask(zone: &Zone, name: &str, qtype: u16) -> Vec<wire::Message> {
        let mut out = Vec::new();
        let q = Question {
            name: name.into(),
            qtype,
            unicast: false,
        };
        zone.answer(&q, 9, &mut out);
        out.iter().map(|p| wire::parse(p).expect("parse")).collect()
    }

    #[test]
    fn answers_one_packet_per_node_with_the_question_echoed() {
        let zone = zone_with(&[("a", "127.0.0.1:1"), ("b", "[::1]:2")]);
        let answers = ask(&zone, "GREETER.micro", wire::TYPE_PTR);
        assert_eq!(answers.len(), 2);
        for msg in &answers {
            assert_eq!(msg.id, 9);
            assert_eq!(msg.questions[0].name, "GREETER.micro");
            assert_eq!(msg.records.len(), 4);
            assert!(msg.records.iter().all(|r| r.ttl == 30));
        }
        assert_eq!(ask(&zone, "b.greeter.micro", wire::TYPE_ANY).len(), 1);
        assert!(ask(&zone, "other.micro", wire::TYPE_PTR).is_empty());
        assert!(ask(&zone, "greeter.micro", 99).is_empty());
    }

    #[test]
    fn lists_services_like_go_micro() {
        let zone = zone_with(&[("a", "127.0.0.1:1")]);
        let answers = ask(&zone, "_services.micro", wire::TYPE_PTR);
        assert_eq!(answers.len(), 1);
        let recs = &answers[0].records;
        assert_eq!(recs[0].name, "_services.micro");
        assert_eq!(
            recs[0].data,
            wire::Data::Ptr("greeter._services.micro".into())
        );
        assert_eq!(
            recs[1].data,
            wire::Data::Srv {
                port: 9999,
                target: "greeter._services.micro".into()
            }
        );
    }

    #[test]
    fn removes_nodes_then_the_service() {
        let mut zone = zone_with(&[("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")]);
        assert_eq!(zone.remove("greeter", ["a", "zz"].into_iter()).len(), 1);
        assert_eq!(zone.size(), (1, 1));
        assert_eq!(zone.remove("greeter", ["b"].into_iter()).len(), 1);
        assert_eq!(zone.size(), (0, 0));
        assert!(ask(&zone, "_services.micro", wire::TYPE_PTR).is_empty());
    }

    #[test]
    fn refuses_bad_nodes_with_clear_errors() {
        let names = Names::new("micro").expect("names");
        let check = |id: &str, address: &str| {
            let svc = service(&[(id, address)]);
            ZoneNode::new(&names, &svc, &svc.nodes[0], 1)
                .expect_err("refused")
                .detail
        };
        assert!(check("a", "localhost:80").contains("expected an IP address and port"));
        assert!(check("a", "127.0.0.1:0").contains("without a port"));
        assert!(check("", "127.0.0.1:1").contains("empty id"));
        assert!(check(&"x".repeat(64), "127.0.0.1:1").contains("longer than the 63 bytes"));
        assert!(Names::new("").is_err());
    }
}
