//! The etcd registry (feature `etcd`): go-micro's etcd plugin over etcd's v3 API.
//!
//! Wire format, as go-micro v2+ reads and writes it:
//!
//! - one key per node, `/micro/registry/<service>/<node id>` (a `/` inside the service name or
//!   the node id is written as `-`), whose value is the JSON of a [`Service`] holding that one
//!   node (name, version, metadata, endpoints, `nodes: [node]`);
//! - the key is attached to a lease of `ttl` seconds (rounded up to whole seconds; etcd itself
//!   raises TTLs below its minimum, 2 s with the default election timeout). A registration
//!   with a zero TTL has no lease and lives until deregistered.
//!
//! Heartbeats are go-micro's: registering a node again sends one keep-alive on the lease
//! registered last. If the record is unchanged and the lease is alive, that is all (after a
//! count-only read that the key is still there: unlike go-micro, a key deleted behind our
//! back is written again); if etcd no longer knows the lease (it expired, was revoked, or etcd restarted empty) a new lease is
//! granted and the record written again under it; if the record changed, it is written again
//! (under the same lease when the TTL did not change). No background task keeps leases alive:
//! a process that stops heartbeating (crashed, or dropped its registry) loses its nodes
//! within the TTL, as with go-micro.
//!
//! Reads use a prefix get on `/micro/registry/<service>/` (`get_service`, grouped by version)
//! or `/micro/registry/` (`list_services`, grouped by name and version, with nodes). Watches
//! are etcd watches on the same prefixes with previous values, so a delete (or a lease
//! expiry) reports the node that went away; a put is a [`Action::Create`] when it created the
//! key, an [`Action::Update`] otherwise. A watch whose stream breaks (etcd restarted, the
//! connection dropped) re-establishes itself with backoff (100 ms doubling to 5 s) and resumes
//! from the revision after the last one it saw, so no change is lost across an etcd restart
//! that keeps its data. When changes cannot be replayed, the watch yields one `Err` saying so
//! (the reader should read the registry again) and goes on with every change after that
//! point: if the revisions were compacted, from the compaction revision; if etcd came back
//! without its data (its revision or raft term went backwards), from the new store's first
//! revision (the nodes it lost are not reported one by one).
//!
//! Addresses and credentials (see [`EtcdOptions::from_address`]): `--registry_address` is a
//! comma-separated list of endpoints, `host[:port]` (port 2379 when absent) with an optional
//! `http://` or `https://` scheme and optional `user:password@`; empty means
//! `127.0.0.1:2379`. Without userinfo the credentials come from `ETCD_USERNAME` and
//! `ETCD_PASSWORD`. `https://` endpoints use TLS (rustls with ring) trusting the system's
//! roots plus, when `ETCD_CACERT` names a PEM file, that CA.
//!
//! Connecting is lazy: [`EtcdRegistry::new`] never blocks or fails because etcd is down; the
//! first call that needs etcd connects, and a failed call is an [`Error`] naming the plugin
//! and the endpoints (503 when etcd cannot be reached, 408 on a timeout).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tonic::{Code, Status};

use super::{
    Action, Change, Node, RegisterOptions, Registry, Service, WatchOptions, Watcher, group,
    with_default_port,
};
use crate::config::Options;
use crate::{Error, Result};

mod api;

use api::{Client, WatchStream, pb};

/// The id of errors raised by this registry.
/// How many times a deregistration is sent when members are unreachable.
const DEREGISTER_TRIES: u32 = 4;

const ERROR_ID: &str = "go.micro.registry";

/// go-micro's key prefix: every node lives at `/micro/registry/<service>/<node id>`.
pub const PREFIX: &str = "/micro/registry/";

/// The endpoint used when none is configured.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

/// etcd's client port, added to endpoints given without one.
const DEFAULT_PORT: u16 = 2379;

