//! Scenario `await_scoped_guards` (clean): the refactored context manager of
//! `await_holding_std_lock`.
//!
//! The `contexts` map is now behind an async `RwLock` and the persistence queue behind an
//! async `Mutex` (the recorder's tokio-API wrappers), and every guard lives in a block that
//! ends before the next `.await`: `update_context_state` changes the map, takes a snapshot,
//! drops the guard, queues the snapshot, and only then awaits persistence. The futures are
//! `Send`, so every request is an ordinary task on the two-worker runtime: four updaters and
//! a lister that reads the map while updates are persisting.
//!
//! Expected: no finding at all — no `guard-across-await` (no task suspends holding a guard),
//! no `blocking-in-async` (no blocking lock, no long poll), no contention.
//!
//! Usage: `await_scoped_guards OUT_DIR` writes `OUT_DIR/await_scoped_guards.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::tokio::{Mutex, RwLock};
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// How long persisting a context takes (the awaited I/O).
const PERSIST: Duration = Duration::from_millis(20);
/// Update requests.
const UPDATERS: usize = 4;

/// What the manager keeps per context.
#[derive(Debug, Clone, Default)]
struct ContextState {
    state: String,
    version: u32,
}

/// The context manager, refactored.
struct ContextManager {
    contexts: RwLock<HashMap<String, ContextState>>,
    persist_queue: Mutex<Vec<(String, u32)>>,
}

impl ContextManager {
    /// Sets the state of context `id`, then persists a snapshot with no guard held.
    async fn update_context_state(&self, id: &str, state: &str) -> u32 {
        let snapshot = {
            let mut contexts = self.contexts.write().await;
            let context = contexts.entry(id.to_owned()).or_default();
            context.state = state.to_owned();
            context.version += 1;
            context.clone()
        };
        self.persist_queue.lock().await.push((id.to_owned(), snapshot.version));
        persist(id, &snapshot).await;
        snapshot.version
    }

    /// The ids and versions of all contexts.
    async fn list_contexts(&self) -> Vec<(String, u32)> {
        let contexts = self.contexts.read().await;
        let mut list: Vec<_> = contexts.iter().map(|(id, c)| (id.clone(), c.version)).collect();
        list.sort();
        list
    }
}

/// Writes a context to storage (stands for the real I/O).
async fn persist(id: &str, context: &ContextState) {
    let _bytes = format!("{id}: {} v{}", context.state, context.version).len();
    tokio::time::sleep(PERSIST).await;
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: await_scoped_guards OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("await_scoped_guards.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("await_scoped_guards").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let (versions, listed) = runtime.block_on(async {
        let manager = Arc::new(ContextManager {
            contexts: RwLock::named("contexts", HashMap::new()),
            persist_queue: Mutex::named("persist_queue", Vec::new()),
        });
        let updates: Vec<_> = (0..UPDATERS)
            .map(|n| {
                let m = manager.clone();
                hindsight_recorder::task::spawn(&format!("update-context-{n}"), async move {
                    let id = format!("ctx-{}", n % 2);
                    let mut version = 0;
                    for step in ["planning", "summarizing", "done"] {
                        version = m.update_context_state(&id, step).await;
                    }
                    version
                })
            })
            .collect();
        let m = manager.clone();
        let list = hindsight_recorder::task::spawn("list-contexts", async move {
            let mut listed = Vec::new();
            for _ in 0..3 {
                tokio::time::sleep(PERSIST / 2).await;
                listed = m.list_contexts().await;
            }
            listed
        });
        let mut versions = Vec::new();
        for update in updates {
            versions.push(update.await.map_err(|e| anyhow!("update-context: {e}"))?);
        }
        let listed = list.await.map_err(|e| anyhow!("list-contexts: {e}"))?;
        let queued = manager.persist_queue.lock().await.len();
        anyhow::ensure!(queued == UPDATERS * 3, "{queued} snapshots queued");
        Ok::<_, anyhow::Error>((versions, listed))
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "await_scoped_guards: versions {versions:?}, listed {listed:?}; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
