//! The default registry: multicast DNS with go-micro's names and encoding.
//!
//! Wire format, as go-micro v2–v4 (`registry/mdns_registry.go`, `util/mdns`):
//!
//! - domain `micro`; every node is the instance `<node id>.<service>.micro.` with a PTR from
//!   `<service>.micro.`, an SRV with its port, an A (or AAAA) with its IP, and a TXT holding
//!   lowercase hex of zlib(JSON `{"Service","Version","Endpoints","Metadata"}`) cut into strings
//!   of at most 255 characters (`Metadata` is the node's; service-level metadata is not
//!   carried, as in go-micro).
//! - per service a listing entry `<service>._services.micro.` (PTR from `_services.micro.`,
//!   port 9999), which is what `list_services` asks for.
//! - lookups multicast one PTR query from an ephemeral port and collect the answers sent back
//!   to that port for [`MdnsOptions::lookup_timeout`] (100 ms).
//! - answers: one packet per node, echoing the question (go-micro's client reads one instance
//!   per packet and drops answers without its question); sent straight back to the querier,
//!   as go-micro's server does, or to the group when the querier is a full mDNS querier (its
//!   source port is the mDNS port) or has no source address.
//! - `register` announces each node (an unsolicited response), `deregister` says goodbye
//!   (the same records with TTL 0). Record TTLs are the registration TTL in seconds, or 120 s
//!   (go-micro's fixed record TTL) when it is zero.
//!
//! Each registry answers queries for its nodes on its own task until they are deregistered or
//! the registry is dropped. Dropping it stops the answers without a goodbye, as a crash would:
//! other processes drop its nodes once their TTL runs out.
//!
//! Watching: every registry listens to the group. Announcements and goodbyes become
//! [`Change`]s: a new node is a `Create`, a known node announced again (registered again) an
//! `Update`, a goodbye a `Delete`. Nodes are kept for their record TTL and asked for again
//! before it ends (at 80 % and 90 % of it); a node whose owner no longer answers is deleted when
//! its TTL runs out. go-micro's own watcher only reads announcements and never expires nodes.
//!
//! Network: everything goes through one IPv4 interface, [`MdnsOptions::interface`]. With a
//! loopback address (the default) the sockets are bound to the loopback device (on Linux),
//! multicast is sent on it only, and only packets from loopback sources (or from 0.0.0.0, as
//! go-micro's sockets send on loopback) are read, so nothing leaves the machine. Several
//! registries, in one process or many, share the mDNS port. go-micro picks no interface: it
//! sends multicast where the routing table says, so a go-micro peer on the same machine
//! reaches a loopback registry only if 224.0.0.0/4 is routed to `lo`; a loopback registry
//! says so in a warning when it is not (`scripts/loopback-multicast.sh`, which
//! `scripts/setup.sh` runs, adds the route on a host whose only interface is lo).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::{Change, RegisterOptions, Registry, Service, WatchOptions, Watcher};
use crate::{Error, Result};

mod net;
mod txt;
mod view;
mod wire;
mod zone;

use view::{Source, View};
use zone::{Names, Zone, ZoneNode};

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// The record TTL when a registration has none: go-micro's.
const DEFAULT_TTL: u32 = 120;

/// How many changes a watcher may fall behind before it is told it lagged.
const WATCH_BUFFER: usize = 1024;

/// The longest the task sleeps without looking at the view.
const IDLE: Duration = Duration::from_secs(60);

/// The largest datagram read.
const MAX_PACKET: usize = 65536;

/// Options of [`MdnsRegistry::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsOptions {
    /// The domain services live under, `micro` as go-micro's.
    pub domain: String,
    /// The IPv4 address of the one interface to speak on. The default, `127.0.0.1`, keeps
    /// everything on this machine; a routable address announces services to that network.
    pub interface: Ipv4Addr,
    /// The mDNS port, 5353.
    pub port: u16,
    /// How long a lookup collects answers, 100 ms as go-micro's.
    pub lookup_timeout: Duration,
}

impl Default for MdnsOptions {
    fn default() -> Self {
        Self {
            domain: "micro".to_owned(),
            interface: Ipv4Addr::LOCALHOST,
            port: 5353,
            lookup_timeout: Duration::from_millis(100),
        }
    }
}

