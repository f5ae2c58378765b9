//! The RPC server on 127.0.0.1: go-micro's mucp framing, its errors, limits, panics,
//! timeouts and graceful shutdown, seen through rmicro's client and through raw HTTP requests
//! built the way a go-micro peer builds them.

mod rpc_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use rmicro::registry::Registry as _;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::server::ServerOptions;
use rmicro::rpc::{CallOptions, Strategy};
use rpc_support::*;

const GET: &str = "StudentService.GetStudent";

fn davie() -> StudentRequest {
    StudentRequest {
        name: "davie".into(),
    }
}

/// A raw HTTP/1.1 exchange with a server.
async fn raw(
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: BoxBody<Bytes, Infallible>,
) -> (StatusCode, HeaderMap, Bytes) {
    let http: HttpClient<_, BoxBody<Bytes, Infallible>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(5), http.request(request))
        .await
        .expect("answer within 5 s")
        .expect("http exchange");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

fn full(body: &'static [u8]) -> BoxBody<Bytes, Infallible> {
    Full::new(Bytes::from_static(body)).boxed()
}

fn micro_error(headers: &HeaderMap) -> rmicro::Error {
    let value = headers.get("micro-error").expect("a Micro-Error header");
    rmicro::Error::parse(value.to_str().expect("ascii"))
}

/// go-micro's client (v2+) sends these headers; `Micro-Id` is its sequence number.
fn go_headers(endpoint: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("Micro-Id", "7"),
        ("Micro-Service", SERVICE),
        ("Micro-Method", endpoint),
        ("Micro-Endpoint", endpoint),
        ("Timeout", "5000000000"),
    ]
}

#[tokio::test]
async fn json_round_trip_through_the_registry() {
    let registry = MemoryRegistry::new();
    let _server = start_registered(&registry, "a").await;
    let client = client(Arc::new(registry.clone()), Strategy::Random);
    let student: Student = client.call(SERVICE, GET, &davie()).await.expect("call");
    assert_eq!(
        student,
        Student {
            name: "davie".into(),
            grade: 80,
            server: "a".into()
        }
    );

    // The registry advertises the endpoint with go-micro's description of its types.
    let services = registry.get_service(SERVICE).await.expect("lookup");
    let endpoint = services[0]
        .endpoints
        .iter()
        .find(|e| e.name == GET)
        .expect("advertised");
    let request = endpoint.request.as_ref().expect("request description");
    assert_eq!(
        (request.name.as_str(), request.type_.as_str()),
        ("StudentRequest", "StudentRequest")
    );
    assert_eq!(request.values[0].name, "name");
    assert_eq!(request.values[0].type_, "string");
}

