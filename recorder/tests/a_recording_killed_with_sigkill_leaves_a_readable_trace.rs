//! Crash safety: a process recording (streaming, set up by `init()` from the environment)
//! while threads hammer locks is killed with SIGKILL at random moments. Every file it leaves
//! opens, every complete chunk decodes, at most a part of the last chunk is lost, and the
//! last event in the file is at most one flush interval (plus one writer round) older than
//! the kill.
//!
//! The quick version (3 kills) runs with `cargo test`; `HINDSIGHT_LONG_TESTS=1` runs 50.
#![cfg(feature = "record")]

mod child;

use hindsight_recorder::format::{Item, Tail, TraceReader};
use hindsight_recorder::sync::Mutex;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The recorder's default flush interval: the loss the recorder promises at a kill.
const FLUSH_INTERVAL: Duration = hindsight_recorder::DEFAULT_FLUSH_INTERVAL;
/// What the test allows on top: one writer round and the scheduling of a busy 2-core
/// machine running a debug build.
const SLACK: Duration = Duration::from_millis(150);

/// The child: records through `init()` and hammers four locks from four threads until it
/// is killed.
#[test]
fn child_recording_until_killed() {
    if child::role().as_deref() != Some("hammer") {
        return;
    }
    let _guard = hindsight_recorder::init().expect("HINDSIGHT_TRACE names a writable file");
    let locks: Arc<Vec<Mutex<u64>>> =
        Arc::new((0..4).map(|i| Mutex::named(format!("lock-{i}"), 0)).collect());
    for worker in 0..4 {
        let locks = locks.clone();
        hindsight_recorder::thread::spawn(&format!("hammer-{worker}"), move || loop {
            for i in 0..20 {
                *locks[(worker + i) % 4].lock().unwrap() += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        })
        .unwrap();
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Kills one recording after `delay`; returns (ms of events lost at the end, bytes lost).
fn kill_once(index: usize, delay: Duration) -> (f64, u64) {
    let path = std::env::temp_dir()
        .join("hindsight-recorder-tests")
        .join(format!("killed-{}-{index}.trace", std::process::id()));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut process = child::command("child_recording_until_killed", "hammer")
        .env(hindsight_recorder::TRACE_VAR, &path)
        .spawn()
        .unwrap();
    // The test harness prints a line or two of its own first.
    let stdout = BufReader::new(process.stdout.take().unwrap());
    let ready = stdout.lines().map_while(Result::ok).any(|line| line == "ready");
    assert!(ready, "the child started recording");
    std::thread::sleep(delay);
    let killed_at = SystemTime::now();
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();

    let mut reader = TraceReader::open(&path).expect("a killed recording leaves a readable file");
    let start = reader.header().start_unix_ns;
    let mut last_ns = 0;
    let mut events = 0;
    for item in &mut reader {
        if let Item::Events(batch) = item {
            events += batch.len();
            last_ns = batch.iter().map(|e| e.time_ns).fold(last_ns, u64::max);
        }
    }
    let tail = reader.tail().cloned().unwrap();
    let lost_bytes = match tail {
        Tail::Complete => 0,
        Tail::Truncated { bytes } => bytes,
        Tail::Corrupt { reason, .. } => panic!("kill {index}: a corrupt chunk: {reason}"),
    };
    assert!(events > 0, "kill {index}: events were written");
    let lost = unix_ns(killed_at).saturating_sub(start + last_ns);
    let lost = Duration::from_nanos(lost);
    assert!(
        lost <= FLUSH_INTERVAL + SLACK,
        "kill {index} after {delay:?}: the last {lost:?} were lost, more than the flush \
         interval {FLUSH_INTERVAL:?} (+{SLACK:?})"
    );
    let _ = std::fs::remove_file(&path);
    (lost.as_secs_f64() * 1e3, lost_bytes)
}

#[test]
fn every_file_left_by_a_kill_reads_back_and_lacks_at_most_one_flush_interval() {
    if child::role().is_some() {
        return;
    }
    let kills = if child::long() { 50 } else { 3 };
    let mut rng = child::Rng::from_clock();
    let mut losses = Vec::new();
    let mut truncated = 0;
    for index in 0..kills {
        let delay = Duration::from_millis(rng.below(100..if child::long() { 3000 } else { 700 }));
        let (lost_ms, lost_bytes) = kill_once(index, delay);
        losses.push(lost_ms);
        truncated += usize::from(lost_bytes > 0);
    }
    losses.sort_by(f64::total_cmp);
    eprintln!(
        "{kills} kills: events lost at the end: median {:.1} ms, max {:.1} ms (bound {:?} + \
         {:?}); {truncated} files ended inside a chunk",
        losses[losses.len() / 2],
        losses[losses.len() - 1],
        FLUSH_INTERVAL,
        SLACK
    );
}