/// go-micro's mDNS registry. See the [module documentation](self) for the wire format.
///
/// ```no_run
/// # async fn demo() -> rmicro::Result<()> {
/// use rmicro::registry::Registry as _;
/// use rmicro::registry::mdns::{MdnsOptions, MdnsRegistry};
///
/// let registry = MdnsRegistry::new(MdnsOptions::default())?;
/// for service in registry.list_services().await? {
///     println!("{}", service.name);
/// }
/// # Ok(()) }
/// ```
pub struct MdnsRegistry {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// What the registry handle and its task share.
struct Shared {
    opts: MdnsOptions,
    names: Names,
    /// 224.0.0.251 on the configured port.
    group: SocketAddr,
    /// The shared mDNS port: queries and announcements arrive here, answers leave from here.
    socket: UdpSocket,
    /// An ephemeral port for the view's refresh queries; their answers arrive here.
    refresh: UdpSocket,
    zone: Mutex<Zone>,
    view: Mutex<View>,
    changes: broadcast::Sender<Change>,
}

impl MdnsRegistry {
    /// Opens the sockets and starts answering. Must be called inside a tokio runtime.
    ///
    /// Fails if the domain is not a DNS name, the port is 0, or the interface cannot join the
    /// mDNS group (the error says why and how to fix it).
    pub fn new(opts: MdnsOptions) -> Result<Self> {
        let names = Names::new(&opts.domain)?;
        if opts.port == 0 {
            return Err(Error::bad_request(ERROR_ID, "mdns port must not be 0"));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::internal_server_error(
                ERROR_ID,
                "`MdnsRegistry::new` must be called inside a tokio runtime",
            )
        })?;
        let _entered = runtime.enter();
        let socket = net::group_socket(opts.interface, opts.port)?;
        if opts.interface.is_loopback() {
            static ROUTE_CHECKED: std::sync::Once = std::sync::Once::new();
            ROUTE_CHECKED.call_once(|| {
                let routed = net::routed_source();
                if let Some(warning) = net::loopback_route_warning(routed) {
                    // No route at all (a loopback-only host) is what the fix is for; a route
                    // out through another interface only matters with go-micro peers here.
                    if routed.is_none() {
                        tracing::warn!("{warning}");
                    } else {
                        tracing::info!("{warning}");
                    }
                }
            });
        }
        let refresh = net::query_socket(opts.interface)?;
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        let shared = Arc::new(Shared {
            group: SocketAddr::V4(SocketAddrV4::new(net::GROUP, opts.port)),
            zone: Mutex::new(Zone::new(names.clone())),
            view: Mutex::new(View::default()),
            names,
            opts,
            socket,
            refresh,
            changes,
        });
        let task = runtime.spawn(Arc::clone(&shared).run());
        Ok(Self { shared, task })
    }

    /// The options the registry runs with.
    pub fn options(&self) -> &MdnsOptions {
        &self.shared.opts
    }
}

impl Drop for MdnsRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for MdnsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (services, nodes) = self.shared.zone().size();
        f.debug_struct("MdnsRegistry")
            .field("domain", &self.shared.names.domain)
            .field("interface", &self.shared.opts.interface)
            .field("port", &self.shared.opts.port)
            .field("services", &services)
            .field("nodes", &nodes)
            .field("seen", &self.shared.view().len())
            .finish()
    }
}

/// The record TTL for a registration TTL: whole seconds rounded up, 120 s for none.
fn record_ttl(ttl: Duration) -> u32 {
    if ttl.is_zero() {
        return DEFAULT_TTL;
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    // RFC 2181 §8: at most 2^31 - 1.
    u32::try_from(secs).unwrap_or(u32::MAX).min(i32::MAX as u32)
}

#[async_trait]
impl Registry for MdnsRegistry {
    fn name(&self) -> &str {
        "mdns"
    }

    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        zone::check_name("service name", &self.shared.names.service(&service.name))?;
        let ttl = record_ttl(opts.ttl);
        let nodes = service
            .nodes
            .iter()
            .map(|node| ZoneNode::new(&self.shared.names, service, node, ttl))
            .collect::<Result<Vec<_>>>()?;
        let packets = nodes
            .iter()
            .map(|node| node.announcement(false))
            .collect::<Result<Vec<_>>>()?;
        self.shared.zone().upsert(&service.name, nodes);
        for packet in &packets {
            self.shared
                .send(&self.shared.socket, packet, self.shared.group)
                .await?;
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        let removed = self
            .shared
            .zone()
            .remove(&service.name, service.nodes.iter().map(|n| n.id.as_str()));
        for node in removed {
            let packet = node.announcement(true)?;
            self.shared
                .send(&self.shared.socket, &packet, self.shared.group)
                .await?;
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let qname = self.shared.names.service(name);
        zone::check_name("service name", &qname)?;
        let mut versions: Vec<Service> = Vec::new();
        self.shared
            .lookup(&qname, |msg, names| {
                for sighting in view::sightings(msg, names) {
                    let mut found = sighting.service;
                    if sighting.ttl == 0 || found.name != name {
                        continue;
                    }
                    let Some(node) = found.nodes.pop() else {
                        continue;
                    };
                    match versions.iter_mut().find(|s| s.version == found.version) {
                        Some(service) => match service.nodes.iter_mut().find(|n| n.id == node.id) {
                            Some(known) => *known = node,
                            None => service.nodes.push(node),
                        },
                        None => {
                            found.nodes = vec![node];
                            versions.push(found);
                        }
                    }
                }
            })
            .await?;
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        for service in &mut versions {
            service.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(versions)
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let mut names = Vec::new();
        let listing = self.shared.names.listing.clone();
        self.shared
            .lookup(&listing, |msg, domain| {
                view::listed(msg, domain, &mut names)
            })
            .await?;
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Service {
                name,
                ..Service::default()
            })
            .collect())
    }

    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let only = opts.service;
        let stream =
            BroadcastStream::new(self.shared.changes.subscribe()).filter_map(move |item| {
                let out = match item {
                    Ok(change) => match &only {
                        Some(name) if *name != change.service.name => None,
                        _ => Some(Ok(change)),
                    },
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        Some(Err(Error::internal_server_error(
                            ERROR_ID,
                            format!("mdns watch fell behind and missed {missed} changes"),
                        )))
                    }
                };
                std::future::ready(out)
            });
        Ok(stream.boxed())
    }
}

