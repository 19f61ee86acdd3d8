//! Rewrites a trace in the format version this build writes, chunk for chunk:
//!
//! ```text
//! cargo run -p hindsight-recorder --example convert_trace -- OLD.trace NEW.trace
//! cargo run -p hindsight-recorder --example convert_trace -- --decode FILE.trace
//! ```
//!
//! The second form only decodes the file (twenty times), for a profiler or `perf stat`, whose
//! instruction counts compare decoders better than times on a busy machine.
//!
//! Prints both sizes and the bytes per event of each, which is how a format's compactness is
//! compared on the same events; and how fast each file decodes (the best of twenty reads, into
//! one reused buffer as replay reads, in this thread's CPU time where Linux gives it, so that
//! other processes of a busy machine do not count), which compares the versions' decoders.

use hindsight_recorder::format::{Item, TraceReader, TraceWriter};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

/// Nanoseconds this thread has run (Linux), else since an arbitrary start.
fn now_ns(start: Instant) -> u64 {
    let cpu = std::fs::read_to_string("/proc/thread-self/schedstat").ok();
    match cpu.and_then(|stat| stat.split_whitespace().next()?.parse().ok()) {
        Some(ns) => ns,
        None => start.elapsed().as_nanos() as u64,
    }
}

/// The fastest of twenty whole reads of `path`, in millions of events per second.
fn decode_rate(path: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let origin = Instant::now();
    let mut best = u64::MAX;
    let mut events = Vec::new();
    let mut decoded = 0;
    for _ in 0..20 {
        let start = now_ns(origin);
        let mut reader = TraceReader::from_reader(bytes.as_slice(), path)?;
        decoded = 0;
        while reader.next_into(&mut events).is_some() {
            decoded += events.len();
            events.clear();
        }
        best = best.min(now_ns(origin) - start);
    }
    Ok(decoded as f64 / best.max(1) as f64 * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice() {
        if flag == "--decode" {
            println!("{path}: {:.0} M events/s", decode_rate(path)?);
            return Ok(());
        }
    }
    let [from, to] = args.as_slice() else {
        return Err("usage: convert_trace OLD.trace NEW.trace | --decode FILE.trace".into());
    };
    let mut reader = TraceReader::open(Path::new(from))?;
    let out = BufWriter::new(File::create(to)?);
    let mut writer = TraceWriter::new(out, reader.header())?;
    let mut events = 0u64;
    for item in &mut reader {
        match item {
            Item::Definitions(definitions) => writer.write_definitions(&definitions)?,
            Item::Events(batch) => {
                events += batch.len() as u64;
                writer.write_events(&batch)?;
            }
            Item::Watermark { time_ns } => writer.write_watermark(time_ns)?,
        }
    }
    writer.flush()?;
    if let Some(tail) = reader.tail().filter(|tail| tail.unread_bytes() > 0) {
        eprintln!("{from}: stopped early: {tail:?}");
    }
    let (old, new) = (std::fs::metadata(from)?.len(), writer.bytes_written());
    let per_event = |bytes: u64| bytes as f64 / events.max(1) as f64;
    println!(
        "{events} events: v{} {old} B ({:.2} B/event) -> v{} {new} B ({:.2} B/event)",
        reader.format_version(),
        per_event(old),
        hindsight_recorder::format::FORMAT_VERSION,
        per_event(new),
    );
    println!(
        "decoding: {:.0} M events/s -> {:.0} M events/s",
        decode_rate(from)?,
        decode_rate(to)?
    );
    Ok(())
}
