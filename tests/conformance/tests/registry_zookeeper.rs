//! The registry suite against the zookeeper registry and a real ZooKeeper 3.9 on loopback.
//! Each test starts its own server (a JVM, about a second); every `registry()` is its own
//! session, as separate processes are.
#![cfg(feature = "zookeeper")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::zookeeper::{ZookeeperOptions, ZookeeperRegistry};
use rmicro_conformance::registry::RegistryFixture;
use rmicro_conformance::servers::zookeeper::Zookeeper;

struct ZkFixture {
    server: Arc<Mutex<Zookeeper>>,
    address: String,
}

impl ZkFixture {
    fn start() -> Self {
        let server = Zookeeper::start();
        let address = server.addr().to_string();
        Self {
            server: Arc::new(Mutex::new(server)),
            address,
        }
    }
}

#[async_trait]
impl RegistryFixture for ZkFixture {
    async fn registry(&self) -> SharedRegistry {
        let opts = ZookeeperOptions::from_address(&self.address).expect("address");
        Arc::new(ZookeeperRegistry::new(opts).expect("zookeeper registry"))
    }

    /// Kills ZooKeeper, wipes its data and starts it again: every session and znode is gone.
    async fn restart_empty(&self) {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || {
            server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart(true);
        })
        .await
        .expect("restart zookeeper");
    }

    /// The server's shortest session: 2 ticks of 500 ms.
    fn min_ttl(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// A dropped registry closes its session at once; a crashed process's session expires
    /// within its timeout, checked by the server every tick.
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(3)
    }
}

rmicro_conformance::registry_suite!(ZkFixture::start());
rmicro_conformance::registry_restart_check!(ZkFixture::start());
