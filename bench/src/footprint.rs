//! Footprint: idle RSS of a service process, time from process start to registered, and the
//! CPU spent on heartbeats by 1000 registered services.
//!
//! Two kinds of idle service: the `student_service` example built with rmicro's default
//! features (mdns and http, what a user's default service links), and this binary run again
//! with [`IDLE_ARG`] (the GetStudent service of the RPC scenario on tokio's multi-threaded
//! runtime, as `#[rmicro::main]` builds it, but in a binary that links every plugin).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmicro::broker::memory::MemoryBroker;
use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::service::Service;

use crate::rpc::{StudentService, routes};
use crate::{Config, progress, stats::Row};

/// The hidden first argument that makes this binary an idle service.
pub const IDLE_ARG: &str = "__idle_service";

/// The idle service: `__idle_service <registry> <broker>`; prints `registered` once
/// registered, then idles until its stdin closes.
pub fn idle_service_main(args: &[String]) {
    let registry = args.first().cloned().unwrap_or_else(|| "memory".to_owned());
    let broker = args.get(1).cloned().unwrap_or_else(|| "memory".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        crate::student::register();
        let service = Service::builder(crate::rpc::SERVICE)
            .registry(registry)
            .broker(broker)
            .address("127.0.0.1:0")
            .free_subscribers(false)
            .handler(StudentService, routes())
            .start()
            .await
            .expect("service start");
        service.registered().await.expect("registered");
        println!("registered");
        // Idle until the parent closes stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await;
        let _ = service.stop().await;
    });
}

/// A process's resident memory in KiB: all of it (`VmRSS`) and its anonymous part
/// (`RssAnon`: heap, stacks; the rest is the binary's and the libraries' file pages, shared
/// with the page cache).
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// What an idle-footprint run starts.
#[derive(Debug, Clone, Copy)]
enum Idle {
    /// This binary as a service (every plugin linked), on these plugins.
    Bench(&'static str, &'static str),
    /// The seed's `student_service` example, built with rmicro's default features (mdns and
    /// http): the binary a user's default service is.
    Example,
}

/// `student_service` built by `cargo build --release -p rmicro-examples --bin
/// student_service`, next to this binary (same target directory).
fn example_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("this binary has no directory")?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "rmicro-examples",
            "--bin",
            "student_service",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env(
            "CARGO_TARGET_DIR",
            dir.parent().ok_or("no target directory")?,
        )
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building student_service failed ({status})"));
    }
    Ok(dir.join("student_service"))
}

/// One idle process: (time to registered, (RSS, anonymous RSS) after settling).
fn idle_once(idle: Idle, settle: Duration) -> Result<(Duration, (u64, u64)), String> {
    let mut command = match idle {
        Idle::Bench(registry, broker) => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.args([IDLE_ARG, registry, broker])
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            c
        }
        Idle::Example => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let bin = exe.with_file_name("student_service");
            let mut c = Command::new(bin);
            // Its log goes to stderr; `registered` is the line after `Service::registered`.
            c.arg("--server_address=127.0.0.1:0")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c
        }
    };
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out: Box<dyn std::io::Read + Send> = match (child.stdout.take(), child.stderr.take()) {
        (Some(o), _) => Box::new(o),
        (None, Some(e)) => Box::new(e),
        (None, None) => return Err("no output to read".to_owned()),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(false);
                    return;
                }
                Ok(_) => {
                    let t = line.trim();
                    if t == "registered" || t.contains(" registered ") {
                        let _ = tx.send(true);
                        // Keep draining so the child never blocks on a full pipe.
                        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
                            line.clear();
                        }
                        return;
                    }
                }
            }
        }
    });
    let result = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(true) => {
            let t = start.elapsed();
            std::thread::sleep(settle);
            rss_kib(child.id())
                .map(|rss| (t, rss))
                .ok_or_else(|| "cannot read VmRSS".to_owned())
        }
        Ok(false) => Err("the idle service exited before registering".to_owned()),
        Err(_) => Err("the idle service did not register within 20 s".to_owned()),
    };
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The middle value (the upper one of an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time of each thread of this process by thread id, in nanoseconds (the first field of
/// each thread's `schedstat`; `/proc/self/stat` counts in 10 ms ticks, too coarse for a few
/// ms of heartbeats a second).
fn thread_cpu_ns() -> Option<HashMap<String, u64>> {
    let mut threads = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
        {
            threads.insert(task.file_name().to_string_lossy().into_owned(), ns);
        }
    }
    Some(threads)
}

/// The CPU spent between two [`thread_cpu_ns`] snapshots: each thread's growth, a thread
/// born in between counted whole. (A sum of totals would subtract the past CPU of every
/// thread that ended in between, as tokio's blocking threads do.)
fn cpu_between(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

async fn heartbeats(n: usize, window: Duration) -> Result<(f64, f64), String> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let broker = Arc::new(MemoryBroker::new());
    let mut services = Vec::with_capacity(n);
    for i in 0..n {
        let s = Service::builder(format!("idle_{i}"))
            .with_registry(Arc::clone(&registry))
            .with_broker(broker.clone())
            .address("127.0.0.1:0")
            .interval(Duration::from_secs(1))
            .ttl(Duration::from_secs(3))
            .free_subscribers(false)
            .handler(StudentService, routes())
            .start()
            .await
            .map_err(|e| e.to_string())?;
        services.push(s);
    }
    // Let start-up work settle, then watch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = thread_cpu_ns().ok_or("cannot read /proc/self/task")?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = thread_cpu_ns().ok_or("cannot read /proc/self/task")?;
    let secs = t.elapsed().as_secs_f64();
    let cpu_ms = cpu_between(&before, &after) as f64 / 1e6;
    let all_registered = services
        .iter()
        .all(|s| matches!(s.state(), rmicro::service::RegistrationState::Live));
    for s in services {
        let _ = s.stop().await;
    }
    if !all_registered {
        return Err("some services were not registered at the end".to_owned());
    }
    // CPU ms per second of wall time, and per heartbeat (n per second).
    Ok((cpu_ms / secs, cpu_ms * 1000.0 / (secs * n as f64)))
}

/// The hidden first argument that makes this binary measure heartbeats alone:
/// `__heartbeats <services> <window ms>`; prints `<ms CPU/s> <µs per heartbeat>` or
/// `error: <why>`.
pub const HEARTBEAT_ARG: &str = "__heartbeats";

/// The heartbeat measurement, in a process of its own (see [`heartbeat_row`]).
pub fn heartbeats_main(args: &[String]) {
    let n = args.first().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let window = Duration::from_millis(args.get(1).and_then(|w| w.parse().ok()).unwrap_or(5000));
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(heartbeats(n, window)));
    match result {
        Ok((per_sec, per_beat)) => println!("{per_sec} {per_beat}"),
        Err(e) => println!("error: {e}"),
    }
}

