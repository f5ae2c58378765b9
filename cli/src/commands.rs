//! The commands.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt as _;
use rmicro::broker::{Message, SubscribeOptions};
use rmicro::registry::{Action, Metadata, Service, Value, WatchOptions};
use rmicro::rpc::CallOptions;
use rmicro::{Client, codec};
use serde_json::json;

use crate::Failure;
use crate::output::Out;

/// How long a health probe of one node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `rmicro call`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The service's name
    service: String,
    /// The endpoint, `Handler.Method`
    endpoint: String,
    /// The request, JSON (any text with a non-JSON --content-type)
    #[arg(default_value = "{}")]
    request: String,
    /// A header sent with the call, `key:value`; repeat for more
    #[arg(long = "header", value_name = "KEY:VALUE")]
    headers: Vec<String>,
    /// Call metadata, `key:value` (go-micro sends metadata as headers); repeat for more
    #[arg(long = "metadata", value_name = "KEY:VALUE")]
    metadata: Vec<String>,
    /// The request's content type; the request is checked as JSON unless it names another
    /// format, and is then sent as it is
    #[arg(long, default_value = codec::JSON)]
    content_type: String,
    /// How long the call may take, such as 5s or 500ms [default: --client_request_timeout]
    #[arg(long)]
    timeout: Option<String>,
    /// Call this host:port directly instead of a node the registry names
    #[arg(long)]
    address: Option<String>,
}

pub fn registry(client: &Client) -> &rmicro::registry::SharedRegistry {
    client.selector().registry()
}

/// `key:value` pairs into metadata.
fn pairs(flag: &str, items: &[String]) -> Result<Metadata, Failure> {
    let mut md = Metadata::new();
    for item in items {
        let Some((k, v)) = item.split_once(':').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(Failure::Usage(format!(
                "--{flag} `{item}`: expected `key:value`"
            )));
        };
        md.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(md)
}

/// The JSON of `text`, or a usage error naming `what`.
fn json_arg(what: &str, text: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::Usage(format!("the {what} is not JSON ({e}): `{text}`")))
}

/// Every record of every registered service, by name and version. The registries list a
/// service once per version, some without its nodes, so each name is asked for again; a name
/// gone meanwhile keeps what the list said.
pub async fn all_records(client: &Client) -> rmicro::Result<Vec<Service>> {
    let registry = registry(client);
    let mut listed = registry.list_services().await?;
    listed.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    listed.dedup_by(|a, b| a.name == b.name);
    let mut all = Vec::new();
    for s in listed {
        let records = registry.get_service(&s.name).await?;
        if records.is_empty() {
            all.push(s);
        } else {
            all.extend(records);
        }
    }
    Ok(all)
}

pub async fn services(client: &Client, out: &Out) -> Result<(), Failure> {
    let rows: Vec<(String, String, usize)> = all_records(client)
        .await?
        .into_iter()
        .map(|v| (v.name, v.version, v.nodes.len()))
        .collect();
    if out.json() {
        let items: Vec<_> = rows
            .iter()
            .map(|(name, version, nodes)| json!({"name": name, "version": version, "nodes": nodes}))
            .collect();
        out.value(&json!(items));
    } else if rows.is_empty() {
        out.line("no services registered");
    } else {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|(n, v, c)| vec![n, v, c.to_string()])
            .collect();
        out.table(&["SERVICE", "VERSION", "NODES"], &rows);
    }
    Ok(())
}

/// A service's records, or go-micro's not-found error.
pub async fn records(client: &Client, service: &str) -> Result<Vec<Service>, Failure> {
    let records = registry(client).get_service(service).await?;
    if records.is_empty() {
        return Err(Failure::Failed(format!(
            "service `{service}` is not registered (rmicro services lists those that are)"
        )));
    }
    Ok(records)
}

