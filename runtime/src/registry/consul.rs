//! The Consul registry: go-micro's consul plugin over Consul's HTTP API.
//!
//! Wire format, as go-micro v2's `registry/consul` (go-plugins), so go-micro peers and rmicro
//! services find each other in one Consul:
//!
//! - every node is one Consul service instance, registered with
//!   `PUT /v1/agent/service/register` and the body `{ID, Name, Tags, Address, Port, Meta,
//!   Check}`: `ID` is the node id, `Name` the service name, `Address`/`Port` the node's
//!   address split in two, `Meta` the node metadata (the pairs Consul accepts as meta: keys of
//!   letters, digits, `-` and `_`, at most 64 pairs, as go-micro v3+ writes), and `Tags`
//!   go-micro's encoding, which is what readers decode: one `t-<hex(zlib(json))>` tag per
//!   node-metadata pair (`{"key":"value"}`), one `e-<hex(zlib(json))>` per endpoint, and one
//!   `v-<hex(zlib(version))>` holding the version string itself (go-micro's first encoding,
//!   `t=`/`e=`/`v=` with plain text, is read too);
//! - with a non-zero TTL, `Check` is a TTL check `{TTL, DeregisterCriticalServiceAfter}` with
//!   `DeregisterCriticalServiceAfter = max(ttl, 1 min) + 5 s` (Consul reaps a service whose
//!   check stays critical that long; it refuses less than a minute), and the check is passed
//!   (`PUT /v1/agent/check/pass/service:<node id>`) right after registering;
//! - registering the same node again with the same record and TTL only passes the check (the
//!   heartbeat); when that fails (Consul restarted, the check is gone) the node is registered
//!   in full again, so a service is back within one heartbeat interval;
//! - sooner than that: while anything is registered, a long poll on the agent holding it
//!   (`GET /v1/agent/service/<id>`, hash-based blocking) notices at once when that agent dies
//!   (everything is registered through the next address that answers) or restarts empty
//!   (everything is registered again as soon as it listens); see `guard.rs`;
//! - reads use `GET /v1/health/service/<name>` (stale reads allowed, as go-micro's default)
//!   and drop every instance with a critical check, so a node that stops heartbeating
//!   disappears from reads once its TTL lapses; `warning` does not drop a node;
//! - `list_services` is `GET /v1/catalog/services`;
//! - watches are blocking queries (`index` + `wait`) on `/v1/health/service/<name>`, and on
//!   `/v1/catalog/services` when every service is watched; each answer is compared with the
//!   previous one and becomes one [`Change`](super::Change) per node that appeared (`Create`),
//!   changed (`Update`) or went away or critical (`Delete`).
//!
//! Configuration ([`ConsulOptions::from_env`] and [`ConsulRegistry::from_config`]): the agent's
//! address is `--registry_address` (a comma-separated list, tried in order; wins over the
//! environment), else `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`. An address is `host[:port]`
//! (port 8500 by default) or a URL; `https://` speaks TLS (rustls with ring), as does every
//! address without a scheme when `CONSUL_HTTP_SSL=true`. `CONSUL_HTTP_TOKEN` (or the file named
//! by `CONSUL_HTTP_TOKEN_FILE`) is sent as `X-Consul-Token`; `CONSUL_CACERT` names a PEM file of
//! extra CA certificates; `CONSUL_HTTP_SSL_VERIFY=false` turns certificate checks off.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{Node, RegisterOptions, Registry, Service, WatchOptions, Watcher};
use crate::config::Options;
use crate::{Error, Result};

mod guard;
mod tags;
mod watch;

/// The id of errors raised by this registry.
const ERROR_ID: &str = "go.micro.registry";

/// The agent's address when none is configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";

/// The port of an address given without one (go-micro's choice, for `http` and `https`).
const DEFAULT_PORT: u16 = 8500;

/// The header that carries the ACL token.
const TOKEN_HEADER: &str = "X-Consul-Token";

/// Consul's limits on service meta (`agent/structs.ValidateServiceMetadata`).
const META_MAX_PAIRS: usize = 64;
const META_MAX_KEY: usize = 128;
const META_MAX_VALUE: usize = 512;

