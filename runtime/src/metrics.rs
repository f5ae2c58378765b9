//! Prometheus metrics: what every service serves at `GET /metrics` on its RPC listener, in
//! the OpenMetrics text format (which Prometheus scrapes), through the `prometheus-client`
//! crate.
//!
//! Names follow go-micro v5's prometheus wrapper where it has them (`micro_request_total`
//! and `micro_request_duration_seconds`, labelled `service`, `endpoint`, `status` with
//! `success`/`fail`; subscribers counted there as service `subscriber` and publishes as
//! service `publisher`, the topic as the endpoint, as go-micro's wrapper does), and
//! Prometheus's conventions otherwise. `docs/metrics.md` has the table.
//!
//! One registry per process, as go-micro's `DefaultRegisterer`: every service of the process
//! writes to it (the `service` label tells them apart), and [`register`] adds a program's own
//! metrics to what `/metrics` serves.
//!
//! # Cardinality
//!
//! Label values come from a bounded set: endpoints are those a service serves (a call to any
//! other is counted as endpoint `unknown`); client targets and endpoints, topics and broker
//! names are kept as they come up, up to [`MAX_VALUES`] distinct values in all, after which
//! new ones are counted as `other`. So 1,000 distinct endpoints called by a hostile client
//! add one series, and `/metrics` stays bounded whatever the traffic.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// How many distinct free-form label values (topics, client targets and endpoints, broker
/// names), all labels together, are kept before new ones are counted as `other`.
pub const MAX_VALUES: usize = 4000;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus's default histogram buckets (client_golang's `DefBuckets`, which go-micro's
/// wrapper uses), in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// `micro_request_total`'s labels (go-micro's, plus the error code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    service: String,
    endpoint: String,
    status: &'static str,
    code: String,
}

/// `micro_request_duration_seconds`'s labels (go-micro's).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DurationLabels {
    service: String,
    endpoint: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    service: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    broker: String,
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublishLabels {
    broker: String,
    topic: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    service: String,
    registry: String,
}

/// Every family rmicro writes.
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<DurationLabels>,
    in_flight: Family<ServiceLabels, Gauge>,
    client_requests: Family<RequestLabels, Counter>,
    client_durations: HistogramFamily<DurationLabels>,
    client_retries: Family<TargetLabels, Counter>,
    published: Family<PublishLabels, Counter>,
    delivered: Family<TopicLabels, Counter>,
    acknowledged: Family<TopicLabels, Counter>,
    failed: Family<TopicLabels, Counter>,
    redelivered: Family<TopicLabels, Counter>,
    retried: Family<TopicLabels, Counter>,
    dead_lettered: Family<TopicLabels, Counter>,
    discarded: Family<TopicLabels, Counter>,
    malformed: Family<TopicLabels, Counter>,
    registered: Family<RegistryLabels, Gauge>,
    heartbeat_failures: Family<RegistryLabels, Counter>,
    /// Free-form label values seen so far, for [`MAX_VALUES`].
    seen: Mutex<HashSet<String>>,
    /// Deliveries' series by broker and topic.
    deliveries: Pairs<Deliveries>,
    /// Publishes' series by broker and topic.
    publishes: Pairs<Publishes>,
    /// Successful calls' series by target service and endpoint.
    calls: Pairs<Series>,
}

/// Handles made once per pair of label values (broker and topic, service and endpoint): a
/// hot path then counts without building labels, locking the label set or allocating. At
/// most [`MAX_VALUES`] pairs; beyond, callers count through the families.
struct Pairs<H> {
    map: RwLock<HashMap<String, HashMap<String, H>>>,
}

impl<H> Pairs<H> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `f` on the handles of (`a`, `b`), made by `make` the first time; `false` when
    /// they are not there and the cache is full.
    fn with(&self, a: &str, b: &str, make: impl FnOnce() -> H, f: impl FnOnce(&H)) -> bool {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = map.get(a).and_then(|inner| inner.get(b)) {
                f(handles);
                return true;
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have made them meanwhile.
        if let Some(handles) = map.get(a).and_then(|inner| inner.get(b)) {
            f(handles);
            return true;
        }
        if map.values().map(HashMap::len).sum::<usize>() >= MAX_VALUES {
            return false;
        }
        let handles = make();
        f(&handles);
        map.entry(a.to_owned())
            .or_default()
            .insert(b.to_owned(), handles);
        true
    }
}

