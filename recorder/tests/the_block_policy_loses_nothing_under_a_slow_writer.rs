//! `OverflowPolicy::Block` promises that nothing is lost: tokio tasks contending one of
//! tokio's mutexes (recorded through tokio's instrumentation, where a poll's events are *held*
//! until the poll is told apart from a drop) record into a FIFO that the test reads slowly,
//! through small buffers. With `Block` the trace has every acquisition and no gap; the same
//! load with the default `Drop` does lose events, so the load really overflows the buffers.
#![cfg(all(feature = "record", unix))]

mod child;
mod common;

use hindsight_recorder::format::{EventKind, Item, TraceReader};
use hindsight_recorder::{OverflowPolicy, Recorder};
use std::time::Duration;
use tracing_subscriber::prelude::*;

const TASKS: u64 = 8;
const ROUNDS: u64 = 5_000;
/// Events per thread buffer: a few held polls fill it.
const BUFFER_EVENTS: usize = 256;

/// The child: records the load into the FIFO named by `HINDSIGHT_TRACE` with the policy its
/// role names, and prints what the recorder counted.
#[test]
fn child_recording_tasks_into_a_slow_pipe() {
    let policy = match child::role().as_deref() {
        Some("block") => OverflowPolicy::Block,
        Some("drop") => OverflowPolicy::Drop,
        _ => return,
    };
    tracing_subscriber::registry().with(Recorder::layer()).init();
    let path = std::env::var_os(hindsight_recorder::TRACE_VAR).unwrap();
    // Opening the FIFO waits for the test to open its end.
    let (_layer, guard) = Recorder::builder()
        .path(path)
        .buffer_events(BUFFER_EVENTS)
        .overflow(policy)
        .build()
        .unwrap();
    let total = common::contend_a_tokio_mutex(TASKS, ROUNDS, 32);
    let summary = guard.finish().unwrap();
    println!("total={total} dropped={}", summary.dropped);
}

/// What the test read back of one child's recording.
struct Recorded {
    /// What the child's recorder counted as dropped.
    dropped: u64,
    /// Gap events in the trace.
    gaps: u64,
    /// Acquisitions of the busiest lock.
    acquisitions: u64,
}

/// Runs the child with `role`, reading its trace through a FIFO that stays unread for its first
/// 1.5 s (the program records 64 KiB, a full pipe, well before that even on a loaded machine,
/// and runs for seconds more), then at about 1 MB/s.
fn record_through_a_slow_pipe(role: &str) -> Recorded {
    let dir = std::env::temp_dir()
        .join("hindsight-recorder-tests")
        .join(format!("block-policy-{role}-{}", std::process::id()));
    let (trace, stdout) = child::record_through_a_slow_pipe(
        &dir,
        "child_recording_tasks_into_a_slow_pipe",
        role,
        Duration::from_millis(1_500),
        16 << 10,
        Duration::from_millis(15),
    );
    let field = |key| child::field(&stdout, key).unwrap_or_else(|| panic!("{key} in {stdout}"));
    assert_eq!(field("total"), TASKS * ROUNDS, "the program itself ran to its end");

    let mut reader = TraceReader::from_reader(&trace[..], "slow.fifo").unwrap();
    let mut gaps = 0;
    let mut acquisitions = std::collections::HashMap::new();
    for item in &mut reader {
        if let Item::Events(batch) = item {
            for event in batch {
                match event.kind {
                    EventKind::Gap { .. } => gaps += 1,
                    EventKind::LockAcquired { lock, .. } => {
                        *acquisitions.entry(lock).or_insert(0u64) += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(reader.tail(), Some(&hindsight_recorder::format::Tail::Complete));
    Recorded {
        dropped: field("dropped"),
        gaps,
        acquisitions: acquisitions.values().copied().max().unwrap_or(0),
    }
}

#[test]
fn the_block_policy_records_every_event_of_held_polls_under_a_slow_writer() {
    if child::role().is_some() {
        return;
    }
    let dropping = record_through_a_slow_pipe("drop");
    assert!(dropping.dropped > 0 && dropping.gaps > 0, "the load overflows the buffers");

    let blocking = record_through_a_slow_pipe("block");
    assert_eq!((blocking.dropped, blocking.gaps), (0, 0), "Block loses nothing");
    // Every acquisition of the tasks, and the final read of the counter.
    assert_eq!(blocking.acquisitions, TASKS * ROUNDS + 1);
}
