//! NSQ broker (feature `nsq`), speaking nsqd's TCP protocol itself (see `wire.rs`; the one
//! Rust client crate, tokio-nsq, brings a second, 2021-era TLS stack and ring 0.16).
//!
//! Wire (go-plugins' `broker/nsq`, v4 v1.1.0, so that Go and Rust peers exchange messages):
//!
//! - a message is published with `PUB <topic>`; the NSQ body is go-micro's JSON envelope,
//!   `{"Header":{..},"Body":"<base64>"}`;
//! - a subscription with a queue name consumes the NSQ channel of that name: the channel's
//!   consumers compete for its messages, and a channel keeps its messages while nobody
//!   consumes (up to nsqd's memory queue, then on disk);
//! - a subscription without a queue consumes a channel of its own, `<uuid>#ephemeral`, as
//!   go-micro's does: every subscription gets every message, and nsqd deletes the channel
//!   when its consumer leaves;
//! - topic and channel names are nsqd's: 1 to 64 of `.a-zA-Z0-9_-`. Anything else is a
//!   `400` at `publish`/`subscribe`, naming the rule.
//!
//! # Delivery
//!
//! At least once, per channel. [`SubscribeOptions::auto_ack`] on (the default): the message
//! is finished (`FIN`) after the handler returns `Ok`; off: the handler acks through
//! [`Event::ack`], and a message neither acked nor failed comes back after nsqd's
//! `--msg-timeout` (60 s). While a handler runs, the message is `TOUCH`ed so that a slow
//! handler does not get it redelivered elsewhere. A handler that fails (an `Err` or a panic)
//! on a message's first delivery gets it again after [`NsqOptions::requeue_delay`] (`REQ`);
//! on a later delivery the message is finished and dropped, with a warning: a failing
//! message is tried at most twice ([`NsqOptions::redeliver_failed`] off: once). A body that
//! is not go-micro's envelope is finished, logged with its topic and counted
//! ([`NsqBroker::malformed_messages`]). Each connection holds at most
//! [`NsqOptions::max_in_flight`] unfinished messages; its handler runs one at a time, in
//! order.
//!
//! What survives an nsqd restart is nsqd's: a stop with SIGTERM writes every channel's queue,
//! in-flight messages included, to disk; a crash loses what was in memory; ephemeral
//! channels are never written to disk.
//!
//! # Recovery
//!
//! Each subscription holds one connection per nsqd and reconnects with backoff (100 ms
//! doubling to 2 s, jittered, logged), subscribing again. nsqd's heartbeats are answered;
//! a connection that hears nothing for two heartbeat intervals is dropped and made again.
//! Publishing uses one connection, made again on the next publish after a failure; a publish
//! during an outage fails with the reason.
//!
//! [`Broker::connected`] (the service's readiness) is `false` while any subscription's
//! connection to an nsqd is being made again, and from a publish or connect that reached no
//! nsqd until the publishing connection, tried again with the same backoff, or a later
//! publish gets through.
//!
//! # Addresses
//!
//! `--broker_address` takes nsqd TCP addresses, `host:port`, comma-separated (a
//! `tcp://` or `nsq://` prefix is accepted); empty = `127.0.0.1:4150`, go-micro's default.
//! Publishing uses the first that answers; subscriptions consume from all of them.
//! nsqlookupd is not used (go-micro has it only as a code option).
//!
//! # TLS and AUTH
//!
//! `tls://host:port` asks nsqd for TLS in `IDENTIFY` (`tls_v1`, as go-nsq's `TlsV1`) and
//! completes the handshake before anything else is sent: rustls with ring, trusting the
//! system's roots (or the file `SSL_CERT_FILE` names), or [`NsqOptions::tls`]. An nsqd
//! started without `--tls-cert`/`--tls-key` is refused with that reason, and one with
//! `--tls-required` refuses a plain `host:port` (the error says to use `tls://`).
//!
//! The password of an address is nsqd's AUTH secret (go-nsq's `AuthSecret`):
//! `tls://:secret@host:port` (a user name, if any, is ignored). It is sent only when nsqd
//! says it requires AUTH (`--auth-http-address`); nsqd asks its auth server whether the
//! secret may publish and subscribe. A wrong secret is a `401` naming nsqd's answer; a
//! missing one a `401` saying how to give it. The secret is masked in
//! [`Broker::address`], logs and errors.
//!
//! [`SubscribeOptions::auto_ack`]: super::SubscribeOptions::auto_ack
//! [`Event::ack`]: super::Event::ack

mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex as AsyncMutex, mpsc};

use self::wire::{Frame, Negotiated, NsqMessage};
use super::kit::{self, Backoff, ERROR_ID, Handle, Links, Outcome, Publishing, StopFlag, mask_url};
use super::{AckFn, Broker, Handler, Message, PublishOptions, SubscribeOptions, Subscriber, stamp};
use crate::config::Options;
use crate::{Error, Result};

/// The address used when `--broker_address` is empty (go-micro's).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:4150";

/// nsqd's `--max-msg-size` unless set.
const NSQD_DEFAULT_MAX_MSG_SIZE: usize = 1024 * 1024;

/// Options of [`NsqBroker`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NsqOptions {
    /// nsqd TCP addresses: `host:port`, `tcp://`/`nsq://host:port`, or `tls://host:port`
    /// (TLS), each with an optional AUTH secret as its password (`tls://:secret@host:port`).
    /// Default `127.0.0.1:4150`.
    pub addresses: Vec<String>,
    /// The TLS configuration for `tls://` addresses. `None`: rustls with ring and the
    /// system's root certificates (`SSL_CERT_FILE` is honoured).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Unfinished messages a subscription's connection holds (`RDY`). Default 32 (go-micro's
    /// is 1, which costs a round trip per message).
    pub max_in_flight: u16,
    /// Retry a failed message once (`REQ`). Default `true`.
    pub redeliver_failed: bool,
    /// The largest envelope nsqd takes (its `--max-msg-size`, which it does not announce):
    /// a larger message is refused before it is sent, with a 400. `None` (the default):
    /// nsqd refuses it, closing the connection, and the error says so.
    pub max_message_size: Option<usize>,
    /// How long nsqd holds a failed message back before its second delivery. Default 1 s.
    pub requeue_delay: Duration,
    /// The heartbeat interval asked of nsqd. Default 10 s.
    pub heartbeat: Duration,
    /// How long connecting, and each publish, may take. Default 10 s.
    pub timeout: Duration,
    /// First delay between reconnection attempts; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between reconnection attempts. Default 2 s.
    pub max_backoff: Duration,
}

impl Default for NsqOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            tls: None,
            max_in_flight: 32,
            redeliver_failed: true,
            max_message_size: None,
            requeue_delay: Duration::from_secs(1),
            heartbeat: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl NsqOptions {
    /// Options for a `--broker_address` value (empty = the default).
    pub fn with_addresses(list: &str) -> Self {
        Self {
            addresses: kit::address_list(list, DEFAULT_ADDRESS),
            ..Self::default()
        }
    }
}

/// One nsqd, as an address names it.
#[derive(Debug, Clone)]
struct Nsqd {
    /// `host:port`: what is dialled.
    addr: String,
    /// `tls://`: TLS after `IDENTIFY`.
    tls: bool,
    /// The address's password: nsqd's AUTH secret.
    secret: Option<String>,
    /// The address as written, its secret masked: for logs and errors.
    shown: String,
}

impl Nsqd {
    fn parse(address: &str) -> Result<Nsqd> {
        let shown = mask_url(address);
        let bad = |why: &str| {
            Error::bad_request(ERROR_ID, format!("nsq: broker address `{shown}` {why}"))
        };
        let (tls, rest) = match address.split_once("://") {
            None => (false, address),
            Some(("tcp" | "nsq", rest)) => (false, rest),
            Some(("tls", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "has scheme `{scheme}`; use host:port, nsq:// or tls://"
                )));
            }
        };
        let (secret, addr) = match rest.rsplit_once('@') {
            Some((userinfo, addr)) => {
                let secret = userinfo.split_once(':').map_or(userinfo, |(_, s)| s);
                (Some(secret.to_owned()).filter(|s| !s.is_empty()), addr)
            }
            None => (None, rest),
        };
        let addr = addr.trim_end_matches('/');
        if !matches!(
            addr.rsplit_once(':').map(|(_, p)| p.parse::<u16>()),
            Some(Ok(_))
        ) {
            return Err(bad("is not host:port"));
        }
        Ok(Nsqd {
            addr: addr.to_owned(),
            tls,
            secret,
            shown,
        })
    }

    /// The name the server's certificate must carry: the host, without IPv6 brackets.
    fn server_name(&self) -> Result<rustls::pki_types::ServerName<'static>> {
        let host = self
            .addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
            Error::bad_request(
                ERROR_ID,
                format!(
                    "nsq: `{host}` of `{}` is no TLS server name: {e}",
                    self.shown
                ),
            )
        })
    }
}

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type Reader = BufReader<ReadHalf<Box<dyn Io>>>;
type Writer = WriteHalf<Box<dyn Io>>;

