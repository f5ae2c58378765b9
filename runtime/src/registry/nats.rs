//! The NATS registry (feature `nats`): go-micro v5's `registry/nats`, over core NATS.
//!
//! There is no central store: each process keeps the nodes it registered and answers queries
//! about them. Wire, as go-micro v5 (checked against v5.30.0) writes and reads it:
//!
//! - **Queries** go to subject `micro.nats.query` with a reply inbox. The payload is a
//!   `registry.Result` (no JSON tags in Go, so capitalised keys):
//!   `{"Service":{"name":"student_service",..},"Action":"get"}` or
//!   `{"Service":null,"Action":"list"}`. Every process holding nodes of the service (for
//!   `get`), or of any service (for `list`), answers on the inbox with one bare
//!   [`Service`] JSON (lowercase keys) per version it holds. The asker collects answers for
//!   [`NatsRegistryOptions::timeout`] (100 ms, go-micro's), or until `get` has
//!   [`NatsRegistryOptions::quorum`] nodes, and merges them by name and version (nodes
//!   de-duplicated by id, which go-micro does not do).
//! - **Register** subscribes to the query subject once per service name (no queue group, as
//!   go-micro) and publishes `{"Service":{..},"Action":"create"}` to `micro.nats.watch`; every
//!   heartbeat publishes it again, as go-micro's re-registration does.
//! - **Deregister** drops the nodes, unsubscribes when none of the name is left, and
//!   publishes `{"Service":{..},"Action":"delete"}`.
//! - **Watch** subscribes to `micro.nats.watch`; keys are read in either case, as Go's
//!   decoder does; `create`, `update` and `delete` are understood, anything else (and a
//!   message that is not a `Result` with a service) is logged and skipped.
//!
//! Liveness: a process that dies stops answering, so its nodes vanish from queries at once
//! (no delete event is sent: watchers learn of it only from the next query). go-micro ignores
//! the TTL; rmicro stops answering for a node that was not registered again within its TTL,
//! so a process whose heartbeat hangs does not keep advertising itself. A NATS server restart
//! loses nothing that matters: the client reconnects and restores its subscriptions, and
//! answers resume.
//!
//! `--registry_address`: comma-separated `nats://host:port` (a bare `host:port` gets
//! `nats://`), `tls://host:port`, credentials as userinfo; default `nats://127.0.0.1:4222`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{Action, Change, RegisterOptions, Registry, Service, WatchOptions, Watcher};
use crate::config::Options;
use crate::nats_conn::{ConnOptions, Connection, DEFAULT_ADDRESS};
use crate::{Error, Result};

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// go-micro's query subject.
pub const QUERY_SUBJECT: &str = "micro.nats.query";
/// go-micro's watch subject.
pub const WATCH_SUBJECT: &str = "micro.nats.watch";

/// Options of [`NatsRegistry`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsRegistryOptions {
    /// Server addresses (see the [module docs](self)). Default `nats://127.0.0.1:4222`.
    pub addresses: Vec<String>,
    /// How long a query collects answers. Default 100 ms, go-micro's.
    pub timeout: Duration,
    /// `get_service` returns as soon as this many nodes answered (0: always wait
    /// [`timeout`](Self::timeout)), as go-micro's `nats.Quorum`.
    pub quorum: usize,
    /// How long a call waits for a connection to the server. Default 10 s.
    pub connect_timeout: Duration,
    /// The query subject. Default [`QUERY_SUBJECT`].
    pub query_subject: String,
    /// The watch subject. Default [`WATCH_SUBJECT`].
    pub watch_subject: String,
}

impl Default for NatsRegistryOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            timeout: Duration::from_millis(100),
            quorum: 0,
            connect_timeout: Duration::from_secs(10),
            query_subject: QUERY_SUBJECT.to_owned(),
            watch_subject: WATCH_SUBJECT.to_owned(),
        }
    }
}

/// The NATS [`Registry`]; see the [module docs](self). Clones share one connection and the
/// nodes registered; when the last clone is dropped its subscriptions end, and its nodes are
/// no longer answered for.
#[derive(Clone)]
pub struct NatsRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    opts: NatsRegistryOptions,
    conn: Connection,
    /// What this process registered, by service name.
    local: Arc<Mutex<HashMap<String, Local>>>,
}

