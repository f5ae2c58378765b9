//! The registry suite against the consul registry and a real Consul agent (`consul agent
//! -dev`, built by `scripts/consul.sh`) on loopback. Each test starts its own agent (well
//! under a second); every `registry()` is a separate client, as separate processes are.
#![cfg(feature = "consul")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rmicro::registry::consul::{ConsulOptions, ConsulRegistry};
use rmicro::registry::{Node, RegisterOptions, Registry as _, Service, SharedRegistry};
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

fn one_node(name: &str) -> Service {
    let id = format!("{name}-{}", std::process::id());
    Service {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        nodes: vec![Node {
            id,
            address: "127.0.0.1:9".to_owned(),
            ..Node::default()
        }],
        ..Service::default()
    }
}

/// Whether the agent at `addr` holds `node_id` with its TTL check passing.
fn agent_passes(addr: std::net::SocketAddr, node_id: &str) -> bool {
    consul::get(addr, "/v1/agent/checks", None).is_some_and(|(status, body)| {
        status == 200
            && serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|checks| checks[format!("service:{node_id}")]["Status"] == "passing")
    })
}

/// Polls `check` every 50 ms for up to `within`; how long it took.
async fn within(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The agent a registration went through dies: the registration is on the next agent at
/// once, not at the next heartbeat (there is none here: the TTL is a minute), and before
/// serf marks the dead agent's node failed (seconds), so lookups never miss the node.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_moves_to_the_next_agent_when_its_agent_dies() {
    let mut members = tokio::task::spawn_blocking(|| consul::start_cluster(3))
        .await
        .expect("cluster");
    let addresses: Vec<String> = members.iter().map(consul::address).collect();
    let registry = ConsulRegistry::new(ConsulOptions::default().addresses(addresses))
        .expect("consul registry");
    let service = one_node("moves");
    let id = service.nodes[0].id.clone();
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    registry.register(&service, ttl).await.expect("register");
    let (first, second) = (members[0].addr, members[1].addr);
    assert!(agent_passes(first, &id), "held by the first agent");
    assert!(!agent_passes(second, &id), "not yet by the second");

    let _members = tokio::task::spawn_blocking(move || {
        members[0].stop();
        members
    })
    .await
    .expect("stop the first agent");
    let moved = within(Duration::from_secs(3), || agent_passes(second, &id)).await;
    let moved = moved.expect("the registration moved to the second agent");
    eprintln!("moved after {moved:?}");
    assert!(
        moved < Duration::from_secs(1),
        "moved after {moved:?}, before serf could mark the dead node"
    );
}

/// A single agent restarted empty gets the registration back as soon as it listens, not at
/// the next heartbeat (none here: the TTL is a minute).
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_is_back_as_soon_as_a_restarted_agent_listens() {
    let consul = Consul::start();
    let registry = consul.registry().await;
    let service = one_node("back");
    let id = service.nodes[0].id.clone();
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    registry.register(&service, ttl).await.expect("register");
    let addr = consul.server.lock().expect("server").addr;
    assert!(agent_passes(addr, &id));
    consul.restart_empty().await;
    let back = within(Duration::from_secs(5), || agent_passes(addr, &id)).await;
    assert!(back.is_some(), "registered again without a heartbeat");

    registry.deregister(&service).await.expect("deregister");
    assert!(!agent_passes(addr, &id), "deregistered");
}
