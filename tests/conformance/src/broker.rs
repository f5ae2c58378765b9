//! The broker suite. [`broker_suite!`](crate::broker_suite) expands to one test per check for
//! a fixture.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rmicro::broker::{
    self, Event, HEADER_ID, HEADER_TOPIC, Message, PublishOptions, SharedBroker, SubscribeOptions,
};
use tokio::sync::mpsc;

/// A broker under test.
#[async_trait]
pub trait BrokerFixture: Send + Sync + 'static {
    /// A new, connected client of the broker.
    async fn broker(&self) -> SharedBroker;
    /// Restarts the broker server (kill, start again on the same address). Only plugins
    /// with a server of their own implement it and expand
    /// [`broker_restart_check!`](crate::broker_restart_check).
    async fn restart(&self) {
        panic!("this broker has no server to restart");
    }
    /// How long a new subscription may take to become effective on the server.
    fn settle(&self) -> Duration {
        Duration::from_millis(300)
    }
}

/// A server that a test can kill and start again on the same address.
pub trait Restart: Send + 'static {
    /// Kills the server and starts it again, returning once it serves.
    fn restart(&mut self);
}

/// Makes an unconnected client of the plugin for a server.
type Make<S> = Box<dyn Fn(&S) -> rmicro::Result<SharedBroker> + Send + Sync>;

enum Held<S: 'static> {
    Own(Mutex<S>),
    Shared(&'static S),
}

/// The fixture of a broker plugin that talks to a server: every `broker()` is a new client
/// made by `make` from the server (an unconnected plugin) and connected. One generic type, so
/// that a plugin's test file is its server and its options, nothing else.
pub struct OnServer<S: 'static> {
    label: &'static str,
    server: Held<S>,
    make: Make<S>,
    settle: Duration,
}

impl<S: Restart + Sync> OnServer<S> {
    /// A fixture with a server of its own (the restart check restarts it).
    pub fn new(
        label: &'static str,
        server: S,
        make: impl Fn(&S) -> rmicro::Result<SharedBroker> + Send + Sync + 'static,
    ) -> Self {
        Self {
            label,
            server: Held::Own(Mutex::new(server)),
            make: Box::new(make),
            settle: Duration::from_millis(300),
        }
    }

    /// A fixture on a server shared by the test binary (never restarted).
    pub fn shared(
        label: &'static str,
        server: &'static S,
        make: impl Fn(&S) -> rmicro::Result<SharedBroker> + Send + Sync + 'static,
    ) -> Self {
        Self {
            label,
            server: Held::Shared(server),
            make: Box::new(make),
            settle: Duration::from_millis(300),
        }
    }

    /// How long a new subscription may take to become effective (300 ms unless set).
    #[must_use]
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }
}

#[async_trait]
impl<S: Restart + Sync> BrokerFixture for OnServer<S> {
    async fn broker(&self) -> SharedBroker {
        let made = match &self.server {
            Held::Own(server) => {
                (self.make)(&server.lock().unwrap_or_else(PoisonError::into_inner))
            }
            Held::Shared(server) => (self.make)(server),
        };
        let broker = made.unwrap_or_else(|e| panic!("{}: invalid options: {e}", self.label));
        broker
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}: cannot connect: {e}", self.label));
        broker
    }

    async fn restart(&self) {
        let Held::Own(server) = &self.server else {
            panic!("{}: the shared server is not restarted", self.label);
        };
        let started = Instant::now();
        tokio::task::block_in_place(|| {
            server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart();
        });
        eprintln!(
            "{}: killed and serving again in {:.2} s",
            self.label,
            started.elapsed().as_secs_f64()
        );
    }

    fn settle(&self) -> Duration {
        self.settle
    }
}

/// How long a check waits for a message.
pub const WAIT: Duration = Duration::from_secs(20);

/// A topic of its own for one check: `conf.<prefix>.<12 hex digits>`.
pub fn topic(prefix: &str) -> String {
    format!(
        "conf.{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Subscribes a handler that sends every event to the returned channel.
pub async fn sink<B: broker::Broker + ?Sized>(
    b: &B,
    topic: &str,
    opts: SubscribeOptions,
) -> (Box<dyn broker::Subscriber>, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = b
        .subscribe(
            topic,
            broker::handler(move |ev| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ev);
                    Ok(())
                }
            }),
            opts,
        )
        .await
        .expect("subscribe");
    (sub, rx)
}

/// How a [`poisoned_sink`] handler fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It returns an error.
    Err,
    /// It panics (a subscriber's bug).
    Panic,
}

