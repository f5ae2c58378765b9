//! The broker suite against the NATS broker on a real nats-server (one per test, on a free
//! loopback port). Every `broker()` is its own `NatsBroker`, with its own connections.
#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
use rmicro::broker::{Broker as _, SharedBroker};
use rmicro_conformance::broker::BrokerFixture;
use rmicro_conformance::servers::nats::Nats;

struct NatsFixture {
    server: Mutex<Nats>,
    url: String,
}

impl NatsFixture {
    fn start() -> NatsFixture {
        let server = Nats::start();
        let url = server.url();
        NatsFixture {
            server: Mutex::new(server),
            url,
        }
    }
}

#[async_trait]
impl BrokerFixture for NatsFixture {
    async fn broker(&self) -> SharedBroker {
        let mut opts = NatsBrokerOptions::default();
        opts.addresses = vec![self.url.clone()];
        let b = NatsBroker::new(opts).expect("valid options");
        b.connect().await.expect("nats connects to nats-server");
        Arc::new(b)
    }

    async fn restart(&self) {
        tokio::task::block_in_place(|| {
            self.server
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .restart();
        });
    }
}

rmicro_conformance::broker_suite!(NatsFixture::start());
rmicro_conformance::broker_restart_check!(NatsFixture::start());
