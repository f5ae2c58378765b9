//! What each operating layer costs on the RPC path: one student service per variant on the
//! memory registry, each called by a client of the same variant, as a ratio to the bare
//! service (no metrics, no tracing) in the same run, the sides alternating.
//!
//! - `metrics`: the server's and the client's Prometheus counting (on by default);
//! - `identity layers`: a layer that does nothing around the endpoint calls and one around
//!   the client's calls: what the layer machinery itself costs;
//! - `otel sampler=0`: the four tracing layers with the sampler always off (spans are made
//!   unsampled, context still travels);
//! - `otel sampler=1`: always on, every span exported in batches to an exporter that drops
//!   them (the cost of making, recording and batching spans, not of a network);
//! - `metrics+otel=1`: both.

use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use rmicro::Service;
use rmicro::broker::memory::MemoryBroker;
use rmicro::layer::Layers;
use rmicro::layer::tower;
use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::{Client, ClientOptions};

use crate::rpc::{StudentService, rmicro_load, routes};
use crate::{Config, load, progress, stats::Row};

/// Callers per row.
const CALLERS: [usize; 2] = [1, 16];

/// Drops what it is given.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// One variant: its service name, whether it counts metrics, its tracing layers.
struct Variant {
    name: &'static str,
    metrics: bool,
    layers: Layers,
}

fn tracing(sampler: Sampler) -> (SdkTracerProvider, Layers) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_batch_exporter(Discard)
        .build();
    let layers = rmicro::otel::layers_with(&provider.tracer("rmicro-bench"));
    (provider, layers)
}

async fn start(registry: &SharedRegistry, v: &Variant) -> rmicro::Result<(Service, Client)> {
    let service = Service::builder(v.name)
        .with_registry(Arc::clone(registry))
        .with_broker(Arc::new(MemoryBroker::new()))
        .address("127.0.0.1:0")
        .free_subscribers(false)
        .metrics(v.metrics)
        .layers(&v.layers)
        .handler(StudentService, routes())
        .start()
        .await?;
    service.registered().await?;
    let client = Client::new(
        Arc::clone(registry),
        ClientOptions {
            metrics: v.metrics,
            ..ClientOptions::default()
        },
    )
    .with_layers(&v.layers);
    Ok((service, client))
}

/// Runs the scenario.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let (off, off_layers) = tracing(Sampler::AlwaysOff);
    let (on, on_layers) = tracing(Sampler::AlwaysOn);
    let variants = [
        Variant {
            name: "student_bare",
            metrics: false,
            layers: Layers::new(),
        },
        Variant {
            name: "student_metrics",
            metrics: true,
            layers: Layers::new(),
        },
        Variant {
            name: "student_identity",
            metrics: false,
            layers: Layers::new()
                .handler(tower::layer::util::Identity::new())
                .call(tower::layer::util::Identity::new()),
        },
        Variant {
            name: "student_otel0",
            metrics: false,
            layers: off_layers,
        },
        Variant {
            name: "student_otel1",
            metrics: false,
            layers: on_layers.clone(),
        },
        Variant {
            name: "student_metrics_otel1",
            metrics: true,
            layers: on_layers,
        },
    ];
    let mut started = Vec::new();
    for v in &variants {
        match start(&registry, v).await {
            Ok(s) => started.push(s),
            Err(e) => return vec![Row::skipped("layers", v.name, e.to_string())],
        }
    }
    let mut rows = Vec::new();
    let bare = started[0].1.clone();
    for (i, case) in [
        "metrics",
        "identity layers",
        "otel sampler=0",
        "otel sampler=1",
        "metrics+otel=1",
    ]
    .into_iter()
    .enumerate()
    {
        let (name, client) = (variants[i + 1].name, started[i + 1].1.clone());
        for callers in CALLERS {
            progress(format!(
                "layers {case} c={callers}: against the bare service"
            ));
            let (c, b) = (client.clone(), bare.clone());
            let (a, z) = load::alternate(
                cfg.rounds,
                cfg.warmup,
                cfg.round,
                async |len| rmicro_load(&c, name, "davie", &Default::default(), callers, len).await,
                async |len| {
                    let opts = Default::default();
                    rmicro_load(&b, "student_bare", "davie", &opts, callers, len).await
                },
            )
            .await;
            let row = Row::compare(
                "layers",
                &format!("{case} c={callers}"),
                "req/s",
                a,
                "bare rmicro",
                z,
            );
            progress(format!(
                "  ratio {}",
                row.ratio.map_or("-".into(), |x| format!("{x:.3}"))
            ));
            rows.push(row);
        }
    }
    for (service, _) in started {
        let _ = service.stop().await;
    }
    let _ = off.shutdown();
    let _ = on.shutdown();
    rows
}
