//! RabbitMQ broker (feature `rabbitmq`), over [lapin](https://docs.rs/lapin).
//!
//! Wire (go-plugins v2 `broker/rabbitmq`, which this follows so that Go and Rust peers exchange
//! messages):
//!
//! - one exchange, `micro` by default, of kind `topic`, **not durable** (go-micro's default;
//!   [`RabbitmqOptions::durable_exchange`] is its `DurableExchange` option). Declaring an
//!   existing exchange with other settings is refused by the server, so every peer of a
//!   deployment must agree on this;
//! - a message is published to that exchange with routing key = topic; the AMQP body is the
//!   message body, raw (no envelope), and every message header travels as an AMQP header
//!   (a long string). The `Content-Type` header is also copied into the AMQP `content-type`
//!   property, and a delivery without a `Content-Type` header but with that property gets it
//!   back as a header (for non-go-micro publishers). Delivery mode stays transient, as in
//!   go-micro;
//! - a subscription without a queue name declares a server-named, exclusive, auto-delete queue
//!   bound to the topic (broadcast: every subscription gets every message). go-micro declares
//!   it non-exclusive; exclusive only adds that no other connection can use it;
//! - a subscription with a queue name declares that queue (non-durable and auto-delete, as
//!   go-micro; durable and not auto-delete with [`RabbitmqOptions::durable_queues`], go-micro's
//!   `DurableQueue`) and binds it to the topic: the queue's consumers compete for its messages
//!   (one of them gets each message). Received headers that are not strings are converted to
//!   text (go-micro turns them into empty strings);
//! - the topic an event reports is the delivery's routing key, as go-micro's.
//!
//! # Acknowledgements, and what differs from go-micro on purpose
//!
//! go-micro's `AutoAck` (its default) consumes in AMQP *no-ack* mode: the server forgets a
//! message as soon as it is sent, so a handler error or a crash loses it. Its `AckOnSuccess`
//! option acks after the handler returns nil instead. rmicro always consumes with manual
//! acknowledgements:
//!
//! - [`SubscribeOptions::auto_ack`] on (the default) = go-micro's `AckOnSuccess`: the message
//!   is acked after the handler returns `Ok`;
//! - off: the handler acks through [`Event::ack`]; returning `Ok` without acking leaves the
//!   message unacknowledged until the channel closes (unsubscribe, disconnect, connection lost),
//!   when the server requeues it;
//! - **nack policy**: when the handler returns `Err` (or panics), the message is rejected with
//!   `requeue = true` if it is on its first delivery (the AMQP `redelivered` flag is off), and
//!   with `requeue = false` if it was delivered before (the server then drops it, or
//!   dead-letters it if the queue has a dead-letter exchange). So a failing message is tried
//!   at most twice and can never loop. Note that the server also sets `redelivered` on a
//!   message that was in flight when a consumer died, so such a message gets one try.
//!   [`RabbitmqOptions::redeliver_failed`] off rejects without requeue at once (go-micro's
//!   default, `RequeueOnError` false). A message already acked by the handler is not nacked.
//! - handlers of one subscription run one at a time, in delivery order; the channel's prefetch
//!   ([`RabbitmqOptions::prefetch_count`], 64 by default; go-micro's 0 means unlimited) bounds
//!   how many unacknowledged messages a consumer holds.
//! - **Publish failures reach the caller**: the publishing channel is in confirm mode, so
//!   `publish` returns once the server has taken the message (go-micro does not wait), or
//!   fails after [`RabbitmqOptions::publish_timeout`] (10 s; a server short of memory or disk
//!   blocks publishers). Without a connection it fails at once with the reason.
//!
//! # Recovery
//!
//! A background task owns the connection. When it drops (server restart, network cut,
//! heartbeat timeout — 10 s unless the URL says `?heartbeat=`), the task reconnects with
//! exponential backoff (100 ms doubling to 2 s, logged with `tracing`), declares the exchange
//! again, and every live subscription re-declares its queue, re-binds it and consumes again by
//! itself. Broadcast queues are server-named, so a broadcast subscription gets a new queue, and
//! what was published while it was away is lost (as with every pub/sub broker); named queues
//! keep their messages only when durable.
//!
//! # Addresses and credentials
//!
//! `--broker_address` takes AMQP URLs, `amqp://user:pass@host:port/vhost` (vhost `/` is
//! `%2f`), comma-separated to try several servers in turn; a bare `host:port` means
//! `amqp://host:port` (user `guest`). Empty = `amqp://guest:guest@127.0.0.1:5672/%2f`.
//! Credentials come from the URL's userinfo; passwords are masked in [`Broker::address`], logs
//! and errors. `amqps://` connects with TLS (rustls with ring, the system's root
//! certificates).
//!
//! [`SubscribeOptions::auto_ack`]: super::SubscribeOptions::auto_ack
//! [`Event::ack`]: super::Event::ack

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::{Notify, watch};

