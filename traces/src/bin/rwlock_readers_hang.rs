//! Scenario `rwlock_readers_hang` (bug: two readers and two writers of two fair `RwLock`s hang).
//!
//! The routing service of `shared/readers_behind_writers.rs`: task `lookup` reads `routes`
//! then `stats`, task `report` reads `stats` then `routes`, task `reload` writes `routes` and
//! task `flush` writes `stats`. Here the readers work 300 ms between their two reads and the
//! writers come at 20 ms: each writer queues behind the first reader of its lock, and each
//! reader's second read queues behind that waiting writer. No one can go on: a deadlock of
//! four tasks with only two read-read orders in it. The main thread's watchdog sees the tasks
//! unfinished after 1.5 s, writes the trace and exits.
//!
//! Expected: exactly one `deadlock` error with all four tasks: `lookup` holds `routes` (read)
//! and waits to read `stats`, queued behind `flush`, which waits to write `stats`, held by
//! `report`, which waits to read `routes`, queued behind `reload`, which waits to write
//! `routes`, held by `lookup`. Besides, one `guard-across-await` warning for each reader, which
//! holds its first read guard across the await between its reads while a writer waits. The
//! second reads were never granted, so no lock order was completed: no `lock-order-cycle`.
//!
//! Usage: `rwlock_readers_hang OUT_DIR` writes `OUT_DIR/rwlock_readers_hang.trace`.

#[path = "shared/readers_behind_writers.rs"]
mod readers_behind_writers;

use anyhow::{bail, Context, Result};
use hindsight_recorder::Recorder;
use readers_behind_writers::{spawn_all, Timing};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: rwlock_readers_hang OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("rwlock_readers_hang.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("rwlock_readers_hang").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let _context = runtime.enter();
    let timing = Timing {
        between_reads: Duration::from_millis(300),
        writers_after: Duration::from_millis(20),
    };
    let tasks = spawn_all(timing);

    // The watchdog: the whole job takes 300 ms; one not done in 1.5 s hangs.
    std::thread::sleep(Duration::from_millis(1500));
    if tasks.iter().all(|t| t.is_finished()) {
        bail!("every task finished: the hang did not happen");
    }
    let summary = guard.finish()?;
    println!(
        "rwlock_readers_hang: the four tasks hang; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    // The tasks are stuck for good: leave without shutting the runtime down.
    std::process::exit(0);
}
