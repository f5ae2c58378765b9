//! The RPC client: finds a node through the [`Selector`], calls it with go-micro's mucp
//! headers over pooled HTTP/1.1 connections, retries timeouts and connection errors on other
//! nodes, and publishes through a broker.
//!
//! ```no_run
//! # async fn run(registry: rmicro::registry::SharedRegistry) -> rmicro::Result<()> {
//! use rmicro::rpc::{Client, ClientOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)]
//! struct StudentRequest { name: String }
//! #[derive(Deserialize)]
//! struct Student { name: String, grade: i32 }
//!
//! let client = Client::new(registry, ClientOptions::default());
//! let student: Student = client
//!     .call("student_service", "StudentService.GetStudent", &StudentRequest { name: "davie".into() })
//!     .await?;
//! # let _ = student; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::header as mucp;
use super::names;
use super::selector::{Next, Outcome, Selector, Strategy};
use super::tls::connect::Connector;
use crate::broker::{self, Message, PublishOptions, SharedBroker};
use crate::codec::{self, Decode, Encode};
use crate::layer::{Call, CallService, Layers, Publish, PublisherService, Shared};
use crate::registry::{Metadata, SharedRegistry};
use crate::{Error, Result};

use super::CLIENT_ID;

/// The largest stream message a caller reads (the server's default request limit).
const MAX_STREAM_MESSAGE: usize = 4 * 1024 * 1024;

fn no_broker(topic: &str) -> Error {
    Error::internal_server_error(
        CLIENT_ID,
        format!(
            "cannot publish to `{topic}`: the client has no broker, add one with `Client::with_broker`"
        ),
    )
}

/// Options of a [`Client`]. The defaults are rmicro's (DESIGN §3): 5 retries, a 30 s request
/// timeout, random selection, go-micro's dial timeout (5 s) and connection pool (100 idle
/// connections per node, closed after a minute unused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How many times a failed call is tried again (on another node where there is one).
    pub retries: u32,
    /// How long a whole call, retries included, may take.
    pub request_timeout: Duration,
    /// How long connecting to a node may take.
    pub dial_timeout: Duration,
    /// How nodes are picked.
    pub strategy: Strategy,
    /// The content type requests and published messages are encoded as (go-micro's
    /// `--client_content_type`). `None`: each message type's own default, `application/protobuf`
    /// for types with a registered protobuf codec (prost types), `application/json` otherwise.
    pub content_type: Option<String>,
    /// How long an unused pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per node.
    pub pool_max_idle_per_node: usize,
    /// Count calls, retries and publishes in the process's metrics (see [`crate::metrics`]).
    /// Default `true`.
    pub metrics: bool,
    /// Call every node over TLS, checking its certificate (see [`super::tls`]). Default
    /// `None`: plain HTTP, as go-micro's default transport.
    pub tls: Option<super::tls::ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retries: 5,
            request_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(5),
            strategy: Strategy::Random,
            content_type: None,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_node: 100,
            metrics: true,
            tls: None,
        }
    }
}

/// Per-call overrides of the [`ClientOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Encode the request as this content type (and ask for the reply in it), over the
    /// client's and the type's default.
    pub content_type: Option<String>,
    /// Bound the whole call by this instead of `request_timeout`.
    pub timeout: Option<Duration>,
    /// Retry this many times instead of `retries`.
    pub retries: Option<u32>,
    /// Call this `host:port` directly, bypassing the registry.
    pub address: Option<String>,
    /// Extra headers (go-micro's call metadata), sent as they are.
    pub metadata: Metadata,
}

/// An RPC client. Cheap to clone: clones share the connection pool and the registry cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The call and publisher layers, when there are any.
    stacks: Option<Arc<Stacks>>,
}

/// A client's layered services; their innermost holds a client without layers (so no
/// reference cycle).
struct Stacks {
    call: Option<Shared<CallService>>,
    publisher: Option<Shared<PublisherService>>,
    /// What they were built from, to build them again over another broker.
    layers: Layers,
}

#[derive(Clone)]
struct Inner {
    http: HttpClient<Connector, Full<Bytes>>,
    /// For nodes that registered `protocol=grpc` (see [`super::grpc`]).
    grpc: HttpClient<Connector, Full<Bytes>>,
    /// The connectors of the two, for streams (a connection each).
    connect: Connector,
    connect_grpc: Connector,
    selector: Selector,
    opts: ClientOptions,
    broker: Option<SharedBroker>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("selector", &self.inner.selector)
            .field("options", &self.inner.opts)
            .field(
                "broker",
                &self.inner.broker.as_ref().map(|b| b.name().to_owned()),
            )
            .finish()
    }
}

