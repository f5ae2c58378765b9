//! The MQTT broker against a real mosquitto on loopback, where the conformance suite does not
//! reach: go-micro's envelope both ways with a raw MQTT client, shared subscriptions shared
//! with a foreign client, errors while the server is away, publishes that wait for a
//! reconnect, subscriptions restored after a restart, and a slow handler that does not stall
//! the connection.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "mqtt")]

mod broker_servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_servers::Proc;
use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro::broker::{self, Broker, Message, PublishOptions, SubscribeOptions};
use rumqttc::{AsyncClient, Event as MqttEvent, Incoming, MqttOptions, QoS};
use serde::Deserialize;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// What a go-micro v2 peer puts on the wire for `client.Publish(ctx, client.NewMessage(
/// "go.micro.srv.message", &Say{Say: "hello from go"}))` with the JSON codec: Go's
/// `json.Marshal(&broker.Message{..})`, map keys sorted, body base64.
const GO_ENVELOPE: &str = r#"{"Header":{"Content-Type":"application/json","Micro-ID":"6f1c1a9e-3b55-4bd1-9a56-4f0c0e6f3b8a","Micro-Topic":"go.micro.srv.message","X-From":"go"},"Body":"eyJzYXkiOiJoZWxsbyBmcm9tIGdvIn0="}"#;

#[derive(Debug, Deserialize, PartialEq)]
struct Say {
    say: String,
}

fn broker_for(server: &Proc, tune: impl FnOnce(&mut MqttBrokerOptions)) -> MqttBroker {
    let mut opts = MqttBrokerOptions::default();
    opts.addresses = vec![format!("mqtt://{}", server.addr)];
    tune(&mut opts);
    MqttBroker::new(opts).expect("options")
}

/// A raw MQTT 3.1.1 client, as a go-micro peer (paho) is: incoming publishes go to the
/// receiver.
async fn raw_client(
    server: &Proc,
    filters: &[&str],
) -> (AsyncClient, mpsc::UnboundedReceiver<rumqttc::Publish>) {
    let id = format!("raw-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut opts = MqttOptions::new(id, "127.0.0.1", server.addr.port());
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subacked_tx, mut subacked) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Incoming::Publish(p))) => {
                    let _ = tx.send(p);
                }
                Ok(MqttEvent::Incoming(Incoming::SubAck(_))) => {
                    let _ = subacked_tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    for f in filters {
        client
            .subscribe(*f, QoS::AtLeastOnce)
            .await
            .expect("raw subscribe");
        tokio::time::timeout(WAIT, subacked.recv())
            .await
            .expect("raw suback")
            .expect("raw loop");
    }
    (client, rx)
}

