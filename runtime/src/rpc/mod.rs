//! RPC: go-micro's mucp protocol over HTTP/1.1, the endpoint table the macros build, the
//! server that serves it and the client that calls it.
//!
//! One call is `POST /` with headers `Content-Type`, `Accept`, `Micro-Id`, `Micro-Service`,
//! `Micro-Method`, `Micro-Endpoint` (both `Handler.Method`) and `Timeout` (nanoseconds); the
//! body is the encoded request. The reply is HTTP 200 with the encoded response, or an empty
//! body with the error's JSON in the `Micro-Error` header.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::broker;
use crate::codec::{Decode, Encode};
use crate::registry::{Endpoint, Metadata, Value};
use crate::{Error, Result};

pub mod client;
pub mod describe;
pub mod grpc;
pub(crate) mod local;
pub mod selector;
pub mod server;
pub mod stream;
pub mod tls;

pub use client::{CallOptions, Client, ClientOptions};
pub use selector::Strategy;

/// The id of the client's own errors (go-micro's).
pub(crate) const CLIENT_ID: &str = "go.micro.client";

/// Header names of the mucp protocol.
pub mod header {
    /// Request id.
    pub const ID: &str = "Micro-Id";
    /// Target service.
    pub const SERVICE: &str = "Micro-Service";
    /// `Handler.Method`.
    pub const METHOD: &str = "Micro-Method";
    /// `Handler.Method` (go-micro sends both).
    pub const ENDPOINT: &str = "Micro-Endpoint";
    /// Error JSON on replies.
    pub const ERROR: &str = "Micro-Error";
    /// Request timeout in nanoseconds.
    pub const TIMEOUT: &str = "Timeout";
}

/// The mucp header names as `http` values, made at compile time (lookups by `&str` parse and
/// lowercase the name on every call).
pub(crate) mod names {
    use http::HeaderName;

    pub(crate) const ID: HeaderName = HeaderName::from_static("micro-id");
    pub(crate) const SERVICE: HeaderName = HeaderName::from_static("micro-service");
    pub(crate) const METHOD: HeaderName = HeaderName::from_static("micro-method");
    pub(crate) const ENDPOINT: HeaderName = HeaderName::from_static("micro-endpoint");
    pub(crate) const ERROR: HeaderName = HeaderName::from_static("micro-error");
    pub(crate) const TIMEOUT: HeaderName = HeaderName::from_static("timeout");
    pub(crate) const X_ID: HeaderName = HeaderName::from_static("x-micro-id");
    pub(crate) const X_SERVICE: HeaderName = HeaderName::from_static("x-micro-service");
    pub(crate) const X_METHOD: HeaderName = HeaderName::from_static("x-micro-method");
    pub(crate) const X_ENDPOINT: HeaderName = HeaderName::from_static("x-micro-endpoint");
    pub(crate) const X_ERROR: HeaderName = HeaderName::from_static("x-micro-error");
}

/// A decoded-enough request handed to an endpoint: who it is for and the raw body.
#[derive(Debug, Clone)]
pub struct Request {
    /// `Micro-Service`.
    pub service: String,
    /// `Handler.Method`.
    pub endpoint: String,
    /// The request's content type, normalised (`application/json`, ...).
    pub content_type: String,
    /// The content type the reply should use (the request's, unless `Accept` says otherwise).
    pub accept: String,
    /// The remaining `Micro-*` and user headers.
    pub header: Metadata,
    /// The encoded request.
    pub body: Bytes,
}

/// An encoded reply.
#[derive(Debug, Clone)]
pub struct Response {
    /// The body's content type.
    pub content_type: String,
    /// The encoded reply.
    pub body: Bytes,
}

/// A type-erased endpoint of a running service.
pub type EndpointFn = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Response>> + Send + Sync>;

type BoundLocal<S> = Arc<dyn Fn(Arc<S>) -> local::Typed + Send + Sync>;
type BoundEndpoint<S> =
    Arc<dyn Fn(Arc<S>, Request) -> BoxFuture<'static, Result<Response>> + Send + Sync>;
