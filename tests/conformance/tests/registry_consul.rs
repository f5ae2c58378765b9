//! The registry suite against the consul registry and a real Consul agent (`consul agent
//! -dev`, built by `scripts/consul.sh`) on loopback. Each test starts its own agent (well
//! under a second); every `registry()` is a separate client, as separate processes are.
#![cfg(feature = "consul")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::consul::{ConsulOptions, ConsulRegistry};
use rmicro_conformance::registry::RegistryFixture;
use rmicro_conformance::servers::{Server, consul};

struct Consul {
    server: Arc<Mutex<Server>>,
    address: String,
}

impl Consul {
    fn start() -> Self {
        let server = consul::start();
        let address = consul::address(&server);
        Self {
            server: Arc::new(Mutex::new(server)),
            address,
        }
    }
}

#[async_trait]
impl RegistryFixture for Consul {
    async fn registry(&self) -> SharedRegistry {
        let opts = ConsulOptions::default().addresses([self.address.clone()]);
        Arc::new(ConsulRegistry::new(opts).expect("consul registry"))
    }

    /// Kills the agent and starts it again on the same ports: `-dev` keeps nothing, so it
    /// comes back without the services and checks it had.
    async fn restart_empty(&self) {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || {
            let mut server = server.lock().unwrap_or_else(PoisonError::into_inner);
            consul::restart(&mut server);
        })
        .await
        .expect("restart consul");
    }

    /// A TTL check turns critical when its TTL passes without a pass, and reads drop the
    /// node at once; TTLs are whole seconds in practice, and 2 s leaves the test's first
    /// read time to see the node while it is still passing.
    fn min_ttl(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// The agent's TTL timer fires at the TTL; the critical status then reaches the catalog
    /// (which health reads use) on the agent's next sync, which a status change triggers at
    /// once.
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(3)
    }
}

rmicro_conformance::registry_suite!(Consul::start());
rmicro_conformance::registry_restart_check!(Consul::start());
