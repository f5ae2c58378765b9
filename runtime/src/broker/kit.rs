//! What every broker plugin shares, so that a plugin is only its client's specifics:
//!
//! - [`Handle`]: the [`Subscriber`] a plugin returns (topic, options, `Debug`), with the
//!   plugin's own way to stop in a [`Stop`] implementation;
//! - [`StopFlag`]: the stop signal a subscription's task and its handle share;
//! - [`run_handler`] / [`deliver`]: a handler run on one message, with a span, panics caught,
//!   and the outcome the plugin settles the message by (ack, redeliver or drop);
//! - [`retry_failed`]: the one redelivery rule (a failed message is tried at most twice);
//! - [`decode`]: go-micro's envelope out of a record, a malformed one logged and counted;
//! - [`Backoff`]: reconnect delays (doubling, capped, with jitter);
//! - [`Links`] / [`Link`] / [`Publishing`]: which of a plugin's connections are down, for
//!   [`Broker::connected`](super::Broker::connected) (readiness);
//! - [`mask_url`], [`lock`] and [`ERROR_ID`].

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rand::Rng as _;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::{AckFn, Event, Handler, Message, SubscribeOptions, Subscriber};
use crate::Result;

/// The id of errors raised by brokers (go-micro's).
pub(crate) const ERROR_ID: &str = "go.micro.broker";

/// Locks `m`, ignoring poisoning (no broker state is left half-updated by a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `scheme://user:secret@host/path` -> `scheme://user:***@host/path`; anything else as is.
pub(crate) fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The addresses of a comma-separated `--broker_address` list, trimmed, empty entries
/// dropped; `default` when none is left.
pub(crate) fn address_list(list: &str, default: &str) -> Vec<String> {
    let addresses: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if addresses.is_empty() {
        vec![default.to_owned()]
    } else {
        addresses
    }
}

/// Reconnect delays: `min`, doubling up to `max`, each with ±25 % jitter so that the clients
/// of a restarted server do not all come back in the same instant.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt; the one after it is twice as long (up to `max`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.75..1.25))
    }

    /// Back to `min`, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The stop signal of one subscription: set once by its handle, seen by its task both as a
/// flag (between messages) and through [`StopFlag::watch`] (while waiting for the server).
#[derive(Debug)]
pub(crate) struct StopFlag {
    stopped: AtomicBool,
    tx: watch::Sender<bool>,
}

impl Default for StopFlag {
    fn default() -> Self {
        Self {
            stopped: AtomicBool::new(false),
            tx: watch::channel(false).0,
        }
    }
}

