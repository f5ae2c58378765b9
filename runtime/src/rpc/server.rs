//! The RPC server: go-micro's mucp protocol on HTTP/1.1, served by hyper.
//!
//! One call is `POST /` naming its endpoint in `Micro-Endpoint` (or `Micro-Method`); the body
//! is the encoded request. The reply is HTTP 200 with the encoded response, or with an empty
//! body and the error's JSON in `Micro-Error`. As go-micro's http transport does, the reply
//! echoes the request's headers (`Micro-Id`, `Micro-Service`, `Micro-Method`,
//! `Micro-Endpoint`, the caller's metadata) and repeats the `Micro-*` ones with an `X-`
//! prefix.
//!
//! ```no_run
//! # async fn run() -> rmicro::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rmicro::registry::Value;
//! use rmicro::rpc::server::{Server, ServerOptions};
//! use rmicro::rpc::Routes;
//!
//! struct Greeter;
//! let routes = Routes::<Greeter>::new().endpoint(
//!     "Greeter.Hello",
//!     Value::default(),
//!     Value::default(),
//!     |_this, name: String| async move { Ok(format!("hello {name}")) },
//! );
//! let server = Server::bind(([127, 0, 0, 1], 0).into()).await?;
//! let handle = server.serve(
//!     routes.bind(Arc::new(Greeter)).endpoints,
//!     ServerOptions { name: "greeter".into(), ..ServerOptions::default() },
//! );
//! // ... register `handle.local_addr()` ...
//! let aborted = handle.shutdown(Duration::from_secs(5)).await;
//! # let _ = aborted; Ok(()) }
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use super::stream::{self, StreamFn, wire};
use super::{EndpointFn, Request, Response, header as mucp, names};
use crate::codec;
use crate::layer::{HandlerService, Layers};
use crate::metrics::Series;
use crate::registry::{Endpoint, Metadata};
use crate::{Error, Result};

/// The id of errors raised by a server that has no name.
const SERVER_ID: &str = "go.micro.server";

/// Options of [`Server::serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// The service name: requests naming another service in `Micro-Service` are refused, and
    /// the server's own errors carry it as their id. Empty: accept any `Micro-Service`.
    pub name: String,
    /// The largest request body accepted; larger ones get a 413 error without being read.
    pub max_body_bytes: usize,
    /// How long a connection may take to send a request's headers, counted from the first
    /// byte it sends after connecting or after its last reply (hyper's own default, 30 s).
    /// A connection that takes longer (a slowloris) is closed, so it holds no file
    /// descriptor and no memory for long.
    pub header_read_timeout: Duration,
    /// The most connections served at once. A connection over the cap is answered at once
    /// with a 503 go-micro error and closed, so a caller fails fast (and tries another node)
    /// instead of waiting in the listen backlog, and a flood of connections cannot take the
    /// process's file descriptors. Default 10,000.
    pub max_connections: usize,
    /// Serve over TLS (mutual TLS when it has a client CA); see [`super::tls`]. Default
    /// `None`: plain HTTP, as go-micro's default transport.
    pub tls: Option<super::tls::ServerTls>,
    /// Count requests in the process's metrics (`micro_request_total` and the rest, see
    /// [`crate::metrics`]). Default `true`.
    pub metrics: bool,
    /// Also serve go-micro's grpc protocol (unary gRPC over h2c, see [`super::grpc`]) on the
    /// same port, beside mucp. Default `false`.
    pub grpc: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            name: SERVER_ID.to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            tls: None,
            grpc: false,
            metrics: true,
        }
    }
}

/// Plain HTTP routes served beside mucp's `POST /` (health probes, metrics): given a
/// request's method and path, the reply, or `None` for the server's own 404/405.
pub(crate) type WebRoutes =
    Arc<dyn Fn(&Method, &str) -> Option<BoxFuture<'static, HttpResponse>> + Send + Sync>;

