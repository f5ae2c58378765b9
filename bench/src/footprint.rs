//! Footprint: idle RSS of a service process, time from process start to registered, and the
//! CPU spent on heartbeats by 1000 registered services.
//!
//! The idle service is this binary run again with [`IDLE_ARG`]: the GetStudent service of
//! the RPC scenario on tokio's multi-threaded runtime (what `#[rmicro::main]` builds).

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

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One idle process: (time to registered, RSS after settling).
fn idle_once(registry: &str, broker: &str, settle: Duration) -> Result<(Duration, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args([IDLE_ARG, registry, broker])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let result = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) if line.trim() == "registered" => {
            let t = start.elapsed();
            std::thread::sleep(settle);
            vm_rss_kib(child.id())
                .map(|rss| (t, rss))
                .ok_or_else(|| "cannot read VmRSS".to_owned())
        }
        Ok(_) => Err("the idle service exited before registering".to_owned()),
        Err(_) => Err("the idle service did not register within 20 s".to_owned()),
    };
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// utime + stime of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

async fn heartbeats(cfg: &Config, n: usize) -> Result<(f64, f64), String> {
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
    let before = cpu_ticks().ok_or("cannot read /proc/self/stat")?;
    let t = Instant::now();
    tokio::time::sleep(cfg.heartbeat_window).await;
    let after = cpu_ticks().ok_or("cannot read /proc/self/stat")?;
    let secs = t.elapsed().as_secs_f64();
    let cpu_ms = (after - before) as f64 * 10.0;
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

/// Runs the footprint scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    let runs = if cfg.quick { 3 } else { 7 };
    let settle = Duration::from_secs(1);
    for (label, registry, broker) in [
        ("registry memory, broker memory", "memory", "memory"),
        ("registry mdns, broker http (defaults)", "mdns", "http"),
    ] {
        progress(format!("footprint: idle service ({label}), {runs} runs"));
        let mut times = Vec::new();
        let mut rss = Vec::new();
        let mut error = None;
        for _ in 0..runs {
            let (r, b) = (registry.to_owned(), broker.to_owned());
            match tokio::task::spawn_blocking(move || idle_once(&r, &b, settle)).await {
                Ok(Ok((t, kib))) => {
                    times.push(t.as_secs_f64() * 1000.0);
                    rss.push(kib as f64 / 1024.0);
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
            &format!("median of {n}; aim < 10 MiB"),
        ));
        rows.push(Row::value(
            "footprint",
            &format!("start to registered, {label}"),
            "ms",
            median(times),
            &format!("median of {n}, from spawn to the `registered` line"),
        ));
    }
    let n = 1000;
    progress(format!(
        "footprint: {n} services, 1 s heartbeat, watching {:?}",
        cfg.heartbeat_window
    ));
    match heartbeats(cfg, n).await {
        Ok((per_sec, per_beat)) => {
            rows.push(Row::value(
                "footprint",
                "heartbeat CPU, 1000 services @ 1 s (memory registry)",
                "ms CPU/s",
                per_sec,
                &format!("{per_beat:.1} µs CPU per heartbeat (whole process, idle otherwise)"),
            ));
        }
        Err(e) => rows.push(Row::skipped("footprint", "heartbeat CPU", e)),
    }
    rows
}
