//! The `rmicro` command against real services: an rmicro service in this process on the
//! default registry (mDNS on loopback) and broker (http), and the go-micro v4 service of the
//! interop suite on a Consul agent. Every command, its JSON output, its exit status, and the
//! bad input it refuses before sending anything.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmicro_conformance::process::{Proc, run, stderr, stdout};

mod support;

use support::{DAVIE, RMICRO, UP, student_service, unique};

/// Runs `rmicro args...`: (exit code, stdout, stderr).
fn rmicro(args: &[&str]) -> (i32, String, String) {
    let out = run(RMICRO, args, &[]);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// `rmicro` until `ok` accepts its output (the registry may take a moment to show a change).
fn rmicro_until(args: &[&str], ok: impl Fn(i32, &str) -> bool) -> (i32, String, String) {
    let deadline = Instant::now() + UP;
    loop {
        let (code, out, err) = rmicro(args);
        if ok(code, &out) {
            return (code, out, err);
        }
        assert!(
            Instant::now() < deadline,
            "rmicro {args:?}: still {code} after {UP:?}:\n{out}{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_describe_call_and_health_on_the_default_registry() {
    let name = unique("cli-students");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = student_service(&name, Arc::clone(&seen)).await;
    let address = service.address().to_string();
    tokio::task::block_in_place(|| {
        // services: a table with the service, its version and its node count.
        let (_, out, _) = rmicro_until(&["services"], |code, out| code == 0 && out.contains(&name));
        let row = out
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [name.as_str(), "latest", "1"]
        );
        assert!(out.starts_with("SERVICE"), "{out}");
        let (code, out, _) = rmicro(&["services", "--output", "json"]);
        assert_eq!(code, 0);
        let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert!(
            list.as_array()
                .expect("array")
                .contains(&serde_json::json!({"name": name, "version": "latest", "nodes": 1})),
            "{list}"
        );

        // describe: the node, its age, the endpoint's shapes.
        let (code, out, err) = rmicro(&["describe", &name]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&address), "{out}");
        assert!(
            out.contains("StudentService.GetStudent  StudentRequest {name string}  Student {name string, classes string, grade int32, phone string}  Looks a student up by name."),
            "{out}"
        );
        let node = out
            .lines()
            .find(|l| l.contains(&address))
            .unwrap_or_else(|| panic!("{out}"));
        let age = node.split_whitespace().nth(2).expect("age");
        assert!(
            age.ends_with('s') && age != "-",
            "an age in seconds: {node}"
        );
        let (_, out, _) = rmicro(&["describe", &name, "--output", "json"]);
        let records: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(records[0]["nodes"][0]["address"], address.as_str());

        // call: the reply, headers and metadata sent as call headers.
        let (code, out, err) = rmicro(&[
            "call",
            &name,
            "StudentService.GetStudent",
            r#"{"name":"davie"}"#,
            "--header",
            "X-Trace:abc",
            "--metadata",
            "Tenant:t1",
            "--output",
            "json",
        ]);
        assert_eq!((code, out.trim()), (0, DAVIE), "{err}");
        let headers = seen.lock().expect("lock").last().cloned().expect("served");
        assert_eq!(
            headers.get("X-Trace").map(String::as_str),
            Some("abc"),
            "{headers:?}"
        );
        assert_eq!(
            headers.get("Tenant").map(String::as_str),
            Some("t1"),
            "{headers:?}"
        );
        // Straight to an address, the registry not asked (a memory registry is empty).
        let (code, out, err) = rmicro(&[
            "--registry",
            "memory",
            "call",
            &name,
            "StudentService.GetStudent",
            r#"{"name":"davie"}"#,
            "--address",
            &address,
            "--output",
            "json",
        ]);
        assert_eq!((code, out.trim()), (0, DAVIE), "{err}");

        // registry list and get: the node as the registry holds it.
        let (code, out, err) = rmicro(&["registry", "list"]);
        assert_eq!(code, 0, "{err}");
        let row = out
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(row.ends_with(&address), "{row}");
        let (code, out, err) = rmicro(&["registry", "get", &name, "--output", "json"]);
        assert_eq!(code, 0, "{err}");
        let records: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(records[0]["name"], name.as_str());
        assert_eq!(
            records[0]["endpoints"][0]["name"],
            "StudentService.GetStudent"
        );
        let (code, _, err) = rmicro(&["registry", "get", "nobody_service"]);
        assert_eq!(code, 1);
        assert!(err.contains("`nobody_service` is not registered"), "{err}");

        // health: every node ready.
        let (code, out, err) = rmicro(&["health", &name]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&address) && out.contains("ready"), "{out}");
    });
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_go_micro_s_json_and_bad_input_is_refused_before_sending() {
    let name = unique("cli-errors");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = student_service(&name, Arc::clone(&seen)).await;
    tokio::task::block_in_place(|| {
        rmicro_until(&["services"], |_, out| out.contains(&name));
        // A service nobody registered: the seed's error, to the letter, exit 1.
        let (code, out, _) = rmicro(&["call", "nobody_service", "X.Y", "{}"]);
        assert_eq!(code, 1);
        assert_eq!(
            out.trim(),
            r#"{"id":"go.micro.client","code":500,"detail":"error selecting nobody_service node: not found","status":"Internal Server Error"}"#
        );
        // The service's own error.
        let (code, out, _) = rmicro(&[
            "call",
            &name,
            "StudentService.GetStudent",
            r#"{"name":"x"}"#,
        ]);
        assert_eq!(code, 1);
        let err: serde_json::Value = serde_json::from_str(out.trim()).expect("error JSON");
        assert_eq!(
            (err["code"].as_i64(), err["id"].as_str()),
            (Some(404), Some("student_service"))
        );
        // An unknown endpoint.
        let (code, out, _) = rmicro(&["call", &name, "StudentService.Expel", "{}"]);
        assert_eq!(code, 1);
        assert!(
            out.contains("unknown service endpoint `StudentService.Expel`"),
            "{out}"
        );
        let served = seen.lock().expect("lock").len();
        // Not JSON, a header without a colon, a bad timeout, an unknown registry: exit 2 with
        // one line, nothing sent.
        for (args, says) in [
            (
                vec!["call", &name, "StudentService.GetStudent", "{name:"],
                "the request is not JSON",
            ),
            (
                vec![
                    "call",
                    &name,
                    "StudentService.GetStudent",
                    "{}",
                    "--header",
                    "nocolon",
                ],
                "--header `nocolon`: expected `key:value`",
            ),
            (
                vec![
                    "call",
                    &name,
                    "StudentService.GetStudent",
                    "{}",
                    "--timeout",
                    "soon",
                ],
                "--timeout `soon`",
            ),
            (vec!["--registry", "zk9", "services"], "registry"),
            (
                vec!["broker", "publish", "t", "not json"],
                "the message is not JSON",
            ),
        ] {
            let (code, out, err) = rmicro(&args);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            assert!(err.contains(says), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(
                !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
                "{err}"
            );
        }
        assert_eq!(
            seen.lock().expect("lock").len(),
            served,
            "nothing reached the service"
        );
        // A registry that cannot be reached: one line, exit 1.
        let (code, _, err) = rmicro(&[
            "--registry",
            "consul",
            "--registry_address",
            "127.0.0.1:1",
            "services",
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("127.0.0.1:1"),
            "{err}"
        );
        // A node that is down is reported, exit 1.
        let (code, out, _) = rmicro(&["health", "nobody_service"]);
        assert_eq!(code, 1, "{out}");
    });
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_watch_streams_changes_and_broker_round_trips() {
    let name = unique("cli-watch");
    let mut watch = Proc::spawn(
        RMICRO,
        &["registry", "watch", &name, "--output", "json"],
        &[],
    );
    watch.wait_for("watching the registry", UP);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = student_service(&name, seen).await;
    let address = service.address().to_string();
    let line = tokio::task::block_in_place(|| watch.wait_for(r#""action":"create""#, UP));
    let change: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(change["service"]["name"], name.as_str());
    assert_eq!(change["service"]["nodes"][0]["address"], address.as_str());
    service.stop().await.expect("stop");
    tokio::task::block_in_place(|| {
        watch.wait_for(r#""action":"delete""#, UP);
        watch.signal("INT");
        assert_eq!(watch.wait_exit(UP), Some(0), "{}", watch.transcript());

        // A message published by one rmicro command reaches another's subscription (the http
        // broker, found through mDNS), headers and all.
        let topic = unique("cli.topic");
        let mut sub = Proc::spawn(
            RMICRO,
            &[
                "broker",
                "subscribe",
                &topic,
                "--count",
                "1",
                "--output",
                "json",
            ],
            &[],
        );
        sub.wait_for("subscribed to", UP);
        let deadline = Instant::now() + UP;
        let line = loop {
            let (code, out, err) = rmicro(&[
                "broker",
                "publish",
                &topic,
                r#"{"name":"davie"}"#,
                "--header",
                "X-Source:cli",
            ]);
            assert_eq!(code, 0, "{out}{err}");
            assert_eq!(out.trim(), format!("published to {topic}"));
            sub.drain(Duration::from_millis(500));
            if let Some((_, l)) = sub.seen.iter().find(|(_, l)| l.contains(r#""body""#)) {
                break l.clone();
            }
            assert!(Instant::now() < deadline, "{}", sub.transcript());
        };
        let msg: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        assert_eq!(msg["body"], serde_json::json!({"name": "davie"}));
        assert_eq!(msg["header"]["X-Source"], "cli");
        assert_eq!(msg["header"]["Micro-Topic"], topic.as_str());
        assert_eq!(
            sub.wait_exit(UP),
            Some(0),
            "--count 1: {}",
            sub.transcript()
        );
    });
}

/// go-micro v4's student service (the interop suite's) on Consul: listed, described, called,
/// probed through its `Debug.Health`, and sent the seed's message.
#[cfg(feature = "consul")]
#[test]
fn a_go_micro_service_is_listed_described_called_and_sent_messages() {
    use rmicro_conformance::servers::consul;
    let go_service = rmicro_conformance::gomicro::program("service");
    let agent = consul::start();
    let registry = format!("--registry_address={}", consul::address(&agent));
    let mut service = Proc::spawn(&go_service, &[&registry], &[]);
    service.wait_for("ready 127.0.0.1:", UP);
    let on = |args: &[&str]| {
        let mut all = vec!["--registry=consul", registry.as_str()];
        all.extend_from_slice(args);
        rmicro(&all)
    };
    let (code, out, err) = on(&["services"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("student_service ")),
        "{out}"
    );
    let (code, out, err) = on(&["describe", "student_service"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("StudentService.GetStudent"), "{out}");
    assert!(
        out.contains("go.micro.srv.message"),
        "the subscriber: {out}"
    );
    let (code, out, err) = on(&[
        "call",
        "student_service",
        "StudentService.GetStudent",
        r#"{"name":"davie"}"#,
        "--output",
        "json",
    ]);
    assert_eq!((code, out.trim()), (0, DAVIE), "{err}");
    service.wait_for(r#"called {"name":"davie"} as application/json"#, UP);
    let (code, out, err) = on(&["health", "student_service"]);
    assert_eq!(code, 0, "{out}{err}");
    // go-micro v4 has no Debug handler: the node answers, so it serves; readiness unknown.
    assert!(
        out.contains("serving; no health endpoint (rpc: can't find service Debug)"),
        "{out}"
    );
    let (code, out, err) = on(&[
        "broker",
        "publish",
        "go.micro.srv.message",
        r#"{"name":"davie","classes":"软件工程专业","grade":80,"phone":"12345678901"}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    service.wait_for(r#"event {"name":"davie""#, UP);
}

/// `method path` with `body` over HTTP/1.0: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    // A body the gateway refuses may be cut off while it is written.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gateway_calls_endpoints_and_answers_errors_with_their_status() {
    let name = unique("cli-api");
    let service = student_service(&name, Arc::new(Mutex::new(Vec::new()))).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut api = Proc::spawn(RMICRO, &["api", "--address", &addr], &[]);
    tokio::task::block_in_place(|| {
        api.wait_for("api gateway listening", UP);
        let path = format!("/{name}/StudentService.GetStudent");
        let deadline = Instant::now() + UP;
        let (status, body) = loop {
            let answer = http(&addr, "POST", &path, br#"{"name":"davie"}"#);
            if answer.0 == 200 || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let davie: serde_json::Value = serde_json::from_str(DAVIE).expect("JSON");
        assert_eq!(reply, davie);

        let error = |status: u16, body: &str| -> serde_json::Value {
            let e: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: {e}: {body}"));
            assert_eq!(e["code"].as_u64(), Some(u64::from(status)), "{body}");
            e
        };
        // The service's own error, its code as the status.
        let (status, body) = http(&addr, "POST", &path, br#"{"name":"x"}"#);
        assert_eq!(status, 404);
        assert_eq!(error(status, &body)["id"], "student_service");
        // A service nobody registered: go-micro's client error.
        let (status, body) = http(&addr, "POST", "/nobody_service/X.Y", b"{}");
        assert_eq!(status, 500);
        assert_eq!(
            error(status, &body)["detail"],
            "error selecting nobody_service node: not found"
        );
        // Not JSON, not POST, not a call's path, too large.
        let (status, body) = http(&addr, "POST", &path, b"{name:");
        assert_eq!(status, 400);
        assert!(
            error(status, &body)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not JSON"))
        );
        let (status, body) = http(&addr, "GET", &path, b"");
        assert_eq!(status, 405);
        error(status, &body);
        let (status, body) = http(&addr, "POST", "/", b"{}");
        assert_eq!(status, 404);
        error(status, &body);
        let big = vec![b' '; 5 << 20];
        let (status, _) = http(&addr, "POST", &path, &big);
        assert_eq!(status, 413);
        // Still serving after all that.
        assert_eq!(http(&addr, "POST", &path, br#"{"name":"davie"}"#).0, 200);
        api.signal("INT");
        assert_eq!(api.wait_exit(UP), Some(0), "{}", api.transcript());
    });
    service.stop().await.expect("stop");
}

/// The broker by flag: nats (a real nats-server), a queue group shared by two subscribers, so
/// each message reaches one of them.
#[cfg(feature = "nats")]
#[test]
fn broker_commands_take_the_broker_by_flag_and_share_a_queue() {
    use rmicro_conformance::servers::nats::Nats;
    let server = Nats::start();
    let address = format!("--broker_address={}", server.url());
    let topic = unique("cli.queue");
    let flags = ["--broker=nats", address.as_str(), "--registry=memory"];
    let subscriber = || {
        let mut args = flags.to_vec();
        args.extend([
            "broker",
            "subscribe",
            &topic,
            "--queue",
            "workers",
            "--output",
            "json",
        ]);
        let mut p = Proc::spawn(RMICRO, &args, &[]);
        p.wait_for("subscribed to", UP);
        p
    };
    let (mut a, mut b) = (subscriber(), subscriber());
    for n in 0..10 {
        let mut args = flags.to_vec();
        let message = format!(r#"{{"n":{n}}}"#);
        args.extend(["broker", "publish", &topic, &message]);
        let (code, out, err) = rmicro(&args);
        assert_eq!(code, 0, "{out}{err}");
    }
    let deadline = Instant::now() + UP;
    loop {
        a.drain(Duration::from_millis(200));
        b.drain(Duration::from_millis(200));
        let got = a.count(r#""body""#) + b.count(r#""body""#);
        if got >= 10 || Instant::now() > deadline {
            assert_eq!(
                got,
                10,
                "each message once:\n{}\n{}",
                a.transcript(),
                b.transcript()
            );
            break;
        }
    }
    for n in 0..10 {
        let body = format!(r#""body":{{"n":{n}}}"#);
        assert_eq!(a.count(&body) + b.count(&body), 1, "message {n} once");
    }
}
