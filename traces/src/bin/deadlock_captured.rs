//! Scenario `deadlock_captured` (bug: a deadlock that happened).
//!
//! The same two locks as `lock_order_inversion` — `sqlite` and `git` — taken in opposite
//! orders by `failure-recorder` and `sync`, but this time both threads take their first lock
//! before either takes its second (a barrier makes sure of it), so each waits for the other
//! forever. The main thread notices that neither finishes, writes the trace and exits.
//!
//! Expected: exactly one `deadlock` error with both threads, the lock each holds and the lock
//! each waits for, and nothing else.
//!
//! Usage: `deadlock_captured OUT_DIR` writes `OUT_DIR/deadlock_captured.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The shared state of the service.
struct Store {
    sqlite: Mutex<Vec<(u32, &'static str)>>,
    git: Mutex<Vec<String>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: deadlock_captured OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("deadlock_captured.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("deadlock_captured").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let store = Arc::new(Store {
        sqlite: Mutex::named("sqlite", Vec::new()),
        git: Mutex::named("git", Vec::new()),
    });
    let both_hold_one = Arc::new(Barrier::new(2));
    let (done_tx, done_rx) = mpsc::channel();

    let (s, b, done) = (store.clone(), both_hold_one.clone(), done_tx.clone());
    hindsight_recorder::thread::spawn("failure-recorder", move || {
        let mut results = s.sqlite.lock().unwrap_or_else(|e| e.into_inner());
        results.push((17, "failed"));
        b.wait();
        let mut log = s.git.lock().unwrap_or_else(|e| e.into_inner());
        log.push("build 17: failed".to_owned());
        let _ = done.send("failure-recorder");
    })?;
    let (s, b, done) = (store.clone(), both_hold_one.clone(), done_tx);
    hindsight_recorder::thread::spawn("sync", move || {
        let log = s.git.lock().unwrap_or_else(|e| e.into_inner());
        b.wait();
        let mut results = s.sqlite.lock().unwrap_or_else(|e| e.into_inner());
        results.retain(|(build, _)| log.iter().any(|l| l.contains(&build.to_string())));
        let _ = done.send("sync");
    })?;

    // A watchdog: no progress within a second is a hang.
    match done_rx.recv_timeout(Duration::from_secs(1)) {
        Ok(who) => bail!("{who} finished: the deadlock did not happen"),
        Err(_) => {
            let summary = guard.finish()?;
            println!(
                "deadlock_captured: no progress for 1s; {} events, {} bytes -> {}",
                summary.events,
                summary.bytes,
                path.display()
            );
            // The two threads are stuck for good: leave without joining them.
            std::process::exit(0);
        }
    }
}
