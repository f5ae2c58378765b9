//! The DNS registry (feature `dns`): go-micro's dns selector (go-plugins,
//! `selector/dns`), read-only discovery from DNS records, on [hickory-resolver].
//!
//! A service name is resolved as go-micro resolves it:
//!
//! - `host:port` (an address): the host's A and AAAA records (or the IP itself), one node per
//!   address at that port, the node id the address;
//! - any other name: the SRV records of `_<name>._tcp.<domain>.` (domain `local` by default,
//!   go-micro's `DefaultDomain`), one node per record, the node id the target as DNS writes it
//!   (`node1.local.`). Unlike go-micro, whose address is `<target>:<port>` resolved later by the
//!   system, rmicro resolves each target through the same DNS server, so the node's address is
//!   `<ip>:<port>` (one node per address); a target with no address is skipped with a warning.
//!   When the name has no SRV records and [`DnsOptions::default_port`] is set, the A and AAAA
//!   records of `<name>.<domain>.` at that port are used instead.
//!
//! The service has the requested name and no version, endpoints or metadata (DNS carries none).
//! A name with no records is no service (`get_service` is empty, and a client gets go-micro's
//! not-found error). There is nothing to register: `register` and `deregister` succeed without
//! doing anything (DNS records are the operator's), `list_services` is empty. A watch of one
//! service resolves it again every [`DnsOptions::refresh`] (or sooner when the records' TTL
//! says so, but not more often than once a second) and reports the nodes that came and went,
//! so a client's cache follows DNS; a watch of every service is refused (DNS cannot be
//! listed), and the client then caches answers for a minute.
//!
//! `--registry_address`: comma-separated DNS servers, `ip[:port]` (port 53 when absent); empty
//! means the system's resolver configuration (`/etc/resolv.conf`). The domain comes from
//! `MICRO_DNS_DOMAIN` (default `local`).
//!
//! [hickory-resolver]: https://docs.rs/hickory-resolver

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use super::{Action, Change, Node, RegisterOptions, Registry, Service, WatchOptions, Watcher};
use crate::config::Options;
use crate::{Error, Result};

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// go-micro's `DefaultDomain`.
pub const DEFAULT_DOMAIN: &str = "local";

/// The shortest wait between two resolutions of a watched service.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// How to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsOptions {
    /// DNS servers to ask; empty: the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// The domain SRV names are looked up in: `_<service>._tcp.<domain>.`. Default `local`.
    pub domain: String,
    /// The port of nodes found by A/AAAA records of `<service>.<domain>.` when the service
    /// has no SRV records; `None` (the default, as go-micro): no such fallback.
    pub default_port: Option<u16>,
    /// How often a watch resolves its service again at most. Default 10 s.
    pub refresh: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            domain: DEFAULT_DOMAIN.to_owned(),
            default_port: None,
            refresh: Duration::from_secs(10),
        }
    }
}

impl DnsOptions {
    /// Options for a `--registry_address` value: comma-separated `ip[:port]` (port 53 when
    /// absent); empty means the system's resolver configuration.
    pub fn from_address(address: &str) -> Result<Self> {
        let mut servers = Vec::new();
        for item in address.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let server = item
                .parse::<SocketAddr>()
                .or_else(|_| item.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    Error::bad_request(
                        ERROR_ID,
                        format!("dns: server `{item}` is not `ip[:port]` (e.g. `127.0.0.1:53`)"),
                    )
                })?;
            servers.push(server);
        }
        Ok(Self {
            servers,
            ..Self::default()
        })
    }
}

/// The DNS [`Registry`]; see the [module docs](self). Clones share the resolver.
#[derive(Clone)]
pub struct DnsRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    opts: DnsOptions,
    resolver: TokioResolver,
    /// The servers, for messages.
    label: String,
}

impl fmt::Debug for DnsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsRegistry")
            .field("servers", &self.inner.label)
            .field("domain", &self.inner.opts.domain)
            .finish_non_exhaustive()
    }
}

