//! Helpers shared by the format tests: a small multi-chunk sample trace and a way to read a
//! trace completely.

#![allow(dead_code)] // each test binary uses a part of this module

use hindsight_recorder::format::{Item, ReadError, Tail, TraceBuilder, TraceReader};

/// Everything a reader gives for some bytes.
#[derive(Debug, PartialEq)]
pub struct ReadBack {
    pub items: Vec<Item>,
    pub tail: Tail,
}

/// Reads `bytes` to the end.
pub fn read_all(bytes: &[u8]) -> Result<ReadBack, ReadError> {
    let mut reader = TraceReader::from_reader(bytes, "test.trace")?;
    let items: Vec<Item> = reader.by_ref().collect();
    let tail = reader.tail().cloned().expect("a drained reader has a tail; this is a bug");
    Ok(ReadBack { items, tail })
}

/// A small trace of several chunks:
///
/// ```text
/// main:    spawn(worker) ─ lock(db) ─ write(x) ─ unlock(db) ─────────────── join(worker)
/// worker:                                          lock(db) ─ read(x) ─ unlock(db) ─ mark
/// ```
pub fn sample_trace() -> Vec<u8> {
    let mut b = TraceBuilder::new("sample");
    let main = b.thread("main");
    let worker = b.thread("worker");
    let db = b.mutex("db");
    let x = b.variable("x");
    let s1 = b.site("src/main.rs", 10, 5);
    let s2 = b.site("src/main.rs", 11, 9);
    b.on(main).spawn_thread(worker, Some(s1)).acquire(db, s1).write(x, s2).release(db);
    b.on(worker).start().acquire(db, s1).read(x, s2).release(db).mark("done").finish();
    b.on(main).join_thread(worker, Some(s2));
    b.build()
}

/// The chunks of a trace: `(start, end)` of each complete chunk's payload, in order.
fn chunk_payload_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        ranges.push((at + 8, at + 8 + len));
        at += 8 + len;
    }
    ranges
}

/// Offsets where chunks end (the first is the end of the header chunk).
pub fn chunk_ends(bytes: &[u8]) -> Vec<usize> {
    chunk_payload_ranges(bytes).into_iter().map(|(_, end)| end).collect()
}

/// The payloads of a trace's chunks, header first.
pub fn payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
    chunk_payload_ranges(bytes).into_iter().map(|(start, end)| bytes[start..end].to_vec()).collect()
}

/// Appends `payload` as a chunk with a valid checksum, as a writer (or a hostile one) would.
pub fn push_chunk(bytes: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    bytes.extend_from_slice(&len);
    bytes.extend_from_slice(&hasher.finalize().to_le_bytes());
    bytes.extend_from_slice(payload);
}