use super::kit::{self, Backoff, ERROR_ID, Handle, Outcome, Stop, StopFlag, lock, mask_url};
use super::{
    AckFn, Broker, HEADER_CONTENT_TYPE, Handler, Message, PublishOptions, SubscribeOptions,
    Subscriber, stamp,
};
use crate::registry::Metadata;
use crate::{Error, Result};

/// The address used when `--broker_address` is empty (go-micro's, with the vhost spelled out).
pub const DEFAULT_ADDRESS: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The exchange go-micro publishes to.
pub const DEFAULT_EXCHANGE: &str = "micro";

/// Options of [`RabbitmqBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RabbitmqOptions {
    /// AMQP URLs (`amqp://user:pass@host:port/vhost`, or `amqps://`), tried in turn.
    pub addresses: Vec<String>,
    /// The topic exchange (`micro`).
    pub exchange: String,
    /// Declare the exchange durable (go-micro's `DurableExchange`; off by default, as there).
    pub durable_exchange: bool,
    /// Declare named queues durable and not auto-delete (go-micro's `DurableQueue`; off by
    /// default: non-durable, auto-delete, as there).
    pub durable_queues: bool,
    /// Publish messages persistent (AMQP `delivery_mode` 2, go-micro's
    /// `DeliveryMode(2)`): a durable queue then keeps them through a server restart. Off by
    /// default (transient, as go-micro). Nothing acknowledged to a publisher is lost across a
    /// restart only with all three of `durable_exchange` (so the bindings survive),
    /// `durable_queues` and `persistent_messages`.
    pub persistent_messages: bool,
    /// Unacknowledged messages a consumer may hold (AMQP prefetch count); 0 = unlimited.
    pub prefetch_count: u16,
    /// Requeue a message whose handler failed on its first delivery (see the module docs).
    pub redeliver_failed: bool,
    /// AMQP heartbeat, unless the URL sets `?heartbeat=` (go-micro uses 10 s).
    pub heartbeat: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long `publish` waits for the server's confirm (a server short of memory or disk
    /// blocks publishers).
    pub publish_timeout: Duration,
    /// First delay between reconnection attempts; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between reconnection attempts.
    pub max_backoff: Duration,
}

impl Default for RabbitmqOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            exchange: DEFAULT_EXCHANGE.to_owned(),
            durable_exchange: false,
            durable_queues: false,
            persistent_messages: false,
            prefetch_count: 64,
            redeliver_failed: true,
            heartbeat: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RabbitmqOptions {
    /// Options for the given comma-separated address list (empty = [`DEFAULT_ADDRESS`]).
    pub fn with_addresses(list: &str) -> Self {
        Self {
            addresses: kit::address_list(list, DEFAULT_ADDRESS),
            ..Self::default()
        }
    }
}

/// go-micro's RabbitMQ broker: raw bodies with AMQP headers on a topic exchange. See the
/// [module docs](self) for the wire format, acknowledgements and recovery.
///
/// Connecting is lazy: [`Broker::connect`] (or the first publish or subscribe) starts the
/// background task that owns the connection. Clones share it; dropping the last clone, or
/// [`Broker::disconnect`], closes it and ends every subscription.
#[derive(Clone)]
pub struct RabbitmqBroker {
    inner: Arc<Inner>,
}

/// The handle's side: dropping the last one shuts the connection down.
struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// What the background tasks share.
struct Shared {
    opts: RabbitmqOptions,
    /// Parsed addresses and their printable (password-masked) forms.
    targets: Vec<(AMQPUri, String)>,
    exchange: ShortString,
    link: watch::Sender<Link>,
    /// Asks the connection task to replace a connection whose publishing channel died.
    kick: Notify,
}

