//! Poison messages: bounded tries with back-off, then a dead-letter topic.
//!
//! A subscriber whose handler keeps failing on one message must neither block its queue nor
//! loop on it. [`Redelivery`] wraps a [`Handler`]: a message whose handler fails (an `Err` or a
//! panic) is handed to it again after a pause that doubles each time, up to
//! [`Redelivery::attempts`] tries in all. After the last one the message is published to
//! [`Redelivery::dead_letter`] on the same broker, with its headers and these added:
//!
//! | header | value |
//! |---|---|
//! | [`HEADER_DEAD_LETTER_TOPIC`] | the topic it was delivered on |
//! | [`HEADER_DEAD_LETTER_ERROR`] | the last error, as text |
//! | [`HEADER_DEAD_LETTER_ATTEMPTS`] | how many tries it had |
//!
//! and only once that publish is confirmed is the original acknowledged, so a message the
//! broker accepted is never lost on the way. Without a dead-letter topic it is dropped after
//! the last try, with a warning and a count in `micro_broker_discarded`.
//!
//! The tries happen in the subscriber, while the broker still holds the message
//! unacknowledged: a process that dies in between gets it redelivered by the broker (and the
//! count starts again). A subscription that keeps order (a kafka partition, a single
//! consumer of a rabbitmq queue) keeps it: the next message waits for the tries of this one,
//! which is the price of order, bounded by the sum of the pauses. A payload that does not
//! decode (an error from [`crate::Event::decode`]) fails the same way every time, so it goes
//! to the dead-letter topic at once.
//!
//! go-micro has no dead-letter topic; the headers follow its `Micro-` naming.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;

use super::kit::{Backoff, lock};
use super::{AckFn, Event, Handler, Message, PublishOptions, SharedBroker};
use crate::{Error, Result};

/// Header of a dead-lettered message: the topic it was delivered on.
pub const HEADER_DEAD_LETTER_TOPIC: &str = "Micro-Dead-Letter-Topic";
/// Header of a dead-lettered message: its handler's last error.
pub const HEADER_DEAD_LETTER_ERROR: &str = "Micro-Dead-Letter-Error";
/// Header of a dead-lettered message: how many times its handler was run.
pub const HEADER_DEAD_LETTER_ATTEMPTS: &str = "Micro-Dead-Letter-Attempts";

/// How often a dead-letter publish is tried before the message is handed back to the broker
/// (which redelivers or drops it by the plugin's own rule).
const DEAD_LETTER_PUBLISHES: u32 = 10;

/// What a subscription does with a message its handler fails on: see the [module](self).
///
/// ```
/// use std::time::Duration;
/// use rmicro::broker::Redelivery;
///
/// let policy = Redelivery::new(5)
///     .backoff(Duration::from_millis(50))
///     .dead_letter("students.graded.dead");
/// assert_eq!(policy.attempts, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redelivery {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The pause before the second try; it doubles for each try after that.
    pub backoff: Duration,
    /// The longest pause between two tries.
    pub max_backoff: Duration,
    /// Where a message goes after its last failed try; `None`: dropped, with a warning.
    pub dead_letter: Option<String>,
}

impl Default for Redelivery {
    /// 3 tries, 100 ms then 200 ms apart, no dead-letter topic.
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            dead_letter: None,
        }
    }
}

