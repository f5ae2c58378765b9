//! The registry suite. [`registry_suite!`](crate::registry_suite) expands to one test per
//! check for a fixture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use rmicro::registry::{
    Action, Endpoint, Metadata, Node, RegisterOptions, SharedRegistry, Value, WatchOptions,
};
use rmicro::{Routes, Service};

/// A registry under test.
#[async_trait]
pub trait RegistryFixture: Send + Sync + 'static {
    /// A new client of the registry.
    async fn registry(&self) -> SharedRegistry;
    /// Restarts the registry server with no data, as a crashed registry comes back. Only
    /// plugins with a server of their own implement it and expand
    /// [`registry_restart_check!`](crate::registry_restart_check).
    async fn restart_empty(&self) {
        panic!("this registry has no server to restart");
    }
    /// The shortest TTL the registry honours.
    fn min_ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// How long after a TTL lapses the registry may still list the node.
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(3)
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn service(name: &str, version: &str, node: &str) -> rmicro::registry::Service {
    let mut md = Metadata::new();
    md.insert("protocol".into(), "mucp".into());
    md.insert("zone".into(), "a".into());
    let mut ep_md = Metadata::new();
    ep_md.insert("stream".into(), "false".into());
    rmicro::registry::Service {
        name: name.into(),
        version: version.into(),
        metadata: Metadata::new(),
        endpoints: vec![Endpoint {
            name: "Student.Get".into(),
            request: Some(Value {
                name: "Req".into(),
                type_: "Req".into(),
                values: vec![Value {
                    name: "name".into(),
                    type_: "string".into(),
                    values: vec![],
                }],
            }),
            response: None,
            metadata: ep_md,
        }],
        nodes: vec![Node {
            id: format!("{name}-{node}"),
            address: format!("127.0.0.1:{}", 10_000 + node.len()),
            metadata: md,
        }],
    }
}

async fn node_ids(r: &SharedRegistry, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = r
        .get_service(name)
        .await
        .expect("get_service")
        .into_iter()
        .flat_map(|s| s.nodes)
        .map(|n| n.id)
        .collect();
    ids.sort();
    ids
}

async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Register, get, list, deregister; the record reads back exactly as written.
pub async fn register_get_list_deregister(f: &impl RegistryFixture) {
    let (writer, reader) = (f.registry().await, f.registry().await);
    let name = unique("conf");
    let a = service(&name, "v1", "a");
    let b = service(&name, "v1", "bb");
    let c = service(&name, "v2", "ccc");
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    for s in [&a, &b, &c] {
        writer.register(s, ttl).await.expect("register");
    }
    eventually(Duration::from_secs(5), "three nodes visible", || async {
        node_ids(&reader, &name).await.len() == 3
    })
    .await;
    let mut versions = reader.get_service(&name).await.expect("get");
    versions.sort_by(|x, y| x.version.cmp(&y.version));
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert_eq!(versions[0].version, "v1");
    assert_eq!(versions[0].nodes.len(), 2);
    let got_c = &versions[1];
    assert_eq!(got_c.nodes, c.nodes, "node read back exactly");
    assert_eq!(got_c.endpoints, c.endpoints, "endpoints read back exactly");

    let listed = reader.list_services().await.expect("list");
    assert!(listed.iter().any(|s| s.name == name), "{name} not listed");

    writer.deregister(&b).await.expect("deregister");
    let expect = vec![a.nodes[0].id.clone(), c.nodes[0].id.clone()];
    eventually(Duration::from_secs(5), "one node gone", || async {
        node_ids(&reader, &name).await == expect
    })
    .await;
    writer.deregister(&a).await.expect("deregister");
    writer.deregister(&c).await.expect("deregister");
    eventually(Duration::from_secs(5), "all gone", || async {
        node_ids(&reader, &name).await.is_empty()
    })
    .await;
}

