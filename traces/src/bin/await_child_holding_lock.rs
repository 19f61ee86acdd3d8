//! Scenario `await_child_holding_lock` (bug: a task awaits a child task while holding a lock the
//! child needs; it did not hang this time).
//!
//! A search service refreshes its results. Task `refresh` spawns task `reindex`
//! (`hindsight_recorder::task::spawn`) to rebuild the `index`, reads the new documents from
//! disk meanwhile (200 ms), then takes the `cache` lock (the recorder's tokio-API
//! `Mutex`) and, holding it, awaits `reindex`'s handle to merge its result into the cache.
//! `reindex` takes `index`, then `cache` to invalidate the entries it rebuilt. In this run
//! `reindex` is quick: it is done with `cache` before `refresh` takes it, so nothing hangs. Had
//! the disk been faster than the rebuild, `refresh` would hold `cache` and wait for `reindex`,
//! which would wait for `cache`: a deadlock.
//!
//! Expected: exactly one `lock-order-cycle` **error**, over `cache` and the end of task
//! `reindex`, with a witness schedule that ends with `refresh` waiting for `reindex` (at the
//! `// site: await-reindex` line) and `reindex` asking for `cache` (at the
//! `// site: reindex-cache` line); no `deadlock`.
//!
//! Usage: `await_child_holding_lock OUT_DIR` writes `OUT_DIR/await_child_holding_lock.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::tokio::Mutex;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The service's shared state.
struct Search {
    /// Words to documents.
    index: Mutex<HashMap<String, Vec<u32>>>,
    /// Answers to recent queries.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: await_child_holding_lock OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("await_child_holding_lock.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("await_child_holding_lock").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let search = Arc::new(Search {
        index: Mutex::named("index", HashMap::new()),
        cache: Mutex::named("cache", HashMap::from([("rust".to_owned(), vec![1])])),
    });
    let merged = runtime.block_on(async {
        let refresh = hindsight_recorder::task::spawn("refresh", refresh(search));
        tokio::time::timeout(Duration::from_secs(2), refresh).await
    });
    let Ok(Ok(merged)) = merged else { bail!("refresh hung or failed") };

    let summary = guard.finish()?;
    println!(
        "await_child_holding_lock: {merged} entries merged; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Rebuilds the index in a child task and merges its result into the cache.
async fn refresh(search: Arc<Search>) -> usize {
    let reindex = hindsight_recorder::task::spawn("reindex", reindex(search.clone()));
    // Reading the new documents from disk takes longer than the rebuild, this time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut cache = search.cache.lock().await; // site: refresh-cache
                                               // The bug: waiting for the child while holding the lock it needs.
    let rebuilt = reindex.await.unwrap_or_default(); // site: await-reindex
    cache.extend(rebuilt.iter().map(|word| (word.clone(), vec![2])));
    cache.len()
}

/// Rebuilds the index, then drops the cache entries of the words it rebuilt.
async fn reindex(search: Arc<Search>) -> Vec<String> {
    let mut index = search.index.lock().await; // site: reindex-index
    let words = vec!["rust".to_owned(), "tokio".to_owned()];
    for word in &words {
        index.insert(word.clone(), vec![2]);
    }
    let mut cache = search.cache.lock().await; // site: reindex-cache
    for word in &words {
        cache.remove(word);
    }
    words
}
