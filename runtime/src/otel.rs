//! OpenTelemetry traces (feature `otel`): a span for every endpoint call, client call, publish
//! and delivery, with W3C trace context (`traceparent`, `tracestate`) carried in the RPC
//! metadata and in broker message headers, exported over OTLP/HTTP (protobuf).
//!
//! On only when the standard variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (or `OTEL_TRACES_EXPORTER=otlp`), and neither
//! `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns it off. Off, no layer is
//! installed and nothing is done per call. The exporter reads the other `OTEL_EXPORTER_OTLP_*`
//! variables (headers, timeout), the SDK `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`
//! (default: parent-based, always on) and `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES`
//! (the service's name when unset).
//!
//! The spans are the ones go-micro v5's `wrapper/trace/opentelemetry` makes, so that a trace
//! runs through Go and Rust services alike: `<service>.<endpoint>` for a served call (kind
//! server) and for a client call (kind client), `Pub to <topic>` (producer) and
//! `Sub from <topic>` (consumer). Context goes out as go-micro writes it, `Traceparent` and
//! `Tracestate`, and is read whatever the header's case. A span whose call fails has status
//! error with the error's detail.
//!
//! They are tower layers (see [`crate::layer`]), outermost, so that they also time the
//! program's own layers.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    FutureExt as _, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tower::ServiceExt as _;
use tower::layer::layer_fn;

use crate::layer::{
    Call, CallService, HandlerService, Layers, Publish, PublisherService, SubscriberService,
};
use crate::registry::Metadata;
use crate::{Error, broker, rpc};

/// The process's tracing, once it is set up.
static TRACING: OnceLock<Option<Tracing>> = OnceLock::new();

/// The tracer provider and the tracer rmicro's layers use.
#[derive(Clone)]
struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tracing")
    }
}

/// Whether the environment asks for traces.
pub fn enabled_by_env(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter = var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase());
    if disabled || exporter.as_deref() == Some("none") {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        || exporter.as_deref() == Some("otlp")
}

/// Sets tracing up from the environment, once per process (the first caller's `service`
/// names the resource when `OTEL_SERVICE_NAME` does not). Must run on a tokio runtime, which
/// the exports then run on. `None` when the environment does not ask for traces or the
/// exporter cannot be built (logged).
fn tracing(service: &str) -> Option<&'static Tracing> {
    TRACING
        .get_or_init(|| {
            let env = |k: &str| std::env::var(k).ok();
            if !enabled_by_env(env) {
                return None;
            }
            let exporter = match opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
            {
                Ok(exporter) => exporter,
                Err(e) => {
                    tracing::warn!(error = %e, "otel: cannot build the OTLP exporter; no traces");
                    return None;
                }
            };
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!("otel: not on a tokio runtime; no traces");
                return None;
            };
            let mut resource = opentelemetry_sdk::Resource::builder();
            if env("OTEL_SERVICE_NAME").is_none_or(|v| v.trim().is_empty()) {
                resource = resource.with_service_name(service.to_owned());
            }
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(OnTokio {
                    inner: Arc::new(exporter),
                    runtime,
                })
                .with_resource(resource.build())
                .build();
            let tracer = provider.tracer("rmicro");
            tracing::info!(service, "otel: exporting traces over OTLP");
            Some(Tracing { provider, tracer })
        })
        .as_ref()
}

/// Exports every span still buffered (at a graceful stop, at the end of `#[rmicro::main]`).
/// The SDK's flush blocks its caller until the exports, which run on this runtime, are done:
/// it runs on a thread of its own while this task waits, so a one-thread runtime goes on.
pub(crate) async fn flush() {
    let Some(Some(t)) = TRACING.get() else {
        return;
    };
    let provider = t.provider.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(provider.force_flush());
    });
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "otel: cannot flush the spans"),
        _ => tracing::warn!("otel: flushing the spans took longer than 10 s"),
    }
}

/// The layers that make the spans, when the environment asks for traces; `None` otherwise.
pub(crate) fn layers(service: &str) -> Option<Layers> {
    tracing(service).map(|t| layers_with(&t.tracer))
}