impl StopFlag {
    /// Raises the flag; `true` the first time.
    pub(crate) fn raise(&self) -> bool {
        let first = !self.stopped.swap(true, Ordering::AcqRel);
        self.tx.send_replace(true);
        first
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// A receiver for `select!` loops that keep it across iterations.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// The stop flags of a broker's live subscriptions, so that `disconnect` ends them all.
#[derive(Debug, Default)]
pub(crate) struct Live(Mutex<Vec<Arc<StopFlag>>>);

impl Live {
    /// Adds a subscription's flag (and forgets those already raised).
    pub(crate) fn add(&self, flag: &Arc<StopFlag>) {
        let mut flags = lock(&self.0);
        flags.retain(|f| !f.is_stopped());
        flags.push(Arc::clone(flag));
    }

    /// Raises every flag.
    pub(crate) fn stop_all(&self) {
        for flag in std::mem::take(&mut *lock(&self.0)) {
            flag.raise();
        }
    }

    /// How many subscriptions are live.
    pub(crate) fn count(&self) -> usize {
        lock(&self.0).iter().filter(|f| !f.is_stopped()).count()
    }
}

/// How many of a broker's connections are down, for readiness: a plugin whose client does
/// not say whether it is connected gives each connection that can fail on its own (a
/// subscription's, the publisher's) a [`Link`] that it marks down while it reconnects.
#[derive(Debug, Default)]
pub(crate) struct Links {
    down: AtomicUsize,
}

impl Links {
    /// Whether no connection is down.
    pub(crate) fn all_up(&self) -> bool {
        self.down.load(Ordering::Acquire) == 0
    }

    /// A new connection's link, up.
    pub(crate) fn link(self: &Arc<Self>) -> Link {
        Link {
            links: Arc::clone(self),
            down: false,
        }
    }
}

/// One connection's state in its broker's [`Links`]; a link dropped while down counts as up
/// (its connection is gone, not failing).
#[derive(Debug)]
pub(crate) struct Link {
    links: Arc<Links>,
    down: bool,
}

impl Link {
    /// Marks the connection down (idempotent).
    pub(crate) fn down(&mut self) {
        if !std::mem::replace(&mut self.down, true) {
            self.links.down.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Marks the connection up (idempotent).
    pub(crate) fn up(&mut self) {
        if std::mem::replace(&mut self.down, false) {
            self.links.down.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Marks the connection up or down.
    pub(crate) fn set(&mut self, up: bool) {
        if up { self.up() } else { self.down() }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.up();
    }
}

/// The publishing side's link, for clients that make a connection only when they publish and
/// so cannot see the server go away while idle: down from a publish that could not reach the
/// server until a publish succeeds or a probe (the plugin's cheapest round trip, retried with
/// backoff) reaches it again, so that a service that only publishes is not kept out of
/// rotation for want of traffic.
#[derive(Debug)]
pub(crate) struct Publishing {
    state: Mutex<Probed>,
    /// Whether the link is down, readable without the lock: a publish that succeeds while
    /// it is up (every one, normally) takes no lock.
    down: AtomicBool,
    backoff: (Duration, Duration),
}

/// The publisher's link and whether a probe task is running, changed together.
#[derive(Debug)]
struct Probed {
    link: Link,
    probing: bool,
}

impl Publishing {
    pub(crate) fn new(
        links: &Arc<Links>,
        min_backoff: Duration,
        max_backoff: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Probed {
                link: links.link(),
                probing: false,
            }),
            down: AtomicBool::new(false),
            backoff: (min_backoff, max_backoff),
        })
    }

    /// A round trip to the server worked.
    pub(crate) fn reached(&self) {
        if self.down.load(Ordering::Acquire) {
            let mut state = lock(&self.state);
            state.link.up();
            self.down.store(false, Ordering::Release);
        }
    }

    /// A publish could not reach the server: down until `probe` reaches it (run on `owner`,
    /// the plugin's state, with backoff, by a task of its own, one at a time), or a publish
    /// succeeds. The task holds `owner` weakly and ends once it is gone.
    pub(crate) fn unreachable<T, F, Fut>(self: &Arc<Self>, owner: &Arc<T>, probe: F)
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        {
            let mut state = lock(&self.state);
            state.link.down();
            self.down.store(true, Ordering::Release);
            if std::mem::replace(&mut state.probing, true) {
                return;
            }
        }
        let this = Arc::downgrade(self);
        let owner = Arc::downgrade(owner);
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                {
                    let Some(publishing) = this.upgrade() else {
                        return;
                    };
                    let mut state = lock(&publishing.state);
                    if !state.link.down {
                        state.probing = false;
                        return;
                    }
                }
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                let up = probe(owner).await;
                let Some(publishing) = this.upgrade() else {
                    return;
                };
                if up {
                    let mut state = lock(&publishing.state);
                    state.link.up();
                    publishing.down.store(false, Ordering::Release);
                    state.probing = false;
                    return;
                }
            }
        });
    }
}

/// How a plugin stops one of its subscriptions (the rest of [`Subscriber`] is [`Handle`]'s).
#[async_trait]
pub(crate) trait Stop: Send + Sync + 'static {
    /// Stops delivery to the subscription on `topic`. Called on every `unsubscribe`, so it
    /// must be idempotent.
    async fn stop(&self, topic: &str) -> Result<()>;
}

/// For plugins whose tasks watch the flag and clean up themselves.
#[async_trait]
impl Stop for StopFlag {
    async fn stop(&self, _topic: &str) -> Result<()> {
        self.raise();
        Ok(())
    }
}

#[async_trait]
impl<S: Stop> Stop for Arc<S> {
    async fn stop(&self, topic: &str) -> Result<()> {
        (**self).stop(topic).await
    }
}

