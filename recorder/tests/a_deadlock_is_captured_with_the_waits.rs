//! A hang is only useful with its waits: two threads deadlock on two wrapper mutexes, and
//! when another thread finishes the trace, the lock requests the blocked threads are stuck on
//! are in the file — although those threads can never flush anything themselves.
#![cfg(feature = "record")]

mod common;

use common::{serial, trace_path, Trace};
use hindsight_recorder::format::{EventKind, LockMode};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn both_stuck_lock_requests_reach_the_file_when_another_thread_finishes_the_trace() {
    let _turn = serial();
    let path = trace_path("deadlock");
    // A long flush interval: only the guard's final flush can write the requests.
    let (_layer, guard) =
        Recorder::builder().path(&path).flush_interval(Duration::from_secs(3600)).build().unwrap();
    let accounts = Arc::new(Mutex::named("accounts", ()));
    let ledger = Arc::new(Mutex::named("ledger", ()));
    let both_hold_one = Arc::new(Barrier::new(2));
    let stuck = Arc::new(AtomicUsize::new(0));

    // thread a:  lock(accounts) ── barrier ── lock(ledger)    (blocks forever)
    // thread b:  lock(ledger)   ── barrier ── lock(accounts)  (blocks forever)
    for (first, second, name) in [
        (accounts.clone(), ledger.clone(), "transfer-a"),
        (ledger.clone(), accounts.clone(), "transfer-b"),
    ] {
        let barrier = both_hold_one.clone();
        let stuck = stuck.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _held = first.lock().unwrap();
                barrier.wait();
                stuck.fetch_add(1, Ordering::SeqCst);
                let _never = second.lock().unwrap();
            })
            .unwrap();
    }
    // Give both threads time to block in their second lock().
    while stuck.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let accounts_id = trace.lock_named("accounts").unwrap();
    let ledger_id = trace.lock_named("ledger").unwrap();
    let requests: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LockRequested { lock, mode: LockMode::Exclusive, .. } => {
                Some((e.thread, lock))
            }
            _ => None,
        })
        .collect();
    let requested = |lock| requests.iter().filter(|(_, l)| *l == lock).count();
    assert_eq!(requested(accounts_id), 1, "the request for accounts is in the trace");
    assert_eq!(requested(ledger_id), 1, "the request for ledger is in the trace");
    assert_ne!(requests[0].0, requests[1].0, "two different threads are stuck");
    // Each stuck thread holds the lock the other waits for.
    for (thread, waits_for) in &requests {
        let held: Vec<_> = trace
            .events
            .iter()
            .filter(|e| e.thread == *thread)
            .filter_map(|e| match e.kind {
                EventKind::LockAcquired { lock, .. } => Some(lock),
                _ => None,
            })
            .collect();
        assert_eq!(held.len(), 1);
        assert_ne!(held[0], *waits_for);
    }
    let _ = std::fs::remove_file(&path);
}
