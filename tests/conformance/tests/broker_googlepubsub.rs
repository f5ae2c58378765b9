//! The broker suite against the googlepubsub broker on a real Pub/Sub server on loopback
//! (one per check): the Google Cloud SDK's emulator where the machine has it, else Google's
//! `pstest` fake built from the Go module proxy (`RMICRO_PUBSUB=emulator|pstest` forces
//! one). Both keep state in memory only, so the restart check also proves that topics and
//! subscriptions are created again. The broker runs with `ordered` on (the topic as the
//! ordering key), as the order check needs; the default, unordered mode is tested in
//! `googlepubsub.rs`.
#![cfg(feature = "googlepubsub")]

use std::sync::Arc;

use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::pubsub::PubSub;

fn fixture() -> OnServer<PubSub> {
    let server = PubSub::start();
    eprintln!("pubsub: {} on {}", server.kind(), server.host());
    OnServer::new("pubsub", server, |server| {
        // The suite checks order, which Pub/Sub keeps only per ordering key.
        let mut opts = GooglePubSubOptions::emulator(&server.host());
        opts.ordered = true;
        Ok(Arc::new(GooglePubSubBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
