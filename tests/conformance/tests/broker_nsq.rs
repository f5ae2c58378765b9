//! The broker suite against the nsq broker on a real nsqd (one per check, on free loopback
//! ports; nsqd starts in milliseconds). The restart check stops nsqd with SIGTERM and starts
//! it again on the same ports.
#![cfg(feature = "nsq")]

use std::sync::Arc;

use rmicro::broker::nsq::{NsqBroker, NsqOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::nsq::Nsqd;

fn fixture() -> OnServer<Nsqd> {
    OnServer::new("nsqd", Nsqd::start(), |server| {
        Ok(Arc::new(NsqBroker::new(NsqOptions::with_addresses(
            &server.tcp_address(),
        ))?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
