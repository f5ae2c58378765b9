//! The ZooKeeper registry (feature `zookeeper`): go-micro's zookeeper plugin (go-plugins,
//! `registry/zookeeper`), on [zookeeper-client] (pure Rust).
//!
//! Wire, as go-micro's plugin reads and writes it:
//!
//! - one znode per node, `/micro-registry/<service>/<node id>` (a `/` inside the service name
//!   or the node id is written as `-`), holding the JSON of a [`Service`] with that one node;
//!   ACL `world:anyone` with every permission; the service's znode is a plain persistent znode
//!   with no data;
//! - reads list the children of `/micro-registry/<service>` (or of `/micro-registry`) and read
//!   each child, skipping any that has children of its own, grouping nodes by version.
//!
//! Unlike go-micro, whose node znodes are persistent (a crashed service stays registered until
//! someone deletes it), rmicro writes them **ephemeral**, owned by a session whose timeout is
//! the registration TTL (`--register_ttl`): when the process dies, or hangs long enough for the session to
//! expire, ZooKeeper deletes its nodes (go-micro readers see no difference). The server bounds
//! the timeout to between 2 and 20 of its ticks (4–40 s with the default `tickTime=2000`).
//!
//! Heartbeats check that each node's znode exists and is owned by the live session; a node
//! whose znode is gone or owned by another session (an expired one of ours, or a go-micro
//! process's persistent znode with the same id) is written again. When the session expires
//! (ZooKeeper was unreachable for longer than the timeout, or restarted without its data), the
//! next call opens a new session, so the heartbeat registers the nodes again within one
//! interval.
//!
//! Watches are persistent recursive watches (ZooKeeper 3.6 and later) on the service's znode or
//! on `/micro-registry`, reporting `Create`, `Update` and `Delete` per node with the node's
//! record (a delete carries the record last seen). After a reconnection, when events may have
//! been lost, and after a session expiry, the watch reads the tree again and reports the
//! difference, so no change is missed.
//!
//! `--registry_address`: comma-separated `host:port` (port 2181 when absent); default
//! `127.0.0.1:2181`. No authentication (go-micro's plugin has none).
//!
//! [zookeeper-client]: https://docs.rs/zookeeper-client

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, EventType, PersistentWatcher, SessionState,
};

use super::{
    Action, Change, Node, RegisterOptions, Registry, Service, WatchOptions, Watcher, group,
    with_default_port,
};
use crate::config::Options;
use crate::{Error, Result};

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// go-micro's root znode.
pub const PREFIX: &str = "/micro-registry";

/// The address used when none is configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:2181";

/// The session timeout asked for before any registration sets one from its TTL.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// First and longest wait before a broken watch tries again.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(100);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How to reach ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZookeeperOptions {
    /// The servers, `host:port` each.
    pub servers: Vec<String>,
    /// How long connecting may take before a call fails. Default 5 s.
    pub connect_timeout: Duration,
    /// The session timeout to ask for, which is how long after the process stops (or loses
    /// ZooKeeper) its nodes go. `None` (the default): the TTL of the first registration.
    /// [`ZookeeperRegistry::from_config`] sets the service's `--register_ttl`.
    pub session_timeout: Option<Duration>,
}

impl Default for ZookeeperOptions {
    fn default() -> Self {
        Self {
            servers: vec![DEFAULT_ADDRESS.to_owned()],
            connect_timeout: Duration::from_secs(5),
            session_timeout: None,
        }
    }
}

impl ZookeeperOptions {
    /// Options for a `--registry_address` value: comma-separated `host[:port]` (port 2181
    /// when absent); empty means `127.0.0.1:2181`.
    pub fn from_address(address: &str) -> Result<Self> {
        let mut servers = Vec::new();
        for item in address.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let item = item.strip_prefix("zk://").unwrap_or(item);
            if item.contains("://") || item.contains('/') || item.contains('@') {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!("zookeeper: server `{item}` is not `host[:port]`"),
                ));
            }
            let Some(server) = with_default_port(item, 2181) else {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!("zookeeper: server `{item}` has an invalid port"),
                ));
            };
            servers.push(server);
        }
        if servers.is_empty() {
            servers.push(DEFAULT_ADDRESS.to_owned());
        }
        Ok(Self {
            servers,
            ..Self::default()
        })
    }
}

/// The ZooKeeper [`Registry`]; see the [module docs](self). Clones share one session and the
/// registration state.
#[derive(Clone)]
pub struct ZookeeperRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ZookeeperOptions,
    /// The servers joined, as ZooKeeper's connection string and for messages.
    cluster: String,
    session: tokio::sync::Mutex<Option<Session>>,
    /// Since when the session has been seen disconnected, if it is.
    disconnected_since: Mutex<Option<Instant>>,
    /// What this process wrote last, per node znode.
    registered: Mutex<HashMap<String, Vec<u8>>>,
}

