//! Replay + lock-order detection throughput, and peak memory.
//!
//! Generates a trace of N events (default 20 million; `cargo bench -p hindsight-analyzer
//! --bench replay -- 40000000` for more) from 16 threads over 1000 locks into a temporary
//! file, the way the recorder writes one: per-thread batches of up to 4096 events, after each
//! flush cycle a watermark that lags one cycle (as the recorder's writer does), lock sequence
//! numbers, contention (requests) where a lock is busy, threads interleaved event by event.
//! Threads take an outer lock and, nested, one of the next eight locks, always in ascending
//! order (so there is no cycle to find).
//!
//! Then it reads the file four times and prints events per second of CPU time (this thread's,
//! so that other processes on a busy machine do not count) for: decoding alone (`read`: the
//! recorder's `TraceReader::next_into` into one reused buffer, as replay reads), decoding +
//! replay (`state`: ordering and state), decoding + replay + the lock-order detector
//! (`lock-order`), and everything `analyze` does (`all`); and the peak resident memory
//! (`VmHWM`). Run it with 20M and 40M events: the peak must not grow with the trace. Name a
//! stage (`-- 2000000 lock-order`) to run that one alone, as a profiler wants.
//!
//! `locks=N` sets the number of locks (1000 by default; `locks=100000` for the many-locks
//! figure). `inversions=N` makes one nest in N take its inner lock *below* the outer one
//! when that lock is free (so the run never deadlocks, but the lock-order graph has cycles):
//! then the `lock-order` stage includes deadlock prediction's second reading of the file, and
//! prints how many patterns it checked.

mod support;

use hindsight_analyzer::detect::{Context, Detector, LockOrder};
use hindsight_analyzer::replay::Replay;
use hindsight_analyzer::{AnalyzeOptions, Report};
use hindsight_recorder::format::{
    Definition, Event, EventKind, LockDef, LockId, LockImplementation, LockKind, LockMode, SiteDef,
    SiteId, StringId, ThreadDef, ThreadId,
};
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Instant;
use support::{peak_rss_kib, rate, timed, CycleWriter, Rng};

const THREADS: usize = 16;

/// What to generate.
#[derive(Clone, Copy)]
struct Shape {
    events: u64,
    locks: u32,
    /// One nest in this many takes its inner lock below the outer (0: none).
    inversions: u64,
}

/// The stages measured, in order.
const STAGES: [&str; 4] = ["read", "state", "lock-order", "all"];

/// What a simulated thread does next.
#[derive(Clone, Copy)]
enum Step {
    TakeOuter,
    TakeInner,
    ReleaseInner,
    ReleaseOuter,
}

struct SimThread {
    step: Step,
    outer: LockId,
    inner: LockId,
    waiting: bool,
}