type BoundStream<S> =
    Arc<dyn Fn(Arc<S>, stream::StreamCall) -> BoxFuture<'static, Result<()>> + Send + Sync>;
type BoundSubscription<S> =
    Arc<dyn Fn(Arc<S>, broker::Event) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// The endpoints and subscriptions of a handler type `S`, before it is bound to a value.
///
/// `#[handlers]` builds one of these for its impl block; users of the builder API write the
/// same calls by hand.
pub struct Routes<S> {
    endpoints: Vec<(Endpoint, BoundEndpoint<S>)>,
    streams: Vec<(Endpoint, BoundStream<S>)>,
    subscriptions: Vec<(SubscriptionSpec, BoundSubscription<S>)>,
    /// Each endpoint typed, for calls from this process (see [`local`]).
    local: Vec<(String, BoundLocal<S>)>,
}

impl<S> fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.0.name).collect::<Vec<_>>(),
            )
            .field(
                "streams",
                &self.streams.iter().map(|e| &e.0.name).collect::<Vec<_>>(),
            )
            .field(
                "subscriptions",
                &self.subscriptions.iter().map(|s| &s.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S> Default for Routes<S> {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            streams: Vec::new(),
            subscriptions: Vec::new(),
            local: Vec::new(),
        }
    }
}

/// Where a subscription listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// The topic.
    pub topic: String,
    /// The queue group, `None` for broadcast.
    pub queue: Option<String>,
    /// What happens to a message the handler fails on; `None`: the broker plugin's own rule
    /// (see [`broker::Redelivery`]).
    pub redelivery: Option<broker::Redelivery>,
}

impl SubscriptionSpec {
    /// A subscription to `topic`, in queue group `queue` if any, with the plugin's rule for
    /// failed messages.
    pub fn new(topic: impl Into<String>, queue: Option<&str>) -> Self {
        Self {
            topic: topic.into(),
            queue: queue.map(str::to_owned),
            redelivery: None,
        }
    }

    /// Sets the redelivery policy.
    #[must_use]
    pub fn redelivery(mut self, policy: broker::Redelivery) -> Self {
        self.redelivery = Some(policy);
        self
    }
}

