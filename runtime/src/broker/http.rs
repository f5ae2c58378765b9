//! The default broker: go-micro's http broker.
//!
//! Wire (go-micro v2+ `broker/http.go`, which this follows so that Go and Rust peers exchange
//! messages):
//!
//! - every subscription registers the service `micro.http.broker`, version = its queue name or
//!   `ff.http.broadcast`, with one node `{id: "<topic>-<uuid>", address: <broker address>,
//!   metadata: {broker: "http", topic: <topic>, secure: "false"}}`, under a TTL (60 s, as
//!   go-micro), re-registered every 30 s until unsubscribed;
//! - a publisher stamps `Micro-Topic` and `Micro-ID`, encodes the JSON envelope
//!   `{"Header":{..},"Body":"<base64>"}` and, for each version of `micro.http.broker`, POSTs it
//!   (`Content-Type: application/json`) to `http://<node address>/?id=<node id>` of every node
//!   whose `topic` is the topic (broadcast), or of one random such node (queue group);
//! - the subscriber's server reads the topic from the envelope's `Micro-Topic` header and runs
//!   the handler of the subscription with that node id before replying `200`.
//!
//! Where rmicro differs from go-micro, on purpose:
//!
//! - **Publish failures reach the caller.** go-micro publishes in the background and drops
//!   failures; here `publish` returns when every chosen subscriber has answered, and an
//!   unreachable subscriber, a timeout or an error reply is an `Err` naming the subscriber's
//!   node id and address (delivery to the other subscribers still happens). A queue group
//!   tries its members in random order until one takes the message; it moves on only when
//!   the message surely did not arrive (no connection, an error reply), not after a timeout
//!   or a connection lost mid-request, which could deliver it twice.
//! - **No subscribers is not an error.** Publishing to a topic nobody subscribes to is
//!   `Ok(())`: in pub/sub the publisher does not know or care who listens. Likewise a broker
//!   that answers `404` ("no such subscription": it was unsubscribed after the publisher looked
//!   it up) counts as not subscribed.
//! - **One node id per subscription** (`<topic>-<uuid>` with a fresh uuid each time; go-micro
//!   reuses one uuid per broker). go-micro's choice delivers twice when one broker subscribes
//!   twice to a topic, and makes one subscription's deregistration remove the other's node.
//!   Peers only echo the id back, so this changes nothing on the wire.
//! - **Replies** to bad requests carry go-micro's error JSON with a 4xx status (go-micro
//!   answers 500 for a malformed envelope or a missing topic).
//! - **No offline inbox** (go-micro keeps up to 64 failed messages per topic in memory and
//!   retries them on the next publish): failures are reported instead.
//! - **Plain HTTP only.** A node registered with `secure=true` (a go-micro peer using TLS) is
//!   reported as unreachable.
//!
//! # Registry lookups
//!
//! Publishing must not cost a registry round trip in steady state, so the broker caches
//! `micro.http.broker`. The cache is kept honest by a registry watch that `publish` drains
//! without waiting (no background task): a change that would alter the cached nodes drops the
//! cache, and the next publish reads the registry again. Heartbeats (re-registrations of
//! identical nodes) leave it alone. Draining inside `publish` means a subscription registered
//! in-process is seen by the very next publish, with no race against a watcher task. As a
//! safety net for registries whose watch misses changes, the cache is also dropped after
//! [`HttpBrokerOptions::cache_ttl`] and after any failed delivery.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::seq::SliceRandom as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::kit::{self, ERROR_ID, Handle, Stop};
use super::{
    Broker, Event, HEADER_TOPIC, Handler, Message, PublishOptions, SubscribeOptions, Subscriber,
    stamp,
};
use crate::registry::{
    Action, Change, Metadata, Node, RegisterOptions, Service, SharedRegistry, WatchOptions, Watcher,
};
use crate::{Error, Result};

/// The registry service every http-broker subscription registers under.
pub const SERVICE_NAME: &str = "micro.http.broker";
/// The version of broadcast (queue-less) subscriptions.
pub const BROADCAST_VERSION: &str = "ff.http.broadcast";
/// The id of errors raised by the broker, as go-micro's.
/// How much of an error reply is read.
const MAX_REPLY: usize = 64 * 1024;
/// How long after a failed `watch` the next publish tries again.
const WATCH_RETRY: Duration = Duration::from_secs(10);

