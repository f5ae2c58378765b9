//! The registry suite against the mDNS registry on the loopback interface: every
//! `registry()` is a separate instance with its own sockets, as separate processes are.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::mdns::{MdnsOptions, MdnsRegistry};
use rmicro_conformance::registry::RegistryFixture;

struct Mdns;

#[async_trait]
impl RegistryFixture for Mdns {
    async fn registry(&self) -> SharedRegistry {
        Arc::new(MdnsRegistry::new(MdnsOptions::default()).expect("mdns on loopback"))
    }
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(2)
    }
}

rmicro_conformance::registry_suite!(Mdns);
