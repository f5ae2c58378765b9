//! Traces across processes, in a real receiver (Jaeger v2, built by `scripts/jaeger.sh`): the
//! seed's client calling the seed's service, and the seed's publisher reaching the seed's
//! subscriber, each pair one trace in Jaeger whose second process's span is the child of
//! the first's, as go-micro's opentelemetry wrapper names and links them; the seed's call
//! and publish made in one span (`traced_client`), one tree across three processes; and
//! go-micro v5 with its own wrappers on either side of a call.
#![cfg(feature = "otel")]

mod support;

use std::time::{Duration, Instant};

use rmicro_conformance::servers::jaeger::Jaeger;
use support::{
    CLIENT, DAVIE, PUBLISHER, Proc, SERVICE, SUBSCRIBER, TOPIC, UP, go, run, seed_lock, stderr,
    stdout,
};

/// How long Jaeger may take to show what was exported (the exporters batch for up to 5 s,
/// and flush at exit).
const SEEN: Duration = Duration::from_secs(20);

/// The first trace of `service` that has, for each `(operation, process)` of `wanted`, a
/// span of that name made by that process (spans reach Jaeger from each process on its own
/// schedule: a trace is polled until it is complete).
fn trace_with(jaeger: &Jaeger, service: &str, wanted: &[(&str, &str)]) -> serde_json::Value {
    let deadline = Instant::now() + SEEN;
    loop {
        for trace in jaeger.traces(service) {
            let spans = trace["spans"].as_array().cloned().unwrap_or_default();
            let complete = wanted.iter().all(|(name, process)| {
                spans
                    .iter()
                    .any(|s| s["operationName"] == *name && service_of(&trace, s) == *process)
            });
            if complete {
                return trace;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no trace of `{service}` with {wanted:?} within {SEEN:?}: {:#?}\n{}",
            jaeger.traces(service),
            jaeger.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The span named `name` in `trace`.
/// A span's tag, as text (empty when missing).
fn tag(span: &serde_json::Value, key: &str) -> String {
    span["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["key"] == key))
        .and_then(|t| t["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn span<'a>(trace: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["operationName"] == name))
        .unwrap_or_else(|| panic!("no span `{name}` in {trace:#}"))
}

/// The service (process) a span was made in.
fn service_of<'a>(trace: &'a serde_json::Value, span: &serde_json::Value) -> &'a str {
    let process = span["processID"].as_str().unwrap_or_default();
    trace["processes"][process]["serviceName"]
        .as_str()
        .unwrap_or_default()
}

/// `child` is `parent`'s child in the same trace.
fn assert_child_of(
    trace: &serde_json::Value,
    child: &serde_json::Value,
    parent: &serde_json::Value,
) {
    assert_eq!(child["traceID"], parent["traceID"]);
    let references = child["references"].as_array().cloned().unwrap_or_default();
    assert!(
        references.iter().any(|r| r["refType"] == "CHILD_OF"
            && r["spanID"] == parent["spanID"]
            && r["traceID"] == parent["traceID"]),
        "`{}` is not the child of `{}`: {trace:#}",
        child["operationName"],
        parent["operationName"]
    );
}

#[test]
fn a_call_and_a_publish_are_each_one_trace_across_two_processes() {
    let _lock = seed_lock();
    let jaeger = Jaeger::start();
    let endpoint = jaeger.otlp_endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];

    // The call: student_client -> student_service.
    let mut service = Proc::spawn(SERVICE, &[], &env);
    service.wait_for("registered", UP);
    let out = run(CLIENT, &[], &env);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());

    let name = "student_service.StudentService.GetStudent";
    let trace = trace_with(
        &jaeger,
        "student_service",
        &[(name, "student_client"), (name, "student_service")],
    );
    let spans = trace["spans"].as_array().expect("spans");
    let client = spans
        .iter()
        .find(|s| s["operationName"] == name && service_of(&trace, s) == "student_client")
        .unwrap_or_else(|| panic!("no client span: {trace:#}"));
    let server = spans
        .iter()
        .find(|s| s["operationName"] == name && service_of(&trace, s) == "student_service")
        .unwrap_or_else(|| panic!("no server span: {trace:#}"));
    assert_child_of(&trace, server, client);
    let kind = |s: &serde_json::Value| tag(s, "span.kind");
    assert_eq!(
        (kind(client).as_str(), kind(server).as_str()),
        ("client", "server")
    );
    for s in [client, server] {
        assert_eq!(
            (
                tag(s, "rpc.system").as_str(),
                tag(s, "rpc.service").as_str(),
                tag(s, "rpc.method").as_str()
            ),
            ("go-micro", "student_service", "StudentService.GetStudent"),
            "{s:#}"
        );
    }

    // The publish: message_publisher -> message_subscriber.
    let mut subscriber = Proc::spawn(SUBSCRIBER, &[], &env);
    subscriber.wait_for("registered", UP);
    let out = run(PUBLISHER, &[], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    subscriber.wait_for("received", UP);
    subscriber.signal("TERM");
    assert_eq!(
        subscriber.wait_exit(UP),
        Some(0),
        "{}",
        subscriber.transcript()
    );
    let (publish, deliver) = (format!("Pub to {TOPIC}"), format!("Sub from {TOPIC}"));
    let trace = trace_with(
        &jaeger,
        "message_publisher",
        &[(&publish, "message_publisher"), (&deliver, "go.micro.srv")],
    );
    let (publish, deliver) = (span(&trace, &publish), span(&trace, &deliver));
    // The seed's subscriber is the service `go.micro.srv`.
    assert_eq!(service_of(&trace, deliver), "go.micro.srv");
    assert_child_of(&trace, deliver, publish);
    for (s, operation) in [(publish, "send"), (deliver, "process")] {
        assert_eq!(tag(s, "messaging.destination.name"), TOPIC, "{s:#}");
        assert_eq!(tag(s, "messaging.operation.type"), operation, "{s:#}");
    }
    println!(
        "jaeger: call and publish each one trace across two processes ({} and {} spans)",
        trace_with(&jaeger, "student_service", &[(name, "student_service")])["spans"]
            .as_array()
            .map_or(0, Vec::len),
        trace["spans"].as_array().map_or(0, Vec::len)
    );
}

/// A collector that is not there: calls are served as usual, the spans are dropped, and the
/// service says so once (not once per batch).
#[test]
fn an_unreachable_collector_drops_spans_and_warns_once() {
    let _lock = seed_lock();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Batches every 200 ms, so that several fail within the test.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut service = Proc::spawn(SERVICE, &[], &env);
    service.wait_for("registered", UP);
    for _ in 0..3 {
        let out = run(CLIENT, &[], &[]);
        assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
        std::thread::sleep(Duration::from_millis(400));
    }
    service.wait_for("cannot export spans", UP);
    service.drain(Duration::from_millis(500));
    assert_eq!(
        service.count("cannot export spans"),
        1,
        "{}",
        service.transcript()
    );
    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());
}

/// go-micro v5's client with go-micro's own OpenTelemetry call wrapper
/// (`tests/interop/v5/tracecall`) calls the seed's rmicro service: one trace, the rmicro
/// server span the child of go-micro's client span.
#[test]
fn a_go_micro_v5_client_s_trace_continues_into_an_rmicro_service() {
    let _lock = seed_lock();
    let jaeger = Jaeger::start();
    let endpoint = jaeger.otlp_endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let mut service = Proc::spawn(SERVICE, &[], &env);
    let address = service.address();
    service.wait_for("registered", UP);
    let out = run(
        &go("v5/tracecall"),
        &[&format!("--address={address}")],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let reply: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    let davie: serde_json::Value = serde_json::from_str(DAVIE).expect("JSON");
    assert_eq!(reply, davie);
    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());

    let name = "student_service.StudentService.GetStudent";
    let trace = trace_with(
        &jaeger,
        "go-micro-v5-client",
        &[(name, "go-micro-v5-client"), (name, "student_service")],
    );
    let spans = trace["spans"].as_array().expect("spans");
    let by = |service: &str| {
        spans
            .iter()
            .find(|s| s["operationName"] == name && service_of(&trace, s) == service)
            .unwrap_or_else(|| panic!("no `{name}` span of {service}: {trace:#}"))
    };
    assert_child_of(&trace, by("student_service"), by("go-micro-v5-client"));
}

/// `traced_client` calls the seed's service and publishes to the seed's subscriber inside
/// one span: Jaeger has one tree across the three processes.
#[test]
fn the_seed_s_call_and_publish_are_one_tree_across_three_processes() {
    let _lock = seed_lock();
    let jaeger = Jaeger::start();
    let endpoint = jaeger.otlp_endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let mut service = Proc::spawn(SERVICE, &[], &env);
    let mut subscriber = Proc::spawn(SUBSCRIBER, &[], &env);
    service.wait_for("registered", UP);
    subscriber.wait_for("registered", UP);
    let out = run(env!("CARGO_BIN_EXE_traced_client"), &[], &env);
    assert_eq!(
        stdout(&out).trim(),
        "called and published davie",
        "{}",
        stderr(&out)
    );
    subscriber.wait_for("received", UP);
    for p in [&mut service, &mut subscriber] {
        p.signal("TERM");
        assert_eq!(p.wait_exit(UP), Some(0), "{}", p.transcript());
    }
    let call = "student_service.StudentService.GetStudent";
    let (publish, deliver) = (format!("Pub to {TOPIC}"), format!("Sub from {TOPIC}"));
    let trace = trace_with(
        &jaeger,
        "traced_client",
        &[
            ("enrol davie", "traced_client"),
            (call, "traced_client"),
            (call, "student_service"),
            (&publish, "traced_client"),
            (&deliver, "go.micro.srv"),
        ],
    );
    let spans = trace["spans"].as_array().expect("spans");
    let of = |name: &str, service: &str| {
        spans
            .iter()
            .find(|s| s["operationName"] == name && service_of(&trace, s) == service)
            .unwrap_or_else(|| panic!("no `{name}` span of {service}: {trace:#}"))
    };
    let root = of("enrol davie", "traced_client");
    assert!(
        root["references"].as_array().is_none_or(Vec::is_empty),
        "the root has no parent: {root:#}"
    );
    let client = of(call, "traced_client");
    assert_child_of(&trace, client, root);
    assert_child_of(&trace, of(call, "student_service"), client);
    let publish = of(&publish, "traced_client");
    assert_child_of(&trace, publish, root);
    assert_child_of(&trace, of(&deliver, "go.micro.srv"), publish);
    // Every delivery (the seed's service subscribes to the topic too) hangs off the publish.
    let deliveries: Vec<_> = spans
        .iter()
        .filter(|s| s["operationName"] == deliver.as_str())
        .collect();
    for d in &deliveries {
        assert_child_of(&trace, d, publish);
    }
    assert_eq!(spans.len(), 4 + deliveries.len(), "{trace:#}");
}

/// The other way: the seed's client (`traced_client`, on the nats registry) calls a go-micro
/// v5 service (`tests/interop/v5/traceserve`, go-micro's server with its opentelemetry handler
/// wrapper, on go-micro's own nats registry): go-micro's server span is the child of rmicro's
/// client span, in the trace rmicro started.
#[cfg(feature = "nats")]
#[test]
fn an_rmicro_client_s_trace_continues_into_a_go_micro_v5_service() {
    use rmicro_conformance::servers::nats::Nats;
    let _lock = seed_lock();
    let jaeger = Jaeger::start();
    let nats = Nats::start();
    let endpoint = jaeger.otlp_endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let registry = format!("--registry_address={}", nats.url());
    let mut server = Proc::spawn(&go("v5/traceserve"), &[&registry], &env);
    server.wait_for("ready", UP);
    let out = run(
        env!("CARGO_BIN_EXE_traced_client"),
        // go-micro's handler here takes Go structs, so JSON (the seed's types are prost's,
        // protobuf by default).
        &[
            "--registry=nats",
            &registry,
            "--client_content_type=application/json",
        ],
        &env,
    );
    assert_eq!(
        stdout(&out).trim(),
        "called and published davie",
        "{}",
        stderr(&out)
    );
    server.close_stdin();
    assert_eq!(server.wait_exit(UP), Some(0), "{}", server.transcript());

    let call = "student_service.StudentService.GetStudent";
    let trace = trace_with(
        &jaeger,
        "traced_client",
        &[
            ("enrol davie", "traced_client"),
            (call, "traced_client"),
            (call, "go-micro-v5-server"),
        ],
    );
    let spans = trace["spans"].as_array().expect("spans");
    let of = |service: &str| {
        spans
            .iter()
            .find(|s| s["operationName"] == call && service_of(&trace, s) == service)
            .unwrap_or_else(|| panic!("no `{call}` span of {service}: {trace:#}"))
    };
    assert_child_of(&trace, of("go-micro-v5-server"), of("traced_client"));
}
