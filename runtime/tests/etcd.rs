//! The etcd registry against a real etcd (Debian's 3.4) on loopback, where the conformance
//! suite does not reach: go-micro's wire format read back through etcd's own JSON gateway
//! (a path independent of the registry's gRPC client), a lease
//! revoked behind the registry's back, heartbeats that only renew, and a watch that resumes
//! after etcd restarts with its data.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "etcd")]

mod ports;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use ports::free_port;
use rmicro::registry::etcd::{EtcdOptions, EtcdRegistry, node_key};
use rmicro::registry::{
    Action, Change, Endpoint, Metadata, Node, RegisterOptions, Registry, Service, Value,
    WatchOptions, Watcher,
};
use rmicro::{Routes, Service as MicroService};

/// An etcd process on two free loopback ports, its data in a temporary directory; killed
/// and removed on drop.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Extra command-line arguments.
    args: Vec<String>,
}

impl Etcd {
    fn start() -> Etcd {
        Self::start_with(&[])
    }

    /// Starts etcd with `args` on two free ports. A port can be taken between choosing it
    /// and etcd binding it (by a test running alongside): then etcd exits, and it is started
    /// again on other ports.
    fn start_with(args: &[&str]) -> Etcd {
        let dir = std::env::temp_dir().join(format!("rmicro-etcd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut etcd = Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        for _ in 0..5 {
            match etcd.try_spawn() {
                Ok(()) => return etcd,
                Err(log) if log.contains("address already in use") => {
                    etcd.kill();
                    let _ = std::fs::remove_dir_all(etcd.dir.join("data"));
                    let _ = std::fs::remove_file(etcd.dir.join("etcd.log"));
                    etcd.client_port = free_port();
                    etcd.peer_port = free_port();
                }
                Err(log) => panic!("{log}"),
            }
        }
        panic!("etcd found no free ports in 5 tries")
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("{log}");
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Starts etcd and waits until it is healthy; `Err(log)` if it exits or takes 20 s.
    fn try_spawn(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("log");
        let child = Command::new("etcd")
            .args(["--name", "default", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("etcd is installed (bash scripts/setup.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let log_path = self.dir.join("etcd.log");
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        loop {
            // A health answer counts only while our etcd runs: another test's etcd may be
            // the one listening on a port that was taken.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("etcd exited with {status}:\n{}", log()));
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("etcd not healthy within 20s:\n{}", log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills etcd (as a crash does) and starts it again with its data.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn registry(&self) -> EtcdRegistry {
        EtcdRegistry::new(EtcdOptions::from_address(&self.endpoint()).expect("address"))
            .expect("registry")
    }

    async fn raw(&self) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            base: self.endpoint(),
        }
    }
}

/// etcd read and written through its gRPC-JSON gateway (`/v3/...`, etcd 3.4+): keys and
/// values in base64, 64-bit numbers as strings.
#[derive(Clone)]
struct Raw {
    http: reqwest::Client,
    base: String,
}

/// A key-value pair as etcd returns it.
struct Kv {
    key: String,
    value: Vec<u8>,
    lease: i64,
    mod_revision: i64,
}

/// A 64-bit number of the gateway's JSON (a string, or absent for zero).
fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().expect("a number"),
        serde_json::Value::Number(n) => n.as_i64().expect("an i64"),
        _ => 0,
    }
}

impl Raw {
    async fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.http
            .post(format!("{}/v3/{path}", self.base))
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("etcd {path}: {e}"))
            .json()
            .await
            .expect("JSON answer")
    }

    async fn range(&self, body: serde_json::Value) -> Vec<Kv> {
        let rsp = self.call("kv/range", body).await;
        rsp["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| Kv {
                        key: String::from_utf8(
                            B64.decode(kv["key"].as_str().expect("key"))
                                .expect("base64"),
                        )
                        .expect("utf-8"),
                        value: B64
                            .decode(kv["value"].as_str().unwrap_or_default())
                            .expect("base64"),
                        lease: int(&kv["lease"]),
                        mod_revision: int(&kv["mod_revision"]),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn get(&self, key: &str) -> Vec<Kv> {
        self.range(serde_json::json!({"key": B64.encode(key)}))
            .await
    }

    /// Every key under `prefix` (whose last byte is below 0xff).
    async fn get_prefix(&self, prefix: &str) -> Vec<Kv> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("a prefix") += 1;
        self.range(serde_json::json!({"key": B64.encode(prefix), "range_end": B64.encode(end)}))
            .await
    }

    /// Writes `key` (under `lease` unless 0); the store's revision after it.
    async fn put(&self, key: &str, value: &str, lease: i64) -> i64 {
        let rsp = self
            .call(
                "kv/put",
                serde_json::json!({"key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string()}),
            )
            .await;
        int(&rsp["header"]["revision"])
    }

    async fn delete(&self, key: &str) {
        self.call(
            "kv/deleterange",
            serde_json::json!({"key": B64.encode(key)}),
        )
        .await;
    }

    async fn compact(&self, revision: i64) {
        self.call(
            "kv/compaction",
            serde_json::json!({"revision": revision.to_string(), "physical": true}),
        )
        .await;
    }

    async fn lease_grant(&self, ttl: i64) -> i64 {
        int(&self
            .call("lease/grant", serde_json::json!({"TTL": ttl.to_string()}))
            .await["ID"])
    }

    async fn lease_revoke(&self, id: i64) {
        self.call("lease/revoke", serde_json::json!({"ID": id.to_string()}))
            .await;
    }

    /// The lease's (remaining TTL, granted TTL); a TTL of -1 means etcd does not know it.
    async fn lease_ttl(&self, id: i64) -> (i64, i64) {
        let rsp = self
            .call(
                "lease/timetolive",
                serde_json::json!({"ID": id.to_string()}),
            )
            .await;
        (int(&rsp["TTL"]), int(&rsp["grantedTTL"]))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn service(name: &str, node: &str) -> Service {
    let mut md = Metadata::new();
    md.insert("protocol".into(), "mucp".into());
    md.insert("registry".into(), "etcd".into());
    let mut ep_md = Metadata::new();
    ep_md.insert("stream".into(), "false".into());
    Service {
        name: name.into(),
        version: "v1.0.0".into(),
        metadata: Metadata::new(),
        endpoints: vec![Endpoint {
            name: "Student.Get".into(),
            request: Some(Value {
                name: "Req".into(),
                type_: "Req".into(),
                values: vec![],
            }),
            response: None,
            metadata: ep_md,
        }],
        nodes: vec![Node {
            id: format!("{name}-{node}"),
            address: "127.0.0.1:4000".into(),
            metadata: md,
        }],
    }
}

async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// A service whose listing is larger than gRPC's default 4 MiB limit on a reply (thousands of
/// nodes do that; here 48 nodes of 100 KiB of metadata each) is listed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_a_service_larger_than_four_mebibytes() {
    let etcd = Etcd::start();
    let registry = etcd.registry();
    let name = unique("big");
    let nodes = 48;
    for i in 0..nodes {
        let mut s = service(&name, &format!("n{i}"));
        s.nodes[0]
            .metadata
            .insert("padding".into(), "x".repeat(100 * 1024));
        registry
            .register(&s, RegisterOptions::ttl(Duration::from_secs(60)))
            .await
            .expect("register");
    }
    let listed = registry.get_service(&name).await.expect("get_service");
    let count: usize = listed.iter().map(|s| s.nodes.len()).sum();
    assert_eq!(
        count,
        nodes,
        "every node of a {} MiB listing",
        nodes * 100 / 1024
    );
}

/// What a go-micro peer reads: the key, the JSON value (one node, go-micro's field names) and
/// a lease of the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_micros_key_and_json_under_a_lease() {
    let etcd = Etcd::start();
    let registry = etcd.registry();
    let raw = etcd.raw().await;
    let name = unique("go.micro.srv.student");
    let s = service(&name, "a");
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register");

    let key = format!("/micro/registry/{name}/{name}-a");
    assert_eq!(node_key(&name, &s.nodes[0].id), key);
    let kvs = raw.get_prefix("/micro/registry/").await;
    assert_eq!(kvs.len(), 1);
    let kv = &kvs[0];
    assert_eq!(kv.key, key);
    let json: serde_json::Value = serde_json::from_slice(&kv.value).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "name": name,
            "version": "v1.0.0",
            "metadata": {},
            "endpoints": [{
                "name": "Student.Get",
                "request": {"name": "Req", "type": "Req", "values": []},
                "response": null,
                "metadata": {"stream": "false"}
            }],
            "nodes": [{
                "id": format!("{name}-a"),
                "address": "127.0.0.1:4000",
                "metadata": {"protocol": "mucp", "registry": "etcd"}
            }]
        })
    );
    assert_ne!(kv.lease, 0, "the key is under a lease");
    assert_eq!(raw.lease_ttl(kv.lease).await.1, 10, "granted TTL");

    // Registering again unchanged only renews the lease: no write.
    let rev = kv.mod_revision;
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register again");
    let again = raw.get(&key).await;
    assert_eq!(again[0].mod_revision, rev, "unchanged record not rewritten");
    assert_eq!(again[0].lease, kv.lease);

    // A changed record is written again, under the same lease.
    let mut changed = s.clone();
    changed.nodes[0].address = "127.0.0.1:4001".into();
    registry
        .register(&changed, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register changed");
    let after = raw.get(&key).await;
    assert!(after[0].mod_revision > rev);
    assert_eq!(after[0].lease, kv.lease);
    assert!(String::from_utf8_lossy(&after[0].value).contains("127.0.0.1:4001"));

    // Deregister deletes the key and revokes the lease.
    registry.deregister(&changed).await.expect("deregister");
    assert!(raw.get(&key).await.is_empty());
    assert_eq!(raw.lease_ttl(kv.lease).await.0, -1, "lease revoked");
}

/// A record as go-micro (Go's encoding/json) writes it, with `null` for nil maps and slices,
/// is read by `get_service`, `list_services` and a watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_what_a_go_micro_peer_writes() {
    let etcd = Etcd::start();
    let registry = etcd.registry();
    let raw = etcd.raw().await;
    let name = unique("go.micro.srv.greeter");
    let mut watch = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let id = format!("{name}-5f0c");
    let value = format!(
        r#"{{"name":"{name}","version":"latest","metadata":null,"endpoints":[{{"name":"Say.Hello","request":{{"name":"Request","type":"Request","values":[{{"name":"name","type":"string","values":null}}]}},"response":{{"name":"Response","type":"Response","values":null}},"metadata":{{"stream":"false"}}}}],"nodes":[{{"id":"{id}","address":"10.1.2.3:54321","metadata":{{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"}}}}]}}"#
    );
    let lease = raw.lease_grant(30).await;
    let put_at = Instant::now();
    raw.put(&format!("/micro/registry/{name}/{id}"), &value, lease)
        .await;

    let change = next_change(&mut watch, 5, "watch event")
        .await
        .expect("no watch error");
    let latency = put_at.elapsed();
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.service.nodes[0].id, id);
    eprintln!("measured: watch event {latency:?} after the put");

    let got = registry.get_service(&name).await.expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, "latest");
    assert_eq!(got[0].nodes[0].address, "10.1.2.3:54321");
    assert_eq!(got[0].endpoints[0].name, "Say.Hello");
    assert!(got[0].metadata.is_empty());
    let listed = registry.list_services().await.expect("list");
    assert!(listed.iter().any(|s| s.name == name && s.nodes.len() == 1));

