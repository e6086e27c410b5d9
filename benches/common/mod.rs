//! Helpers shared by the benchmarks.
#![allow(dead_code)] // each benchmark uses some of them

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A Luhn-valid ICCID ending in `n`.
pub(crate) fn iccid(n: usize) -> String {
    let body = format!("8944{n:014}");
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|s| simvault::domain::identifiers::luhn_valid(s))
        .unwrap_or_default()
}

/// Operations per second: `callers` tasks call `op(n)` for `seconds`, caller `c` with
/// n = c, c + callers, c + 2·callers, …
pub(crate) async fn per_second<F, Fut>(callers: usize, seconds: u64, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (op, done) = (op.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = c;
            while Instant::now() < end {
                op(n).await?;
                done.fetch_add(1, Ordering::Relaxed);
                n += callers;
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