/// `StudentRequest {name string, grade int32}`: a type's shape, as the registry describes it.
fn shape(value: Option<&Value>) -> String {
    fn inner(v: &Value, depth: usize) -> String {
        if v.values.is_empty() || depth > 3 {
            return v.type_.clone();
        }
        let fields: Vec<String> = v
            .values
            .iter()
            .map(|f| format!("{} {}", f.name, inner(f, depth + 1)))
            .collect();
        format!("{} {{{}}}", v.type_, fields.join(", "))
    }
    value.map_or_else(|| "-".to_owned(), |v| inner(v, 0))
}

fn metadata_text(md: &Metadata) -> String {
    md.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long ago a node registered, from the `registered` metadata rmicro services set (Unix
/// seconds); `-` for nodes without it (go-micro's).
fn age(md: &Metadata) -> String {
    let Some(at) = md.get("registered").and_then(|v| v.parse::<u64>().ok()) else {
        return "-".to_owned();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(at);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

pub async fn describe(client: &Client, service: &str, out: &Out) -> Result<(), Failure> {
    let records = records(client, service).await?;
    if out.json() {
        out.value(&serde_json::to_value(&records).unwrap_or_default());
        return Ok(());
    }
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.line("");
        }
        out.line(format!(
            "service  {} (version {})",
            record.name, record.version
        ));
        out.line("");
        let nodes: Vec<Vec<String>> = record
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.id.clone(),
                    n.address.clone(),
                    age(&n.metadata),
                    metadata_text(&n.metadata),
                ]
            })
            .collect();
        out.table(&["NODE", "ADDRESS", "AGE", "METADATA"], &nodes);
        out.line("");
        let mut endpoints: Vec<Vec<String>> = Vec::new();
        let mut subscribers: Vec<Vec<String>> = Vec::new();
        for e in &record.endpoints {
            if e.metadata.get("subscriber").is_some_and(|v| v == "true") {
                subscribers.push(vec![
                    e.metadata.get("topic").cloned().unwrap_or_default(),
                    e.name.clone(),
                    shape(e.request.as_ref()),
                ]);
            } else {
                endpoints.push(vec![
                    e.name.clone(),
                    shape(e.request.as_ref()),
                    shape(e.response.as_ref()),
                    // The first line of the handler's doc comment.
                    e.metadata
                        .get("description")
                        .and_then(|d| d.lines().next())
                        .unwrap_or("")
                        .to_owned(),
                ]);
            }
        }
        if endpoints.is_empty() {
            out.line("no endpoints");
        } else {
            out.table(
                &["ENDPOINT", "REQUEST", "RESPONSE", "DESCRIPTION"],
                &endpoints,
            );
        }
        if !subscribers.is_empty() {
            out.line("");
            out.table(&["TOPIC", "SUBSCRIBER", "MESSAGE"], &subscribers);
        }
    }
    Ok(())
}

pub async fn call(client: &Client, args: CallArgs, out: &Out) -> Result<(), Failure> {
    let format = codec::Format::of(&args.content_type);
    let is_json = matches!(format, Some(codec::Format::Json));
    let body = if is_json {
        let value = json_arg("request", &args.request)?;
        Bytes::from(value.to_string())
    } else {
        Bytes::from(args.request.clone().into_bytes())
    };
    let mut metadata = pairs("header", &args.headers)?;
    metadata.extend(pairs("metadata", &args.metadata)?);
    let timeout = match &args.timeout {
        Some(t) => Some(
            rmicro::config::parse_duration(t)
                .map_err(|e| Failure::Usage(format!("--timeout `{t}`: {e}")))?,
        ),
        None => None,
    };
    let opts = CallOptions {
        timeout,
        address: args.address.clone(),
        metadata,
        ..CallOptions::default()
    };
    let reply = client
        .call_raw_with(
            &args.service,
            &args.endpoint,
            &args.content_type,
            body,
            opts,
        )
        .await
        .map_err(Failure::Call)?;
    if is_json {
        match serde_json::from_slice::<serde_json::Value>(&reply) {
            Ok(value) if out.json() => out.value(&value),
            Ok(value) => out.line(serde_json::to_string_pretty(&value).unwrap_or_default()),
            Err(_) => out.line(String::from_utf8_lossy(&reply)),
        }
    } else {
        out.line(String::from_utf8_lossy(&reply));
    }
    Ok(())
}