#[derive(Clone)]
struct Link {
    /// Bumped by each connect after a disconnect: tasks of an older session stop.
    session: u64,
    state: State,
}

#[derive(Clone)]
enum State {
    /// Never connected.
    Idle,
    /// The first connection attempt of a session is under way.
    Connecting,
    Up(Arc<Live>),
    /// Lost or never made; the task keeps trying. Holds the last error.
    Down(Arc<str>),
    /// Disconnected by the program.
    Closed,
}

/// One established connection.
struct Live {
    generation: u64,
    address: String,
    conn: Connection,
    publish: Channel,
}

impl fmt::Debug for RabbitmqBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner.shared.link.borrow().state {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Up(_) => "connected",
            State::Down(_) => "reconnecting",
            State::Closed => "closed",
        };
        f.debug_struct("RabbitmqBroker")
            .field("address", &self.address())
            .field("exchange", &self.inner.shared.opts.exchange)
            .field("state", &state)
            .finish()
    }
}

fn short(what: &str, value: &str) -> Result<ShortString> {
    ShortString::try_new(value).map_err(|_| {
        Error::bad_request(
            ERROR_ID,
            format!(
                "rabbitmq: {what} `{value}` is {} bytes long, AMQP allows at most 255",
                value.len()
            ),
        )
    })
}

impl RabbitmqBroker {
    /// A broker with the given options. Fails on an address that is not an AMQP URL.
    pub fn new(opts: RabbitmqOptions) -> Result<Self> {
        let mut targets = Vec::with_capacity(opts.addresses.len());
        for given in &opts.addresses {
            let url = if given.contains("://") {
                given.clone()
            } else {
                format!("amqp://{given}")
            };
            let uri = AMQPUri::from_str(&url).map_err(|e| {
                Error::bad_request(
                    ERROR_ID,
                    format!(
                        "rabbitmq: `{}` is not an AMQP URL ({e}), expected `amqp://user:pass@host:port/vhost`",
                        mask_url(given)
                    ),
                )
            })?;
            targets.push((uri, mask_url(&url)));
        }
        if targets.is_empty() {
            return Err(Error::bad_request(
                ERROR_ID,
                "rabbitmq: no broker address given",
            ));
        }
        let exchange = short("exchange", &opts.exchange)?;
        let (link, _) = watch::channel(Link {
            session: 0,
            state: State::Idle,
        });
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    opts,
                    targets,
                    exchange,
                    link,
                    kick: Notify::new(),
                }),
            }),
        })
    }

    /// The broker `--broker=rabbitmq` builds: addresses from `--broker_address`
    /// (comma-separated; empty = [`DEFAULT_ADDRESS`]). Does not connect.
    pub fn from_config(options: &crate::config::Options) -> Result<Self> {
        Self::new(RabbitmqOptions::with_addresses(&options.broker_address))
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        matches!(self.inner.shared.link.borrow().state, State::Up(_))
    }
}

impl Shared {
    /// Starts the connection task unless one runs.
    fn start(self: &Arc<Self>) {
        let mut started = None;
        self.link.send_if_modified(|link| match link.state {
            State::Idle | State::Closed => {
                link.session += 1;
                link.state = State::Connecting;
                started = Some(link.session);
                true
            }
            _ => false,
        });
        if let Some(session) = started {
            tokio::spawn(supervise(Arc::clone(self), session));
        }
    }

    /// Ends the session: tasks stop, the connection task closes the connection.
    fn close(&self) {
        self.link.send_if_modified(|link| {
            if matches!(link.state, State::Idle | State::Closed) {
                return false;
            }
            link.state = State::Closed;
            true
        });
    }

    /// Sets the state, if `session` is still the current one.
    fn set(&self, session: u64, state: State) -> bool {
        self.link.send_if_modified(|link| {
            if link.session != session || matches!(link.state, State::Closed) {
                return false;
            }
            link.state = state;
            true
        })
    }

