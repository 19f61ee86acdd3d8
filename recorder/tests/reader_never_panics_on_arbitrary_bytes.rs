//! A fuzz test: arbitrary bytes, and valid traces mutated at random, never make the reader
//! panic. CI runs a few thousand inputs; `HINDSIGHT_FUZZ_CASES=1000000 cargo test --release
//! -p hindsight-recorder --test reader_never_panics_on_arbitrary_bytes` runs a long campaign.

mod support;

use hindsight_recorder::format::{FORMAT_VERSION, MAGIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{payloads, push_chunk, read_all, sample_trace};

fn cases() -> u32 {
    std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(3000)
}

/// An edit of a valid trace: overwrite, insert or delete bytes at some position.
#[derive(Debug, Clone)]
enum Edit {
    Overwrite(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Overwrite(at, byte)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..32).prop_map(|(at, n)| Edit::Delete(at, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        Edit::Overwrite(at, byte) => {
            let at = at % bytes.len();
            bytes[at] = *byte;
        }
        Edit::Insert(at, new) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Edit::Delete(at, n) => {
            let at = at % bytes.len();
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
    }
}

#[test]
fn mutated_traces_never_panic_the_reader() {
    let original = sample_trace();
    let mut runner =
        TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(edit(), 1..6), |edits| {
            let mut bytes = original.clone();
            for edit in &edits {
                apply(&mut bytes, edit);
            }
            let _ = read_all(&bytes);
            Ok(())
        })
        .unwrap();
}

/// Frames payloads into a trace with valid checksums, as a hostile writer would.
fn frame(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for payload in payloads {
        push_chunk(&mut bytes, payload);
    }
    bytes
}

/// Checksums stop most random damage before decoding; this target re-checksums mutated
/// payloads so that the decoder itself meets the damage.
#[test]
fn mutated_payloads_with_valid_checksums_never_panic_the_decoder() {
    let original = payloads(&sample_trace());
    let mut runner =
        TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner
        .run(&(any::<usize>(), prop::collection::vec(edit(), 1..6)), |(chunk, edits)| {
            let mut chunks = original.clone();
            let target = chunk % chunks.len();
            for edit in &edits {
                apply(&mut chunks[target], edit);
            }
            let _ = read_all(&frame(&chunks));
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_after_a_valid_preamble_never_panic_the_reader() {
    let mut runner =
        TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |tail| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&tail);
            let _ = read_all(&bytes);
            let _ = read_all(&tail);
            Ok(())
        })
        .unwrap();
}
