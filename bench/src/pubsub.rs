//! Pub/sub: messages/s and publish->handler latency, rmicro's broker against the raw client
//! library of each broker doing the same work (publish the encoded student, receive it,
//! decode it) against the same server.
//!
//! Each round has two phases. Throughput: [`PUBLISHERS`] tasks publish for the round's length
//! while the subscriber counts; the rate is messages received over the time from the first
//! publish to the last receipt (messages that never arrive count as errors). Latency: one
//! message at a time, the next published once the previous one reached the handler; the
//! handler computes now minus the send time carried in the message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use rmicro::broker::{self, Broker as _, Message, PublishOptions, SharedBroker, SubscribeOptions};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::student::Student;
use crate::{Config, load, progress, progress_ratio, stats::Row, stats::Sample};

/// Concurrent publishers in the throughput phase.
pub const PUBLISHERS: usize = 8;

type PublishFn = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What a handler reports: the send time carried by the message and the time it reached
/// the handler, both in nanoseconds since [`epoch`].
pub type Report = (u64, u64);

/// One side of a comparison: how to publish, and the handler's reports.
pub struct Side {
    publish: PublishFn,
    rx: UnboundedReceiver<Report>,
    /// Whatever must live as long as the side (subscribers, tasks, connections).
    keep: Vec<Box<dyn std::any::Any + Send>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Side {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.keep.clear();
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// The message every side publishes: the seed's student as JSON, the send time in `phone`.
pub fn payload() -> Bytes {
    let mut s = Student::davie();
    s.phone = now_ns().to_string();
    Bytes::from(serde_json::to_vec(&s).unwrap_or_default())
}

/// What every handler does: decode the student, report the latency. A raw side sending
/// go-micro's envelope ([`enveloped`]) hands the envelope here, which is opened first (the
/// student's JSON starts `{"name"`, never `{"Header"`).
pub fn handle(body: &[u8], tx: &UnboundedSender<Report>) {
    if body.starts_with(envelope::PREFIX) {
        if let Some(inner) = envelope::open(body) {
            report(&inner, tx);
        }
        return;
    }
    report(body, tx);
}

fn report(body: &[u8], tx: &UnboundedSender<Report>) {
    if let Ok(s) = serde_json::from_slice::<Student>(body)
        && let Ok(sent) = s.phone.parse::<u64>()
    {
        let _ = tx.send((sent, now_ns()));
    }
}

/// One round of one side: the throughput phase for `len`, then `latency_msgs` one at a time.
pub async fn round(side: &mut Side, len: Duration, latency_msgs: usize) -> Sample {
    while side.rx.try_recv().is_ok() {}
    let start = Instant::now();
    let deadline = start + len;
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut pubs = Vec::new();
    for _ in 0..PUBLISHERS {
        let publish = Arc::clone(&side.publish);
        let sent = Arc::clone(&sent);
        let failed = Arc::clone(&failed);
        pubs.push(tokio::spawn(async move {
            while Instant::now() < deadline && failed.load(Ordering::Relaxed) < 100 {
                match publish(payload()).await {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            progress(format!("  publish failed: {e}"));
                        }
                    }
                }
            }
        }));
    }
    {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            for p in pubs {
                let _ = p.await;
            }
            done.store(true, Ordering::Release);
        });
    }
    let mut received = 0u64;
    let mut last = start;
    loop {
        if done.load(Ordering::Acquire) && received >= sent.load(Ordering::Relaxed) {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(2), side.rx.recv()).await {
            Ok(Some(_)) => {
                received += 1;
                last = Instant::now();
            }
            Ok(None) => break,
            Err(_) if done.load(Ordering::Acquire) => break,
            Err(_) => {}
        }
        if Instant::now() > deadline + Duration::from_secs(10) {
            break;
        }
    }
    let lost = sent.load(Ordering::Relaxed).saturating_sub(received);
    let mut sample = Sample {
        count: received,
        elapsed: last - start,
        latencies: Vec::with_capacity(latency_msgs),
        errors: lost + failed.load(Ordering::Relaxed),
    };
    while side.rx.try_recv().is_ok() {}
    for _ in 0..latency_msgs {
        let mine = now_ns();
        let body = payload();
        if let Err(e) = (side.publish)(body).await {
            if sample.errors == 0 {
                progress(format!("  publish failed: {e}"));
            }
            sample.errors += 1;
            continue;
        }
        // Late messages of the throughput phase are skipped: only this one is timed.
        let wait = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                got = side.rx.recv() => match got {
                    Some((sent, at)) if sent >= mine => {
                        sample.latencies.push(at.saturating_sub(sent));
                        break;
                    }
                    Some(_) => {}
                    None => {
                        sample.errors += 1;
                        break;
                    }
                },
                () = &mut wait => {
                    sample.errors += 1;
                    break;
                }
            }
        }
    }
    sample
}