impl DnsRegistry {
    /// A registry resolving through `opts.servers` (or the system's configuration).
    pub fn new(opts: DnsOptions) -> Result<Self> {
        let failed = |e: NetError| {
            Error::bad_request(ERROR_ID, format!("dns: cannot build a resolver: {e}"))
        };
        let mut builder = if opts.servers.is_empty() {
            Resolver::builder_tokio().map_err(failed)?
        } else {
            let servers = opts
                .servers
                .iter()
                .map(|server| {
                    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut ns.connections {
                        connection.port = server.port();
                    }
                    ns
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioRuntimeProvider::default(),
            )
        };
        // Answers are cached for their TTL by the resolver; go-micro asks every time, but a
        // client's own cache (and its watch) sits above this one anyway.
        builder.options_mut().cache_size = 1024;
        // A server that does not answer costs 2 × 2 s, not hickory's 2 × 5 s (per query).
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 2;
        let resolver = builder.build().map_err(failed)?;
        let label = if opts.servers.is_empty() {
            "the system's resolver".to_owned()
        } else {
            opts.servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                resolver,
                label,
            }),
        })
    }

    /// The registry `--registry=dns --registry_address=...` names, the domain from
    /// `MICRO_DNS_DOMAIN`.
    pub fn from_config(options: &Options) -> Result<Self> {
        let mut opts = DnsOptions::from_address(&options.registry_address)?;
        if let Ok(domain) = std::env::var("MICRO_DNS_DOMAIN")
            && !domain.trim().is_empty()
        {
            opts.domain = domain.trim().trim_matches('.').to_owned();
        }
        Self::new(opts)
    }
}

/// Whether a lookup found nothing (as opposed to failing).
fn nothing(err: &NetError) -> bool {
    err.is_no_records_found() || err.is_nx_domain()
}

impl Inner {
    fn error(&self, name: &str, err: &NetError) -> Error {
        Error::service_unavailable(
            ERROR_ID,
            format!("dns at {}: cannot resolve `{name}`: {err}", self.label),
        )
    }

    /// The addresses of `host` (an IP is its own), and how long they may be cached.
    async fn addresses(&self, host: &str) -> Result<(Vec<IpAddr>, Duration)> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok((vec![ip], self.opts.refresh));
        }
        match self.resolver.lookup_ip(host).await {
            Ok(found) => {
                let ttl = found
                    .as_lookup()
                    .answers()
                    .iter()
                    .map(|r| Duration::from_secs(u64::from(r.ttl)))
                    .min()
                    .unwrap_or(self.opts.refresh);
                Ok((found.iter().collect(), ttl))
            }
            Err(err) if nothing(&err) => Ok((Vec::new(), self.opts.refresh)),
            Err(err) => Err(self.error(host, &err)),
        }
    }

    /// The nodes of `name`, and how long the answer may be cached.
    async fn resolve(&self, name: &str) -> Result<(Vec<Node>, Duration)> {
        // `host:port`: go-micro's LookupHost path.
        if let Some((host, port)) = name.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            let (ips, ttl) = self.addresses(host).await?;
            return Ok((nodes_at(&ips, port, None), ttl));
        }
        let domain = self.opts.domain.trim_matches('.');
        let srv_name = format!("_{name}._tcp.{domain}.");
        match self.resolver.srv_lookup(srv_name.as_str()).await {
            Ok(found) => {
                let mut nodes = Vec::new();
                let mut ttl = self.opts.refresh;
                for record in found.answers() {
                    let RData::SRV(srv) = &record.data else {
                        continue;
                    };
                    ttl = ttl.min(Duration::from_secs(u64::from(record.ttl)));
                    let target = srv.target.to_string();
                    let (ips, target_ttl) = self.addresses(&target).await?;
                    if ips.is_empty() {
                        tracing::warn!(service = name, %target, "dns: an SRV target has no address; skipped");
                    }
                    ttl = ttl.min(target_ttl);
                    nodes.extend(nodes_at(&ips, srv.port, Some(&target)));
                }
                Ok((nodes, ttl))
            }
            Err(err) if nothing(&err) => match self.opts.default_port {
                Some(port) => {
                    let (ips, ttl) = self.addresses(&format!("{name}.{domain}.")).await?;
                    Ok((nodes_at(&ips, port, None), ttl))
                }
                None => Ok((Vec::new(), self.opts.refresh)),
            },
            Err(err) => Err(self.error(&srv_name, &err)),
        }
    }

    /// The service `name` as DNS has it: `vec![]` when it has no nodes.
    async fn service(&self, name: &str) -> Result<(Vec<Service>, Duration)> {
        let (nodes, ttl) = self.resolve(name).await?;
        let services = if nodes.is_empty() {
            Vec::new()
        } else {
            vec![Service {
                name: name.to_owned(),
                nodes,
                ..Service::default()
            }]
        };
        Ok((services, ttl))
    }
}

/// One node per address, at `port`; the id is `id` (an SRV target) or the address's IP.
fn nodes_at(ips: &[IpAddr], port: u16, id: Option<&str>) -> Vec<Node> {
    ips.iter()
        .map(|ip| Node {
            id: id.map_or_else(|| ip.to_string(), str::to_owned),
            address: SocketAddr::new(*ip, port).to_string(),
            ..Node::default()
        })
        .collect()
}

