//! Middleware (`rmicro::layer`): tower layers around a service's endpoint calls, its client's
//! calls, its subscribers and its publishes, on the in-memory plugins. An auth layer refusing
//! calls with go-micro's 401, tower's own limit, load-shed, rate-limit and timeout layers,
//! and the order layers run in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmicro::broker::memory::MemoryBroker;
use rmicro::layer::{CallService, HandlerService, PublisherService, SubscriberService};
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::CallOptions;
use rmicro::{Error, Routes, Service, ServiceBuilder, rpc};
use tokio::sync::mpsc;
use tower::ServiceExt as _;
use tower::layer::layer_fn;

struct Echo;

/// `Echo.Ping` returns its number; `Echo.Slow` sleeps 300 ms first.
fn routes() -> Routes<Echo> {
    Routes::new()
        .endpoint(
            "Echo.Ping",
            Default::default(),
            Default::default(),
            |_: Arc<Echo>, n: u32| async move { Ok(n) },
        )
        .endpoint(
            "Echo.Slow",
            Default::default(),
            Default::default(),
            |_: Arc<Echo>, n: u32| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(n)
            },
        )
}

fn builder(name: &str) -> ServiceBuilder {
    Service::builder(name)
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes())
}

/// Starts and waits until registered, so the client finds it.
trait Up {
    async fn up(self) -> Service;
}

impl Up for ServiceBuilder {
    async fn up(self) -> Service {
        let service = self.start().await.expect("start");
        service.registered().await.expect("registered");
        service
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Refuses calls without `Authorization: Bearer <token>` with go-micro's 401.
fn require_token(
    token: &'static str,
) -> impl tower::Layer<HandlerService, Service = HandlerService> + Clone {
    layer_fn(move |inner: HandlerService| {
        let want = format!("Bearer {token}");
        HandlerService::new(tower::service_fn(move |req: rpc::Request| {
            let allowed = req.header.get("Authorization") == Some(&want);
            let inner = inner.clone();
            async move {
                if !allowed {
                    return Err(Error::unauthorized(
                        &req.service,
                        "missing authorization token",
                    ));
                }
                inner.oneshot(req).await
            }
        }))
    })
}

/// Records `label` in `log` on the way in, for the order of layers.
fn record(
    label: &'static str,
    log: &Arc<Mutex<Vec<&'static str>>>,
) -> impl tower::Layer<HandlerService, Service = HandlerService> + Clone + use<> {
    let log = Arc::clone(log);
    layer_fn(move |inner: HandlerService| {
        let log = Arc::clone(&log);
        HandlerService::new(tower::service_fn(move |req: rpc::Request| {
            log.lock().expect("log").push(label);
            inner.clone().oneshot(req)
        }))
    })
}

fn with_token(token: &str) -> CallOptions {
    let mut opts = CallOptions::default();
    opts.metadata
        .insert("Authorization".to_owned(), format!("Bearer {token}"));
    opts
}

#[tokio::test]
async fn an_auth_layer_refuses_calls_without_the_token_with_go_micro_s_401() {
    let name = unique("auth");
    let service = builder(&name).layer(require_token("s3cret")).up().await;
    let client = service.client();
    let e = client
        .call::<_, u32>(&name, "Echo.Ping", &1u32)
        .await
        .expect_err("no token");
    assert_eq!(
        e.to_json(),
        format!(
            r#"{{"id":"{name}","code":401,"detail":"missing authorization token","status":"Unauthorized"}}"#
        )
    );
    let e = client
        .call_with::<_, u32>(&name, "Echo.Ping", &1u32, with_token("wrong"))
        .await
        .expect_err("wrong token");
    assert_eq!(e.code, 401);
    let n: u32 = client
        .call_with(&name, "Echo.Ping", &7u32, with_token("s3cret"))
        .await
        .expect("the right token");
    assert_eq!(n, 7);
    // The health probes and go-micro's Debug.Health are not behind the service's layers'
    // token (a probe carries none): /health is plain HTTP, Debug.Health an endpoint.
    let e = client
        .call::<_, serde_json::Value>(&name, "Debug.Health", &serde_json::json!({}))
        .await
        .expect_err("Debug.Health is an endpoint like the others");
    assert_eq!(e.code, 401);
    service.stop().await.expect("stop");
}

#[tokio::test]
async fn the_first_layer_added_is_the_outermost() {
    let name = unique("order");
    let log = Arc::new(Mutex::new(Vec::new()));
    let service = builder(&name)
        .layer(record("first", &log))
        .layer(record("second", &log))
        .up()
        .await;
    let _: u32 = service
        .client()
        .call(&name, "Echo.Ping", &1u32)
        .await
        .expect("call");
    assert_eq!(*log.lock().expect("log"), ["first", "second"]);
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_s_timeout_load_shed_and_concurrency_limit_map_to_go_micro_errors() {
    let name = unique("tower");
    let service = builder(&name)
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            100,
        )))
        .up()
        .await;
    // A 408 is retried, as go-micro retries timeouts: not here.
    let once = CallOptions {
        retries: Some(0),
        ..CallOptions::default()
    };
    let e = service
        .client()
        .call_with::<_, u32>(&name, "Echo.Slow", &1u32, once)
        .await
        .expect_err("timed out by the layer");
    assert_eq!(e.code, 408, "{e}");
    assert!(e.detail.contains("timeout elapsed"), "{e}");
    service.stop().await.expect("stop");

