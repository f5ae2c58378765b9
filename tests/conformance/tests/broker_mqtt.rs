//! The broker suite against the MQTT broker on a real mosquitto (one per test, on a free
//! loopback port). Every `broker()` is its own `MqttBroker`, with its own connections.
#![cfg(feature = "mqtt")]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro::broker::{Broker as _, SharedBroker};
use rmicro_conformance::broker::BrokerFixture;
use rmicro_conformance::servers::mosquitto::Mosquitto;

struct Mqtt {
    server: Mutex<Mosquitto>,
    url: String,
}

impl Mqtt {
    fn start() -> Mqtt {
        let server = Mosquitto::start();
        let url = server.url();
        Mqtt {
            server: Mutex::new(server),
            url,
        }
    }
}

#[async_trait]
impl BrokerFixture for Mqtt {
    async fn broker(&self) -> SharedBroker {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![self.url.clone()];
        let b = MqttBroker::new(opts).expect("valid options");
        b.connect().await.expect("mqtt connects to mosquitto");
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

rmicro_conformance::broker_suite!(Mqtt::start());
rmicro_conformance::broker_restart_check!(Mqtt::start());