/// The [`Subscriber`] every plugin returns: the topic, the options, and the plugin's [`Stop`].
pub(crate) struct Handle<S> {
    broker: &'static str,
    topic: String,
    opts: SubscribeOptions,
    stop: S,
}

impl<S: Stop> Handle<S> {
    pub(crate) fn boxed(
        broker: &'static str,
        topic: &str,
        opts: SubscribeOptions,
        stop: S,
    ) -> Box<dyn Subscriber> {
        Box::new(Self {
            broker,
            topic: topic.to_owned(),
            opts,
            stop,
        })
    }
}

impl<S> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("broker", &self.broker)
            .field("topic", &self.topic)
            .field("queue", &self.opts.queue)
            .finish()
    }
}

#[async_trait]
impl<S: Stop> Subscriber for Handle<S> {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn options(&self) -> &SubscribeOptions {
        &self.opts
    }

    async fn unsubscribe(&self) -> Result<()> {
        self.stop.stop(&self.topic).await
    }
}

/// How a handler run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// An `Err` or a panic, as text for the log.
    Failed(String),
}

/// Runs `handler` on `event` inside a `broker.message` span, turning a panic into
/// [`Outcome::Failed`] (a subscriber's bug never takes the consuming task down).
pub(crate) async fn run_handler(broker: &'static str, handler: &Handler, event: Event) -> Outcome {
    let span = tracing::debug_span!(
        "broker.message",
        broker,
        topic = event.topic(),
        id = event.message().id().unwrap_or_default()
    );
    let topic = Arc::clone(event.topic_arc());
    let started = std::time::Instant::now();
    let outcome = match AssertUnwindSafe(handler(event))
        .catch_unwind()
        .instrument(span)
        .await
    {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(err)) => Outcome::Failed(err.to_string()),
        Err(_) => Outcome::Failed("the handler panicked".to_owned()),
    };
    crate::metrics::get().delivered(broker, &topic, outcome == Outcome::Ok, started.elapsed());
    outcome
}

/// Runs `handler` on a delivery: with `ack` the event carries it (the subscription acks by
/// hand, `auto_ack` off); without, acknowledging is the plugin's, after [`Outcome::Ok`].
pub(crate) async fn deliver(
    broker: &'static str,
    handler: &Handler,
    topic: Arc<str>,
    message: Message,
    ack: Option<AckFn>,
) -> Outcome {
    let event = match ack {
        Some(ack) => Event::with_ack(topic, message, ack),
        None => Event::new(topic, message),
    };
    run_handler(broker, handler, event).await
}

/// Whether a message whose handler failed goes back for one more try: only when the plugin's
/// `redeliver_failed` is on and this was its first delivery. So a failing message is tried at
/// most twice and can never loop.
pub(crate) fn retry_failed(
    broker: &'static str,
    topic: &str,
    redeliver_failed: bool,
    redelivered: bool,
) -> bool {
    let retry = redeliver_failed && !redelivered;
    if retry {
        crate::metrics::get().redelivered(broker, topic);
    }
    retry
}

