//! The registry suite against the etcd registry and a real etcd (Debian's 3.4) on loopback.
//! Each test starts its own etcd (about a second); every `registry()` is a separate client,
//! as separate processes are.
#![cfg(feature = "etcd")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::etcd::{EtcdOptions, EtcdRegistry};
use rmicro_conformance::registry::RegistryFixture;
use rmicro_conformance::servers::{Server, etcd};

struct Etcd {
    server: Arc<Mutex<Server>>,
    endpoint: String,
}

impl Etcd {
    fn start() -> Self {
        let server = etcd::start();
        let endpoint = etcd::endpoint(&server);
        Self {
            server: Arc::new(Mutex::new(server)),
            endpoint,
        }
    }
}

#[async_trait]
impl RegistryFixture for Etcd {
    async fn registry(&self) -> SharedRegistry {
        let opts = EtcdOptions::from_address(&self.endpoint).expect("endpoint");
        Arc::new(EtcdRegistry::new(opts).expect("etcd registry"))
    }

    /// Kills etcd, wipes its data directory and starts it again: the registry comes back
    /// empty and without the leases it had.
    async fn restart_empty(&self) {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || {
            let mut server = server.lock().unwrap_or_else(PoisonError::into_inner);
            etcd::restart(&mut server, true);
        })
        .await
        .expect("restart etcd");
    }

    /// etcd raises shorter lease TTLs to its minimum: 1.5 × the election timeout (1 s by
    /// default), rounded up to whole seconds = 2 s.
    fn min_ttl(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// etcd looks for expired leases every 500 ms and revokes them through raft.
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(3)
    }
}

rmicro_conformance::registry_suite!(Etcd::start());
rmicro_conformance::registry_restart_check!(Etcd::start());
