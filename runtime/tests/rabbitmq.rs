//! The rabbitmq broker against a real RabbitMQ node (Debian's 3.10) on loopback, where the
//! conformance suite does not reach: go-micro's wire format read and written with a raw lapin
//! client, acknowledgement after the handler succeeds (not at receipt, as go-micro's AutoAck),
//! the nack policy, errors naming the address, and recovery after a restart, timed.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "rabbitmq")]

mod ports;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use ports::free_port;
use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
use rmicro::broker::{self, Broker, Event, Message, PublishOptions, SubscribeOptions};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// A RabbitMQ node with its own epmd, on free loopback ports (see also the conformance
// fixture `servers/rabbitmq.rs`, which this mirrors: runtime tests cannot depend on it).

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `sh -c` script: a watchdog that kills the exec'd server (and removes `dir`) once this test
/// process is gone, since a node in a static is never dropped.
fn guarded(command: &str, dir: &str) -> String {
    format!(
        "me=$$; parent={}; \
         ( while kill -0 $parent && kill -0 $me; do sleep 1; done; \
           if ! kill -0 $parent; then kill -9 $me; rm -rf '{dir}'; fi ) >/dev/null 2>&1 & {command}",
        std::process::id()
    )
}

struct Node {
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    rabbit: Option<Child>,
    epmd: Option<Child>,
}

