//! Growth: how cost grows with scale, one row per point of each curve (drawn by `--svg`).
//!
//! - **Registry** (memory, etcd, consul) at 100, 1,000 and 10,000 nodes of one service:
//!   `get_service` latency, the selector's warm select-and-pick, the heap one selector's
//!   cache holds, and the watch fan-out (one more node registered, the time until all
//!   [`WATCHERS`] watchers of the service have seen it).
//! - **Memory per idle connection**: connections that made one call each to an rmicro
//!   service and stay open, the service's net heap growth per connection.
//! - **Memory per subscription**: net heap growth per subscription on the memory and http
//!   brokers.
//! - **Heartbeat CPU** against the number of services (the footprint scenario's
//!   measurement at several sizes).
//!
//! Memory is the net heap growth counted by the bench's allocator ([`crate::heap`]): what
//! the code keeps, without kernel socket buffers or the allocator's own slack.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rmicro::broker::{self, Broker as _, SubscribeOptions};
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{Node, RegisterOptions, Service, SharedRegistry, WatchOptions};
use rmicro::rpc::selector::{Selector, Strategy};

use crate::footprint::median;
use crate::heap::Window;
use crate::{Config, progress, stats::Row};

/// The registry sizes measured.
pub const NODES: [usize; 3] = [100, 1_000, 10_000];
/// Watchers of the service in the fan-out measurement.
pub const WATCHERS: usize = 16;
/// Idle connection counts measured.
pub const CONNECTIONS: [usize; 3] = [100, 1_000, 5_000];
/// Subscription counts measured.
pub const SUBSCRIPTIONS: [usize; 3] = [100, 1_000, 10_000];
/// Service counts of the heartbeat curve.
pub const SERVICES: [usize; 3] = [100, 1_000, 5_000];

const SERVICE: &str = "growth";

/// The record the RPC scenario's service registers (its endpoints and node metadata), so
/// every node weighs what a real one does.
async fn template() -> Result<Service, String> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let service = crate::rpc::start_rmicro(Arc::clone(&registry))
        .await
        .map_err(|e| e.to_string())?;
    service.registered().await.map_err(|e| e.to_string())?;
    let found = registry.get_service(crate::rpc::SERVICE).await;
    let _ = service.stop().await;
    let mut record = found
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("the service registered no record")?;
    record.name = SERVICE.to_owned();
    Ok(record)
}

fn node_record(template: &Service, i: usize) -> Service {
    let mut service = template.clone();
    service.nodes = vec![Node {
        id: format!("{SERVICE}-{i:08}"),
        address: format!("127.0.0.1:{}", 10_000 + i % 50_000),
        metadata: template
            .nodes
            .first()
            .map(|n| n.metadata.clone())
            .unwrap_or_default(),
    }];
    service
}

