//! Samples, percentiles and the rows of the result table.

use std::time::Duration;

use serde::Serialize;

/// What one side did in one or more rounds: operations, the time they took, and the
/// latency of each timed operation in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    /// Operations completed.
    pub count: u64,
    /// Wall time of the operations (for the throughput).
    pub elapsed: Duration,
    /// One latency per timed operation, in nanoseconds.
    pub latencies: Vec<u64>,
    /// Operations that failed (an error, or a message that never arrived).
    pub errors: u64,
}

impl Sample {
    /// Adds another round's sample to this one.
    pub fn merge(&mut self, other: Sample) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }

    /// Operations per second over all rounds.
    pub fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.count as f64 / self.elapsed.as_secs_f64()
        }
    }

    /// Summarises the sample: the rate and the nearest-rank p50 and p99.
    pub fn summary(mut self) -> Summary {
        self.latencies.sort_unstable();
        Summary {
            rate: self.rate(),
            p50_us: percentile(&self.latencies, 0.50),
            p99_us: percentile(&self.latencies, 0.99),
            max_us: percentile(&self.latencies, 1.0),
            ops: self.count,
            timed: self.latencies.len() as u64,
            errors: self.errors,
        }
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in microseconds: the smallest value with at
/// least `p` of the sample at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// One side of a comparison, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Operations per second (requests/s, messages/s).
    pub rate: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// The slowest timed operation, microseconds.
    pub max_us: f64,
    /// Operations counted for the rate.
    pub ops: u64,
    /// Operations timed for the percentiles.
    pub timed: u64,
    /// Failed operations.
    pub errors: u64,
}

/// One line of the table: rmicro against a baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `rpc`, `pubsub`, `discovery`, `footprint`, `go-micro`.
    pub scenario: String,
    /// What was measured (`json c=16`, `mqtt`, ...).
    pub case: String,
    /// The unit of `rate`.
    pub unit: String,
    /// rmicro's side.
    pub rmicro: Option<Summary>,
    /// What rmicro is compared with (`raw hyper`, `rumqttc`, `go-micro v5`, ...).
    pub baseline_name: String,
    /// The baseline's side.
    pub baseline: Option<Summary>,
    /// rmicro's rate over the baseline's.
    pub ratio: Option<f64>,
    /// What the reader should know (skips, errors, the aim).
    pub note: String,
}

impl Row {
    /// A comparison row from two samples.
    pub fn compare(
        scenario: &str,
        case: &str,
        unit: &str,
        rmicro: Sample,
        baseline_name: &str,
        baseline: Sample,
    ) -> Row {
        let a = rmicro.summary();
        let b = baseline.summary();
        let ratio = if b.rate > 0.0 {
            Some(a.rate / b.rate)
        } else {
            None
        };
        let mut note = String::new();
        if a.errors + b.errors > 0 {
            note = format!("errors: rmicro {}, baseline {}", a.errors, b.errors);
        }
        // A stall (one call of seconds) weighs on the rate but not on the p99: say so.
        for (who, s) in [("rmicro", &a), ("baseline", &b)] {
            if s.max_us > 1_000_000.0 {
                if !note.is_empty() {
                    note.push_str("; ");
                }
                note.push_str(&format!(
                    "{who}'s slowest call took {:.1} s",
                    s.max_us / 1e6
                ));
            }
        }
        Row {
            scenario: scenario.to_owned(),
            case: case.to_owned(),
            unit: unit.to_owned(),
            rmicro: Some(a),
            baseline_name: baseline_name.to_owned(),
            baseline: Some(b),
            ratio,
            note,
        }
    }

    /// A row that could not be measured.
    pub fn skipped(scenario: &str, case: &str, why: impl Into<String>) -> Row {
        Row {
            scenario: scenario.to_owned(),
            case: case.to_owned(),
            unit: String::new(),
            rmicro: None,
            baseline_name: String::new(),
            baseline: None,
            ratio: None,
            note: why.into(),
        }
    }

    /// A single-valued measurement (footprint): `value` in `unit`, no baseline.
    pub fn value(scenario: &str, case: &str, unit: &str, value: f64, note: &str) -> Row {
        Row {
            scenario: scenario.to_owned(),
            case: case.to_owned(),
            unit: unit.to_owned(),
            rmicro: Some(Summary {
                rate: value,
                p50_us: f64::NAN,
                p99_us: f64::NAN,
                max_us: f64::NAN,
                ops: 1,
                timed: 0,
                errors: 0,
            }),
            baseline_name: String::new(),
            baseline: None,
            ratio: None,
            note: note.to_owned(),
        }
    }
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table, as printed (a Markdown table, so it can be pasted as is).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | case | unit | rmicro rate | rmicro p50 µs | rmicro p99 µs | baseline | baseline rate | baseline p50 µs | baseline p99 µs | ratio | note |\n",
    );
    out.push_str("|---|---|---|--:|--:|--:|---|--:|--:|--:|--:|---|\n");
    for r in rows {
        let side = |s: &Option<Summary>| match s {
            Some(s) => [num(s.rate), num(s.p50_us), num(s.p99_us)],
            None => ["-".to_owned(), "-".to_owned(), "-".to_owned()],
        };
        let [ar, a50, a99] = side(&r.rmicro);
        let [br, b50, b99] = side(&r.baseline);
        let ratio = r.ratio.map_or("-".to_owned(), |x| format!("{x:.2}"));
        out.push_str(&format!(
            "| {} | {} | {} | {ar} | {a50} | {a99} | {} | {br} | {b50} | {b99} | {ratio} | {} |\n",
            r.scenario,
            r.case,
            r.unit,
            if r.baseline_name.is_empty() {
                "-"
            } else {
                &r.baseline_name
            },
            r.note
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7000], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
