//! Scenario `pool_starved` (bug: a connection pool too small for its load).
//!
//! Twelve queries run at once against a database pool of two connections, a semaphore of two
//! permits: each checks a connection out (`acquire`), holds it for its query (120 ms of
//! awaited I/O) and checks it back in (drops the permit). Ten of the twelve wait for a
//! connection, from 120 ms to 600 ms: the pool is the bottleneck.
//!
//! Expected, exactly: one `contention-hotspot` (warning) on semaphore `connections`, with the
//! checkout (`// site: checkout`) as the waiting site. Nothing else: the permits are held
//! across `.await`s, which is what they are for, and returned by every query.
//!
//! Usage: `pool_starved OUT_DIR` writes `OUT_DIR/pool_starved.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::tokio::Semaphore;
use hindsight_recorder::{task, Recorder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Connections in the pool.
const POOL_SIZE: usize = 2;
/// Queries run at once.
const QUERIES: usize = 12;
/// How long a query keeps its connection.
const QUERY: Duration = Duration::from_millis(120);

/// Runs query `n` on a pooled connection; returns its row count.
async fn query(pool: Arc<Semaphore>, n: usize) -> Result<usize> {
    let connection = pool.acquire().await?; // site: checkout
    tokio::time::sleep(QUERY).await;
    drop(connection);
    Ok(n % 3 + 1)
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: pool_starved OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("pool_starved.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("pool_starved").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let pool = Arc::new(Semaphore::named("connections", POOL_SIZE));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let rows = runtime.block_on(async {
        let queries: Vec<_> = (0..QUERIES)
            .map(|n| task::spawn(&format!("query-{n}"), query(pool.clone(), n)))
            .collect();
        let mut rows = 0;
        for query in queries {
            rows += query.await.map_err(|e| anyhow!("query: {e}"))??;
        }
        Ok::<_, anyhow::Error>(rows)
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "pool_starved: {QUERIES} queries, {rows} rows; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
