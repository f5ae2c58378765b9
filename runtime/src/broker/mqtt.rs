//! The MQTT broker (feature `mqtt`), on [rumqttc] (MQTT 3.1.1).
//!
//! Wire, as go-micro's `broker/mqtt` plugin (go-plugins v2), so that Go and Rust peers exchange
//! messages through one MQTT server:
//!
//! - the MQTT topic is the broker topic, verbatim (no prefix, no separator rewriting);
//! - the payload is go-micro's JSON envelope `{"Header":{..},"Body":"<base64>"}`
//!   ([`Message::to_envelope`]), with `Micro-Topic` and `Micro-ID` stamped ([`stamp`]);
//! - publishes and subscriptions use QoS 1 (at least once), never retained.
//!
//! Where rmicro goes further than go-micro (whose MQTT plugin has no queues):
//!
//! - **Queues** are MQTT shared subscriptions, `$share/<queue>/<topic>` (MQTT 5, and
//!   mosquitto ≥ 2.0 for 3.1.1 clients too): the server hands each message to one member of
//!   the group. MQTT 3.1.1 cannot tell which of a client's subscriptions a message came
//!   through, so each queue subscription gets a connection of its own; broadcast
//!   subscriptions share the broker's main connection, which also publishes.
//! - **Publish is confirmed.** `publish` returns `Ok` once the server has acknowledged the
//!   message (PUBACK). While the connection is down it waits for the reconnection, up to
//!   [`MqttBrokerOptions::connect_timeout`], then fails with an error naming the address and
//!   the last connection error. A message handed over before the connection dropped but not
//!   yet acknowledged fails with an error saying it may or may not have been delivered; it is
//!   **not** resent (the clean session the client uses discards it on the server side, and the
//!   caller knows best whether to publish again). No message vanishes without an error.
//! - **Reconnection.** Each connection is driven by its own task, which polls rumqttc's event
//!   loop and, after any error, reconnects by itself with exponential backoff (100 ms doubling
//!   to [`MqttBrokerOptions::max_backoff`], with jitter), trying the listed addresses in turn.
//!   Every connection is a clean session (unless [`MqttBrokerOptions::session`] names
//!   persistent ones for the queues), so after each reconnect the task subscribes again to
//!   every filter it holds.
//! - **Dispatch.** Each subscription has a worker task fed by a bounded channel
//!   ([`MqttBrokerOptions::subscription_buffer`] messages), which runs the handler on one
//!   message at a time, in arrival order. The connection task never waits for a handler: a
//!   message arriving while the subscription's buffer is full is dropped with a warning and
//!   counted ([`MqttBroker::dropped_messages`]); the server has already been acknowledged.
//!   A payload that is not a go-micro envelope is dropped with a warning and counted
//!   ([`MqttBroker::malformed_messages`]), as go-micro drops it.
//! - Several subscriptions of one broker to the same topic (broadcast) share one MQTT
//!   subscription and each get every message; several to the same topic and queue share one
//!   shared subscription and take turns. Overlapping wildcard filters (`a/#` and `a/b`) on
//!   one broker get one copy per matching filter from the server, hence duplicates: MQTT 3.1.1
//!   cannot tell them apart.
//!
//! # Addresses
//!
//! `--broker_address` (comma-separated): `host:port`, `tcp://host:port`, `mqtt://host:port`,
//! or `mqtts://host:port` / `ssl://host:port` for TLS (rustls with ring, the system's root
//! certificates unless [`MqttBrokerOptions::tls`] is given). Credentials as URL userinfo,
//! `mqtt://user:password@host:port`, taken verbatim. Default `127.0.0.1:1883` (`8883` for
//! TLS when the port is left out).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, EventLoop, Incoming, Outgoing, QoS, SubscribeFilter,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::kit::{self, Backoff, ERROR_ID, Handle, Outcome, Stop, lock};
use super::{Broker, Event, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::config::Options;
use crate::{Error, Result};

/// The default address.
const DEFAULT_ADDRESS: &str = "127.0.0.1:1883";
/// Capacity of rumqttc's request channel (publish, subscribe, unsubscribe requests).
const REQUEST_CAPACITY: usize = 1024;
/// The first reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Options of [`MqttBroker`].
#[derive(Clone)]
#[non_exhaustive]
pub struct MqttBrokerOptions {
    /// Server addresses, tried in turn (see the [module docs](self)). Default
    /// `127.0.0.1:1883`.
    pub addresses: Vec<String>,
    /// MQTT keep-alive interval. Default 30 s.
    pub keep_alive: Duration,
    /// How long `connect`, `publish` and `subscribe` wait for a connection to the server
    /// before failing. Default 10 s.
    pub connect_timeout: Duration,
    /// How long `publish`, `subscribe` and `unsubscribe` wait for the server's
    /// acknowledgement once the request is handed over. Default 10 s.
    pub ack_timeout: Duration,
    /// Largest MQTT packet sent or accepted. Default 16 MiB (a 1 MiB body is about 1.4 MiB of
    /// envelope).
    pub max_packet_size: usize,
    /// Messages buffered per subscription while its handler is busy. Default 1024.
    pub subscription_buffer: usize,
    /// Longest delay between reconnection attempts. Default 5 s.
    pub max_backoff: Duration,
    /// TLS client configuration for `mqtts://` addresses. `None`: rustls with ring and the
    /// system's root certificates.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A name for this instance's persistent sessions (`MICRO_MQTT_SESSION` from the
    /// environment). `None` (the default): every connection is a clean session.
    ///
    /// With a name, each queue subscription's connection is a persistent session
    /// (`clean_session = false`) with the client id `<name>-<hash of the filter>`, so the
    /// server keeps the subscription and queues its share of the messages while the
    /// connection is down or the server restarts (mosquitto with `persistence true`): nothing
    /// acknowledged to a publisher is lost on the way. The name must be unique among the
    /// instances using the server (two connections with one client id throw each other off)
    /// and stable across restarts of this instance (a pod's or host's name): an instance that
    /// dies without [`Broker::disconnect`] leaves its session behind, and the server goes on
    /// queueing that session's share of the queue until the same name connects again.
    /// `disconnect` ends the sessions.
    pub session: Option<String>,
}

impl Default for MqttBrokerOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            max_packet_size: 16 * 1024 * 1024,
            subscription_buffer: 1024,
            max_backoff: Duration::from_secs(5),
            tls: None,
            session: None,
        }
    }
}

