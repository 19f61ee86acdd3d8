//! What a chunk holds, whatever the version that encoded it, and the dispatch from a file's
//! format version to the module that decodes its payloads.

use super::defs::{Definition, Header};
use super::event::Event;
use super::{v1, v2};

/// A decoded chunk payload. The events of a batch go into the caller's buffer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// The trace header; always the first chunk.
    Header(Header),
    /// Definitions of ids used by later chunks.
    Definitions(Vec<Definition>),
    /// Events of one thread (appended to the caller's buffer).
    Events,
    /// Every event recorded before `time_ns` has been written (see the ordering docs).
    Watermark {
        /// Trace time of the watermark.
        time_ns: u64,
    },
}

/// Decodes the payloads of one file, by its format version, keeping the scratch state that
/// lets event batches decode without allocating.
#[derive(Debug)]
pub(crate) enum PayloadDecoder {
    /// Version 1.
    V1(v1::SeqScratch),
    /// Versions 2 to 4 (see `v2`).
    V2(v2::Scratch),
}

impl PayloadDecoder {
    /// The decoder of `version`, which the caller has checked is readable.
    pub(crate) fn new(version: u32) -> Self {
        match version {
            1 => PayloadDecoder::V1(v1::SeqScratch::default()),
            _ => PayloadDecoder::V2(v2::Scratch::for_version(version)),
        }
    }

    /// Decodes `bytes`, appending a batch's events to `events`; on failure says what is
    /// wrong and leaves `events` as it was.
    pub(crate) fn decode(
        &mut self,
        bytes: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<Payload, String> {
        match self {
            PayloadDecoder::V1(seqs) => v1::decode_payload(bytes, seqs, events),
            PayloadDecoder::V2(scratch) => {
                // Event batches, nearly every chunk, take the first test.
                if v2::decode_events(bytes, scratch, events).is_some() {
                    return Ok(Payload::Events);
                }
                v2::decode_payload(bytes)
            }
        }
    }
}
