//! Writing traces: the preamble, then chunks of definitions and event batches, framed as
//! `frame` describes (the header and definitions twice, event batches numbered per thread).

use super::current::{encode_events, encode_payload};
use super::defs::{Definition, Header};
use super::event::Event;
use super::frame::{
    chunk_crc, encode_round, ChunkKind, CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN,
    SYNC,
};
use super::ids::ThreadId;
use super::payload::Payload;
use rustc_hash::FxHashMap;
use std::io::{self, Write};

/// Events per batch chunk. Small enough that a chunk stays far below [`MAX_CHUNK_LEN`], that a
/// reader's memory stays bounded by one chunk, and that a damaged chunk loses little (about
/// 10 KiB of a lock-heavy trace); large enough that framing costs about 0.01 bytes per event.
pub const MAX_EVENTS_PER_CHUNK: usize = 2048;

/// The most threads whose batch numbers a writer keeps. Past it the numbers start again at 0
/// for every thread (a reader takes a number that goes back as no loss), so that a program
/// that runs a thread per request for days does not grow the map without bound.
const MAX_NUMBERED_THREADS: usize = 1 << 16;

/// Definitions are grouped into chunks of about this many encoded bytes.
const DEFINITIONS_CHUNK_BYTES: usize = 256 << 10;

/// The longest interned string written; longer ones are cut at a character boundary.
pub const MAX_STRING_LEN: usize = 4096;

/// Writes a trace to any [`Write`]. Nothing is buffered beyond one chunk: wrap a file in a
/// `BufWriter` and call [`flush`](Self::flush) to make what was written durable.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
    bytes_written: u64,
    /// Each thread's next batch number.
    batches: FxHashMap<ThreadId, u32>,
    /// The last batch number of each thread written since the previous watermark.
    since_watermark: FxHashMap<ThreadId, u32>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the preamble and the header chunk.
    pub fn new(mut out: W, header: &Header) -> io::Result<Self> {
        out.write_all(&MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut writer = TraceWriter {
            out,
            scratch: Vec::new(),
            bytes_written: 8,
            batches: FxHashMap::default(),
            since_watermark: FxHashMap::default(),
        };
        writer.write_twice(&Payload::Header(header.clone()))?;
        Ok(writer)
    }

    /// Writes definitions, in as many chunks as their size needs. Strings longer than
    /// [`MAX_STRING_LEN`] are shortened.
    pub fn write_definitions(&mut self, definitions: &[Definition]) -> io::Result<()> {
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for definition in definitions {
            let definition = shorten_strings(definition);
            group_bytes += approximate_size(&definition);
            group.push(definition);
            if group_bytes >= DEFINITIONS_CHUNK_BYTES {
                self.write_twice(&Payload::Definitions(std::mem::take(&mut group)))?;
                group_bytes = 0;
            }
        }
        if !group.is_empty() {
            self.write_twice(&Payload::Definitions(group))?;
        }
        Ok(())
    }

    /// Writes events. Consecutive events of one thread go into one batch chunk (split every
    /// [`MAX_EVENTS_PER_CHUNK`] events); the order of `events` is kept.
    pub fn write_events(&mut self, events: &[Event]) -> io::Result<()> {
        for run in events.chunk_by(|a, b| a.thread == b.thread) {
            for part in run.chunks(MAX_EVENTS_PER_CHUNK) {
                let thread = part[0].thread;
                if self.batches.len() >= MAX_NUMBERED_THREADS && !self.batches.contains_key(&thread)
                {
                    self.batches.clear();
                }
                let next = self.batches.entry(thread).or_insert(0);
                let kind = ChunkKind::Batch { thread: thread.0, batch: *next };
                self.since_watermark.insert(thread, *next);
                *next = next.wrapping_add(1);
                self.write_chunk(kind, |out| {
                    encode_events(thread, part, out);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Declares that every event recorded before `time_ns` has now been written, which lets a
    /// streaming replay order events without reading ahead to the end of the file.
    pub fn write_watermark(&mut self, time_ns: u64) -> io::Result<()> {
        let mut last: Vec<(u32, u32)> =
            self.since_watermark.drain().map(|(thread, batch)| (thread.0, batch)).collect();
        last.sort_unstable();
        self.begin_frame();
        encode_round(&last, &mut self.scratch);
        self.finish_frame(|out| encode_payload(&Payload::Watermark { time_ns }, out))
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Bytes written so far, preamble included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Gives back the underlying writer, unflushed.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes `payload` in a plain chunk and again in a copy chunk, so that it survives
    /// damage to either.
    fn write_twice(&mut self, payload: &Payload) -> io::Result<()> {
        self.write_payload(ChunkKind::Plain, payload)?;
        // The same frame, with the copy's one-byte kind in place of the plain one.
        let mut copy = Vec::with_capacity(1);
        ChunkKind::Copy.encode(&mut copy);
        let body = &mut self.scratch[CHUNK_HEADER_LEN..];
        body[..copy.len()].copy_from_slice(&copy);
        self.seal_and_write()
    }

    fn write_payload(&mut self, kind: ChunkKind, payload: &Payload) -> io::Result<()> {
        self.write_chunk(kind, |out| encode_payload(payload, out))
    }

    /// Writes one chunk of `kind` whose payload `encode` appends to the buffer it is given.
    fn write_chunk(
        &mut self,
        kind: ChunkKind,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> io::Result<()> {
        self.begin_frame();
        kind.encode(&mut self.scratch);
        self.finish_frame(encode)
    }

    /// Starts a frame in `scratch`: the marker, and room for the length and checksum. The
    /// frame is built in one buffer and written with one call, so that a process killed
    /// mid-write leaves at most one partial chunk at the tail.
    fn begin_frame(&mut self) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&SYNC);
        self.scratch.extend_from_slice(&[0; CHUNK_HEADER_LEN - SYNC.len()]);
    }

    /// Appends the payload that `encode` writes to the frame begun, and writes the frame.
    fn finish_frame(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> io::Result<()> {
        encode(&mut self.scratch)
            .map_err(|e| io::Error::other(format!("encoding a trace chunk failed: {e}")))?;
        self.seal_and_write()
    }

    /// Fills in the length and checksum of the frame in `scratch` and writes it.
    fn seal_and_write(&mut self) -> io::Result<()> {
        let body = &self.scratch[CHUNK_HEADER_LEN..];
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| *len <= MAX_CHUNK_LEN)
            .ok_or_else(|| io::Error::other("a trace chunk exceeded the maximum chunk size"))?;
        let len_bytes = len.to_le_bytes();
        let crc = chunk_crc(len_bytes, body);
        self.scratch[4..8].copy_from_slice(&len_bytes);
        self.scratch[8..CHUNK_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.scratch)?;
        self.bytes_written += self.scratch.len() as u64;
        Ok(())
    }
}

fn approximate_size(definition: &Definition) -> usize {
    match definition {
        Definition::String { text, .. } => text.len() + 8,
        _ => 24,
    }
}

fn shorten_strings(definition: &Definition) -> Definition {
    match definition {
        Definition::String { id, text } if text.len() > MAX_STRING_LEN => {
            let mut end = MAX_STRING_LEN;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Definition::String { id: *id, text: text[..end].to_owned() }
        }
        other => other.clone(),
    }
}
