//! The nsq broker against a real nsqd, where the suite does not reach: a queue's channel
//! keeps what is published while its consumers are away (across an nsqd restart too), the
//! redelivery policy for a failing handler, manual acknowledgement, a body that is not
//! go-micro's envelope, a message larger than nsqd takes, and AUTH refusals (TLS with AUTH
//! is in `tls.rs`).
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "nsq")]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmicro::broker::nsq::{NsqBroker, NsqOptions};
use rmicro::broker::{self, Broker as _, Event, Message, PublishOptions, SubscribeOptions};
use rmicro_conformance::broker::{Failure, WAIT, body, poisoned_sink, recv, sink, topic};
use rmicro_conformance::servers::nsq::{AuthServer, Nsqd};
use rmicro_conformance::servers::tls::Certs;
use tokio::sync::mpsc;

async fn broker(nsqd: &Nsqd, tune: impl FnOnce(&mut NsqOptions)) -> NsqBroker {
    let mut opts = NsqOptions::with_addresses(&nsqd.tcp_address());
    opts.requeue_delay = Duration::from_millis(50);
    tune(&mut opts);
    let b = NsqBroker::new(opts).expect("options");
    b.connect().await.expect("nsqd answers");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_keeps_messages_while_away_and_across_a_graceful_restart() {
    let mut nsqd = Nsqd::start();
    let b = broker(&nsqd, |_| {}).await;
    let t = topic("away");
    // The channel exists once a consumer subscribed.
    let (sub, _) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    sub.unsubscribe().await.expect("unsubscribe");
    for i in 0..5 {
        b.publish(&t, Message::new(format!("{i}")), PublishOptions::default())
            .await
            .expect("publish with nobody consuming");
    }
    let started = Instant::now();
    tokio::task::block_in_place(|| nsqd.restart());
    println!("nsqd: SIGTERM and serving again in {:?}", started.elapsed());
    // The publisher's connection died with nsqd: the publish goes over a new one (or, while
    // nsqd is not back yet, fails and says why).
    let after = Instant::now();
    let mut failures = 0;
    while let Err(e) = b
        .publish(&t, Message::new("5"), PublishOptions::default())
        .await
    {
        assert_eq!(e.code, 503, "{e}");
        failures += 1;
        assert!(failures < 50, "publishing never recovered: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "publisher: {failures} failed publish(es), publishing again {:?} after the restart",
        after.elapsed()
    );
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("workers")).await;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..6 {
        got.push(body(&recv(&mut rx, "kept message").await));
    }
    got.sort();
    assert_eq!(got, ["0", "1", "2", "3", "4", "5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_tried_twice_then_dropped_and_the_next_flows() {
    let nsqd = Nsqd::start();
    let b = broker(&nsqd, |_| {}).await;
    let t = topic("fail");
    let (_sub, calls, mut rx) =
        poisoned_sink(&b, &t, SubscribeOptions::queue("q"), Failure::Err).await;
    b.publish(&t, Message::new("poison"), PublishOptions::default())
        .await
        .expect("publish");
    b.publish(&t, Message::new("fine"), PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        body(&recv(&mut rx, "the message after the poison").await),
        "fine"
    );
    // The second try comes after requeue_delay (50 ms), as soon as nsqd scans the
    // channel's deferred messages (it looks at a new channel within 5 s); then nothing more.
    let deadline = Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = nsqd
        .get(&format!("/stats?format=json&topic={t}"))
        .expect("stats");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "tried exactly twice: {stats}"
    );
    assert!(
        stats.contains("\"depth\":0"),
        "nothing left queued: {stats}"
    );
    assert!(stats.contains("\"requeue_count\":1"), "one REQ: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_acks_finish_and_an_unacked_message_stays_in_flight() {
    let nsqd = Nsqd::start();
    let b = broker(&nsqd, |_| {}).await;
    let t = topic("manual");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut opts = SubscribeOptions::queue("q");
    opts.auto_ack = false;
    let _sub = b
        .subscribe(
            &t,
            broker::handler(move |mut ev: Event| {
                let tx = tx.clone();
                async move {
                    if ev.message().body.as_ref() == b"ack" {
                        ev.ack().await?;
                    }
                    let _ = tx.send(String::from_utf8_lossy(&ev.message().body).into_owned());
                    Ok(())
                }
            }),
            opts,
        )
        .await
        .expect("subscribe");
    for m in ["ack", "keep"] {
        b.publish(&t, Message::new(m), PublishOptions::default())
            .await
            .expect("publish");
    }
    for want in ["ack", "keep"] {
        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("delivered");
        assert_eq!(got.as_deref(), Some(want));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = nsqd
        .get(&format!("/stats?format=json&topic={t}"))
        .expect("stats");
    assert!(
        stats.contains("\"in_flight_count\":1"),
        "`keep` is unfinished: {stats}"
    );
    assert!(stats.contains("\"message_count\":2"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_an_envelope_is_dropped_and_counted() {
    let nsqd = Nsqd::start();
    let b = broker(&nsqd, |_| {}).await;
    let t = topic("malformed");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::queue("q")).await;
    for raw in [
        &b"not json"[..],
        br#"{"Header":{"a":1},"Body":""}"#,
        br#"{"Body":"%%%"}"#,
    ] {
        nsqd.post(&format!("/pub?topic={t}"), raw)
            .expect("nsqd takes it");
    }
    // go-micro's envelope, as a Go publisher writes it, is read.
    let go = br#"{"Header":{"Content-Type":"application/json","Micro-ID":"go-1"},"Body":"eyJhIjoxfQ=="}"#;
    nsqd.post(&format!("/pub?topic={t}"), go)
        .expect("nsqd takes it");
    let ev = recv(&mut rx, "the valid envelope").await;
    assert_eq!(ev.message().id(), Some("go-1"));
    assert_eq!(body(&ev), r#"{"a":1}"#);
    assert_eq!(b.malformed_messages(), 3);
    // The valid one is finished once its handler has returned: look until it is.
    let finished =
        |stats: &str| stats.contains("\"depth\":0") && stats.contains("\"in_flight_count\":0");
    let mut stats = String::new();
    for _ in 0..50 {
        stats = nsqd
            .get(&format!("/stats?format=json&topic={t}"))
            .expect("stats");
        if finished(&stats) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(finished(&stats), "all finished: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_nsqd_takes_is_a_clear_error() {
    let nsqd = Nsqd::start();
    // Unknown to the client (nsqd does not announce it): nsqd's refusal, with the hint.
    let unaware = broker(&nsqd, |_| {}).await;
    let err = unaware
        .publish(
            "big",
            Message::new(vec![7u8; 4 << 20]),
            PublishOptions::default(),
        )
        .await
        .expect_err("over nsqd's --max-msg-size");
    assert!(err.detail.contains("--max-msg-size"), "{err}");
    // Told: refused before sending, and the connection stays.
    let b = broker(&nsqd, |o| o.max_message_size = Some(4 << 20)).await;
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
    assert!(
        err.detail
            .contains("takes at most 4194304 (its --max-msg-size)"),
        "{err}"
    );
    b.publish(&t, Message::new("small"), PublishOptions::default())
        .await
        .expect("the broker still publishes");
    assert_eq!(body(&recv(&mut rx, "after the refusal").await), "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_outlive_nsqds_heartbeats() {
    let nsqd = Nsqd::start();
    // Heartbeats every second: nsqd closes a connection after two unanswered ones.
    let b = broker(&nsqd, |o| o.heartbeat = Duration::from_secs(1)).await;
    let t = topic("idle");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    b.publish(&t, Message::new("before"), PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(body(&recv(&mut rx, "before").await), "before");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The publisher asked for no heartbeats; the subscriber answered them.
    b.publish(&t, Message::new("after"), PublishOptions::default())
        .await
        .expect("an idle publisher still publishes");
    assert_eq!(body(&recv(&mut rx, "after").await), "after");
    let stats = nsqd
        .get(&format!("/stats?format=json&topic={t}"))
        .expect("stats");
    assert!(
        stats.contains("\"client_count\":1"),
        "the subscriber's connection stayed: {stats}"
    );
}

/// Against an nsqd that requires AUTH: no secret, or a wrong one, is a 401 at `connect`,
/// `publish` and `subscribe`, saying what to do (or what nsqd answered), the secret never in
/// the error; the right one publishes and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_refused_and_granted() {
    let auth = AuthServer::start("letmein");
    let nsqd = Nsqd::start_secure(None, Some(&auth));
    let t = topic("auth");
    let opened = |address: String| {
        let t = t.clone();
        async move {
            let b = NsqBroker::new(NsqOptions::with_addresses(&address)).expect("options");
            let connect = b.connect().await.err();
            let publish = b
                .publish(&t, Message::new("x"), PublishOptions::default())
                .await
                .err();
            let subscribe = b
                .subscribe(
                    &t,
                    broker::handler(|_| async { Ok(()) }),
                    SubscribeOptions::default(),
                )
                .await
                .err();
            [connect, publish, subscribe]
        }
    };
    for e in opened(nsqd.tcp_address()).await {
        let e = e.expect("refused without a secret");
        assert_eq!(e.code, 401, "{e}");
        assert!(
            e.detail.contains("requires AUTH") && e.detail.contains("the address's password"),
            "{e}"
        );
    }
    for e in opened(format!("nsq://:wrong@{}", nsqd.tcp_address())).await {
        let e = e.expect("refused with a wrong secret");
        assert_eq!(e.code, 401, "{e}");
        assert!(e.detail.contains("E_AUTH_FAILED"), "nsqd's answer: {e}");
        assert!(!e.detail.contains("wrong"), "the secret is masked: {e}");
    }
    let queries = auth.queries();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("secret=wrong") && q.contains("tls=false")),
        "nsqd asked its auth server: {queries:?}"
    );
    let granted = NsqOptions::with_addresses(&format!("nsq://:letmein@{}", nsqd.tcp_address()));
    let b = NsqBroker::new(granted).expect("options");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    b.publish(&t, Message::new("granted"), PublishOptions::default())
        .await
        .expect("publish with the secret");
    assert_eq!(body(&recv(&mut rx, "the granted message").await), "granted");
}

/// A plain connection to an nsqd that requires TLS, and a `tls://` one to an nsqd without
/// TLS: each is refused with what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mismatches_say_what_to_change() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = Certs::generate(dir.path(), "rmicro nsq test CA");
    let tls_only = Nsqd::start_secure(Some(&certs), None);
    let b = NsqBroker::new(NsqOptions::with_addresses(&tls_only.tcp_address())).expect("options");
    let e = b
        .publish(
            &topic("plain"),
            Message::new("x"),
            PublishOptions::default(),
        )
        .await
        .expect_err("nsqd requires TLS");
    assert!(
        e.detail.contains("TLS required") && e.detail.contains("use a tls:// address"),
        "{e}"
    );
    let plain = Nsqd::start();
    let b = NsqBroker::new(NsqOptions::with_addresses(&format!(
        "tls://{}",
        plain.tcp_address()
    )))
    .expect("options");
    let e = b.connect().await.expect_err("nsqd offers no TLS");
    assert_eq!(e.code, 503, "{e}");
    assert!(e.detail.contains("does not offer TLS"), "{e}");
}
