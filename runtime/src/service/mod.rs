//! The service lifecycle: listen, connect the broker, register and subscribe, heartbeat,
//! and on a signal deregister, unsubscribe, drain and disconnect.
//!
//! `#[service]` and `#[handlers]` generate calls to [`ServiceBuilder`]; this is the same
//! API a program uses without the macros:
//!
//! ```no_run
//! use rmicro::{Routes, Service};
//! # #[derive(serde::Deserialize)] struct Req { name: String }
//! # #[derive(serde::Serialize)] struct Student { name: String }
//! struct StudentService;
//!
//! # async fn run() -> rmicro::Result<()> {
//! let routes = Routes::new().endpoint(
//!     "StudentService.GetStudent",
//!     rmicro::rpc::describe::describe::<Req>(),
//!     Default::default(),
//!     |_this: std::sync::Arc<StudentService>, req: Req| async move {
//!         Ok(Student { name: req.name })
//!     },
//! );
//! Service::builder("student_service")
//!     .version("v1.0.0")
//!     .ttl(std::time::Duration::from_secs(10))
//!     .interval(std::time::Duration::from_secs(5))
//!     .handler(StudentService, routes)
//!     .run()
//!     .await
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::broker::{self, SharedBroker, SubscribeOptions, Subscriber};
use crate::config::{Layer, Options};
use crate::health::{self, Check, Health};
use crate::layer::{
    BoxError, Call, CallService, HandlerService, Layers, Publish, PublisherService,
    SubscriberService,
};
use crate::registry::{self, Endpoint, Metadata, Node, RegisterOptions, SharedRegistry};
use crate::rpc::server::{Server, ServerHandle, ServerOptions};
use crate::rpc::{Bound, Client, ClientOptions, Routes, SubscriptionSpec};
use crate::{Error, Result};

pub(crate) mod free;
mod heartbeat;
mod plugins;

pub use heartbeat::RegistrationState;
pub use plugins::{broker_from, registry_from};

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;
type Binder = Box<dyn FnOnce() -> Bound + Send>;

/// Entry point of the builder API; see [`ServiceBuilder`].
///
/// A started service is a [`Service`]: it knows its registry record, its state, and stops
/// gracefully with [`Service::stop`].
pub struct Service {
    options: Options,
    record: registry::Service,
    address: SocketAddr,
    registry: SharedRegistry,
    broker: SharedBroker,
    client: Client,
    server: Option<ServerHandle>,
    /// The listener of `--health_address`, when set.
    health_server: Option<ServerHandle>,
    subscribers: Vec<Box<dyn Subscriber>>,
    heartbeat: heartbeat::Heartbeat,
    health: Health,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
    grace: Duration,
    /// The typed endpoints in this process's table for local calls, until the service stops.
    local: Option<crate::rpc::local::Registration>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.record.name)
            .field("node", &self.node().id)
            .field("address", &self.address)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Builds and runs a service. Values set here are the "code" layer of the configuration:
/// the environment and flags override them when [`ServiceBuilder::run`] reads them.
pub struct ServiceBuilder {
    code: Layer,
    registry: Option<SharedRegistry>,
    broker: Option<SharedBroker>,
    binders: Vec<Binder>,
    subscriptions: Vec<(SubscriptionSpec, broker::Handler)>,
    before_start: Vec<Hook>,
    after_start: Vec<Hook>,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
    grace: Duration,
    free_subscribers: bool,
    checks: Vec<Check>,
    layers: Layers,
    metrics: bool,
    limits: ServerOptions,
    client_tls: Option<crate::rpc::tls::ClientTls>,
    resolved: Option<Options>,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("code", &self.code)
            .field("handlers", &self.binders.len())
            .field("subscriptions", &self.subscriptions.len())
            .finish_non_exhaustive()
    }
}

/// Whether the unnamed free `#[subscribe]` functions have been claimed by a service of this
/// process: the first service started takes them.
static UNNAMED_CLAIMED: AtomicBool = AtomicBool::new(false);

