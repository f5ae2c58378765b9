//! The broker suite against the MQTT broker on a real mosquitto (one per test, on a free
//! loopback port). Every `broker()` is its own `MqttBroker`, with its own connections.
#![cfg(feature = "mqtt")]

use std::sync::Arc;

use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::mosquitto::Mosquitto;

fn fixture() -> OnServer<Mosquitto> {
    OnServer::new("mosquitto", Mosquitto::start(), |server| {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![server.url()];
        Ok(Arc::new(MqttBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
