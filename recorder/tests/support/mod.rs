//! Helpers shared by the format tests: a small multi-chunk sample trace and a way to read a
//! trace completely.

#![allow(dead_code)] // each test binary uses a part of this module

use hindsight_recorder::format::{Damage, Item, ReadError, Tail, TraceBuilder, TraceReader, SYNC};

/// Everything a reader gives for some bytes.
#[derive(Debug, PartialEq)]
pub struct ReadBack {
    pub items: Vec<Item>,
    pub tail: Tail,
    pub damage: Vec<Damage>,
}

/// Reads `bytes` to the end.
pub fn read_all(bytes: &[u8]) -> Result<ReadBack, ReadError> {
    let mut reader = TraceReader::from_reader(bytes, "test.trace")?;
    let items: Vec<Item> = reader.by_ref().collect();
    let tail = reader.tail().cloned().expect("a drained reader has a tail; this is a bug");
    Ok(ReadBack { items, tail, damage: reader.damage().to_vec() })
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

/// Bytes of a version 2 chunk header (marker, length, checksum).
const HEADER: usize = 12;

/// The chunks of a trace: `(start, end)` of each complete chunk's body (its kind byte and
/// payload), in order.
fn chunk_body_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut at = 8;
    while at + HEADER <= bytes.len() {
        assert_eq!(bytes[at..at + 4], SYNC, "a chunk starts with the marker");
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if at + HEADER + len > bytes.len() {
            break;
        }
        ranges.push((at + HEADER, at + HEADER + len));
        at += HEADER + len;
    }
    ranges
}

/// Offsets where chunks end (the first is the end of the header chunk).
pub fn chunk_ends(bytes: &[u8]) -> Vec<usize> {
    chunk_body_ranges(bytes).into_iter().map(|(_, end)| end).collect()
}

/// Whether each chunk is a copy of the one before it (kind byte 2).
pub fn chunk_is_copy(bytes: &[u8]) -> Vec<bool> {
    chunk_body_ranges(bytes).into_iter().map(|(start, _)| bytes[start] == 2).collect()
}

/// The payloads of a trace's chunks, header first (after the kind byte and, for event
/// batches, the thread and batch number; for watermarks, the threads' last batch numbers).
pub fn payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
    chunk_body_ranges(bytes)
        .into_iter()
        .map(|(start, end)| {
            let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            let prefix = match bytes[start] {
                1 => 9,
                3 => 5 + 8 * word(start + 1) as usize,
                _ => 1,
            };
            bytes[start + prefix..end].to_vec()
        })
        .collect()
}

/// Appends `payload` as a plain chunk with a valid checksum, as a writer (or a hostile one)
/// would.
pub fn push_chunk(bytes: &mut Vec<u8>, payload: &[u8]) {
    let mut body = vec![0u8];
    body.extend_from_slice(payload);
    let len = (body.len() as u32).to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(&body);
    bytes.extend_from_slice(&SYNC);
    bytes.extend_from_slice(&len);
    bytes.extend_from_slice(&hasher.finalize().to_le_bytes());
    bytes.extend_from_slice(&body);
}