impl fmt::Debug for MqttBrokerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttBrokerOptions")
            .field("addresses", &self.addresses)
            .field("keep_alive", &self.keep_alive)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("max_packet_size", &self.max_packet_size)
            .field("subscription_buffer", &self.subscription_buffer)
            .field("max_backoff", &self.max_backoff)
            .field("tls", &self.tls.is_some())
            .field("session", &self.session)
            .finish()
    }
}

/// One parsed server address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<(String, String)>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "tcp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint> {
    let bad = |why: &str| {
        Error::bad_request(
            ERROR_ID,
            format!(
                "mqtt: invalid broker address `{text}`: {why} (expected `host:port`, `tcp://host:port`, `mqtt://host:port` or `mqtts://host:port`)"
            ),
        )
    };
    let (tls, rest) = match text.split_once("://") {
        None => (false, text),
        Some(("tcp" | "mqtt", rest)) => (false, rest),
        Some(("ssl" | "tls" | "mqtts", rest)) => (true, rest),
        Some((scheme, _)) => return Err(bad(&format!("unsupported scheme `{scheme}`"))),
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((user, hostport)) => {
            let (name, password) = user.split_once(':').unwrap_or((user, ""));
            (Some((name.to_owned(), password.to_owned())), hostport)
        }
        None => (None, rest),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("unexpected text after `]`")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| bad(&format!("bad port `{p}`")))?,
        None => default_port,
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
        credentials,
    })
}

/// What every connection of one broker shares.
struct Settings {
    opts: MqttBrokerOptions,
    endpoints: Vec<Endpoint>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The addresses, for messages.
    address: String,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    dropped: AtomicU64,
    malformed: AtomicU64,
}

impl Settings {
    fn mqtt_options(
        &self,
        client_id: &str,
        endpoint: &Endpoint,
        persistent: bool,
    ) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
        o.set_keep_alive(self.opts.keep_alive.max(Duration::from_secs(1)))
            .set_clean_session(!persistent)
            .set_max_packet_size(self.opts.max_packet_size, self.opts.max_packet_size)
            .set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some((user, password)) = &endpoint.credentials {
            o.set_credentials(user.clone(), password.clone());
        }
        if endpoint.tls
            && let Some(tls) = &self.tls
        {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::clone(tls),
            )));
        }
        o
    }
}

/// MQTT's broker: go-micro's envelope over an MQTT server (mosquitto, EMQX, HiveMQ, ...).
/// See the [module docs](self) for the wire and the delivery guarantees.
///
/// Connecting is lazy: `connect` (or the first `publish`/`subscribe`) starts the connection
/// task. `disconnect` closes every connection and drops every subscription. Clones share
/// state; dropping the last clone closes the connections.
#[derive(Clone)]
pub struct MqttBroker {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    /// Publishes and broadcast subscriptions.
    main: Mutex<Option<Arc<Conn>>>,
    /// One connection per shared-subscription filter `$share/<queue>/<topic>`.
    queues: Mutex<HashMap<String, Arc<Conn>>>,
    next_sub: AtomicU64,
}

impl fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttBroker")
            .field("address", &self.inner.settings.address)
            .field("connected", &lock(&self.inner.main).is_some())
            .field("queues", &lock(&self.inner.queues).len())
            .finish()
    }
}

