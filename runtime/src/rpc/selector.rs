//! Node selection: which node of a service a call goes to.
//!
//! A [`Selector`] keeps a cache of the registry's nodes per service. The first lookup of a
//! service asks the registry (`watch`, then `get_service`); from then on a background task
//! applies the watch's changes to the cache, so the hot path makes no registry round trip and
//! takes no lock across an `.await`. When the watch breaks, the cache entry falls back to a
//! TTL (one minute by default, as go-micro's registry cache): past it, the next lookup fetches
//! again, and the watch is re-established with backoff, resynchronising when it is back.
//!
//! ```
//! use rmicro::rpc::Strategy;
//! assert_eq!("roundrobin".parse::<Strategy>(), Ok(Strategy::RoundRobin));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::AbortHandle;

use crate::registry::{Action, Change, Node, Service, SharedRegistry, WatchOptions};
use crate::{Error, Result};

/// The error id of selection failures, go-micro's client package id.
const CLIENT_ID: &str = "go.micro.client";

/// How the next node is picked among a service's nodes (`--selector`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// A node chosen uniformly at random for each call (go-micro's default).
    #[default]
    Random,
    /// The nodes in turn, one call after the other, per service.
    RoundRobin,
}

impl Strategy {
    /// Every strategy, in the order `--help` lists them.
    pub const ALL: [Strategy; 2] = [Strategy::Random, Strategy::RoundRobin];

    /// The name the `--selector` flag uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::RoundRobin => "roundrobin",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    /// Parses `random` or `roundrobin` (case-insensitive; `round_robin` and `round-robin` are
    /// accepted too).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        match norm.as_str() {
            "random" => Ok(Strategy::Random),
            "roundrobin" => Ok(Strategy::RoundRobin),
            _ => Err(format!(
                "unknown selector `{}`, expected one of `random`, `roundrobin`",
                s.trim()
            )),
        }
    }
}

/// Options of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorOptions {
    /// How nodes are picked.
    pub strategy: Strategy,
    /// How long a cache entry stays valid while its watch is down (go-micro: one minute).
    pub ttl: Duration,
    /// First delay before re-establishing a broken watch; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between attempts to re-establish a watch.
    pub max_backoff: Duration,
}

impl Default for SelectorOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::Random,
            ttl: Duration::from_secs(60),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Picks nodes of services, from a registry cache kept fresh by watches.
///
/// Cheap to clone; clones share the cache. The watch tasks stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Selector {
    inner: Arc<Inner>,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("registry", &self.inner.registry.name())
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    registry: SharedRegistry,
    opts: SelectorOptions,
    cache: RwLock<HashMap<String, Arc<Entry>>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// One service's cached nodes.
struct Entry {
    /// The nodes and when they were last fetched in full.
    state: RwLock<Snapshot>,
    /// Whether a watch is currently keeping `state` fresh.
    watching: AtomicBool,
    /// Round-robin position, shared by every call to this service.
    counter: AtomicUsize,
}

#[derive(Clone)]
struct Snapshot {
    nodes: Arc<[Node]>,
    fetched: Instant,
}

