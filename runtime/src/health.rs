//! Health: the checks behind a service's `/health`, `/health/live` and `/health/ready`, in
//! go-micro v5's shape (its `health` package).
//!
//! Every service answers these on its RPC listener (`GET`, next to mucp's `POST /`):
//!
//! - `GET /health/live`: `200 {"status":"up"}` while the process serves.
//! - `GET /health/ready` and `GET /health`: every check run (concurrently, each bounded by
//!   its timeout), `200` when every critical check is up, `503` otherwise, with the report:
//!
//! ```json
//! {"status":"down","checks":[{"name":"registry","status":"down","error":"registering: the registry has not accepted this node yet","critical":true,"duration":1200}],"info":{"service":"student_service"}}
//! ```
//!
//! `duration` is in nanoseconds and `error` is absent for a check that passed, as in
//! go-micro; `critical` is rmicro's addition. A service has three critical checks of its
//! own: `registry` (down while the first registration is under way, once the registry has
//! refused re-registration for longer than the TTL, since the registration may have expired,
//! and after deregistration), `broker` (down while the broker plugin reports itself
//! disconnected, see [`Broker::connected`](crate::broker::Broker::connected); plugins that
//! cannot tell count as up) and `server` (down from the moment a
//! graceful stop begins, so that a load balancer drains the node before it deregisters).
//! Users add their own with [`ServiceBuilder::health_check`](crate::ServiceBuilder::health_check):
//!
//! ```no_run
//! # async fn ping_database() -> Result<(), std::io::Error> { Ok(()) }
//! use rmicro::health::Check;
//! # let builder = rmicro::Service::builder("student_service");
//! let builder = builder.health_check(Check::new("database", || async { ping_database().await }));
//! ```
//!
//! A probe never takes a lock a handler needs: checks run in the probe's own connection task,
//! and the built-in ones read state the service keeps anyway.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// go-micro's default check timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One named check: a function that succeeds while the thing it checks is healthy.
#[derive(Clone)]
pub struct Check {
    name: String,
    critical: bool,
    timeout: Duration,
    run: CheckFn,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A critical check (it gates readiness) with go-micro's 5 s timeout, as go-micro's
    /// `health.Register`. The error's text is what the report shows.
    pub fn new<F, Fut, E>(name: impl Into<String>, check: F) -> Check
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let check = Arc::new(check);
        Check {
            name: name.into(),
            critical: true,
            timeout: DEFAULT_TIMEOUT,
            run: Arc::new(move || {
                let fut = check();
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
            }),
        }
    }

    /// Whether a failure makes the service not ready (default `true`). A non-critical
    /// check that fails shows in the report, and the service stays ready.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Check {
        self.critical = critical;
        self
    }

    /// How long the check may take before it counts as failed (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Check {
        self.timeout = timeout;
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self) -> CheckResult {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, (self.run)()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        CheckResult {
            name: self.name.clone(),
            status: if outcome.is_ok() {
                Status::Up
            } else {
                Status::Down
            },
            error: outcome.err(),
            critical: self.critical,
            duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// `up` or `down`, as go-micro writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Up,
    /// Not healthy.
    Down,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Why it is down; absent when up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether it gates readiness.
    #[serde(default)]
    pub critical: bool,
    /// How long it took, in nanoseconds (go-micro's `time.Duration` in JSON).
    pub duration: u64,
}

/// What `/health` and `/health/ready` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `down` when a critical check is down.
    pub status: Status,
    /// Every check, in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Facts about the process (service, node, version, rmicro's version, OS, architecture).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<String, String>,
}

