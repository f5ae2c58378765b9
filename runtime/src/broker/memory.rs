//! In-process broker, for tests.
//!
//! [`MemoryBroker`] delivers a published message to the topic's subscribers before `publish`
//! returns, so a test can publish and then assert on what its handlers saw. Clones share
//! state, so every service of a test process sees the same topics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use rand::Rng as _;
use tracing::Instrument as _;

use super::kit::{self, Handle, Outcome, Stop};
use super::{Broker, Event, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::Result;

/// An in-process [`Broker`]. Clones share state.
///
/// - a broadcast subscription (no queue) gets every message published to its topic;
/// - subscriptions of one topic with the same queue name share each message: one of them,
///   picked at random, gets it;
/// - `publish` stamps `Micro-Topic` and `Micro-ID` ([`stamp`]), then runs the chosen handlers
///   concurrently and returns when all have finished. A handler's error (or panic) is logged
///   with `tracing` and does not stop delivery to the others, nor reach the publisher;
/// - publishing to a topic nobody subscribes to is `Ok(())`;
/// - `connect` and `disconnect` do nothing: subscriptions live until unsubscribed.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// topic -> subscriptions, in subscription order.
    topics: Mutex<HashMap<String, Vec<Entry>>>,
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    queue: Option<String>,
    handler: Handler,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topics = self.inner.lock();
        f.debug_struct("MemoryBroker")
            .field("topics", &topics.len())
            .field(
                "subscriptions",
                &topics.values().map(Vec::len).sum::<usize>(),
            )
            .finish()
    }
}

