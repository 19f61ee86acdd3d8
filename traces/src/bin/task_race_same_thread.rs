//! Scenario `task_race_same_thread` (bug: two tasks race on one thread).
//!
//! An API client on a current-thread runtime keeps its access token in a cache shared by its
//! tasks (`Rc<RefCell<_>>` in a `LocalSet`: sound, single-threaded Rust). Two tasks,
//! `sync-calendar` and `sync-contacts`, each check whether the token is stale, and if it is,
//! fetch a new one from the identity provider (an `.await`) and store it. Both see the stale
//! token, both fetch, and the second store overwrites the first: two refreshes where one
//! was needed, and a token the first task already handed out is replaced. No thread ever
//! runs concurrently with another — there is only one — yet the two tasks interleave at their
//! awaits with nothing ordering their accesses. ThreadSanitizer, which sees threads, cannot
//! report this; the cache is a `Shared` annotated as the variable `token_cache`, and the
//! tasks are recorded (`hindsight_recorder::task::spawn_local`), so the race detector can.
//!
//! Expected: exactly two findings, both `data-race` (error) on `token_cache` between the
//! tasks `sync-calendar` and `sync-contacts` on thread `main`: the read at the
//! `// site: stale-check` line against the write at the `// site: token-store` line, and that
//! write against itself. The final read, after both tasks are joined, is no race.
//!
//! Usage: `task_race_same_thread OUT_DIR` writes `OUT_DIR/task_race_same_thread.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::Recorder;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The client's token cache.
#[derive(Debug, Default)]
struct TokenCache {
    token: Option<String>,
    refreshes: u32,
}

type Cache = Rc<Shared<RefCell<TokenCache>>>;

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: task_race_same_thread OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("task_race_same_thread.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("task_race_same_thread").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let local = tokio::task::LocalSet::new();
    let (refreshes, token) = local.block_on(&runtime, async {
        let cache: Cache = Rc::new(Shared::named("token_cache", RefCell::default()));
        let calendar = hindsight_recorder::task::spawn_local(
            "sync-calendar",
            sync("calendar", cache.clone(), Duration::from_millis(10)),
        );
        let contacts = hindsight_recorder::task::spawn_local(
            "sync-contacts",
            sync("contacts", cache.clone(), Duration::from_millis(15)),
        );
        let calendar = calendar.await.map_err(|e| anyhow!("sync-calendar: {e}"))?;
        let contacts = contacts.await.map_err(|e| anyhow!("sync-contacts: {e}"))?;
        println!("{calendar}; {contacts}");
        Ok::<_, anyhow::Error>(cache.read(|c| {
            let c = c.borrow();
            (c.refreshes, c.token.clone().unwrap_or_default())
        }))
    })?;
    drop(local);
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "task_race_same_thread: {refreshes} refreshes, token {token}; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Synchronises `what` with the API, refreshing the token first if it is stale.
async fn sync(what: &str, cache: Cache, latency: Duration) -> String {
    let cached = cache.read(|c| c.borrow().token.clone()); // site: stale-check
    let token = match cached {
        Some(token) => token,
        None => {
            let token = fetch_token(what, latency).await;
            cache.write(|c| store(&mut c.borrow_mut(), token.clone())); // site: token-store
            token
        }
    };
    format!("{what} synced with {token}")
}

/// Asks the identity provider for a token.
async fn fetch_token(what: &str, latency: Duration) -> String {
    tokio::time::sleep(latency).await;
    format!("token-for-{what}")
}

/// Stores a fresh token.
fn store(cache: &mut TokenCache, token: String) {
    cache.token = Some(token);
    cache.refreshes += 1;
}