/// A bound, not yet serving, RPC listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds a TCP listener on `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<Server> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::internal_server_error(SERVER_ID, format!("cannot listen on `{addr}`: {e}"))
        })?;
        let local_addr = listener.local_addr().map_err(|e| {
            Error::internal_server_error(
                SERVER_ID,
                format!("cannot read the address bound for `{addr}`: {e}"),
            )
        })?;
        Ok(Server {
            listener,
            local_addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts serving `endpoints` on the current tokio runtime.
    ///
    /// The returned handle stops the server: [`ServerHandle::shutdown`] gracefully, dropping
    /// it at once.
    pub fn serve(
        self,
        endpoints: Vec<(Endpoint, EndpointFn)>,
        opts: ServerOptions,
    ) -> ServerHandle {
        self.serve_with(endpoints, Vec::new(), opts, None, &Layers::new())
    }

    /// [`Server::serve`] with streaming endpoints beside the unary ones (see
    /// [`super::stream`]).
    pub fn serve_streaming(
        self,
        endpoints: Vec<(Endpoint, EndpointFn)>,
        streams: Vec<(Endpoint, StreamFn)>,
        opts: ServerOptions,
    ) -> ServerHandle {
        self.serve_with(endpoints, streams, opts, None, &Layers::new())
    }

    /// [`Server::serve`], each endpoint call going through `layers`' handler layers (the
    /// first outermost); see [`crate::layer`].
    pub fn serve_layered(
        self,
        endpoints: Vec<(Endpoint, EndpointFn)>,
        opts: ServerOptions,
        layers: &Layers,
    ) -> ServerHandle {
        self.serve_with(endpoints, Vec::new(), opts, None, layers)
    }

    /// [`Server::serve`], with plain HTTP routes beside mucp and handler layers.
    pub(crate) fn serve_with(
        self,
        endpoints: Vec<(Endpoint, EndpointFn)>,
        streams: Vec<(Endpoint, StreamFn)>,
        opts: ServerOptions,
        web: Option<WebRoutes>,
        layers: &Layers,
    ) -> ServerHandle {
        let label = if opts.name.is_empty() {
            SERVER_ID
        } else {
            opts.name.as_str()
        };
        let metrics = crate::metrics::get();
        let table: HashMap<String, (EndpointFn, Option<Series>)> = endpoints
            .into_iter()
            .map(|(ep, f)| {
                let m = opts.metrics.then(|| metrics.endpoint(label, &ep.name));
                (ep.name, (f, m))
            })
            .collect();
        let in_flight_gauge = opts.metrics.then(|| metrics.in_flight(label));
        let stack = (!layers.handler.is_empty()).then(|| {
            let calls: Arc<HashMap<String, EndpointFn>> = Arc::new(
                table
                    .iter()
                    .map(|(name, (f, _))| (name.clone(), Arc::clone(f)))
                    .collect(),
            );
            let id: Arc<str> = Arc::from(label);
            let unknown_id = Arc::clone(&id);
            let inner: HandlerService =
                HandlerService::new(tower::service_fn(move |req: Request| {
                    let call = calls.get(&req.endpoint).cloned();
                    let id = Arc::clone(&unknown_id);
                    async move {
                        match call {
                            Some(call) => call(req).await,
                            None => Err(super::unknown_endpoint(&id, &req.endpoint)),
                        }
                    }
                }));
            crate::layer::Shared::new(crate::layer::stack(inner, &layers.handler, &id))
        });
        let (state, state_rx) = watch::channel(State::Running);
        let shared = Arc::new(Shared {
            id: if opts.name.is_empty() {
                SERVER_ID.to_owned()
            } else {
                opts.name.clone()
            },
            name: opts.name,
            max_body_bytes: opts.max_body_bytes,
            header_read_timeout: opts.header_read_timeout,
            max_connections: opts.max_connections.max(1),
            tls: opts.tls.map(|t| {
                let t = if opts.grpc { t.with_h2() } else { t };
                tokio_rustls::TlsAcceptor::from(t.0)
            }),
            endpoints: table,
            streams: streams.into_iter().map(|(ep, f)| (ep.name, f)).collect(),
            grpc: opts.grpc,
            in_flight_gauge,
            stack,
            web,
            in_flight: AtomicUsize::new(0),
            state,
        });
        let accept = tokio::spawn(accept_loop(self.listener, Arc::clone(&shared), state_rx));
        tracing::debug!(address = %self.local_addr, service = %shared.name, "rpc server listening");
        ServerHandle {
            shared,
            accept,
            local_addr: self.local_addr,
        }
    }
}

/// Lifecycle of a serving server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// No new connections; connections close once their current request is answered.
    Draining,
    /// Requests still running are dropped and answered with a 503 error.
    Abort,
}

