//! RPC: a unary GetStudent over loopback. rmicro client -> rmicro server (memory registry,
//! the client's cache) against a raw hyper client -> raw hyper server doing the same decode
//! and encode work, the ceiling for anything on HTTP/1.1 with hyper; and against the same raw
//! hyper pair speaking go-micro's headers (the request's `Micro-*` and `Timeout` headers, the
//! reply echoing them as go-micro's http transport does), which splits the gap into what the
//! protocol costs and what rmicro's code costs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rmicro::broker::memory::MemoryBroker;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{SharedRegistry, Value};
use rmicro::rpc::{Client, ClientOptions, Routes};
use rmicro::service::Service;
use tokio::net::TcpListener;

use crate::stats::{Row, Sample};
use crate::student::{Student, StudentRequest, get_student};
use crate::{Config, load, progress, progress_ratio};

/// The service name and endpoint every side serves.
pub const SERVICE: &str = "student_service";
/// `StudentService.GetStudent`.
pub const ENDPOINT: &str = "StudentService.GetStudent";
/// The content types measured, with their short names.
pub const CONTENT_TYPES: [(&str, &str); 2] = [
    ("json", "application/json"),
    ("proto", "application/protobuf"),
];
/// The concurrent callers measured.
pub const CALLERS: [usize; 3] = [1, 16, 64];
/// The reply sizes of the payload rows (bytes added to the student), with their labels.
const PAYLOADS: [(usize, &str); 3] = [
    (100, "100 B"),
    (10 * 1024, "10 KiB"),
    (1024 * 1024, "1 MiB"),
];

/// What a raw hyper side puts on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Content-Type and Accept only.
    Plain,
    /// Also go-micro's request headers; the server then echoes them as go-micro does.
    Mucp,
}

/// The rmicro handler.
pub struct StudentService;

/// The routes `#[handlers]` would build for [`StudentService`].
pub fn routes() -> Routes<StudentService> {
    Routes::new().endpoint(
        ENDPOINT,
        Value::default(),
        Value::default(),
        |_this: Arc<StudentService>, req: StudentRequest| async move {
            get_student(&req).ok_or_else(|| {
                rmicro::Error::not_found(SERVICE, format!("no student named `{}`", req.name))
            })
        },
    )
}

/// Starts the rmicro student service on `registry` (memory broker, no free subscribers).
pub async fn start_rmicro(registry: SharedRegistry) -> rmicro::Result<Service> {
    start_rmicro_as(registry, SERVICE, "mucp").await
}

/// [`start_rmicro`] under another name, with `--server=<protocol>` (`mucp` or `grpc`).
pub async fn start_rmicro_as(
    registry: SharedRegistry,
    name: &str,
    protocol: &str,
) -> rmicro::Result<Service> {
    Service::builder(name)
        .server(protocol)
        .with_registry(registry)
        .with_broker(Arc::new(MemoryBroker::new()))
        .address("127.0.0.1:0")
        .free_subscribers(false)
        .handler(StudentService, routes())
        .start()
        .await
}

/// The rmicro call every rmicro-client side makes: GetStudent for davie, from `service` (a
/// service serving [`routes`]), asking for `name` (`davie:<n>` for a reply of `n` more
/// bytes).
pub async fn rmicro_call_for(
    client: &Client,
    service: &str,
    name: &str,
    opts: rmicro::rpc::CallOptions,
) -> rmicro::Result<()> {
    let req = StudentRequest { name: name.into() };
    let s: Student = client.call_with(service, ENDPOINT, &req, opts).await?;
    if s.grade == 80 {
        Ok(())
    } else {
        Err(rmicro::Error::internal_server_error(
            "bench",
            "wrong student",
        ))
    }
}