    /// The state after the session's first connection attempt (starting the session if
    /// needed); `None` if that attempt is still under way after the time it may take.
    async fn settled(self: &Arc<Self>) -> Option<Link> {
        self.start();
        let mut rx = self.link.subscribe();
        let attempts = u32::try_from(self.targets.len()).unwrap_or(u32::MAX);
        let within = self
            .opts
            .connect_timeout
            .saturating_mul(attempts.saturating_add(1));
        let wait = rx.wait_for(|l| !matches!(l.state, State::Connecting | State::Idle));
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(link)) => Some(link.clone()),
            _ => None,
        }
    }

    /// The live connection: waits for the first attempt of a session, fails at once while
    /// reconnecting.
    async fn live(self: &Arc<Self>) -> Result<(u64, Arc<Live>)> {
        match self.settled().await.map(|l| (l.session, l.state)) {
            Some((session, State::Up(live))) => Ok((session, live)),
            Some((_, State::Down(reason))) => Err(Error::service_unavailable(
                ERROR_ID,
                format!("rabbitmq: not connected, reconnecting in the background ({reason})"),
            )),
            Some((_, State::Closed)) => Err(Error::service_unavailable(
                ERROR_ID,
                "rabbitmq: the broker was disconnected",
            )),
            _ => Err(Error::service_unavailable(
                ERROR_ID,
                format!(
                    "rabbitmq: still connecting to {}",
                    self.printable_addresses()
                ),
            )),
        }
    }

    fn printable_addresses(&self) -> String {
        self.targets
            .iter()
            .map(|(_, p)| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One connection attempt over every address: connection, confirm-mode publishing
    /// channel, exchange.
    async fn open(&self) -> std::result::Result<(Connection, Channel, String), String> {
        let mut errors = Vec::new();
        for (uri, printable) in &self.targets {
            let mut uri = uri.clone();
            if uri.query.heartbeat.is_none() {
                uri.query.heartbeat =
                    Some(u16::try_from(self.opts.heartbeat.as_secs()).unwrap_or(u16::MAX));
            }
            let props =
                ConnectionProperties::default().with_connection_name(LongString::from("rmicro"));
            let attempt = async {
                let conn = Connection::connect_uri(uri, props)
                    .await
                    .map_err(|e| e.to_string())?;
                match self.prepare(&conn).await {
                    Ok(ch) => Ok((conn, ch)),
                    Err(e) => {
                        let _ = conn.close(200, "OK".into()).await;
                        Err(e)
                    }
                }
            };
            match tokio::time::timeout(self.opts.connect_timeout, attempt).await {
                Ok(Ok((conn, ch))) => return Ok((conn, ch, printable.clone())),
                Ok(Err(e)) => errors.push(format!("cannot connect to `{printable}`: {e}")),
                Err(_) => errors.push(format!(
                    "cannot connect to `{printable}`: no answer within {:?}",
                    self.opts.connect_timeout
                )),
            }
        }
        Err(errors.join("; "))
    }

    async fn prepare(&self, conn: &Connection) -> std::result::Result<Channel, String> {
        let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        ch.exchange_declare(
            self.exchange.clone(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: self.opts.durable_exchange,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            format!(
                "cannot declare the topic exchange `{}` (durable: {}; an existing exchange must \
                 have the same settings): {e}",
                self.opts.exchange, self.opts.durable_exchange
            )
        })?;
        Ok(ch)
    }

    /// Declares the subscription's queue, binds it and consumes, on a channel of its own.
    async fn consume(
        &self,
        live: &Live,
        topic: &ShortString,
        queue: Option<&ShortString>,
    ) -> Result<(Channel, Consumer)> {
        let fail = |what: &str, e: lapin::Error| {
            Error::service_unavailable(
                ERROR_ID,
                format!(
                    "rabbitmq: cannot subscribe to `{topic}` on `{}`: {what}: {e}",
                    live.address
                ),
            )
        };
        let ch = live
            .conn
            .create_channel()
            .await
            .map_err(|e| fail("channel", e))?;
        let setup = async {
            ch.basic_qos(self.opts.prefetch_count, BasicQosOptions::default())
                .await
                .map_err(|e| fail("qos", e))?;
            let options = match queue {
                None => QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                Some(_) => QueueDeclareOptions {
                    durable: self.opts.durable_queues,
                    auto_delete: !self.opts.durable_queues,
                    ..QueueDeclareOptions::default()
                },
            };
            let declared = ch
                .queue_declare(
                    queue.cloned().unwrap_or_default(),
                    options,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| fail("queue declare", e))?;
            let name = declared.name().clone();
            ch.queue_bind(
                name.clone(),
                self.exchange.clone(),
                topic.clone(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail("queue bind", e))?;
            ch.basic_consume(
                name,
                ShortString::default(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail("consume", e))
        };
        match setup.await {
            Ok(consumer) => Ok((ch, consumer)),
            Err(e) => {
                let _ = ch.close(200, "OK".into()).await;
                Err(e)
            }
        }
    }
}

enum Ended {
    /// The program disconnected (or the broker was dropped).
    Closed,
    /// The connection failed.
    Lost(String),
}

/// The connection task of one session: connect, watch, reconnect with backoff.
/// Closes a connection politely, without waiting long for a server that does not answer.
async fn close_conn(conn: &Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "OK".into())).await;
}

async fn supervise(shared: Arc<Shared>, session: u64) {
    let mut rx = shared.link.subscribe();
    let mut backoff = Backoff::new(shared.opts.min_backoff, shared.opts.max_backoff);
    let mut generation = 0;
    loop {
        let delay = match shared.open().await {
            Ok((conn, publish, address)) => {
                generation += 1;
                backoff.reset();
                let events = conn.events_listener();
                let live = Arc::new(Live {
                    generation,
                    address,
                    conn,
                    publish,
                });
                if !shared.set(session, State::Up(Arc::clone(&live))) {
                    close_conn(&live.conn).await;
                    return;
                }
                tracing::info!(address = %live.address, generation, "rabbitmq: connected");
                rx.mark_unchanged();
                match watch_connection(&shared, &live, events, &mut rx, session).await {
                    Ended::Closed => {
                        close_conn(&live.conn).await;
                        tracing::debug!(address = %live.address, "rabbitmq: disconnected");
                        return;
                    }
                    Ended::Lost(reason) => {
                        tracing::warn!(address = %live.address, %reason, "rabbitmq: connection lost, reconnecting");
                        close_conn(&live.conn).await;
                        if !shared.set(
                            session,
                            State::Down(
                                format!("connection to `{}` lost: {reason}", live.address).into(),
                            ),
                        ) {
                            return;
                        }
                    }
                }
                backoff.next_delay()
            }
            Err(reason) => {
                let delay = backoff.next_delay();
                tracing::warn!(%reason, retry_in = ?delay, "rabbitmq: cannot connect");
                if !shared.set(session, State::Down(reason.into())) {
                    return;
                }
                delay
            }
        };
        rx.mark_unchanged();
        let ended = async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let link = rx.borrow_and_update();
                if link.session != session || matches!(link.state, State::Closed) {
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ended => return,
        }
    }
}

async fn watch_connection(
    shared: &Shared,
    live: &Live,
    events: impl futures::Stream<Item = lapin::Event> + Send,
    rx: &mut watch::Receiver<Link>,
    session: u64,
) -> Ended {
    let mut events = std::pin::pin!(events);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => return Ended::Lost(e.to_string()),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(address = %live.address, %reason, "rabbitmq: the server blocks publishing");
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!(address = %live.address, "rabbitmq: the server accepts publishing again");
                }
                Some(_) => {}
                None => return Ended::Lost("connection closed".to_owned()),
            },
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ended::Closed;
                }
                let link = rx.borrow_and_update();
                if link.session != session || matches!(link.state, State::Closed) {
                    return Ended::Closed;
                }
            }
            () = shared.kick.notified() => {
                if !live.publish.status().connected() {
                    return Ended::Lost("the publishing channel was closed".to_owned());
                }
            }
            _ = tick.tick() => {
                if !live.conn.status().connected() {
                    return Ended::Lost("connection closed".to_owned());
                }
            }
        }
    }
}