struct Shared {
    /// `ServerOptions::name`.
    name: String,
    /// The id of the server's own errors.
    id: String,
    max_body_bytes: usize,
    header_read_timeout: Duration,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    endpoints: HashMap<String, (EndpointFn, Option<Series>)>,
    /// The streaming endpoints.
    streams: HashMap<String, StreamFn>,
    /// `ServerOptions::grpc`.
    grpc: bool,
    /// `micro_requests_in_flight` of this service; `None` with metrics off.
    in_flight_gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    /// The endpoints behind the handler layers, when there are any.
    stack: Option<crate::layer::Shared<HandlerService>>,
    web: Option<WebRoutes>,
    in_flight: AtomicUsize,
    state: watch::Sender<State>,
}

/// A running server. Dropping it stops the server at once; [`ServerHandle::shutdown`] stops
/// it gracefully.
#[must_use = "dropping the handle stops the server"]
pub struct ServerHandle {
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("name", &self.shared.name)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many requests are being handled right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Stops accepting connections, lets the requests in flight finish for at most `grace`,
    /// then aborts the rest (their callers get a 503 error). Returns how many requests were
    /// aborted.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        let shared = Arc::clone(&self.shared);
        shared.state.send_replace(State::Draining);
        // Every connection finishes its current request and closes (so a request that
        // arrives on a kept-alive connection while others drain is served, not aborted);
        // the accept loop ends once the last one has.
        let drained = tokio::time::timeout(grace, &mut self.accept).await;
        let (aborted, joined) = match drained {
            Ok(joined) => (0, joined),
            Err(_) => {
                let aborted = shared.in_flight.load(Ordering::Acquire);
                shared.state.send_replace(State::Abort);
                (aborted, (&mut self.accept).await)
            }
        };
        if let Err(err) = joined
            && err.is_panic()
        {
            tracing::error!(address = %self.local_addr, "rpc server accept loop panicked");
        }
        if aborted > 0 {
            tracing::warn!(address = %self.local_addr, aborted, "rpc server stopped with requests in flight");
        } else {
            tracing::debug!(address = %self.local_addr, "rpc server stopped");
        }
        aborted
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shared.state.send_replace(State::Abort);
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut state: watch::Receiver<State>,
) {
    let conn_state = state.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) if conns.len() >= shared.max_connections => {
                    tokio::spawn(refuse_conn(stream, peer, Arc::clone(&shared)));
                }
                Ok((stream, peer)) => {
                    conns.spawn(serve_conn(stream, peer, Arc::clone(&shared), conn_state.clone()));
                }
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "rpc server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = until(&mut state, |s| s != State::Running) => break,
        }
    }
    drop(listener);
    // Connections finish their current request and close; once aborted, give them a moment
    // to write the aborted requests' replies, then cut them.
    {
        let drained = async { while conns.join_next().await.is_some() {} };
        tokio::select! {
            () = drained => return,
            _ = until(&mut state, |s| s == State::Abort) => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Answers a connection over [`ServerOptions::max_connections`] with a 503 go-micro error (in
/// `Micro-Error` and as the body, as the server's other HTTP errors) and closes it. The reply
/// waits for the request's headers (an HTTP client drops a reply that comes before its
/// request), for at most a second; what else the caller sends is read and dropped, so that
/// closing does not reset the connection before the caller reads the reply.
async fn refuse_conn(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const LIMIT: usize = 64 * 1024;
    let error = Error::new(
        shared.id.clone(),
        503,
        format!(
            "too many connections: this server serves at most {} at once",
            shared.max_connections
        ),
    );
    let json = error.to_json();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Micro-Error: {json}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    tracing::debug!(%peer, limit = shared.max_connections, "rpc server refused a connection over its cap");
    if shared.tls.is_some() {
        // A TLS client would read the reply as a broken handshake: closing says as much.
        return;
    }
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while head.len() < LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        let mut drained = 0usize;
        while drained < LIMIT {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: watch::Receiver<State>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = shared.tls.clone() else {
        return serve_io(stream, peer, shared, state).await;
    };
    // The handshake is part of reading the request: it gets the header-read timeout, so a
    // connection that never completes it holds nothing for long.
    match tokio::time::timeout(shared.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_io(tls, peer, shared, state).await,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "rpc connection refused in the TLS handshake");
        }
        Err(_) => tracing::debug!(%peer, "rpc connection closed: no TLS handshake in time"),
    }
}

/// Serves one connection: a go-micro stream when its first request opens one to a
/// streaming endpoint, HTTP/1.1 through hyper otherwise. Only a server with streaming
/// endpoints reads the first request's head itself (within the header-read timeout) before
/// deciding; the bytes it read go to hyper first.
async fn serve_io<IO>(
    mut io: IO,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: watch::Receiver<State>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if shared.streams.is_empty() && !shared.grpc {
        return serve_http(TokioIo::new(io), peer, shared, state).await;
    }
    let mut read = Vec::new();
    let head = match tokio::time::timeout(shared.header_read_timeout, sniff(&mut io, &mut read))
        .await
    {
        Ok(Ok(head)) => head,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "rpc connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "rpc connection closed: no request headers in time");
            return;
        }
    };
    if shared.grpc && read.starts_with(super::grpc::PREFACE) {
        return serve_grpc(Rewind::new(read, io), peer, shared, state).await;
    }
    let call = head.as_ref().and_then(|first| {
        let endpoint = first
            .micro("Micro-Endpoint")
            .or_else(|| first.micro("Micro-Method"))?;
        stream::opens_stream(first)
            .then(|| shared.streams.get(endpoint).cloned())
            .flatten()
    });
    let Some(call) = call else {
        return serve_http(TokioIo::new(Rewind::new(read, io)), peer, shared, state).await;
    };
    let (reader, write) = tokio::io::split(io);
    let mut reader = wire::Reader::new(reader, &read, shared.max_body_bytes);
    let Ok(first) = reader.next().await else {
        tracing::debug!(%peer, "rpc stream: the first message did not arrive whole");
        return;
    };
    let _in_flight = InFlight::enter(&*shared);
    let served = stream::Served {
        id: &shared.id,
        name: &shared.name,
        peer,
    };
    let mut state = state;
    tokio::select! {
        () = stream::serve(reader, write, first, call, served) => {}
        _ = until(&mut state, |s| s == State::Abort) => {
            tracing::debug!(%peer, "rpc stream cut: the server stopped");
        }
    }
}

/// Serves one HTTP/2 connection as go-micro's grpc protocol (unary calls).
async fn serve_grpc<IO>(
    io: IO,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut state: watch::Receiver<State>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let request_state = state.clone();
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let state = request_state.clone();
        async move { Ok::<_, Infallible>(grpc_call(shared, state, peer, req).await) }
    });
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "grpc connection ended with an error");
            }
        }
        _ = until(&mut state, |s| s != State::Running) => {
            conn.as_mut().graceful_shutdown();
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "grpc connection ended with an error");
            }
        }
    }
}

