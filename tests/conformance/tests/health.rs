//! `/health/ready` follows the broker's connection on real servers: ready while the broker is
//! connected, 503 naming the broker while its server is down, ready again once the client
//! has reconnected. nats-server and RabbitMQ, each killed and started again.
#![cfg(any(feature = "nats", feature = "rabbitmq"))]

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
    let service = Service::builder(format!(
        "health-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .with_registry(Arc::new(MemoryRegistry::new()))
    .with_broker(broker)
    .free_subscribers(false)
    .handler(Echo, Routes::new())
    .start()
    .await
    .expect("start");
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
