//! Scenario `worker_stats_race` (bug: shared statistics updated with no lock).
//!
//! From a Python parallel executor's audit: each worker thread, after each task, updates the
//! executor's `worker_stats` — `stats["completed"] += 1; stats["busy"] += elapsed` — with no
//! lock: a read, then a write, and another worker's update in between is lost. The Rust
//! program keeps the statistics in atomics (so it stays sound) but updates them the same way,
//! a load then a store rather than one atomic add, and counts the updates it lost. The
//! statistics are a `Shared` annotated as the variable `worker_stats`; the work itself is
//! split in advance, so nothing orders one worker's updates against another's.
//!
//! Expected: exactly two findings, both `data-race` (error) on `worker_stats` between two of
//! the `worker-N` threads: the read at the `// site: stats-read` line against the write at
//! the `// site: stats-write` line, and that write against itself (two workers' writes).
//! The executor's final read of the statistics, after joining every worker, is no race.
//!
//! Usage: `worker_stats_race OUT_DIR` writes `OUT_DIR/worker_stats_race.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

const WORKERS: usize = 4;
const TASKS: u64 = 40;

/// The executor's statistics, shared by every worker.
#[derive(Debug, Default)]
struct WorkerStats {
    completed: AtomicU64,
    busy_us: AtomicU64,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: worker_stats_race OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("worker_stats_race.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("worker_stats_race").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let stats = Arc::new(Shared::named("worker_stats", WorkerStats::default()));
    let tasks: Vec<u64> = (0..TASKS).collect();
    let workers: Vec<_> = tasks
        .chunks(TASKS as usize / WORKERS)
        .enumerate()
        .map(|(n, chunk)| {
            let (stats, chunk) = (stats.clone(), chunk.to_vec());
            hindsight_recorder::thread::spawn(&format!("worker-{n}"), move || {
                for task in chunk {
                    run_task(&stats, task);
                }
            })
        })
        .collect::<Result<_, _>>()?;
    for worker in workers {
        worker.join().map_err(|_| anyhow!("a worker panicked"))?;
    }
    let (completed, busy_us) = stats.read(WorkerStats::snapshot);

    let summary = guard.finish()?;
    println!(
        "worker_stats_race: {completed} of {TASKS} completions counted ({} lost), {busy_us} us \
         busy; {} events, {} bytes -> {}",
        TASKS - completed,
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Runs one task, then updates the statistics the way the executor did: read, then write.
fn run_task(stats: &Shared<WorkerStats>, task: u64) {
    let started = Instant::now();
    std::thread::sleep(Duration::from_micros(200 + task % 5 * 100));
    let elapsed = started.elapsed().as_micros() as u64;

    let (completed, busy_us) = stats.read(WorkerStats::snapshot); // site: stats-read
    std::thread::yield_now();
    stats.write(|s| s.store(completed + 1, busy_us + elapsed)); // site: stats-write
}

impl WorkerStats {
    /// The counters now.
    fn snapshot(&self) -> (u64, u64) {
        (self.completed.load(Ordering::Relaxed), self.busy_us.load(Ordering::Relaxed))
    }

    /// Sets the counters.
    fn store(&self, completed: u64, busy_us: u64) {
        self.completed.store(completed, Ordering::Relaxed);
        self.busy_us.store(busy_us, Ordering::Relaxed);
    }
}
