//! Kafka broker (feature `kafka`), over [rdkafka](https://docs.rs/rdkafka) (librdkafka 2.12,
//! built from its bundled sources).
//!
//! Wire (go-plugins' `broker/kafka`, v4 v1.2.0, so that Go and Rust peers exchange messages):
//!
//! - a message is one record on the topic of the same name, without a key (the producer's
//!   partitioner spreads records over partitions); its value is go-micro's JSON envelope,
//!   `{"Header":{..},"Body":"<base64>"}`. No Kafka headers are written; Kafka headers found on
//!   a received record (from a non-go-micro producer) are copied over the envelope's, as
//!   go-micro does;
//! - a subscription with a queue name joins the consumer group of that name: the group's
//!   members share the topic's partitions, so each message goes to one of them;
//! - a subscription without a queue joins a consumer group of its own, a fresh uuid, as
//!   go-micro's does: every subscription gets every message;
//! - topics are created on first use, by the server (`auto.create.topics.enable`, on by
//!   default in Kafka) when published to or subscribed to;
//! - names are Kafka's: 1 to 249 of `.a-zA-Z0-9_-`; anything else is a `400`.
//!
//! # Where a new subscription starts, and delivery
//!
//! A new consumer group starts at the end of each partition as it was when `subscribe` was
//! called (go-micro's sarama starts at the newest offset too). rmicro notes those offsets
//! before joining the group, so a message published after `subscribe` returns is delivered
//! even though joining a group takes a moment. A group that has committed offsets (a queue
//! group that existed before) goes on from them.
//!
//! At least once: a record's offset is stored after its handler returns `Ok` and committed
//! every second, and on every rebalance and unsubscribe; a subscriber that dies before
//! committing leaves the records for its group to get again. A handler that fails (an `Err`
//! or a panic) is run once more on the same message after [`KafkaOptions::retry_delay`]; if
//! it fails again, the message is skipped, with a warning (a failing message is tried at
//! most twice and never blocks its partition; [`KafkaOptions::redeliver_failed`] off: once).
//! With [`SubscribeOptions::auto_ack`] off, [`Event::ack`] stores the offset; as always in
//! Kafka, storing an offset acknowledges every earlier record of the partition too. A record
//! that is not go-micro's envelope is skipped, logged with its topic and counted
//! ([`KafkaBroker::malformed_messages`]). Handlers of one subscription run one at a time, in
//! partition order.
//!
//! `publish` returns once the partition leader and its in-sync replicas have the record
//! (`acks=all`), or fails after [`KafkaOptions::publish_timeout`] with the reason. A
//! message larger than the client's or the server's `message.max.bytes` (1,000,000 bytes by
//! default, [`KafkaOptions::max_message_bytes`]) is a `400` naming both limits.
//!
//! # Recovery
//!
//! librdkafka reconnects by itself (with backoff up to 2 s); consumer groups are joined
//! again after a server restart, from their committed offsets.
//!
//! [`Broker::connected`] (the service's readiness) is `false` while the producer or any
//! consumer has no broker connection up, as librdkafka's statistics say each second.
//!
//! # Addresses and credentials
//!
//! `--broker_address` takes the bootstrap servers, `host:port`, comma-separated; empty =
//! `127.0.0.1:9092`. A scheme names Kafka's security protocol, as a listener's name does:
//!
//! | address | `security.protocol` |
//! |---|---|
//! | `host:port`, `kafka://host:port`, `plaintext://host:port` | `PLAINTEXT` |
//! | `kafka://user:password@host:port`, `sasl_plaintext://user:password@host:port` | `SASL_PLAINTEXT` (PLAIN) |
//! | `ssl://host:port` | `SSL` |
//! | `ssl://user:password@host:port`, `sasl_ssl://user:password@host:port` | `SASL_SSL` (PLAIN) |
//!
//! The password is masked in [`Broker::address`] and errors. All addresses of one broker
//! use the same protocol (librdkafka has one per client).
//!
//! TLS needs the `kafka-tls` feature (librdkafka with OpenSSL, compiled from source; without
//! it a TLS address is a `400` saying so). The server's certificate is checked against the
//! file `SSL_CERT_FILE` names when that variable is set, else against the system's CA bundle
//! (librdkafka's `probe` of the usual paths); `ssl.ca.location` in
//! [`KafkaOptions::settings`] overrides both.
//!
//! [`SubscribeOptions::auto_ack`]: super::SubscribeOptions::auto_ack
//! [`Event::ack`]: super::Event::ack

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::kit::{self, ERROR_ID, Handle, Link, Links, Outcome, StopFlag, lock, mask_url};
use super::{AckFn, Broker, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::config::Options;
use crate::{Error, Result};

/// The address used when `--broker_address` is empty.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9092";

/// Options of [`KafkaBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port` or `kafka://[user:password@]host:port`. Default
    /// `127.0.0.1:9092`.
    pub addresses: Vec<String>,
    /// How long `publish` waits for the server's acknowledgement; also how long `connect`
    /// waits for the cluster to answer. Default 10 s.
    pub publish_timeout: Duration,
    /// The largest record the producer sends (librdkafka's `message.max.bytes`); the server
    /// has its own limit. Default 1,000,000.
    pub max_message_bytes: usize,
    /// Run a failed handler once more on the same message. Default `true`.
    pub redeliver_failed: bool,
    /// The pause before that second run. Default 1 s.
    pub retry_delay: Duration,
    /// How long a group member may be silent before the group gives its partitions to
    /// others (`session.timeout.ms`). Default 10 s.
    pub session_timeout: Duration,
    /// Extra librdkafka settings, applied last (`("fetch.wait.max.ms", "50")`).
    pub settings: Vec<(String, String)>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            publish_timeout: Duration::from_secs(10),
            max_message_bytes: 1_000_000,
            redeliver_failed: true,
            retry_delay: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            settings: Vec::new(),
        }
    }
}

