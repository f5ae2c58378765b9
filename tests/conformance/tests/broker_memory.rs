//! The broker suite against the in-memory broker.

use std::sync::Arc;

use async_trait::async_trait;
use rmicro::broker::SharedBroker;
use rmicro::broker::memory::MemoryBroker;
use rmicro_conformance::broker::BrokerFixture;

#[derive(Default)]
struct Memory(MemoryBroker);

#[async_trait]
impl BrokerFixture for Memory {
    async fn broker(&self) -> SharedBroker {
        Arc::new(self.0.clone())
    }
}

rmicro_conformance::broker_suite!(Memory::default());