/// A live ZooKeeper session and the timeout asked for it.
struct Session {
    client: Client,
    asked: Duration,
}

impl fmt::Debug for ZookeeperRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZookeeperRegistry")
            .field("servers", &self.inner.opts.servers)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The znode of a node: `/micro-registry/<service>/<node id>`, `/` in either written as `-`.
pub fn node_path(service: &str, node_id: &str) -> String {
    format!("{}/{}", service_path(service), node_id.replace('/', "-"))
}

/// The znode of a service: `/micro-registry/<service>`.
pub fn service_path(service: &str) -> String {
    format!("{PREFIX}/{}", service.replace('/', "-"))
}

/// Whether `path` is a node's znode (`/micro-registry/<service>/<node>`).
fn is_node_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| matches!(rest.split('/').count(), 2) && !rest.ends_with('/'))
}

/// Whether a session can still be used.
fn alive(state: SessionState) -> bool {
    !matches!(
        state,
        SessionState::Expired | SessionState::Closed | SessionState::AuthFailed
    )
}

/// A record's service, if it is one with a node.
fn decode(data: &[u8]) -> Option<Service> {
    match serde_json::from_slice::<Service>(data) {
        Ok(s) if !s.nodes.is_empty() => Some(s),
        Ok(_) => None,
        Err(err) => {
            tracing::debug!(error = %err, "zookeeper: skipping a znode that is not a service");
            None
        }
    }
}

/// A service holding only the node a path names, for deletes of znodes never read.
fn from_path(path: &str) -> Option<Service> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (name, id) = rest.split_once('/')?;
    Some(Service {
        name: name.to_owned(),
        nodes: vec![Node {
            id: id.to_owned(),
            ..Node::default()
        }],
        ..Service::default()
    })
}

impl ZookeeperRegistry {
    /// A registry for the servers in `opts`. Connects nothing yet: the first call does.
    pub fn new(opts: ZookeeperOptions) -> Result<Self> {
        if opts.servers.is_empty() {
            return Err(Error::bad_request(ERROR_ID, "zookeeper: no server given"));
        }
        let cluster = opts.servers.join(",");
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                cluster,
                session: tokio::sync::Mutex::new(None),
                disconnected_since: Mutex::new(None),
                registered: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The registry `--registry=zookeeper --registry_address=...` names, its session timeout
    /// the service's `--register_ttl` (whatever registers first: a service, or its http
    /// broker's subscriber nodes).
    pub fn from_config(options: &Options) -> Result<Self> {
        let mut opts = ZookeeperOptions::from_address(&options.registry_address)?;
        opts.session_timeout = (!options.register_ttl.is_zero()).then_some(options.register_ttl);
        Self::new(opts)
    }
}

impl Inner {
    fn error(&self, what: &str, err: &zookeeper_client::Error) -> Error {
        use zookeeper_client::Error as Z;
        let detail = format!("zookeeper at `{}`: cannot {what}: {err}", self.cluster);
        match err {
            Z::ConnectionLoss | Z::NoHosts | Z::SessionExpired | Z::ClientClosed => {
                Error::service_unavailable(ERROR_ID, detail)
            }
            Z::Timeout => Error::timeout(ERROR_ID, detail),
            Z::NoAuth | Z::AuthFailed => Error::forbidden(ERROR_ID, detail),
            Z::BadArguments(_) | Z::InvalidAcl => Error::bad_request(ERROR_ID, detail),
            _ => Error::internal_server_error(ERROR_ID, detail),
        }
    }

    /// The live session, opening one when there is none (or it ended). `want` is the timeout a
    /// registration asks for: a session with another timeout is replaced while it owns no
    /// node.
    async fn client(&self, want: Option<Duration>) -> Result<Client> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref()
            && alive(s.client.state())
            && !self.stale(s)
            && (want.is_none_or(|w| w == s.asked) || !lock(&self.registered).is_empty())
        {
            return Ok(s.client.clone());
        }
        *lock(&self.disconnected_since) = None;
        let asked = want
            .or(self.opts.session_timeout)
            .unwrap_or(DEFAULT_SESSION_TIMEOUT);
        let connect = Client::connector()
            .with_session_timeout(asked)
            .with_connection_timeout(self.opts.connect_timeout.min(asked))
            .connect(&self.cluster);
        let client = match tokio::time::timeout(self.opts.connect_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => return Err(self.error("connect", &err)),
            Err(_) => {
                return Err(Error::service_unavailable(
                    ERROR_ID,
                    format!(
                        "zookeeper at `{}`: cannot connect within {:?}",
                        self.cluster, self.opts.connect_timeout
                    ),
                ));
            }
        };
        tracing::debug!(
            cluster = %self.cluster, session = %client.session_id(),
            timeout = ?client.session_timeout(), "zookeeper: session opened"
        );
        *session = Some(Session {
            client: client.clone(),
            asked,
        });
        Ok(client)
    }