pub async fn registry_list(client: &Client, out: &Out) -> Result<(), Failure> {
    let all = all_records(client).await?;
    if out.json() {
        out.value(&serde_json::to_value(&all).unwrap_or_default());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .flat_map(|s| {
            s.nodes.iter().map(move |n| {
                vec![
                    s.name.clone(),
                    s.version.clone(),
                    n.id.clone(),
                    n.address.clone(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        out.line("no services registered");
    } else {
        out.table(&["SERVICE", "VERSION", "NODE", "ADDRESS"], &rows);
    }
    Ok(())
}

pub async fn registry_get(client: &Client, service: &str, out: &Out) -> Result<(), Failure> {
    let records = records(client, service).await?;
    let value = serde_json::to_value(&records).unwrap_or_default();
    if out.json() {
        out.value(&value);
    } else {
        out.line(serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    Ok(())
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
    }
}

pub async fn registry_watch(
    client: &Client,
    service: Option<String>,
    out: &Out,
) -> Result<(), Failure> {
    let opts = match service {
        Some(s) => WatchOptions::service(s),
        None => WatchOptions::default(),
    };
    let mut watcher = registry(client).watch(opts).await?;
    eprintln!("watching the registry (Ctrl-C to stop)");
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let change = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            change = watcher.next() => change,
        };
        let Some(change) = change else {
            return Err(Failure::Failed("the registry ended the watch".to_owned()));
        };
        let change = change?;
        let s = &change.service;
        if out.json() {
            out.value(&json!({"action": action(change.action), "service": s}));
        } else {
            for n in &s.nodes {
                out.line(crate::output::printable(&format!(
                    "{:<6}  {}  {}  {}  {}",
                    action(change.action),
                    s.name,
                    s.version,
                    n.id,
                    n.address
                )));
            }
        }
    }
}

pub async fn publish(
    client: &Client,
    topic: &str,
    message: &str,
    headers: &[String],
    out: &Out,
) -> Result<(), Failure> {
    let value = json_arg("message", message)?;
    let header = pairs("header", headers)?;
    client
        .publisher(topic)?
        .with_content_type(codec::JSON)
        .publish_with_header(&value, header)
        .await?;
    if out.json() {
        out.value(&json!({"published": topic}));
    } else {
        out.line(format!("published to {topic}"));
    }
    Ok(())
}

pub async fn subscribe(
    client: &Client,
    topic: &str,
    queue: Option<String>,
    count: Option<u64>,
    out: &Out,
) -> Result<(), Failure> {
    let Some(broker) = client.broker() else {
        return Err(Failure::Failed("no broker".to_owned()));
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let handler = rmicro::broker::handler(move |event: rmicro::broker::Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(event.message().clone()).await;
            Ok(())
        }
    });
    let opts = match queue {
        Some(q) => SubscribeOptions::queue(q),
        None => SubscribeOptions::default(),
    };
    broker.connect().await?;
    let subscriber = broker.subscribe(topic, handler, opts).await?;
    eprintln!("subscribed to {topic} (Ctrl-C to stop)");
    let mut seen = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while count.is_none_or(|n| seen < n) {
        let msg = tokio::select! {
            _ = &mut ctrl_c => break,
            msg = rx.recv() => msg,
        };
        let Some(msg) = msg else { break };
        seen += 1;
        let body: serde_json::Value = serde_json::from_slice(&msg.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&msg.body).into_owned())
        });
        if out.json() {
            out.value(&json!({"topic": topic, "header": msg.header, "body": body}));
        } else {
            let header: BTreeMap<_, _> = msg.header.iter().collect();
            out.line(crate::output::printable(&format!(
                "{topic}  {}  {}",
                serde_json::to_string(&header).unwrap_or_default(),
                body
            )));
        }
    }
    let _ = subscriber.unsubscribe().await;
    Ok(())
}

/// `GET http://{address}{path}`, bounded by [`PROBE_TIMEOUT`]: the status and the body.
pub async fn http_get(address: &str, path: &str) -> Result<(http::StatusCode, Bytes), String> {
    type Http = hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<Bytes>,
    >;
    // One client (and its connection pool) for every probe: the dashboard probes each node
    // every few seconds.
    static HTTP: std::sync::OnceLock<Http> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(|| {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
    });
    let uri: http::Uri = format!("http://{address}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    tokio::time::timeout(PROBE_TIMEOUT, async {
        let rsp = http.get(uri).await.map_err(|e| e.to_string())?;
        let status = rsp.status();
        let body = http_body_util::BodyExt::collect(rsp.into_body())
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

/// One node's readiness: `/health/ready` over HTTP (rmicro), else go-micro's `Debug.Health`.
async fn probe(client: &Client, service: &str, address: &str) -> (bool, String) {
    let answer = http_get(address, "/health/ready").await;
    // rmicro's report: JSON with a `status`; anything else (go-micro's transport answers any
    // GET with a body of its own) is no health path.
    let report = answer.ok().and_then(|(status, body)| {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .filter(|r| r["status"].is_string())
            .map(|r| (status, r))
    });
    match report {
        Some((status, report)) => {
            let failing: Vec<String> = report["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] != "up")
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["name"].as_str().unwrap_or("?"),
                        c["error"].as_str().unwrap_or("down")
                    )
                })
                .collect();
            let ready = status.is_success();
            let why = if ready {
                "ready".to_owned()
            } else if failing.is_empty() {
                format!("not ready (HTTP {status})")
            } else {
                format!("not ready: {}", failing.join("; "))
            };
            (ready, why)
        }
        // go-micro serves no /health path: ask its Debug handler.
        _ => {
            let opts = CallOptions {
                address: Some(address.to_owned()),
                timeout: Some(PROBE_TIMEOUT),
                retries: Some(0),
                ..CallOptions::default()
            };
            match client
                .call_raw_with(
                    service,
                    "Debug.Health",
                    codec::JSON,
                    Bytes::from_static(b"{}"),
                    opts,
                )
                .await
            {
                Ok(reply) => {
                    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
                    let status = v["status"].as_str().unwrap_or_default().to_owned();
                    (
                        status == "ok",
                        format!(
                            "Debug.Health: {}",
                            if status.is_empty() {
                                "no status".to_owned()
                            } else {
                                status
                            }
                        ),
                    )
                }
                // The node answered, without a Debug handler (go-micro v4 has none): it
                // serves, readiness unknown.
                Err(e) if e.id != "go.micro.client" => {
                    (true, format!("serving; no health endpoint ({})", e.detail))
                }
                Err(e) => (false, format!("unreachable: {}", e.detail)),
            }
        }
    }
}

/// One node's readiness, as `rmicro health` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    pub node: String,
    pub address: String,
    pub ready: bool,
    pub detail: String,
}

/// Every node of `service`, probed at once.
pub async fn node_health(client: &Client, service: &str) -> Result<Vec<NodeHealth>, Failure> {
    let records = records(client, service).await?;
    let nodes: Vec<_> = records.iter().flat_map(|r| r.nodes.iter()).collect();
    let probes =
        futures::future::join_all(nodes.iter().map(|n| probe(client, service, &n.address))).await;
    Ok(nodes
        .iter()
        .zip(probes)
        .map(|(n, (ready, detail))| NodeHealth {
            node: n.id.clone(),
            address: n.address.clone(),
            ready,
            detail,
        })
        .collect())
}

pub async fn health(client: &Client, service: &str, out: &Out) -> Result<(), Failure> {
    let nodes = node_health(client, service).await?;
    if out.json() {
        out.value(&serde_json::to_value(&nodes).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| {
                vec![
                    n.node.clone(),
                    n.address.clone(),
                    if n.ready { "ready" } else { "NOT READY" }.to_owned(),
                    n.detail.clone(),
                ]
            })
            .collect();
        out.table(&["NODE", "ADDRESS", "STATUS", "DETAIL"], &rows);
    }
    if nodes.iter().all(|n| n.ready) {
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "not every node of `{service}` is ready"
        )))
    }
}