/// How to reach the Consul agent.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConsulOptions {
    /// Agent addresses, `host[:port]` or `http(s)://host[:port]`, tried in order (the first
    /// that answers is used until it stops answering). Empty means [`DEFAULT_ADDRESS`].
    pub addresses: Vec<String>,
    /// ACL token, sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// Speak TLS to addresses given without a scheme (`CONSUL_HTTP_SSL=true`).
    pub tls: bool,
    /// A PEM file of CA certificates to trust besides the system's (`CONSUL_CACERT`).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (`CONSUL_HTTP_SSL_VERIFY=false`). Never in production.
    pub tls_skip_verify: bool,
    /// Let any Consul server answer reads, not only the leader (go-micro's default: true).
    pub allow_stale: bool,
    /// How long a watch's blocking query waits for a change before asking again. Consul
    /// caps it at 10 minutes.
    pub wait: Duration,
    /// How long any other request may take.
    pub timeout: Duration,
}

impl Default for ConsulOptions {
    fn default() -> Self {
        Self {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            token: None,
            tls: false,
            ca_file: None,
            tls_skip_verify: false,
            allow_stale: true,
            wait: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for ConsulOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulOptions")
            .field("addresses", &self.addresses)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("tls_skip_verify", &self.tls_skip_verify)
            .field("allow_stale", &self.allow_stale)
            .field("wait", &self.wait)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ConsulOptions {
    /// The defaults, overridden by Consul's usual environment variables: `CONSUL_HTTP_ADDR`,
    /// `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_SSL`, `CONSUL_CACERT`,
    /// `CONSUL_HTTP_SSL_VERIFY`.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let flag = |key: &str| {
            get(key).map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true"))
        };
        let mut opts = Self::default();
        if let Some(addr) = get("CONSUL_HTTP_ADDR") {
            opts.addresses = split_addresses(&addr);
        }
        opts.token = get("CONSUL_HTTP_TOKEN").or_else(|| {
            let file = get("CONSUL_HTTP_TOKEN_FILE")?;
            match std::fs::read_to_string(&file) {
                Ok(token) => Some(token.trim().to_owned()).filter(|t| !t.is_empty()),
                Err(e) => {
                    tracing::warn!(%file, error = %e, "consul: cannot read `CONSUL_HTTP_TOKEN_FILE`");
                    None
                }
            }
        });
        opts.tls = flag("CONSUL_HTTP_SSL").unwrap_or(false);
        opts.ca_file = get("CONSUL_CACERT").map(PathBuf::from);
        opts.tls_skip_verify = flag("CONSUL_HTTP_SSL_VERIFY").is_some_and(|verify| !verify);
        opts
    }

    /// The options with these agent addresses.
    pub fn addresses<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.addresses = addresses.into_iter().map(Into::into).collect();
        self
    }

