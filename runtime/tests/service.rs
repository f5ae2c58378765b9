//! The service lifecycle through the builder API, on the in-memory plugins: registration,
//! heartbeats that survive a lost registry and busy handlers, and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::broker::memory::MemoryBroker;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{self, RegisterOptions, Registry, WatchOptions, Watcher};
use rmicro::service::RegistrationState;
use rmicro::{Error, Routes, Service};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

/// A registry that counts registrations and can be made to fail, as a registry that is
/// restarting would.
#[derive(Debug, Clone, Default)]
struct Flaky {
    inner: MemoryRegistry,
    down: Arc<AtomicBool>,
    /// Registrations hang (a registry that accepted the connection and never answers).
    hang: Arc<AtomicBool>,
    registrations: Arc<AtomicUsize>,
}

#[async_trait]
impl Registry for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn register(&self, s: &registry::Service, o: RegisterOptions) -> rmicro::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::service_unavailable("flaky", "registry is down"));
        }
        if self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        self.registrations.fetch_add(1, Ordering::SeqCst);
        self.inner.register(s, o).await
    }
    async fn deregister(&self, s: &registry::Service) -> rmicro::Result<()> {
        self.inner.deregister(s).await
    }
    async fn get_service(&self, name: &str) -> rmicro::Result<Vec<registry::Service>> {
        self.inner.get_service(name).await
    }
    async fn list_services(&self) -> rmicro::Result<Vec<registry::Service>> {
        self.inner.list_services().await
    }
    async fn watch(&self, o: WatchOptions) -> rmicro::Result<Watcher> {
        self.inner.watch(o).await
    }
}

struct Echo;

fn routes() -> Routes<Echo> {
    Routes::new().endpoint(
        "Echo.Ping",
        rmicro::rpc::describe::describe::<Ping>(),
        rmicro::rpc::describe::describe::<Ping>(),
        |_: Arc<Echo>, p: Ping| async move {
            if p.n == 500 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if p.n == 999 {
                // Hold a runtime worker hostage, as a CPU-bound handler would.
                std::thread::sleep(Duration::from_secs(3));
            }
            Ok(Ping { n: p.n + 1 })
        },
    )
}

async fn start(name: &str, registry: &Flaky, ttl: u64, interval_ms: u64) -> Service {
    Service::builder(name)
        .ttl(Duration::from_secs(ttl))
        .interval(Duration::from_millis(interval_ms))
        .with_registry(Arc::new(registry.clone()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes())
        .start()
        .await
        .expect("start")
}

async fn nodes(registry: &Flaky, name: &str) -> Vec<String> {
    registry
        .get_service(name)
        .await
        .expect("get")
        .into_iter()
        .flat_map(|s| s.nodes)
        .map(|n| n.id)
        .collect()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().to_string()[..8])
}

