//! The registry suite against the nats registry (go-micro v5's) on a real nats-server (one per
//! test, on a free loopback port). Every `registry()` is its own `NatsRegistry`, with its own
//! connection, as separate processes are.
#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::nats::{NatsRegistry, NatsRegistryOptions};
use rmicro_conformance::registry::RegistryFixture;
use rmicro_conformance::servers::nats::Nats;

struct NatsFixture {
    server: Arc<Mutex<Nats>>,
    url: String,
}

impl NatsFixture {
    fn start() -> Self {
        let server = Nats::start();
        let url = server.url();
        Self {
            server: Arc::new(Mutex::new(server)),
            url,
        }
    }
}

#[async_trait]
impl RegistryFixture for NatsFixture {
    async fn registry(&self) -> SharedRegistry {
        let mut opts = NatsRegistryOptions::default();
        opts.addresses = vec![self.url.clone()];
        Arc::new(NatsRegistry::new(opts).expect("nats registry"))
    }

    /// Restarts nats-server: it keeps nothing, so every registration lives on only in the
    /// processes, which answer again once their clients have reconnected.
    async fn restart_empty(&self) {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || {
            server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart();
        })
        .await
        .expect("restart nats-server");
    }

    /// A node whose process is gone is gone at once: nothing answers for it.
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(1)
    }
}

rmicro_conformance::registry_suite!(NatsFixture::start());
rmicro_conformance::registry_restart_check!(NatsFixture::start());