    let name = unique("shed");
    let service = builder(&name)
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .up()
        .await;
    let client = service.client();
    let (a, b) = tokio::join!(client.call::<_, u32>(&name, "Echo.Slow", &1u32), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.call::<_, u32>(&name, "Echo.Slow", &2u32).await
    });
    assert_eq!(a.expect("the first call holds the one permit"), 1);
    let e = b.expect_err("the second is shed while the first runs");
    assert_eq!(e.code, 503, "{e}");
    assert!(e.detail.contains("overloaded"), "{e}");
    let n: u32 = client
        .call(&name, "Echo.Slow", &3u32)
        .await
        .expect("the permit is back");
    assert_eq!(n, 3);
    service.stop().await.expect("stop");
}

/// tower's `RateLimit` keeps its window per instance; behind a `Buffer`, in one layer, every
/// call shares one.
/// 6 calls at 2 per 400 ms take at least two more windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_rate_limit_spaces_calls() {
    let name = unique("rate");
    let service = builder(&name)
        .layer(
            tower::ServiceBuilder::new()
                .buffer(64)
                .rate_limit(2, Duration::from_millis(400)),
        )
        .up()
        .await;
    let client = service.client();
    let started = tokio::time::Instant::now();
    let numbers: Vec<u32> = (0..6).collect();
    let calls = numbers
        .iter()
        .map(|n| client.call::<_, u32>(&name, "Echo.Ping", n));
    for (n, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.expect("limited, not refused"), n as u32);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(780),
        "6 calls at 2 per 400 ms passed in {took:?}"
    );
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_subscriber_and_publisher_layers_see_what_go_micro_s_wrappers_see() {
    let name = unique("kinds");
    let topic = format!("{name}.events");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let call_layer = layer_fn(move |inner: CallService| {
        let seen = Arc::clone(&seen);
        CallService::new(tower::service_fn(move |call: rmicro::layer::Call| {
            seen.lock()
                .expect("calls")
                .push(format!("{} {}", call.service, call.endpoint));
            let inner = inner.clone();
            async move {
                if call.endpoint == "Echo.Slow" {
                    return Err(Error::forbidden("client", "no slow calls from here"));
                }
                inner.oneshot(call).await
            }
        }))
    });
    let publisher_layer = layer_fn(|inner: PublisherService| {
        PublisherService::new(tower::service_fn(move |mut p: rmicro::layer::Publish| {
            p.message
                .header
                .insert("X-Published-By".to_owned(), "layer".to_owned());
            inner.clone().oneshot(p)
        }))
    });
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let topics = Arc::clone(&delivered);
    let subscriber_layer = layer_fn(move |inner: SubscriberService| {
        let topics = Arc::clone(&topics);
        SubscriberService::new(tower::service_fn(move |ev: rmicro::broker::Event| {
            topics.lock().expect("topics").push(ev.topic().to_owned());
            inner.clone().oneshot(ev)
        }))
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = builder(&name)
        .call_layer(call_layer)
        .publisher_layer(publisher_layer)
        .subscriber_layer(subscriber_layer)
        .subscribe(
            &topic,
            None,
            rmicro::broker::handler(move |ev| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ev);
                    Ok(())
                }
            }),
        )
        .up()
        .await;
    let client = service.client();
    let n: u32 = client.call(&name, "Echo.Ping", &5u32).await.expect("call");
    assert_eq!(n, 5);
    let e = client
        .call::<_, u32>(&name, "Echo.Slow", &5u32)
        .await
        .expect_err("refused by the call layer");
    assert_eq!(
        (e.code, e.detail.as_str()),
        (403, "no slow calls from here")
    );
    assert_eq!(
        *calls.lock().expect("calls"),
        [format!("{name} Echo.Ping"), format!("{name} Echo.Slow")]
    );
    client
        .publisher(&topic)
        .expect("publisher")
        .publish(&"hello")
        .await
        .expect("publish");
    let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("delivered in time")
        .expect("delivered");
    assert_eq!(
        ev.message()
            .header
            .get("X-Published-By")
            .map(String::as_str),
        Some("layer"),
        "the publisher layer's header arrived"
    );
    assert_eq!(*delivered.lock().expect("topics"), [topic]);
    service.stop().await.expect("stop");
}

/// The attribute's `layer = ..` works as the builder's: the same auth layer, declared on the
/// struct, refuses a call without the token with go-micro's 401 and lets the right one in.
#[tokio::test]
async fn a_layer_from_the_attribute_guards_the_endpoints() {
    #[rmicro::service(
        name = "attribute_guarded",
        registry = "memory",
        broker = "memory",
        layer = require_token("s3cret")
    )]
    struct Guarded;

    #[rmicro::handlers]
    impl Guarded {
        pub async fn ping(&self, n: u32) -> Result<u32, Error> {
            Ok(n)
        }
    }

    let service = Guarded.into_builder().free_subscribers(false).up().await;
    let client = service.client();
    let e = client
        .call::<_, u32>("attribute_guarded", "Guarded.Ping", &1u32)
        .await
        .expect_err("no token");
    assert_eq!((e.code, e.id.as_str()), (401, "attribute_guarded"), "{e}");
    let n: u32 = client
        .call_with(
            "attribute_guarded",
            "Guarded.Ping",
            &9u32,
            with_token("s3cret"),
        )
        .await
        .expect("the right token");
    assert_eq!(n, 9);
    service.stop().await.expect("stop");
}