impl Redelivery {
    /// `attempts` tries in all (0 counts as 1), with the default back-off.
    pub fn new(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            ..Self::default()
        }
    }

    /// Sets the pause before the second try (doubling after it).
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// Sets the longest pause between two tries.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Sends messages that fail every try to `topic`.
    #[must_use]
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }

    /// The pause after failed try number `attempt` (1-based).
    fn pause(&self, attempt: u32) -> Duration {
        let doubled = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(doubled).min(self.max_backoff)
    }

    /// `handler` with this policy; dead letters are published on `broker`, the broker the
    /// subscription is made on.
    pub fn wrap(&self, handler: Handler, broker: SharedBroker) -> Handler {
        let policy = Arc::new(self.clone());
        Arc::new(move |event| {
            let policy = Arc::clone(&policy);
            let handler = Arc::clone(&handler);
            let broker = Arc::clone(&broker);
            Box::pin(async move { policy.run(&handler, &broker, event).await })
        })
    }

    async fn run(&self, handler: &Handler, broker: &SharedBroker, event: Event) -> Result<()> {
        let (topic, message, ack) = event.into_parts();
        let ack = SharedAck::new(ack);
        let attempts = self.attempts.max(1);
        let mut tried = 0;
        let mut last = String::new();
        while tried < attempts {
            tried += 1;
            let event = ack.event(Arc::clone(&topic), message.clone());
            let error = match AssertUnwindSafe(handler(event)).catch_unwind().await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) => error,
                Err(_) => {
                    Error::internal_server_error(super::kit::ERROR_ID, "the handler panicked")
                }
            };
            last = error.to_string();
            if undecodable(&error) {
                break;
            }
            if tried < attempts {
                crate::metrics::get().retried(broker.name(), &topic);
                let pause = self.pause(tried);
                tracing::debug!(%topic, attempt = tried, error = %last, ?pause, "subscriber failed; trying again");
                tokio::time::sleep(pause).await;
            }
        }
        let Some(dead_letter) = &self.dead_letter else {
            crate::metrics::get().discarded(broker.name(), &topic);
            tracing::warn!(
                %topic,
                id = message.id().unwrap_or_default(),
                attempts = tried,
                error = %last,
                "dropping a message its subscriber failed on every try (no dead-letter topic)"
            );
            return Ok(());
        };
        let mut dead = message;
        dead.header
            .insert(HEADER_DEAD_LETTER_TOPIC.to_owned(), topic.to_string());
        dead.header
            .insert(HEADER_DEAD_LETTER_ERROR.to_owned(), last.clone());
        dead.header
            .insert(HEADER_DEAD_LETTER_ATTEMPTS.to_owned(), tried.to_string());
        let mut backoff = Backoff::new(self.backoff, self.max_backoff.max(self.backoff));
        let mut publishes = 0;
        loop {
            publishes += 1;
            match broker
                .publish(dead_letter, dead.clone(), PublishOptions::default())
                .await
            {
                Ok(()) => break,
                Err(error) if publishes < DEAD_LETTER_PUBLISHES => {
                    tracing::debug!(%topic, dead_letter, %error, "dead-letter publish failed; trying again");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => {
                    tracing::warn!(%topic, dead_letter, %error, "cannot publish to the dead-letter topic; handing the message back to the broker");
                    return Err(error);
                }
            }
        }
        crate::metrics::get().dead_lettered(broker.name(), &topic);
        tracing::warn!(
            %topic,
            dead_letter,
            id = dead.id().unwrap_or_default(),
            attempts = tried,
            error = %last,
            "moved a message its subscriber failed on every try to the dead-letter topic"
        );
        // Acknowledged only now: the dead letter is on the broker.
        ack.settle().await
    }
}

/// Whether `error` is a payload that does not decode, which no further try can change.
fn undecodable(error: &Error) -> bool {
    error.id == super::kit::ERROR_ID && (400..500).contains(&error.code)
}

/// A delivery's ack, handed to every try's event: the first to use it acks.
struct SharedAck(Arc<Mutex<Option<AckFn>>>);

impl SharedAck {
    fn new(ack: Option<AckFn>) -> Self {
        Self(Arc::new(Mutex::new(ack)))
    }

    fn event(&self, topic: Arc<str>, message: Message) -> Event {
        if lock(&self.0).is_none() {
            return Event::new(topic, message);
        }
        let slot = Arc::clone(&self.0);
        let ack: AckFn = Box::new(move || {
            let ack = lock(&slot).take();
            Box::pin(async move {
                match ack {
                    Some(ack) => ack().await,
                    None => Ok(()),
                }
            })
        });
        Event::with_ack(topic, message, ack)
    }

