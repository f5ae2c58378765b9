//! The NATS connection that the nats broker and the nats registry share (feature `nats`):
//! address parsing, a client created on first use that connects in the background and
//! reconnects forever with backoff (restoring its subscriptions), the last connection failure
//! for error messages, waiting for a connection, and flushing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use rand::Rng as _;
use tokio::time::Instant;

use crate::{Error, Result};

/// The address used when none is given.
pub(crate) const DEFAULT_ADDRESS: &str = "nats://127.0.0.1:4222";
/// The first reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// How a [`Connection`] connects.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    /// How long callers wait for a connection before failing.
    pub(crate) connect_timeout: Duration,
    /// How long a flush may take.
    pub(crate) ack_timeout: Duration,
    /// Messages buffered per subscription before the client drops (a slow consumer).
    pub(crate) subscription_capacity: usize,
    /// Longest delay between reconnection attempts.
    pub(crate) max_backoff: Duration,
    /// The client name the server shows.
    pub(crate) name: String,
}

/// A lazily created NATS client for a list of servers; see the module docs.
pub(crate) struct Connection {
    /// The id of the errors raised (`go.micro.broker`, `go.micro.registry`).
    error_id: &'static str,
    /// What the connection serves, for messages (`nats broker`, `nats registry`).
    role: &'static str,
    opts: ConnOptions,
    servers: Vec<async_nats::ServerAddr>,
    /// The login the addresses carried, sent by async-nats in `CONNECT`.
    credentials: Option<Credentials>,
    /// The servers, `scheme://host:port` joined by commas (no credentials).
    address: String,
    client: Mutex<Option<async_nats::Client>>,
    slow_consumers: Arc<AtomicU64>,
    /// Why the last connection attempts failed (per server), while the client is
    /// (re)connecting: what a "not connected" error names.
    last_failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// A connection to `addresses` (comma-separated lists allowed; each `nats://host:port`,
    /// `tls://host:port` or a bare `host:port`, credentials as userinfo; none: the default).
    /// Validates the addresses; connects nothing yet.
    pub(crate) fn new(
        error_id: &'static str,
        role: &'static str,
        addresses: &[String],
        opts: ConnOptions,
    ) -> Result<Self> {
        let mut parsed = addresses
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| parse_server(a, error_id, role))
            .collect::<Result<Vec<_>>>()?;
        if parsed.is_empty() {
            parsed.push(parse_server(DEFAULT_ADDRESS, error_id, role)?);
        }
        // One client has one login: the first address's that has one.
        let credentials = parsed.iter().find_map(|(_, c)| c.clone());
        let servers: Vec<async_nats::ServerAddr> = parsed.into_iter().map(|(s, _)| s).collect();
        let address = servers
            .iter()
            .map(|s| format!("{}://{}:{}", s.scheme(), s.host(), s.port()))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            error_id,
            role,
            opts,
            servers,
            credentials,
            address,
            client: Mutex::new(None),
            slow_consumers: Arc::new(AtomicU64::new(0)),
            last_failure: Arc::new(Mutex::new(None)),
        })
    }

    /// The servers, `scheme://host:port` joined by commas (no credentials).
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Slow-consumer reports so far.
    /// Whether a client exists and is connected now (no I/O).
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.client)
            .as_ref()
            .is_some_and(|c| c.connection_state() == State::Connected)
    }

    pub(crate) fn slow_consumers(&self) -> u64 {
        self.slow_consumers.load(Ordering::Relaxed)
    }

    /// Takes the client out (for a disconnect); the next use creates a new one.
    pub(crate) fn take(&self) -> Option<async_nats::Client> {
        lock(&self.client).take()
    }

    /// The client, created on first use (it connects in the background).
    pub(crate) async fn client(&self) -> Result<async_nats::Client> {
        if let Some(client) = lock(&self.client).as_ref() {
            return Ok(client.clone());
        }
        crate::service::install_crypto_provider();
        let stats = Arc::clone(&self.slow_consumers);
        let address = self.address.clone();
        let role = self.role;
        let max_backoff = self.opts.max_backoff;
        let failures = Arc::clone(&self.last_failure);
        let options = match &self.credentials {
            Some(Credentials::UserPassword(user, password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Some(Credentials::Token(token)) => {
                async_nats::ConnectOptions::with_token(token.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        let options = options
            .name(&self.opts.name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(self.opts.connect_timeout.min(Duration::from_secs(5)))
            .subscription_capacity(self.opts.subscription_capacity.max(1))
            .reconnect_delay_callback(move |attempts| backoff(attempts, max_backoff))
            .reconnect_to_server_callback(move |servers, _info| {
                // Called before each attempt with the servers' last errors (a server's is
                // cleared when it connects): remembered for `connected`'s error. `None`
                // keeps async-nats's own choice of server.
                let why = servers
                    .iter()
                    .filter_map(|s| {
                        let addr = &s.addr;
                        let e = s.last_error.as_deref()?;
                        Some(format!(
                            "`{}://{}:{}`: {e}",
                            addr.scheme(),
                            addr.host(),
                            addr.port()
                        ))
                    })
                    .collect::<Vec<_>>();
                *lock(&failures) = (!why.is_empty()).then(|| why.join("; "));
                std::future::ready(None)
            })
            .event_callback(move |event| {
                let stats = Arc::clone(&stats);
                let address = address.clone();
                async move { on_event(&event, &stats, &address, role) }
            });
        let client = options.connect(self.servers.clone()).await.map_err(|e| {
            Error::service_unavailable(
                self.error_id,
                format!("{}: cannot connect to `{}`: {e}", self.role, self.address),
            )
        })?;
        // Two first uses at once each built a client: keep the first stored, drop the other
        // (its connection closes with it).
        Ok(lock(&self.client).get_or_insert_with(|| client).clone())
    }

    /// The client once it is connected, waiting up to the connect timeout.
    pub(crate) async fn connected(&self) -> Result<async_nats::Client> {
        let client = self.client().await?;
        let deadline = Instant::now() + self.opts.connect_timeout;
        loop {
            if client.connection_state() == State::Connected {
                return Ok(client);
            }
            if Instant::now() >= deadline {
                let why = lock(&self.last_failure)
                    .as_deref()
                    .map_or_else(String::new, |why| format!("; last error: {why}"));
                return Err(Error::service_unavailable(
                    self.error_id,
                    format!(
                        "{}: not connected to `{}` within {:?} (the client keeps trying){why}",
                        self.role, self.address, self.opts.connect_timeout
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Flushes what `client` has buffered: `Ok` once the server has answered a PING sent
    /// after it.
    pub(crate) async fn flush(&self, client: &async_nats::Client, what: &str) -> Result<()> {
        match tokio::time::timeout(self.opts.ack_timeout, client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::service_unavailable(
                self.error_id,
                format!(
                    "{}: flushing the {what} to `{}` failed: {e}; it may or may not have arrived",
                    self.role, self.address
                ),
            )),
            Err(_) => Err(Error::timeout(
                self.error_id,
                format!(
                    "{}: `{}` did not confirm the {what} within {:?}; it may or may not have arrived",
                    self.role, self.address, self.opts.ack_timeout
                ),
            )),
        }
    }
}

/// Credentials an address carries: `user:password@` or a token, `token@`.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    UserPassword(String, String),
    Token(String),
}

/// `text` with its userinfo masked: `nats://user:***@host`, `nats://***@host`.
fn masked(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => text.to_owned(),
    }
}

/// One server: its address without credentials (async-nats logs addresses at debug, and
/// does not send the credentials of a URL itself), and the credentials it carried.
fn parse_server(
    text: &str,
    error_id: &'static str,
    role: &str,
) -> Result<(async_nats::ServerAddr, Option<Credentials>)> {
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("nats://{text}")
    };
    // `go.micro.broker` -> `broker`
    let kind = error_id.rsplit('.').next().unwrap_or(error_id);
    let invalid = |why: String| {
        Error::bad_request(
            error_id,
            format!("{role}: invalid {kind} address `{}`: {why}", masked(&url)),
        )
    };
    let addr: async_nats::ServerAddr = url
        .parse()
        .map_err(|e| invalid(format!("{e} (expected `nats://host:port`)")))?;
    if !matches!(addr.scheme(), "nats" | "tls") {
        return Err(invalid(format!(
            "unsupported scheme `{}` (expected `nats://` or `tls://`)",
            addr.scheme()
        )));
    }
    let credentials = match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => {
            Some(Credentials::UserPassword(decode(user), decode(password)))
        }
        (Some(token), None) => Some(Credentials::Token(decode(token))),
        _ => None,
    };
    let host = if addr.host().contains(':') {
        format!("[{}]", addr.host())
    } else {
        addr.host().to_owned()
    };
    let bare: async_nats::ServerAddr = format!("{}://{host}:{}", addr.scheme(), addr.port())
        .parse()
        .map_err(|e| invalid(format!("{e}")))?;
    Ok((bare, credentials))
}

/// A URL's percent-encoded userinfo part, decoded (`p%40ss` is `p@ss`).
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

fn on_event(event: &async_nats::Event, slow_consumers: &AtomicU64, address: &str, role: &str) {
    use async_nats::Event as E;
    match event {
        E::Connected => tracing::info!(address, "{role}: connected"),
        E::Disconnected => {
            tracing::warn!(address, "{role}: disconnected; reconnecting with backoff");
        }
        E::SlowConsumer(sid) => {
            slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                address,
                subscription = sid,
                "{role}: slow consumer: a subscription's buffer is full and the client dropped messages"
            );
        }
        E::LameDuckMode => {
            tracing::warn!(address, "{role}: the server is entering lame duck mode");
        }
        E::ServerError(e) => tracing::warn!(address, error = %e, "{role}: server error"),
        E::ClientError(e) => tracing::warn!(address, error = %e, "{role}: client error"),
        E::Draining | E::Closed => tracing::debug!(address, %event, "{role}"),
    }
}

/// No delay for the first attempt, then 100 ms doubling up to `max`, with ±25 % jitter.
fn backoff(attempts: usize, max: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let shift = u32::try_from(attempts.saturating_sub(1).min(16)).unwrap_or(16);
    let base = MIN_BACKOFF
        .saturating_mul(1u32 << shift)
        .min(max.max(MIN_BACKOFF));
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_address_and_are_masked_in_errors() {
        let (addr, creds) = parse_server(
            "nats://al%40ce:p%3Ass@127.0.0.1:4222",
            "go.micro.broker",
            "nats",
        )
        .expect("valid");
        assert_eq!(addr.as_url_str(), "nats://127.0.0.1:4222");
        assert!(
            creds == Some(Credentials::UserPassword("al@ce".into(), "p:ss".into())),
            "decoded"
        );
        let (addr, creds) =
            parse_server("tls://t0ken@[::1]:4443", "go.micro.broker", "nats").expect("valid");
        assert_eq!(addr.as_url_str(), "tls://[::1]:4443");
        assert!(creds == Some(Credentials::Token("t0ken".into())));
        let e = parse_server("http://u:s3cret@h:1", "go.micro.broker", "nats")
            .err()
            .expect("bad scheme");
        assert!(e.detail.contains("http://u:***@h:1"), "{e}");
        assert!(!e.detail.contains("s3cret"), "{e}");
    }

    fn opts() -> ConnOptions {
        ConnOptions {
            connect_timeout: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(1),
            subscription_capacity: 1,
            max_backoff: Duration::from_secs(1),
            name: "t".into(),
        }
    }

    #[test]
    fn addresses_parse() {
        let c = Connection::new("go.micro.broker", "nats", &[], opts()).expect("default");
        assert_eq!(c.address(), DEFAULT_ADDRESS);
        let list = [
            "127.0.0.1:4333, nats://u:p@h:1".to_owned(),
            "tls://h:2".to_owned(),
        ];
        let c = Connection::new("go.micro.broker", "nats", &list, opts()).expect("list");
        assert_eq!(c.address(), "nats://127.0.0.1:4333,nats://h:1,tls://h:2");
        let bad = ["mqtt://h:1".to_owned()];
        let err = Connection::new("go.micro.registry", "nats registry", &bad, opts())
            .expect_err("scheme");
        assert!(
            err.detail
                .contains("nats registry: invalid registry address `mqtt://h:1`"),
            "{err}"
        );
        assert_eq!(err.id, "go.micro.registry");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(0, max), Duration::ZERO);
        assert!(backoff(1, max) <= Duration::from_millis(125));
        assert!(backoff(100, max) <= Duration::from_millis(6250));
    }
}
