//! Runs tasks that check connections out of a `deadpool` 0.13 managed pool (unmodified: a
//! tokio semaphore whose permit a checkout takes and `forget`s, given back with `add_permits`
//! when the connection returns) under hindsight, recorded through tokio's instrumentation:
//! TASKS tasks share a pool of 4 connections for SECONDS seconds. The harness's own `Manager`
//! makes trivial connections whose queries take 1 ms of awaited I/O.
//!
//! With `correct`, each task checks a connection out, runs one query and returns it. Known
//! answer: no error, no warning.
//!
//! With `wrong`, each task keeps its connection while it also awaits a 50 ms call to another
//! service — the bug: the pool is exhausted and every other checkout waits for it. Known
//! answer: a `contention-hotspot` on the pool's semaphore (checkouts waiting past the
//! threshold), and no error.
//!
//! Usage: `deadpool_pool_load TRACE correct|wrong TASKS SECONDS`.

use anyhow::Result;
use deadpool::managed::{Manager, Metrics, Pool, RecycleResult};
use hindsight_corpus::{record, KnownAnswerArgs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Connections the pool holds at most.
const POOL_SIZE: usize = 4;

/// A pretend database connection: an id, and 1 ms of awaited I/O per query.
struct Connection {
    id: u64,
}

impl Connection {
    /// One query's round trip.
    async fn query(&self, key: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        key ^ self.id
    }
}

/// Makes connections, numbered in order; any connection may be reused.
#[derive(Default)]
struct Connections {
    made: AtomicU64,
}

impl Manager for Connections {
    type Type = Connection;
    type Error = std::convert::Infallible;

    async fn create(&self) -> Result<Connection, Self::Error> {
        Ok(Connection { id: self.made.fetch_add(1, Ordering::Relaxed) })
    }

    async fn recycle(&self, _: &mut Connection, _: &Metrics) -> RecycleResult<Self::Error> {
        Ok(())
    }
}

fn main() -> Result<()> {
    let usage = "usage: deadpool_pool_load TRACE correct|wrong TASKS SECONDS";
    let KnownAnswerArgs { path, wrong, count: tasks, seconds } = KnownAnswerArgs::parse(usage)?;
    let body = async {
        let pool: Pool<Connections> =
            Pool::builder(Connections::default()).max_size(POOL_SIZE).build()?;
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut handles = Vec::new();
        for task in 0..tasks {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move {
                let mut queries = 0u64;
                while Instant::now() < until {
                    let connection = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    std::hint::black_box(connection.query(task).await);
                    if wrong {
                        // A call to another service, awaited with the connection still out.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    drop(connection);
                    queries += 1;
                }
                Ok::<_, anyhow::Error>(queries)
            }));
        }
        let mut queries = 0;
        for handle in handles {
            queries += handle.await??;
        }
        Ok(queries)
    };
    record("deadpool-pool", &path, body, |queries| format!("{tasks} tasks, {queries} queries"))?;
    Ok(())
}