/// go-micro's reply headers for a request carrying `Micro-Id`: its http transport copies the
/// request's headers, then sets `Micro-*` and `X-Micro-*` (content type set by the caller).
fn mucp_reply_headers(request: &http::HeaderMap) -> Option<http::HeaderMap> {
    request.get("micro-id")?;
    let mut headers = request.clone();
    for name in [ACCEPT, CONTENT_TYPE, HOST, CONTENT_LENGTH] {
        headers.remove(name);
    }
    for (name, x_name) in [
        ("micro-id", "x-micro-id"),
        ("micro-service", "x-micro-service"),
        ("micro-method", "x-micro-method"),
        ("micro-endpoint", "x-micro-endpoint"),
    ] {
        if let Some(v) = headers.get(name).cloned() {
            headers.insert(x_name, v);
        }
    }
    Some(headers)
}

async fn raw_handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let proto = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/protobuf");
    let echo = mucp_reply_headers(req.headers());
    let reply = move |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Some(echo) = echo {
            *r.headers_mut() = echo;
        }
        r.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static(if proto {
                "application/protobuf"
            } else {
                "application/json"
            }),
        );
        r
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(StatusCode::BAD_REQUEST, Vec::new()));
    };
    let decoded: Option<StudentRequest> = if proto {
        prost::Message::decode(body).ok()
    } else {
        serde_json::from_slice(&body).ok()
    };
    let Some(request) = decoded else {
        return Ok(reply(StatusCode::BAD_REQUEST, Vec::new()));
    };
    Ok(match get_student(&request) {
        Some(s) if proto => reply(StatusCode::OK, prost::Message::encode_to_vec(&s)),
        Some(s) => reply(StatusCode::OK, serde_json::to_vec(&s).unwrap_or_default()),
        None => reply(StatusCode::NOT_FOUND, Vec::new()),
    })
}

/// A raw hyper HTTP/1.1 server answering GetStudent on `POST /`.
pub async fn start_raw_server() -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(raw_handle))
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// A raw hyper client, pooled like rmicro's.
pub fn raw_client() -> RawClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    HttpClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(100)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

async fn raw_call(
    client: &RawClient,
    uri: &http::Uri,
    content_type: &'static str,
    wire: Wire,
    name: &str,
) -> Result<(), String> {
    let proto = content_type == "application/protobuf";
    let req = StudentRequest { name: name.into() };
    let body = if proto {
        prost::Message::encode_to_vec(&req)
    } else {
        serde_json::to_vec(&req).map_err(|e| e.to_string())?
    };
    let mut request = Request::post(uri.clone())
        .header(CONTENT_TYPE, content_type)
        .header(ACCEPT, content_type);
    if wire == Wire::Mucp {
        // What rmicro's client sends besides: an id as long as a UUID, the remaining time.
        request = request
            .header("micro-id", "5b0d3f8e-6a2c-4c1e-9f5e-2f6f1d9b7a11")
            .header("micro-service", SERVICE)
            .header("micro-method", ENDPOINT)
            .header("micro-endpoint", ENDPOINT)
            .header("timeout", "29999984512");
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(request).await.map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let s: Student = if proto {
        prost::Message::decode(body).map_err(|e| e.to_string())?
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())?
    };
    if s.grade == 80 {
        Ok(())
    } else {
        Err("wrong student".into())
    }
}

/// An rmicro client on `registry` that sends `content_type`.
pub fn client_for(registry: &SharedRegistry, content_type: &str) -> Client {
    Client::new(
        Arc::clone(registry),
        ClientOptions {
            content_type: Some(content_type.to_owned()),
            ..ClientOptions::default()
        },
    )
}

/// The raw hyper client every raw side uses.
pub type RawClient = HttpClient<HttpConnector, Full<Bytes>>;