/// Runs `work` in a span named `name` (kind internal, the child of the current context), so
/// that the calls and publishes it makes are the span's children: one trace for a piece of
/// work that calls several services. Without traces (no `OTEL_*` variables, or before a
/// service or a client has set them up), runs `work` as it is.
///
/// ```no_run
/// # async fn run(client: rmicro::Client) -> rmicro::Result<()> {
/// rmicro::otel::in_span("enrol davie", async {
///     let student: serde_json::Value = client
///         .call("student_service", "StudentService.GetStudent", &serde_json::json!({"name": "davie"}))
///         .await?;
///     client.publisher("go.micro.srv.message")?.publish(&student).await
/// })
/// .await
/// # }
/// ```
pub async fn in_span<T>(
    name: impl Into<std::borrow::Cow<'static, str>>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let Some(Some(t)) = TRACING.get() else {
        return work.await;
    };
    let parent = Context::current();
    let span = t
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .start_with_context(&t.tracer, &parent);
    let cx = parent.with_span(span);
    let output = work.with_context(cx.clone()).await;
    cx.span().end();
    output
}

/// The four tracing layers over a tracer of the program's own (its provider, sampler and
/// exporter), for a program that sets OpenTelemetry up itself: add them with
/// [`ServiceBuilder::layers`](crate::ServiceBuilder::layers) and
/// [`Client::with_layers`](crate::Client::with_layers).
pub fn layers_with(tracer: &SdkTracer) -> Layers {
    Layers::new()
        .handler(handler_layer(tracer.clone()))
        .call(call_layer(tracer.clone()))
        .subscriber(subscriber_layer(tracer.clone()))
        .publisher(publisher_layer(tracer.clone()))
}

/// Runs the OTLP exporter's futures on a tokio runtime: the SDK's batch processor exports
/// from a thread of its own with a plain executor, and the HTTP client needs tokio's.
#[derive(Debug)]
struct OnTokio<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

/// How often a failing export is logged: the first failure, then at most once a minute.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// When a failed export was last logged, as milliseconds since the process's first export
/// failure, plus one (0: never).
static LAST_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs a failed export, rate-limited (a collector that is down fails every batch).
fn warn_export_failed(e: &dyn fmt::Display, spans: usize) {
    use std::sync::atomic::Ordering;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let now = u64::try_from(
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
    .saturating_add(1);
    let last = LAST_WARNING.load(Ordering::Relaxed);
    let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
    if (last == 0 || now.saturating_sub(last) >= every)
        && LAST_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            error = %e,
            spans,
            "otel: cannot export spans; they are dropped (calls are not slowed; this is logged at most once a minute)"
        );
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnTokio<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let spans = batch.len();
        let export = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            let result = export.await.unwrap_or_else(|e| {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    e.to_string(),
                ))
            });
            if let Err(e) = &result {
                warn_export_failed(e, spans);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// Reads trace context from headers whatever their case (go-micro writes `Traceparent`).
struct Headers<'a>(&'a Metadata);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .or_else(|| {
                self.0
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes trace context as go-micro does: `Traceparent`, `Tracestate` (title case), over
/// any case of the same header already there.
struct HeadersMut<'a>(&'a mut Metadata);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        let title = title_case(key);
        self.0.retain(|k, _| !k.eq_ignore_ascii_case(key));
        self.0.insert(title, value);
    }
}

/// `traceparent` -> `Traceparent`, as go-micro's `strings.Title`.
fn title_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = true;
    for c in key.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

fn extract(headers: &Metadata) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

fn inject(cx: &Context, headers: &mut Metadata) {
    TraceContextPropagator::new().inject_context(cx, &mut HeadersMut(headers));
}

/// Runs `call` in `cx` (so that what it calls and publishes is the span's child), then ends
/// the span with the outcome: status error with the error's detail and code when it failed.
fn traced<T: Send + 'static>(
    cx: Context,
    call: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> futures::future::BoxFuture<'static, Result<T, Error>> {
    async move {
        let result = call.with_context(cx.clone()).await;
        let span = cx.span();
        if let Err(e) = &result {
            span.set_status(Status::error(e.detail.clone()));
            span.set_attribute(KeyValue::new("rpc.error_code", i64::from(e.code)));
        }
        span.end();
        result
    }
    .boxed()
}

