//! The consul registry against a real Consul agent (`consul agent -dev`, built by
//! `scripts/consul.sh`) on loopback, where the conformance suite does not reach: go-micro's
//! registration as Consul stores it, what goes over the wire (through a byte-for-byte tap in
//! front of the agent), heartbeats that only pass the check, the fallback to a full
//! registration, `warning` versus `critical`, ACL tokens, blocking-query latency, failover
//! between addresses, and the watch of every service.
//!
//! Measured numbers are printed (`--nocapture`); assertions only bound waits.
#![cfg(feature = "consul")]

mod ports;

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ports::free_port;
use rmicro::registry::consul::{ConsulOptions, ConsulRegistry};
use rmicro::registry::{
    Action, Endpoint, Metadata, Node, RegisterOptions, Registry, Service, Value, WatchOptions,
};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "3f1c7a36-5b0e-4c4e-9d0a-rmicro-test";

/// A `consul agent -dev` on free loopback ports, in a temporary directory; killed on drop.
struct Consul {
    child: Child,
    dir: PathBuf,
    http: SocketAddr,
}

/// Four different free loopback ports (held together while picked); serf's two (the second
/// and third) are free for UDP too.
fn distinct_ports() -> [u16; 4] {
    loop {
        let held: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        if ports[1..3]
            .iter()
            .all(|p| std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok())
        {
            return [ports[0], ports[1], ports[2], ports[3]];
        }
    }
}

fn consul_program() -> PathBuf {
    let cached =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/rmicro/bin/consul"));
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("consul"))
            .find(|p| p.is_file())
    });
    on_path
        .or(cached.filter(|p| p.is_file()))
        .expect("`consul` is not installed: run `bash scripts/setup.sh`")
}

impl Consul {
    fn start() -> Consul {
        Self::start_with(None)
    }

