//! Google Cloud Pub/Sub broker (feature `googlepubsub`), over Pub/Sub's v1 gRPC API with a
//! client of rmicro's own (`api.rs`: tonic, hand-written messages, no protoc).
//!
//! Wire (go-plugins' `broker/googlepubsub`, so that Go and Rust peers exchange messages):
//!
//! - a go-micro topic is the Pub/Sub topic of the same id, `projects/<project>/topics/<topic>`;
//!   publishing creates it when Pub/Sub answers NOT_FOUND, then publishes again;
//! - the Pub/Sub message's data is the message body, raw (no envelope), and its attributes
//!   are the message headers;
//! - a subscription with a queue name uses the Pub/Sub subscription of that id: its
//!   subscribers compete for its messages (one of them gets each message), and it keeps its
//!   messages while nobody pulls;
//! - a subscription without a queue gets a subscription of its own, `q-<uuid>`, as go-micro's
//!   does: every subscription gets every message;
//! - subscriptions are created when missing, with a 10 s ack deadline;
//! - no ordering key, so Pub/Sub may deliver a topic's messages in any order, as with
//!   go-micro; [`GooglePubSubOptions::ordered`] publishes with the topic as the ordering key
//!   and creates subscriptions with message ordering on.
//!
//! Where rmicro differs from go-micro's plugin, on purpose: subscribing creates a missing
//! topic too (go-micro's fails with NOT_FOUND); unsubscribing deletes a broadcast
//! subscription (its own) but keeps a queue's (go-micro deletes both, dropping what is queued
//! for the queue's other members); names are checked before any call, as Pub/Sub checks them
//! (3 to 255 of `A-Za-z0-9-_.~+%`, starting with a letter, not `goog...`).
//!
//! # Delivery
//!
//! At least once. Each subscription holds a StreamingPull stream; its handler runs one message
//! at a time. [`SubscribeOptions::auto_ack`] on (the default): the message is acknowledged
//! after the handler returns `Ok`; off: the handler acks through [`Event::ack`], and a message
//! not acked comes back after its ack deadline. While a handler runs, the deadline is
//! extended every 5 s. A handler that fails (an `Err` or a panic) hands the message back at
//! once (a nack) for one more try; if that fails too, the message is acknowledged and
//! dropped, with a warning ([`GooglePubSubOptions::redeliver_failed`] off: dropped after the
//! first failure). Failures are counted per subscriber, so a message that fails on two
//! members of a queue may be tried up to four times.
//!
//! # Recovery
//!
//! A stream that fails is opened again with backoff (100 ms doubling to 2 s, jittered,
//! logged); a topic or subscription that has gone (an emulator restarted) is created again.
//! Publish failures reach the caller.
//!
//! [`Broker::connected`] (the service's readiness) is `false` from a subscription's stream
//! failing while Pub/Sub does not answer a lookup (tried before each new stream), and from a
//! publish or connect that could not reach Pub/Sub until a lookup, tried again with the same
//! backoff, or a later publish reaches it.
//!
//! # Address, project, credentials
//!
//! `--broker_address` is the emulator's `host:port` (plaintext gRPC); empty = the
//! `PUBSUB_EMULATOR_HOST` environment variable, as Google's clients read it; neither =
//! Google Cloud itself, `https://pubsub.googleapis.com` (TLS, the system's roots), with the
//! OAuth2 access token in `GOOGLEPUBSUB_ACCESS_TOKEN` sent as is (rmicro mints and renews no
//! tokens). An `https://` address names another endpoint of Google's (a regional one), and
//! takes the token too; `http://host:port` is an emulator. The project is `GOOGLEPUBSUB_PROJECT_ID` (go-micro's variable), else
//! `PUBSUB_PROJECT_ID`, else `micro`.
//!
//! [`SubscribeOptions::auto_ack`]: super::SubscribeOptions::auto_ack
//! [`Event::ack`]: super::Event::ack