impl MqttBroker {
    /// A broker for the servers in `opts`. Validates the addresses; connects nothing yet.
    pub fn new(opts: MqttBrokerOptions) -> Result<Self> {
        let endpoints = opts
            .addresses
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(parse_endpoint)
            .collect::<Result<Vec<_>>>()?;
        let endpoints = if endpoints.is_empty() {
            vec![parse_endpoint(DEFAULT_ADDRESS)?]
        } else {
            endpoints
        };
        let tls = match (&opts.tls, endpoints.iter().any(|e| e.tls)) {
            (Some(tls), _) => Some(Arc::clone(tls)),
            (None, true) => Some(crate::tls::system_roots("mqtt", ERROR_ID)?),
            (None, false) => None,
        };
        let address = endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            inner: Arc::new(Inner {
                settings: Arc::new(Settings {
                    opts,
                    endpoints,
                    tls,
                    address,
                    stats: Stats::default(),
                }),
                main: Mutex::new(None),
                queues: Mutex::new(HashMap::new()),
                next_sub: AtomicU64::new(1),
            }),
        })
    }

    /// The broker `--broker=mqtt --broker_address=...` names.
    ///
    /// `MICRO_MQTT_SESSION` in the environment sets [`MqttBrokerOptions::session`].
    pub fn from_config(options: &Options) -> Result<Self> {
        let mut opts = MqttBrokerOptions {
            session: std::env::var("MICRO_MQTT_SESSION")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            ..MqttBrokerOptions::default()
        };
        if !options.broker_address.trim().is_empty() {
            opts.addresses = options
                .broker_address
                .split(',')
                .map(|a| a.trim().to_owned())
                .collect();
        }
        Self::new(opts)
    }

    /// Messages dropped because a subscription's buffer was full.
    pub fn dropped_messages(&self) -> u64 {
        self.inner.settings.stats.dropped.load(Ordering::Relaxed)
    }

    /// Messages dropped because their payload was not a go-micro envelope.
    pub fn malformed_messages(&self) -> u64 {
        self.inner.settings.stats.malformed.load(Ordering::Relaxed)
    }

    /// Whether the main connection (publishes, broadcast subscriptions) is up right now.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.main)
            .as_ref()
            .is_some_and(|c| c.shared.link.borrow().connected)
    }

    fn main(&self) -> Arc<Conn> {
        let mut main = lock(&self.inner.main);
        Arc::clone(main.get_or_insert_with(|| Conn::start(&self.inner.settings, "main", None)))
    }

    fn queue_conn(&self, filter: &str) -> Arc<Conn> {
        let mut queues = lock(&self.inner.queues);
        Arc::clone(queues.entry(filter.to_owned()).or_insert_with(|| {
            let session = self.inner.settings.opts.session.as_deref();
            Conn::start(
                &self.inner.settings,
                filter,
                session.map(|s| session_id(s, filter)),
            )
        }))
    }
}

#[async_trait]
impl Broker for MqttBroker {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn address(&self) -> String {
        self.inner.settings.address.clone()
    }

    fn connected(&self) -> Option<bool> {
        Some(self.is_connected())
    }

    async fn connect(&self) -> Result<()> {
        let conn = self.main();
        conn.shared
            .wait_connected(Instant::now() + self.inner.settings.opts.connect_timeout)
            .await
    }

    async fn disconnect(&self) -> Result<()> {
        let main = lock(&self.inner.main).take();
        let queues: Vec<Arc<Conn>> = lock(&self.inner.queues).drain().map(|(_, c)| c).collect();
        for conn in main.into_iter().chain(queues) {
            conn.close().await;
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        stamp(topic, &mut msg);
        let span = tracing::debug_span!(
            "broker.publish",
            broker = "mqtt",
            topic,
            id = msg.id().unwrap_or_default()
        );
        let payload = msg.to_envelope();
        self.main()
            .shared
            .publish(topic, payload)
            .instrument(span)
            .await
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        if topic.is_empty() || topic.starts_with("$share/") {
            return Err(Error::bad_request(
                ERROR_ID,
                format!(
                    "mqtt: cannot subscribe to `{topic}`: give a topic filter, and the queue with `SubscribeOptions::queue`"
                ),
            ));
        }
        let (filter, conn) = match &opts.queue {
            Some(queue) if queue.is_empty() || queue.contains(['/', '+', '#']) => {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!(
                        "mqtt: invalid queue name `{queue}`: it must be non-empty without `/`, `+` or `#`"
                    ),
                ));
            }
            Some(queue) => {
                let filter = format!("$share/{queue}/{topic}");
                let conn = self.queue_conn(&filter);
                (filter, conn)
            }
            None => (topic.to_owned(), self.main()),
        };
        let id = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        conn.shared
            .subscribe(id, &filter, topic, opts.queue.is_some(), handler)
            .await?;
        Ok(Handle::boxed(
            "mqtt",
            topic,
            opts,
            MqttStop {
                id,
                filter,
                conn: Arc::downgrade(&conn),
                unsubscribed: AtomicBool::new(false),
            },
        ))
    }
}