/// rmicro's side on `broker`: subscribe to `topic`, publish through `Broker::publish`.
pub async fn rmicro_side(broker: SharedBroker, topic: &str) -> Result<Side, String> {
    broker.connect().await.map_err(|e| e.to_string())?;
    let (tx, rx) = unbounded_channel();
    let sub = broker
        .subscribe(
            topic,
            broker::handler(move |ev: broker::Event| {
                handle(&ev.message().body, &tx);
                async { Ok(()) }
            }),
            SubscribeOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let b = Arc::clone(&broker);
    let topic: Arc<str> = Arc::from(topic);
    let publish: PublishFn = Arc::new(move |body| {
        let b = Arc::clone(&b);
        let topic = Arc::clone(&topic);
        Box::pin(async move {
            b.publish(&topic, Message::new(body), PublishOptions::default())
                .await
                .map_err(|e| e.to_string())
        })
    });
    Ok(Side {
        publish,
        rx,
        keep: vec![Box::new(sub), Box::new(broker)],
        tasks: Vec::new(),
    })
}

mod envelope {
    //! go-micro's envelope written by the simplest code a user would write: serde_json over a
    //! map and a base64 string, the headers rmicro stamps (`Micro-Topic`, a `Micro-ID` from
    //! the thread's RNG as rmicro makes it).

    use std::collections::HashMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// How every envelope starts (serde keeps the fields' order).
    pub const PREFIX: &[u8] = b"{\"Header\"";

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "Header")]
        header: HashMap<String, String>,
        #[serde(rename = "Body")]
        body: String,
    }

    /// `body` in an envelope for `topic`.
    pub fn seal(topic: &str, body: &[u8]) -> Vec<u8> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let envelope = Envelope {
            header: HashMap::from([
                ("Micro-Topic".to_owned(), topic.to_owned()),
                ("Micro-ID".to_owned(), id.to_string()),
            ]),
            body: STANDARD.encode(body),
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// The body of an envelope.
    pub fn open(bytes: &[u8]) -> Option<Vec<u8>> {
        let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
        STANDARD.decode(envelope.body).ok()
    }
}

/// A raw side that wraps every message in go-micro's envelope: the wire format rmicro speaks
/// on that broker, without rmicro (the envelope ceiling).
pub fn enveloped(side: Result<Side, String>, topic: &str) -> Result<Side, String> {
    let mut side = side?;
    let inner = Arc::clone(&side.publish);
    let topic: Arc<str> = Arc::from(topic);
    side.publish = Arc::new(move |body: Bytes| {
        let sealed = Bytes::from(envelope::seal(&topic, &body));
        inner(sealed)
    });
    Ok(side)
}

/// Waits until a side delivers (subscriptions may take a moment to take effect).
pub async fn ready(side: &mut Side, what: &str) -> Result<(), String> {
    for _ in 0..50 {
        (side.publish)(payload()).await?;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), side.rx.recv()).await
        {
            while side.rx.try_recv().is_ok() {}
            return Ok(());
        }
    }
    Err(format!("{what}: no message arrived within 10 s"))
}

mod raw {
    //! The raw baselines.

    use super::*;