mod api;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use self::api::{PubSubApi, pb};
use super::kit::{
    self, Backoff, ERROR_ID, Handle, Links, Outcome, Publishing, Stop, StopFlag, lock,
};
use super::{AckFn, Broker, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::config::Options;
use crate::registry::Metadata;
use crate::{Error, Result};

/// The largest message Pub/Sub takes (data and attributes), 10 MB: refused before sending
/// (the emulator does not answer a larger one).
pub const MAX_MESSAGE_BYTES: usize = 10_000_000;

/// Google Cloud's endpoint, used when neither an address nor `PUBSUB_EMULATOR_HOST` is given.
pub const GOOGLE_CLOUD: &str = "https://pubsub.googleapis.com";

/// Options of [`GooglePubSubBroker`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GooglePubSubOptions {
    /// `http://host:port` (an emulator) or `https://...` (Google Cloud).
    pub endpoint: String,
    /// The Google Cloud project.
    pub project: String,
    /// An OAuth2 access token, sent as `authorization: Bearer ...`; `None` for an emulator.
    pub access_token: Option<String>,
    /// The ack deadline of subscriptions rmicro creates, and of its streams. Default 10 s.
    pub ack_deadline: Duration,
    /// Messages a subscription's stream holds unacknowledged. Default 64.
    pub max_outstanding: i64,
    /// Keep each topic's messages in order: publish with the topic as the ordering key and
    /// create subscriptions with message ordering on. Default `false`, as go-micro: Pub/Sub
    /// then delivers in any order (the emulator happens to keep it, Google's `pstest` and
    /// Google Cloud do not), and a topic is not held to Pub/Sub's throughput per ordering key
    /// (1 MB/s). Subscriptions that exist keep their setting.
    pub ordered: bool,
    /// Hand a failed message back once for one more try. Default `true`.
    pub redeliver_failed: bool,
    /// The deadline of each call. Default 10 s.
    pub timeout: Duration,
    /// First delay between attempts to open a stream again; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between attempts. Default 2 s.
    pub max_backoff: Duration,
}

impl fmt::Debug for GooglePubSubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GooglePubSubOptions")
            .field("endpoint", &self.endpoint)
            .field("project", &self.project)
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("ack_deadline", &self.ack_deadline)
            .finish_non_exhaustive()
    }
}

impl Default for GooglePubSubOptions {
    fn default() -> Self {
        Self {
            endpoint: GOOGLE_CLOUD.to_owned(),
            project: "micro".to_owned(),
            access_token: None,
            ack_deadline: Duration::from_secs(10),
            max_outstanding: 64,
            ordered: false,
            redeliver_failed: true,
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl GooglePubSubOptions {
    /// Options for an emulator at `host:port`, with the default project.
    pub fn emulator(host: &str) -> Self {
        Self {
            endpoint: format!("http://{host}"),
            ..Self::default()
        }
    }

    /// Options from `--broker_address` and the environment (see the [module docs](self)).
    pub fn from_env(address: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut opts = match (address.trim(), var("PUBSUB_EMULATOR_HOST")) {
            ("", None) => Self {
                access_token: var("GOOGLEPUBSUB_ACCESS_TOKEN"),
                ..Self::default()
            },
            ("", Some(host)) => Self::emulator(host.trim()),
            // An endpoint of Google Cloud's own (a regional one, say): the token goes with it.
            (address, _) if address.starts_with("https://") => Self {
                endpoint: address.to_owned(),
                access_token: var("GOOGLEPUBSUB_ACCESS_TOKEN"),
                ..Self::default()
            },
            (address, _) if address.contains("://") => Self {
                endpoint: address.to_owned(),
                ..Self::default()
            },
            (address, _) => Self::emulator(address),
        };
        if let Some(project) = var("GOOGLEPUBSUB_PROJECT_ID").or_else(|| var("PUBSUB_PROJECT_ID")) {
            opts.project = project;
        }
        opts
    }
}

/// go-micro's Google Cloud Pub/Sub broker. See the [module docs](self).
#[derive(Clone)]
pub struct GooglePubSubBroker {
    inner: Arc<Inner>,
}

struct Inner {
    opts: GooglePubSubOptions,
    api: PubSubApi,
    subs: kit::Live,
    /// Which connections are down (readiness): each subscription's stream, the publisher's.
    links: Arc<Links>,
    publishing: Arc<Publishing>,
}

impl fmt::Debug for GooglePubSubBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GooglePubSubBroker")
            .field("endpoint", &self.inner.opts.endpoint)
            .field("project", &self.inner.opts.project)
            .field("subscriptions", &self.inner.subs.count())
            .finish()
    }
}

/// Whether `status` says Pub/Sub could not be reached (rather than refusing the call).
fn unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
    )
}

