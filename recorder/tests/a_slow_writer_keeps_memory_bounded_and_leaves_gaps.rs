//! Memory stays bounded when the disk cannot keep up: 16 threads hammer wrapper locks while
//! the trace goes into a FIFO that the test reads slowly (about 1.3 MB/s). The recording
//! threads never wait (the default `OverflowPolicy::Drop`); the child's peak RSS stays
//! within the configured bound — the threads' buffers, one writer round, and a fixed slack —
//! and what was dropped is in the trace as gaps.
//!
//! The quick version hammers for 3 s; `HINDSIGHT_LONG_TESTS=1` for 30 s.
#![cfg(all(feature = "record", unix))]

mod child;

use hindsight_recorder::format::{EventKind, Item, TraceReader};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 16;
/// Events per thread buffer (48 bytes each).
const BUFFER_EVENTS: usize = 8192;

/// The memory the recorder may use on top of the program's own: every thread's buffer,
/// one writer round (as many events again, in their decoded form of at most 64 bytes), and
/// 16 MiB for the writer's scratch, the allocator and the runtime.
fn bound_kib() -> u64 {
    let threads = THREADS as u64 + 1;
    let buffers = threads * BUFFER_EVENTS as u64 * 48;
    let round = threads * BUFFER_EVENTS as u64 * 64;
    (buffers + round) / 1024 + 16 * 1024
}

fn hammer_for() -> Duration {
    Duration::from_secs(if child::long() { 30 } else { 3 })
}

/// The child: records into the FIFO named by `HINDSIGHT_TRACE` while 16 threads hammer.
#[test]
fn child_hammering_into_a_slow_pipe() {
    if child::role().as_deref() != Some("hammer") {
        return;
    }
    let baseline = child::status_kib("VmRSS");
    let path = std::env::var_os(hindsight_recorder::TRACE_VAR).unwrap();
    // Opening the FIFO waits for the test to open its end.
    let (_layer, guard) =
        Recorder::builder().path(path).buffer_events(BUFFER_EVENTS).build().unwrap();
    let locks: Arc<Vec<Mutex<u64>>> =
        Arc::new((0..4).map(|i| Mutex::named(format!("hot-{i}"), 0)).collect());
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while start.elapsed() < hammer_for() {
                    for i in 0..1000 {
                        *locks[(t + i) % 4].lock().unwrap() += 1;
                    }
                    rounds += 1000;
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let summary = guard.finish().unwrap();
    println!(
        "baseline_kib={baseline} hwm_kib={} rounds={rounds} events={} dropped={}",
        child::status_kib("VmHWM"),
        summary.events,
        summary.dropped
    );
}

#[test]
fn sixteen_threads_and_a_slow_writer_stay_within_the_memory_bound() {
    if child::role().is_some() {
        return;
    }
    let dir = std::env::temp_dir()
        .join("hindsight-recorder-tests")
        .join(format!("slow-writer-{}", std::process::id()));
    // Read the trace slowly: 64 KiB every 50 ms.
    let (trace, stdout) = child::record_through_a_slow_pipe(
        &dir,
        "child_hammering_into_a_slow_pipe",
        "hammer",
        Duration::ZERO,
        64 << 10,
        Duration::from_millis(50),
    );
    let field = |key| child::field(&stdout, key).unwrap_or_else(|| panic!("{key} in {stdout}"));
    let (baseline, hwm, dropped) = (field("baseline_kib"), field("hwm_kib"), field("dropped"));

    let mut reader = TraceReader::from_reader(&trace[..], "slow.fifo").unwrap();
    let mut gaps = 0;
    let mut in_gaps = 0;
    for item in &mut reader {
        if let Item::Events(batch) = item {
            for event in batch {
                if let EventKind::Gap { dropped } = event.kind {
                    gaps += 1;
                    in_gaps += dropped;
                }
            }
        }
    }
    eprintln!(
        "{THREADS} threads for {:?}: peak RSS {hwm} KiB = baseline {baseline} KiB + {} KiB \
         (bound: baseline + {} KiB); {} rounds, {} events written, {dropped} dropped in {gaps} gaps; \
         {} bytes read",
        hammer_for(),
        hwm.saturating_sub(baseline),
        bound_kib(),
        field("rounds"),
        field("events"),
        trace.len()
    );
    assert!(
        hwm <= baseline + bound_kib(),
        "peak RSS {hwm} KiB exceeds baseline {baseline} KiB + bound {} KiB",
        bound_kib()
    );
    assert!(dropped > 0, "a slow writer makes the buffers overflow");
    assert_eq!(in_gaps, dropped, "every dropped event is in a gap");
}
