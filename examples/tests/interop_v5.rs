//! Interop with go-micro v5 (go-micro.dev/v5 v5.30.0, the newest v5 the Go module proxy
//! serves): small go-micro v5 programs (`tests/interop/v5/{client,service,publisher,subscriber}`,
//! built by `scripts/interop.sh`) talk to the seed's rmicro programs, both ways, on each
//! registry and broker go-micro v5 has in core:
//!
//! - registries mdns (go-micro's default, no flags on either side), consul, etcd and nats: a
//!   go-micro client calls rmicro's `student_service` in JSON and protobuf and gets
//!   go-micro's errors from it; rmicro's `student_client` calls a go-micro service in
//!   protobuf and JSON; once rmicro's service stops, a fresh go-micro client gets go-micro's
//!   "not found";
//! - brokers http, nats and rabbitmq: go-micro's `client.Publish` (JSON and protobuf) and
//!   `broker.Publish` reach `message_subscriber`; what `message_publisher` sends reaches
//!   go-micro's `broker.Subscribe` with go-micro's headers, and its server-side subscriber
//!   (`micro.RegisterSubscriber`), with the message id under go-micro's `Micro-ID`;
//! - streams (server and bidirectional, with go-micro's errors) both ways, on go-micro's
//!   default stack and over its grpc protocol; unary grpc both ways, in protobuf and JSON.
//!
//! mDNS runs inside a network namespace each test creates, whose one interface is lo, set up
//! by `scripts/loopback-multicast.sh` as `scripts/setup.sh` sets up a loopback-only host (so
//! go-micro's multicast, sent by the routing table, stays on lo); this needs root, as CI has.
//! Everything else talks to servers on 127.0.0.1.
//!
//! Run with `cargo test -p rmicro-examples --features consul,etcd,nats,rabbitmq --test
//! interop_v5 -- --nocapture` to see the measured times.
#![cfg(all(
    feature = "consul",
    feature = "etcd",
    feature = "nats",
    feature = "rabbitmq"
))]

mod support;

use std::process::Command;
use std::time::Instant;

use rmicro_conformance::servers::nats::Nats;
use rmicro_conformance::servers::{consul, etcd, rabbitmq};
use support::{
    CLIENT, DAVIE, PUBLISHER, Proc, SERVICE, SUBSCRIBER, TOPIC, UP, go, labelled_json, received,
    run, seed_lock, stderr, stdout,
};

fn report(scenario: &str, started: Instant) {
    println!("interop v5: {scenario} took {:?}", started.elapsed());
}

fn v5(program: &str) -> String {
    go(&format!("v5/{program}"))
}

/// Where the programs run: this network namespace, or one of the test's own.
#[derive(Default)]
struct Place {
    netns: Option<String>,
}

impl Place {
    /// A new network namespace whose one interface is lo, prepared for mDNS by the script
    /// `scripts/setup.sh` runs on a loopback-only host.
    fn namespace() -> Place {
        let name = format!("rmicro-mdns-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("`ip {}`: {e} (iproute2 is needed)", args.join(" ")));
            assert!(
                out.status.success(),
                "`ip {}` failed (the mdns interop test makes a network namespace: run it as \
                 root): {}",
                args.join(" "),
                stderr(&out)
            );
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/loopback-multicast.sh"
        );
        ip(&["netns", "exec", &name, "bash", script]);
        Place { netns: Some(name) }
    }