impl Report {
    /// The failing critical checks, `name: error`, joined: what a 503 says.
    pub fn failing(&self) -> String {
        self.checks
            .iter()
            .filter(|c| c.critical && c.status == Status::Down)
            .map(|c| format!("{}: {}", c.name, c.error.as_deref().unwrap_or("down")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A set of checks and facts; cheap to clone (clones share them).
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    checks: RwLock<Vec<Check>>,
    info: RwLock<BTreeMap<String, String>>,
    /// Set once the service has subscribed and started registering.
    serving: AtomicBool,
    stopping: AtomicBool,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &read(&self.inner.checks).len())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Health {
    /// No checks, no facts.
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds a check (run after those added before it).
    pub fn add(&self, check: Check) {
        write(&self.inner.checks).push(check);
    }

    /// Sets a fact shown under `info`.
    pub fn set_info(&self, key: impl Into<String>, value: impl Into<String>) {
        write(&self.inner.info).insert(key.into(), value.into());
    }

    /// Marks the service as started (subscribed, registration under way): the `server` check
    /// is up from now on, until [`Health::set_stopping`].
    pub fn set_serving(&self) {
        self.inner.serving.store(true, Ordering::Release);
    }

    /// Marks the service as stopping: the `server` check is down from now on.
    pub fn set_stopping(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Whether [`Health::set_stopping`] was called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Runs every check concurrently and reports.
    pub async fn report(&self) -> Report {
        let checks = read(&self.inner.checks).clone();
        let checks = futures::future::join_all(checks.iter().map(Check::run)).await;
        let down = checks
            .iter()
            .any(|c| c.critical && c.status == Status::Down);
        Report {
            status: if down { Status::Down } else { Status::Up },
            checks,
            info: read(&self.inner.info).clone(),
        }
    }
}

/// The service's `registry` check: its registration state, with `ttl` of grace after the
/// last accepted registration while the registry refuses or does not answer.
pub(crate) fn registry_check(
    state: tokio::sync::watch::Receiver<crate::service::RegistrationState>,
    last_live: Arc<std::sync::Mutex<Option<Instant>>>,
    ttl: Duration,
) -> Check {
    use crate::service::RegistrationState as S;
    Check::new("registry", move || {
        let state = state.borrow().clone();
        let last = *last_live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        async move {
            match state {
                S::Live => Ok(()),
                S::Registering => {
                    Err("registering: the registry has not accepted this node yet".to_owned())
                }
                S::Deregistered => Err("deregistered".to_owned()),
                S::Degraded { .. } | S::ReRegistering => {
                    let detail = match &state {
                        S::Degraded { error, attempts } => {
                            format!("{attempts} failed attempts, last: {}", error.detail)
                        }
                        _ => "registering again".to_owned(),
                    };
                    match last.map(|at| at.elapsed()) {
                        Some(since) if since < ttl => Ok(()),
                        Some(since) => Err(format!(
                            "the registry has not accepted this node for {since:.1?}, longer than the TTL ({ttl:?}): its registration may have expired ({detail})"
                        )),
                        None => Err(format!("never registered ({detail})")),
                    }
                }
            }
        }
    })
}

/// The service's `broker` check: the plugin's own word on its connection.
pub(crate) fn broker_check(broker: crate::broker::SharedBroker) -> Check {
    Check::new("broker", move || {
        let connected = broker.connected();
        let name = broker.name().to_owned();
        let address = broker.address();
        async move {
            match connected {
                Some(false) => Err(format!("the {name} broker is not connected to `{address}`")),
                Some(true) | None => Ok(()),
            }
        }
    })
}

/// The service's `server` check: down while the service starts (its subscriptions are
/// being made) and once a graceful stop has begun.
pub(crate) fn server_check(health: &Health) -> Check {
    let health = health.clone();
    Check::new("server", move || {
        let serving = health.inner.serving.load(Ordering::Acquire);
        let stopping = health.is_stopping();
        async move {
            if stopping {
                Err("stopping: draining before deregistration".to_owned())
            } else if !serving {
                Err("starting: subscribing and registering".to_owned())
            } else {
                Ok(())
            }
        }
    })
}

/// The plain HTTP routes of a service: the three health paths and `/metrics`.
pub(crate) fn web_routes(health: Health) -> crate::rpc::server::WebRoutes {
    use http::{Method, StatusCode, header};
    Arc::new(move |method: &Method, path: &str| {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let json = |status: StatusCode, body: String| {
            let mut rsp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
            *rsp.status_mut() = status;
            rsp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            rsp
        };
        match path {
            "/metrics" => Some(Box::pin(async move { crate::metrics::reply() })),
            "/health/live" => Some(Box::pin(async move {
                json(StatusCode::OK, "{\"status\":\"up\"}\n".to_owned())
            })),
            "/health" | "/health/ready" => {
                let health = health.clone();
                Some(Box::pin(async move {
                    let report = health.report().await;
                    let status = match report.status {
                        Status::Up => StatusCode::OK,
                        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    let mut body = serde_json::to_string(&report).unwrap_or_default();
                    body.push('\n');
                    json(status, body)
                }))
            }
            _ => None,
        }
    })
}

/// `routes` alone, for a listener of their own: anything else is a plain 404 (no mucp).
pub(crate) fn web_only(routes: crate::rpc::server::WebRoutes) -> crate::rpc::server::WebRoutes {
    Arc::new(move |method: &http::Method, path: &str| {
        routes(method, path).or_else(|| {
            Some(Box::pin(async {
                let mut rsp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"not found: this address serves GET /health, /health/live, /health/ready and /metrics\n",
                )));
                *rsp.status_mut() = http::StatusCode::NOT_FOUND;
                rsp
            }))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn critical_failures_gate_the_status_and_others_only_show() {
        let health = Health::new();
        health.set_info("service", "s");
        health.add(Check::new("ok", || async { Ok::<_, String>(()) }));
        let report = health.report().await;
        assert_eq!(report.status, Status::Up);
        health.add(Check::new("cache", || async { Err("cold") }).critical(false));
        let report = health.report().await;
        assert_eq!(report.status, Status::Up, "a non-critical failure");
        assert_eq!(report.checks[1].error.as_deref(), Some("cold"));
        health.add(Check::new("db", || async { Err("refused") }));
        let report = health.report().await;
        assert_eq!(report.status, Status::Down);
        assert_eq!(report.failing(), "db: refused");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["status"], "down");
        assert_eq!(json["checks"][0]["name"], "ok");
        assert!(json["checks"][0].get("error").is_none(), "{json}");
        assert_eq!(json["checks"][2]["error"], "refused");
        assert_eq!(json["info"]["service"], "s");
    }

    #[tokio::test]
    async fn a_slow_check_times_out_and_checks_run_concurrently() {
        let health = Health::new();
        for name in ["a", "b", "c"] {
            health.add(
                Check::new(name, || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, String>(())
                })
                .timeout(Duration::from_millis(100)),
            );
        }
        let started = Instant::now();
        let report = health.report().await;
        assert!(started.elapsed() < Duration::from_secs(2), "concurrent");
        assert_eq!(report.status, Status::Down);
        assert!(
            report.checks[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within 100ms")),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn the_server_check_fails_once_stopping() {
        let health = Health::new();
        health.add(server_check(&health));
        assert!(health.report().await.failing().contains("starting"));
        health.set_serving();
        assert_eq!(health.report().await.status, Status::Up);
        health.set_stopping();
        let report = health.report().await;
        assert_eq!(report.status, Status::Down);
        assert!(report.failing().contains("stopping"), "{report:?}");
    }
}
