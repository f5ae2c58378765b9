//! Jaeger v2 (the OpenTelemetry-Collector-based `jaeger` binary, v1.75.0, built from the Go
//! module proxy by `scripts/jaeger.sh` into `~/.cache/rmicro/bin`) as a real OTLP receiver:
//! OTLP/HTTP on a free loopback port into its in-memory store, read back through its query
//! API (`/api/traces?service=..`, the JSON the Jaeger UI reads). Nothing else listens: the
//! configuration is written to its temporary directory (no sampling, health or metrics
//! endpoints, no gRPC, Jaeger or Zipkin receivers).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Server, free_port, script_once};

/// How long Jaeger may take to serve (under a second here).
const BOOT: Duration = Duration::from_secs(30);

/// The jaeger program, built once per test process when missing.
fn jaeger() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    script_once(&BIN, "jaeger.sh")
}

/// A Jaeger with an OTLP/HTTP receiver and its query API.
pub struct Jaeger {
    server: Server,
    query_port: u16,
}

impl Jaeger {
    /// Starts Jaeger on free ports of 127.0.0.1 and waits until its query API answers.
    pub fn start() -> Jaeger {
        let program = jaeger();
        let otlp = free_port();
        let query_port = free_port();
        let query_grpc = free_port();
        let config = format!(
            "service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"
        );
        let script = format!(
            "cat > '{{dir}}/jaeger.yaml' <<'EOF'\n{config}EOF\nexec '{}' --config '{{dir}}/jaeger.yaml'",
            program.display()
        );
        let mut server = Server::start(
            "jaeger",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], otlp)),
            BOOT,
        );
        server.extra_ports.extend([query_port, query_grpc]);
        let jaeger = Jaeger { server, query_port };
        let deadline = Instant::now() + BOOT;
        while jaeger.get("/api/services").is_none() {
            assert!(
                Instant::now() < deadline,
                "jaeger's query API not up within {BOOT:?}:\n{}",
                jaeger.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        jaeger
    }

    /// The OTLP endpoint, for `OTEL_EXPORTER_OTLP_ENDPOINT`: `http://127.0.0.1:<port>`.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The traces that have a span of `service`, as the query API returns them (`data`).
    pub fn traces(&self, service: &str) -> Vec<serde_json::Value> {
        let Some(body) = self.get(&format!("/api/traces?service={service}&limit=100")) else {
            return Vec::new();
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        json["data"].as_array().cloned().unwrap_or_default()
    }

    /// A plain HTTP/1.0 GET on the query API: the body of a 200 answer, `None` otherwise.
    fn get(&self, path: &str) -> Option<String> {
        super::http(
            SocketAddr::from(([127, 0, 0, 1], self.query_port)),
            "GET",
            path,
            b"",
        )
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}