impl Entry {
    fn new(nodes: Vec<Node>, watching: bool) -> Self {
        Self {
            state: RwLock::new(Snapshot {
                nodes: nodes.into(),
                fetched: Instant::now(),
            }),
            watching: AtomicBool::new(watching),
            counter: AtomicUsize::new(rand::random::<u32>() as usize),
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, nodes: Vec<Node>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        *state = Snapshot {
            nodes: nodes.into(),
            fetched: Instant::now(),
        };
    }

    /// Applies one watch change; the entry's `fetched` time is left alone.
    fn apply(&self, service: &str, change: &Change) {
        if change.service.name != service {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut nodes = state.nodes.to_vec();
        for node in &change.service.nodes {
            let at = nodes.iter().position(|n| n.id == node.id);
            match (change.action, at) {
                (Action::Create | Action::Update, Some(i)) => nodes[i] = node.clone(),
                (Action::Create | Action::Update, None) => nodes.push(node.clone()),
                (Action::Delete, Some(i)) => {
                    nodes.remove(i);
                }
                (Action::Delete, None) => {}
            }
        }
        state.nodes = nodes.into();
    }

    /// Whether the cached nodes can be used without asking the registry.
    fn is_valid(&self, snapshot: &Snapshot, ttl: Duration) -> bool {
        if self.watching.load(Ordering::Acquire) {
            return true;
        }
        // Without a watch, a miss is never trusted and a hit only within the TTL.
        !snapshot.nodes.is_empty() && snapshot.fetched.elapsed() < ttl
    }
}

fn flatten(services: Vec<Service>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for service in services {
        for node in service.nodes {
            if !nodes.iter().any(|n| n.id == node.id) {
                nodes.push(node);
            }
        }
    }
    nodes
}

/// The error go-micro's client returns when a service has no node.
pub fn not_found(service: &str) -> Error {
    Error::internal_server_error(
        CLIENT_ID,
        format!("error selecting {service} node: not found"),
    )
}

impl Selector {
    /// A selector over `registry`, with go-micro's cache TTL and the given strategy.
    pub fn new(registry: SharedRegistry, strategy: Strategy) -> Self {
        Self::with_options(
            registry,
            SelectorOptions {
                strategy,
                ..SelectorOptions::default()
            },
        )
    }

    /// A selector with every option spelled out.
    pub fn with_options(registry: SharedRegistry, opts: SelectorOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                opts,
                cache: RwLock::new(HashMap::new()),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.inner.opts.strategy
    }

    /// The registry behind the cache.
    pub fn registry(&self) -> &SharedRegistry {
        &self.inner.registry
    }

    /// The nodes of `service` to try, in the strategy's order.
    ///
    /// Fails with go-micro's exact error, `error selecting <service> node: not found`, when
    /// the service has no node.
    pub async fn select(&self, service: &str) -> Result<Next> {
        let cached = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .cloned();
        let (entry, snapshot) = match cached {
            Some(entry) => {
                let snapshot = entry.snapshot();
                if entry.is_valid(&snapshot, self.inner.opts.ttl) {
                    (entry, snapshot)
                } else {
                    let snapshot = self.refetch(service, &entry, snapshot).await?;
                    (entry, snapshot)
                }
            }
            None => self.first_lookup(service).await?,
        };
        if snapshot.nodes.is_empty() {
            return Err(not_found(service));
        }
        Ok(Next::new(snapshot.nodes, self.inner.opts.strategy, entry))
    }

    /// Fetches `service` again for an entry whose watch is down; stale nodes are kept (and
    /// used) when the registry cannot be reached.
    async fn refetch(&self, service: &str, entry: &Entry, stale: Snapshot) -> Result<Snapshot> {
        match self.fetch(service).await {
            Ok(nodes) => {
                entry.replace(nodes);
                Ok(entry.snapshot())
            }
            Err(err) if !stale.nodes.is_empty() => {
                tracing::warn!(%service, error = %err, "registry lookup failed, using stale nodes");
                Ok(stale)
            }
            Err(err) => Err(err),
        }
    }

    /// `get_service`, with "not found" read as no nodes and other failures worded as
    /// go-micro's selector does.
    async fn fetch(&self, service: &str) -> Result<Vec<Node>> {
        match self.inner.registry.get_service(service).await {
            Ok(services) => Ok(flatten(services)),
            Err(err) if err.code == 404 => Ok(Vec::new()),
            Err(err) => Err(Error::internal_server_error(
                CLIENT_ID,
                format!("error selecting {service} node: {}", err.detail),
            )),
        }
    }

    /// First lookup: start the watch (so no change between the fetch and the watch is lost),
    /// fetch, cache, and hand the watch to a background task.
    async fn first_lookup(&self, service: &str) -> Result<(Arc<Entry>, Snapshot)> {
        let watch = self
            .inner
            .registry
            .watch(WatchOptions::service(service))
            .await;
        if let Err(err) = &watch {
            tracing::debug!(%service, error = %err, "registry watch unavailable, caching with a ttl");
        }
        let nodes = self.fetch(service).await?;
        let entry = Arc::new(Entry::new(nodes, watch.is_ok()));
        let entry = {
            let mut cache = self
                .inner
                .cache
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match cache.get(service) {
                // Another call won the race; its watch keeps that entry fresh.
                Some(existing) => return Ok((Arc::clone(existing), existing.snapshot())),
                None => {
                    cache.insert(service.to_owned(), Arc::clone(&entry));
                    entry
                }
            }
        };
        let task = tokio::spawn(keep_fresh(
            Arc::downgrade(&self.inner),
            service.to_owned(),
            Arc::clone(&entry),
            watch.ok(),
        ));
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        let snapshot = entry.snapshot();
        Ok((entry, snapshot))
    }
}

/// Applies watch changes to `entry`; when the watch ends or fails, marks the entry as
/// unwatched (so it expires by TTL) and re-establishes the watch with backoff, fetching the
/// service again once it is back. Stops when the selector is gone.
async fn keep_fresh(
    inner: Weak<Inner>,
    service: String,
    entry: Arc<Entry>,
    mut watch: Option<crate::registry::Watcher>,
) {
    let mut backoff = None;
    loop {
        if let Some(mut stream) = watch.take() {
            backoff = None;
            while let Some(change) = stream.next().await {
                match change {
                    Ok(change) => entry.apply(&service, &change),
                    Err(err) => {
                        tracing::debug!(%service, error = %err, "registry watch failed");
                        break;
                    }
                }
            }
            drop(stream);
            entry.watching.store(false, Ordering::Release);
        }
        let Some(inner) = inner.upgrade() else { return };
        let (min, max) = (inner.opts.min_backoff, inner.opts.max_backoff);
        let delay = backoff.map_or(min, |d: Duration| (d * 2).min(max));
        backoff = Some(delay);
        let registry = Arc::clone(&inner.registry);
        // Do not keep the selector alive while sleeping.
        drop(inner);
        tokio::time::sleep(delay).await;
        match registry.watch(WatchOptions::service(&service)).await {
            Ok(stream) => {
                match registry.get_service(&service).await {
                    Ok(services) => entry.replace(flatten(services)),
                    Err(err) if err.code == 404 => entry.replace(Vec::new()),
                    Err(err) => {
                        tracing::debug!(%service, error = %err, "registry resync failed");
                        continue;
                    }
                }
                entry.watching.store(true, Ordering::Release);
                watch = Some(stream);
            }
            Err(err) => {
                tracing::debug!(%service, error = %err, "registry watch unavailable");
            }
        }
    }
}

/// The nodes of one service for one call, in the order they should be tried.
///
/// Nodes already returned are skipped by later calls to [`Next::pick`] until every node has
/// been tried, so retries go to other nodes first.
pub struct Next {
    nodes: Arc<[Node]>,
    strategy: Strategy,
    entry: Arc<Entry>,
    tried: Vec<usize>,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("nodes", &self.nodes.len())
            .field("strategy", &self.strategy)
            .field("tried", &self.tried)
            .finish()
    }
}

impl Next {
    fn new(nodes: Arc<[Node]>, strategy: Strategy, entry: Arc<Entry>) -> Self {
        Self {
            nodes,
            strategy,
            entry,
            tried: Vec::new(),
        }
    }