impl KafkaOptions {
    /// Options for a `--broker_address` value (empty = the default).
    pub fn with_addresses(list: &str) -> Self {
        Self {
            addresses: kit::address_list(list, DEFAULT_ADDRESS),
            ..Self::default()
        }
    }
}

/// go-micro's Kafka broker. See the [module docs](self) for the wire and the guarantees.
#[derive(Clone)]
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

struct Inner {
    opts: KafkaOptions,
    /// librdkafka's settings shared by producer and consumers.
    base: ClientConfig,
    printable: String,
    producer: Mutex<Option<FutureProducer<Watched>>>,
    /// What librdkafka last reported about the connection (a refused certificate, a failed
    /// login), shared by the producer and every consumer.
    reported: Reported,
    subs: kit::Live,
    malformed: AtomicU64,
    /// Which clients are disconnected from every broker (readiness).
    links: Arc<Links>,
}

/// How long a reported connection error is quoted in the errors of calls that fail.
const REPORT_FRESH: Duration = Duration::from_secs(60);

/// Keeps librdkafka's last error event (its own retries report each
/// failed connection there, with the reason: "SSL handshake failed: ... certificate verify
/// failed", "SASL authentication error: ..."), so that a call that times out can say why.
#[derive(Clone, Default)]
struct Reported(Arc<Mutex<Option<(std::time::Instant, String)>>>);

impl Reported {
    /// The last reason, if recent.
    fn recent(&self) -> Option<String> {
        lock(&self.0)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < REPORT_FRESH)
            .map(|(_, reason)| reason.clone())
    }
}

impl Reported {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka: librdkafka reports");
        // "All broker connections are down" follows each failed connection: it would hide
        // the reason reported just before it.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
            && self.recent().is_some()
        {
            return;
        }
        *lock(&self.0) = Some((std::time::Instant::now(), format!("{error}: {reason}")));
    }
}

/// What one librdkafka client (the producer, a consumer) reports: its errors, into the
/// broker's [`Reported`], and whether it is connected, from its statistics (every
/// [`STATS_EVERY`]): up while any broker connection of its is `UP`.
struct Watched {
    reported: Reported,
    link: Mutex<Link>,
}