/// First and longest wait before re-establishing a broken watch.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(100);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How to reach etcd.
#[derive(Clone)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// Endpoints, each `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// User name for etcd's authentication, if it is enabled.
    pub username: Option<String>,
    /// Password of [`username`](Self::username).
    pub password: Option<String>,
    /// Deadline of each request (and of connecting, at most 2 s of it). Default 5 s, as
    /// go-micro's.
    pub timeout: Duration,
    /// A PEM file of a CA to trust for `https://` endpoints, besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec![format!("http://{DEFAULT_ENDPOINT}")],
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl EtcdOptions {
    /// Options for a `--registry_address` value: comma-separated endpoints, each
    /// `[http://|https://][user:password@]host[:port]`; a missing port is 2379, a missing
    /// scheme `http://`; empty means `127.0.0.1:2379`. Userinfo in any endpoint gives the
    /// credentials. The environment is not read (see [`EtcdRegistry::from_config`]).
    pub fn from_address(address: &str) -> Result<Self> {
        let mut opts = Self {
            endpoints: Vec::new(),
            ..Self::default()
        };
        for item in address.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (scheme, rest) = if let Some(rest) = item.strip_prefix("http://") {
                ("http", rest)
            } else if let Some(rest) = item.strip_prefix("https://") {
                ("https", rest)
            } else if item.contains("://") {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!("etcd: endpoint `{item}` must use `http://` or `https://`"),
                ));
            } else {
                ("http", item)
            };
            let authority = rest.trim_end_matches('/');
            let host_port = match authority.rsplit_once('@') {
                Some((userinfo, host_port)) => {
                    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                    opts.username = Some(user.to_owned());
                    opts.password = Some(pass.to_owned());
                    host_port
                }
                None => authority,
            };
            if host_port.is_empty() || host_port.contains('/') {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!("etcd: endpoint `{item}` is not `host[:port]`"),
                ));
            }
            let Some(host_port) = with_default_port(host_port, DEFAULT_PORT) else {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!("etcd: endpoint `{item}` has an invalid port"),
                ));
            };
            opts.endpoints.push(format!("{scheme}://{host_port}"));
        }
        if opts.endpoints.is_empty() {
            opts.endpoints = Self::default().endpoints;
        }
        Ok(opts)
    }

    fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }
}

/// The etcd [`Registry`]. Clones share one connection and the registration state.
#[derive(Clone)]
pub struct EtcdRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    opts: EtcdOptions,
    /// The endpoints, joined, for error messages.
    label: String,
    client: tokio::sync::OnceCell<Client>,
    /// What this process wrote last, per node key.
    registered: Mutex<HashMap<String, Registered>>,
}

