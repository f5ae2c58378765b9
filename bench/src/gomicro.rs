//! go-micro: the RPC and MQTT pub/sub scenarios served by a go-micro v4 program
//! (`bench/go`, built by `bench/build-go.sh`), alternating with rmicro's in the same run.
//!
//! Both sides run client and server in one process: rmicro's in this one, go-micro's in a
//! `gomicro-bench` process started for each round (its start-up and warm-up are not timed;
//! it reports its own counts and latencies).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::{CallOptions, Client, ClientOptions};
use tokio::process::Command;

use crate::rpc::{CALLERS, CONTENT_TYPES, rmicro_call, start_rmicro};
use crate::stats::{Row, Sample};
use crate::{Config, load, progress, pubsub};

const GO: &str = "go-micro v4";

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
                let client = Client::new(
                    Arc::clone(&registry),
                    ClientOptions {
                        content_type: Some(ct.to_owned()),
                        ..ClientOptions::default()
                    },
                );
                for callers in CALLERS {
                    progress(format!("go-micro rpc {short} c={callers}: rmicro vs {GO}"));
                    let c = client.clone();
                    let (a, b) = load::alternate(
                        cfg.rounds,
                        cfg.warmup,
                        cfg.round,
                        async |len| {
                            let c = c.clone();
                            load::closed_loop(callers, len, move || {
                                let c = c.clone();
                                async move { rmicro_call(&c, CallOptions::default()).await }
                            })
                            .await
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
                    progress(format!(
                        "  ratio {}",
                        row.ratio.map_or("-".into(), |x| format!("{x:.2}"))
                    ));
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

    progress("go-micro mqtt: starting mosquitto");
    let (server, addr) = match pubsub::mqtt_server().await {
        Ok(s) => s,
        Err(e) => {
            rows.push(Row::skipped("go-micro", "mqtt", e));
            return rows;
        }
    };
    let mut opts = rmicro::broker::mqtt::MqttBrokerOptions::default();
    opts.addresses = vec![addr.to_string()];
    let side = match rmicro::broker::mqtt::MqttBroker::new(opts) {
        Ok(b) => pubsub::rmicro_side(Arc::new(b), "bench.rmicro").await,
        Err(e) => Err(e.to_string()),
    };
    let mut side = match side {
        Ok(s) => s,
        Err(e) => {
            rows.push(Row::skipped("go-micro", "mqtt", e));
            return rows;
        }
    };
    if let Err(e) = pubsub::ready(&mut side, "rmicro").await {
        rows.push(Row::skipped("go-micro", "mqtt", e));
        return rows;
    }
    progress(format!("go-micro mqtt: rmicro vs {GO}"));
    let addr = format!("tcp://{addr}");
    let full = cfg.round;
    let lat = move |len: Duration| {
        if len == full {
            cfg.latency_msgs
        } else {
            cfg.latency_msgs / 4
        }
    };
    let (a, b) = load::alternate(
        cfg.rounds,
        cfg.warmup,
        cfg.round,
        async |len| pubsub::round(&mut side, len, lat(len)).await,
        async |len| {
            let args = [
                "mqtt".to_owned(),
                "-broker_address".to_owned(),
                addr.clone(),
                "-duration".to_owned(),
                ms(len),
                "-warmup".to_owned(),
                ms(cfg.warmup),
                "-publishers".to_owned(),
                pubsub::PUBLISHERS.to_string(),
                "-lat".to_owned(),
                lat(len).to_string(),
            ];
            go_round(&bin, &args).await
        },
    )
    .await;
    let mut row = Row::compare("go-micro", "mqtt pub/sub", "msg/s", a, GO, b);
    row.note.push_str(
        "; go-micro's mqtt Publish does not wait for the PUBACK (the paho token is not awaited), \
         rmicro's does: errors are messages published but never received",
    );
    progress(format!(
        "  ratio {}",
        row.ratio.map_or("-".into(), |x| format!("{x:.2}"))
    ));
    rows.push(row);
    drop(side);
    drop(server);
    rows
}