/// The nodes of one service name registered here, and the task answering queries for them.
struct Local {
    /// By (version, node id): the service holding that node, and when it stops being
    /// answered for unless registered again.
    nodes: BTreeMap<(String, String), (Service, Option<Instant>)>,
    responder: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for local in lock(&self.local).values() {
            local.responder.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for NatsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsRegistry")
            .field("address", &self.inner.conn.address())
            .field("services", &lock(&self.inner.local).len())
            .finish()
    }
}

/// go-micro's `registry.Result`, as sent: `{"Service":..,"Action":..}`.
#[derive(Serialize)]
struct Outgoing<'a> {
    #[serde(rename = "Service")]
    service: Option<&'a Service>,
    #[serde(rename = "Action")]
    action: &'a str,
}

/// go-micro's `registry.Result`, as received (Go matches keys in any case).
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "Service", alias = "service", default)]
    service: Option<Service>,
    #[serde(rename = "Action", alias = "action", default)]
    action: String,
}

impl NatsRegistry {
    /// A registry for the servers in `opts`. Validates the addresses; connects nothing yet.
    pub fn new(opts: NatsRegistryOptions) -> Result<Self> {
        let conn = Connection::new(
            ERROR_ID,
            "nats registry",
            &opts.addresses,
            ConnOptions {
                connect_timeout: opts.connect_timeout,
                ack_timeout: opts.connect_timeout,
                subscription_capacity: 65_536,
                max_backoff: Duration::from_secs(5),
                name: "rmicro-registry".to_owned(),
            },
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                conn,
                local: Arc::new(Mutex::new(HashMap::new())),
            }),
        })
    }

    /// The registry `--registry=nats --registry_address=...` names.
    pub fn from_config(options: &Options) -> Result<Self> {
        Self::new(NatsRegistryOptions {
            addresses: vec![options.registry_address.clone()],
            ..NatsRegistryOptions::default()
        })
    }

    /// The options this registry was built with.
    pub fn options(&self) -> &NatsRegistryOptions {
        &self.inner.opts
    }

    /// Subscribes to `subject`; the error names the subject and the servers.
    async fn subscribe(
        &self,
        client: &async_nats::Client,
        subject: &str,
    ) -> Result<async_nats::Subscriber> {
        client.subscribe(subject.to_owned()).await.map_err(|e| {
            Error::service_unavailable(
                ERROR_ID,
                format!(
                    "nats registry: cannot subscribe to `{subject}` at `{}`: {e}",
                    self.inner.conn.address()
                ),
            )
        })
    }

    /// Publishes a watch event and flushes, so that `Ok` means the server has it.
    async fn announce(
        &self,
        client: &async_nats::Client,
        service: &Service,
        action: &str,
    ) -> Result<()> {
        let payload = serde_json::to_vec(&Outgoing {
            service: Some(service),
            action,
        })
        .map_err(|e| Error::internal_server_error(ERROR_ID, format!("nats registry: {e}")))?;
        client
            .publish(self.inner.opts.watch_subject.clone(), payload.into())
            .await
            .map_err(|e| {
                Error::service_unavailable(
                    ERROR_ID,
                    format!(
                        "nats registry: cannot publish `{action}` of `{}` to `{}`: {e}",
                        service.name,
                        self.inner.conn.address()
                    ),
                )
            })?;
        self.inner
            .conn
            .flush(client, &format!("`{action}` of `{}`", service.name))
            .await
    }

    /// Asks every process and merges the answers by name and version.
    async fn query(&self, action: &str, name: Option<&str>) -> Result<Vec<Service>> {
        let client = self.inner.conn.connected().await?;
        let unavailable = |what: &str, e: &dyn fmt::Display| {
            Error::service_unavailable(
                ERROR_ID,
                format!(
                    "nats registry: cannot {what} at `{}`: {e}",
                    self.inner.conn.address()
                ),
            )
        };
        let inbox = client.new_inbox();
        let mut answers = self.subscribe(&client, &inbox).await?;
        let asked = name.map(|name| Service {
            name: name.to_owned(),
            ..Service::default()
        });
        let payload = serde_json::to_vec(&Outgoing {
            service: asked.as_ref(),
            action,
        })
        .map_err(|e| Error::internal_server_error(ERROR_ID, format!("nats registry: {e}")))?;
        client
            .publish_with_reply(self.inner.opts.query_subject.clone(), inbox, payload.into())
            .await
            .map_err(|e| unavailable("send a query", &e))?;
        client
            .flush()
            .await
            .map_err(|e| unavailable("send a query", &e))?;

        let mut merged: BTreeMap<(String, String), Service> = BTreeMap::new();
        let deadline = tokio::time::sleep(self.inner.opts.timeout);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                () = &mut deadline => break,
                msg = answers.next() => match msg {
                    Some(msg) => msg,
                    None => break,
                },
            };
            let service: Service = match serde_json::from_slice(&msg.payload) {
                Ok(s) => s,
                Err(err) => {
                    tracing::debug!(error = %err, "nats registry: skipping an answer that is not a service");
                    continue;
                }
            };
            if name.is_some_and(|n| n != service.name) {
                continue;
            }
            let entry = merged
                .entry((service.name.clone(), service.version.clone()))
                .or_insert_with(|| Service {
                    nodes: Vec::new(),
                    ..service.clone()
                });
            for node in service.nodes {
                if !entry.nodes.iter().any(|n| n.id == node.id) {
                    entry.nodes.push(node);
                }
            }
            let quorum = self.inner.opts.quorum;
            if name.is_some()
                && quorum > 0
                && merged.values().map(|s| s.nodes.len()).sum::<usize>() >= quorum
            {
                break;
            }
        }
        let _ = answers.unsubscribe().await;
        Ok(merged.into_values().collect())
    }
}

