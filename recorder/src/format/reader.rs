//! Streaming trace reading that survives truncated and corrupt files.
//!
//! The reader holds one chunk at a time. It stops at the first chunk it cannot read and says
//! why in its [`Tail`]: a process killed mid-write leaves a truncated tail whose complete
//! chunks all read back; a flipped bit fails the chunk's checksum; a hostile length field is
//! refused before anything is allocated for it.

use super::current::{decode_events, Payload, SeqScratch};
use super::defs::{Definition, Header};
use super::event::Event;
use super::frame::{
    bincode_config, chunk_crc, describe_decode_error, CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC,
    MAX_CHUNK_LEN, OLDEST_READABLE_VERSION,
};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Why a trace could not be opened at all. Each message is one line that names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is empty.
    #[error("{path}: empty file, not a hindsight trace")]
    Empty {
        /// The file.
        path: String,
    },
    /// The file does not start with the trace magic number.
    #[error("{path}: not a hindsight trace (wrong magic number)")]
    NotATrace {
        /// The file.
        path: String,
    },
    /// The file was written by a newer hindsight.
    #[error(
        "{path}: trace format version {found} is newer than this hindsight reads \
         (up to {supported}); use a newer hindsight"
    )]
    TooNew {
        /// The file.
        path: String,
        /// Its format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file was written by a hindsight too old for this build to read.
    #[error(
        "{path}: trace format version {found} is older than this hindsight reads \
         (from {oldest})"
    )]
    TooOld {
        /// The file.
        path: String,
        /// Its format version.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
    },
    /// The header chunk is missing or unreadable.
    #[error("{path}: unreadable trace header: {reason}")]
    BadHeader {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// One unit of a trace, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Definitions of ids.
    Definitions(Vec<Definition>),
    /// Events of one thread, in its program order.
    Events(Vec<Event>),
    /// Every event recorded before `time_ns` has been read by now.
    Watermark {
        /// Trace time of the watermark.
        time_ns: u64,
    },
}

/// One unit of a trace, as [`TraceReader::next_into`] reads it: like an [`Item`], except that
/// the events of a batch go into the caller's buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// Definitions of ids.
    Definitions(Vec<Definition>),
    /// A batch of events of one thread, in its program order, was appended to the buffer.
    Events,
    /// Every event recorded before `time_ns` has been read by now.
    Watermark {
        /// Trace time of the watermark.
        time_ns: u64,
    },
}

/// How reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte was read.
    Complete,
    /// The file ends inside a chunk (the writer was killed or is still writing).
    Truncated {
        /// Bytes of the incomplete chunk.
        bytes: u64,
    },
    /// A chunk failed its checksum or could not be decoded; nothing after it was read.
    Corrupt {
        /// File offset of the bad chunk.
        offset: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
        /// What was wrong.
        reason: String,
    },
}

impl Tail {
    /// Bytes at the end of the file that could not be read.
    pub fn unread_bytes(&self) -> u64 {
        match self {
            Tail::Complete => 0,
            Tail::Truncated { bytes } | Tail::Corrupt { bytes, .. } => *bytes,
        }
    }
}

/// A streaming reader of one trace. Iterate it for [`Item`]s (or call
/// [`next_into`](Self::next_into), which reuses the caller's buffer for events); then
/// [`tail`](Self::tail) says whether the whole file was read.
#[derive(Debug)]
pub struct TraceReader<R> {
    input: R,
    path: String,
    version: u32,
    header: Header,
    offset: u64,
    chunk: Vec<u8>,
    seqs: SeqScratch,
    tail: Option<Tail>,
}

impl TraceReader<BufReader<File>> {
    /// Opens the trace at `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let file =
            File::open(path).map_err(|source| ReadError::Io { path: name.clone(), source })?;
        TraceReader::from_reader(BufReader::with_capacity(1 << 16, file), name)
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads the preamble and header from `input`; `path` names it in messages.
    pub fn from_reader(mut input: R, path: impl Into<String>) -> Result<Self, ReadError> {
        let path = path.into();
        let mut preamble = [0u8; 8];
        let n = read_up_to(&mut input, &mut preamble)
            .map_err(|source| ReadError::Io { path: path.clone(), source })?;
        if n == 0 {
            return Err(ReadError::Empty { path });
        }
        if n < 4 || preamble[..4] != MAGIC {
            return Err(ReadError::NotATrace { path });
        }
        if n < 8 {
            return Err(ReadError::BadHeader { path, reason: "file ends in the preamble".into() });
        }
        let version = u32::from_le_bytes([preamble[4], preamble[5], preamble[6], preamble[7]]);
        if version > FORMAT_VERSION {
            return Err(ReadError::TooNew { path, found: version, supported: FORMAT_VERSION });
        }
        if version < OLDEST_READABLE_VERSION {
            return Err(ReadError::TooOld {
                path,
                found: version,
                oldest: OLDEST_READABLE_VERSION,
            });
        }
        let mut reader = TraceReader {
            input,
            path,
            version,
            header: Header::default(),
            offset: 8,
            chunk: Vec::new(),
            seqs: SeqScratch::default(),
            tail: None,
        };
        match reader.next_payload() {
            Some(Payload::Header(header)) => reader.header = header,
            Some(_) => {
                return Err(ReadError::BadHeader {
                    path: reader.path,
                    reason: "the first chunk is not a header".into(),
                })
            }
            None => {
                let reason = match reader.tail {
                    Some(Tail::Corrupt { reason, .. }) => reason,
                    _ => "file ends before the header".into(),
                };
                return Err(ReadError::BadHeader { path: reader.path, reason });
            }
        }
        Ok(reader)
    }