/// Subscribes a handler that fails (`how`) on every message whose body is `poison`,
/// counting its tries in the returned counter, and sends every other event to the returned
/// channel.
pub async fn poisoned_sink<B: broker::Broker + ?Sized>(
    b: &B,
    topic: &str,
    opts: SubscribeOptions,
    how: Failure,
) -> (
    Box<dyn broker::Subscriber>,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<Event>,
) {
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tries);
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = b
        .subscribe(
            topic,
            broker::handler(move |ev: Event| {
                let (tries, tx) = (Arc::clone(&counted), tx.clone());
                async move {
                    if ev.message().body.as_ref() == b"poison" {
                        tries.fetch_add(1, Ordering::SeqCst);
                        match how {
                            Failure::Err => {
                                return Err(rmicro::Error::internal_server_error(
                                    "conformance",
                                    "cannot handle poison",
                                ));
                            }
                            Failure::Panic => panic!("a subscriber bug"),
                        }
                    }
                    let _ = tx.send(ev);
                    Ok(())
                }
            }),
            opts,
        )
        .await
        .expect("subscribe");
    (sub, tries, rx)
}

/// The next event, within [`WAIT`] (`what` names it in the panic).
pub async fn recv(rx: &mut mpsc::UnboundedReceiver<Event>, what: &str) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
        .expect("channel open")
}

async fn quiet(rx: &mut mpsc::UnboundedReceiver<Event>, window: Duration) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout(window, rx.recv()).await {
        n += 1;
    }
    n
}

/// An event's body as text.
pub fn body(ev: &Event) -> String {
    String::from_utf8_lossy(&ev.message().body).into_owned()
}

fn msg(body: impl Into<Bytes>) -> Message {
    Message::new(body).with_header("Content-Type", "application/octet-stream")
}

