//! The NATS broker (feature `nats`), on [async-nats](async_nats) (core NATS, no JetStream).
//!
//! Wire, as go-micro's `broker/nats` (go-micro v2), so that Go and Rust peers exchange messages
//! through one NATS server:
//!
//! - the subject is the broker topic, verbatim;
//! - the payload is go-micro's JSON envelope `{"Header":{..},"Body":"<base64>"}`
//!   ([`Message::to_envelope`]), with `Micro-Topic` and `Micro-ID` stamped ([`stamp`]); no NATS
//!   headers;
//! - a queue subscription is a NATS queue group named after the queue: the server hands each
//!   message to one member of the group.
//!
//! Delivery and errors:
//!
//! - **Publish is flushed.** `publish` waits for a connection (up to
//!   [`NatsBrokerOptions::connect_timeout`]), hands the message to the client and, with
//!   [`NatsBrokerOptions::flush_each_publish`] (the default), flushes: it returns `Ok` once the
//!   server has answered a PING sent after the message, so a server that is away, or a
//!   message larger than the server's `max_payload`, is an error for the caller. Core NATS is
//!   at most once: a subscriber that is disconnected at that moment misses the message.
//! - **Reconnection is async-nats's**: the client reconnects by itself, forever, with
//!   exponential backoff (100 ms doubling to [`NatsBrokerOptions::max_backoff`], with jitter),
//!   and restores every subscription on the new connection. The initial connect retries too,
//!   so a program may start before the server. Connection changes are logged.
//! - **Dispatch.** Each subscription has a task running the handler on one message at a time,
//!   in arrival order. Messages wait in async-nats's per-subscription buffer
//!   ([`NatsBrokerOptions::subscription_capacity`]); when it is full, the client drops
//!   messages and reports a *slow consumer*, which the broker logs as a warning and counts
//!   ([`NatsBroker::slow_consumer_events`]). A payload that is not a go-micro envelope is
//!   dropped with a warning and counted ([`NatsBroker::malformed_messages`]), as go-micro does.
//! - **Disconnect flushes.** `disconnect` stops the subscriptions, flushes what was published
//!   and closes the connection.
//!
//! # Addresses
//!
//! `--broker_address`: comma-separated `nats://host:port` (a bare `host:port` gets `nats://`),
//! `tls://host:port` for TLS (rustls with ring, the system's root certificates). Credentials
//! as URL userinfo: `nats://user:password@host:port` or `nats://token@host:port`. Default
//! `nats://127.0.0.1:4222`.
//!
//! A 1 MiB body is about 1.4 MB of envelope: nats-server's default `max_payload` is 1 MB, so
//! large messages need `max_payload` raised on the server (for example `max_payload: 4MB`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State as NatsState;
use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::{oneshot, watch};
use tracing::Instrument as _;

use super::kit::{self, ERROR_ID, Handle, Outcome, Stop, lock};
use super::{Broker, Event, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::config::Options;
use crate::nats_conn::{ConnOptions, Connection, DEFAULT_ADDRESS};
use crate::{Error, Result};

/// Options of [`NatsBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsBrokerOptions {
    /// Server addresses (see the [module docs](self)). Default `nats://127.0.0.1:4222`.
    pub addresses: Vec<String>,
    /// How long `connect`, `publish` and `subscribe` wait for a connection to the server
    /// before failing, with an error naming the last connection failure (a refused
    /// connection, an untrusted certificate, ...). Default 10 s.
    pub connect_timeout: Duration,
    /// How long a flush may take. Default 10 s.
    pub ack_timeout: Duration,
    /// Flush after every publish, so that `Ok` means the server has the message. Default
    /// `true`; `false` trades that for throughput (the client then flushes in the
    /// background).
    pub flush_each_publish: bool,
    /// Messages buffered per subscription while its handler is busy; beyond, the client
    /// drops messages and reports a slow consumer. Default 65536, async-nats's own default
    /// (go-micro's nats.go client allows 524288 pending messages).
    pub subscription_capacity: usize,
    /// Longest delay between reconnection attempts. Default 5 s.
    pub max_backoff: Duration,
    /// The client name the server shows. Default `rmicro`.
    pub name: String,
}