    /// The options with this ACL token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The options with this blocking-query wait.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

fn split_addresses(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The base URL of one agent address.
fn base_url(address: &str, tls: bool) -> Result<Url> {
    let bad = |why: &dyn fmt::Display| {
        Error::bad_request(
            ERROR_ID,
            format!("consul: invalid agent address `{address}`: {why}"),
        )
    };
    let (text, given_scheme) = if address.contains("://") {
        (address.to_owned(), true)
    } else {
        let scheme = if tls { "https" } else { "http" };
        (format!("{scheme}://{address}"), false)
    };
    let mut url = Url::parse(&text).map_err(|e| bad(&e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&"the scheme must be `http` or `https`"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(&"no host"));
    }
    if !given_scheme && url.port().is_none() {
        url.set_port(Some(DEFAULT_PORT))
            .map_err(|()| bad(&"cannot set the port"))?;
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A [`Registry`] kept in Consul. Clones share the HTTP client and the heartbeat state.
#[derive(Clone)]
pub struct ConsulRegistry {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: reqwest::Client,
    urls: Vec<Url>,
    /// The address that answered last.
    current: AtomicUsize,
    token: Option<HeaderValue>,
    options: ConsulOptions,
    /// node id -> the last full registration (record and TTL), kept to register it again.
    registered: Mutex<HashMap<String, guard::Kept>>,
    /// The task that watches the agent holding the registrations (see [`guard`]).
    guard: guard::Slot,
}

impl fmt::Debug for ConsulRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulRegistry")
            .field(
                "addresses",
                &self.inner.urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ConsulRegistry {
    /// A registry speaking to the agent(s) `options` name. Connects to nothing (the first
    /// request does); reads `ca_file` when one is given.
    pub fn new(options: ConsulOptions) -> Result<Self> {
        let addresses = if options.addresses.is_empty() {
            vec![DEFAULT_ADDRESS.to_owned()]
        } else {
            options.addresses.clone()
        };
        let urls = addresses
            .iter()
            .map(|a| base_url(a, options.tls))
            .collect::<Result<Vec<_>>>()?;
        let token = options
            .token
            .as_deref()
            .map(|t| {
                let mut value = HeaderValue::from_str(t).map_err(|_| {
                    Error::bad_request(
                        ERROR_ID,
                        "consul: the ACL token holds characters an HTTP header cannot carry",
                    )
                })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("rmicro/", env!("CARGO_PKG_VERSION")));
        if urls.iter().all(is_loopback) {
            // A proxy from the environment must not see loopback traffic (Go's
            // `ProxyFromEnvironment` never proxies loopback either).
            builder = builder.no_proxy();
        }
        if let Some(file) = &options.ca_file {
            let pem = std::fs::read(file).map_err(|e| {
                Error::bad_request(
                    ERROR_ID,
                    format!("consul: cannot read the CA file `{}`: {e}", file.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::bad_request(
                    ERROR_ID,
                    format!("consul: `{}` holds no PEM certificate: {e}", file.display()),
                )
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if options.tls_skip_verify {
            tracing::warn!("consul: TLS certificate verification is off");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| {
            Error::internal_server_error(
                ERROR_ID,
                format!("consul: cannot build the HTTP client: {}", chain(&e)),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                urls,
                current: AtomicUsize::new(0),
                token,
                options,
                registered: Mutex::new(HashMap::new()),
                guard: guard::Slot::default(),
            }),
        })
    }

    /// The registry `--registry_address` (or `CONSUL_HTTP_ADDR`, or the default) names, with
    /// the rest of [`ConsulOptions::from_env`]. Connects to nothing; reads only the token and
    /// CA files the environment names.
    pub fn from_config(options: &Options) -> Result<Self> {
        let mut opts = ConsulOptions::from_env();
        let given = options.registry_address.trim();
        if !given.is_empty() {
            opts.addresses = split_addresses(given);
        }
        Self::new(opts)
    }

    /// The options this registry was built with.
    pub fn options(&self) -> &ConsulOptions {
        &self.inner.options
    }
}

/// An error and its sources, `: `-separated (reqwest's `Display` alone hides the cause).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// One HTTP request to the agent.
pub(crate) struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    timeout: Duration,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a [&'a str], timeout: Duration) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            timeout,
        }
    }

    fn what(&self) -> String {
        format!("{} /{}", self.method, self.path.join("/"))
    }
}

impl Inner {
    /// `call` addressed to the agent at `urls[i]`, with the token.
    fn request(&self, i: usize, call: &Call<'_>) -> Result<reqwest::RequestBuilder> {
        let base = &self.urls[i];
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Error::bad_request(ERROR_ID, format!("consul: `{base}` cannot be a base URL"))
            })?
            .pop_if_empty()
            .extend(call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self
            .client
            .request(call.method.clone(), url)
            .timeout(call.timeout);
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token.clone());
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        Ok(request)
    }

    /// Sends `call` to the current agent, moving to the next one when it cannot be reached.
    /// Any HTTP status is returned as is.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response> {
        let count = self.urls.len();
        let start = self.current.load(Ordering::Relaxed) % count;
        for attempt in 0..count {
            let i = (start + attempt) % count;
            let base = &self.urls[i];
            match self.request(i, call)?.send().await {
                Ok(response) => {
                    if attempt > 0 {
                        tracing::info!(address = %base, "consul: switched to another agent");
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(response);
                }
                Err(e) if e.is_connect() && attempt + 1 < count => {
                    tracing::debug!(address = %base, error = %chain(&e), "consul: agent unreachable, trying the next");
                }
                Err(e) => {
                    let detail = format!(
                        "consul: `{}` to `{base}` failed: {}",
                        call.what(),
                        chain(&e)
                    );
                    return Err(if e.is_timeout() {
                        Error::timeout(ERROR_ID, detail)
                    } else {
                        Error::service_unavailable(ERROR_ID, detail)
                    });
                }
            }
        }
        Err(Error::service_unavailable(
            ERROR_ID,
            "consul: no agent address configured",
        ))
    }

    /// Sends `call` and turns a non-2xx answer into an error naming the agent and the call.
    async fn send_ok(&self, call: &Call<'_>) -> Result<reqwest::Response> {
        let response = self.send(call).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(call, response).await)
    }

    /// `GET /v1/health/service/<name>`: the instances and the answer's `X-Consul-Index`.
    /// With `index`, a blocking query that returns when the answer changes (or after
    /// [`ConsulOptions::wait`]).
    pub(crate) async fn health(
        &self,
        name: &str,
        index: Option<u64>,
    ) -> Result<(Vec<HealthEntry>, u64)> {
        self.get_json(&["v1", "health", "service", name], index)
            .await
    }

    /// `GET /v1/catalog/services`: service name -> tags, and the answer's index.
    pub(crate) async fn catalog_services(
        &self,
        index: Option<u64>,
    ) -> Result<(BTreeMap<String, Option<Vec<String>>>, u64)> {
        self.get_json(&["v1", "catalog", "services"], index).await
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &[&str],
        index: Option<u64>,
    ) -> Result<(T, u64)> {
        let mut call = Call::new(Method::GET, path, self.options.timeout);
        if self.options.allow_stale {
            call.query.push(("stale", String::new()));
        }
        if let Some(index) = index {
            let wait = self.options.wait.max(Duration::from_secs(1));
            call.query.push(("index", index.to_string()));
            call.query.push(("wait", format!("{}s", wait.as_secs())));
            // Consul adds up to wait/16 of jitter before answering.
            call.timeout = wait + wait / 16 + self.options.timeout;
        }
        let response = self.send_ok(&call).await?;
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = response.bytes().await.map_err(|e| {
            Error::service_unavailable(
                ERROR_ID,
                format!(
                    "consul: reading the answer to `{}` failed: {}",
                    call.what(),
                    chain(&e)
                ),
            )
        })?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            Error::bad_gateway(
                ERROR_ID,
                format!(
                    "consul: the answer to `{}` is not the expected json: {e}",
                    call.what()
                ),
            )
        })?;
        Ok((value, index))
    }

    async fn register_node(
        self: &Arc<Self>,
        service: &Service,
        node: &Node,
        ttl: Duration,
    ) -> Result<()> {
        let fingerprint = fingerprint(service, node, ttl);
        let known = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node.id)
            .is_some_and(|kept| kept.fingerprint == fingerprint);
        if known && !ttl.is_zero() {
            match self.pass(&node.id).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::info!(node = %node.id, error = %e.detail, "consul: check pass failed, registering again");
                }
            }
        }
        let kept = guard::Kept {
            fingerprint,
            body: registration(service, node, ttl)?,
            checked: !ttl.is_zero(),
        };
        self.put_registration(&node.id, &kept).await?;
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.id.clone(), kept);
        guard::ensure(self);
        Ok(())
    }

    /// `PUT /v1/agent/service/register` with `kept`'s body, then a pass of its check.
    async fn put_registration(&self, node_id: &str, kept: &guard::Kept) -> Result<()> {
        let path = ["v1", "agent", "service", "register"];
        let mut call = Call::new(Method::PUT, &path, self.options.timeout);
        call.body = Some(kept.body.clone());
        self.send_ok(&call).await?;
        if kept.checked {
            self.pass(node_id).await?;
        }
        Ok(())
    }

    /// `PUT /v1/agent/check/pass/service:<node id>`.
    async fn pass(&self, node_id: &str) -> Result<()> {
        let check = format!("service:{node_id}");
        let path = ["v1", "agent", "check", "pass", check.as_str()];
        self.send_ok(&Call::new(Method::PUT, &path, self.options.timeout))
            .await
            .map(drop)
    }

    async fn deregister_node(&self, node: &Node) -> Result<()> {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&node.id);
        self.deregister_id(&node.id).await
    }

    /// `PUT /v1/agent/service/deregister/<node id>`.
    async fn deregister_id(&self, node_id: &str) -> Result<()> {
        let path = ["v1", "agent", "service", "deregister", node_id];
        let call = Call::new(Method::PUT, &path, self.options.timeout);
        let response = self.send(&call).await?;
        // Not known to the agent: already gone (reaped, or the agent restarted).
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(status_error(&call, response).await)
    }
}