/// Whether `name` is a valid topic or subscription id (Pub/Sub's rule).
fn valid_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.to_ascii_lowercase().starts_with("goog")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+%".contains(&b))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::bad_request(
            ERROR_ID,
            format!(
                "googlepubsub: {what} `{name}` is not a valid Pub/Sub id (3 to 255 of `A-Za-z0-9-_.~+%`, starting with a letter, not `goog`)"
            ),
        ))
    }
}

impl GooglePubSubBroker {
    /// A broker for `opts`. Validates the endpoint; connects nothing yet. Must be called
    /// inside a tokio runtime.
    pub fn new(opts: GooglePubSubOptions) -> Result<Self> {
        let channel = api::connect_lazy(&opts.endpoint)
            .map_err(|e| Error::bad_request(ERROR_ID, format!("googlepubsub: {e}")))?;
        let api = PubSubApi::new(channel, opts.project.clone())
            .with_token(opts.access_token.clone())
            .map_err(|e| Error::bad_request(ERROR_ID, format!("googlepubsub: {e}")))?
            .with_timeout(opts.timeout);
        let links = Arc::new(Links::default());
        let publishing = Publishing::new(&links, opts.min_backoff, opts.max_backoff);
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                api,
                subs: kit::Live::default(),
                links,
                publishing,
            }),
        })
    }

    /// The broker `--broker_address` and the environment name.
    pub fn from_config(options: &Options) -> Result<Self> {
        Self::new(GooglePubSubOptions::from_env(&options.broker_address))
    }
}

impl Inner {
    /// A lookup of a topic that need not exist: whether Pub/Sub answers.
    async fn reach(&self) -> std::result::Result<(), Status> {
        match self
            .api
            .get_topic(&self.api.topic_path("rmicro-connect"))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    /// Notes a publishing call's outcome on the publisher's link: up when Pub/Sub answered
    /// (a refusal is an answer), down when it could not be reached, then probed with
    /// [`Inner::reach`] until it answers.
    fn publisher_outcome<T>(self: &Arc<Self>, result: &std::result::Result<T, Status>) {
        match result {
            Err(s) if unreachable(s) => self
                .publishing
                .unreachable(self, |inner| async move { inner.reach().await.is_ok() }),
            _ => self.publishing.reached(),
        }
    }

    fn error(&self, what: &str, status: &Status) -> Error {
        let detail = format!(
            "googlepubsub at `{}`: {what}: {} ({:?})",
            self.opts.endpoint,
            status.message(),
            status.code()
        );
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                Error::bad_request(ERROR_ID, detail)
            }
            Code::PermissionDenied | Code::Unauthenticated => Error::unauthorized(ERROR_ID, detail),
            Code::ResourceExhausted => Error::bad_request(ERROR_ID, detail),
            _ => Error::service_unavailable(ERROR_ID, detail),
        }
    }

    /// Creates a topic; one that exists is fine.
    async fn ensure_topic(&self, topic: &str) -> std::result::Result<(), Status> {
        let name = self.api.topic_path(topic);
        match self.api.create_topic(pb::Topic { name }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(s),
        }
    }

    /// Creates a subscription to `topic` (and the topic); one that exists is fine.
    async fn ensure_subscription(
        &self,
        topic: &str,
        subscription: &str,
    ) -> std::result::Result<(), Status> {
        self.ensure_topic(topic).await?;
        let request = pb::Subscription {
            name: self.api.subscription_path(subscription),
            topic: self.api.topic_path(topic),
            ack_deadline_seconds: self.ack_deadline_seconds(),
            enable_message_ordering: self.opts.ordered,
            ..pb::Subscription::default()
        };
        match self.api.create_subscription(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(s),
        }
    }

    fn ack_deadline_seconds(&self) -> i32 {
        i32::try_from(self.opts.ack_deadline.as_secs().clamp(10, 600)).unwrap_or(10)
    }
}

#[async_trait]
impl Broker for GooglePubSubBroker {
    fn name(&self) -> &str {
        "googlepubsub"
    }

    fn address(&self) -> String {
        self.inner.opts.endpoint.clone()
    }