/// Headers and body arrive byte for byte; the publisher's headers are stamped.
pub async fn preserves_headers_and_body(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("bytes");
    let (_sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    let body: Vec<u8> = (0..=255u8)
        .chain(b"\"quote\" \\ emoji \xF0\x9F\x98\x80".iter().copied())
        .collect();
    let sent = msg(body.clone())
        .with_header("name", "davie")
        .with_header("unicode", "软件工程专业")
        .with_header("empty", "");
    publisher
        .publish(&t, sent.clone(), PublishOptions::default())
        .await
        .expect("publish");
    let ev = recv(&mut rx, "message").await;
    assert_eq!(ev.topic(), t);
    assert_eq!(ev.message().body.as_ref(), body.as_slice());
    for (k, v) in &sent.header {
        assert_eq!(ev.message().header.get(k), Some(v), "header {k}");
    }
    assert_eq!(ev.message().header.get(HEADER_TOPIC), Some(&t));
    assert_eq!(
        ev.message().header.get(HEADER_ID).map(String::len),
        Some(36)
    );
}

/// Broadcast subscribers each get every message; a queue group gets each message once.
pub async fn broadcast_and_queue(f: &impl BrokerFixture) {
    let publisher = f.broker().await;
    let t = topic("groups");
    let mut broadcast = Vec::new();
    let mut queue = Vec::new();
    for _ in 0..2 {
        let b = f.broker().await;
        broadcast.push((sink(&b, &t, SubscribeOptions::default()).await, b));
        let q = f.broker().await;
        queue.push((sink(&q, &t, SubscribeOptions::queue("workers")).await, q));
    }
    tokio::time::sleep(f.settle()).await;
    const N: usize = 20;
    for i in 0..N {
        publisher
            .publish(&t, msg(format!("{i}")), PublishOptions::default())
            .await
            .expect("publish");
    }
    for ((_, rx), _) in &mut broadcast {
        for _ in 0..N {
            recv(rx, "broadcast").await;
        }
    }
    let mut total = 0;
    for ((_, rx), _) in &mut queue {
        total += quiet(rx, Duration::from_millis(700)).await;
    }
    assert_eq!(
        total, N,
        "the queue group must get each message exactly once"
    );
    for ((_, rx), _) in &mut broadcast {
        assert_eq!(
            quiet(rx, Duration::from_millis(200)).await,
            0,
            "no duplicates"
        );
    }
}

/// After unsubscribing, nothing more arrives.
pub async fn unsubscribe_stops_delivery(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("unsub");
    let (sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    publisher
        .publish(&t, msg("one"), PublishOptions::default())
        .await
        .expect("publish");
    recv(&mut rx, "before unsubscribe").await;
    sub.unsubscribe().await.expect("unsubscribe");
    tokio::time::sleep(f.settle()).await;
    publisher
        .publish(&t, msg("two"), PublishOptions::default())
        .await
        .expect("publish after unsubscribe is not an error");
    assert_eq!(quiet(&mut rx, Duration::from_millis(700)).await, 0);
}

/// Many topics at once; each subscriber gets its topic's messages only.
pub async fn many_topics(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let topics: Vec<String> = (0..16).map(|i| topic(&format!("many{i}"))).collect();
    let mut subs = Vec::new();
    for t in &topics {
        subs.push(sink(&subscriber, t, SubscribeOptions::default()).await);
    }
    tokio::time::sleep(f.settle()).await;
    for t in &topics {
        publisher
            .publish(t, msg(t.clone()), PublishOptions::default())
            .await
            .expect("publish");
    }
    for (t, (_, rx)) in topics.iter().zip(subs.iter_mut()) {
        let ev = recv(rx, t).await;
        assert_eq!(ev.message().body.as_ref(), t.as_bytes());
        assert_eq!(quiet(rx, Duration::from_millis(100)).await, 0, "{t}");
    }
}

/// A 1 MiB message arrives whole.
pub async fn one_mebibyte_message(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("big");
    let (_sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    publisher
        .publish(&t, msg(body.clone()), PublishOptions::default())
        .await
        .expect("publish 1 MiB");
    let ev = recv(&mut rx, "1 MiB").await;
    assert_eq!(ev.message().body.len(), body.len());
    assert!(
        ev.message().body.as_ref() == body.as_slice(),
        "1 MiB body differs"
    );
}

/// One publisher's messages arrive in the order published.
pub async fn order_per_publisher(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("order");
    let (_sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    const N: usize = 200;
    for i in 0..N {
        publisher
            .publish(&t, msg(i.to_string()), PublishOptions::default())
            .await
            .expect("publish");
    }
    let mut got = Vec::with_capacity(N);
    for _ in 0..N {
        let ev = recv(&mut rx, "ordered").await;
        got.push(
            String::from_utf8_lossy(&ev.message().body)
                .parse::<usize>()
                .expect("n"),
        );
    }
    let want: Vec<usize> = (0..N).collect();
    assert_eq!(got, want);
}

/// A subscriber with a [`broker::Redelivery`] policy: each poison message is tried 3 times,
/// then published to the dead-letter topic with its story in headers, exactly once; every
/// other message is delivered once, in the order published.
pub async fn poison_goes_to_the_dead_letter_topic(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("poison");
    let dead = format!("{t}.dead");
    let (_dead_sub, mut dead_rx) = sink(&subscriber, &dead, SubscribeOptions::default()).await;
    let tries = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counted = Arc::clone(&tries);
    let handler = broker::handler(move |ev: Event| {
        let (tries, tx) = (Arc::clone(&counted), tx.clone());
        async move {
            if ev.message().body.starts_with(b"poison") {
                tries.fetch_add(1, Ordering::SeqCst);
                return Err(rmicro::Error::internal_server_error(
                    "conformance",
                    "cannot handle poison",
                ));
            }
            let _ = tx.send(ev);
            Ok(())
        }
    });
    let policy = broker::Redelivery::new(3)
        .backoff(Duration::from_millis(10))
        .dead_letter(dead.clone());
    let _sub = subscriber
        .subscribe(
            &t,
            policy.wrap(handler, Arc::clone(&subscriber)),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    tokio::time::sleep(f.settle()).await;
    const N: usize = 100;
    let poison = |i: usize| i % 40 == 7;
    for i in 0..N {
        let body = if poison(i) {
            format!("poison {i}")
        } else {
            i.to_string()
        };
        publisher
            .publish(
                &t,
                msg(body).with_header("n", i.to_string()),
                PublishOptions::default(),
            )
            .await
            .expect("publish");
    }
    let want: Vec<usize> = (0..N).filter(|&i| !poison(i)).collect();
    let mut got = Vec::with_capacity(want.len());
    for _ in 0..want.len() {
        got.push(
            body(&recv(&mut rx, "a good message").await)
                .parse::<usize>()
                .expect("n"),
        );
    }
    assert_eq!(got, want, "every good message, once, in order");
    let poisoned: Vec<usize> = (0..N).filter(|&i| poison(i)).collect();
    let mut letters = Vec::new();
    for _ in &poisoned {
        let ev = recv(&mut dead_rx, "a dead letter").await;
        let h = &ev.message().header;
        assert_eq!(h[broker::HEADER_DEAD_LETTER_TOPIC], t, "{h:?}");
        assert_eq!(h[broker::HEADER_DEAD_LETTER_ATTEMPTS], "3", "{h:?}");
        assert!(
            h[broker::HEADER_DEAD_LETTER_ERROR].contains("cannot handle poison"),
            "{h:?}"
        );
        assert_eq!(h[HEADER_TOPIC], dead);
        assert!(ev.message().id().is_some(), "the id is kept: {h:?}");
        letters.push(h["n"].parse::<usize>().expect("n"));
    }
    letters.sort_unstable();
    assert_eq!(
        letters, poisoned,
        "every poison message, dead-lettered once"
    );
    assert_eq!(
        tries.load(Ordering::SeqCst),
        3 * poisoned.len(),
        "3 tries each"
    );
    assert_eq!(
        quiet(&mut dead_rx, Duration::from_millis(500)).await
            + quiet(&mut rx, Duration::ZERO).await,
        0,
        "nothing more"
    );
}

/// After the broker server restarts, subscriptions deliver again without the program doing
/// anything.
pub async fn delivery_resumes_after_restart(f: &impl BrokerFixture) {
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("restart");
    let (_sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    publisher
        .publish(&t, msg("before"), PublishOptions::default())
        .await
        .expect("publish");
    recv(&mut rx, "before restart").await;
    f.restart().await;
    let serving = Instant::now();
    // Publish until a message gets through: the clients reconnect and re-subscribe by
    // themselves; publishes while they are away may fail, and must say so.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut errors = BTreeMap::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no delivery within 45 s after the restart; publish errors: {errors:?}"
        );
        match publisher
            .publish(&t, msg("after"), PublishOptions::default())
            .await
        {
            Ok(()) => {
                if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
                    && ev.message().body.as_ref() == b"after"
                {
                    // Printed for the record (`--nocapture`): from the server serving again
                    // to the first delivery.
                    eprintln!(
                        "delivery resumed {:.2} s after the server served again ({} failed publishes)",
                        serving.elapsed().as_secs_f64(),
                        errors.values().sum::<usize>()
                    );
                    return;
                }
            }
            Err(e) => {
                *errors.entry(e.detail).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// The seed's student as a type that derives both prost and serde, registered for protobuf.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Student {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Major.
    #[prost(string, tag = "2")]
    pub classes: String,
    /// Grade.
    #[prost(int32, tag = "3")]
    pub grade: i32,
    /// Phone.
    #[prost(string, tag = "4")]
    pub phone: String,
}

rmicro::protobuf!(Student);

/// A typed payload survives the broker in both codecs: each event is decoded by its own
/// `Content-Type` into the same type.
pub async fn typed_payload_in_both_codecs(f: &impl BrokerFixture) {
    use rmicro::codec::{Encode as _, JSON, PROTOBUF};
    let (publisher, subscriber) = (f.broker().await, f.broker().await);
    let t = topic("typed");
    let (_sub, mut rx) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    tokio::time::sleep(f.settle()).await;
    let student = Student {
        name: "davie".into(),
        classes: "软件工程专业".into(),
        grade: 80,
        phone: "12345678901".into(),
    };
    for ct in [PROTOBUF, JSON] {
        let body = student.encode("conformance", ct).expect("encode");
        let message = Message::new(body).with_header("Content-Type", ct);
        publisher
            .publish(&t, message, PublishOptions::default())
            .await
            .expect("publish");
        let raw = recv(&mut rx, ct).await;
        assert_eq!(
            raw.message().header.get("Content-Type").map(String::as_str),
            Some(ct)
        );
        let event = rmicro::Event::<Student>::decode(raw).expect("decode by content type");
        assert!(event.payload() == &student, "{ct}: payload differs");
    }
}

/// Expands to one `#[tokio::test]` per check of the broker suite for `$fixture`, an
/// expression building a fresh fixture.
#[macro_export]
macro_rules! broker_suite {
    ($fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn preserves_headers_and_body() {
            $crate::broker::preserves_headers_and_body(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn broadcast_and_queue() {
            $crate::broker::broadcast_and_queue(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unsubscribe_stops_delivery() {
            $crate::broker::unsubscribe_stops_delivery(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn typed_payload_in_both_codecs() {
            $crate::broker::typed_payload_in_both_codecs(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn many_topics() {
            $crate::broker::many_topics(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn one_mebibyte_message() {
            $crate::broker::one_mebibyte_message(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn order_per_publisher() {
            $crate::broker::order_per_publisher(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn poison_goes_to_the_dead_letter_topic() {
            $crate::broker::poison_goes_to_the_dead_letter_topic(&$fixture).await;
        }
    };
}

/// Expands to the restart check for `$fixture`, for plugins with a server of their own
/// (in-process plugins have nothing to restart and do not expand it).
#[macro_export]
macro_rules! broker_restart_check {
    ($fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn delivery_resumes_after_restart() {
            $crate::broker::delivery_resumes_after_restart(&$fixture).await;
        }
    };
}

macro_rules! restart_by_inherent {
    ($($server:ty),* $(,)?) => {
        $(impl Restart for $server {
            fn restart(&mut self) {
                <$server>::restart(self);
            }
        })*
    };
}

restart_by_inherent!(
    crate::servers::activemq::ActiveMq,
    crate::servers::kafka::Kafka,
    crate::servers::mosquitto::Mosquitto,
    crate::servers::nats::Nats,
    crate::servers::nsq::Nsqd,
    crate::servers::pubsub::PubSub,
    crate::servers::rabbitmq::Rabbitmq,
    crate::servers::redis::Redis,
);