/// Answers queries about `name` from what this process registered.
async fn respond(
    client: async_nats::Client,
    mut queries: async_nats::Subscriber,
    name: String,
    local: Arc<Mutex<HashMap<String, Local>>>,
) {
    while let Some(msg) = queries.next().await {
        let Some(reply) = msg.reply else { continue };
        let query: Incoming = match serde_json::from_slice(&msg.payload) {
            Ok(q) => q,
            Err(err) => {
                tracing::debug!(error = %err, "nats registry: skipping a query that is not a registry result");
                continue;
            }
        };
        let wanted = match query.action.as_str() {
            "get" => query.service.is_some_and(|s| s.name == name),
            "list" => true,
            _ => false,
        };
        if !wanted {
            continue;
        }
        for service in answer(&local, &name) {
            let Ok(payload) = serde_json::to_vec(&service) else {
                continue;
            };
            if let Err(err) = client.publish(reply.clone(), payload.into()).await {
                tracing::debug!(error = %err, service = %name, "nats registry: cannot answer a query");
            }
        }
    }
}

/// The live nodes of `name` registered here, one service per version.
fn answer(local: &Mutex<HashMap<String, Local>>, name: &str) -> Vec<Service> {
    let now = Instant::now();
    let local = lock(local);
    let Some(entry) = local.get(name) else {
        return Vec::new();
    };
    let mut by_version: BTreeMap<&str, Service> = BTreeMap::new();
    for ((version, _), (service, expires)) in &entry.nodes {
        if expires.is_some_and(|at| at <= now) {
            continue;
        }
        by_version
            .entry(version)
            .or_insert_with(|| Service {
                nodes: Vec::new(),
                ..service.clone()
            })
            .nodes
            .extend(service.nodes.iter().cloned());
    }
    by_version.into_values().collect()
}

#[async_trait]
impl Registry for NatsRegistry {
    fn name(&self) -> &str {
        "nats"
    }