fn generate(path: &Path, shape: Shape) -> std::io::Result<u64> {
    let Shape { events, locks: lock_count, inversions } = shape;
    let mut out = CycleWriter::create(path, "bench", THREADS)?;
    let mut defs = vec![Definition::String { id: StringId(0), text: "src/bench.rs".into() }];
    for i in 0..8 {
        defs.push(Definition::Site(SiteDef {
            id: SiteId(i),
            file: StringId(0),
            line: 10 + i,
            col: 5,
            function: None,
        }));
    }
    for t in 0..THREADS as u32 {
        defs.push(Definition::String { id: StringId(1 + t), text: format!("worker-{t}") });
        defs.push(Definition::Thread(ThreadDef {
            id: ThreadId(t),
            name: Some(StringId(1 + t)),
            os_id: u64::from(t),
        }));
    }
    // Each lock is created at its own site, so each is its own lock class.
    for l in 0..lock_count {
        defs.push(Definition::Site(SiteDef {
            id: SiteId(8 + l),
            file: StringId(0),
            line: 1000 + l,
            col: 9,
            function: None,
        }));
        defs.push(Definition::Lock(LockDef {
            id: LockId(l),
            kind: LockKind::Mutex,
            blocking: true,
            name: None,
            site: Some(SiteId(8 + l)),
            implementation: LockImplementation::HindsightStd,
            capacity: None,
        }));
    }
    out.writer().write_definitions(&defs)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seqs = vec![0u64; lock_count as usize];
    let mut held_by = vec![usize::MAX; lock_count as usize];
    let mut threads: Vec<SimThread> = (0..THREADS)
        .map(|_| SimThread {
            step: Step::TakeOuter,
            outer: LockId(0),
            inner: LockId(0),
            waiting: false,
        })
        .collect();
    let mut time = 0u64;
    // Past the requested count, threads finish what they hold and start nothing new, so the
    // trace ends with every lock released (a clean trace).
    let idle = |thread: &SimThread| matches!(thread.step, Step::TakeOuter) && !thread.waiting;
    while out.written() < events || !threads.iter().all(idle) {
        let t = (rng.next() % THREADS as u64) as usize;
        if out.written() >= events && idle(&threads[t]) {
            continue;
        }
        time += 1 + rng.next() % 4;
        let thread = &mut threads[t];
        let site = SiteId((rng.next() % 8) as u32);
        let kind = match thread.step {
            Step::TakeOuter | Step::TakeInner => {
                if !thread.waiting {
                    if let Step::TakeOuter = thread.step {
                        let first = 9 + (rng.next() % u64::from(lock_count - 18)) as u32;
                        thread.outer = LockId(first);
                    } else {
                        thread.inner = LockId(thread.outer.0 + 1 + (rng.next() % 8) as u32);
                        let below = LockId(thread.outer.0 - 1 - (rng.next() % 8) as u32);
                        let free = held_by[below.index()] == usize::MAX;
                        if inversions > 0 && rng.next().is_multiple_of(inversions) && free {
                            thread.inner = below;
                        }
                    }
                }
                let lock =
                    if let Step::TakeOuter = thread.step { thread.outer } else { thread.inner };
                if held_by[lock.index()] == usize::MAX {
                    held_by[lock.index()] = t;
                    seqs[lock.index()] += 1;
                    thread.waiting = false;
                    thread.step = if let Step::TakeOuter = thread.step {
                        Step::TakeInner
                    } else {
                        Step::ReleaseInner
                    };
                    EventKind::LockAcquired {
                        lock,
                        mode: LockMode::Exclusive,
                        site,
                        seq: NonZeroU64::new(seqs[lock.index()]),
                        via_try: false,
                    }
                } else if !thread.waiting {
                    thread.waiting = true;
                    EventKind::LockRequested { lock, mode: LockMode::Exclusive, site }
                } else {
                    continue;
                }
            }
            Step::ReleaseInner | Step::ReleaseOuter => {
                let lock =
                    if let Step::ReleaseInner = thread.step { thread.inner } else { thread.outer };
                held_by[lock.index()] = usize::MAX;
                seqs[lock.index()] += 1;
                thread.step = if let Step::ReleaseInner = thread.step {
                    Step::ReleaseOuter
                } else {
                    Step::TakeOuter
                };
                EventKind::LockReleased {
                    lock,
                    mode: LockMode::Exclusive,
                    seq: NonZeroU64::new(seqs[lock.index()]),
                    poisoned: false,
                }
            }
        };
        out.push(Event { time_ns: time, thread: ThreadId(t as u32), task: None, kind })?;
    }
    out.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(20_000_000);
    let setting = |name: &str, default: u64| {
        std::env::args()
            .skip(1)
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('=')?.replace('_', "").parse().ok())
            .unwrap_or(default)
    };
    let locks = u32::try_from(setting("locks", 1000))?.max(32);
    let shape = Shape { events, locks, inversions: setting("inversions", 0) };
    // A stage named on the command line (`read`, `state`, `lock-order`, `all`) runs alone,
    // for profiling one stage.
    let only = std::env::args().skip(1).find(|a| STAGES.contains(&a.as_str()));
    let runs = |stage: &str| only.as_deref().is_none_or(|only| only == stage);
    let path = std::env::temp_dir().join(format!("hindsight-bench-{}.trace", std::process::id()));
    let started = Instant::now();
    let written = generate(&path, shape)?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {written} events over {locks} locks, one nest in {} inverted ({:.1} \
         bytes/event) in {:.2?}; peak RSS so far {} KiB",
        shape.inversions,
        bytes as f64 / written as f64,
        started.elapsed(),
        peak_rss_kib().unwrap_or(0)
    );

    if runs("read") {
        read_stage(&path)?;
    }
    if runs("state") {
        state_stage(&path)?;
    }
    if runs("lock-order") {
        lock_order_stage(&path, written, shape)?;
    }
    if runs("all") {
        all_stage(&path, shape)?;
    }
    println!("peak RSS {} KiB", peak_rss_kib().unwrap_or(0));
    std::fs::remove_file(&path)?;
    Ok(())
}

