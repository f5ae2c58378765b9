//! Interop with go-micro itself: small go-micro v4 programs (Go, `tests/interop/go/*`, built by
//! `scripts/interop.sh` from the Go module proxy) talk to the seed's rmicro programs over a
//! real Consul agent and a real mosquitto, both ways:
//!
//! - RPC: a go-micro client calls rmicro's `student_service`, and rmicro's `student_client`
//!   calls a go-micro `student_service`, in JSON and in protobuf;
//! - errors: a go-micro client gets go-micro errors (id, code, status) from rmicro;
//! - MQTT: go-micro's `broker.Publish` (seed style) and `client.Publish` reach
//!   `message_subscriber`, and what `message_publisher` sends reaches go-micro's
//!   `broker.Subscribe`;
//! - the http broker, through Consul, both ways, and go-micro's server-side subscriber
//!   (`micro.RegisterSubscriber`) decoding what `message_publisher` sends in JSON and protobuf;
//! - the registry record as go-micro's Consul plugin reads it.
//!
//! Every process talks to 127.0.0.1 only: the Go programs take the agent's and the broker's
//! addresses as flags and never use go-micro's mDNS registry; the rmicro programs run with
//! `--registry=consul` or `--registry=memory`.
//!
//! Run with `cargo test -p rmicro-examples --features consul,mqtt --test interop --
//! --nocapture` to see the measured times.
#![cfg(all(feature = "consul", feature = "mqtt"))]

mod support;

use std::time::Instant;

use rmicro_conformance::servers::consul;
use rmicro_conformance::servers::mosquitto::Mosquitto;
use support::{
    CLIENT, DAVIE, PUBLISHER, Proc, SERVICE, SUBSCRIBER, TOPIC, UP, go, go_bin_dir, labelled_json,
    received, run, seed_lock, stderr, stdout,
};

fn report(scenario: &str, started: Instant) {
    println!("interop: {scenario} took {:?}", started.elapsed());
}

/// Starts rmicro's `student_service` on the agent and waits until it is registered.
fn rmicro_student_service(registry: &str) -> Proc {
    let mut service = Proc::spawn(
        SERVICE,
        &[
            "--registry=consul",
            &format!("--registry_address={registry}"),
        ],
        &[],
    );
    service.wait_for("registered", UP);
    service
}

/// Runs the go-micro client against `student_service` with extra flags.
fn go_client(registry: &str, extra: &[&str]) -> std::process::Output {
    let flag = format!("--registry_address={registry}");
    let mut args = vec![flag.as_str()];
    args.extend_from_slice(extra);
    run(&go("client"), &args, &[])
}