    pub fn memory() -> Side {
        let (tx, rx) = unbounded_channel();
        let (ptx, mut prx) = tokio::sync::mpsc::channel::<Bytes>(1024);
        let task = tokio::spawn(async move {
            while let Some(b) = prx.recv().await {
                handle(&b, &tx);
            }
        });
        let publish: PublishFn = Arc::new(move |body| {
            let ptx = ptx.clone();
            Box::pin(async move { ptx.send(body).await.map_err(|e| e.to_string()) })
        });
        Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        }
    }

    pub async fn nats(url: &str, topic: &str) -> Result<Side, String> {
        let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
        let mut sub = client
            .subscribe(topic.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                handle(&m.payload, &tx);
            }
        });
        let topic = topic.to_owned();
        let c = client.clone();
        let publish: PublishFn = Arc::new(move |body| {
            let c = c.clone();
            let topic = topic.clone();
            Box::pin(async move {
                c.publish(topic, body).await.map_err(|e| e.to_string())?;
                // rmicro flushes each publish by default (Ok = the server has it): so here.
                c.flush().await.map_err(|e| e.to_string())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: vec![Box::new(client)],
            tasks: vec![task],
        })
    }

    pub async fn mqtt(addr: std::net::SocketAddr, topic: &str) -> Result<Side, String> {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let id = format!("bench-{topic}");
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut el) = AsyncClient::new(opts, 1024);
        // The same socket option as rmicro's MQTT broker (and Go's default).
        let mut network = el.network_options();
        network.set_tcp_nodelay(true);
        el.set_network_options(network);
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => handle(&p.payload, &tx),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        let topic = topic.to_owned();
        let c = client.clone();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let c = c.clone();
            let topic = topic.clone();
            Box::pin(async move {
                c.publish(topic, QoS::AtLeastOnce, false, body.to_vec())
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: vec![Box::new(client)],
            tasks: vec![task],
        })
    }

    pub async fn redis(url: &str, topic: &str) -> Result<Side, String> {
        // The same socket option as rmicro's Redis broker.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| e.to_string())?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub.subscribe(topic).await.map_err(|e| e.to_string())?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(m) = stream.next().await {
                handle(m.get_payload_bytes(), &tx);
            }
        });
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let topic = topic.to_owned();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let mut conn = conn.clone();
            let topic = topic.clone();
            Box::pin(async move {
                redis::cmd("PUBLISH")
                    .arg(&topic)
                    .arg(&body[..])
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        })
    }

    pub async fn rabbitmq(url: &str, topic: &str) -> Result<Side, String> {
        use lapin::options::{
            BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
            ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
        };
        use lapin::types::FieldTable;
        use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
        let e = |e: lapin::Error| e.to_string();
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(e)?;
        let exchange = "bench-raw";
        let pch = conn.create_channel().await.map_err(e)?;
        pch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(e)?;
        pch.exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
        let cch = conn.create_channel().await.map_err(e)?;
        cch.basic_qos(64, BasicQosOptions::default())
            .await
            .map_err(e)?;
        let q = cch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(e)?;
        cch.queue_bind(
            q.name().clone(),
            exchange.into(),
            topic.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
        let mut consumer = cch
            .basic_consume(
                q.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(e)?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                handle(&d.data, &tx);
                let _ = d.acker.ack(BasicAckOptions::default()).await;
            }
        });
        let topic = topic.to_owned();
        let ch = pch.clone();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let ch = ch.clone();
            let topic = topic.clone();
            Box::pin(async move {
                ch.basic_publish(
                    exchange.into(),
                    topic.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await
                .map_err(e)?
                .await
                .map_err(e)
                .map(|_| ())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: vec![Box::new(conn), Box::new(pch), Box::new(cch)],
            tasks: vec![task],
        })
    }

    /// nsqd's TCP protocol by hand (there is no well-kept Rust client): `PUB` and wait for
    /// `OK` (as rmicro's broker does), a consumer with `IDENTIFY` (no output buffering),
    /// `SUB`, `RDY 32` and `FIN` per message.
    pub async fn nsq(address: &str, topic: &str) -> Result<Side, String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
        use tokio::net::TcpStream;
        async fn frame(
            r: &mut (impl tokio::io::AsyncRead + Unpin),
        ) -> std::io::Result<(u32, Vec<u8>)> {
            let size = r.read_u32().await? as usize;
            let kind = r.read_u32().await?;
            let mut data = vec![0u8; size.saturating_sub(4)];
            r.read_exact(&mut data).await?;
            Ok((kind, data))
        }
        let e = |e: std::io::Error| e.to_string();
        // The consumer.
        let sub = TcpStream::connect(address).await.map_err(e)?;
        sub.set_nodelay(true).map_err(e)?;
        let (r, mut w) = sub.into_split();
        let mut r = BufReader::new(r);
        // No output buffering, as rmicro's consumer asks (nsqd would hold each message up to
        // 250 ms under light traffic).
        let identify = br#"{"output_buffer_size":-1}"#;
        let mut hello = b"  V2IDENTIFY\n".to_vec();
        hello.extend_from_slice(&(identify.len() as u32).to_be_bytes());
        hello.extend_from_slice(identify);
        hello.extend_from_slice(format!("SUB {topic} raw#ephemeral\n").as_bytes());
        w.write_all(&hello).await.map_err(e)?;
        for what in ["IDENTIFY", "SUB"] {
            let (kind, data) = frame(&mut r).await.map_err(e)?;
            if kind != 0 || data != b"OK" {
                return Err(format!("{what}: {}", String::from_utf8_lossy(&data)));
            }
        }
        w.write_all(b"RDY 32\n").await.map_err(e)?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((kind, data)) = frame(&mut r).await {
                match kind {
                    2 if data.len() >= 26 => {
                        handle(&data[26..], &tx);
                        let mut fin = b"FIN ".to_vec();
                        fin.extend_from_slice(&data[10..26]);
                        fin.push(b'\n');
                        if w.write_all(&fin).await.is_err() {
                            return;
                        }
                    }
                    0 if data == b"_heartbeat_" && w.write_all(b"NOP\n").await.is_err() => {
                        return;
                    }
                    _ => {}
                }
            }
        });
        // The publisher.
        let publisher = TcpStream::connect(address).await.map_err(e)?;
        publisher.set_nodelay(true).map_err(e)?;
        let publisher = Arc::new(tokio::sync::Mutex::new(publisher));
        publisher.lock().await.write_all(b"  V2").await.map_err(e)?;
        let topic = topic.to_owned();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let publisher = Arc::clone(&publisher);
            let topic = topic.clone();
            Box::pin(async move {
                let mut p = publisher.lock().await;
                let mut out = format!("PUB {topic}\n").into_bytes();
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(&body);
                p.write_all(&out).await.map_err(e)?;
                loop {
                    let (kind, data) = frame(&mut *p).await.map_err(e)?;
                    match kind {
                        0 if data == b"OK" => return Ok(()),
                        0 => p.write_all(b"NOP\n").await.map_err(e)?,
                        _ => return Err(String::from_utf8_lossy(&data).into_owned()),
                    }
                }
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        })
    }

    /// rdkafka, as rmicro's broker uses it: a `FutureProducer` waiting for `acks=all`, and a
    /// `StreamConsumer` in a group of its own.
    pub async fn kafka(bootstrap: &str, topic: &str) -> Result<Side, String> {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{Consumer as _, StreamConsumer};
        use rdkafka::message::Message as _;
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let e = |e: rdkafka::error::KafkaError| e.to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()
            .map_err(e)?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("bench-{topic}"))
            .set("auto.offset.reset", "latest")
            .set("allow.auto.create.topics", "true")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(e)?;
        consumer.subscribe(&[topic]).map_err(e)?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(m) = consumer.recv().await {
                    handle(m.payload().unwrap_or_default(), &tx);
                }
            }
        });
        let topic = topic.to_owned();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let producer = producer.clone();
            let topic = topic.clone();
            Box::pin(async move {
                producer
                    .send(
                        FutureRecord::<(), [u8]>::to(&topic).payload(&body[..]),
                        Duration::from_secs(10),
                    )
                    .await
                    .map(drop)
                    .map_err(|(e, _)| e.to_string())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        })
    }

    /// Pub/Sub's gRPC API by hand (`rmicro_conformance::pubsub_raw`): `Publish`, and a task
    /// pulling (unary `Pull`, 100 at a time) and acknowledging.
    pub async fn googlepubsub(host: &str, topic: &str) -> Result<Side, String> {
        use rmicro_conformance::pubsub_raw::{PubsubMessage, RawPubSub};
        let raw = RawPubSub::connect(host).await?;
        raw.create_topic(topic).await.map_err(|s| s.to_string())?;
        let sub = format!("{topic}-raw");
        raw.create_subscription(&sub, topic)
            .await
            .map_err(|s| s.to_string())?;
        let (tx, rx) = unbounded_channel();
        let puller = raw.clone();
        let task = tokio::spawn(async move {
            loop {
                match puller.pull(&sub, 100).await {
                    Ok(messages) => {
                        for m in messages {
                            handle(&m.data, &tx);
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let topic = topic.to_owned();
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let raw = raw.clone();
            let topic = topic.clone();
            Box::pin(async move {
                let message = PubsubMessage {
                    data: body.to_vec(),
                    ..PubsubMessage::default()
                };
                raw.publish(&topic, message)
                    .await
                    .map_err(|s| s.to_string())
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        })
    }

    pub async fn http() -> Result<Side, String> {
        use std::convert::Infallible;

        use http_body_util::{BodyExt as _, Full};
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            if let Ok(b) = req.into_body().collect().await {
                                handle(&b.to_bytes(), &tx);
                            }
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let client = crate::rpc::raw_client();
        let uri: http::Uri = format!("http://{addr}/")
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let publish: PublishFn = Arc::new(move |body: Bytes| {
            let client = client.clone();
            let uri = uri.clone();
            Box::pin(async move {
                let req = http::Request::post(uri)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .map_err(|e| e.to_string())?;
                let resp = client.request(req).await.map_err(|e| e.to_string())?;
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                if ok { Ok(()) } else { Err("status".to_owned()) }
            })
        });
        Ok(Side {
            publish,
            rx,
            keep: Vec::new(),
            tasks: vec![task],
        })
    }
}

/// Starts a server fixture on a blocking thread; a missing program (the fixture panics)
/// becomes an error.
pub async fn fixture<T: Send + 'static>(start: fn() -> T) -> Result<T, String> {
    tokio::task::spawn_blocking(start)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "server did not start".to_owned()),
            Err(e) => e.to_string(),
        })
}

/// The MQTT server: `RMICRO_BENCH_MQTT_ADDRESS` (a `127.0.0.1:<port>` server of your own,
/// e.g. a mosquitto with other settings) or a mosquitto started here.
pub async fn mqtt_server() -> Result<
    (
        Option<rmicro_conformance::servers::mosquitto::Mosquitto>,
        std::net::SocketAddr,
    ),
    String,
> {
    if let Ok(addr) = std::env::var("RMICRO_BENCH_MQTT_ADDRESS") {
        let parsed: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| format!("RMICRO_BENCH_MQTT_ADDRESS `{addr}`: {e}"))?;
        if !parsed.ip().is_loopback() {
            return Err(format!(
                "RMICRO_BENCH_MQTT_ADDRESS `{addr}` is not on 127.0.0.1"
            ));
        }
        return Ok((None, parsed));
    }
    let server = fixture(rmicro_conformance::servers::mosquitto::Mosquitto::start).await?;
    let addr = server.addr();
    Ok((Some(server), addr))
}

