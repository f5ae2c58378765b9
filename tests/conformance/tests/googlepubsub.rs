//! The googlepubsub broker against a real Pub/Sub server (the emulator, or Google's pstest),
//! where the suite does not reach: go-plugins' message layout (raw data, headers as
//! attributes) read and written by a raw gRPC client, the default unordered mode, a queue's
//! subscription that keeps messages while its subscribers are away, the retry policy for a
//! failing handler, and a message over the server's size limit.
#![cfg(feature = "googlepubsub")]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
use rmicro::broker::{Broker as _, Message, PublishOptions, SubscribeOptions};
use rmicro_conformance::broker::{Failure, WAIT, body, poisoned_sink, recv, sink, topic};
use rmicro_conformance::pubsub_raw::{PubsubMessage, RawPubSub};
use rmicro_conformance::servers::pubsub::PubSub;

async fn broker(server: &PubSub) -> GooglePubSubBroker {
    let b =
        GooglePubSubBroker::new(GooglePubSubOptions::emulator(&server.host())).expect("options");
    b.connect().await.expect("pubsub answers");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_raw_data_with_headers_as_attributes_both_ways() {
    let server = PubSub::start();
    let b = broker(&server).await;
    let t = topic("wire");
    let raw = RawPubSub::connect(&server.host())
        .await
        .expect("raw client");
    raw.create_topic(&t).await.expect("raw topic");
    raw.create_subscription("raw-reader", &t)
        .await
        .expect("raw subscription");
    b.publish(
        &t,
        Message::new(r#"{"name":"davie"}"#).with_header("Content-Type", "application/json"),
        PublishOptions::default(),
    )
    .await
    .expect("publish");
    let pulled = raw.pull("raw-reader", 10).await.expect("pull");
    let m = pulled.first().expect("a message");
    assert_eq!(m.data, br#"{"name":"davie"}"#, "the body, raw: no envelope");
    assert_eq!(m.attributes["Content-Type"], "application/json");
    assert_eq!(m.attributes["Micro-Topic"], t);
    assert_eq!(m.attributes["Micro-ID"].len(), 36);
    // What a go-micro publisher sends is read.
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    raw.publish(
        &t,
        PubsubMessage {
            data: b"hi".to_vec(),
            attributes: HashMap::from([("Micro-ID".to_owned(), "go-1".to_owned())]),
        },
    )
    .await
    .expect("raw publish");
    let ev = recv(&mut rx, "the raw message").await;
    assert_eq!(ev.message().id(), Some("go-1"));
    assert_eq!(body(&ev), "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_by_default_and_a_queue_keeps_messages_while_away() {
    let server = PubSub::start();
    let b = broker(&server).await;
    let t = topic("away");
    let (sub, _) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    sub.unsubscribe().await.expect("unsubscribe");
    for i in 0..20 {
        b.publish(&t, Message::new(format!("{i}")), PublishOptions::default())
            .await
            .expect("publish while away");
    }
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    let mut got: Vec<usize> = Vec::new();
    for _ in 0..20 {
        got.push(body(&recv(&mut rx, "kept").await).parse().expect("n"));
    }
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_tried_twice_then_dropped_and_the_next_flows() {
    let server = PubSub::start();
    let b = broker(&server).await;
    let t = topic("fail");
    let (_sub, calls, mut rx) =
        poisoned_sink(&b, &t, SubscribeOptions::queue("q-fail"), Failure::Err).await;
    for m in ["poison", "fine"] {
        b.publish(&t, Message::new(m), PublishOptions::default())
            .await
            .expect("publish");
    }
    assert_eq!(body(&recv(&mut rx, "the next message").await), "fine");
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past its ack deadline (10 s) too: it was acked, not left to come back.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "tried exactly twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_a_clear_error() {
    let server = PubSub::start();
    let b = broker(&server).await;
    let t = topic("big");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    let err = b
        .publish(
            &t,
            Message::new(vec![7u8; 12 << 20]),
            PublishOptions::default(),
        )
        .await
        .expect_err("12 MiB is over Pub/Sub's 10 MB");
    assert_eq!(err.code, 400, "{err}");
    assert!(
        err.detail.contains("Pub/Sub takes at most 10000000"),
        "{err}"
    );
    b.publish(&t, Message::new("small"), PublishOptions::default())
        .await
        .expect("the broker still publishes");
    assert_eq!(body(&recv(&mut rx, "after the refusal").await), "small");
}
