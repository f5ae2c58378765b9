//! `rmicro web`: the dashboard. One page (HTML, CSS and script compiled into the binary, no
//! build step) over a small JSON API:
//!
//! - `GET /api/services`: every record of every service (nodes and endpoints);
//! - `POST /api/call/{service}/{Endpoint}`: a call, as the gateway makes it;
//! - `GET /api/health/{service}`: every node's readiness, as `rmicro health` probes it;
//! - `GET /api/metrics/{service}`: per node, requests handled and in flight, from its
//!   `/metrics`;
//! - `GET /events`: the registry's changes as server-sent events;
//! - `GET /api/tail/{topic}`: a topic's messages as server-sent events, subscribed while the
//!   page listens.
//!
//! The page renders every value as text, and a Content Security Policy allows no inline
//! script, so a name from the registry cannot run in it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use rmicro::broker::SubscribeOptions;
use rmicro::registry::WatchOptions;
use rmicro::{Client, Error};
use serde_json::json;

use crate::Failure;
use crate::api::{self, Body};
use crate::commands;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");

/// The id of the dashboard's own errors.
const ID: &str = "go.micro.web";

/// What the page may load: its own script and style, nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Serves the dashboard until Ctrl-C.
pub async fn serve(client: Client, address: &str, registry: String) -> Result<(), Failure> {
    let state = Arc::new(State { client, registry });
    api::listen(
        address,
        |at| format!("dashboard on http://{at}/ (Ctrl-C to stop)"),
        move |req| {
            let state = Arc::clone(&state);
            async move { route(&state, req).await }
        },
    )
    .await
}

struct State {
    client: Client,
    /// What the page says it shows: `mdns`, `consul at 127.0.0.1:8500`.
    registry: String,
}