async fn status_error(call: &Call<'_>, response: reqwest::Response) -> Error {
    let status = response.status();
    let agent = response.url().origin().ascii_serialization();
    let text = response.text().await.unwrap_or_default();
    let detail = format!(
        "consul: `{}` to `{agent}` answered {status}: {}",
        call.what(),
        text.trim()
    );
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::forbidden(ERROR_ID, detail),
        _ => Error::bad_gateway(ERROR_ID, detail),
    }
}

/// Identifies what a full registration of `node` wrote, so a heartbeat with an unchanged
/// record only passes the check.
fn fingerprint(service: &Service, node: &Node, ttl: Duration) -> u64 {
    let mut hasher = DefaultHasher::new();
    // The model has no `Hash`; its JSON (maps in key order) stands in for it.
    let json = serde_json::to_vec(&(&service.name, &service.version, &service.endpoints, node))
        .unwrap_or_default();
    (json, ttl).hash(&mut hasher);
    hasher.finish()
}

/// The body of `PUT /v1/agent/service/register` (Consul's `AgentServiceRegistration`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Registration<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    tags: Vec<String>,
    address: &'a str,
    port: u16,
    meta: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<TtlCheck>,
}

/// Consul's `AgentServiceCheck` for a TTL check.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TtlCheck {
    #[serde(rename = "TTL")]
    ttl: String,
    deregister_critical_service_after: String,
}

