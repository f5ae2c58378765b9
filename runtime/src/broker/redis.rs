//! Redis broker (feature `redis`), over the [redis](https://docs.rs/redis) crate on tokio.
//!
//! Two Redis mechanisms, one per kind of subscription:
//!
//! - **broadcast** (no queue name): Redis pub/sub, as go-plugins v2 `broker/redis` does. The
//!   message goes out with `PUBLISH <topic> <envelope>`, where the envelope is go-micro's JSON
//!   (`{"Header":{..},"Body":"<base64>"}`, what go-micro's json codec makes of a
//!   `broker.Message`), so go-micro peers using that plugin interoperate. Each broadcast
//!   subscription holds its own pub/sub connection. As with any Redis pub/sub, a subscriber
//!   that is disconnected misses what is published meanwhile;
//! - **queue** (a queue name; go-micro's plugin has no queues, it treats them as broadcast):
//!   a Redis stream with a consumer group. The stream key is `micro:stream:<topic>`
//!   ([`RedisOptions::stream_prefix`]), the consumer group is the queue name, each
//!   subscription is a consumer `<queue>-<uuid>` reading with `XREADGROUP … BLOCK`; each entry
//!   has one field, `envelope`, holding the same JSON envelope. The group is created at `$`
//!   (new messages only) with `MKSTREAM` when a queue subscription starts, and again if it
//!   disappears (a Redis restarted without persistence).
//!
//! `publish` runs one Lua script, atomically and in one round trip: `PUBLISH` to the topic,
//! then, only if the topic's stream exists (some queue group was ever created for it),
//! `XADD … MAXLEN ~ <max_stream_len> * envelope <envelope>` (10 000 entries by default). So a
//! topic without queue subscribers costs no memory, and a queue's backlog is capped: entries
//! trimmed before a group read them are lost. The stream is not deleted when the last group
//! goes; it stays capped.
//!
//! # Acknowledgements and redelivery (queues)
//!
//! - [`SubscribeOptions::auto_ack`] on (the default): after the handler returns `Ok` the entry
//!   is acknowledged (`XACK`); off: the handler acks through [`Event::ack`].
//! - An entry whose handler failed (an `Err`, or a panic) on its first delivery is left
//!   pending; an entry left pending for longer than [`RedisOptions::claim_idle`] (30 s by
//!   default) — a failed one, or one whose consumer died or hangs — is claimed by a live
//!   consumer of the group (`XAUTOCLAIM`, checked every few seconds) and handled again. A
//!   claimed entry whose handler fails again is acknowledged and dropped, with a warning: a
//!   failing message is tried at most twice and cannot loop. With
//!   [`RedisOptions::redeliver_failed`] off, a failed entry is dropped at once.
//! - Consequences: delivery to a queue is at-least-once; a handler slower than `claim_idle`
//!   may see its message handled a second time by another consumer; an entry handled with
//!   `auto_ack` off and never acked comes back every `claim_idle`.
//! - Broadcast (pub/sub) has nothing to acknowledge: [`Event::ack`] is a no-op there.
//!
//! Handlers of one subscription run one at a time, in order. Publish failures reach the
//! caller.
//!
//! # Recovery
//!
//! Publishing uses a multiplexed connection that reconnects by itself (a publish during an
//! outage fails with the reason). Each subscription's task reconnects with exponential
//! backoff (100 ms doubling to 2 s, logged) and subscribes again (pub/sub) or recreates its
//! group if needed and reads on (streams). Pub/sub connections are pinged every 15 s, so a
//! silently dead connection is noticed too.
//!
//! [`Broker::connected`] (the service's readiness) is `false` while any subscription is
//! reconnecting, and from a publish or connect that could not reach the server until a
//! `PING`, retried with the same backoff, or a later publish reaches it again.
//!
//! # Address, credentials, TLS
//!
//! `--broker_address` takes one Redis URL, `redis://[user][:password@]host:port[/db]`;
//! a bare `host:port` means `redis://host:port`; empty = `redis://127.0.0.1:6379`.
//! `rediss://` connects with TLS (rustls with ring, the system's root certificates).
//! Passwords are masked in [`Broker::address`], logs and errors.
//!
//! [`SubscribeOptions::auto_ack`]: super::SubscribeOptions::auto_ack

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSubSink};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncConnectionConfig, Client, RedisError, Value};
use tokio::sync::watch;

