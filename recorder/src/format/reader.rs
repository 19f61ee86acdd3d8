//! Streaming trace reading that survives truncated and damaged files.
//!
//! The reader holds about one chunk at a time. A chunk it cannot read (a flipped bit fails its
//! checksum, a length field points nowhere) is skipped: the reader scans on for the next chunk
//! whose marker, length and checksum hold, goes on from there, and records the bytes it
//! skipped as a [`Damage`] region. A hole in a thread's batch numbers after a skip names the
//! thread ([`Unit::Lost`]); the header and definitions are read again from their copies. A
//! process killed mid-write leaves a truncated tail ([`Tail::Truncated`]): a last chunk cut
//! short with nothing readable after it. A hostile length field is never an allocation: bytes
//! are buffered only as the file holds them, and at most [`MAX_CHUNK_LEN`] of them.

use super::defs::{Definition, Header};
use super::event::Event;
use super::frame::{
    chunk_crc, round_entry, ChunkKind, CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN,
    OLDEST_READABLE_VERSION, SYNC, V1_CHUNK_HEADER_LEN,
};
use super::ids::ThreadId;
use super::payload::{Payload, PayloadDecoder};
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::Path;

/// Bytes read from the input at a time.
const READ_BLOCK: usize = 1 << 16;

/// The most damaged regions a reader lists; later ones are merged into the last.
const MAX_DAMAGE_REGIONS: usize = 1024;

/// The most threads a damaged region names.
const MAX_THREADS_PER_REGION: usize = 256;

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
/// the events of a batch go into the caller's buffer, and that losses are said where they are
/// found.
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
    /// Batches of `thread` were lost in a damaged region skipped before this point: the
    /// thread's next batch, which follows, is not the one after its previous batch. What the
    /// thread did in between is unknown.
    Lost {
        /// The thread (its id in the file).
        thread: ThreadId,
        /// How many of its batches are missing, at least.
        batches: u64,
    },
}

/// How reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte was read, or skipped as a [`Damage`] region.
    Complete,
    /// The file ends inside a chunk, with nothing readable after the chunk's start (the
    /// writer was killed or is still writing).
    Truncated {
        /// Bytes of the incomplete chunk.
        bytes: u64,
    },
    /// Reading the file failed (an I/O error); nothing after `offset` was read.
    Corrupt {
        /// File offset where reading failed.
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

/// A region of the file that could not be read and was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// File offset of its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// Of those, bytes whose content was read again from the copy that followed them (the
    /// header and definitions are written twice).
    pub recovered_bytes: u64,
    /// An estimate of the events it held: its unrecovered bytes at the file's average bytes
    /// per event (known once reading has ended).
    pub events: u64,
    /// Threads (their ids in the file) whose batch numbers have a hole after it: it held
    /// their events. Empty if no later batch showed a hole (it may have held a thread's last
    /// batches, definitions or a watermark).
    pub threads: Vec<ThreadId>,
    /// What was wrong with its first chunk.
    pub reason: String,
}

/// A chunk found whole in the buffer.
#[derive(Debug, Clone)]
struct Frame {
    kind: ChunkKind,
    /// Where its body (kind prefix and payload) starts in the reader's buffer.
    body: usize,
    /// Its payload, within the reader's buffer.
    payload: Range<usize>,
    /// Its bytes in the file, header included.
    bytes: u64,
    /// A skipped region ends right before it.
    after_damage: bool,
}

/// What the bytes at the reader's position are.
enum Check {
    /// A whole chunk whose checksum holds.
    Good(Frame),
    /// The input ends inside what these bytes claim to be.
    Incomplete,
    /// Not a chunk, for this reason.
    Bad(String),
}

/// The region being skipped.
#[derive(Debug)]
struct Skip {
    offset: u64,
    reason: String,
    /// Its first chunk was cut short by the end of the file: if nothing readable follows, it
    /// is a truncated tail rather than damage.
    incomplete: bool,
}

