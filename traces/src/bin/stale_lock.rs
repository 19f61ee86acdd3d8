//! Scenario `stale_lock` (bugs: a poisoned lock and a leaked lock).
//!
//! A job runner has two workers. `parser` panics on a malformed job while it holds the
//! `cache` lock: the lock is poisoned. `janitor` takes the `registry` lock and leaks its
//! guard (`mem::forget`) before it exits: the lock stays held by a thread that no longer
//! exists. Nobody asks for either lock afterwards, so the program itself goes on.
//!
//! Expected: two `stale-lock` findings — `cache` poisoned by `parser`, `registry` still held
//! by `janitor` after it finished — each with its acquisition site, and nothing else.
//!
//! Usage: `stale_lock OUT_DIR` writes `OUT_DIR/stale_lock.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::prelude::*;

struct Runner {
    cache: Mutex<HashMap<String, usize>>,
    registry: Mutex<Vec<String>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: stale_lock OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("stale_lock.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("stale_lock").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runner = Arc::new(Runner {
        cache: Mutex::named("cache", HashMap::new()),
        registry: Mutex::named("registry", Vec::new()),
    });
    let r = runner.clone();
    let parser = hindsight_recorder::thread::spawn("parser", move || {
        for job in ["build:3", "test:1", "deploy"] {
            parse(&r, job);
        }
    })?;
    let r = runner.clone();
    let janitor = hindsight_recorder::thread::spawn("janitor", move || {
        let mut registry = r.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.push("janitor".to_owned());
        // The bug: the guard is never dropped, so the lock is never released.
        std::mem::forget(registry);
    })?;
    if parser.join().is_ok() {
        bail!("the parser was expected to panic");
    }
    let _ = janitor.join();

    let summary = guard.finish()?;
    println!(
        "stale_lock: {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Parses `name:count` jobs into the cache; panics on a job without a count.
fn parse(runner: &Runner, job: &str) {
    let mut cache = runner.cache.lock().unwrap_or_else(|e| e.into_inner());
    let (name, count) = job.split_once(':').expect("malformed job: no count");
    cache.insert(name.to_owned(), count.parse().unwrap_or(0));
}
