//! Runs callers of a `tower` 0.5 service behind its unmodified `ConcurrencyLimit` (a tokio
//! semaphore that `poll_ready` waits on) under hindsight, recorded through tokio's
//! instrumentation: CALLERS tasks call a backend that takes 2 ms, at most 4 at once, for
//! SECONDS seconds.
//!
//! With `correct`, each caller waits for the service to be ready, calls it, then counts the
//! call in a shared `stats` (a tokio `Mutex`). Known answer: no error, no warning.
//!
//! With `wrong`, each caller takes the `stats` guard first and keeps it while it waits for a
//! permit of the limit and for the call — the bug. Known answer: a `guard-across-await` on
//! `stats` (the wait for a permit is a suspension like any other), and no error.
//!
//! Usage: `tower_limit_load TRACE correct|wrong CALLERS SECONDS`.

use anyhow::Result;
use hindsight_corpus::{record, KnownAnswerArgs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Calls the service allows at once.
const LIMIT: usize = 4;

/// The backend: 2 ms of awaited I/O per request.
async fn backend(request: u64) -> Result<u64, std::convert::Infallible> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(request * 2)
}

fn main() -> Result<()> {
    let usage = "usage: tower_limit_load TRACE correct|wrong CALLERS SECONDS";
    let KnownAnswerArgs { path, wrong, count: callers, seconds } = KnownAnswerArgs::parse(usage)?;
    let body = async {
        let service = ServiceBuilder::new().concurrency_limit(LIMIT).service_fn(backend);
        let stats = Arc::new(tokio::sync::Mutex::new(0u64));
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut handles = Vec::new();
        for caller in 0..callers {
            let mut service = service.clone();
            let stats = stats.clone();
            handles.push(tokio::spawn(async move {
                while Instant::now() < until {
                    if wrong {
                        let mut count = stats.lock().await;
                        let ready = service.ready().await?;
                        ready.call(caller).await?;
                        *count += 1;
                    } else {
                        service.ready().await?.call(caller).await?;
                        *stats.lock().await += 1;
                    }
                }
                Ok::<_, std::convert::Infallible>(())
            }));
        }
        for handle in handles {
            handle.await?.map_err(|e| anyhow::anyhow!("caller: {e}"))?;
        }
        let calls = *stats.lock().await;
        Ok(calls)
    };
    record("tower-limit", &path, body, |calls| format!("{callers} callers, {calls} calls"))?;
    Ok(())
}
