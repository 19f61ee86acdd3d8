//! Scenario `blocking_poll` (bug: a task blocks its worker thread).
//!
//! An upload service on a two-worker tokio runtime. Four `api-N` tasks answer requests: each
//! waits for a request (a timer), does a little work and yields — polls of microseconds. The
//! `thumbnailer` task makes a thumbnail of each upload by calling a synchronous image library
//! right inside its poll (a 50 ms `std::thread::sleep` stands for the resize), twice: each
//! time its worker thread runs nothing else for 50 ms.
//!
//! Expected: exactly one finding, `blocking-in-async` (warning) for task `thumbnailer` (its
//! longest poll about 50 ms, two polls over the 10 ms threshold), spawned at the
//! `// site: thumbnailer-spawn` line; nothing for the `api-N` tasks.
//!
//! Usage: `blocking_poll OUT_DIR` writes `OUT_DIR/blocking_poll.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::{task, Recorder};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

const API_TASKS: usize = 4;
const REQUESTS: usize = 10;
const UPLOADS: usize = 2;
/// The synchronous resize of one image.
const RESIZE: Duration = Duration::from_millis(50);

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: blocking_poll OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("blocking_poll.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("blocking_poll").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let (answered, thumbnails) = runtime.block_on(async {
        let api: Vec<_> =
            (0..API_TASKS).map(|n| task::spawn(&format!("api-{n}"), serve(n))).collect();
        let thumbnailer = task::spawn("thumbnailer", thumbnails()); // site: thumbnailer-spawn
        let mut answered = 0;
        for task in api {
            answered += task.await.map_err(|e| anyhow!("api: {e}"))?;
        }
        let thumbnails = thumbnailer.await.map_err(|e| anyhow!("thumbnailer: {e}"))?;
        Ok::<_, anyhow::Error>((answered, thumbnails))
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "blocking_poll: {answered} requests, {} thumbnails; {} events, {} bytes -> {}",
        thumbnails.len(),
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// An API task: answers requests as they come.
async fn serve(n: usize) -> usize {
    let mut answered = 0;
    for request in 0..REQUESTS {
        tokio::time::sleep(Duration::from_millis(3 + n as u64)).await;
        let _answer = format!("request {request} of api-{n}: ok");
        answered += 1;
        tokio::task::yield_now().await;
    }
    answered
}

/// The thumbnailer: resizes each upload synchronously, inside its poll (the bug).
async fn thumbnails() -> Vec<String> {
    let mut made = Vec::new();
    for upload in 0..UPLOADS {
        tokio::time::sleep(Duration::from_millis(10)).await;
        made.push(resize(upload));
    }
    made
}

/// A synchronous image resize, as a C library would do it.
fn resize(upload: usize) -> String {
    std::thread::sleep(RESIZE);
    format!("thumbnail-{upload}.png")
}