use super::kit::{
    self, Backoff, ERROR_ID, Handle, Links, Outcome, Publishing, Stop, StopFlag, lock, mask_url,
};
use super::{
    AckFn, Broker, Event, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp,
};
use crate::{Error, Result};

/// The address used when `--broker_address` is empty.
pub const DEFAULT_ADDRESS: &str = "redis://127.0.0.1:6379";

/// The field of a stream entry that holds the envelope.
pub const ENVELOPE_FIELD: &str = "envelope";

/// `PUBLISH` always; `XADD` when the topic's stream exists.
const PUBLISH_SCRIPT: &str = r"
redis.call('PUBLISH', ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'envelope', ARGV[2])
end
return 1
";

/// Options of [`RedisBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The Redis URL, `redis://[user][:password@]host:port[/db]` (or `rediss://`).
    pub address: String,
    /// Stream key prefix of queue subscriptions: the stream of topic `t` is `<prefix>t`.
    pub stream_prefix: String,
    /// Approximate cap of a topic's stream (`XADD MAXLEN ~`).
    pub max_stream_len: usize,
    /// How long an entry may stay pending before another consumer claims it.
    pub claim_idle: Duration,
    /// Entries read at once by a queue consumer.
    pub batch: usize,
    /// Leave a failed entry pending for one more try (see the module docs).
    pub redeliver_failed: bool,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a command may take (blocking reads get this on top of their block time).
    pub response_timeout: Duration,
    /// First delay between reconnection attempts; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between reconnection attempts.
    pub max_backoff: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            stream_prefix: "micro:stream:".to_owned(),
            max_stream_len: 10_000,
            claim_idle: Duration::from_secs(30),
            batch: 16,
            redeliver_failed: true,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RedisOptions {
    /// Options for `address` (empty = [`DEFAULT_ADDRESS`]).
    pub fn with_address(address: &str) -> Self {
        let address = address.trim();
        Self {
            address: if address.is_empty() {
                DEFAULT_ADDRESS.to_owned()
            } else {
                address.to_owned()
            },
            ..Self::default()
        }
    }
}

/// The Redis broker: pub/sub for broadcast, streams with consumer groups for queues. See the
/// [module docs](self).
///
/// Connecting is lazy ([`Broker::connect`] checks the server). Clones share the publishing
/// connection; dropping the last clone, or [`Broker::disconnect`], ends every subscription.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.session.send_modify(|s| *s += 1);
    }
}

struct Shared {
    opts: RedisOptions,
    client: Client,
    printable: String,
    script: redis::Script,
    /// The publishing (and acknowledging) connection, made on first use.
    publisher: Mutex<Option<ConnectionManager>>,
    /// Bumped by disconnect: subscriptions of an older session stop.
    session: watch::Sender<u64>,
    /// Which connections are down (readiness): each subscription's, the publisher's.
    links: Arc<Links>,
    publishing: Arc<Publishing>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("address", &self.inner.shared.printable)
            .finish()
    }
}