/// Why one attempt failed: the transport (retried) or the remote service (returned, except
/// timeouts).
enum Failure {
    /// No connection could be made: nothing was sent.
    Unreachable(Error),
    /// The connection failed while the request was under way.
    Transport(Error),
    Remote(Error),
}

impl Failure {
    fn transport(err: &hyper_util::client::legacy::Error) -> Self {
        let error = connection_error(err);
        if err.is_connect() {
            Failure::Unreachable(error)
        } else {
            Failure::Transport(error)
        }
    }
}

impl Client {
    /// A client finding services in `registry`.
    pub fn new(registry: SharedRegistry, opts: ClientOptions) -> Client {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(opts.dial_timeout));
        tcp.set_nodelay(true);
        let connect = Connector::new(tcp.clone(), opts.tls.as_ref());
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_node)
            .pool_timer(TokioTimer::new())
            .build(connect.clone());
        // go-micro's grpc nodes: gRPC over HTTP/2 (h2c, or TLS asking for `h2` when the
        // client has TLS), one multiplexed connection per node.
        let connect_grpc = Connector::new(tcp, opts.tls.as_ref().map(|t| t.with_h2()).as_ref());
        let grpc = HttpClient::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connect_grpc.clone());
        Client {
            inner: Arc::new(Inner {
                http,
                grpc,
                connect,
                connect_grpc,
                selector: Selector::new(registry, opts.strategy),
                opts,
                broker: None,
            }),
            stacks: None,
        }
    }

    /// The same client, publishing through `broker` (its layers are kept).
    #[must_use]
    pub fn with_broker(self, broker: SharedBroker) -> Client {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.broker = Some(broker);
        let plain = Client {
            inner: Arc::new(inner),
            stacks: None,
        };
        match self.stacks {
            Some(stacks) => plain.with_layers(&stacks.layers),
            None => plain,
        }
    }

    /// The same client, its calls going through `layers`' call layers and its publishers
    /// through their publisher layers (the first outermost; see [`crate::layer`]). Replaces
    /// the layers it had.
    #[must_use]
    pub fn with_layers(self, layers: &Layers) -> Client {
        let plain = Client {
            inner: self.inner,
            stacks: None,
        };
        if layers.call.is_empty() && layers.publisher.is_empty() {
            return plain;
        }
        let id: Arc<str> = Arc::from(CLIENT_ID);
        let call = (!layers.call.is_empty()).then(|| {
            let client = plain.clone();
            let inner = CallService::new(tower::service_fn(move |call: Call| {
                let client = client.clone();
                async move {
                    client
                        .invoke_direct(
                            &call.service,
                            &call.endpoint,
                            &call.content_type,
                            call.body,
                            &call.options,
                        )
                        .await
                }
            }));
            Shared::new(crate::layer::stack(inner, &layers.call, &id))
        });
        let publisher = (!layers.publisher.is_empty()).then(|| {
            let client = plain.clone();
            let inner = PublisherService::new(tower::service_fn(move |p: Publish| {
                let broker = client.inner.broker.clone();
                async move {
                    let Some(broker) = broker else {
                        return Err(no_broker(&p.topic));
                    };
                    broker
                        .publish(&p.topic, p.message, PublishOptions::default())
                        .await
                }
            }));
            Shared::new(crate::layer::stack(inner, &layers.publisher, &id))
        });
        Client {
            inner: plain.inner,
            stacks: Some(Arc::new(Stacks {
                call,
                publisher,
                layers: layers.clone(),
            })),
        }
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// The selector (and registry cache) the client picks nodes with.
    pub fn selector(&self) -> &Selector {
        &self.inner.selector
    }

    /// The broker messages are published through, if any.
    pub fn broker(&self) -> Option<&SharedBroker> {
        self.inner.broker.as_ref()
    }

    /// Calls `endpoint` (`Handler.Method`) of `service` with `req` and decodes the reply.
    pub async fn call<Req, Resp>(&self, service: &str, endpoint: &str, req: &Req) -> Result<Resp>
    where
        Req: Encode + Sync,
        Resp: Decode,
    {
        self.call_with(service, endpoint, req, CallOptions::default())
            .await
    }

    /// [`Client::call`] with per-call options.
    pub async fn call_with<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        req: &Req,
        opts: CallOptions,
    ) -> Result<Resp>
    where
        Req: Encode + Sync,
        Resp: Decode,
    {
        let content_type = opts
            .content_type
            .as_deref()
            .or(self.inner.opts.content_type.as_deref())
            .unwrap_or_else(|| Req::default_content_type());
        let content_type = codec::normalize(content_type);
        let body = Bytes::from(req.encode(CLIENT_ID, content_type)?);
        let (reply_type, reply) = self
            .invoke(service, endpoint, content_type, body, &opts)
            .await?;
        Resp::decode(CLIENT_ID, &reply_type, &reply)
    }

    /// Calls `endpoint` of `service`, directly when a service running in this process serves
    /// it with these very request and reply types (go-micro v6's `client.Local()`): the
    /// handler runs on this task, with no network, no codec, and none of the server's layers
    /// or metrics. Otherwise (the service is elsewhere, or its types differ) this is
    /// [`Client::call`].
    pub async fn call_local<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        request: Req,
    ) -> Result<Resp>
    where
        Req: Encode + Sync + 'static,
        Resp: Decode + 'static,
    {
        match super::local::find::<Req, Resp>(service, endpoint) {
            Some(call) => call(request).await,
            None => self.call(service, endpoint, &request).await,
        }
    }

    /// Opens a stream to streaming endpoint `endpoint` of `service`, as go-micro's
    /// `client.Stream` does (see [`super::stream`]): a connection of its own to one node
    /// (the next one when a node cannot be reached), `Req` messages out and `Resp` in.
    pub async fn stream<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
    ) -> Result<super::stream::CallStream<Req, Resp>>
    where
        Req: Encode,
        Resp: Decode,
    {
        self.stream_with(service, endpoint, CallOptions::default())
            .await
    }

    /// [`Client::stream`] with per-call options: the content type, a node's address, the
    /// metadata; `timeout` bounds the whole stream (go-micro's `Timeout` header, which the
    /// server enforces, and on this side: a send or receive past it is a 408, so a server that
    /// never ends the stream, or vanished without closing the connection, cannot hold the
    /// caller), `retries` is not used (nothing is retried once a stream is open).
    pub async fn stream_with<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        opts: CallOptions,
    ) -> Result<super::stream::CallStream<Req, Resp>>
    where
        Req: Encode,
        Resp: Decode,
    {
        let content_type = opts
            .content_type
            .as_deref()
            .or(self.inner.opts.content_type.as_deref())
            .unwrap_or_else(|| Req::default_content_type());
        let content_type = codec::normalize(content_type).to_owned();
        let id = crate::id::uuid_string();
        let mut header: Vec<(String, String)> = opts
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in [
            ("Content-Type", content_type.as_str()),
            ("Accept", content_type.as_str()),
            (mucp::ID, id.as_str()),
            (mucp::SERVICE, service),
            (mucp::METHOD, endpoint),
            (mucp::ENDPOINT, endpoint),
            ("Micro-Stream", id.as_str()),
        ] {
            header.push((name.to_owned(), value.to_owned()));
        }
        if let Some(timeout) = opts.timeout {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            header.push((mucp::TIMEOUT.to_owned(), nanos.to_string()));
        }
        let mut targets = match &opts.address {
            Some(address) => Targets::Fixed(address),
            None => Targets::Selected(self.inner.selector.select(service).await?),
        };
        let opening = || super::stream::Opening {
            service,
            content_type: &content_type,
            max_message: MAX_STREAM_MESSAGE,
            deadline: opts.timeout.map(|t| Instant::now() + t),
        };
        let mut last = None;
        while let Some((address, grpc)) = targets.next().map(|(a, g)| (a.to_owned(), g)) {
            let scheme = if self.inner.opts.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let Ok(uri) = format!("{scheme}://{address}/").parse::<Uri>() else {
                last = Some(format!("connection error: `{address}` is not an address"));
                continue;
            };
            let mut connector = if grpc {
                self.inner.connect_grpc.clone()
            } else {
                self.inner.connect.clone()
            };
            let io = match tower_service::Service::call(&mut connector, uri).await {
                Ok(io) => io.into_inner(),
                Err(e) => {
                    targets.report(Outcome::Unreachable);
                    last = Some(format!("connection error: dial tcp {address}: {e}"));
                    if matches!(targets, Targets::Fixed(_)) {
                        break;
                    }
                    continue;
                }
            };
            targets.report(Outcome::Answered);
            if grpc {
                let headers = grpc_stream_headers(&opts, &content_type)?;
                return super::stream::CallStream::open_grpc(
                    io,
                    &address,
                    endpoint,
                    headers,
                    opening(),
                )
                .await;
            }
            return super::stream::CallStream::open(io, address, header, opening()).await;
        }
        Err(match last {
            Some(detail) => Error::internal_server_error(CLIENT_ID, detail),
            None => super::selector::not_found(service),
        })
    }

    /// Calls `endpoint` of `service` with a body already encoded as `content_type`; returns
    /// the reply's body as it came.
    pub async fn call_raw(
        &self,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Bytes> {
        self.call_raw_with(
            service,
            endpoint,
            content_type,
            body,
            CallOptions::default(),
        )
        .await
    }

    /// [`Client::call_raw`] with per-call options (their `content_type` is ignored).
    pub async fn call_raw_with(
        &self,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: Bytes,
        opts: CallOptions,
    ) -> Result<Bytes> {
        let content_type = codec::normalize(content_type);
        let (_, reply) = self
            .invoke(service, endpoint, content_type, body, &opts)
            .await?;
        Ok(reply)
    }

    /// A publisher of messages to `topic`, through the client's broker.
    pub fn publisher(&self, topic: impl Into<String>) -> Result<Publisher> {
        let topic = topic.into();
        let Some(broker) = self.inner.broker.clone() else {
            return Err(no_broker(&topic));
        };
        Ok(Publisher {
            topic,
            broker,
            content_type: self.inner.opts.content_type.clone(),
            stack: self
                .stacks
                .as_ref()
                .and_then(|s| s.publisher.as_ref().map(Shared::get)),
            metrics: self.inner.opts.metrics,
        })
    }

    /// One call, counted in the client's metrics (see [`crate::metrics`]).
    async fn invoke(
        &self,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: Bytes,
        opts: &CallOptions,
    ) -> Result<(String, Bytes)> {
        let started = Instant::now();
        let layered = self
            .stacks
            .as_ref()
            .and_then(|s| s.call.as_ref().map(Shared::get));
        let result = match layered {
            Some(stack) => {
                let call = Call {
                    service: service.to_owned(),
                    endpoint: endpoint.to_owned(),
                    content_type: content_type.to_owned(),
                    body,
                    options: opts.clone(),
                };
                tower::ServiceExt::oneshot(stack, call).await
            }
            None => {
                self.invoke_direct(service, endpoint, content_type, body, opts)
                    .await
            }
        };
        if self.inner.opts.metrics {
            crate::metrics::get().call(
                service,
                endpoint,
                result.as_ref().err().map(|e| e.code),
                started.elapsed(),
            );
        }
        result
    }

    /// Select, try, retry on transport errors and timeouts within the deadline.
    async fn invoke_direct(
        &self,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: Bytes,
        opts: &CallOptions,
    ) -> Result<(String, Bytes)> {
        let timeout = opts.timeout.unwrap_or(self.inner.opts.request_timeout);
        let retries = opts.retries.unwrap_or(self.inner.opts.retries);
        let deadline = Instant::now() + timeout;
        let timed_out = |last: Option<&Error>| {
            let mut detail = format!(
                "call timeout: `{service}` endpoint `{endpoint}` did not answer within {timeout:?}"
            );
            if let Some(last) = last {
                detail.push_str(&format!(" (last error: {})", last.detail));
            }
            Error::timeout(CLIENT_ID, detail)
        };
        let mut targets = match &opts.address {
            Some(address) => Targets::Fixed(address),
            None => Targets::Selected(self.inner.selector.select(service).await?),
        };
        let call_id = crate::id::uuid_string();
        let mut last: Option<Error> = None;
        // Whether the last attempt could not connect to its node (so nothing was sent).
        let mut unreachable = false;
        for attempt in 0..=retries {
            if attempt > 0 {
                if self.inner.opts.metrics {
                    crate::metrics::get().retry(service, endpoint);
                }
                // A node that could not be reached never saw the request: the next node not
                // tried yet is called at once. Otherwise go-micro's backoff.
                if !(unreachable && targets.has_untried()) {
                    let pause = backoff(attempt);
                    if Instant::now() + pause >= deadline {
                        return Err(timed_out(last.as_ref()));
                    }
                    tokio::time::sleep(pause).await;
                }
            }
            let Some((address, grpc)) = targets.next() else {
                return Err(super::selector::not_found(service));
            };
            // A node's protocol picks the attempt: go-micro's grpc, or mucp.
            let uri = if grpc {
                String::new()
            } else if self.inner.opts.tls.is_some() {
                format!("https://{address}/")
            } else {
                format!("http://{address}/")
            };
            let try_once = if grpc {
                futures::future::Either::Left(self.attempt_grpc(
                    address,
                    service,
                    endpoint,
                    content_type,
                    &body,
                    deadline,
                    &opts.metadata,
                ))
            } else {
                futures::future::Either::Right(self.attempt(
                    &uri,
                    service,
                    endpoint,
                    content_type,
                    body.clone(),
                    &call_id,
                    deadline,
                    &opts.metadata,
                ))
            };
            let failure = match tokio::time::timeout_at(deadline, try_once).await {
                Err(_) => return Err(timed_out(last.as_ref())),
                Ok(Ok(reply)) => {
                    targets.report(Outcome::Answered);
                    return Ok(reply);
                }
                Ok(Err(failure)) => failure,
            };
            unreachable = matches!(failure, Failure::Unreachable(_));
            let (err, outcome) = match failure {
                Failure::Remote(err) if err.code != 408 => {
                    targets.report(Outcome::Answered);
                    return Err(err);
                }
                Failure::Remote(err) => (err, None),
                Failure::Unreachable(err) => (err, Some(Outcome::Unreachable)),
                Failure::Transport(err) => (err, Some(Outcome::Broken)),
            };
            tracing::debug!(%service, %endpoint, %address, attempt, error = %err, "rpc attempt failed");
            if let Some(outcome) = outcome {
                targets.report(outcome);
            }
            last = Some(err);
        }
        Err(last.unwrap_or_else(|| super::selector::not_found(service)))
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        uri: &str,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: Bytes,
        call_id: &str,
        deadline: Instant,
        metadata: &Metadata,
    ) -> std::result::Result<(String, Bytes), Failure> {
        let uri: Uri = uri.parse().map_err(|e| {
            Failure::Transport(Error::internal_server_error(
                CLIENT_ID,
                format!("connection error: invalid node address in `{uri}`: {e}"),
            ))
        })?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let request = build_request(
            uri,
            service,
            endpoint,
            content_type,
            body,
            call_id,
            remaining,
            metadata,
        )
        .map_err(Failure::Remote)?;
        let response = self
            .inner
            .http
            .request(request)
            .await
            .map_err(|e| Failure::transport(&e))?;
        let (parts, body) = response.into_parts();
        if let Some(err) = parts.headers.get(names::ERROR) {
            return Err(Failure::Remote(Error::parse(&String::from_utf8_lossy(
                err.as_bytes(),
            ))));
        }
        let body = body
            .collect()
            .await
            .map_err(|e| Failure::Transport(connection_error(&e)))?
            .to_bytes();
        if parts.status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
            return Err(Failure::Remote(Error::internal_server_error(
                CLIENT_ID,
                format!("{}: {}", parts.status, text.trim()),
            )));
        }
        let reply_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(content_type, codec::normalize)
            .to_owned();
        Ok((reply_type, body))
    }
}