/// Options of [`HttpBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpBrokerOptions {
    /// Where the broker's server listens, `host:port`. Default `127.0.0.1:0` (a free port on
    /// loopback).
    pub address: String,
    /// The address registered for subscribers, when it is not the bound one (a NAT, a
    /// container). Required when `address` is an unspecified IP such as `0.0.0.0`.
    pub advertise: Option<String>,
    /// TTL of subscription registrations. Default 60 s, as go-micro.
    pub register_ttl: Duration,
    /// How often subscriptions are registered again. Default 30 s, as go-micro.
    pub register_interval: Duration,
    /// How long one delivery may take, connection and the subscriber's handler included.
    /// Default 30 s.
    pub publish_timeout: Duration,
    /// Largest message envelope the server accepts; larger ones get `413`. Default 4 MiB.
    pub max_message_size: usize,
    /// Longest time a publisher trusts its cached view of the subscribers. Default 30 s.
    pub cache_ttl: Duration,
}

impl Default for HttpBrokerOptions {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:0".to_owned(),
            advertise: None,
            register_ttl: Duration::from_secs(60),
            register_interval: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(30),
            max_message_size: 4 * 1024 * 1024,
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// go-micro's http broker: subscribers run an HTTP server and register in the service registry;
/// publishers look them up and POST the message envelope to them. See the [module
/// docs](self) for the wire and for where it differs from go-micro.
///
/// `connect` starts the server; `subscribe` needs a connected broker; `disconnect`
/// deregisters and drops every subscription and stops the server. `publish` works whether or
/// not this broker is connected. Clones share state. Dropping the last clone without
/// `disconnect` stops the server and the heartbeat; the registrations then lapse with their
/// TTL.
#[derive(Clone)]
pub struct HttpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    registry: SharedRegistry,
    opts: HttpBrokerOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    /// node id -> subscription. Read by the server; written under `ops`.
    subs: Arc<RwLock<HashMap<String, Arc<Sub>>>>,
    /// Serialises connect, disconnect, subscribe, unsubscribe and heartbeats, so that a
    /// heartbeat never registers again a subscription being removed.
    ops: tokio::sync::Mutex<()>,
    running: Mutex<Option<Running>>,
    cache: Mutex<Cache>,
}

struct Running {
    /// The bound address.
    bound: SocketAddr,
    /// The address registered for subscribers.
    advertised: String,
    /// `true` stops the server and the heartbeat; dropping it does too.
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

struct Sub {
    id: String,
    topic: Arc<str>,
    version: String,
    handler: Handler,
}

impl Sub {
    fn record(&self, address: &str) -> Service {
        Service {
            name: SERVICE_NAME.to_owned(),
            version: self.version.clone(),
            nodes: vec![Node {
                id: self.id.clone(),
                address: address.to_owned(),
                metadata: Metadata::from([
                    ("broker".to_owned(), "http".to_owned()),
                    ("secure".to_owned(), "false".to_owned()),
                    ("topic".to_owned(), self.topic.to_string()),
                ]),
            }],
            ..Service::default()
        }
    }
}

#[derive(Default)]
struct Cache {
    services: Option<(Arc<Vec<Service>>, Instant)>,
    /// Bumped by every invalidation, so that a lookup started before one does not store its
    /// stale answer.
    generation: u64,
    watcher: Option<Watcher>,
    /// When the last `watch` failed (retry after [`WATCH_RETRY`]).
    watch_failed: Option<Instant>,
}

impl Cache {
    fn invalidate(&mut self) {
        self.services = None;
        self.generation += 1;
    }

    /// Whether `change` leaves the cached nodes as they are (a heartbeat).
    fn unchanged_by(&self, change: &Change) -> bool {
        let Some((services, _)) = &self.services else {
            return false;
        };
        let cached = |node: &Node| {
            services
                .iter()
                .filter(|s| s.version == change.service.version)
                .flat_map(|s| &s.nodes)
                .find(|n| n.id == node.id)
        };
        change.service.nodes.iter().all(|node| match change.action {
            Action::Create | Action::Update => cached(node).is_some_and(|n| n == node),
            Action::Delete => cached(node).is_none(),
        })
    }

