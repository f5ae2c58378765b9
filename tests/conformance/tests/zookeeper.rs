//! The zookeeper registry against a real ZooKeeper 3.9 on loopback, where the conformance
//! suite does not reach: go-micro's znode layout read back with a ZooKeeper client of the
//! test's own, a node written as go-micro writes it (persistent, Go's `null`s) read and
//! watched, and a watch that carries on across a server restart.
#![cfg(feature = "zookeeper")]

use std::time::Duration;

use futures::StreamExt as _;
use rmicro::registry::zookeeper::{ZookeeperOptions, ZookeeperRegistry, node_path};
use rmicro::registry::{
    Action, Change, Metadata, Node, RegisterOptions, Registry as _, Service, WatchOptions, Watcher,
};
use rmicro_conformance::servers::zookeeper::Zookeeper;
use zookeeper_client::{Acls, Client, CreateMode, Permission};

fn registry(zk: &Zookeeper) -> ZookeeperRegistry {
    ZookeeperRegistry::new(ZookeeperOptions::from_address(&zk.addr().to_string()).expect("address"))
        .expect("registry")
}

async fn raw(zk: &Zookeeper) -> Client {
    Client::connect(&zk.addr().to_string())
        .await
        .expect("raw zookeeper client")
}

fn service(name: &str, node: &str) -> Service {
    let mut md = Metadata::new();
    md.insert("protocol".into(), "mucp".into());
    Service {
        name: name.into(),
        version: "v1".into(),
        nodes: vec![Node {
            id: format!("{name}-{node}"),
            address: "127.0.0.1:4000".into(),
            metadata: md,
        }],
        ..Service::default()
    }
}

async fn next_change(watch: &mut Watcher, what: &str) -> Change {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap_or_else(|_| panic!("{what} within 10s"))
        .expect("watch open")
        .expect("no watch error")
}

/// What a go-micro peer reads: the znode path, the JSON (one node, go-micro's field names)
/// and world-readable ACLs; the znode is ephemeral, owned by the registry's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_micros_znode_ephemeral() {
    let zk = Zookeeper::start();
    let registry = registry(&zk);
    let raw = raw(&zk).await;
    let s = service("go.micro.srv.student", "a");
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register");

    let path = "/micro-registry/go.micro.srv.student/go.micro.srv.student-a";
    assert_eq!(node_path(&s.name, &s.nodes[0].id), path);
    let (data, stat) = raw.get_data(path).await.expect("the node's znode");
    // The registry's own model is go-micro's JSON names; read back, it is the node exactly.
    let text = String::from_utf8(data.clone()).expect("utf-8");
    for key in [
        r#""name":"go.micro.srv.student""#,
        r#""version":"v1""#,
        r#""nodes":[{"#,
        r#""address":"127.0.0.1:4000""#,
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let read: Service = serde_json::from_slice(&data).expect("a service");
    assert_eq!(read.nodes, s.nodes);
    assert_ne!(stat.ephemeral_owner, 0, "ephemeral");
    let (acl, _) = raw.get_acl(path).await.expect("acl");
    assert_eq!(acl.len(), 1, "{acl:?}");
    assert_eq!((acl[0].scheme(), acl[0].id()), ("world", "anyone"));
    assert!(acl[0].permission().has(Permission::ALL), "{acl:?}");

    // Deregister deletes the znode; the service's znode stays, as with go-micro.
    registry.deregister(&s).await.expect("deregister");
    assert!(raw.check_stat(path).await.expect("stat").is_none());
    assert!(
        raw.check_stat("/micro-registry/go.micro.srv.student")
            .await
            .expect("stat")
            .is_some()
    );
}

/// A node as go-micro's plugin writes it (persistent, `null` for Go's nil maps) is read by
/// `get_service` and watched: create, update and delete, the delete with its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_watches_what_a_go_micro_peer_writes() {
    let zk = Zookeeper::start();
    let registry = registry(&zk);
    let raw = raw(&zk).await;
    let mut watch = registry
        .watch(WatchOptions::service("go.micro.srv.greeter"))
        .await
        .expect("watch");

    let go = |address: &str| {
        format!(
            r#"{{"name":"go.micro.srv.greeter","version":"latest","metadata":null,"endpoints":[{{"name":"Say.Hello","request":null,"response":null,"metadata":{{"stream":"false"}}}}],"nodes":[{{"metadata":{{"protocol":"mucp","registry":"zookeeper"}},"id":"greeter-1","address":"{address}"}}]}}"#
        )
    };
    let dir = CreateMode::Persistent.with_acls(Acls::anyone_all());
    raw.mkdir("/micro-registry/go.micro.srv.greeter", &dir)
        .await
        .expect("mkdir");
    let path = "/micro-registry/go.micro.srv.greeter/greeter-1";
    raw.create(path, go("10.0.0.1:1").as_bytes(), &dir)
        .await
        .expect("create");
    let change = next_change(&mut watch, "create").await;
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.service.nodes[0].address, "10.0.0.1:1");

    let got = registry
        .get_service("go.micro.srv.greeter")
        .await
        .expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, "latest");
    assert_eq!(got[0].endpoints[0].name, "Say.Hello");
    assert!(got[0].metadata.is_empty());
    assert!(
        registry
            .list_services()
            .await
            .expect("list")
            .iter()
            .any(|s| s.name == "go.micro.srv.greeter")
    );

    raw.set_data(path, go("10.0.0.1:2").as_bytes(), None)
        .await
        .expect("set");
    let change = next_change(&mut watch, "update").await;
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.service.nodes[0].address, "10.0.0.1:2");

    raw.delete(path, None).await.expect("delete");
    let change = next_change(&mut watch, "delete").await;
    assert_eq!(change.action, Action::Delete);
    assert_eq!(
        change.service.nodes[0].address, "10.0.0.1:2",
        "the record last seen"
    );
    assert!(
        registry
            .get_service("go.micro.srv.greeter")
            .await
            .expect("get")
            .is_empty()
    );
}

/// A watch whose server restarts (keeping its data) carries on by itself, with no error,
/// and reports what is registered after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_carries_on_after_a_restart() {
    let mut zk = Zookeeper::start();
    let watcher = registry(&zk);
    let mut watch = watcher.watch(WatchOptions::default()).await.expect("watch");
    let writer = registry(&zk);
    let a = service("resume", "a");
    writer
        .register(&a, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register a");
    assert_eq!(next_change(&mut watch, "a").await.action, Action::Create);

    tokio::task::block_in_place(|| zk.restart(false));
    let b = service("resume", "b");
    let started = std::time::Instant::now();
    loop {
        match writer
            .register(&b, RegisterOptions::ttl(Duration::from_secs(10)))
            .await
        {
            Ok(()) => break,
            Err(err) => {
                assert!(started.elapsed() < Duration::from_secs(20), "{err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // `a` may come again (its session may have been replaced), but `b` must come, and no
    // error in between.
    loop {
        let change = next_change(&mut watch, "b after the restart").await;
        if change.service.nodes[0].id == b.nodes[0].id {
            assert_eq!(change.action, Action::Create);
            break;
        }
    }
}
