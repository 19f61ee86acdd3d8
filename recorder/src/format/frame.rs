//! Framing: the file preamble and self-delimiting, checksummed chunks that a reader can find
//! again after damage.
//!
//! ```text
//! file     := MAGIC  version:u32le  chunk*       (the first chunk holds the header)
//!
//! versions 2 to 4 (3 and 4 add event records, see `v2`, not framing):
//! chunk    := SYNC  len:u32le  crc:u32le  body[len]      crc = CRC-32 of len's 4 bytes + body
//! body     := kind:u8  [thread:u32le  batch:u32le | count:u32le (thread:u32le batch:u32le)*]
//!             payload
//!             kind: PLAIN (header, definitions), BATCH (event batch: its thread and batch
//!             number), COPY (the previous chunk again), ROUND (a watermark, with the last
//!             batch number of each thread written since the previous one)
//!
//! version 1:
//! chunk    := len:u32le  crc:u32le  payload[len]  crc = CRC-32 of len's 4 bytes + payload
//! ```
//!
//! The preamble is outside bincode so that a reader can name a wrong file or an unsupported
//! version before decoding anything.
//!
//! Version 2 adds three things to version 1's chunk, each for reading past damage:
//!
//! - **`SYNC`**, four bytes that start every chunk: after a chunk that fails its checksum, the
//!   reader scans for the next `SYNC` whose length and checksum hold, and goes on from there.
//!   (A version 1 file is scanned for a length whose checksum holds, which is slower.)
//! - **The batch number** of an event chunk: each thread's batches are numbered 0, 1, 2, ...
//!   in the order they are written, so a hole in a thread's numbers names the thread whose
//!   events a skipped chunk held. A watermark lists the last number of each thread written
//!   since the previous watermark, so that a thread's last batch, which no later batch
//!   follows, is missed too.
//! - **Copies**: the header and every definitions chunk are written twice, the second time as
//!   a `COPY` chunk, which a reader skips when it read the first and reads when the first was
//!   damaged; so events after a damaged definitions chunk still read with their names. This
//!   costs the size of the definitions once more. Measured with the rest of the framing
//!   (written again from version 1): `incident_hang.trace` (2420 events) grows by 5.8%
//!   (0.36 bytes per event, most of it the copies), `ordered_hierarchy.trace` (686 343
//!   events) by 0.4% (0.02 bytes per event).

/// The four bytes every trace starts with.
pub const MAGIC: [u8; 4] = *b"HSTR";

/// The format version this crate writes. Bump it whenever the encoding of any serialized type
/// changes, and re-record the committed traces (see `traces/README.md`).
pub const FORMAT_VERSION: u32 = 4;

/// The oldest format version this crate reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// The largest chunk body a reader accepts; a longer length field is corruption, never an
/// allocation.
pub const MAX_CHUNK_LEN: u32 = 4 << 20;

/// The four bytes that start every chunk of a version 2 trace. Chosen to be rare in payloads
/// (bytes above 127 that a varint of a small number never holds, and no ASCII).
pub const SYNC: [u8; 4] = [0xE5, 0x9C, 0xF1, 0xA7];

/// Bytes of a chunk's fixed header in a version 2 trace: sync marker, length, checksum.
pub const CHUNK_HEADER_LEN: usize = 12;

/// Bytes of a chunk's header in a version 1 trace: length and checksum.
pub(crate) const V1_CHUNK_HEADER_LEN: usize = 8;

/// The most memory bincode may claim while decoding one chunk. Decoded events are larger than
/// their varint encoding, hence the factor; a hostile length prefix inside a payload fails
/// against this limit instead of allocating.
pub(crate) const DECODE_LIMIT: usize = 16 * MAX_CHUNK_LEN as usize;

/// The bincode configuration of every payload.
pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// What went wrong decoding a payload, in words for people: bincode's own messages are its
/// enum variants' debug forms (`LimitExceeded`, `UnexpectedVariant { .. }`).
pub(crate) fn describe_decode_error(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { .. } => "a record runs past the end of its chunk".into(),
        E::LimitExceeded | E::OutsideUsizeRange(_) => {
            "a length in the chunk is larger than any real trace's".into()
        }
        E::UnexpectedVariant { found, .. } => format!("unknown record type {found}"),
        E::Utf8 { .. } | E::InvalidCharEncoding(_) => "a name is not valid UTF-8".into(),
        E::OtherString(message) => message.clone(),
        E::Other(message) => (*message).into(),
        _ => "a value in the chunk is out of range".into(),
    }
}