/// A call's attributes, set only on a span that records (a sampled-out span is spared the
/// copies; go-micro's wrapper gives the sampler no attributes either).
fn rpc_attributes(service: &str, endpoint: &str) -> [KeyValue; 3] {
    [
        KeyValue::new("rpc.system", "go-micro"),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", endpoint.to_owned()),
    ]
}

fn handler_layer(
    tracer: SdkTracer,
) -> impl tower::Layer<HandlerService, Service = HandlerService> + Clone {
    layer_fn(move |inner: HandlerService| {
        let tracer = tracer.clone();
        HandlerService::new(tower::service_fn(move |req: rpc::Request| {
            let parent = extract(&req.header);
            let mut span = tracer
                .span_builder(format!("{}.{}", req.service, req.endpoint))
                .with_kind(SpanKind::Server)
                .start_with_context(&tracer, &parent);
            if span.is_recording() {
                span.set_attributes(rpc_attributes(&req.service, &req.endpoint));
            }
            let cx = parent.with_span(span);
            traced(cx, inner.clone().oneshot(req))
        }))
    })
}

fn call_layer(tracer: SdkTracer) -> impl tower::Layer<CallService, Service = CallService> + Clone {
    layer_fn(move |inner: CallService| {
        let tracer = tracer.clone();
        CallService::new(tower::service_fn(move |mut call: Call| {
            let parent = Context::current();
            let mut span = tracer
                .span_builder(format!("{}.{}", call.service, call.endpoint))
                .with_kind(SpanKind::Client)
                .start_with_context(&tracer, &parent);
            if span.is_recording() {
                span.set_attributes(rpc_attributes(&call.service, &call.endpoint));
            }
            let cx = parent.with_span(span);
            inject(&cx, &mut call.options.metadata);
            traced(cx, inner.clone().oneshot(call))
        }))
    })
}

fn publisher_layer(
    tracer: SdkTracer,
) -> impl tower::Layer<PublisherService, Service = PublisherService> + Clone {
    layer_fn(move |inner: PublisherService| {
        let tracer = tracer.clone();
        PublisherService::new(tower::service_fn(move |mut publish: Publish| {
            let parent = Context::current();
            let mut span = tracer
                .span_builder(format!("Pub to {}", publish.topic))
                .with_kind(SpanKind::Producer)
                .start_with_context(&tracer, &parent);
            if span.is_recording() {
                span.set_attributes([
                    KeyValue::new("messaging.destination.name", publish.topic.clone()),
                    KeyValue::new("messaging.operation.type", "send"),
                ]);
            }
            let cx = parent.with_span(span);
            inject(&cx, &mut publish.message.header);
            traced(cx, inner.clone().oneshot(publish))
        }))
    })
}

fn subscriber_layer(
    tracer: SdkTracer,
) -> impl tower::Layer<SubscriberService, Service = SubscriberService> + Clone {
    layer_fn(move |inner: SubscriberService| {
        let tracer = tracer.clone();
        SubscriberService::new(tower::service_fn(move |event: broker::Event| {
            let parent = extract(&event.message().header);
            let mut span = tracer
                .span_builder(format!("Sub from {}", event.topic()))
                .with_kind(SpanKind::Consumer)
                .start_with_context(&tracer, &parent);
            if span.is_recording() {
                span.set_attributes([
                    KeyValue::new("messaging.destination.name", event.topic().to_owned()),
                    KeyValue::new("messaging.operation.type", "process"),
                ]);
            }
            let cx = parent.with_span(span);
            traced(cx, inner.clone().oneshot(event))
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_turns_it_on_and_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!enabled_by_env(env(&[])));
        assert!(enabled_by_env(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(enabled_by_env(env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!enabled_by_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ])));
        assert!(!enabled_by_env(env(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318"
            ),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }

    #[test]
    fn context_travels_as_go_micro_writes_it() {
        let mut headers = Metadata::new();
        headers.insert(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        );
        let cx = extract(&headers);
        let remote = cx.span().span_context().clone();
        assert_eq!(
            remote.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut out = Metadata::new();
        out.insert("TRACEPARENT".to_owned(), "stale".to_owned());
        inject(&cx, &mut out);
        assert_eq!(
            out.get("Traceparent").map(String::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            "title case, the stale one replaced: {out:?}"
        );
        assert!(!out.contains_key("TRACEPARENT"));
        assert_eq!(title_case("tracestate"), "Tracestate");
    }
}
