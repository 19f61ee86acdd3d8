//! Scenario `rwlock_readers_near_miss` (bug: two readers of two fair `RwLock`s in opposite
//! orders, which did not hang this time).
//!
//! The routing service of `shared/readers_behind_writers.rs`: task `lookup` reads `routes`
//! then `stats`, task `report` reads `stats` then `routes`, task `reload` writes `routes` and
//! task `flush` writes `stats`. Here the readers take their second read 5 ms after the first
//! and the writers come at 200 ms, after the readers are done: nothing waits. (The gap is wide
//! so that a loaded machine, whose late timers fire together, keeps the order.) Had each
//! writer come while the readers held their first lock, each would have queued, and each
//! reader's second read would have queued behind it (as in `rwlock_readers_hang`).
//!
//! Expected: exactly one `lock-order-cycle` error between `routes` and `stats`, predicted, with
//! a witness schedule in which both writers ask before the readers' second reads; no
//! `deadlock`. Besides, one `guard-across-await` info for each reader (it holds its first read
//! guard across an await, and nobody waited this time).
//!
//! Usage: `rwlock_readers_near_miss OUT_DIR` writes `OUT_DIR/rwlock_readers_near_miss.trace`.

#[path = "shared/readers_behind_writers.rs"]
mod readers_behind_writers;

use anyhow::{bail, Context, Result};
use hindsight_recorder::Recorder;
use readers_behind_writers::{spawn_all, Timing};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: rwlock_readers_near_miss OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("rwlock_readers_near_miss.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("rwlock_readers_near_miss").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let timing = Timing {
        between_reads: Duration::from_millis(5),
        writers_after: Duration::from_millis(200),
    };
    let finished = runtime.block_on(async {
        let tasks = spawn_all(timing);
        tokio::time::timeout(Duration::from_secs(2), async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await
    });
    if finished.is_err() {
        bail!("the tasks hung");
    }
    let summary = guard.finish()?;
    println!(
        "rwlock_readers_near_miss: {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
