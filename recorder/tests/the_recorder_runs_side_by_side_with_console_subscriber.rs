//! The recorder is one layer among others: next to console-subscriber's `ConsoleLayer` in one
//! `Registry`, both see tokio's instrumentation and nothing panics; and the recorder's filter
//! hides nothing from the other layers.
#![cfg(feature = "record")]

mod common;

use common::{check_lock_order, trace_path, Trace};
use hindsight_recorder::Recorder;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tracing_subscriber::prelude::*;

/// A layer of the program's own: counts the events of target `app`.
struct AppEvents(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AppEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "app" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn recorder_and_console_layer_share_one_registry() {
    let path = trace_path("console");
    let console = console_subscriber::ConsoleLayer::builder()
        .server_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .spawn();
    let (_, guard) = Recorder::builder().path(&path).build().unwrap();
    let app_events = Arc::new(AtomicUsize::new(0));
    tracing_subscriber::registry()
        .with(console)
        .with(Recorder::layer())
        .with(AppEvents(app_events.clone()))
        .init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sum = runtime.block_on(async {
        let shared = Arc::new(tokio::sync::Mutex::new(0u32));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    tracing::info!(target: "app", task = i, "started");
                    for _ in 0..50 {
                        *shared.lock().await += i;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let sum = *shared.lock().await;
        sum
    });
    drop(runtime);
    assert_eq!(sum, 50 * (1 + 2 + 3));
    assert_eq!(app_events.load(Ordering::Relaxed), 4, "the program's layer saw its events");
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    assert!(trace.tasks() >= 5, "the four tasks and block_on were recorded");
    assert!(trace.count("poll_started") >= 4 * 50);
    assert_eq!(trace.count("poll_started"), trace.count("poll_ended"));
    let orders = check_lock_order(&trace.events);
    let mutex = orders.values().max_by_key(|o| o.acquisitions).unwrap();
    assert_eq!(mutex.acquisitions, 4 * 50 + 1);
    assert_eq!(mutex.acquisitions, mutex.releases);
    let _ = std::fs::remove_file(&path);
}
