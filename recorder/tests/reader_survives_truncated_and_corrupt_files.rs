//! The reader recovers every complete chunk of a cut file, catches flipped bits and reads on
//! past them, and refuses hostile input with an error or a skipped region instead of a panic
//! or a large allocation.

mod support;

use hindsight_recorder::format::{
    Damage, Header, ReadError, Tail, ThreadId, TraceBuilder, TraceReader, TraceWriter, Unit,
    FORMAT_VERSION, MAGIC, OLDEST_READABLE_VERSION, SYNC,
};
use support::{chunk_ends, chunk_is_copy, push_chunk, read_all, sample_trace};

#[test]
fn the_sample_trace_has_several_chunks() {
    let bytes = sample_trace();
    let ends = chunk_ends(&bytes);
    assert!(ends.len() >= 4, "header, definitions and several event batches: {ends:?}");
    assert_eq!(*ends.last().unwrap(), bytes.len());
}

#[test]
fn truncation_at_every_offset_recovers_exactly_the_complete_chunks() {
    let bytes = sample_trace();
    let full = read_all(&bytes).unwrap();
    assert_eq!(full.tail, Tail::Complete);
    let ends = chunk_ends(&bytes);
    let copies = chunk_is_copy(&bytes);
    let header_end = ends[0];

    for cut in 0..=bytes.len() {
        let result = read_all(&bytes[..cut]);
        if cut == 0 {
            assert!(matches!(result, Err(ReadError::Empty { .. })), "cut {cut}: {result:?}");
            continue;
        }
        if cut < header_end {
            assert!(result.is_err(), "cut {cut} inside the preamble or header must not read");
            continue;
        }
        let read = result.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let complete_chunks = ends.iter().filter(|end| **end <= cut).count();
        // Items are every chunk after the header that is not a copy.
        let items = (1..complete_chunks).filter(|i| !copies[*i]).count();
        assert_eq!(read.items, full.items[..items], "cut {cut}");
        assert!(read.damage.is_empty(), "cut {cut}: a cut is no damage: {:?}", read.damage);
        let last_end = ends[complete_chunks - 1];
        let expected_tail = if cut == last_end {
            Tail::Complete
        } else {
            Tail::Truncated { bytes: (cut - last_end) as u64 }
        };
        assert_eq!(read.tail, expected_tail, "cut {cut}");
    }
}

#[test]
fn every_single_bit_flip_is_caught_and_costs_at_most_its_own_chunk() {
    let bytes = sample_trace();
    let clean = read_all(&bytes).unwrap();
    let ends = chunk_ends(&bytes);
    let copies = chunk_is_copy(&bytes);
    for bit in 0..bytes.len() * 8 {
        let at = bit / 8;
        let mut flipped = bytes.clone();
        flipped[at] ^= 1 << (bit % 8);
        let version = u32::from_le_bytes(flipped[4..8].try_into().unwrap());
        if (4..8).contains(&at) && (OLDEST_READABLE_VERSION..FORMAT_VERSION).contains(&version) {
            // Version 3 is one bit away from versions 2 and 1, and the preamble has no
            // checksum: such a flip makes a file of an older version, read by its rules.
            let _ = read_all(&flipped);
            continue;
        }
        let read = match read_all(&flipped) {
            Ok(read) => read,
            // Only the preamble is not written twice.
            Err(e) => {
                assert!(at < 8, "flip of bit {bit} (byte {at}) made the trace unreadable: {e}");
                continue;
            }
        };
        let chunk = ends.iter().position(|end| at < *end).unwrap();
        let start = if chunk == 0 { 8 } else { ends[chunk - 1] };
        if read.damage.is_empty() {
            // A last chunk whose length now points past the end looks cut short, as a killed
            // writer leaves it.
            assert_eq!(chunk, ends.len() - 1, "flip of bit {bit} went unnoticed");
            assert_eq!(read.tail, Tail::Truncated { bytes: (bytes.len() - start) as u64 });
            assert_eq!(read.items, clean.items[..clean.items.len() - 1], "bit {bit}");
            continue;
        }
        assert_eq!(read.damage.len(), 1, "flip of bit {bit}: {:?}", read.damage);
        assert_eq!(read.tail, Tail::Complete, "bit {bit}");
        let damage = &read.damage[0];
        assert_eq!((damage.offset, damage.bytes), (start as u64, (ends[chunk] - start) as u64));
        // The header, definitions and their copies are written twice: nothing is lost. An
        // event batch or watermark is lost alone.
        let twice = copies[chunk] || copies.get(chunk + 1).copied().unwrap_or(false);
        if twice {
            assert_eq!(read.items, clean.items, "bit {bit}");
            assert_eq!(damage.recovered_bytes, damage.bytes, "bit {bit}");
        } else {
            let lost = (1..chunk).filter(|i| !copies[*i]).count();
            let mut expected = clean.items.clone();
            expected.remove(lost);
            assert_eq!(read.items, expected, "bit {bit}");
        }
    }
}