/// go-micro's NSQ broker. See the [module docs](self) for the wire and the guarantees.
#[derive(Clone)]
pub struct NsqBroker {
    inner: Arc<Inner>,
}

struct Inner {
    opts: NsqOptions,
    client_id: String,
    nsqds: Vec<Nsqd>,
    tls: Option<tokio_rustls::TlsConnector>,
    publisher: AsyncMutex<Option<Producer>>,
    subs: kit::Live,
    malformed: AtomicU64,
    /// Which connections are down (readiness): each subscription's to each nsqd, the
    /// publisher's.
    links: Arc<Links>,
    publishing: Arc<Publishing>,
}

impl fmt::Debug for NsqBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsqBroker")
            .field("addresses", &self.address())
            .field("subscriptions", &self.inner.subs.count())
            .finish()
    }
}

impl NsqBroker {
    /// A broker for the nsqds in `opts`. Validates the addresses; connects nothing yet.
    pub fn new(opts: NsqOptions) -> Result<Self> {
        let nsqds = opts
            .addresses
            .iter()
            .map(|a| Nsqd::parse(a))
            .collect::<Result<Vec<_>>>()?;
        let tls = match (&opts.tls, nsqds.iter().any(|n| n.tls)) {
            (_, false) => None,
            (Some(config), true) => Some(Arc::clone(config)),
            (None, true) => Some(crate::tls::system_roots("nsq", ERROR_ID)?),
        };
        let links = Arc::new(Links::default());
        let publishing = Publishing::new(&links, opts.min_backoff, opts.max_backoff);
        Ok(Self {
            inner: Arc::new(Inner {
                links,
                publishing,
                client_id: format!("rmicro-{}", &crate::id::uuid().simple().to_string()[..8]),
                nsqds,
                tls: tls.map(tokio_rustls::TlsConnector::from),
                opts,
                publisher: AsyncMutex::new(None),
                subs: kit::Live::default(),
                malformed: AtomicU64::new(0),
            }),
        })
    }

    /// The broker `--broker_address` names.
    pub fn from_config(options: &Options) -> Result<Self> {
        Self::new(NsqOptions::with_addresses(&options.broker_address))
    }

    /// Messages dropped because their body was not go-micro's envelope.
    pub fn malformed_messages(&self) -> u64 {
        self.inner.malformed.load(Ordering::Relaxed)
    }
}

fn unavailable(address: &str, what: impl fmt::Display) -> Error {
    Error::service_unavailable(ERROR_ID, format!("nsq: nsqd at `{address}`: {what}"))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if wire::valid_name(name) {
        Ok(())
    } else {
        Err(Error::bad_request(
            ERROR_ID,
            format!("nsq: {what} `{name}` is not a valid NSQ name (1 to 64 of `.a-zA-Z0-9_-`)"),
        ))
    }
}

/// A connection after the handshake: the magic, `IDENTIFY` and its answer, TLS and AUTH when
/// they apply.
struct Conn {
    address: String,
    reader: Reader,
    writer: Writer,
    negotiated: Negotiated,
}

/// The answer to a command sent during the handshake: a response, or nsqd's error.
async fn handshake_answer<R: AsyncRead + Unpin>(
    reader: &mut R,
    address: &str,
    after: &str,
) -> Result<std::result::Result<bytes::Bytes, String>> {
    match wire::read_frame(reader).await {
        Ok(Frame::Response(body)) => Ok(Ok(body)),
        Ok(Frame::Error(e)) => Ok(Err(String::from_utf8_lossy(&e).into_owned())),
        Ok(Frame::Message(_)) => Err(unavailable(address, format!("a message before {after}"))),
        Err(e) => Err(unavailable(address, format!("after {after}: {e}"))),
    }
}

