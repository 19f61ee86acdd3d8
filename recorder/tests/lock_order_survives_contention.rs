//! The ordering promise: in the order of each lock's sequence numbers, no lock is ever
//! acquired while another holder has it, and acquisitions equal releases — with many threads
//! contending one wrapper lock, and with tasks on a multi-thread runtime contending one of
//! tokio's own mutexes (recorded through tokio's instrumentation).
#![cfg(feature = "record")]

mod common;

use common::{check_lock_order, contend_a_tokio_mutex, serial, trace_path, Trace};
use hindsight_recorder::{OverflowPolicy, Recorder};
use std::sync::Arc;
use tracing_subscriber::prelude::*;

/// Lock/unlock rounds per thread and per task: 8 × 100,000, in debug builds too.
const ROUNDS: u64 = 100_000;
const THREADS: u64 = 8;

#[test]
fn eight_threads_contending_one_wrapper_mutex_never_overlap_in_replay() {
    let _turn = serial();
    let path = trace_path("order-threads");
    let (_layer, guard) =
        Recorder::builder().path(&path).overflow(OverflowPolicy::Block).build().unwrap();
    let counter = Arc::new(hindsight_recorder::sync::Mutex::named("counter", 0u64));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(*counter.lock().unwrap(), THREADS * ROUNDS);
    let summary = guard.finish().unwrap();
    assert_eq!(summary.dropped, 0);

    let trace = Trace::read(&path);
    assert_eq!(trace.tail, hindsight_recorder::format::Tail::Complete);
    let lock = trace.lock_named("counter").unwrap();
    let orders = check_lock_order(&trace.events);
    let order = orders[&lock];
    assert_eq!(order.acquisitions as u64, THREADS * ROUNDS + 1);
    assert_eq!(order.acquisitions, order.releases);
    assert!(trace.threads() >= THREADS as usize);
    let bytes = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "{} events, {bytes} bytes, {:.2} bytes/event",
        trace.events.len(),
        bytes as f64 / trace.events.len() as f64
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn tasks_contending_a_tokio_mutex_never_overlap_in_replay() {
    let _turn = serial();
    let _ = tracing_subscriber::registry().with(Recorder::layer()).try_init();
    let path = trace_path("order-tasks");
    let (_layer, guard) =
        Recorder::builder().path(&path).overflow(OverflowPolicy::Block).build().unwrap();
    let rounds = ROUNDS;
    let total = contend_a_tokio_mutex(THREADS, rounds, 16);
    assert_eq!(total, THREADS * rounds);
    let summary = guard.finish().unwrap();
    assert_eq!(summary.dropped, 0);

    let trace = Trace::read(&path);
    let orders = check_lock_order(&trace.events);
    let busiest = orders.values().max_by_key(|o| o.acquisitions).expect("the mutex was recorded");
    assert_eq!(busiest.acquisitions as u64, THREADS * rounds + 1);
    assert_eq!(busiest.acquisitions, busiest.releases);
    assert!(trace.count("lock_requested") > 0, "some lock() calls had to wait");
    assert!(trace.count("poll_started") > 0);
    let _ = std::fs::remove_file(&path);
}