/// A streaming reader of one trace. Iterate it for [`Item`]s (or call
/// [`next_into`](Self::next_into), which reuses the caller's buffer for events); then
/// [`tail`](Self::tail) says how the file ended and [`damage`](Self::damage) what was skipped.
#[derive(Debug)]
pub struct TraceReader<R> {
    input: R,
    path: String,
    version: u32,
    header: Header,
    /// Bytes read from the input and not yet consumed start at `buf[pos]`, at file offset
    /// `offset`.
    buf: Vec<u8>,
    pos: usize,
    offset: u64,
    input_ended: bool,
    decoder: PayloadDecoder,
    skipping: Option<Skip>,
    damage: Vec<Damage>,
    /// Each thread's next batch number.
    batches: FxHashMap<u32, u32>,
    /// A chunk held back while the losses it showed are said.
    pending: Option<Frame>,
    /// Losses found and not yet said: (thread, batches).
    losses: Vec<(u32, u64)>,
    /// Where the last chunk that is written twice (header, definitions) ended, if it was read
    /// from its original, and its bytes: damage starting there held its copy, a loss of
    /// nothing.
    copy_due: Option<(u64, u64)>,
    /// Events read, and the bytes of the chunks they came from (for loss estimates).
    events_read: u64,
    event_bytes: u64,
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
            buf: Vec::new(),
            pos: 0,
            offset: 8,
            input_ended: false,
            decoder: PayloadDecoder::new(version),
            skipping: None,
            damage: Vec::new(),
            batches: FxHashMap::default(),
            pending: None,
            losses: Vec::new(),
            copy_due: None,
            events_read: 0,
            event_bytes: 0,
            tail: None,
        };
        // The first chunk read whole is the header (or its copy, if the first was damaged).
        let first = loop {
            let Some(frame) = reader.next_frame() else { break None };
            if frame.kind == ChunkKind::Copy {
                reader.recovered(frame.bytes);
            }
            if let Some(payload) = reader.decode_payload(&frame, &mut Vec::new()) {
                reader.note_copy_due(&frame);
                break Some(payload);
            }
        };
        match first {
            Some(Payload::Header(header)) => reader.header = header,
            Some(_) => {
                return Err(ReadError::BadHeader {
                    path: reader.path,
                    reason: "the first chunk is not a header".into(),
                })
            }
            None => {
                let reason = match (reader.tail, reader.damage.first()) {
                    (Some(Tail::Corrupt { reason, .. }), _) => reason,
                    (_, Some(damage)) => damage.reason.clone(),
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

    /// The file offset reading has reached, preamble included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How reading ended; `None` while items remain.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The regions skipped so far, in file order. Their event estimates are set once reading
    /// has ended.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Reads the next unit, appending a batch's events to `events` instead of returning
    /// them: a caller that reuses one buffer reads a trace without allocating per batch.
    /// Gives what iterating the reader gives, item for item, and says losses where they are
    /// found; `None` at the end.
    pub fn next_into(&mut self, events: &mut Vec<Event>) -> Option<Unit> {
        loop {
            if let Some((thread, batches)) = self.losses.pop() {
                return Some(Unit::Lost { thread: ThreadId(thread), batches });
            }
            let (frame, checked) = match self.pending.take() {
                Some(frame) => (frame, true),
                None => (self.next_frame()?, false),
            };
            if !checked {
                match frame.kind {
                    // The copy of a chunk that was read: nothing new.
                    ChunkKind::Copy if !frame.after_damage => continue,
                    ChunkKind::Copy => self.recovered(frame.bytes),
                    ChunkKind::Batch { thread, batch } => {
                        let next = batch.wrapping_add(1);
                        if let Some(batches) = self.hole(thread, batch, next) {
                            self.losses.push((thread, batches));
                        }
                    }
                    ChunkKind::Round { count } => {
                        for i in 0..count as usize {
                            let (thread, last) = round_entry(&self.buf[frame.body..], i);
                            // Every batch up to `last` should have been read.
                            let next = last.wrapping_add(1);
                            if let Some(batches) = self.hole(thread, next, next) {
                                self.losses.push((thread, batches));
                            }
                        }
                    }
                    ChunkKind::Plain => {}
                }
                if !self.losses.is_empty() {
                    self.pending = Some(frame);
                    continue;
                }
            }
            let before = events.len();
            let payload = self.decode_payload(&frame, events);
            if matches!(payload, Some(Payload::Header(_) | Payload::Definitions(_))) {
                self.note_copy_due(&frame);
            }
            return match payload {
                // A repeated header (traces concatenated by hand) carries nothing new; an
                // undecodable chunk was recorded as damage.
                Some(Payload::Header(_)) | None => continue,
                Some(Payload::Definitions(definitions)) => Some(Unit::Definitions(definitions)),
                Some(Payload::Events) => {
                    self.events_read += (events.len() - before) as u64;
                    self.event_bytes += frame.bytes;
                    Some(Unit::Events)
                }
                Some(Payload::Watermark { time_ns }) => Some(Unit::Watermark { time_ns }),
            };
        }
    }

    // === loss attribution ===

    /// Notes that `thread`'s batches before number `upto` have been written and that its next
    /// one to read is `next`; if some of those were not read, how many (and the damaged
    /// region before names the thread).
    fn hole(&mut self, thread: u32, upto: u32, next: u32) -> Option<u64> {
        let expected = self.batches.insert(thread, next);
        let missing = match expected {
            // Batch numbers wrap: a number "before" the expected one is no hole.
            Some(expected) => {
                let gap = upto.wrapping_sub(expected);
                (gap != 0 && gap < u32::MAX / 2).then_some(u64::from(gap))?
            }
            // A thread first seen after damage, not at its first batch, lost its first
            // batches there. (A flight-recorder dump starts in the middle of every thread's
            // batches: without damage that is no loss.)
            None if upto > 0 && !self.damage.is_empty() => 1,
            None => return None,
        };
        if let Some(region) = self.damage.last_mut() {
            if !region.threads.contains(&ThreadId(thread))
                && region.threads.len() < MAX_THREADS_PER_REGION
            {
                region.threads.push(ThreadId(thread));
            }
        }
        Some(missing)
    }

    /// The copy that follows a damaged region was read: the region's last `bytes` held its
    /// original.
    fn recovered(&mut self, bytes: u64) {
        if let Some(region) = self.damage.last_mut() {
            region.recovered_bytes = (region.recovered_bytes + bytes).min(region.bytes);
        }
    }

    /// Notes that `frame`, just read, is followed by its copy if it is an original.
    fn note_copy_due(&mut self, frame: &Frame) {
        if frame.kind == ChunkKind::Plain && self.version >= 2 {
            self.copy_due = Some((self.offset, frame.bytes));
        }
    }

    // === chunks ===

    /// Decodes a frame's payload; `None` (recorded as damage) if it does not decode.
    fn decode_payload(&mut self, frame: &Frame, events: &mut Vec<Event>) -> Option<Payload> {
        let bytes = &self.buf[frame.payload.clone()];
        let reason = match self.decoder.decode(bytes, events) {
            Ok(payload) => return Some(payload),
            Err(reason) => reason,
        };
        let offset = self.offset - frame.bytes;
        self.add_damage(Damage {
            offset,
            bytes: frame.bytes,
            recovered_bytes: 0,
            events: 0,
            threads: Vec::new(),
            reason,
        });
        None
    }

    /// The next chunk whose checksum holds, skipping (and recording) what is not one; `None`
    /// at the end of the input, with the tail set.
    fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.tail.is_some() {
                return None;
            }
            let available = match self.fill(self.header_len()) {
                Ok(available) => available,
                Err(e) => return self.stop_reading(e),
            };
            if available == 0 {
                self.end_of_input();
                return None;
            }
            let check = match self.check() {
                Ok(check) => check,
                Err(e) => return self.stop_reading(e),
            };
            match check {
                Check::Good(mut frame) => {
                    frame.after_damage = self.close_skip();
                    self.pos += frame.bytes as usize;
                    self.offset += frame.bytes;
                    return Some(frame);
                }
                Check::Incomplete => self.skip("the file ends inside a chunk".into(), true),
                Check::Bad(reason) => self.skip(reason, false),
            }
        }
    }

    /// Bytes of a chunk header in this file's version.
    fn header_len(&self) -> usize {
        if self.version >= 2 {
            CHUNK_HEADER_LEN
        } else {
            V1_CHUNK_HEADER_LEN
        }
    }

    /// Looks at the bytes at the reader's position: a whole chunk, or why not.
    fn check(&mut self) -> io::Result<Check> {
        let header_len = self.header_len();
        if self.buf.len() - self.pos < header_len {
            return Ok(Check::Incomplete);
        }
        let at = |i: usize| self.buf[self.pos + i];
        let word = |i: usize| u32::from_le_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)]);
        let v2 = self.version >= 2;
        if v2 && self.buf[self.pos..self.pos + SYNC.len()] != SYNC {
            return Ok(Check::Bad("no chunk marker where a chunk should start".into()));
        }
        let (len_at, crc_at) = if v2 { (4, 8) } else { (0, 4) };
        let len = word(len_at);
        let crc = word(crc_at);
        if len > MAX_CHUNK_LEN {
            return Ok(Check::Bad(format!(
                "chunk length {len} exceeds the maximum of {MAX_CHUNK_LEN}"
            )));
        }
        if len == 0 {
            return Ok(Check::Bad("empty chunk".into()));
        }
        let total = header_len + len as usize;
        if self.fill(total)? < total {
            return Ok(Check::Incomplete);
        }
        let body = self.pos + header_len..self.pos + total;
        if chunk_crc(len.to_le_bytes(), &self.buf[body.clone()]) != crc {
            return Ok(Check::Bad("checksum mismatch".into()));
        }
        let (kind, prefix) = if v2 {
            match ChunkKind::decode(&self.buf[body.clone()]) {
                Some(decoded) => decoded,
                None => return Ok(Check::Bad("unknown chunk kind".into())),
            }
        } else {
            (ChunkKind::Plain, 0)
        };
        Ok(Check::Good(Frame {
            kind,
            body: body.start,
            payload: body.start + prefix..body.end,
            bytes: total as u64,
            after_damage: false,
        }))
    }

    /// Skips the byte at the reader's position (starting a damaged region there if none is
    /// open), and then, in a version 2 file, every byte up to the next chunk marker.
    fn skip(&mut self, reason: String, incomplete: bool) {
        if self.skipping.is_none() {
            self.skipping = Some(Skip { offset: self.offset, reason, incomplete });
        }
        let mut step = 1;
        if self.version >= 2 {
            let rest = &self.buf[self.pos + 1..];
            step += match rest.windows(SYNC.len()).position(|w| w == SYNC) {
                Some(at) => at,
                // Keep a marker's first bytes, which may end the buffer.
                None => rest.len().saturating_sub(SYNC.len() - 1),
            };
        }
        let step = step.min(self.buf.len() - self.pos);
        self.pos += step;
        self.offset += step as u64;
    }

    /// Ends the region being skipped, if any, at the reader's position; whether there was one.
    fn close_skip(&mut self) -> bool {
        let Some(skip) = self.skipping.take() else {
            return false;
        };
        let bytes = self.offset - skip.offset;
        let recovered_bytes = match self.copy_due {
            Some((end, copy_bytes)) if end == skip.offset => copy_bytes.min(bytes),
            _ => 0,
        };
        self.add_damage(Damage {
            offset: skip.offset,
            bytes,
            recovered_bytes,
            events: 0,
            threads: Vec::new(),
            reason: skip.reason,
        });
        true
    }

    /// Records a damaged region (merged into the last one past [`MAX_DAMAGE_REGIONS`]).
    fn add_damage(&mut self, damage: Damage) {
        if self.damage.len() < MAX_DAMAGE_REGIONS {
            self.damage.push(damage);
        } else if let Some(last) = self.damage.last_mut() {
            last.bytes = damage.offset + damage.bytes - last.offset;
        }
    }

    /// The input has ended: a region being skipped is damage to the end of the file, or a
    /// truncated tail if it began with a chunk the end of the file cut short.
    fn end_of_input(&mut self) {
        let tail = match self.skipping.take() {
            Some(skip) if skip.incomplete => Tail::Truncated { bytes: self.offset - skip.offset },
            Some(skip) => {
                self.skipping = Some(skip);
                self.close_skip();
                Tail::Complete
            }
            None => Tail::Complete,
        };
        self.finish(tail);
    }

    /// Stops reading after an I/O error; counts the rest of the file without keeping it.
    fn stop_reading<T>(&mut self, error: io::Error) -> Option<T> {
        let buffered = (self.buf.len() - self.pos) as u64;
        let rest = io::copy(&mut self.input, &mut io::sink()).unwrap_or(0);
        let offset = self.skipping.take().map_or(self.offset, |skip| skip.offset);
        let bytes = self.offset - offset + buffered + rest;
        self.finish(Tail::Corrupt { offset, bytes, reason: format!("read error: {error}") });
        None
    }

    /// Sets the tail, and the damaged regions' event estimates from the file's average.
    fn finish(&mut self, tail: Tail) {
        self.tail = Some(tail);
        for region in &mut self.damage {
            let lost_bytes = region.bytes - region.recovered_bytes;
            region.events = if self.event_bytes == 0 {
                0
            } else {
                (u128::from(lost_bytes) * u128::from(self.events_read)
                    / u128::from(self.event_bytes)) as u64
            };
        }
    }

    /// Buffers input until `n` bytes from the reader's position are held, or the input ends;
    /// how many are held. The buffer grows by what the input gives, never by what a length
    /// field claims.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.buf.len() - self.pos < n && !self.input_ended {
            if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let old = self.buf.len();
            self.buf.resize(old + READ_BLOCK, 0);
            let read = self.input.read(&mut self.buf[old..]);
            self.buf.truncate(old + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => self.input_ended = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.buf.len() - self.pos)
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let mut events = Vec::new();
        loop {
            return Some(match self.next_into(&mut events)? {
                Unit::Definitions(definitions) => Item::Definitions(definitions),
                Unit::Events => Item::Events(events),
                Unit::Watermark { time_ns } => Item::Watermark { time_ns },
                // Said by `damage()`.
                Unit::Lost { .. } => continue,
            });
        }
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