impl RedisBroker {
    /// A broker with the given options. Fails on an address that is not a Redis URL.
    pub fn new(opts: RedisOptions) -> Result<Self> {
        if opts.address.contains(',') {
            return Err(Error::bad_request(
                ERROR_ID,
                format!(
                    "redis: one address expected, got `{}` (Redis Cluster and Sentinel are not supported)",
                    mask_url(&opts.address)
                ),
            ));
        }
        let url = if opts.address.contains("://") {
            opts.address.clone()
        } else {
            format!("redis://{}", opts.address)
        };
        let printable = mask_url(&url);
        // redis-rs builds its TLS configuration from rustls's process-wide provider, which
        // rustls cannot pick by itself once a program links both ring and aws-lc-rs (reqwest's
        // default does): install ring's, as services do, unless one is installed already.
        if url.starts_with("rediss://") {
            crate::service::install_crypto_provider();
        }
        // TCP_NODELAY, as Go's net package sets on every connection (so go-micro's redis
        // broker): without it, a publish written while an earlier one is unanswered waits.
        let client = redis::IntoConnectionInfo::into_connection_info(url.as_str())
            .map(|info| {
                let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
                info.set_tcp_settings(tcp)
            })
            .and_then(Client::open)
            .map_err(|e| {
            Error::bad_request(
                ERROR_ID,
                format!(
                    "redis: `{printable}` is not a Redis URL ({e}), expected `redis://[:password@]host:port[/db]`"
                ),
            )
        })?;
        let links = Arc::new(Links::default());
        let publishing = Publishing::new(&links, opts.min_backoff, opts.max_backoff);
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    opts,
                    client,
                    printable,
                    script: redis::Script::new(PUBLISH_SCRIPT),
                    publisher: Mutex::new(None),
                    session: watch::channel(0).0,
                    links,
                    publishing,
                }),
            }),
        })
    }

    /// The broker `--broker=redis` builds: the address from `--broker_address` (empty =
    /// [`DEFAULT_ADDRESS`]). Does not connect.
    pub fn from_config(options: &crate::config::Options) -> Result<Self> {
        Self::new(RedisOptions::with_address(&options.broker_address))
    }

    /// The stream key of `topic`'s queue groups.
    pub fn stream_key(&self, topic: &str) -> String {
        self.inner.shared.stream_key(topic)
    }
}

impl Shared {
    fn stream_key(&self, topic: &str) -> String {
        format!("{}{topic}", self.opts.stream_prefix)
    }

    fn unavailable(&self, what: impl fmt::Display, e: &RedisError) -> Error {
        Error::service_unavailable(
            ERROR_ID,
            format!("redis: {what} on `{}`: {e}", self.printable),
        )
    }

    fn cannot_connect(&self, e: &RedisError) -> Error {
        Error::service_unavailable(
            ERROR_ID,
            format!("redis: cannot connect to `{}`: {e}", self.printable),
        )
    }

