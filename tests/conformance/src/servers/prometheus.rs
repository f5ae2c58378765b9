//! Prometheus 2.42 (Debian's `prometheus` package) scraping the test's targets every 500 ms,
//! on a free loopback port, its data in its temporary directory:
//! `prometheus --config.file=<dir>/prometheus.yml --storage.tsdb.path=<dir>/data
//! --web.listen-address=127.0.0.1:<port>`. Queries go through its HTTP API
//! (`/api/v1/query`), as a dashboard's would.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Server, free_port, require};

/// How long Prometheus may take to serve (under a second here).
const BOOT: Duration = Duration::from_secs(30);

/// A Prometheus server.
pub struct Prometheus {
    server: Server,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `rmicro`, path `/metrics`) every 500 ms and
    /// waits until its API answers.
    pub fn scraping(targets: &[SocketAddr]) -> Prometheus {
        let program = require("prometheus");
        let port = free_port();
        let targets = targets
            .iter()
            .map(|t| format!("'\\''{t}'\\''"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\\n  scrape_interval: 500ms\\n  scrape_timeout: 400ms\\nscrape_configs:\\n  - job_name: rmicro\\n    static_configs:\\n      - targets: [{targets}]\\n"
        );
        let script = format!(
            "printf '{config}' > '{{dir}}/prometheus.yml' && exec '{}' \
             --config.file='{{dir}}/prometheus.yml' --storage.tsdb.path='{{dir}}/data' \
             --web.listen-address=127.0.0.1:{port} --log.level=warn",
            program.display()
        );
        let server = Server::start(
            "prometheus",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], port)),
            BOOT,
        );
        let prometheus = Prometheus { server };
        let deadline = Instant::now() + BOOT;
        while prometheus.get("/-/ready").is_none() {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {BOOT:?}:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        prometheus
    }

    /// The value of an instant query that yields one sample, `None` while it yields none.
    pub fn value(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let body = self.get(&path)?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?;
        match result.as_slice() {
            [sample] => sample["value"][1].as_str()?.parse().ok(),
            [] => None,
            many => panic!("`{query}` yields {} samples: {body}", many.len()),
        }
    }

    /// Polls `query` until it yields `want`, for at most `within`; the last value otherwise.
    pub fn wait_for(&self, query: &str, want: f64, within: Duration) -> Result<(), Option<f64>> {
        let deadline = Instant::now() + within;
        loop {
            let value = self.value(query);
            if value == Some(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(value);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain HTTP/1.0 GET: the body of a 200 answer, `None` otherwise.
    fn get(&self, path: &str) -> Option<String> {
        super::http(self.server.addr, "GET", path, b"")
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// Percent-encodes a query for the URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