/// AMQP headers from message headers.
fn to_table(header: &Metadata) -> Result<FieldTable> {
    let mut table = BTreeMap::new();
    for (k, v) in header {
        table.insert(
            short("header name", k)?,
            AMQPValue::LongString(LongString::from(v.as_bytes())),
        );
    }
    Ok(FieldTable::from(table))
}

/// Text of an AMQP header value; `None` for tables and arrays.
fn value_text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Void => String::new(),
        AMQPValue::DecimalValue(_) | AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => {
            return None;
        }
    })
}

/// The message of a delivery: its AMQP headers as text, its raw body (moved out).
fn from_delivery(delivery: &mut lapin::message::Delivery) -> Message {
    let mut header = Metadata::new();
    if let Some(table) = delivery.properties.headers() {
        for (k, v) in table {
            if let Some(text) = value_text(v) {
                header.insert(k.as_str().to_owned(), text);
            }
        }
    }
    if let Some(ct) = delivery.properties.content_type() {
        header
            .entry(HEADER_CONTENT_TYPE.to_owned())
            .or_insert_with(|| ct.as_str().to_owned());
    }
    Message {
        header,
        body: bytes::Bytes::from(std::mem::take(&mut delivery.data)),
    }
}

#[async_trait]
impl Broker for RabbitmqBroker {
    fn name(&self) -> &str {
        "rabbitmq"
    }

