//! Closed-loop load: `n` callers each calling as fast as replies come, for a bounded time and
//! a bounded count; and the alternation of two sides in rounds.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::stats::Sample;

/// Upper bound of calls per caller per round, whatever the round's length.
const MAX_CALLS_PER_CALLER: u64 = 2_000_000;

/// Runs `callers` concurrent loops of `call` for `length`, timing every call. A failed call
/// counts as an error (not in the rate, not timed); more than 100 errors end the round.
pub async fn closed_loop<F, Fut, E>(callers: usize, length: Duration, call: F) -> Sample
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(16 * 1024);
            let mut errors = 0u64;
            let mut n = 0u64;
            loop {
                let t = Instant::now();
                if t >= deadline || n >= MAX_CALLS_PER_CALLER || errors > 100 {
                    break;
                }
                match call().await {
                    Ok(()) => lat.push(t.elapsed().as_nanos() as u64),
                    Err(e) => {
                        if errors == 0 {
                            crate::progress(format!("  call failed: {e}"));
                        }
                        errors += 1;
                    }
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    let mut sample = Sample::default();
    for t in tasks {
        match t.await {
            Ok((lat, errors)) => {
                sample.count += lat.len() as u64;
                sample.latencies.extend(lat);
                sample.errors += errors;
            }
            Err(_) => sample.errors += 1,
        }
    }
    sample.elapsed = start.elapsed();
    sample
}

/// Runs sides `a` and `b` for `rounds` rounds each, alternating which goes first (A B, B A,
/// ...), after one unmeasured warm-up of each; returns their merged samples.
pub async fn alternate<A, B>(
    rounds: usize,
    warmup: Duration,
    round: Duration,
    mut a: A,
    mut b: B,
) -> (Sample, Sample)
where
    A: AsyncFnMut(Duration) -> Sample,
    B: AsyncFnMut(Duration) -> Sample,
{
    let (run_a, run_b) = match side() {
        Some(Side::Rmicro) => (true, false),
        Some(Side::Baseline) => (false, true),
        None => (true, true),
    };
    if !warmup.is_zero() {
        if run_a {
            let _ = a(warmup).await;
        }
        if run_b {
            let _ = b(warmup).await;
        }
    }
    let mut sa = Sample::default();
    let mut sb = Sample::default();
    for r in 0..rounds {
        if r % 2 == 0 {
            if run_a {
                sa.merge(a(round).await);
            }
            if run_b {
                sb.merge(b(round).await);
            }
        } else {
            if run_b {
                sb.merge(b(round).await);
            }
            if run_a {
                sa.merge(a(round).await);
            }
        }
    }
    (sa, sb)
}

/// One side alone, for profiling (`RMICRO_BENCH_SIDE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// rmicro's side only.
    Rmicro,
    /// The baseline's side only.
    Baseline,
}

/// `RMICRO_BENCH_SIDE=rmicro|baseline` runs only that side of each comparison (so a profiler
/// sees one side); the rows then have no ratio.
pub fn side() -> Option<Side> {
    static SIDE: std::sync::OnceLock<Option<Side>> = std::sync::OnceLock::new();
    *SIDE.get_or_init(|| match std::env::var("RMICRO_BENCH_SIDE").as_deref() {
        Ok("rmicro") => Some(Side::Rmicro),
        Ok("baseline") => Some(Side::Baseline),
        _ => None,
    })
}