    /// Acks, if no try did.
    async fn settle(&self) -> Result<()> {
        let ack = lock(&self.0).take();
        match ack {
            Some(ack) => ack().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::broker::memory::MemoryBroker;
    use crate::broker::{Broker as _, SubscribeOptions, handler};

    fn failing_on(poison: &'static str, runs: Arc<AtomicU32>) -> Handler {
        handler(move |event: Event| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if event.message().body.as_ref() == poison.as_bytes() {
                    Err(Error::internal_server_error("test", "poison"))
                } else {
                    Ok(())
                }
            }
        })
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let policy = Redelivery::new(6)
            .backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(350));
        let pauses: Vec<_> = (1..=4).map(|n| policy.pause(n).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350]);
        assert_eq!(Redelivery::new(0).attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poison_message_is_tried_n_times_then_dead_lettered_with_its_story() {
        let broker: SharedBroker = Arc::new(MemoryBroker::new());
        broker.connect().await.expect("connect");
        let dead = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&dead);
        broker
            .subscribe(
                "t.dead",
                handler(move |event: Event| {
                    lock(&sink).push(event.message().clone());
                    async { Ok(()) }
                }),
                SubscribeOptions::default(),
            )
            .await
            .expect("subscribe");
        let runs = Arc::new(AtomicU32::new(0));
        let wrapped = Redelivery::new(4)
            .backoff(Duration::from_millis(10))
            .dead_letter("t.dead")
            .wrap(failing_on("bad", Arc::clone(&runs)), Arc::clone(&broker));
        let started = tokio::time::Instant::now();
        let message = Message::new(&b"bad"[..])
            .with_header("Micro-ID", "m-1")
            .with_header("k", "v");
        wrapped(Event::new("t", message)).await.expect("settled");
        assert_eq!(runs.load(Ordering::SeqCst), 4, "tried 4 times");
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(10 + 20 + 40),
            "paused 10, 20 and 40 ms"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        let letters = lock(&dead).clone();
        assert_eq!(letters.len(), 1, "{letters:?}");
        let header = &letters[0].header;
        assert_eq!(header[HEADER_DEAD_LETTER_TOPIC], "t");
        assert_eq!(header[HEADER_DEAD_LETTER_ATTEMPTS], "4");
        assert!(
            header[HEADER_DEAD_LETTER_ERROR].contains("poison"),
            "{header:?}"
        );
        assert_eq!(header["Micro-ID"], "m-1", "the id is kept");
        assert_eq!(header["Micro-Topic"], "t.dead");
        assert_eq!(header["k"], "v", "the user's headers are kept");
        assert_eq!(letters[0].body.as_ref(), b"bad");

        // A good message is handled once; one that succeeds on a later try is not
        // dead-lettered.
        runs.store(0, Ordering::SeqCst);
        wrapped(Event::new("t", Message::new(&b"good"[..])))
            .await
            .expect("ok");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let flaky_runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&flaky_runs);
        let flaky = Redelivery::new(3).dead_letter("t.dead").wrap(
            handler(move |_| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first try panics")
                    } else {
                        Ok(())
                    }
                }
            }),
            Arc::clone(&broker),
        );
        flaky(Event::new("t", Message::new(&b"x"[..])))
            .await
            .expect("second try");
        assert_eq!(flaky_runs.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(lock(&dead).len(), 1, "nothing more was dead-lettered");
    }

    #[tokio::test(start_paused = true)]
    async fn an_undecodable_payload_skips_the_tries_and_without_a_topic_is_dropped() {
        let broker: SharedBroker = Arc::new(MemoryBroker::new());
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let wrapped = Redelivery::new(5).wrap(
            handler(move |event: Event| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    crate::Event::<u32>::decode(event)?;
                    Ok(())
                }
            }),
            broker,
        );
        wrapped(Event::new("t", Message::new(&b"not a number"[..])))
            .await
            .expect("dropped, not handed back");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "decoding fails every time");
    }

    /// A broker whose publishes all fail, as one does while its server is down.
    #[derive(Debug)]
    struct Down;

    #[async_trait::async_trait]
    impl crate::broker::Broker for Down {
        fn name(&self) -> &str {
            "down"
        }
        fn address(&self) -> String {
            String::new()
        }
        async fn connect(&self) -> Result<()> {
            Ok(())
        }
        async fn disconnect(&self) -> Result<()> {
            Ok(())
        }
        async fn publish(&self, _: &str, _: Message, _: PublishOptions) -> Result<()> {
            Err(Error::internal_server_error("down", "connection refused"))
        }
        async fn subscribe(
            &self,
            _: &str,
            _: Handler,
            _: SubscribeOptions,
        ) -> Result<Box<dyn crate::broker::Subscriber>> {
            Err(Error::internal_server_error("down", "connection refused"))
        }
    }

    fn counting_ack(count: &Arc<AtomicU32>) -> AckFn {
        let count = Arc::clone(count);
        Box::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_ack_waits_for_the_dead_letter_and_a_failed_publish_hands_the_message_back() {
        let runs = Arc::new(AtomicU32::new(0));
        let acked = Arc::new(AtomicU32::new(0));
        let down: SharedBroker = Arc::new(Down);
        let wrapped = Redelivery::new(2)
            .dead_letter("t.dead")
            .wrap(failing_on("bad", Arc::clone(&runs)), down);
        let outcome = wrapped(Event::with_ack(
            "t",
            Message::new(&b"bad"[..]),
            counting_ack(&acked),
        ))
        .await;
        let error = outcome.expect_err("handed back to the broker");
        assert!(error.detail.contains("connection refused"), "{error}");
        assert_eq!(acked.load(Ordering::SeqCst), 0, "never acked");
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        let up: SharedBroker = Arc::new(MemoryBroker::new());
        let wrapped = Redelivery::new(2)
            .dead_letter("t.dead")
            .wrap(failing_on("bad", Arc::clone(&runs)), up);
        wrapped(Event::with_ack(
            "t",
            Message::new(&b"bad"[..]),
            counting_ack(&acked),
        ))
        .await
        .expect("dead-lettered");
        assert_eq!(
            acked.load(Ordering::SeqCst),
            1,
            "acked once, after the publish"
        );
    }
}