/// Registers nodes `from..to`, 32 at a time.
async fn register(
    registry: &SharedRegistry,
    template: &Service,
    from: usize,
    to: usize,
) -> Result<(), String> {
    let results: Vec<rmicro::Result<()>> = futures::stream::iter(from..to)
        .map(|i| {
            let registry = Arc::clone(registry);
            let record = node_record(template, i);
            async move {
                registry
                    .register(&record, RegisterOptions::ttl(Duration::from_secs(600)))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

fn count_nodes(services: &[Service]) -> usize {
    services.iter().map(|s| s.nodes.len()).sum()
}

/// Waits until `get_service` returns `n` nodes.
async fn settled(registry: &SharedRegistry, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (got, error) = match registry.get_service(SERVICE).await {
            Ok(s) => (count_nodes(&s), String::new()),
            Err(e) => (0, format!(" (get_service: {e})")),
        };
        if got == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{got} of {n} nodes listed after 60 s{error}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The time until every watcher has seen node `i` registered.
async fn fan_out(registry: &SharedRegistry, template: &Service, i: usize) -> Result<f64, String> {
    let mut watchers = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        watchers.push(
            registry
                .watch(WatchOptions::service(SERVICE))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    // Long-polling watches (consul's blocking queries) take their first index first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = format!("{SERVICE}-{i:08}");
    let t = Instant::now();
    register(registry, template, i, i + 1).await?;
    let seen = watchers.into_iter().map(|mut w| {
        let id = id.clone();
        async move {
            while let Some(change) = w.next().await {
                if let Ok(change) = change
                    && change.service.nodes.iter().any(|n| n.id == id)
                {
                    return true;
                }
            }
            false
        }
    });
    let all = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(seen))
        .await
        .map_err(|_| "a watcher did not see the new node within 30 s".to_owned())?;
    if all.iter().any(|s| !s) {
        return Err("a watch ended before it saw the new node".to_owned());
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The same request as a registry's `get_service` made by hand, its reply read and not parsed
/// (what the server and the transfer cost): a Consul agent's health endpoint.
type RawLookup =
    Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<usize, String>> + Send + Sync>;

fn consul_raw(address: &str) -> RawLookup {
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{address}/v1/health/service/{SERVICE}");
    Box::new(move || {
        let client = client.clone();
        let uri = uri.clone();
        Box::pin(async move {
            let uri: http::Uri = uri
                .parse()
                .map_err(|e: http::uri::InvalidUri| e.to_string())?;
            let rsp = client.get(uri).await.map_err(|e| e.to_string())?;
            let body = rsp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(body.len())
        })
    })
}

/// Times `lookup` for a round (at least 3 times): the median in ms and the count.
async fn time_lookups<F, Fut>(cfg: &Config, lookup: F) -> (f64, usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut lookups = Vec::new();
    let until = Instant::now() + cfg.round;
    while lookups.len() < 3 || Instant::now() < until {
        let t = Instant::now();
        lookup().await;
        lookups.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let count = lookups.len();
    (median(lookups), count)
}

/// The rows of one registry at every size.
async fn registry(
    cfg: &Config,
    name: &str,
    registry: SharedRegistry,
    template: &Service,
    raw: Option<RawLookup>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut have = 0;
    // Fan-out probes, numbered after the nodes; they stay registered.
    let mut probes = 0;
    for n in NODES {
        progress(format!("growth {name}: registering up to {n} nodes"));
        let t = Instant::now();
        if let Err(e) = register(&registry, template, have, n).await {
            rows.push(Row::skipped("growth", &format!("{name} at {n} nodes"), e));
            return rows;
        }
        let added = n - have;
        let rate = added as f64 / t.elapsed().as_secs_f64();
        have = n;
        if let Err(e) = settled(&registry, n + probes).await {
            rows.push(Row::skipped("growth", &format!("{name} at {n} nodes"), e));
            return rows;
        }
        let first = rows.len();
        rows.push(Row::value(
            "growth",
            &format!("{name} register, {n} nodes"),
            "nodes/s",
            rate,
            &format!("{added} registrations, 32 at a time"),
        ));

        // get_service, for a round (at least 3 lookups).
        let (ms, count) = time_lookups(cfg, || async {
            let _ = registry.get_service(SERVICE).await;
        })
        .await;
        rows.push(Row::value(
            "growth",
            &format!("{name} lookup, {n} nodes"),
            "ms",
            ms,
            &format!("median of {count} get_service calls"),
        ));
        if let Some(raw) = &raw {
            let (ms, count) = time_lookups(cfg, || async {
                let _ = raw().await;
            })
            .await;
            rows.push(Row::value(
                "growth",
                &format!("{name} lookup by hand, {n} nodes"),
                "ms",
                ms,
                &format!("median of {count}: the same HTTP request, the reply read, not parsed"),
            ));
        }

        // A selector's cache: its heap, and the warm select-and-pick.
        let heap = Window::open();
        let selector = Selector::new(Arc::clone(&registry), Strategy::Random);
        let selected = selector.select(SERVICE).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let bytes = heap.bytes();
        drop(heap);
        match selected {
            Ok(_) => {
                rows.push(Row::value(
                    "growth",
                    &format!("{name} selector cache, {n} nodes"),
                    "KiB",
                    bytes as f64 / 1024.0,
                    &format!(
                        "net heap of one selector's cache and watch ({:.0} B per node)",
                        bytes as f64 / n as f64
                    ),
                ));
                let picks = if n >= 10_000 { 2_000 } else { 20_000 };
                let t = Instant::now();
                for _ in 0..picks {
                    if let Ok(mut next) = selector.select(SERVICE).await {
                        std::hint::black_box(next.pick().map(|node| node.address.len()));
                    }
                }
                rows.push(Row::value(
                    "growth",
                    &format!("{name} select, {n} nodes"),
                    "µs",
                    t.elapsed().as_secs_f64() * 1e6 / picks as f64,
                    &format!("warm select and pick, mean of {picks}"),
                ));
            }
            Err(e) => rows.push(Row::skipped(
                "growth",
                &format!("{name} select, {n} nodes"),
                e.to_string(),
            )),
        }
        drop(selector);

        let mut times = Vec::new();
        let mut error = None;
        for _ in 0..3 {
            match fan_out(&registry, template, 1_000_000 + probes).await {
                Ok(ms) => times.push(ms),
                Err(e) => error = Some(e),
            }
            probes += 1;
        }
        let case = format!("{name} watch fan-out, {n} nodes");
        rows.push(match error {
            None => Row::value(
                "growth",
                &case,
                "ms",
                median(times),
                &format!("one node registered until all {WATCHERS} watchers saw it, median of 3"),
            ),
            Some(e) => Row::skipped("growth", &case, e),
        });
        for row in &rows[first..] {
            progress_row(row);
        }
    }
    rows
}

fn progress_row(row: &Row) {
    match &row.rmicro {
        Some(s) => progress(format!("  {}: {:.3} {}", row.case, s.rate, row.unit)),
        None => progress(format!("  {}: skipped ({})", row.case, row.note)),
    }
}

/// A raw HTTP/1.1 mucp call to the RPC scenario's service on a blocking socket.
fn call_over(stream: &mut std::net::TcpStream) -> Result<(), String> {
    let body = br#"{"name":"davie"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Micro-Service: {s}\r\nMicro-Endpoint: {e}\r\nMicro-Method: {e}\r\n\
         Content-Length: {n}\r\n\r\n",
        s = crate::rpc::SERVICE,
        e = crate::rpc::ENDPOINT,
        n = body.len()
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
    if buf[..n].starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "unexpected reply: {}",
            String::from_utf8_lossy(&buf[..n.min(80)])
        ))
    }
}

/// Net heap per idle connection: `c` connections, one call each, left open.
async fn connections() -> Vec<Row> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let service = match crate::rpc::start_rmicro(registry).await {
        Ok(s) => s,
        Err(e) => return vec![Row::skipped("growth", "idle connections", e.to_string())],
    };
    let address = service.address();
    let mut rows = Vec::new();
    for c in CONNECTIONS {
        progress(format!("growth: {c} idle connections"));
        let heap = Window::open();
        let opened = tokio::task::spawn_blocking(move || {
            let mut streams = Vec::with_capacity(c);
            for _ in 0..c {
                let mut s = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                call_over(&mut s)?;
                streams.push(s);
            }
            Ok::<_, String>(streams)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bytes = heap.bytes();
        drop(heap);
        let case = format!("heap per idle connection, {c} connections");
        match opened {
            Ok(streams) => {
                rows.push(Row::value(
                    "growth",
                    &case,
                    "B",
                    bytes as f64 / c as f64,
                    "one call each, then idle; the service's net heap over the connections",
                ));
                drop(streams);
                // Let the server notice the closes before the next size.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => rows.push(Row::skipped("growth", &case, e)),
        }
        if let Some(row) = rows.last() {
            progress_row(row);
        }
    }
    let _ = service.stop().await;
    rows
}

/// Net heap per subscription on `broker`.
async fn subscriptions(name: &str, broker: broker::SharedBroker) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Err(e) = broker.connect().await {
        return vec![Row::skipped(
            "growth",
            &format!("{name} subscriptions"),
            e.to_string(),
        )];
    }
    for s in SUBSCRIPTIONS {
        progress(format!("growth: {s} subscriptions on the {name} broker"));
        let heap = Window::open();
        let mut subs = Vec::with_capacity(s);
        let mut error = None;
        for i in 0..s {
            match broker
                .subscribe(
                    &format!("growth.topic.{i}"),
                    broker::handler(|_ev: broker::Event| async { Ok(()) }),
                    SubscribeOptions::default(),
                )
                .await
            {
                Ok(sub) => subs.push(sub),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bytes = heap.bytes();
        drop(heap);
        let case = format!("heap per subscription, {name} broker, {s} subscriptions");
        rows.push(match error {
            None => Row::value(
                "growth",
                &case,
                "B",
                bytes as f64 / s as f64,
                "net heap over the subscriptions, each on its own topic",
            ),
            Some(e) => Row::skipped("growth", &case, e),
        });
        for sub in subs {
            let _ = sub.unsubscribe().await;
        }
        if let Some(row) = rows.last() {
            progress_row(row);
        }
    }
    let _ = broker.disconnect().await;
    rows
}

/// Runs the growth scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    use rmicro::registry::consul::{ConsulOptions, ConsulRegistry};
    use rmicro::registry::etcd::{EtcdOptions, EtcdRegistry};

    let mut rows = Vec::new();
    let template = match template().await {
        Ok(t) => t,
        Err(e) => return vec![Row::skipped("growth", "all", e)],
    };
    let memory: SharedRegistry = Arc::new(MemoryRegistry::new());
    rows.extend(registry(cfg, "memory", memory, &template, None).await);

    progress("growth etcd: starting etcd");
    match crate::pubsub::fixture(rmicro_conformance::servers::etcd::start).await {
        Ok(server) => {
            let endpoint = rmicro_conformance::servers::etcd::endpoint(&server);
            match EtcdOptions::from_address(&endpoint).and_then(EtcdRegistry::new) {
                Ok(r) => rows.extend(registry(cfg, "etcd", Arc::new(r), &template, None).await),
                Err(e) => rows.push(Row::skipped("growth", "etcd", e.to_string())),
            }
        }
        Err(e) => rows.push(Row::skipped("growth", "etcd", e)),
    }

    progress("growth consul: starting consul");
    match crate::pubsub::fixture(rmicro_conformance::servers::consul::start).await {
        Ok(server) => {
            let addr = rmicro_conformance::servers::consul::address(&server);
            match ConsulRegistry::new(ConsulOptions::from_env().addresses([addr.clone()])) {
                Ok(r) => {
                    let raw = Some(consul_raw(&addr));
                    rows.extend(registry(cfg, "consul", Arc::new(r), &template, raw).await);
                }
                Err(e) => rows.push(Row::skipped("growth", "consul", e.to_string())),
            }
        }
        Err(e) => rows.push(Row::skipped("growth", "consul", e)),
    }

    rows.extend(connections().await);
    rows.extend(
        subscriptions(
            "memory",
            Arc::new(rmicro::broker::memory::MemoryBroker::new()),
        )
        .await,
    );
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    rows.extend(
        subscriptions(
            "http",
            Arc::new(rmicro::broker::http::HttpBroker::new(
                registry,
                rmicro::broker::http::HttpBrokerOptions::default(),
            )),
        )
        .await,
    );

    for n in SERVICES {
        rows.push(crate::footprint::heartbeat_row(cfg, n).await);
        if let Some(row) = rows.last() {
            progress_row(row);
        }
    }
    rows
}
