//! The broker suite against the MQTT broker on ActiveMQ (Artemis 2.40, its MQTT acceptor;
//! one server per check, on a free loopback port): the same plugin and the same checks as on
//! mosquitto, so the plugin is not tuned to one server. ActiveMQ Classic is the lesson's
//! "ActiveMQ" but cannot serve queues (see the fixture's documentation).
#![cfg(feature = "mqtt")]

use std::sync::Arc;

use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::activemq::ActiveMq;

fn fixture() -> OnServer<ActiveMq> {
    OnServer::new("activemq", ActiveMq::start(), |server| {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![server.url()];
        Ok(Arc::new(MqttBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