    /// Whether the session has been disconnected for long enough to give it up: a server that
    /// came back without its data never takes the session back (it refuses a client that has
    /// seen later transactions than its own), and the client would keep trying until the
    /// session times out. A new session writes the nodes again; the old one, if the server
    /// still knows it, expires harmlessly (its znodes are replaced by then).
    fn stale(&self, session: &Session) -> bool {
        let mut since = lock(&self.disconnected_since);
        if session.client.state() == SessionState::Disconnected {
            let grace = (session.asked / 3).min(Duration::from_secs(2));
            since.get_or_insert_with(Instant::now).elapsed() > grace
        } else {
            *since = None;
            false
        }
    }

    /// Writes one node's znode (ephemeral, owned by `client`'s session) unless it is there,
    /// ours and unchanged.
    async fn register_node(&self, client: &Client, service: &Service, node: &Node) -> Result<()> {
        let path = node_path(&service.name, &node.id);
        let record = Service {
            nodes: vec![node.clone()],
            ..service.clone()
        };
        let data = serde_json::to_vec(&record).map_err(|e| {
            Error::internal_server_error(ERROR_ID, format!("zookeeper: cannot encode: {e}"))
        })?;
        let what = || format!("register `{}` node `{}`", service.name, node.id);
        let ours = client.session_id().0;
        let stat = client
            .check_stat(&path)
            .await
            .map_err(|e| self.error(&what(), &e))?;
        match stat {
            Some(stat) if stat.ephemeral_owner == ours => {
                if lock(&self.registered).get(&path) != Some(&data) {
                    client
                        .set_data(&path, &data, None)
                        .await
                        .map_err(|e| self.error(&what(), &e))?;
                }
            }
            other => {
                if let Some(stat) = other {
                    // Another session's (an expired one of ours, or a go-micro process's
                    // persistent znode with this id): replace it with ours.
                    match client.delete(&path, Some(stat.version)).await {
                        Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                        Err(e) => return Err(self.error(&what(), &e)),
                    }
                }
                let dir = CreateMode::Persistent.with_acls(Acls::anyone_all());
                client
                    .mkdir(&service_path(&service.name), &dir)
                    .await
                    .map_err(|e| self.error(&what(), &e))?;
                let leaf = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
                match client.create(&path, &data, &leaf).await {
                    Ok(_) => {}
                    // Written meanwhile by a concurrent heartbeat of this session.
                    Err(zookeeper_client::Error::NodeExists) => {
                        client
                            .set_data(&path, &data, None)
                            .await
                            .map_err(|e| self.error(&what(), &e))?;
                    }
                    Err(e) => return Err(self.error(&what(), &e)),
                }
                tracing::debug!(service = %service.name, node = %node.id, "zookeeper: node written");
            }
        }
        lock(&self.registered).insert(path, data);
        Ok(())
    }

    /// Every record under `path`'s children (a service's znode) or grandchildren (the root).
    async fn records(&self, client: &Client, service: Option<&str>) -> Result<Vec<Service>> {
        let what = service.map_or_else(
            || "list services".to_owned(),
            |name| format!("get service `{name}`"),
        );
        let services = match service {
            Some(name) => vec![service_path(name)],
            None => match client.list_children(PREFIX).await {
                Ok(children) => children.iter().map(|c| format!("{PREFIX}/{c}")).collect(),
                Err(zookeeper_client::Error::NoNode) => return Ok(Vec::new()),
                Err(e) => return Err(self.error(&what, &e)),
            },
        };
        let mut records = Vec::new();
        for dir in services {
            let children = match client.list_children(&dir).await {
                Ok(children) => children,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(self.error(&what, &e)),
            };
            for child in children {
                match client.get_data(&format!("{dir}/{child}")).await {
                    // go-micro skips a child that has children: it is not a node.
                    Ok((_, stat)) if stat.num_children > 0 => {}
                    Ok((data, _)) => records.extend(decode(&data)),
                    // Deleted between the listing and the read.
                    Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(self.error(&what, &e)),
                }
            }
        }
        Ok(records)
    }