#[test]
fn go_micro_client_calls_rmicro_service_in_json_and_protobuf() {
    let _lock = seed_lock();
    go_bin_dir();
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let _service = rmicro_student_service(&registry);

    // go-micro's default content type is application/json.
    for content_type in ["application/json", "application/protobuf"] {
        let out = go_client(&registry, &[&format!("--content_type={content_type}")]);
        assert_eq!(
            stdout(&out).trim(),
            format!("reply {DAVIE}"),
            "{content_type}; stderr: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0));
    }

    // Many calls from one go-micro client reuse its pooled HTTP connections.
    let out = go_client(&registry, &["--calls=50"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 50, "{text}");
    assert!(
        text.lines().all(|l| l == format!("reply {DAVIE}")),
        "{text}"
    );
    report("go-micro client -> rmicro service", started);
}

#[test]
fn rmicro_client_calls_go_micro_service_in_protobuf_and_json() {
    let _lock = seed_lock();
    let go_service = go("service");
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let flag = format!("--registry_address={registry}");
    let mut service = Proc::spawn(&go_service, &[&flag], &[]);
    service.wait_for("ready 127.0.0.1:", UP);

    // student_client calls in protobuf unless told otherwise, as go-micro's clients do.
    let out = run(CLIENT, &["--registry=consul", &flag], &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    service.wait_for(r#"called {"name":"davie"} as application/protobuf"#, UP);

    let out = run(
        CLIENT,
        &[
            "--registry=consul",
            &flag,
            "--client_content_type=application/json",
        ],
        &[],
    );
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    service.wait_for(r#"called {"name":"davie"} as application/json"#, UP);
    report("rmicro client -> go-micro service", started);
}

#[test]
fn go_micro_client_gets_go_micro_errors_from_rmicro_service() {
    let _lock = seed_lock();
    go_bin_dir();
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let _service = rmicro_student_service(&registry);

    let cases: [(&[&str], u16, &str, &str); 3] = [
        // An endpoint the service does not have.
        (
            &["--endpoint=StudentService.Expel"],
            404,
            "Not Found",
            "unknown service endpoint `StudentService.Expel`",
        ),
        // The handler's own error.
        (&["--name=bob"], 404, "Not Found", "no student named `bob`"),
        // A content type rmicro has no codec for (go-micro's gRPC codec frames the body).
        (
            &["--content_type=application/grpc+proto"],
            415,
            "Unsupported Media Type",
            "unsupported content type `application/grpc+proto`",
        ),
    ];
    for (flags, code, status, detail) in cases {
        let out = go_client(&registry, flags);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", stderr(&out));
        // What go-micro's errors.Parse read from the error the call returned.
        let err = labelled_json(&stdout(&out), "error");
        assert_eq!(err["id"], "student_service", "{flags:?}: {err}");
        assert_eq!(err["code"], code, "{flags:?}: {err}");
        assert_eq!(err["status"], status, "{flags:?}: {err}");
        let text = err["detail"].as_str().unwrap_or_default();
        assert!(text.starts_with(detail), "{flags:?}: {err}");
    }
    report("go-micro client errors from rmicro service", started);
}

#[test]
fn go_micro_publishers_reach_message_subscriber_over_mqtt() {
    let _lock = seed_lock();
    let go_publisher = go("publisher");
    let server = Mosquitto::start();
    let started = Instant::now();
    let mut subscriber = Proc::spawn(
        SUBSCRIBER,
        &[
            "--registry=memory",
            "--broker=mqtt",
            &format!("--broker_address={}", server.url()),
        ],
        &[],
    );
    subscriber.wait_for("started", UP);

    // go-micro's mqtt plugin takes tcp://host:port (it skips an mqtt:// address).
    let broker = format!("--broker_address=tcp://{}", server.addr());
    // Seed style: broker.Publish with only the `name` header, so neither Content-Type nor
    // Micro-Topic; the subscriber decodes the JSON body all the same.
    let out = run(&go_publisher, &["--broker=mqtt", &broker], &[]);
    assert_eq!(stdout(&out).trim(), "published", "stderr: {}", stderr(&out));
    subscriber.wait_for(
        &format!("received: {DAVIE} (name header: davie) as none"),
        UP,
    );

    // go-micro's client.Publish: Content-Type, Micro-Topic and Micro-ID.
    let out = run(&go_publisher, &["--broker=mqtt", &broker, "--event"], &[]);
    assert_eq!(stdout(&out).trim(), "published", "stderr: {}", stderr(&out));
    subscriber.wait_for(
        &format!("received: {DAVIE} (name header: ) as application/json"),
        UP,
    );
    report("go-micro publisher -> rmicro subscriber (mqtt)", started);
}

#[test]
fn message_publisher_reaches_go_micro_subscriber_over_mqtt() {
    let _lock = seed_lock();
    let go_subscriber = go("subscriber");
    let server = Mosquitto::start();
    let started = Instant::now();
    let mut peer = Proc::spawn(
        &go_subscriber,
        &[
            "--broker=mqtt",
            &format!("--broker_address=tcp://{}", server.addr()),
        ],
        &[],
    );
    peer.wait_for("ready", UP);

    let out = run(
        PUBLISHER,
        &[
            "--registry=memory",
            "--broker=mqtt",
            &format!("--broker_address={}", server.url()),
        ],
        &[],
    );
    assert_eq!(
        stdout(&out).trim(),
        format!("published to {TOPIC}"),
        "stderr: {}",
        stderr(&out)
    );
    let line = peer.wait_for("received header=", UP);
    let (header, body) = received(&line);
    assert_eq!(body, DAVIE);
    assert_eq!(header["name"], "davie", "{header}");
    assert_eq!(header["Content-Type"], "application/json", "{header}");
    assert_eq!(header["Micro-Topic"], TOPIC, "{header}");
    // go-micro's `headers.ID`, to the letter: a Go subscriber reading `Micro-ID` finds it.
    assert!(header["Micro-ID"].is_string(), "{header}");
    assert!(header.get("Micro-Id").is_none(), "{header}");
    report("rmicro publisher -> go-micro subscriber (mqtt)", started);
}

#[test]
fn http_broker_through_consul_both_ways() {
    let _lock = seed_lock();
    let (go_subscriber, go_publisher) = (go("subscriber"), go("publisher"));
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let go_registry = format!("--registry_address={registry}");
    let rmicro_flags = ["--registry=consul", &go_registry];

    // rmicro -> go-micro: the go-micro subscriber registers `micro.http.broker` in Consul;
    // message_publisher finds it there and POSTs the envelope to it.
    let mut peer = Proc::spawn(&go_subscriber, &["--broker=http", &go_registry], &[]);
    peer.wait_for("ready", UP);
    let out = run(PUBLISHER, &rmicro_flags, &[]);
    assert_eq!(
        stdout(&out).trim(),
        format!("published to {TOPIC}"),
        "stderr: {}",
        stderr(&out)
    );
    let (header, body) = received(&peer.wait_for("received header=", UP));
    assert_eq!(body, DAVIE);
    assert_eq!(header["name"], "davie", "{header}");
    assert_eq!(header["Micro-Topic"], TOPIC, "{header}");
    drop(peer);

    // go-micro -> rmicro: message_subscriber registers its http broker node; go-micro's
    // broker.Publish finds it through Consul.
    let mut subscriber = Proc::spawn(SUBSCRIBER, &rmicro_flags, &[]);
    subscriber.wait_for("registered", UP);
    let out = run(&go_publisher, &["--broker=http", &go_registry], &[]);
    assert_eq!(stdout(&out).trim(), "published", "stderr: {}", stderr(&out));
    subscriber.wait_for(
        &format!("received: {DAVIE} (name header: davie) as none"),
        UP,
    );
    report("http broker via consul, both ways", started);
}

#[test]
fn message_publisher_reaches_go_micro_server_subscriber_in_json_and_protobuf() {
    let _lock = seed_lock();
    let go_service = go("service");
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let flag = format!("--registry_address={registry}");
    // go-micro's micro.RegisterSubscriber: the server subscribes on its http broker (through
    // Consul) and decodes each payload by the message's Content-Type.
    let mut service = Proc::spawn(&go_service, &[&flag], &[]);
    service.wait_for("ready 127.0.0.1:", UP);

    for content_type in ["application/json", "application/protobuf"] {
        let out = run(
            PUBLISHER,
            &[
                "--registry=consul",
                &flag,
                &format!("--client_content_type={content_type}"),
            ],
            &[],
        );
        assert_eq!(
            stdout(&out).trim(),
            format!("published to {TOPIC}"),
            "stderr: {}",
            stderr(&out)
        );
        service.wait_for(&format!("event {DAVIE} as {content_type}"), UP);
    }
    report(
        "rmicro publisher -> go-micro server subscriber (http)",
        started,
    );
}

#[test]
fn go_micro_reads_rmicro_registry_record_from_consul() {
    let _lock = seed_lock();
    let inspect = go("inspect");
    let agent = consul::start();
    let registry = consul::address(&agent);
    let started = Instant::now();
    let mut service = rmicro_student_service(&registry);
    let address = service.address();

    let out = run(&inspect, &[&format!("--registry_address={registry}")], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one node: {text}");
    let node = labelled_json(&text, "node");
    assert_eq!(node["service"], "student_service", "{node}");
    assert_eq!(node["version"], "v1.0.0", "{node}");
    assert!(
        node["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("student_service-")),
        "{node}"
    );
    assert_eq!(node["address"], address.as_str(), "{node}");
    let metadata = &node["metadata"];
    for (key, value) in [
        ("protocol", "mucp"),
        ("server", "mucp"),
        ("transport", "http"),
        ("registry", "consul"),
        ("broker", "http"),
    ] {
        assert_eq!(metadata[key], value, "{key}: {node}");
    }
    let endpoints = node["endpoints"].as_array().expect("endpoints");
    let get = endpoints
        .iter()
        .find(|e| e["name"] == "StudentService.GetStudent")
        .unwrap_or_else(|| panic!("no StudentService.GetStudent: {node}"));
    assert_eq!(get["request"], "StudentRequest", "{node}");
    assert_eq!(get["response"], "Student", "{node}");
    // The handler's doc comment, under go-micro v5's key (its MCP gateway's tool description).
    assert_eq!(
        get["metadata"]["description"], "Looks a student up by name.",
        "{node}"
    );
    let subscriber = endpoints
        .iter()
        .find(|e| e["metadata"]["subscriber"] == "true")
        .unwrap_or_else(|| panic!("no subscriber endpoint: {node}"));
    assert_eq!(subscriber["metadata"]["topic"], TOPIC, "{node}");
    report("go-micro reads rmicro's consul record", started);
}