impl Service {
    /// A builder for service `name`.
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            code: Layer {
                server_name: Some(name.into()),
                ..Layer::default()
            },
            registry: None,
            broker: None,
            binders: Vec::new(),
            subscriptions: Vec::new(),
            before_start: Vec::new(),
            after_start: Vec::new(),
            before_stop: Vec::new(),
            after_stop: Vec::new(),
            grace: Duration::from_secs(10),
            free_subscribers: true,
            checks: Vec::new(),
            layers: Layers::new(),
            metrics: true,
            limits: ServerOptions::default(),
            client_tls: None,
            resolved: None,
        }
    }

    /// The service's registry record (one node: this process).
    pub fn record(&self) -> &registry::Service {
        &self.record
    }

    /// This process's node.
    pub fn node(&self) -> &Node {
        // The record is built with exactly one node.
        &self.record.nodes[0]
    }

    /// The address the RPC server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the health paths and `/metrics` are served: the address `--health_address`
    /// bound, or the server's own.
    pub fn health_address(&self) -> SocketAddr {
        self.health_server
            .as_ref()
            .map_or(self.address, ServerHandle::local_addr)
    }

    /// The merged configuration.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The registry plugin.
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// The broker plugin, for the low-level API: `service.broker().publish(topic, msg, ..)`.
    pub fn broker(&self) -> &SharedBroker {
        &self.broker
    }

    /// A client sharing this service's registry, broker and client options.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The registration state now.
    pub fn state(&self) -> RegistrationState {
        self.heartbeat.state()
    }

    /// The health checks behind `/health`, `/health/live` and `/health/ready` (see
    /// [`crate::health`]).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// A receiver of registration state changes.
    pub fn watch_state(&self) -> watch::Receiver<RegistrationState> {
        self.heartbeat.subscribe()
    }

    /// Waits until the registry has accepted this node at least once.
    pub async fn registered(&self) -> Result<()> {
        let mut rx = self.heartbeat.subscribe();
        loop {
            if matches!(*rx.borrow_and_update(), RegistrationState::Live) {
                return Ok(());
            }
            rx.changed().await.map_err(|_| {
                Error::internal_server_error(&self.record.name, "heartbeat task stopped")
            })?;
        }
    }

    /// Stops gracefully: before-stop hooks, deregister, unsubscribe, drain in-flight requests
    /// (up to the grace period), disconnect the broker, after-stop hooks. Every step runs
    /// even if an earlier one failed; the first error is returned.
    pub async fn stop(mut self) -> Result<()> {
        let name = self.record.name.clone();
        // Not ready from now on: a load balancer stops sending before the node deregisters.
        self.health.set_stopping();
        let mut first: Option<Error> = None;
        let mut keep = |r: Result<()>, what: &str| {
            if let Err(e) = r {
                tracing::error!(service = %name, error = %e, "{what} failed");
                first.get_or_insert(e);
            }
        };
        for hook in std::mem::take(&mut self.before_stop) {
            keep(hook().await, "before-stop hook");
        }
        keep(self.heartbeat.stop().await, "deregistration");
        for sub in self.subscribers.drain(..) {
            keep(sub.unsubscribe().await, "unsubscribe");
        }
        if let Some(server) = self.server.take() {
            let aborted = server.shutdown(self.grace).await;
            if aborted > 0 {
                tracing::warn!(service = %name, aborted, grace = ?self.grace, "requests still running after the grace period were aborted");
            }
        }
        // Calls from this process go over the network (and find nothing) from now on.
        self.local = None;
        // Probes are answered (503) until the service has stopped serving.
        if let Some(health_server) = self.health_server.take() {
            health_server.shutdown(Duration::from_secs(1)).await;
        }
        keep(self.broker.disconnect().await, "broker disconnect");
        #[cfg(feature = "otel")]
        crate::otel::flush().await;
        for hook in std::mem::take(&mut self.after_stop) {
            keep(hook().await, "after-stop hook");
        }
        tracing::info!(service = %name, "stopped");
        first.map_or(Ok(()), Err)
    }
}

fn hook<F, Fut>(f: F) -> Hook
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Box::new(move || Box::pin(f()))
}