/// `max(ttl, 1 min) + 5 s`, as go-micro's `getDeregisterTTL`.
pub(crate) fn deregister_after(ttl: Duration) -> Duration {
    ttl.max(Duration::from_secs(60)) + Duration::from_secs(5)
}

fn registration(service: &Service, node: &Node, ttl: Duration) -> Result<Bytes> {
    let tags = tags::encode_tags(service, node).map_err(|e| {
        Error::internal_server_error(ERROR_ID, format!("consul: `{}`: {e}", service.name))
    })?;
    let (host, port) = split_host_port(&node.address);
    let meta = node
        .metadata
        .iter()
        .filter(|(k, v)| {
            let ok = valid_meta_key(k) && v.len() <= META_MAX_VALUE;
            if !ok {
                tracing::debug!(key = %k, "consul: node metadata not copied to `Meta` (not a valid consul meta pair; it is in the tags)");
            }
            ok
        })
        .take(META_MAX_PAIRS)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = Registration {
        id: &node.id,
        name: &service.name,
        tags,
        address: host,
        port,
        meta,
        check: (!ttl.is_zero()).then(|| TtlCheck {
            ttl: go_duration(ttl),
            deregister_critical_service_after: go_duration(deregister_after(ttl)),
        }),
    };
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| {
        Error::internal_server_error(
            ERROR_ID,
            format!(
                "consul: cannot encode the registration of `{}`: {e}",
                node.id
            ),
        )
    })
}

fn valid_meta_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= META_MAX_KEY
        && !key.starts_with("consul-")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `host:port` split as Go's `net.SplitHostPort`; an address without a port is all host