    /// How many nodes the service has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the service has no node (never true for a `Next` from [`Selector::select`]).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The next node to try: one not tried yet by this call while there is one, any node
    /// after that.
    pub fn pick(&mut self) -> Option<&Node> {
        let len = self.nodes.len();
        if len == 0 {
            return None;
        }
        if self.tried.len() >= len {
            self.tried.clear();
        }
        let untried = len - self.tried.len();
        // The k-th node (in index order, wrapping) among those not tried yet.
        let k = match self.strategy {
            Strategy::Random => rand::random_range(0..untried),
            Strategy::RoundRobin => self.entry.counter.fetch_add(1, Ordering::Relaxed) % untried,
        };
        let index = (0..len)
            .filter(|i| !self.tried.contains(i))
            .nth(k)
            .unwrap_or(0);
        self.tried.push(index);
        self.nodes.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Metadata, RegisterOptions, Registry, Watcher};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU32;
    use tokio::sync::mpsc;

    fn node(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            address: format!("127.0.0.1:{}", id.len()),
            metadata: Metadata::new(),
        }
    }

    fn service(name: &str, ids: &[&str]) -> Service {
        Service {
            name: name.to_owned(),
            version: "v1".to_owned(),
            nodes: ids.iter().map(|id| node(id)).collect(),
            ..Service::default()
        }
    }