/// `callers` closed loops of [`rmicro_call_for`] (`name` from `service`, with `opts`) for
/// `len`.
pub async fn rmicro_load(
    client: &Client,
    service: &str,
    name: &str,
    opts: &rmicro::rpc::CallOptions,
    callers: usize,
    len: Duration,
) -> Sample {
    let (c, service, name, opts) = (
        client.clone(),
        Arc::<str>::from(service),
        Arc::<str>::from(name),
        opts.clone(),
    );
    load::closed_loop(callers, len, move || {
        let (c, service, name, opts) = (
            c.clone(),
            Arc::clone(&service),
            Arc::clone(&name),
            opts.clone(),
        );
        async move { rmicro_call_for(&c, &service, &name, opts).await }
    })
    .await
}

/// `callers` closed loops of [`raw_call`] (`name`, to `uri`) for `len`.
pub async fn raw_load(
    raw: &RawClient,
    uri: &http::Uri,
    content_type: &'static str,
    wire: Wire,
    name: &str,
    callers: usize,
    len: Duration,
) -> Sample {
    let (r, u, name) = (raw.clone(), uri.clone(), Arc::<str>::from(name));
    load::closed_loop(callers, len, move || {
        let (r, u, name) = (r.clone(), u.clone(), Arc::clone(&name));
        async move { raw_call(&r, &u, content_type, wire, &name).await }
    })
    .await
}

/// Splits rmicro's gap to the protocol ceiling into its client's and its server's part: the
/// rmicro client calling the raw mucp server, and the raw mucp client calling the rmicro
/// server, each against raw client to raw server.
pub async fn split(cfg: &Config) -> Vec<Row> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let service = match start_rmicro(Arc::clone(&registry)).await {
        Ok(s) => s,
        Err(e) => return vec![Row::skipped("rpc", "split", format!("rmicro service: {e}"))],
    };
    let (raw_addr, raw_task) = match start_raw_server().await {
        Ok(x) => x,
        Err(e) => return vec![Row::skipped("rpc", "split", format!("raw server: {e}"))],
    };
    let Ok(raw_uri) = format!("http://{raw_addr}/").parse::<http::Uri>() else {
        return vec![Row::skipped("rpc", "split", "raw uri".to_owned())];
    };
    let Ok(rmicro_uri) = format!("http://{}/", service.address()).parse::<http::Uri>() else {
        return vec![Row::skipped("rpc", "split", "rmicro uri".to_owned())];
    };
    let mut rows = Vec::new();
    let (short, ct) = CONTENT_TYPES[0];
    let client = client_for(&registry, ct);
    let raw = raw_client();
    for callers in [1, 16] {
        for half in ["rmicro client, raw server", "raw client, rmicro server"] {
            progress(format!("rpc split {short} c={callers}: {half} vs raw mucp"));
            let (a, b) = load::alternate(
                cfg.rounds,
                cfg.warmup,
                cfg.round,
                async |len| {
                    if half.starts_with("rmicro client") {
                        let to_raw = rmicro::rpc::CallOptions {
                            address: Some(raw_addr.to_string()),
                            ..Default::default()
                        };
                        rmicro_load(&client, SERVICE, "davie", &to_raw, callers, len).await
                    } else {
                        raw_load(&raw, &rmicro_uri, ct, Wire::Mucp, "davie", callers, len).await
                    }
                },
                async |len| raw_load(&raw, &raw_uri, ct, Wire::Mucp, "davie", callers, len).await,
            )
            .await;
            let row = Row::compare(
                "rpc",
                &format!("{short} {half} c={callers}"),
                "req/s",
                a,
                "raw hyper, mucp headers",
                b,
            );
            progress_ratio(&row);
            rows.push(row);
        }
    }
    raw_task.abort();
    let _ = service.stop().await;
    let cfg = *cfg;
    match tokio::task::spawn_blocking(move || one_thread(&cfg)).await {
        Ok(more) => rows.extend(more),
        Err(e) => rows.push(Row::skipped("rpc", "one thread", e.to_string())),
    }
    rows
}

