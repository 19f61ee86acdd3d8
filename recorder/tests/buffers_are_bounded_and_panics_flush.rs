//! Memory is bounded: a full buffer drops events, counts them and writes the count as a gap
//! where they were lost. A panic flushes the trace (through a hook that chains the previous
//! one) without waiting for the writer's next round.
#![cfg(feature = "record")]

mod common;

use common::{serial, trace_path, Trace};
use hindsight_recorder::format::EventKind;
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::{OverflowPolicy, Recorder};
use std::time::Duration;

#[test]
fn a_full_buffer_drops_counts_and_marks_a_gap() {
    let _turn = serial();
    let path = trace_path("overflow");
    let (_layer, guard) = Recorder::builder()
        .path(&path)
        .buffer_events(64)
        .overflow(OverflowPolicy::Drop)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    const ROUNDS: usize = 200_000;
    let lock = Mutex::named("hot", 0u64);
    let recording = std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            *lock.lock().unwrap() += 1;
        }
    });
    recording.join().unwrap();
    let summary = guard.finish().unwrap();
    assert!(summary.dropped > 0, "a 64-event buffer cannot hold {ROUNDS} rounds");

    let trace = Trace::read(&path);
    assert_eq!(trace.dropped(), summary.dropped, "every drop is written as a gap");
    let gaps: Vec<_> =
        trace.events.iter().filter(|e| matches!(e.kind, EventKind::Gap { .. })).collect();
    assert!(!gaps.is_empty());
    let recorded = trace.count("lock_acquired") + trace.count("lock_released");
    assert_eq!(recorded as u64 + summary.dropped, 2 * ROUNDS as u64);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_panic_flushes_the_trace_and_runs_the_previous_hook() {
    let _turn = serial();
    let previous_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = previous_ran.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        default(info);
    }));
    let path = trace_path("panic");
    let (_layer, guard) =
        Recorder::builder().path(&path).flush_interval(Duration::from_secs(3600)).build().unwrap();
    let lock = Mutex::named("before-the-panic", ());
    for _ in 0..3 {
        drop(lock.lock().unwrap());
    }
    let panicked = std::thread::spawn(|| panic!("on purpose")).join();
    assert!(panicked.is_err());
    assert!(previous_ran.load(std::sync::atomic::Ordering::SeqCst), "the previous hook ran");

    // Read while still recording: the panic, not the guard, put these events in the file.
    let trace = Trace::read(&path);
    assert_eq!(trace.count("lock_acquired"), 3);
    assert_eq!(trace.count("lock_released"), 3);
    guard.finish().unwrap();
    let _ = std::fs::remove_file(&path);
}
