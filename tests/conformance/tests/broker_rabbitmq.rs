//! The broker suite against the rabbitmq broker on a real RabbitMQ node on loopback. The
//! suite's checks share one node (it boots in seconds); the restart check has its own.
#![cfg(feature = "rabbitmq")]

use std::sync::Arc;

use rmicro::broker::SharedBroker;
use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::rabbitmq::{self, Rabbitmq};

fn make(node: &Rabbitmq) -> rmicro::Result<SharedBroker> {
    Ok(Arc::new(RabbitmqBroker::new(
        RabbitmqOptions::with_addresses(&node.url()),
    )?))
}

fn own() -> OnServer<Rabbitmq> {
    let node = Rabbitmq::start();
    eprintln!(
        "rabbitmq: own node on {} booted in {:.1} s",
        node.addr(),
        node.boot_time.as_secs_f64()
    );
    OnServer::new("rabbitmq", node, make)
}

rmicro_conformance::broker_suite!(OnServer::shared("rabbitmq", rabbitmq::shared(), make));
rmicro_conformance::broker_restart_check!(own());
