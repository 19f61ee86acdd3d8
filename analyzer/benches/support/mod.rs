//! What the analyzer's benchmarks share: a deterministic generator, a trace writer that
//! batches and watermarks like the recorder, and CPU-time and peak-memory measurement.

use hindsight_recorder::format::{Event, Header, TraceWriter};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

/// Events per batch, as the recorder's per-thread buffers hand them over.
pub const BATCH: usize = 4096;

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Writes generated events the way the recorder's writer does: each thread's events in
/// batches of [`BATCH`], and after every flush cycle (as many events as all threads' buffers
/// hold) every buffer written and a watermark that lags one cycle.
pub struct CycleWriter {
    writer: TraceWriter<BufWriter<File>>,
    buffers: Vec<Vec<Event>>,
    since_watermark: u64,
    cycle_start: u64,
    written: u64,
}

impl CycleWriter {
    /// A trace at `path` for `threads` threads; the caller writes the definitions next.
    pub fn create(path: &Path, program: &str, threads: usize) -> std::io::Result<CycleWriter> {
        let header = Header {
            program: program.into(),
            pid: 1,
            host: "bench".into(),
            start_unix_ns: 1_700_000_000_000_000_000,
            recorder_version: "bench".into(),
            clock: "monotonic".into(),
        };
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        Ok(CycleWriter {
            writer: TraceWriter::new(file, &header)?,
            buffers: (0..threads).map(|_| Vec::with_capacity(BATCH)).collect(),
            since_watermark: 0,
            cycle_start: 0,
            written: 0,
        })
    }

    /// The underlying writer, for definitions.
    pub fn writer(&mut self) -> &mut TraceWriter<BufWriter<File>> {
        &mut self.writer
    }

    /// Events pushed so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Adds one event of its thread.
    pub fn push(&mut self, event: Event) -> std::io::Result<()> {
        let buffer = &mut self.buffers[event.thread.index()];
        buffer.push(event);
        if buffer.len() == BATCH {
            self.writer.write_events(buffer)?;
            buffer.clear();
        }
        self.written += 1;
        self.since_watermark += 1;
        if self.since_watermark == (self.buffers.len() * BATCH) as u64 {
            self.write_buffers()?;
            // Like the recorder's writer: everything before the *previous* round's start.
            self.writer.write_watermark(self.cycle_start)?;
            self.cycle_start = event.time_ns + 1;
            self.since_watermark = 0;
        }
        Ok(())
    }

    /// Writes what is left and flushes; the number of events written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.write_buffers()?;
        self.writer.flush()?;
        Ok(self.written)
    }

    fn write_buffers(&mut self) -> std::io::Result<()> {
        for buffer in &mut self.buffers {
            self.writer.write_events(buffer)?;
            buffer.clear();
        }
        Ok(())
    }
}

/// CPU time this thread has run, in ns (Linux; `None` elsewhere): unlike wall time, it does
/// not count the time other processes of a busy machine took the core.
pub fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Runs `f`; its value, wall seconds and CPU seconds (NaN where CPU time is unknown).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_ns());
    let value = f();
    let cpu = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => f64::NAN,
    };
    (value, wall.elapsed().as_secs_f64(), cpu)
}

/// A throughput line: events, wall and CPU time, events per CPU second.
pub fn rate(events: u64, wall: f64, cpu: f64) -> String {
    let per_second = if cpu.is_nan() { wall } else { cpu };
    format!(
        "{events} events in {wall:.3} s wall ({cpu:.3} s CPU) = {:.1} M events/s",
        events as f64 / per_second / 1e6
    )
}

/// This process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