/// with port 0, as go-micro registers it.
pub(crate) fn split_host_port(address: &str) -> (&str, u16) {
    let split = if let Some(rest) = address.strip_prefix('[') {
        rest.split_once("]:")
    } else {
        address
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))
    };
    match split.and_then(|(host, port)| Some((host, port.parse().ok()?))) {
        Some((host, port)) => (host, port),
        None => (address, 0),
    }
}

/// `host:port`, bracketing IPv6 hosts, as Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A duration as Go's `time.Duration.String` writes it (`10s`, `1m5s`, `1h0m0s`, `1.5s`,
/// `500ms`), which Consul parses.
pub(crate) fn go_duration(d: Duration) -> String {
    fn fraction(out: &mut String, whole: u128, frac: u128, digits: usize) {
        let _ = write!(out, "{whole}");
        if frac > 0 {
            let text = format!("{frac:0digits$}");
            let _ = write!(out, ".{}", text.trim_end_matches('0'));
        }
    }
    let nanos = d.as_nanos();
    let mut out = String::new();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        let _ = write!(out, "{nanos}ns");
    } else if nanos < 1_000_000 {
        fraction(&mut out, nanos / 1_000, nanos % 1_000, 3);
        out.push_str("µs");
    } else if nanos < 1_000_000_000 {
        fraction(&mut out, nanos / 1_000_000, nanos % 1_000_000, 6);
        out.push_str("ms");
    } else {
        let secs = nanos / 1_000_000_000;
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        if h > 0 {
            let _ = write!(out, "{h}h{m}m");
        } else if m > 0 {
            let _ = write!(out, "{m}m");
        }
        fraction(&mut out, s, nanos % 1_000_000_000, 9);
        out.push('s');
    }
    out
}

/// One instance in the answer of `/v1/health/service/<name>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HealthEntry {
    #[serde(default)]
    node: Option<HealthNode>,
    service: AgentService,
    #[serde(default)]
    checks: Option<Vec<HealthCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentService {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    port: u16,
    /// Raised by Consul whenever the instance's definition changes (not its checks).
    #[serde(default)]
    modify_index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthCheck {
    #[serde(default)]
    status: String,
}

impl HealthEntry {
    /// The instance's id and the index its definition was last changed at.
    pub(crate) fn version(&self) -> (&str, u64) {
        (&self.service.id, self.service.modify_index)
    }

    /// Whether a check of the instance is critical (reads drop it).
    pub(crate) fn critical(&self) -> bool {
        self.checks.iter().flatten().any(|c| c.status == "critical")
    }

    /// The instance as a service holding its one node, or `None` when it belongs to another
    /// service or has a critical check (go-micro drops those; `warning` stays).
    pub(crate) fn to_service(&self, name: &str) -> Option<Service> {
        self.to_service_with(name, &mut tags::Memo::default())
    }

    /// [`Self::to_service`], taking the decoded tags from `memo` when the instance carries
    /// the same tags as the one decoded last (every node of a version does).
    pub(crate) fn to_service_with(&self, name: &str, memo: &mut tags::Memo) -> Option<Service> {
        let svc = &self.service;
        if svc.service != name {
            return None;
        }
        if self.critical() {
            return None;
        }
        let tags = svc.tags.as_deref().unwrap_or_default();
        let address = svc
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .or_else(|| self.node.as_ref()?.address.as_deref())
            .unwrap_or_default();
        let decoded = memo.decode(tags);
        let metadata = decoded
            .metadata
            .clone()
            .or_else(|| svc.meta.clone())
            .unwrap_or_default();
        Some(Service {
            name: svc.service.clone(),
            version: decoded.version.clone().unwrap_or_default(),
            metadata: BTreeMap::new(),
            endpoints: decoded.endpoints.clone(),
            nodes: vec![Node {
                id: svc.id.clone(),
                address: join_host_port(address, svc.port),
                metadata,
            }],
        })
    }
}

/// Groups single-node services by version, in version order.
fn group_by_version(instances: impl IntoIterator<Item = Service>) -> Vec<Service> {
    let mut versions: BTreeMap<String, Service> = BTreeMap::new();
    for mut instance in instances {
        match versions.get_mut(&instance.version) {
            Some(existing) => existing.nodes.append(&mut instance.nodes),
            None => {
                versions.insert(instance.version.clone(), instance);
            }
        }
    }
    versions.into_values().collect()
}

#[async_trait]
impl Registry for ConsulRegistry {
    fn name(&self) -> &str {
        "consul"
    }

    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        if service.nodes.is_empty() {
            return Err(Error::bad_request(
                ERROR_ID,
                format!("consul: service `{}` has no node to register", service.name),
            ));
        }
        for node in &service.nodes {
            self.inner.register_node(service, node, opts.ttl).await?;
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        for node in &service.nodes {
            self.inner.deregister_node(node).await?;
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let (entries, _) = self.inner.health(name, None).await?;
        let mut memo = tags::Memo::default();
        Ok(group_by_version(
            entries
                .iter()
                .filter_map(|e| e.to_service_with(name, &mut memo)),
        ))
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let (names, _) = self.inner.catalog_services(None).await?;
        Ok(names
            .into_keys()
            .map(|name| Service {
                name,
                ..Service::default()
            })
            .collect())
    }

    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        watch::start(Arc::clone(&self.inner), opts).await
    }
}

/// Fuzzing: the answer of `/v1/health/service/<name>`, each instance read as a node (its
/// go-micro tags decoded).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_health(data: &[u8]) {
    if let Ok(entries) = serde_json::from_slice::<Vec<HealthEntry>>(data) {
        for entry in &entries {
            let _ = entry.to_service("greeter");
        }
    }
}

