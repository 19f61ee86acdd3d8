//! Scenario `reload_flag_race` (bug: a flag read without a lock, ordered in this run only by a
//! lock section that happened to run first).
//!
//! A config service: the `reloader` thread marks a reload as pending (`reload_pending`,
//! written with no lock), then counts the reload in the service statistics under the
//! `stats` lock. A `handler` thread counts its request under `stats`, then checks
//! `reload_pending` with no lock to decide whether to serve the old config. In this run the
//! handler is slower to start, so it takes `stats` after the reloader: happens-before orders
//! the write of the flag before its read (through the release and acquisition of `stats`),
//! and neither `hb` nor `shb` reports anything. But the two critical sections touch nothing
//! in common: a schedule where the handler counts its request first is just as possible, and
//! then the flag's write and read race. WCP sees that.
//!
//! Expected: no finding with `--races hb` or `--races shb`; with `--races wcp`, exactly one
//! finding, a `data-race` error ("predicted data race") on `reload_pending` between the write
//! at the `// site: flag-write` line (thread `reloader`) and the read at the
//! `// site: flag-read` line (thread `handler`), whose evidence names the `stats` section.
//!
//! Usage: `reload_flag_race OUT_DIR` writes `OUT_DIR/reload_flag_race.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Counters of the service, kept under the `stats` lock.
#[derive(Debug, Default)]
struct Stats {
    reloads: u64,
    requests: u64,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: reload_flag_race OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("reload_flag_race.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("reload_flag_race").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let stats = Arc::new(Mutex::named("stats", Stats::default()));
    let reload_pending = Arc::new(Shared::named("reload_pending", AtomicBool::new(false)));

    let reloader = {
        let (stats, reload_pending) = (stats.clone(), reload_pending.clone());
        hindsight_recorder::thread::spawn("reloader", move || {
            reload_pending.write(|flag| flag.store(true, Ordering::Relaxed)); // site: flag-write
            stats.lock().expect("stats poisoned").reloads += 1;
        })?
    };
    let handler = {
        let (stats, reload_pending) = (stats.clone(), reload_pending.clone());
        let serve = move || {
            // The handler starts later in this run; nothing in the program makes it so.
            std::thread::sleep(Duration::from_millis(20));
            stats.lock().expect("stats poisoned").requests += 1; // site: stats-section
            reload_pending.read(|flag| flag.load(Ordering::Relaxed)) // site: flag-read
        };
        hindsight_recorder::thread::spawn("handler", serve)? // site: spawn-handler
    };
    reloader.join().map_err(|_| anyhow!("the reloader panicked"))?;
    let served_old = !handler.join().map_err(|_| anyhow!("the handler panicked"))?;
    let (reloads, requests) = {
        let stats = stats.lock().map_err(|_| anyhow!("stats poisoned"))?;
        (stats.reloads, stats.requests)
    };

    let summary = guard.finish()?;
    println!(
        "reload_flag_race: {reloads} reload, {requests} request (served the {} config); {} \
         events, {} bytes -> {}",
        if served_old { "old" } else { "new" },
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