#[tokio::test]
async fn registers_with_go_micro_s_record_and_deregisters_on_stop() {
    let registry = Flaky::default();
    let name = unique("svc");
    let service = start(&name, &registry, 10, 5000).await;
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("registered in time")
        .expect("registered");
    assert_eq!(service.state(), RegistrationState::Live);

    let found = registry.get_service(&name).await.expect("get");
    assert_eq!(found.len(), 1);
    let record = &found[0];
    assert_eq!(record.version, "latest");
    assert_eq!(record.endpoints[0].name, "Echo.Ping");
    let node = &record.nodes[0];
    assert!(node.id.starts_with(&format!("{name}-")), "{}", node.id);
    assert_eq!(node.id.len(), name.len() + 1 + 36);
    assert_eq!(node.address, service.address().to_string());
    for (k, v) in [
        ("protocol", "mucp"),
        ("server", "mucp"),
        ("transport", "http"),
        ("registry", "flaky"),
        ("broker", "memory"),
    ] {
        assert_eq!(node.metadata.get(k).map(String::as_str), Some(v), "{k}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let registered: u64 = node.metadata["registered"].parse().expect("Unix seconds");
    assert!(
        registered <= now && now - registered < 60,
        "registered {registered}, now {now}"
    );

    let reply: Ping = service
        .client()
        .call(&name, "Echo.Ping", &Ping { n: 1 })
        .await
        .expect("call");
    assert_eq!(reply.n, 2);

    let mut state = service.watch_state();
    service.stop().await.expect("stop");
    assert!(nodes(&registry, &name).await.is_empty());
    assert_eq!(*state.borrow_and_update(), RegistrationState::Deregistered);
}

/// A stop does not wait for a heartbeat that hangs (found by the fault suite: with a 3-member
/// etcd cluster, a re-registration in flight on a connection to a restarted member held the
/// deregistration for up to the call limit, 2.5 s).
#[tokio::test]
async fn a_stop_deregisters_at_once_while_a_heartbeat_hangs() {
    let registry = Flaky::default();
    let name = unique("hang");
    let service = start(&name, &registry, 10, 1500).await;
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("registered in time")
        .expect("registered");
    registry.hang.store(true, Ordering::SeqCst);
    // The next heartbeat (1.5 s in) is now in flight and hanging.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let started = std::time::Instant::now();
    service.stop().await.expect("stop");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the stop waited {:?} for the hanging heartbeat",
        started.elapsed()
    );
    assert!(nodes(&registry, &name).await.is_empty(), "deregistered");
}

#[tokio::test]
async fn comes_back_within_one_interval_after_the_registry_loses_it() {
    let registry = Flaky::default();
    let name = unique("svc");
    let service = start(&name, &registry, 2, 300).await;
    service.registered().await.expect("registered");

    // The registry restarts empty.
    registry
        .inner
        .deregister(service.record())
        .await
        .expect("wipe");
    assert!(nodes(&registry, &name).await.is_empty());
    let back = async {
        while nodes(&registry, &name).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // One interval is 300 ms; allow scheduling slack but far less than the 2 s TTL.
    tokio::time::timeout(Duration::from_millis(1500), back)
        .await
        .expect("re-registered within about one interval");
    service.stop().await.expect("stop");
}

#[tokio::test]
async fn reports_degraded_while_the_registry_is_down_and_recovers() {
    let registry = Flaky::default();
    let name = unique("svc");
    let service = start(&name, &registry, 3, 500).await;
    service.registered().await.expect("registered");

    registry.down.store(true, Ordering::SeqCst);
    let mut states = service.watch_state();
    let degraded = async {
        loop {
            if let RegistrationState::Degraded { error, attempts } = &*states.borrow_and_update() {
                return (error.clone(), *attempts);
            }
            states.changed().await.expect("state");
        }
    };
    let (error, attempts) = tokio::time::timeout(Duration::from_secs(5), degraded)
        .await
        .expect("degraded reported");
    assert!(attempts >= 1);
    assert_eq!(error.detail, "registry is down");
    assert!(service.state().to_string().contains("registry is down"));

    registry.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("live again in time")
        .expect("live again");
    assert!(!nodes(&registry, &name).await.is_empty());
    service.stop().await.expect("stop");
}

/// A current-thread runtime has exactly one worker; a handler that blocks it stops every
/// other task of that runtime. The heartbeat has its own thread, so it carries on.
#[tokio::test(flavor = "current_thread")]
async fn a_handler_that_blocks_the_runtime_does_not_starve_the_heartbeat() {
    let registry = Flaky::default();
    let name = unique("svc");
    let service = start(&name, &registry, 2, 200).await;
    service.registered().await.expect("registered");
    let address = service.address().to_string();
    let client = service.client().clone();

    // The call blocks this runtime's only thread for 3 s inside the handler.
    let before = registry.registrations.load(Ordering::SeqCst);
    let reply: Ping = client
        .call_with(
            &name,
            "Echo.Ping",
            &Ping { n: 999 },
            rmicro::rpc::CallOptions {
                address: Some(address),
                ..Default::default()
            },
        )
        .await
        .expect("slow call");
    assert_eq!(reply.n, 1000);
    let during = registry.registrations.load(Ordering::SeqCst) - before;
    // 3 s at one registration per 200 ms: about 15; demand far fewer to stay robust.
    assert!(
        during >= 5,
        "only {during} registrations while the runtime was blocked"
    );
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_waits_for_in_flight_requests() {
    let registry = Flaky::default();
    let name = unique("svc");
    let service = start(&name, &registry, 10, 5000).await;
    let client = service.client().clone();
    let address = service.address().to_string();
    let name2 = name.clone();
    let call = tokio::spawn(async move {
        client
            .call_with::<_, Ping>(
                &name2,
                "Echo.Ping",
                &Ping { n: 500 },
                rmicro::rpc::CallOptions {
                    address: Some(address),
                    ..Default::default()
                },
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.stop().await.expect("stop");
    let reply = call.await.expect("join").expect("in-flight call finished");
    assert_eq!(reply.n, 501);
}

/// `GET path` on the service's listener: the status and the JSON body.
async fn probe(address: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let rsp = reqwest::get(format!("http://{address}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = rsp.status().as_u16();
    let body = rsp.text().await.expect("body");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

/// Polls `/health/ready` until it answers `want`, for at most `within`.
async fn ready_becomes(
    address: std::net::SocketAddr,
    want: u16,
    within: Duration,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, body) = probe(address, "/health/ready").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/health/ready still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The check named `name` in a report.
fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check `{name}` in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_paths_follow_registration_user_checks_and_shutdown() {
    use rmicro::health::Check;
    let registry = Flaky::default();
    let name = unique("health");
    let database_down = Arc::new(AtomicBool::new(false));
    let down = Arc::clone(&database_down);
    let address = Arc::new(std::sync::OnceLock::new());
    let during_stop = Arc::new(std::sync::Mutex::new(None));
    let (addr, seen) = (Arc::clone(&address), Arc::clone(&during_stop));
    let service = Service::builder(&name)
        .ttl(Duration::from_secs(2))
        .interval(Duration::from_millis(300))
        .with_registry(Arc::new(registry.clone()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes())
        .health_check(Check::new("database", move || {
            let down = down.load(Ordering::SeqCst);
            async move {
                if down {
                    Err("connection refused")
                } else {
                    Ok(())
                }
            }
        }))
        .health_check(Check::new("cache", || async { Err("cold") }).critical(false))
        .before_stop(move || async move {
            let address = *addr.get().expect("address set");
            *seen.lock().expect("lock") = Some(probe(address, "/health/ready").await);
            Ok(())
        })
        .start()
        .await
        .expect("start");
    let at = service.address();
    address.set(at).expect("once");

    // Live at once; ready once registered.
    assert_eq!(
        probe(at, "/health/live").await,
        (200, serde_json::json!({"status": "up"}))
    );
    let report = ready_becomes(at, 200, Duration::from_secs(5)).await;
    assert_eq!(report["status"], "up");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["server", "registry", "broker", "database", "cache"]);
    assert_eq!(
        check(&report, "cache")["status"],
        "down",
        "shown, not gating"
    );
    assert_eq!(check(&report, "cache")["critical"], false);
    assert_eq!(report["info"]["service"], name.as_str());
    assert_eq!(probe(at, "/health").await.0, 200);

    // A critical user check gates readiness, not liveness.
    database_down.store(true, Ordering::SeqCst);
    let report = ready_becomes(at, 503, Duration::from_secs(2)).await;
    assert_eq!(check(&report, "database")["error"], "connection refused");
    assert_eq!(probe(at, "/health").await.0, 503);
    assert_eq!(probe(at, "/health/live").await.0, 200);
    database_down.store(false, Ordering::SeqCst);
    ready_becomes(at, 200, Duration::from_secs(2)).await;

    // The registry refuses: still ready within the TTL (the registration stands), not once
    // the TTL has passed since the last accepted registration.
    registry.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, report) = probe(at, "/health/ready").await;
    assert_eq!(status, 200, "within the TTL: {report}");
    let report = ready_becomes(at, 503, Duration::from_secs(4)).await;
    let error = check(&report, "registry")["error"].as_str().expect("error");
    assert!(
        error.contains("longer than the TTL") && error.contains("registry is down"),
        "{error}"
    );
    registry.down.store(false, Ordering::SeqCst);
    ready_becomes(at, 200, Duration::from_secs(3)).await;

    // From the start of a graceful stop (before deregistration): not ready.
    service.stop().await.expect("stop");
    let (status, report) = during_stop.lock().expect("lock").take().expect("probed");
    assert_eq!(status, 503, "{report}");
    assert!(
        check(&report, "server")["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopping")),
        "{report}"
    );
}

/// `--health_address` moves the health paths and `/metrics` to a listener of their own: the
/// server's address no longer serves them (mucp goes on), the health address serves nothing
/// else, and it answers 503 while the service stops, then closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_address_moves_the_probes_and_metrics_to_their_own_listener() {
    let name = unique("healthaddr");
    let mut code = rmicro::config::Layer::default();
    code.server_name = Some(name.clone());
    let options = rmicro::config::Options::resolve(
        &code,
        |_| None,
        [
            "svc",
            "--health_address",
            "127.0.0.1:0",
            "--registry",
            "memory",
        ],
    )
    .expect("options");
    let during_stop = Arc::new(std::sync::Mutex::new(None));
    let health_at = Arc::new(std::sync::OnceLock::new());
    let (seen, at) = (Arc::clone(&during_stop), Arc::clone(&health_at));
    let service = Service::builder(&name)
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes())
        .before_stop(move || async move {
            let address = *at.get().expect("set");
            *seen.lock().expect("lock") = Some(probe(address, "/health/ready").await.0);
            Ok(())
        })
        .start_with(options)
        .await
        .expect("start");
    let (rpc, health) = (service.address(), service.health_address());
    assert_ne!(rpc, health);
    health_at.set(health).expect("once");
    ready_becomes(health, 200, Duration::from_secs(5)).await;
    let metrics = reqwest::get(format!("http://{health}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(metrics.contains("micro_requests_in_flight"), "{metrics}");
    for path in ["/health/ready", "/metrics"] {
        let rsp = reqwest::get(format!("http://{rpc}{path}"))
            .await
            .expect("get");
        assert_eq!(
            rsp.status(),
            404,
            "{path} is no longer on the server's address"
        );
    }
    let rsp = reqwest::Client::new()
        .post(format!("http://{health}/"))
        .header("Micro-Endpoint", "Echo.Ping")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(rsp.status(), 404, "no mucp on the health address");
    let reply: serde_json::Value = service
        .client()
        .call(&name, "Echo.Ping", &serde_json::json!({"n": 1}))
        .await
        .expect("mucp still on the server's address");
    assert_eq!(reply["n"], 2);
    service.stop().await.expect("stop");
    assert_eq!(*during_stop.lock().expect("lock"), Some(503));
    assert!(
        reqwest::get(format!("http://{health}/health/live"))
            .await
            .is_err(),
        "closed once stopped"
    );
}

/// go-micro's `Debug.Health`, in JSON and protobuf; served, not advertised.
#[tokio::test]
async fn debug_health_answers_go_micro_s_rpc() {
    let registry = Flaky::default();
    let name = unique("debug");
    let service = start(&name, &registry, 10, 5000).await;
    service.registered().await.expect("registered");
    let reply: serde_json::Value = service
        .client()
        .call(&name, "Debug.Health", &serde_json::json!({"service": name}))
        .await
        .expect("Debug.Health");
    assert_eq!(reply, serde_json::json!({"status": "ok"}));
    let rsp = reqwest::Client::new()
        .post(format!("http://{}/", service.address()))
        .header("Content-Type", "application/protobuf")
        .header("Micro-Endpoint", "Debug.Health")
        .header("Micro-Service", &name)
        .body(Vec::new())
        .send()
        .await
        .expect("protobuf call");
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        rsp.bytes().await.expect("body").as_ref(),
        b"\x0a\x02ok",
        "HealthResponse {{ status: \"ok\" }}"
    );
    let record = registry.get_service(&name).await.expect("get");
    assert!(
        record[0].endpoints.iter().all(|e| e.name != "Debug.Health"),
        "not advertised"
    );
    service.stop().await.expect("stop");
}

/// `/metrics` in the OpenMetrics text format; 1,000 distinct endpoints that do not exist add
/// one series (`unknown`), not 1,000.
#[tokio::test]
async fn metrics_stay_bounded_under_unknown_endpoints() {
    let registry = Flaky::default();
    let name = unique("bounded");
    let service = start(&name, &registry, 10, 5000).await;
    // `start` returns before the first registration lands; a call before it finds no node.
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("registered in time")
        .expect("registered");
    let client = reqwest::Client::new();
    let scrape = || async {
        let rsp = client
            .get(format!("http://{}/metrics", service.address()))
            .send()
            .await
            .expect("scrape");
        assert_eq!(rsp.status(), 200);
        assert!(
            rsp.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            rsp.headers()
        );
        rsp.text().await.expect("body")
    };
    for i in 0..1000 {
        let e = service
            .client()
            .call::<_, Ping>(&name, &format!("Nope.E{i}"), &Ping { n: 1 })
            .await
            .expect_err("unknown endpoint");
        assert_eq!(e.code, 404, "{e}");
    }
    let text = scrape().await;
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    // The server's series: its endpoints (made at start, at 0) and `unknown`.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("micro_request_total{") && l.contains(&name))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:#?}");
    assert!(
        ours.contains(&format!(
            "micro_request_total{{service=\"{name}\",endpoint=\"unknown\",status=\"fail\",code=\"404\"}} 1000"
        ).as_str()),
        "{ours:#?}"
    );
    assert!(
        ours.iter().all(|l| !l.contains("Nope.")),
        "no series per unknown endpoint: {ours:#?}"
    );
    service.stop().await.expect("stop");
}
