//! The dns registry (go-micro's dns selector) against a real DNS server on loopback (dnsmasq):
//! SRV records become nodes, `host:port` names resolve through A/AAAA records, a name with no
//! records is no service, the A-record fallback with a default port, a watch that follows the
//! records as they change, and an unreachable server reported as such. The registry conformance
//! suite does not apply: DNS is read-only, as in go-micro.
#![cfg(feature = "dns")]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rmicro::registry::dns::{DnsOptions, DnsRegistry};
use rmicro::registry::{Action, RegisterOptions, Registry as _, Service, WatchOptions};
use rmicro_conformance::servers::dnsmasq::Dnsmasq;
use rmicro_conformance::servers::free_port;

fn records(list: &[&str]) -> Vec<String> {
    list.iter().map(|r| (*r).to_owned()).collect()
}

fn registry(dns: &Dnsmasq, tune: impl FnOnce(&mut DnsOptions)) -> DnsRegistry {
    let mut opts = DnsOptions::from_address(&dns.addr().to_string()).expect("address");
    tune(&mut opts);
    DnsRegistry::new(opts).expect("registry")
}

fn addresses(services: &[Service]) -> Vec<String> {
    let mut found: Vec<String> = services
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.address.clone()))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_are_the_nodes() {
    let dns = Dnsmasq::start(&records(&[
        "--srv-host=_greeter._tcp.local,node1.local,8080,0,10",
        "--srv-host=_greeter._tcp.local,node2.local,9090,0,10",
        "--host-record=node1.local,127.0.0.1",
        "--host-record=node2.local,127.0.0.2,::1",
    ]));
    let registry = registry(&dns, |_| {});
    let found = registry.get_service("greeter").await.expect("get");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, "greeter");
    assert_eq!(
        found[0].version, "",
        "DNS carries no version, as with go-micro"
    );
    assert_eq!(
        addresses(&found),
        ["127.0.0.1:8080", "127.0.0.2:9090", "[::1]:9090"]
    );
    let ids: Vec<&str> = found[0].nodes.iter().map(|n| n.id.as_str()).collect();
    assert!(ids.contains(&"node1.local."), "go-micro's ids: {ids:?}");
    assert!(ids.contains(&"node2.local."), "{ids:?}");

    // `host:port`: go-micro's LookupHost path.
    let found = registry.get_service("node1.local:7000").await.expect("get");
    assert_eq!(addresses(&found), ["127.0.0.1:7000"]);
    assert_eq!(found[0].nodes[0].id, "127.0.0.1");

    // No records, no service; registering is accepted and changes nothing.
    assert!(
        registry
            .get_service("missing")
            .await
            .expect("get")
            .is_empty()
    );
    registry
        .register(&found[0], RegisterOptions::ttl(Duration::from_secs(5)))
        .await
        .expect("read-only register is a no-op");
    assert!(registry.list_services().await.expect("list").is_empty());
    assert!(
        registry.watch(WatchOptions::default()).await.is_err(),
        "DNS cannot be listed, so it cannot be watched whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_with_a_default_port_when_there_is_no_srv() {
    let dns = Dnsmasq::start(&records(&["--host-record=students.local,127.0.0.9"]));
    assert!(
        registry(&dns, |_| {})
            .get_service("students")
            .await
            .expect("get")
            .is_empty(),
        "no fallback unless a default port is set (go-micro has none)"
    );
    let with_port = registry(&dns, |o| o.default_port = Some(8081));
    let found = with_port.get_service("students").await.expect("get");
    assert_eq!(addresses(&found), ["127.0.0.9:8081"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_follows_the_records() {
    let mut dns = Dnsmasq::start(&records(&[
        "--srv-host=_greeter._tcp.local,node1.local,8080",
        "--host-record=node1.local,127.0.0.1",
    ]));
    let registry = registry(&dns, |o| o.refresh = Duration::from_secs(1));
    let mut watch = registry
        .watch(WatchOptions::service("greeter"))
        .await
        .expect("watch");

    // A second node appears, the first goes.
    dns.serve(&records(&[
        "--srv-host=_greeter._tcp.local,node2.local,8080",
        "--host-record=node2.local,127.0.0.2",
    ]));
    let changed = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("a change within 10s")
            .expect("watch open")
            .expect("no error");
        seen.push((change.action, change.service.nodes[0].address.clone()));
    }
    seen.sort_by_key(|(_, addr)| addr.clone());
    assert_eq!(
        seen,
        [
            (Action::Delete, "127.0.0.1:8080".to_owned()),
            (Action::Create, "127.0.0.2:8080".to_owned())
        ]
    );
    println!(
        "measured: DNS change seen by the watch after {:?}",
        changed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_an_error_naming_it() {
    let port = free_port();
    let registry =
        DnsRegistry::new(DnsOptions::from_address(&format!("127.0.0.1:{port}")).expect("address"))
            .expect("built without a server");
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), registry.get_service("greeter"))
        .await
        .expect("fails within 30s")
        .expect_err("nothing answers");
    println!(
        "measured: unreachable DNS server -> error in {:?}: {}",
        started.elapsed(),
        err.detail
    );
    assert_eq!(err.code, 503, "{err:?}");
    assert!(
        err.detail.contains(&format!("127.0.0.1:{port}")),
        "{}",
        err.detail
    );
}