async fn compare(
    cfg: &Config,
    name: &str,
    baseline: &str,
    a: Result<Side, String>,
    b: Result<Side, String>,
) -> Row {
    let (mut a, mut b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => return Row::skipped("pubsub", name, format!("rmicro side: {e}")),
        (_, Err(e)) => return Row::skipped("pubsub", name, format!("{baseline} side: {e}")),
    };
    compare_sides(cfg, name, baseline, &mut a, &mut b).await
}

/// The raw client's row, then (on a broker rmicro sends go-micro's envelope through) the
/// envelope ceiling's: the same rmicro side against the raw client sending the envelope.
async fn compare_with_ceiling(
    cfg: &Config,
    name: &str,
    baseline: &str,
    a: Result<Side, String>,
    b: Result<Side, String>,
    ceiling: Result<Side, String>,
) -> Vec<Row> {
    let mut a = match a {
        Ok(a) => a,
        Err(e) => return vec![Row::skipped("pubsub", name, format!("rmicro side: {e}"))],
    };
    let mut rows = Vec::with_capacity(2);
    for (case, baseline, side) in [
        (name.to_owned(), baseline.to_owned(), b),
        (
            format!("{name}, envelope ceiling"),
            format!("{baseline} + envelope"),
            ceiling,
        ),
    ] {
        rows.push(match side {
            Ok(mut b) => compare_sides(cfg, &case, &baseline, &mut a, &mut b).await,
            Err(e) => Row::skipped("pubsub", &case, format!("{baseline} side: {e}")),
        });
    }
    rows
}

