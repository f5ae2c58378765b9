//! `/health/ready` follows the broker's connection on real servers: ready while the broker is
//! connected, 503 naming the broker while its server is down, ready again once the client
//! has reconnected. nats-server, RabbitMQ, Redis, nsqd, Kafka and Pub/Sub, each killed and
//! started again: a service with a subscription (its connection notices), and for Redis one
//! that only publishes (down from a failed publish, up again by the broker's own probe, with
//! no publish after the restart).
#![cfg(any(
    feature = "nats",
    feature = "rabbitmq",
    feature = "redis",
    feature = "nsq",
    feature = "kafka",
    feature = "googlepubsub"
))]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmicro::broker::SharedBroker;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::{Routes, Service};

struct Echo;

/// `GET /health/ready`: the status code and the body.
fn ready(addr: SocketAddr) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// Polls until `/health/ready` answers `want`; the time it took.
fn until(addr: SocketAddr, want: u16, within: Duration) -> (Duration, String) {
    let started = Instant::now();
    loop {
        let (code, body) = ready(addr);
        if code == want {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < within,
            "/health/ready still {code} after {within:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn service(broker: SharedBroker) -> Service {
    start(broker, false).await
}

/// A service that also subscribes to a topic (and so holds a connection of its own).
async fn subscribed(broker: SharedBroker) -> Service {
    start(broker, true).await
}

async fn start(broker: SharedBroker, subscribe: bool) -> Service {
    let name = format!("health-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut builder = Service::builder(name.clone())
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(broker)
        .free_subscribers(false)
        .handler(Echo, Routes::new());
    if subscribe {
        let handler = rmicro::broker::handler(|_event| async { Ok(()) });
        builder = builder.subscribe(&format!("{name}.events"), None, handler);
    }
    let service = builder.start().await.expect("start");
    service.registered().await.expect("registered");
    service
}

/// Kills `server`, waits for 503 naming the broker, starts it again, waits for 200.
fn follow<S>(service: &Service, server: &mut S, kill: fn(&mut S), start: fn(&mut S), name: &str) {
    let addr = service.address();
    tokio::task::block_in_place(|| {
        until(addr, 200, Duration::from_secs(10));
        kill(server);
        let (after, body) = until(addr, 503, Duration::from_secs(20));
        assert!(
            body.contains("\"name\":\"broker\"")
                && body.contains(&format!("the {name} broker is not connected")),
            "{body}"
        );
        start(server);
        let (back, _) = until(addr, 200, Duration::from_secs(30));
        println!(
            "{name}: not ready {after:?} after the kill, ready again {back:?} after the restart"
        );
    });
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_nats_broker() {
    use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
    use rmicro_conformance::servers::nats::Nats;
    let mut server = Nats::start();
    let mut opts = NatsBrokerOptions::default();
    opts.addresses = vec![server.url()];
    let service = service(Arc::new(NatsBroker::new(opts).expect("options"))).await;
    follow(&service, &mut server, Nats::stop, Nats::restart, "nats");
    service.stop().await.expect("stop");
}

#[cfg(feature = "rabbitmq")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_rabbitmq_broker() {
    use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
    use rmicro_conformance::servers::rabbitmq::Rabbitmq;
    let mut server = tokio::task::block_in_place(Rabbitmq::start);
    let opts = RabbitmqOptions::with_addresses(&server.url());
    let service = service(Arc::new(RabbitmqBroker::new(opts).expect("options"))).await;
    follow(
        &service,
        &mut server,
        Rabbitmq::stop,
        Rabbitmq::restart,
        "rabbitmq",
    );
    service.stop().await.expect("stop");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_redis_broker() {
    use rmicro::broker::redis::{RedisBroker, RedisOptions};
    use rmicro_conformance::servers::redis::Redis;
    let mut server = Redis::start();
    let broker = RedisBroker::new(RedisOptions::with_address(&server.url())).expect("options");
    let service = subscribed(Arc::new(broker)).await;
    follow(&service, &mut server, Redis::stop, Redis::restart, "redis");
    service.stop().await.expect("stop");
}

/// A service that only publishes has no connection that notices an outage: the publish that
/// fails marks the broker down, and the broker's own probe (not another publish) finds the
/// server again.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_only_service_is_not_ready_from_a_failed_publish_until_redis_answers() {
    use rmicro::broker::redis::{RedisBroker, RedisOptions};
    use rmicro::broker::{Message, PublishOptions};
    use rmicro_conformance::servers::redis::Redis;
    let mut server = Redis::start();
    let broker: SharedBroker =
        Arc::new(RedisBroker::new(RedisOptions::with_address(&server.url())).expect("options"));
    let service = service(Arc::clone(&broker)).await;
    let addr = service.address();
    let publish = || async {
        broker
            .publish(
                "health.only",
                Message::new(&b"{}"[..]),
                PublishOptions::default(),
            )
            .await
    };
    publish().await.expect("publish while redis is up");
    tokio::task::block_in_place(|| {
        until(addr, 200, Duration::from_secs(10));
        server.stop();
    });
    let (code, _) = tokio::task::block_in_place(|| ready(addr));
    assert_eq!(code, 200, "no connection of its own noticed the outage yet");
    let err = publish().await.expect_err("publish while redis is down");
    assert_eq!(err.code, 503, "{err}");
    tokio::task::block_in_place(|| {
        let (code, body) = ready(addr);
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("the redis broker is not connected"), "{body}");
        server.restart();
        let (back, _) = until(addr, 200, Duration::from_secs(30));
        println!("redis, publishing only: ready again {back:?} after the restart");
    });
    service.stop().await.expect("stop");
}

#[cfg(feature = "nsq")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_nsq_broker() {
    use rmicro::broker::nsq::{NsqBroker, NsqOptions};
    use rmicro_conformance::servers::nsq::Nsqd;
    let mut server = Nsqd::start();
    let broker =
        NsqBroker::new(NsqOptions::with_addresses(&server.tcp_address())).expect("options");
    let service = subscribed(Arc::new(broker)).await;
    follow(
        &service,
        &mut server,
        Nsqd::stop,
        Nsqd::crash_restart,
        "nsq",
    );
    service.stop().await.expect("stop");
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_kafka_broker() {
    use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
    use rmicro_conformance::servers::kafka::Kafka;
    let mut server = tokio::task::block_in_place(Kafka::start);
    let broker =
        KafkaBroker::new(KafkaOptions::with_addresses(&server.address())).expect("options");
    let service = subscribed(Arc::new(broker)).await;
    follow(&service, &mut server, Kafka::stop, Kafka::restart, "kafka");
    service.stop().await.expect("stop");
}

#[cfg(feature = "googlepubsub")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_googlepubsub_broker() {
    use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
    use rmicro_conformance::servers::pubsub::PubSub;
    let mut server = tokio::task::block_in_place(PubSub::start);
    let broker =
        GooglePubSubBroker::new(GooglePubSubOptions::emulator(&server.host())).expect("options");
    let service = subscribed(Arc::new(broker)).await;
    follow(
        &service,
        &mut server,
        PubSub::stop,
        PubSub::restart,
        "googlepubsub",
    );
    service.stop().await.expect("stop");
}