    /// Keeps the nodes here to answer for (for `opts.ttl` unless registered again), answers
    /// queries about the name from now on, and announces `create`.
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        let client = self.inner.conn.connected().await?;
        let listening = lock(&self.inner.local).contains_key(&service.name);
        if !listening {
            let queries = self
                .subscribe(&client, &self.inner.opts.query_subject)
                .await?;
            let mut local = lock(&self.inner.local);
            if !local.contains_key(&service.name) {
                let task = tokio::spawn(respond(
                    client.clone(),
                    queries,
                    service.name.clone(),
                    Arc::clone(&self.inner.local),
                ));
                local.insert(
                    service.name.clone(),
                    Local {
                        nodes: BTreeMap::new(),
                        responder: task.abort_handle(),
                    },
                );
            }
        }
        {
            let expires = (!opts.ttl.is_zero()).then(|| Instant::now() + opts.ttl);
            let mut local = lock(&self.inner.local);
            if let Some(entry) = local.get_mut(&service.name) {
                let now = Instant::now();
                entry
                    .nodes
                    .retain(|_, (_, at)| !at.is_some_and(|at| at <= now));
                for node in &service.nodes {
                    let one = Service {
                        nodes: vec![node.clone()],
                        ..service.clone()
                    };
                    entry
                        .nodes
                        .insert((service.version.clone(), node.id.clone()), (one, expires));
                }
            }
        }
        // The SUB is at the server before the announcement, so an answer follows it.
        self.announce(&client, service, "create").await
    }

    /// Forgets the nodes, stops answering for the name when none is left, announces `delete`.
    async fn deregister(&self, service: &Service) -> Result<()> {
        {
            let mut local = lock(&self.inner.local);
            if let Some(entry) = local.get_mut(&service.name) {
                for node in &service.nodes {
                    entry
                        .nodes
                        .remove(&(service.version.clone(), node.id.clone()));
                }
                if entry.nodes.is_empty()
                    && let Some(entry) = local.remove(&service.name)
                {
                    entry.responder.abort();
                }
            }
        }
        let client = self.inner.conn.connected().await?;
        self.announce(&client, service, "delete").await
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        self.query("get", Some(name)).await
    }

    /// Every service with its nodes, sorted by name then version (go-micro's list keeps
    /// only names and versions).
    async fn list_services(&self) -> Result<Vec<Service>> {
        self.query("list", None).await
    }

    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        let client = self.inner.conn.connected().await?;
        let events = self
            .subscribe(&client, &self.inner.opts.watch_subject)
            .await?;
        // The SUB reaches the server before this returns: nothing announced later is missed.
        self.inner.conn.flush(&client, "watch subscription").await?;
        let only = opts.service;
        Ok(events
            .filter_map(move |msg| {
                let change = decode_change(&msg.payload, only.as_deref());
                std::future::ready(change.map(Ok))
            })
            .boxed())
    }
}

/// A watch message as a change, if it is one about `only` (or any service).
fn decode_change(payload: &[u8], only: Option<&str>) -> Option<Change> {
    let result: Incoming = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(error = %err, "nats registry: skipping a watch message that is not a registry result");
            return None;
        }
    };
    let Some(service) = result.service else {
        tracing::warn!(action = %result.action, "nats registry: skipping a watch message without a service");
        return None;
    };
    if only.is_some_and(|name| name != service.name) {
        return None;
    }
    let action = match result.action.as_str() {
        "create" => Action::Create,
        "update" => Action::Update,
        "delete" => Action::Delete,
        other => {
            tracing::debug!(
                action = other,
                "nats registry: skipping an unknown watch action"
            );
            return None;
        }
    };
    Some(Change { action, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_go_micros_results() {
        let asked = Service {
            name: "student_service".into(),
            ..Service::default()
        };
        let get = serde_json::to_value(Outgoing {
            service: Some(&asked),
            action: "get",
        })
        .expect("json");
        assert_eq!(get["Action"], "get");
        assert_eq!(get["Service"]["name"], "student_service");
        let list = serde_json::to_string(&Outgoing {
            service: None,
            action: "list",
        })
        .expect("json");
        assert_eq!(list, r#"{"Service":null,"Action":"list"}"#);
    }

    #[test]
    fn watch_messages_decode_in_either_case_and_filter() {
        let go = br#"{"Service":{"name":"s","version":"latest","metadata":null,"endpoints":null,
            "nodes":[{"id":"s-1","address":"10.0.0.1:1","metadata":null}]},"Action":"create"}"#;
        let change = decode_change(go, Some("s")).expect("a change");
        assert_eq!(change.action, Action::Create);
        assert_eq!(change.service.nodes[0].id, "s-1");
        assert!(decode_change(go, Some("other")).is_none());
        let lower = br#"{"service":{"name":"s"},"action":"delete"}"#;
        assert_eq!(
            decode_change(lower, None).expect("a change").action,
            Action::Delete
        );
        for bad in [
            &br#"{"Service":null,"Action":"create"}"#[..],
            br#"{"Service":{"name":"s"},"Action":"explode"}"#,
            b"not json",
        ] {
            assert!(decode_change(bad, None).is_none());
        }
    }
}