    // Revoking the Go peer's lease deletes the key: the watch reports which node went away.
    raw.lease_revoke(lease).await;
    let change = next_change(&mut watch, 5, "delete")
        .await
        .expect("no watch error");
    assert_eq!(change.action, Action::Delete);
    assert_eq!(change.service.nodes[0].id, id);
    assert_eq!(
        change.service.nodes[0].address, "10.1.2.3:54321",
        "from prev_kv"
    );
}

/// A lease revoked out of band (an operator, or etcd losing it) is granted again and the node
/// written again, by the next register call and by a running service's heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_granted_and_written_again() {
    let etcd = Etcd::start();
    let raw = etcd.raw().await;
    let registry = etcd.registry();
    let name = unique("lease");
    let s = service(&name, "a");
    let key = node_key(&name, &s.nodes[0].id);
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    registry.register(&s, ttl).await.expect("register");
    let first = raw.get(&key).await[0].lease;
    raw.lease_revoke(first).await;
    assert!(raw.get(&key).await.is_empty());

    registry.register(&s, ttl).await.expect("register again");
    let rsp = raw.get(&key).await;
    assert_eq!(rsp.len(), 1, "node written again");
    let second = rsp[0].lease;
    assert!(second != 0 && second != first, "under a new lease");

    // A key deleted behind the registry's back while its lease lives is written again too.
    raw.delete(&key).await;
    registry.register(&s, ttl).await.expect("register again");
    assert_eq!(lease_of(&raw, &key).await, second, "back, same lease");

    // The same through a running service's heartbeat (interval 1 s).
    let svc_name = unique("lease-svc");
    let svc = MicroService::builder(svc_name.clone())
        .ttl(Duration::from_secs(30))
        .interval(Duration::from_secs(1))
        .with_registry(Arc::new(etcd.registry()))
        .with_broker(Arc::new(rmicro::broker::memory::MemoryBroker::new()))
        .free_subscribers(false)
        .handler((), Routes::<()>::new())
        .start()
        .await
        .expect("start");
    svc.registered().await.expect("registered");
    let key = node_key(&svc_name, &svc.node().id);
    let (lease, _) = wait_for_lease(&raw, &key, 0, Duration::from_secs(5)).await;
    raw.lease_revoke(lease).await;
    let (again, took) = wait_for_lease(&raw, &key, lease, Duration::from_secs(10)).await;
    assert_ne!(again, lease, "under a new lease");
    eprintln!(
        "measured: revoked lease -> node written again by the heartbeat in {took:?} (interval 1s)"
    );
    svc.stop().await.expect("stop");
    assert_eq!(lease_of(&raw, &key).await, 0, "deregistered at stop");
}