    /// With ACLs on (default deny) and `management` as the management token.
    fn start_with(management: Option<&str>) -> Consul {
        let dir = std::env::temp_dir().join(format!("rmicro-consul-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let [http, lan, wan, rpc] = distinct_ports();
        let log = std::fs::File::create(dir.join("consul.log")).expect("log");
        let mut cmd = Command::new(consul_program());
        cmd.args(["agent", "-dev", "-bind=127.0.0.1", "-client=127.0.0.1"])
            .args(["-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1"])
            .args(["-log-level=warn", "-hcl=disable_update_check = true"])
            .arg(format!("-http-port={http}"))
            .arg(format!("-serf-lan-port={lan}"))
            .arg(format!("-serf-wan-port={wan}"))
            .arg(format!("-server-port={rpc}"))
            .arg(format!("-data-dir={}", dir.join("data").display()));
        if let Some(token) = management {
            cmd.arg(format!(
                "-hcl=acl {{\n enabled = true\n default_policy = \"deny\"\n tokens {{ initial_management = \"{token}\" }}\n}}"
            ));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start consul");
        let consul = Consul {
            child,
            dir,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !consul.ready(management) {
            assert!(
                Instant::now() < deadline,
                "consul not ready within 30s:\n{}",
                std::fs::read_to_string(consul.dir.join("consul.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        consul
    }

    fn ready(&self, token: Option<&str>) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.http, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let auth = token.map_or(String::new(), |t| format!("X-Consul-Token: {t}\r\n"));
        let request = format!("GET /v1/catalog/services HTTP/1.0\r\n{auth}\r\n");
        if std::io::Write::write_all(&mut s, request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") && answer.contains("\"consul\"")
    }

    fn address(&self) -> String {
        self.http.to_string()
    }

    fn registry(&self) -> ConsulRegistry {
        ConsulRegistry::new(ConsulOptions::default().addresses([self.address()])).expect("registry")
    }

    /// The agent's own answer to `GET path`, as JSON.
    async fn raw(&self, path: &str) -> Json {
        let url = format!("http://{}{path}", self.http);
        reqwest::Client::new()
            .get(&url)
            .header("X-Consul-Token", TOKEN)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .expect("json")
    }

    /// `PUT path` straight to the agent, behind the registry's back.
    async fn put(&self, path: &str) {
        let url = format!("http://{}{path}", self.http);
        reqwest::Client::new()
            .put(&url)
            .header("X-Consul-Token", TOKEN)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    }

    async fn check_status(&self, node_id: &str) -> Option<String> {
        let checks = self.raw("/v1/agent/checks").await;
        checks[format!("service:{node_id}")]["Status"]
            .as_str()
            .map(str::to_owned)
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP forwarder in front of the agent that keeps every byte the client sends: what the
/// registry puts on the wire, answered by the real agent.
struct Tap {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tap {
    async fn start(upstream: SocketAddr) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind tap");
        let addr = listener.local_addr().expect("tap address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match client_rx.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            log.lock().expect("tap log").extend_from_slice(&buf[..n]);
                            if server_tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_tx.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                        let _ = client_tx.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Tap { addr, sent, task }
    }

    /// Everything sent so far, and forgets it.
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.sent.lock().expect("tap log"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
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
    md.insert("registry".into(), "consul".into());
    md.insert("go.micro/zone".into(), "a".into());
    let mut ep_md = Metadata::new();
    ep_md.insert("stream".into(), "false".into());
    Service {
        name: name.into(),
        version: "v1.0.0".into(),
        metadata: Metadata::new(),
        endpoints: vec![Endpoint {
            name: "StudentService.GetStudent".into(),
            request: Some(Value {
                name: "StudentRequest".into(),
                type_: "StudentRequest".into(),
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

async fn node_ids(registry: &ConsulRegistry, name: &str) -> Vec<String> {
    registry
        .get_service(name)
        .await
        .expect("get_service")
        .into_iter()
        .flat_map(|s| s.nodes)
        .map(|n| n.id)
        .collect()
}

/// go-micro's tag decoding, written here from its description: `hex(zlib(payload))`.
fn inflate_tag(tag: &str) -> String {
    let bytes = hex::decode(&tag[2..]).expect("tag is hex");
    let mut out = String::new();
    flate2::read::ZlibDecoder::new(bytes.as_slice())
        .read_to_string(&mut out)
        .expect("tag is zlib");
    out
}

/// What Consul stores is what a go-micro peer reads: one `t-` tag per metadata pair holding
/// `{"key":"value"}`, one `e-` tag per endpoint holding its JSON, one `v-` tag holding the
/// version, the address split into `Address` and `Port`, and a passing TTL check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_stores_go_micros_registration() {
    let consul = Consul::start();
    let registry = consul.registry();
    let name = unique("go.micro.srv.student");
    let s = service(&name, "a");
    let id = &s.nodes[0].id;
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register");

    let services = consul.raw("/v1/agent/services").await;
    let stored = &services[id.as_str()];
    assert_eq!(stored["ID"], id.as_str(), "{services:#}");
    assert_eq!(stored["Service"], name.as_str());
    assert_eq!(stored["Address"], "127.0.0.1");
    assert_eq!(stored["Port"], 4000);
    assert_eq!(
        stored["Meta"],
        serde_json::json!({"protocol": "mucp", "registry": "consul"}),
        "pairs consul accepts as meta (`go.micro/zone` is not one: tags only)"
    );
    let tags: Vec<String> = serde_json::from_value(stored["Tags"].clone()).expect("tags");
    let mut metadata = Metadata::new();
    let (mut endpoints, mut versions) = (Vec::new(), Vec::new());
    for tag in &tags {
        let payload = inflate_tag(tag);
        match &tag[..2] {
            "t-" => {
                let pair: Metadata = serde_json::from_str(&payload).expect("metadata json");
                assert_eq!(pair.len(), 1, "one pair per tag: {payload}");
                metadata.extend(pair);
            }
            "e-" => endpoints.push(serde_json::from_str::<Endpoint>(&payload).expect("endpoint")),
            "v-" => versions.push(payload),
            other => panic!("unexpected tag prefix {other}: {tag}"),
        }
    }
    assert_eq!(metadata, s.nodes[0].metadata);
    assert_eq!(endpoints, s.endpoints);
    assert_eq!(versions, ["v1.0.0"], "the version itself, not JSON");

    assert_eq!(consul.check_status(id).await.as_deref(), Some("passing"));
    let checks = consul.raw("/v1/agent/checks").await;
    assert_eq!(checks[format!("service:{id}")]["Type"], "ttl", "{checks:#}");

    // And the registry reads it back as written.
    let read = registry.get_service(&name).await.expect("get");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].version, "v1.0.0");
    assert_eq!(read[0].endpoints, s.endpoints);
    assert_eq!(read[0].nodes, s.nodes);
}

/// The wire: the registration body carries `Check: {TTL, DeregisterCriticalServiceAfter}`
/// with go-micro's durations, the check is passed at once, and a heartbeat with an unchanged
/// record is only a check pass, which keeps the check passing past its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_passes_the_ttl_check_without_registering_again() {
    let consul = Consul::start();
    let tap = Tap::start(consul.http).await;
    let registry = ConsulRegistry::new(ConsulOptions::default().addresses([tap.addr.to_string()]))
        .expect("registry");
    let name = unique("beat");
    let s = service(&name, "a");
    let id = s.nodes[0].id.clone();
    let ttl = RegisterOptions::ttl(Duration::from_secs(2));
    registry.register(&s, ttl).await.expect("register");

    let first = tap.take();
    assert!(first.contains("PUT /v1/agent/service/register "), "{first}");
    assert!(
        first.contains(r#""Check":{"TTL":"2s","DeregisterCriticalServiceAfter":"1m5s"}"#),
        "{first}"
    );
    assert!(
        first.contains(&format!("PUT /v1/agent/check/pass/service:{id} ")),
        "{first}"
    );

    // Heartbeat every second for three TTLs: the check never lapses, and nothing but
    // check passes goes over the wire.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        registry.register(&s, ttl).await.expect("heartbeat");
        assert_eq!(consul.check_status(&id).await.as_deref(), Some("passing"));
        assert_eq!(node_ids(&registry, &name).await, [id.as_str()]);
    }
    let beats = tap.take();
    assert!(!beats.contains("/v1/agent/service/register"), "{beats}");
    assert_eq!(
        beats.matches("PUT /v1/agent/check/pass/service:").count(),
        6,
        "{beats}"
    );

    // A changed record is registered in full again.
    let mut changed = s.clone();
    changed.nodes[0].metadata.insert("zone".into(), "b".into());
    registry
        .register(&changed, ttl)
        .await
        .expect("register changed");
    assert!(tap.take().contains("PUT /v1/agent/service/register "));
}

/// A check that is gone makes the heartbeat's pass fail; the registry then registers in full
/// and the check is back at once. (The check alone is removed: a service removed behind the
/// registry's back is registered again by its guard, which watches the service, before any
/// heartbeat; a test that removed the service raced the guard.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pass_falls_back_to_a_full_registration() {
    let consul = Consul::start();
    let registry = consul.registry();
    let name = unique("fallback");
    let s = service(&name, "a");
    let id = s.nodes[0].id.clone();
    let ttl = RegisterOptions::ttl(Duration::from_secs(10));
    registry.register(&s, ttl).await.expect("register");
    consul
        .put(&format!("/v1/agent/check/deregister/service:{id}"))
        .await;
    assert_eq!(
        consul.check_status(&id).await,
        None,
        "the check is gone behind the registry's back"
    );
    registry.register(&s, ttl).await.expect("heartbeat");
    assert_eq!(consul.check_status(&id).await.as_deref(), Some("passing"));
    assert_eq!(node_ids(&registry, &name).await, [id.as_str()]);
}

/// Reads drop a node whose check is critical, not one whose check is only `warning` (as
/// go-micro; a passing-only query would drop both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warning_keeps_a_node_and_critical_drops_it() {
    let consul = Consul::start();
    let registry = consul.registry();
    let name = unique("health");
    let s = service(&name, "a");
    let id = s.nodes[0].id.clone();
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .expect("register");
    consul
        .put(&format!("/v1/agent/check/warn/service:{id}"))
        .await;
    assert_eq!(consul.check_status(&id).await.as_deref(), Some("warning"));
    assert_eq!(node_ids(&registry, &name).await, [id.as_str()]);
    consul
        .put(&format!("/v1/agent/check/fail/service:{id}"))
        .await;
    assert!(node_ids(&registry, &name).await.is_empty());
}

/// With ACLs on (default deny), the token goes out as `X-Consul-Token`: with it the registry
/// registers and reads; without it Consul refuses, and the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_acl_token() {
    let consul = Consul::start_with(Some(TOKEN));
    let name = unique("acl");
    let s = service(&name, "a");
    let ttl = RegisterOptions::ttl(Duration::from_secs(10));

    let anonymous = consul.registry();
    let err = anonymous.register(&s, ttl).await.expect_err("denied");
    assert_eq!(err.code, 403, "{err:?}");
    assert!(err.detail.contains("consul"), "{}", err.detail);
    assert!(err.detail.contains(&consul.address()), "{}", err.detail);

    let with_token = ConsulRegistry::new(
        ConsulOptions::default()
            .addresses([consul.address()])
            .token(TOKEN),
    )
    .expect("registry");
    with_token
        .register(&s, ttl)
        .await
        .expect("register with token");
    assert_eq!(node_ids(&with_token, &name).await, [s.nodes[0].id.as_str()]);
    assert!(
        node_ids(&anonymous, &name).await.is_empty(),
        "anonymous reads see nothing under default deny"
    );
}

/// A watch is a blocking query: a registration is seen at once, long before the query's
/// `wait` (60 s here) would have ended it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_changes_before_the_wait_ends() {
    let consul = Consul::start();
    let writer = consul.registry();
    let reader = ConsulRegistry::new(
        ConsulOptions::default()
            .addresses([consul.address()])
            .wait(Duration::from_secs(60)),
    )
    .expect("registry");
    let name = unique("latency");
    let mut watch = reader
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    // Let the blocking query settle in before the change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = service(&name, "a");
    let start = Instant::now();
    writer
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register");
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a change within 10 s")
        .expect("stream open")
        .expect("no error");
    let latency = start.elapsed();
    println!("consul watch latency: {latency:?}");
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.service.nodes, s.nodes);

    // A check going critical is a delete, seen as fast.
    let start = Instant::now();
    consul
        .put(&format!("/v1/agent/check/fail/service:{}", s.nodes[0].id))
        .await;
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a change within 10 s")
        .expect("stream open")
        .expect("no error");
    println!("consul watch latency (critical): {:?}", start.elapsed());
    assert_eq!(change.action, Action::Delete);
    assert_eq!(change.service.nodes[0].id, s.nodes[0].id);
}

/// A watch of every service reports nodes of services that did not exist when it started,
/// and deletes them when their service goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_of_every_service_follows_new_services() {
    let consul = Consul::start();
    let registry = consul.registry();
    let mut watch = registry
        .watch(WatchOptions::default())
        .await
        .expect("watch");
    let name = unique("all");
    let s = service(&name, "a");
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .expect("register");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&Action::Delete) {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, watch.next())
            .await
            .unwrap_or_else(|_| panic!("saw only {seen:?} within 10 s"))
            .expect("stream open")
            .expect("no error");
        if change.service.name != name {
            continue;
        }
        if seen.is_empty() {
            assert_eq!(change.action, Action::Create);
            assert_eq!(change.service.nodes, s.nodes);
            registry.deregister(&s).await.expect("deregister");
        }
        seen.push(change.action);
    }
}

/// An agent that does not answer is an error naming the plugin and the address (never a
/// 404, which clients read as "no such service"); with several addresses the next one is
/// used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_agents_are_errors_and_the_next_address_is_tried() {
    let dead = format!("127.0.0.1:{}", free_port());
    let registry =
        ConsulRegistry::new(ConsulOptions::default().addresses([dead.clone()])).expect("registry");
    let err = registry.get_service("x").await.expect_err("no agent");
    assert_ne!(err.code, 404);
    assert!(err.detail.contains("consul"), "{}", err.detail);
    assert!(err.detail.contains(&dead), "{}", err.detail);
    let err = registry
        .watch(WatchOptions::service("x"))
        .await
        .err()
        .expect("no agent to watch");
    assert!(err.detail.contains(&dead), "{}", err.detail);

    let consul = Consul::start();
    let registry =
        ConsulRegistry::new(ConsulOptions::default().addresses([dead, consul.address()]))
            .expect("registry");
    let name = unique("failover");
    let s = service(&name, "a");
    registry
        .register(&s, RegisterOptions::ttl(Duration::from_secs(10)))
        .await
        .expect("register through the second address");
    let waited = eventually(Duration::from_secs(5), "node visible", || async {
        !node_ids(&registry, &name).await.is_empty()
    })
    .await;
    println!("visible after {waited:?}");
}

/// `from_config`: `--registry_address` wins over `CONSUL_HTTP_ADDR`; without either the
/// default agent address is used.
#[test]
fn registry_address_wins_over_the_environment() {
    let mut options = rmicro::config::Options::default();
    options.registry_address = "127.0.0.1:1, 127.0.0.1:2".into();
    let registry = ConsulRegistry::from_config(&options).expect("registry");
    assert_eq!(registry.options().addresses, ["127.0.0.1:1", "127.0.0.1:2"]);
    let debug = format!("{registry:?}");
    assert!(debug.contains("http://127.0.0.1:1/"), "{debug}");
}