impl Shared {
    fn zone(&self) -> MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn send(&self, socket: &UdpSocket, packet: &[u8], to: SocketAddr) -> Result<()> {
        socket
            .send_to(packet, to)
            .await
            .map(drop)
            .map_err(|e| net::send_error(self.opts.interface, to, &e))
    }

    /// Whether a packet from `from` may be read: with a loopback interface, only loopback
    /// sources, or 0.0.0.0, which go-micro's server sockets (bound to 224.0.0.0) send from
    /// (on Linux the sockets are bound to `lo` anyway).
    fn accepts(&self, from: SocketAddr) -> bool {
        !self.opts.interface.is_loopback() || from.ip().is_loopback() || from.ip().is_unspecified()
    }

    /// Multicasts a PTR query for `qname` from a fresh ephemeral port and hands every response
    /// that arrives there within the lookup timeout to `each`.
    async fn lookup(
        &self,
        qname: &str,
        mut each: impl FnMut(&wire::Message, &Names),
    ) -> Result<()> {
        let socket = net::query_socket(self.opts.interface)?;
        let query = wire::query(rand::random(), &[(qname, wire::TYPE_PTR)]).map_err(|e| {
            Error::internal_server_error(
                ERROR_ID,
                format!("cannot build a query for `{qname}`: {e}"),
            )
        })?;
        self.send(&socket, &query, self.group).await?;
        let deadline = Instant::now() + self.opts.lookup_timeout;
        let mut buf = vec![0u8; MAX_PACKET];
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let (len, from) = match received {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "mdns: lookup receive failed");
                    continue;
                }
            };
            if !self.accepts(from) {
                continue;
            }
            match wire::parse(&buf[..len]) {
                Ok(msg) if msg.response => each(&msg, &self.names),
                Ok(_) => {}
                Err(e) => tracing::debug!(%from, error = %e, "mdns: skipping a malformed packet"),
            }
        }
        Ok(())
    }

    /// The registry's task: answers queries, follows announcements, refreshes and expires the
    /// view. Ends when the registry is dropped (the task is aborted).
    async fn run(self: Arc<Self>) {
        let mut group_buf = vec![0u8; MAX_PACKET];
        let mut refresh_buf = vec![0u8; MAX_PACKET];
        loop {
            let wake = self.view().wake().unwrap_or_else(|| Instant::now() + IDLE);
            tokio::select! {
                got = self.socket.recv_from(&mut group_buf) => match got {
                    Ok((len, from)) => self.on_group_packet(&group_buf[..len], from).await,
                    Err(e) => self.on_receive_error(&e).await,
                },
                got = self.refresh.recv_from(&mut refresh_buf) => match got {
                    Ok((len, from)) => self.on_refresh_answer(&refresh_buf[..len], from),
                    Err(e) => self.on_receive_error(&e).await,
                },
                () = tokio::time::sleep_until(wake) => self.sweep().await,
            }
        }
    }

    async fn on_receive_error(&self, e: &std::io::Error) {
        tracing::debug!(error = %e, "mdns: receive failed");
        // Do not spin on an error that repeats.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// A packet on the mDNS port: a query to answer, or an announcement to follow.
    async fn on_group_packet(&self, packet: &[u8], from: SocketAddr) {
        if !self.accepts(from) {
            tracing::debug!(%from, "mdns: ignoring a packet from off the loopback interface");
            return;
        }
        let msg = match wire::parse(packet) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(%from, error = %e, "mdns: skipping a malformed packet");
                return;
            }
        };
        if msg.opcode != 0 || msg.rcode != 0 {
            return;
        }
        if msg.response {
            // Unsolicited (id 0, no question): someone announcing or saying goodbye.
            let source = if msg.id == 0 && msg.questions.is_empty() {
                Source::Announcement
            } else {
                Source::Answer
            };
            self.follow(&msg, source);
            return;
        }
        // A querier on the mDNS port itself is a full mDNS querier: answer it on the group
        // unless it asked for unicast; so is one without a source address. Anyone else
        // (go-micro's client, our lookups) is answered directly, with its id, as go-micro's
        // server does. Every answer echoes its question: go-micro's client drops answers
        // without it.
        let mut replies = Vec::new();
        let mut to_group = Vec::new();
        {
            let zone = self.zone();
            let no_source = from.ip().is_unspecified();
            let full_querier = from.port() == self.opts.port;
            for q in &msg.questions {
                if no_source || (full_querier && !q.unicast) {
                    zone.answer(q, 0, &mut to_group);
                } else {
                    zone.answer(q, msg.id, &mut replies);
                }
            }
        }
        for (packets, to) in [(replies, from), (to_group, self.group)] {
            for packet in packets {
                if let Err(e) = self.send(&self.socket, &packet, to).await {
                    tracing::debug!(error = %e, "mdns: cannot send an answer");
                }
            }
        }
    }

    /// An answer to one of the view's refresh queries.
    fn on_refresh_answer(&self, packet: &[u8], from: SocketAddr) {
        if !self.accepts(from) {
            return;
        }
        match wire::parse(packet) {
            Ok(msg) if msg.response => self.follow(&msg, Source::Answer),
            Ok(_) => {}
            Err(e) => tracing::debug!(%from, error = %e, "mdns: skipping a malformed packet"),
        }
    }

    /// Takes the nodes a response describes into the view and tells watchers what changed.
    fn follow(&self, msg: &wire::Message, source: Source) {
        let sightings = view::sightings(msg, &self.names);
        if sightings.is_empty() {
            return;
        }
        let now = Instant::now();
        let changes: Vec<Change> = {
            let mut view = self.view();
            sightings
                .into_iter()
                .filter_map(|s| view.observe(s, source, now))
                .collect()
        };
        for change in changes {
            // No receivers is fine: nobody is watching.
            let _ = self.changes.send(change);
        }
    }

    /// Expires nodes whose TTL ran out and asks again for those close to it.
    async fn sweep(&self) {
        let mut refresh = Vec::new();
        let gone = self.view().sweep(Instant::now(), &mut refresh);
        for change in gone {
            let _ = self.changes.send(change);
        }
        for instance in refresh {
            match wire::query(0, &[(&instance, wire::TYPE_ANY)]) {
                Ok(query) => {
                    if let Err(e) = self.send(&self.refresh, &query, self.group).await {
                        tracing::debug!(error = %e, "mdns: cannot send a refresh query");
                    }
                }
                Err(e) => {
                    tracing::debug!(%instance, error = %e, "mdns: cannot build a refresh query")
                }
            }
        }
    }
}