/// A gRPC response: a unary call's message (if any) then its status in trailers, or a
/// stream's messages as its handler sends them.
type GrpcBody = http_body_util::Either<
    http_body_util::StreamBody<
        futures::stream::Iter<
            std::vec::IntoIter<std::result::Result<hyper::body::Frame<Bytes>, Infallible>>,
        >,
    >,
    stream::grpc::ChannelBody,
>;

/// What a gRPC call turned out to be.
enum GrpcCall {
    Unary(Result<Response>),
    /// A streaming endpoint's: its response body and codec.
    Stream(stream::grpc::ChannelBody, &'static str),
}

/// One gRPC call: the path names the endpoint, the content type the codec.
async fn grpc_call(
    shared: Arc<Shared>,
    state: watch::Receiver<State>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> http::Response<GrpcBody> {
    use super::grpc;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let started = Instant::now();
    use GrpcCall::{Stream, Unary};
    let call = async {
        let Some((service, endpoint)) = grpc::endpoint_of(&path) else {
            return (
                String::new(),
                Unary(Err(Error::not_found(
                    &shared.id,
                    format!(
                        "no such gRPC method `{path}`: calls are `/<service>.<Handler>/<Method>`"
                    ),
                ))),
            );
        };
        let content_type = header_str(&parts.headers, &header::CONTENT_TYPE).unwrap_or_default();
        let Some(codec_type) = grpc::codec_of(content_type) else {
            let err = Error::unsupported_media_type(
                &shared.id,
                format!("unsupported gRPC content type `{content_type}`"),
            );
            return (endpoint, Unary(Err(err)));
        };
        if let Some(handler) = shared.streams.get(&endpoint) {
            let call = stream::grpc::Call {
                service: service.unwrap_or(&shared.id).to_owned(),
                endpoint: endpoint.clone(),
                header: metadata(&parts.headers),
                codec_type,
                timeout: grpc::timeout_of(&parts.headers),
                max_message: shared.max_body_bytes,
                peer,
                in_flight: Box::new(InFlight::enter(Arc::clone(&shared))),
            };
            let body = stream::grpc::serve(body, Arc::clone(handler), call);
            return (endpoint, Stream(body, codec_type));
        }
        let collected = match Limited::new(body, shared.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                let err =
                    Error::bad_request(&shared.id, format!("cannot read the gRPC request: {err}"));
                return (endpoint, Unary(Err(err)));
            }
        };
        let message = match grpc::unframe(&collected) {
            Ok(message) => message,
            Err(why) => return (endpoint, Unary(Err(Error::bad_request(&shared.id, why)))),
        };
        let request = Request {
            service: service.unwrap_or(&shared.id).to_owned(),
            endpoint: endpoint.clone(),
            content_type: codec_type.to_owned(),
            accept: codec_type.to_owned(),
            header: metadata(&parts.headers),
            body: message,
        };
        let span = tracing::info_span!("rpc", endpoint = %endpoint, protocol = "grpc", %peer);
        let result = dispatch(&shared, state, &parts.headers, request)
            .instrument(span)
            .await;
        (endpoint, Unary(result))
    };
    let (endpoint, result) = match call.await {
        (_, Stream(body, codec_type)) => {
            return grpc_response(http_body_util::Either::Right(body), codec_type);
        }
        (endpoint, Unary(result)) => (endpoint, result),
    };
    observe(&shared, &endpoint, &result, started.elapsed());
    let mut frames = Vec::with_capacity(2);
    let codec_type = match &result {
        Ok(response) => {
            frames.push(Ok(hyper::body::Frame::data(grpc::frame(&response.body))));
            response.content_type.as_str()
        }
        Err(err) => {
            if err.code >= 500 {
                tracing::warn!(%endpoint, error = %err, "grpc call failed");
            }
            codec::PROTOBUF
        }
    };
    let trailers = grpc::status_trailers(result.as_ref().map(|_| ()));
    frames.push(Ok(hyper::body::Frame::trailers(trailers)));
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    grpc_response(http_body_util::Either::Left(body), codec_type)
}

/// A gRPC answer with `body`, in the gRPC content type of `codec_type`.
fn grpc_response(body: GrpcBody, codec_type: &str) -> http::Response<GrpcBody> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::grpc::content_type_of(codec_type)),
    );
    response
}

