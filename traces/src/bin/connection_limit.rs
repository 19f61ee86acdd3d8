//! Scenario `connection_limit` (no bug: a semaphore used as a counter, as mini-redis does).
//!
//! A server limits its open connections with a semaphore of 3 permits. The accept loop takes
//! a permit for each incoming connection and `forget`s it — the permit's guard cannot travel
//! with the connection — and spawns the connection's handler, which gives the permit back
//! with `add_permits(1)` when the connection closes. Each handler serves a few commands
//! against a shared `db` (an async mutex, short critical sections) with some I/O (a short
//! sleep) in between. Ten connections arrive faster than they close, so the accept loop waits
//! for a permit now and then, briefly.
//!
//! Expected: no finding. The permits are not locks: a permit taken by the accept task and
//! given back by another is how the limit works, and the short permit waits are what the
//! semaphore is for.
//!
//! Usage: `connection_limit OUT_DIR` writes `OUT_DIR/connection_limit.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::tokio::{Mutex, Semaphore};
use hindsight_recorder::{task, Recorder};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Open connections allowed at once.
const MAX_CONNECTIONS: usize = 3;
/// Connections the clients open.
const CONNECTIONS: usize = 10;
/// Commands per connection.
const COMMANDS: usize = 3;

/// The server's shared state.
struct Server {
    limit_connections: Semaphore,
    db: Mutex<HashMap<String, u64>>,
}

impl Server {
    /// Serves one connection, then gives its permit back.
    async fn handle(self: Arc<Self>, connection: usize) -> u64 {
        let mut last = 0;
        for command in 0..COMMANDS {
            // Reading the command from the socket.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let mut db = self.db.lock().await;
            let count = db.entry(format!("key-{}", (connection + command) % 4)).or_default();
            *count += 1;
            last = *count;
        }
        // The connection closed: one more may be accepted.
        self.limit_connections.add_permits(1); // site: add-permits
        last
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: connection_limit OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("connection_limit.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("connection_limit").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let server = Arc::new(Server {
        limit_connections: Semaphore::named("limit_connections", MAX_CONNECTIONS),
        db: Mutex::named("db", HashMap::new()),
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let served = runtime.block_on(async {
        let accept = {
            let server = server.clone();
            task::spawn("accept", async move {
                let mut handlers = Vec::new();
                for connection in 0..CONNECTIONS {
                    // A connection arrives every millisecond.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let permit = server.limit_connections.acquire().await?; // site: acquire
                    permit.forget();
                    let handler = server.clone().handle(connection);
                    handlers.push(task::spawn(&format!("connection-{connection}"), handler));
                }
                let mut served = 0;
                for handler in handlers {
                    served += handler.await.map_err(|e| anyhow!("handler: {e}"))?;
                }
                Ok::<_, anyhow::Error>(served)
            })
        };
        accept.await.map_err(|e| anyhow!("accept: {e}"))?
    })?;
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "connection_limit: {CONNECTIONS} connections served ({served}); {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
