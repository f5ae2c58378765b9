//! The broker suite against the NATS broker on a real nats-server (one per test, on a free
//! loopback port). Every `broker()` is its own `NatsBroker`, with its own connections.
#![cfg(feature = "nats")]

use std::sync::Arc;

use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::nats::Nats;

fn fixture() -> OnServer<Nats> {
    OnServer::new("nats-server", Nats::start(), |server| {
        let mut opts = NatsBrokerOptions::default();
        opts.addresses = vec![server.url()];
        Ok(Arc::new(NatsBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
