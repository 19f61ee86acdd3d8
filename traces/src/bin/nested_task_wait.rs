//! Scenario `nested_task_wait` (bug: a task waits for a task that waits for its lock).
//!
//! A request handler, task `handle-request`, takes the `session` lock (an async `Mutex`, the
//! recorder's tokio-API wrapper) to use the session's token, sees that it has expired, and
//! spawns task `refresh-token` to refresh it — then awaits that task's handle while still
//! holding `session`. `refresh-token` needs `session` to store the new token: it waits for
//! the lock, `handle-request` waits for it, and neither can go on. Both are suspended (no
//! thread is blocked); the main thread's watchdog sees the handler unfinished after a second,
//! writes the trace and exits.
//!
//! Expected: exactly one `deadlock` error with both tasks: `handle-request` holds `session`
//! (acquired at the `// site: session-lock` line) and waits for `refresh-token` (joined at
//! the `// site: join-refresh` line), which waits for `session` at the
//! `// site: refresh-lock` line.
//!
//! Usage: `nested_task_wait OUT_DIR` writes `OUT_DIR/nested_task_wait.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::tokio::Mutex;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// A user's session.
#[derive(Debug)]
struct Session {
    token: String,
    expired: bool,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: nested_task_wait OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("nested_task_wait.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("nested_task_wait").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let _context = runtime.enter();
    let session =
        Arc::new(Mutex::named("session", Session { token: "t-1".to_owned(), expired: true }));
    let handler = hindsight_recorder::task::spawn("handle-request", handle_request(session));

    // The watchdog: a request takes milliseconds; one that is not done in a second hangs.
    std::thread::sleep(Duration::from_secs(1));
    if handler.is_finished() {
        bail!("handle-request finished: the hang did not happen");
    }
    let summary = guard.finish()?;
    println!(
        "nested_task_wait: handle-request hangs; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    // The two tasks are stuck for good: leave without shutting the runtime down.
    std::process::exit(0);
}

/// Serves a request with the session's token, refreshing it first if it expired.
async fn handle_request(session: Arc<Mutex<Session>>) -> String {
    let current = session.lock().await; // site: session-lock
    if current.expired {
        let refresh =
            hindsight_recorder::task::spawn("refresh-token", refresh_token(session.clone()));
        // The bug: waiting for the refresh while holding the lock it needs.
        let _ = refresh.await; // site: join-refresh
    }
    format!("served with {}", current.token)
}

/// Fetches a new token and stores it in the session.
async fn refresh_token(session: Arc<Mutex<Session>>) {
    tokio::time::sleep(Duration::from_millis(5)).await; // the identity provider's answer
    let mut current = session.lock().await; // site: refresh-lock
    current.token = "t-2".to_owned();
    current.expired = false;
}