async fn compare_sides(
    cfg: &Config,
    name: &str,
    baseline: &str,
    a: &mut Side,
    b: &mut Side,
) -> Row {
    if let Err(e) = ready(a, "rmicro").await {
        return Row::skipped("pubsub", name, e);
    }
    if let Err(e) = ready(b, baseline).await {
        return Row::skipped("pubsub", name, e);
    }
    progress(format!("pubsub {name}: rmicro vs {baseline}"));
    // The warm-up rounds time a quarter of the latency messages.
    let full = cfg.round;
    let lat = move |len: Duration| {
        if len == full {
            cfg.latency_msgs
        } else {
            cfg.latency_msgs / 4
        }
    };
    let (sa, sb) = load::alternate(
        cfg.rounds,
        cfg.warmup,
        cfg.round,
        async |len| round(a, len, lat(len)).await,
        async |len| round(b, len, lat(len)).await,
    )
    .await;
    let row = Row::compare("pubsub", name, "msg/s", sa, baseline, sb);
    progress_ratio(&row);
    row
}

/// The envelope alone, in process: rmicro's stamping, [`Message::to_envelope`] and
/// [`Message::from_envelope`] against the ceiling's serde_json and base64 code, both on the
/// student's JSON, one thread, no broker.
async fn envelope_row(cfg: &Config) -> Row {
    /// Round trips per timed batch (a batch's time over its size is one latency).
    const BATCH: u64 = 64;
    fn batches(len: Duration, one: impl Fn() -> bool) -> Sample {
        let mut sample = Sample::default();
        let start = Instant::now();
        while start.elapsed() < len {
            let t = Instant::now();
            for _ in 0..BATCH {
                if one() {
                    sample.count += 1;
                } else {
                    sample.errors += 1;
                }
            }
            sample.latencies.push(t.elapsed().as_nanos() as u64 / BATCH);
        }
        sample.elapsed = start.elapsed();
        sample
    }
    progress("pubsub envelope: rmicro vs serde_json + base64, in process");
    let body = payload();
    let topic = "go.micro.srv.message";
    let rmicro = || {
        let mut msg = Message::new(body.clone());
        broker::stamp(topic, &mut msg);
        let wire = msg.to_envelope();
        Message::from_envelope(&wire).is_ok_and(|m| m.body.len() == body.len())
    };
    let simplest = || {
        let wire = envelope::seal(topic, &body);
        envelope::open(&wire).is_some_and(|b| b.len() == body.len())
    };
    let (a, b) = load::alternate(
        cfg.rounds,
        cfg.warmup,
        cfg.round,
        async |len| batches(len, rmicro),
        async |len| batches(len, simplest),
    )
    .await;
    let row = Row::compare(
        "pubsub",
        "envelope, in process (seal and open)",
        "msg/s",
        a,
        "serde_json + base64",
        b,
    );
    progress_ratio(&row);
    row
}

