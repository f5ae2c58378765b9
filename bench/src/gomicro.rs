//! go-micro: the RPC, MQTT pub/sub and NATS pub/sub scenarios served by a go-micro v5
//! program (`bench/go`, go-micro.dev/v5 v5.30.0, built by `bench/build-go.sh`), alternating
//! with rmicro's in the same run.
//!
//! Both sides run client and server in one process: rmicro's in this one, go-micro's in a
//! `gomicro-bench` process started for each round (its start-up and warm-up are not timed;
//! it reports its own counts and latencies).
//!
//! The pub/sub rows run both sides against the same server started here: mosquitto for
//! mqtt, nats-server for nats. On the Go side NATS is go-micro v5's own broker
//! (`go-micro.dev/v5/broker/nats`); MQTT is our own `broker.Broker` over paho
//! (`bench/go/mqtt.go`) that mirrors go-micro's v4 MQTT plugin, because the v5 plugin is not
//! served by the Go module proxy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::CallOptions;
use tokio::process::Command;

use crate::rpc::{CALLERS, CONTENT_TYPES, SERVICE, client_for, rmicro_load, start_rmicro};
use crate::stats::{Row, Sample};
use crate::{Config, load, progress, progress_ratio, pubsub};

const GO: &str = "go-micro v5";

fn binary() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/rmicro/bench-bin/gomicro-bench"))
}

async fn build() -> Result<PathBuf, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/build-go.sh");
    let status = Command::new("bash")
        .arg(script)
        .status()
        .await
        .map_err(|e| format!("cannot run `{script}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{script}` failed ({status})"));
    }
    binary()
        .filter(|p| p.is_file())
        .ok_or_else(|| "gomicro-bench was not built".to_owned())
}

#[derive(serde::Deserialize)]
struct GoResult {
    count: u64,
    secs: f64,
    errors: u64,
    #[serde(default)]
    lat_ns: Option<Vec<i64>>,
}