/// One MQTT connection: its client, its state and the task driving it.
struct Conn {
    shared: Arc<Shared>,
    /// `true` (or dropping it) stops the task.
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Conn {
    /// Starts a connection: a persistent session with the client id `session`, else a clean
    /// one with a random id.
    fn start(settings: &Arc<Settings>, role: &str, session: Option<String>) -> Arc<Conn> {
        let persistent = session.is_some();
        let client_id = session.unwrap_or_else(|| {
            let uuid = crate::id::uuid().simple().to_string();
            // 23 characters, the most MQTT 3.1.1 servers must accept.
            format!("rmicro-{}", &uuid[..16])
        });
        let endpoint = &settings.endpoints[0];
        let (client, mut eventloop) = AsyncClient::new(
            settings.mqtt_options(&client_id, endpoint, persistent),
            REQUEST_CAPACITY,
        );
        // As Go's net package does for every TCP connection (so go-micro's paho client):
        // without it, a publish written while an earlier one is unacknowledged waits for the
        // server's delayed ACK (40 ms on Linux).
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (link, _) = watch::channel(Link::default());
        let shared = Arc::new(Shared {
            client,
            client_id,
            persistent,
            settings: Arc::clone(settings),
            state: Mutex::new(State::default()),
            link,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let span = tracing::debug_span!("broker.mqtt", client = %shared.client_id, role);
        let task = tokio::spawn(run(Arc::clone(&shared), eventloop, shutdown_rx).instrument(span));
        Arc::new(Conn {
            shared,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// Disconnects cleanly and waits (briefly) for the task to end.
    async fn close(&self) {
        let _ = self.shutdown.send(true);
        let task = lock(&self.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// The connection's state as the world sees it.
#[derive(Debug, Clone, Default)]
struct Link {
    connected: bool,
    closed: bool,
    /// The last connection error, for messages.
    last_error: Option<Arc<str>>,
}

/// Why a request got no acknowledgement.
#[derive(Debug, Clone)]
enum Failure {
    /// The connection dropped first.
    Lost(Arc<str>),
    /// The server refused it (a SUBACK failure code).
    Refused,
}

type Waiter = oneshot::Sender<std::result::Result<(), Failure>>;

/// A request handed to rumqttc, waiting for the event that gives it a packet id. rumqttc
/// handles requests in order, one event each, so a FIFO matches them.
enum Request {
    Publish(Waiter),
    Subscribe(Option<Waiter>),
    Unsubscribe(Option<Waiter>),
}

#[derive(Default)]
struct State {
    connected: bool,
    requests: VecDeque<Request>,
    /// A publish whose packet id collided with an unacknowledged one (rumqttc sends it once
    /// that one is acknowledged).
    collided: Option<Waiter>,
    publishes: HashMap<u16, Waiter>,
    subscribes: HashMap<u16, Option<Waiter>>,
    unsubscribes: HashMap<u16, Option<Waiter>>,
    /// MQTT filter -> the local subscriptions through it.
    filters: BTreeMap<String, Filter>,
    /// Filters of a persistent session left while disconnected: the server still holds
    /// them, so they are unsubscribed on the next connection.
    orphans: Vec<String>,
}

impl State {
    /// Fails every waiting request.
    fn fail_all(&mut self, why: &Arc<str>) {
        let fail = |w: Waiter| {
            let _ = w.send(Err(Failure::Lost(Arc::clone(why))));
        };
        for request in self.requests.drain(..) {
            match request {
                Request::Publish(w) => fail(w),
                Request::Subscribe(w) | Request::Unsubscribe(w) => w.into_iter().for_each(fail),
            }
        }
        self.collided.take().into_iter().for_each(fail);
        self.publishes.drain().for_each(|(_, w)| fail(w));
        self.subscribes
            .drain()
            .filter_map(|(_, w)| w)
            .for_each(fail);
        self.unsubscribes
            .drain()
            .filter_map(|(_, w)| w)
            .for_each(fail);
    }
}

struct Filter {
    /// The topic filter messages are matched against (without `$share/<queue>/`).
    topic: String,
    queue: bool,
    subs: Vec<LocalSub>,
    /// Round robin among a queue's local subscriptions.
    next: usize,
}

struct LocalSub {
    id: u64,
    tx: mpsc::Sender<Event>,
    stopped: Arc<AtomicBool>,
}

struct Shared {
    client: AsyncClient,
    client_id: String,
    /// A persistent session (see [`MqttBrokerOptions::session`]).
    persistent: bool,
    settings: Arc<Settings>,
    state: Mutex<State>,
    link: watch::Sender<Link>,
}

impl Shared {
    fn address(&self) -> &str {
        &self.settings.address
    }

    /// Waits until the connection is up, or fails at `deadline`.
    async fn wait_connected(&self, deadline: Instant) -> Result<()> {
        let mut rx = self.link.subscribe();
        loop {
            {
                let link = rx.borrow_and_update();
                if link.connected {
                    return Ok(());
                }
                if link.closed {
                    return Err(self.closed());
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.closed()),
                Err(_) => {
                    let why = rx
                        .borrow()
                        .last_error
                        .as_deref()
                        .map_or_else(|| "no answer yet".to_owned(), str::to_owned);
                    return Err(Error::service_unavailable(
                        ERROR_ID,
                        format!(
                            "mqtt: not connected to `{}` within {:?}: {why}",
                            self.address(),
                            self.settings.opts.connect_timeout
                        ),
                    ));
                }
            }
        }
    }

    fn closed(&self) -> Error {
        Error::service_unavailable(
            ERROR_ID,
            format!("mqtt: the connection to `{}` is closed", self.address()),
        )
    }

    fn lost(&self, what: &str, why: &str) -> Error {
        Error::service_unavailable(
            ERROR_ID,
            format!(
                "mqtt: the connection to `{}` dropped before the server acknowledged the {what} ({why}); it may or may not have taken effect",
                self.address()
            ),
        )
    }

    /// Locks the state once connected, waiting for the connection up to the connect timeout.
    async fn lock_connected(&self) -> Result<MutexGuard<'_, State>> {
        let deadline = Instant::now() + self.settings.opts.connect_timeout;
        loop {
            self.wait_connected(deadline).await?;
            let state = lock(&self.state);
            if state.connected {
                return Ok(state);
            }
        }
    }

    async fn await_ack(
        &self,
        rx: oneshot::Receiver<std::result::Result<(), Failure>>,
        what: &str,
    ) -> std::result::Result<std::result::Result<(), Failure>, Error> {
        match tokio::time::timeout(self.settings.opts.ack_timeout, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(self.closed()),
            Err(_) => Err(Error::timeout(
                ERROR_ID,
                format!(
                    "mqtt: `{}` did not acknowledge the {what} within {:?}; it may or may not have taken effect",
                    self.address(),
                    self.settings.opts.ack_timeout
                ),
            )),
        }
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        let rx = {
            let mut state = self.lock_connected().await?;
            let (tx, rx) = oneshot::channel();
            self.client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .map_err(|e| self.request_error(topic, &e))?;
            state.requests.push_back(Request::Publish(tx));
            rx
        };
        match self.await_ack(rx, "message").await? {
            Ok(()) => Ok(()),
            Err(Failure::Lost(why)) => Err(self.lost("message", &why)),
            Err(Failure::Refused) => Err(Error::internal_server_error(
                ERROR_ID,
                format!("mqtt: `{}` refused the message", self.address()),
            )),
        }
    }

    fn request_error(&self, topic: &str, err: &rumqttc::ClientError) -> Error {
        match err {
            rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(_))
                if !rumqttc::valid_topic(topic) =>
            {
                Error::bad_request(
                    ERROR_ID,
                    format!("mqtt: cannot publish to `{topic}`: a topic name has no `+` or `#`"),
                )
            }
            _ => Error::service_unavailable(
                ERROR_ID,
                format!(
                    "mqtt: cannot hand a request for `{topic}` to the connection to `{}`: {REQUEST_CAPACITY} requests are waiting already",
                    self.address()
                ),
            ),
        }
    }

    async fn subscribe(
        &self,
        id: u64,
        filter: &str,
        topic: &str,
        queue: bool,
        handler: Handler,
    ) -> Result<()> {
        let (tx, rx) = mpsc::channel(self.settings.opts.subscription_buffer.max(1));
        let stopped = Arc::new(AtomicBool::new(false));
        let ack = {
            let mut state = self.lock_connected().await?;
            let fresh = !state.filters.contains_key(filter);
            let ack = if fresh {
                let (wtx, wrx) = oneshot::channel();
                self.client
                    .try_subscribe(filter, QoS::AtLeastOnce)
                    .map_err(|e| self.request_error(filter, &e))?;
                state.requests.push_back(Request::Subscribe(Some(wtx)));
                Some(wrx)
            } else {
                None
            };
            state
                .filters
                .entry(filter.to_owned())
                .or_insert_with(|| Filter {
                    topic: topic.to_owned(),
                    queue,
                    subs: Vec::new(),
                    next: 0,
                })
                .subs
                .push(LocalSub {
                    id,
                    tx,
                    stopped: Arc::clone(&stopped),
                });
            ack
        };
        tokio::spawn(worker(Arc::from(filter), handler, rx, stopped));
        let Some(ack) = ack else { return Ok(()) };
        match self.await_ack(ack, "subscription").await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Lost(why))) => {
                // Kept: the next connection subscribes again to every filter.
                tracing::debug!(filter, %why, "connection lost while subscribing; the subscription is restored on reconnect");
                Ok(())
            }
            Ok(Err(Failure::Refused)) => {
                self.remove_local(id, filter);
                Err(Error::forbidden(
                    ERROR_ID,
                    format!(
                        "mqtt: `{}` refused the subscription to `{filter}` (not authorised, or shared subscriptions unsupported)",
                        self.address()
                    ),
                ))
            }
            Err(err) => {
                self.remove_local(id, filter);
                Err(err)
            }
        }
    }

    /// Removes a local subscription; returns whether its filter has none left (and is gone).
    fn remove_local(&self, id: u64, filter: &str) -> bool {
        let mut state = lock(&self.state);
        let Some(entry) = state.filters.get_mut(filter) else {
            return false;
        };
        if let Some(pos) = entry.subs.iter().position(|s| s.id == id) {
            let sub = entry.subs.remove(pos);
            sub.stopped.store(true, Ordering::Relaxed);
        }
        if entry.subs.is_empty() {
            state.filters.remove(filter);
            true
        } else {
            false
        }
    }

    async fn unsubscribe(&self, id: u64, filter: &str) -> Result<()> {
        if !self.remove_local(id, filter) {
            return Ok(());
        }
        let ack = {
            let mut state = lock(&self.state);
            // Subscribed again meanwhile, or not connected (the next session starts clean, or
            // a persistent one unsubscribes it then).
            if state.filters.contains_key(filter) {
                return Ok(());
            }
            if !state.connected {
                if self.persistent {
                    state.orphans.push(filter.to_owned());
                }
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            self.client
                .try_unsubscribe(filter)
                .map_err(|e| self.request_error(filter, &e))?;
            state.requests.push_back(Request::Unsubscribe(Some(tx)));
            rx
        };
        match self.await_ack(ack, "unsubscription").await? {
            // A lost connection ends the clean session, and the subscription with it.
            Ok(()) | Err(Failure::Lost(_)) => Ok(()),
            Err(Failure::Refused) => Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "mqtt: `{}` refused to unsubscribe `{filter}`",
                    self.address()
                ),
            )),
        }
    }

    /// Hands an incoming message to the local subscriptions whose filter matches.
    fn dispatch(&self, topic: &str, payload: &Bytes) {
        let Some(msg) = kit::decode("mqtt", topic, payload, &self.settings.stats.malformed) else {
            return;
        };
        let topic: Arc<str> = Arc::from(topic);
        let mut state = lock(&self.state);
        for (filter, entry) in state.filters.iter_mut() {
            if !topic_matches(&entry.topic, &topic) || entry.subs.is_empty() {
                continue;
            }
            let chosen: &[LocalSub] = if entry.queue {
                let i = entry.next % entry.subs.len();
                entry.next = entry.next.wrapping_add(1);
                &entry.subs[i..=i]
            } else {
                &entry.subs
            };
            for sub in chosen {
                match sub.tx.try_send(Event::new(Arc::clone(&topic), msg.clone())) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.settings.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            filter = %filter,
                            buffer = self.settings.opts.subscription_buffer,
                            "subscription buffer full; dropping a message (the handler is too slow)"
                        );
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    fn on_connected(&self, reconnect: bool) {
        let mut state = lock(&self.state);
        state.connected = true;
        let filters: Vec<SubscribeFilter> = state
            .filters
            .keys()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        for orphan in std::mem::take(&mut state.orphans) {
            if state.filters.contains_key(&orphan) {
                continue;
            }
            match self.client.try_unsubscribe(orphan.clone()) {
                Ok(()) => state.requests.push_back(Request::Unsubscribe(None)),
                Err(err) => {
                    tracing::warn!(filter = %orphan, error = %err, "mqtt: cannot leave a filter of the persistent session");
                }
            }
        }
        if !filters.is_empty() {
            let n = filters.len();
            match self.client.try_subscribe_many(filters) {
                Ok(()) => {
                    state.requests.push_back(Request::Subscribe(None));
                    tracing::info!(
                        subscriptions = n,
                        "mqtt: subscribing again after reconnecting"
                    );
                }
                Err(err) => {
                    tracing::error!(error = %err, "mqtt: cannot restore the subscriptions");
                }
            }
        }
        self.link.send_modify(|l| {
            l.connected = true;
            l.last_error = None;
        });
        if reconnect {
            tracing::info!(address = self.address(), "mqtt: reconnected");
        } else {
            tracing::debug!(address = self.address(), "mqtt: connected");
        }
    }

    fn on_lost(&self, eventloop: &mut EventLoop, why: &Arc<str>) {
        let mut state = lock(&self.state);
        state.connected = false;
        // Drop what rumqttc kept for the next session (a clean one discards it anyway, and
        // so that no stale request reaches the new connection): requests still in its
        // channel, unacknowledged publishes, buffered events. Their callers get an error.
        eventloop.clean();
        eventloop.pending.clear();
        eventloop.state.events.clear();
        state.fail_all(why);
        self.link.send_modify(|l| {
            l.connected = false;
            l.last_error = Some(Arc::clone(why));
        });
    }

    fn on_closed(&self) {
        let mut state = lock(&self.state);
        state.connected = false;
        state.fail_all(&Arc::from("the broker was disconnected"));
        for entry in state.filters.values() {
            for sub in &entry.subs {
                sub.stopped.store(true, Ordering::Relaxed);
            }
        }
        state.filters.clear();
        self.link.send_modify(|l| {
            l.connected = false;
            l.closed = true;
        });
    }

    fn on_event(&self, event: rumqttc::Event) {
        use rumqttc::Event as E;
        match event {
            E::Incoming(Incoming::Publish(p)) => self.dispatch(&p.topic, &p.payload),
            E::Incoming(Incoming::PubAck(ack)) => {
                if let Some(w) = lock(&self.state).publishes.remove(&ack.pkid) {
                    let _ = w.send(Ok(()));
                }
            }
            E::Incoming(Incoming::SubAck(ack)) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure));
                if refused {
                    tracing::warn!(pkid = ack.pkid, "mqtt: the server refused a subscription");
                }
                if let Some(Some(w)) = lock(&self.state).subscribes.remove(&ack.pkid) {
                    let _ = w.send(if refused {
                        Err(Failure::Refused)
                    } else {
                        Ok(())
                    });
                }
            }
            E::Incoming(Incoming::UnsubAck(ack)) => {
                if let Some(Some(w)) = lock(&self.state).unsubscribes.remove(&ack.pkid) {
                    let _ = w.send(Ok(()));
                }
            }
            E::Outgoing(Outgoing::Publish(pkid)) => {
                let mut state = lock(&self.state);
                let waiter = match state.collided.take() {
                    Some(w) => Some(w),
                    None => match state.requests.pop_front() {
                        Some(Request::Publish(w)) => Some(w),
                        other => {
                            tracing::error!(pkid, "mqtt: a publish matched no request");
                            other.into_iter().for_each(|r| state.requests.push_front(r));
                            None
                        }
                    },
                };
                if let Some(w) = waiter {
                    state.publishes.insert(pkid, w);
                }
            }
            E::Outgoing(Outgoing::AwaitAck(pkid)) => {
                let mut state = lock(&self.state);
                match state.requests.pop_front() {
                    Some(Request::Publish(w)) => state.collided = Some(w),
                    other => {
                        tracing::error!(pkid, "mqtt: a delayed publish matched no request");
                        other.into_iter().for_each(|r| state.requests.push_front(r));
                    }
                }
            }
            E::Outgoing(Outgoing::Subscribe(pkid)) => {
                let mut state = lock(&self.state);
                match state.requests.pop_front() {
                    Some(Request::Subscribe(w)) => {
                        state.subscribes.insert(pkid, w);
                    }
                    other => {
                        tracing::error!(pkid, "mqtt: a subscribe matched no request");
                        other.into_iter().for_each(|r| state.requests.push_front(r));
                    }
                }
            }
            E::Outgoing(Outgoing::Unsubscribe(pkid)) => {
                let mut state = lock(&self.state);
                match state.requests.pop_front() {
                    Some(Request::Unsubscribe(w)) => {
                        state.unsubscribes.insert(pkid, w);
                    }
                    other => {
                        tracing::error!(pkid, "mqtt: an unsubscribe matched no request");
                        other.into_iter().for_each(|r| state.requests.push_front(r));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The connection task: polls the event loop, reconnects with backoff, until shut down.
async fn run(shared: Arc<Shared>, mut eventloop: EventLoop, mut shutdown: watch::Receiver<bool>) {
    let settings = Arc::clone(&shared.settings);
    let mut failures: u32 = 0;
    let mut backoff = Backoff::new(MIN_BACKOFF, settings.opts.max_backoff);
    let mut endpoint = 0usize;
    let mut was_connected = false;
    loop {
        let polled = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(rumqttc::Event::Incoming(Incoming::ConnAck(_))) => {
                failures = 0;
                backoff.reset();
                shared.on_connected(was_connected);
                was_connected = true;
            }
            Ok(event) => shared.on_event(event),
            Err(err) => {
                let why: Arc<str> = Arc::from(describe(&err));
                shared.on_lost(&mut eventloop, &why);
                let target = &settings.endpoints[endpoint];
                if failures == 0 {
                    tracing::warn!(address = %target, error = %why, "mqtt: connection lost; reconnecting with backoff");
                } else {
                    tracing::debug!(address = %target, error = %why, attempt = failures, "mqtt: reconnect failed");
                }
                failures = failures.saturating_add(1);
                if settings.endpoints.len() > 1 {
                    endpoint = (endpoint + 1) % settings.endpoints.len();
                    eventloop.mqtt_options = settings.mqtt_options(
                        &shared.client_id,
                        &settings.endpoints[endpoint],
                        shared.persistent,
                    );
                }
                let delay = backoff.next_delay();
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if shared.persistent {
        end_session(&shared, &mut eventloop).await;
    } else if lock(&shared.state).connected && shared.client.try_disconnect().is_ok() {
        // A clean DISCONNECT, so the server drops the session at once.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    shared.on_closed();
}

/// Ends a persistent session: a clean-session connection with the same client id makes the
/// server discard it (MQTT 3.1.1 §3.1.2.4), then a DISCONNECT.
async fn end_session(shared: &Shared, eventloop: &mut EventLoop) {
    eventloop.clean();
    eventloop.pending.clear();
    eventloop.state.events.clear();
    eventloop.mqtt_options.set_clean_session(true);
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(Incoming::ConnAck(_))) => {
                    if shared.client.try_disconnect().is_err() {
                        return false;
                    }
                }
                Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    if ended != Ok(true) {
        tracing::warn!(client = %shared.client_id, "mqtt: could not end the persistent session; the server keeps it (and queues its messages) until this client id connects again");
    }
}

/// The client id of a queue subscription's persistent session: the instance's session name
/// and a hash of the filter (FNV-1a, stable across builds and platforms).
fn session_id(session: &str, filter: &str) -> String {
    let hash = filter.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{session}-{:08x}", hash as u32)
}

fn describe(err: &ConnectionError) -> String {
    match err {
        ConnectionError::Io(e) => e.to_string(),
        ConnectionError::ConnectionRefused(code) => {
            format!("the server refused the connection ({code:?})")
        }
        other => other.to_string(),
    }
}

/// Runs a subscription's handler on its messages, one at a time.
async fn worker(
    filter: Arc<str>,
    handler: Handler,
    mut rx: mpsc::Receiver<Event>,
    stopped: Arc<AtomicBool>,
) {
    while let Some(event) = rx.recv().await {
        if stopped.load(Ordering::Relaxed) {
            break;
        }
        if let Outcome::Failed(error) = kit::run_handler("mqtt", &handler, event).await {
            tracing::warn!(filter = %filter, %error, "mqtt: subscriber failed");
        }
    }
}

/// Whether MQTT topic `filter` (with `+` and `#`) matches topic name `topic`.
fn topic_matches(filter: &str, topic: &str) -> bool {
    // Wildcards at the first level do not match `$SYS`-style topics.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// How an MQTT subscription stops: it leaves its connection's filter.
struct MqttStop {
    id: u64,
    filter: String,
    conn: Weak<Conn>,
    unsubscribed: AtomicBool,
}

#[async_trait]
impl Stop for MqttStop {
    async fn stop(&self, _topic: &str) -> Result<()> {
        if self.unsubscribed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        match self.conn.upgrade() {
            Some(conn) => conn.shared.unsubscribe(self.id, &self.filter).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let e = parse_endpoint("127.0.0.1:1884").expect("plain");
        assert_eq!((e.host.as_str(), e.port, e.tls), ("127.0.0.1", 1884, false));
        let e = parse_endpoint("mqtt://u:p@localhost").expect("userinfo");
        assert_eq!(e.port, 1883);
        assert_eq!(e.credentials, Some(("u".to_owned(), "p".to_owned())));
        let e = parse_endpoint("mqtts://[::1]").expect("tls v6");
        assert_eq!((e.host.as_str(), e.port, e.tls), ("::1", 8883, true));
        assert_eq!(e.to_string(), "mqtts://[::1]:8883");
        let e = parse_endpoint("tcp://h:1/").expect("tcp");
        assert_eq!((e.host.as_str(), e.port), ("h", 1));
        let err = parse_endpoint("ws://h:1").expect_err("ws");
        assert!(err.detail.contains("unsupported scheme `ws`"), "{err}");
        let err = parse_endpoint("h:port").expect_err("port");
        assert!(err.detail.contains("bad port `port`"), "{err}");
    }

    #[test]
    fn from_config_defaults_and_lists() {
        let mut o = Options::default();
        let b = MqttBroker::from_config(&o).expect("default");
        assert_eq!(b.address(), "tcp://127.0.0.1:1883");
        o.broker_address = "a:1, mqtt://b:2".to_owned();
        let b = MqttBroker::from_config(&o).expect("list");
        assert_eq!(b.address(), "tcp://a:1,tcp://b:2");
        o.broker_address = "nats://a:1".to_owned();
        assert!(MqttBroker::from_config(&o).is_err());
    }

    #[test]
    fn filters_match_like_mqtt() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("a/+/c", "a/x/c"));
        assert!(!topic_matches("a/+", "a/x/c"));
        assert!(topic_matches("a/#", "a/x/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches(
            "go.micro.srv.message",
            "go.micro.srv.message"
        ));
        assert!(!topic_matches("#", "$SYS/x"));
    }
}
