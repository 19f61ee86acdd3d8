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
//! Then it reads the file three times and prints events per second of CPU time (this thread's,
//! so that other processes on a busy machine do not count) for: decoding alone (the recorder's
//! `TraceReader`), decoding + replay (ordering and state), and decoding + replay + the
//! lock-order detector; and the peak resident memory (`VmHWM`). Run it with 20M and 40M
//! events: the peak must not grow with the trace.

use hindsight_analyzer::detect::{Context, Detector, LockOrder};
use hindsight_analyzer::replay::Replay;
use hindsight_analyzer::{AnalyzeOptions, Report};
use hindsight_recorder::format::{
    Definition, Event, EventKind, Header, LockDef, LockId, LockKind, LockMode, SiteDef, SiteId,
    StringId, ThreadDef, ThreadId, TraceWriter,
};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

const THREADS: usize = 16;
const LOCKS: u32 = 1000;
const BATCH: usize = 4096;
const FLUSH_CYCLE: u64 = (THREADS * BATCH) as u64;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

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
    buffer: Vec<Event>,
}

fn generate(path: &Path, events: u64) -> std::io::Result<u64> {
    let header = Header {
        program: "bench".into(),
        pid: 1,
        host: "bench".into(),
        start_unix_ns: 1_700_000_000_000_000_000,
        recorder_version: "bench".into(),
        clock: "monotonic".into(),
    };
    let mut writer =
        TraceWriter::new(BufWriter::with_capacity(1 << 20, File::create(path)?), &header)?;
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
    for l in 0..LOCKS {
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
        }));
    }
    writer.write_definitions(&defs)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seqs = vec![0u64; LOCKS as usize];
    let mut held_by = vec![usize::MAX; LOCKS as usize];
    let mut threads: Vec<SimThread> = (0..THREADS)
        .map(|_| SimThread {
            step: Step::TakeOuter,
            outer: LockId(0),
            inner: LockId(0),
            waiting: false,
            buffer: Vec::with_capacity(BATCH),
        })
        .collect();
    let mut time = 0u64;
    let mut written = 0u64;
    let mut since_watermark = 0u64;
    let mut cycle_start = 0u64;
    // Past the requested count, threads finish what they hold and start nothing new, so the
    // trace ends with every lock released (a clean trace).
    let idle = |thread: &SimThread| matches!(thread.step, Step::TakeOuter) && !thread.waiting;
    while written < events || !threads.iter().all(idle) {
        let t = (rng.next() % THREADS as u64) as usize;
        if written >= events && idle(&threads[t]) {
            continue;
        }
        time += 1 + rng.next() % 4;
        let thread = &mut threads[t];
        let site = SiteId((rng.next() % 8) as u32);
        let kind = match thread.step {
            Step::TakeOuter | Step::TakeInner => {
                if !thread.waiting {
                    if let Step::TakeOuter = thread.step {
                        thread.outer = LockId((rng.next() % u64::from(LOCKS - 9)) as u32);
                    } else {
                        thread.inner = LockId(thread.outer.0 + 1 + (rng.next() % 8) as u32);
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
                        seq: Some(seqs[lock.index()]),
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
                    seq: Some(seqs[lock.index()]),
                    poisoned: false,
                }
            }
        };
        thread.buffer.push(Event { time_ns: time, thread: ThreadId(t as u32), task: None, kind });
        if thread.buffer.len() == BATCH {
            writer.write_events(&thread.buffer)?;
            thread.buffer.clear();
        }
        written += 1;
        since_watermark += 1;
        if since_watermark == FLUSH_CYCLE {
            for thread in &mut threads {
                writer.write_events(&thread.buffer)?;
                thread.buffer.clear();
            }
            // Like the recorder's writer: everything before the *previous* round's start.
            writer.write_watermark(cycle_start)?;
            cycle_start = time + 1;
            since_watermark = 0;
        }
    }
    for thread in &mut threads {
        writer.write_events(&thread.buffer)?;
        thread.buffer.clear();
    }
    writer.flush()?;
    Ok(written)
}

/// CPU time this thread has run, in ns (Linux; `None` elsewhere): unlike wall time, it does
/// not count the time other processes of a busy machine took the core.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Times `f`: (wall, CPU) seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_ns());
    let value = f();
    let cpu = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => f64::NAN,
    };
    (value, wall.elapsed().as_secs_f64(), cpu)
}

/// `N events in W s wall (C s CPU) = R M events per CPU-second`.
fn rate(events: u64, wall: f64, cpu: f64) -> String {
    let per_second = if cpu.is_nan() { wall } else { cpu };
    format!(
        "{events} events in {wall:.3} s wall ({cpu:.3} s CPU) = {:.1} M events/s",
        events as f64 / per_second / 1e6
    )
}

/// Peak resident memory of this process, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(20_000_000);
    let path = std::env::temp_dir().join(format!("hindsight-bench-{}.trace", std::process::id()));
    let started = Instant::now();
    let written = generate(&path, events)?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {written} events ({:.1} bytes/event) in {:.2?}; peak RSS so far {} KiB",
        bytes as f64 / written as f64,
        started.elapsed(),
        peak_rss_kib().unwrap_or(0)
    );

    let (decoded, wall, cpu) = timed(|| -> Result<u64, Box<dyn std::error::Error>> {
        let mut decoded = 0u64;
        for item in hindsight_recorder::format::TraceReader::open(&path)? {
            if let hindsight_recorder::format::Item::Events(events) = item {
                decoded += events.len() as u64;
            }
        }
        Ok(decoded)
    });
    println!("reading alone:        {}", rate(decoded?, wall, cpu));

    let (replayed, wall, cpu) = timed(|| -> Result<u64, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[&path])?;
        replay.run_to_end();
        Ok(replay.stats().events)
    });
    println!("+ replay (state):     {}", rate(replayed?, wall, cpu));

    let (replay, wall, cpu) = timed(|| -> Result<Replay, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[&path])?;
        let mut lock_order = LockOrder::new();
        replay.run(&mut [&mut lock_order as &mut dyn Detector]);
        let mut findings = Vec::new();
        let cx = Context { trace: replay.trace(), state: replay.state() };
        lock_order.finish(&cx, &mut findings);
        assert!(findings.is_empty(), "locks taken in ascending order form no cycle");
        Ok(replay)
    });
    let replay = replay?;
    let stats = replay.stats();
    assert_eq!(stats.events, written, "every event is replayed");
    assert_eq!(replay.state().conflicts(), 0, "replay order is valid");
    println!("+ lock-order (total): {}", rate(stats.events, wall, cpu));

    let (report, wall, cpu) = timed(|| -> Result<Report, Box<dyn std::error::Error>> {
        let options = AnalyzeOptions::default();
        Ok(hindsight_analyzer::analyze(Replay::open(&[&path])?, &options)?)
    });
    let report = report?;
    let titles: Vec<&str> = report.findings.iter().map(|f| f.title.as_str()).collect();
    assert!(titles.is_empty(), "a clean generated trace has no finding: {titles:#?}");
    println!("all detectors:        {}", rate(report.trace.events, wall, cpu));
    println!(
        "at most {} events buffered; peak RSS {} KiB",
        stats.max_buffered,
        peak_rss_kib().unwrap_or(0)
    );
    std::fs::remove_file(&path)?;
    Ok(())
}
