//! rmicro's fault suite: each scenario starts real servers and real service processes on
//! loopback, drives a steady load through rmicro's own client or broker, causes one fault,
//! counts every call and message, and gives one [`Row`] of figures with its aim.
//!
//! `cargo run --release -p rmicro-chaos -- --help` runs it; `RELIABILITY.md` has the method
//! and a table from a real run; `tests/short.rs` runs the short plan in CI and fails when an
//! aim is missed.

pub mod load;
pub mod plot;
pub mod scenarios;
pub mod service;

use std::fmt;
use std::time::Duration;

/// How long each part of a scenario lasts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The short plan (CI) or the long one (the table).
    pub short: bool,
    /// Callers of the RPC load.
    pub callers: usize,
    /// Load before a fault, measured as the steady state.
    pub steady: Duration,
    /// The services' `--register_ttl` and `--register_interval`, in seconds.
    pub ttl: u64,
    pub interval: u64,
    /// How long a registry stays down.
    pub registry_down: Duration,
    /// Messages per second of a publish stream.
    pub publish_rate: u32,
}

impl Plan {
    /// The long plan, for the table: go-micro's lesson's TTL and interval (10 s, 5 s), a
    /// registry down for 30 s.
    pub fn long() -> Plan {
        Plan {
            short: false,
            callers: 16,
            steady: Duration::from_secs(10),
            ttl: 10,
            interval: 5,
            registry_down: Duration::from_secs(30),
            publish_rate: 500,
        }
    }

    /// The short plan, for CI: the same scenarios in about a fifth of the time.
    pub fn short() -> Plan {
        Plan {
            short: true,
            callers: 16,
            steady: Duration::from_secs(2),
            ttl: 4,
            interval: 2,
            registry_down: Duration::from_secs(6),
            publish_rate: 200,
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval)
    }
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    /// What was counted, as `name value` pairs for the table.
    pub figures: Vec<(String, String)>,
    /// The aim, in words.
    pub aim: String,
    /// Whether it was met; `None` where the scenario only measures.
    pub met: Option<bool>,
    /// Why an aim cannot be met, when a server's limit is the cause.
    pub note: Option<String>,
}

impl Row {
    pub fn new(scenario: impl Into<String>, aim: impl Into<String>) -> Row {
        Row {
            scenario: scenario.into(),
            figures: Vec::new(),
            aim: aim.into(),
            met: None,
            note: None,
        }
    }

    pub fn figure(&mut self, name: &str, value: impl fmt::Display) -> &mut Row {
        self.figures.push((name.to_owned(), value.to_string()));
        self
    }

    /// Whether the aim was met (a scenario's row that never ran to the end is not).
    pub fn passed(&self) -> bool {
        self.met != Some(false)
    }

    /// The row as a markdown table line: scenario | figures | aim | met.
    pub fn markdown(&self) -> String {
        let figures = self
            .figures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let met = match self.met {
            Some(true) => "yes".to_owned(),
            Some(false) => "**no**".to_owned(),
            None => "measured".to_owned(),
        };
        let note = self
            .note
            .as_deref()
            .map_or_else(String::new, |n| format!(" ({n})"));
        format!(
            "| {} | {figures} | {} | {met}{note} |",
            self.scenario, self.aim
        )
    }
}

/// The table's header, for [`Row::markdown`] lines.
pub const TABLE_HEADER: &str = "| scenario | figures | aim | met |\n|---|---|---|---|";
