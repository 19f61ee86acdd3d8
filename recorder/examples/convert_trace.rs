//! Rewrites a trace in the format version this build writes, chunk for chunk:
//!
//! ```text
//! cargo run -p hindsight-recorder --example convert_trace -- OLD.trace NEW.trace
//! ```
//!
//! Prints both sizes and the bytes per event of each, which is how a format's compactness is
//! compared on the same events.

use hindsight_recorder::format::{Item, TraceReader, TraceWriter};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to] = args.as_slice() else {
        return Err("usage: convert_trace OLD.trace NEW.trace".into());
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
    Ok(())
}