impl Conn {
    /// `heartbeat`: `None` for a publishing connection (see [`wire::identify_body`]).
    async fn open(nsqd: &Nsqd, inner: &Inner, heartbeat: Option<Duration>) -> Result<Conn> {
        let address = nsqd.shown.as_str();
        let handshake = async {
            let mut stream = TcpStream::connect(&nsqd.addr)
                .await
                .map_err(|e| unavailable(address, format!("cannot connect: {e}")))?;
            let _ = stream.set_nodelay(true);
            let mut out = BytesMut::from(&wire::MAGIC[..]);
            let identify = wire::identify_body(&inner.client_id, heartbeat, nsqd.tls);
            wire::command(&mut out, &[b"IDENTIFY"], Some(&identify));
            wire::send(&mut stream, &out)
                .await
                .map_err(|e| unavailable(address, e))?;
            // Read unbuffered: with TLS, what follows the answer is the TLS handshake's.
            let negotiated = match handshake_answer(&mut stream, address, "IDENTIFY").await? {
                Ok(body) => serde_json::from_slice::<Negotiated>(&body).map_err(|e| {
                    unavailable(address, format!("unexpected IDENTIFY answer: {e}"))
                })?,
                Err(e) => return Err(unavailable(address, e)),
            };
            let stream: Box<dyn Io> = match (&inner.tls, nsqd.tls) {
                (Some(connector), true) => {
                    if !negotiated.tls_v1 {
                        return Err(unavailable(
                            address,
                            "it does not offer TLS (nsqd needs --tls-cert and --tls-key); use a plain host:port",
                        ));
                    }
                    let tls = connector
                        .connect(nsqd.server_name()?, stream)
                        .await
                        .map_err(|e| unavailable(address, format!("TLS: {e}")))?;
                    Box::new(tls)
                }
                _ => Box::new(stream),
            };
            let (read, mut writer) = tokio::io::split(stream);
            let mut reader = BufReader::new(read);
            if nsqd.tls {
                // nsqd confirms the upgrade with an OK over TLS.
                if let Err(e) = handshake_answer(&mut reader, address, "TLS").await? {
                    return Err(unavailable(address, e));
                }
            }
            if negotiated.auth_required {
                let Some(secret) = &nsqd.secret else {
                    return Err(Error::unauthorized(
                        ERROR_ID,
                        format!(
                            "nsq: nsqd at `{address}` requires AUTH: give its secret as the address's password (nsq://:<secret>@host:port or tls://:<secret>@host:port)"
                        ),
                    ));
                };
                out.clear();
                wire::command(&mut out, &[b"AUTH"], Some(secret.as_bytes()));
                wire::send(&mut writer, &out)
                    .await
                    .map_err(|e| unavailable(address, e))?;
                match handshake_answer(&mut reader, address, "AUTH").await? {
                    Ok(body) => {
                        tracing::debug!(address, answer = %String::from_utf8_lossy(&body), "nsq: authenticated");
                    }
                    Err(e) => {
                        return Err(Error::unauthorized(
                            ERROR_ID,
                            format!("nsq: nsqd at `{address}` refused the AUTH secret: {e}"),
                        ));
                    }
                }
            } else if nsqd.secret.is_some() {
                tracing::debug!(
                    address,
                    "nsq: nsqd does not require AUTH; the secret is not sent"
                );
            }
            Ok(Conn {
                address: address.to_owned(),
                reader,
                writer,
                negotiated,
            })
        };
        tokio::time::timeout(inner.opts.timeout, handshake)
            .await
            .map_err(|_| {
                unavailable(
                    address,
                    format!("no handshake within {:?}", inner.opts.timeout),
                )
            })?
    }

    /// Sends a command and waits for its `OK`, answering heartbeats meanwhile.
    async fn request(&mut self, bytes: &[u8]) -> Result<()> {
        wire::send(&mut self.writer, bytes)
            .await
            .map_err(|e| unavailable(&self.address, e))?;
        loop {
            match wire::read_frame(&mut self.reader).await {
                Ok(Frame::Response(r)) if r.as_ref() == wire::HEARTBEAT => {
                    wire::send(&mut self.writer, b"NOP\n")
                        .await
                        .map_err(|e| unavailable(&self.address, e))?;
                }
                Ok(Frame::Response(_)) => return Ok(()),
                Ok(Frame::Error(e)) => {
                    let e = String::from_utf8_lossy(&e);
                    let hint = if e.contains("TLS required") {
                        " (it takes TLS connections only: use a tls:// address)"
                    } else {
                        ""
                    };
                    return Err(Error::bad_request(
                        ERROR_ID,
                        format!("nsq: nsqd at `{}` refused: {e}{hint}", self.address),
                    ));
                }
                Ok(Frame::Message(_)) => {
                    return Err(unavailable(
                        &self.address,
                        "a message on a publishing connection",
                    ));
                }
                Err(e) => return Err(unavailable(&self.address, e)),
            }
        }
    }
}

