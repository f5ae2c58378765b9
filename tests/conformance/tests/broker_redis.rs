//! The broker suite against the redis broker on a real redis-server on loopback (one server
//! per check; Redis starts in milliseconds).
#![cfg(feature = "redis")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use rmicro::broker::redis::{RedisBroker, RedisOptions};
use rmicro::broker::{Broker as _, SharedBroker};
use rmicro_conformance::broker::BrokerFixture;
use rmicro_conformance::servers::redis::Redis;

struct Fixture {
    server: Mutex<Redis>,
    url: String,
}

impl Fixture {
    fn start() -> Fixture {
        let server = Redis::start();
        Fixture {
            url: server.url(),
            server: Mutex::new(server),
        }
    }
}

#[async_trait]
impl BrokerFixture for Fixture {
    async fn broker(&self) -> SharedBroker {
        let b = RedisBroker::new(RedisOptions::with_address(&self.url)).expect("options");
        b.connect().await.expect("redis connects");
        Arc::new(b)
    }

    async fn restart(&self) {
        let started = Instant::now();
        tokio::task::block_in_place(|| {
            self.server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart();
        });
        eprintln!(
            "redis: killed and started again in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
}

rmicro_conformance::broker_suite!(Fixture::start());
rmicro_conformance::broker_restart_check!(Fixture::start());