#[tokio::test]
async fn a_go_peers_request_gets_go_micros_reply() {
    let server = start("a").await;
    let (status, headers, body) = raw(
        &server.address(),
        Method::POST,
        "/",
        &go_headers(GET),
        full(br#"{"name":"davie"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("micro-error").is_none());
    // go-micro's transport echoes the request's headers and repeats them with an X- prefix.
    assert_eq!(headers["micro-id"], "7");
    assert_eq!(headers["x-micro-id"], "7");
    assert_eq!(headers["micro-service"], SERVICE);
    assert_eq!(headers["micro-endpoint"], GET);
    assert_eq!(headers["x-micro-method"], GET);
    let student: Student = serde_json::from_slice(&body).expect("JSON reply");
    assert_eq!(student.name, "davie");

    // An old peer naming the endpoint in `Micro-Method` only is served too.
    let (status, _, body) = raw(
        &server.address(),
        Method::POST,
        "/",
        &[("Content-Type", "application/json"), ("Micro-Method", GET)],
        full(br#"{"name":"old"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Student>(&body).expect("JSON").name,
        "old"
    );

    // Errors travel in `Micro-Error` with an empty body and HTTP 200.
    let (status, headers, body) = raw(
        &server.address(),
        Method::POST,
        "/",
        &go_headers("StudentService.Nope"),
        full(b"{}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(headers["x-micro-error"], headers["micro-error"]);
    assert_eq!(
        micro_error(&headers).to_string(),
        r#"{"id":"student_service","code":404,"detail":"unknown service endpoint `StudentService.Nope`","status":"Not Found"}"#
    );
}

#[tokio::test]
async fn unknown_endpoint_is_a_404() {
    let server = start("a").await;
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let err = client
        .call_with::<_, Student>(SERVICE, "StudentService.Nope", &davie(), server.direct())
        .await
        .expect_err("no such endpoint");
    assert_eq!(
        err.to_string(),
        r#"{"id":"student_service","code":404,"detail":"unknown service endpoint `StudentService.Nope`","status":"Not Found"}"#
    );
}

#[tokio::test]
async fn decoding_errors_are_400_and_415() {
    let registry = MemoryRegistry::new();
    let _server = start_registered(&registry, "a").await;
    let client = client(Arc::new(registry), Strategy::Random);

    let err = client
        .call_raw(
            SERVICE,
            GET,
            "application/json",
            Bytes::from_static(b"{\"name\":"),
        )
        .await
        .expect_err("malformed JSON");
    assert_eq!((err.code, err.id.as_str()), (400, SERVICE), "{err}");
    assert!(err.detail.starts_with("malformed JSON body"), "{err}");

    let err = client
        .call_raw(SERVICE, GET, "text/xml", Bytes::from_static(b"<name/>"))
        .await
        .expect_err("xml");
    assert_eq!(
        (err.code, err.status.as_str()),
        (415, "Unsupported Media Type"),
        "{err}"
    );
    assert!(err.detail.contains("`text/xml`"), "{err}");

    // A raw JSON body is answered as raw JSON.
    let reply = client
        .call_raw(
            SERVICE,
            GET,
            "application/json",
            Bytes::from_static(b"{\"name\":\"raw\"}"),
        )
        .await
        .expect("raw call");
    assert_eq!(
        serde_json::from_slice::<Student>(&reply)
            .expect("JSON")
            .name,
        "raw"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_a_length() {
    let server = start_with(
        "a",
        ServerOptions {
            name: SERVICE.into(),
            max_body_bytes: 1024,
            ..ServerOptions::default()
        },
    )
    .await;
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let direct = server.direct();
    let big = StudentRequest {
        name: "x".repeat(4096),
    };
    let err = client
        .call_with::<_, Student>(SERVICE, GET, &big, direct.clone())
        .await
        .expect_err("too large");
    assert_eq!((err.code, err.id.as_str()), (413, SERVICE), "{err}");
    assert_eq!(err.detail, "request body exceeds the limit of 1024 bytes");

    // Chunked, so the server only finds out while reading.
    let chunks = (0..8).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 512]))));
    let body = StreamBody::new(futures::stream::iter(chunks)).boxed();
    let (status, headers, _) =
        raw(&server.address(), Method::POST, "/", &go_headers(GET), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(micro_error(&headers).code, 413);

    // Within the limit, all is well.
    let student: Student = client
        .call_with(SERVICE, GET, &davie(), direct)
        .await
        .expect("small body");
    assert_eq!(student.name, "davie");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let registry = MemoryRegistry::new();
    let _server = start_registered(&registry, "a").await;
    let client = client(Arc::new(registry), Strategy::Random);
    let err = client
        .call::<_, Student>(SERVICE, "StudentService.Explode", &davie())
        .await
        .expect_err("panic");
    assert_eq!((err.code, err.id.as_str()), (500, SERVICE), "{err}");
    assert_eq!(
        err.detail,
        "endpoint `StudentService.Explode` panicked: boom for davie"
    );
    for _ in 0..3 {
        let student: Student = client
            .call(SERVICE, GET, &davie())
            .await
            .expect("still serving");
        assert_eq!(student.server, "a");
    }
}

#[tokio::test]
async fn the_timeout_header_bounds_the_handler() {
    let server = start("a").await;
    let mut headers = go_headers("StudentService.Slow");
    headers.retain(|(name, _)| *name != "Timeout");
    headers.push(("Timeout", "100000000"));
    let (status, headers, body) = raw(
        &server.address(),
        Method::POST,
        "/",
        &headers,
        full(br#"{"millis":30000}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    let err = micro_error(&headers);
    assert_eq!((err.code, err.id.as_str()), (408, SERVICE), "{err}");
    assert_eq!(
        err.detail,
        "endpoint `StudentService.Slow` did not finish within 100ms"
    );
    assert_eq!(server.handle.in_flight(), 0);
}

#[tokio::test]
async fn the_client_gives_up_after_its_request_timeout() {
    let server = start("a").await;
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let call = client.call_with::<_, Student>(
        SERVICE,
        "StudentService.Slow",
        &SlowRequest { millis: 30_000 },
        CallOptions {
            address: Some(server.address()),
            timeout: Some(Duration::from_millis(300)),
            ..CallOptions::default()
        },
    );
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the call ends within 5 s")
        .expect_err("too slow");
    assert_eq!(err.code, 408, "{err}");
}

#[tokio::test]
async fn wrong_method_path_or_service_are_refused() {
    let server = start("a").await;
    let (status, headers, body) = raw(&server.address(), Method::GET, "/", &[], full(b"")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    let err = rmicro::Error::parse(std::str::from_utf8(&body).expect("utf-8"));
    assert_eq!((err.code, err.id.as_str()), (405, SERVICE));
    assert_eq!(micro_error(&headers), err);

    let (status, _, body) = raw(
        &server.address(),
        Method::POST,
        "/rpc",
        &go_headers(GET),
        full(b"{}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        rmicro::Error::parse(std::str::from_utf8(&body).expect("utf-8")).code,
        404
    );

    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let err = client
        .call_with::<_, Student>("other_service", GET, &davie(), server.direct())
        .await
        .expect_err("wrong service");
    assert_eq!(err.code, 404);
    assert_eq!(
        err.detail,
        "service `other_service` is not served here, this is `student_service`"
    );

    let (_, headers, _) = raw(
        &server.address(),
        Method::POST,
        "/",
        &[("Content-Type", "application/json")],
        full(b"{}"),
    )
    .await;
    assert_eq!(micro_error(&headers).code, 400);
}

#[tokio::test]
async fn graceful_shutdown_lets_the_request_in_flight_finish() {
    let registry = MemoryRegistry::new();
    let Running { handle, gate, .. } = start_registered(&registry, "a").await;
    let address = handle.local_addr();
    let client = client(Arc::new(registry), Strategy::Random);
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call::<_, Student>(SERVICE, "StudentService.Hold", &davie())
                .await
        }
    });
    eventually("the request to be in flight", || handle.in_flight() == 1).await;
    let shutdown = tokio::spawn(handle.shutdown(Duration::from_secs(10)));

    // The listener closes at once; the request in flight carries on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!call.is_finished());
    gate.add_permits(1);
    let student = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("finishes within 5 s")
        .expect("task")
        .expect("the request in flight succeeds");
    assert_eq!(student.name, "davie");
    let aborted = tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown within 5 s")
        .expect("task");
    assert_eq!(aborted, 0);
}

/// A graceful stop under a steady load: requests that reach the server while it drains are
/// served or find their connection closed (the client then retries elsewhere), never
/// answered "aborted" while the grace period has time left. (The server used to abort as soon
/// as no request was in flight for an instant, cutting one that was arriving.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_under_load_aborts_nothing() {
    for round in 0..5 {
        let server = start("a").await;
        let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
        let direct = CallOptions {
            retries: Some(0),
            ..server.direct()
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (client, direct, stop) = (client.clone(), direct.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut aborted = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let reply: rmicro::Result<Student> = client
                            .call_with(SERVICE, GET, &davie(), direct.clone())
                            .await;
                        if let Err(e) = reply
                            && e.detail.contains("aborted")
                        {
                            aborted.push(e.detail);
                        }
                    }
                    aborted
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let aborted_by_server = server.handle.shutdown(Duration::from_secs(5)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut aborted = Vec::new();
        for caller in callers {
            aborted.extend(caller.await.expect("caller"));
        }
        assert_eq!(aborted_by_server, 0, "round {round}");
        assert!(aborted.is_empty(), "round {round}: {aborted:?}");
    }
}

#[tokio::test]
async fn shutdown_aborts_what_outlives_the_grace_period() {
    let Running { handle, .. } = start("a").await;
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let direct = CallOptions {
        address: Some(handle.local_addr().to_string()),
        retries: Some(0),
        ..CallOptions::default()
    };
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call_with::<_, Student>(SERVICE, "StudentService.Hold", &davie(), direct)
                .await
        }
    });
    eventually("the request to be in flight", || handle.in_flight() == 1).await;
    let aborted = tokio::time::timeout(
        Duration::from_secs(5),
        handle.shutdown(Duration::from_millis(100)),
    )
    .await
    .expect("shutdown within 5 s");
    assert_eq!(aborted, 1);
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the caller hears back within 5 s")
        .expect("task")
        .expect_err("aborted");
    assert_eq!((err.code, err.id.as_str()), (503, SERVICE), "{err}");
    assert_eq!(
        err.detail,
        "endpoint `StudentService.Hold` aborted: the server is shutting down"
    );
}

/// A client that sends its headers a byte at a time (a slowloris), and one that sends nothing,
/// are cut off after the header-read timeout, while a well-behaved caller is answered.
#[tokio::test]
async fn slow_and_idle_connections_are_cut_off_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = start_with(
        "a",
        ServerOptions {
            name: SERVICE.into(),
            header_read_timeout: Duration::from_millis(500),
            ..ServerOptions::default()
        },
    )
    .await;
    let mut slow = tokio::net::TcpStream::connect(server.address())
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let mut closed = false;
    for byte in request.iter().cycle().take(200) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    if !closed {
        // Writes into a closed socket may succeed once; a read tells for sure.
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await;
        closed = matches!(read, Ok(Ok(0) | Err(_)));
    }
    assert!(
        closed,
        "the slow connection is still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut off after {:?}",
        started.elapsed()
    );

    // A connection that sends nothing at all is closed too.
    let mut idle = tokio::net::TcpStream::connect(server.address())
        .await
        .expect("connect");
    let opened = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "an idle connection is still open after {:?}",
        opened.elapsed()
    );
    println!(
        "measured: an idle connection closed after {:?}",
        opened.elapsed()
    );

    // The server still answers others.
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let student: Student = client
        .call_with(SERVICE, GET, &davie(), server.direct())
        .await
        .expect("a well-behaved call");
    assert_eq!(student.name, "davie");
}

