//! The broker suite against the http broker: every `broker()` is its own HttpBroker with
//! its own server on 127.0.0.1, sharing one registry as services share mDNS.

use std::sync::Arc;

use async_trait::async_trait;
use rmicro::broker::http::{HttpBroker, HttpBrokerOptions};
use rmicro::broker::{Broker as _, SharedBroker};
use rmicro::registry::memory::MemoryRegistry;
use rmicro_conformance::broker::BrokerFixture;

#[derive(Default)]
struct Http(MemoryRegistry);

#[async_trait]
impl BrokerFixture for Http {
    async fn broker(&self) -> SharedBroker {
        let b = HttpBroker::new(Arc::new(self.0.clone()), HttpBrokerOptions::default());
        b.connect().await.expect("http broker listens");
        Arc::new(b)
    }
}

rmicro_conformance::broker_suite!(Http::default());
