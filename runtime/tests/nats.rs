//! The NATS broker against a real nats-server on loopback, where the conformance suite does
//! not reach: go-micro's envelope both ways with a raw async-nats client, queue groups shared
//! with a foreign client, starting before the server, subscriptions restored after a restart,
//! slow consumers reported, and a flush on disconnect.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "nats")]

mod broker_servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_servers::Proc;
use futures::StreamExt as _;
use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
use rmicro::broker::{self, Broker, Message, PublishOptions, SubscribeOptions};
use serde::Deserialize;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// What a go-micro v2 peer publishes with the nats broker and the JSON codec: Go's
/// `json.Marshal(&broker.Message{..})`, map keys sorted, body base64.
const GO_ENVELOPE: &str = r#"{"Header":{"Content-Type":"application/json","Micro-ID":"6f1c1a9e-3b55-4bd1-9a56-4f0c0e6f3b8a","Micro-Topic":"go.micro.srv.message","X-From":"go"},"Body":"eyJzYXkiOiJoZWxsbyBmcm9tIGdvIn0="}"#;

#[derive(Debug, Deserialize, PartialEq)]
struct Say {
    say: String,
}

fn url(server: &Proc) -> String {
    format!("nats://{}", server.addr)
}

fn broker_for(server: &Proc, tune: impl FnOnce(&mut NatsBrokerOptions)) -> NatsBroker {
    let mut opts = NatsBrokerOptions::default();
    opts.addresses = vec![url(server)];
    tune(&mut opts);
    NatsBroker::new(opts).expect("options")
}

async fn raw(server: &Proc) -> async_nats::Client {
    async_nats::connect(url(server)).await.expect("raw client")
}

async fn sink(
    b: &NatsBroker,
    topic: &str,
    opts: SubscribeOptions,
) -> (
    Box<dyn broker::Subscriber>,
    mpsc::UnboundedReceiver<broker::Event>,
) {
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

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
        .expect("channel open")
}