    /// Every node znode under `scope` with its data.
    async fn snapshot(
        &self,
        client: &Client,
        service: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let records = self.records(client, service).await?;
        let mut map = BTreeMap::new();
        for record in records {
            for node in &record.nodes {
                let one = Service {
                    nodes: vec![node.clone()],
                    ..record.clone()
                };
                if let Ok(data) = serde_json::to_vec(&one) {
                    map.insert(node_path(&record.name, &node.id), data);
                }
            }
        }
        Ok(map)
    }
}

#[async_trait]
impl Registry for ZookeeperRegistry {
    fn name(&self) -> &str {
        "zookeeper"
    }

    /// Writes each node's ephemeral znode, in a session whose timeout is `opts.ttl` (the
    /// default session timeout when it is zero). Every node is tried; the last failure is
    /// returned.
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        if service.nodes.is_empty() {
            return Ok(());
        }
        let want = self
            .inner
            .opts
            .session_timeout
            .or((!opts.ttl.is_zero()).then_some(opts.ttl));
        let mut result = Ok(());
        for node in &service.nodes {
            let client = self.inner.client(want).await?;
            if let Err(err) = self.inner.register_node(&client, service, node).await {
                result = Err(err);
            }
        }
        result
    }

    /// Deletes each node's znode (a missing one is fine); the service's znode stays, as with
    /// go-micro.
    async fn deregister(&self, service: &Service) -> Result<()> {
        if service.nodes.is_empty() {
            return Ok(());
        }
        let client = self.inner.client(None).await?;
        let mut result = Ok(());
        for node in &service.nodes {
            let path = node_path(&service.name, &node.id);
            lock(&self.inner.registered).remove(&path);
            match client.delete(&path, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => {
                    result = Err(self.inner.error(
                        &format!("deregister `{}` node `{}`", service.name, node.id),
                        &e,
                    ));
                }
            }
        }
        result
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let client = self.inner.client(None).await?;
        Ok(group(self.inner.records(&client, Some(name)).await?))
    }

    /// Every version of every service, with nodes, sorted by name then version.
    async fn list_services(&self) -> Result<Vec<Service>> {
        let client = self.inner.client(None).await?;
        Ok(group(self.inner.records(&client, None).await?))
    }

    /// A persistent recursive watch on the service's znode (or the root), established before
    /// this returns.
    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let mut watch = ZkWatch {
            inner: Arc::clone(&self.inner),
            service: opts.service,
            watcher: None,
            seen: BTreeMap::new(),
            pending: VecDeque::new(),
            backoff: None,
        };
        watch.establish(false).await?;
        Ok(futures::stream::unfold(watch, |mut w| async move {
            let item = w.next().await;
            Some((item, w))
        })
        .boxed())
    }
}

/// One watch: ZooKeeper's watcher and what it has reported, to tell creates from updates,
/// to give deletes their record, and to report what a lost connection hid.
struct ZkWatch {
    inner: Arc<Inner>,
    service: Option<String>,
    watcher: Option<PersistentWatcher>,
    /// Node znode -> its data, as last reported.
    seen: BTreeMap<String, Vec<u8>>,
    pending: VecDeque<Result<Change>>,
    backoff: Option<Duration>,
}

impl ZkWatch {
    fn scope(&self) -> String {
        self.service
            .as_deref()
            .map_or_else(|| PREFIX.to_owned(), service_path)
    }

    /// (Re-)creates the watcher, then reads the tree; with `report`, queues the difference
    /// from what was seen as changes.
    async fn establish(&mut self, report: bool) -> Result<()> {
        let client = self.inner.client(None).await?;
        let scope = self.scope();
        let watcher = client
            .watch(&scope, AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| self.inner.error(&format!("watch `{scope}`"), &e))?;
        let now = self
            .inner
            .snapshot(&client, self.service.as_deref())
            .await?;
        if report {
            for (path, data) in &now {
                match self.seen.get(path) {
                    Some(old) if old == data => {}
                    Some(_) => self.queue(Action::Update, data),
                    None => self.queue(Action::Create, data),
                }
            }
            let gone: Vec<_> = self
                .seen
                .iter()
                .filter(|(path, _)| !now.contains_key(*path))
                .map(|(path, data)| (path.clone(), data.clone()))
                .collect();
            for (path, data) in gone {
                self.queue_delete(&path, Some(&data));
            }
        }
        self.seen = now;
        self.watcher = Some(watcher);
        Ok(())
    }

    fn queue(&mut self, action: Action, data: &[u8]) {
        if let Some(service) = decode(data) {
            self.pending.push_back(Ok(Change { action, service }));
        }
    }

