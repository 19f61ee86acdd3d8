//! Framing: the file preamble and self-delimiting, checksummed chunks.
//!
//! ```text
//! file  := MAGIC  version:u32le  chunk*          (the first chunk holds the header)
//! chunk := len:u32le  crc:u32le  payload[len]    crc = CRC-32 of len's 4 bytes + payload
//! ```
//!
//! The preamble is outside bincode so that a reader can name a wrong file or an unsupported
//! version before decoding anything.

/// The four bytes every trace starts with.
pub const MAGIC: [u8; 4] = *b"HSTR";

/// The format version this crate writes. Bump it whenever the encoding of any serialized type
/// changes, and re-record the committed traces (see `traces/README.md`).
pub const FORMAT_VERSION: u32 = 1;

/// The oldest format version this crate reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// The largest chunk payload a reader accepts; a longer length field is corruption, never an
/// allocation.
pub const MAX_CHUNK_LEN: u32 = 4 << 20;

/// Bytes of a chunk's length and checksum fields.
pub const CHUNK_HEADER_LEN: usize = 8;

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

/// The checksum of a chunk: CRC-32 over its length field and payload.
pub(crate) fn chunk_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
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