/// How often each client reports its brokers' states (`statistics.interval.ms`).
const STATS_EVERY: Duration = Duration::from_secs(1);

impl Watched {
    fn new(inner: &Inner) -> Self {
        Self {
            reported: inner.reported.clone(),
            link: Mutex::new(inner.links.link()),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.reported.error(error, reason);
    }

    /// Reads the brokers' states out of librdkafka's statistics.
    fn stats(&self, json: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Stats {
            brokers: HashMap<String, BrokerState>,
        }
        #[derive(serde::Deserialize)]
        struct BrokerState {
            state: String,
        }
        match serde_json::from_slice::<Stats>(json) {
            Ok(stats) => {
                let up = stats.brokers.values().any(|b| b.state == "UP");
                lock(&self.link).set(up);
            }
            Err(e) => tracing::debug!(error = %e, "kafka: cannot read librdkafka's statistics"),
        }
    }
}

impl ClientContext for Watched {
    fn error(&self, error: KafkaError, reason: &str) {
        Watched::error(self, error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.stats(statistics);
    }
}

impl fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("address", &self.inner.printable)
            .field("subscriptions", &self.inner.subs.count())
            .finish()
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::bad_request(
            ERROR_ID,
            format!(
                "kafka: {what} `{name}` is not a valid Kafka name (1 to 249 of `.a-zA-Z0-9_-`)"
            ),
        ))
    }
}

