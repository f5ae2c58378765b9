//! Node selection: which node of a service a call goes to.
//!
//! A [`Selector`] keeps a cache of the registry's nodes per service. The first lookup of a
//! service asks the registry (`watch`, then `get_service`); from then on a background task
//! applies the watch's changes to the cache, so the hot path makes no registry round trip and
//! takes no lock across an `.await`. When the watch breaks, the cache entry falls back to a
//! TTL (one minute by default, as go-micro's registry cache): past it, the next lookup fetches
//! again, and the watch is re-established with backoff, resynchronising when it is back.
//!
//! The selector also remembers nodes that just failed (a circuit breaker per node): a node
//! the client could not connect to, or whose connection broke three calls in a row, is left
//! out of selection for [`SelectorOptions::cooldown`], then let through for one probing call;
//! each failed probe doubles its cooldown up to [`SelectorOptions::max_cooldown`], a
//! success forgets the failures. So a node killed without deregistering costs the calls in
//! flight when it died and one probe now and then, not every call that picks it until the
//! registry's TTL drops it. When every node is out, they are tried anyway.
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

use super::CLIENT_ID;

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
    /// How long a node that just failed is left out of selection before one call probes it
    /// again (1 s). Zero turns the circuit breaker off.
    pub cooldown: Duration,
    /// The longest a failing node is left out: each failed probe doubles its cooldown up to
    /// this (30 s).
    pub max_cooldown: Duration,
}

impl Default for SelectorOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::Random,
            ttl: Duration::from_secs(60),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(30),
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
    /// The service's name.
    service: Box<str>,
    /// The nodes and when they were last fetched in full.
    state: RwLock<Snapshot>,
    /// Whether a watch is currently keeping `state` fresh.
    watching: AtomicBool,
    /// Round-robin position, shared by every call to this service.
    counter: AtomicUsize,
    /// The circuit breakers of nodes that failed lately, by node id.
    trips: Mutex<HashMap<String, Trip>>,
    /// `trips.len()`, read without the lock: zero on the hot path of a healthy service.
    tripped: AtomicUsize,
}

/// The failures of one node (see the module's documentation).
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// Connection failures in a row.
    failures: u32,
    /// Until when the node is left out; `None` while closed (failures below the threshold).
    open_until: Option<Instant>,
    /// The cooldown the next failure opens the circuit for.
    cooldown: Duration,
    /// A call is probing the node after its cooldown.
    probing: bool,
}

/// Connections that broke mid-call (rather than could not be made) in a row that open a
/// node's circuit.
const BROKEN_CONNECTIONS_TO_TRIP: u32 = 3;

#[derive(Clone)]
struct Snapshot {
    nodes: Arc<[Node]>,
    fetched: Instant,
}

impl Entry {
    fn new(service: &str, nodes: Vec<Node>, watching: bool) -> Self {
        Self {
            service: service.into(),
            state: RwLock::new(Snapshot {
                nodes: nodes.into(),
                fetched: Instant::now(),
            }),
            watching: AtomicBool::new(watching),
            counter: AtomicUsize::new(rand::random::<u32>() as usize),
            trips: Mutex::new(HashMap::new()),
            tripped: AtomicUsize::new(0),
        }
    }

    fn trips(&self) -> std::sync::MutexGuard<'_, HashMap<String, Trip>> {
        self.trips.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the breakers of nodes not in `nodes`.
    fn forget_gone(&self, nodes: &[Node]) {
        if self.tripped.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut trips = self.trips();
        trips.retain(|id, _| nodes.iter().any(|n| &n.id == id));
        self.tripped.store(trips.len(), Ordering::Release);
    }

    fn snapshot(&self) -> Snapshot {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, nodes: Vec<Node>) {
        self.forget_gone(&nodes);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        *state = Snapshot {
            nodes: nodes.into(),
            fetched: Instant::now(),
        };
    }