    /// Applies every change the watch has ready, without waiting.
    fn drain_watch(&mut self) {
        while let Some(watcher) = self.watcher.as_mut() {
            match watcher.next().now_or_never() {
                None => return,
                Some(Some(Ok(change))) => {
                    if !self.unchanged_by(&change) {
                        self.invalidate();
                    }
                }
                Some(Some(Err(err))) => {
                    tracing::debug!(error = %err, "registry watch error; dropping the cache");
                    self.invalidate();
                }
                Some(None) => {
                    tracing::debug!("registry watch ended; dropping the cache");
                    self.watcher = None;
                    self.invalidate();
                }
            }
        }
    }
}

impl fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBroker")
            .field("address", &self.address())
            .field("registry", &self.inner.registry.name())
            .field("subscriptions", &self.inner.read_subs().len())
            .finish()
    }
}

impl Inner {
    fn read_subs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Sub>>> {
        self.subs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_subs(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Sub>>> {
        self.subs.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn advertised(&self) -> Option<String> {
        self.running().as_ref().map(|r| r.advertised.clone())
    }

    /// The `micro.http.broker` records, from the cache when it is fresh.
    async fn lookup(&self) -> Result<Arc<Vec<Service>>> {
        let want_watch = {
            let cache = self.cache();
            cache.watcher.is_none()
                && cache
                    .watch_failed
                    .is_none_or(|at| at.elapsed() >= WATCH_RETRY)
        };
        if want_watch {
            // Watch first, then read: no change falls between the two.
            let watched = self
                .registry
                .watch(WatchOptions::service(SERVICE_NAME))
                .await;
            let mut cache = self.cache();
            match watched {
                Ok(watcher) => {
                    cache.watcher = Some(watcher);
                    cache.watch_failed = None;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "cannot watch the registry; caching for `cache_ttl` only");
                    cache.watch_failed = Some(Instant::now());
                }
            }
            cache.invalidate();
        }
        let generation = {
            let mut cache = self.cache();
            cache.drain_watch();
            match &cache.services {
                Some((services, at)) if at.elapsed() < self.opts.cache_ttl => {
                    return Ok(Arc::clone(services));
                }
                _ => cache.generation,
            }
        };
        let services = Arc::new(self.registry.get_service(SERVICE_NAME).await?);
        let mut cache = self.cache();
        cache.drain_watch();
        if cache.generation == generation {
            cache.services = Some((Arc::clone(&services), Instant::now()));
        }
        Ok(services)
    }

    /// POSTs `body` to `node`.
    async fn post(&self, node: &Node, body: Bytes) -> Outcome {
        if node.metadata.get("secure").is_some_and(|s| s == "true") {
            return Outcome::NotDelivered(format!(
                "subscriber `{}` at `{}` wants https, which rmicro's http broker does not speak",
                node.id, node.address
            ));
        }
        let uri = format!("http://{}/?id={}", node.address, query_escape(&node.id));
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                return Outcome::NotDelivered(format!(
                    "subscriber `{}` has an unusable address `{}`: {err}",
                    node.id, node.address
                ));
            }
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| (e.is_connect(), chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, (bool, String)>((status, body))
        };
        match tokio::time::timeout(self.opts.publish_timeout, exchange).await {
            Err(_) => Outcome::Unsure(format!(
                "subscriber `{}` at `{}` did not answer within {:?}",
                node.id, node.address, self.opts.publish_timeout
            )),
            Ok(Err((true, err))) => Outcome::NotDelivered(format!(
                "subscriber `{}` at `{}` is unreachable: {err}",
                node.id, node.address
            )),
            Ok(Err((false, err))) => Outcome::Unsure(format!(
                "subscriber `{}` at `{}` failed: {err}",
                node.id, node.address
            )),
            Ok(Ok((StatusCode::OK, _))) => Outcome::Delivered,
            Ok(Ok((status, body))) => {
                let err = Error::parse(&String::from_utf8_lossy(&body));
                // Only an http broker's own "no such subscription" means gone.
                if status == StatusCode::NOT_FOUND && err.id == ERROR_ID {
                    return Outcome::Gone;
                }
                // go-micro's server and ours answer an error only before running a handler.
                Outcome::NotDelivered(format!(
                    "subscriber `{}` at `{}` replied {status}: {}",
                    node.id, node.address, err.detail
                ))
            }
        }
    }

    /// Registers every subscription again (the heartbeat).
    async fn reregister(&self) {
        let _ops = self.ops.lock().await;
        let Some(address) = self.advertised() else {
            return;
        };
        let records: Vec<Service> = self
            .read_subs()
            .values()
            .map(|sub| sub.record(&address))
            .collect();
        let opts = RegisterOptions::ttl(self.opts.register_ttl);
        for record in records {
            if let Err(err) = self.registry.register(&record, opts).await {
                tracing::warn!(
                    node = %record.nodes[0].id,
                    error = %err,
                    "http broker: cannot register subscription again; retrying next interval"
                );
            }
        }
    }
}

/// What one POST came to.
enum Outcome {
    /// The subscriber replied 200.
    Delivered,
    /// The subscriber's broker replied 404: the subscription is gone.
    Gone,
    /// Not delivered (no connection, or an error reply); why, naming the node.
    NotDelivered(String),
    /// Maybe delivered (a timeout, a connection lost mid-request); why, naming the node.
    Unsure(String),
}

/// An error and its sources, `outer: inner: innermost`.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

impl HttpBroker {
    /// A broker that registers its subscriptions in `registry` and finds subscribers there.
    pub fn new(registry: SharedRegistry, opts: HttpBrokerOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                registry,
                opts,
                client,
                subs: Arc::default(),
                ops: tokio::sync::Mutex::new(()),
                running: Mutex::new(None),
                cache: Mutex::new(Cache::default()),
            }),
        }
    }

    /// The options the broker was made with.
    pub fn options(&self) -> &HttpBrokerOptions {
        &self.inner.opts
    }
}