/// Reads until the first request's head is whole (or is not a head this server reads
/// itself) and returns it, with no body; every byte read is kept in `read`.
async fn sniff<IO: tokio::io::AsyncRead + Unpin>(
    io: &mut IO,
    read: &mut Vec<u8>,
) -> std::io::Result<Option<wire::Message>> {
    use tokio::io::AsyncReadExt as _;
    let mut chunk = [0u8; 4096];
    loop {
        match wire::parse_head(read) {
            Ok(Some((head, _))) => {
                return Ok(Some(wire::Message {
                    status: 200,
                    header: head.header,
                    body: Bytes::new(),
                }));
            }
            Ok(None) if read.len() <= wire::MAX_HEAD => {}
            // Too large or not parsable here: hyper answers it as it answers any request.
            _ => return Ok(None),
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        read.extend_from_slice(&chunk[..n]);
    }
}

/// A connection whose first bytes were read already: they are read again first.
struct Rewind<IO> {
    read: Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    fn new(read: Vec<u8>, io: IO) -> Self {
        Self {
            read: Bytes::from(read),
            io,
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let head = self.read.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut state: watch::Receiver<State>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let header_read_timeout = shared.header_read_timeout;
    let request_state = state.clone();
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let state = request_state.clone();
        async move { Ok::<_, Infallible>(handle(shared, state, peer, req).await) }
    });
    // Without a timer hyper never enforces its header-read timeout.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "rpc connection ended with an error");
            }
        }
        _ = until(&mut state, |s| s != State::Running) => {
            conn.as_mut().graceful_shutdown();
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "rpc connection ended with an error");
            }
        }
    }
}

/// Waits until the server's state satisfies `reached` (or the server is gone).
async fn until(state: &mut watch::Receiver<State>, reached: fn(State) -> bool) {
    // The borrow of the state ends here, so callers stay `Send`.
    let _ = state.wait_for(|s| reached(*s)).await;
}

/// Counts a request in flight for as long as it lives.
struct InFlight<S: std::borrow::Borrow<Shared>>(S);