/// A 200 with `body` and `headers`.
fn with_headers(body: Body, headers: &[(header::HeaderName, &'static str)]) -> Response<Body> {
    let mut rsp = Response::new(body);
    for (name, value) in headers {
        rsp.headers_mut()
            .insert(name, header::HeaderValue::from_static(value));
    }
    rsp
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    with_headers(
        Full::new(Bytes::from_static(body.as_bytes())).boxed(),
        &[
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
    )
}

fn value(v: &serde_json::Value) -> Response<Body> {
    api::json(StatusCode::OK, Bytes::from(v.to_string()))
}

/// `%XX` escapes decoded (the page encodes names with `encodeURIComponent`).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let parts: Vec<String> = path.split('/').skip(1).map(decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, [""]) => asset("text/html; charset=utf-8", INDEX),
        (&Method::GET, ["app.js"]) => asset("text/javascript; charset=utf-8", SCRIPT),
        (&Method::GET, ["app.css"]) => asset("text/css; charset=utf-8", STYLE),
        (&Method::GET, ["api", "services"]) => services(&state.client).await,
        (&Method::POST, ["api", "call", service, endpoint]) => {
            let (service, endpoint) = ((*service).to_owned(), (*endpoint).to_owned());
            api::call(&state.client, &service, &endpoint, req).await
        }
        (&Method::GET, ["api", "health", service]) => {
            match commands::node_health(&state.client, service).await {
                Ok(nodes) => value(&serde_json::to_value(nodes).unwrap_or_default()),
                Err(_) => value(&json!([])),
            }
        }
        (&Method::GET, ["api", "metrics", service]) => metrics(&state.client, service).await,
        (&Method::GET, ["events"]) => events(state).await,
        (&Method::GET, ["api", "tail", topic]) => tail(&state.client, topic).await,
        _ => api::error(&Error::not_found(
            ID,
            format!("no such page `{method} {path}`"),
        )),
    }
}

async fn services(client: &Client) -> Response<Body> {
    match commands::all_records(client).await {
        Ok(all) => value(&serde_json::to_value(all).unwrap_or_default()),
        Err(e) => api::error(&e),
    }
}

/// The sum of a family's samples of `service` in a Prometheus text exposition.
fn sample_sum(text: &str, family: &str, service: &str) -> Option<f64> {
    let label = format!("service=\"{service}\"");
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(family) else {
            continue;
        };
        let Some(labels_end) = rest.strip_prefix('{').and_then(|r| r.find('}')) else {
            continue;
        };
        let labels = &rest[1..=labels_end];
        if !labels.contains(&label) {
            continue;
        }
        let value = rest[labels_end + 2..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

async fn metrics(client: &Client, service: &str) -> Response<Body> {
    let Ok(records) = commands::records(client, service).await else {
        return value(&json!([]));
    };
    let nodes: Vec<_> = records.iter().flat_map(|r| r.nodes.clone()).collect();
    let scraped = futures::future::join_all(
        nodes
            .iter()
            .map(|n| commands::http_get(&n.address, "/metrics")),
    )
    .await;
    let items: Vec<_> = nodes
        .iter()
        .zip(scraped)
        .map(|(n, answer)| {
            let text = answer
                .ok()
                .filter(|(status, _)| status.is_success())
                .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
                .unwrap_or_default();
            json!({
                "node": n.id,
                "requests": sample_sum(&text, "micro_request_total", service),
                "in_flight": sample_sum(&text, "micro_requests_in_flight", service),
            })
        })
        .collect();
    value(&json!(items))
}

/// One server-sent event carrying `data` (one line of JSON).
fn event(data: &str) -> String {
    format!("data: {data}\n\n")
}

/// A comment line: keeps an idle stream open through proxies, and tells a stream whose page
/// has gone away.
const KEEPALIVE: &str = ":\n\n";

/// Server-sent events from a channel of frames ([`event`], [`KEEPALIVE`]); ends when the page
/// goes away (a send fails) or the source ends.
fn sse(rx: tokio::sync::mpsc::Receiver<String>) -> Response<Body> {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|frame| Ok::<_, Infallible>(Frame::data(Bytes::from(frame))));
    with_headers(
        http_body_util::BodyExt::boxed(StreamBody::new(stream)),
        &[
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
    )
}

async fn events(state: &State) -> Response<Body> {
    let watcher = match commands::registry(&state.client)
        .watch(WatchOptions::default())
        .await
    {
        Ok(w) => w,
        Err(e) => return api::error(&e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    let info = event(&json!({"info": format!("registry: {}", state.registry)}).to_string());
    tokio::spawn(async move {
        let mut watcher = watcher;
        if tx.send(info).await.is_err() {
            return;
        }
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        keepalive.reset();
        loop {
            let frame = tokio::select! {
                change = watcher.next() => match change {
                    Some(Ok(c)) => event(&json!({
                        "action": format!("{:?}", c.action).to_lowercase(),
                        "service": c.service,
                    })
                    .to_string()),
                    Some(Err(e)) => event(&json!({"info": format!("registry watch: {}", e.detail)}).to_string()),
                    None => return,
                },
                _ = keepalive.tick() => KEEPALIVE.to_owned(),
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    sse(rx)
}

async fn tail(client: &Client, topic: &str) -> Response<Body> {
    let Some(broker) = client.broker().cloned() else {
        return api::error(&Error::internal_server_error(ID, "no broker"));
    };
    if let Err(e) = broker.connect().await {
        return api::error(&e);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(256);
    let to_page = tx.clone();
    let handler = rmicro::broker::handler(move |delivery: rmicro::broker::Event| {
        let tx = to_page.clone();
        async move {
            let msg = delivery.message();
            let body: serde_json::Value = serde_json::from_slice(&msg.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&msg.body).into_owned())
            });
            // A page that reads slowly loses messages rather than holding the broker up.
            let _ = tx.try_send(event(
                &json!({"header": msg.header, "body": body}).to_string(),
            ));
            Ok(())
        }
    });
    let subscriber = match broker
        .subscribe(topic, handler, SubscribeOptions::default())
        .await
    {
        Ok(s) => s,
        Err(e) => return api::error(&e),
    };
    // Unsubscribe once the page stops listening.
    tokio::spawn(async move {
        tx.closed().await;
        let _ = subscriber.unsubscribe().await;
    });
    sse(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_service_s_samples() {
        let text = "# TYPE micro_request_total counter\n\
            micro_request_total{service=\"a\",endpoint=\"X.Y\",status=\"success\",code=\"200\"} 3\n\
            micro_request_total{service=\"a\",endpoint=\"X.Z\",status=\"fail\",code=\"500\"} 2\n\
            micro_request_total{service=\"b\",endpoint=\"X.Y\",status=\"success\",code=\"200\"} 7\n\
            micro_requests_in_flight{service=\"a\"} 1\n";
        assert_eq!(sample_sum(text, "micro_request_total", "a"), Some(5.0));
        assert_eq!(sample_sum(text, "micro_requests_in_flight", "a"), Some(1.0));
        assert_eq!(sample_sum(text, "micro_request_total", "c"), None);
        assert_eq!(sample_sum("", "micro_request_total", "a"), None);
    }

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(decode("student_service"), "student_service");
        assert_eq!(decode("a%2Fb%20c"), "a/b c");
        assert_eq!(decode("bad%zz"), "bad%zz");
    }
}