    /// `program args` as a command line run here.
    fn command<'a>(&'a self, program: &'a str, args: &[&'a str]) -> (String, Vec<&'a str>) {
        match &self.netns {
            None => (program.to_owned(), args.to_vec()),
            Some(name) => {
                let mut all = vec!["netns", "exec", name.as_str(), program];
                all.extend_from_slice(args);
                ("ip".to_owned(), all)
            }
        }
    }

    fn spawn(&self, program: &str, args: &[&str]) -> Proc {
        let (program, args) = self.command(program, args);
        Proc::spawn(&program, &args, &[])
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let (program, args) = self.command(program, args);
        run(&program, &args, &[])
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(name) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A registry both sides are given by flags (none for mdns, the default on both sides).
struct Registry {
    flags: Vec<String>,
    _server: Box<dyn std::any::Any>,
}

impl Registry {
    fn flags(&self) -> Vec<&str> {
        self.flags.iter().map(String::as_str).collect()
    }
}

fn registry(kind: &str) -> Registry {
    let (address, server): (Option<String>, Box<dyn std::any::Any>) = match kind {
        "mdns" => (None, Box::new(())),
        "consul" => {
            let agent = consul::start();
            (Some(consul::address(&agent)), Box::new(agent))
        }
        "etcd" => {
            // go-micro's etcd registry takes `host:port` (it skips an address with a scheme).
            let server = etcd::start();
            (Some(server.addr.to_string()), Box::new(server))
        }
        "nats" => {
            let server = Nats::start();
            (Some(server.url()), Box::new(server))
        }
        other => panic!("no registry {other}"),
    };
    let mut flags = Vec::new();
    if let Some(address) = address {
        flags.push(format!("--registry={kind}"));
        flags.push(format!("--registry_address={address}"));
    }
    Registry {
        flags,
        _server: server,
    }
}

/// Both directions of RPC, go-micro's errors and deregistration, on one registry.
fn rpc_both_ways(kind: &str) {
    let _lock = seed_lock();
    let (client, service) = (v5("client"), v5("service"));
    let place = if kind == "mdns" {
        Place::namespace()
    } else {
        Place::default()
    };
    let registry = registry(kind);
    let flags = registry.flags();
    let started = Instant::now();

    // go-micro v5 client -> rmicro service.
    let mut rmicro = place.spawn(SERVICE, &flags);
    rmicro.wait_for("registered", UP);
    let go_client = |extra: &[&str]| {
        let mut args = flags.clone();
        args.extend_from_slice(extra);
        place.run(&client, &args)
    };
    for content_type in ["application/json", "application/protobuf"] {
        let out = go_client(&[&format!("--content_type={content_type}")]);
        assert_eq!(
            stdout(&out).trim(),
            format!("reply {DAVIE}"),
            "{kind}, {content_type}; stderr: {}",
            stderr(&out)
        );
    }
    let out = go_client(&["--name=bob"]);
    assert_eq!(out.status.code(), Some(1), "{kind}: {}", stderr(&out));
    let err = labelled_json(&stdout(&out), "error");
    assert_eq!(err["id"], "student_service", "{kind}: {err}");
    assert_eq!(err["code"], 404, "{kind}: {err}");
    assert_eq!(err["status"], "Not Found", "{kind}: {err}");
    let out = go_client(&["--endpoint=StudentService.Expel"]);
    let err = labelled_json(&stdout(&out), "error");
    assert_eq!(err["code"], 404, "{kind}: {err}");
    assert!(
        err["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("unknown service endpoint `StudentService.Expel`")),
        "{kind}: {err}"
    );

    // Deregistration: a fresh go-micro client no longer finds the stopped service.
    rmicro.signal("TERM");
    assert_eq!(rmicro.wait_exit(UP), Some(0), "{kind}: student_service");
    let out = go_client(&[]);
    assert_eq!(out.status.code(), Some(1), "{kind}: {}", stdout(&out));
    // go-micro v5 words it `service <name>: not found` (v1-v4, and rmicro, `error selecting
    // <name> node: not found`).
    let err = labelled_json(&stdout(&out), "error");
    assert_eq!(
        err,
        serde_json::json!({
            "id": "go.micro.client",
            "code": 500,
            "detail": "service student_service: not found",
            "status": "Internal Server Error",
        }),
        "{kind}"
    );

    // rmicro client -> go-micro v5 service, in protobuf (student_client's default) and JSON.
    let mut peer = place.spawn(&service, &flags);
    peer.wait_for("ready 127.0.0.1:", UP);
    for content_type in ["application/protobuf", "application/json"] {
        let content_flag = format!("--client_content_type={content_type}");
        let mut args = flags.clone();
        args.push(&content_flag);
        let out = place.run(CLIENT, &args);
        assert_eq!(
            stdout(&out).trim(),
            DAVIE,
            "{kind}, {content_type}; stderr: {}",
            stderr(&out)
        );
        peer.wait_for(
            &format!(r#"called {{"name":"davie"}} as {content_type}"#),
            UP,
        );
    }
    report(&format!("RPC both ways over {kind}"), started);
}

#[test]
fn rpc_both_ways_over_mdns() {
    rpc_both_ways("mdns");
}

#[test]
fn rpc_both_ways_over_consul() {
    rpc_both_ways("consul");
}

#[test]
fn rpc_both_ways_over_etcd() {
    rpc_both_ways("etcd");
}

#[test]
fn rpc_both_ways_over_nats() {
    rpc_both_ways("nats");
}

/// go-micro -> rmicro and rmicro -> go-micro through one broker. `rmicro` and `go_flags` are
/// each side's flags for it (and for the registry the http broker finds its peers through).
fn broker_both_ways(kind: &str, rmicro: &[&str], go_flags: &[&str]) {
    let (publisher, subscriber, service) = (v5("publisher"), v5("subscriber"), v5("service"));
    let started = Instant::now();

    // go-micro's client.Publish (JSON, protobuf) and broker.Publish -> message_subscriber.
    let mut ours = Proc::spawn(SUBSCRIBER, rmicro, &[]);
    ours.wait_for("started", UP);
    for content_type in ["application/json", "application/protobuf"] {
        let mut args = go_flags.to_vec();
        let flag = format!("--content_type={content_type}");
        args.push(&flag);
        let out = run(&publisher, &args, &[]);
        assert_eq!(stdout(&out).trim(), "published", "{kind}: {}", stderr(&out));
        // go-micro's client.Publish sets `Micro-ID`, which `Event::id()` reads.
        let line = ours.wait_for(
            &format!("received: {DAVIE} (name header: ) as {content_type}, id "),
            UP,
        );
        let id = line.rsplit(", id ").next().unwrap_or_default().trim();
        assert_eq!(id.len(), 36, "{kind}: go-micro's uuid in `{line}`");
    }
    let mut args = go_flags.to_vec();
    args.push("--raw");
    let out = run(&publisher, &args, &[]);
    assert_eq!(stdout(&out).trim(), "published", "{kind}: {}", stderr(&out));
    ours.wait_for(&format!("received: {DAVIE} (name header: davie)"), UP);
    // A stop, not a kill: it deregisters its http broker node, which would otherwise stay
    // listed (and refuse connections) until its TTL.
    ours.signal("TERM");
    assert_eq!(ours.wait_exit(UP), Some(0), "{kind}: message_subscriber");

    // message_publisher -> go-micro's broker.Subscribe, with go-micro's headers.
    let mut peer = Proc::spawn(&subscriber, go_flags, &[]);
    peer.wait_for("ready", UP);
    let out = run(PUBLISHER, rmicro, &[]);
    assert_eq!(
        stdout(&out).trim(),
        format!("published to {TOPIC}"),
        "{kind}: {}",
        stderr(&out)
    );
    let (header, body) = received(&peer.wait_for("received header=", UP));
    assert_eq!(body, DAVIE, "{kind}");
    assert_eq!(header["name"], "davie", "{kind}: {header}");
    assert_eq!(
        header["Content-Type"], "application/json",
        "{kind}: {header}"
    );
    assert_eq!(header["Micro-Topic"], TOPIC, "{kind}: {header}");
    assert!(header["Micro-ID"].is_string(), "{kind}: {header}");
    // It exits after the one message, deregistering its http broker node.
    assert_eq!(peer.wait_exit(UP), Some(0), "{kind}: go-micro subscriber");

    // message_publisher -> go-micro's server-side subscriber, which decodes by Content-Type
    // and reads the id under go-micro's `Micro-ID`.
    let mut peer = Proc::spawn(&service, go_flags, &[]);
    peer.wait_for("ready 127.0.0.1:", UP);
    for content_type in ["application/json", "application/protobuf"] {
        let mut args = rmicro.to_vec();
        let flag = format!("--client_content_type={content_type}");
        args.push(&flag);
        let out = run(PUBLISHER, &args, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let line = peer.wait_for(&format!("event {DAVIE} as {content_type} id "), UP);
        let id = line.rsplit(" id ").next().unwrap_or_default().trim();
        assert!(!id.is_empty(), "{kind}: no Micro-ID in `{line}`");
    }
    report(&format!("{kind} broker both ways"), started);
}

#[test]
fn http_broker_both_ways_through_etcd() {
    let _lock = seed_lock();
    let server = etcd::start();
    let registry = [
        "--registry=etcd".to_owned(),
        format!("--registry_address={}", server.addr),
    ];
    let flags: Vec<&str> = registry.iter().map(String::as_str).collect();
    let mut go_flags = flags.clone();
    go_flags.push("--broker=http");
    broker_both_ways("http", &flags, &go_flags);
}

#[test]
fn nats_broker_both_ways() {
    let _lock = seed_lock();
    let server = Nats::start();
    let flags = [
        "--registry=nats".to_owned(),
        format!("--registry_address={}", server.url()),
        "--broker=nats".to_owned(),
        format!("--broker_address={}", server.url()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    broker_both_ways("nats", &flags, &flags);
}

#[test]
fn rabbitmq_broker_both_ways() {
    let _lock = seed_lock();
    let server = rabbitmq::shared();
    let nats = Nats::start();
    let flags = [
        "--registry=nats".to_owned(),
        format!("--registry_address={}", nats.url()),
        "--broker=rabbitmq".to_owned(),
        format!("--broker_address={}", server.url()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    broker_both_ways("rabbitmq", &flags, &flags);
}

/// go-micro's `client.Stream` against rmicro's streaming endpoints, on go-micro's default
/// stack: a server stream (one request, a reply per student, then EOS) and a bidirectional
/// one (a reply per request; a name not in the class ends it with go-micro's 404), in JSON and
/// protobuf.
#[test]
fn go_micro_streams_to_rmicro_service() {
    go_micro_streams("mucp");
}

/// The same over go-micro's grpc protocol: go-micro's grpc client (`--client=grpc`) against
/// rmicro's `student_service --server=grpc`; the end of a stream is its `grpc-status`, the
/// 404 a gRPC NotFound carrying go-micro's error.
#[test]
fn go_micro_grpc_streams_to_rmicro_service() {
    go_micro_streams("grpc");
}

fn go_micro_streams(protocol: &str) {
    let _lock = seed_lock();
    let grpc = protocol == "grpc";
    // Built with `-tags grpc` (go-micro's grpc packages break etcd's client when linked in).
    let stream_client = v5(if grpc {
        "grpc/streamclient"
    } else {
        "streamclient"
    });
    let registry = registry("nats");
    let mut flags = registry.flags();
    let started = Instant::now();
    let mut service_flags = flags.clone();
    if grpc {
        service_flags.push("--server=grpc");
        flags.push("--client=grpc");
    }
    let mut service = Proc::spawn(SERVICE, &service_flags, &[]);
    service.wait_for("registered", UP);
    // go-micro prints the students as its struct orders the fields.
    let class = |names: &[&str]| -> String {
        names
            .iter()
            .map(|name| {
                let (grade, phone) = match *name {
                    "davie" => (80, "12345678901"),
                    "dora" => (91, "12345678902"),
                    _ => (73, "12345678903"),
                };
                format!(
                    "reply {{\"name\":\"{name}\",\"classes\":\"软件工程专业\",\"grade\":{grade},\"phone\":\"{phone}\"}}\n"
                )
            })
            .collect::<String>()
            + "end"
    };
    for content_type in ["application/json", "application/protobuf"] {
        let flag = format!("--content_type={content_type}");
        let run_with = |extra: &str| {
            let mut args = flags.clone();
            args.extend([flag.as_str(), extra]);
            run(&stream_client, &args, &[])
        };
        let out = run_with("--list=d");
        assert_eq!(
            stdout(&out).trim(),
            class(&["davie", "dora", "doug"]),
            "{content_type}: {}",
            stderr(&out)
        );
        let out = run_with("--list=do");
        assert_eq!(
            stdout(&out).trim(),
            class(&["dora", "doug"]),
            "{content_type}"
        );
        let out = run_with("--list=x");
        assert_eq!(
            stdout(&out).trim(),
            "end",
            "{content_type}: no student, just EOS"
        );

        let out = run_with("--get=dora,davie");
        assert_eq!(
            stdout(&out).trim(),
            class(&["dora", "davie"]),
            "{content_type}: {}",
            stderr(&out)
        );
        let out = run_with("--get=davie,bob");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{content_type}: {}",
            stdout(&out)
        );
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("reply {DAVIE}").as_str()),
            "{content_type}"
        );
        let err = labelled_json(&text, "error");
        assert_eq!(err["id"], "student_service", "{content_type}: {err}");
        assert_eq!(err["code"], 404, "{content_type}: {err}");
        assert_eq!(
            err["detail"], "no student named `bob`",
            "{content_type}: {err}"
        );
        if grpc {
            // Client stream: only go-micro's grpc client can end its side (CloseSend; its
            // mucp client says "streamer not implemented").
            let out = run_with("--top=doug,dora,davie");
            assert_eq!(
                stdout(&out).trim(),
                class(&["dora"]),
                "{content_type}: {}",
                stderr(&out)
            );
            let out = run_with("--top=davie,bob");
            assert_eq!(
                out.status.code(),
                Some(1),
                "{content_type}: {}",
                stdout(&out)
            );
            let err = labelled_json(&stdout(&out), "error");
            assert_eq!(err["code"], 404, "{content_type}: {err}");
            assert_eq!(
                err["detail"], "no student named `bob`",
                "{content_type}: {err}"
            );
        }
    }
    report(
        &format!("go-micro {protocol} streams -> rmicro service"),
        started,
    );
}

/// rmicro's `Client::stream` against a go-micro v5 service's streaming handlers (`server.Stream`
/// on go-micro's default stack), found through go-micro's nats registry: a server stream read
/// to go-micro's EOS, and a bidirectional one whose go-micro error ends it, in JSON and
/// protobuf.
#[test]
fn rmicro_streams_to_go_micro_service() {
    rmicro_streams("mucp");
}

/// The same against go-micro's grpc server (`--server=grpc`), which the client picks by the
/// node's `protocol=grpc`. In JSON only: go-micro's grpc server decodes protobuf only into
/// protoc-gen-go's types, and the Go program's Student types are hand-written
/// (`grpc_both_ways` sends protobuf to it with a well-known type instead).
#[test]
fn rmicro_streams_to_go_micro_grpc_service() {
    rmicro_streams("grpc");
}

fn rmicro_streams(protocol: &str) {
    use rmicro::registry::nats::{NatsRegistry, NatsRegistryOptions};
    use rmicro_examples::{Student, StudentRequest};

    let _lock = seed_lock();
    let grpc = protocol == "grpc";
    let service = v5(if grpc { "grpc/service" } else { "service" });
    let server = Nats::start();
    let mut registry_flags = vec![
        "--registry=nats".to_owned(),
        format!("--registry_address={}", server.url()),
    ];
    if grpc {
        registry_flags.push("--server=grpc".to_owned());
    }
    let flags: Vec<&str> = registry_flags.iter().map(String::as_str).collect();
    let content_types: &[&str] = if grpc {
        &["application/json"]
    } else {
        &["application/json", "application/protobuf"]
    };
    let started = Instant::now();
    let mut peer = Proc::spawn(&service, &flags, &[]);
    peer.wait_for("ready 127.0.0.1:", UP);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut options = NatsRegistryOptions::default();
        options.addresses = vec![server.url()];
        let registry = NatsRegistry::new(options).expect("registry");
        let client = rmicro::Client::new(
            std::sync::Arc::new(registry),
            rmicro::rpc::ClientOptions::default(),
        );
        let names = |students: Vec<Student>| -> Vec<String> {
            students.into_iter().map(|s| s.name).collect()
        };
        for &content_type in content_types {
            let opts = || rmicro::rpc::CallOptions {
                content_type: Some(content_type.to_owned()),
                ..rmicro::rpc::CallOptions::default()
            };
            let mut list = client
                .stream_with::<StudentRequest, Student>(
                    "student_service",
                    "StudentService.ListStudents",
                    opts(),
                )
                .await
                .expect("open");
            let prefix = StudentRequest { name: "do".into() };
            list.send(&prefix).await.expect("send");
            let mut got = Vec::new();
            while let Some(student) = list.recv().await.expect("recv") {
                got.push(student);
            }
            assert_eq!(names(got), ["dora", "doug"], "{content_type}");
            list.close_send().await.expect("close");

            let mut get = client
                .stream_with::<StudentRequest, Student>(
                    "student_service",
                    "StudentService.GetStudents",
                    opts(),
                )
                .await
                .expect("open");
            for name in ["doug", "davie"] {
                get.send(&StudentRequest { name: name.into() })
                    .await
                    .expect("send");
                let student = get.recv().await.expect("recv").expect("a student");
                assert_eq!(student.name, name, "{content_type}");
            }
            get.send(&StudentRequest { name: "bob".into() })
                .await
                .expect("send");
            let err = get.recv().await.expect_err("go-micro's error");
            assert_eq!(
                (err.code, err.id.as_str(), err.detail.as_str()),
                (404, "student_service", "no student named `bob`"),
                "{content_type}"
            );

            // Client stream: names, the end of rmicro's side (EOS on mucp, END_STREAM on
            // grpc), one answer.
            for (names, top) in [
                (&["doug", "dora", "davie"][..], Ok("dora")),
                (&["davie", "bob"][..], Err(404)),
            ] {
                let mut stream = client
                    .stream_with::<StudentRequest, Student>(
                        "student_service",
                        "StudentService.TopStudent",
                        opts(),
                    )
                    .await
                    .expect("open");
                for name in names {
                    stream
                        .send(&StudentRequest {
                            name: (*name).into(),
                        })
                        .await
                        .expect("send");
                }
                stream.close_send().await.expect("close");
                match top {
                    Ok(name) => {
                        let student = stream.recv().await.expect("recv").expect("the top");
                        assert_eq!(student.name, name, "{content_type}");
                        // go-micro's mucp server sends no EOS once the caller has sent its own (its
                        // router ends such a stream silently); its grpc server ends with a status.
                        if grpc {
                            assert!(stream.recv().await.expect("the end").is_none());
                        }
                    }
                    Err(code) => {
                        let err = stream.recv().await.expect_err("go-micro's error");
                        assert_eq!(
                            (err.code, err.detail.as_str()),
                            (code, "no student named `bob`"),
                            "{content_type}"
                        );
                    }
                }
            }
        }
    });
    peer.wait_for(r#"streaming students named "do"*"#, UP);
    report(
        &format!("rmicro {protocol} streams -> go-micro service"),
        started,
    );
}

/// go-micro's grpc protocol (gRPC over h2c): go-micro v5's grpc client (`--client=grpc`) calls
/// rmicro's `student_service --server=grpc`, and rmicro's `student_client` calls a go-micro
/// v5 grpc server (`--server=grpc`), whose registry record says `protocol=grpc`: in
/// protobuf and JSON, with go-micro's errors.
#[test]
fn grpc_both_ways() {
    let _lock = seed_lock();
    // Built with `-tags grpc` (go-micro's grpc packages break etcd's client when linked in).
    let (client, service) = (v5("grpc/client"), v5("grpc/service"));
    let registry = registry("nats");
    let flags = registry.flags();
    let started = Instant::now();

    // go-micro grpc client -> rmicro grpc server.
    let mut server_flags = flags.clone();
    server_flags.push("--server=grpc");
    let mut rmicro = Proc::spawn(SERVICE, &server_flags, &[]);
    rmicro.wait_for("registered", UP);
    for content_type in ["application/protobuf", "application/json"] {
        let flag = format!("--content_type={content_type}");
        let mut args = flags.clone();
        args.extend(["--client=grpc", flag.as_str()]);
        let out = run(&client, &args, &[]);
        assert_eq!(
            stdout(&out).trim(),
            format!("reply {DAVIE}"),
            "{content_type}: {}",
            stderr(&out)
        );
    }
    let mut args = flags.clone();
    args.extend(["--client=grpc", "--name=bob"]);
    let out = run(&client, &args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = labelled_json(&stdout(&out), "error");
    assert_eq!(err["id"], "student_service", "{err}");
    assert_eq!(err["code"], 404, "{err}");
    assert_eq!(err["detail"], "no student named `bob`", "{err}");
    rmicro.signal("TERM");
    assert_eq!(rmicro.wait_exit(UP), Some(0));

    // rmicro client -> go-micro grpc server, picked by the node's `protocol=grpc`. The
    // student calls in JSON: go-micro's grpc server decodes protobuf with the v2 API
    // (google.golang.org/protobuf), which needs protoc-gen-go's message types, and the test's
    // Go students are hand-written legacy ones (it refuses them: "invalid message"). Protobuf
    // goes to Greeter.Hello, whose types are protoc-gen-go's.
    let mut peer = Proc::spawn(&service, &server_flags, &[]);
    peer.wait_for("ready 127.0.0.1:", UP);
    let content_type = "application/json";
    let content_flag = format!("--client_content_type={content_type}");
    let mut args = flags.clone();
    args.push(&content_flag);
    let out = run(CLIENT, &args, &[]);
    assert_eq!(
        stdout(&out).trim(),
        DAVIE,
        "{content_type}: {}",
        stderr(&out)
    );
    // go-micro's grpc server names the codec.
    peer.wait_for(r#"called {"name":"davie"} as application/grpc+json"#, UP);
    // go-micro's error, through the library client.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use rmicro::registry::nats::{NatsRegistry, NatsRegistryOptions};
        let mut options = NatsRegistryOptions::default();
        options.addresses = vec![
            flags[1]
                .trim_start_matches("--registry_address=")
                .to_owned(),
        ];
        let registry = NatsRegistry::new(options).expect("registry");
        let client = rmicro::Client::new(
            std::sync::Arc::new(registry),
            rmicro::rpc::ClientOptions {
                content_type: Some("application/json".to_owned()),
                ..rmicro::rpc::ClientOptions::default()
            },
        );
        let bob = rmicro_examples::StudentRequest { name: "bob".into() };
        let err = client
            .call::<_, rmicro_examples::Student>(
                "student_service",
                "StudentService.GetStudent",
                &bob,
            )
            .await
            .expect_err("go-micro's 404");
        assert_eq!(
            (err.code, err.id.as_str(), err.detail.as_str()),
            (404, "student_service", "no student named bob")
        );
        // Protobuf to go-micro's grpc server: Greeter.Hello takes and returns protobuf's
        // StringValue (protoc-gen-go's type), whose one field, a string with tag 1, is
        // StudentRequest's `name` on the wire.
        let opts = rmicro::rpc::CallOptions {
            content_type: Some("application/protobuf".to_owned()),
            ..rmicro::rpc::CallOptions::default()
        };
        let davie = rmicro_examples::StudentRequest {
            name: "davie".into(),
        };
        let reply: rmicro_examples::StudentRequest = client
            .call_with("student_service", "Greeter.Hello", &davie, opts)
            .await
            .expect("protobuf over grpc");
        assert_eq!(reply.name, "hello davie");
    });
    peer.wait_for("hello davie as application/grpc+proto", UP);
    report("grpc both ways", started);
}