impl Client {
    /// One unary gRPC call to a go-micro grpc node (see [`super::grpc`]).
    #[allow(clippy::too_many_arguments)]
    async fn attempt_grpc(
        &self,
        address: &str,
        service: &str,
        endpoint: &str,
        content_type: &str,
        body: &Bytes,
        deadline: Instant,
        metadata: &Metadata,
    ) -> std::result::Result<(String, Bytes), Failure> {
        use super::grpc;
        let bad = |what: &str, value: &str| {
            Failure::Remote(Error::bad_request(
                CLIENT_ID,
                format!("invalid {what} `{value}` for a grpc call"),
            ))
        };
        let scheme = if self.inner.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let uri: Uri = format!("{scheme}://{address}{}", grpc::path_of(service, endpoint))
            .parse()
            .map_err(|_| bad("address", address))?;
        let mut request = http::Request::new(Full::new(grpc::frame(body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() =
            grpc_metadata(metadata).map_err(|(what, value)| bad(what, &value))?;
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(grpc::content_type_of(content_type)),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        let remaining = deadline.saturating_duration_since(Instant::now());
        let nanos = u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX);
        headers.insert(names::TIMEOUT, HeaderValue::from(nanos));
        let response = self
            .inner
            .grpc
            .request(request)
            .await
            .map_err(|e| Failure::transport(&e))?;
        let (parts, body) = response.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| Failure::Transport(connection_error(&e)))?;
        // The status is in the trailers, or in the headers of a trailers-only answer.
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let status = grpc::status_error(&trailers, service)
            .or_else(|| grpc::status_error(&parts.headers, service));
        match status {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(Failure::Remote(err)),
            None => {
                return Err(Failure::Remote(Error::internal_server_error(
                    CLIENT_ID,
                    format!(
                        "the grpc answer from `{address}` carries no grpc-status ({})",
                        parts.status
                    ),
                )));
            }
        }
        let message = grpc::unframe(&collected.to_bytes()).map_err(|why| {
            Failure::Remote(Error::internal_server_error(
                CLIENT_ID,
                format!("a bad grpc answer from `{address}`: {why}"),
            ))
        })?;
        let reply_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(grpc::codec_of)
            .unwrap_or(content_type)
            .to_owned();
        Ok((reply_type, message))
    }
}

/// The headers of a gRPC stream as go-micro's grpc client sends them: the metadata in
/// lowercase, the gRPC content type, and the stream's `timeout` in nanoseconds when it has one.
fn grpc_stream_headers(opts: &CallOptions, content_type: &str) -> Result<http::HeaderMap> {
    let mut headers = grpc_metadata(&opts.metadata).map_err(|(what, value)| {
        Error::bad_request(
            CLIENT_ID,
            format!("invalid {what} `{value}` for a grpc call"),
        )
    })?;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::grpc::content_type_of(content_type)),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = opts.timeout {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        headers.insert(names::TIMEOUT, HeaderValue::from(nanos));
    }
    Ok(headers)
}