/// A trace whose header is followed by one chunk with the given payload and a valid checksum,
/// as a hostile writer would make it.
fn trace_with_payload(payload: &[u8]) -> Vec<u8> {
    let mut bytes = sample_trace();
    bytes.truncate(chunk_ends(&bytes)[0]);
    push_chunk(&mut bytes, payload);
    bytes
}

fn assert_corrupt(bytes: &[u8], what: &str) {
    let read = read_all(bytes).unwrap();
    assert!(read.items.is_empty(), "{what}");
    assert_eq!(read.tail, Tail::Complete, "{what}");
    assert_eq!(read.damage.len(), 1, "{what}: {:?}", read.damage);
}

#[test]
fn a_huge_chunk_length_is_refused_without_allocating() {
    let mut bytes = sample_trace();
    bytes.truncate(chunk_ends(&bytes)[0]);
    bytes.extend_from_slice(&SYNC);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&[0; 64]);
    let read = read_all(&bytes).unwrap();
    assert_eq!(read.tail, Tail::Complete);
    // The header's copy (skipped, as the header was read) and then the bad chunk.
    let damage = &read.damage[0];
    assert!(damage.reason.contains("exceeds the maximum"), "{}", damage.reason);
    assert_eq!(damage.bytes, 76);
}

#[test]
fn hostile_lengths_inside_a_payload_give_an_error_not_an_allocation() {
    // Payload variant 1 (definitions) with a vector length of 2^60.
    let mut vec_len = vec![1u8, 0xFD];
    vec_len.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert_corrupt(&trace_with_payload(&vec_len), "vector of 2^60 definitions");

    // One string definition whose text claims 2^60 bytes.
    let mut string_len = vec![1u8, 1, 0, 0, 0xFD];
    string_len.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert_corrupt(&trace_with_payload(&string_len), "string of 2^60 bytes");

    // An event batch claiming 2^60 records.
    let mut records = vec![2u8, 0, 0, 0xFD];
    records.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert_corrupt(&trace_with_payload(&records), "batch of 2^60 records");
}

#[test]
fn bad_varints_and_unknown_variants_are_corruption() {
    assert_corrupt(&trace_with_payload(&[2, 0xFE, 1, 2]), "u128 marker in a u32 varint");
    assert_corrupt(&trace_with_payload(&[2, 0xFD, 1]), "varint cut short");
    assert_corrupt(&trace_with_payload(&[200]), "unknown payload variant");
    assert_corrupt(&trace_with_payload(&[]), "empty payload");
    assert_corrupt(&trace_with_payload(&[3, 5, 0]), "trailing bytes after a watermark");
}

#[test]
fn wrong_magic_future_version_and_empty_files_are_named_errors() {
    let err = read_all(b"").unwrap_err();
    assert!(matches!(err, ReadError::Empty { .. }));
    assert_eq!(err.to_string(), "test.trace: empty file, not a hindsight trace");

    let err = read_all(b"GIF89a\x01\x02\x03\x04").unwrap_err();
    assert_eq!(err.to_string(), "test.trace: not a hindsight trace (wrong magic number)");

    let mut future = sample_trace();
    future[4..8].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = read_all(&future).unwrap_err();
    assert!(matches!(err, ReadError::TooNew { found, .. } if found == FORMAT_VERSION + 1));
    assert!(err.to_string().starts_with("test.trace: trace format version"), "{err}");
    assert!(!err.to_string().contains('\n'));

    let mut ancient = sample_trace();
    ancient[4..8].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(read_all(&ancient).unwrap_err(), ReadError::TooOld { found: 0, .. }));

    let mut no_header = MAGIC.to_vec();
    no_header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    assert!(matches!(read_all(&no_header).unwrap_err(), ReadError::BadHeader { .. }));
}