    /// Whether every subscription's stream is open and the last publish (or connect)
    /// reached Pub/Sub.
    fn connected(&self) -> Option<bool> {
        Some(self.inner.links.all_up())
    }

    /// Checks that Pub/Sub answers (a lookup of a topic that need not exist).
    async fn connect(&self) -> Result<()> {
        let reached = self.inner.reach().await;
        self.inner.publisher_outcome(&reached);
        reached.map_err(|s| self.inner.error("cannot connect", &s))
    }

    async fn disconnect(&self) -> Result<()> {
        self.inner.subs.stop_all();
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        check_name("topic", topic)?;
        stamp(topic, &mut msg);
        let size = msg.body.len()
            + msg
                .header
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(Error::bad_request(
                ERROR_ID,
                format!(
                    "googlepubsub: the message to `{topic}` is {size} bytes (body and attributes); Pub/Sub takes at most {MAX_MESSAGE_BYTES}"
                ),
            ));
        }
        let request = pb::PublishRequest {
            topic: self.inner.api.topic_path(topic),
            messages: vec![pb::PubsubMessage {
                data: msg.body.clone(),
                attributes: msg.header.into_iter().collect(),
                ordering_key: if self.inner.opts.ordered {
                    topic.to_owned()
                } else {
                    String::new()
                },
                ..pb::PubsubMessage::default()
            }],
        };
        let published = self.inner.api.publish(request.clone()).await;
        self.inner.publisher_outcome(&published);
        match published {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => {
                return Err(self
                    .inner
                    .error(&format!("cannot publish to `{topic}`"), &s));
            }
        }
        // go-micro's order: the topic is created on the first NOT_FOUND, then published to.
        self.inner.ensure_topic(topic).await.map_err(|s| {
            self.inner
                .error(&format!("cannot create topic `{topic}`"), &s)
        })?;
        let published = self.inner.api.publish(request).await;
        self.inner.publisher_outcome(&published);
        published.map(drop).map_err(|s| {
            self.inner
                .error(&format!("cannot publish to `{topic}`"), &s)
        })
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        check_name("topic", topic)?;
        let (subscription, owned) = match opts.queue.as_deref().filter(|q| !q.is_empty()) {
            Some(queue) => {
                check_name("queue", queue)?;
                (queue.to_owned(), false)
            }
            None => (format!("q-{}", crate::id::uuid()), true),
        };
        // Messages published once this returns are kept for the subscription.
        self.inner
            .ensure_subscription(topic, &subscription)
            .await
            .map_err(|s| {
                self.inner
                    .error(&format!("cannot subscribe to `{topic}`"), &s)
            })?;
        let flag = Arc::new(StopFlag::default());
        let sub = Subscription {
            inner: Arc::clone(&self.inner),
            topic: Arc::from(topic),
            path: self.inner.api.subscription_path(&subscription),
            subscription,
            handler,
            auto_ack: opts.auto_ack,
            flag: Arc::clone(&flag),
            failed: Mutex::new(HashMap::new()),
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            sub.run().await;
            if owned {
                sub.delete().await;
            }
            let _ = done_tx.send(());
        });
        self.inner.subs.add(&flag);
        Ok(Handle::boxed(
            "googlepubsub",
            topic,
            opts,
            PubSubStop {
                flag,
                done: tokio::sync::Mutex::new(Some(done_rx)),
            },
        ))
    }
}

/// How a subscription stops: its task ends its stream (a half-close) and deletes a broadcast
/// subscription; `unsubscribe` returns once that is done (at most a few seconds).
struct PubSubStop {
    flag: Arc<StopFlag>,
    done: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

#[async_trait]
impl Stop for PubSubStop {
    async fn stop(&self, _topic: &str) -> Result<()> {
        self.flag.raise();
        if let Some(done) = self.done.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
        }
        Ok(())
    }
}

/// One subscription's task.
struct Subscription {
    inner: Arc<Inner>,
    topic: Arc<str>,
    subscription: String,
    path: String,
    handler: Handler,
    auto_ack: bool,
    flag: Arc<StopFlag>,
    /// Messages whose handler failed here once, by message id.
    failed: Mutex<HashMap<String, u32>>,
}

/// How a stream ended.
enum Ended {
    Stopped,
    Failed {
        status: Status,
        /// Whether it delivered anything before it failed.
        delivered: bool,
    },
}