impl ServiceBuilder {
    /// `--server_version`.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.code.server_version = Some(version.into());
        self
    }

    /// `--registry`: `mdns` (default), `memory`, `consul`, `etcd`.
    #[must_use]
    pub fn registry(mut self, name: impl Into<String>) -> Self {
        self.code.registry = Some(name.into());
        self
    }

    /// `--registry_address`.
    #[must_use]
    pub fn registry_address(mut self, address: impl Into<String>) -> Self {
        self.code.registry_address = Some(address.into());
        self
    }

    /// `--broker`: `http` (default), `memory`, `mqtt`, `nats`, `rabbitmq`, `redis`.
    #[must_use]
    pub fn broker(mut self, name: impl Into<String>) -> Self {
        self.code.broker = Some(name.into());
        self
    }

    /// `--broker_address`.
    #[must_use]
    pub fn broker_address(mut self, address: impl Into<String>) -> Self {
        self.code.broker_address = Some(address.into());
        self
    }

    /// `--server`: `mucp` (default) or `grpc` (go-micro's grpc protocol beside mucp, see
    /// [`crate::rpc::grpc`]).
    #[must_use]
    pub fn server(mut self, protocol: impl Into<String>) -> Self {
        self.code.server = Some(protocol.into());
        self
    }

    /// `--server_address`: where the RPC server binds (default `127.0.0.1:0`).
    #[must_use]
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.code.server_address = Some(address.into());
        self
    }

    /// `--health_address`: serve the health paths and `/metrics` on a listener of their own
    /// at `address` (such as `0.0.0.0:9090`) instead of beside mucp on the server's address.
    #[must_use]
    pub fn health_address(mut self, address: impl Into<String>) -> Self {
        self.code.health_address = Some(address.into());
        self
    }

    /// `--server_advertise`: the address put in the registry.
    #[must_use]
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.code.server_advertise = Some(address.into());
        self
    }

    /// `--server_id`: the node id (default `<name>-<uuid>`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.code.server_id = Some(id.into());
        self
    }

    /// `--register_ttl`.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.code.register_ttl = Some(ttl);
        self
    }

    /// `--register_interval`.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.code.register_interval = Some(interval);
        self
    }

    /// One `--server_metadata` pair.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.code.server_metadata.insert(key.into(), value.into());
        self
    }

    /// Overlays a whole configuration layer (as code).
    #[must_use]
    pub fn options(mut self, layer: &Layer) -> Self {
        self.code = self.code.overlay(layer);
        self
    }

    /// Uses this registry instance instead of building one from `--registry`.
    #[must_use]
    pub fn with_registry(mut self, registry: SharedRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Uses this broker instance instead of building one from `--broker`.
    #[must_use]
    pub fn with_broker(mut self, broker: SharedBroker) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Serves `value`'s routes (what `#[handlers]` generates).
    #[must_use]
    pub fn handler<S: Send + Sync + 'static>(mut self, value: S, routes: Routes<S>) -> Self {
        self.binders
            .push(Box::new(move || routes.bind(Arc::new(value))));
        self
    }

    /// Subscribes a raw broker handler, go-micro's `broker.Subscribe`.
    #[must_use]
    pub fn subscribe(self, topic: &str, queue: Option<&str>, handler: broker::Handler) -> Self {
        self.subscription(SubscriptionSpec::new(topic, queue), handler)
    }

    /// Subscribes a raw broker handler as `spec` says, with its redelivery policy if any:
    /// `SubscriptionSpec::new("t", None).redelivery(Redelivery::new(5).dead_letter("t.dead"))`.
    #[must_use]
    pub fn subscription(mut self, spec: SubscriptionSpec, handler: broker::Handler) -> Self {
        self.subscriptions.push((spec, handler));
        self
    }

    /// Whether free `#[subscribe]` functions of this binary are wired in (default: yes).
    #[must_use]
    pub fn free_subscribers(mut self, on: bool) -> Self {
        self.free_subscribers = on;
        self
    }

    /// Sets the RPC server's limits: `max_body_bytes`, `header_read_timeout` and
    /// `max_connections` of `limits` (its `name` and `metrics` are the service's own).
    /// The defaults are [`ServerOptions::default`]'s: 4 MiB, 30 s, 10,000.
    #[must_use]
    pub fn server_limits(mut self, limits: ServerOptions) -> Self {
        self.limits = limits;
        self
    }

    /// Serves RPC over TLS (mutual TLS when `tls` has a client CA) and registers the node
    /// with go-micro's `secure=true`; without it, `MICRO_TLS_CERT`/`MICRO_TLS_KEY` (and
    /// `MICRO_TLS_CLIENT_CA`) turn TLS on. See [`crate::rpc::tls`].
    #[must_use]
    pub fn tls(mut self, tls: crate::rpc::tls::ServerTls) -> Self {
        self.limits.tls = Some(tls);
        self
    }

    /// Calls other services over TLS with `tls` (the service's client); without it,
    /// `MICRO_TLS_CA` (and `MICRO_TLS_CLIENT_CERT`/`MICRO_TLS_CLIENT_KEY`) turn it on.
    #[must_use]
    pub fn client_tls(mut self, tls: crate::rpc::tls::ClientTls) -> Self {
        self.client_tls = Some(tls);
        self
    }

    /// Adds a health check to `/health` and `/health/ready` (a critical one gates
    /// readiness); see [`crate::health`].
    #[must_use]
    pub fn health_check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Adds a layer around every call to the service's endpoints (go-micro's
    /// `WrapHandler`); the first added is the outermost. See [`crate::layer`].
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<HandlerService> + Send + Sync + 'static,
        L::Service: tower::Service<crate::rpc::Request, Response = crate::rpc::Response>
            + Clone
            + Send
            + 'static,
        <L::Service as tower::Service<crate::rpc::Request>>::Error: Into<BoxError>,
        <L::Service as tower::Service<crate::rpc::Request>>::Future: Send + 'static,
    {
        self.layers = self.layers.handler(layer);
        self
    }

    /// Adds a layer around every call the service's client makes (go-micro's `WrapCall`).
    #[must_use]
    pub fn call_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<CallService> + Send + Sync + 'static,
        L::Service:
            tower::Service<Call, Response = (String, bytes::Bytes)> + Clone + Send + 'static,
        <L::Service as tower::Service<Call>>::Error: Into<BoxError>,
        <L::Service as tower::Service<Call>>::Future: Send + 'static,
    {
        self.layers = self.layers.call(layer);
        self
    }

    /// Adds a layer around every delivery to the service's subscribers (go-micro's
    /// `WrapSubscriber`).
    #[must_use]
    pub fn subscriber_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<SubscriberService> + Send + Sync + 'static,
        L::Service: tower::Service<broker::Event, Response = ()> + Clone + Send + 'static,
        <L::Service as tower::Service<broker::Event>>::Error: Into<BoxError>,
        <L::Service as tower::Service<broker::Event>>::Future: Send + 'static,
    {
        self.layers = self.layers.subscriber(layer);
        self
    }

    /// Adds a layer around every publish through the service's client (go-micro's client
    /// wrapper overriding `Publish`).
    #[must_use]
    pub fn publisher_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<PublisherService> + Send + Sync + 'static,
        L::Service: tower::Service<Publish, Response = ()> + Clone + Send + 'static,
        <L::Service as tower::Service<Publish>>::Error: Into<BoxError>,
        <L::Service as tower::Service<Publish>>::Future: Send + 'static,
    {
        self.layers = self.layers.publisher(layer);
        self
    }

    /// Adds every layer of `layers` (inside those added before).
    #[must_use]
    pub fn layers(mut self, layers: &Layers) -> Self {
        self.layers = self.layers.then(layers);
        self
    }

    /// Whether the service and its client count in the process's metrics (default: yes; see
    /// [`crate::metrics`]). `/metrics` is served either way.
    #[must_use]
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// How long in-flight requests may run on at shutdown (default 10 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Runs before the server listens.
    #[must_use]
    pub fn before_start<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.before_start.push(hook(f));
        self
    }

    /// Runs once the service is registered and subscribed.
    #[must_use]
    pub fn after_start<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.after_start.push(hook(f));
        self
    }

    /// Runs first on stop, before deregistration.
    #[must_use]
    pub fn before_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.before_stop.push(hook(f));
        self
    }

    /// Runs last on stop.
    #[must_use]
    pub fn after_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.after_stop.push(hook(f));
        self
    }

    /// The code layer: what `--help` shows as defaults.
    pub fn code(&self) -> &Layer {
        &self.code
    }

    /// Reads the environment and the process's flags over the code's values: prints help and
    /// exits 0 on `--help`, prints the error and exits 2 on a bad value. [`ServiceBuilder::run`]
    /// does this itself; call it before [`ServiceBuilder::start`] to start a service that
    /// honours the flags without waiting for a signal.
    #[must_use]
    pub fn configure_from_process(mut self) -> Self {
        self.resolved = Some(Options::from_process(&self.code));
        self
    }

    /// Reads the environment and the process's flags (see
    /// [`ServiceBuilder::configure_from_process`]), starts, waits for SIGINT or SIGTERM, and
    /// stops gracefully.
    pub async fn run(self) -> Result<()> {
        let this = if self.resolved.is_some() {
            self
        } else {
            self.configure_from_process()
        };
        let service = this.start().await?;
        wait_for_signal().await;
        tracing::info!(service = %service.record.name, "signal received, stopping");
        service.stop().await
    }

    /// Starts: with the options read by [`ServiceBuilder::configure_from_process`] if it was
    /// called, else with the code's values over the framework defaults only (no environment,
    /// no flags), which is what tests want.
    pub async fn start(mut self) -> Result<Service> {
        let options = match self.resolved.take() {
            Some(options) => options,
            None => Options::resolve(&self.code, |_| None, ["rmicro"]).map_err(|e| {
                Error::bad_request("go.micro.server", format!("invalid configuration: {e}"))
            })?,
        };
        self.start_with(options).await
    }

    /// Starts with already merged options.
    pub async fn start_with(mut self, options: Options) -> Result<Service> {
        let name = options.server_name.clone();
        if name.is_empty() {
            return Err(Error::bad_request(
                "go.micro.server",
                "a service needs a name: `Service::builder(\"name\")` or `--server_name`",
            ));
        }
        for hook in std::mem::take(&mut self.before_start) {
            hook().await?;
        }

        // TLS, from the builder or the environment.
        if self.limits.tls.is_none() {
            self.limits.tls = crate::rpc::tls::ServerTls::from_env()?;
        }
        if self.client_tls.is_none() {
            self.client_tls = crate::rpc::tls::ClientTls::from_env()?;
        }

        // Listen.
        let server = Server::bind(options.bind_address()).await?;
        let address = server.local_addr();
        let health_server = match options.health_bind_address() {
            Some(at) => Some(Server::bind(at).await?),
            None => None,
        };

        // Plugins.
        let registry = match self.registry.take() {
            Some(r) => r,
            None => registry_from(&options, address.ip())?,
        };
        let broker = match self.broker.take() {
            Some(b) => b,
            None => broker_from(&options, &registry)?,
        };
        broker.connect().await?;

        // Routes.
        let mut endpoints = Vec::new();
        let mut streams = Vec::new();
        let mut local = std::collections::HashMap::new();
        let mut subscriptions = std::mem::take(&mut self.subscriptions);
        for bind in self.binders.drain(..) {
            let bound = bind();
            endpoints.extend(bound.endpoints);
            streams.extend(bound.streams);
            local.extend(bound.local);
            subscriptions.extend(bound.subscriptions);
        }
        if self.free_subscribers {
            subscriptions.extend(claim_free_subscribers(&name));
        }
        let advertised: Vec<Endpoint> = endpoints
            .iter()
            .map(|(e, _)| e.clone())
            .chain(streams.iter().map(|(e, _)| e.clone()))
            .collect();
        check_endpoint_collisions(&name, &advertised)?;

        // The registry record.
        let record = self.record(
            &options,
            &registry,
            &broker,
            address,
            advertised,
            &subscriptions,
        );

        // Traces, when the OTEL_* variables ask for them: the outermost layers.
        #[cfg(feature = "otel")]
        if let Some(tracing) = crate::otel::layers(&name) {
            self.layers = tracing.then(&self.layers);
        }

        // Health: the service's own checks, then the user's. Not ready until subscribed and
        // registered.
        let health = Health::new();
        for (k, v) in [
            ("service", name.as_str()),
            ("version", options.server_version.as_str()),
            ("node", record.nodes[0].id.as_str()),
            ("rmicro_version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ] {
            health.set_info(k, v);
        }
        let (registration_tx, registration) =
            watch::channel(heartbeat::RegistrationState::Registering);
        let last_live = heartbeat::LastLive::default();
        health.add(health::server_check(&health));
        health.add(health::registry_check(
            registration.clone(),
            Arc::clone(&last_live),
            options.register_ttl,
        ));
        health.add(health::broker_check(Arc::clone(&broker)));
        for check in std::mem::take(&mut self.checks) {
            health.add(check);
        }
        endpoints.push(debug_health(&name, health.clone()));

        // Serve: the health paths and /metrics beside mucp, or on their own listener.
        let web = health::web_routes(health.clone());
        let (web, health_server) = match health_server {
            None => (Some(web), None),
            Some(listener) => {
                let at = listener.local_addr();
                tracing::info!(service = %name, address = %at, "health and metrics on their own address");
                let only_web = listener.serve_with(
                    Vec::new(),
                    Vec::new(),
                    ServerOptions {
                        name: name.clone(),
                        metrics: false,
                        ..ServerOptions::default()
                    },
                    Some(health::web_only(web)),
                    &crate::layer::Layers::new(),
                );
                (None, Some(only_web))
            }
        };
        let server = server.serve_with(
            endpoints,
            streams,
            ServerOptions {
                name: name.clone(),
                metrics: self.metrics,
                grpc: self.limits.grpc || options.server == crate::rpc::grpc::PROTOCOL,
                ..self.limits.clone()
            },
            web,
            &self.layers,
        );

        // Subscribe.
        let id: Arc<str> = Arc::from(name.as_str());
        let mut subscribers = Vec::with_capacity(subscriptions.len());
        for (spec, handler) in subscriptions {
            let opts = match &spec.queue {
                Some(q) => SubscribeOptions::queue(q.clone()),
                None => SubscribeOptions::default(),
            };
            let mut handler = self.layers.subscriber_handler(handler, &id);
            if let Some(policy) = &spec.redelivery {
                handler = policy.wrap(handler, Arc::clone(&broker));
            }
            subscribers.push(broker.subscribe(&spec.topic, handler, opts).await?);
        }

        // Register, then keep re-registering.
        let heartbeat = heartbeat::Heartbeat::start(
            Arc::clone(&registry),
            record.clone(),
            options.register_ttl,
            options.register_interval,
            registration_tx,
            last_live,
        );
        drop(registration);
        health.set_serving();

        let client = Client::new(
            Arc::clone(&registry),
            ClientOptions {
                retries: options.client_retries,
                request_timeout: options.client_request_timeout,
                strategy: options.selector,
                content_type: (!options.client_content_type.is_empty())
                    .then(|| options.client_content_type.clone()),
                metrics: self.metrics,
                tls: self.client_tls.clone(),
                ..ClientOptions::default()
            },
        )
        .with_broker(Arc::clone(&broker))
        .with_layers(&self.layers);

        tracing::info!(
            service = %name,
            node = %record.nodes[0].id,
            %address,
            registry = registry.name(),
            broker = broker.name(),
            broker_address = %broker.address(),
            "started"
        );
        let service = Service {
            options,
            record,
            address,
            registry,
            broker,
            client,
            server: Some(server),
            health_server,
            subscribers,
            heartbeat,
            health,
            before_stop: std::mem::take(&mut self.before_stop),
            after_stop: std::mem::take(&mut self.after_stop),
            grace: self.grace,
            local: Some(crate::rpc::local::register(&name, local)),
        };
        for hook in std::mem::take(&mut self.after_start) {
            hook().await?;
        }
        Ok(service)
    }

    fn record(
        &self,
        options: &Options,
        registry: &SharedRegistry,
        broker: &SharedBroker,
        address: SocketAddr,
        endpoints: Vec<Endpoint>,
        subscriptions: &[(SubscriptionSpec, broker::Handler)],
    ) -> registry::Service {
        let name = &options.server_name;
        let id = if options.server_id.is_empty() {
            format!("{name}-{}", crate::id::uuid())
        } else {
            options.server_id.clone()
        };
        let advertised = if options.server_advertise.is_empty() {
            advertise(address)
        } else {
            options.server_advertise.clone()
        };
        let mut metadata = Metadata::new();
        // go-micro's grpc server writes `grpc` for all three.
        let (transport, server) = if options.server == crate::rpc::grpc::PROTOCOL {
            ("grpc", "grpc")
        } else {
            ("http", "mucp")
        };
        for (k, v) in [
            ("transport", transport),
            ("broker", broker.name()),
            ("server", server),
            ("registry", registry.name()),
            ("protocol", server),
        ] {
            metadata.insert(k.to_owned(), v.to_owned());
        }
        if self.limits.tls.is_some() {
            metadata.insert(
                crate::rpc::tls::SECURE_METADATA.to_owned(),
                "true".to_owned(),
            );
        }
        // When the node started (Unix seconds), for tools that show a node's age (`rmicro
        // describe`); go-micro's nodes have no such key.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        metadata.insert("registered".to_owned(), started.to_string());
        metadata.extend(options.server_metadata.clone());
        let mut advertised_endpoints = endpoints;
        for (spec, _) in subscriptions {
            let mut md = Metadata::new();
            md.insert("topic".to_owned(), spec.topic.clone());
            md.insert("subscriber".to_owned(), "true".to_owned());
            if let Some(q) = &spec.queue {
                md.insert("queue".to_owned(), q.clone());
            }
            advertised_endpoints.push(Endpoint {
                name: format!("Subscriber.{}", spec.topic),
                request: None,
                response: None,
                metadata: md,
            });
        }
        registry::Service {
            name: name.clone(),
            version: options.server_version.clone(),
            metadata: Metadata::new(),
            endpoints: advertised_endpoints,
            nodes: vec![Node {
                id,
                address: advertised,
                metadata,
            }],
        }
    }
}

