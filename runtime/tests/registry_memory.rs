//! The in-process registry: the contract every registry plugin keeps, plus TTL expiry driven by
//! tokio's paused clock.

use std::time::Duration;

use futures::StreamExt as _;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{
    Action, Change, Metadata, Node, RegisterOptions, Registry, Service, SharedRegistry,
    WatchOptions, Watcher,
};

fn node(id: &str, port: u16) -> Node {
    Node {
        id: id.into(),
        address: format!("127.0.0.1:{port}"),
        metadata: Metadata::from([("protocol".into(), "mucp".into())]),
    }
}

fn svc(name: &str, version: &str, nodes: Vec<Node>) -> Service {
    Service {
        name: name.into(),
        version: version.into(),
        nodes,
        ..Service::default()
    }
}

async fn next(w: &mut Watcher) -> Change {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("a change within 5 s")
        .expect("watch stream open")
        .expect("no watch error")
}

fn ids(s: &Service) -> Vec<&str> {
    s.nodes.iter().map(|n| n.id.as_str()).collect()
}

#[tokio::test]
async fn register_get_list_deregister() {
    let reg = MemoryRegistry::new();
    assert_eq!(reg.name(), "memory");
    assert!(reg.get_service("student").await.expect("get").is_empty());

    let mut s = svc(
        "student",
        "v1",
        vec![node("student-1", 1), node("student-2", 2)],
    );
    s.metadata.insert("team".into(), "a".into());
    reg.register(&s, RegisterOptions::default())
        .await
        .expect("register");
    reg.register(
        &svc("teacher", "v1", vec![node("teacher-1", 3)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");

    let got = reg.get_service("student").await.expect("get");
    assert_eq!(got, vec![s.clone()]);

    let all = reg.list_services().await.expect("list");
    let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["student", "teacher"]);

    reg.deregister(&svc("student", "v1", vec![node("student-1", 1)]))
        .await
        .expect("deregister");
    let got = reg.get_service("student").await.expect("get");
    assert_eq!(ids(&got[0]), ["student-2"]);

    reg.deregister(&svc("student", "v1", vec![node("student-2", 2)]))
        .await
        .expect("deregister");
    assert!(reg.get_service("student").await.expect("get").is_empty());
    let names: Vec<_> = reg
        .list_services()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["teacher"]);
}

#[tokio::test]
async fn clones_share_state_and_work_behind_an_arc() {
    let reg = MemoryRegistry::default();
    let shared: SharedRegistry = std::sync::Arc::new(reg.clone());
    shared
        .register(
            &svc("s", "v1", vec![node("s-1", 1)]),
            RegisterOptions::default(),
        )
        .await
        .expect("register");
    assert_eq!(ids(&reg.get_service("s").await.expect("get")[0]), ["s-1"]);
}

#[tokio::test]
async fn versions_are_separate_services() {
    let reg = MemoryRegistry::new();
    reg.register(
        &svc("s", "v1", vec![node("s-1", 1)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");
    reg.register(
        &svc("s", "v2", vec![node("s-2", 2)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");
    let got = reg.get_service("s").await.expect("get");
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].version.as_str(), ids(&got[0])), ("v1", vec!["s-1"]));
    assert_eq!((got[1].version.as_str(), ids(&got[1])), ("v2", vec!["s-2"]));

    reg.deregister(&svc("s", "v1", vec![node("s-1", 1)]))
        .await
        .expect("deregister");
    let got = reg.get_service("s").await.expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, "v2");
}

#[tokio::test]
async fn registering_again_updates_the_node() {
    let reg = MemoryRegistry::new();
    reg.register(
        &svc("s", "v1", vec![node("s-1", 1)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");
    reg.register(
        &svc("s", "v1", vec![node("s-1", 9)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register again");
    let got = reg.get_service("s").await.expect("get");
    assert_eq!(got[0].nodes, vec![node("s-1", 9)]);
}

#[tokio::test]
async fn watch_reports_create_update_delete_and_filters_by_service() {
    let reg = MemoryRegistry::new();
    let mut all = reg.watch(WatchOptions::default()).await.expect("watch");
    let mut only_b = reg.watch(WatchOptions::service("b")).await.expect("watch");

    reg.register(
        &svc("a", "v1", vec![node("a-1", 1)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");
    reg.register(
        &svc("a", "v1", vec![node("a-1", 1)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register again");
    reg.register(
        &svc("b", "v1", vec![node("b-1", 2)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register");
    reg.deregister(&svc("a", "v1", vec![node("a-1", 1)]))
        .await
        .expect("deregister");

    let seen: Vec<(Action, String, Vec<String>)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let c = next(&mut all).await;
            v.push((
                c.action,
                c.service.name.clone(),
                c.service.nodes.iter().map(|n| n.id.clone()).collect(),
            ));
        }
        v
    };
    assert_eq!(
        seen,
        vec![
            (Action::Create, "a".into(), vec!["a-1".into()]),
            (Action::Update, "a".into(), vec!["a-1".into()]),
            (Action::Create, "b".into(), vec!["b-1".into()]),
            (Action::Delete, "a".into(), vec!["a-1".into()]),
        ]
    );

    let c = next(&mut only_b).await;
    assert_eq!((c.action, c.service.name.as_str()), (Action::Create, "b"));
    reg.deregister(&svc("b", "v1", vec![node("b-1", 2)]))
        .await
        .expect("deregister");
    let c = next(&mut only_b).await;
    assert_eq!((c.action, c.service.name.as_str()), (Action::Delete, "b"));
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_drops_the_node_and_tells_watchers() {
    let reg = MemoryRegistry::new();
    let mut w = reg.watch(WatchOptions::service("s")).await.expect("watch");
    let ttl = RegisterOptions::ttl(Duration::from_secs(10));
    reg.register(&svc("s", "v1", vec![node("s-1", 1)]), ttl)
        .await
        .expect("register");
    reg.register(
        &svc("s", "v1", vec![node("s-forever", 2)]),
        RegisterOptions::default(),
    )
    .await
    .expect("register without ttl");
    assert_eq!(next(&mut w).await.action, Action::Create);
    assert_eq!(next(&mut w).await.action, Action::Create);

    // Re-registering within the TTL keeps the node alive.
    tokio::time::advance(Duration::from_secs(8)).await;
    reg.register(&svc("s", "v1", vec![node("s-1", 1)]), ttl)
        .await
        .expect("heartbeat");
    assert_eq!(next(&mut w).await.action, Action::Update);
    tokio::time::advance(Duration::from_secs(8)).await;
    let got = reg.get_service("s").await.expect("get");
    assert_eq!(ids(&got[0]), ["s-1", "s-forever"]);

    // No heartbeat: the sweeper removes it without anyone reading, at the deadline.
    let c = next(&mut w).await;
    assert_eq!(c.action, Action::Delete);
    assert_eq!(ids(&c.service), ["s-1"]);
    let got = reg.get_service("s").await.expect("get");
    assert_eq!(ids(&got[0]), ["s-forever"]);

    // A version whose every node expired is gone altogether.
    reg.register(&svc("t", "v1", vec![node("t-1", 3)]), ttl)
        .await
        .expect("register");
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(reg.get_service("t").await.expect("get").is_empty());
    assert!(
        reg.list_services()
            .await
            .expect("list")
            .iter()
            .all(|s| s.name != "t")
    );
}

#[test]
fn expiry_is_lazy_on_read_without_a_runtime_to_sweep() {
    // Outside tokio no expiry task can start; reads drop expired nodes themselves.
    let reg = MemoryRegistry::new();
    futures::executor::block_on(async {
        let ttl = RegisterOptions::ttl(Duration::from_millis(1));
        reg.register(&svc("s", "v1", vec![node("s-1", 1)]), ttl)
            .await
            .expect("register");
        reg.register(
            &svc("s", "v1", vec![node("s-2", 2)]),
            RegisterOptions::default(),
        )
        .await
        .expect("register");
        let mut w = reg.watch(WatchOptions::default()).await.expect("watch");
        std::thread::sleep(Duration::from_millis(20));
        let got = reg.get_service("s").await.expect("get");
        assert_eq!(ids(&got[0]), ["s-2"]);
        let c = w.next().await.expect("open").expect("change");
        assert_eq!((c.action, ids(&c.service)), (Action::Delete, vec!["s-1"]));
    });
}

#[tokio::test]
async fn lagging_watcher_does_not_block_registrations() {
    let reg = MemoryRegistry::new();
    let mut w = reg.watch(WatchOptions::default()).await.expect("watch");
    // Far more changes than the watcher buffers, none read meanwhile.
    for i in 0..3000 {
        reg.register(
            &svc("s", "v1", vec![node(&format!("s-{i}"), 1)]),
            RegisterOptions::default(),
        )
        .await
        .expect("register");
    }
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("item")
        .expect("open");
    let err = first.expect_err("lag is reported");
    assert!(err.detail.contains("missed"), "{err}");
    // And the watcher carries on with the newest changes.
    let c = next(&mut w).await;
    assert_eq!(c.action, Action::Create);
    assert_eq!(
        reg.get_service("s").await.expect("get")[0].nodes.len(),
        3000
    );
}

#[tokio::test(start_paused = true)]
async fn a_shorter_ttl_wakes_a_sweeper_planned_for_a_longer_one() {
    let reg = MemoryRegistry::new();
    let mut w = reg.watch(WatchOptions::default()).await.expect("watch");
    reg.register(
        &svc("long", "v1", vec![node("long-1", 1)]),
        RegisterOptions::ttl(Duration::from_secs(60)),
    )
    .await
    .expect("register");
    assert_eq!(next(&mut w).await.action, Action::Create);
    // The sweeper now plans its next look at the 60 s deadline.
    tokio::time::sleep(Duration::from_millis(10)).await;

    let start = tokio::time::Instant::now();
    reg.register(
        &svc("short", "v1", vec![node("short-1", 2)]),
        RegisterOptions::ttl(Duration::from_secs(1)),
    )
    .await
    .expect("register");
    assert_eq!(next(&mut w).await.action, Action::Create);
    let c = next(&mut w).await;
    assert_eq!(
        (c.action, ids(&c.service)),
        (Action::Delete, vec!["short-1"])
    );
    // On the paused clock: at the 1 s deadline (or one sweep period after), not at 60 s.
    let at = start.elapsed();
    assert!(
        at >= Duration::from_secs(1) && at <= Duration::from_millis(1100),
        "expired after {at:?}"
    );
}
