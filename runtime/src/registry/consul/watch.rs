//! Watching Consul with blocking queries.
//!
//! A watch of one service follows `/v1/health/service/<name>` with `index` + `wait`: each
//! answer is the full list of instances, compared with the previous answer node by node. A
//! watch of every service follows `/v1/catalog/services` the same way and keeps one
//! service follower per name; when a name leaves the catalog its follower stops and the nodes
//! it had reported are deleted.
//!
//! `watch` answers only once the first answers are in, so changes from then on are all
//! reported and nothing before is (the first answers are the baseline). An agent that cannot
//! be reached is reported once per outage as an `Err` item; the watch keeps asking, with
//! backoff, and reports what changed meanwhile once the agent answers again. Dropping the
//! stream stops every query.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Inner;
use crate::Result;
use crate::registry::{Action, Change, Service, WatchOptions, Watcher};

/// The pause between queries when the agent sends no `X-Consul-Index` (something between us
/// strips it): the watch then polls instead of spinning.
const POLL_WITHOUT_INDEX: Duration = Duration::from_secs(1);

/// The first pause after a failed query; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a follower last reported: node id -> the service holding that one node.
type Known = BTreeMap<String, Service>;

type Sender = mpsc::UnboundedSender<Result<Change>>;

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The stream handed out: changes from the followers; dropping it stops them.
///
/// The channel is unbounded so that reporting a change never waits: a follower's record of
/// what it reported is then exact at every point where it can be stopped. Changes are rare
/// (registrations, not messages), so the queue stays short.
struct WatchStream {
    changes: mpsc::UnboundedReceiver<Result<Change>>,
    _task: AbortOnDrop,
}

impl Stream for WatchStream {
    type Item = Result<Change>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.changes.poll_recv(cx)
    }
}

/// Starts a watch; returns once the baseline is read.
pub(super) async fn start(inner: Arc<Inner>, opts: WatchOptions) -> Result<Watcher> {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = match opts.service {
        Some(name) => {
            let (entries, index) = inner.health(&name, None).await?;
            let known = Arc::new(Mutex::new(known_from(&name, &entries)));
            tokio::spawn(follow_service(inner, name, index, known, tx))
        }
        None => {
            let (names, index) = inner.catalog_services(None).await?;
            let baselines = futures::future::try_join_all(names.keys().map(|name| {
                let inner = &inner;
                async move {
                    let (entries, index) = inner.health(name, None).await?;
                    Ok::<_, crate::Error>((name.clone(), known_from(name, &entries), index))
                }
            }))
            .await?;
            let mut followers = HashMap::with_capacity(baselines.len());
            for (name, known, service_index) in baselines {
                let follower = Follower::spawn(&inner, name.clone(), service_index, known, &tx);
                followers.insert(name, follower);
            }
            tokio::spawn(follow_catalog(inner, index, followers, tx))
        }
    };
    Ok(WatchStream {
        changes: rx,
        _task: AbortOnDrop(task),
    }
    .boxed())
}

/// The instances of `name` that reads return (critical ones dropped), by node id.
fn known_from(name: &str, entries: &[super::HealthEntry]) -> Known {
    entries
        .iter()
        .filter_map(|e| e.to_service(name))
        .filter_map(|s| Some((s.nodes.first()?.id.clone(), s)))
        .collect()
}

/// The instances of a service decoded so far, by id, with the `ModifyIndex` each was decoded
/// at. Every answer of a blocking query repeats every instance, and decoding go-micro's tags
/// (hex, zlib, JSON) is most of what reading one costs: an instance whose definition has not
/// changed is taken from here instead (measured by the fault suite's scale row: 5,000
/// instances on one service).
#[derive(Debug, Default)]
struct Decoded(HashMap<String, (u64, Service)>);