/// Metadata as gRPC headers (lowercase names); the bad name or value, if one is.
fn grpc_metadata(
    metadata: &Metadata,
) -> std::result::Result<http::HeaderMap, (&'static str, String)> {
    let mut headers = http::HeaderMap::with_capacity(metadata.len() + 3);
    for (name, value) in metadata {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| ("header name", name.clone()))?;
        let value = HeaderValue::from_str(value).map_err(|_| ("header value", value.clone()))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// go-micro's default backoff before retry `attempt` (1-based): `attempt^e * 100 ms`.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs_f64(f64::from(attempt).powf(std::f64::consts::E) * 0.1)
}

#[allow(clippy::too_many_arguments)]
fn build_request(
    uri: Uri,
    service: &str,
    endpoint: &str,
    content_type: &str,
    body: Bytes,
    call_id: &str,
    remaining: Duration,
    metadata: &Metadata,
) -> Result<http::Request<Full<Bytes>>> {
    let bad = |what: &str, value: &str| {
        Error::bad_request(
            CLIENT_ID,
            format!("invalid {what} `{value}` for an rpc header"),
        )
    };
    let value = |v: &str, what: &str| HeaderValue::from_str(v).map_err(|_| bad(what, v));
    // `Host` from the address as it is (hyper would format it again for every request).
    let host = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.reserve(metadata.len() + 8);
    if let Some(host) = host {
        headers.insert(header::HOST, host);
    }
    for (name, v) in metadata {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("header name", name))?;
        headers.insert(name, value(v, "header value")?);
    }
    let ct = codec::header_value(content_type).map_err(|_| bad("content type", content_type))?;
    headers.insert(header::CONTENT_TYPE, ct.clone());
    headers.insert(header::ACCEPT, ct);
    headers.insert(names::ID, value(call_id, "id")?);
    headers.insert(names::SERVICE, value(service, "service name")?);
    let ep = value(endpoint, "endpoint")?;
    headers.insert(names::METHOD, ep.clone());
    headers.insert(names::ENDPOINT, ep);
    let nanos = u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX);
    headers.insert(names::TIMEOUT, HeaderValue::from(nanos));
    Ok(request)
}

