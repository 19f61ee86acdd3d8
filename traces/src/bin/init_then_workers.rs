//! Scenario `init_then_workers` (a lock-order conflict that spawning orders in this program).
//!
//! A service starts up: the main thread loads its `config` and, holding it, warms the `cache`
//! from it (`config` then `cache`), releases both, and only then spawns two worker threads,
//! `worker-1` and `worker-2`. Each worker serves requests: it looks a key up in `cache` and,
//! on a miss, reads the fallback from `config` while still holding `cache` (`cache` then
//! `config`). The two orders are opposite, but the workers start after the initialisation has
//! let go of both locks, so this program cannot deadlock. Code that warmed the cache again
//! later (or spawned the workers first) would.
//!
//! Expected: exactly one `lock-order-cycle` **warning** between `config` and `cache`, whose
//! reason says the orders are ordered by the spawn of a worker thread (at the
//! `// site: spawn-worker` line), and no error.
//!
//! Usage: `init_then_workers OUT_DIR` writes `OUT_DIR/init_then_workers.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::thread;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::prelude::*;

/// The service's shared state.
struct Service {
    /// Settings, with a fallback value for every key.
    config: Mutex<HashMap<String, String>>,
    /// Values looked up so far.
    cache: Mutex<HashMap<String, String>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: init_then_workers OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("init_then_workers.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("init_then_workers").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let service = Arc::new(Service {
        config: Mutex::named("config", HashMap::new()),
        cache: Mutex::named("cache", HashMap::new()),
    });
    initialise(&service);

    let mut workers = Vec::new();
    for n in 1..=2 {
        let service = service.clone();
        let name = format!("worker-{n}");
        let worker = thread::spawn(&name, move || work(&service, n))?; // site: spawn-worker
        workers.push(worker);
    }
    for worker in workers {
        worker.join().map_err(|_| anyhow!("a worker panicked"))?;
    }

    let summary = guard.finish()?;
    println!(
        "init_then_workers: {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Loads the settings and warms the cache from them: `config`, then `cache`.
fn initialise(service: &Service) {
    let mut config = service.config.lock().unwrap_or_else(|e| e.into_inner()); // site: init-config
    for key in 0..4 {
        config.insert(format!("key-{key}"), format!("default-{key}"));
    }
    let mut cache = service.cache.lock().unwrap_or_else(|e| e.into_inner()); // site: init-cache
    cache.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// A worker's life: twenty requests.
fn work(service: &Service, n: usize) {
    for request in 0..20 {
        serve(service, &format!("key-{}", (request * n) % 8));
    }
}

/// Serves one request: the cache first, the settings' fallback on a miss (`cache`, then
/// `config`).
fn serve(service: &Service, key: &str) -> String {
    let mut cache = service.cache.lock().unwrap_or_else(|e| e.into_inner()); // site: serve-cache
    if let Some(value) = cache.get(key) {
        return value.clone();
    }
    let config = service.config.lock().unwrap_or_else(|e| e.into_inner()); // site: serve-config
    let value = config.get(key).cloned().unwrap_or_else(|| "unset".to_owned());
    cache.insert(key.to_owned(), value.clone());
    value
}