#[async_trait]
impl Broker for HttpBroker {
    fn name(&self) -> &str {
        "http"
    }

    /// The bound `host:port` once connected, the configured address before.
    fn address(&self) -> String {
        match self.inner.running().as_ref() {
            Some(running) => running.bound.to_string(),
            None => self.inner.opts.address.clone(),
        }
    }

    /// Listening: its own server is the broker.
    fn connected(&self) -> Option<bool> {
        Some(self.inner.running().is_some())
    }

    async fn connect(&self) -> Result<()> {
        let _ops = self.inner.ops.lock().await;
        if self.inner.running().is_some() {
            return Ok(());
        }
        let configured = &self.inner.opts.address;
        let listener = TcpListener::bind(configured.as_str()).await.map_err(|e| {
            Error::internal_server_error(
                ERROR_ID,
                format!("http broker cannot listen on `{configured}`: {e}"),
            )
        })?;
        let bound = listener.local_addr().map_err(|e| {
            Error::internal_server_error(ERROR_ID, format!("http broker has no local address: {e}"))
        })?;
        let advertised = match &self.inner.opts.advertise {
            Some(advertise) => advertise.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!(
                        "http broker listens on `{bound}`, an address peers cannot dial; \
                         set `advertise` to the address they should use"
                    ),
                ));
            }
            None => bound.to_string(),
        };
        let (shutdown, stop) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&self.inner.subs),
            self.inner.opts.max_message_size,
            stop.clone(),
        ));
        tokio::spawn(heartbeat(
            Arc::downgrade(&self.inner),
            self.inner.opts.register_interval,
            stop,
        ));
        tracing::debug!(address = %bound, advertised = %advertised, "http broker listening");
        *self.inner.running() = Some(Running {
            bound,
            advertised,
            shutdown,
            server,
        });
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        let _ops = self.inner.ops.lock().await;
        let Some(running) = self.inner.running().take() else {
            return Ok(());
        };
        let subs: Vec<Arc<Sub>> = self.inner.write_subs().drain().map(|(_, s)| s).collect();
        let mut failures = Vec::new();
        for sub in subs {
            if let Err(err) = self
                .inner
                .registry
                .deregister(&sub.record(&running.advertised))
                .await
            {
                failures.push(format!("`{}`: {}", sub.id, err.detail));
            }
        }
        // Stop accepting; open connections finish their request and close.
        let _ = running.shutdown.send(true);
        let _ = running.server.await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "http broker stopped, but could not deregister subscriptions {}",
                    failures.join(", ")
                ),
            ))
        }
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        stamp(topic, &mut msg);
        let span = tracing::debug_span!(
            "broker.publish",
            broker = "http",
            topic,
            id = msg.id().unwrap_or_default()
        );
        async {
            let body = Bytes::from(msg.to_envelope());
            let services = self.inner.lookup().await?;

            // Broadcast: every node. Queue group: its members in random order, until one
            // takes the message.
            let mut broadcast: Vec<&Node> = Vec::new();
            let mut groups: Vec<(&str, Vec<&Node>)> = Vec::new();
            {
                let mut rng = rand::rng();
                for service in services.iter() {
                    let mut nodes: Vec<&Node> = service
                        .nodes
                        .iter()
                        .filter(|n| {
                            n.metadata.get("broker").is_some_and(|b| b == "http")
                                && n.metadata.get("topic").is_some_and(|t| t == topic)
                        })
                        .collect();
                    if nodes.is_empty() {
                    } else if service.version == BROADCAST_VERSION {
                        broadcast.extend(nodes);
                    } else {
                        nodes.shuffle(&mut rng);
                        groups.push((service.version.as_str(), nodes));
                    }
                }
            }
            if broadcast.is_empty() && groups.is_empty() {
                tracing::debug!("no subscribers");
                return Ok(());
            }

            let inner = &self.inner;
            let to_all = broadcast.iter().map(|node| {
                let body = body.clone();
                async move {
                    match inner.post(node, body).await {
                        Outcome::Delivered => Vec::new(),
                        Outcome::Gone => {
                            tracing::debug!(node = %node.id, "subscription gone");
                            Vec::new()
                        }
                        Outcome::NotDelivered(why) | Outcome::Unsure(why) => vec![why],
                    }
                }
                .boxed()
            });
            let to_one = groups.iter().map(|(queue, members)| {
                let body = body.clone();
                async move {
                    let mut failures = Vec::new();
                    for node in members {
                        match inner.post(node, body.clone()).await {
                            Outcome::Delivered => {
                                for why in &failures {
                                    tracing::warn!(queue, "queue member skipped: {why}");
                                }
                                return Vec::new();
                            }
                            Outcome::Gone => {}
                            Outcome::NotDelivered(why) => failures.push(why),
                            // Another member could get it twice: stop here.
                            Outcome::Unsure(why) => {
                                failures.push(why);
                                break;
                            }
                        }
                    }
                    failures
                        .into_iter()
                        .map(|why| format!("queue `{queue}`: {why}"))
                        .collect()
                }
                .boxed()
            });
            let failures: Vec<String> = futures::future::join_all(to_all.chain(to_one))
                .await
                .into_iter()
                .flatten()
                .collect();
            if failures.is_empty() {
                return Ok(());
            }
            // A subscriber that failed may have gone: look again next time.
            self.inner.cache().invalidate();
            Err(Error::internal_server_error(
                ERROR_ID,
                format!("cannot publish to `{topic}`: {}", failures.join("; ")),
            ))
        }
        .instrument(span)
        .await
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let _ops = self.inner.ops.lock().await;
        let Some(address) = self.inner.advertised() else {
            return Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "cannot subscribe to `{topic}`: the http broker is not connected; call `connect` first"
                ),
            ));
        };
        let sub = Arc::new(Sub {
            id: format!("{topic}-{}", crate::id::uuid()),
            topic: Arc::from(topic),
            version: opts
                .queue
                .clone()
                .unwrap_or_else(|| BROADCAST_VERSION.to_owned()),
            handler,
        });
        // Known to the server before anyone can find it in the registry.
        self.inner
            .write_subs()
            .insert(sub.id.clone(), Arc::clone(&sub));
        let record = sub.record(&address);
        let ttl = RegisterOptions::ttl(self.inner.opts.register_ttl);
        if let Err(err) = self.inner.registry.register(&record, ttl).await {
            self.inner.write_subs().remove(&sub.id);
            return Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "cannot subscribe to `{topic}`: registering in `{}` failed: {}",
                    self.inner.registry.name(),
                    err.detail
                ),
            ));
        }
        tracing::debug!(topic, node = %sub.id, queue = ?opts.queue, "subscribed");
        Ok(Handle::boxed(
            "http",
            topic,
            opts,
            HttpStop {
                id: sub.id.clone(),
                broker: Arc::downgrade(&self.inner),
            },
        ))
    }
}

