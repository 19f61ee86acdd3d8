//! Scenario `guard_across_sleep` (bug: an async guard held across a retry's back-off sleep).
//!
//! A token cache refreshes its token under the async mutex `token` (hindsight's recording
//! wrapper of tokio's): the first attempt fails, and the refresh backs off with
//! `tokio::time::sleep(30 ms)` before retrying — still holding the guard. Meanwhile a request
//! task asks for the token and waits the whole back-off.
//!
//! Expected, exactly: one `guard-across-await` (warning: an async guard, someone waited):
//! task `refresh` held `token`, acquired at the `// site: lock` line, across the `.await` of
//! the back-off at the `// site: backoff` line (tokio's `Sleep` says where it was created),
//! while task `request` waited at the `// site: wait` line.
//!
//! Usage: `guard_across_sleep OUT_DIR` writes `OUT_DIR/guard_across_sleep.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::tokio::Mutex;
use hindsight_recorder::{task, Recorder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// The back-off before a retry.
const BACKOFF: Duration = Duration::from_millis(30);

/// Fetches a new token; the first attempt fails.
fn fetch(attempt: u32) -> Option<String> {
    (attempt > 0).then(|| format!("token-{attempt}"))
}

/// Refreshes the cached token, retrying after a back-off — with the guard held (the bug).
async fn refresh(token: Arc<Mutex<String>>) -> u32 {
    let mut cached = token.lock().await; // site: lock
    let mut attempt = 0;
    loop {
        if let Some(new) = fetch(attempt) {
            *cached = new;
            return attempt;
        }
        attempt += 1;
        tokio::time::sleep(BACKOFF).await; // site: backoff
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: guard_across_sleep OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("guard_across_sleep.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("guard_across_sleep").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let token = Arc::new(Mutex::named("token", String::new()));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let (attempts, seen) = runtime.block_on(async {
        let refresher = task::spawn("refresh", refresh(token.clone())); // site: refresh-spawn
        let token = token.clone();
        let request = task::spawn("request", async move {
            // The request arrives during the back-off.
            tokio::time::sleep(BACKOFF / 3).await;
            token.lock().await.clone() // site: wait
        });
        let attempts = refresher.await.map_err(|e| anyhow!("refresh: {e}"))?;
        let seen = request.await.map_err(|e| anyhow!("request: {e}"))?;
        Ok::<_, anyhow::Error>((attempts, seen))
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "guard_across_sleep: refreshed after {attempts} retries, request saw {seen}; {} events, \
         {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