impl<S: std::borrow::Borrow<Shared>> InFlight<S> {
    fn enter(shared: S) -> Self {
        shared.borrow().in_flight.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl<S: std::borrow::Borrow<Shared>> Drop for InFlight<S> {
    fn drop(&mut self) {
        self.0.borrow().in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) type HttpResponse = http::Response<Full<Bytes>>;

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn handle(
    shared: Arc<Shared>,
    state: watch::Receiver<State>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> HttpResponse {
    if let Some(web) = &shared.web
        && let Some(reply) = web(req.method(), req.uri().path())
    {
        return reply.await;
    }
    if req.uri().path() != "/" {
        let err = Error::not_found(
            &shared.id,
            format!(
                "no such path `{}`, rpc requests are `POST /`",
                req.uri().path()
            ),
        );
        return http_error(StatusCode::NOT_FOUND, &err);
    }
    if req.method() != Method::POST {
        let err = Error::method_not_allowed(
            &shared.id,
            format!(
                "method `{}` not allowed, rpc requests are `POST /`",
                req.method()
            ),
        );
        let mut rsp = http_error(StatusCode::METHOD_NOT_ALLOWED, &err);
        rsp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return rsp;
    }
    let (mut parts, body) = req.into_parts();
    // Owned (a cheap clone), so that the request's headers can become the reply's.
    let endpoint_value = [names::ENDPOINT, names::METHOD]
        .iter()
        .filter_map(|name| parts.headers.get(name))
        .find(|v| v.to_str().is_ok_and(|s| !s.trim().is_empty()))
        .cloned();
    let endpoint = endpoint_value
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    // An info span, so that every line a handler logs at info or above carries the call's
    // endpoint and request id (its fields are only formatted when a subscriber wants them).
    let span = tracing::info_span!(
        "rpc",
        endpoint = %endpoint,
        id = header_str(&parts.headers, &names::ID).unwrap_or_default(),
        %peer
    );
    // Timed only when metrics are on (see `observe`).
    let started = shared.in_flight_gauge.is_some().then(Instant::now);
    let result = serve_request(&shared, state, &parts.headers, endpoint, body)
        .instrument(span.clone())
        .await;
    if let Some(started) = started {
        observe(&shared, endpoint, &result, started.elapsed());
    }
    let _entered = span.enter();
    match &result {
        Ok(_) => tracing::debug!("rpc handled"),
        Err(err) if err.code >= 500 => tracing::warn!(error = %err, "rpc failed"),
        Err(err) => tracing::debug!(error = %err, "rpc failed"),
    }
    reply(std::mem::take(&mut parts.headers), endpoint, result)
}

/// Counts a request in `micro_request_total` and `micro_request_duration_seconds`: under its
/// endpoint when the service serves it, else under `unknown` (bounded labels).
fn observe(shared: &Shared, endpoint: &str, result: &Result<Response>, took: Duration) {
    if shared.in_flight_gauge.is_none() {
        return;
    }
    let served = shared.endpoints.get(endpoint);
    match (result, served) {
        (Ok(_), Some((_, Some(m)))) => m.record(took),
        (Ok(_), _) => {}
        (Err(e), _) => crate::metrics::get().request_failed(
            if shared.name.is_empty() {
                SERVER_ID
            } else {
                &shared.name
            },
            if served.is_some() {
                endpoint
            } else {
                "unknown"
            },
            e.code,
            took,
        ),
    }
}

/// Why a request names no endpoint: its `Micro-Endpoint` (or `Micro-Method`) is missing,
/// blank, or not text (the bytes shown escaped).
fn no_endpoint(headers: &HeaderMap) -> String {
    let given = [names::ENDPOINT, names::METHOD]
        .iter()
        .find_map(|name| headers.get(name).map(|v| (canonical(name.as_str()), v)));
    match given {
        Some((name, value)) if value.to_str().is_err() => format!(
            "the `{name}` header is not valid UTF-8: `{}`; it names the endpoint, `Handler.Method`",
            value.as_bytes().escape_ascii()
        ),
        Some((name, _)) => {
            format!("the `{name}` header is blank; it names the endpoint, `Handler.Method`")
        }
        None => format!("missing `{}` header naming the endpoint", mucp::ENDPOINT),
    }
}

async fn serve_request(
    shared: &Shared,
    state: watch::Receiver<State>,
    headers: &HeaderMap,
    endpoint: &str,
    body: Incoming,
) -> Result<Response> {
    if endpoint.is_empty() {
        return Err(Error::bad_request(&shared.id, no_endpoint(headers)));
    }
    let service = header_str(headers, &names::SERVICE);
    if let Some(service) = service
        && !shared.name.is_empty()
        && service != shared.name
    {
        return Err(Error::not_found(
            &shared.id,
            format!(
                "service `{service}` is not served here, this is `{}`",
                shared.name
            ),
        ));
    }
    if !shared.endpoints.contains_key(endpoint) {
        return Err(super::unknown_endpoint(&shared.id, endpoint));
    }
    let too_large = || {
        Error::payload_too_large(
            &shared.id,
            format!(
                "request body exceeds the limit of {} bytes",
                shared.max_body_bytes
            ),
        )
    };
    let declared = header_str(headers, &header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.max_body_bytes as u64) {
        return Err(too_large());
    }

    let body = match Limited::new(body, shared.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(err) => {
            return Err(Error::bad_request(
                &shared.id,
                format!("cannot read the request body: {err}"),
            ));
        }
    };
    let content_type =
        codec::normalize(header_str(headers, &header::CONTENT_TYPE).unwrap_or_default()).to_owned();
    let accept = match header_str(headers, &header::ACCEPT) {
        Some(accept) if !accept.contains('*') => codec::normalize(accept).to_owned(),
        _ => content_type.clone(),
    };
    let request = Request {
        service: service.unwrap_or(&shared.id).to_owned(),
        endpoint: endpoint.to_owned(),
        content_type,
        accept,
        header: metadata(headers),
        body,
    };
    dispatch(shared, state, headers, request).await
}

/// Runs `request` through the handler layers to its endpoint, bounded by the `Timeout` header
/// and by the server's abort; a handler that panics is a 500.
async fn dispatch(
    shared: &Shared,
    mut state: watch::Receiver<State>,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response> {
    // The table's own key names the endpoint in errors (the request is moved to the handler).
    let Some((endpoint, (call, _))) = shared.endpoints.get_key_value(&request.endpoint) else {
        return Err(super::unknown_endpoint(&shared.id, &request.endpoint));
    };
    let _in_flight = InFlight::enter(shared);
    let _gauge = shared
        .in_flight_gauge
        .as_ref()
        .map(crate::metrics::InFlight::enter);
    let timeout = header_str(headers, &names::TIMEOUT)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ns| *ns > 0)
        .map(Duration::from_nanos);

    // The handler may panic while building its future or while it runs.
    let work = async {
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| match &shared.stack {
            Some(stack) => tower::ServiceExt::oneshot(stack.get(), request).boxed(),
            None => call(request),
        }))?;
        AssertUnwindSafe(fut).catch_unwind().await
    };
    let panicked = |payload: Box<dyn Any + Send>| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_owned());
        tracing::error!(%endpoint, panic = %message, "rpc handler panicked");
        Error::internal_server_error(
            &shared.id,
            format!("endpoint `{endpoint}` panicked: {message}"),
        )
    };
    let bounded = async {
        match timeout {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(outcome) => outcome,
                Err(_) => Ok(Err(Error::timeout(
                    &shared.id,
                    format!("endpoint `{endpoint}` did not finish within {limit:?}"),
                ))),
            },
            None => work.await,
        }
    };
    tokio::select! {
        outcome = bounded => outcome.unwrap_or_else(|payload| Err(panicked(payload))),
        _ = until(&mut state, |s| s == State::Abort) => Err(Error::service_unavailable(
            &shared.id,
            format!("endpoint `{endpoint}` aborted: the server is shutting down"),
        )),
    }
}

