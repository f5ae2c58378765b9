//! The seed's programs on the nats registry (`--registry=nats`), against a real nats-server
//! on loopback, and go-micro v5.30's own nats registry (`tests/interop/v5/registry`, built by
//! `scripts/interop.sh`) reading and writing the same subjects:
//!
//! - `student_client --registry=nats` calls `student_service --registry=nats`; after a
//!   `kill -9` of the service, its node is gone at once (nothing answers for it), and the
//!   client prints go-micro's not-found error;
//! - go-micro's `GetService` finds rmicro's node with its endpoints and metadata;
//! - rmicro's registry finds a node go-micro registered, and its watch sees go-micro's
//!   `create` and `delete`; go-micro's watch sees rmicro's.
//!
//! Run with `cargo test -p rmicro-examples --features nats --test nats -- --nocapture` to see
//! the measured times.
#![cfg(feature = "nats")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rmicro::registry::nats::{NatsRegistry, NatsRegistryOptions};
use rmicro::registry::{Action, Registry as _, WatchOptions};
use rmicro_conformance::servers::nats::Nats;
use support::{
    CLIENT, DAVIE, NOT_FOUND, Proc, SERVICE, UP, go, labelled_json, run, seed_lock, stderr, stdout,
};

fn registry(url: &str) -> NatsRegistry {
    let mut opts = NatsRegistryOptions::default();
    opts.addresses = vec![url.to_owned()];
    NatsRegistry::new(opts).expect("nats registry")
}

