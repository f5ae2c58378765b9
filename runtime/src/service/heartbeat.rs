//! Registration and re-registration on a dedicated thread, so that handlers that keep every
//! runtime worker busy cannot starve the heartbeat.
//!
//! One thread serves every service of the process: each service's heartbeat is a task on
//! that thread's current-thread runtime, so a thousand services wake one thread (their timers
//! share its wheel) rather than a thousand.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::registry::{self, SharedRegistry};
use crate::{Error, Result};

/// Where a service stands with its registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// The first registration is under way.
    Registering,
    /// The registry accepted the latest registration.
    Live,
    /// The latest registration failed; it is retried with backoff (at most one interval).
    Degraded {
        /// The last failure.
        error: Error,
        /// Failures in a row.
        attempts: u32,
    },
    /// Registering again after a failure.
    ReRegistering,
    /// Deregistered at shutdown.
    Deregistered,
}

impl fmt::Display for RegistrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registering => f.write_str("registering"),
            Self::Live => f.write_str("live"),
            Self::Degraded { error, attempts } => {
                write!(
                    f,
                    "degraded ({attempts} failed attempts, last: {})",
                    error.detail
                )
            }
            Self::ReRegistering => f.write_str("re-registering"),
            Self::Deregistered => f.write_str("deregistered"),
        }
    }
}

/// When the registry last accepted the node (`None`: never).
pub(crate) type LastLive = Arc<Mutex<Option<Instant>>>;

pub(crate) struct Heartbeat {
    state: watch::Receiver<RegistrationState>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<()>>>,
}

/// Backoff after `attempts` failures in a row: 0.5 s doubling, at most `cap`.
fn backoff(attempts: u32, cap: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    Duration::from_millis(500u64 << exp).min(cap)
}