    fn address(&self) -> String {
        self.inner
            .shared
            .targets
            .iter()
            .map(|(_, p)| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn connected(&self) -> Option<bool> {
        Some(matches!(
            &self.inner.shared.link.borrow().state,
            State::Up(live) if live.conn.status().connected()
        ))
    }

    async fn connect(&self) -> Result<()> {
        let shared = &self.inner.shared;
        match shared.settled().await.map(|l| l.state) {
            Some(State::Up(_)) => Ok(()),
            Some(State::Down(reason)) => Err(Error::service_unavailable(
                ERROR_ID,
                format!("rabbitmq: {reason} (retrying in the background)"),
            )),
            _ => Err(Error::service_unavailable(
                ERROR_ID,
                format!(
                    "rabbitmq: cannot connect to {}: no connection within {:?}",
                    shared.printable_addresses(),
                    shared.opts.connect_timeout
                ),
            )),
        }
    }

    async fn disconnect(&self) -> Result<()> {
        let shared = &self.inner.shared;
        let live = match &shared.link.borrow().state {
            State::Up(live) => Some(Arc::clone(live)),
            _ => None,
        };
        shared.close();
        if let Some(live) = live {
            // The connection task closes it too; closing here makes disconnect synchronous.
            close_conn(&live.conn).await;
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        let shared = &self.inner.shared;
        let routing_key = short("topic", topic)?;
        stamp(topic, &mut msg);
        let mut props = BasicProperties::default().with_headers(to_table(&msg.header)?);
        if let Some(ct) = msg.header.get(HEADER_CONTENT_TYPE) {
            props = props.with_content_type(short("content type", ct)?);
        }
        if self.inner.shared.opts.persistent_messages {
            props = props.with_delivery_mode(2);
        }
        let (_, live) = shared.live().await?;
        let fail = |e: lapin::Error| {
            if live.conn.status().connected() && !live.publish.status().connected() {
                shared.kick.notify_one();
            }
            Error::service_unavailable(
                ERROR_ID,
                format!(
                    "rabbitmq: cannot publish to `{topic}` on `{}`: {e}",
                    live.address
                ),
            )
        };
        tracing::trace!(
            topic,
            id = msg.id().unwrap_or_default(),
            "rabbitmq: publish"
        );
        let send = async {
            live.publish
                .basic_publish(
                    shared.exchange.clone(),
                    routing_key,
                    BasicPublishOptions::default(),
                    &msg.body,
                    props,
                )
                .await
                .map_err(fail)?
                .await
                .map_err(fail)
        };
        let confirm = tokio::time::timeout(shared.opts.publish_timeout, send)
            .await
            .map_err(|_| {
                Error::timeout(
                    ERROR_ID,
                    format!(
                        "rabbitmq: `{}` did not confirm the message on `{topic}` within {:?}",
                        live.address, shared.opts.publish_timeout
                    ),
                )
            })??;
        if confirm.is_nack() {
            return Err(Error::internal_server_error(
                ERROR_ID,
                format!(
                    "rabbitmq: `{}` refused the message on `{topic}`",
                    live.address
                ),
            ));
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let shared = Arc::clone(&self.inner.shared);
        let key = short("topic", topic)?;
        let queue = opts
            .queue
            .as_deref()
            .filter(|q| !q.is_empty())
            .map(|q| short("queue name", q))
            .transpose()?;
        let (session, live) = shared.live().await?;
        let (channel, consumer) = shared.consume(&live, &key, queue.as_ref()).await?;
        let ctl = Arc::new(Control {
            flag: StopFlag::default(),
            channel: Mutex::new(Some(channel)),
        });
        let sub = Subscription {
            shared,
            session,
            ctl: Arc::clone(&ctl),
            topic: Arc::from(topic),
            key,
            queue,
            handler,
            auto_ack: opts.auto_ack,
        };
        tokio::spawn(sub.run(consumer, live.generation));
        Ok(Handle::boxed("rabbitmq", topic, opts, ctl))
    }
}

/// What a subscription's task and its handle share.
struct Control {
    flag: StopFlag,
    /// The channel consuming now, closed by unsubscribe.
    channel: Mutex<Option<Channel>>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.flag.is_stopped()
    }
}

/// A subscription's consuming task.
struct Subscription {
    shared: Arc<Shared>,
    session: u64,
    ctl: Arc<Control>,
    topic: Arc<str>,
    key: ShortString,
    queue: Option<ShortString>,
    handler: Handler,
    auto_ack: bool,
}

impl Subscription {
    async fn run(self, consumer: Consumer, generation: u64) {
        let mut stop = self.ctl.flag.watch();
        let mut link = self.shared.link.subscribe();
        let mut consumer = Some((consumer, generation));
        loop {
            if let Some((consumer, generation)) = consumer.take() {
                self.deliver(consumer, &mut stop).await;
                if self.ctl.stopped() {
                    return;
                }
                tracing::debug!(topic = %self.topic, generation, "rabbitmq: consumer ended, subscribing again");
            }
            let mut backoff =
                Backoff::new(self.shared.opts.min_backoff, self.shared.opts.max_backoff);
            loop {
                let Some(live) = self.wait_up(&mut link, &mut stop).await else {
                    return;
                };
                match self
                    .shared
                    .consume(&live, &self.key, self.queue.as_ref())
                    .await
                {
                    Ok((channel, c)) => {
                        *lock(&self.ctl.channel) = Some(channel.clone());
                        if self.ctl.stopped() {
                            let _ = channel.close(200, "OK".into()).await;
                            return;
                        }
                        tracing::info!(topic = %self.topic, queue = ?self.queue.as_ref().map(ShortString::as_str), address = %live.address, "rabbitmq: subscribed again");
                        consumer = Some((c, live.generation));
                        break;
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(topic = %self.topic, error = %e.detail, retry_in = ?delay, "rabbitmq: cannot subscribe again");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
            }
        }
    }

    /// A connected connection of this session; `None` once unsubscribed or disconnected.
    async fn wait_up(
        &self,
        link: &mut watch::Receiver<Link>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Arc<Live>> {
        loop {
            if self.ctl.stopped() {
                return None;
            }
            {
                let l = link.borrow_and_update();
                if l.session != self.session || matches!(l.state, State::Closed) {
                    return None;
                }
                if let State::Up(live) = &l.state
                    && live.conn.status().connected()
                {
                    return Some(Arc::clone(live));
                }
            }
            tokio::select! {
                changed = link.changed() => if changed.is_err() { return None; },
                _ = stop.wait_for(|s| *s) => return None,
                // A connection that is up in name but closed: look again shortly.
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    async fn deliver(&self, mut consumer: Consumer, stop: &mut watch::Receiver<bool>) {
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = stop.wait_for(|s| *s) => return,
            };
            match next {
                Some(Ok(delivery)) => self.handle(delivery).await,
                Some(Err(e)) => {
                    tracing::debug!(topic = %self.topic, error = %e, "rabbitmq: consumer failed");
                    return;
                }
                None => return,
            }
        }
    }

    async fn handle(&self, mut delivery: lapin::message::Delivery) {
        if self.ctl.stopped() {
            // Unacknowledged: the server requeues it when the channel closes.
            return;
        }
        let message = from_delivery(&mut delivery);
        let topic: Arc<str> = if delivery.routing_key.as_str() == &*self.topic {
            Arc::clone(&self.topic)
        } else {
            Arc::from(delivery.routing_key.as_str())
        };
        let id = message.id().unwrap_or_default().to_owned();
        let ack = (!self.auto_ack).then(|| {
            let acker = delivery.acker.clone();
            let ack: AckFn = Box::new(move || {
                Box::pin(async move {
                    acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            Error::service_unavailable(
                                ERROR_ID,
                                format!("rabbitmq: cannot acknowledge the message: {e}"),
                            )
                        })
                })
            });
            ack
        });
        let outcome =
            kit::deliver("rabbitmq", &self.handler, Arc::clone(&topic), message, ack).await;
        let acked = match outcome {
            Outcome::Ok if self.auto_ack => delivery.acker.ack(BasicAckOptions::default()).await,
            Outcome::Ok => Ok(true),
            Outcome::Failed(error) => {
                let requeue = kit::retry_failed(
                    "rabbitmq",
                    &topic,
                    self.shared.opts.redeliver_failed,
                    delivery.redelivered,
                );
                tracing::warn!(
                    topic = %topic,
                    id,
                    %error,
                    redelivered = delivery.redelivered,
                    requeue,
                    "rabbitmq: subscriber failed, rejecting the message"
                );
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue,
                        multiple: false,
                    })
                    .await
            }
        };
        if let Err(e) = acked {
            // The channel is gone: the server requeues what it had not seen acknowledged.
            tracing::debug!(topic = %topic, id, error = %e, "rabbitmq: cannot settle the message");
        }
    }
}

#[async_trait]
impl Stop for Control {
    /// Stops delivery at once (a message already received but not yet handled is left to the
    /// server, which requeues it) and closes the subscription's channel, which deletes a
    /// broadcast queue. Idempotent.
    async fn stop(&self, topic: &str) -> Result<()> {
        self.flag.raise();
        let channel = lock(&self.channel).take();
        if let Some(channel) = channel
            && channel.status().connected()
        {
            let closed =
                tokio::time::timeout(Duration::from_secs(5), channel.close(200, "OK".into())).await;
            let failure = match closed {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("the server did not answer within 5s".to_owned()),
            };
            if let Some(reason) = failure {
                // Delivery has stopped either way; the server drops the consumer with the
                // channel or the connection.
                return Err(Error::service_unavailable(
                    ERROR_ID,
                    format!("rabbitmq: cannot close the channel of `{topic}` cleanly: {reason}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_config() {
        let b = RabbitmqBroker::new(RabbitmqOptions::with_addresses("")).expect("default");
        assert_eq!(b.address(), "amqp://guest:***@127.0.0.1:5672/%2f");
        let b = RabbitmqBroker::new(RabbitmqOptions::with_addresses(
            " amqp://a:b@127.0.0.1:5673/v , 127.0.0.1:5674",
        ))
        .expect("two");
        assert_eq!(
            b.address(),
            "amqp://a:***@127.0.0.1:5673/v,amqp://127.0.0.1:5674"
        );
        let err = RabbitmqBroker::new(RabbitmqOptions::with_addresses("http://x:y@h"))
            .expect_err("not amqp");
        assert!(
            err.detail.contains("`http://x:***@h` is not an AMQP URL"),
            "{err}"
        );
        assert!(!err.detail.contains(":y@"), "{err}");
    }

    #[test]
    fn long_names_are_errors_not_panics() {
        let long = "x".repeat(256);
        let err = short("topic", &long).expect_err("too long");
        assert!(err.detail.contains("AMQP allows at most 255"), "{err}");
        assert!(short("topic", &"x".repeat(255)).is_ok());
    }

    #[test]
    fn headers_round_trip_as_text() {
        let mut header = Metadata::new();
        header.insert("Content-Type".into(), "application/json".into());
        header.insert("name".into(), "软件".into());
        let table = to_table(&header).expect("table");
        for (k, v) in &table {
            assert_eq!(
                value_text(v).as_deref(),
                header.get(k.as_str()).map(String::as_str)
            );
        }
        assert_eq!(
            value_text(&AMQPValue::LongLongInt(-3)).as_deref(),
            Some("-3")
        );
        assert_eq!(
            value_text(&AMQPValue::Boolean(true)).as_deref(),
            Some("true")
        );
        assert_eq!(
            value_text(&AMQPValue::FieldTable(FieldTable::default())),
            None
        );
    }
}