/// The checksum of a chunk: CRC-32 over its length field and body.
pub(crate) fn chunk_crc(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(body);
    hasher.finalize()
}

/// What a version 2 chunk holds, its body's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    /// A payload that is not an event batch: the header, definitions, a watermark.
    Plain,
    /// An event batch, with its thread and batch number before the payload.
    Batch {
        /// The raw id of the batch's thread.
        thread: u32,
        /// The thread's batch number, counting from 0.
        batch: u32,
    },
    /// The same payload as the chunk before it (the header, definitions).
    Copy,
    /// A watermark, after `count` pairs of a thread's raw id and its last batch number
    /// written since the previous watermark.
    Round {
        /// How many pairs.
        count: u32,
    },
}

/// Body tag of [`ChunkKind::Plain`].
const PLAIN: u8 = 0;
/// Body tag of [`ChunkKind::Batch`].
const BATCH: u8 = 1;
/// Body tag of [`ChunkKind::Copy`].
const COPY: u8 = 2;
/// Body tag of [`ChunkKind::Round`].
const ROUND: u8 = 3;

/// Appends the prefix of a [`ChunkKind::Round`] chunk listing `last_batches` (thread, last
/// batch number).
pub(crate) fn encode_round(last_batches: &[(u32, u32)], out: &mut Vec<u8>) {
    out.push(ROUND);
    out.extend_from_slice(&(last_batches.len() as u32).to_le_bytes());
    for (thread, batch) in last_batches {
        out.extend_from_slice(&thread.to_le_bytes());
        out.extend_from_slice(&batch.to_le_bytes());
    }
}

/// The `i`th (thread, last batch number) pair of a [`ChunkKind::Round`] chunk's body, which
/// [`ChunkKind::decode`] checked to hold them all.
pub(crate) fn round_entry(body: &[u8], i: usize) -> (u32, u32) {
    let word = |at: usize| {
        u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes; this is a bug"))
    };
    (word(5 + 8 * i), word(9 + 8 * i))
}

impl ChunkKind {
    /// Appends the body prefix that says this kind (a round's with no pairs: a writer lists
    /// them with [`encode_round`]).
    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        match self {
            ChunkKind::Plain => out.push(PLAIN),
            ChunkKind::Copy => out.push(COPY),
            ChunkKind::Round { .. } => encode_round(&[], out),
            ChunkKind::Batch { thread, batch } => {
                out.push(BATCH);
                out.extend_from_slice(&thread.to_le_bytes());
                out.extend_from_slice(&batch.to_le_bytes());
            }
        }
    }

    /// Reads the kind from the start of a body; the kind and the bytes of the prefix, or
    /// `None` if the body does not start with a valid prefix.
    pub(crate) fn decode(body: &[u8]) -> Option<(ChunkKind, usize)> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?))
        };
        match *body.first()? {
            PLAIN => Some((ChunkKind::Plain, 1)),
            COPY => Some((ChunkKind::Copy, 1)),
            BATCH => Some((ChunkKind::Batch { thread: word(1)?, batch: word(5)? }, 9)),
            ROUND => {
                let count = word(1)?;
                let prefix = usize::try_from(count).ok()?.checked_mul(8)?.checked_add(5)?;
                (prefix <= body.len()).then_some((ChunkKind::Round { count }, prefix))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_error(bytes: &[u8]) -> String {
        let error = bincode::serde::decode_from_slice::<(u8, String), _>(bytes, bincode_config())
            .expect_err("undecodable");
        describe_decode_error(&error)
    }

    #[test]
    fn decode_errors_are_worded_for_people_not_named_by_variant() {
        // A string length of 2^40 bytes: past the decoder's limit.
        let huge = [&[7u8, 0xFD][..], &(1u64 << 40).to_le_bytes()].concat();
        assert_eq!(decode_error(&huge), "a length in the chunk is larger than any real trace's");
        assert_eq!(decode_error(&[7, 5, b'a']), "a record runs past the end of its chunk");
        assert_eq!(decode_error(&[7, 1, 0xFF]), "a name is not valid UTF-8");
    }
}