/// The process's heartbeat runtime, started on first use on its own thread, which it keeps for
/// the life of the process (parked while no timer is due).
fn runtime() -> std::result::Result<&'static tokio::runtime::Handle, String> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("rmicro-heartbeat".to_owned())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => {
                            let _ = tx.send(Ok(rt.handle().clone()));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            rx.recv().map_err(|e| e.to_string())?
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Heartbeat {
    pub(crate) fn start(
        registry: SharedRegistry,
        record: registry::Service,
        ttl: Duration,
        interval: Duration,
        state_tx: watch::Sender<RegistrationState>,
        last_live: LastLive,
    ) -> Self {
        let state = state_tx.subscribe();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        match runtime() {
            Ok(rt) => {
                rt.spawn(async move {
                    let result = run(
                        registry, record, ttl, interval, state_tx, last_live, stop_rx,
                    )
                    .await;
                    let _ = done_tx.send(result);
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the heartbeat thread");
                let err = Error::internal_server_error(
                    &record.name,
                    format!("cannot start the heartbeat thread: {e}"),
                );
                let _ = state_tx.send(RegistrationState::Degraded {
                    error: err.clone(),
                    attempts: 1,
                });
                let _ = done_tx.send(Err(err));
            }
        }
        Self {
            state,
            stop: Some(stop_tx),
            done: Some(done),
        }
    }

    pub(crate) fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<RegistrationState> {
        self.state.clone()
    }

    /// Stops heartbeating and deregisters; returns the deregistration's result.
    pub(crate) async fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.take() {
            Some(done) => done.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

async fn run(
    registry: SharedRegistry,
    record: registry::Service,
    ttl: Duration,
    interval: Duration,
    state: watch::Sender<RegistrationState>,
    last_live: LastLive,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let name = record.name.clone();
    let node = record
        .nodes
        .first()
        .map(|n| n.id.clone())
        .unwrap_or_default();
    let opts = super::register_options(ttl);
    // A registry call may not take longer than the interval, or the next one would be late.
    let call_limit = interval.max(Duration::from_secs(1));
    let grain = grain(interval);
    let mut attempts = 0u32;
    loop {
        // A stop does not wait for a registration in flight: it is dropped, and the
        // deregistration below goes out at once.
        let outcome = tokio::select! {
            result = tokio::time::timeout(call_limit, registry.register(&record, opts)) => {
                match result {
                    Ok(result) => result,
                    Err(_) => Err(Error::timeout(
                        &name,
                        format!("registration took longer than {call_limit:?}"),
                    )),
                }
            }
            _ = &mut stop => break,
        };
        let wait = match outcome {
            Ok(()) => {
                if attempts > 0 {
                    tracing::info!(service = %name, %node, attempts, "registered again after failures");
                } else if !matches!(*state.borrow(), RegistrationState::Live) {
                    tracing::info!(service = %name, %node, registry = registry.name(), ?ttl, ?interval, "registered");
                }
                attempts = 0;
                *last_live
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                crate::metrics::get().registered(&name, registry.name(), true);
                state.send_replace(RegistrationState::Live);
                interval
            }
            Err(error) => {
                attempts += 1;
                let wait = backoff(attempts, interval);
                tracing::error!(service = %name, %node, registry = registry.name(), attempts, retry_in = ?wait, error = %error, "registration failed");
                let metrics = crate::metrics::get();
                metrics.heartbeat_failed(&name, registry.name());
                metrics.registered(&name, registry.name(), false);
                state.send_replace(RegistrationState::Degraded { error, attempts });
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(on_grid(Instant::now() + wait, grain).into()) => {}
            _ = &mut stop => break,
        }
        if attempts > 0 {
            state.send_replace(RegistrationState::ReRegistering);
        }
    }
    let result =
        match tokio::time::timeout(Duration::from_secs(5), registry.deregister(&record)).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(&name, "deregistration took longer than 5s")),
        };
    if result.is_ok() {
        tracing::info!(service = %name, %node, "deregistered");
    }
    crate::metrics::get().registered(&name, registry.name(), false);
    state.send_replace(RegistrationState::Deregistered);
    result
}

/// The step of the grid heartbeats wake on: a 40th of the interval, between 1 and 25 ms.
fn grain(interval: Duration) -> Duration {
    (interval / 40).clamp(Duration::from_millis(1), Duration::from_millis(25))
}

/// `deadline` rounded up to the process-wide grid of `grain` steps. Services started at
/// different moments then wake together: 1,000 services with a 1 s interval wake the
/// heartbeat thread at most 40 times a second instead of about 1,000, each heartbeat at most
/// one step (2.5 % of its interval) late.
fn on_grid(deadline: Instant, grain: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let since = deadline.saturating_duration_since(epoch).as_nanos();
    let step = grain.as_nanos().max(1);
    let rounded = u64::try_from(since.div_ceil(step) * step).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let cap = Duration::from_secs(5);
        assert_eq!(backoff(1, cap), Duration::from_millis(500));
        assert_eq!(backoff(2, cap), Duration::from_secs(1));
        assert_eq!(backoff(4, cap), Duration::from_secs(4));
        assert_eq!(backoff(5, cap), cap);
        assert_eq!(backoff(40, cap), cap);
    }

    #[test]
    fn wakeups_share_a_grid_and_are_at_most_one_step_late() {
        assert_eq!(grain(Duration::from_secs(1)), Duration::from_millis(25));
        assert_eq!(grain(Duration::from_secs(30)), Duration::from_millis(25));
        assert_eq!(grain(Duration::from_millis(200)), Duration::from_millis(5));
        assert_eq!(grain(Duration::from_millis(10)), Duration::from_millis(1));
        let step = Duration::from_millis(25);
        let now = Instant::now();
        let a = on_grid(now, step);
        let b = on_grid(now + Duration::from_micros(300), step);
        assert!(a >= now && a - now <= step, "{:?} late", a - now);
        let c = on_grid(a + Duration::from_nanos(1), step);
        assert_eq!(c - a, step, "just past a grid point goes to the next one");
        assert_eq!(on_grid(a, step), a, "a grid point stays");
        assert!(b == a || b - a == step);
    }
}