/// Over `max_connections`, a new connection is answered at once with a 503 go-micro error
/// instead of waiting; once connections close, calls are served again.
#[tokio::test]
async fn connections_over_the_cap_get_a_503_at_once() {
    let server = start_with(
        "a",
        ServerOptions {
            name: SERVICE.into(),
            max_connections: 3,
            ..ServerOptions::default()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(server.address())
                .await
                .expect("connect"),
        );
    }
    // Let the accept loop count them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let started = std::time::Instant::now();
    let err = client
        .call_with::<_, Student>(SERVICE, GET, &davie(), server.direct())
        .await
        .expect_err("over the cap");
    assert_eq!((err.code, err.id.as_str()), (503, SERVICE), "{err}");
    assert_eq!(
        err.detail,
        "too many connections: this server serves at most 3 at once"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused after {:?}",
        started.elapsed()
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let student: Student = client
        .call_with(SERVICE, GET, &davie(), server.direct())
        .await
        .expect("served again once the held connections closed");
    assert_eq!(student.name, "davie");
}

/// A request whose endpoint header is blank or not text is told which, the bytes shown;
/// one without it, that it is missing. The server serves on.
#[tokio::test]
async fn a_bad_endpoint_header_is_named() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start("a").await;
    let exchange = |endpoint: &'static [u8]| {
        let address = server.address();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            let mut request =
                b"POST / HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n".to_vec();
            request.extend_from_slice(endpoint);
            request.extend_from_slice(b"\r\n{}");
            stream.write_all(&request).await.expect("write");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("read");
            // go-micro's reply to a failed call: 200, the error in `Micro-Error`.
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let error = answer
                .lines()
                .find_map(|l| l.strip_prefix("micro-error: "))
                .unwrap_or_else(|| panic!("no Micro-Error in {answer}"));
            rmicro::Error::parse(error)
        }
    };
    let err = exchange(b"Micro-Endpoint: Student\xffService.Get\r\n").await;
    assert_eq!(err.code, 400);
    assert_eq!(
        err.detail,
        "the `Micro-Endpoint` header is not valid UTF-8: `Student\\xffService.Get`; it names the endpoint, `Handler.Method`"
    );
    let err = exchange(b"Micro-Endpoint:   \r\n").await;
    assert_eq!(
        err.detail,
        "the `Micro-Endpoint` header is blank; it names the endpoint, `Handler.Method`"
    );
    let err = exchange(b"X-Other: 1\r\n").await;
    assert_eq!(
        err.detail,
        "missing `Micro-Endpoint` header naming the endpoint"
    );
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let student: Student = client
        .call_with(SERVICE, GET, &davie(), server.direct())
        .await
        .expect("still serving");
    assert_eq!(student.name, "davie");
}
