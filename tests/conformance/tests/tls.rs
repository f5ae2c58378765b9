//! TLS against real servers on 127.0.0.1: mosquitto (`mqtts://`), nats-server (`tls://`),
//! redis-server (`rediss://`), nsqd (`tls://`, with AUTH), Kafka (`ssl://`) and Google's
//! Pub/Sub fake standing in for Google Cloud (`https://`, with a bearer token), with
//! certificates from throwaway CAs made at test time (`openssl`, see
//! `rmicro_conformance::servers::tls`).
//!
//! The brokers trust the system's root certificates, loaded by rustls-native-certs, which
//! reads the file named by `SSL_CERT_FILE` instead when that variable is set (Kafka's
//! librdkafka is given that file as its `ssl.ca.location` by the broker). Setting a
//! variable inside a running test process is `unsafe` (other threads may read the
//! environment) and the workspace forbids unsafe code, so every test runs its body in a child
//! process of this very binary (`<test> --exact`), started with `SSL_CERT_FILE` = the test
//! CA: the child has it from its first instruction and nothing changes the environment at run
//! time. Each test makes its own CAs, so tests share nothing and may run in parallel.
//!
//! Per broker, two tests:
//! - `*_round_trip_over_tls`: a subscriber and a publisher connect to a TLS-only server whose
//!   certificate the test CA signed; a published message arrives intact. The test CA is in no
//!   system store, so this also shows that the broker took its roots from `SSL_CERT_FILE`.
//! - `*_refuses_untrusted_certificate`: against a server whose certificate another CA signed,
//!   `connect`, `publish` and `subscribe` each fail within a bound with an [`rmicro::Error`]
//!   whose detail names the certificate problem.
#![cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "redis",
    feature = "nsq",
    feature = "kafka-tls",
    feature = "googlepubsub"
))]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmicro::broker::{self, Message, PublishOptions, SharedBroker, SubscribeOptions};
use rmicro_conformance::servers::tls::Certs;
use tokio::sync::mpsc;

/// Set in the child process: the directory holding `trusted/` and `untrusted/` certificates.
const CERTS_DIR: &str = "RMICRO_TLS_TEST_CERTS";
/// How long the brokers wait for a connection before `connect`/`publish`/`subscribe` fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The bound on one failing call (the connect timeout, plus slack for a loaded machine).
const FAIL_WITHIN: Duration = Duration::from_secs(20);
/// The bound on a message's arrival.
const ARRIVE_WITHIN: Duration = Duration::from_secs(15);
/// The bound on a whole test body, so that nothing hangs.
const BODY_WITHIN: Duration = Duration::from_secs(120);

/// The certificates a test body gets.
struct Pki {
    /// Signed by the CA that `SSL_CERT_FILE` names.
    trusted: Certs,
    /// Signed by another CA, which nothing trusts.
    untrusted: Certs,
}

/// Runs `body` with `SSL_CERT_FILE` naming a fresh test CA: in this process when it is the
/// child started for `test`, else by starting that child (and failing if it fails).
fn with_test_ca<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Pki) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(dir) = std::env::var_os(CERTS_DIR) {
        let dir = PathBuf::from(dir);
        let pki = Pki {
            trusted: Certs::at(&dir.join("trusted")),
            untrusted: Certs::at(&dir.join("untrusted")),
        };
        assert_eq!(
            std::env::var_os("SSL_CERT_FILE"),
            Some(pki.trusted.ca().into_os_string()),
            "the child process trusts exactly the test CA"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            tokio::time::timeout(BODY_WITHIN, body(pki))
                .await
                .unwrap_or_else(|_| panic!("`{test}` did not finish within {BODY_WITHIN:?}"));
        });
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let trusted = Certs::generate(&dir.path().join("trusted"), "rmicro test CA");
    Certs::generate(&dir.path().join("untrusted"), "rmicro untrusted CA");
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CERTS_DIR, dir.path())
        .env("SSL_CERT_FILE", trusted.ca())
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "`{test}` failed in its child process (SSL_CERT_FILE={}, {}, after {:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        trusted.ca().display(),
        out.status,
        started.elapsed()
    );
}