    fn connection_config(&self, extra: Duration) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.response_timeout + extra))
    }

    /// The shared publishing connection, made on first use. It reconnects by itself.
    async fn publisher(&self) -> Result<ConnectionManager> {
        if let Some(conn) = lock(&self.publisher).clone() {
            return Ok(conn);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(self.opts.min_backoff)
            .set_max_delay(self.opts.max_backoff);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| self.cannot_connect(&e))?;
        Ok(lock(&self.publisher).get_or_insert(conn).clone())
    }

    /// Notes a round trip's outcome on the publisher's link: up when it reached the server;
    /// down when it could not (then probed with `PING` until the server answers).
    fn publisher_outcome<T>(self: &Arc<Self>, result: &std::result::Result<T, RedisError>) {
        match result {
            Ok(_) => self.publishing.reached(),
            Err(e) if unreachable(e) => self.publisher_unreachable(),
            Err(_) => {}
        }
    }

    fn publisher_unreachable(self: &Arc<Self>) {
        self.publishing
            .unreachable(self, |shared| async move { shared.ping().await.is_ok() });
    }

    /// `PING` over the publishing connection (made if missing).
    async fn ping(&self) -> Result<()> {
        let mut conn = self.publisher().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.cannot_connect(&e))
    }

    /// `XACK`s one entry.
    async fn ack(&self, key: &str, group: &str, id: &str) -> Result<()> {
        let mut conn = self.publisher().await?;
        redis::cmd("XACK")
            .arg(key)
            .arg(group)
            .arg(id)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(format_args!("cannot acknowledge `{id}` of `{key}`"), &e))
    }

    /// A pub/sub connection subscribed to `topic`.
    async fn pubsub(&self, topic: &str) -> Result<(PubSubSink, redis::aio::PubSubStream)> {
        let pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| self.cannot_connect(&e))?;
        let (mut sink, stream) = pubsub.split();
        sink.subscribe(topic)
            .await
            .map_err(|e| self.unavailable(format_args!("cannot subscribe to `{topic}`"), &e))?;
        Ok((sink, stream))
    }

    /// A connection for a queue consumer, with its group created if missing.
    async fn consumer(
        &self,
        key: &str,
        group: &str,
        block: Duration,
    ) -> Result<MultiplexedConnection> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.connection_config(block))
            .await
            .map_err(|e| self.cannot_connect(&e))?;
        self.create_group(&mut conn, key, group).await?;
        Ok(conn)
    }

    async fn create_group(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
        group: &str,
    ) -> Result<()> {
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async::<()>(conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(self.unavailable(
                format_args!("cannot create consumer group `{group}` of `{key}`"),
                &e,
            )),
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &str {
        "redis"
    }

    fn address(&self) -> String {
        self.inner.shared.printable.clone()
    }

    async fn connect(&self) -> Result<()> {
        let shared = &self.inner.shared;
        let result = shared.ping().await;
        match &result {
            Ok(()) => shared.publishing.reached(),
            Err(_) => shared.publisher_unreachable(),
        }
        result
    }

    /// Whether every subscription's connection is up and the last round trip of the
    /// publishing connection reached the server.
    fn connected(&self) -> Option<bool> {
        Some(self.inner.shared.links.all_up())
    }

    async fn disconnect(&self) -> Result<()> {
        let shared = &self.inner.shared;
        shared.session.send_modify(|s| *s += 1);
        lock(&shared.publisher).take();
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        let shared = &self.inner.shared;
        stamp(topic, &mut msg);
        let envelope = msg.to_envelope();
        let mut conn = match shared.publisher().await {
            Ok(conn) => conn,
            Err(e) => {
                shared.publisher_unreachable();
                return Err(e);
            }
        };
        tracing::trace!(topic, id = msg.id().unwrap_or_default(), "redis: publish");
        let result = shared
            .script
            .key(shared.stream_key(topic))
            .arg(topic)
            .arg(envelope)
            .arg(shared.opts.max_stream_len)
            .invoke_async::<i64>(&mut conn)
            .await;
        shared.publisher_outcome(&result);
        result
            .map(|_| ())
            .map_err(|e| shared.unavailable(format_args!("cannot publish to `{topic}`"), &e))
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let shared = Arc::clone(&self.inner.shared);
        let ctl = Arc::new(Control {
            flag: StopFlag::default(),
            sink: Mutex::new(None),
        });
        let session = shared.session.subscribe();
        let base = Base {
            shared: Arc::clone(&shared),
            session,
            ctl: Arc::clone(&ctl),
            topic: Arc::from(topic),
            handler,
            auto_ack: opts.auto_ack,
        };
        match opts.queue.as_deref().filter(|q| !q.is_empty()) {
            None => {
                let (sink, stream) = shared.pubsub(topic).await?;
                *lock(&ctl.sink) = Some(sink);
                tokio::spawn(base.run_broadcast(stream));
            }
            Some(queue) => {
                // Make sure the publisher connection exists, for acknowledgements.
                shared.publisher().await?;
                let key = shared.stream_key(topic);
                let block = shared
                    .opts
                    .claim_idle
                    .min(Duration::from_secs(2))
                    .max(Duration::from_millis(100));
                let conn = shared.consumer(&key, queue, block).await?;
                let queue_sub = QueueConsumer {
                    consumer: format!("{queue}-{}", crate::id::uuid().simple()),
                    group: queue.to_owned(),
                    key,
                    block,
                };
                tokio::spawn(base.run_queue(queue_sub, conn));
            }
        }
        Ok(Handle::boxed("redis", topic, opts, ctl))
    }
}

/// Whether `e` says the server could not be reached (rather than refusing the command).
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// What a subscription's task and its handle share.
struct Control {
    flag: StopFlag,
    /// The pub/sub connection's command side, to unsubscribe at once.
    sink: Mutex<Option<PubSubSink>>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.flag.is_stopped()
    }
}