/// How a subscription of an [`HttpBroker`] stops: it leaves the registry and the server.
struct HttpStop {
    id: String,
    broker: Weak<Inner>,
}

#[async_trait]
impl Stop for HttpStop {
    /// Deregisters the subscription, then stops delivery. Unsubscribing twice, or after the
    /// broker disconnected, does nothing.
    async fn stop(&self, topic: &str) -> Result<()> {
        let Some(inner) = self.broker.upgrade() else {
            return Ok(());
        };
        let _ops = inner.ops.lock().await;
        let Some(sub) = inner.read_subs().get(&self.id).cloned() else {
            return Ok(());
        };
        let address = inner.advertised().unwrap_or_default();
        let deregistered = inner.registry.deregister(&sub.record(&address)).await;
        inner.write_subs().remove(&self.id);
        deregistered.map_err(|err| {
            Error::internal_server_error(
                ERROR_ID,
                format!(
                    "unsubscribed from `{topic}`, but deregistering `{}` failed: {}",
                    self.id, err.detail
                ),
            )
        })
    }
}

/// Resolves once shutdown is asked for, or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// Registers every subscription again each `interval`, until shut down.
async fn heartbeat(inner: Weak<Inner>, interval: Duration, mut stop: watch::Receiver<bool>) {
    // A zero period would make the timer panic.
    let interval = interval.max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.reregister().await;
    }
}

