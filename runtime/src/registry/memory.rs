//! In-process registry with TTL expiry, for tests.
//!
//! [`MemoryRegistry`] keeps services in a map behind a mutex and publishes every change on a
//! broadcast channel. Clones share state, so a test hands one clone to each service (as
//! separate processes would share mDNS) and watches through another.
//!
//! Expiry: a node registered with a non-zero TTL lives until `ttl` after its last
//! registration. Expired nodes are dropped lazily by every read and by one background task per
//! registry that sleeps until the earliest deadline (a tokio timer, so `tokio::time::pause()`
//! drives it); either way watchers see a [`Action::Delete`]. The task holds only a weak handle
//! and ends when the last clone is dropped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::{
    Action, Change, Endpoint, Metadata, Node, RegisterOptions, Registry, Service, WatchOptions,
    Watcher,
};
use crate::{Error, Result};

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// How many changes a watcher may fall behind before it is told it lagged.
const WATCH_BUFFER: usize = 1024;

/// An in-process [`Registry`] with TTL expiry. Clones share state.
///
/// - registering a node that is not there yet is a [`Action::Create`], registering it again an
///   [`Action::Update`] (and refreshes its TTL); deregistering it, or letting its TTL run out,
///   is an [`Action::Delete`]. Each change concerns one node: the [`Change`]'s service holds
///   exactly that node.
/// - versions of one service are separate [`Service`] values; a version disappears with its
///   last node.
/// - `get_service` of an unknown name is `Ok(vec![])`.
/// - a watcher that falls more than 1024 changes behind receives one `Err` item saying how many
///   it missed, then continues with the newest changes; it never slows registrations down.
#[derive(Clone)]
pub struct MemoryRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    /// name -> version -> record.
    services: Mutex<HashMap<String, BTreeMap<String, Record>>>,
    events: broadcast::Sender<Change>,
    /// Wakes the sweeper when a deadline may have moved closer (or the registry is gone).
    wake: Arc<Notify>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
    /// When the sweeper will look next (`None`: only when woken). Written and read under the
    /// `services` lock, so a registration sees the plan that includes or precedes it.
    planned: Mutex<Option<Instant>>,
}

/// The sweeper looks at most this often: with many nodes, deadlines come closer together than
/// this, and each look walks every node. Reads never return an expired node whatever the
/// sweeper does; only watchers hear of an expiry up to this late.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the sweeper notice the registry is gone and end.
        self.wake.notify_one();
    }
}

struct Record {
    metadata: Metadata,
    endpoints: Vec<Endpoint>,
    /// id -> node.
    nodes: BTreeMap<String, NodeRecord>,
}

struct NodeRecord {
    node: Node,
    /// `None`: never expires.
    expires: Option<Instant>,
}

impl fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services = self.inner.lock();
        let nodes: usize = services
            .values()
            .flat_map(BTreeMap::values)
            .map(|r| r.nodes.len())
            .sum();
        f.debug_struct("MemoryRegistry")
            .field("services", &services.len())
            .field("nodes", &nodes)
            .finish()
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRegistry {
    /// An empty registry. Needs no runtime; the expiry task starts with the first registration
    /// that has a TTL.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        Self {
            inner: Arc::new(Inner {
                services: Mutex::new(HashMap::new()),
                events,
                wake: Arc::new(Notify::new()),
                sweeper: Mutex::new(None),
                planned: Mutex::new(None),
            }),
        }
    }

    /// Starts the expiry task unless one is running (a runtime that ran it may have shut down);
    /// wakes a running one when `wake` (a deadline earlier than its plan was added).
    fn ensure_sweeper(&self, wake: bool) {
        let mut sweeper = self
            .inner
            .sweeper
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if sweeper.as_ref().is_some_and(|task| !task.is_finished()) {
            if wake {
                self.inner.wake.notify_one();
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: expiry stays lazy, on reads.
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::clone(&self.inner.wake);
        *sweeper = Some(runtime.spawn(sweep(weak, wake)));
    }
}

/// Drops expired nodes whenever the earliest deadline passes, until the registry is dropped.
async fn sweep(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            inner.expire(Instant::now())
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, Record>>> {
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, action: Action, name: &str, version: &str, record: &Record, node: Node) {
        // Nobody watching: nothing to build (a heartbeat is an update too).
        if self.events.receiver_count() == 0 {
            return;
        }
        let _ = self.events.send(Change {
            action,
            service: Service {
                name: name.to_owned(),
                version: version.to_owned(),
                metadata: record.metadata.clone(),
                endpoints: record.endpoints.clone(),
                nodes: vec![node],
            },
        });
    }

    /// Drops nodes whose deadline is not after `now`, telling watchers; returns when to look
    /// again (the earliest deadline left, but not sooner than [`SWEEP_EVERY`]), and records it
    /// as the plan.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut services = self.lock();
        let mut next: Option<Instant> = None;
        services.retain(|name, versions| {
            versions.retain(|version, record| {
                let expired: Vec<String> = record
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.expires.is_some_and(|at| at <= now))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some(gone) = record.nodes.remove(&id) {
                        tracing::debug!(service = %name, %version, node = %id, "registration expired");
                        self.send(Action::Delete, name, version, record, gone.node);
                    }
                }
                for at in record.nodes.values().filter_map(|n| n.expires) {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
                !record.nodes.is_empty()
            });
            !versions.is_empty()
        });
        let next = next.map(|at| at.max(now + SWEEP_EVERY));
        *self.planned.lock().unwrap_or_else(PoisonError::into_inner) = next;
        drop(services);
        next
    }
}