/// A subscription's task, either kind.
struct Base {
    shared: Arc<Shared>,
    session: watch::Receiver<u64>,
    ctl: Arc<Control>,
    topic: Arc<str>,
    handler: Handler,
    auto_ack: bool,
}

struct QueueConsumer {
    key: String,
    group: String,
    consumer: String,
    block: Duration,
}

impl Base {
    /// Resolves when the subscription should end: unsubscribed, disconnected or dropped.
    async fn ended(ctl: &Control, session: &mut watch::Receiver<u64>) {
        let mut stop = ctl.flag.watch();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = session.changed() => {}
        }
    }

    fn over(&self) -> bool {
        self.ctl.stopped() || self.session.has_changed().unwrap_or(true)
    }

    /// Sleeps `delay`, or less if the subscription ends meanwhile; `false` if it ended.
    async fn pause(&self, delay: Duration) -> bool {
        let mut session = self.session.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => !self.over(),
            () = Self::ended(&self.ctl, &mut session) => false,
        }
    }

    async fn run_broadcast(mut self, stream: redis::aio::PubSubStream) {
        let mut stream = Some(stream);
        let mut link = self.shared.links.link();
        loop {
            if let Some(s) = stream.take() {
                self.deliver_broadcast(s).await;
            }
            lock(&self.ctl.sink).take();
            if self.over() {
                return;
            }
            link.down();
            let mut backoff =
                Backoff::new(self.shared.opts.min_backoff, self.shared.opts.max_backoff);
            loop {
                let delay = backoff.next_delay();
                if !self.pause(delay).await {
                    return;
                }
                match self.shared.pubsub(&self.topic).await {
                    Ok((sink, s)) => {
                        *lock(&self.ctl.sink) = Some(sink);
                        link.up();
                        tracing::info!(topic = %self.topic, address = %self.shared.printable, "redis: subscribed again");
                        stream = Some(s);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e.detail, "redis: cannot subscribe again");
                    }
                }
            }
        }
    }

    /// Handles pub/sub messages until the connection drops or the subscription ends.
    async fn deliver_broadcast(&mut self, mut stream: redis::aio::PubSubStream) {
        let ctl = Arc::clone(&self.ctl);
        let mut session = self.session.clone();
        let mut ping = tokio::time::interval(Duration::from_secs(15));
        ping.reset();
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                () = Self::ended(&ctl, &mut session) => return,
                _ = ping.tick() => {
                    let sink = lock(&ctl.sink).clone();
                    if let Some(mut sink) = sink {
                        let pong = tokio::time::timeout(self.shared.opts.response_timeout, sink.ping::<Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            tracing::warn!(topic = %self.topic, "redis: the pub/sub connection does not answer, reconnecting");
                            return;
                        }
                    }
                    continue;
                }
            };
            let Some(msg) = msg else {
                tracing::warn!(topic = %self.topic, address = %self.shared.printable, "redis: pub/sub connection lost, reconnecting");
                return;
            };
            if self.over() {
                return;
            }
            let message = match Message::from_envelope(msg.get_payload_bytes()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e.detail, "redis: dropping a message that is not go-micro's envelope");
                    continue;
                }
            };
            let id = message.id().unwrap_or_default().to_owned();
            if let Outcome::Failed(error) = kit::run_handler(
                "redis",
                &self.handler,
                Event::new(Arc::clone(&self.topic), message),
            )
            .await
            {
                tracing::warn!(topic = %self.topic, id, %error, "redis: subscriber failed (pub/sub has no redelivery)");
            }
        }
    }

    async fn run_queue(mut self, q: QueueConsumer, conn: MultiplexedConnection) {
        let mut conn = Some(conn);
        let mut link = self.shared.links.link();
        let mut backoff = Backoff::new(self.shared.opts.min_backoff, self.shared.opts.max_backoff);
        // Claim right away: entries of a consumer that died may be waiting.
        let mut next_claim = Instant::now();
        let mut cursor = "0-0".to_owned();
        let claim_every = (self.shared.opts.claim_idle / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            if self.over() {
                break;
            }
            let Some(c) = conn.as_mut() else {
                if !self.pause(backoff.next_delay()).await {
                    break;
                }
                match self.shared.consumer(&q.key, &q.group, q.block).await {
                    Ok(c) => {
                        tracing::info!(topic = %self.topic, group = %q.group, address = %self.shared.printable, "redis: consuming again");
                        conn = Some(c);
                        link.up();
                        backoff.reset();
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, group = %q.group, error = %e.detail, "redis: cannot consume again");
                    }
                }
                continue;
            };
            let mut c = c.clone();
            let step = if Instant::now() >= next_claim {
                next_claim = Instant::now() + claim_every;
                self.claim(&q, &mut c, &mut cursor).await
            } else {
                self.read(&q, &mut c).await
            };
            if let Err(e) = step {
                if self.over() {
                    break;
                }
                if e.code() == Some("NOGROUP") {
                    tracing::warn!(topic = %self.topic, group = %q.group, "redis: the consumer group is gone, creating it again");
                    if let Err(err) = self.shared.create_group(&mut c, &q.key, &q.group).await {
                        tracing::warn!(error = %err.detail, "redis: cannot create the consumer group");
                        conn = None;
                        link.down();
                    }
                } else {
                    tracing::warn!(topic = %self.topic, group = %q.group, error = %e, "redis: queue connection failed, reconnecting");
                    conn = None;
                    link.down();
                }
            }
        }
        self.retire(&q).await;
    }

    /// Reads and handles new entries (`>`), blocking a while when there are none.
    async fn read(
        &mut self,
        q: &QueueConsumer,
        conn: &mut MultiplexedConnection,
    ) -> std::result::Result<(), RedisError> {
        let opts = StreamReadOptions::default()
            .group(&q.group, &q.consumer)
            .count(self.shared.opts.batch)
            .block(usize::try_from(q.block.as_millis()).unwrap_or(usize::MAX));
        let ctl = Arc::clone(&self.ctl);
        let mut session = self.session.clone();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg(&opts).arg("STREAMS").arg(&q.key).arg(">");
        let reply = tokio::select! {
            reply = cmd.query_async::<Option<StreamReadReply>>(conn) => reply?,
            () = Self::ended(&ctl, &mut session) => return Ok(()),
        };
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            if self.over() {
                break;
            }
            self.handle_entry(q, entry, false).await;
        }
        Ok(())
    }

    /// Claims and handles entries pending longer than `claim_idle`.
    async fn claim(
        &mut self,
        q: &QueueConsumer,
        conn: &mut MultiplexedConnection,
        cursor: &mut String,
    ) -> std::result::Result<(), RedisError> {
        let idle = usize::try_from(self.shared.opts.claim_idle.as_millis()).unwrap_or(usize::MAX);
        // A few rounds per check, so that new entries are not starved.
        for _ in 0..4 {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&q.key)
                .arg(&q.group)
                .arg(&q.consumer)
                .arg(idle)
                .arg(cursor.as_str())
                .arg(StreamAutoClaimOptions::default().count(self.shared.opts.batch))
                .query_async(conn)
                .await?;
            *cursor = reply.next_stream_id;
            for entry in reply.claimed {
                if self.over() {
                    return Ok(());
                }
                tracing::debug!(topic = %self.topic, group = %q.group, id = %entry.id, "redis: redelivering a claimed entry");
                self.handle_entry(q, entry, true).await;
            }
            if cursor.as_str() == "0-0" {
                break;
            }
        }
        Ok(())
    }

    async fn handle_entry(&self, q: &QueueConsumer, entry: StreamId, redelivered: bool) {
        let message = match entry.map.get(ENVELOPE_FIELD) {
            Some(Value::BulkString(bytes)) => Message::from_envelope(bytes),
            _ => Err(Error::bad_request(
                ERROR_ID,
                format!("stream entry has no `{ENVELOPE_FIELD}` field"),
            )),
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic = %self.topic, entry = %entry.id, error = %e.detail, "redis: dropping a malformed stream entry");
                self.settle(q, &entry.id).await;
                return;
            }
        };
        let id = message.id().unwrap_or_default().to_owned();
        let ack = (!self.auto_ack).then(|| {
            let shared = Arc::clone(&self.shared);
            let (key, group, entry_id) = (q.key.clone(), q.group.clone(), entry.id.clone());
            let ack: AckFn = Box::new(move || {
                Box::pin(async move { shared.ack(&key, &group, &entry_id).await })
            });
            ack
        });
        let outcome = kit::deliver(
            "redis",
            &self.handler,
            Arc::clone(&self.topic),
            message,
            ack,
        )
        .await;
        match outcome {
            Outcome::Ok => {
                if self.auto_ack {
                    self.settle(q, &entry.id).await;
                }
            }
            Outcome::Failed(error) => {
                let retry = kit::retry_failed(
                    "redis",
                    &self.topic,
                    self.shared.opts.redeliver_failed,
                    redelivered,
                );
                tracing::warn!(
                    topic = %self.topic,
                    group = %q.group,
                    entry = %entry.id,
                    id,
                    %error,
                    redelivered,
                    retry,
                    "redis: subscriber failed"
                );
                if !retry {
                    self.settle(q, &entry.id).await;
                }
            }
        }
    }

    /// Acknowledges an entry; a failure only leaves it pending (it will be claimed again).
    async fn settle(&self, q: &QueueConsumer, entry: &str) {
        if let Err(e) = self.shared.ack(&q.key, &q.group, entry).await {
            tracing::warn!(error = %e.detail, "redis: entry stays pending");
        }
    }

    /// Removes this consumer from its group, unless entries are still pending for it (they
    /// would be lost; live consumers claim them instead).
    async fn retire(&self, q: &QueueConsumer) {
        // Only over a connection that exists: after a disconnect, none is made for this.
        let Some(mut conn) = lock(&self.shared.publisher).clone() else {
            return;
        };
        let pending = redis::cmd("XPENDING")
            .arg(&q.key)
            .arg(&q.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&q.consumer)
            .query_async::<Vec<Value>>(&mut conn)
            .await;
        if matches!(&pending, Ok(p) if p.is_empty()) {
            let _ = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&q.key)
                .arg(&q.group)
                .arg(&q.consumer)
                .query_async::<i64>(&mut conn)
                .await;
        }
    }
}

