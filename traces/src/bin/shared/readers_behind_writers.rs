//! The program of the scenarios `rwlock_readers_hang` and `rwlock_readers_near_miss`: two
//! readers take two fair `RwLock`s for reading in opposite orders while a writer writes each.
//! Only the timing differs between the two, and it is passed in.
//!
//! A routing service keeps its `routes` and its `stats`, each behind the recorder's tokio-API
//! `RwLock` (fair: a waiting writer makes later readers wait). Task `lookup` reads `routes`,
//! resolves a route, then reads `stats` to pick the least loaded backend, holding both read
//! guards. Task `report` reads `stats`, then `routes` to name each backend. Task `reload`
//! writes `routes`; task `flush` writes `stats`. Readers do not block readers, but a writer
//! queued on `stats` makes `lookup`'s read of it wait, and likewise on `routes` for `report`.

use hindsight_recorder::sync::tokio::RwLock;
use hindsight_recorder::task::{spawn, JoinHandle};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The service's shared state.
pub struct Router {
    /// Path prefix to backend.
    routes: RwLock<HashMap<String, String>>,
    /// Requests served per backend.
    stats: RwLock<HashMap<String, u64>>,
}

/// When each task makes its second move.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a reader works between its first and its second read.
    pub between_reads: Duration,
    /// How long the writers wait before they write.
    pub writers_after: Duration,
}

/// The four tasks, spawned on the current runtime: `lookup`, `report`, `reload`, `flush`.
pub fn spawn_all(timing: Timing) -> Vec<JoinHandle<()>> {
    let router = Arc::new(Router {
        routes: RwLock::named("routes", HashMap::from([("/".to_owned(), "a".to_owned())])),
        stats: RwLock::named("stats", HashMap::from([("a".to_owned(), 0)])),
    });
    vec![
        spawn("lookup", lookup(router.clone(), timing)), // site: spawn-lookup
        spawn("report", report(router.clone(), timing)), // site: spawn-report
        spawn("reload", reload(router.clone(), timing)),
        spawn("flush", flush(router, timing)),
    ]
}

/// Resolves a route (`routes`), then picks its backend's load (`stats`).
async fn lookup(router: Arc<Router>, timing: Timing) {
    let routes = router.routes.read().await; // site: lookup-routes
    let backend = routes.get("/").cloned().unwrap_or_default();
    tokio::time::sleep(timing.between_reads).await; // site: lookup-sleep
    let stats = router.stats.read().await; // site: lookup-stats
    let _load = stats.get(&backend).copied().unwrap_or(0);
}

/// Lists the load per backend (`stats`), naming each backend's routes (`routes`).
async fn report(router: Arc<Router>, timing: Timing) {
    let stats = router.stats.read().await; // site: report-stats
    tokio::time::sleep(timing.between_reads).await; // site: report-sleep
    let routes = router.routes.read().await; // site: report-routes
    let _lines: Vec<String> = routes
        .iter()
        .map(|(path, backend)| format!("{path} -> {backend}: {}", stats.get(backend).unwrap_or(&0)))
        .collect();
}

/// Adds a route.
async fn reload(router: Arc<Router>, timing: Timing) {
    tokio::time::sleep(timing.writers_after).await;
    router.routes.write().await.insert("/api".to_owned(), "b".to_owned()); // site: reload-routes
}

/// Resets the counters.
async fn flush(router: Arc<Router>, timing: Timing) {
    tokio::time::sleep(timing.writers_after).await;
    router.stats.write().await.values_mut().for_each(|n| *n = 0); // site: flush-stats
}