/// The watch's next item within `secs` seconds; panics with `what` if none comes or the watch
/// ended.
async fn next_change(watch: &mut Watcher, secs: u64, what: &str) -> rmicro::Result<Change> {
    tokio::time::timeout(Duration::from_secs(secs), watch.next())
        .await
        .unwrap_or_else(|_| panic!("{what} (within {secs}s)"))
        .expect("watch open")
}

/// Waits until `key` exists under a lease other than `not`: that lease and how long it took.
async fn wait_for_lease(raw: &Raw, key: &str, not: i64, within: Duration) -> (i64, Duration) {
    let start = Instant::now();
    loop {
        let lease = lease_of(raw, key).await;
        if lease != 0 && lease != not {
            return (lease, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "`{key}` not under a new lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lease of `key`, 0 when the key is absent.
async fn lease_of(raw: &Raw, key: &str) -> i64 {
    raw.get(key).await.first().map_or(0, |kv| kv.lease)
}

/// A watch whose etcd restarts (keeping its data) carries on by itself and reports what was
/// written after the restart, with no error in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_etcd_restarts() {
    let mut etcd = Etcd::start();
    let registry = etcd.registry();
    let name = unique("resume");
    let mut watch = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    let a = service(&name, "a");
    let at = Instant::now();
    registry.register(&a, ttl).await.expect("register a");
    let change = next_change(&mut watch, 5, "create")
        .await
        .expect("no error");
    eprintln!("measured: register -> watch event {:?}", at.elapsed());
    assert_eq!(
        (change.action, change.service.nodes[0].id.as_str()),
        (Action::Create, a.nodes[0].id.as_str())
    );

    tokio::task::block_in_place(|| etcd.restart());
    let restarted = Instant::now();
    // The watch is a lazy stream: it is not polled until b is written, so it can only see b
    // by resuming from the revision it saw last (a watch "from now" would miss it).
    // The first call may meet the connection etcd dropped; the heartbeat would retry too.
    let b = service(&name, "b");
    eventually(
        Duration::from_secs(10),
        "register after the restart",
        || {
            let (registry, b) = (registry.clone(), b.clone());
            async move { registry.register(&b, ttl).await.is_ok() }
        },
    )
    .await;
    let change = next_change(&mut watch, 10, "the watch resumes")
        .await
        .expect("no error: nothing was lost");
    eprintln!(
        "measured: etcd healthy again -> watch event for a write after the restart {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        (change.action, change.service.nodes[0].id.as_str()),
        (Action::Create, b.nodes[0].id.as_str())
    );

    // Node a survived the restart (its lease did): an update of it is an update.
    let mut a2 = a.clone();
    a2.nodes[0].address = "127.0.0.1:4002".into();
    registry.register(&a2, ttl).await.expect("update a");
    let change = next_change(&mut watch, 5, "update")
        .await
        .expect("no error");
    assert_eq!(
        (change.action, change.service.nodes[0].address.as_str()),
        (Action::Update, "127.0.0.1:4002")
    );
}

/// A watch whose etcd comes back empty says so (once) and goes on with new changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reports_an_etcd_that_lost_its_data() {
    let mut etcd = Etcd::start();
    let registry = etcd.registry();
    let name = unique("wiped");
    let mut watch = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    // Enough writes that the revision after the wipe is lower than the one the watch saw.
    for n in ["a", "b", "c"] {
        registry
            .register(&service(&name, n), ttl)
            .await
            .expect("register");
        let _ = next_change(&mut watch, 5, "event").await;
    }
    tokio::task::block_in_place(|| {
        etcd.kill();
        std::fs::remove_dir_all(etcd.dir.join("data")).expect("wipe");
        etcd.spawn();
    });
    let item = next_change(&mut watch, 10, "a report").await;
    let err = item.expect_err("the watch says changes may be lost");
    assert!(err.detail.contains("without its data"), "{}", err.detail);
    let d = service(&name, "d");
    eventually(Duration::from_secs(10), "register after the wipe", || {
        let (registry, d) = (registry.clone(), d.clone());
        async move { registry.register(&d, ttl).await.is_ok() }
    })
    .await;
    let change = next_change(&mut watch, 10, "new changes")
        .await
        .expect("no error");
    assert_eq!(
        (change.action, change.service.nodes[0].id.as_str()),
        (Action::Create, d.nodes[0].id.as_str())
    );
}

/// With etcd down, calls fail with an error naming the plugin and the endpoint (no panic,
/// no hang), and construction never needed etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_an_error_naming_it() {
    let port = free_port();
    let registry = EtcdRegistry::new(
        EtcdOptions::from_address(&format!("127.0.0.1:{port}")).expect("address"),
    )
    .expect("built without etcd");
    let at = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(15), registry.get_service("x"))
        .await
        .expect("fails within 15s")
        .expect_err("etcd is down");
    eprintln!(
        "measured: unreachable etcd -> error in {:?}: {}",
        at.elapsed(),
        err.detail
    );
    assert!(matches!(err.code, 503 | 408), "{err:?}");
    assert!(
        err.detail
            .contains(&format!("etcd at `http://127.0.0.1:{port}`")),
        "{}",
        err.detail
    );
    let err = registry
        .register(
            &service("x", "a"),
            RegisterOptions::ttl(Duration::from_secs(5)),
        )
        .await
        .expect_err("etcd is down");
    assert!(
        err.detail.contains("register `x` node `x-a`"),
        "{}",
        err.detail
    );
}