/// Decoding alone.
fn read_stage(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (decoded, wall, cpu) = timed(|| -> Result<u64, Box<dyn std::error::Error>> {
        // As replay reads: every batch into one reused buffer.
        let mut reader = hindsight_recorder::format::TraceReader::open(path)?;
        let (mut decoded, mut events) = (0u64, Vec::new());
        while reader.next_into(&mut events).is_some() {
            decoded += events.len() as u64;
            events.clear();
        }
        Ok(decoded)
    });
    println!("reading alone:        {}", rate(decoded?, wall, cpu));
    Ok(())
}

/// Decoding, ordering and the state.
fn state_stage(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (replayed, wall, cpu) = timed(|| -> Result<u64, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[path])?;
        replay.run_to_end();
        Ok(replay.stats().events)
    });
    println!("+ replay (state):     {}", rate(replayed?, wall, cpu));
    Ok(())
}

/// Replay with the lock-order detector.
/// With inversions, the second reading of prediction is part of it.
fn lock_order_stage(
    path: &Path,
    written: u64,
    shape: Shape,
) -> Result<(), Box<dyn std::error::Error>> {
    let (result, wall, cpu) = timed(|| -> Result<_, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[path])?;
        let mut lock_order = LockOrder::new();
        replay.visit(&mut lock_order);
        lock_order.check_cycles(|| Replay::open(&[path]))?;
        let mut findings = Vec::new();
        let cx = Context { trace: replay.trace(), state: replay.state() };
        lock_order.finish(&cx, &mut findings);
        if shape.inversions == 0 {
            assert!(findings.is_empty(), "locks taken in ascending order form no cycle");
        }
        let checked = lock_order.predictions().map(|p| (p.patterns, p.unchecked, p.windows));
        Ok((replay, findings.len(), checked))
    });
    let (replay, findings, checked) = result?;
    let (patterns, unchecked, windows) = checked.unwrap_or_default();
    println!(
        "lock-order findings: {findings}; prediction: {patterns} patterns checked, {unchecked} \
         left unchecked, {windows} windows read"
    );
    let stats = replay.stats();
    assert_eq!(stats.events, written, "every event is replayed");
    assert_eq!(replay.state().conflicts(), 0, "replay order is valid");
    println!("+ lock-order (total): {}", rate(stats.events, wall, cpu));
    println!("at most {} events buffered", stats.max_buffered);
    Ok(())
}

/// Everything `analyze` does.
fn all_stage(path: &Path, shape: Shape) -> Result<(), Box<dyn std::error::Error>> {
    let (report, wall, cpu) = timed(|| -> Result<Report, Box<dyn std::error::Error>> {
        let options = AnalyzeOptions::default();
        Ok(hindsight_analyzer::analyze_paths(&[path], &options)?)
    });
    let report = report?;
    let titles: Vec<&str> = report.findings.iter().map(|f| f.title.as_str()).collect();
    if shape.inversions == 0 {
        assert!(titles.is_empty(), "a clean generated trace has no finding: {titles:#?}");
    }
    println!("all detectors:        {}", rate(report.trace.events, wall, cpu));
    Ok(())
}