type Subs = Arc<RwLock<HashMap<String, Arc<Sub>>>>;

/// Accepts connections until shut down.
async fn serve(listener: TcpListener, subs: Subs, max: usize, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %err, "http broker cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let subs = Arc::clone(&subs);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let subs = Arc::clone(&subs);
                async move { Ok::<_, Infallible>(handle(req, &subs, max).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "http broker connection ended");
            }
        });
    }
}

fn reply(err: &Error) -> Response<Full<Bytes>> {
    let status = u16::try_from(err.code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(Bytes::from(err.to_json())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves `POST /?id=<node id>` with a message envelope.
async fn handle(req: Request<Incoming>, subs: &Subs, max: usize) -> Response<Full<Bytes>> {
    match deliver(req, subs, max).await {
        Ok(()) => Response::new(Full::new(Bytes::new())),
        Err(err) => {
            tracing::debug!(error = %err, "http broker refused a message");
            reply(&err)
        }
    }
}

async fn deliver(req: Request<Incoming>, subs: &Subs, max: usize) -> Result<()> {
    if req.method() != Method::POST {
        return Err(Error::method_not_allowed(
            ERROR_ID,
            format!(
                "method `{}` not allowed; the http broker takes `POST /?id=<subscriber id>`",
                req.method()
            ),
        ));
    }
    let id = req
        .uri()
        .query()
        .and_then(|q| query_param(q, "id"))
        .transpose()?
        .unwrap_or_default();
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Error::payload_too_large(
            ERROR_ID,
            format!("message envelope larger than the limit of {max} bytes"),
        ));
    }
    let body = Limited::new(req.into_body(), max)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<LengthLimitError>() {
                Error::payload_too_large(
                    ERROR_ID,
                    format!("message envelope larger than the limit of {max} bytes"),
                )
            } else {
                Error::bad_request(ERROR_ID, format!("error reading request body: {err}"))
            }
        })?
        .to_bytes();
    let msg = Message::from_envelope(&body)?;
    let topic = msg
        .header
        .get(HEADER_TOPIC)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::bad_request(ERROR_ID, format!("message has no `{HEADER_TOPIC}` header"))
        })?;
    if id.is_empty() {
        return Err(Error::bad_request(
            ERROR_ID,
            "missing `id` query parameter naming the subscriber",
        ));
    }
    let sub = subs
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::not_found(ERROR_ID, format!("no subscription `{id}` here")))?;
    if *sub.topic != **topic {
        return Err(Error::not_found(
            ERROR_ID,
            format!(
                "subscription `{id}` is to `{}`, not to `{topic}`",
                sub.topic
            ),
        ));
    }
    let event = Event::new(Arc::clone(&sub.topic), msg);
    // go-micro too replies 200 when the handler fails: the publisher delivered; what the
    // handler made of it is the subscriber's business.
    if let kit::Outcome::Failed(error) = kit::run_handler("http", &sub.handler, event).await {
        tracing::warn!(topic = %sub.topic, %error, "http: subscriber failed");
    }
    Ok(())
}

