//! The kafka broker against a real Kafka 4.4, where the suite does not reach: the record
//! layout go-micro's plugin uses (read and written with a raw client), a queue group that
//! goes on from its committed offset, the retry policy for a failing handler, a record that
//! is not go-micro's envelope, and a message over the size limits.
#![cfg(feature = "kafka")]

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
use rmicro::broker::{Broker as _, Message, PublishOptions, SubscribeOptions};
use rmicro_conformance::broker::{Failure, WAIT, body, poisoned_sink, recv, sink, topic};
use rmicro_conformance::servers::kafka::{Kafka, MAX_MESSAGE_BYTES};

async fn broker(kafka: &Kafka) -> KafkaBroker {
    let mut opts = KafkaOptions::with_addresses(&kafka.address());
    opts.max_message_bytes = MAX_MESSAGE_BYTES;
    opts.retry_delay = Duration::from_millis(50);
    let b = KafkaBroker::new(opts).expect("options");
    b.connect().await.expect("kafka answers");
    b
}

fn raw_producer(kafka: &Kafka) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka.address())
        .create()
        .expect("raw producer")
}

async fn raw_send(p: &FutureProducer, t: &str, value: &[u8], headers: Option<OwnedHeaders>) {
    let mut record = FutureRecord::<(), [u8]>::to(t).payload(value);
    if let Some(h) = headers {
        record = record.headers(h);
    }
    p.send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("raw send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_go_micros_envelope_without_key_and_raw_records_are_read() {
    let kafka = Kafka::start();
    let b = broker(&kafka).await;
    let t = topic("wire");
    // Read what rmicro writes with a raw consumer from the beginning.
    let raw: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.address())
        .set("group.id", "raw-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("raw consumer");
    b.publish(
        &t,
        Message::new(r#"{"name":"davie"}"#).with_header("Content-Type", "application/json"),
        PublishOptions::default(),
    )
    .await
    .expect("publish");
    raw.subscribe(&[&t]).expect("raw subscribe");
    let record = tokio::time::timeout(WAIT, raw.recv())
        .await
        .expect("a record")
        .expect("no error");
    assert!(record.key().is_none(), "go-micro's records have no key");
    assert!(record.headers().is_none(), "nor Kafka headers");
    let envelope: serde_json::Value =
        serde_json::from_slice(record.payload().expect("a value")).expect("JSON");
    assert_eq!(envelope["Body"], "eyJuYW1lIjoiZGF2aWUifQ==");
    assert_eq!(envelope["Header"]["Content-Type"], "application/json");
    assert_eq!(envelope["Header"]["Micro-Topic"], t.as_str());
    assert_eq!(
        envelope["Header"]["Micro-ID"].as_str().map(str::len),
        Some(36)
    );
    // A go-micro publisher's record, with a Kafka header from elsewhere, is read; the Kafka
    // header wins, as in go-micro.
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    let go = br#"{"Header":{"Micro-ID":"go-1","x":"envelope"},"Body":"aGk="}"#;
    let headers = OwnedHeaders::new().insert(Header {
        key: "x",
        value: Some("kafka"),
    });
    raw_send(&raw_producer(&kafka), &t, go, Some(headers)).await;
    let ev = recv(&mut rx, "the raw record").await;
    assert_eq!(ev.message().id(), Some("go-1"));
    assert_eq!(ev.message().header["x"], "kafka");
    assert_eq!(body(&ev), "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_goes_on_from_its_committed_offset() {
    let kafka = Kafka::start();
    let b = broker(&kafka).await;
    let t = topic("away");
    let (sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    b.publish(&t, Message::new("first"), PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(body(&recv(&mut rx, "first").await), "first");
    sub.unsubscribe().await.expect("unsubscribe");
    // Unsubscribing commits and leaves asynchronously; give the group a moment to be empty.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..5 {
        b.publish(&t, Message::new(format!("{i}")), PublishOptions::default())
            .await
            .expect("publish while the group is away");
    }
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    for i in 0..5 {
        assert_eq!(body(&recv(&mut rx, "kept").await), i.to_string());
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .is_err(),
        "`first` is not delivered again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_tried_twice_then_skipped_and_the_next_flows() {
    let kafka = Kafka::start();
    let b = broker(&kafka).await;
    let t = topic("fail");
    let (_sub, calls, mut rx) =
        poisoned_sink(&b, &t, SubscribeOptions::queue("q"), Failure::Panic).await;
    for m in ["poison", "fine"] {
        b.publish(&t, Message::new(m), PublishOptions::default())
            .await
            .expect("publish");
    }
    assert_eq!(body(&recv(&mut rx, "after the poison").await), "fine");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "tried exactly twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_an_envelope_is_skipped_and_counted() {
    let kafka = Kafka::start();
    let b = broker(&kafka).await;
    let t = topic("malformed");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("q")).await;
    let raw = raw_producer(&kafka);
    for value in [
        &b"not json"[..],
        br#"{"Header":{"a":1}}"#,
        br#"{"Body":"%%%"}"#,
    ] {
        raw_send(&raw, &t, value, None).await;
    }
    b.publish(&t, Message::new("valid"), PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(body(&recv(&mut rx, "the valid one").await), "valid");
    assert_eq!(b.malformed_messages(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limits_is_a_clear_error() {
    let kafka = Kafka::start();
    let b = broker(&kafka).await;
    let t = topic("big");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    let err = b
        .publish(
            &t,
            Message::new(vec![7u8; 4 << 20]),
            PublishOptions::default(),
        )
        .await
        .expect_err("5.6 MB of envelope is over 4 MiB");
    assert_eq!(err.code, 400, "{err}");
    assert!(err.detail.contains("max_message_bytes = 4194304"), "{err}");
    b.publish(&t, Message::new("small"), PublishOptions::default())
        .await
        .expect("the broker still publishes");
    assert_eq!(body(&recv(&mut rx, "after the refusal").await), "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sasl_plain_and_a_wrong_password_is_refused() {
    let kafka = Kafka::start_sasl("rmicro", "s3cret");
    let port = kafka.addr().port();
    let mut opts = KafkaOptions::with_addresses(&format!("kafka://rmicro:s3cret@127.0.0.1:{port}"));
    opts.retry_delay = Duration::from_millis(50);
    let b = KafkaBroker::new(opts).expect("options");
    assert_eq!(b.address(), format!("kafka://rmicro:***@127.0.0.1:{port}"));
    b.connect().await.expect("logs in");
    let t = topic("sasl");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    b.publish(&t, Message::new("authenticated"), PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(body(&recv(&mut rx, "over SASL").await), "authenticated");

    let mut opts = KafkaOptions::with_addresses(&format!("kafka://rmicro:wrong@127.0.0.1:{port}"));
    opts.publish_timeout = Duration::from_secs(3);
    let bad = KafkaBroker::new(opts).expect("options");
    let err = bad.connect().await.expect_err("a wrong password");
    assert_eq!(err.code, 503, "{err}");
    assert!(
        !err.detail.contains("wrong"),
        "the password is not printed: {err}"
    );
}