/// A unique topic; `.` and `-` only, valid for every broker.
fn topic(prefix: &str) -> String {
    format!(
        "tls.{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A subscriber and a publisher, each a broker of its own (so two TLS connections), connect
/// over TLS; a message with every byte value and a header arrives intact.
async fn round_trip(make: impl Fn() -> SharedBroker, scheme: &str) {
    let subscriber = make();
    let publisher = make();
    assert!(
        subscriber.address().starts_with(scheme),
        "{} is a TLS address",
        subscriber.address()
    );
    subscriber
        .connect()
        .await
        .expect("the subscriber connects over TLS to a server the test CA vouches for");
    publisher
        .connect()
        .await
        .expect("the publisher connects over TLS to a server the test CA vouches for");
    let t = topic("trip");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = subscriber
        .subscribe(
            &t,
            broker::handler(move |ev| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ev);
                    Ok(())
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe over TLS");
    // Subscriptions are effective on the server shortly after `subscribe` returns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body: Vec<u8> = (0..=255u8).chain(*b"over tls \xF0\x9F\x94\x92").collect();
    publisher
        .publish(
            &t,
            Message::new(body.clone()).with_header("name", "davie"),
            PublishOptions::default(),
        )
        .await
        .expect("publish over TLS");
    let ev = tokio::time::timeout(ARRIVE_WITHIN, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing arrived within {ARRIVE_WITHIN:?}"))
        .expect("the handler's channel is open");
    assert_eq!(ev.topic(), t);
    assert_eq!(ev.message().body.as_ref(), body.as_slice(), "body intact");
    assert_eq!(
        ev.message().header.get("name").map(String::as_str),
        Some("davie")
    );
    publisher.disconnect().await.expect("disconnect");
    subscriber.disconnect().await.expect("disconnect");
}

/// What rustls says of a certificate no trusted CA issued.
const RUSTLS_UNTRUSTED: &[&str] = &["invalid peer certificate", "UnknownIssuer"];

/// `connect`, `publish` and `subscribe` on a broker whose server has an untrusted
/// certificate each fail within [`FAIL_WITHIN`], naming the certificate problem (every one
/// of `untrusted` is in the error).
async fn refuses(b: SharedBroker, untrusted: &[&str]) {
    let t = topic("refused");
    let started = Instant::now();
    let refused = within("connect", b.connect()).await;
    expect_untrusted("connect", &refused, untrusted);
    let e = within(
        "publish",
        b.publish(&t, Message::new("secret"), PublishOptions::default()),
    )
    .await;
    expect_untrusted("publish", &e, untrusted);
    let e = within(
        "subscribe",
        b.subscribe(
            &t,
            broker::handler(|_| async { Ok(()) }),
            SubscribeOptions::default(),
        ),
    )
    .await;
    expect_untrusted("subscribe", &e, untrusted);
    println!(
        "{}: connect, publish and subscribe refused in {:?}; connect's error: {}",
        b.address(),
        started.elapsed(),
        refused.detail
    );
    let _ = b.disconnect().await;
}

/// The error `call` ends with, within [`FAIL_WITHIN`].
async fn within<T>(what: &str, call: impl Future<Output = rmicro::Result<T>>) -> rmicro::Error {
    match tokio::time::timeout(FAIL_WITHIN, call).await {
        Err(_) => panic!("{what}: no answer within {FAIL_WITHIN:?} (it hangs)"),
        Ok(Ok(_)) => {
            panic!("{what}: succeeded against a server whose certificate no trusted CA signed")
        }
        Ok(Err(e)) => e,
    }
}

/// An `rmicro::Error` of the broker that says the server's certificate was rejected because
/// no trusted CA issued it (rustls's "invalid peer certificate: UnknownIssuer").
fn expect_untrusted(what: &str, e: &rmicro::Error, untrusted: &[&str]) {
    assert_eq!(e.id, "go.micro.broker", "{what}: {e}");
    assert_eq!(e.code, 503, "{what}: service unavailable: {e}");
    assert!(
        untrusted.iter().all(|part| e.detail.contains(part)),
        "{what}: the error names the certificate problem ({untrusted:?}): {e}"
    );
}

#[cfg(feature = "mqtt")]
mod mqtt {
    use super::*;
    use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
    use rmicro_conformance::servers::mosquitto::Mosquitto;

    pub(super) fn broker(url: &str) -> SharedBroker {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![url.to_owned()];
        opts.connect_timeout = CONNECT_TIMEOUT;
        // `tls` stays `None`: the roots come from rustls-native-certs.
        Arc::new(MqttBroker::new(opts).expect("valid options; the test CA loads"))
    }

    pub(super) async fn round_trip(pki: Pki) {
        let server = Mosquitto::start_tls(&pki.trusted);
        let url = server.tls_url();
        super::round_trip(|| broker(&url), "mqtts://").await;
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = Mosquitto::start_tls(&pki.untrusted);
        super::refuses(broker(&server.tls_url()), RUSTLS_UNTRUSTED).await;
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
    use rmicro_conformance::servers::nats::Nats;

    pub(super) fn broker(url: &str) -> SharedBroker {
        let mut opts = NatsBrokerOptions::default();
        opts.addresses = vec![url.to_owned()];
        opts.connect_timeout = CONNECT_TIMEOUT;
        Arc::new(NatsBroker::new(opts).expect("valid options"))
    }

    pub(super) async fn round_trip(pki: Pki) {
        let server = Nats::start_tls(&pki.trusted);
        let url = server.tls_url();
        super::round_trip(|| broker(&url), "tls://").await;
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = Nats::start_tls(&pki.untrusted);
        super::refuses(broker(&server.tls_url()), RUSTLS_UNTRUSTED).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use rmicro::broker::redis::{RedisBroker, RedisOptions};
    use rmicro_conformance::servers::redis::Redis;

    pub(super) fn broker(url: &str) -> SharedBroker {
        let mut opts = RedisOptions::with_address(url);
        opts.connect_timeout = CONNECT_TIMEOUT;
        Arc::new(RedisBroker::new(opts).expect("valid options"))
    }

    pub(super) async fn round_trip(pki: Pki) {
        let server = Redis::start_tls(&pki.trusted);
        let url = server.tls_url();
        super::round_trip(|| broker(&url), "rediss://").await;
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = Redis::start_tls(&pki.untrusted);
        super::refuses(broker(&server.tls_url()), RUSTLS_UNTRUSTED).await;
    }
}

#[cfg(feature = "nsq")]
mod nsq {
    use super::*;
    use rmicro::broker::nsq::{NsqBroker, NsqOptions};
    use rmicro_conformance::servers::nsq::{AuthServer, Nsqd};

    pub(super) fn broker(url: &str) -> SharedBroker {
        let mut opts = NsqOptions::with_addresses(url);
        opts.timeout = CONNECT_TIMEOUT;
        Arc::new(NsqBroker::new(opts).expect("valid options"))
    }

    /// TLS and AUTH together, as an estate that has one has the other: the secret travels
    /// inside TLS, and nsqd tells its auth server the connection is TLS.
    pub(super) async fn round_trip(pki: Pki) {
        let auth = AuthServer::start("s3cret");
        let server = Nsqd::start_secure(Some(&pki.trusted), Some(&auth));
        let url = format!("tls://:s3cret@{}", server.tcp_address());
        assert!(
            !broker(&url).address().contains("s3cret"),
            "the secret is masked"
        );
        super::round_trip(|| broker(&url), "tls://").await;
        let queries = auth.queries();
        assert!(
            queries.len() >= 2,
            "each connection authenticated: {queries:?}"
        );
        for q in &queries {
            assert!(
                q.contains("tls=true") && q.contains("secret=s3cret"),
                "nsqd saw a TLS connection with the secret: {q}"
            );
        }
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = Nsqd::start_secure(Some(&pki.untrusted), None);
        let url = format!("tls://{}", server.tcp_address());
        super::refuses(broker(&url), RUSTLS_UNTRUSTED).await;
    }
}

#[cfg(feature = "kafka-tls")]
mod kafka {
    use super::*;
    use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
    use rmicro_conformance::servers::kafka::Kafka;

    pub(super) fn broker(url: &str) -> SharedBroker {
        let mut opts = KafkaOptions::with_addresses(url);
        opts.publish_timeout = CONNECT_TIMEOUT;
        Arc::new(KafkaBroker::new(opts).expect("valid options"))
    }

    pub(super) async fn round_trip(pki: Pki) {
        let server = Kafka::start_tls(&pki.trusted);
        let url = format!("ssl://{}", server.address());
        super::round_trip(|| broker(&url), "ssl://").await;
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = Kafka::start_tls(&pki.untrusted);
        let url = format!("ssl://{}", server.address());
        // OpenSSL's words, as librdkafka reports them.
        super::refuses(broker(&url), &["certificate verify failed"]).await;
    }
}

#[cfg(feature = "googlepubsub")]
mod googlepubsub {
    use super::*;
    use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
    use rmicro_conformance::servers::pubsub::PubSub;

    const TOKEN: &str = "ya29.rmicro-test-token";

    pub(super) fn broker(endpoint: &str, token: &str) -> SharedBroker {
        let mut opts = GooglePubSubOptions::default();
        opts.endpoint = endpoint.to_owned();
        opts.access_token = Some(token.to_owned());
        opts.project = "rmicro-tls".to_owned();
        opts.timeout = CONNECT_TIMEOUT;
        Arc::new(GooglePubSubBroker::new(opts).expect("valid options"))
    }

    pub(super) async fn round_trip(pki: Pki) {
        let server = PubSub::start_cloud_like(&pki.trusted, TOKEN);
        let endpoint = server.endpoint();
        super::round_trip(|| broker(&endpoint, TOKEN), "https://").await;
    }

    pub(super) async fn refuses(pki: Pki) {
        let server = PubSub::start_cloud_like(&pki.untrusted, TOKEN);
        super::refuses(broker(&server.endpoint(), TOKEN), RUSTLS_UNTRUSTED).await;
    }

    /// A token the server does not take: `connect`, `publish` and `subscribe` are each a 401
    /// quoting the server's UNAUTHENTICATED, the token in none of them.
    pub(super) async fn wrong_token(pki: Pki) {
        let server = PubSub::start_cloud_like(&pki.trusted, TOKEN);
        let b = broker(&server.endpoint(), "ya29.expired");
        let t = topic("token");
        let errors = [
            within("connect", b.connect()).await,
            within(
                "publish",
                b.publish(&t, Message::new("x"), PublishOptions::default()),
            )
            .await,
            within(
                "subscribe",
                b.subscribe(
                    &t,
                    broker::handler(|_| async { Ok(()) }),
                    SubscribeOptions::default(),
                ),
            )
            .await,
        ];
        for e in errors {
            assert_eq!(e.code, 401, "{e}");
            assert!(
                e.detail.contains("invalid authentication credentials"),
                "{e}"
            );
            assert!(!e.detail.contains("ya29"), "no token in errors: {e}");
        }
    }
}

#[cfg(feature = "googlepubsub")]
#[test]
fn googlepubsub_round_trip_over_tls_with_token() {
    with_test_ca(
        "googlepubsub_round_trip_over_tls_with_token",
        googlepubsub::round_trip,
    );
}

#[cfg(feature = "googlepubsub")]
#[test]
fn googlepubsub_refuses_untrusted_certificate() {
    with_test_ca(
        "googlepubsub_refuses_untrusted_certificate",
        googlepubsub::refuses,
    );
}

#[cfg(feature = "googlepubsub")]
#[test]
fn googlepubsub_wrong_token_is_401() {
    with_test_ca("googlepubsub_wrong_token_is_401", googlepubsub::wrong_token);
}

#[cfg(feature = "nsq")]
#[test]
fn nsq_round_trip_over_tls_with_auth() {
    with_test_ca("nsq_round_trip_over_tls_with_auth", nsq::round_trip);
}

#[cfg(feature = "nsq")]
#[test]
fn nsq_refuses_untrusted_certificate() {
    with_test_ca("nsq_refuses_untrusted_certificate", nsq::refuses);
}

#[cfg(feature = "kafka-tls")]
#[test]
fn kafka_round_trip_over_tls() {
    with_test_ca("kafka_round_trip_over_tls", kafka::round_trip);
}

#[cfg(feature = "kafka-tls")]
#[test]
fn kafka_refuses_untrusted_certificate() {
    with_test_ca("kafka_refuses_untrusted_certificate", kafka::refuses);
}

#[cfg(feature = "mqtt")]
#[test]
fn mqtt_round_trip_over_tls() {
    with_test_ca("mqtt_round_trip_over_tls", mqtt::round_trip);
}

#[cfg(feature = "mqtt")]
#[test]
fn mqtt_refuses_untrusted_certificate() {
    with_test_ca("mqtt_refuses_untrusted_certificate", mqtt::refuses);
}

#[cfg(feature = "nats")]
#[test]
fn nats_round_trip_over_tls() {
    with_test_ca("nats_round_trip_over_tls", nats::round_trip);
}

#[cfg(feature = "nats")]
#[test]
fn nats_refuses_untrusted_certificate() {
    with_test_ca("nats_refuses_untrusted_certificate", nats::refuses);
}

#[cfg(feature = "redis")]
#[test]
fn redis_round_trip_over_tls() {
    with_test_ca("redis_round_trip_over_tls", redis::round_trip);
}

#[cfg(feature = "redis")]
#[test]
fn redis_refuses_untrusted_certificate() {
    with_test_ca("redis_refuses_untrusted_certificate", redis::refuses);
}
