//! Scenario `pools_one_constructor` (bug: two pools made by one constructor, checked out in
//! opposite orders; a timeout would break the deadlock, this run did not need it).
//!
//! A service keeps a `primary` and a `replica` database pool, both made by `Pool::connect`, so
//! both locks are made at one line (`// site: pool-lock`) and are one lock class: a lock graph
//! over classes sees only `pool` → `pool`. Each pool lends its one connection through the
//! recorder's tokio-API `Mutex`, and a checkout gives up after 500 ms. Task `migrate` checks
//! out `primary` then `replica` to copy a table; task `backfill` checks out `replica` then
//! `primary`. In this run `backfill` starts when `migrate` is done, so no checkout waits; had
//! they overlapped, each would have held one pool and waited for the other until its timeout.
//!
//! Expected: exactly one `lock-order-cycle` error between the two pool locks, told apart as
//! two instances of class `pool`, with the four checkout sites (`// site: migrate-primary`,
//! `migrate-replica`, `backfill-replica`, `backfill-primary`) and a witness schedule.
//!
//! Usage: `pools_one_constructor OUT_DIR` writes `OUT_DIR/pools_one_constructor.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::tokio::{Mutex, MutexGuard};
use hindsight_recorder::Recorder;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// How long a checkout waits for a connection before it gives up.
const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// A database connection.
#[derive(Debug)]
struct Connection {
    /// Statements run on it.
    statements: u64,
}

/// A pool of one connection.
struct Pool {
    /// The server it talks to.
    url: &'static str,
    connection: Mutex<Connection>,
}

impl Pool {
    /// Connects to `url`. Every pool's lock is made here: one lock class, many instances.
    fn connect(url: &'static str) -> Pool {
        let connection = Mutex::named("pool", Connection { statements: 0 }); // site: pool-lock
        Pool { url, connection }
    }

    /// Lends the connection, or gives up after [`CHECKOUT_TIMEOUT`]. The caller's line is
    /// the lock's request site.
    #[track_caller]
    fn checkout(&self) -> impl Future<Output = Result<MutexGuard<'_, Connection>>> + '_ {
        let connection = self.connection.lock();
        async move {
            match tokio::time::timeout(CHECKOUT_TIMEOUT, connection).await {
                Ok(connection) => Ok(connection),
                Err(_) => bail!("no connection to {} within {CHECKOUT_TIMEOUT:?}", self.url),
            }
        }
    }
}

/// The two pools of the service.
struct Databases {
    primary: Pool,
    replica: Pool,
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: pools_one_constructor OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("pools_one_constructor.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("pools_one_constructor").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let databases = Arc::new(Databases {
        primary: Pool::connect("postgres://primary"),
        replica: Pool::connect("postgres://replica"),
    });
    let outcome = runtime.block_on(async {
        let migrate = hindsight_recorder::task::spawn("migrate", migrate(databases.clone()));
        let backfill = hindsight_recorder::task::spawn("backfill", backfill(databases.clone()));
        (migrate.await, backfill.await)
    });
    let (Ok(migrated), Ok(backfilled)) = outcome else { bail!("a task panicked") };
    migrated?;
    backfilled?;

    let summary = guard.finish()?;
    println!(
        "pools_one_constructor: {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

/// Copies a table from the primary to the replica: `primary`, then `replica`.
async fn migrate(databases: Arc<Databases>) -> Result<()> {
    let mut primary = databases.primary.checkout().await?; // site: migrate-primary
    primary.statements += 1;
    let mut replica = databases.replica.checkout().await?; // site: migrate-replica
    replica.statements += 1;
    Ok(())
}

/// Fills rows the replica is missing from the primary: `replica`, then `primary`.
async fn backfill(databases: Arc<Databases>) -> Result<()> {
    // Scheduled after the migration, this time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut replica = databases.replica.checkout().await?; // site: backfill-replica
    replica.statements += 1;
    let mut primary = databases.primary.checkout().await?; // site: backfill-primary
    primary.statements += 1;
    Ok(())
}
