//! Scenario `contention_hotspot` (bug: one lock held too long on a hot path).
//!
//! A job runner with 8 worker threads. Each job reads the runner's `config` (a blocking
//! `RwLock`, read-mostly), does its work with no lock held, then records its timings in the
//! shared `metrics` (a blocking `Mutex`) — and, while still holding `metrics`, renders the
//! whole metrics snapshot for the dashboard (about 20 ms: the mistake). Workers register once
//! in the `registry` (a blocking `Mutex`) when they start. With 8 workers finishing jobs at
//! the same pace, each of them waits for up to 7 renderings: most waits for `metrics` are
//! well over 100 ms, while `config` and `registry` are barely ever waited for.
//!
//! Expected: exactly one finding, `contention-hotspot` on `metrics`; in the JSON `locks`
//! section, `metrics` has a higher p99 and max wait than `config` and `registry`.
//!
//! Usage: `contention_hotspot OUT_DIR` writes `OUT_DIR/contention_hotspot.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::{Mutex, RwLock};
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

const WORKERS: usize = 8;
const JOBS_PER_WORKER: usize = 4;
/// Rendering the metrics snapshot, done while holding `metrics`.
const RENDER: Duration = Duration::from_millis(20);
/// The work of one job, done with no lock held.
const WORK: Duration = Duration::from_millis(2);

/// Runner settings.
#[derive(Debug)]
struct Config {
    retries: u32,
    timeout: Duration,
}

/// Timings per worker.
#[derive(Debug, Default)]
struct Metrics {
    jobs: HashMap<usize, u32>,
    busy: HashMap<usize, Duration>,
    dashboard: String,
}

struct Runner {
    config: RwLock<Config>,
    metrics: Mutex<Metrics>,
    registry: Mutex<Vec<String>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: contention_hotspot OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("contention_hotspot.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("contention_hotspot").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runner = Arc::new(Runner {
        config: RwLock::named("config", Config { retries: 3, timeout: Duration::from_secs(1) }),
        metrics: Mutex::named("metrics", Metrics::default()),
        registry: Mutex::named("registry", Vec::new()),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let runner = runner.clone();
            hindsight_recorder::thread::spawn(&format!("worker-{n}"), move || work(&runner, n))
        })
        .collect::<Result<_, _>>()?;
    for worker in workers {
        worker.join().map_err(|_| anyhow!("a worker panicked"))?;
    }
    let metrics = runner.metrics.lock().expect("metrics poisoned"); // site: final-read
    let jobs: u32 = metrics.jobs.values().sum();
    drop(metrics);

    let summary = guard.finish()?;
    println!(
        "contention_hotspot: {jobs} jobs; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// One worker: registers, then runs its jobs.
fn work(runner: &Runner, worker: usize) {
    runner.registry.lock().unwrap_or_else(|e| e.into_inner()).push(format!("worker-{worker}"));
    for _ in 0..JOBS_PER_WORKER {
        let (retries, timeout) = {
            let config = runner.config.read().unwrap_or_else(|e| e.into_inner());
            (config.retries, config.timeout)
        };
        let started = Instant::now();
        std::thread::sleep(WORK.min(timeout));
        let busy = started.elapsed();

        let mut metrics = runner.metrics.lock().expect("metrics poisoned"); // site: metrics-lock
        *metrics.jobs.entry(worker).or_default() += 1;
        *metrics.busy.entry(worker).or_default() += busy;
        // The hot-path mistake: rendering the dashboard while holding the lock.
        metrics.dashboard = render(&metrics, retries);
        drop(metrics);
    }
}

/// Renders the metrics for the dashboard: slow.
fn render(metrics: &Metrics, retries: u32) -> String {
    std::thread::sleep(RENDER);
    format!("{} workers, {} retries allowed", metrics.jobs.len(), retries)
}
