//! Middleware: go-micro's wrappers (`HandlerWrapper`, `CallWrapper`, `SubscriberWrapper`,
//! and a `client.Wrapper` around `Publish`) in the Rust ecosystem's form, tower
//! [`Layer`]s.
//!
//! A layer wraps one of four services:
//!
//! | where | the service | go-micro |
//! | --- | --- | --- |
//! | [`ServiceBuilder::layer`](crate::ServiceBuilder::layer) | [`HandlerService`]: a call to one of the service's endpoints, [`rpc::Request`] to [`rpc::Response`] | `server.HandlerWrapper` |
//! | [`ServiceBuilder::call_layer`](crate::ServiceBuilder::call_layer), [`Client::with_layers`](crate::Client::with_layers) | [`CallService`]: a call the client makes, [`Call`] to the reply's bytes | `client.CallWrapper` |
//! | [`ServiceBuilder::subscriber_layer`](crate::ServiceBuilder::subscriber_layer) | [`SubscriberService`]: a delivery to a subscriber, a [`broker::Event`] | `server.SubscriberWrapper` |
//! | [`ServiceBuilder::publisher_layer`](crate::ServiceBuilder::publisher_layer), [`Client::with_layers`](crate::Client::with_layers) | [`PublisherService`]: a publish, a [`Publish`] | `client.Wrapper` overriding `Publish` |
//!
//! The first layer added is the outermost, as go-micro's first-listed wrapper is. A layer
//! may be any tower layer whose service's error converts into a boxed error: tower's own
//! `TimeoutLayer` (its `Elapsed` becomes a 408), `LoadShedLayer` (`Overloaded`, a 503),
//! `ConcurrencyLimitLayer`, or one of the program's. An [`Error`] a layer returns reaches the
//! caller as it is, go-micro's error JSON; any other error becomes a 500 naming it.
//!
//! Each call gets a clone of the stack, so a layer's service must be `Clone`, and one whose
//! state must be shared across calls keeps it behind an `Arc` (tower's `ConcurrencyLimit`
//! does). tower's `RateLimit` keeps its window per instance and is not `Clone`: give it as
//! one layer behind a buffer, which is, `tower::ServiceBuilder::new().buffer(64).rate_limit(100,
//! Duration::from_secs(1))`, as with axum.
//!
//! ```
//! use rmicro::layer::HandlerService;
//! use rmicro::{Error, rpc};
//! use rmicro::layer::tower::ServiceExt as _;
//!
//! /// Refuses calls without `Authorization: Bearer <token>` with go-micro's 401.
//! fn require_token(
//!     token: &'static str,
//! ) -> impl rmicro::layer::tower::Layer<HandlerService, Service = HandlerService> + Clone {
//!     rmicro::layer::tower::layer::layer_fn(move |inner: HandlerService| {
//!         let want = format!("Bearer {token}");
//!         HandlerService::new(rmicro::layer::tower::service_fn(move |req: rpc::Request| {
//!             let allowed = req.header.get("Authorization") == Some(&want);
//!             let inner = inner.clone();
//!             async move {
//!                 if !allowed {
//!                     return Err(Error::unauthorized(&req.service, "missing authorization token"));
//!                 }
//!                 inner.oneshot(req).await
//!             }
//!         }))
//!     })
//! }
//!
//! let builder = rmicro::Service::builder("student_service").layer(require_token("s3cret"));
//! # drop(builder);
//! ```
//!
//! The tests (`runtime/tests/layers.rs`) use this layer and tower's own.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt as _};

use crate::Error;
use crate::broker::{self, Message};
use crate::rpc::{self, CallOptions};

pub use tower;

/// A boxed error, what tower's own services return.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A call to one of a service's endpoints.
pub type HandlerService = BoxCloneService<rpc::Request, rpc::Response, Error>;

/// A call a client makes: the reply's content type and bytes.
pub type CallService = BoxCloneService<Call, (String, Bytes), Error>;

/// A delivery to a subscriber.
pub type SubscriberService = BoxCloneService<broker::Event, (), Error>;

/// A publish through a client's publisher.
pub type PublisherService = BoxCloneService<Publish, (), Error>;

/// What a call layer sees: the target and the encoded request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Call {
    /// The target service.
    pub service: String,
    /// `Handler.Method`.
    pub endpoint: String,
    /// The body's content type.
    pub content_type: String,
    /// The encoded request.
    pub body: Bytes,
    /// The call's options: metadata sent as headers, timeout, retries, a fixed address.
    pub options: CallOptions,
}

/// What a publisher layer sees: the topic and the message, headers stamped.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// The message (its headers include `Content-Type`, `Micro-Topic` and `Micro-ID`).
    pub message: Message,
}

/// One layer, type-erased: wraps a boxed service in another, mapping its errors with `id` as
/// the id of the errors it makes.
pub(crate) type Wrap<S> = Arc<dyn Fn(S, &Arc<str>) -> S + Send + Sync>;

/// Erases `layer`'s type.
pub(crate) fn wrap<L, Req, Resp>(layer: L) -> Wrap<BoxCloneService<Req, Resp, Error>>
where
    L: Layer<BoxCloneService<Req, Resp, Error>> + Send + Sync + 'static,
    L::Service: Service<Req, Response = Resp> + Clone + Send + 'static,
    <L::Service as Service<Req>>::Error: Into<BoxError>,
    <L::Service as Service<Req>>::Future: Send + 'static,
    Req: 'static,
    Resp: 'static,
{
    Arc::new(move |inner, id| {
        let id = Arc::clone(id);
        BoxCloneService::new(
            layer
                .layer(inner)
                .map_err(move |e: <L::Service as Service<Req>>::Error| into_error(&id, e.into())),
        )
    })
}