async fn sink(
    b: &MqttBroker,
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
    let server = Proc::mosquitto();
    let b = broker_for(&server, |_| {});
    let (_sub, mut rx) = sink(&b, "go.micro.srv.message", SubscribeOptions::default()).await;
    let (raw, _) = raw_client(&server, &[]).await;
    raw.publish(
        "go.micro.srv.message",
        QoS::AtLeastOnce,
        false,
        GO_ENVELOPE.as_bytes(),
    )
    .await
    .expect("raw publish");
    let ev = recv(&mut rx, "go-micro message").await;
    assert_eq!(ev.topic(), "go.micro.srv.message");
    assert_eq!(ev.message().header["X-From"], "go");
    assert_eq!(
        ev.message().header["Micro-ID"],
        "6f1c1a9e-3b55-4bd1-9a56-4f0c0e6f3b8a"
    );
    assert_eq!(ev.message().body.as_ref(), br#"{"say":"hello from go"}"#);
    assert_eq!(
        ev.message().id(),
        Some("6f1c1a9e-3b55-4bd1-9a56-4f0c0e6f3b8a")
    );
    let typed = rmicro::Event::<Say>::decode(ev).expect("typed decode");
    assert_eq!(typed.payload().say, "hello from go");
    // go-micro's id header (`Micro-ID`) is the event's id.
    assert_eq!(typed.id(), Some("6f1c1a9e-3b55-4bd1-9a56-4f0c0e6f3b8a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_rmicro_publishes_is_a_go_micro_envelope_at_qos1() {
    let server = Proc::mosquitto();
    let (_raw, mut rx) = raw_client(&server, &["go.micro.srv.message"]).await;
    let b = broker_for(&server, |_| {});
    let msg = Message::new(&br#"{"say":"hello from rust"}"#[..])
        .with_header("Content-Type", "application/json")
        .with_header("X-From", "rust");
    b.publish("go.micro.srv.message", msg, PublishOptions::default())
        .await
        .expect("publish");
    let p = recv(&mut rx, "rmicro message").await;
    assert_eq!(p.topic, "go.micro.srv.message", "topic verbatim");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert!(!p.retain);
    // Decode as Go's encoding/json would: exactly two fields, a string map and base64.
    let v: serde_json::Value = serde_json::from_slice(&p.payload).expect("json");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["Body", "Header"]);
    let header = obj["Header"].as_object().expect("header map");
    assert!(header.values().all(serde_json::Value::is_string));
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
async fn a_queue_is_a_shared_subscription_other_clients_can_join() {
    let server = Proc::mosquitto();
    let t = "jobs.resize";
    let worker = broker_for(&server, |_| {});
    let (_sub, mut ours) = sink(&worker, t, SubscribeOptions::queue("workers")).await;
    // A foreign member of the same group, and a broadcast listener.
    let (_raw, mut theirs) = raw_client(&server, &["$share/workers/jobs.resize"]).await;
    let (_all, mut all) = raw_client(&server, &[t]).await;
    let publisher = broker_for(&server, |_| {});
    const N: usize = 40;
    for i in 0..N {
        publisher
            .publish(t, Message::new(i.to_string()), PublishOptions::default())
            .await
            .expect("publish");
    }
    let broadcast = count_for(&mut all, Duration::from_millis(700)).await;
    let a = count_for(&mut ours, Duration::from_millis(300)).await;
    let mut b = 0;
    while let Ok(p) = theirs.try_recv() {
        assert_eq!(p.topic, t, "shared deliveries carry the plain topic");
        b += 1;
    }
    println!("queue split over {N} messages: rmicro {a}, foreign member {b}");
    assert_eq!(broadcast, N);
    assert_eq!(a + b, N, "each message once to the group");
    assert!(
        a > 0 && b > 0,
        "both members take messages (mosquitto round-robins)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_an_error_naming_it() {
    let mut server = Proc::mosquitto();
    server.kill();
    let b = broker_for(&server, |o| o.connect_timeout = Duration::from_secs(1));
    let err = b.connect().await.expect_err("nothing listens");
    println!("connect error: {err}");
    assert_eq!(err.code, 503);
    assert!(
        err.detail
            .starts_with("mqtt: not connected to `tcp://127.0.0.1:"),
        "{err}"
    );
    assert!(err.detail.contains("refused"), "{err}");
    let err = b
        .publish("t", Message::new("x"), PublishOptions::default())
        .await
        .expect_err("publish while down");
    assert_eq!(err.code, 503, "{err}");
    // The broker keeps trying: once the server is up, the same broker works.
    tokio::task::block_in_place(|| server.spawn());
    let up = Instant::now();
    let (_raw, mut rx) = raw_client(&server, &["t"]).await;
    // Each attempt waits 1 s for the connection; the broker's backoff may be longer.
    while let Err(err) = b
        .publish("t", Message::new("late"), PublishOptions::default())
        .await
    {
        assert!(
            up.elapsed() < Duration::from_secs(15),
            "never reconnected: {err}"
        );
    }
    println!(
        "published {:?} after the server listened again",
        up.elapsed()
    );
    assert_eq!(recv(&mut rx, "late").await.topic, "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_during_an_outage_waits_for_the_reconnect() {
    let mut server = Proc::mosquitto();
    let b = broker_for(&server, |o| o.connect_timeout = Duration::from_secs(20));
    b.connect().await.expect("connect");
    tokio::task::block_in_place(|| server.kill());
    // Once the broker has noticed (a publish racing the loss gets an error instead).
    let deadline = Instant::now() + WAIT;
    while b.is_connected() {
        assert!(Instant::now() < deadline, "the loss went unnoticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let publisher = {
        let b = b.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = b
                .publish("outage", Message::new("queued"), PublishOptions::default())
                .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !publisher.is_finished(),
        "publish waits while the server is down"
    );
    tokio::task::block_in_place(|| server.spawn());
    let up = Instant::now();
    let (r, waited) = tokio::time::timeout(Duration::from_secs(20), publisher)
        .await
        .expect("publish finishes after the server is back")
        .expect("task");
    r.expect("the waiting publish succeeds once reconnected");
    println!(
        "publish waited {waited:?} in all; it completed {:?} after the server listened again",
        up.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_after_mosquitto_restarts() {
    let mut server = Proc::mosquitto();
    let sub_broker = broker_for(&server, |_| {});
    let (_b, mut broadcast) = sink(&sub_broker, "restart.b", SubscribeOptions::default()).await;
    let (_q, mut queued) = sink(&sub_broker, "restart.q", SubscribeOptions::queue("g")).await;
    let (raw, _) = raw_client(&server, &[]).await;
    let envelope = |body: &str| Message::new(body.to_owned()).to_envelope();
    raw.publish("restart.b", QoS::AtLeastOnce, false, envelope("before"))
        .await
        .expect("raw publish");
    assert_eq!(
        recv(&mut broadcast, "before").await.message().body,
        "before"
    );

    tokio::task::block_in_place(|| server.restart());
    let up = Instant::now();
    // Publish (as a foreign peer) until both subscriptions deliver again.
    let (mut got_b, mut got_q) = (None, None);
    while got_b.is_none() || got_q.is_none() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no delivery 30 s after the restart"
        );
        raw.publish("restart.b", QoS::AtLeastOnce, false, envelope("after"))
            .await
            .expect("raw publish");
        raw.publish("restart.q", QoS::AtLeastOnce, false, envelope("after"))
            .await
            .expect("raw publish");
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
        "after the restart: broadcast delivered again within {:?}, queue within {:?}",
        got_b.unwrap_or_default(),
        got_q.unwrap_or_default()
    );
    assert!(sub_broker.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_does_not_stall_the_connection() {
    let server = Proc::mosquitto();
    let b = broker_for(&server, |o| o.subscription_buffer = 2);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = b
        .subscribe(
            "slow",
            broker::handler({
                let gate = Arc::clone(&gate);
                move |ev| {
                    let (gate, tx) = (Arc::clone(&gate), tx.clone());
                    async move {
                        gate.acquire().await.map(|p| p.forget()).ok();
                        let _ = tx.send(ev);
                        Ok(())
                    }
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    // The same broker publishes to itself: every publish still gets its PUBACK although the
    // handler is stuck, because the connection task never waits for handlers.
    for i in 0..10 {
        tokio::time::timeout(
            WAIT,
            b.publish(
                "slow",
                Message::new(i.to_string()),
                PublishOptions::default(),
            ),
        )
        .await
        .expect("publish is not stalled by the handler")
        .expect("publish");
    }
    let deadline = Instant::now() + WAIT;
    while b.dropped_messages() < 7 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One in the handler, two buffered, seven dropped (eight if all ten arrived before the
    // handler took the first).
    let dropped = b.dropped_messages();
    assert!((7..=8).contains(&dropped), "dropped {dropped}");
    gate.add_permits(100);
    let delivered = count_for(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(delivered as u64 + dropped, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_an_envelope_is_dropped_and_counted() {
    let server = Proc::mosquitto();
    let b = broker_for(&server, |_| {});
    let (_sub, mut rx) = sink(&b, "mixed", SubscribeOptions::default()).await;
    let (raw, _) = raw_client(&server, &[]).await;
    raw.publish("mixed", QoS::AtLeastOnce, false, &b"not json"[..])
        .await
        .expect("raw");
    raw.publish(
        "mixed",
        QoS::AtLeastOnce,
        false,
        Message::new("ok").to_envelope(),
    )
    .await
    .expect("raw");
    assert_eq!(recv(&mut rx, "valid message").await.message().body, "ok");
    assert_eq!(b.malformed_messages(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_wildcard_is_refused() {
    let server = Proc::mosquitto();
    let b = broker_for(&server, |_| {});
    let err = b
        .publish("a/+", Message::new("x"), PublishOptions::default())
        .await
        .expect_err("wildcards are for filters");
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("`a/+`"), "{err}");
}

/// A loopback TCP proxy to mosquitto that can swallow what the server sends (PUBACKs) and
/// cut every connection, to lose a connection at a chosen moment.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    blackhole: Arc<std::sync::atomic::AtomicBool>,
    pipes: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    async fn start(upstream: std::net::SocketAddr) -> CuttingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let blackhole = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pipes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (blackhole, pipes) = (Arc::clone(&blackhole), Arc::clone(&pipes));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let blackhole = Arc::clone(&blackhole);
                    let down = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if !blackhole.load(Ordering::SeqCst)
                                && cw.write_all(&buf[..n]).await.is_err()
                            {
                                break;
                            }
                        }
                    });
                    let mut pipes = pipes.lock().unwrap_or_else(|e| e.into_inner());
                    pipes.push(up.abort_handle());
                    pipes.push(down.abort_handle());
                }
            }
        });
        CuttingProxy {
            addr,
            blackhole,
            pipes,
            accept,
        }
    }

    fn cut(&self) {
        for pipe in self
            .pipes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            pipe.abort();
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_unacknowledged_when_the_connection_drops_is_an_error() {
    use std::sync::atomic::Ordering;
    let server = Proc::mosquitto();
    let proxy = CuttingProxy::start(server.addr).await;
    let (_raw, mut seen) = raw_client(&server, &["cut"]).await;
    let mut opts = MqttBrokerOptions::default();
    opts.addresses = vec![proxy.addr.to_string()];
    let b = MqttBroker::new(opts).expect("options");
    b.connect().await.expect("connect through the proxy");

    // The server gets the message and acknowledges it, but the PUBACK never arrives.
    proxy.blackhole.store(true, Ordering::SeqCst);
    let publishing = {
        let b = b.clone();
        tokio::spawn(async move {
            b.publish("cut", Message::new("in flight"), PublishOptions::default())
                .await
        })
    };
    let arrived = recv(&mut seen, "the in-flight message at the server").await;
    assert_eq!(arrived.topic, "cut");
    assert!(!publishing.is_finished(), "no PUBACK, no Ok");
    proxy.cut();
    let err = tokio::time::timeout(WAIT, publishing)
        .await
        .expect("publish ends when the connection drops")
        .expect("task")
        .expect_err("an unacknowledged publish is an error, not a silent loss");
    println!("{err}");
    assert_eq!(err.code, 503);
    assert!(
        err.detail
            .contains("dropped before the server acknowledged the message")
            && err.detail.contains("may or may not"),
        "{err}"
    );

    // Not resent after the reconnect: the raw subscriber saw it once.
    proxy.blackhole.store(false, Ordering::SeqCst);
    b.publish("cut", Message::new("after"), PublishOptions::default())
        .await
        .expect("publish after reconnecting");
    let next = recv(&mut seen, "after").await;
    let body = Message::from_envelope(&next.payload)
        .expect("envelope")
        .body;
    assert_eq!(body, "after", "the failed message was not sent again");
}