/// Go's canonical form of a header name: `micro-id` -> `Micro-Id`. HTTP/1 header names are
/// ASCII (hyper hands them over lowercased); anything else is left as it is.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

const TRANSPORT_COUNT: usize = 13;

/// Headers that describe this hop or this body, never echoed nor handed to handlers. A
/// `static`, not a `const`: a `const` array of names is built and dropped at every use.
static TRANSPORT_HEADERS: [HeaderName; TRANSPORT_COUNT] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::EXPECT,
    header::HOST,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

fn is_transport_header(name: &HeaderName) -> bool {
    TRANSPORT_HEADERS.contains(name)
}

/// The request's headers as go-micro's metadata (canonical names, first value).
fn metadata(headers: &HeaderMap) -> Metadata {
    let mut md = Metadata::new();
    for (name, value) in headers {
        if is_transport_header(name) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            md.entry(canonical(name.as_str()))
                .or_insert_with(|| value.to_owned());
        }
    }
    md
}

/// The `Micro-*` reply headers go-micro also sends with an `X-` prefix.
static X_ECHOED: [(HeaderName, HeaderName); 4] = [
    (names::ID, names::X_ID),
    (names::SERVICE, names::X_SERVICE),
    (names::METHOD, names::X_METHOD),
    (names::ENDPOINT, names::X_ENDPOINT),
];