    /// A registry answering `get_service` from a fixed list and whose watches are fed by the
    /// test through channels.
    #[derive(Debug)]
    struct Scripted {
        nodes: Mutex<Vec<Service>>,
        gets: AtomicU32,
        watchers: Mutex<Vec<mpsc::UnboundedSender<Result<Change>>>>,
        watch_fails: AtomicBool,
    }

    impl Scripted {
        fn new(services: Vec<Service>) -> Arc<Self> {
            Arc::new(Self {
                nodes: Mutex::new(services),
                gets: AtomicU32::new(0),
                watchers: Mutex::new(Vec::new()),
                watch_fails: AtomicBool::new(false),
            })
        }

        fn send(&self, change: Result<Change>) {
            for tx in self.watchers.lock().expect("lock").iter() {
                let _ = tx.send(change.clone());
            }
        }
    }

    #[async_trait]
    impl Registry for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn register(&self, _: &Service, _: RegisterOptions) -> Result<()> {
            Ok(())
        }
        async fn deregister(&self, _: &Service) -> Result<()> {
            Ok(())
        }
        async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            let found: Vec<Service> = self
                .nodes
                .lock()
                .expect("lock")
                .iter()
                .filter(|s| s.name == name)
                .cloned()
                .collect();
            if found.is_empty() {
                Err(Error::not_found("go.micro.registry", "service not found"))
            } else {
                Ok(found)
            }
        }
        async fn list_services(&self) -> Result<Vec<Service>> {
            Ok(self.nodes.lock().expect("lock").clone())
        }
        async fn watch(&self, _: WatchOptions) -> Result<Watcher> {
            if self.watch_fails.load(Ordering::SeqCst) {
                return Err(Error::internal_server_error("scripted", "no watch"));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            self.watchers.lock().expect("lock").push(tx);
            Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed())
        }
    }

    async fn ids(selector: &Selector, svc: &str, picks: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..picks {
            let mut next = selector.select(svc).await.expect("select");
            out.push(next.pick().expect("node").id.clone());
        }
        out
    }

    async fn wait_for(selector: &Selector, svc: &str, want: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut seen: Vec<String> = match selector.select(svc).await {
                Ok(next) => next.nodes.iter().map(|n| n.id.clone()).collect(),
                Err(_) => Vec::new(),
            };
            seen.sort();
            if want(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cache never reached the wanted state: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn strategy_parses_and_names_valid_values() {
        assert_eq!("random".parse::<Strategy>(), Ok(Strategy::Random));
        assert_eq!("RoundRobin".parse::<Strategy>(), Ok(Strategy::RoundRobin));
        assert_eq!("round_robin".parse::<Strategy>(), Ok(Strategy::RoundRobin));
        assert_eq!(
            "first".parse::<Strategy>(),
            Err("unknown selector `first`, expected one of `random`, `roundrobin`".to_owned())
        );
        for s in Strategy::ALL {
            assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
        }
    }

    #[tokio::test]
    async fn round_robin_visits_every_node_in_turn() {
        let reg = Scripted::new(vec![service("s", &["a", "bb", "ccc"])]);
        let selector = Selector::new(reg, Strategy::RoundRobin);
        let picked = ids(&selector, "s", 6).await;
        // Each window of three consecutive calls covers all three nodes, in the same order.
        let mut first: Vec<_> = picked[..3].to_vec();
        first.sort();
        assert_eq!(first, ["a", "bb", "ccc"]);
        assert_eq!(picked[..3], picked[3..]);
    }

    #[tokio::test]
    async fn random_only_returns_known_nodes_and_reaches_all() {
        let reg = Scripted::new(vec![service("s", &["a", "bb"])]);
        let selector = Selector::new(reg, Strategy::Random);
        let picked = ids(&selector, "s", 200).await;
        assert!(picked.iter().all(|id| id == "a" || id == "bb"));
        assert!(picked.iter().any(|id| id == "a") && picked.iter().any(|id| id == "bb"));
    }

    #[tokio::test]
    async fn retries_exclude_nodes_already_tried() {
        for strategy in Strategy::ALL {
            let reg = Scripted::new(vec![service("s", &["a", "bb", "ccc"])]);
            let selector = Selector::new(reg, strategy);
            for _ in 0..20 {
                let mut next = selector.select("s").await.expect("select");
                let mut seen: Vec<String> = (0..3)
                    .map(|_| next.pick().expect("node").id.clone())
                    .collect();
                seen.sort();
                assert_eq!(seen, ["a", "bb", "ccc"], "{strategy}");
                // Once every node was tried, any node may come again.
                assert!(next.pick().is_some());
            }
        }
    }

    #[tokio::test]
    async fn no_node_is_go_micros_exact_error() {
        let reg = Scripted::new(vec![]);
        let selector = Selector::new(reg, Strategy::Random);
        let err = selector
            .select("student_service")
            .await
            .expect_err("no node");
        assert_eq!(
            err.to_string(),
            r#"{"id":"go.micro.client","code":500,"detail":"error selecting student_service node: not found","status":"Internal Server Error"}"#
        );
    }

    #[tokio::test]
    async fn watch_events_update_the_cache_without_lookups() {
        let reg = Scripted::new(vec![service("s", &["a"])]);
        let selector = Selector::new(reg.clone(), Strategy::RoundRobin);
        assert_eq!(ids(&selector, "s", 1).await, ["a"]);
        assert_eq!(reg.gets.load(Ordering::SeqCst), 1);

        reg.send(Ok(Change {
            action: Action::Create,
            service: service("s", &["bb"]),
        }));
        wait_for(&selector, "s", |ids| ids == ["a", "bb"]).await;

        let mut moved = service("s", &["a"]);
        moved.nodes[0].address = "127.0.0.1:9".to_owned();
        reg.send(Ok(Change {
            action: Action::Update,
            service: moved,
        }));
        reg.send(Ok(Change {
            action: Action::Delete,
            service: service("s", &["bb"]),
        }));
        // Changes of other services are ignored.
        reg.send(Ok(Change {
            action: Action::Create,
            service: service("other", &["x"]),
        }));
        wait_for(&selector, "s", |ids| ids == ["a"]).await;
        let mut next = selector.select("s").await.expect("select");
        assert_eq!(next.pick().expect("node").address, "127.0.0.1:9");

        reg.send(Ok(Change {
            action: Action::Delete,
            service: service("s", &["a"]),
        }));
        wait_for(&selector, "s", <[String]>::is_empty).await;
        let err = selector.select("s").await.expect_err("emptied");
        assert_eq!(err.detail, "error selecting s node: not found");
        assert_eq!(
            reg.gets.load(Ordering::SeqCst),
            1,
            "the watch alone kept the cache fresh"
        );
    }

    #[tokio::test]
    async fn broken_watch_falls_back_to_ttl_and_resyncs() {
        let reg = Scripted::new(vec![service("s", &["a"])]);
        let selector = Selector::with_options(
            reg.clone(),
            SelectorOptions {
                ttl: Duration::ZERO,
                min_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(20),
                ..SelectorOptions::default()
            },
        );
        assert_eq!(ids(&selector, "s", 1).await, ["a"]);
        // Break the watch and keep it broken: with a zero TTL every select fetches again.
        reg.watch_fails.store(true, Ordering::SeqCst);
        reg.send(Err(Error::internal_server_error("scripted", "lost")));
        reg.nodes.lock().expect("lock")[0] = service("s", &["bb"]);
        wait_for(&selector, "s", |ids| ids == ["bb"]).await;

        // The watch comes back: the task resyncs and changes flow again.
        reg.watch_fails.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while reg
            .watchers
            .lock()
            .expect("lock")
            .iter()
            .all(|tx| tx.is_closed())
        {
            assert!(Instant::now() < deadline, "watch was never re-established");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reg.send(Ok(Change {
            action: Action::Create,
            service: service("s", &["ccc"]),
        }));
        wait_for(&selector, "s", |ids| ids == ["bb", "ccc"]).await;
    }
}
