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
    if !warmup.is_zero() {
        let _ = a(warmup).await;
        let _ = b(warmup).await;
    }
    let mut sa = Sample::default();
    let mut sb = Sample::default();
    for r in 0..rounds {
        if r % 2 == 0 {
            sa.merge(a(round).await);
            sb.merge(b(round).await);
        } else {
            sb.merge(b(round).await);
            sa.merge(a(round).await);
        }
    }
    (sa, sb)
}