impl MemoryBroker {
    /// A broker with no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handlers that get a message on `topic`: every broadcast subscription and one
    /// random member of each queue group.
    fn pick(&self, topic: &str) -> Vec<Handler> {
        let topics = self.inner.lock();
        let Some(entries) = topics.get(topic) else {
            return Vec::new();
        };
        let mut chosen = Vec::new();
        // Queue name -> (members seen, the pick so far): reservoir sampling, one pass.
        let mut groups: HashMap<&str, (u32, &Handler)> = HashMap::new();
        let mut rng = rand::rng();
        for entry in entries {
            match &entry.queue {
                None => chosen.push(Arc::clone(&entry.handler)),
                Some(queue) => {
                    let slot = groups.entry(queue.as_str()).or_insert((0, &entry.handler));
                    slot.0 += 1;
                    if rng.random_range(0..slot.0) == 0 {
                        slot.1 = &entry.handler;
                    }
                }
            }
        }
        chosen.extend(groups.into_values().map(|(_, h)| Arc::clone(h)));
        chosen
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &str {
        "memory"
    }

    fn address(&self) -> String {
        "memory".to_owned()
    }

    async fn connect(&self) -> Result<()> {
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        stamp(topic, &mut msg);
        let span = tracing::debug_span!(
            "broker.publish",
            broker = "memory",
            topic,
            id = msg.id().unwrap_or_default()
        );
        let handlers = self.pick(topic);
        if handlers.is_empty() {
            tracing::trace!(topic, "no subscribers");
            return Ok(());
        }
        let topic: Arc<str> = Arc::from(topic);
        let runs = handlers.into_iter().map(|handler| {
            let event = Event::new(Arc::clone(&topic), msg.clone());
            let topic = &topic;
            async move {
                if let Outcome::Failed(error) = kit::run_handler("memory", &handler, event).await {
                    tracing::warn!(topic = %topic, %error, "memory: subscriber failed");
                }
            }
        });
        futures::future::join_all(runs).instrument(span).await;
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .lock()
            .entry(topic.to_owned())
            .or_default()
            .push(Entry {
                id,
                queue: opts.queue.clone(),
                handler,
            });
        Ok(Handle::boxed(
            "memory",
            topic,
            opts,
            MemoryStop {
                id,
                broker: Arc::downgrade(&self.inner),
            },
        ))
    }
}

/// How a subscription to a [`MemoryBroker`] stops: it leaves the topic's list.
struct MemoryStop {
    id: u64,
    broker: Weak<Inner>,
}

#[async_trait]
impl Stop for MemoryStop {
    async fn stop(&self, topic: &str) -> Result<()> {
        if let Some(inner) = self.broker.upgrade() {
            let mut topics = inner.lock();
            if let Some(entries) = topics.get_mut(topic) {
                entries.retain(|e| e.id != self.id);
                if entries.is_empty() {
                    topics.remove(topic);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::broker::{HEADER_ID, HEADER_TOPIC, handler};
    use crate::{Error, Result};

    type Seen = Arc<Mutex<Vec<(String, Event)>>>;

    fn recorder(name: &str, seen: &Seen) -> Handler {
        let (name, seen) = (name.to_owned(), Arc::clone(seen));
        handler(move |event: Event| {
            let (name, seen) = (name.clone(), Arc::clone(&seen));
            async move {
                seen.lock().expect("lock").push((name, event));
                Ok(())
            }
        })
    }

    fn names(seen: &Seen) -> Vec<String> {
        let mut v: Vec<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn broadcast_reaches_every_subscriber_with_headers() {
        let broker = MemoryBroker::new();
        let seen = Seen::default();
        broker
            .subscribe("t", recorder("a", &seen), SubscribeOptions::default())
            .await
            .expect("sub");
        // A clone shares the subscriptions.
        broker
            .clone()
            .subscribe("t", recorder("b", &seen), SubscribeOptions::default())
            .await
            .expect("sub");
        broker
            .subscribe("other", recorder("c", &seen), SubscribeOptions::default())
            .await
            .expect("sub");

        let msg = Message::new(&b"\x00\xffbody"[..])
            .with_header("Content-Type", "application/octet-stream")
            .with_header("x-user", "davie");
        broker
            .publish("t", msg, PublishOptions::default())
            .await
            .expect("publish");

        assert_eq!(names(&seen), ["a", "b"]);
        let seen = seen.lock().expect("lock");
        let ids: Vec<&str> = seen
            .iter()
            .map(|(_, e)| e.message().header[HEADER_ID].as_str())
            .collect();
        assert_eq!(ids[0], ids[1], "one message id for one publish");
        for (_, event) in seen.iter() {
            let m = event.message();
            assert_eq!(event.topic(), "t");
            assert_eq!(&m.body[..], b"\x00\xffbody");
            assert_eq!(m.header["x-user"], "davie");
            assert_eq!(m.header["Content-Type"], "application/octet-stream");
            assert_eq!(m.header[HEADER_TOPIC], "t");
        }
    }

    #[tokio::test]
    async fn queue_group_gets_each_message_once() {
        let broker = MemoryBroker::new();
        let seen = Seen::default();
        for name in ["q1", "q2", "q3"] {
            broker
                .subscribe(
                    "t",
                    recorder(name, &seen),
                    SubscribeOptions::queue("workers"),
                )
                .await
                .expect("sub");
        }
        broker
            .subscribe(
                "t",
                recorder("other-group", &seen),
                SubscribeOptions::queue("audit"),
            )
            .await
            .expect("sub");
        broker
            .subscribe("t", recorder("all", &seen), SubscribeOptions::default())
            .await
            .expect("sub");

        for _ in 0..60 {
            broker
                .publish("t", Message::new("x"), PublishOptions::default())
                .await
                .expect("publish");
        }
        let names = names(&seen);
        let count = |n: &str| names.iter().filter(|x| *x == n).count();
        assert_eq!(count("all"), 60);
        assert_eq!(count("other-group"), 60);
        assert_eq!(count("q1") + count("q2") + count("q3"), 60);
        // Random choice spreads the work: with 60 draws, a member left out entirely has odds
        // of 3 * (2/3)^60, about 1e-10.
        assert!(
            count("q1") > 0 && count("q2") > 0 && count("q3") > 0,
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn unsubscribe_stops_delivery() {
        let broker = MemoryBroker::new();
        let seen = Seen::default();
        let a = broker
            .subscribe("t", recorder("a", &seen), SubscribeOptions::default())
            .await
            .expect("sub");
        let _b = broker
            .subscribe("t", recorder("b", &seen), SubscribeOptions::default())
            .await
            .expect("sub");
        assert_eq!(a.topic(), "t");
        a.unsubscribe().await.expect("unsubscribe");
        a.unsubscribe().await.expect("unsubscribe twice is fine");
        broker
            .publish("t", Message::new("x"), PublishOptions::default())
            .await
            .expect("publish");
        assert_eq!(names(&seen), ["b"]);
    }

    #[tokio::test]
    async fn failing_handler_does_not_stop_others_nor_the_publisher() {
        let broker = MemoryBroker::new();
        let seen = Seen::default();
        broker
            .subscribe(
                "t",
                handler(|_e: Event| async {
                    Err::<(), Error>(Error::internal_server_error("x", "boom"))
                }),
                SubscribeOptions::default(),
            )
            .await
            .expect("sub");
        broker
            .subscribe(
                "t",
                handler(|_e: Event| async {
                    if true {
                        panic!("handler bug");
                    }
                    Result::Ok(())
                }),
                SubscribeOptions::default(),
            )
            .await
            .expect("sub");
        broker
            .subscribe("t", recorder("ok", &seen), SubscribeOptions::default())
            .await
            .expect("sub");
        broker
            .publish("t", Message::new("x"), PublishOptions::default())
            .await
            .expect("publish succeeds");
        assert_eq!(names(&seen), ["ok"]);
        // No subscribers at all is fine too.
        broker
            .publish("nobody", Message::new("x"), PublishOptions::default())
            .await
            .expect("publish to empty topic");
    }
}