/// go-micro's envelope out of `bytes`; a record that is not one is logged with its topic,
/// counted in `malformed` and skipped (`None`).
pub(crate) fn decode(
    broker: &'static str,
    topic: &str,
    bytes: &[u8],
    malformed: &AtomicU64,
) -> Option<Message> {
    match Message::from_envelope(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            malformed.fetch_add(1, Ordering::Relaxed);
            crate::metrics::get().malformed(broker, topic);
            tracing::warn!(
                broker,
                topic,
                bytes = bytes.len(),
                error = %e.detail,
                "dropping a message that is not a go-micro envelope"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_count_what_is_down() {
        let links = Arc::new(Links::default());
        let mut a = links.link();
        let mut b = links.link();
        assert!(links.all_up());
        a.down();
        a.down();
        b.down();
        assert!(!links.all_up());
        a.up();
        assert!(!links.all_up(), "b is still down");
        drop(b);
        assert!(links.all_up(), "a link dropped while down no longer counts");
        a.set(false);
        assert!(!links.all_up());
        a.set(true);
        assert!(links.all_up());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_publisher_is_probed_until_the_server_answers() {
        let links = Arc::new(Links::default());
        let publishing = Publishing::new(
            &links,
            Duration::from_millis(100),
            Duration::from_millis(400),
        );
        let owner = Arc::new(());
        let probes = Arc::new(AtomicUsize::new(0));
        let probe = {
            let probes = Arc::clone(&probes);
            move |_: Arc<()>| {
                let n = probes.fetch_add(1, Ordering::SeqCst) + 1;
                async move { n >= 3 }
            }
        };
        publishing.unreachable(&owner, probe.clone());
        publishing.unreachable(&owner, probe);
        assert!(!links.all_up());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(links.all_up(), "up once a probe answers");
        assert_eq!(
            probes.load(Ordering::SeqCst),
            3,
            "one prober, stopped once up"
        );
        // A publish that succeeds ends a probe that has not answered yet.
        publishing.unreachable(&owner, |_| async { false });
        assert!(!links.all_up());
        publishing.reached();
        assert!(links.all_up());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(links.all_up());
        // Down again later: a new prober starts.
        let again = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&again);
        publishing.unreachable(&owner, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { true }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(again.load(Ordering::SeqCst), 1);
        assert!(links.all_up());
    }

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_url("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(
            mask_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(mask_url("redis://user@h"), "redis://user@h");
        assert_eq!(mask_url("h:1"), "h:1");
        // An `@` in the path is not userinfo; one in the password is.
        assert_eq!(mask_url("amqp://h/v@x"), "amqp://h/v@x");
        assert_eq!(mask_url("amqp://u:p@ss@h/v@x"), "amqp://u:***@h/v@x");
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        for (d, base) in delays.iter().zip([100, 200, 400, 400, 400]) {
            assert!(
                (base * 3 / 4..=base * 5 / 4).contains(d),
                "{delays:?}: {d} is not within 25 % of {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn a_failed_message_is_retried_once() {
        assert!(retry_failed("memory", "t", true, false));
        assert!(!retry_failed("memory", "t", true, true));
        assert!(!retry_failed("memory", "t", false, false));
    }

    #[tokio::test]
    async fn stop_flag_is_seen_as_flag_and_future() {
        let flag = Arc::new(StopFlag::default());
        assert!(!flag.is_stopped());
        let waiter = tokio::spawn({
            let flag = Arc::clone(&flag);
            async move {
                let mut rx = flag.watch();
                let _ = rx.wait_for(|s| *s).await;
            }
        });
        assert!(flag.raise());
        assert!(!flag.raise(), "only the first raise counts");
        assert!(flag.is_stopped());
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the future resolves")
            .expect("joined");
    }

    #[tokio::test]
    async fn handler_errors_and_panics_are_outcomes() {
        let failing = super::super::handler(|_| async {
            Err(crate::Error::internal_server_error("t", "boom"))
        });
        let outcome = deliver("test", &failing, "t".into(), Message::default(), None).await;
        assert!(
            matches!(&outcome, Outcome::Failed(e) if e.contains("boom")),
            "{outcome:?}"
        );
        let panicking = super::super::handler(|_| async { panic!("bug") });
        let outcome = deliver("test", &panicking, "t".into(), Message::default(), None).await;
        assert_eq!(outcome, Outcome::Failed("the handler panicked".to_owned()));
        let acking = super::super::handler(|mut ev: Event| async move { ev.ack().await });
        let acked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&acked);
        let ack: AckFn = Box::new(move || {
            Box::pin(async move {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            })
        });
        let outcome = deliver("test", &acking, "t".into(), Message::default(), Some(ack)).await;
        assert_eq!(outcome, Outcome::Ok);
        assert!(acked.load(Ordering::SeqCst), "the event carried the ack");
    }

    #[test]
    fn malformed_envelopes_are_counted_not_fatal() {
        let count = AtomicU64::new(0);
        assert!(decode("test", "t", b"not json", &count).is_none());
        assert!(decode("test", "t", br#"{"Header":{"a":1}}"#, &count).is_none());
        let ok = decode(
            "test",
            "t",
            br#"{"Header":{"a":"b"},"Body":"aGk="}"#,
            &count,
        )
        .expect("a valid envelope");
        assert_eq!(ok.body.as_ref(), b"hi");
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
