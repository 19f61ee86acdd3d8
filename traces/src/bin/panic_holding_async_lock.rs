//! Scenario `panic_holding_async_lock` (bug: a panic leaves data half-updated behind an async
//! lock, which does not poison).
//!
//! A ledger keeps an account's total under an async mutex (hindsight's recording wrapper of
//! tokio's). A `transfer` task adds a deposit of 100 in two halves, validating the batch in
//! between; the validation panics (a bad batch id). Unwinding drops the guard: the lock is
//! free, nothing marks the data, and the `audit` task that takes the lock next reads a total
//! of 50 where it should read 0 or 100. A std mutex would have been poisoned; tokio's is not.
//!
//! Expected, exactly: one `stale-lock` (error): task `transfer` panicked holding lock
//! `total`, acquired at the `// site: lock` line, panicked at the `// site: panic` line.
//!
//! Usage: `panic_holding_async_lock OUT_DIR` writes `OUT_DIR/panic_holding_async_lock.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::tokio::Mutex;
use hindsight_recorder::{task, Recorder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Checks a batch id; a bad one panics, as an `expect` deep in a parser would.
fn validate(batch: &str) -> u32 {
    let id = batch.strip_prefix("batch-").and_then(|n| n.parse().ok());
    id.expect("a valid batch id") // site: panic
}

/// Deposits `amount` in two halves, validating `batch` in between (the bug: the update is
/// not all-or-nothing).
async fn transfer(total: Arc<Mutex<u64>>, amount: u64, batch: String) -> u32 {
    let mut total = total.lock().await; // site: lock
    *total += amount / 2;
    let id = validate(&batch);
    *total += amount - amount / 2;
    id
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: panic_holding_async_lock OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("panic_holding_async_lock.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("panic_holding_async_lock").build()?;
    tracing_subscriber::registry().with(recorder).init();
    let total = Arc::new(Mutex::named("total", 0u64));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let (failed, audited) = runtime.block_on(async {
        let deposit = transfer(total.clone(), 100, "batch-x7".to_owned());
        let failed = task::spawn("transfer", deposit).await.is_err();
        let total = total.clone();
        let audit = task::spawn("audit", async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            *total.lock().await
        });
        let audited = audit.await.map_err(|e| anyhow!("audit: {e}"))?;
        Ok::<_, anyhow::Error>((failed, audited))
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "panic_holding_async_lock: transfer panicked: {failed}, audit read {audited}; {} events, \
         {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
