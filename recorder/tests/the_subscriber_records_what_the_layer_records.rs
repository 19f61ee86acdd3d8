//! The recorder's two front-ends — its own `Subscriber` (what `init()` installs) and its
//! Layer in a `Registry` — record the same events for the same tokio program: tasks, polls,
//! wakes, tokio's `Mutex`, `RwLock` and `Semaphore`, the lock convention; and neither sees
//! tokio's timers or the program's own spans.
#![cfg(feature = "record")]

mod common;

use common::{check_lock_order, serial, trace_path, Trace};
use hindsight_recorder::format::{Definition, EventKind, LockKind};
use hindsight_recorder::Recorder;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// Tasks contending for a mutex, a rwlock and a semaphore, one aborted, a timer, a
/// user-defined lock and a span of the program's own.
async fn program() {
    // Before the workers, so that the timer does not decide their schedule.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mutex = Arc::new(tokio::sync::Mutex::new(0u64));
    let rwlock = Arc::new(tokio::sync::RwLock::new(0u64));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(2));
    let mut handles = Vec::new();
    for i in 0..6u64 {
        let (mutex, rwlock, semaphore) = (mutex.clone(), rwlock.clone(), semaphore.clone());
        let task = async move {
            for round in 0..10 {
                let _permit = semaphore.acquire().await.unwrap();
                {
                    let mut count = mutex.lock().await;
                    *count += 1;
                    tokio::task::yield_now().await;
                }
                if (i + round) % 2 == 0 {
                    *rwlock.write().await += 1;
                } else {
                    let _ = *rwlock.read().await;
                }
                if let Ok(mut count) = mutex.try_lock() {
                    *count += 1;
                }
            }
        };
        let name = format!("worker-{i}");
        handles.push(tokio::task::Builder::new().name(&name).spawn(task).unwrap());
    }
    let stuck = tokio::spawn(std::future::pending::<()>());
    let _own = tracing::info_span!("the program's own span").entered();
    tracing::info!("the program's own event");
    for handle in handles {
        handle.await.unwrap();
    }
    stuck.abort();
    let _ = stuck.await;
    tracing::trace!(target: "hindsight::lock", op = "requested", lock.name = "repo.lock");
    tracing::trace!(target: "hindsight::lock", op = "acquired", lock.name = "repo.lock");
    tracing::trace!(target: "hindsight::lock", op = "released", lock.name = "repo.lock");
    assert!(*mutex.lock().await >= 60);
}

thread_local! {
    static DEFAULT: RefCell<Option<tracing::dispatcher::DefaultGuard>> = const { RefCell::new(None) };
}

/// Records `program` with `dispatch` as the default subscriber of every runtime thread.
fn record(dispatch: &Dispatch, name: &str, multi_thread: bool) -> Trace {
    let path = trace_path(name);
    let (_, guard) = Recorder::builder().path(&path).build().unwrap();
    tracing::dispatcher::with_default(dispatch, || {
        let runtime = if multi_thread {
            let on_start = dispatch.clone();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    let default = tracing::dispatcher::set_default(&on_start);
                    DEFAULT.with(|slot| *slot.borrow_mut() = Some(default));
                })
                .on_thread_stop(|| DEFAULT.with(|slot| drop(slot.borrow_mut().take())))
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .unwrap();
        runtime.block_on(program());
    });
    guard.finish().unwrap();
    Trace::read(&path)
}

fn counts(trace: &Trace) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for event in recorded(trace) {
        *counts.entry(event.kind.name()).or_default() += 1;
    }
    counts
}

/// The events both front-ends must agree on: all but a long poll's CPU time, which is
/// recorded only for polls that happened to run a millisecond or more.
fn recorded(trace: &Trace) -> impl Iterator<Item = &hindsight_recorder::format::Event> {
    trace.events.iter().filter(|e| e.kind.name() != "poll_cpu")
}

fn layer() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(Recorder::layer()))
}

fn subscriber() -> Dispatch {
    Dispatch::new(Recorder::subscriber())
}

#[test]
fn on_one_thread_both_record_the_same_events_in_the_same_order() {
    let _turn = serial();
    let by_layer = record(&layer(), "front-ends-layer", false);
    let by_subscriber = record(&subscriber(), "front-ends-subscriber", false);
    let kinds = |trace: &Trace| -> Vec<EventKind> { recorded(trace).map(|e| e.kind).collect() };
    let counts = counts(&by_layer);
    for kind in ["task_spawned", "poll_started", "wake", "lock_requested", "lock_acquired"] {
        assert!(counts.get(kind).is_some_and(|n| *n > 0), "{kind} recorded: {counts:?}");
    }
    assert_eq!(self::counts(&by_subscriber), counts);
    let (a, b) = (kinds(&by_subscriber), kinds(&by_layer));
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!(
            "event {i} differs:\nsubscriber {:?}\nlayer      {:?}",
            &a[i.saturating_sub(3)..(i + 3).min(a.len())],
            &b[i.saturating_sub(3)..(i + 3).min(b.len())]
        );
    }
    assert_eq!(a, b);
    assert_eq!(by_subscriber.tasks(), by_layer.tasks());
    assert_eq!(by_subscriber.locks(), by_layer.locks());
    // 3 tokio locks and the user-defined one; the timer is no lock.
    assert_eq!(by_layer.locks(), 4);
    check_lock_order(&without_semaphores(&by_subscriber));
}

/// The events of `trace` but those of semaphores (`check_lock_order` knows one holder at a
/// time).
fn without_semaphores(trace: &Trace) -> Vec<hindsight_recorder::format::Event> {
    let semaphores: Vec<_> = trace
        .definitions
        .iter()
        .filter_map(|def| match def {
            Definition::Lock(lock) if lock.kind == LockKind::Semaphore => Some(lock.id),
            _ => None,
        })
        .collect();
    assert_eq!(semaphores.len(), 1);
    let of_semaphore = |e: &&hindsight_recorder::format::Event| {
        e.kind.lock().is_some_and(|lock| semaphores.contains(&lock))
    };
    trace.events.iter().filter(|e| !of_semaphore(e)).copied().collect()
}

#[test]
fn on_two_workers_both_record_every_acquisition_and_release_in_order() {
    let _turn = serial();
    let by_layer = record(&layer(), "front-ends-layer-mt", true);
    let by_subscriber = record(&subscriber(), "front-ends-subscriber-mt", true);
    let (layer_counts, subscriber_counts) = (counts(&by_layer), counts(&by_subscriber));
    // Contention (requests, polls, wakes, try_locks) depends on the schedule; the rest not.
    for kind in ["task_spawned", "task_finished"] {
        assert_eq!(subscriber_counts.get(kind), layer_counts.get(kind), "{kind}");
    }
    for trace in [&by_layer, &by_subscriber] {
        // 6 workers × 10 rounds: a permit, the mutex, the rwlock; the mutex once more at
        // the end; the user-defined lock once.
        let awaited = trace
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LockAcquired { via_try: false, .. }));
        assert_eq!(awaited.count(), 6 * 10 * 3 + 2);
        let order = check_lock_order(&without_semaphores(trace));
        assert_eq!(order.len(), 2, "the tokio mutex and rwlock carry sequence numbers");
        assert!(order.values().all(|o| o.acquisitions == o.releases));
    }
}
