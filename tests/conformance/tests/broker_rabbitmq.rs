//! The broker suite against the rabbitmq broker on a real RabbitMQ node on loopback. The
//! suite's checks share one node (it boots in seconds); the restart check has its own.
#![cfg(feature = "rabbitmq")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
use rmicro::broker::{Broker as _, SharedBroker};
use rmicro_conformance::broker::BrokerFixture;
use rmicro_conformance::servers::rabbitmq::{self, Rabbitmq};

struct Fixture {
    /// A node of the fixture's own, for the restart check; `None` = the binary's shared node
    /// (never restarted).
    own: Option<Box<Mutex<Rabbitmq>>>,
    url: String,
}

impl Fixture {
    fn shared() -> Fixture {
        Fixture {
            url: rabbitmq::shared().url(),
            own: None,
        }
    }

    fn own() -> Fixture {
        let node = Rabbitmq::start();
        eprintln!(
            "rabbitmq: own node on {} booted in {:.1} s",
            node.addr(),
            node.boot_time.as_secs_f64()
        );
        Fixture {
            url: node.url(),
            own: Some(Box::new(Mutex::new(node))),
        }
    }
}

#[async_trait]
impl BrokerFixture for Fixture {
    async fn broker(&self) -> SharedBroker {
        let b = RabbitmqBroker::new(RabbitmqOptions::with_addresses(&self.url)).expect("options");
        b.connect().await.expect("rabbitmq connects");
        Arc::new(b)
    }

    async fn restart(&self) {
        let Some(node) = &self.own else {
            panic!("the shared node is not restarted");
        };
        let started = Instant::now();
        tokio::task::block_in_place(|| {
            node.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart();
        });
        eprintln!(
            "rabbitmq: killed and booted again in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

rmicro_conformance::broker_suite!(Fixture::shared());
rmicro_conformance::broker_restart_check!(Fixture::own());
