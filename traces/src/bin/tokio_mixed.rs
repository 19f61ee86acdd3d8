//! Scenario `tokio_mixed` (clean): an order-processing service on a two-worker tokio runtime.
//!
//! Four workers take orders from a shared queue (a tokio `Mutex`, recorded through tokio's
//! instrumentation), look prices up in a catalog (a blocking hindsight `RwLock`), wait for the
//! database connection (a tokio `Semaphore` with one permit), and count what they did in shared
//! statistics (a blocking hindsight `Mutex`). A reporter task reads the statistics and a
//! tokio `RwLock` of settings now and then; a restocker task refills the catalog. Awaits
//! (timers, yields, the semaphore) sit between the critical sections, and no guard is held
//! across an await. Locks are always taken in one order (queue, then statistics), so the run
//! has no deadlock, no lock-order cycle and no guard across an await.
//!
//! Usage: `tokio_mixed OUT_DIR` writes `OUT_DIR/tokio_mixed.trace`.

use anyhow::{Context, Result};
use hindsight_recorder::sync::{Mutex, RwLock};
use hindsight_recorder::Recorder;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

const WORKERS: usize = 4;
const ORDERS: u32 = 48;

#[derive(Debug, Default)]
struct Stats {
    processed: u32,
    revenue: u64,
}

struct Shop {
    queue: tokio::sync::Mutex<VecDeque<u32>>,
    settings: tokio::sync::RwLock<HashMap<&'static str, u64>>,
    connections: tokio::sync::Semaphore,
    catalog: RwLock<HashMap<u32, u64>>,
    stats: Mutex<Stats>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: tokio_mixed OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("tokio_mixed.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("tokio_mixed").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let processed = runtime.block_on(serve());
    drop(runtime);
    let summary = guard.finish()?;
    println!(
        "tokio_mixed: {processed} orders; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}

async fn serve() -> u32 {
    let shop = Arc::new(Shop {
        queue: tokio::sync::Mutex::new((0..ORDERS).collect()),
        settings: tokio::sync::RwLock::new(HashMap::from([("discount", 5)])),
        connections: tokio::sync::Semaphore::new(1),
        catalog: RwLock::named("catalog", (0..8).map(|item| (item, 10 + item as u64)).collect()),
        stats: Mutex::named("stats", Stats::default()),
    });

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let shop = shop.clone();
            hindsight_recorder::task::spawn(&format!("worker-{n}"), worker(shop))
        })
        .collect();
    let reporter = tokio::spawn(reporter(shop.clone()));
    let restocker = tokio::spawn(restocker(shop.clone()));

    let mut processed = 0;
    for handle in workers {
        processed += handle.await.unwrap_or(0);
    }
    reporter.abort();
    let _ = reporter.await;
    let _ = restocker.await;
    let total = shop.stats.lock().map(|stats| stats.processed).unwrap_or(0);
    assert_eq!(processed, total);
    processed
}

async fn worker(shop: Arc<Shop>) -> u32 {
    let mut done = 0;
    loop {
        let order = {
            let mut queue = shop.queue.lock().await;
            queue.pop_front()
        };
        let Some(order) = order else { break };
        let price = {
            let catalog = shop.catalog.read().unwrap_or_else(|e| e.into_inner());
            catalog.get(&(order % 8)).copied().unwrap_or(0)
        };
        let discount = *shop.settings.read().await.get("discount").unwrap_or(&0);
        {
            let _connection = shop.connections.acquire().await;
            tokio::time::sleep(Duration::from_millis(1 + u64::from(order % 3))).await;
        }
        {
            let mut stats = shop.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.processed += 1;
            stats.revenue += price.saturating_sub(discount);
        }
        done += 1;
        tokio::task::yield_now().await;
    }
    done
}

async fn reporter(shop: Arc<Shop>) {
    for report in 1u32.. {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let processed = shop.stats.lock().map(|stats| stats.processed).unwrap_or(0);
        // Every fourth report adjusts the discount.
        if report % 4 == 3 {
            let mut settings = shop.settings.write().await;
            settings.insert("discount", u64::from(processed % 7));
        }
    }
}

async fn restocker(shop: Arc<Shop>) {
    for round in 0..4u64 {
        tokio::time::sleep(Duration::from_millis(7)).await;
        let mut catalog = shop.catalog.write().unwrap_or_else(|e| e.into_inner());
        for price in catalog.values_mut() {
            *price += round;
        }
    }
}
