//! Discovery: the same rmicro call found through the mdns and consul registries against the
//! same call to a fixed address (`CallOptions::address`, no registry). The client caches
//! what the registry says, so the ratio should be about 1.

use std::sync::Arc;

use rmicro::registry::SharedRegistry;
use rmicro::registry::consul::{ConsulOptions, ConsulRegistry};
use rmicro::registry::mdns::{MdnsOptions, MdnsRegistry};
use rmicro::rpc::{CallOptions, Client, ClientOptions};

use crate::rpc::{SERVICE, rmicro_call_for, rmicro_load, start_rmicro};
use crate::{Config, load, progress, progress_ratio, stats::Row};

/// Concurrent callers: one, so the numbers are call latencies.
const CALLERS: usize = 1;

async fn compare(cfg: &Config, name: &str, server: SharedRegistry, client: SharedRegistry) -> Row {
    let service = match start_rmicro(server).await {
        Ok(s) => s,
        Err(e) => return Row::skipped("discovery", name, format!("rmicro service: {e}")),
    };
    if let Err(e) = service.registered().await {
        return Row::skipped("discovery", name, format!("registration: {e}"));
    }
    let address = service.address().to_string();
    let c = Client::new(client, ClientOptions::default());
    // The first lookup (a cache miss) must succeed before measuring.
    let mut found = false;
    for _ in 0..50 {
        if rmicro_call_for(&c, SERVICE, "davie", CallOptions::default())
            .await
            .is_ok()
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !found {
        let _ = service.stop().await;
        return Row::skipped("discovery", name, "the service was not found within 5 s");
    }
    progress(format!("discovery {name}: registry vs fixed address"));
    let fixed = CallOptions {
        address: Some(address),
        ..CallOptions::default()
    };
    let (a, b) = load::alternate(
        cfg.rounds,
        cfg.warmup,
        cfg.round,
        async |len| rmicro_load(&c, SERVICE, "davie", &CallOptions::default(), CALLERS, len).await,
        async |len| rmicro_load(&c, SERVICE, "davie", &fixed, CALLERS, len).await,
    )
    .await;
    let _ = service.stop().await;
    let row = Row::compare(
        "discovery",
        &format!("{name} c={CALLERS}"),
        "req/s",
        a,
        "fixed address",
        b,
    );
    progress_ratio(&row);
    row
}

/// Runs the discovery scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    // mDNS on loopback, on a free port rather than 5353 (nothing else on the machine hears).
    let port = rmicro_conformance::servers::free_port();
    let opts = MdnsOptions {
        port,
        ..MdnsOptions::default()
    };
    match (MdnsRegistry::new(opts.clone()), MdnsRegistry::new(opts)) {
        (Ok(server), Ok(client)) => {
            rows.push(compare(cfg, "mdns", Arc::new(server), Arc::new(client)).await);
        }
        (Err(e), _) | (_, Err(e)) => rows.push(Row::skipped("discovery", "mdns", e.to_string())),
    }
    progress("discovery consul: starting consul");
    match crate::pubsub::fixture(rmicro_conformance::servers::consul::start).await {
        Ok(server) => {
            let addr = rmicro_conformance::servers::consul::address(&server);
            let make = || ConsulRegistry::new(ConsulOptions::from_env().addresses([addr.clone()]));
            match (make(), make()) {
                (Ok(s), Ok(c)) => rows.push(compare(cfg, "consul", Arc::new(s), Arc::new(c)).await),
                (Err(e), _) | (_, Err(e)) => {
                    rows.push(Row::skipped("discovery", "consul", e.to_string()));
                }
            }
        }
        Err(e) => rows.push(Row::skipped("discovery", "consul", e)),
    }
    rows
}
