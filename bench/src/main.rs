//! rmicro's benchmark harness: rmicro against raw baselines (hyper, the broker client
//! libraries) and against go-micro, both sides of each comparison in the same run, in
//! alternating rounds so that machine noise cancels out in the ratio.
//!
//! ```text
//! cargo run --release -p rmicro-bench -- --quick
//! cargo run --release -p rmicro-bench -- --json results.json
//! ```
//!
//! See BENCHMARKS.md for the method and the numbers.

mod curves;
mod discovery;
mod footprint;
mod gomicro;
mod growth;
mod heap;
mod layers;
mod load;
mod pubsub;
mod rpc;
mod stats;
mod student;
mod vs_tonic;

use std::time::{Duration, Instant};

use stats::Row;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

const HELP: &str = "\
rmicro-bench: rmicro against raw baselines and go-micro, side by side in one run

USAGE:
    cargo run --release -p rmicro-bench -- [OPTIONS]

OPTIONS:
    --quick          short rounds (the whole run takes about 20 minutes on 2 cores, 12 of
                     them the growth scenario's Consul at 10,000 nodes)
    --json FILE      also write the results as JSON to FILE
    --svg DIR        also draw the curves the run measured (RPC against reply size; the
                     growth scenario's registry, memory and heartbeat curves) as SVG files
                     into DIR
    --only LIST      run only these scenarios (comma-separated):
                     rpc, tonic, layers, pubsub, discovery, footprint, growth, go-micro;
                     rpc:split (rmicro's client and server each against the raw
                     mucp pair, and one caller with both sides on one thread);
                     one broker's pub/sub row alone: pubsub:envelope (the envelope in
                     process, no broker), pubsub:memory, pubsub:http, pubsub:mqtt,
                     pubsub:nats, pubsub:redis, pubsub:rabbitmq, pubsub:nsq,
                     pubsub:kafka, pubsub:googlepubsub
    --help           print this help

Servers (mosquitto, nats-server, rabbitmq-server, redis-server, etcd, consul) are started on free
127.0.0.1 ports; a missing one skips its rows. The go-micro programs are built by
bench/build-go.sh into ~/.cache/rmicro/bench-bin. Progress goes to stderr, the table to
stdout.

ENVIRONMENT:
    RMICRO_BENCH_MQTT_ADDRESS   127.0.0.1:<port> of an MQTT server to use instead of
                                starting mosquitto
    RMICRO_BENCH_SIDE           rmicro or baseline: run only that side of each
                                comparison (for a profiler); no ratios then";

/// How long and how often each side runs.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Rounds per side (the sides alternate: A B, B A, A B, ...).
    pub rounds: usize,
    /// Length of one measured round.
    pub round: Duration,
    /// Unmeasured warm-up before each side's first round.
    pub warmup: Duration,
    /// Messages timed one at a time per round in the pub/sub latency phase.
    pub latency_msgs: usize,
    /// Seconds the heartbeat CPU scenario watches 1000 services.
    pub heartbeat_window: Duration,
    /// Whether this is `--quick`.
    pub quick: bool,
}

impl Config {
    fn quick() -> Self {
        Self {
            rounds: 3,
            round: Duration::from_millis(700),
            warmup: Duration::from_millis(300),
            latency_msgs: 200,
            heartbeat_window: Duration::from_secs(5),
            quick: true,
        }
    }

    fn full() -> Self {
        Self {
            rounds: 6,
            round: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            latency_msgs: 1000,
            heartbeat_window: Duration::from_secs(10),
            quick: false,
        }
    }
}

/// Prints a progress line on stderr, prefixed with the seconds since start.
pub fn progress(msg: impl AsRef<str>) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:6.1}s] {}", start.elapsed().as_secs_f64(), msg.as_ref());
}

/// Reports a finished row's ratio on the progress line.
pub fn progress_ratio(row: &stats::Row) {
    progress(format!(
        "  ratio {}",
        row.ratio.map_or("-".into(), |x| format!("{x:.2}"))
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The footprint scenario runs this binary again as an idle service.
    if args.first().map(String::as_str) == Some(footprint::IDLE_ARG) {
        footprint::idle_service_main(&args[1..]);
        return;
    }
    // And as the heartbeating services alone.
    if args.first().map(String::as_str) == Some(footprint::HEARTBEAT_ARG) {
        footprint::heartbeats_main(&args[1..]);
        return;
    }
    let mut cfg = Config::full();
    let mut json = None;
    let mut svg: Option<String> = None;
    let mut only: Option<Vec<String>> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => cfg = Config { ..Config::quick() },
            "--json" => json = it.next(),
            "--svg" => svg = it.next(),
            "--only" => only = it.next().map(|l| l.split(',').map(str::to_owned).collect()),
            "--help" | "-h" => {
                println!("{HELP}");
                return;
            }
            other => {
                eprintln!("error: unknown argument `{other}`\n\n{HELP}");
                std::process::exit(2);
            }
        }
    }
    let wanted = |s: &str| only.as_ref().is_none_or(|l| l.iter().any(|x| x == s));
    progress(format!(
        "rmicro-bench: {} run, {} rounds of {:?} per side",
        if cfg.quick { "quick" } else { "full" },
        cfg.rounds,
        cfg.round
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    student::register();
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    runtime.block_on(async {
        if wanted("rpc") {
            rows.extend(rpc::run(&cfg).await);
        }
        if wanted("rpc:split") {
            rows.extend(rpc::split(&cfg).await);
        }
        if wanted("tonic") {
            rows.extend(vs_tonic::run(&cfg).await);
        }
        if wanted("layers") {
            rows.extend(layers::run(&cfg).await);
        }
        let broker_wanted = |b: &str| wanted("pubsub") || wanted(&format!("pubsub:{b}"));
        if pubsub::BROKERS.iter().any(|b| broker_wanted(b)) {
            rows.extend(pubsub::run(&cfg, &broker_wanted).await);
        }
        if wanted("discovery") {
            rows.extend(discovery::run(&cfg).await);
        }
        if wanted("footprint") {
            rows.extend(footprint::run(&cfg).await);
        }
        if wanted("growth") {
            rows.extend(growth::run(&cfg).await);
        }
        if wanted("go-micro") {
            rows.extend(gomicro::run(&cfg).await);
        }
    });
    progress(format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    println!(
        "\nrmicro-bench ({} run: {} alternating rounds of {:?} per side, {:?} warm-up; rates per second, latencies in µs)\n",
        if cfg.quick { "quick" } else { "full" },
        cfg.rounds,
        cfg.round,
        cfg.warmup
    );
    println!("{}", stats::table(&rows));
    if let Some(path) = json {
        let doc = serde_json::json!({
            "quick": cfg.quick,
            "rounds": cfg.rounds,
            "round_ms": cfg.round.as_millis() as u64,
            "warmup_ms": cfg.warmup.as_millis() as u64,
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&doc).expect("json");
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write `{path}`: {e}");
            std::process::exit(1);
        }
        progress(format!("wrote {path}"));
    }
    if let Some(dir) = svg {
        match curves::write(&rows, std::path::Path::new(&dir)) {
            Ok(files) if files.is_empty() => progress("no curve in this run (--svg needs rpc)"),
            Ok(files) => progress(format!("wrote {}", files.join(", "))),
            Err(e) => {
                eprintln!("error: cannot draw the curves: {e}");
                std::process::exit(1);
            }
        }
    }
    // Background tasks (broker connections) end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
}