async fn count_for<T>(rx: &mut mpsc::UnboundedReceiver<T>, window: Duration) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout(window, rx.recv()).await {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_micro_peer_message_is_decoded() {
    let server = Proc::nats();
    let b = broker_for(&server, |_| {});
    let (_sub, mut rx) = sink(&b, "go.micro.srv.message", SubscribeOptions::default()).await;
    let raw = raw(&server).await;
    raw.publish("go.micro.srv.message", GO_ENVELOPE.into())
        .await
        .expect("raw publish");
    raw.flush().await.expect("flush");
    let ev = recv(&mut rx, "go-micro message").await;
    assert_eq!(ev.topic(), "go.micro.srv.message");
    assert_eq!(ev.message().header["X-From"], "go");
    assert_eq!(ev.message().body.as_ref(), br#"{"say":"hello from go"}"#);
    let typed = rmicro::Event::<Say>::decode(ev).expect("typed decode");
    assert_eq!(typed.payload().say, "hello from go");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_rmicro_publishes_is_a_go_micro_envelope() {
    let server = Proc::nats();
    let raw = raw(&server).await;
    let mut sub = raw
        .subscribe("go.micro.srv.message")
        .await
        .expect("raw sub");
    raw.flush().await.expect("flush");
    let b = broker_for(&server, |_| {});
    let msg = Message::new(&br#"{"say":"hello from rust"}"#[..])
        .with_header("Content-Type", "application/json")
        .with_header("X-From", "rust");
    b.publish("go.micro.srv.message", msg, PublishOptions::default())
        .await
        .expect("publish");
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("within 10 s")
        .expect("message");
    assert_eq!(
        m.subject.as_str(),
        "go.micro.srv.message",
        "subject verbatim"
    );
    assert!(
        m.headers.is_none(),
        "no NATS headers: everything is in the envelope"
    );
    let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["Body", "Header"]);
    let header = obj["Header"].as_object().expect("header map");
    assert_eq!(header["Content-Type"], "application/json");
    assert_eq!(header["Micro-Topic"], "go.micro.srv.message");
    assert_eq!(header["X-From"], "rust");
    assert_eq!(header["Micro-ID"].as_str().map(str::len), Some(36));
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(obj["Body"].as_str().expect("body string"))
        .expect("standard base64");
    assert_eq!(body, br#"{"say":"hello from rust"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_a_nats_queue_group_other_clients_can_join() {
    let server = Proc::nats();
    let t = "jobs.resize";
    let worker = broker_for(&server, |_| {});
    let (_sub, mut ours) = sink(&worker, t, SubscribeOptions::queue("workers")).await;
    let raw = raw(&server).await;
    let mut theirs = raw
        .queue_subscribe(t, "workers".to_owned())
        .await
        .expect("raw queue sub");
    raw.flush().await.expect("flush");
    let publisher = broker_for(&server, |_| {});
    const N: usize = 60;
    for i in 0..N {
        publisher
            .publish(t, Message::new(i.to_string()), PublishOptions::default())
            .await
            .expect("publish");
    }
    let a = count_for(&mut ours, Duration::from_millis(500)).await;
    let mut b = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), theirs.next()).await {
        b += 1;
    }
    println!("queue group split over {N} messages: rmicro {a}, foreign member {b}");
    assert_eq!(a + b, N, "each message once to the group");
    assert!(a > 0 && b > 0, "both members take messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_before_the_server_works() {
    let mut server = Proc::nats();
    server.kill();
    let b = broker_for(&server, |o| o.connect_timeout = Duration::from_millis(700));
    let err = b.connect().await.expect_err("nothing listens yet");
    println!("connect error: {err}");
    assert_eq!(err.code, 503);
    assert!(
        err.detail
            .starts_with("nats: not connected to `nats://127.0.0.1:"),
        "{err}"
    );
    let err = b
        .publish("early", Message::new("x"), PublishOptions::default())
        .await
        .expect_err("publish while down");
    assert_eq!(err.code, 503, "{err}");

    // The client keeps trying in the background; a subscribe waiting for it succeeds once
    // the server is up.
    let patient = broker_for(&server, |o| o.connect_timeout = Duration::from_secs(20));
    let subscribing = {
        let patient = patient.clone();
        tokio::spawn(async move {
            let (sub, rx) = sink(&patient, "early", SubscribeOptions::default()).await;
            (sub, rx)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.spawn());
    let up = Instant::now();
    let (_sub, mut rx) = tokio::time::timeout(Duration::from_secs(20), subscribing)
        .await
        .expect("subscribe finishes")
        .expect("task");
    println!("subscribed {:?} after the server listened", up.elapsed());
    // The first broker (whose connect failed) connected by itself too, after its backoff.
    while let Err(err) = b
        .publish("early", Message::new("late"), PublishOptions::default())
        .await
    {
        assert!(
            up.elapsed() < Duration::from_secs(15),
            "never reconnected: {err}"
        );
    }
    println!(
        "the first broker published {:?} after the server listened",
        up.elapsed()
    );
    assert_eq!(recv(&mut rx, "late").await.message().body, "late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_after_nats_server_restarts() {
    let mut server = Proc::nats();
    let sub_broker = broker_for(&server, |_| {});
    let (_b, mut broadcast) = sink(&sub_broker, "restart.b", SubscribeOptions::default()).await;
    let (_q, mut queued) = sink(&sub_broker, "restart.q", SubscribeOptions::queue("g")).await;
    let publisher = broker_for(&server, |o| o.connect_timeout = Duration::from_secs(1));
    publisher
        .publish(
            "restart.b",
            Message::new("before"),
            PublishOptions::default(),
        )
        .await
        .expect("publish");
    assert_eq!(
        recv(&mut broadcast, "before").await.message().body,
        "before"
    );

    tokio::task::block_in_place(|| server.restart());
    let up = Instant::now();
    let (mut got_b, mut got_q) = (None, None);
    let mut errors = 0;
    while got_b.is_none() || got_q.is_none() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no delivery 30 s after the restart"
        );
        for t in ["restart.b", "restart.q"] {
            if publisher
                .publish(t, Message::new("after"), PublishOptions::default())
                .await
                .is_err()
            {
                errors += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(ev) = broadcast.try_recv() {
            if ev.message().body == "after" {
                got_b.get_or_insert(up.elapsed());
            }
        }
        while let Ok(ev) = queued.try_recv() {
            if ev.message().body == "after" {
                got_q.get_or_insert(up.elapsed());
            }
        }
    }
    println!(
        "after the restart: broadcast delivered again within {:?}, queue within {:?} ({errors} publishes failed meanwhile)",
        got_b.unwrap_or_default(),
        got_q.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_reported() {
    let server = Proc::nats();
    let b = broker_for(&server, |o| o.subscription_capacity = 4);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let _sub = b
        .subscribe(
            "slow",
            broker::handler({
                let gate = Arc::clone(&gate);
                move |_ev| {
                    let gate = Arc::clone(&gate);
                    async move {
                        gate.acquire().await.map(|p| p.forget()).ok();
                        Ok(())
                    }
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let raw = raw(&server).await;
    for i in 0..50 {
        raw.publish("slow", Message::new(i.to_string()).to_envelope().into())
            .await
            .expect("raw publish");
    }
    raw.flush().await.expect("flush");
    let deadline = Instant::now() + WAIT;
    while b.slow_consumer_events() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("slow-consumer events: {}", b.slow_consumer_events());
    assert!(b.slow_consumer_events() >= 1);
    gate.add_permits(1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_flushes_what_was_published() {
    let server = Proc::nats();
    let raw = raw(&server).await;
    let mut sub = raw.subscribe("flushed").await.expect("raw sub");
    raw.flush().await.expect("flush");
    let b = broker_for(&server, |o| o.flush_each_publish = false);
    b.connect().await.expect("connect");
    const N: usize = 500;
    for i in 0..N {
        b.publish(
            "flushed",
            Message::new(i.to_string()),
            PublishOptions::default(),
        )
        .await
        .expect("publish");
    }
    b.disconnect().await.expect("disconnect");
    let mut n = 0;
    while n < N {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(_)) => n += 1,
            _ => break,
        }
    }
    assert_eq!(n, N, "every message published before disconnect arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_payload_is_an_error() {
    let server = Proc::nats();
    let b = broker_for(&server, |_| {});
    b.connect().await.expect("connect");
    let err = b
        .publish(
            "big",
            Message::new(vec![7u8; 4 << 20]),
            PublishOptions::default(),
        )
        .await
        .expect_err("over 4 MiB of envelope");
    println!("{err}");
    assert_eq!(err.code, 413);
    assert!(err.detail.contains("max_payload"), "{err}");
}