/// The last record written for a node, and its lease.
#[derive(Clone)]
struct Registered {
    value: String,
    ttl_secs: i64,
    /// 0: no lease.
    lease: i64,
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("endpoints", &self.inner.opts.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdRegistry {
    /// A registry reaching etcd as `opts` says. Does not connect: the first call does.
    pub fn new(opts: EtcdOptions) -> Result<Self> {
        if opts.endpoints.is_empty() {
            return Err(Error::bad_request(ERROR_ID, "etcd: no endpoint given"));
        }
        if let Some(bad) = opts
            .endpoints
            .iter()
            .find(|e| !e.starts_with("http://") && !e.starts_with("https://"))
        {
            return Err(Error::bad_request(
                ERROR_ID,
                format!("etcd: endpoint `{bad}` must start with `http://` or `https://`"),
            ));
        }
        if opts.uses_tls() && opts.endpoints.iter().any(|e| e.starts_with("http://")) {
            return Err(Error::bad_request(
                ERROR_ID,
                "etcd: endpoints mix `http://` and `https://`; use one scheme for all",
            ));
        }
        let label = opts.endpoints.join(",");
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                label,
                client: tokio::sync::OnceCell::new(),
                registered: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The registry `--registry_address` (see [`EtcdOptions::from_address`]) names, with
    /// `ETCD_USERNAME`/`ETCD_PASSWORD` as credentials when the address carries none and
    /// `ETCD_CACERT` as an extra CA for `https://` endpoints. Never blocks.
    pub fn from_config(options: &Options) -> Result<Self> {
        let mut opts = EtcdOptions::from_address(&options.registry_address)?;
        if opts.username.is_none()
            && let Ok(user) = std::env::var("ETCD_USERNAME")
            && !user.is_empty()
        {
            opts.username = Some(user);
            opts.password = Some(std::env::var("ETCD_PASSWORD").unwrap_or_default());
        }
        if let Some(ca) = std::env::var_os("ETCD_CACERT").filter(|v| !v.is_empty()) {
            opts.ca_file = Some(PathBuf::from(ca));
        }
        Self::new(opts)
    }

    /// The options this registry was built with.
    pub fn options(&self) -> &EtcdOptions {
        &self.inner.opts
    }
}

/// The key of a node: `/micro/registry/<service>/<node id>`, `/` in either written as `-`.
pub fn node_key(service: &str, node_id: &str) -> String {
    format!("{}{}/", PREFIX, escape(service)) + &escape(node_id)
}

/// The prefix of every node of a service: `/micro/registry/<service>/`.
pub fn service_prefix(service: &str) -> String {
    format!("{}{}/", PREFIX, escape(service))
}

fn escape(part: &str) -> String {
    part.replace('/', "-")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whole seconds of a TTL, rounded up; zero stays zero (no lease).
fn ttl_secs(ttl: Duration) -> i64 {
    if ttl.is_zero() {
        return 0;
    }
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A record's service, if it is one with a node (anything else under the prefix is skipped).
fn decode(value: &[u8]) -> Option<Service> {
    match serde_json::from_slice::<Service>(value) {
        Ok(s) if !s.nodes.is_empty() => Some(s),
        Ok(_) => {
            tracing::debug!("etcd: skipping a registry value without nodes");
            None
        }
        Err(err) => {
            tracing::debug!(error = %err, "etcd: skipping a registry value that is not a service");
            None
        }
    }
}

/// A service holding only the node a key names, for deletes whose value is gone.
fn from_key(key: &[u8]) -> Option<Service> {
    let key = std::str::from_utf8(key).ok()?.strip_prefix(PREFIX)?;
    let (name, id) = key.split_once('/')?;
    Some(Service {
        name: name.to_owned(),
        nodes: vec![Node {
            id: id.to_owned(),
            ..Node::default()
        }],
        ..Service::default()
    })
}

/// Whether a call failed because etcd does not know the lease.
fn lease_gone(status: &Status) -> bool {
    status.code() == Code::NotFound
}

impl Inner {
    /// An [`Error`] naming the plugin, the endpoints and what failed.
    fn error(&self, what: &str, status: &Status) -> Error {
        let detail = format!(
            "etcd at `{}`: cannot {what}: {}",
            self.label,
            status.message()
        );
        match status.code() {
            Code::Unavailable => Error::service_unavailable(ERROR_ID, detail),
            Code::DeadlineExceeded => Error::timeout(ERROR_ID, detail),
            Code::Unauthenticated => Error::unauthorized(ERROR_ID, detail),
            Code::PermissionDenied => Error::forbidden(ERROR_ID, detail),
            Code::InvalidArgument => Error::bad_request(ERROR_ID, detail),
            Code::NotFound => Error::not_found(ERROR_ID, detail),
            _ => Error::internal_server_error(ERROR_ID, detail),
        }
    }

    /// The connected client, connecting on first use.
    async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| async {
                let tls = if self.opts.uses_tls() {
                    let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
                    if let Some(path) = &self.opts.ca_file {
                        let pem = std::fs::read(path).map_err(|e| {
                            Error::bad_request(
                                ERROR_ID,
                                format!("etcd: cannot read the CA file `{}`: {e}", path.display()),
                            )
                        })?;
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    Some(tls)
                } else {
                    None
                };
                Client::connect(api::ConnectOptions {
                    endpoints: self.opts.endpoints.clone(),
                    timeout: self.opts.timeout,
                    credentials: self
                        .opts
                        .username
                        .clone()
                        .map(|user| (user, self.opts.password.clone().unwrap_or_default())),
                    tls,
                })
                .await
                .map_err(|e| self.error("connect", &e))
            })
            .await
            .cloned()
    }

    /// Sends one keep-alive for `lease`: `Ok(true)` if etcd renewed it, `Ok(false)` if etcd
    /// does not know it any more.
    async fn keep_alive_once(&self, client: &Client, lease: i64) -> Result<bool> {
        match client.lease_keep_alive_once(lease).await {
            Ok(renewed) => Ok(renewed),
            Err(err) if lease_gone(&err) => Ok(false),
            Err(err) => Err(self.error(&format!("keep lease {lease:x} alive"), &err)),
        }
    }

    async fn register_node(
        &self,
        client: &Client,
        service: &Service,
        node: &Node,
        ttl: i64,
    ) -> Result<()> {
        let key = node_key(&service.name, &node.id);
        let record = Service {
            name: service.name.clone(),
            version: service.version.clone(),
            metadata: service.metadata.clone(),
            endpoints: service.endpoints.clone(),
            nodes: vec![node.clone()],
        };
        let value = serde_json::to_string(&record).map_err(|e| {
            Error::internal_server_error(
                ERROR_ID,
                format!("etcd: cannot encode node `{}`: {e}", node.id),
            )
        })?;
        let what = || format!("register `{}` node `{}`", service.name, node.id);
        let known = lock(&self.registered).get(&key).cloned();

        // Renew the lease we wrote last, as go-micro's KeepAliveOnce does.
        let mut live_lease = 0;
        if let Some(known) = &known {
            if known.lease != 0 {
                if self.keep_alive_once(client, known.lease).await? {
                    live_lease = known.lease;
                } else {
                    tracing::info!(
                        service = %service.name, node = %node.id, lease = format_args!("{:x}", known.lease),
                        "etcd: lease gone; granting a new one and writing the node again"
                    );
                }
            }
            if known.value == value && known.ttl_secs == ttl && (ttl == 0 || live_lease != 0) {
                // Unchanged and the lease renewed: skip the write, unless the key itself was
                // deleted behind our back (go-micro would leave it missing).
                let rsp = client
                    .range(pb::RangeRequest {
                        key: key.clone().into_bytes(),
                        count_only: true,
                        ..pb::RangeRequest::default()
                    })
                    .await
                    .map_err(|e| self.error(&what(), &e))?;
                if rsp.count > 0 {
                    return Ok(());
                }
                tracing::info!(
                    service = %service.name, node = %node.id,
                    "etcd: node key gone while its lease lives; writing it again"
                );
            }
        }

        let lease = if ttl == 0 {
            0
        } else if live_lease != 0 && known.as_ref().is_some_and(|k| k.ttl_secs == ttl) {
            live_lease
        } else {
            client
                .lease_grant(ttl)
                .await
                .map_err(|e| self.error(&what(), &e))?
        };
        let rsp = client
            .put(key.as_bytes(), value.as_bytes(), lease)
            .await
            .map_err(|e| self.error(&what(), &e))?;
        tracing::debug!(
            service = %service.name, node = %node.id, lease = format_args!("{lease:x}"), ttl,
            "etcd: node written"
        );
        lock(&self.registered).insert(
            key,
            Registered {
                value,
                ttl_secs: ttl,
                lease,
            },
        );
        // The lease the key had before (ours from an earlier write, or another process's with
        // the same node id) now holds nothing: let it go rather than wait for its TTL.
        let old = rsp.prev_kv.map_or(0, |kv| kv.lease);
        if old != 0
            && old != lease
            && let Err(err) = client.lease_revoke(old).await
        {
            tracing::debug!(error = %err, lease = format_args!("{old:x}"), "etcd: revoking an old lease failed");
        }
        Ok(())
    }

    async fn deregister_node(&self, client: &Client, service: &Service, node: &Node) -> Result<()> {
        let key = node_key(&service.name, &node.id);
        let known = lock(&self.registered).remove(&key);
        // A member that just died can still take the first try (the channel learns it is
        // gone when a connection to it fails); the next tries go to the others. Found by the
        // fault suite: a stop right after the leader came back was seen only when the lease
        // ran out.
        let mut tries = 0;
        let rsp = loop {
            tries += 1;
            match client.delete(key.as_bytes()).await {
                Ok(rsp) => break rsp,
                Err(e) => {
                    let err = self.error(
                        &format!("deregister `{}` node `{}`", service.name, node.id),
                        &e,
                    );
                    if err.code != 503 || tries == DEREGISTER_TRIES {
                        return Err(err);
                    }
                    tracing::debug!(error = %err, tries, "etcd: deregistration failed, trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let lease = known
            .map(|k| k.lease)
            .filter(|l| *l != 0)
            .or_else(|| rsp.prev_kvs.first().map(|kv| kv.lease).filter(|l| *l != 0));
        if let Some(lease) = lease
            && let Err(err) = client.lease_revoke(lease).await
            && !lease_gone(&err)
        {
            tracing::debug!(error = %err, lease = format_args!("{lease:x}"), "etcd: revoking a lease failed");
        }
        Ok(())
    }

    /// Every record under `prefix`, decoded.
    async fn records(&self, prefix: &str, what: &str) -> Result<Vec<Service>> {
        let client = self.client().await?;
        let rsp = client
            .range(pb::RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: api::prefix_end(prefix.as_bytes()),
                serializable: true,
                ..pb::RangeRequest::default()
            })
            .await
            .map_err(|e| self.error(what, &e))?;
        Ok(rsp.kvs.iter().filter_map(|kv| decode(&kv.value)).collect())
    }
}

#[async_trait]
impl Registry for EtcdRegistry {
    fn name(&self) -> &str {
        "etcd"
    }

    /// Writes (or renews) one key per node under a lease of `opts.ttl`. Every node is tried;
    /// the last failure is returned.
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        if service.nodes.is_empty() {
            return Ok(());
        }
        let client = self.inner.client().await?;
        let ttl = ttl_secs(opts.ttl);
        let mut result = Ok(());
        for node in &service.nodes {
            if let Err(err) = self.inner.register_node(&client, service, node, ttl).await {
                result = Err(err);
            }
        }
        result
    }

    /// Deletes each node's key and revokes its lease. Unknown nodes are fine.
    async fn deregister(&self, service: &Service) -> Result<()> {
        if service.nodes.is_empty() {
            return Ok(());
        }
        let client = self.inner.client().await?;
        let mut result = Ok(());
        for node in &service.nodes {
            if let Err(err) = self.inner.deregister_node(&client, service, node).await {
                result = Err(err);
            }
        }
        result
    }

    /// Every version of the service, each with its nodes; `Ok(vec![])` when there are none.
    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let prefix = service_prefix(name);
        let records = self
            .inner
            .records(&prefix, &format!("get service `{name}`"))
            .await?;
        Ok(group(records))
    }

    /// Every version of every service, with nodes, sorted by name then version.
    async fn list_services(&self) -> Result<Vec<Service>> {
        Ok(group(self.inner.records(PREFIX, "list services").await?))
    }

    /// An etcd watch on the service's prefix (or every service's), established before this
    /// returns, so nothing written afterwards is missed.
    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let prefix = match &opts.service {
            Some(name) => service_prefix(name),
            None => PREFIX.to_owned(),
        };
        let client = self.inner.client().await?;
        let mut watch = EtcdWatch {
            inner: Arc::clone(&self.inner),
            client,
            prefix,
            stream: None,
            next_rev: 0,
            term: 0,
            pending: VecDeque::new(),
            backoff: None,
        };
        watch.establish().await?;
        Ok(futures::stream::unfold(watch, |mut w| async move {
            let item = w.next().await;
            Some((item, w))
        })
        .boxed())
    }
}

/// One watch: the etcd stream and what is needed to resume it.
struct EtcdWatch {
    inner: Arc<Inner>,
    client: Client,
    prefix: String,
    stream: Option<WatchStream>,
    /// The revision to resume from (one after the last seen); 0 = from now.
    next_rev: i64,
    /// The highest raft term seen: a lower one after a reconnect means etcd lost its data.
    term: u64,
    pending: VecDeque<Result<Change>>,
    backoff: Option<Duration>,
}

impl EtcdWatch {
    fn note_header(&mut self, header: Option<&pb::ResponseHeader>) {
        if let Some(h) = header {
            self.term = self.term.max(h.raft_term);
        }
    }

    /// The revisions to resume from are compacted away: tell the reader (once) and go on
    /// from the oldest revision etcd still has.
    fn compacted(&mut self, compact_revision: i64) {
        tracing::warn!(prefix = %self.prefix, compacted = compact_revision, "etcd: watch revision compacted; changes lost");
        self.pending.push_back(Err(Error::internal_server_error(
            ERROR_ID,
            format!(
                "etcd at `{}` compacted the changes after revision {} away (up to {compact_revision}); \
                 changes may have been missed: read the registry again",
                self.inner.label,
                self.next_rev - 1
            ),
        )));
        self.next_rev = compact_revision;
    }

    /// (Re-)creates the etcd watch, from `next_rev` when resuming.
    async fn establish(&mut self) -> Result<()> {
        let what = format!("watch `{}`", self.prefix);
        if self.next_rev > 0 {
            // Did etcd come back without its data? Then the old revisions mean nothing.
            let rsp = self
                .client
                .range(pb::RangeRequest {
                    key: self.prefix.as_bytes().to_vec(),
                    range_end: api::prefix_end(self.prefix.as_bytes()),
                    count_only: true,
                    ..pb::RangeRequest::default()
                })
                .await
                .map_err(|e| self.inner.error(&what, &e))?;
            let (rev, term) = rsp.header.map_or((0, 0), |h| (h.revision, h.raft_term));
            if rev < self.next_rev - 1 || term < self.term {
                tracing::warn!(
                    prefix = %self.prefix, last_revision = self.next_rev - 1, revision = rev,
                    "etcd: came back without its data; changes made meanwhile are lost"
                );
                self.pending.push_back(Err(Error::internal_server_error(
                    ERROR_ID,
                    format!(
                        "etcd at `{}` came back without its data (revision {} is now {rev}); \
                         the nodes it lost are not reported: read the registry again",
                        self.inner.label,
                        self.next_rev - 1
                    ),
                )));
                // Replay the new store from its start.
                self.next_rev = 1;
                self.term = term;
            }
        }
        let mut stream = self
            .client
            .watch_prefix(self.prefix.as_bytes(), self.next_rev)
            .await
            .map_err(|e| self.inner.error(&what, &e))?;
        match stream.message().await {
            Ok(Some(rsp)) if rsp.created && !rsp.canceled => {
                if self.next_rev == 0 {
                    self.next_rev = rsp.header.map_or(0, |h| h.revision) + 1;
                }
                self.note_header(rsp.header.as_ref());
                self.stream = Some(stream);
                Ok(())
            }
            Ok(Some(rsp)) if rsp.compact_revision > 0 => {
                self.compacted(rsp.compact_revision);
                Err(Error::internal_server_error(
                    ERROR_ID,
                    format!(
                        "etcd at `{}`: watch `{}` must start again from now",
                        self.inner.label, self.prefix
                    ),
                ))
            }
            Ok(Some(rsp)) => Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "etcd at `{}`: watch `{}` was refused: {}",
                    self.inner.label, self.prefix, rsp.cancel_reason
                ),
            )),
            Ok(None) => Err(Error::service_unavailable(
                ERROR_ID,
                format!(
                    "etcd at `{}`: watch `{}` closed as it opened",
                    self.inner.label, self.prefix
                ),
            )),
            Err(e) => Err(self.inner.error(&what, &e)),
        }
    }

    /// The next change (or error); re-establishes the watch as often as needed.
    async fn next(&mut self) -> Result<Change> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            let Some(stream) = self.stream.as_mut() else {
                let delay = self
                    .backoff
                    .map_or(WATCH_BACKOFF_MIN, |d| (d * 2).min(WATCH_BACKOFF_MAX));
                self.backoff = Some(delay);
                tokio::time::sleep(delay).await;
                match self.establish().await {
                    Ok(()) => {
                        self.backoff = None;
                        tracing::info!(prefix = %self.prefix, revision = self.next_rev, "etcd: watch re-established");
                    }
                    Err(err) => {
                        tracing::debug!(prefix = %self.prefix, error = %err, ?delay, "etcd: watch not re-established yet");
                    }
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(rsp)) => {
                    if rsp.canceled {
                        self.stream = None;
                        if rsp.compact_revision > 0 {
                            self.compacted(rsp.compact_revision);
                        } else {
                            tracing::warn!(prefix = %self.prefix, reason = rsp.cancel_reason, "etcd: watch cancelled; re-establishing");
                        }
                        continue;
                    }
                    self.note_header(rsp.header.as_ref());
                    for event in &rsp.events {
                        let Some(kv) = &event.kv else { continue };
                        self.next_rev = self.next_rev.max(kv.mod_revision + 1);
                        let (action, service) = match event.r#type {
                            pb::PUT => {
                                let action = if kv.create_revision == kv.mod_revision {
                                    Action::Create
                                } else {
                                    Action::Update
                                };
                                (action, decode(&kv.value))
                            }
                            pb::DELETE => (
                                Action::Delete,
                                event
                                    .prev_kv
                                    .as_ref()
                                    .and_then(|prev| decode(&prev.value))
                                    .or_else(|| from_key(&kv.key)),
                            ),
                            other => {
                                tracing::debug!(
                                    event_type = other,
                                    "etcd: skipping an unknown event type"
                                );
                                continue;
                            }
                        };
                        if let Some(service) = service {
                            self.pending.push_back(Ok(Change { action, service }));
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!(prefix = %self.prefix, "etcd: watch stream ended; re-establishing");
                    self.stream = None;
                }
                Err(err) => {
                    tracing::warn!(prefix = %self.prefix, error = %err, "etcd: watch stream lost; re-establishing");
                    self.stream = None;
                }
            }
        }
    }
}