impl Default for NatsBrokerOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            flush_each_publish: true,
            subscription_capacity: 65_536,
            max_backoff: Duration::from_secs(5),
            name: "rmicro".to_owned(),
        }
    }
}

/// NATS's broker: go-micro's envelope over core NATS subjects and queue groups. See the
/// [module docs](self) for the wire and the delivery guarantees.
///
/// Connecting is lazy: `connect` (or the first `publish`/`subscribe`) creates the client,
/// which keeps connecting in the background. `disconnect` stops every subscription, flushes
/// and closes the connection. Clones share state.
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

struct Inner {
    flush_each_publish: bool,
    conn: Connection,
    malformed: Arc<AtomicU64>,
    /// Stop signals of the live subscriptions, for `disconnect`.
    subs: Mutex<Vec<watch::Sender<bool>>>,
}

impl fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBroker")
            .field("address", &self.inner.conn.address())
            .field("subscriptions", &lock(&self.inner.subs).len())
            .finish()
    }
}

impl NatsBroker {
    /// A broker for the servers in `opts`. Validates the addresses; connects nothing yet.
    pub fn new(opts: NatsBrokerOptions) -> Result<Self> {
        let conn = Connection::new(
            ERROR_ID,
            "nats",
            &opts.addresses,
            ConnOptions {
                connect_timeout: opts.connect_timeout,
                ack_timeout: opts.ack_timeout,
                subscription_capacity: opts.subscription_capacity,
                max_backoff: opts.max_backoff,
                name: opts.name,
            },
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                flush_each_publish: opts.flush_each_publish,
                conn,
                malformed: Arc::new(AtomicU64::new(0)),
                subs: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The broker `--broker=nats --broker_address=...` names.
    pub fn from_config(options: &Options) -> Result<Self> {
        Self::new(NatsBrokerOptions {
            addresses: vec![options.broker_address.clone()],
            ..NatsBrokerOptions::default()
        })
    }

    /// Slow-consumer reports so far: each means the client dropped messages of a
    /// subscription whose handler could not keep up.
    pub fn slow_consumer_events(&self) -> u64 {
        self.inner.conn.slow_consumers()
    }

    /// Messages dropped because their payload was not a go-micro envelope.
    pub fn malformed_messages(&self) -> u64 {
        self.inner.malformed.load(Ordering::Relaxed)
    }

    async fn connected(&self) -> Result<async_nats::Client> {
        self.inner.conn.connected().await
    }

    async fn flush(&self, client: &async_nats::Client, what: &str) -> Result<()> {
        self.inner.conn.flush(client, what).await
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn name(&self) -> &str {
        "nats"
    }

    fn address(&self) -> String {
        self.inner.conn.address().to_owned()
    }

    fn connected(&self) -> Option<bool> {
        Some(self.inner.conn.is_connected())
    }

    async fn connect(&self) -> Result<()> {
        self.connected().await.map(drop)
    }

    async fn disconnect(&self) -> Result<()> {
        let subs = std::mem::take(&mut *lock(&self.inner.subs));
        for stop in subs {
            let _ = stop.send(true);
        }
        let client = self.inner.conn.take();
        if let Some(client) = client {
            if client.connection_state() == NatsState::Connected
                && let Err(err) = self.flush(&client, "pending messages").await
            {
                tracing::warn!(error = %err.detail, "nats: flush on disconnect failed");
            }
            let _ = client.drain().await;
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        stamp(topic, &mut msg);
        let span = tracing::debug_span!(
            "broker.publish",
            broker = "nats",
            topic,
            id = msg.id().unwrap_or_default()
        );
        async {
            let client = self.connected().await?;
            let payload = bytes::Bytes::from(msg.to_envelope());
            let size = payload.len();
            client.publish(topic.to_owned(), payload).await.map_err(|e| {
                use async_nats::client::PublishErrorKind as K;
                match e.kind() {
                    K::MaxPayloadExceeded => Error::payload_too_large(
                        ERROR_ID,
                        format!(
                            "nats: a message of {size} bytes (envelope) exceeds `max_payload` of `{}` ({} bytes)",
                            self.inner.conn.address(),
                            client.server_info().max_payload
                        ),
                    ),
                    K::InvalidSubject => Error::bad_request(
                        ERROR_ID,
                        format!("nats: cannot publish to `{topic}`: not a valid subject ({e})"),
                    ),
                    K::Send => Error::service_unavailable(
                        ERROR_ID,
                        format!("nats: cannot publish to `{}`: {e}", self.inner.conn.address()),
                    ),
                }
            })?;
            if self.inner.flush_each_publish {
                self.flush(&client, "message").await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let client = self.connected().await?;
        let subscribed = match &opts.queue {
            Some(queue) => {
                client
                    .queue_subscribe(topic.to_owned(), queue.clone())
                    .await
            }
            None => client.subscribe(topic.to_owned()).await,
        };
        let sub = subscribed.map_err(|e| {
            Error::bad_request(
                ERROR_ID,
                format!("nats: cannot subscribe to `{topic}`: {e}"),
            )
        })?;
        // The SUB reaches the server before `subscribe` returns.
        self.flush(&client, "subscription").await?;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        {
            let mut subs = lock(&self.inner.subs);
            // Forget the stop signals of subscriptions already stopped.
            subs.retain(|s| !*s.borrow());
            subs.push(stop.clone());
        }
        tokio::spawn(worker(
            sub,
            handler,
            stop_rx,
            done_tx,
            Arc::clone(&self.inner.malformed),
        ));
        Ok(Handle::boxed(
            "nats",
            topic,
            opts,
            NatsStop {
                stop,
                done: Mutex::new(Some(done_rx)),
            },
        ))
    }
}

/// Runs a subscription's handler on its messages, one at a time, until stopped.
async fn worker(
    mut sub: async_nats::Subscriber,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
    done: oneshot::Sender<()>,
    malformed: Arc<AtomicU64>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = sub.next() => next,
        };
        let Some(nats_msg) = next else { break };
        let topic = nats_msg.subject.as_str();
        let Some(msg) = kit::decode("nats", topic, &nats_msg.payload, &malformed) else {
            continue;
        };
        if let Outcome::Failed(error) =
            kit::run_handler("nats", &handler, Event::new(topic, msg)).await
        {
            tracing::warn!(topic, %error, "nats: subscriber failed (nats has no redelivery)");
        }
    }
    let _ = sub.unsubscribe().await;
    let _ = done.send(());
}

/// How a NATS subscription stops: its worker's stop signal, and the worker's end.
struct NatsStop {
    stop: watch::Sender<bool>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

#[async_trait]
impl Stop for NatsStop {
    /// Returns once the handler has finished its current message (if any) and the client has
    /// sent the UNSUB.
    async fn stop(&self, _topic: &str) -> Result<()> {
        let _ = self.stop.send(true);
        let done = lock(&self.done).take();
        if let Some(done) = done {
            let _ = done.await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let b = NatsBroker::from_config(&Options::default()).expect("default");
        assert_eq!(b.address(), "nats://127.0.0.1:4222");
        let mut o = Options {
            broker_address: "127.0.0.1:4333, nats://u:p@h:1,tls://h:2".to_owned(),
            ..Options::default()
        };
        let b = NatsBroker::from_config(&o).expect("list");
        assert_eq!(b.address(), "nats://127.0.0.1:4333,nats://h:1,tls://h:2");
        o.broker_address = "mqtt://h:1".to_owned();
        let err = NatsBroker::from_config(&o).expect_err("scheme");
        assert!(
            err.detail.contains("invalid broker address `mqtt://h:1`"),
            "{err}"
        );
    }
}