impl Decoded {
    /// What reads return of `entries` (as [`known_from`]), decoding only what changed.
    fn known(&mut self, name: &str, entries: &[super::HealthEntry]) -> Known {
        let mut seen = HashMap::with_capacity(entries.len());
        let mut known = Known::new();
        for entry in entries {
            if entry.critical() {
                continue;
            }
            let (id, index) = entry.version();
            let service = match self.0.remove(id) {
                Some((at, service)) if at == index && index != 0 => service,
                _ => match entry.to_service(name) {
                    Some(service) => service,
                    None => continue,
                },
            };
            let Some(node) = service.nodes.first() else {
                continue;
            };
            known.insert(node.id.clone(), service.clone());
            seen.insert(id.to_owned(), (index, service));
        }
        self.0 = seen;
        known
    }
}

/// The changes from `old` to `new`, one per node.
fn diff(old: &Known, new: &Known) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, service) in new {
        let action = match old.get(id) {
            None => Action::Create,
            Some(before) if before != service => Action::Update,
            Some(_) => continue,
        };
        changes.push(Change {
            action,
            service: service.clone(),
        });
    }
    for (id, service) in old {
        if !new.contains_key(id) {
            changes.push(Change {
                action: Action::Delete,
                service: service.clone(),
            });
        }
    }
    changes
}

/// The index of the next blocking query, as Consul's documentation says: reset when it
/// goes backwards (the agent restarted), never below 1 otherwise.
fn next_index(previous: u64, answered: u64) -> u64 {
    if answered < previous {
        0
    } else {
        answered.max(1)
    }
}

/// Reports consecutive failures once and paces the retries.
#[derive(Default)]
struct Failures {
    backoff: Option<Duration>,
}

impl Failures {
    /// Reports `err` unless this outage was already reported, then waits. `false` when the
    /// stream is gone.
    async fn failed(&mut self, tx: &Sender, what: &str, err: crate::Error) -> bool {
        let delay = match self.backoff {
            None => {
                tracing::warn!(%what, error = %err.detail, "consul: watch query failed; retrying");
                if tx.send(Err(err)).is_err() {
                    return false;
                }
                MIN_BACKOFF
            }
            Some(d) => {
                tracing::debug!(%what, error = %err.detail, "consul: watch query failed again");
                (d * 2).min(MAX_BACKOFF)
            }
        };
        self.backoff = Some(delay);
        tokio::time::sleep(delay).await;
        !tx.is_closed()
    }

    fn succeeded(&mut self, what: &str) {
        if self.backoff.take().is_some() {
            tracing::info!(%what, "consul: watch query answers again");
        }
    }
}

/// Follows one service until the stream is dropped (or the follower aborted).
async fn follow_service(
    inner: Arc<Inner>,
    name: String,
    mut index: u64,
    known: Arc<Mutex<Known>>,
    tx: Sender,
) {
    let mut failures = Failures::default();
    let mut decoded = Decoded::default();
    while !tx.is_closed() {
        match inner.health(&name, Some(index)).await {
            Ok((entries, answered)) => {
                failures.succeeded(&name);
                index = next_index(index, answered);
                let new = decoded.known(&name, &entries);
                // Compare, send and record with no await in between: stopped at any await,
                // `known` is exactly what was reported.
                {
                    let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
                    for change in diff(&known, &new) {
                        if tx.send(Ok(change)).is_err() {
                            return;
                        }
                    }
                    *known = new;
                }
                if answered == 0 {
                    tokio::time::sleep(POLL_WITHOUT_INDEX).await;
                }
            }
            Err(err) => {
                if !failures.failed(&tx, &name, err).await {
                    return;
                }
            }
        }
    }
}

/// A service followed by a watch of every service.
struct Follower {
    known: Arc<Mutex<Known>>,
    _task: AbortOnDrop,
}

impl Follower {
    fn spawn(inner: &Arc<Inner>, name: String, index: u64, known: Known, tx: &Sender) -> Self {
        let known = Arc::new(Mutex::new(known));
        let task = tokio::spawn(follow_service(
            Arc::clone(inner),
            name,
            index,
            Arc::clone(&known),
            tx.clone(),
        ));
        Self {
            known,
            _task: AbortOnDrop(task),
        }
    }
}