#[async_trait]
impl Stop for Control {
    /// Stops delivery at once: no handler starts after this returns. A queue consumer leaves
    /// its group when it has nothing pending. Idempotent.
    async fn stop(&self, topic: &str) -> Result<()> {
        self.flag.raise();
        let sink = lock(&self.sink).take();
        if let Some(mut sink) = sink {
            // Best effort: the task drops the connection anyway.
            let _ = sink.unsubscribe(topic).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let b = RedisBroker::new(RedisOptions::with_address("")).expect("default");
        assert_eq!(b.address(), "redis://127.0.0.1:6379");
        let b = RedisBroker::new(RedisOptions::with_address(
            "redis://:s3cret@127.0.0.1:7000/2",
        ))
        .expect("password");
        assert_eq!(b.address(), "redis://:***@127.0.0.1:7000/2");
        let b = RedisBroker::new(RedisOptions::with_address("127.0.0.1:7001")).expect("bare");
        assert_eq!(b.address(), "redis://127.0.0.1:7001");
        let err = RedisBroker::new(RedisOptions::with_address("a:1,b:2")).expect_err("two");
        assert!(err.detail.contains("one address expected"), "{err}");
        let err =
            RedisBroker::new(RedisOptions::with_address("http://u:pw@h")).expect_err("scheme");
        assert!(err.detail.contains("is not a Redis URL"), "{err}");
        assert!(!err.detail.contains("pw"), "{err}");
    }

    #[test]
    fn stream_keys() {
        let b = RedisBroker::new(RedisOptions::default()).expect("default");
        assert_eq!(
            b.stream_key("go.micro.srv.message"),
            "micro:stream:go.micro.srv.message"
        );
    }
}