impl KafkaBroker {
    /// A broker for the servers in `opts`. Validates the addresses; connects nothing yet.
    pub fn new(opts: KafkaOptions) -> Result<Self> {
        let mut servers = Vec::new();
        let mut credentials = None;
        let mut tls = None;
        for address in &opts.addresses {
            let (this_tls, rest) = match address.split_once("://") {
                Some(("kafka" | "plaintext" | "sasl_plaintext", rest)) => (false, rest),
                Some(("ssl" | "sasl_ssl", rest)) => (true, rest),
                Some((scheme, _)) => {
                    return Err(Error::bad_request(
                        ERROR_ID,
                        format!(
                            "kafka: broker address `{}` has scheme `{scheme}`; use host:port, kafka://, plaintext://, sasl_plaintext://, ssl:// or sasl_ssl://",
                            mask_url(address)
                        ),
                    ));
                }
                None => (false, address.as_str()),
            };
            if *tls.get_or_insert(this_tls) != this_tls {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!(
                        "kafka: broker addresses `{}` mix TLS and plain connections; librdkafka has one security protocol per client",
                        opts.addresses
                            .iter()
                            .map(|a| mask_url(a))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                ));
            }
            if this_tls && !cfg!(feature = "kafka-tls") {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!(
                        "kafka: broker address `{}` asks for TLS, which needs rmicro's `kafka-tls` feature (librdkafka with OpenSSL)",
                        mask_url(address)
                    ),
                ));
            }
            let host = match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                    credentials = Some((user.to_owned(), password.to_owned()));
                    host
                }
                None => rest,
            };
            let host = host.trim_end_matches('/');
            if !matches!(
                host.rsplit_once(':').map(|(_, p)| p.parse::<u16>()),
                Some(Ok(_))
            ) {
                return Err(Error::bad_request(
                    ERROR_ID,
                    format!(
                        "kafka: broker address `{}` is not host:port",
                        mask_url(address)
                    ),
                ));
            }
            servers.push(host.to_owned());
        }
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", servers.join(","))
            .set("client.id", "rmicro")
            .set("socket.keepalive.enable", "true")
            .set("reconnect.backoff.max.ms", "2000")
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set("statistics.interval.ms", ms(STATS_EVERY))
            .set("message.max.bytes", opts.max_message_bytes.to_string());
        let tls = tls.unwrap_or(false);
        let protocol = match (tls, credentials.is_some()) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SASL_PLAINTEXT",
            (true, false) => "SSL",
            (true, true) => "SASL_SSL",
        };
        base.set("security.protocol", protocol);
        if let Some((user, password)) = credentials {
            base.set("sasl.mechanism", "PLAIN")
                .set("sasl.username", user)
                .set("sasl.password", password);
        }
        if tls {
            // The roots, as the rustls-based plugins take them: SSL_CERT_FILE, else the
            // system's bundle (librdkafka probes the usual paths; its statically linked
            // OpenSSL's own default directory does not exist on the machine).
            let roots = std::env::var("SSL_CERT_FILE")
                .ok()
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "probe".to_owned());
            base.set("ssl.ca.location", roots);
        }
        for (k, v) in &opts.settings {
            base.set(k, v);
        }
        let printable = opts
            .addresses
            .iter()
            .map(|a| mask_url(a))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                base,
                printable,
                producer: Mutex::new(None),
                reported: Reported::default(),
                subs: kit::Live::default(),
                malformed: AtomicU64::new(0),
                links: Arc::new(Links::default()),
            }),
        })
    }

    /// The broker `--broker_address` names.
    pub fn from_config(options: &Options) -> Result<Self> {
        Self::new(KafkaOptions::with_addresses(&options.broker_address))
    }

    /// Records skipped because their value was not go-micro's envelope.
    pub fn malformed_messages(&self) -> u64 {
        self.inner.malformed.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// A 503 naming the server, what failed and what librdkafka last reported.
    fn unavailable(&self, what: impl fmt::Display) -> Error {
        let mut detail = format!("kafka at `{}`: {what}", self.printable);
        if let Some(reason) = self.reported.recent() {
            detail.push_str(&format!(" (last connection error: {reason})"));
        }
        Error::service_unavailable(ERROR_ID, detail)
    }

    fn producer(&self) -> Result<FutureProducer<Watched>> {
        let mut guard = lock(&self.producer);
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        let producer: FutureProducer<Watched> = self
            .base
            .clone()
            .set("acks", "all")
            .set("message.timeout.ms", ms(self.opts.publish_timeout))
            .set("linger.ms", "0")
            .create_with_context(Watched::new(self))
            .map_err(|e| self.unavailable(format!("cannot create a producer: {e}")))?;
        *guard = Some(producer.clone());
        Ok(producer)
    }

    /// Waits until the cluster answers a metadata request.
    async fn reachable(&self, producer: FutureProducer<Watched>) -> Result<()> {
        let timeout = self.opts.publish_timeout;
        let answer = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(drop)
        })
        .await
        .map_err(|e| self.unavailable(e))?;
        answer.map_err(|e| self.unavailable(format!("no answer within {timeout:?}: {e}")))
    }

    fn publish_error(&self, topic: &str, size: usize, e: &KafkaError) -> Error {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                Error::bad_request(
                    ERROR_ID,
                    format!(
                        "kafka: the message to `{topic}` is {size} bytes as go-micro's envelope, over the limit of the client (KafkaOptions::max_message_bytes = {}) or of the server (message.max.bytes): {e}",
                        self.opts.max_message_bytes
                    ),
                )
            }
            Some(RDKafkaErrorCode::InvalidTopic) => Error::bad_request(
                ERROR_ID,
                format!("kafka: the server refuses topic `{topic}`: {e}"),
            ),
            _ => self.unavailable(format!("cannot publish to `{topic}`: {e}")),
        }
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    fn name(&self) -> &str {
        "kafka"
    }

    fn address(&self) -> String {
        self.inner.printable.clone()
    }

    /// Whether the producer and every consumer are connected to a broker (librdkafka's
    /// statistics, every second).
    fn connected(&self) -> Option<bool> {
        Some(self.inner.links.all_up())
    }

    /// Creates the producer and waits until the cluster answers: fails, with the reason,
    /// after [`KafkaOptions::publish_timeout`] when it does not.
    async fn connect(&self) -> Result<()> {
        let producer = self.inner.producer()?;
        self.inner.reachable(producer).await
    }

    async fn disconnect(&self) -> Result<()> {
        self.inner.subs.stop_all();
        let producer = lock(&self.inner.producer).take();
        if let Some(p) = producer {
            let timeout = self.inner.opts.publish_timeout;
            let _ = tokio::task::spawn_blocking(move || p.flush(Timeout::After(timeout))).await;
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        check_name("topic", topic)?;
        stamp(topic, &mut msg);
        let envelope = msg.to_envelope();
        let producer = self.inner.producer()?;
        let record = FutureRecord::<(), [u8]>::to(topic).payload(&envelope);
        match producer
            .send(record, Timeout::After(self.inner.opts.publish_timeout))
            .await
        {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(self.inner.publish_error(topic, envelope.len(), &e)),
        }
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        check_name("topic", topic)?;
        let group = match opts.queue.as_deref().filter(|q| !q.is_empty()) {
            Some(queue) => {
                check_name("queue", queue)?;
                queue.to_owned()
            }
            None => crate::id::uuid_string(),
        };
        let inner = &self.inner;
        let context = GroupStart {
            topic: topic.to_owned(),
            start: Mutex::new(HashMap::new()),
            watched: Watched::new(inner),
        };
        let consumer: StreamConsumer<GroupStart> = inner
            .base
            .clone()
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            .set("allow.auto.create.topics", "true")
            .set("session.timeout.ms", ms(inner.opts.session_timeout))
            .set(
                "heartbeat.interval.ms",
                ms((inner.opts.session_timeout / 10).max(Duration::from_millis(100))),
            )
            .set("fetch.wait.max.ms", "100")
            .create_with_context(context)
            .map_err(|e| inner.unavailable(format!("cannot create a consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        // Where the group starts, if it is new: the end of each partition now.
        let timeout = inner.opts.publish_timeout;
        let c = Arc::clone(&consumer);
        let t = topic.to_owned();
        let start = tokio::task::spawn_blocking(move || end_offsets(&c, &t, timeout))
            .await
            .map_err(|e| inner.unavailable(e))?
            .map_err(|e| inner.unavailable(format!("cannot read the offsets of `{topic}`: {e}")))?;
        *lock(&consumer.context().start) = start;
        consumer
            .subscribe(&[topic])
            .map_err(|e| inner.unavailable(format!("cannot subscribe to `{topic}`: {e}")))?;
        let flag = Arc::new(StopFlag::default());
        let sub = Subscription {
            inner: Arc::clone(inner),
            topic: Arc::from(topic),
            group,
            handler,
            auto_ack: opts.auto_ack,
            flag: Arc::clone(&flag),
        };
        tokio::spawn(sub.run(consumer));
        inner.subs.add(&flag);
        Ok(Handle::boxed("kafka", topic, opts, flag))
    }
}

/// Where a group starts on each partition of `topic` that it has no committed offset for:
/// the partition's end offset now (the server creates the topic for the metadata request if
/// need be). Blocking. A topic just created has no leader for a moment: asked again until
/// `timeout`.
fn end_offsets(
    consumer: &StreamConsumer<GroupStart>,
    topic: &str,
    timeout: Duration,
) -> std::result::Result<HashMap<i32, i64>, KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match try_end_offsets(consumer, topic, timeout) {
            Ok(Some(ends)) => return Ok(ends),
            Ok(None) if std::time::Instant::now() >= deadline => return Ok(HashMap::new()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Ok(None) | Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn try_end_offsets(
    consumer: &StreamConsumer<GroupStart>,
    topic: &str,
    timeout: Duration,
) -> std::result::Result<Option<HashMap<i32, i64>>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Timeout::After(timeout))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Timeout::After(timeout))?;
    let mut ends = HashMap::new();
    for p in partitions {
        let has_committed = committed
            .find_partition(topic, p)
            .is_some_and(|e| matches!(e.offset(), Offset::Offset(_)));
        if !has_committed {
            let (_, high) = consumer.fetch_watermarks(topic, p, Timeout::After(timeout))?;
            ends.insert(p, high);
        }
    }
    Ok(Some(ends))
}

/// The consumer's context: starts a new group where `subscribe` found each partition's end.
struct GroupStart {
    topic: String,
    start: Mutex<HashMap<i32, i64>>,
    watched: Watched,
}

impl ClientContext for GroupStart {
    fn error(&self, error: KafkaError, reason: &str) {
        self.watched.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.watched.stats(statistics);
    }
}

impl ConsumerContext for GroupStart {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.place(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // librdkafka commits the stored offsets (what was handled) itself before it
                // gives the partitions up: `enable.auto.commit`. (Not `commit_consumer_state`:
                // that commits the fetch position, past records fetched but not handled.)
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, topic = %self.topic, "kafka: rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, topic = %self.topic, "kafka: cannot apply the rebalance");
        }
    }
}

impl GroupStart {
    /// Partitions that had no committed offset when `subscribe` looked start at the end it
    /// noted then; the others go on from their committed offset. Nothing here blocks: it runs
    /// inside the consumer's poll, on a tokio worker.
    fn place(&self, tpl: &mut TopicPartitionList) {
        let start = lock(&self.start);
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (topic, partition) in assigned {
            if topic != self.topic {
                continue;
            }
            if let Some(&offset) = start.get(&partition) {
                let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset));
            }
        }
    }
}