/// The publishing connection.
struct Producer {
    conn: Conn,
    buf: BytesMut,
}

impl Inner {
    /// Opens the publishing connection if there is none.
    async fn open_publisher(&self) -> Result<()> {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            *guard = Some(Producer {
                conn: self.open_any().await?,
                buf: BytesMut::new(),
            });
        }
        Ok(())
    }

    /// Notes a publish's outcome on the publisher's link: up when an nsqd took it; down
    /// when none could be reached (a 503; an nsqd refusing the message is no outage), then
    /// probed by opening the publishing connection until one answers.
    fn publisher_outcome(self: &Arc<Self>, result: &Result<()>) {
        match result {
            Ok(()) => self.publishing.reached(),
            Err(e) if e.code == 503 => self.publishing.unreachable(self, |inner| async move {
                inner.open_publisher().await.is_ok()
            }),
            Err(_) => {}
        }
    }

    /// A connection to the first nsqd that answers.
    async fn open_any(&self) -> Result<Conn> {
        let mut last = None;
        for nsqd in &self.nsqds {
            match Conn::open(nsqd, self, None).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| unavailable("", "no address")))
    }

    async fn publish(&self, topic: &str, envelope: &[u8]) -> Result<()> {
        if let Some(max) = self.opts.max_message_size
            && envelope.len() > max
        {
            return Err(Error::bad_request(
                ERROR_ID,
                format!(
                    "nsq: the message to `{topic}` is {} bytes as go-micro's envelope; nsqd takes at most {max} (its --max-msg-size)",
                    envelope.len()
                ),
            ));
        }
        let mut guard = self.publisher.lock().await;
        // A connection kept from an earlier publish may have died meanwhile (nsqd restarted):
        // then the message goes once more over a new one. At least once: if nsqd had taken it
        // before the connection failed, it is published twice.
        let mut reused = guard.is_some();
        loop {
            if guard.is_none() {
                let conn = self.open_any().await?;
                tracing::debug!(address = %conn.address, "nsq: publishing connection open");
                *guard = Some(Producer {
                    conn,
                    buf: BytesMut::new(),
                });
            }
            let Some(p) = guard.as_mut() else {
                return Err(unavailable("", "no connection"));
            };
            p.buf.clear();
            wire::command(&mut p.buf, &[b"PUB", topic.as_bytes()], Some(envelope));
            let buf = std::mem::take(&mut p.buf);
            let sent = tokio::time::timeout(self.opts.timeout, p.conn.request(&buf)).await;
            p.buf = buf;
            let address = p.conn.address.clone();
            let mut e = match sent {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => unavailable(
                    &address,
                    format!("no answer to PUB within {:?}", self.opts.timeout),
                ),
            };
            // nsqd closes the connection after most errors: start afresh.
            *guard = None;
            if reused && e.code == 503 {
                reused = false;
                tracing::debug!(address, error = %e.detail, "nsq: publishing connection lost, publishing again on a new one");
                continue;
            }
            if envelope.len() > NSQD_DEFAULT_MAX_MSG_SIZE {
                e.detail.push_str(&format!(
                    " (the message is {} bytes as go-micro's envelope; nsqd refuses a message over its --max-msg-size, 1048576 unless set, by closing the connection)",
                    envelope.len()
                ));
            }
            return Err(e);
        }
    }
}

#[async_trait]
impl Broker for NsqBroker {
    fn name(&self) -> &str {
        "nsq"
    }

    fn address(&self) -> String {
        let shown: Vec<&str> = self.inner.nsqds.iter().map(|n| n.shown.as_str()).collect();
        shown.join(",")
    }

    /// Whether every subscription's connection is up and the last publish (or connect)
    /// reached an nsqd.
    fn connected(&self) -> Option<bool> {
        Some(self.inner.links.all_up())
    }

    /// Opens the publishing connection: fails, with the reason, when no nsqd answers.
    async fn connect(&self) -> Result<()> {
        let opened = self.inner.open_publisher().await;
        self.inner.publisher_outcome(&opened);
        opened
    }