/// A transport failure in go-micro's words, with the whole cause chain.
fn connection_error(err: &(dyn std::error::Error + 'static)) -> Error {
    let mut detail = format!("connection error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::internal_server_error(CLIENT_ID, detail)
}

/// Where the attempts of one call go.
enum Targets<'a> {
    Fixed(&'a str),
    Selected(Next),
}

impl Targets<'_> {
    /// The next node's address, and whether it speaks go-micro's grpc protocol.
    fn next(&mut self) -> Option<(&str, bool)> {
        match self {
            Targets::Fixed(address) => Some((address, false)),
            Targets::Selected(next) => next.pick().map(|node| {
                let grpc = node
                    .metadata
                    .get("protocol")
                    .is_some_and(|p| p == super::grpc::PROTOCOL);
                (node.address.as_str(), grpc)
            }),
        }
    }

    fn has_untried(&self) -> bool {
        match self {
            Targets::Fixed(_) => false,
            Targets::Selected(next) => next.has_untried(),
        }
    }

    fn report(&self, outcome: Outcome) {
        if let Targets::Selected(next) = self {
            next.report(outcome);
        }
    }
}

/// Publishes typed messages to one topic (go-micro's `micro.NewEvent`).
#[derive(Clone)]
pub struct Publisher {
    topic: String,
    broker: SharedBroker,
    content_type: Option<String>,
    /// The client's publisher layers, when it has any.
    stack: Option<PublisherService>,
    /// The client's `metrics` option.
    metrics: bool,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("broker", &self.broker.name())
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl Publisher {
    /// The topic messages go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The same publisher, encoding messages as `content_type` (`application/json` or
    /// `application/protobuf`) whatever the client's option and the type's default.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// The content type messages are encoded as, when the publisher or its client names one.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Encodes `msg` (the publisher's or client's content type, else the type's default:
    /// protobuf for prost types, JSON otherwise) and publishes it
    /// with headers `Content-Type`, `Micro-Topic` and `Micro-ID`.
    pub async fn publish<T: Encode>(&self, msg: &T) -> Result<()> {
        self.publish_with_header(msg, Metadata::new()).await
    }

    /// [`Publisher::publish`] with extra headers.
    pub async fn publish_with_header<T: Encode>(&self, msg: &T, header: Metadata) -> Result<()> {
        let content_type = self
            .content_type
            .as_deref()
            .unwrap_or_else(|| T::default_content_type());
        let content_type = codec::normalize(content_type);
        let body = msg.encode(CLIENT_ID, content_type)?;
        let mut message = Message {
            header,
            body: Bytes::from(body),
        };
        message.header.insert(
            broker::HEADER_CONTENT_TYPE.to_owned(),
            content_type.to_owned(),
        );
        broker::stamp(&self.topic, &mut message);
        let started = Instant::now();
        let result = match &self.stack {
            Some(stack) => {
                let publish = Publish {
                    topic: self.topic.clone(),
                    message,
                };
                tower::ServiceExt::oneshot(stack.clone(), publish).await
            }
            None => {
                self.broker
                    .publish(&self.topic, message, PublishOptions::default())
                    .await
            }
        };
        if self.metrics {
            crate::metrics::get().published(
                self.broker.name(),
                &self.topic,
                result.is_ok(),
                started.elapsed(),
            );
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_go_micros() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        let two = backoff(2).as_millis();
        assert!((657..=659).contains(&two), "{two}");
    }

    #[test]
    fn requests_carry_go_micros_headers() {
        let mut md = Metadata::new();
        md.insert("User".into(), "alice".into());
        let req = build_request(
            "http://127.0.0.1:1/".parse().expect("uri"),
            "student_service",
            "StudentService.GetStudent",
            "application/json",
            Bytes::from_static(b"{}"),
            "id-1",
            Duration::from_secs(5),
            &md,
        )
        .expect("request");
        let h = req.headers();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["micro-id"], "id-1");
        assert_eq!(h["micro-service"], "student_service");
        assert_eq!(h["micro-method"], "StudentService.GetStudent");
        assert_eq!(h["micro-endpoint"], "StudentService.GetStudent");
        assert_eq!(h["timeout"], "5000000000");
        assert_eq!(h["user"], "alice");
        assert_eq!(h["host"], "127.0.0.1:1");
    }
}
