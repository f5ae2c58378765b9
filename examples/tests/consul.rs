//! The seed's scenario on a real Consul agent (issue 3): `student_service --registry=consul
//! --register_ttl=10 --register_interval=5` registers with a passing TTL check,
//! `student_client --registry=consul` gets the student (while the mDNS client finds nothing),
//! and after `kill -9` of the service Consul stops listing it as passing within about the
//! TTL and the client stops selecting it.
//!
//! Run with `cargo test -p rmicro-examples --features consul --test consul -- --nocapture`
//! to see the measured times.
#![cfg(feature = "consul")]

mod support;

use std::time::{Duration, Instant};

use rmicro_conformance::servers::consul;
use serde_json::Value;
use support::{CLIENT, DAVIE, NOT_FOUND, Proc, SERVICE, UP, run, seed_lock, stderr, stdout};

const TTL: Duration = Duration::from_secs(10);

/// The statuses of the service's own checks (`service:<node id>`) per node, from
/// `/v1/health/service/student_service`.
fn service_checks(agent: std::net::SocketAddr) -> Vec<(String, String, String)> {
    let (status, body) =
        consul::get(agent, "/v1/health/service/student_service", None).expect("consul answers");
    assert_eq!(status, 200, "{body}");
    let entries: Vec<Value> = serde_json::from_str(&body).expect("health json");
    let mut checks = Vec::new();
    for entry in &entries {
        let id = entry["Service"]["ID"].as_str().unwrap_or_default();
        for check in entry["Checks"].as_array().into_iter().flatten() {
            if check["ServiceID"] == id {
                let text = |key: &str| check[key].as_str().unwrap_or_default().to_owned();
                checks.push((id.to_owned(), text("Type"), text("Status")));
            }
        }
    }
    checks
}

#[test]
fn student_service_on_consul_is_found_and_dropped_after_kill_9() {
    let _lock = seed_lock();
    let agent = consul::start();
    let address = consul::address(&agent);

    let mut service = Proc::spawn(
        SERVICE,
        &[
            "--registry=consul",
            "--register_ttl=10",
            "--register_interval=5",
            &format!("--registry_address={address}"),
        ],
        &[],
    );
    service.wait_for("registered", UP);

    // Registered with a passing TTL check.
    let checks = service_checks(agent.addr);
    assert_eq!(checks.len(), 1, "one node, one service check: {checks:?}");
    let (node_id, kind, status) = &checks[0];
    assert!(node_id.starts_with("student_service-"), "{node_id}");
    assert_eq!((kind.as_str(), status.as_str()), ("ttl", "passing"));

    // The client finds it through Consul (the agent named by `CONSUL_HTTP_ADDR` here).
    let out = run(
        CLIENT,
        &["--registry=consul"],
        &[("CONSUL_HTTP_ADDR", &address)],
    );
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    // On mDNS (no registry flag) there is no such service.
    let out = run(CLIENT, &[], &[]);
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));

    // kill -9: no deregistration; the TTL check lapses.
    service.signal("KILL");
    let killed = Instant::now();
    let limit = TTL + Duration::from_secs(10);
    loop {
        let checks = service_checks(agent.addr);
        if checks.iter().all(|(_, _, status)| status != "passing") {
            println!(
                "consul: check of {node_id} not passing {:?} after kill -9 (ttl {TTL:?}): {checks:?}",
                killed.elapsed()
            );
            break;
        }
        assert!(
            killed.elapsed() < limit,
            "still passing {limit:?} after kill -9: {checks:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(
        CLIENT,
        &[
            "--registry=consul",
            &format!("--registry_address={address}"),
        ],
        &[],
    );
    println!(
        "client: not selecting it {:?} after kill -9",
        killed.elapsed()
    );
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
}