    async fn disconnect(&self) -> Result<()> {
        self.inner.subs.stop_all();
        self.inner.publisher.lock().await.take();
        Ok(())
    }

    async fn publish(&self, topic: &str, mut msg: Message, _opts: PublishOptions) -> Result<()> {
        check_name("topic", topic)?;
        stamp(topic, &mut msg);
        let published = self.inner.publish(topic, &msg.to_envelope()).await;
        self.inner.publisher_outcome(&published);
        published
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        check_name("topic", topic)?;
        let channel = match opts.queue.as_deref().filter(|q| !q.is_empty()) {
            Some(queue) => {
                check_name("queue", queue)?;
                queue.to_owned()
            }
            None => format!("{}#ephemeral", crate::id::uuid()),
        };
        let flag = Arc::new(StopFlag::default());
        let sub = Arc::new(Consumer {
            inner: Arc::clone(&self.inner),
            topic: Arc::from(topic),
            channel,
            handler,
            auto_ack: opts.auto_ack,
            flag: Arc::clone(&flag),
        });
        // The first connection to each nsqd is made here, so that the subscription is in
        // effect when `subscribe` returns; one that fails is retried in the background.
        let mut opened = Vec::new();
        let mut last = None;
        for nsqd in &self.inner.nsqds {
            match sub.open(nsqd).await {
                Ok(conn) => opened.push((nsqd.clone(), Some(conn))),
                Err(e) => {
                    tracing::warn!(address = %nsqd.shown, topic, error = %e.detail, "nsq: cannot subscribe yet, retrying");
                    last = Some(e);
                    opened.push((nsqd.clone(), None));
                }
            }
        }
        if opened.iter().all(|(_, c)| c.is_none()) {
            return Err(last.unwrap_or_else(|| unavailable("", "no address")));
        }
        for (nsqd, conn) in opened {
            tokio::spawn(Arc::clone(&sub).run(nsqd, conn));
        }
        self.inner.subs.add(&flag);
        Ok(Handle::boxed("nsq", topic, opts, flag))
    }
}

/// One subscription: its channel and handler, consumed from every nsqd.
struct Consumer {
    inner: Arc<Inner>,
    topic: Arc<str>,
    channel: String,
    handler: Handler,
    auto_ack: bool,
    flag: Arc<StopFlag>,
}

/// How a consuming connection ended.
enum Ended {
    Stopped,
    Lost(String),
}

impl Consumer {
    /// Connects, subscribes and says how many messages it takes.
    async fn open(&self, nsqd: &Nsqd) -> Result<Conn> {
        let opts = &self.inner.opts;
        let address = nsqd.shown.as_str();
        let mut conn = Conn::open(nsqd, &self.inner, Some(opts.heartbeat)).await?;
        let mut out = BytesMut::new();
        wire::command(
            &mut out,
            &[b"SUB", self.topic.as_bytes(), self.channel.as_bytes()],
            None,
        );
        tokio::time::timeout(opts.timeout, conn.request(&out))
            .await
            .map_err(|_| unavailable(address, "no answer to SUB"))??;
        let rdy = u64::from(opts.max_in_flight.max(1))
            .min(conn.negotiated.max_rdy_count.unwrap_or(2500).max(1));
        out.clear();
        wire::command(&mut out, &[b"RDY", rdy.to_string().as_bytes()], None);
        wire::send(&mut conn.writer, &out)
            .await
            .map_err(|e| unavailable(address, e))?;
        Ok(conn)
    }

    /// Consumes from one nsqd until unsubscribed, reconnecting when the connection is lost.
    async fn run(self: Arc<Self>, nsqd: Nsqd, mut conn: Option<Conn>) {
        let opts = &self.inner.opts;
        let address = nsqd.shown.as_str();
        let mut backoff = Backoff::new(opts.min_backoff, opts.max_backoff);
        let mut stop = self.flag.watch();
        let mut link = self.inner.links.link();
        loop {
            if self.flag.is_stopped() {
                return;
            }
            link.set(conn.is_some());
            let Some(c) = conn.take() else {
                let delay = backoff.next_delay();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match self.open(&nsqd).await {
                    Ok(c) => {
                        tracing::info!(address, topic = %self.topic, channel = %self.channel, "nsq: subscribed again");
                        backoff.reset();
                        conn = Some(c);
                    }
                    Err(e) => {
                        tracing::debug!(address, topic = %self.topic, error = %e.detail, "nsq: cannot subscribe again");
                    }
                }
                continue;
            };
            match self.consume(c).await {
                Ended::Stopped => return,
                Ended::Lost(why) => {
                    tracing::warn!(address, topic = %self.topic, channel = %self.channel, error = %why, "nsq: connection lost, reconnecting");
                }
            }
        }
    }

