//! The scenarios. Each starts what it needs, returns one [`Row`] and stops everything when it
//! returns (servers and service processes are killed when dropped).

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmicro::broker::{self, Message, PublishOptions, SharedBroker, SubscribeOptions};
use rmicro::config::Options;
use rmicro::registry::SharedRegistry;
use rmicro::rpc::{Client, ClientOptions};
use rmicro::service::{broker_from, registry_from};
use rmicro_conformance::process::{Proc, field};
use rmicro_conformance::proxy::Proxy;
use rmicro_conformance::servers::{Server, consul, etcd};

use crate::load::{Load, Window, ms, secs};
use crate::service::{ROLE, SERVICE};
use crate::{Plan, Row};

/// What the scenarios share: the plan and the executable the services run as.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub plan: Plan,
    /// This suite's executable (started with [`ROLE`] set, it is the service).
    pub exe: String,
    /// Where the growth rows write their curves as SVG (`--plot DIR`); `None`: nowhere.
    pub plot: Option<std::path::PathBuf>,
}

/// Every scenario's name, in the order they run.
pub const ALL: &[&str] = &[
    "rolling-restart",
    "kill-9",
    "registry-down-etcd",
    "registry-down-consul",
    "partition-etcd",
    "cluster-etcd",
    "cluster-consul",
    "scale-etcd",
    "scale-consul",
    "hostile-clients",
    "broker-rabbitmq",
    "broker-redis",
    "broker-nsq",
    "broker-nats",
    "broker-mqtt",
    "broker-kafka",
    "broker-googlepubsub",
    "poison-rabbitmq",
    "poison-redis",
    "poison-nsq",
    "poison-kafka",
];

/// What the short plan leaves out, to keep CI's run short: rows that only measure (their
/// aims are none) and poison rows beyond one broker, whose rule every broker's conformance
/// suite checks against its real server in the same CI run. The long plan runs them all.
pub const NOT_IN_SHORT: &[&str] = &[
    "broker-googlepubsub",
    "poison-rabbitmq",
    "poison-nsq",
    "poison-kafka",
];

/// The scenarios of `plan`, in the order they run.
pub fn of(plan: &Plan) -> Vec<&'static str> {
    ALL.iter()
        .copied()
        .filter(|name| !plan.short || !NOT_IN_SHORT.contains(name))
        .collect()
}

/// Runs the scenario `name`.
pub async fn run(ctx: &Ctx, name: &str) -> Row {
    match name {
        "rolling-restart" => rolling_restart(ctx).await,
        "kill-9" => kill_9(ctx).await,
        "registry-down-etcd" => registry_down(ctx, Kind::Etcd).await,
        "registry-down-consul" => registry_down(ctx, Kind::Consul).await,
        "partition-etcd" => partition(ctx).await,
        "cluster-etcd" => cluster(ctx, Kind::Etcd).await,
        "cluster-consul" => cluster(ctx, Kind::Consul).await,
        "scale-etcd" => scale(ctx, Kind::Etcd).await,
        "scale-consul" => scale(ctx, Kind::Consul).await,
        "hostile-clients" => hostile_clients(ctx).await,
        "broker-rabbitmq" => broker_restart(ctx, brokers::rabbitmq()).await,
        "broker-redis" => broker_restart(ctx, brokers::redis()).await,
        "broker-nsq" => broker_restart(ctx, brokers::nsq()).await,
        "broker-nats" => broker_restart(ctx, brokers::nats()).await,
        "broker-mqtt" => broker_restart(ctx, brokers::mqtt()).await,
        "broker-kafka" => broker_restart(ctx, brokers::kafka()).await,
        "broker-googlepubsub" => broker_restart(ctx, brokers::googlepubsub()).await,
        "poison-rabbitmq" => poison(ctx, brokers::rabbitmq()).await,
        "poison-redis" => poison(ctx, brokers::redis()).await,
        "poison-nsq" => poison(ctx, brokers::nsq().unordered()).await,
        "poison-kafka" => poison(ctx, brokers::kafka()).await,
        other => {
            let mut row = Row::new(other, "a known scenario");
            row.met = Some(false);
            row
        }
    }
}

/// What "within the TTL" allows beyond it: etcd revokes expired leases in a sweep every
/// 500 ms, and the registry is polled every 20 ms.
const LEASE_SWEEP: Duration = Duration::from_secs(1);

/// Runs blocking fixture code (process and server control) off the async workers.
fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Polls `check` every 20 ms until it is true; the time it took, or `None` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Etcd,
    Consul,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Etcd => "etcd",
            Kind::Consul => "consul",
        }
    }

    fn start(self) -> Server {
        match self {
            Kind::Etcd => etcd::start(),
            Kind::Consul => consul::start(),
        }
    }

    fn address(self, server: &Server) -> String {
        match self {
            Kind::Etcd => etcd::endpoint(server),
            Kind::Consul => consul::address(server),
        }
    }

    /// A cluster of three, serving.
    fn start_cluster(self) -> Vec<Server> {
        match self {
            Kind::Etcd => etcd::start_cluster(3),
            Kind::Consul => consul::start_cluster(3),
        }
    }

    fn is_leader(self, server: &Server) -> bool {
        match self {
            Kind::Etcd => etcd::is_leader(server),
            Kind::Consul => consul::is_leader(server),
        }
    }

    /// Starts a stopped server again and waits until it serves.
    fn start_again(self, server: &mut Server) {
        server.start_again(Duration::from_secs(30));
        match self {
            Kind::Etcd => etcd::wait_healthy(server),
            Kind::Consul => consul::wait_ready(server, None),
        }
    }
}

