//! Keeps this process's registrations on an agent that is alive.
//!
//! Consul keeps a service on the agent it was registered through. When that agent dies, its
//! node's serf check turns critical a few seconds later and every service on it leaves every
//! lookup, until the service's next heartbeat registers it elsewhere: up to one interval
//! with no instance listed, though the instance itself is fine. So while anything is
//! registered, a task holds a long poll on the agent for one of them (`GET
//! /v1/agent/service/<id>`, hash-based blocking, which costs the agent nothing while the
//! service does not change). The moment that connection fails, or the agent stops answering,
//! the task registers everything again through the next address that answers (or the same
//! agent once it is back), retrying after 100 ms, doubling to 2 s, while none answers. An
//! agent that answers it does not know the service (it restarted empty) gets everything
//! again at once too: a single agent's services are back as soon as it listens, not at the
//! next heartbeat.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use tokio::task::AbortHandle;

use super::{Call, Inner, chain};

/// How long one long poll waits for a change.
const WAIT: Duration = Duration::from_secs(30);
/// The first pause between tries to register again; doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The pause after an agent answers the long poll with an error status or without a hash
/// (it is alive, but cannot be watched this way).
const UNWATCHABLE_PAUSE: Duration = Duration::from_secs(5);

/// A registration as it was last sent in full.
#[derive(Clone)]
pub(super) struct Kept {
    /// The record and TTL it was built from (see `fingerprint`).
    pub(super) fingerprint: u64,
    /// The body of `PUT /v1/agent/service/register`.
    pub(super) body: Bytes,
    /// Whether it has a TTL check to pass after registering.
    pub(super) checked: bool,
}

/// The running task, if any; aborted when the registry goes.
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<AbortHandle>>);

impl Drop for Slot {
    fn drop(&mut self) {
        let handle = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = handle.take() {
            handle.abort();
        }
    }
}

/// Starts the task unless it runs. Called after a registration is kept.
pub(super) fn ensure(inner: &Arc<Inner>) {
    let mut slot = inner.guard.0.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_some_and(|task| !task.is_finished()) {
        return;
    }
    *slot = Some(tokio::spawn(guard(Arc::downgrade(inner))).abort_handle());
}

/// What one long poll found.
enum Poll {
    /// The agent answered; the hash to wait on next.
    Answered(String),
    /// The agent does not know the service.
    Unknown,
    /// The agent is alive but cannot be watched with this query.
    Unwatchable,
}

async fn guard(inner: Weak<Inner>) {
    let mut hash = None;
    loop {
        // The registry is held only between polls, so dropping it ends the task.
        let (request, agent, id) = {
            let Some(inner) = inner.upgrade() else { return };
            let Some(id) = inner.one_kept_or_release_guard() else {
                return;
            };
            let agent = inner.current.load(Ordering::Relaxed) % inner.urls.len();
            let path = ["v1", "agent", "service", id.as_str()];
            let mut call = Call::new(Method::GET, &path, inner.options.timeout);
            if let Some(hash) = &hash {
                call.query.push(("hash", String::clone(hash)));
                call.query.push(("wait", format!("{}s", WAIT.as_secs())));
                // Consul adds up to wait/16 of jitter before answering.
                call.timeout = WAIT + WAIT / 16 + inner.options.timeout;
            }
            let Ok(request) = inner.request(agent, &call) else {
                return;
            };
            (request, agent, id)
        };
        match long_poll(request).await {
            Ok(Poll::Answered(next)) => hash = Some(next),
            Ok(Poll::Unknown) => {
                hash = None;
                let lost = inner.upgrade().is_some_and(|inner| inner.keeps(&id));
                if lost {
                    if let Some(inner) = inner.upgrade() {
                        tracing::warn!(
                            agent = %inner.urls[agent],
                            node = %id,
                            "consul: the agent no longer holds this process's registrations; registering them again"
                        );
                    }
                    register_again(&inner).await;
                }
            }
            Ok(Poll::Unwatchable) => {
                hash = None;
                tokio::time::sleep(UNWATCHABLE_PAUSE).await;
            }
            Err(e) => {
                hash = None;
                if let Some(inner) = inner.upgrade() {
                    tracing::warn!(
                        agent = %inner.urls[agent],
                        error = %chain(&e),
                        "consul: lost the agent holding this process's registrations; registering them again"
                    );
                    inner.skip(agent);
                }
                register_again(&inner).await;
            }
        }
    }
}

async fn long_poll(request: reqwest::RequestBuilder) -> Result<Poll, reqwest::Error> {
    let response = request.send().await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(Poll::Unknown);
    }
    if !response.status().is_success() {
        return Ok(Poll::Unwatchable);
    }
    let hash = response
        .headers()
        .get("X-Consul-ContentHash")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read to the end, so a connection dropped mid-answer counts as a lost agent.
    response.bytes().await?;
    Ok(hash.map_or(Poll::Unwatchable, Poll::Answered))
}

/// Registers every kept registration again (through the current agent, moving on from one
/// that cannot be reached) until all are accepted or the registry is dropped.
async fn register_again(inner: &Weak<Inner>) {
    let mut pause = FIRST_PAUSE;
    loop {
        {
            let Some(inner) = inner.upgrade() else { return };
            match inner.register_kept_again().await {
                Ok(0) => return,
                Ok(count) => {
                    let agent = inner.current.load(Ordering::Relaxed) % inner.urls.len();
                    tracing::info!(
                        agent = %inner.urls[agent],
                        count,
                        "consul: registrations are back on an agent"
                    );
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e.detail, "consul: no agent took the registrations yet");
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

impl Inner {
    /// The id of one kept registration; when there is none, clears the task's slot (under
    /// the slot's lock, so a registration kept meanwhile starts a new task).
    fn one_kept_or_release_guard(&self) -> Option<String> {
        let mut slot = self.guard.0.lock().unwrap_or_else(PoisonError::into_inner);
        let one = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .next()
            .cloned();
        if one.is_none() {
            *slot = None;
        }
        one
    }

    fn keeps(&self, node_id: &str) -> bool {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(node_id)
    }

    /// Moves past the agent at `i` when it is still the current one.
    fn skip(&self, i: usize) {
        let next = (i + 1) % self.urls.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Sends every kept registration again; how many.
    async fn register_kept_again(&self) -> crate::Result<usize> {
        let kept: Vec<(String, Kept)> = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, kept)| (id.clone(), kept.clone()))
            .collect();
        for (id, registration) in &kept {
            self.put_registration(id, registration).await?;
            // Deregistered while it was being sent: the deregistration may have reached the
            // agent first, so send it again.
            if !self.keeps(id) {
                self.deregister_id(id).await?;
            }
        }
        Ok(kept.len())
    }
}