    /// Handles messages of one connection until it ends.
    async fn consume(&self, conn: Conn) -> Ended {
        let Conn {
            address,
            mut reader,
            writer,
            negotiated,
        } = conn;
        let writer = Arc::new(AsyncMutex::new(writer));
        let capacity = usize::from(self.inner.opts.max_in_flight.max(1));
        let (tx, mut rx) = mpsc::channel::<NsqMessage>(capacity);
        // Two missed heartbeats = a dead connection.
        let silence = self.inner.opts.heartbeat * 2 + Duration::from_secs(1);
        let reading = {
            let writer = Arc::clone(&writer);
            let address = address.clone();
            tokio::spawn(async move {
                loop {
                    let frame =
                        match tokio::time::timeout(silence, wire::read_frame(&mut reader)).await {
                            Ok(Ok(frame)) => frame,
                            Ok(Err(e)) => return e.to_string(),
                            Err(_) => return format!("nothing from nsqd for {silence:?}"),
                        };
                    match frame {
                        Frame::Message(m) => {
                            if tx.send(m).await.is_err() {
                                return "closed".to_owned();
                            }
                        }
                        Frame::Response(r) if r.as_ref() == wire::HEARTBEAT => {
                            if let Err(e) = wire::send(&mut *writer.lock().await, b"NOP\n").await {
                                return e.to_string();
                            }
                        }
                        Frame::Response(r) if r.as_ref() == b"CLOSE_WAIT" => {
                            return "closed".to_owned();
                        }
                        Frame::Response(_) => {}
                        Frame::Error(e) => {
                            let text = String::from_utf8_lossy(&e).into_owned();
                            // A FIN/REQ/TOUCH for a message nsqd already timed out: harmless.
                            if text.starts_with("E_FIN_FAILED")
                                || text.starts_with("E_REQ_FAILED")
                                || text.starts_with("E_TOUCH_FAILED")
                            {
                                tracing::debug!(address = %address, error = %text, "nsq: late settle");
                            } else {
                                return text;
                            }
                        }
                    }
                }
            })
        };
        let touch_every =
            Duration::from_millis(negotiated.msg_timeout.unwrap_or(60_000).max(2) / 2);
        let mut stop = self.flag.watch();
        let ended = loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break Ended::Stopped,
                next = rx.recv() => next,
            };
            let Some(m) = next else {
                break Ended::Lost(String::new());
            };
            if self.flag.is_stopped() {
                // Left unfinished: nsqd requeues it when the connection closes.
                break Ended::Stopped;
            }
            if let Err(e) = self.handle(&writer, m, touch_every).await {
                break Ended::Lost(e.to_string());
            }
        };
        if matches!(ended, Ended::Stopped) {
            let mut w = writer.lock().await;
            let _ =
                tokio::time::timeout(Duration::from_secs(1), wire::send(&mut *w, b"CLS\n")).await;
        }
        reading.abort();
        match (ended, reading.await) {
            (Ended::Lost(why), Ok(reason)) if why.is_empty() => Ended::Lost(reason),
            (Ended::Lost(why), _) if why.is_empty() => Ended::Lost("connection closed".to_owned()),
            (ended, _) => ended,
        }
    }

    /// Runs the handler on one message and settles it: `FIN`, `REQ` or nothing (acked by hand).
    async fn handle(
        &self,
        writer: &Arc<AsyncMutex<Writer>>,
        m: NsqMessage,
        touch_every: Duration,
    ) -> std::io::Result<()> {
        let Some(message) = kit::decode("nsq", &self.topic, &m.body, &self.inner.malformed) else {
            return settle(writer, &[b"FIN", &m.id]).await;
        };
        let id = message.id().unwrap_or_default().to_owned();
        let acked = Arc::new(AtomicBool::new(false));
        let ack = (!self.auto_ack).then(|| {
            let (writer, nsq_id, acked) = (Arc::clone(writer), m.id, Arc::clone(&acked));
            let ack: AckFn = Box::new(move || {
                Box::pin(async move {
                    if acked.swap(true, Ordering::AcqRel) {
                        return Ok(());
                    }
                    settle(&writer, &[b"FIN", &nsq_id]).await.map_err(|e| {
                        Error::service_unavailable(
                            ERROR_ID,
                            format!("nsq: cannot acknowledge the message: {e}"),
                        )
                    })
                })
            });
            ack
        });
        let run = kit::deliver("nsq", &self.handler, Arc::clone(&self.topic), message, ack);
        let mut run = std::pin::pin!(run);
        let mut touch =
            tokio::time::interval_at(tokio::time::Instant::now() + touch_every, touch_every);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                _ = touch.tick() => settle(writer, &[b"TOUCH", &m.id]).await?,
            }
        };
        if acked.load(Ordering::Acquire) {
            return Ok(());
        }
        match outcome {
            Outcome::Ok if self.auto_ack => settle(writer, &[b"FIN", &m.id]).await,
            // Manual acks: a message the handler did not ack comes back after msg_timeout.
            Outcome::Ok => Ok(()),
            Outcome::Failed(error) => {
                let retry = kit::retry_failed(
                    "nsq",
                    &self.topic,
                    self.inner.opts.redeliver_failed,
                    m.attempts > 1,
                );
                tracing::warn!(
                    topic = %self.topic,
                    channel = %self.channel,
                    id,
                    %error,
                    attempts = m.attempts,
                    retry,
                    "nsq: subscriber failed"
                );
                if retry {
                    let delay = self.inner.opts.requeue_delay.as_millis().to_string();
                    settle(writer, &[b"REQ", &m.id, delay.as_bytes()]).await
                } else {
                    settle(writer, &[b"FIN", &m.id]).await
                }
            }
        }
    }
}