fn registry(kind: &str, address: &str) -> SharedRegistry {
    let mut opts = Options::default();
    opts.registry = kind.to_owned();
    opts.registry_address = address.to_owned();
    registry_from(&opts, IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("registry options")
}

fn client(registry: SharedRegistry) -> Client {
    Client::new(
        registry,
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
}

/// One service process, its node id and its address.
struct Instance {
    proc: Proc,
    node: String,
    address: String,
    /// Its http broker's listener (from the `started` line).
    broker_address: String,
}

impl Instance {
    /// Starts the service on `registry` at `address` and waits until it has registered.
    fn start(ctx: &Ctx, registry: &str, address: &str) -> Instance {
        let args = [
            format!("--registry={registry}"),
            format!("--registry_address={address}"),
            format!("--register_ttl={}", ctx.plan.ttl),
            format!("--register_interval={}", ctx.plan.interval),
            "--server_address=127.0.0.1:0".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = Proc::spawn(
            &ctx.exe,
            &args,
            &[(ROLE, "service"), ("RUST_LOG", "info,rmicro=debug")],
        );
        let line = proc.wait_for(" registered", Duration::from_secs(30));
        let node = field(&line, "node").unwrap_or_else(|| panic!("no node in {line:?}"));
        let address = proc.address();
        let broker_address = proc
            .transcript()
            .lines()
            .find(|l| l.contains(" started "))
            .and_then(|l| field(l, "broker_address"))
            .unwrap_or_default();
        Instance {
            proc,
            node,
            address,
            broker_address,
        }
    }
}

/// Whether the registry lists `node` of the service.
async fn listed(registry: &SharedRegistry, node: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(2), registry.get_service(SERVICE)).await {
        Ok(Ok(services)) => services
            .iter()
            .any(|s| s.nodes.iter().any(|n| n.id == node)),
        Ok(Err(e)) => {
            eprintln!("  lookup: {e}");
            false
        }
        Err(_) => {
            eprintln!("  lookup: no answer within 2 s");
            false
        }
    }
}

/// Waits until the client's selection has `n` nodes of the service.
async fn selection_of(client: &Client, n: usize) -> bool {
    wait_until(Duration::from_secs(30), || async {
        client
            .selector()
            .select(SERVICE)
            .await
            .is_ok_and(|next| next.len() == n)
    })
    .await
    .is_some()
}

/// A client of the service on `registry` at `address`, once it sees `instances` nodes, and its
/// load after the steady period.
async fn steady_load(
    ctx: &Ctx,
    registry_kind: &str,
    address: &str,
    instances: usize,
) -> (Client, Load) {
    let client = client(registry(registry_kind, address));
    assert!(
        selection_of(&client, instances).await,
        "the client never saw the {instances} instance(s)"
    );
    let load = Load::start(&client, ctx.plan.callers);
    tokio::time::sleep(ctx.plan.steady).await;
    (client, load)
}

fn calls(row: &mut Row, w: &Window) {
    row.figure("calls", w.calls)
        .figure("failed", w.failed)
        .figure("over 1 s", w.slow)
        .figure("p99", ms(w.p99));
    if let Some(e) = &w.first_error {
        row.note = Some(format!("first failure: {e}"));
    }
}

/// Two instances on etcd, each stopped with SIGTERM and started again in turn, under load.
async fn rolling_restart(ctx: &Ctx) -> Row {
    let mut row = Row::new(
        "rolling restart: 2 instances on etcd, SIGTERM and start each in turn, 16 callers",
        "0 failed",
    );
    let server = block(etcd::start);
    let address = etcd::endpoint(&server);
    let mut instances = block(|| {
        [
            Instance::start(ctx, "etcd", &address),
            Instance::start(ctx, "etcd", &address),
        ]
    });
    let (client, load) = steady_load(ctx, "etcd", &address, 2).await;
    for slot in &mut instances {
        slot.proc.signal("TERM");
        block(|| slot.proc.wait_exit(Duration::from_secs(30)));
        *slot = block(|| Instance::start(ctx, "etcd", &address));
        selection_of(&client, 2).await;
        tokio::time::sleep(ctx.plan.steady / 2).await;
    }
    let samples = load.finish().await;
    let all = Window::of(&samples, Duration::ZERO, Duration::MAX);
    calls(&mut row, &all);
    row.met = Some(all.failed == 0);
    row
}

/// kill -9 of one of two instances on etcd, under load.
async fn kill_9(ctx: &Ctx) -> Row {
    let mut row = Row::new(
        "kill -9 of 1 of 2 instances on etcd, 16 callers",
        "0 failed; p99 while the dead node is registered within 3x steady; gone from the registry within the TTL (+1 s, etcd's lease sweep)",
    );
    let server = block(etcd::start);
    let address = etcd::endpoint(&server);
    let (_alive, dead) = block(|| {
        (
            Instance::start(ctx, "etcd", &address),
            Instance::start(ctx, "etcd", &address),
        )
    });
    let watcher = registry("etcd", &address);
    let (_client, load) = steady_load(ctx, "etcd", &address, 2).await;
    let killed = load.now();
    dead.proc.signal("KILL");
    let gone = wait_until(ctx.plan.ttl() * 3, || async {
        !listed(&watcher, &dead.node).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.finish().await;
    let until = killed + gone.unwrap_or(ctx.plan.ttl() * 3);
    let steady = Window::of(&samples, Duration::from_millis(500), killed);
    let fault = Window::of(&samples, killed, until);
    let all = Window::of(&samples, Duration::ZERO, Duration::MAX);
    row.figure("calls", all.calls)
        .figure("failed", all.failed)
        .figure("p99 steady", ms(steady.p99))
        .figure("p99 while dead", ms(fault.p99))
        .figure("max while dead", ms(fault.max))
        .figure(
            "gone from the registry after",
            gone.map_or_else(|| "never".to_owned(), secs),
        );
    if let Some(e) = &all.first_error {
        row.note = Some(format!("first failure: {e}"));
    }
    row.met = Some(
        all.failed == 0
            && fault.p99 <= steady.p99 * 3
            && gone.is_some_and(|g| g <= ctx.plan.ttl() + LEASE_SWEEP),
    );
    row
}

/// The registry down for a while under load, then back.
async fn registry_down(ctx: &Ctx, kind: Kind) -> Row {
    let mut row = Row::new(
        format!(
            "{} down for {} under load (2 instances, 16 callers), then back",
            kind.name(),
            secs(ctx.plan.registry_down)
        ),
        "0 failed; both nodes registered again within one interval of its return",
    );
    let mut server = block(|| kind.start());
    let address = kind.address(&server);
    let instances = block(|| {
        [
            Instance::start(ctx, kind.name(), &address),
            Instance::start(ctx, kind.name(), &address),
        ]
    });
    let (_client, load) = steady_load(ctx, kind.name(), &address, 2).await;
    let down = load.now();
    eprintln!("  {} stopped", kind.name());
    block(|| server.stop());
    tokio::time::sleep(ctx.plan.registry_down).await;
    eprintln!("  {} starting again", kind.name());
    block(|| kind.start_again(&mut server));
    eprintln!("  {} back", kind.name());
    let back = load.now();
    let watcher = registry(kind.name(), &address);
    let registered = wait_until(ctx.plan.ttl() * 3, || async {
        listed(&watcher, &instances[0].node).await && listed(&watcher, &instances[1].node).await
    })
    .await;
    eprintln!("  registered again: {registered:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.finish().await;
    let while_down = Window::of(&samples, down, back);
    let all = Window::of(&samples, Duration::ZERO, Duration::MAX);
    row.figure("calls while down", while_down.calls)
        .figure("failed while down", while_down.failed)
        .figure("failed in all", all.failed)
        .figure("p99 while down", ms(while_down.p99))
        .figure(
            "registered again after",
            registered.map_or_else(|| "never".to_owned(), secs),
        );
    if let Some(e) = &all.first_error {
        row.note = Some(format!("first failure: {e}"));
    }
    row.met = Some(
        all.failed == 0
            && registered.is_some_and(|r| r <= ctx.plan.interval() + Duration::from_millis(500)),
    );
    row
}

/// One instance cut off from etcd (a proxy between them) longer than the TTL, then healed;
/// another instance keeps serving.
async fn partition(ctx: &Ctx) -> Row {
    let mut row = Row::new(
        "partition between an instance and etcd, longer than the TTL, then healed (2 instances, 16 callers)",
        "deregistered within the TTL (+1 s, etcd's lease sweep); registered again within one interval of the heal; 0 failed",
    );
    let server = block(etcd::start);
    let address = etcd::endpoint(&server);
    let link = Proxy::start(server.addr).await;
    let cut_off_address = format!("http://{}", link.addr());
    let (cut_off, _other) = block(|| {
        (
            Instance::start(ctx, "etcd", &cut_off_address),
            Instance::start(ctx, "etcd", &address),
        )
    });
    let watcher = registry("etcd", &address);
    let (_client, load) = steady_load(ctx, "etcd", &address, 2).await;
    link.cut();
    let deregistered = wait_until(ctx.plan.ttl() * 3, || async {
        !listed(&watcher, &cut_off.node).await
    })
    .await;
    tokio::time::sleep(ctx.plan.interval()).await;
    link.heal();
    let registered = wait_until(ctx.plan.ttl() * 3, || listed(&watcher, &cut_off.node)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.finish().await;
    let all = Window::of(&samples, Duration::ZERO, Duration::MAX);
    row.figure(
        "deregistered after",
        deregistered.map_or_else(|| "never".to_owned(), secs),
    )
    .figure(
        "registered again after the heal",
        registered.map_or_else(|| "never".to_owned(), secs),
    );
    calls(&mut row, &all);
    row.met = Some(
        all.failed == 0
            && deregistered.is_some_and(|d| d <= ctx.plan.ttl() + LEASE_SWEEP)
            && registered.is_some_and(|r| r <= ctx.plan.interval() + Duration::from_millis(500)),
    );
    row
}

/// A cluster of three registry servers under load: the leader killed (-9) and started again,
/// then an instance stopped; every member is asked on its own what it lists. The two
/// instances are given the members in different orders (a Consul agent holds the services
/// registered through it).
async fn cluster(ctx: &Ctx, kind: Kind) -> Row {
    let name = kind.name();
    let mut row = Row::new(
        format!(
            "3-server {name} cluster: leader killed (-9) under load, started again after 2 intervals; then an instance stopped (2 instances, 16 callers)"
        ),
        "0 failed; both nodes listed by every member throughout; the stop seen by every member within 1 s",
    );
    let mut members = block(|| kind.start_cluster());
    let endpoints: Vec<String> = members.iter().map(|m| kind.address(m)).collect();
    let all = endpoints.join(",");
    let rotated = [&endpoints[1..], &endpoints[..1]].concat().join(",");
    let (first, second) = block(|| {
        (
            Instance::start(ctx, name, &all),
            Instance::start(ctx, name, &rotated),
        )
    });
    let each: Vec<SharedRegistry> = endpoints.iter().map(|e| registry(name, e)).collect();
    let (_client, load) = steady_load(ctx, name, &all, 2).await;
    let leader = wait_until(Duration::from_secs(10), || async {
        members.iter().any(|m| kind.is_leader(m))
    })
    .await
    .and_then(|_| members.iter().position(|m| kind.is_leader(m)));
    let Some(leader) = leader else {
        row.note = Some("no member says it leads".to_owned());
        row.met = Some(false);
        return row;
    };
    let killed_at = load.now();
    block(|| members[leader].stop());
    let others: Vec<usize> = (0..members.len()).filter(|&i| i != leader).collect();
    let elected = wait_until(Duration::from_secs(30), || async {
        others.iter().any(|&i| kind.is_leader(&members[i]))
    })
    .await;
    // Two intervals without the old leader: every heartbeat goes to the others.
    let mut missing_while_down = 0;
    let down_until = Instant::now() + ctx.plan.interval() * 2;
    while Instant::now() < down_until {
        for &i in &others {
            for node in [&first.node, &second.node] {
                if !listed(&each[i], node).await {
                    missing_while_down += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    block(|| kind.start_again(&mut members[leader]));
    let back_at = load.now();
    let all_listed = wait_until(Duration::from_secs(10), || async {
        for registry in &each {
            for node in [&first.node, &second.node] {
                if !listed(registry, node).await {
                    return false;
                }
            }
        }
        true
    })
    .await;
    tokio::time::sleep(ctx.plan.steady / 2).await;
    // An instance stopped: its deregistration reaches every member.
    first.proc.signal("TERM");
    let stopped = Instant::now();
    let mut seen = Vec::new();
    for registry in &each {
        let gone = wait_until(ctx.plan.ttl() * 2, || async {
            !listed(registry, &first.node).await
        })
        .await;
        seen.push(gone.map(|_| stopped.elapsed()));
    }
    let samples = load.finish().await;
    let whole = Window::of(&samples, Duration::ZERO, Duration::MAX);
    let during = Window::of(&samples, killed_at, back_at);
    calls(&mut row, &whole);
    row.figure("failed while the leader was down", during.failed)
        .figure("p99 while down", ms(during.p99))
        .figure(
            "new leader after",
            elected.map_or_else(|| "never".to_owned(), secs),
        )
        .figure("lookups missing a node while down", missing_while_down)
        .figure(
            "listed by all 3 after the restart within",
            all_listed.map_or_else(|| "never".to_owned(), secs),
        )
        .figure(
            "stop seen by the members after",
            seen.iter()
                .map(|s| s.map_or_else(|| "never".to_owned(), secs))
                .collect::<Vec<_>>()
                .join(", "),
        );
    if let Some(e) = &whole.first_error {
        row.note = Some(format!("first failure: {e}"));
    }
    let seen_by_all = seen
        .iter()
        .all(|s| s.is_some_and(|d| d <= Duration::from_secs(1)));
    if !seen_by_all {
        // What the stopped instance said, for whoever reads the run's output.
        let mut first = first;
        first.proc.drain(Duration::from_millis(500));
        eprintln!(
            "cluster-{name}: the stopped instance's output:\n{}",
            first.proc.transcript()
        );
    }
    row.met =
        Some(whole.failed == 0 && missing_while_down == 0 && all_listed.is_some() && seen_by_all);
    drop(second);
    row
}

/// The CPU time this process has used (user and system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The service the scale scenario registers its nodes under.
const SCALE_SERVICE: &str = "chaos_scale";

fn scale_node(i: usize) -> rmicro::registry::Service {
    rmicro::registry::Service {
        name: SCALE_SERVICE.to_owned(),
        version: "latest".to_owned(),
        nodes: vec![rmicro::registry::Node {
            id: format!("{SCALE_SERVICE}-{i}"),
            address: format!("127.0.0.1:{}", 10_000 + i % 50_000),
            ..rmicro::registry::Node::default()
        }],
        ..rmicro::registry::Service::default()
    }
}

/// How many nodes one service has, one watcher on it: for each size, the time to register
/// them all, the time one change (a node registered, then deregistered) takes to reach the
/// watcher, and what the process spends per change.
async fn scale(ctx: &Ctx, kind: Kind) -> Row {
    use futures::StreamExt as _;
    use rmicro::registry::{Action, RegisterOptions, WatchOptions};
    let sizes: &[usize] = if ctx.plan.short {
        &[100]
    } else {
        &[100, 1000, 5000]
    };
    let name = kind.name();
    let mut row = Row::new(
        format!(
            "one service of {} nodes on {name}, one watcher: 20 changes each",
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        "measured",
    );
    const CHANGES: usize = 20;
    let mut latency = Vec::new();
    let mut cpu_per_change = Vec::new();
    for &n in sizes {
        let server = block(|| kind.start());
        let address = kind.address(&server);
        let registrar = registry(name, &address);
        let opts = RegisterOptions::ttl(Duration::from_secs(600));
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..32 {
            let registrar = Arc::clone(&registrar);
            workers.spawn(async move {
                for i in (w..n).step_by(32) {
                    registrar
                        .register(&scale_node(i), opts)
                        .await
                        .expect("register");
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.expect("registrar");
        }
        let registered_in = started.elapsed();
        let watcher_registry = registry(name, &address);
        let rss_before = footprint(std::process::id()).0;
        let mut watcher = watcher_registry
            .watch(WatchOptions::service(SCALE_SERVICE))
            .await
            .expect("watch");
        // What a watcher is handed first (consul: the whole list), until it is quiet.
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(500), watcher.next()).await
        {}
        let cpu_before = cpu_time();
        let mut seen = Vec::new();
        let mut missed = 0;
        for c in 0..CHANGES {
            let node = scale_node(n + c);
            let id = node.nodes[0].id.clone();
            for (action, change) in [(Action::Create, true), (Action::Delete, false)] {
                let at = Instant::now();
                if change {
                    registrar.register(&node, opts).await.expect("register");
                } else {
                    registrar.deregister(&node).await.expect("deregister");
                }
                let arrived = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(event) = watcher.next().await {
                        if let Ok(event) = event
                            && event.action == action
                            && event.service.nodes.iter().any(|n| n.id == id)
                        {
                            return true;
                        }
                    }
                    false
                })
                .await;
                match arrived {
                    Ok(true) => seen.push(at.elapsed()),
                    _ => missed += 1,
                }
            }
        }
        let cpu = cpu_time().saturating_sub(cpu_before);
        let rss_after = footprint(std::process::id()).0;
        seen.sort();
        let p50 = seen.get(seen.len() / 2).copied().unwrap_or_default();
        let max = seen.last().copied().unwrap_or_default();
        let cpu_ms = cpu.as_secs_f64() * 1000.0 / (2 * CHANGES) as f64;
        latency.push((n as f64, p50.as_secs_f64() * 1000.0));
        cpu_per_change.push((n as f64, cpu_ms));
        row.figure(
            &format!("{n} nodes"),
            format!(
                "registered in {}, change seen p50 {} max {}{}, CPU {:.1} ms per change, watcher RSS +{:.1} MiB",
                secs(registered_in),
                ms(p50),
                ms(max),
                if missed > 0 {
                    format!(" ({missed} missed)")
                } else {
                    String::new()
                },
                cpu_ms,
                rss_after.saturating_sub(rss_before) as f64 / 1024.0
            ),
        );
        if missed > 0 {
            row.met = Some(false);
            row.note = Some(format!(
                "{missed} changes never reached the watcher at {n} nodes"
            ));
        }
        drop(watcher);
        drop(server);
    }
    if let Some(dir) = &ctx.plot {
        let chart = crate::plot::svg(
            &format!("{name}: one service, one watcher, a node registered or deregistered"),
            "nodes of the service (log scale)",
            "milliseconds",
            &[
                crate::plot::Series {
                    name: "change seen by the watcher, p50".to_owned(),
                    points: latency,
                },
                crate::plot::Series {
                    name: "CPU of the process per change".to_owned(),
                    points: cpu_per_change,
                },
            ],
        );
        let path = dir.join(format!("scale-{name}.svg"));
        match std::fs::write(&path, chart) {
            Ok(()) => eprintln!("rmicro-chaos: wrote {}", path.display()),
            Err(e) => eprintln!("rmicro-chaos: cannot write {}: {e}", path.display()),
        }
    }
    row
}

/// The resident memory of process `pid` in KiB, and its open file descriptors.
fn footprint(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

/// Slow and idle connections against one instance under load: a slowloris (a header byte a
/// second) and connections that send nothing, while the callers go on.
async fn hostile_clients(ctx: &Ctx) -> Row {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (slow, idle) = if ctx.plan.short {
        (100, 400)
    } else {
        (200, 5000)
    };
    // The server's header-read timeout is 30 s: the long plan waits for it to close them.
    let attack = if ctx.plan.short {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(35)
    };
    let mut row = Row::new(
        format!(
            "{slow} slowloris and {idle} idle connections (a fifth of them to its http broker), and 7 streams of malformed requests, against 1 instance for {}, 16 callers",
            secs(attack)
        ),
        "0 failed; callers' p99 during the attack within 3x steady; every malformed request answered with its 4xx",
    );
    let server = block(etcd::start);
    let address = etcd::endpoint(&server);
    let instance = block(|| Instance::start(ctx, "etcd", &address));
    let pid = instance.proc.pid();
    let (_client, load) = steady_load(ctx, "etcd", &address, 1).await;
    let (rss_before, fds_before) = footprint(pid);
    let started = load.now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let target = instance.address.clone();
    let broker_target = instance.broker_address.clone();
    let mut attackers = Vec::new();
    for i in 0..slow + idle {
        // Every fifth idle connection goes to the http broker's listener.
        let target = if i >= slow && i % 5 == 0 {
            broker_target.clone()
        } else {
            target.clone()
        };
        let (mut stopped, closed) = (stopped.clone(), Arc::clone(&closed));
        attackers.push(tokio::spawn(async move {
            let Ok(mut conn) = tokio::net::TcpStream::connect(&target).await else {
                return;
            };
            let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
            let mut buf = [0u8; 256];
            let mut sent = 0usize;
            loop {
                let tick = tokio::time::sleep(Duration::from_secs(1));
                tokio::select! {
                    _ = stopped.changed() => return,
                    read = conn.read(&mut buf) => {
                        if matches!(read, Ok(0) | Err(_)) {
                            closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        return;
                    }
                    () = tick, if i < slow => {
                        let byte = request[sent % request.len()];
                        sent += 1;
                        if conn.write_all(&[byte]).await.is_err() {
                            closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        }));
    }
    let bad: Vec<_> = BadInput::ALL
        .iter()
        .map(|&kind| {
            let target = if kind.to_broker() {
                broker_target.clone()
            } else {
                target.clone()
            };
            tokio::spawn(kind.repeat(target, stopped.clone()))
        })
        .collect();
    let (mut rss_peak, mut fds_peak) = (rss_before, fds_before);
    let until = Instant::now() + attack;
    while Instant::now() < until {
        let (rss, fds) = footprint(pid);
        rss_peak = rss_peak.max(rss);
        fds_peak = fds_peak.max(fds);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ended = load.now();
    let closed_by_server = closed.load(std::sync::atomic::Ordering::Relaxed);
    stop.send_replace(true);
    for attacker in attackers {
        let _ = attacker.await;
    }
    let mut refused = Vec::new();
    for (kind, task) in BadInput::ALL.iter().zip(bad) {
        refused.push((*kind, task.await.unwrap_or_default()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, fds_after) = footprint(pid);
    let samples = load.finish().await;
    let steady = Window::of(&samples, Duration::from_millis(500), started);
    let during = Window::of(&samples, started, ended);
    let all = Window::of(&samples, Duration::ZERO, Duration::MAX);
    row.figure("calls", all.calls)
        .figure("failed", all.failed)
        .figure("p99 steady", ms(steady.p99))
        .figure("p99 during", ms(during.p99))
        .figure(
            "closed by the server",
            format!("{closed_by_server} of {}", slow + idle),
        )
        .figure(
            "RSS",
            format!(
                "{:.1} → {:.1} (peak) → {:.1} MiB",
                rss_before as f64 / 1024.0,
                rss_peak as f64 / 1024.0,
                rss_after as f64 / 1024.0
            ),
        )
        .figure("fds", format!("{fds_before} → {fds_peak} → {fds_after}"));
    let mut all_refused = true;
    for (kind, (sent, answered)) in &refused {
        all_refused &= *sent > 0 && sent == answered;
        row.figure(
            &format!("{} answered {}", kind.name(), kind.expected()),
            format!("{answered} of {sent}"),
        );
    }
    if let Some(e) = &all.first_error {
        row.note = Some(format!("first failure: {e}"));
    }
    row.met = Some(all.failed == 0 && during.p99 <= steady.p99 * 3 && all_refused);
    row
}

/// A malformed request sent again and again during [`hostile_clients`], each on a connection
/// of its own, and the 4xx go-micro error it must get.
#[derive(Debug, Clone, Copy)]
enum BadInput {
    /// `Content-Length` of 100 MB (and the first 64 KiB of it).
    HugeBody,
    /// 10,000 headers.
    ManyHeaders,
    /// `Micro-Endpoint` that is not UTF-8.
    BadEndpoint,
    /// A body in a content type no codec reads.
    UnknownContentType,
    /// To the http broker: `Content-Length` of 100 MB.
    BrokerHugeBody,
    /// To the http broker: 10,000 headers.
    BrokerManyHeaders,
    /// To the http broker: a body that is not go-micro's envelope.
    BrokerNotAnEnvelope,
}

impl BadInput {
    const ALL: [BadInput; 7] = [
        BadInput::HugeBody,
        BadInput::ManyHeaders,
        BadInput::BadEndpoint,
        BadInput::UnknownContentType,
        BadInput::BrokerHugeBody,
        BadInput::BrokerManyHeaders,
        BadInput::BrokerNotAnEnvelope,
    ];

    /// Whether it goes to the http broker's listener rather than the RPC server's.
    fn to_broker(self) -> bool {
        matches!(
            self,
            BadInput::BrokerHugeBody | BadInput::BrokerManyHeaders | BadInput::BrokerNotAnEnvelope
        )
    }

    fn name(self) -> &'static str {
        match self {
            BadInput::HugeBody => "100 MB bodies",
            BadInput::ManyHeaders => "10,000 headers",
            BadInput::BadEndpoint => "non-UTF-8 Micro-Endpoint",
            BadInput::UnknownContentType => "unknown content type",
            BadInput::BrokerHugeBody => "broker: 100 MB bodies",
            BadInput::BrokerManyHeaders => "broker: 10,000 headers",
            BadInput::BrokerNotAnEnvelope => "broker: not an envelope",
        }
    }

    /// The status, or go-micro error code, the server must answer with.
    fn expected(self) -> u16 {
        match self {
            BadInput::HugeBody | BadInput::BrokerHugeBody => 413,
            BadInput::ManyHeaders | BadInput::BrokerManyHeaders => 431,
            BadInput::BadEndpoint | BadInput::BrokerNotAnEnvelope => 400,
            BadInput::UnknownContentType => 415,
        }
    }

    fn request(self) -> Vec<u8> {
        let path = if self.to_broker() { "/?id=chaos" } else { "/" };
        let mut head =
            format!("POST {path} HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n").into_bytes();
        // Every RPC request names the endpoint, but the one whose name is the fault.
        match self {
            BadInput::BadEndpoint => {
                head.extend_from_slice(b"Micro-Endpoint: Chaos\xffService.Echo\r\n");
            }
            _ if !self.to_broker() => head.extend_from_slice(
                format!("Micro-Endpoint: {}\r\n", crate::service::ENDPOINT).as_bytes(),
            ),
            _ => {}
        }
        let content_type: &[u8] = match self {
            BadInput::UnknownContentType => b"Content-Type: application/x-chaos\r\n",
            _ => b"Content-Type: application/json\r\n",
        };
        head.extend_from_slice(content_type);
        let mut body: &[u8] = br#"{"seq":1}"#;
        match self {
            BadInput::HugeBody | BadInput::BrokerHugeBody => {
                head.extend_from_slice(b"Content-Length: 104857600\r\n\r\n");
                head.extend(std::iter::repeat_n(b' ', 64 * 1024));
                return head;
            }
            BadInput::ManyHeaders | BadInput::BrokerManyHeaders => {
                for i in 0..10_000 {
                    head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
                }
            }
            BadInput::BrokerNotAnEnvelope => body = b"{\"Header\":[1,2,3],\"Body\":\"%%%\"}",
            BadInput::BadEndpoint | BadInput::UnknownContentType => {}
        }
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        head.extend_from_slice(body);
        head
    }

    /// Whether `answer` carries the expected code, as the HTTP status or as the code of the
    /// go-micro error in `Micro-Error`.
    fn answered(self, answer: &[u8]) -> bool {
        let text = String::from_utf8_lossy(answer);
        let code = self.expected();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok());
        status == Some(code)
            || text.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("micro-error:")
                    && l.contains(&format!("\"code\":{code}"))
            })
    }

    /// Sends the request every 100 ms until `stopped`; (sent, answered as expected).
    async fn repeat(
        self,
        target: String,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> (usize, usize) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let request = self.request();
        let (mut sent, mut answered) = (0, 0);
        loop {
            let exchange = async {
                let mut conn = tokio::net::TcpStream::connect(&target).await.ok()?;
                // The server may answer and close before reading it all.
                let _ = conn.write_all(&request).await;
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                while answer.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                }
                Some(answer)
            };
            sent += 1;
            if let Ok(Some(answer)) = tokio::time::timeout(Duration::from_secs(5), exchange).await
                && self.answered(&answer)
            {
                answered += 1;
            }
            tokio::select! {
                _ = stopped.changed() => return (sent, answered),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// A broker's server for [`broker_restart`]: how to build the plugin, how to restart it.
struct BrokerServer {
    name: String,
    /// How the server is restarted, for the table.
    how: &'static str,
    make: Box<dyn Fn() -> SharedBroker + Send + Sync>,
    restart: Box<dyn FnMut() + Send>,
    /// At least once: 0 lost is the aim. Otherwise the row only measures.
    at_least_once: bool,
    /// Whether one subscriber gets one publisher's messages in order.
    keeps_order: bool,
    note: Option<&'static str>,
}

impl BrokerServer {
    /// An at-least-once broker: `make` builds a plugin instance, `restart` the server.
    fn new(
        name: impl Into<String>,
        how: &'static str,
        make: impl Fn() -> SharedBroker + Send + Sync + 'static,
        restart: impl FnMut() + Send + 'static,
    ) -> BrokerServer {
        BrokerServer {
            name: name.into(),
            how,
            make: Box::new(make),
            restart: Box::new(restart),
            at_least_once: true,
            keeps_order: true,
            note: None,
        }
    }

    /// The broker does not promise order (nsq), so the poison row does not count it.
    fn unordered(mut self) -> BrokerServer {
        self.keeps_order = false;
        self
    }

    /// The row only measures, for `why`.
    fn measured(mut self, why: &'static str) -> BrokerServer {
        self.at_least_once = false;
        self.note = Some(why);
        self
    }
}

mod brokers {
    use std::sync::Arc;

    use rmicro::broker::SharedBroker;
    use rmicro::broker::googlepubsub::{GooglePubSubBroker, GooglePubSubOptions};
    use rmicro::broker::kafka::{KafkaBroker, KafkaOptions};
    use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
    use rmicro::broker::rabbitmq::{RabbitmqBroker, RabbitmqOptions};
    use rmicro_conformance::servers::kafka::Kafka;
    use rmicro_conformance::servers::mosquitto::Mosquitto;
    use rmicro_conformance::servers::nats::Nats;
    use rmicro_conformance::servers::nsq::Nsqd;
    use rmicro_conformance::servers::pubsub::PubSub;
    use rmicro_conformance::servers::rabbitmq::Rabbitmq;
    use rmicro_conformance::servers::redis::Redis;

    use super::{BrokerServer, block, plugin};

    pub(super) fn rabbitmq() -> BrokerServer {
        let mut server = block(Rabbitmq::start);
        let url = server.url();
        let make = move || {
            let mut opts = RabbitmqOptions::default();
            opts.addresses = vec![url.clone()];
            opts.durable_exchange = true;
            opts.durable_queues = true;
            opts.persistent_messages = true;
            Arc::new(RabbitmqBroker::new(opts).expect("rabbitmq options")) as SharedBroker
        };
        BrokerServer::new(
            "rabbitmq (durable exchange and queues, persistent messages, confirms)",
            "kill -9, start again with its data",
            make,
            move || server.restart(),
        )
    }

    pub(super) fn redis() -> BrokerServer {
        let mut server = block(Redis::start_durable);
        let url = server.url();
        BrokerServer::new(
            "redis (streams queue, append-only file synced on every write)",
            "kill -9, start again with its data",
            move || plugin("redis", &url),
            move || server.restart_with_data(),
        )
    }

    pub(super) fn nsq() -> BrokerServer {
        let mut server = block(Nsqd::start);
        let address = server.tcp_address();
        BrokerServer::new(
            "nsq (channel as queue)",
            "SIGTERM (nsqd writes its channels), start again",
            move || plugin("nsq", &address),
            move || server.restart(),
        )
    }

    pub(super) fn nats() -> BrokerServer {
        let mut server = block(Nats::start);
        let url = server.url();
        BrokerServer::new(
            "nats (queue group)",
            "kill -9, start again",
            move || plugin("nats", &url),
            move || server.restart(),
        )
        .measured("core NATS is at most once, as go-micro's")
    }

    pub(super) fn kafka() -> BrokerServer {
        let mut server = block(Kafka::start);
        let address = server.address();
        let make = move || {
            let opts = KafkaOptions::with_addresses(&address);
            Arc::new(KafkaBroker::new(opts).expect("kafka options")) as SharedBroker
        };
        BrokerServer::new(
            "kafka (KRaft, consumer group as queue)",
            "kill -9, start again with its data",
            make,
            move || server.restart(),
        )
    }

    pub(super) fn googlepubsub() -> BrokerServer {
        let mut server = block(PubSub::start);
        let host = server.host();
        let kind = server.kind();
        let make = move || {
            let opts = GooglePubSubOptions::emulator(&host);
            Arc::new(GooglePubSubBroker::new(opts).expect("pubsub options")) as SharedBroker
        };
        BrokerServer::new(
            format!("googlepubsub ({kind}, subscription as queue)"),
            "kill -9, start again",
            make,
            move || server.restart(),
        )
        .unordered()
        .measured(
            "the emulator and pstest keep everything in memory: a restart loses every topic, subscription and unacknowledged message; Google's own service is not restarted by its users",
        )
    }

    pub(super) fn mqtt() -> BrokerServer {
        let mut server = block(Mosquitto::start);
        let url = server.url();
        let session = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let make = move || {
            let mut opts = MqttBrokerOptions::default();
            opts.addresses = vec![url.clone()];
            opts.session = Some(session.clone());
            Arc::new(MqttBroker::new(opts).expect("mqtt options")) as SharedBroker
        };
        BrokerServer::new(
            "mqtt (QoS 1, named session, $share queue)",
            "kill -9, start again",
            make,
            move || server.restart(),
        )
        .measured(
            "mosquitto 2.0 does not restore `$share` subscriptions after a restart: what is published before the subscriber is back goes to no one",
        )
    }
}

fn plugin(kind: &str, address: &str) -> SharedBroker {
    let mut opts = Options::default();
    opts.broker = kind.to_owned();
    opts.broker_address = address.to_owned();
    let registry = registry("memory", "");
    broker_from(&opts, &registry).expect("broker options")
}

/// A publish stream through a broker whose server is restarted: every message acknowledged
/// to the publisher is looked for at the queue subscriber.
async fn broker_restart(ctx: &Ctx, mut server: BrokerServer) -> Row {
    let aim = if server.at_least_once {
        "0 acknowledged messages lost"
    } else {
        "measured"
    };
    let mut row = Row::new(
        format!(
            "{} restarted ({}) under {} msg/s",
            server.name, server.how, ctx.plan.publish_rate
        ),
        aim,
    );
    let topic = format!("chaos.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let subscriber = (server.make)();
    let received: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&received);
    let _subscription = subscriber
        .subscribe(
            &topic,
            broker::handler(move |ev| {
                let into = Arc::clone(&into);
                async move {
                    if let Some(seq) = std::str::from_utf8(&ev.message().body)
                        .ok()
                        .and_then(|s| s.parse().ok())
                    {
                        into.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(seq);
                    }
                    Ok(())
                }
            }),
            SubscribeOptions::queue("chaos"),
        )
        .await
        .expect("subscribe");
    let publisher = (server.make)();
    let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(0usize));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let period = Duration::from_secs(1) / ctx.plan.publish_rate.max(1);
    let stream = {
        let (acked, failed, topic) = (Arc::clone(&acked), Arc::clone(&failed), topic.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            while !*stopped.borrow() {
                tick.tick().await;
                seq += 1;
                let sent = publisher
                    .publish(
                        &topic,
                        Message::new(seq.to_string()),
                        PublishOptions::default(),
                    )
                    .await;
                match sent {
                    Ok(()) => acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(seq),
                    Err(_) => *failed.lock().unwrap_or_else(PoisonError::into_inner) += 1,
                }
            }
        })
    };
    // Steady: the first messages arrive.
    let started = wait_until(Duration::from_secs(30), || async {
        !received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    })
    .await;
    tokio::time::sleep(ctx.plan.steady).await;
    block(|| (server.restart)());
    let last_before = acked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last()
        .copied()
        .unwrap_or(0);
    let resumed = wait_until(Duration::from_secs(60), || async {
        received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|&s| s > last_before)
    })
    .await;
    tokio::time::sleep(ctx.plan.steady / 2).await;
    stop.send_replace(true);
    let _ = stream.await;
    // Whatever is on its way: up to 10 s for an at-least-once broker (a redelivery may take
    // a moment); an at-most-once one is done once nothing has arrived for a second, since
    // what it lost will never come.
    let acked: Vec<u64> = acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let quiet_after = (!server.at_least_once).then_some(Duration::from_secs(1));
    let mut last = (0, Instant::now());
    let _ = wait_until(Duration::from_secs(10), || {
        let got: HashSet<u64> = received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if got.len() != last.0 {
            last = (got.len(), Instant::now());
        }
        let quiet = quiet_after.is_some_and(|q| last.1.elapsed() >= q);
        let done = quiet || acked.iter().all(|s| got.contains(s));
        async move { done }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let unique: HashSet<u64> = got.iter().copied().collect();
    let lost = acked.iter().filter(|s| !unique.contains(s)).count();
    let failed = *failed.lock().unwrap_or_else(PoisonError::into_inner);
    row.figure("acknowledged", acked.len())
        .figure("publish errors", failed)
        .figure("lost", lost)
        .figure("duplicates", got.len() - unique.len())
        .figure(
            "delivery resumed after",
            resumed.map_or_else(|| "never".to_owned(), secs),
        );
    if started.is_none() {
        row.note = Some("nothing was delivered before the restart".to_owned());
        row.met = Some(false);
        return row;
    }
    if server.at_least_once {
        row.met = Some(lost == 0 && resumed.is_some());
    } else {
        row.note = server.note.map(str::to_owned);
    }
    row
}

/// How many tries a poison message gets in [`poison`].
const POISON_ATTEMPTS: u32 = 3;

/// A publish stream with 1 % poison messages (every 100th) to a queue subscriber whose
/// handler refuses them, with a [`broker::Redelivery`] of [`POISON_ATTEMPTS`] tries and a
/// dead-letter topic: every other message arrives (in order, where the broker keeps it), every
/// poison message is in the dead-letter topic after exactly its tries.
async fn poison(ctx: &Ctx, server: BrokerServer) -> Row {
    let mut row = Row::new(
        format!(
            "{}: 1 % poison messages under {} msg/s, {POISON_ATTEMPTS} tries, then a dead-letter topic",
            server.name, ctx.plan.publish_rate
        ),
        if server.keeps_order {
            "0 lost; every poison message dead-lettered once after its tries; the rest in order"
        } else {
            "0 lost; every poison message dead-lettered once after its tries"
        },
    );
    let topic = format!("chaos.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dead = format!("{topic}.dead");
    let is_poison = |seq: u64| seq % 100 == 50;
    let subscriber = (server.make)();
    let received: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let tries: Arc<Mutex<std::collections::HashMap<u64, u32>>> = Arc::default();
    let handler = {
        let (received, tries) = (Arc::clone(&received), Arc::clone(&tries));
        broker::handler(move |ev| {
            let (received, tries) = (Arc::clone(&received), Arc::clone(&tries));
            async move {
                let seq: u64 = std::str::from_utf8(&ev.message().body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default();
                if is_poison(seq) {
                    *tries
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(seq)
                        .or_default() += 1;
                    return Err(rmicro::Error::bad_request(
                        "chaos",
                        format!("message {seq} is poison"),
                    ));
                }
                received
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(seq);
                Ok(())
            }
        })
    };
    let policy = broker::Redelivery::new(POISON_ATTEMPTS)
        .backoff(Duration::from_millis(20))
        .dead_letter(dead.clone());
    let _subscription = subscriber
        .subscribe(
            &topic,
            policy.wrap(handler, Arc::clone(&subscriber)),
            SubscribeOptions::queue("chaos"),
        )
        .await
        .expect("subscribe");
    let letters: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let _dead_letters = {
        let letters = Arc::clone(&letters);
        subscriber
            .subscribe(
                &dead,
                broker::handler(move |ev| {
                    let letters = Arc::clone(&letters);
                    async move {
                        let seq = std::str::from_utf8(&ev.message().body)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_default();
                        let attempts = ev
                            .message()
                            .header
                            .get(broker::HEADER_DEAD_LETTER_ATTEMPTS)
                            .cloned()
                            .unwrap_or_default();
                        letters
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((seq, attempts));
                        Ok(())
                    }
                }),
                SubscribeOptions::queue("chaos-dead"),
            )
            .await
            .expect("subscribe to the dead letters")
    };
    // Let the subscriptions take effect (kafka joins its groups) before the stream.
    tokio::time::sleep(Duration::from_secs(if ctx.plan.short { 2 } else { 4 })).await;
    let publisher = (server.make)();
    let period = Duration::from_secs(1) / ctx.plan.publish_rate.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = Instant::now() + ctx.plan.steady * 2;
    let mut acked = Vec::new();
    let mut errors = 0usize;
    let mut seq = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        seq += 1;
        match publisher
            .publish(
                &topic,
                Message::new(seq.to_string()),
                PublishOptions::default(),
            )
            .await
        {
            Ok(()) => acked.push(seq),
            Err(_) => errors += 1,
        }
    }
    let (good, bad): (Vec<u64>, Vec<u64>) = acked.iter().partition(|&&s| !is_poison(s));
    let done = wait_until(Duration::from_secs(30), || async {
        let got: HashSet<u64> = received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        let dead: HashSet<u64> = letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(s, _)| *s)
            .collect();
        good.iter().all(|s| got.contains(s)) && bad.iter().all(|s| dead.contains(s))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let unique: HashSet<u64> = got.iter().copied().collect();
    let lost = good.iter().filter(|s| !unique.contains(s)).count();
    let out_of_order = got.windows(2).filter(|w| w[1] < w[0]).count();
    let letters = letters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let dead_unique: HashSet<u64> = letters.iter().map(|(s, _)| *s).collect();
    let missing = bad.iter().filter(|s| !dead_unique.contains(s)).count();
    let wrong_count = letters
        .iter()
        .filter(|(_, a)| *a != POISON_ATTEMPTS.to_string())
        .count();
    let tries = tries.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let tried_right = bad
        .iter()
        .filter(|s| tries.get(s) == Some(&POISON_ATTEMPTS))
        .count();
    row.figure("acknowledged", acked.len())
        .figure("publish errors", errors)
        .figure("poison", bad.len())
        .figure("good delivered", unique.len())
        .figure("lost", lost)
        .figure("duplicates", got.len() - unique.len())
        .figure("out of order", out_of_order)
        .figure("dead-lettered", letters.len())
        .figure(
            &format!("tried exactly {POISON_ATTEMPTS} times"),
            format!("{tried_right} of {}", bad.len()),
        )
        .figure(
            "settled within",
            done.map_or_else(|| "more than 30 s".to_owned(), secs),
        );
    row.met = Some(
        done.is_some()
            && lost == 0
            && missing == 0
            && wrong_count == 0
            && letters.len() == dead_unique.len()
            && tried_right == bad.len()
            && !bad.is_empty()
            && (!server.keeps_order || out_of_order == 0),
    );
    row
}
