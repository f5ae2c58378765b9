//! The seed's scenario with real processes on the embedded defaults: mDNS on loopback and
//! the http broker.

mod support;

use std::time::Duration;

use support::{
    CLIENT, DAVIE, NOT_FOUND, PUBLISHER, Proc, SERVICE, SUBSCRIBER, UP, WORKER, run, seed_lock,
    stderr, stdout,
};

#[test]
fn client_without_a_service_prints_go_micro_s_not_found_error() {
    let _lock = seed_lock();
    let out = run(CLIENT, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), NOT_FOUND);
}

#[test]
fn client_finds_the_service_over_mdns_and_sigterm_deregisters_it() {
    let _lock = seed_lock();
    let mut service = Proc::spawn(
        SERVICE,
        &["--register_ttl=10", "--register_interval=5"],
        &[],
    );
    let address = service.address();
    service.wait_for("registered", UP);

    let out = run(CLIENT, &[], &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    // The README's service answers the health paths and /metrics on the same listener.
    assert_eq!(
        raw_get(&address, "/health/live"),
        ("200".to_owned(), "{\"status\":\"up\"}\n".to_owned())
    );
    let (status, ready) = raw_get(&address, "/health/ready");
    assert_eq!(status, "200", "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("report JSON");
    assert_eq!(ready["status"], "up", "{ready}");
    assert_eq!(ready["info"]["service"], "student_service", "{ready}");
    let (status, metrics) = raw_get(&address, "/metrics");
    assert_eq!(status, "200");
    assert!(
        metrics.contains(
            r#"micro_request_total{service="student_service",endpoint="StudentService.GetStudent",status="success",code="200"} 1"#
        ),
        "{metrics}"
    );

    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());
    assert_eq!(service.count("deregistered"), 1, "{}", service.transcript());

    let out = run(CLIENT, &[], &[]);
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
}

#[test]
fn broadcast_reaches_every_subscriber_and_a_queue_group_once() {
    let _lock = seed_lock();
    let mut subscribers = [
        Proc::spawn(SUBSCRIBER, &[], &[]),
        Proc::spawn(SUBSCRIBER, &[], &[]),
    ];
    let mut workers = [Proc::spawn(WORKER, &[], &[]), Proc::spawn(WORKER, &[], &[])];
    for p in subscribers.iter_mut().chain(workers.iter_mut()) {
        p.wait_for("registered", UP);
    }

    const MESSAGES: usize = 4;
    for _ in 0..MESSAGES {
        let out = run(PUBLISHER, &[], &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(stdout(&out).trim(), "published to go.micro.srv.message");
    }

    let expected = format!("received: {DAVIE} (name header: davie)");
    for s in &mut subscribers {
        s.wait_for(&expected, UP);
        s.drain(Duration::from_millis(500));
        assert_eq!(s.count(&expected), MESSAGES, "{}", s.transcript());
    }
    // The queue group shares the messages: every message handled exactly once.
    for w in &mut workers {
        w.drain(Duration::from_millis(500));
    }
    let worked: usize = workers.iter().map(|w| w.count("worked: ")).sum();
    assert_eq!(
        worked,
        MESSAGES,
        "{}\n---\n{}",
        workers[0].transcript(),
        workers[1].transcript()
    );
}

#[test]
fn flags_env_and_help_follow_go_micro() {
    // A bad flag value: exit 2, naming the flag.
    let out = run(SERVICE, &["--register_ttl=0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid `--register_ttl`: must be greater than 0"),
        "{}",
        stderr(&out)
    );
    // The environment is named when it supplied the bad value.
    let out = run(
        SERVICE,
        &["--register_ttl=10"],
        &[("MICRO_REGISTER_INTERVAL", "20")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid `MICRO_REGISTER_INTERVAL`"),
        "{}",
        stderr(&out)
    );
    // Unknown registry: the valid ones are listed.
    let out = run(SERVICE, &["--registry", "consol"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown registry `consol`"),
        "{}",
        stderr(&out)
    );
    // --help tells the truth: the code's version is the effective default.
    let out = run(SERVICE, &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for needle in [
        "--register_ttl",
        "--register_interval",
        "--registry",
        "--broker",
        "--server_metadata",
        "[env: MICRO_REGISTRY]",
        "[default: v1.0.0, set in code]",
        "[default: 90s]",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

/// With `--log_format=json`, every line is a JSON object, and the lines logged while serving
/// a call carry its request id (the `rpc` span, with `Micro-Id` and the endpoint).
#[test]
fn json_logs_carry_the_request_id_of_each_call() {
    let _lock = seed_lock();
    let mut service = Proc::spawn(
        SERVICE,
        &["--log_format=json", "--log_level=debug"],
        &[("RUST_LOG", "")],
    );
    let started = service.wait_for("\"started\"", UP);
    let started: serde_json::Value = serde_json::from_str(&started)
        .unwrap_or_else(|e| panic!("the started line is not JSON ({e}): {started}"));
    let address = started["fields"]["address"]
        .as_str()
        .expect("the started line's address")
        .to_owned();
    service.wait_for("registered", UP);
    let reply = raw_post_as(
        &address,
        "StudentService.GetStudent",
        "application/json",
        br#"{"name":"davie"}"#,
        "req-4711",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    service.wait_for("rpc handled", UP);
    service.signal("TERM");
    assert_eq!(service.wait_exit(UP), Some(0), "{}", service.transcript());
    let transcript = service.transcript();
    let lines: Vec<serde_json::Value> = transcript
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{transcript}");
    let handled = lines
        .iter()
        .find(|l| l["fields"]["message"] == "rpc handled")
        .unwrap_or_else(|| panic!("no `rpc handled` line: {transcript}"));
    assert_eq!(handled["level"], "DEBUG");
    assert_eq!(handled["spans"][0]["name"], "rpc", "{handled}");
    assert_eq!(handled["spans"][0]["id"], "req-4711", "{handled}");
    assert_eq!(
        handled["spans"][0]["endpoint"], "StudentService.GetStudent",
        "{handled}"
    );
}

/// A raw HTTP/1.0 GET: the status code and the body.
fn raw_get(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body.to_owned())
}

/// One raw HTTP/1.1 request, the way any peer could send it; returns the response.
fn raw_post(address: &str, endpoint: &str, content_type: &str, body: &[u8]) -> String {
    raw_post_as(address, endpoint, content_type, body, "raw-1")
}

/// [`raw_post`] with the request id `id` (`Micro-Id`).
fn raw_post_as(address: &str, endpoint: &str, content_type: &str, body: &[u8], id: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         Micro-Service: student_service\r\nMicro-Endpoint: {endpoint}\r\n\
         Micro-Method: {endpoint}\r\nMicro-Id: {id}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read");
    String::from_utf8_lossy(&reply).into_owned()
}

fn micro_error(reply: &str) -> serde_json::Value {
    let line = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("micro-error:"))
        .unwrap_or_else(|| panic!("no Micro-Error header in {reply:?}"));
    let json = line.split_once(':').map(|x| x.1).unwrap_or_default().trim();
    serde_json::from_str(json).expect("error JSON")
}

#[test]
fn bad_input_gets_go_micro_errors_and_the_service_keeps_serving() {
    let _lock = seed_lock();
    let mut service = Proc::spawn(SERVICE, &[], &[]);
    let address = service.address();
    service.wait_for("registered", UP);

    let cases: [(&str, &str, &[u8], i64); 4] = [
        (
            "StudentService.GetStudent",
            "application/json",
            b"{\"name\":",
            400,
        ),
        ("StudentService.NoSuch", "application/json", b"{}", 404),
        ("StudentService.GetStudent", "text/xml", b"<name/>", 415),
        (
            "StudentService.GetStudent",
            "application/json",
            br#"{"name":"nobody"}"#,
            404,
        ),
    ];
    for (endpoint, ct, body, code) in cases {
        let reply = raw_post(&address, endpoint, ct, body);
        let err = micro_error(&reply);
        assert_eq!(err["code"], code, "{endpoint} {ct}: {reply}");
        assert!(!err["detail"].as_str().unwrap_or("").is_empty(), "{reply}");
    }

    let reply = raw_post(
        &address,
        "StudentService.GetStudent",
        "application/json",
        br#"{"name":"davie"}"#,
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(DAVIE), "{reply}");
    let out = run(CLIENT, &[], &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
}