/// The brokers of the pub/sub scenario, in the order they run (`envelope`: the envelope alone,
/// no broker).
pub const BROKERS: [&str; 10] = [
    "envelope",
    "memory",
    "http",
    "mqtt",
    "nats",
    "redis",
    "rabbitmq",
    "nsq",
    "kafka",
    "googlepubsub",
];

/// Runs the pub/sub rows of the brokers `wanted` accepts.
pub async fn run(cfg: &Config, wanted: &dyn Fn(&str) -> bool) -> Vec<Row> {
    use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
    use rmicro::broker::http::{HttpBroker, HttpBrokerOptions};
    use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
    use rmicro::broker::memory::MemoryBroker;
    use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
    use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
    use rmicro::broker::nsq::{NsqBroker, NsqOptions};
    use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
    use rmicro::broker::redis::{RedisBroker, RedisOptions};
    use rmicro::registry::memory::MemoryRegistry;
    use rmicro_conformance::servers;

    let mut rows = Vec::new();
    let (ta, tb, tc) = ("bench.rmicro", "bench.raw", "bench.ceiling");

    if wanted("envelope") {
        rows.push(envelope_row(cfg).await);
    }

    if wanted("memory") {
        progress("pubsub memory: setting up");
        let a = rmicro_side(Arc::new(MemoryBroker::new()), ta).await;
        rows.push(compare(cfg, "memory", "tokio mpsc", a, Ok(raw::memory())).await);
    }

    if wanted("http") {
        progress("pubsub http: setting up");
        let reg = Arc::new(MemoryRegistry::new());
        let a = rmicro_side(
            Arc::new(HttpBroker::new(reg, HttpBrokerOptions::default())),
            ta,
        )
        .await;
        let c = enveloped(raw::http().await, tc);
        rows.extend(compare_with_ceiling(cfg, "http", "hyper POST", a, raw::http().await, c).await);
    }

    if wanted("mqtt") {
        progress("pubsub mqtt: starting mosquitto");
        match mqtt_server().await {
            Ok((_server, addr)) => {
                let mut opts = MqttBrokerOptions::default();
                opts.addresses = vec![addr.to_string()];
                let a = match MqttBroker::new(opts) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::mqtt(addr, tb).await;
                let c = enveloped(raw::mqtt(addr, tc).await, tc);
                rows.extend(compare_with_ceiling(cfg, "mqtt", "rumqttc", a, b, c).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "mqtt", e)),
        }
    }

    if wanted("nats") {
        progress("pubsub nats: starting nats-server");
        match fixture(servers::nats::Nats::start).await {
            Ok(server) => {
                let mut opts = NatsBrokerOptions::default();
                opts.addresses = vec![server.url()];
                let a = match NatsBroker::new(opts) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::nats(&server.url(), tb).await;
                let c = enveloped(raw::nats(&server.url(), tc).await, tc);
                rows.extend(compare_with_ceiling(cfg, "nats", "async-nats", a, b, c).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "nats", e)),
        }
    }

    if wanted("redis") {
        progress("pubsub redis: starting redis-server");
        match fixture(servers::redis::Redis::start).await {
            Ok(server) => {
                let a = match RedisBroker::new(RedisOptions::with_address(&server.url())) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::redis(&server.url(), tb).await;
                let c = enveloped(raw::redis(&server.url(), tc).await, tc);
                rows.extend(compare_with_ceiling(cfg, "redis", "redis-rs", a, b, c).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "redis", e)),
        }
    }

    if wanted("rabbitmq") {
        progress("pubsub rabbitmq: starting rabbitmq-server (takes several seconds)");
        match fixture(servers::rabbitmq::Rabbitmq::start).await {
            Ok(server) => {
                let a = match RabbitmqBroker::new(RabbitmqOptions::with_addresses(&server.url())) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::rabbitmq(&server.url(), tb).await;
                rows.push(compare(cfg, "rabbitmq", "lapin", a, b).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "rabbitmq", e)),
        }
    }

    if wanted("nsq") {
        progress("pubsub nsq: starting nsqd");
        match fixture(servers::nsq::Nsqd::start).await {
            Ok(server) => {
                let address = server.tcp_address();
                let a = match NsqBroker::new(NsqOptions::with_addresses(&address)) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::nsq(&address, tb).await;
                let c = enveloped(raw::nsq(&address, tc).await, tc);
                rows.extend(compare_with_ceiling(cfg, "nsq", "nsqd protocol", a, b, c).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "nsq", e)),
        }
    }

    if wanted("kafka") {
        progress("pubsub kafka: starting Kafka (a JVM, several seconds)");
        match fixture(servers::kafka::Kafka::start).await {
            Ok(server) => {
                let address = server.address();
                let a = match KafkaBroker::new(KafkaOptions::with_addresses(&address)) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::kafka(&address, tb).await;
                let c = enveloped(raw::kafka(&address, tc).await, tc);
                rows.extend(compare_with_ceiling(cfg, "kafka", "rdkafka", a, b, c).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "kafka", e)),
        }
    }

    if wanted("googlepubsub") {
        progress("pubsub googlepubsub: starting a Pub/Sub emulator");
        match fixture(servers::pubsub::PubSub::start).await {
            Ok(server) => {
                let host = server.host();
                progress(format!("  on {} ({host})", server.kind()));
                let a = match GooglePubSubBroker::new(GooglePubSubOptions::emulator(&host)) {
                    Ok(b) => rmicro_side(Arc::new(b), ta).await,
                    Err(e) => Err(e.to_string()),
                };
                let b = raw::googlepubsub(&host, tb).await;
                rows.push(compare(cfg, "googlepubsub", "Pub/Sub gRPC", a, b).await);
            }
            Err(e) => rows.push(Row::skipped("pubsub", "googlepubsub", e)),
        }
    }
    rows
}