/// A watch that cannot resume because etcd compacted the revisions it missed says so (once)
/// and goes on with new changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reports_compacted_changes() {
    let mut etcd = Etcd::start();
    let registry = etcd.registry();
    let name = unique("compacted");
    let mut watch = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    registry
        .register(&service(&name, "a"), ttl)
        .await
        .expect("register");
    let _ = next_change(&mut watch, 5, "event").await;
    // While the watch is cut off (and not polled), changes happen and are compacted away.
    tokio::task::block_in_place(|| etcd.restart());
    let raw = etcd.raw().await;
    raw.put(&node_key(&name, "other"), "{}", 0).await;
    let rev = raw.put("/elsewhere", "x", 0).await;
    raw.compact(rev).await;
    let item = next_change(&mut watch, 10, "a report").await;
    let err = item.expect_err("the watch says changes may be lost");
    assert!(err.detail.contains("compacted"), "{}", err.detail);
    let d = service(&name, "d");
    registry.register(&d, ttl).await.expect("register d");
    let change = next_change(&mut watch, 10, "new changes")
        .await
        .expect("no error");
    assert_eq!(
        (change.action, change.service.nodes[0].id.as_str()),
        (Action::Create, d.nodes[0].id.as_str())
    );
}

/// A running service whose etcd restarts empty is written again by its heartbeat (its lease
/// is gone, so a new one is granted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_written_again_after_etcd_restarts_empty() {
    let mut etcd = Etcd::start();
    let raw = etcd.raw().await;
    let name = unique("wiped-svc");
    let svc = MicroService::builder(name.clone())
        .ttl(Duration::from_secs(30))
        .interval(Duration::from_secs(1))
        .with_registry(Arc::new(etcd.registry()))
        .with_broker(Arc::new(rmicro::broker::memory::MemoryBroker::new()))
        .free_subscribers(false)
        .handler((), Routes::<()>::new())
        .start()
        .await
        .expect("start");
    svc.registered().await.expect("registered");
    let key = node_key(&name, &svc.node().id);
    let (lease, _) = wait_for_lease(&raw, &key, 0, Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| {
        etcd.kill();
        std::fs::remove_dir_all(etcd.dir.join("data")).expect("wipe");
        etcd.spawn();
    });
    let (_, took) = wait_for_lease(&raw, &key, lease, Duration::from_secs(10)).await;
    eprintln!(
        "measured: etcd healthy again (empty) -> node written again in {took:?} (interval 1s)"
    );
    svc.stop().await.expect("stop");
}