/// go-micro v5's `GetService` of `name`: its `service` lines (none when it finds nothing).
fn go_get(url: &str, name: &str) -> Vec<serde_json::Value> {
    let out = run(&go("v5/registry"), &["--address", url, "get", name], &[]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "go-micro registry get failed: {}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .filter(|l| l.starts_with("service "))
        .map(|l| labelled_json(l, "service"))
        .collect()
}

#[test]
fn seed_programs_on_nats_and_go_micro_reads_the_node() {
    let _lock = seed_lock();
    let server = Nats::start();
    let url = server.url();
    let registry_flag = "--registry=nats".to_owned();
    let address_flag = format!("--registry_address={url}");

    let started = Instant::now();
    let mut service = Proc::spawn(SERVICE, &[&registry_flag, &address_flag], &[]);
    service.wait_for("registered", UP);
    println!(
        "measured: student_service registered on nats in {:?}",
        started.elapsed()
    );

    let out = run(CLIENT, &[&registry_flag, &address_flag], &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));

    // go-micro v5 reads the node, its endpoints and metadata as rmicro wrote them.
    let found = go_get(&url, "student_service");
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0];
    assert_eq!(s["name"], "student_service");
    assert_eq!(s["version"], "v1.0.0");
    let node = &s["nodes"][0];
    assert!(
        node["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("student_service-")),
        "{node}"
    );
    assert_eq!(node["metadata"]["registry"], "nats");
    assert_eq!(node["metadata"]["protocol"], "mucp");
    assert!(
        s["endpoints"]
            .as_array()
            .is_some_and(|eps| eps.iter().any(|e| e["name"] == "StudentService.GetStudent")),
        "{s}"
    );

    // kill -9: no deregistration, yet nothing answers for the node any more.
    service.signal("KILL");
    let killed = Instant::now();
    let out = run(CLIENT, &[&registry_flag, &address_flag], &[]);
    println!(
        "measured: after kill -9 the client got not-found {:?} later",
        killed.elapsed()
    );
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
    assert!(go_get(&url, "student_service").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmicro_and_go_micro_see_each_others_nodes_and_changes() {
    let server = Nats::start();
    let url = server.url();
    let ours = registry(&url);
    // Each test has its own nats-server: the name is free.
    let name = "go.micro.srv.greeter".to_owned();

    // go-micro registers; rmicro's watch sees it come, get finds it, and the watch sees it go.
    let mut watch = ours
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let node_id = format!("{name}-1");
    let mut go_service = Proc::spawn(
        &go("v5/registry"),
        &[
            "--address",
            &url,
            "register",
            &name,
            &node_id,
            "127.0.0.1:4321",
        ],
        &[],
    );
    go_service.wait_for("registered", UP);
    let change = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("create within 5s")
        .expect("watch open")
        .expect("no error");
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.service.nodes[0].id, node_id);

    let asked = Instant::now();
    let found = ours.get_service(&name).await.expect("get");
    println!("measured: get_service answered in {:?}", asked.elapsed());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].version, "v5");
    assert_eq!(found[0].nodes[0].address, "127.0.0.1:4321");
    assert_eq!(found[0].nodes[0].metadata["registry"], "nats");
    assert_eq!(found[0].endpoints[0].name, "Greeter.Hello");
    assert!(
        ours.list_services()
            .await
            .expect("list")
            .iter()
            .any(|s| s.name == name),
        "listed"
    );

    go_service.close_stdin();
    go_service.wait_for("deregistered", UP);
    let change = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("delete within 5s")
        .expect("watch open")
        .expect("no error");
    assert_eq!(change.action, Action::Delete);
    assert_eq!(change.service.nodes[0].id, node_id);
    assert!(ours.get_service(&name).await.expect("get").is_empty());

    // rmicro registers; go-micro's watch sees `create` (capitalised keys, as Go writes them).
    let mut go_watch = Proc::spawn(
        &go("v5/registry"),
        &["--address", &url, "watch", &name, "1"],
        &[],
    );
    go_watch.wait_for("ready", UP);
    let service = rmicro::registry::Service {
        name: name.clone(),
        version: "v1".into(),
        nodes: vec![rmicro::registry::Node {
            id: format!("{name}-rust"),
            address: "127.0.0.1:5000".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let ours = Arc::new(ours);
    ours.register(
        &service,
        rmicro::registry::RegisterOptions::ttl(Duration::from_secs(30)),
    )
    .await
    .expect("register");
    let line = go_watch.wait_for("change ", UP);
    let change = labelled_json(&line, "change");
    assert_eq!(change["Action"], "create", "{change}");
    assert_eq!(change["Service"]["nodes"][0]["id"], format!("{name}-rust"));
    let found = go_get(&url, &name);
    assert_eq!(found.len(), 1, "go-micro finds rmicro's node: {found:?}");
    assert_eq!(found[0]["nodes"][0]["address"], "127.0.0.1:5000");
}

/// A run with a password in every address (registry and broker), logging everything at
/// debug, rmicro's and its dependencies' (`RUST_LOG=debug`), and a run with a wrong password
/// that fails: no line of either holds a password.
#[test]
fn no_password_is_ever_logged() {
    let _lock = seed_lock();
    let server = Nats::start_with_login("rmicro", "S3cretPw");
    let flags = |url: &str, format: &str| {
        vec![
            "--registry=nats".to_owned(),
            format!("--registry_address={url}"),
            "--broker=nats".to_owned(),
            format!("--broker_address={url}"),
            format!("--log_format={format}"),
        ]
    };
    let good = flags(&format!("nats://rmicro:S3cretPw@{}", server.addr()), "json");
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut service = Proc::spawn(SERVICE, &good, &[("RUST_LOG", "debug")]);
    service.wait_for("registered", UP);
    let out = run(CLIENT, &good, &[("RUST_LOG", "debug")]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    let client_log = stderr(&out);
    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());
    let transcript = service.transcript();
    assert!(
        transcript.contains(&format!("nats://{}", server.addr())),
        "the address is logged, without its login: {transcript}"
    );
    for (what, log) in [("service", &transcript), ("client", &client_log)] {
        assert!(
            !log.contains("S3cretPw"),
            "{what} logged the password:\n{log}"
        );
    }

    let bad = flags(
        &format!("nats://rmicro:Wr0ngPw99@{}", server.addr()),
        "text",
    );
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let mut refused = Proc::spawn(SERVICE, &bad, &[("RUST_LOG", "debug")]);
    let code = refused.wait_exit(UP);
    let transcript = refused.transcript();
    assert_ne!(
        code,
        Some(0),
        "a wrong password does not start: {transcript}"
    );
    assert!(
        transcript.to_ascii_lowercase().contains("authorization"),
        "the failure says why: {transcript}"
    );
    let out = run(CLIENT, &bad, &[("RUST_LOG", "debug")]);
    assert_ne!(out.status.code(), Some(0));
    for (what, log) in [
        ("refused service", transcript),
        (
            "refused client",
            format!("{}{}", stdout(&out), stderr(&out)),
        ),
    ] {
        assert!(
            !log.contains("Wr0ngPw99"),
            "{what} logged the password:\n{log}"
        );
    }
}