/// Sends a command that nsqd answers only when it fails (`FIN`, `REQ`, `TOUCH`).
async fn settle(writer: &AsyncMutex<Writer>, line: &[&[u8]]) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    wire::command(&mut out, line, None);
    wire::send(&mut *writer.lock().await, &out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_config() {
        let b = NsqBroker::from_config(&Options::default()).expect("default");
        assert_eq!(b.address(), "127.0.0.1:4150");
        let o = NsqOptions::with_addresses(" a:1, tcp://b:2 ,nsq://c:3,tls://:s3cret@[::1]:4");
        assert_eq!(
            o.addresses,
            ["a:1", "tcp://b:2", "nsq://c:3", "tls://:s3cret@[::1]:4"]
        );
        let b = NsqBroker::new(o).expect("valid");
        let parsed: Vec<_> = b
            .inner
            .nsqds
            .iter()
            .map(|n| (n.addr.as_str(), n.tls, n.secret.as_deref()))
            .collect();
        assert_eq!(
            parsed,
            [
                ("a:1", false, None),
                ("b:2", false, None),
                ("c:3", false, None),
                ("[::1]:4", true, Some("s3cret")),
            ]
        );
        assert_eq!(b.address(), "a:1,tcp://b:2,nsq://c:3,tls://:***@[::1]:4");
        assert!(!format!("{b:?}").contains("s3cret"));
        let name = b.inner.nsqds[3]
            .server_name()
            .expect("an IP is a server name");
        assert_eq!(
            format!("{name:?}"),
            "IpAddress(V6(Ipv6Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])))"
        );
        let err = NsqBroker::new(NsqOptions::with_addresses("nohost")).expect_err("no port");
        assert!(err.detail.contains("`nohost` is not host:port"), "{err}");
        let err = NsqBroker::new(NsqOptions::with_addresses("http://:pw@h:1")).expect_err("scheme");
        assert!(err.detail.contains("has scheme `http`"), "{err}");
        assert!(!err.detail.contains("pw"), "the secret is masked: {err}");
    }

    #[tokio::test]
    async fn bad_names_are_refused_before_any_io() {
        let b = NsqBroker::new(NsqOptions::with_addresses("127.0.0.1:1")).expect("options");
        let err = b
            .publish("a/b", Message::default(), PublishOptions::default())
            .await
            .expect_err("bad topic");
        assert_eq!(err.code, 400);
        assert!(
            err.detail.contains("topic `a/b` is not a valid NSQ name"),
            "{err}"
        );
        let err = b
            .subscribe(
                "t",
                super::super::handler(|_| async { Ok(()) }),
                SubscribeOptions::queue("a b"),
            )
            .await
            .expect_err("bad queue");
        assert!(err.detail.contains("queue `a b`"), "{err}");
    }
}
