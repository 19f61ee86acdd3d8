//! Scenario `await_holding_std_lock` (bug: a blocking guard held across an `.await`).
//!
//! From a context-manager refactoring spec: `update_context_state` takes the write guard of
//! the `contexts` map — a *blocking* `RwLock` with std's API (the recorder's wrapper) — and
//! awaits the persistence of the new state (a blocking write on tokio's blocking pool, as
//! `tokio::fs` does) while still holding it. The future is not `Send` (a std guard lives across its
//! await), so the program runs the updates as local tasks on the main thread (a `LocalSet`
//! inside `block_on`): that is how such code compiles. Meanwhile a `list-contexts` request,
//! an ordinary task on the two-worker runtime, reads the map: it blocks *its worker thread*
//! in `contexts.read()` until persistence is over and the update task, resumed on the main
//! thread, drops the guard. (Had it run on the main thread's `LocalSet` too, it would have
//! blocked the only thread that could resume the holder: a deadlock. Had persistence waited
//! for a tokio timer, the runtime could have hung too: a worker blocked in a poll may be the
//! one due to drive the timers.)
//!
//! Expected, exactly:
//! - `guard-across-await` (error): task `update-context` held blocking lock `contexts`,
//!   acquired at the `// site: write-guard` line, across the persistence await, while task
//!   `list-contexts` waited for it at the `// site: blocked-read` line;
//! - `blocking-in-async` (warning): task `list-contexts` blocked its worker thread waiting
//!   for blocking lock `contexts` at the `// site: blocked-read` line (about 6 ms, over the
//!   1 ms that counts as a stalled worker) — what a std guard across an await does to every
//!   other user of the lock.
//!
//! Nothing else: persistence is kept short (8 ms, the request arriving 2 ms into it) so that
//! the one wait stays well below what `contention-hotspot` reports (a p99 wait of 10 ms on
//! the lock with most of the waiting), and no poll is long.
//!
//! Usage: `await_holding_std_lock OUT_DIR` writes `OUT_DIR/await_holding_std_lock.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::RwLock;
use hindsight_recorder::{task, Recorder};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// How long persisting a context takes (the awaited I/O).
const PERSIST: Duration = Duration::from_millis(8);

/// What the manager keeps per context.
#[derive(Debug, Clone, Default)]
struct ContextState {
    state: String,
    version: u32,
}

/// The context manager of the spec.
struct ContextManager {
    contexts: RwLock<HashMap<String, ContextState>>,
}

impl ContextManager {
    /// Sets the state of context `id` and persists it — holding the write guard across the
    /// persistence await (the bug).
    async fn update_context_state(&self, id: &str, state: &str) -> u32 {
        let mut contexts = self.contexts.write().expect("contexts poisoned"); // site: write-guard
        let context = contexts.entry(id.to_owned()).or_default();
        context.state = state.to_owned();
        context.version += 1;
        persist(id, context).await;
        context.version
    }

    /// The ids and versions of all contexts, as a `list` request answers.
    fn list_contexts(&self) -> Vec<(String, u32)> {
        let contexts = self.contexts.read().expect("contexts poisoned"); // site: blocked-read
        let mut list: Vec<_> = contexts.iter().map(|(id, c)| (id.clone(), c.version)).collect();
        list.sort();
        list
    }
}

/// Writes a context to storage: a blocking write on tokio's blocking pool, as `tokio::fs`
/// does (the sleep stands for the device's latency).
async fn persist(id: &str, context: &ContextState) {
    let record = format!("{id}: {} v{}", context.state, context.version);
    let write = tokio::task::spawn_blocking(move || {
        std::thread::sleep(PERSIST);
        record.len()
    });
    let _written = write.await;
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: await_holding_std_lock OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("await_holding_std_lock.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("await_holding_std_lock").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let manager = Arc::new(ContextManager {
        contexts: RwLock::named(
            "contexts",
            HashMap::from([("ctx-1".to_owned(), ContextState::default())]),
        ),
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let local = tokio::task::LocalSet::new();
    let (version, listed) = runtime.block_on(local.run_until(async {
        let m = manager.clone();
        let request = async move { m.update_context_state("ctx-1", "summarizing").await };
        let update = task::spawn_local("update-context", request); // site: update-spawn
        let m = manager.clone();
        let request = async move {
            // The request arrives while the update is persisting.
            tokio::time::sleep(PERSIST / 4).await;
            m.list_contexts()
        };
        let list = task::spawn("list-contexts", request); // site: list-spawn
        let version = update.await.map_err(|e| anyhow!("update-context: {e}"))?;
        let listed = list.await.map_err(|e| anyhow!("list-contexts: {e}"))?;
        Ok::<_, anyhow::Error>((version, listed))
    }))?;
    drop(local);
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "await_holding_std_lock: version {version}, listed {listed:?}; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