/// The mucp reply: HTTP 200, the request's headers echoed (go-micro's http transport copies
/// them), then the body or `Micro-Error`. `headers` are the request's, reused as the reply's.
fn reply(mut headers: HeaderMap, endpoint: &str, result: Result<Response>) -> HttpResponse {
    // Only the transport headers present are removed: a request has a handful of headers, so
    // one pass over them is cheaper than looking up all thirteen names.
    let mut present = [false; TRANSPORT_COUNT];
    for name in headers.keys() {
        if let Some(i) = TRANSPORT_HEADERS.iter().position(|t| t == name) {
            present[i] = true;
        }
    }
    for (name, _) in TRANSPORT_HEADERS.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if !endpoint.is_empty()
        && let Ok(value) = HeaderValue::from_str(endpoint)
    {
        headers.insert(names::METHOD, value.clone());
        headers.insert(names::ENDPOINT, value);
    }
    for (name, x_name) in &X_ECHOED {
        if let Some(value) = headers.get(name).cloned() {
            headers.insert(x_name, value);
        }
    }
    let body = match result {
        Ok(rsp) => {
            if let Ok(ct) = codec::header_value(&rsp.content_type) {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            rsp.body
        }
        Err(err) => {
            let value = error_header(&err);
            headers.insert(names::ERROR, value.clone());
            headers.insert(names::X_ERROR, value);
            Bytes::new()
        }
    };
    let mut rsp = http::Response::new(Full::new(body));
    *rsp.headers_mut() = headers;
    rsp
}

fn error_header(err: &Error) -> HeaderValue {
    HeaderValue::from_bytes(err.to_json().as_bytes()).unwrap_or_else(|_| {
        HeaderValue::from_static(
            r#"{"id":"go.micro.server","code":500,"detail":"unprintable error","status":"Internal Server Error"}"#,
        )
    })
}

/// A reply to a request that is not an rpc call at all: a real HTTP status, the error both in
/// `Micro-Error` and as the JSON body.
fn http_error(status: StatusCode, err: &Error) -> HttpResponse {
    let mut rsp = http::Response::new(Full::new(Bytes::from(err.to_json())));
    *rsp.status_mut() = status;
    let headers = rsp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec::JSON));
    headers.insert(names::ERROR, error_header(err));
    rsp
}

/// Fuzzing: the headers of a mucp request, given as `name: value` lines (names and values as
/// any bytes HTTP allows), read as the server reads them and echoed into a reply.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    let _ = no_endpoint(&headers);
    let _ = metadata(&headers);
    let endpoint = header_str(&headers, &names::ENDPOINT)
        .unwrap_or("S.M")
        .to_owned();
    let _ = reply(headers, &endpoint, Err(Error::bad_request("fuzz", "x")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical("micro-id"), "Micro-Id");
        assert_eq!(canonical("x-micro-ENDPOINT"), "X-Micro-Endpoint");
        assert_eq!(canonical("timeout"), "Timeout");
    }

    #[test]
    fn errors_reply_200_with_echoed_headers() {
        let mut request = HeaderMap::new();
        request.insert("micro-id", HeaderValue::from_static("42"));
        request.insert("micro-service", HeaderValue::from_static("s"));
        request.insert("content-length", HeaderValue::from_static("2"));
        request.insert("user", HeaderValue::from_static("alice"));
        let err = Error::not_found("s", "gone");
        let rsp = reply(request, "S.M", Err(err.clone()));
        assert_eq!(rsp.status(), StatusCode::OK);
        let h = rsp.headers();
        assert_eq!(h["micro-error"], err.to_json().as_str());
        assert_eq!(h["x-micro-error"], err.to_json().as_str());
        assert_eq!(h["micro-id"], "42");
        assert_eq!(h["x-micro-id"], "42");
        assert_eq!(h["micro-method"], "S.M");
        assert_eq!(h["x-micro-endpoint"], "S.M");
        assert_eq!(h["user"], "alice");
        assert!(h.get("content-length").is_none());
    }

    #[test]
    fn metadata_skips_transport_headers() {
        let mut request = HeaderMap::new();
        request.insert("micro-id", HeaderValue::from_static("1"));
        request.insert("content-type", HeaderValue::from_static("application/json"));
        request.insert("host", HeaderValue::from_static("x"));
        let md = metadata(&request);
        assert_eq!(md.get("Micro-Id").map(String::as_str), Some("1"));
        assert_eq!(md.len(), 1);
    }
}
