//! Race detection throughput and peak memory on an access-heavy trace.
//!
//! Generates N events (default 20 million; `cargo bench -p hindsight-analyzer --bench races --
//! 40000000` for more; add `hb`, `shb` or `wcp` to pick the relation, `hb` by default) from 8 threads over 100,032 annotated variables and 64 locks, written
//! the way the recorder writes (see `support`). Variable `v` is guarded by lock `v % 64`: each
//! operation takes the lock, reads and writes two of its variables, releases it, then reads and
//! writes a variable private to its thread — three quarters of the events are accesses, and
//! none races. Then it replays the file through the data-race detector alone and prints events
//! per second of CPU time, and the peak resident memory (`VmHWM`), which must not grow with N.

mod support;

use hindsight_analyzer::causality::Relation;
use hindsight_analyzer::detect::{Context, DataRace, Detector};
use hindsight_analyzer::replay::Replay;
use hindsight_recorder::format::{
    Definition, Event, EventKind, LockDef, LockId, LockImplementation, LockKind, LockMode, SiteDef,
    SiteId, StringId, ThreadDef, ThreadId, VarDef, VarId,
};
use std::num::NonZeroU64;
use std::path::Path;
use support::{peak_rss_kib, rate, timed, CycleWriter, Rng};

const THREADS: u32 = 8;
const LOCKS: u32 = 64;
/// 100,032 variables: a multiple of [`LOCKS`], so that wrapping around keeps a variable's
/// partner under the same lock (with 100,000 the partners of the last variables would be
/// guarded by other locks, real races).
const VARS: u32 = 1563 * LOCKS;

fn definitions() -> Vec<Definition> {
    let mut defs = vec![
        Definition::String { id: StringId(0), text: "src/bench.rs".into() },
        Definition::String { id: StringId(1), text: "shared".into() },
        Definition::String { id: StringId(2), text: "private".into() },
    ];
    for line in 0..6 {
        let site =
            SiteDef { id: SiteId(line), file: StringId(0), line: line + 1, col: 1, function: None };
        defs.push(Definition::Site(site));
    }
    for t in 0..THREADS {
        defs.push(Definition::String { id: StringId(3 + t), text: format!("worker-{t}") });
        let name = Some(StringId(3 + t));
        defs.push(Definition::Thread(ThreadDef { id: ThreadId(t), name, os_id: u64::from(t) }));
    }
    for l in 0..LOCKS {
        let lock = LockDef {
            id: LockId(l),
            kind: LockKind::Mutex,
            blocking: true,
            name: None,
            site: None,
            implementation: LockImplementation::HindsightStd,
            capacity: None,
        };
        defs.push(Definition::Lock(lock));
    }
    for v in 0..VARS + THREADS {
        let name = if v < VARS { StringId(1) } else { StringId(2) };
        defs.push(Definition::Variable(VarDef { id: VarId(v), name, site: None }));
    }
    defs
}

fn generate(path: &Path, events: u64) -> std::io::Result<u64> {
    let mut out = CycleWriter::create(path, "races", THREADS as usize)?;
    out.writer().write_definitions(&definitions())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seqs = [0u64; LOCKS as usize];
    let mut time = 0u64;
    while out.written() < events {
        let thread = ThreadId((rng.next() % u64::from(THREADS)) as u32);
        let first = (rng.next() % u64::from(VARS)) as u32;
        let second = (first + LOCKS * (1 + (rng.next() % 8) as u32)) % VARS;
        let lock = LockId(first % LOCKS);
        let private = VarId(VARS + thread.0);
        let mut seq = || {
            seqs[lock.index()] += 1;
            NonZeroU64::new(seqs[lock.index()])
        };
        let mode = LockMode::Exclusive;
        let operation = [
            EventKind::LockAcquired { lock, mode, site: SiteId(0), seq: seq(), via_try: false },
            EventKind::Read { var: VarId(first), site: SiteId(1) },
            EventKind::Write { var: VarId(first), site: SiteId(2) },
            EventKind::Read { var: VarId(second), site: SiteId(1) },
            EventKind::Write { var: VarId(second), site: SiteId(2) },
            EventKind::LockReleased { lock, mode, seq: seq(), poisoned: false },
            EventKind::Read { var: private, site: SiteId(3) },
            EventKind::Write { var: private, site: SiteId(4) },
        ];
        for kind in operation {
            time += 1 + rng.next() % 4;
            out.push(Event { time_ns: time, thread, task: None, kind })?;
        }
    }
    out.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 =
        std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(20_000_000);
    let relation: Relation =
        std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(Relation::Hb);
    let path = std::env::temp_dir().join(format!("hindsight-races-{}.trace", std::process::id()));
    let (written, wall, _) = timed(|| generate(&path, events));
    let written = written?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {written} events ({:.1} bytes/event) in {wall:.2}s; peak RSS so far {} KiB",
        bytes as f64 / written as f64,
        peak_rss_kib().unwrap_or(0)
    );
    let (findings, wall, cpu) = timed(|| -> Result<usize, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[&path])?;
        let mut races = DataRace::with_relation(relation);
        replay.visit(&mut races);
        let mut findings = Vec::new();
        let cx = Context { trace: replay.trace(), state: replay.state() };
        races.finish(&cx, &mut findings);
        assert_eq!(replay.stats().events, written, "every event is replayed");
        Ok(findings.len())
    });
    assert_eq!(findings?, 0, "every shared access is under its lock: no race");
    println!("replay + data-race ({relation}): {}", rate(written, wall, cpu));
    println!("peak RSS {} KiB", peak_rss_kib().unwrap_or(0));
    std::fs::remove_file(&path)?;
    Ok(())
}