    /// The trace's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The format version of the file.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// The name the reader was opened with (the path).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Bytes of complete chunks read so far, preamble included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How reading ended; `None` while items remain.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The next chunk's payload, or `None` at the end or at the first unreadable chunk.
    fn next_payload(&mut self) -> Option<Payload> {
        let consumed = self.next_chunk()?;
        self.decode_payload(consumed)
    }

    /// Reads the next chunk into `self.chunk` and checks its checksum; returns the bytes it
    /// takes in the file, or `None` (with the tail set) at the end or at an unreadable chunk.
    fn next_chunk(&mut self) -> Option<u64> {
        if self.tail.is_some() {
            return None;
        }
        let mut frame_header = [0u8; CHUNK_HEADER_LEN];
        let n = match read_up_to(&mut self.input, &mut frame_header) {
            Ok(n) => n,
            Err(e) => return self.stop_corrupt(0, format!("read error: {e}")),
        };
        if n == 0 {
            self.tail = Some(Tail::Complete);
            return None;
        }
        if n < CHUNK_HEADER_LEN {
            self.tail = Some(Tail::Truncated { bytes: n as u64 });
            return None;
        }
        let len_bytes = [frame_header[0], frame_header[1], frame_header[2], frame_header[3]];
        let len = u32::from_le_bytes(len_bytes);
        let crc = u32::from_le_bytes([
            frame_header[4],
            frame_header[5],
            frame_header[6],
            frame_header[7],
        ]);
        if len > MAX_CHUNK_LEN {
            return self.stop_corrupt(
                CHUNK_HEADER_LEN as u64,
                format!("chunk length {len} exceeds the maximum of {MAX_CHUNK_LEN}"),
            );
        }
        // Read into the buffer's spare room (`take` bounds it), rather than zeroing it first.
        self.chunk.clear();
        let n = match (&mut self.input).take(u64::from(len)).read_to_end(&mut self.chunk) {
            Ok(n) => n,
            Err(e) => {
                return self.stop_corrupt(CHUNK_HEADER_LEN as u64, format!("read error: {e}"))
            }
        };
        if n < len as usize {
            self.tail = Some(Tail::Truncated { bytes: (CHUNK_HEADER_LEN + n) as u64 });
            return None;
        }
        let consumed = (CHUNK_HEADER_LEN + n) as u64;
        if chunk_crc(len_bytes, &self.chunk) != crc {
            return self.stop_corrupt(consumed, "checksum mismatch".into());
        }
        Some(consumed)
    }

    /// Decodes the chunk read by [`next_chunk`](Self::next_chunk), which took `consumed`
    /// bytes of the file.
    fn decode_payload(&mut self, consumed: u64) -> Option<Payload> {
        match bincode::serde::decode_from_slice::<Payload, _>(&self.chunk, bincode_config()) {
            Ok((payload, used)) if used == self.chunk.len() => {
                self.offset += consumed;
                Some(payload)
            }
            Ok(_) => self.stop_corrupt(consumed, "chunk has trailing bytes".into()),
            Err(e) => self.stop_corrupt(
                consumed,
                format!("undecodable chunk: {}", describe_decode_error(&e)),
            ),
        }
    }

    /// Reads the next unit, appending a batch's events to `events` instead of returning
    /// them: a caller that reuses one buffer reads a trace without allocating per batch.
    /// Gives what iterating the reader gives, item for item; `None` at the end.
    pub fn next_into(&mut self, events: &mut Vec<Event>) -> Option<Unit> {
        loop {
            let consumed = self.next_chunk()?;
            // Event batches, nearly every chunk, are decoded straight from their bytes.
            if decode_events(&self.chunk, &mut self.seqs, events).is_some() {
                self.offset += consumed;
                return Some(Unit::Events);
            }
            return match self.decode_payload(consumed)? {
                // A repeated header (traces concatenated by hand) carries nothing new.
                Payload::Header(_) => continue,
                Payload::Definitions(definitions) => Some(Unit::Definitions(definitions)),
                Payload::Events(batch) => {
                    batch.decode_into(events);
                    Some(Unit::Events)
                }
                Payload::Watermark { time_ns } => Some(Unit::Watermark { time_ns }),
            };
        }
    }

    /// Ends reading at the chunk starting at `self.offset`, of which `consumed` bytes were
    /// read; counts the rest of the file without keeping it.
    fn stop_corrupt<T>(&mut self, consumed: u64, reason: String) -> Option<T> {
        let rest = io::copy(&mut self.input, &mut io::sink()).unwrap_or(0);
        self.tail = Some(Tail::Corrupt { offset: self.offset, bytes: consumed + rest, reason });
        None
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let mut events = Vec::new();
        Some(match self.next_into(&mut events)? {
            Unit::Definitions(definitions) => Item::Definitions(definitions),
            Unit::Events => Item::Events(events),
            Unit::Watermark { time_ns } => Item::Watermark { time_ns },
        })
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