/// A builder where `main` and then `worker` take and release `db` (then `main` again, if
/// `main_again`); and `main`.
fn two_threads_taking_db(main_again: bool) -> (TraceBuilder, ThreadId) {
    let mut b = TraceBuilder::new("holes");
    // The batches are all these tests count: no clean end after them.
    b.end_mid_flight();
    let main = b.thread("main");
    let worker = b.thread("worker");
    let db = b.mutex("db");
    let site = b.site("src/main.rs", 1, 1);
    b.on(main).acquire(db, site).release(db);
    b.on(worker).acquire(db, site).release(db);
    if main_again {
        b.on(main).acquire(db, site).release(db);
    }
    (b, main)
}

/// Flips a byte in the payload of the first event batch; reads the trace: its units, the
/// events read, and the damage.
fn read_with_first_batch_damaged(mut bytes: Vec<u8>) -> (Vec<Unit>, usize, Vec<Damage>) {
    let ends = chunk_ends(&bytes);
    let first_batch = (1..ends.len()).find(|i| bytes[ends[*i - 1] + 12] == 1).unwrap();
    bytes[ends[first_batch] - 1] ^= 0x01;
    let mut reader = TraceReader::from_reader(&bytes[..], "holes.trace").unwrap();
    let (mut events, mut units) = (Vec::new(), Vec::new());
    while let Some(unit) = reader.next_into(&mut events) {
        units.push(unit);
    }
    (units, events.len(), reader.damage().to_vec())
}

fn losses(units: &[Unit]) -> Vec<&Unit> {
    units.iter().filter(|u| matches!(u, Unit::Lost { .. })).collect()
}

/// ```text
/// main:   lock(db) ─ unlock(db)  │  lock(db) ─ unlock(db)
/// worker:                        │                        lock(db) ─ unlock(db)
///         └ batch 0 of main, damaged
/// ```
#[test]
fn a_hole_in_a_threads_batch_numbers_names_the_thread_that_lost_events() {
    let (b, main) = two_threads_taking_db(true);
    let (units, events, damage) = read_with_first_batch_damaged(b.build());
    assert_eq!(losses(&units), vec![&Unit::Lost { thread: main, batches: 1 }]);
    assert_eq!(units.iter().filter(|u| **u == Unit::Events).count(), 2);
    assert_eq!(events, 4, "the worker's and main's second batch");
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0].threads, vec![main]);
    // An estimate: the region's bytes at the file's bytes per event (the batches are alike).
    assert!((1..=3).contains(&damage[0].events), "one batch of two events: {damage:?}");
}

/// ```text
/// main:   lock(db) ─ unlock(db)                          │ watermark: main's last batch is 0,
/// worker:                        lock(db) ─ unlock(db)   │ worker's is 0
///         └ main's only batch, damaged
/// ```
/// No later batch of `main` shows the hole: the watermark's list of last batches does.
#[test]
fn a_threads_lost_last_batch_is_named_by_the_next_watermark() {
    let (b, main) = two_threads_taking_db(false);
    let mut writer = TraceWriter::new(Vec::new(), &Header::default()).unwrap();
    writer.write_definitions(b.definitions()).unwrap();
    writer.write_events(b.events()).unwrap();
    writer.write_watermark(b.now()).unwrap();
    let (units, events, damage) = read_with_first_batch_damaged(writer.into_inner());
    assert_eq!(events, 2, "the worker's batch");
    assert_eq!(losses(&units), vec![&Unit::Lost { thread: main, batches: 1 }]);
    assert!(matches!(units.last(), Some(Unit::Watermark { .. })), "{units:?}");
    assert_eq!(damage[0].threads, vec![main]);
}