/// Fuzzing: a value under the registry's prefix, as a range or a watch hands it over.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_value(data: &[u8]) {
    let _ = decode(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_go_micros() {
        assert_eq!(
            node_key("go.micro.srv.student", "go.micro.srv.student-1"),
            "/micro/registry/go.micro.srv.student/go.micro.srv.student-1"
        );
        assert_eq!(node_key("a/b", "c/d"), "/micro/registry/a-b/c-d");
        assert_eq!(service_prefix("a/b"), "/micro/registry/a-b/");
    }

    #[test]
    fn addresses_parse_with_defaults_schemes_and_userinfo() {
        let o = EtcdOptions::from_address("").expect("empty");
        assert_eq!(o.endpoints, ["http://127.0.0.1:2379"]);
        assert!(o.username.is_none());

        let o =
            EtcdOptions::from_address(" 10.0.0.1 , http://h:23790,[::1]:7,[::2] ").expect("list");
        assert_eq!(
            o.endpoints,
            [
                "http://10.0.0.1:2379",
                "http://h:23790",
                "http://[::1]:7",
                "http://[::2]:2379"
            ]
        );

        let o = EtcdOptions::from_address("https://root:s3cr:et@etcd.local").expect("userinfo");
        assert_eq!(o.endpoints, ["https://etcd.local:2379"]);
        assert_eq!(o.username.as_deref(), Some("root"));
        assert_eq!(o.password.as_deref(), Some("s3cr:et"));
        assert!(o.uses_tls());
        assert!(
            !format!("{o:?}").contains("s3cr"),
            "password is not printed"
        );
    }

    #[test]
    fn bad_addresses_are_errors_naming_the_endpoint() {
        for bad in ["tcp://h:1", "h:port", "http://h:1/path"] {
            let err = EtcdOptions::from_address(bad).expect_err(bad);
            assert_eq!(err.code, 400);
            assert!(err.detail.contains(bad), "{}", err.detail);
        }
        let mixed = EtcdOptions::from_address("http://a:1,https://b:2").expect("parses");
        let err = EtcdRegistry::new(mixed).expect_err("mixed schemes");
        assert!(err.detail.contains("mix"), "{}", err.detail);
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::ZERO), 0);
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(90)), 90);
    }

    #[test]
    fn records_group_by_name_and_version() {
        let rec = |name: &str, version: &str, id: &str| Service {
            name: name.into(),
            version: version.into(),
            nodes: vec![Node {
                id: id.into(),
                ..Node::default()
            }],
            ..Service::default()
        };
        let grouped = group(vec![
            rec("b", "v1", "b1"),
            rec("a", "v2", "a3"),
            rec("a", "v1", "a1"),
            rec("a", "v1", "a2"),
        ]);
        let shape: Vec<(&str, &str, Vec<&str>)> = grouped
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.version.as_str(),
                    s.nodes.iter().map(|n| n.id.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a", "v1", vec!["a1", "a2"]),
                ("a", "v2", vec!["a3"]),
                ("b", "v1", vec!["b1"])
            ]
        );
    }

    #[test]
    fn values_that_are_not_services_with_a_node_are_skipped() {
        assert!(decode(b"{}").is_none());
        assert!(decode(br#"{"name":"s","nodes":[]}"#).is_none());
        assert!(decode(b"not json").is_none());
    }

    #[test]
    fn deletes_without_a_value_name_the_node_from_the_key() {
        let s = from_key(b"/micro/registry/svc/svc-1").expect("a node key");
        assert_eq!(s.name, "svc");
        assert_eq!(s.nodes[0].id, "svc-1");
        assert!(from_key(b"/other/svc/svc-1").is_none());
    }

    #[test]
    fn reads_a_go_micro_record() {
        let json = br#"{"name":"go.micro.srv.greeter","version":"latest","metadata":null,
            "endpoints":[{"name":"Say.Hello","request":{"name":"Request","type":"Request","values":null},
            "response":null,"metadata":{"stream":"false"}}],
            "nodes":[{"id":"go.micro.srv.greeter-1","address":"10.0.0.2:4000","metadata":{"protocol":"mucp"}}]}"#;
        let s = decode(json).expect("decodes");
        assert_eq!(s.nodes[0].address, "10.0.0.2:4000");
        assert_eq!(s.endpoints[0].name, "Say.Hello");
    }
}
