//! The broker suite against the kafka broker on a real Kafka 4.4 (KRaft, one JVM per check,
//! on free loopback ports). The restart check kills it (kill -9) and starts it again with its
//! data; consumer groups come back from their committed offsets.
#![cfg(feature = "kafka")]

use std::sync::Arc;
use std::time::Duration;

use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::kafka::{Kafka, MAX_MESSAGE_BYTES};

fn fixture() -> OnServer<Kafka> {
    OnServer::new("kafka", Kafka::start(), |server| {
        let mut opts = KafkaOptions::with_addresses(&server.address());
        opts.max_message_bytes = MAX_MESSAGE_BYTES;
        Ok(Arc::new(KafkaBroker::new(opts)?))
    })
    // Joining consumer groups takes a rebalance or two.
    .settle(Duration::from_secs(3))
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