    fn queue_delete(&mut self, path: &str, data: Option<&[u8]>) {
        if let Some(service) = data.and_then(decode).or_else(|| from_path(path)) {
            self.pending.push_back(Ok(Change {
                action: Action::Delete,
                service,
            }));
        }
    }

    /// The next change; re-establishes the watch as often as needed.
    async fn next(&mut self) -> Result<Change> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            let Some(watcher) = self.watcher.as_mut() else {
                let delay = self
                    .backoff
                    .map_or(WATCH_BACKOFF_MIN, |d| (d * 2).min(WATCH_BACKOFF_MAX));
                self.backoff = Some(delay);
                tokio::time::sleep(delay).await;
                match self.establish(true).await {
                    Ok(()) => {
                        self.backoff = None;
                        tracing::info!(scope = %self.scope(), "zookeeper: watch re-established");
                    }
                    Err(err) => {
                        tracing::debug!(scope = %self.scope(), error = %err, ?delay, "zookeeper: watch not re-established yet");
                    }
                }
                continue;
            };
            let event = watcher.changed().await;
            match event.event_type {
                EventType::Session => match event.session_state {
                    // Events may have been lost while disconnected: read the tree again.
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                        tracing::debug!(scope = %self.scope(), "zookeeper: reconnected; reading the tree again");
                        self.watcher = None;
                        self.backoff = Some(Duration::ZERO);
                    }
                    SessionState::Disconnected => {}
                    state => {
                        tracing::warn!(scope = %self.scope(), ?state, "zookeeper: watch session ended; opening a new one");
                        self.watcher = None;
                    }
                },
                EventType::NodeCreated | EventType::NodeDataChanged
                    if is_node_path(&event.path) =>
                {
                    let client = match self.inner.client(None).await {
                        Ok(c) => c,
                        Err(_) => {
                            self.watcher = None;
                            continue;
                        }
                    };
                    match client.get_data(&event.path).await {
                        Ok((data, _)) => {
                            let action = match self.seen.get(&event.path) {
                                Some(old) if *old == data => continue,
                                Some(_) => Action::Update,
                                None => Action::Create,
                            };
                            self.queue(action, &data);
                            self.seen.insert(event.path, data);
                        }
                        // Deleted again before we read it: its delete event follows.
                        Err(zookeeper_client::Error::NoNode) => {}
                        Err(err) => {
                            tracing::debug!(path = %event.path, error = %err, "zookeeper: cannot read a changed node; reading the tree again");
                            self.watcher = None;
                        }
                    }
                }
                EventType::NodeDeleted if is_node_path(&event.path) => {
                    let old = self.seen.remove(&event.path);
                    self.queue_delete(&event.path, old.as_deref());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_go_micros() {
        assert_eq!(
            node_path("go.micro.srv.student", "go.micro.srv.student-1"),
            "/micro-registry/go.micro.srv.student/go.micro.srv.student-1"
        );
        assert_eq!(node_path("a/b", "c/d"), "/micro-registry/a-b/c-d");
        assert!(is_node_path("/micro-registry/a/b"));
        assert!(!is_node_path("/micro-registry/a"));
        assert!(!is_node_path("/micro-registry/a/b/c"));
        assert!(!is_node_path("/other/a/b"));
        let s = from_path("/micro-registry/svc/svc-1").expect("node path");
        assert_eq!((s.name.as_str(), s.nodes[0].id.as_str()), ("svc", "svc-1"));
    }

    #[test]
    fn addresses_parse_with_default_port() {
        let o = ZookeeperOptions::from_address("").expect("empty");
        assert_eq!(o.servers, ["127.0.0.1:2181"]);
        let o = ZookeeperOptions::from_address("a, b:2182,[::1]").expect("list");
        assert_eq!(o.servers, ["a:2181", "b:2182", "[::1]:2181"]);
        for bad in ["http://a:1", "a:port", "a:1/chroot"] {
            let err = ZookeeperOptions::from_address(bad).expect_err(bad);
            assert_eq!(err.code, 400);
            assert!(err.detail.contains("zookeeper"), "{err}");
        }
    }

    #[test]
    fn reads_a_go_micro_record() {
        let json = br#"{"name":"go.micro.srv.greeter","version":"latest","metadata":null,
            "endpoints":null,"nodes":[{"metadata":{"protocol":"mucp"},"id":"g-1","address":"10.0.0.2:4000"}]}"#;
        let s = decode(json).expect("decodes");
        assert_eq!(s.nodes[0].address, "10.0.0.2:4000");
        assert!(decode(b"{}").is_none());
        assert!(decode(b"").is_none());
    }
}
