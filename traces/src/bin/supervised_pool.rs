//! Scenario `supervised_pool` (clean: opposite lock orders that a pool-wide gate keeps apart).
//!
//! A batch system settles accounts. The `supervisor` thread takes the pool-wide `gate` lock,
//! spawns two worker threads (`worker-1`, `worker-2`) that each move entries from the `jobs`
//! queue into the `ledger` (holding `jobs`, then taking `ledger`), joins them, and only then
//! releases `gate`. The `auditor` thread takes `gate` first, then checks the `ledger` against
//! what is left in `jobs` (`ledger`, then `jobs`): the opposite order. The workers run only
//! while their supervisor holds `gate`, and the auditor needs `gate` to start, so the two
//! orders can never overlap.
//!
//! Expected: the `jobs`/`ledger` cycle is `info` only, with the reason that a worker "runs only
//! inside its parent thread `supervisor`'s hold of `gate`"; no warning, no error.
//!
//! Usage: `supervised_pool OUT_DIR` writes `OUT_DIR/supervised_pool.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The batch system's shared state.
struct Batch {
    /// Held by whoever works on the batch as a whole.
    gate: Mutex<()>,
    /// Entries waiting to be settled.
    jobs: Mutex<VecDeque<i64>>,
    /// Settled entries.
    ledger: Mutex<Vec<i64>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: supervised_pool OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("supervised_pool.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("supervised_pool").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let batch = Arc::new(Batch {
        gate: Mutex::named("gate", ()),
        jobs: Mutex::named("jobs", (1..=40).collect()),
        ledger: Mutex::named("ledger", Vec::new()),
    });
    let b = batch.clone();
    let supervisor = hindsight_recorder::thread::spawn("supervisor", move || supervise(&b))?;
    let b = batch.clone();
    let auditor = hindsight_recorder::thread::spawn("auditor", move || {
        // Let the supervisor get the batch first; the gate orders them either way.
        std::thread::sleep(Duration::from_millis(5));
        audit(&b)
    })?;
    supervisor.join().map_err(|_| anyhow!("supervisor panicked"))??;
    let balanced = auditor.join().map_err(|_| anyhow!("auditor panicked"))?;

    let summary = guard.finish()?;
    println!(
        "supervised_pool: audit {}; {} events, {} bytes -> {}",
        if balanced { "balanced" } else { "unbalanced" },
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Holds `gate` from spawning the workers to joining them.
fn supervise(batch: &Arc<Batch>) -> Result<()> {
    let _gate = batch.gate.lock().unwrap_or_else(|e| e.into_inner()); // site: supervisor-gate
    let mut workers = Vec::new();
    for n in 1..=2 {
        let b = batch.clone();
        let worker = hindsight_recorder::thread::spawn(&format!("worker-{n}"), move || settle(&b))?;
        workers.push(worker);
    }
    for worker in workers {
        worker.join().map_err(|_| anyhow!("a worker panicked"))?;
    }
    Ok(())
}

/// Moves entries from `jobs` into `ledger`: `jobs`, then `ledger`.
fn settle(batch: &Batch) {
    loop {
        let mut jobs = batch.jobs.lock().unwrap_or_else(|e| e.into_inner()); // site: worker-jobs
        let Some(entry) = jobs.pop_front() else { return };
        let mut ledger = batch.ledger.lock().unwrap_or_else(|e| e.into_inner()); // site: worker-ledger
        ledger.push(entry);
    }
}

/// Checks that every entry is either settled or still queued: `gate`, `ledger`, then `jobs`.
fn audit(batch: &Batch) -> bool {
    let _gate = batch.gate.lock().unwrap_or_else(|e| e.into_inner()); // site: auditor-gate
    let ledger = batch.ledger.lock().unwrap_or_else(|e| e.into_inner()); // site: auditor-ledger
    let jobs = batch.jobs.lock().unwrap_or_else(|e| e.into_inner()); // site: auditor-jobs
    ledger.iter().chain(jobs.iter()).sum::<i64>() == (1..=40).sum::<i64>()
}
