//! Runs the unmodified mini-redis 0.4 server (tokio's tutorial server: a connection limit on
//! a semaphore given back with `add_permits`, a shared `Mutex`ed database, a broadcast
//! shutdown) under hindsight, recorded through tokio's instrumentation, with CLIENTS clients
//! doing SET and GET for SECONDS seconds, then shuts it down cleanly.
//!
//! Known answer: correct code; hindsight reports no error and no warning, even with the
//! machine's CPUs busy with other work.
//!
//! With `shared`, the clients share one connection behind a tokio `Mutex` and hold its guard
//! across each request's round trip — the pattern tokio's tutorial warns against (it gives the
//! connection to one task and sends it requests over a channel instead). Known answer: a
//! `guard-across-await` warning on that mutex, with the tasks that waited for it.
//!
//! Usage: `mini_redis_load TRACE CLIENTS SECONDS [shared]`.

use anyhow::{Context, Result};
use hindsight_corpus::record;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: mini_redis_load TRACE CLIENTS SECONDS [shared]";
    let path = std::path::PathBuf::from(args.next().context(usage)?);
    let clients: usize = args.next().context(usage)?.parse().context(usage)?;
    let seconds: f64 = args.next().context(usage)?.parse().context(usage)?;
    let shared = match args.next().as_deref() {
        None => false,
        Some("shared") => true,
        Some(_) => anyhow::bail!(usage),
    };
    let body = async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(mini_redis::server::run(listener, async {
            let _ = stopped.await;
        }));
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let one = std::sync::Arc::new(tokio::sync::Mutex::new(
            mini_redis::client::connect(addr).await.map_err(|e| anyhow::anyhow!("{e}"))?,
        ));
        let mut handles = Vec::new();
        for client in 0..clients {
            let one = one.clone();
            handles.push(tokio::spawn(async move {
                let mut own = match shared {
                    true => None,
                    false => Some(mini_redis::client::connect(addr).await?),
                };
                let mut operations = 0u64;
                while Instant::now() < until {
                    let key = format!("key-{}", operations % 8);
                    let value = bytes::Bytes::from(format!("{client}"));
                    match own.as_mut() {
                        Some(connection) => {
                            connection.set(&key, value).await?;
                            connection.get(&key).await?;
                        }
                        None => {
                            let mut connection = one.lock().await;
                            connection.set(&key, value).await?;
                            connection.get(&key).await?;
                        }
                    }
                    operations += 2;
                }
                Ok::<_, mini_redis::Error>(operations)
            }));
        }
        let mut operations = 0;
        for handle in handles {
            operations += handle.await?.map_err(|e| anyhow::anyhow!("client: {e}"))?;
        }
        let _ = stop.send(());
        server.await?.map_err(|e| anyhow::anyhow!("server: {e}"))?;
        Ok(operations)
    };
    let done = |operations: &u64| format!("{clients} clients, {operations} operations");
    record("mini-redis", &path, body, done)?;
    Ok(())
}