/// Owns a subscription's consumer, and closes it on a thread of its own when dropped:
/// librdkafka's close (leaving the group) blocks, for seconds when the server is gone, and
/// must hold up neither a tokio worker nor a runtime shutting down.
struct CloseAside(Option<Arc<StreamConsumer<GroupStart>>>);

impl Drop for CloseAside {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("rmicro-kafka-close".to_owned())
                .spawn(move || drop(consumer));
        }
    }
}

/// One subscription's consuming task.
struct Subscription {
    inner: Arc<Inner>,
    topic: Arc<str>,
    group: String,
    handler: Handler,
    auto_ack: bool,
    flag: Arc<StopFlag>,
}

/// A received record, owned (the consumer's borrowed message cannot cross an `.await`).
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    message: Option<Message>,
}

impl Subscription {
    async fn run(self, consumer: Arc<StreamConsumer<GroupStart>>) {
        let owner = CloseAside(Some(consumer));
        let Some(consumer) = owner.0.as_ref() else {
            return;
        };
        let mut stop = self.flag.watch();
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                next = consumer.recv() => next,
            };
            let record = match next {
                Ok(m) => self.record(&m),
                Err(e) => {
                    // librdkafka reconnects by itself; this is what it ran into meanwhile.
                    tracing::warn!(topic = %self.topic, group = %self.group, error = %e, "kafka: consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if self.flag.is_stopped() {
                break;
            }
            self.handle(consumer, record).await;
        }
        // Leaves the group: librdkafka commits the stored offsets (what was handled) as it
        // gives the partitions up, then `owner` closes the consumer, aside.
        let c = Arc::clone(consumer);
        let _ = tokio::task::spawn_blocking(move || c.unsubscribe()).await;
    }