/// Runs one go-micro round; a failure is one error in the sample.
async fn go_round(bin: &PathBuf, args: &[String]) -> Sample {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let out = match out {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            progress(format!("  gomicro-bench: {e}"));
            return Sample {
                errors: 1,
                ..Sample::default()
            };
        }
        Err(_) => {
            progress("  gomicro-bench did not finish within 120 s");
            return Sample {
                errors: 1,
                ..Sample::default()
            };
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(r) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str::<GoResult>(j).ok())
    else {
        progress(format!(
            "  gomicro-bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return Sample {
            errors: 1,
            ..Sample::default()
        };
    };
    progress(format!(
        "  go-micro round: {} ops in {:.2} s, {} errors",
        r.count, r.secs, r.errors
    ));
    Sample {
        count: r.count,
        elapsed: Duration::from_secs_f64(r.secs.max(0.0)),
        latencies: r
            .lat_ns
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.max(0) as u64)
            .collect(),
        errors: r.errors,
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Runs the go-micro scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    progress("go-micro: building the Go side (bench/build-go.sh)");
    let bin = match build().await {
        Ok(b) => b,
        Err(e) => return vec![Row::skipped("go-micro", "all", e)],
    };
    let mut rows = Vec::new();

    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    match start_rmicro(Arc::clone(&registry)).await {
        Ok(service) => {
            for (short, ct) in CONTENT_TYPES {
                let client = client_for(&registry, ct);
                for callers in CALLERS {
                    progress(format!("go-micro rpc {short} c={callers}: rmicro vs {GO}"));
                    let c = client.clone();
                    let (a, b) = load::alternate(
                        cfg.rounds,
                        cfg.warmup,
                        cfg.round,
                        async |len| {
                            let opts = CallOptions::default();
                            rmicro_load(&c, SERVICE, "davie", &opts, callers, len).await
                        },
                        async |len| {
                            let args = [
                                "rpc".to_owned(),
                                "-ct".to_owned(),
                                ct.to_owned(),
                                "-c".to_owned(),
                                callers.to_string(),
                                "-duration".to_owned(),
                                ms(len),
                                "-warmup".to_owned(),
                                ms(cfg.warmup),
                            ];
                            go_round(&bin, &args).await
                        },
                    )
                    .await;
                    let row = Row::compare(
                        "go-micro",
                        &format!("rpc {short} c={callers}"),
                        "req/s",
                        a,
                        GO,
                        b,
                    );
                    progress_ratio(&row);
                    rows.push(row);
                }
            }
            let _ = service.stop().await;
        }
        Err(e) => rows.push(Row::skipped(
            "go-micro",
            "rpc",
            format!("rmicro service: {e}"),
        )),
    }

    rows.push(mqtt_row(cfg, &bin).await);
    rows.push(nats_row(cfg, &bin).await);
    rows
}

/// The number of latency messages of a round of length `len` (warm-up rounds time a quarter).
fn latency_msgs(cfg: &Config, len: Duration) -> usize {
    if len == cfg.round {
        cfg.latency_msgs
    } else {
        cfg.latency_msgs / 4
    }
}

/// Alternates rmicro's `side` with `gomicro-bench <mode> -broker_address <address>` and
/// builds the row; `note` is appended to the row's note (after the error counts).
async fn pubsub_row(
    cfg: &Config,
    bin: &PathBuf,
    mode: &str,
    address: &str,
    mut side: pubsub::Side,
    note: &str,
) -> Row {
    let name = format!("{mode} pub/sub");
    if let Err(e) = pubsub::ready(&mut side, "rmicro").await {
        return Row::skipped("go-micro", &name, e);
    }
    progress(format!("go-micro {mode}: rmicro vs {GO}"));
    let (a, b) = load::alternate(
        cfg.rounds,
        cfg.warmup,
        cfg.round,
        async |len| pubsub::round(&mut side, len, latency_msgs(cfg, len)).await,
        async |len| {
            let args = [
                mode.to_owned(),
                "-broker_address".to_owned(),
                address.to_owned(),
                "-duration".to_owned(),
                ms(len),
                "-warmup".to_owned(),
                ms(cfg.warmup),
                "-publishers".to_owned(),
                pubsub::PUBLISHERS.to_string(),
                "-lat".to_owned(),
                latency_msgs(cfg, len).to_string(),
            ];
            go_round(bin, &args).await
        },
    )
    .await;
    let mut row = Row::compare("go-micro", &name, "msg/s", a, GO, b);
    if !row.note.is_empty() {
        row.note.push_str("; ");
    }
    row.note.push_str(note);
    progress_ratio(&row);
    row
}

/// mqtt: rmicro's `MqttBroker` against our paho adapter (go-micro's plugin semantics) on
/// the same mosquitto.
async fn mqtt_row(cfg: &Config, bin: &PathBuf) -> Row {
    use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};

    progress("go-micro mqtt: starting mosquitto");
    let (server, addr) = match pubsub::mqtt_server().await {
        Ok(s) => s,
        Err(e) => return Row::skipped("go-micro", "mqtt pub/sub", e),
    };
    let mut opts = MqttBrokerOptions::default();
    opts.addresses = vec![addr.to_string()];
    let side = match MqttBroker::new(opts) {
        Ok(b) => pubsub::rmicro_side(Arc::new(b), "bench.rmicro").await,
        Err(e) => Err(e.to_string()),
    };
    let side = match side {
        Ok(s) => s,
        Err(e) => return Row::skipped("go-micro", "mqtt pub/sub", e),
    };
    let row = pubsub_row(
        cfg,
        bin,
        "mqtt",
        &format!("tcp://{addr}"),
        side,
        "go-micro side: our paho adapter with the v4 plugin's semantics (no v5 mqtt plugin \
         is served); its Publish does not wait for the PUBACK (the paho token is not \
         awaited), rmicro's does: errors are messages published but never received",
    )
    .await;
    drop(server);
    row
}

/// nats: rmicro's `NatsBroker` against go-micro v5's own nats broker on the same
/// nats-server.
async fn nats_row(cfg: &Config, bin: &PathBuf) -> Row {
    use rmicro::broker::nats::{NatsBroker, NatsBrokerOptions};

    progress("go-micro nats: starting nats-server");
    let server = match pubsub::fixture(rmicro_conformance::servers::nats::Nats::start).await {
        Ok(s) => s,
        Err(e) => return Row::skipped("go-micro", "nats pub/sub", e),
    };
    let mut opts = NatsBrokerOptions::default();
    opts.addresses = vec![server.url()];
    let capacity = opts.subscription_capacity;
    let broker = match NatsBroker::new(opts) {
        Ok(b) => Arc::new(b),
        Err(e) => return Row::skipped("go-micro", "nats pub/sub", e.to_string()),
    };
    let side = match pubsub::rmicro_side(Arc::clone(&broker) as _, "bench.rmicro").await {
        Ok(s) => s,
        Err(e) => return Row::skipped("go-micro", "nats pub/sub", e),
    };
    let mut row = pubsub_row(
        cfg,
        bin,
        "nats",
        &server.url(),
        side,
        "go-micro side: go-micro.dev/v5/broker/nats, whose Publish only buffers (no flush), \
         rmicro's flushes each publish (the default `flush_each_publish`): errors are \
         messages published but never received",
    )
    .await;
    // rmicro's losses on nats are its client's slow-consumer drops: say how many reports.
    let slow = broker.slow_consumer_events();
    if slow > 0 {
        row.note.push_str(&format!(
            "; rmicro's nats client reported {slow} slow consumer(s): its subscription buffer \
             (`subscription_capacity` {capacity}) was full and it dropped messages"
        ));
    }
    drop(server);
    row
}