impl Subscription {
    async fn run(&self) {
        let opts = &self.inner.opts;
        let mut backoff = Backoff::new(opts.min_backoff, opts.max_backoff);
        let mut stop = self.flag.watch();
        let mut link = self.inner.links.link();
        loop {
            let status = match self.stream().await {
                Ended::Stopped => return,
                Ended::Failed { status, delivered } => {
                    // A stream that delivered before it failed starts the backoff afresh.
                    if delivered {
                        backoff.reset();
                    }
                    status
                }
            };
            if self.flag.is_stopped() {
                return;
            }
            let mut status = Some(status);
            // Until Pub/Sub answers again: a stream that cannot be opened need not fail
            // (Pub/Sub may hold its headers back until there is a message), so the link
            // follows a lookup, made before each new stream.
            loop {
                let delay = backoff.next_delay();
                if let Some(status) = status.take() {
                    tracing::warn!(
                        topic = %self.topic,
                        subscription = %self.subscription,
                        error = %status.message(),
                        code = ?status.code(),
                        retry_in = ?delay,
                        "googlepubsub: stream failed, opening it again"
                    );
                    if status.code() == Code::NotFound
                        && let Err(s) = self
                            .inner
                            .ensure_subscription(&self.topic, &self.subscription)
                            .await
                    {
                        tracing::warn!(subscription = %self.subscription, error = %s.message(), "googlepubsub: cannot create the subscription again");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match self.inner.reach().await {
                    Err(s) if unreachable(&s) => {
                        link.down();
                        tracing::debug!(subscription = %self.subscription, error = %s.message(), "googlepubsub: still unreachable");
                    }
                    _ => {
                        link.up();
                        break;
                    }
                }
            }
        }
    }

    /// One StreamingPull stream, until it fails or the subscription stops.
    async fn stream(&self) -> Ended {
        let (tx, rx) = mpsc::channel::<pb::StreamingPullRequest>(64);
        let first = pb::StreamingPullRequest {
            subscription: self.path.clone(),
            stream_ack_deadline_seconds: self.inner.ack_deadline_seconds(),
            max_outstanding_messages: self.inner.opts.max_outstanding,
            client_id: format!("rmicro-{}", crate::id::uuid().simple()),
            ..pb::StreamingPullRequest::default()
        };
        if tx.send(first).await.is_err() {
            return Ended::Stopped;
        }
        let mut stop = self.flag.watch();
        let opened = tokio::select! {
            opened = self.inner.api.streaming_pull(ReceiverStream::new(rx)) => opened,
            _ = stop.wait_for(|s| *s) => return Ended::Stopped,
        };
        let mut responses = match opened {
            Ok(r) => r,
            Err(status) => {
                return Ended::Failed {
                    status,
                    delivered: false,
                };
            }
        };
        let mut delivered = false;
        let ended = loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break Ended::Stopped,
                next = responses.message() => next,
            };
            match next {
                Ok(Some(batch)) => {
                    delivered |= !batch.received_messages.is_empty();
                    for received in batch.received_messages {
                        if self.flag.is_stopped() {
                            // Not acked: Pub/Sub delivers it again after its deadline.
                            break;
                        }
                        self.handle(received, &tx).await;
                    }
                }
                Ok(None) => {
                    break Ended::Failed {
                        status: Status::unavailable("the server ended the stream"),
                        delivered,
                    };
                }
                Err(status) => break Ended::Failed { status, delivered },
            }
        };
        // End the stream with a half-close (see `api::PubSubApi::streaming_pull`), then wait
        // briefly for the server's end.
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = responses.message().await {}
        })
        .await;
        ended
    }

    /// Runs the handler on one message; acks, nacks and deadline extensions go on the
    /// stream (`tx`: no round trip), a manual [`Event::ack`](super::Event::ack) as a call
    /// whose answer it returns.
    async fn handle(
        &self,
        received: pb::ReceivedMessage,
        tx: &mpsc::Sender<pb::StreamingPullRequest>,
    ) {
        let pb::ReceivedMessage {
            ack_id,
            message,
            delivery_attempt,
        } = received;
        let message = message.unwrap_or_default();
        let msg = Message {
            header: message.attributes.into_iter().collect::<Metadata>(),
            body: message.data,
        };
        let id = message.message_id;
        let ack = (!self.auto_ack).then(|| {
            let (inner, path, ack_id) =
                (Arc::clone(&self.inner), self.path.clone(), ack_id.clone());
            let ack: AckFn = Box::new(move || {
                Box::pin(async move {
                    inner
                        .api
                        .acknowledge(&path, vec![ack_id])
                        .await
                        .map_err(|s| inner.error("cannot acknowledge the message", &s))
                })
            });
            ack
        });
        let run = kit::deliver(
            "googlepubsub",
            &self.handler,
            Arc::clone(&self.topic),
            msg,
            ack,
        );
        let mut run = std::pin::pin!(run);
        let every = Duration::from_secs(5);
        let mut extend = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                _ = extend.tick() => {
                    let _ = tx.send(pb::StreamingPullRequest {
                        modify_deadline_ack_ids: vec![ack_id.clone()],
                        modify_deadline_seconds: vec![self.inner.ack_deadline_seconds()],
                        ..pb::StreamingPullRequest::default()
                    }).await;
                }
            }
        };
        match outcome {
            Outcome::Ok => {
                lock(&self.failed).remove(&id);
                if self.auto_ack {
                    settle(tx, &ack_id, true).await;
                }
            }
            Outcome::Failed(error) => {
                let before = {
                    let mut failed = lock(&self.failed);
                    if failed.len() > 10_000 {
                        failed.clear();
                    }
                    let n = failed.entry(id.clone()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                let redelivered = before > 0 || delivery_attempt > 1;
                let retry = kit::retry_failed(
                    "googlepubsub",
                    &self.topic,
                    self.inner.opts.redeliver_failed,
                    redelivered,
                );
                tracing::warn!(
                    topic = %self.topic,
                    subscription = %self.subscription,
                    id,
                    %error,
                    retry,
                    "googlepubsub: subscriber failed"
                );
                if !retry {
                    lock(&self.failed).remove(&id);
                }
                // A retry is a nack (deadline 0: delivered again at once); else dropped.
                settle(tx, &ack_id, !retry).await;
            }
        }
    }

    /// Deletes the subscription (a broadcast subscriber's own).
    async fn delete(&self) {
        if let Err(s) = self.inner.api.delete_subscription(&self.path).await
            && s.code() != Code::NotFound
        {
            tracing::warn!(subscription = %self.subscription, error = %s.message(), "googlepubsub: cannot delete the subscription");
        }
    }
}