/// The heartbeat CPU of `n` services heartbeating every second to the memory registry,
/// measured in a new process running only them (this process's threads still carry the
/// work of earlier scenarios).
pub async fn heartbeat_row(cfg: &Config, n: usize) -> Row {
    progress(format!(
        "footprint: {n} services, 1 s heartbeat, watching {:?} (in a process of their own)",
        cfg.heartbeat_window
    ));
    let case = format!("heartbeat CPU, {n} services @ 1 s (memory registry)");
    let window = cfg.heartbeat_window.as_millis().to_string();
    let output = match std::env::current_exe() {
        Ok(exe) => {
            tokio::process::Command::new(exe)
                .args([HEARTBEAT_ARG, &n.to_string(), &window])
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .await
        }
        Err(e) => Err(e),
    };
    let line = match output {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => return Row::skipped("footprint", &case, e.to_string()),
    };
    let mut numbers = line.split(' ').map(str::parse::<f64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(per_sec)), Some(Ok(per_beat))) => Row::value(
            "footprint",
            &case,
            "ms CPU/s",
            per_sec,
            &format!("{per_beat:.1} µs CPU per heartbeat (a process running only these services)"),
        ),
        _ => Row::skipped("footprint", &case, line),
    }
}

/// Runs the footprint scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    let runs = if cfg.quick { 3 } else { 7 };
    let settle = Duration::from_secs(1);
    let example = tokio::task::spawn_blocking(example_binary)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    for (label, idle) in [
        (
            "student_service example, defaults (mdns, http)",
            Idle::Example,
        ),
        (
            "bench binary (all plugins linked), registry memory, broker memory",
            Idle::Bench("memory", "memory"),
        ),
        (
            "bench binary (all plugins linked), registry mdns, broker http",
            Idle::Bench("mdns", "http"),
        ),
    ] {
        if let (Idle::Example, Err(e)) = (idle, &example) {
            rows.push(Row::skipped("footprint", label, e.clone()));
            continue;
        }
        progress(format!("footprint: idle service ({label}), {runs} runs"));
        let mut times = Vec::new();
        let mut rss = Vec::new();
        let mut anon = Vec::new();
        let mut error = None;
        for _ in 0..runs {
            match tokio::task::spawn_blocking(move || idle_once(idle, settle)).await {
                Ok(Ok((t, (kib, anon_kib)))) => {
                    times.push(t.as_secs_f64() * 1000.0);
                    rss.push(kib as f64 / 1024.0);
                    anon.push(anon_kib as f64 / 1024.0);
                }
                Ok(Err(e)) => error = Some(e),
                Err(e) => error = Some(e.to_string()),
            }
        }
        if rss.is_empty() {
            rows.push(Row::skipped("footprint", label, error.unwrap_or_default()));
            continue;
        }
        let n = rss.len();
        rows.push(Row::value(
            "footprint",
            &format!("idle RSS, {label}"),
            "MiB",
            median(rss),
            &format!(
                "median of {n}; {:.2} MiB of it anonymous (heap, stacks), the rest the binary's and libraries' pages",
                median(anon)
            ),
        ));
        rows.push(Row::value(
            "footprint",
            &format!("start to registered, {label}"),
            "ms",
            median(times),
            &format!("median of {n}, from spawn to the `registered` line"),
        ));
    }
    rows.push(heartbeat_row(cfg, 1000).await);
    rows
}