/// Fuzzing: one packet as the mDNS socket receives it, parsed and read for services and
/// listings (see `fuzz/`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_packet(data: &[u8]) {
    let Ok(names) = zone::Names::new("micro") else {
        return;
    };
    if let Ok(msg) = wire::parse(data) {
        let _ = view::sightings(&msg, &names);
        let mut out = Vec::new();
        view::listed(&msg, &names, &mut out);
    }
}

/// Fuzzing: go-micro's TXT strings, joined as a record carries them.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_txt(data: &[u8]) {
    let _ = txt::decode(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ttl_rounds_up_and_defaults_to_120() {
        assert_eq!(record_ttl(Duration::ZERO), 120);
        assert_eq!(record_ttl(Duration::from_millis(1)), 1);
        assert_eq!(record_ttl(Duration::from_millis(1500)), 2);
        assert_eq!(record_ttl(Duration::from_secs(90)), 90);
        assert_eq!(record_ttl(Duration::MAX), i32::MAX as u32);
    }

    #[test]
    fn options_default_to_loopback_and_go_micro_values() {
        let opts = MdnsOptions::default();
        assert_eq!(opts.domain, "micro");
        assert_eq!(opts.interface, Ipv4Addr::LOCALHOST);
        assert_eq!(opts.port, 5353);
        assert_eq!(opts.lookup_timeout, Duration::from_millis(100));
    }

    #[test]
    fn needs_a_runtime() {
        let err = MdnsRegistry::new(MdnsOptions::default()).expect_err("no runtime");
        assert!(err.detail.contains("tokio runtime"), "{err}");
    }
}