    /// Takes the nodes a registry lists after its watch was broken. Nodes cached but not
    /// listed are kept, beside the listed ones, when the registry may have lost them rather
    /// than they it (a registry restarted empty lists nothing until the services register
    /// again, one register interval later); the watch brings them back as they re-register,
    /// their circuit breakers keep calls off those that died meanwhile, and a lookup after
    /// the selector's TTL settles the rest. Returns whether nodes were kept that way.
    fn resync(&self, service: &str, mut fresh: Vec<Node>) -> bool {
        let cached = self.snapshot().nodes;
        let kept: Vec<Node> = cached
            .iter()
            .filter(|n| !fresh.iter().any(|f| f.id == n.id))
            .cloned()
            .collect();
        if !kept.is_empty() {
            tracing::info!(
                %service,
                listed = fresh.len(),
                kept = kept.len(),
                "the registry is back without some nodes; keeping them until they register again or the cache's ttl passes"
            );
        }
        let unconfirmed = !kept.is_empty();
        fresh.extend(kept);
        self.replace(fresh);
        unconfirmed
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
        if change.action == Action::Delete {
            self.forget_gone(&nodes);
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
        Ok(Next::new(snapshot.nodes, Arc::clone(&self.inner), entry))
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
        let entry = Arc::new(Entry::new(service, nodes, watch.is_ok()));
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
    // Until when nodes kept through a resync wait to be confirmed (see `Entry::resync`).
    let mut confirm_at: Option<tokio::time::Instant> = None;
    loop {
        if let Some(mut stream) = watch.take() {
            backoff = None;
            loop {
                let confirm = async {
                    match confirm_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let change = tokio::select! {
                    change = stream.next() => change,
                    () = confirm => {
                        confirm_at = None;
                        let Some(inner) = inner.upgrade() else { return };
                        let registry = Arc::clone(&inner.registry);
                        drop(inner);
                        match registry.get_service(&service).await {
                            Ok(services) => entry.replace(flatten(services)),
                            Err(err) if err.code == 404 => entry.replace(Vec::new()),
                            Err(err) => {
                                tracing::debug!(%service, error = %err, "registry lookup failed; keeping the nodes");
                            }
                        }
                        continue;
                    }
                };
                match change {
                    Some(Ok(change)) => entry.apply(&service, &change),
                    Some(Err(err)) => {
                        tracing::debug!(%service, error = %err, "registry watch failed");
                        break;
                    }
                    None => break,
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
        let grace = inner.opts.ttl;
        // Do not keep the selector alive while sleeping.
        drop(inner);
        tokio::time::sleep(delay).await;
        match registry.watch(WatchOptions::service(&service)).await {
            Ok(stream) => {
                let fresh = match registry.get_service(&service).await {
                    Ok(services) => flatten(services),
                    Err(err) if err.code == 404 => Vec::new(),
                    Err(err) => {
                        tracing::debug!(%service, error = %err, "registry resync failed");
                        continue;
                    }
                };
                if entry.resync(&service, fresh) {
                    confirm_at = Some(tokio::time::Instant::now() + grace);
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

/// How a call to a node went, as far as the node's circuit breaker is concerned (see
/// [`Next::report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The node answered (a reply or an error of its own): it is alive.
    Answered,
    /// No connection could be made: the node opens its circuit at once.
    Unreachable,
    /// The connection broke before the reply: three in a row open the circuit.
    Broken,
}

impl Entry {
    /// The indices of `nodes` whose circuit is open now.
    fn open(&self, nodes: &[Node], now: Instant) -> Vec<usize> {
        let trips = self.trips();
        (0..nodes.len())
            .filter(|&i| {
                trips
                    .get(&nodes[i].id)
                    .and_then(|t| t.open_until)
                    .is_some_and(|until| until > now)
            })
            .collect()
    }

    /// A node whose cooldown is over was picked: it probes, and the others skip it until the
    /// probe is reported (or one more cooldown has passed).
    fn probing(&self, id: &str, now: Instant) {
        if let Some(trip) = self.trips().get_mut(id)
            && trip.open_until.is_some_and(|until| until <= now)
        {
            trip.open_until = Some(now + trip.cooldown);
            trip.probing = true;
        }
    }

    fn report(&self, node: &Node, outcome: Outcome, opts: &SelectorOptions) {
        let service = &*self.service;
        if opts.cooldown.is_zero() {
            return;
        }
        let mut trips = match outcome {
            Outcome::Answered if self.tripped.load(Ordering::Acquire) == 0 => return,
            _ => self.trips(),
        };
        if outcome == Outcome::Answered {
            if trips
                .remove(&node.id)
                .is_some_and(|t| t.open_until.is_some())
            {
                tracing::info!(%service, node = %node.id, address = %node.address, "node answers again, back in selection");
            }
            self.tripped.store(trips.len(), Ordering::Release);
            return;
        }
        let trip = trips.entry(node.id.clone()).or_insert(Trip {
            failures: 0,
            open_until: None,
            cooldown: opts.cooldown,
            probing: false,
        });
        trip.failures = trip.failures.saturating_add(1);
        if outcome == Outcome::Unreachable || trip.failures >= BROKEN_CONNECTIONS_TO_TRIP {
            let now = Instant::now();
            if trip.probing {
                trip.probing = false;
                trip.cooldown = (trip.cooldown * 2).min(opts.max_cooldown.max(opts.cooldown));
                trip.open_until = Some(now + trip.cooldown);
            } else if trip.open_until.is_none_or(|until| until <= now) {
                // Calls in flight when the node died fail together: the first opens the
                // circuit, the rest leave it as it is.
                trip.open_until = Some(now + trip.cooldown);
                tracing::warn!(%service, node = %node.id, address = %node.address, cooldown = ?trip.cooldown, ?outcome, "node left out of selection");
            }
        }
        self.tripped.store(trips.len(), Ordering::Release);
    }
}

/// The nodes of one service for one call, in the order they should be tried.
///
/// Nodes already returned are skipped by later calls to [`Next::pick`] until every node has
/// been tried, so retries go to other nodes first; so are nodes whose circuit is open (see
/// the module's documentation), unless every node not yet tried is.
pub struct Next {
    nodes: Arc<[Node]>,
    entry: Arc<Entry>,
    selector: Arc<Inner>,
    tried: Vec<usize>,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("nodes", &self.nodes.len())
            .field("strategy", &self.selector.opts.strategy)
            .field("tried", &self.tried)
            .finish()
    }
}

impl Next {
    fn new(nodes: Arc<[Node]>, selector: Arc<Inner>, entry: Arc<Entry>) -> Self {
        Self {
            nodes,
            selector,
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

    /// Whether a node not tried yet by this call is left.
    pub fn has_untried(&self) -> bool {
        self.tried.len() < self.nodes.len()
    }

    /// The next node to try: one not tried yet by this call while there is one (skipping
    /// nodes whose circuit is open while another is left), any node after that.
    pub fn pick(&mut self) -> Option<&Node> {
        let len = self.nodes.len();
        if len == 0 {
            return None;
        }
        if self.tried.len() >= len {
            self.tried.clear();
        }
        let now = Instant::now();
        let open = if self.entry.tripped.load(Ordering::Acquire) == 0 {
            Vec::new()
        } else {
            self.entry.open(&self.nodes, now)
        };
        let kth = |candidates: usize| match self.selector.opts.strategy {
            Strategy::Random => rand::random_range(0..candidates),
            Strategy::RoundRobin => self.entry.counter.fetch_add(1, Ordering::Relaxed) % candidates,
        };
        let index = if self.tried.is_empty() && open.is_empty() {
            // A call's first pick with every circuit closed, the common case: every node is
            // a candidate, so the k-th is node k (constant time at any number of nodes).
            kth(len)
        } else {
            let tried = &self.tried;
            // Every node left out of selection: try them anyway.
            let skip_open = (0..len).any(|i| !tried.contains(&i) && !open.contains(&i));
            let skipped = |i: &usize| tried.contains(i) || (skip_open && open.contains(i));
            let candidates = (0..len).filter(|i| !skipped(i)).count();
            // The k-th candidate, in index order.
            let k = kth(candidates);
            (0..len).filter(|i| !skipped(i)).nth(k).unwrap_or(0)
        };
        self.tried.push(index);
        let node = self.nodes.get(index)?;
        if self.entry.tripped.load(Ordering::Acquire) > 0 {
            self.entry.probing(&node.id, now);
        }
        Some(node)
    }

    /// Tells the selector how the call to the node last picked went, for its circuit
    /// breaker. The client does this for every attempt.
    pub fn report(&self, outcome: Outcome) {
        let Some(node) = self.tried.last().and_then(|&i| self.nodes.get(i)) else {
            return;
        };
        self.entry.report(node, outcome, &self.selector.opts);
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

    fn breaker(cooldown_ms: u64) -> SelectorOptions {
        SelectorOptions {
            strategy: Strategy::RoundRobin,
            cooldown: Duration::from_millis(cooldown_ms),
            max_cooldown: Duration::from_millis(cooldown_ms * 4),
            ..SelectorOptions::default()
        }
    }

    /// Picks once per call for `calls` calls, reporting every pick of `dead` as `outcome` and
    /// every other as answered; returns how many calls picked `dead` first.
    async fn calls_to(selector: &Selector, dead: &str, outcome: Outcome, calls: usize) -> usize {
        let mut hits = 0;
        for _ in 0..calls {
            let mut next = selector.select("s").await.expect("select");
            let first = next.pick().expect("node").id.clone();
            if first == dead {
                hits += 1;
                next.report(outcome);
                // The retry goes to the other node.
                assert_ne!(next.pick().expect("node").id, dead);
            }
            next.report(Outcome::Answered);
        }
        hits
    }

    #[tokio::test]
    async fn an_unreachable_node_is_left_out_until_its_cooldown_then_probed_once() {
        let reg = Scripted::new(vec![service("s", &["a", "dead"])]);
        let selector = Selector::with_options(reg, breaker(300));
        // The first call that meets it opens its circuit; the next 50 never pick it.
        assert_eq!(
            calls_to(&selector, "dead", Outcome::Unreachable, 50).await,
            1
        );

        // After the cooldown one call probes it, and failing doubles the cooldown.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            calls_to(&selector, "dead", Outcome::Unreachable, 50).await,
            1
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            calls_to(&selector, "dead", Outcome::Unreachable, 50).await,
            0,
            "a failed probe doubles the cooldown (600 ms)"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The probe answers: the node is back in rotation for good.
        assert!(calls_to(&selector, "dead", Outcome::Answered, 2).await >= 1);
        let picked = ids(&selector, "s", 40).await;
        let back = picked.iter().filter(|id| *id == "dead").count();
        assert!(back >= 19, "{back} of 40 picks after it answered");
    }

    #[tokio::test]
    async fn broken_connections_open_the_circuit_after_three_in_a_row() {
        let reg = Scripted::new(vec![service("s", &["a", "flaky"])]);
        let selector = Selector::with_options(reg, breaker(60_000));
        assert_eq!(calls_to(&selector, "flaky", Outcome::Broken, 100).await, 3);
    }

    #[tokio::test]
    async fn when_every_node_is_out_they_are_tried_anyway_and_a_gone_node_is_forgotten() {
        let reg = Scripted::new(vec![service("s", &["a", "bb"])]);
        let selector = Selector::with_options(reg.clone(), breaker(60_000));
        for _ in 0..2 {
            let mut next = selector.select("s").await.expect("select");
            next.pick().expect("node");
            next.report(Outcome::Unreachable);
        }
        // Both are out; a call still gets both, one after the other.
        let mut next = selector.select("s").await.expect("select");
        let mut both = vec![
            next.pick().expect("node").id.clone(),
            next.pick().expect("node").id.clone(),
        ];
        both.sort();
        assert_eq!(both, ["a", "bb"]);

        // `bb` leaves and comes back under the same id: its past failures are forgotten.
        reg.send(Ok(Change {
            action: Action::Delete,
            service: service("s", &["bb"]),
        }));
        wait_for(&selector, "s", |ids| ids == ["a"]).await;
        reg.send(Ok(Change {
            action: Action::Create,
            service: service("s", &["bb"]),
        }));
        wait_for(&selector, "s", |ids| ids == ["a", "bb"]).await;
        assert_eq!(ids(&selector, "s", 10).await, vec!["bb".to_owned(); 10]);
    }

    #[tokio::test]
    async fn a_zero_cooldown_turns_the_breaker_off() {
        let reg = Scripted::new(vec![service("s", &["a", "dead"])]);
        let selector = Selector::with_options(
            reg,
            SelectorOptions {
                strategy: Strategy::Random,
                ..breaker(0)
            },
        );
        // Half the calls, give or take; with the breaker on it would be one.
        let hits = calls_to(&selector, "dead", Outcome::Unreachable, 100).await;
        assert!((20..=80).contains(&hits), "{hits} of 100");
    }

    #[tokio::test]
    async fn a_registry_back_empty_after_its_watch_broke_does_not_empty_the_cache() {
        let reg = Scripted::new(vec![service("s", &["a", "bb"])]);
        let selector = Selector::with_options(
            reg.clone(),
            SelectorOptions {
                ttl: Duration::from_millis(600),
                min_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(20),
                ..SelectorOptions::default()
            },
        );
        wait_for(&selector, "s", |ids| ids == ["a", "bb"]).await;
        // The registry restarts empty: the watch breaks, and is re-established on a registry
        // that lists nothing.
        reg.nodes.lock().expect("lock").clear();
        reg.send(Err(Error::internal_server_error("scripted", "lost")));
        let deadline = Instant::now() + Duration::from_secs(5);
        while reg.gets.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "no resync");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            ids(&selector, "s", 1).await.len(),
            1,
            "the nodes are still served"
        );
        // `a` registers again; `bb` does not (it died meanwhile).
        reg.nodes.lock().expect("lock").push(service("s", &["a"]));
        reg.send(Ok(Change {
            action: Action::Create,
            service: service("s", &["a"]),
        }));
        // After the TTL, a lookup settles it: only `a` is left.
        wait_for(&selector, "s", |ids| ids == ["a"]).await;
    }
}