/// The value of `key` in an `application/x-www-form-urlencoded` query, decoded.
fn query_param(query: &str, key: &str) -> Option<Result<String>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match form_decode(k) {
            Some(k) if k == key => Some(form_decode(v).ok_or_else(|| {
                Error::bad_request(ERROR_ID, format!("malformed query parameter `{key}`"))
            })),
            _ => None,
        }
    })
}

/// Decodes `+` and `%XX`; `None` for a bad escape or non-UTF-8 result.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`, the rest `%XX`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// Fuzzing: a delivery to the http broker: the query (`topic=..`) and the body (go-micro's
/// envelope), split at the first newline.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_delivery(data: &[u8]) {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = query_param(&String::from_utf8_lossy(query), "topic");
    let _ = super::Message::from_envelope(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_matches_go() {
        // Go: url.Values{"id": {"a/b c-ü~"}}.Encode() == "id=a%2Fb+c-%C3%BC~"
        assert_eq!(query_escape("a/b c-ü~"), "a%2Fb+c-%C3%BC~");
        assert_eq!(
            query_param("x=1&id=a%2Fb+c-%C3%BC~", "id")
                .expect("present")
                .expect("valid"),
            "a/b c-ü~"
        );
        assert!(query_param("id=%zz", "id").expect("present").is_err());
        assert!(query_param("id=%f", "id").expect("present").is_err());
        assert!(query_param("other=1", "id").is_none());
    }

    fn node(id: &str, version_topic: &str) -> Node {
        Node {
            id: id.into(),
            address: "127.0.0.1:1".into(),
            metadata: Metadata::from([("topic".into(), version_topic.into())]),
        }
    }

    #[test]
    fn heartbeats_leave_the_cache_alone_and_real_changes_drop_it() {
        let svc = |nodes: Vec<Node>| Service {
            name: SERVICE_NAME.into(),
            version: BROADCAST_VERSION.into(),
            nodes,
            ..Service::default()
        };
        let mut cache = Cache {
            services: Some((Arc::new(vec![svc(vec![node("t-1", "t")])]), Instant::now())),
            ..Cache::default()
        };
        let change = |action, nodes| Change {
            action,
            service: svc(nodes),
        };
        assert!(cache.unchanged_by(&change(Action::Update, vec![node("t-1", "t")])));
        assert!(cache.unchanged_by(&change(Action::Create, vec![node("t-1", "t")])));
        assert!(cache.unchanged_by(&change(Action::Delete, vec![node("t-2", "t")])));
        assert!(!cache.unchanged_by(&change(Action::Update, vec![node("t-1", "u")])));
        assert!(!cache.unchanged_by(&change(Action::Create, vec![node("t-2", "t")])));
        assert!(!cache.unchanged_by(&change(Action::Delete, vec![node("t-1", "t")])));
        let before = cache.generation;
        cache.invalidate();
        assert!(cache.services.is_none());
        assert_eq!(cache.generation, before + 1);
        assert!(!cache.unchanged_by(&change(Action::Update, vec![node("t-1", "t")])));
    }
}