/// One series of `micro_request_total` (or `micro_client_request_total`) and its
/// `_duration_seconds` partner.
pub(crate) struct Series {
    count: Counter,
    duration: Histogram,
}

impl Series {
    pub(crate) fn record(&self, took: Duration) {
        self.count.inc();
        self.duration.observe(took.as_secs_f64());
    }
}

/// go-micro's wrapper's series of one topic for a publisher or a subscriber.
struct Outcomes {
    ok: Series,
    fail: Series,
}

impl Outcomes {
    fn record(&self, ok: bool, took: Duration) {
        if ok {
            self.ok.record(took);
        } else {
            self.fail.record(took);
        }
    }
}

/// The series one topic's deliveries write.
struct Deliveries {
    delivered: Counter,
    acknowledged: Counter,
    failed: Counter,
    go_micro: Outcomes,
}

/// The series one topic's publishes write.
struct Publishes {
    ok: Counter,
    fail: Counter,
    go_micro: Outcomes,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub(crate) fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            durations: Family::new_with_constructor(histogram),
            in_flight: Family::default(),
            client_requests: Family::default(),
            client_durations: Family::new_with_constructor(histogram),
            client_retries: Family::default(),
            published: Family::default(),
            delivered: Family::default(),
            acknowledged: Family::default(),
            failed: Family::default(),
            redelivered: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            discarded: Family::default(),
            malformed: Family::default(),
            registered: Family::default(),
            heartbeat_failures: Family::default(),
            seen: Mutex::new(HashSet::new()),
            deliveries: Pairs::new(),
            publishes: Pairs::new(),
            calls: Pairs::new(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(PoisonError::into_inner);
            r.register(
                "micro_request",
                "Requests handled, by service, endpoint, status (success or fail) and code (go-micro's wrapper; subscribers as service `subscriber`, publishes as `publisher`)",
                m.requests.clone(),
            );
            r.register(
                "micro_request_duration_seconds",
                "Request latencies in seconds, by service, endpoint and status (go-micro's wrapper)",
                m.durations.clone(),
            );
            r.register(
                "micro_requests_in_flight",
                "Requests being handled now, by service",
                m.in_flight.clone(),
            );
            r.register(
                "micro_client_request",
                "Calls made, by target service, endpoint, status and code (after retries)",
                m.client_requests.clone(),
            );
            r.register(
                "micro_client_request_duration_seconds",
                "Call latencies in seconds, retries included, by target service, endpoint and status",
                m.client_durations.clone(),
            );
            r.register(
                "micro_client_retries",
                "Attempts made again after a transport error or timeout, by target service and endpoint",
                m.client_retries.clone(),
            );
            r.register(
                "micro_broker_published",
                "Messages published through a client's publisher, by broker, topic and status",
                m.published.clone(),
            );
            r.register(
                "micro_broker_delivered",
                "Messages handed to a subscriber, by broker and topic",
                m.delivered.clone(),
            );
            r.register(
                "micro_broker_acknowledged",
                "Messages whose subscriber succeeded (acknowledged by the plugin, or by the handler), by broker and topic",
                m.acknowledged.clone(),
            );
            r.register(
                "micro_broker_failed",
                "Deliveries whose subscriber failed (an error or a panic), by broker and topic",
                m.failed.clone(),
            );
            r.register(
                "micro_broker_redelivered",
                "Failed messages handed back for one more try, by broker and topic",
                m.redelivered.clone(),
            );
            r.register(
                "micro_broker_retried",
                "Failed messages tried again by the subscriber's redelivery policy, by broker and topic",
                m.retried.clone(),
            );
            r.register(
                "micro_broker_dead_lettered",
                "Messages moved to a dead-letter topic after their last failed try, by broker and the topic they came from",
                m.dead_lettered.clone(),
            );
            r.register(
                "micro_broker_discarded",
                "Messages dropped after their last failed try (a redelivery policy without a dead-letter topic), by broker and topic",
                m.discarded.clone(),
            );
            r.register(
                "micro_broker_malformed",
                "Records dropped because they were not go-micro's envelope, by broker and topic",
                m.malformed.clone(),
            );
            r.register(
                "micro_registry_registered",
                "1 while the registry accepted the service's latest registration, 0 while it refuses or after deregistration",
                m.registered.clone(),
            );
            r.register(
                "micro_registry_heartbeat_failures",
                "Registrations (first or repeated) the registry refused or did not answer",
                m.heartbeat_failures.clone(),
            );
        }
        m
    }

    /// `value` if it is one of the first [`MAX_VALUES`] free-form values seen, else `other`.
    fn bounded(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < MAX_VALUES {
            seen.insert(value.to_owned());
            value.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The handles of one served endpoint's success series, made once.
    pub(crate) fn endpoint(&self, service: &str, endpoint: &str) -> Series {
        self.request_series(service, endpoint, "success", "200")
    }

    /// The `micro_request_total` series with these labels, and its duration partner.
    fn request_series(
        &self,
        service: &str,
        endpoint: &str,
        status: &'static str,
        code: &str,
    ) -> Series {
        Series {
            count: self.requests.get_or_create_owned(&RequestLabels {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                status,
                code: code.to_owned(),
            }),
            duration: self.durations.get_or_create_owned(&DurationLabels {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                status,
            }),
        }
    }

    /// go-micro's wrapper's series of `topic` as `role` (`publisher` or `subscriber`).
    fn outcomes(&self, role: &str, topic: &str) -> Outcomes {
        Outcomes {
            ok: self.request_series(role, topic, "success", "200"),
            fail: self.request_series(role, topic, "fail", "500"),
        }
    }

    /// A request that failed with `code` (or a success outside the cached handles).
    pub(crate) fn request_failed(&self, service: &str, endpoint: &str, code: i32, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                status: "fail",
                code: code.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                status: "fail",
            })
            .observe(took.as_secs_f64());
    }

    /// The in-flight gauge of `service`.
    pub(crate) fn in_flight(&self, service: &str) -> Gauge {
        self.in_flight.get_or_create_owned(&ServiceLabels {
            service: service.to_owned(),
        })
    }

    /// A client call's end: `Ok`, or the error's code.
    pub(crate) fn call(&self, service: &str, endpoint: &str, code: Option<i32>, took: Duration) {
        if code.is_none() {
            let make = || {
                let (service, endpoint) = (self.bounded(service), self.bounded(endpoint));
                Series {
                    count: self.client_requests.get_or_create_owned(&RequestLabels {
                        service: service.clone(),
                        endpoint: endpoint.clone(),
                        status: "success",
                        code: "200".to_owned(),
                    }),
                    duration: self.client_durations.get_or_create_owned(&DurationLabels {
                        service,
                        endpoint,
                        status: "success",
                    }),
                }
            };
            if self.calls.with(service, endpoint, make, |s| s.record(took)) {
                return;
            }
        }
        let (service, endpoint) = (self.bounded(service), self.bounded(endpoint));
        let status = if code.is_none() { "success" } else { "fail" };
        self.client_requests
            .get_or_create(&RequestLabels {
                service: service.clone(),
                endpoint: endpoint.clone(),
                status,
                code: code.unwrap_or(200).to_string(),
            })
            .inc();
        self.client_durations
            .get_or_create(&DurationLabels {
                service,
                endpoint,
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// A client call attempted again.
    pub(crate) fn retry(&self, service: &str, endpoint: &str) {
        self.client_retries
            .get_or_create(&TargetLabels {
                service: self.bounded(service),
                endpoint: self.bounded(endpoint),
            })
            .inc();
    }

    /// A publish through a client's publisher, and go-micro's `publisher` request series.
    pub(crate) fn published(&self, broker: &str, topic: &str, ok: bool, took: Duration) {
        let make = || {
            let (broker, topic) = (self.bounded(broker), self.bounded(topic));
            let labels = |status| PublishLabels {
                broker: broker.clone(),
                topic: topic.clone(),
                status,
            };
            Publishes {
                ok: self.published.get_or_create_owned(&labels("success")),
                fail: self.published.get_or_create_owned(&labels("fail")),
                go_micro: self.outcomes("publisher", &topic),
            }
        };
        let record = |p: &Publishes| {
            if ok { &p.ok } else { &p.fail }.inc();
            p.go_micro.record(ok, took);
        };
        if self.publishes.with(broker, topic, make, record) {
            return;
        }
        let topic = self.bounded(topic);
        let status = if ok { "success" } else { "fail" };
        self.published
            .get_or_create(&PublishLabels {
                broker: self.bounded(broker),
                topic: topic.clone(),
                status,
            })
            .inc();
        self.go_micro("publisher", topic, ok, took);
    }

    /// go-micro's wrapper's view of a publish or a delivery: service `publisher` or
    /// `subscriber`, the topic as the endpoint.
    fn go_micro(&self, role: &str, topic: String, ok: bool, took: Duration) {
        let status = if ok { "success" } else { "fail" };
        self.requests
            .get_or_create(&RequestLabels {
                service: role.to_owned(),
                endpoint: topic.clone(),
                status,
                code: if ok { "200" } else { "500" }.to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels {
                service: role.to_owned(),
                endpoint: topic,
                status,
            })
            .observe(took.as_secs_f64());
    }

    fn topic_labels(&self, broker: &str, topic: &str) -> TopicLabels {
        TopicLabels {
            broker: self.bounded(broker),
            topic: self.bounded(topic),
        }
    }

    /// A delivery to a subscriber and its outcome.
    pub(crate) fn delivered(&self, broker: &str, topic: &str, ok: bool, took: Duration) {
        let make = || {
            let labels = self.topic_labels(broker, topic);
            Deliveries {
                delivered: self.delivered.get_or_create_owned(&labels),
                acknowledged: self.acknowledged.get_or_create_owned(&labels),
                failed: self.failed.get_or_create_owned(&labels),
                go_micro: self.outcomes("subscriber", &labels.topic),
            }
        };
        let record = |d: &Deliveries| {
            d.delivered.inc();
            if ok { &d.acknowledged } else { &d.failed }.inc();
            d.go_micro.record(ok, took);
        };
        if !self.deliveries.with(broker, topic, make, record) {
            self.delivered_uncached(broker, topic, ok, took);
        }
    }

    /// [`Metrics::delivered`] through the families, once the cache is full.
    fn delivered_uncached(&self, broker: &str, topic: &str, ok: bool, took: Duration) {
        let labels = self.topic_labels(broker, topic);
        self.delivered.get_or_create(&labels).inc();
        if ok {
            self.acknowledged.get_or_create(&labels).inc();
        } else {
            self.failed.get_or_create(&labels).inc();
        }
        self.go_micro("subscriber", labels.topic, ok, took);
    }

    /// A failed message handed back for one more try.
    pub(crate) fn redelivered(&self, broker: &str, topic: &str) {
        self.redelivered
            .get_or_create(&self.topic_labels(broker, topic))
            .inc();
    }

    /// A failed message tried again by a redelivery policy.
    pub(crate) fn retried(&self, broker: &str, topic: &str) {
        self.retried
            .get_or_create(&self.topic_labels(broker, topic))
            .inc();
    }

    /// A message moved to a dead-letter topic.
    pub(crate) fn dead_lettered(&self, broker: &str, topic: &str) {
        self.dead_lettered
            .get_or_create(&self.topic_labels(broker, topic))
            .inc();
    }

    /// A message dropped after its last failed try.
    pub(crate) fn discarded(&self, broker: &str, topic: &str) {
        self.discarded
            .get_or_create(&self.topic_labels(broker, topic))
            .inc();
    }

    /// A record that was not go-micro's envelope.
    pub(crate) fn malformed(&self, broker: &str, topic: &str) {
        self.malformed
            .get_or_create(&self.topic_labels(broker, topic))
            .inc();
    }

    /// The registration state of `service` with `registry`: registered or not.
    pub(crate) fn registered(&self, service: &str, registry: &str, registered: bool) {
        self.registered
            .get_or_create(&RegistryLabels {
                service: service.to_owned(),
                registry: registry.to_owned(),
            })
            .set(i64::from(registered));
    }

    /// A registration the registry refused or did not answer.
    pub(crate) fn heartbeat_failed(&self, service: &str, registry: &str) {
        self.heartbeat_failures
            .get_or_create(&RegistryLabels {
                service: service.to_owned(),
                registry: registry.to_owned(),
            })
            .inc();
    }
}

/// Adds a program's own metrics to the process's registry, which `/metrics` serves:
///
/// ```
/// use rmicro::metrics::prometheus_client::metrics::counter::Counter;
/// let enrolled: Counter = Counter::default();
/// rmicro::metrics::register(|r| r.register("students_enrolled", "Students enrolled", enrolled.clone()));
/// enrolled.inc();
/// assert!(rmicro::metrics::encode().contains("students_enrolled_total 1"));
/// ```
pub fn register(f: impl FnOnce(&mut Registry)) {
    f(&mut get()
        .registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner));
}

/// Everything in the process's registry, in the OpenMetrics text format ([`CONTENT_TYPE`]).
pub fn encode() -> String {
    let mut out = String::new();
    let registry = get()
        .registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The `/metrics` route.
pub(crate) fn reply() -> crate::rpc::server::HttpResponse {
    let mut rsp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(encode())));
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    rsp
}

/// Counts a request in flight while it lives (gauge up on creation, down on drop).
pub(crate) struct InFlight(Gauge);

impl InFlight {
    pub(crate) fn enter(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_as_go_micro_s_and_bounded() {
        let m = get();
        let ep = m.endpoint("metrics-test", "Svc.Ok");
        ep.record(Duration::from_millis(3));
        m.request_failed("metrics-test", "Svc.Ok", 404, Duration::from_millis(1));
        let text = encode();
        assert!(
            text.contains(
                r#"micro_request_total{service="metrics-test",endpoint="Svc.Ok",status="success",code="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"micro_request_duration_seconds_bucket{le="0.005",service="metrics-test",endpoint="Svc.Ok",status="success"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="fail",code="404"} 1"#), "{text}");
        for i in 0..=MAX_VALUES {
            m.retry("metrics-bounded", &format!("E{i}"));
        }
        assert!(
            text.len() < encode().len(),
            "retries add series up to the bound"
        );
        assert!(
            encode().contains(
                r#"micro_client_retries_total{service="metrics-bounded",endpoint="other"}"#
            ),
            "beyond the bound, `other`"
        );
    }

    #[test]
    fn hot_paths_count_through_cached_handles_into_the_same_series() {
        // A registry of its own: the process's is shared with tests that fill the bound.
        let m = Metrics::new();
        for ok in [true, true, false] {
            m.delivered("memory", "cache.topic", ok, Duration::from_millis(2));
        }
        m.delivered("http", "cache.topic", true, Duration::from_millis(2));
        for code in [None, None, Some(503)] {
            m.call("cache-svc", "Svc.Get", code, Duration::from_millis(2));
        }
        for ok in [true, true, false] {
            m.published("memory", "cache.topic", ok, Duration::from_millis(2));
        }
        assert_eq!(
            m.deliveries.map.read().expect("cache").len(),
            2,
            "one cache entry per broker"
        );
        let mut text = String::new();
        let registry = m.registry.lock().expect("registry");
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"micro_broker_delivered_total{broker="memory",topic="cache.topic"} 3"#,
            r#"micro_broker_acknowledged_total{broker="memory",topic="cache.topic"} 2"#,
            r#"micro_broker_failed_total{broker="memory",topic="cache.topic"} 1"#,
            r#"micro_broker_delivered_total{broker="http",topic="cache.topic"} 1"#,
            // go-micro's view adds both brokers' deliveries of the topic.
            r#"micro_request_total{service="subscriber",endpoint="cache.topic",status="success",code="200"} 3"#,
            r#"micro_request_total{service="subscriber",endpoint="cache.topic",status="fail",code="500"} 1"#,
            r#"micro_request_duration_seconds_count{service="subscriber",endpoint="cache.topic",status="success"} 3"#,
            r#"micro_client_request_total{service="cache-svc",endpoint="Svc.Get",status="success",code="200"} 2"#,
            r#"micro_client_request_total{service="cache-svc",endpoint="Svc.Get",status="fail",code="503"} 1"#,
            r#"micro_client_request_duration_seconds_count{service="cache-svc",endpoint="Svc.Get",status="success"} 2"#,
            r#"micro_broker_published_total{broker="memory",topic="cache.topic",status="success"} 2"#,
            r#"micro_broker_published_total{broker="memory",topic="cache.topic",status="fail"} 1"#,
            r#"micro_request_total{service="publisher",endpoint="cache.topic",status="success",code="200"} 2"#,
            r#"micro_request_total{service="publisher",endpoint="cache.topic",status="fail",code="500"} 1"#,
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }
}