/// Follows the catalog's service names, starting and stopping service followers.
async fn follow_catalog(
    inner: Arc<Inner>,
    mut index: u64,
    mut followers: HashMap<String, Follower>,
    tx: Sender,
) {
    let mut failures = Failures::default();
    while !tx.is_closed() {
        match inner.catalog_services(Some(index)).await {
            Ok((names, answered)) => {
                failures.succeeded("catalog");
                index = next_index(index, answered);
                if answered == 0 {
                    tokio::time::sleep(POLL_WITHOUT_INDEX).await;
                }
                let names: BTreeSet<String> = names.into_keys().collect();
                let gone: Vec<String> = followers
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    let Some(follower) = followers.remove(&name) else {
                        continue;
                    };
                    let Follower { known, _task: task } = follower;
                    // Stop it first, so it reports nothing more; then delete what it had.
                    drop(task);
                    let known =
                        std::mem::take(&mut *known.lock().unwrap_or_else(PoisonError::into_inner));
                    for service in known.into_values() {
                        let change = Change {
                            action: Action::Delete,
                            service,
                        };
                        if tx.send(Ok(change)).is_err() {
                            return;
                        }
                    }
                }
                for name in names {
                    if let Entry::Vacant(slot) = followers.entry(name) {
                        // New since the baseline: every node it has is a `Create`.
                        let name = slot.key().clone();
                        slot.insert(Follower::spawn(&inner, name, 0, Known::new(), &tx));
                    }
                }
            }
            Err(err) => {
                if !failures.failed(&tx, "catalog", err).await {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Node;

    fn one(id: &str, address: &str) -> (String, Service) {
        (
            id.to_owned(),
            Service {
                name: "s".into(),
                nodes: vec![Node {
                    id: id.into(),
                    address: address.into(),
                    ..Node::default()
                }],
                ..Service::default()
            },
        )
    }

    fn entries(json: &str) -> Vec<super::super::HealthEntry> {
        serde_json::from_str(json).expect("health entries")
    }

    #[test]
    fn an_instance_is_decoded_again_only_when_its_definition_changes() {
        let mut decoded = Decoded::default();
        let at = |index: u64, address: &str, status: &str| {
            format!(
                r#"[{{"Service":{{"ID":"s-1","Service":"s","Address":"{address}","Port":1,"ModifyIndex":{index}}},"Checks":[{{"Status":"{status}"}}]}}]"#
            )
        };
        let first = decoded.known("s", &entries(&at(5, "10.0.0.1", "passing")));
        assert_eq!(first["s-1"].nodes[0].address, "10.0.0.1:1");
        // Same index: what was decoded is reused (an answer never changes a definition
        // without raising its index; the address here proves the cache was read).
        let same = decoded.known("s", &entries(&at(5, "10.0.0.2", "passing")));
        assert_eq!(same["s-1"].nodes[0].address, "10.0.0.1:1");
        let changed = decoded.known("s", &entries(&at(6, "10.0.0.2", "passing")));
        assert_eq!(changed["s-1"].nodes[0].address, "10.0.0.2:1");
        // Critical: dropped, and forgotten.
        assert!(
            decoded
                .known("s", &entries(&at(6, "10.0.0.2", "critical")))
                .is_empty()
        );
        assert!(decoded.0.is_empty());
        let back = decoded.known("s", &entries(&at(6, "10.0.0.3", "passing")));
        assert_eq!(back["s-1"].nodes[0].address, "10.0.0.3:1", "decoded afresh");
    }

    #[test]
    fn diffs_node_by_node() {
        let old: Known = [one("a", "1"), one("b", "1"), one("c", "1")].into();
        let new: Known = [one("a", "1"), one("b", "2"), one("d", "1")].into();
        let changes: Vec<(Action, String)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.action, c.service.nodes[0].id.clone()))
            .collect();
        assert_eq!(
            changes,
            [
                (Action::Update, "b".to_owned()),
                (Action::Create, "d".to_owned()),
                (Action::Delete, "c".to_owned()),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn resets_an_index_that_goes_backwards() {
        assert_eq!(next_index(10, 12), 12);
        assert_eq!(next_index(10, 10), 10);
        assert_eq!(next_index(10, 3), 0);
        assert_eq!(next_index(0, 0), 1);
    }
}