/// Fuzzing: tags, one per line, decoded as go-micro's version, endpoints and metadata.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_tags(data: &[u8]) {
    let tags: Vec<String> = String::from_utf8_lossy(data)
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = tags::decode_version(&tags);
    let _ = tags::decode_endpoints(&tags);
    let _ = tags::decode_metadata(&tags);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_durations_as_go_does() {
        let cases = [
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(65), "1m5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::ZERO, "0s"),
        ];
        for (d, go) in cases {
            assert_eq!(go_duration(d), go, "{d:?}");
        }
    }

    #[test]
    fn deregisters_critical_after_a_minute_at_least_plus_five_seconds() {
        assert_eq!(
            deregister_after(Duration::from_secs(10)),
            Duration::from_secs(65)
        );
        assert_eq!(
            deregister_after(Duration::from_secs(60)),
            Duration::from_secs(65)
        );
        assert_eq!(
            deregister_after(Duration::from_secs(90)),
            Duration::from_secs(95)
        );
    }

    #[test]
    fn splits_and_joins_addresses_as_go() {
        assert_eq!(split_host_port("127.0.0.1:8080"), ("127.0.0.1", 8080));
        assert_eq!(split_host_port("[::1]:8080"), ("::1", 8080));
        assert_eq!(split_host_port("host"), ("host", 0));
        assert_eq!(split_host_port("::1"), ("::1", 0));
        assert_eq!(join_host_port("::1", 8080), "[::1]:8080");
        assert_eq!(join_host_port("10.0.0.1", 1), "10.0.0.1:1");
    }

    #[test]
    fn parses_agent_addresses() {
        let url = |a: &str, tls| base_url(a, tls).map(|u| u.to_string());
        assert_eq!(
            url("127.0.0.1", false).as_deref(),
            Ok("http://127.0.0.1:8500/")
        );
        assert_eq!(
            url("127.0.0.1:9", false).as_deref(),
            Ok("http://127.0.0.1:9/")
        );
        assert_eq!(
            url("consul:8501", true).as_deref(),
            Ok("https://consul:8501/")
        );
        assert_eq!(
            url("https://consul", false).as_deref(),
            Ok("https://consul/")
        );
        assert_eq!(
            url("http://h:1/prefix", false).as_deref(),
            Ok("http://h:1/prefix/")
        );
        let err = url("ftp://h", false).expect_err("ftp");
        assert!(err.detail.contains("`ftp://h`"), "{}", err.detail);
    }

    #[test]
    fn reads_consul_environment() {
        let env: HashMap<&str, &str> = [
            ("CONSUL_HTTP_ADDR", "https://a:1, b:2"),
            ("CONSUL_HTTP_TOKEN", " secret "),
            ("CONSUL_HTTP_SSL_VERIFY", "false"),
            ("CONSUL_CACERT", "/ca.pem"),
        ]
        .into();
        let opts = ConsulOptions::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()));
        assert_eq!(opts.addresses, ["https://a:1", "b:2"]);
        assert_eq!(opts.token.as_deref(), Some("secret"));
        assert!(opts.tls_skip_verify);
        assert!(!opts.tls);
        assert_eq!(opts.ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(!format!("{opts:?}").contains("secret"), "token is redacted");
        let none = ConsulOptions::from_lookup(|_| None);
        assert_eq!(none.addresses, [DEFAULT_ADDRESS]);
        assert_eq!(none.token, None);
    }

    #[test]
    fn registration_is_go_micros() {
        let service = Service {
            name: "s".into(),
            version: "v1".into(),
            ..Service::default()
        };
        let node = Node {
            id: "s-1".into(),
            address: "127.0.0.1:9000".into(),
            metadata: [
                ("protocol".to_owned(), "mucp".to_owned()),
                ("not.a.meta.key".to_owned(), "x".to_owned()),
            ]
            .into(),
        };
        let body = registration(&service, &node, Duration::from_secs(10)).expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["ID"], "s-1");
        assert_eq!(json["Name"], "s");
        assert_eq!(json["Address"], "127.0.0.1");
        assert_eq!(json["Port"], 9000);
        assert_eq!(json["Meta"], serde_json::json!({"protocol": "mucp"}));
        assert_eq!(json["Check"]["TTL"], "10s");
        assert_eq!(json["Check"]["DeregisterCriticalServiceAfter"], "1m5s");
        let tags: Vec<String> = serde_json::from_value(json["Tags"].clone()).expect("tags");
        assert_eq!(
            tags.len(),
            3,
            "two metadata pairs and the version: {tags:?}"
        );
        assert_eq!(tags::decode_metadata(&tags), Some(node.metadata.clone()));
        let no_ttl = registration(&service, &node, Duration::ZERO).expect("body");
        let json: serde_json::Value = serde_json::from_slice(&no_ttl).expect("json");
        assert!(
            json.get("Check").is_none(),
            "no check without a ttl: {json}"
        );
    }

    #[test]
    fn reads_health_entries_as_go_micro() {
        let json = r#"[
          {"Node":{"Node":"n","Address":"10.0.0.9"},
           "Service":{"ID":"s-1","Service":"s","Tags":["v-789c32d433d03300040000ffff02ce00ee"],"Address":"","Port":7,"Meta":{"zone":"a"}},
           "Checks":[{"Status":"passing"},{"Status":"warning"}]},
          {"Node":{"Address":"10.0.0.8"},
           "Service":{"ID":"s-2","Service":"s","Tags":null,"Address":"127.0.0.1","Port":8,"Meta":null},
           "Checks":[{"Status":"passing"},{"Status":"critical"}]},
          {"Node":{"Address":"10.0.0.7"},
           "Service":{"ID":"t-1","Service":"t","Tags":[],"Address":"127.0.0.1","Port":9},
           "Checks":[]}
        ]"#;
        let entries: Vec<HealthEntry> = serde_json::from_str(json).expect("json");
        let services = group_by_version(entries.iter().filter_map(|e| e.to_service("s")));
        assert_eq!(services.len(), 1, "{services:#?}");
        assert_eq!(services[0].version, "1.0.0");
        let node = &services[0].nodes;
        assert_eq!(node.len(), 1, "the critical instance is dropped");
        assert_eq!(node[0].id, "s-1");
        assert_eq!(
            node[0].address, "10.0.0.9:7",
            "the node's address when the service has none"
        );
        assert_eq!(
            node[0].metadata["zone"], "a",
            "meta when there are no `t-` tags"
        );
    }
}