    fn record(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
        let message = kit::decode(
            "kafka",
            m.topic(),
            m.payload().unwrap_or_default(),
            &self.inner.malformed,
        )
        .map(|mut message| {
            if let Some(headers) = m.headers() {
                for h in headers.iter() {
                    if let Some(v) = h.value.and_then(|v| std::str::from_utf8(v).ok()) {
                        message.header.insert(h.key.to_owned(), v.to_owned());
                    }
                }
            }
            message
        });
        Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            message,
        }
    }

    async fn handle(&self, consumer: &Arc<StreamConsumer<GroupStart>>, record: Record) {
        let Record {
            topic,
            partition,
            offset,
            message,
        } = record;
        let store = |consumer: &StreamConsumer<GroupStart>| {
            // librdkafka's rd_kafka_offset_store stores `offset + 1`, the next to read.
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                // The partition went to another member meanwhile: it gets the record again.
                tracing::debug!(topic = %topic, partition, error = %e, "kafka: cannot store the offset");
            }
        };
        let Some(message) = message else {
            store(consumer);
            return;
        };
        let id = message.id().unwrap_or_default().to_owned();
        // Kept for a second try only when there may be one.
        let mut spare = Some(message);
        let mut tries = 0;
        loop {
            tries += 1;
            let may_retry = kit::retry_failed(
                "kafka",
                &self.topic,
                self.inner.opts.redeliver_failed,
                tries > 1,
            );
            let this = if may_retry {
                spare.clone()
            } else {
                spare.take()
            }
            .unwrap_or_default();
            let ack = (!self.auto_ack).then(|| {
                let (consumer, topic) = (Arc::clone(consumer), topic.clone());
                let ack: AckFn = Box::new(move || {
                    Box::pin(async move {
                        consumer
                            .store_offset(&topic, partition, offset)
                            .map_err(|e| {
                                Error::service_unavailable(
                                    ERROR_ID,
                                    format!("kafka: cannot acknowledge the message: {e}"),
                                )
                            })
                    })
                });
                ack
            });
            let outcome =
                kit::deliver("kafka", &self.handler, Arc::clone(&self.topic), this, ack).await;
            match outcome {
                Outcome::Ok => {
                    if self.auto_ack {
                        store(consumer);
                    }
                    return;
                }
                Outcome::Failed(error) => {
                    tracing::warn!(
                        topic = %self.topic,
                        group = %self.group,
                        partition,
                        offset,
                        id,
                        %error,
                        retry = may_retry,
                        "kafka: subscriber failed"
                    );
                    if !may_retry {
                        store(consumer);
                        return;
                    }
                    tokio::time::sleep(self.inner.opts.retry_delay).await;
                    if self.flag.is_stopped() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_credentials() {
        let b = KafkaBroker::from_config(&Options::default()).expect("default");
        assert_eq!(b.address(), "127.0.0.1:9092");
        let b = KafkaBroker::new(KafkaOptions::with_addresses(
            "kafka://u:secret@h:9093, k2:9094",
        ))
        .expect("list");
        assert_eq!(b.address(), "kafka://u:***@h:9093,k2:9094");
        assert_eq!(
            b.inner.base.get("bootstrap.servers"),
            Some("h:9093,k2:9094")
        );
        assert_eq!(b.inner.base.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(
            b.inner.base.get("security.protocol"),
            Some("SASL_PLAINTEXT")
        );
        let protocol = |a: &str| {
            KafkaBroker::new(KafkaOptions::with_addresses(a))
                .map(|b| b.inner.base.get("security.protocol").map(str::to_owned))
        };
        assert_eq!(
            protocol("plaintext://h:1").ok().flatten().as_deref(),
            Some("PLAINTEXT")
        );
        if cfg!(feature = "kafka-tls") {
            assert_eq!(protocol("ssl://h:1").ok().flatten().as_deref(), Some("SSL"));
            assert_eq!(
                protocol("sasl_ssl://u:p@h:1").ok().flatten().as_deref(),
                Some("SASL_SSL")
            );
            assert_eq!(
                protocol("ssl://u:p@h:1").ok().flatten().as_deref(),
                Some("SASL_SSL")
            );
        } else {
            let err = protocol("ssl://u:secret@h:1").expect_err("no TLS built in");
            assert!(err.detail.contains("`kafka-tls` feature"), "{err}");
            assert!(!err.detail.contains("secret"), "{err}");
        }
        let err = protocol("ssl://h:1,h:2").expect_err("mixed");
        assert!(
            err.detail.contains("mix TLS and plain") || err.detail.contains("`kafka-tls`"),
            "{err}"
        );
        for bad in ["nohost", "nats://h:1", "h:port"] {
            let err = KafkaBroker::new(KafkaOptions::with_addresses(bad)).expect_err(bad);
            assert_eq!(err.code, 400, "{err}");
        }
    }

    #[test]
    fn names_follow_kafka() {
        assert!(check_name("topic", "go.micro.srv.message").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            let err = check_name("topic", bad).expect_err(bad);
            assert!(err.detail.contains("not a valid Kafka name"), "{err}");
        }
    }
}