/// One caller, client and server on one thread (a current-thread runtime): no wakeup crosses
/// a CPU, so the difference of the p50s is rmicro's own CPU per call, client and server, which
/// on 2 cores the c=1 rows blur with the cost of waking the other core.
fn one_thread(cfg: &Config) -> Vec<Row> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![Row::skipped("rpc", "one thread", e.to_string())],
    };
    runtime.block_on(async {
        let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
        let service = match start_rmicro(Arc::clone(&registry)).await {
            Ok(s) => s,
            Err(e) => return vec![Row::skipped("rpc", "one thread", e.to_string())],
        };
        let (raw_addr, raw_task) = match start_raw_server().await {
            Ok(x) => x,
            Err(e) => return vec![Row::skipped("rpc", "one thread", e.to_string())],
        };
        let Ok(uri) = format!("http://{raw_addr}/").parse::<http::Uri>() else {
            return vec![Row::skipped("rpc", "one thread", "raw uri".to_owned())];
        };
        let mut rows = Vec::new();
        for (short, ct) in CONTENT_TYPES {
            let client = client_for(&registry, ct);
            let raw = raw_client();
            progress(format!(
                "rpc {short} c=1, one thread: rmicro vs raw hyper, mucp headers"
            ));
            let (a, b) = load::alternate(
                cfg.rounds,
                cfg.warmup,
                cfg.round,
                async |len| {
                    rmicro_load(&client, SERVICE, "davie", &Default::default(), 1, len).await
                },
                async |len| raw_load(&raw, &uri, ct, Wire::Mucp, "davie", 1, len).await,
            )
            .await;
            let mut row = Row::compare(
                "rpc",
                &format!("{short} c=1, one thread"),
                "req/s",
                a,
                "raw hyper, mucp headers",
                b,
            );
            if let (Some(a), Some(b)) = (&row.rmicro, &row.baseline)
                && a.timed > 0
                && b.timed > 0
            {
                row.note = format!(
                    "rmicro's own cost: {:.1} µs per call (p50)",
                    a.p50_us - b.p50_us
                );
            }
            progress_ratio(&row);
            rows.push(row);
        }
        raw_task.abort();
        let _ = service.stop().await;
        rows
    })
}