impl<S: Send + Sync + 'static> Routes<S> {
    /// No endpoints, no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds endpoint `name` (`Handler.Method`) served by `f`, advertised with the given
    /// request and response descriptions.
    #[must_use]
    pub fn endpoint<Req, Resp, F, Fut>(
        mut self,
        name: &str,
        request: Value,
        response: Value,
        f: F,
    ) -> Self
    where
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp>> + Send + 'static,
    {
        let f = Arc::new(f);
        let typed = Arc::clone(&f);
        self.local.push((
            name.to_owned(),
            Arc::new(move |this: Arc<S>| {
                let f = Arc::clone(&typed);
                let call: local::Call<Req, Resp> =
                    Arc::new(move |req: Req| Box::pin(f(Arc::clone(&this), req)));
                local::typed(call)
            }),
        ));
        let call: BoundEndpoint<S> = Arc::new(move |this, req: Request| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let input = Req::decode(&req.service, &req.content_type, &req.body)?;
                let output = f(this, input).await?;
                let body = output.encode(&req.service, &req.accept)?;
                Ok(Response {
                    content_type: req.accept,
                    body: Bytes::from(body),
                })
            })
        });
        let mut metadata = Metadata::new();
        metadata.insert("stream".to_owned(), "false".to_owned());
        let endpoint = Endpoint {
            name: name.to_owned(),
            request: Some(request),
            response: Some(response),
            metadata,
        };
        self.endpoints.push((endpoint, call));
        self
    }

    /// Adds streaming endpoint `name` of `kind` served by `call`, which gets the stream's two
    /// directions typed (see [`stream`]); [`Routes::server_stream`],
    /// [`Routes::client_stream`] and [`Routes::bidi_stream`] are its typed forms.
    #[must_use]
    pub fn stream<F, Fut>(
        mut self,
        name: &str,
        kind: stream::Kind,
        request: Value,
        response: Value,
        call: F,
    ) -> Self
    where
        F: Fn(Arc<S>, stream::StreamCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let call: BoundStream<S> = Arc::new(move |this, s| Box::pin(call(this, s)));
        let mut metadata = Metadata::new();
        metadata.insert("stream".to_owned(), "true".to_owned());
        let kind = match kind {
            stream::Kind::Server => "server",
            stream::Kind::Client => "client",
            stream::Kind::Bidirectional => "bidirectional",
        };
        // Which side streams, for tools (go-micro writes only `stream`).
        metadata.insert("stream_kind".to_owned(), kind.to_owned());
        let endpoint = Endpoint {
            name: name.to_owned(),
            request: Some(request),
            response: Some(response),
            metadata,
        };
        self.streams.push((endpoint, call));
        self
    }

    /// Adds a server-streaming endpoint: one request, then as many replies as `f` sends.
    #[must_use]
    pub fn server_stream<Req, Resp, F, Fut>(
        self,
        name: &str,
        request: Value,
        response: Value,
        f: F,
    ) -> Self
    where
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        F: Fn(Arc<S>, Req, stream::Replies<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.stream(
            name,
            stream::Kind::Server,
            request,
            response,
            move |this, call: stream::StreamCall| {
                let f = Arc::clone(&f);
                let service = call.service.clone();
                async move {
                    let (mut requests, replies) = call.split::<Req, Resp>();
                    let request = requests.next().await.unwrap_or_else(|| {
                        Err(Error::bad_request(
                            &service,
                            "the stream ended before its request",
                        ))
                    })?;
                    f(this, request, replies).await
                }
            },
        )
    }

    /// Adds a client-streaming endpoint: requests until the caller ends its side, then the
    /// one reply `f` returns.
    #[must_use]
    pub fn client_stream<Req, Resp, F, Fut>(
        self,
        name: &str,
        request: Value,
        response: Value,
        f: F,
    ) -> Self
    where
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        F: Fn(Arc<S>, stream::Requests<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.stream(
            name,
            stream::Kind::Client,
            request,
            response,
            move |this, call: stream::StreamCall| {
                let f = Arc::clone(&f);
                async move {
                    let (requests, replies) = call.split::<Req, Resp>();
                    let reply = f(this, requests).await?;
                    replies.send(reply).await
                }
            },
        )
    }

    /// Adds a bidirectional streaming endpoint: `f` reads the caller's messages and sends its
    /// own as it likes.
    #[must_use]
    pub fn bidi_stream<Req, Resp, F, Fut>(
        self,
        name: &str,
        request: Value,
        response: Value,
        f: F,
    ) -> Self
    where
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        F: Fn(Arc<S>, stream::Requests<Req>, stream::Replies<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.stream(
            name,
            stream::Kind::Bidirectional,
            request,
            response,
            move |this, call: stream::StreamCall| {
                let (requests, replies) = call.split::<Req, Resp>();
                f(this, requests, replies)
            },
        )
    }

    /// Sets `endpoint`'s description (the registry's `description` endpoint metadata, which
    /// go-micro v5's tools read: its MCP gateway describes the endpoint's tool with it).
    /// `#[handlers]` sets it from the method's doc comment.
    #[must_use]
    pub fn description(mut self, endpoint: &str, description: &str) -> Self {
        let streams = self.streams.iter_mut().map(|(e, _)| e);
        for e in self.endpoints.iter_mut().map(|(e, _)| e).chain(streams) {
            if e.name == endpoint {
                e.metadata
                    .insert("description".to_owned(), description.to_owned());
            }
        }
        self
    }

    /// Adds a subscription to `topic` (in queue group `queue`, if any) handled by `f`, which
    /// receives the decoded payload as an [`crate::Event`].
    #[must_use]
    pub fn subscription<T, F, Fut>(mut self, topic: &str, queue: Option<&str>, f: F) -> Self
    where
        T: Decode + Send + 'static,
        F: Fn(Arc<S>, crate::Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let f = Arc::new(f);
        let call: BoundSubscription<S> = Arc::new(move |this, raw| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let event = crate::Event::<T>::decode(raw)?;
                f(this, event).await
            })
        });
        self.subscriptions
            .push((SubscriptionSpec::new(topic, queue), call));
        self
    }

    /// Sets the redelivery policy of the subscription added last (what `#[subscribe(..,
    /// attempts = .., dead_letter = "..")]` generates).
    #[must_use]
    pub fn redelivery(mut self, policy: broker::Redelivery) -> Self {
        if let Some((spec, _)) = self.subscriptions.last_mut() {
            spec.redelivery = Some(policy);
        }
        self
    }

    /// The endpoints as the registry advertises them, streaming ones included.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .map(|(e, _)| e)
            .chain(self.streams.iter().map(|(e, _)| e))
    }

    /// The subscriptions' topics and queues.
    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionSpec> {
        self.subscriptions.iter().map(|(s, _)| s)
    }

    /// Binds the routes to the handler value, erasing `S`.
    pub fn bind(self, this: Arc<S>) -> Bound {
        let endpoints = self
            .endpoints
            .into_iter()
            .map(|(ep, call)| {
                let this = Arc::clone(&this);
                let f: EndpointFn = Arc::new(move |req| call(Arc::clone(&this), req));
                (ep, f)
            })
            .collect();
        let streams = self
            .streams
            .into_iter()
            .map(|(ep, call)| {
                let this = Arc::clone(&this);
                let f: stream::StreamFn = Arc::new(move |s| call(Arc::clone(&this), s));
                (ep, f)
            })
            .collect();
        let subscriptions = self
            .subscriptions
            .into_iter()
            .map(|(spec, call)| {
                let this = Arc::clone(&this);
                let h: broker::Handler = Arc::new(move |ev| call(Arc::clone(&this), ev));
                (spec, h)
            })
            .collect();
        let local = self
            .local
            .into_iter()
            .map(|(name, bind)| (name, bind(Arc::clone(&this))))
            .collect();
        Bound {
            endpoints,
            streams,
            local,
            subscriptions,
        }
    }
}

