//! STD text trace reading: parsing throughput, and the replay's buffering and peak memory.
//!
//! Generates N events (default 2 million; `cargo bench -p hindsight-analyzer --bench
//! std_parse -- 20000000` for more) of RAPID STD text in the shape of a real program's trace:
//! `T0` forks 8 workers, each worker repeatedly takes one of 32 locks, reads and writes two of
//! the 20,000 variables that lock guards, releases it, then reads and writes a variable of its
//! own; the workers' lines interleave at random; `T0` joins them all at the end. LOCs are
//! program locations, a few hundred of them.
//!
//! Then it prints, per CPU second: parsing alone (every line into events, as `analyze`,
//! `info` and `convert` read them), and replay of the file in causal order (parsing included),
//! with the most events the replay held at once and the peak resident memory (`VmHWM`), both
//! of which must not grow with N. `--keep PATH` writes the trace to PATH and keeps it (for
//! measuring `hindsight analyze PATH` under `/usr/bin/time -v`).

// Only the measuring half of the support module is used here.
#[allow(dead_code)]
mod support;

use hindsight_analyzer::rapid::StdReader;
use hindsight_analyzer::replay::Replay;
use hindsight_recorder::format::Unit;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use support::{peak_rss_kib, rate, timed, Rng};

const WORKERS: u64 = 8;
const LOCKS: u64 = 32;
const VARS: u64 = 20_000;

/// Writes `events` lines of STD text to `path`.
fn generate(path: &Path, events: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng(0x5eed_5717);
    let mut written = 0;
    for worker in 1..=WORKERS {
        writeln!(out, "T0|fork(T{worker})|{}", 10 + worker)?;
        written += 1;
    }
    // Each worker's next step in its operation: lock, read, write, read, write, unlock,
    // private read, private write.
    let mut step = [0u64; WORKERS as usize];
    let mut current = [(0u64, 0u64, 0u64); WORKERS as usize];
    let body = events.saturating_sub(WORKERS);
    // Random workers move on, until the last operations are finished (every lock taken is
    // released before the joins).
    while written < body || step.iter().any(|&s| s != 0) {
        let worker = if written < body {
            (rng.next() % WORKERS) as usize
        } else {
            step.iter().position(|&s| s != 0).unwrap_or(0)
        };
        let t = worker as u64 + 1;
        if step[worker] == 0 {
            // A lock no other worker holds (between its steps 1 and 5): the trace is one
            // that really ran.
            let held = |lock: u64| {
                (0..WORKERS as usize).any(|w| (1..=5).contains(&step[w]) && current[w].0 == lock)
            };
            let lock = loop {
                let lock = rng.next() % LOCKS;
                if !held(lock) {
                    break lock;
                }
            };
            let a = lock + LOCKS * (rng.next() % (VARS / LOCKS));
            let b = lock + LOCKS * (rng.next() % (VARS / LOCKS));
            current[worker] = (lock, a, b);
        }
        let (lock, a, b) = current[worker];
        let loc = 100 + 10 * step[worker] + lock % 7;
        match step[worker] {
            0 => writeln!(out, "T{t}|acq(l{lock})|{loc}")?,
            1 => writeln!(out, "T{t}|r(v{a})|{loc}")?,
            2 => writeln!(out, "T{t}|w(v{a})|{loc}")?,
            3 => writeln!(out, "T{t}|r(v{b})|{loc}")?,
            4 => writeln!(out, "T{t}|w(v{b})|{loc}")?,
            5 => writeln!(out, "T{t}|rel(l{lock})|{loc}")?,
            6 => writeln!(out, "T{t}|r(own{t})|{loc}")?,
            _ => writeln!(out, "T{t}|w(own{t})|{loc}")?,
        }
        step[worker] = (step[worker] + 1) % 8;
        written += 1;
    }
    for worker in 1..=WORKERS {
        writeln!(out, "T0|join(T{worker})|{}", 900 + worker)?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}

/// Parses the whole file through one reused buffer, as replay reads it; the number of events.
fn parse(path: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let file = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut reader = StdReader::new(file, path.display().to_string());
    let (mut parsed, mut events) = (0, Vec::new());
    while let Some(unit) = reader.next_into(&mut events) {
        if let Unit::Events = unit? {
            parsed += events.len() as u64;
            events.clear();
        }
    }
    Ok(parsed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(2_000_000);
    let keep = args
        .iter()
        .position(|arg| arg == "--keep")
        .map(|i| PathBuf::from(args.get(i + 1).map_or("hindsight-bench.std", String::as_str)));
    let path = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("hindsight-std-{}.std", std::process::id()))
    });
    let (written, wall, _) = timed(|| generate(&path, events));
    let written = written?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {written} STD events ({:.1} bytes/line) in {wall:.2}s",
        bytes as f64 / written as f64
    );
    if keep.is_some() {
        println!("kept {}", path.display());
        return Ok(());
    }
    let (parsed, wall, cpu) = timed(|| parse(&path));
    assert_eq!(parsed?, written, "every line is an event");
    println!("parse:                {}", rate(written, wall, cpu));
    let (buffered, wall, cpu) = timed(|| -> Result<usize, Box<dyn std::error::Error>> {
        let mut replay = Replay::open(&[&path])?;
        replay.run_to_end();
        if let Some(error) = replay.take_error() {
            return Err(error.into());
        }
        assert_eq!(replay.stats().events, written, "every event is replayed");
        Ok(replay.stats().max_buffered)
    });
    let buffered = buffered?;
    println!("parse + replay:       {}", rate(written, wall, cpu));
    println!("most events buffered: {buffered}");
    println!("peak RSS {} KiB", peak_rss_kib().unwrap_or(0));
    std::fs::remove_file(&path)?;
    Ok(())
}
