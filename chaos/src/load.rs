//! The steady load: callers calling the service in a loop through rmicro's client, every call
//! timed and counted; and the figures of a window of it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmicro::rpc::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::service::{ENDPOINT, Ping, Pong, SERVICE};

/// One call.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it started, from the load's start.
    pub at: Duration,
    pub took: Duration,
    /// The error's detail when it failed.
    pub error: Option<String>,
}

/// Callers calling in a loop until [`Load::finish`].
pub struct Load {
    started: Instant,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Load {
    /// Starts `callers` callers of the chaos service through `client`.
    pub fn start(client: &Client, callers: usize) -> Load {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let samples = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let tasks = (0..callers)
            .map(|caller| {
                let client = client.clone();
                let stopped = stopped.clone();
                let samples = Arc::clone(&samples);
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !*stopped.borrow() {
                        seq += 1;
                        let t = Instant::now();
                        let reply = client
                            .call::<_, Pong>(SERVICE, ENDPOINT, &Ping { caller, seq })
                            .await;
                        let sample = Sample {
                            at: t.duration_since(started),
                            took: t.elapsed(),
                            error: reply.err().map(|e| e.detail),
                        };
                        let failed = sample.error.is_some();
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(sample);
                        if failed {
                            // A caller that fails at once does not spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            started,
            stop,
            tasks,
            samples,
        }
    }

    /// Time since the load started: the clock windows are given in.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the callers (letting their last calls finish) and returns every call.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The figures of the calls that started in a window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub calls: usize,
    pub failed: usize,
    /// Calls that took over a second.
    pub slow: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// The first failure's detail, for the report.
    pub first_error: Option<String>,
}

impl Window {
    /// The calls of `samples` that started in `[from, to)`.
    pub fn of(samples: &[Sample], from: Duration, to: Duration) -> Window {
        let mut took: Vec<Duration> = Vec::new();
        let mut w = Window::default();
        for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
            w.calls += 1;
            if let Some(e) = &s.error {
                w.failed += 1;
                w.first_error.get_or_insert_with(|| e.clone());
            }
            if s.took > Duration::from_secs(1) {
                w.slow += 1;
            }
            took.push(s.took);
        }
        took.sort_unstable();
        let at = |q: f64| {
            took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        w.p50 = at(0.50);
        w.p99 = at(0.99);
        w.max = took.last().copied().unwrap_or_default();
        w
    }

    /// Calls per second over `span`.
    pub fn rate(&self, span: Duration) -> f64 {
        self.calls as f64 / span.as_secs_f64().max(1e-9)
    }
}

/// A duration as milliseconds with one decimal, for the table.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A duration as seconds with one decimal, for the table.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