/// With etcd's authentication on, the registry authenticates with the address's credentials,
/// and authenticates again when its token expires (etcd's simple tokens expire when idle: 1 s
/// here); a wrong password is a 401 naming etcd, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticates_and_renews_an_expired_token() {
    let etcd = Etcd::start_with(&["--auth-token-ttl", "1"]);
    let raw = etcd.raw().await;
    raw.call("auth/role/add", serde_json::json!({"name": "root"}))
        .await;
    raw.call(
        "auth/user/add",
        serde_json::json!({"name": "root", "password": "s3cret"}),
    )
    .await;
    raw.call(
        "auth/user/grant",
        serde_json::json!({"user": "root", "role": "root"}),
    )
    .await;
    raw.call("auth/enable", serde_json::json!({})).await;

    let address = format!("http://root:s3cret@127.0.0.1:{}", etcd.client_port);
    let registry =
        EtcdRegistry::new(EtcdOptions::from_address(&address).expect("address")).expect("registry");
    let name = unique("auth");
    let s = service(&name, "a");
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    registry
        .register(&s, ttl)
        .await
        .expect("register with credentials");
    let mut watch = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch with credentials");

    // Idle past the token's TTL: the next calls find it expired and authenticate again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = registry.get_service(&name).await.expect("get after expiry");
    assert_eq!(got[0].nodes[0].id, s.nodes[0].id);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b = service(&name, "b");
    registry
        .register(&b, ttl)
        .await
        .expect("register after expiry");
    let change = next_change(&mut watch, 5, "event")
        .await
        .expect("no watch error");
    assert_eq!(change.service.nodes[0].id, b.nodes[0].id);

    let wrong = format!("http://root:wrong@127.0.0.1:{}", etcd.client_port);
    let registry =
        EtcdRegistry::new(EtcdOptions::from_address(&wrong).expect("address")).expect("registry");
    let err = tokio::time::timeout(Duration::from_secs(10), registry.get_service(&name))
        .await
        .expect("answers within 10s")
        .expect_err("wrong password");
    assert_eq!(err.code, 401, "{err:?}");
    assert!(
        err.detail.contains("authentication failed"),
        "{}",
        err.detail
    );
    assert!(
        !err.detail.contains("wrong"),
        "no password in errors: {}",
        err.detail
    );
}