/// Routes bound to their handler value: what the server and the broker run.
#[derive(Default)]
pub struct Bound {
    /// Endpoint descriptions and their handlers.
    pub endpoints: Vec<(Endpoint, EndpointFn)>,
    /// Streaming endpoints and their handlers.
    pub streams: Vec<(Endpoint, stream::StreamFn)>,
    /// Subscriptions and their handlers.
    pub subscriptions: Vec<(SubscriptionSpec, broker::Handler)>,
    /// The endpoints typed, for calls from this process.
    pub(crate) local: HashMap<String, local::Typed>,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.0.name).collect::<Vec<_>>(),
            )
            .field(
                "subscriptions",
                &self.subscriptions.iter().map(|s| &s.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// go-micro's endpoint naming: `StudentService` + `get_student` -> `StudentService.GetStudent`.
pub fn endpoint_name(handler: &str, method: &str) -> String {
    let mut out = String::with_capacity(handler.len() + method.len() + 1);
    out.push_str(handler);
    out.push('.');
    for part in method.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The error a call gets when no endpoint of that name exists.
pub(crate) fn unknown_endpoint(service: &str, endpoint: &str) -> Error {
    Error::not_found(service, format!("unknown service endpoint `{endpoint}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_go_micro() {
        assert_eq!(
            endpoint_name("StudentService", "get_student"),
            "StudentService.GetStudent"
        );
        assert_eq!(endpoint_name("S", "ping"), "S.Ping");
        assert_eq!(endpoint_name("S", "get_v2_by_id"), "S.GetV2ById");
    }
}