fn to_service(name: &str, version: &str, record: &Record) -> Service {
    Service {
        name: name.to_owned(),
        version: version.to_owned(),
        metadata: record.metadata.clone(),
        endpoints: record.endpoints.clone(),
        nodes: record.nodes.values().map(|n| n.node.clone()).collect(),
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    fn name(&self) -> &str {
        "memory"
    }

    /// Adds or refreshes the service's nodes. The version's metadata and endpoints become the
    /// given ones. A service without nodes changes nothing.
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        if service.nodes.is_empty() {
            return Ok(());
        }
        let expires = (!opts.ttl.is_zero()).then(|| Instant::now() + opts.ttl);
        let wake = {
            let mut services = self.inner.lock();
            let record = services
                .entry(service.name.clone())
                .or_default()
                .entry(service.version.clone())
                .or_insert_with(|| Record {
                    metadata: Metadata::new(),
                    endpoints: Vec::new(),
                    nodes: BTreeMap::new(),
                });
            record.metadata.clone_from(&service.metadata);
            record.endpoints.clone_from(&service.endpoints);
            for node in &service.nodes {
                let previous = record.nodes.insert(
                    node.id.clone(),
                    NodeRecord {
                        node: node.clone(),
                        expires,
                    },
                );
                let action = if previous.is_some() {
                    Action::Update
                } else {
                    Action::Create
                };
                self.inner.send(
                    action,
                    &service.name,
                    &service.version,
                    record,
                    node.clone(),
                );
            }
            let planned = *self
                .inner
                .planned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            expires.is_some_and(|at| planned.is_none_or(|p| at < p))
        };
        if expires.is_some() {
            self.ensure_sweeper(wake);
        }
        Ok(())
    }

    /// Removes the service's listed nodes from its version. Unknown nodes are ignored.
    async fn deregister(&self, service: &Service) -> Result<()> {
        let mut services = self.inner.lock();
        let Some(versions) = services.get_mut(&service.name) else {
            return Ok(());
        };
        if let Some(record) = versions.get_mut(&service.version) {
            for node in &service.nodes {
                if let Some(gone) = record.nodes.remove(&node.id) {
                    self.inner.send(
                        Action::Delete,
                        &service.name,
                        &service.version,
                        record,
                        gone.node,
                    );
                }
            }
            if record.nodes.is_empty() {
                versions.remove(&service.version);
            }
        }
        if versions.is_empty() {
            services.remove(&service.name);
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        self.inner.expire(Instant::now());
        let services = self.inner.lock();
        Ok(services
            .get(name)
            .map(|versions| {
                versions
                    .iter()
                    .map(|(version, record)| to_service(name, version, record))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every version of every service, with nodes, sorted by name then version.
    async fn list_services(&self) -> Result<Vec<Service>> {
        self.inner.expire(Instant::now());
        let services = self.inner.lock();
        let mut all: Vec<Service> = services
            .iter()
            .flat_map(|(name, versions)| {
                versions
                    .iter()
                    .map(move |(version, record)| to_service(name, version, record))
            })
            .collect();
        all.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(all)
    }

    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let stream = BroadcastStream::new(self.inner.events.subscribe());
        let only = opts.service;
        Ok(stream
            .filter_map(move |item| {
                let out = match item {
                    Ok(change) => match &only {
                        Some(name) if *name != change.service.name => None,
                        _ => Some(Ok(change)),
                    },
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        Some(Err(Error::internal_server_error(
                            ERROR_ID,
                            format!(
                                "registry watcher fell behind and missed {missed} changes; \
                                 read the registry again"
                            ),
                        )))
                    }
                };
                std::future::ready(out)
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn svc(name: &str, version: &str, ids: &[&str]) -> Service {
        Service {
            name: name.into(),
            version: version.into(),
            nodes: ids
                .iter()
                .map(|id| Node {
                    id: (*id).into(),
                    address: "127.0.0.1:1".into(),
                    metadata: Metadata::new(),
                })
                .collect(),
            ..Service::default()
        }
    }

    #[tokio::test]
    async fn deregister_of_unknown_nodes_is_ok_and_keeps_others() {
        let reg = MemoryRegistry::new();
        reg.register(&svc("a", "1", &["a-1", "a-2"]), RegisterOptions::default())
            .await
            .expect("register");
        reg.deregister(&svc("a", "1", &["a-1", "a-9"]))
            .await
            .expect("deregister");
        reg.deregister(&svc("zzz", "1", &["z"]))
            .await
            .expect("deregister unknown");
        let got = reg.get_service("a").await.expect("get");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].nodes.len(), 1);
        assert_eq!(got[0].nodes[0].id, "a-2");
    }

    #[tokio::test(start_paused = true)]
    async fn sweeper_ends_when_registry_dropped() {
        let reg = MemoryRegistry::new();
        reg.register(
            &svc("a", "1", &["a-1"]),
            RegisterOptions::ttl(Duration::from_secs(5)),
        )
        .await
        .expect("register");
        let task = reg
            .inner
            .sweeper
            .lock()
            .expect("lock")
            .take()
            .expect("sweeper started");
        drop(reg);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("sweeper ends")
            .expect("no panic");
    }
}