/// Acknowledges (`ack`) or hands back (a nack: deadline 0) one message, on its stream. A
/// stream that has ended takes nothing: Pub/Sub delivers the message again after its deadline.
async fn settle(tx: &mpsc::Sender<pb::StreamingPullRequest>, ack_id: &str, ack: bool) {
    let request = if ack {
        pb::StreamingPullRequest {
            ack_ids: vec![ack_id.to_owned()],
            ..pb::StreamingPullRequest::default()
        }
    } else {
        pb::StreamingPullRequest {
            modify_deadline_ack_ids: vec![ack_id.to_owned()],
            modify_deadline_seconds: vec![0],
            ..pb::StreamingPullRequest::default()
        }
    };
    let _ = tx.send(request).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pubsub() {
        for ok in ["go.micro.srv.message", "q-f6b5d2a4-6a4b", "abc", "a~b+c%d"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "1abc",
            "goog-x",
            "Google",
            "a/b",
            "a b",
            &"x".repeat(256),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn addresses_and_projects() {
        let o = GooglePubSubOptions::from_env("127.0.0.1:8085");
        assert_eq!(o.endpoint, "http://127.0.0.1:8085");
        let o = GooglePubSubOptions::from_env("https://pubsub.example:443");
        assert_eq!(o.endpoint, "https://pubsub.example:443");
        assert!(
            format!(
                "{:?}",
                GooglePubSubOptions {
                    access_token: Some("secret".into()),
                    ..GooglePubSubOptions::default()
                }
            )
            .contains("***")
        );
        let b =
            GooglePubSubBroker::new(GooglePubSubOptions::emulator("127.0.0.1:1")).expect("lazy");
        let err = b
            .publish("a/b", Message::default(), PublishOptions::default())
            .await
            .expect_err("bad topic");
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("not a valid Pub/Sub id"), "{err}");
    }
}