/// go-micro's `Debug.Health` (its `debug` handler's): `{"status":"ok"}` while the service is
/// ready, `{"status":"down"}` otherwise, in JSON or protobuf (`HealthResponse{status = 1}`).
/// Served, not advertised: go-micro registers it only on request, and does not list it.
fn debug_health(service: &str, health: Health) -> (Endpoint, crate::rpc::EndpointFn) {
    #[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
    struct HealthResponse {
        #[prost(string, tag = "1")]
        status: String,
    }
    let id = service.to_owned();
    let call: crate::rpc::EndpointFn = Arc::new(move |req: crate::rpc::Request| {
        let health = health.clone();
        let id = id.clone();
        Box::pin(async move {
            let report = health.report().await;
            let status = match report.status {
                health::Status::Up => "ok",
                health::Status::Down => "down",
            };
            let rsp = HealthResponse {
                status: status.to_owned(),
            };
            let body = if req.accept == crate::codec::PROTOBUF {
                prost::Message::encode_to_vec(&rsp)
            } else {
                serde_json::to_vec(&rsp)
                    .map_err(|e| Error::internal_server_error(&id, format!("Debug.Health: {e}")))?
            };
            Ok(crate::rpc::Response {
                content_type: if req.accept == crate::codec::PROTOBUF {
                    req.accept
                } else {
                    crate::codec::JSON.to_owned()
                },
                body: bytes::Bytes::from(body),
            })
        })
    });
    let endpoint = Endpoint {
        name: "Debug.Health".to_owned(),
        request: None,
        response: None,
        metadata: Metadata::new(),
    };
    (endpoint, call)
}