/// Applies `layers` around `inner`, the first outermost.
pub(crate) fn stack<Req, Resp>(
    inner: BoxCloneService<Req, Resp, Error>,
    layers: &[Wrap<BoxCloneService<Req, Resp, Error>>],
    id: &Arc<str>,
) -> BoxCloneService<Req, Resp, Error> {
    layers.iter().rev().fold(inner, |s, wrap| wrap(s, id))
}

/// An error from a layer as go-micro's: an [`Error`] anywhere in its chain as it is (tower's
/// `Buffer` wraps its inner service's errors), tower's `Elapsed` a 408, `Overloaded` a 503,
/// anything else a 500 naming it.
pub(crate) fn into_error(id: &str, e: BoxError) -> Error {
    let e = match e.downcast::<Error>() {
        Ok(e) => return *e,
        Err(e) => e,
    };
    let mut cause: Option<&(dyn StdError + 'static)> = Some(e.as_ref());
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<Error>() {
            return found.clone();
        }
        if c.is::<tower::timeout::error::Elapsed>() {
            return Error::timeout(id, format!("a layer's timeout elapsed: {e}"));
        }
        if c.is::<tower::load_shed::error::Overloaded>() {
            return Error::service_unavailable(id, format!("overloaded: {e}"));
        }
        cause = c.source();
    }
    Error::internal_server_error(id, format!("middleware: {e}"))
}

/// The layers of the four kinds, as a service or a client holds them. Cheap to clone.
#[derive(Clone, Default)]
pub struct Layers {
    pub(crate) handler: Vec<Wrap<HandlerService>>,
    pub(crate) call: Vec<Wrap<CallService>>,
    pub(crate) subscriber: Vec<Wrap<SubscriberService>>,
    pub(crate) publisher: Vec<Wrap<PublisherService>>,
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers")
            .field("handler", &self.handler.len())
            .field("call", &self.call.len())
            .field("subscriber", &self.subscriber.len())
            .field("publisher", &self.publisher.len())
            .finish()
    }
}

impl Layers {
    /// No layers.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Adds a layer around the service's endpoint calls.
    #[must_use]
    pub fn handler<L>(mut self, layer: L) -> Layers
    where
        L: Layer<HandlerService> + Send + Sync + 'static,
        L::Service: Service<rpc::Request, Response = rpc::Response> + Clone + Send + 'static,
        <L::Service as Service<rpc::Request>>::Error: Into<BoxError>,
        <L::Service as Service<rpc::Request>>::Future: Send + 'static,
    {
        self.handler.push(wrap(layer));
        self
    }

    /// Adds a layer around the calls a client makes.
    #[must_use]
    pub fn call<L>(mut self, layer: L) -> Layers
    where
        L: Layer<CallService> + Send + Sync + 'static,
        L::Service: Service<Call, Response = (String, Bytes)> + Clone + Send + 'static,
        <L::Service as Service<Call>>::Error: Into<BoxError>,
        <L::Service as Service<Call>>::Future: Send + 'static,
    {
        self.call.push(wrap(layer));
        self
    }

    /// Adds a layer around deliveries to subscribers.
    #[must_use]
    pub fn subscriber<L>(mut self, layer: L) -> Layers
    where
        L: Layer<SubscriberService> + Send + Sync + 'static,
        L::Service: Service<broker::Event, Response = ()> + Clone + Send + 'static,
        <L::Service as Service<broker::Event>>::Error: Into<BoxError>,
        <L::Service as Service<broker::Event>>::Future: Send + 'static,
    {
        self.subscriber.push(wrap(layer));
        self
    }

    /// Adds a layer around publishes.
    #[must_use]
    pub fn publisher<L>(mut self, layer: L) -> Layers
    where
        L: Layer<PublisherService> + Send + Sync + 'static,
        L::Service: Service<Publish, Response = ()> + Clone + Send + 'static,
        <L::Service as Service<Publish>>::Error: Into<BoxError>,
        <L::Service as Service<Publish>>::Future: Send + 'static,
    {
        self.publisher.push(wrap(layer));
        self
    }

    /// Whether no layer of any kind is set.
    pub fn is_empty(&self) -> bool {
        self.handler.is_empty()
            && self.call.is_empty()
            && self.subscriber.is_empty()
            && self.publisher.is_empty()
    }

    /// These layers, then `other`'s inside them.
    #[must_use]
    pub fn then(mut self, other: &Layers) -> Layers {
        self.handler.extend(other.handler.iter().cloned());
        self.call.extend(other.call.iter().cloned());
        self.subscriber.extend(other.subscriber.iter().cloned());
        self.publisher.extend(other.publisher.iter().cloned());
        self
    }

    /// Wraps a broker handler in the subscriber layers (none: the handler as it is).
    pub(crate) fn subscriber_handler(
        &self,
        handler: broker::Handler,
        id: &Arc<str>,
    ) -> broker::Handler {
        if self.subscriber.is_empty() {
            return handler;
        }
        let inner: SubscriberService =
            BoxCloneService::new(tower::service_fn(move |ev| handler(ev)));
        let svc = Shared::new(stack(inner, &self.subscriber, id));
        Arc::new(move |ev| Box::pin(svc.get().oneshot(ev)))
    }
}

/// A layered service that many tasks share: each call takes a clone, made under a lock
/// (boxed tower services are `Send`, not `Sync`).
pub(crate) struct Shared<S>(std::sync::Mutex<S>);

impl<S: Clone> Shared<S> {
    pub(crate) fn new(service: S) -> Shared<S> {
        Shared(std::sync::Mutex::new(service))
    }

    /// A clone of the service, for one call.
    pub(crate) fn get(&self) -> S {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
