//! The redis broker against a real redis-server on loopback, where the conformance suite does
//! not reach: go-micro's pub/sub envelope read and written with a raw client, the stream and
//! consumer-group layout of queues, acknowledgement after success, the redelivery policy, a
//! dead consumer's entry claimed by another, and queue recovery after an empty restart, timed.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "redis")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use redis::aio::MultiplexedConnection;
use rmicro::broker::redis::{RedisBroker, RedisOptions};
use rmicro::broker::{self, Broker, Event, Message, PublishOptions, SubscribeOptions};
use tokio::sync::mpsc;

/// A redis-server on a free loopback port, without persistence; killed on drop.
struct Server {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!("rmicro-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Server {
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let program = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("redis-server");
        let child = Command::new(program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (is it installed? run scripts/setup.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        while listening(self.port) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn topic(prefix: &str) -> String {
    format!(
        "redis.{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn broker(url: &str, tweak: impl FnOnce(&mut RedisOptions)) -> RedisBroker {
    let mut opts = RedisOptions::with_address(url);
    tweak(&mut opts);
    let b = RedisBroker::new(opts).expect("options");
    b.connect().await.expect("connects");
    b
}

async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn sink(
    b: &RedisBroker,
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

async fn pending(conn: &mut MultiplexedConnection, key: &str, group: &str) -> i64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await
        .expect("xpending");
    match summary.first() {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// Broadcast travels as go-micro's JSON envelope over PUBLISH, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_carries_go_micro_envelope_both_ways() {
    let server = Server::start();
    let t = topic("wire");
    let b = broker(&server.url(), |_| {}).await;

    // rmicro -> a raw subscriber (what go-plugins' redis broker reads).
    let client = redis::Client::open(server.url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&t).await.expect("subscribe");
    let mut stream = pubsub.into_on_message();
    b.publish(
        &t,
        Message::new(&b"{\"name\":\"davie\"}"[..]).with_header("Content-Type", "application/json"),
        PublishOptions::default(),
    )
    .await
    .expect("publish");
    let raw_msg = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("within 10 s")
        .expect("message");
    let json: serde_json::Value =
        serde_json::from_slice(raw_msg.get_payload_bytes()).expect("JSON envelope");
    assert_eq!(json["Body"], "eyJuYW1lIjoiZGF2aWUifQ==");
    assert_eq!(json["Header"]["Content-Type"], "application/json");
    assert_eq!(json["Header"]["Micro-Topic"], t.as_str());
    assert_eq!(json["Header"]["Micro-ID"].as_str().map(str::len), Some(36));

    // A go-micro peer's PUBLISH -> an rmicro subscriber.
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    let envelope = format!(
        r#"{{"Header":{{"Content-Type":"application/json","Micro-Topic":"{t}","Micro-ID":"id-1"}},"Body":"eyJuYW1lIjoiZ28ifQ=="}}"#
    );
    let mut conn = raw(&server.url()).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&t)
        .arg(&envelope)
        .query_async(&mut conn)
        .await
        .expect("raw publish");
    // The raw subscriber above gets it too; the rmicro one must decode it.
    let ev = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("within 10 s")
        .expect("open");
    assert_eq!(ev.topic(), t);
    assert_eq!(ev.message().body, Bytes::from_static(b"{\"name\":\"go\"}"));
    assert_eq!(ev.message().header["Micro-ID"], "id-1");
}

/// A topic's stream exists only once a queue group does; then each publish adds one entry,
/// which the group acks after the handler succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stream_layout_and_ack_after_success() {
    let server = Server::start();
    let t = topic("layout");
    let b = broker(&server.url(), |_| {}).await;
    let key = b.stream_key(&t);
    assert_eq!(key, format!("micro:stream:{t}"));
    let mut conn = raw(&server.url()).await;

    b.publish(&t, Message::new("nobody"), PublishOptions::default())
        .await
        .expect("publish");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(exists, 0, "no queue group: no stream, no memory");

    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    b.publish(&t, Message::new("job"), PublishOptions::default())
        .await
        .expect("publish");
    let ev = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("within 10 s")
        .expect("open");
    assert_eq!(ev.message().body, Bytes::from_static(b"job"));
    let len: i64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("xlen");
    assert_eq!(len, 1);
    let deadline = Instant::now() + WAIT;
    while pending(&mut conn, &key, "workers").await != 0 {
        assert!(Instant::now() < deadline, "the entry was never acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A failing handler's entry is tried again once (after `claim_idle`), then acked and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_entry_is_redelivered_once_then_dropped() {
    let server = Server::start();
    let t = topic("fail");
    let b = broker(&server.url(), |o| o.claim_idle = Duration::from_millis(300)).await;
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tries);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = b
        .subscribe(
            &t,
            broker::handler(move |ev| {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(ev.message().body.clone());
                async { Err(rmicro::Error::internal_server_error("test", "always fails")) }
            }),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("subscribe");
    b.publish(&t, Message::new("poison"), PublishOptions::default())
        .await
        .expect("publish");
    for attempt in 1..=2 {
        let body = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt} within 10 s"))
            .expect("open");
        assert_eq!(body, Bytes::from_static(b"poison"));
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .is_err(),
        "a third attempt: the entry loops"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    let mut conn = raw(&server.url()).await;
    assert_eq!(pending(&mut conn, &b.stream_key(&t), "workers").await, 0);
}

/// An entry whose consumer hangs (or died) mid-handler is claimed by another consumer of the
/// group once it has been pending for `claim_idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_of_a_stuck_consumer_is_claimed_by_another() {
    let server = Server::start();
    let t = topic("claim");
    let idle = |o: &mut RedisOptions| o.claim_idle = Duration::from_millis(500);
    let a = broker(&server.url(), idle).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let _sub_a = a
        .subscribe(
            &t,
            broker::handler(move |_ev| {
                let _ = started_tx.send(());
                futures::future::pending::<rmicro::Result<()>>()
            }),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("subscribe a");
    a.publish(&t, Message::new("job"), PublishOptions::default())
        .await
        .expect("publish");
    tokio::time::timeout(WAIT, started.recv())
        .await
        .expect("a took it")
        .expect("open");
    let b = broker(&server.url(), idle).await;
    let (_sub_b, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    let taken = Instant::now();
    let ev = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("b claims it within 10 s")
        .expect("open");
    assert_eq!(ev.message().body, Bytes::from_static(b"job"));
    eprintln!(
        "redis: a stuck consumer's entry was claimed {:.2} s after another consumer joined",
        taken.elapsed().as_secs_f64()
    );
}

/// After redis restarts empty (no stream, no group), a queue subscription recreates its group
/// and a broadcast one subscribes again, by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_resume_after_an_empty_restart() {
    let mut server = Server::start();
    let t = topic("restart");
    let publisher = broker(&server.url(), |_| {}).await;
    let subscriber = broker(&server.url(), |_| {}).await;
    let (_b, mut broadcast) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    let (_q, mut queue) = sink(&subscriber, &t, SubscribeOptions::queue("workers")).await;

    tokio::task::block_in_place(|| {
        server.kill();
        server.spawn();
    });
    let up = Instant::now();
    let (mut got_broadcast, mut got_queue) = (false, false);
    while !(got_broadcast && got_queue) {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no delivery within 30 s (broadcast: {got_broadcast}, queue: {got_queue})"
        );
        let _ = publisher
            .publish(&t, Message::new("after"), PublishOptions::default())
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(ev) = broadcast.try_recv() {
            got_broadcast |= ev.message().body == "after";
        }
        while let Ok(ev) = queue.try_recv() {
            got_queue |= ev.message().body == "after";
        }
    }
    eprintln!(
        "redis restart: broadcast and queue delivery resumed {:.2} s after the server listened again",
        up.elapsed().as_secs_f64()
    );
}

/// A server that is down is an error naming the plugin and the address.
#[tokio::test]
async fn a_dead_server_is_an_error_naming_the_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let b = RedisBroker::new(RedisOptions::with_address(&format!(
        "redis://:secret@127.0.0.1:{port}"
    )))
    .expect("options");
    let err = b.connect().await.expect_err("nothing listens");
    assert_eq!(err.code, 503);
    assert!(
        err.detail.starts_with(&format!(
            "redis: cannot connect to `redis://:***@127.0.0.1:{port}`: "
        )),
        "{err}"
    );
    assert!(!err.detail.contains("secret"), "{err}");
}
