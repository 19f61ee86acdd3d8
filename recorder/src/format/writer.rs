//! Writing traces: the preamble, then chunks of definitions and event batches.

use super::current::{encode_events, encode_payload};
use super::defs::{Definition, Header};
use super::event::Event;
use super::frame::{chunk_crc, CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN};
use super::payload::Payload;
use std::io::{self, Write};

/// Events per batch chunk. Small enough that a chunk stays far below [`MAX_CHUNK_LEN`] and a
/// reader's memory stays bounded by one chunk.
pub const MAX_EVENTS_PER_CHUNK: usize = 8192;

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
}

impl<W: Write> TraceWriter<W> {
    /// Writes the preamble and the header chunk.
    pub fn new(mut out: W, header: &Header) -> io::Result<Self> {
        out.write_all(&MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut writer = TraceWriter { out, scratch: Vec::new(), bytes_written: 8 };
        writer.write_payload(&Payload::Header(header.clone()))?;
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
                self.write_payload(&Payload::Definitions(std::mem::take(&mut group)))?;
                group_bytes = 0;
            }
        }
        if !group.is_empty() {
            self.write_payload(&Payload::Definitions(group))?;
        }
        Ok(())
    }

    /// Writes events. Consecutive events of one thread go into one batch chunk (split every
    /// [`MAX_EVENTS_PER_CHUNK`] events); the order of `events` is kept.
    pub fn write_events(&mut self, events: &[Event]) -> io::Result<()> {
        for run in events.chunk_by(|a, b| a.thread == b.thread) {
            for part in run.chunks(MAX_EVENTS_PER_CHUNK) {
                self.write_chunk(|out| {
                    encode_events(part[0].thread, part, out);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Declares that every event recorded before `time_ns` has now been written, which lets a
    /// streaming replay order events without reading ahead to the end of the file.
    pub fn write_watermark(&mut self, time_ns: u64) -> io::Result<()> {
        self.write_payload(&Payload::Watermark { time_ns })
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

    fn write_payload(&mut self, payload: &Payload) -> io::Result<()> {
        self.write_chunk(|out| encode_payload(payload, out))
    }

    /// Writes one chunk whose payload `encode` appends to the buffer it is given.
    fn write_chunk(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> io::Result<()> {
        // The frame is built in one buffer and written with one call, so that a process killed
        // mid-write leaves at most one partial chunk at the tail.
        self.scratch.clear();
        self.scratch.extend_from_slice(&[0; CHUNK_HEADER_LEN]);
        encode(&mut self.scratch)
            .map_err(|e| io::Error::other(format!("encoding a trace chunk failed: {e}")))?;
        let payload_bytes = &self.scratch[CHUNK_HEADER_LEN..];
        let len = u32::try_from(payload_bytes.len())
            .ok()
            .filter(|len| *len <= MAX_CHUNK_LEN)
            .ok_or_else(|| io::Error::other("a trace chunk exceeded the maximum chunk size"))?;
        let len_bytes = len.to_le_bytes();
        let crc = chunk_crc(len_bytes, payload_bytes);
        self.scratch[..4].copy_from_slice(&len_bytes);
        self.scratch[4..CHUNK_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
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