#[async_trait]
impl Registry for DnsRegistry {
    fn name(&self) -> &str {
        "dns"
    }

    /// Nothing to do: DNS records are managed outside (go-micro's dns selector registers
    /// nothing either).
    async fn register(&self, service: &Service, _opts: RegisterOptions) -> Result<()> {
        tracing::debug!(service = %service.name, "dns: read-only registry; not registered");
        Ok(())
    }

    async fn deregister(&self, _service: &Service) -> Result<()> {
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        Ok(self.inner.service(name).await?.0)
    }

    /// Empty: DNS cannot be listed.
    async fn list_services(&self) -> Result<Vec<Service>> {
        Ok(Vec::new())
    }

    /// Resolves the service again as its records' TTL (at least 1 s, at most
    /// [`DnsOptions::refresh`]) says and reports the nodes that came and went; a watch of every
    /// service is refused.
    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let Some(name) = opts.service else {
            return Err(Error::bad_request(
                ERROR_ID,
                "dns: cannot watch every service (DNS cannot be listed); watch one",
            ));
        };
        let (services, ttl) = self.inner.service(&name).await?;
        let watch = DnsWatch {
            inner: Arc::clone(&self.inner),
            nodes: services
                .into_iter()
                .flat_map(|s| s.nodes)
                .map(|n| (n.address.clone(), n))
                .collect(),
            name,
            wait: ttl,
            pending: VecDeque::new(),
        };
        Ok(futures::stream::unfold(watch, |mut w| async move {
            let item = w.next().await;
            Some((item, w))
        })
        .boxed())
    }
}

/// A polling watch of one service.
struct DnsWatch {
    inner: Arc<Inner>,
    name: String,
    /// The nodes last seen, by address.
    nodes: BTreeMap<String, Node>,
    wait: Duration,
    pending: VecDeque<Result<Change>>,
}

impl DnsWatch {
    fn change(&self, action: Action, node: Node) -> Result<Change> {
        Ok(Change {
            action,
            service: Service {
                name: self.name.clone(),
                nodes: vec![node],
                ..Service::default()
            },
        })
    }

    async fn next(&mut self) -> Result<Change> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            tokio::time::sleep(
                self.wait
                    .clamp(MIN_REFRESH, self.inner.opts.refresh.max(MIN_REFRESH)),
            )
            .await;
            let (nodes, ttl) = match self.inner.resolve(&self.name).await {
                Ok(found) => found,
                Err(err) => {
                    // Keep what was seen; the error is the reader's to see once per failure.
                    self.wait = self.inner.opts.refresh;
                    return Err(err);
                }
            };
            self.wait = ttl;
            let now: BTreeMap<String, Node> =
                nodes.into_iter().map(|n| (n.address.clone(), n)).collect();
            let gone: Vec<Node> = self
                .nodes
                .iter()
                .filter(|(addr, _)| !now.contains_key(*addr))
                .map(|(_, n)| n.clone())
                .collect();
            for node in gone {
                let change = self.change(Action::Delete, node);
                self.pending.push_back(change);
            }
            for (addr, node) in &now {
                if !self.nodes.contains_key(addr) {
                    let change = self.change(Action::Create, node.clone());
                    self.pending.push_back(change);
                }
            }
            self.nodes = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_port_53() {
        let o = DnsOptions::from_address("").expect("empty");
        assert!(o.servers.is_empty());
        assert_eq!(o.domain, "local");
        let o = DnsOptions::from_address("127.0.0.1:5353, ::1, 10.0.0.2").expect("list");
        assert_eq!(
            o.servers,
            [
                "127.0.0.1:5353".parse::<SocketAddr>().expect("addr"),
                "[::1]:53".parse().expect("addr"),
                "10.0.0.2:53".parse().expect("addr"),
            ]
        );
        let err = DnsOptions::from_address("dns.example:53").expect_err("a name");
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("`dns.example:53`"), "{err}");
    }

    #[test]
    fn nodes_are_one_per_address() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")];
        let nodes = nodes_at(&ips, 8080, Some("node1.local."));
        assert_eq!(nodes[0].address, "127.0.0.1:8080");
        assert_eq!(nodes[1].address, "[::1]:8080");
        assert!(nodes.iter().all(|n| n.id == "node1.local."));
        assert_eq!(nodes_at(&ips[..1], 1, None)[0].id, "127.0.0.1");
    }
}