impl Node {
    fn start() -> Node {
        let dir = std::env::temp_dir().join(format!("rmicro-rabbitmq-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let epmd_port = free_port();
        let epmd = Command::new("/bin/sh")
            .arg("-c")
            .arg(guarded(
                &format!("exec epmd -address 127.0.0.1 -port {epmd_port}"),
                &dir.join("epmd").display().to_string(),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("epmd runs");
        let mut node = Node {
            dir,
            port: free_port(),
            dist_port: free_port(),
            epmd_port,
            rabbit: None,
            epmd: Some(epmd),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(epmd_port) {
            assert!(Instant::now() < deadline, "epmd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = node.spawn();
        eprintln!(
            "rabbitmq node on 127.0.0.1:{} booted in {:.1} s",
            node.port,
            took.as_secs_f64()
        );
        node
    }

    /// Starts the node and waits for its AMQP port; returns how long that took.
    fn spawn(&mut self) -> Duration {
        let dir = self.dir.display().to_string();
        std::fs::write(self.dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(
            self.dir.join("rabbitmq.conf"),
            "disk_free_limit.absolute = 1MB\n",
        )
        .expect("config file");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log");
        let started = Instant::now();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(guarded("exec /usr/lib/rabbitmq/bin/rabbitmq-server", &dir))
            .env("HOME", &dir)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env(
                "RABBITMQ_NODENAME",
                format!("rmicro-{}@localhost", self.port),
            )
            .env("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia"))
            .env("RABBITMQ_LOG_BASE", format!("{dir}/log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq"))
            .env("RABBITMQ_CONF_ENV_FILE", format!("{dir}/rabbitmq-env.conf"))
            .env("RABBITMQ_ALLOW_INPUT", "1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-noinput -kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server runs (is it installed? run scripts/setup.sh)");
        self.rabbit = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !listening(self.port) {
            if let Some(Ok(Some(status))) = self.rabbit.as_mut().map(Child::try_wait) {
                panic!(
                    "rabbitmq-server exited with {status}:\n{}",
                    std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not listen in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.rabbit.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while listening(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The node the tests of this binary share (the restart test has its own).
fn shared() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(Node::start)
}

// ---------------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);

fn topic(prefix: &str) -> String {
    format!(
        "rabbit.{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn broker(url: &str, tweak: impl FnOnce(&mut RabbitmqOptions)) -> RabbitmqBroker {
    let mut opts = RabbitmqOptions::with_addresses(url);
    tweak(&mut opts);
    let b = RabbitmqBroker::new(opts).expect("options");
    b.connect().await.expect("connects");
    b
}

async fn raw(url: &str) -> (Connection, lapin::Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("raw lapin connects");
    let ch = conn.create_channel().await.expect("channel");
    // The same declaration as go-micro's (and rmicro's): topic, not durable.
    ch.exchange_declare(
        "micro".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    (conn, ch)
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn text(table: &FieldTable, key: &str) -> Option<String> {
    match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

async fn sink(
    b: &RabbitmqBroker,
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

/// What rmicro publishes is what a go-micro subscriber reads: the raw body, go-micro's headers
/// as AMQP long-string headers, routing key = topic on exchange `micro`; plus the AMQP
/// content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_raw_body_with_amqp_headers() {
    let url = shared().url();
    let t = topic("wire");
    let (_conn, ch) = raw(&url).await;
    let q = ch
        .queue_declare(
            ShortString::default(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    ch.queue_bind(
        q.name().clone(),
        "micro".into(),
        t.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            ShortString::default(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let b = broker(&url, |_| {}).await;
    let body = br#"{"name":"davie","bytes":"\u0000\u00ff"}"#.to_vec();
    let msg = Message::new(body.clone())
        .with_header("Content-Type", "application/json")
        .with_header("name", "软件工程");
    b.publish(&t, msg, PublishOptions::default())
        .await
        .expect("publish");

    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("stream open")
        .expect("delivery");
    assert_eq!(
        delivery.data, body,
        "the body travels raw, not in an envelope"
    );
    assert_eq!(delivery.exchange.as_str(), "micro");
    assert_eq!(delivery.routing_key.as_str(), t);
    assert_eq!(
        delivery
            .properties
            .content_type()
            .as_ref()
            .map(ShortString::as_str),
        Some("application/json")
    );
    let headers = delivery.properties.headers().clone().expect("headers");
    assert_eq!(
        text(&headers, "Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(text(&headers, "name").as_deref(), Some("软件工程"));
    assert_eq!(text(&headers, "Micro-Topic").as_deref(), Some(t.as_str()));
    assert_eq!(text(&headers, "Micro-ID").map(|s| s.len()), Some(36));
    assert_eq!(headers.inner().len(), 4, "{headers:?}");
}

/// What a go-micro peer publishes (headers as an AMQP table, raw body, no content-type
/// property) arrives whole; non-string headers arrive as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_what_a_go_micro_peer_publishes() {
    let url = shared().url();
    let t = topic("peer");
    let b = broker(&url, |_| {}).await;
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    let (_conn, ch) = raw(&url).await;
    let mut headers = FieldTable::default();
    headers.insert("Content-Type".into(), long("application/json"));
    headers.insert("Micro-Topic".into(), long(&t));
    headers.insert(
        "Micro-ID".into(),
        long("0b8a4f3e-5f2c-4c1e-9a7d-1f2e3d4c5b6a"),
    );
    headers.insert("retries".into(), AMQPValue::LongInt(3));
    let body = b"\x00\x01raw\xff".to_vec();
    ch.basic_publish(
        "micro".into(),
        t.as_str().into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default().with_headers(headers),
    )
    .await
    .expect("raw publish");
    let ev = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("open");
    assert_eq!(ev.topic(), t);
    assert_eq!(ev.message().body, Bytes::from(body));
    let h = &ev.message().header;
    assert_eq!(h["Content-Type"], "application/json");
    assert_eq!(h["Micro-Topic"], t);
    assert_eq!(h["Micro-ID"], "0b8a4f3e-5f2c-4c1e-9a7d-1f2e3d4c5b6a");
    assert_eq!(h["retries"], "3");
}

/// A failing handler's message comes back once (requeued, flagged redelivered), then is
/// dropped: no endless loop, nothing left in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_message_is_redelivered_once_then_dropped() {
    let url = shared().url();
    let t = topic("nack");
    let queue = format!("q-{}", uuid::Uuid::new_v4().simple());
    let b = broker(&url, |_| {}).await;
    let tries = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counted = Arc::clone(&tries);
    let _sub = b
        .subscribe(
            &t,
            broker::handler(move |ev| {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = tx.send(ev.message().body.clone());
                async move {
                    Err(rmicro::Error::internal_server_error(
                        "test",
                        format!("failure {n}"),
                    ))
                }
            }),
            SubscribeOptions::queue(queue.clone()),
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
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "a third attempt: the message loops"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    // Dropped, not parked: the queue holds nothing.
    let (_conn, ch) = raw(&url).await;
    let q = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare");
    assert_eq!(q.message_count(), 0);
}

/// With `auto_ack`, the message is acked when the handler returns `Ok`, not on receipt: a
/// consumer that dies mid-handler leaves it to another member of the queue, one that finished
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_is_acked_only_after_the_handler_succeeds() {
    let url = shared().url();
    for finish in [false, true] {
        let t = topic("ack");
        let queue = format!("q-{}", uuid::Uuid::new_v4().simple());
        let a = broker(&url, |_| {}).await;
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let _sub_a = a
            .subscribe(
                &t,
                broker::handler(move |_ev| {
                    let _ = started_tx.send(());
                    async move {
                        if !finish {
                            // A handler that never returns, as a consumer that crashed.
                            futures::future::pending::<()>().await;
                        }
                        Ok(())
                    }
                }),
                SubscribeOptions::queue(queue.clone()),
            )
            .await
            .expect("subscribe a");
        a.publish(&t, Message::new("job"), PublishOptions::default())
            .await
            .expect("publish");
        tokio::time::timeout(WAIT, started.recv())
            .await
            .expect("a handles it")
            .expect("open");
        let b = broker(&url, |_| {}).await;
        let (_sub_b, mut rx_b) = sink(&b, &t, SubscribeOptions::queue(queue.clone())).await;
        // Give a's ack (if any) time to reach the server before a goes away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.disconnect().await.expect("disconnect a");
        let got = tokio::time::timeout(Duration::from_secs(3), rx_b.recv()).await;
        if finish {
            assert!(
                got.is_err(),
                "a finished and acked: b must not get it again"
            );
        } else {
            let ev = got.expect("b gets the unacked message").expect("open");
            assert_eq!(ev.message().body, Bytes::from_static(b"job"));
        }
    }
}

/// With `auto_ack` off the handler acks; an event it acks is not redelivered, and a failure
/// after its own ack does not nack the message twice (the channel survives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_ack_is_the_handlers() {
    let url = shared().url();
    let t = topic("manual");
    let b = broker(&url, |_| {}).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut opts = SubscribeOptions::queue(format!("q-{}", uuid::Uuid::new_v4().simple()));
    opts.auto_ack = false;
    let _sub = b
        .subscribe(
            &t,
            broker::handler(move |mut ev| {
                let tx = tx.clone();
                async move {
                    ev.ack().await?;
                    let _ = tx.send(ev.message().body.clone());
                    Err(rmicro::Error::internal_server_error("test", "after ack"))
                }
            }),
            opts,
        )
        .await
        .expect("subscribe");
    for body in ["one", "two"] {
        b.publish(&t, Message::new(body), PublishOptions::default())
            .await
            .expect("publish");
        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("delivered")
            .expect("open");
        assert_eq!(got, Bytes::from(body));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "an acked message came back"
    );
}

/// A server that is down is an error naming the plugin and the address (password masked).
#[tokio::test]
async fn a_dead_server_is_an_error_naming_the_address() {
    let port = free_port();
    let b = RabbitmqBroker::new(RabbitmqOptions::with_addresses(&format!(
        "amqp://guest:secret@127.0.0.1:{port}/%2f"
    )))
    .expect("options");
    let err = b.connect().await.expect_err("nothing listens");
    assert_eq!(err.code, 503);
    assert!(err.detail.starts_with("rabbitmq: "), "{err}");
    assert!(
        err.detail
            .contains(&format!("`amqp://guest:***@127.0.0.1:{port}/%2f`")),
        "{err}"
    );
    assert!(!err.detail.contains("secret"), "{err}");
    let err = b
        .publish("t", Message::new("x"), PublishOptions::default())
        .await
        .expect_err("publish without a server");
    assert!(err.detail.contains("not connected"), "{err}");
}

/// After the node is killed and started again, a broadcast and a queue subscription both
/// deliver again, by themselves; prints how long the node took to boot and delivery to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_resume_after_restart() {
    let node = Arc::new(Mutex::new(Node::start()));
    let url = node.lock().expect("node").url();
    let t = topic("restart");
    let publisher = broker(&url, |_| {}).await;
    let subscriber = broker(&url, |_| {}).await;
    let (_b, mut broadcast) = sink(&subscriber, &t, SubscribeOptions::default()).await;
    let (_q, mut queue) = sink(&subscriber, &t, SubscribeOptions::queue("restart-workers")).await;

    let killed = Instant::now();
    let boot = tokio::task::block_in_place(|| {
        let mut node = node.lock().expect("node");
        node.kill();
        node.spawn()
    });
    let up = Instant::now();
    let mut got_broadcast = false;
    let mut got_queue = false;
    let mut publish_errors = 0;
    while !(got_broadcast && got_queue) {
        assert!(
            up.elapsed() < Duration::from_secs(45),
            "no delivery within 45 s of the restart (broadcast: {got_broadcast}, queue: {got_queue})"
        );
        if publisher
            .publish(&t, Message::new("after"), PublishOptions::default())
            .await
            .is_err()
        {
            publish_errors += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(ev) = broadcast.try_recv() {
            got_broadcast |= ev.message().body == "after";
        }
        while let Ok(ev) = queue.try_recv() {
            got_queue |= ev.message().body == "after";
        }
    }
    eprintln!(
        "rabbitmq restart: node booted again in {:.1} s; delivery resumed {:.1} s after it listened \
         ({:.1} s after the kill); {publish_errors} publishes failed meanwhile",
        boot.as_secs_f64(),
        up.elapsed().as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    assert!(publisher.is_connected() && subscriber.is_connected());
}

/// With a durable exchange and queue, persistent messages waiting in the queue survive the
/// node being killed and started again; transient ones (the default, as go-micro's) do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_in_a_durable_queue_survive_a_restart() {
    let node = Arc::new(Mutex::new(Node::start()));
    let url = node.lock().expect("node").url();
    let t = topic("persistent");
    let durable = |o: &mut RabbitmqOptions| {
        o.durable_exchange = true;
        o.durable_queues = true;
    };
    // The queue and its binding exist; its consumer goes away.
    let first = broker(&url, durable).await;
    let (sub, _) = sink(&first, &t, SubscribeOptions::queue("kept")).await;
    sub.unsubscribe().await.expect("unsubscribe");
    first.disconnect().await.expect("disconnect");

    let persistent = broker(&url, |o| {
        durable(o);
        o.persistent_messages = true;
    })
    .await;
    let transient = broker(&url, durable).await;
    for i in 0..20 {
        for (b, kind) in [(&persistent, "p"), (&transient, "t")] {
            b.publish(
                &t,
                Message::new(format!("{kind}{i}")),
                PublishOptions::default(),
            )
            .await
            .expect("confirmed");
        }
    }
    tokio::task::block_in_place(|| {
        let mut node = node.lock().expect("node");
        node.kill();
        node.spawn()
    });
    let again = broker(&url, durable).await;
    let (_q, mut queue) = sink(&again, &t, SubscribeOptions::queue("kept")).await;
    let mut got = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), queue.recv()).await {
        got.push(String::from_utf8_lossy(&ev.message().body).into_owned());
    }
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "after the restart the queue holds the persistent messages only"
    );
}