/// A watch sees a node come and go.
pub async fn watch_sees_create_and_delete(f: &impl RegistryFixture) {
    let (writer, reader) = (f.registry().await, f.registry().await);
    let name = unique("conf");
    let mut watch = reader
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let s = service(&name, "v1", "a");
    writer
        .register(&s, RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .expect("register");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&Action::Delete) {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, watch.next())
            .await
            .unwrap_or_else(|_| panic!("watch saw only {seen:?} within 10s"))
            .expect("watch ended")
            .expect("watch error");
        if change.service.name != name {
            continue;
        }
        if seen.is_empty() {
            assert_eq!(change.action, Action::Create, "first change");
            assert!(change.service.nodes.iter().any(|n| n.id == s.nodes[0].id));
            writer.deregister(&s).await.expect("deregister");
        }
        seen.push(change.action);
    }
}

/// A node that stops heartbeating disappears after its TTL.
pub async fn node_expires_after_its_ttl(f: &impl RegistryFixture) {
    let (writer, reader) = (f.registry().await, f.registry().await);
    let name = unique("conf");
    let ttl = f.min_ttl();
    let s = service(&name, "v1", "a");
    writer
        .register(&s, RegisterOptions::ttl(ttl))
        .await
        .expect("register");
    eventually(Duration::from_secs(5), "node visible", || async {
        !node_ids(&reader, &name).await.is_empty()
    })
    .await;
    // No more heartbeats: the writer goes away as a crashed process does (no deregister),
    // and the node is gone within the TTL plus the registry's slack.
    drop(writer);
    eventually(ttl + f.expiry_slack(), "expiry", || async {
        node_ids(&reader, &name).await.is_empty()
    })
    .await;
}

/// A running service whose registry restarts empty is registered again within about one
/// interval of the registry coming back.
pub async fn service_reregisters_after_restart(f: &impl RegistryFixture) {
    let name = unique("conf");
    let interval = Duration::from_secs(1);
    let svc = Service::builder(name.clone())
        .ttl(Duration::from_secs(10))
        .interval(interval)
        .with_registry(f.registry().await)
        .with_broker(Arc::new(rmicro::broker::memory::MemoryBroker::new()))
        .free_subscribers(false)
        .handler((), Routes::<()>::new())
        .start()
        .await
        .expect("start");
    svc.registered().await.expect("registered");
    let reader = f.registry().await;
    let id = svc.node().id.clone();
    eventually(Duration::from_secs(5), "node visible", || async {
        node_ids(&reader, &name).await.contains(&id)
    })
    .await;
    f.restart_empty().await;
    let reader = f.registry().await;
    // Back within one interval, plus the heartbeat's backoff while the server was down
    // (capped at one interval) and the registry's own settling.
    eventually(
        interval * 3 + Duration::from_secs(5),
        "re-registration",
        || async {
            reader
                .get_service(&name)
                .await
                .map(|v| v.iter().flat_map(|s| &s.nodes).any(|n| n.id == id))
                .unwrap_or(false)
        },
    )
    .await;
    svc.stop().await.expect("stop");
}

/// Expands to one `#[tokio::test]` per check of the registry suite for `$fixture`, an
/// expression building a fresh fixture.
#[macro_export]
macro_rules! registry_suite {
    ($fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn register_get_list_deregister() {
            $crate::registry::register_get_list_deregister(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn watch_sees_create_and_delete() {
            $crate::registry::watch_sees_create_and_delete(&$fixture).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn node_expires_after_its_ttl() {
            $crate::registry::node_expires_after_its_ttl(&$fixture).await;
        }
    };
}

/// Expands to the restart check for `$fixture`, for plugins with a server of their own
/// (in-process plugins have nothing to restart and do not expand it).
#[macro_export]
macro_rules! registry_restart_check {
    ($fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn service_reregisters_after_restart() {
            $crate::registry::service_reregisters_after_restart(&$fixture).await;
        }
    };
}