/// Runs the RPC scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let service = match start_rmicro(Arc::clone(&registry)).await {
        Ok(s) => s,
        Err(e) => return vec![Row::skipped("rpc", "all", format!("rmicro service: {e}"))],
    };
    let (raw_addr, raw_task) = match start_raw_server().await {
        Ok(x) => x,
        Err(e) => return vec![Row::skipped("rpc", "all", format!("raw server: {e}"))],
    };
    let uri: http::Uri = match format!("http://{raw_addr}/").parse() {
        Ok(u) => u,
        Err(e) => return vec![Row::skipped("rpc", "all", format!("raw uri: {e}"))],
    };
    let mut rows = Vec::new();
    for (short, ct) in CONTENT_TYPES {
        let client = client_for(&registry, ct);
        let raw = raw_client();
        for callers in CALLERS {
            for (wire, baseline) in [
                (Wire::Plain, "raw hyper"),
                (Wire::Mucp, "raw hyper, mucp headers"),
            ] {
                progress(format!("rpc {short} c={callers}: rmicro vs {baseline}"));
                let (a, b) = load::alternate(
                    cfg.rounds,
                    cfg.warmup,
                    cfg.round,
                    async |len| {
                        rmicro_load(&client, SERVICE, "davie", &Default::default(), callers, len)
                            .await
                    },
                    async |len| raw_load(&raw, &uri, ct, wire, "davie", callers, len).await,
                )
                .await;
                let row = Row::compare(
                    "rpc",
                    &format!("{short} c={callers}"),
                    "req/s",
                    a,
                    baseline,
                    b,
                );
                progress_ratio(&row);
                rows.push(row);
            }
        }
    }
    // Cost against payload size: replies of 100 B, 10 KiB and 1 MiB more, 16 callers, against
    // the protocol ceiling.
    for (short, ct) in CONTENT_TYPES {
        let client = client_for(&registry, ct);
        let raw = raw_client();
        for (size, label) in PAYLOADS {
            let callers = 16;
            let name = format!("davie:{size}");
            progress(format!(
                "rpc {short} {label} c={callers}: rmicro vs raw hyper, mucp headers"
            ));
            let (a, b) = load::alternate(
                cfg.rounds,
                cfg.warmup,
                cfg.round,
                async |len| {
                    rmicro_load(&client, SERVICE, &name, &Default::default(), callers, len).await
                },
                async |len| raw_load(&raw, &uri, ct, Wire::Mucp, &name, callers, len).await,
            )
            .await;
            let row = Row::compare(
                "rpc",
                &format!("{short} reply +{label} c={callers}"),
                "req/s",
                a,
                "raw hyper, mucp headers",
                b,
            );
            progress_ratio(&row);
            rows.push(row);
        }
    }
    // A call to the service in this process (`Client::call_local`) against the same call
    // over loopback.
    {
        let client = Client::new(Arc::clone(&registry), ClientOptions::default());
        for callers in [1, 16] {
            progress(format!(
                "rpc local c={callers}: in process vs over loopback"
            ));
            let (a, b) = load::alternate(
                cfg.rounds,
                cfg.warmup,
                cfg.round,
                async |len| {
                    let c = client.clone();
                    load::closed_loop(callers, len, move || {
                        let c = c.clone();
                        async move {
                            let req = StudentRequest {
                                name: "davie".into(),
                            };
                            let s: Student = c.call_local(SERVICE, ENDPOINT, req).await?;
                            if s.grade == 80 {
                                Ok(())
                            } else {
                                Err(rmicro::Error::internal_server_error(
                                    "bench",
                                    "wrong student",
                                ))
                            }
                        }
                    })
                    .await
                },
                async |len| {
                    rmicro_load(&client, SERVICE, "davie", &Default::default(), callers, len).await
                },
            )
            .await;
            let row = Row::compare(
                "rpc",
                &format!("local c={callers}"),
                "req/s",
                a,
                "rmicro over loopback",
                b,
            );
            progress_ratio(&row);
            rows.push(row);
        }
    }
    // go-micro's grpc protocol (`--server=grpc`) against mucp, both rmicro on both sides.
    let started = match start_rmicro_as(Arc::clone(&registry), GRPC_SERVICE, "grpc").await {
        // The first call must find it: wait for the first registration.
        Ok(s) => s.registered().await.map(|()| s),
        Err(e) => Err(e),
    };
    let grpc_service = match started {
        Ok(s) => Some(s),
        Err(e) => {
            rows.push(Row::skipped(
                "rpc",
                "grpc",
                format!("rmicro grpc service: {e}"),
            ));
            None
        }
    };
    if grpc_service.is_some() {
        for (short, ct) in CONTENT_TYPES {
            let client = client_for(&registry, ct);
            for callers in CALLERS {
                progress(format!(
                    "rpc grpc {short} c={callers}: rmicro over grpc vs over mucp"
                ));
                let (a, b) = load::alternate(
                    cfg.rounds,
                    cfg.warmup,
                    cfg.round,
                    async |len| {
                        let opts = Default::default();
                        rmicro_load(&client, GRPC_SERVICE, "davie", &opts, callers, len).await
                    },
                    async |len| {
                        rmicro_load(&client, SERVICE, "davie", &Default::default(), callers, len)
                            .await
                    },
                )
                .await;
                let row = Row::compare(
                    "rpc",
                    &format!("grpc {short} c={callers}"),
                    "req/s",
                    a,
                    "rmicro over mucp",
                    b,
                );
                progress_ratio(&row);
                rows.push(row);
            }
        }
    }
    if let Some(grpc_service) = grpc_service {
        let _ = grpc_service.stop().await;
    }
    raw_task.abort();
    let _ = service.stop().await;
    rows
}

/// The name the `--server=grpc` copy of the student service registers under.
const GRPC_SERVICE: &str = "student_service_grpc";
