//! Scenario `lock_order_inversion` (bug: a lock-order cycle that did not deadlock this time).
//!
//! A small CI service keeps build results in a database (the `sqlite` lock) and in a git
//! repository (the `git` lock). The `failure-recorder` thread stores a failed build: it takes
//! `sqlite`, then `git` to commit the log. The `sync` thread mirrors the repository: it takes
//! `git`, then `sqlite` to update the index. The two orders are opposite; this run is timed
//! (the sync waits for the recorder to be done) so it does not deadlock, but a different timing
//! would.
//!
//! Expected: exactly one `lock-order-cycle` error naming `sqlite` and `git`, with the four
//! acquisition sites below, and nothing else.
//!
//! Usage: `lock_order_inversion OUT_DIR` writes `OUT_DIR/lock_order_inversion.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The shared state of the service.
struct Store {
    /// Build results, as a database would keep them.
    sqlite: Mutex<Vec<(u32, &'static str)>>,
    /// The commit log of the results repository.
    git: Mutex<Vec<String>>,
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: lock_order_inversion OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("lock_order_inversion.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("lock_order_inversion").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let store = Arc::new(Store {
        sqlite: Mutex::named("sqlite", Vec::new()),
        git: Mutex::named("git", Vec::new()),
    });
    let (done_tx, done_rx) = mpsc::channel();

    let recorder_store = store.clone();
    let failure_recorder = hindsight_recorder::thread::spawn("failure-recorder", move || {
        record_failure(&recorder_store, 17);
        let _ = done_tx.send(());
    })?;
    let sync_store = store.clone();
    let sync = hindsight_recorder::thread::spawn("sync", move || {
        // Wait for the recorder to be done: this timing is what avoids the deadlock.
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2));
        sync_index(&sync_store);
    })?;
    failure_recorder.join().map_err(|_| anyhow!("failure-recorder panicked"))?;
    sync.join().map_err(|_| anyhow!("sync panicked"))?;

    let summary = guard.finish()?;
    println!(
        "lock_order_inversion: {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Stores a failed build: database row first, then the log committed to git.
fn record_failure(store: &Store, build: u32) {
    let mut results = store.sqlite.lock().unwrap_or_else(|e| e.into_inner());
    results.push((build, "failed"));
    let mut log = store.git.lock().unwrap_or_else(|e| e.into_inner());
    log.push(format!("build {build}: failed"));
}

/// Mirrors the repository: walks the git log, then updates the database index.
fn sync_index(store: &Store) {
    let log = store.git.lock().unwrap_or_else(|e| e.into_inner());
    let mut results = store.sqlite.lock().unwrap_or_else(|e| e.into_inner());
    for (build, status) in results.iter_mut() {
        if log.iter().any(|line| line.starts_with(&format!("build {build}:"))) {
            *status = "synced";
        }
    }
}
