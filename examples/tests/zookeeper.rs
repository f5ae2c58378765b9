//! The seed's programs on the zookeeper registry (`--registry=zookeeper`), against a real
//! ZooKeeper 3.9 on loopback: the client finds the service, and after a `kill -9` of the
//! service its node leaves with its ZooKeeper session, within the TTL (go-micro's plugin
//! writes persistent znodes, which stay until someone deletes them).
//!
//! Run with `cargo test -p rmicro-examples --features zookeeper --test zookeeper --
//! --nocapture` to see the measured times.
#![cfg(feature = "zookeeper")]

mod support;

use std::time::{Duration, Instant};

use rmicro::registry::Registry as _;
use rmicro::registry::zookeeper::{ZookeeperOptions, ZookeeperRegistry};
use rmicro_conformance::servers::zookeeper::Zookeeper;
use support::{CLIENT, DAVIE, NOT_FOUND, Proc, SERVICE, UP, run, seed_lock, stderr, stdout};

#[test]
fn student_service_on_zookeeper_leaves_with_its_session_after_kill_9() {
    let _lock = seed_lock();
    let zk = Zookeeper::start();
    let flags = [
        "--registry=zookeeper".to_owned(),
        format!("--registry_address={}", zk.addr()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    let started = Instant::now();
    let mut service = Proc::spawn(
        SERVICE,
        &[
            flags.as_slice(),
            &["--register_ttl=4", "--register_interval=2"],
        ]
        .concat(),
        &[],
    );
    service.wait_for("registered", UP);
    println!(
        "measured: registered on zookeeper in {:?}",
        started.elapsed()
    );

    let out = run(CLIENT, &flags, &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));

    // kill -9: no deregistration; the session (timeout = the TTL, 4 s) expires and
    // ZooKeeper deletes the node. Watched through the registry itself: a client run would
    // spend its retries on the dead node first.
    service.signal("KILL");
    let killed = Instant::now();
    let registry = ZookeeperRegistry::new(
        ZookeeperOptions::from_address(&zk.addr().to_string()).expect("address"),
    )
    .expect("registry");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        while !registry
            .get_service("student_service")
            .await
            .expect("get")
            .is_empty()
        {
            assert!(
                killed.elapsed() < Duration::from_secs(4 + 3),
                "the node outlived its TTL (4 s) by 3 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    println!(
        "measured: kill -9 -> node gone after {:?} (TTL 4 s)",
        killed.elapsed()
    );
    let out = run(CLIENT, &flags, &[]);
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
}