/// The address to advertise for a bound socket: a wildcard bind advertises loopback (set
/// `--server_advertise` to publish a routable address).
fn advertise(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port()).to_string()
}

fn check_endpoint_collisions(service: &str, endpoints: &[Endpoint]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for ep in endpoints {
        if !seen.insert(ep.name.as_str()) {
            return Err(Error::conflict(
                service,
                format!("endpoint `{}` is served by two handlers", ep.name),
            ));
        }
    }
    Ok(())
}

fn claim_free_subscribers(service: &str) -> Vec<(SubscriptionSpec, broker::Handler)> {
    let unnamed = !UNNAMED_CLAIMED.swap(true, Ordering::SeqCst);
    free::free_subscribers()
        .filter(|s| match s.service {
            Some(owner) => owner == service,
            None => unnamed,
        })
        .map(|s| {
            tracing::debug!(
                service,
                topic = s.topic,
                function = s.name,
                "wiring free subscriber"
            );
            let f = s.handler;
            let handler: broker::Handler = Arc::new(move |event| f(event));
            let mut spec = SubscriptionSpec::new(s.topic, s.queue);
            spec.redelivery = s.redelivery.map(|policy| policy());
            (spec, handler)
        })
        .collect()
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Installs a `tracing` subscriber on stderr, unless one is set: the level from `RUST_LOG`,
/// else `--log_level`/`MICRO_LOG_LEVEL` (default `info`); text, or JSON with
/// `--log_format=json`/`MICRO_LOG_FORMAT=json` (one object per line, the spans of the call
/// it belongs to included, so a call's request id is on each of its lines).
pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let args: Vec<String> = std::env::args().collect();
    let (format, level) = crate::config::log_settings(&args, |k| std::env::var(k).ok());
    let level = if crate::config::LOG_LEVELS.contains(&level.as_str()) {
        level
    } else {
        // The bad value is reported when the options are read; log at info meanwhile.
        "info".to_owned()
    };
    // RUST_LOG when set (an empty one counts as unset).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if format == "json" {
        builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

/// Installs ring as rustls's process-wide crypto provider, unless one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Registration options used by the heartbeat.
pub(crate) fn register_options(ttl: Duration) -> RegisterOptions {
    RegisterOptions::ttl(ttl)
}
