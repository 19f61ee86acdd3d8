//! Reading RAPID's STD text traces (`THREAD|OP(ARG)|LOC`, one event a line), the format of the
//! academic trace analyzers (RAPID, and deadlock predictors that add `req`).
//!
//! Operations: `r(x)` / `w(x)` read and write variable `x`; `acq(l)` / `rel(l)` acquire and
//! release lock `l`; `req(l)` request it (before the `acq`, for deadlock prediction);
//! `fork(t)` / `join(t)` start and join thread `t`; `begin` / `end` delimit an atomic block
//! (kept as marks). `LOC` is a number naming a program location; it becomes a site with that
//! line and no file, which reports show as `LOC n` (and JSON as its `line`).
//!
//! The file's line order is the real order of events: event times are line numbers, and lock
//! sequence numbers follow the file. A line that does not parse is an error naming its line
//! number; nothing is skipped. A `req(l)` is a `LockRequested` event: one with no `acq(l)`
//! after it is a wait still open when the trace ends.

use hindsight_recorder::format::{
    Definition, Event, EventKind, Header, LockDef, LockId, LockImplementation, LockKind, LockMode,
    SiteDef, SiteId, StringId, ThreadDef, ThreadId, TraceWriter, Unit, VarDef, VarId,
};
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::num::NonZeroU64;
use std::path::Path;

/// Lines parsed per batch of events.
const LINES_PER_BATCH: usize = 4096;

/// The longest line accepted; a longer one is malformed (and is not buffered whole).
const MAX_LINE_LEN: usize = 4096;

/// Why an STD trace could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StdError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A line is not `THREAD|OP(ARG)|LOC`.
    #[error("{path}:{line}: malformed STD line `{text}`: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// The line (shortened).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Whether `start` (the first bytes of a file) looks like an STD trace: its first non-empty
/// line has the shape `THREAD|OP(ARG)|LOC`.
pub fn looks_like_std(start: &[u8]) -> bool {
    start
        .split(|&byte| byte == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty())
        .is_some_and(|first| parse_line(first).is_ok())
}

/// One parsed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line<'a> {
    thread: &'a [u8],
    op: Op,
    arg: &'a [u8],
    loc: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Request,
    Acquire,
    Release,
    Fork,
    Join,
    Begin,
    End,
}

/// Splits `bytes` at the first `separator`.
#[inline]
fn split_at_byte(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&byte| byte == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// The operation called `name`.
#[inline]
fn op(name: &[u8]) -> Option<Op> {
    Some(match name {
        b"r" => Op::Read,
        b"w" => Op::Write,
        b"req" => Op::Request,
        b"acq" => Op::Acquire,
        b"rel" => Op::Release,
        b"fork" => Op::Fork,
        b"join" => Op::Join,
        b"begin" => Op::Begin,
        b"end" => Op::End,
        _ => return None,
    })
}

/// Parses one line (trimmed, not empty), byte by byte: nothing is allocated unless it is
/// malformed.
#[inline]
fn parse_line(line: &[u8]) -> Result<Line<'_>, String> {
    match parse_plain(line) {
        Some(parsed) => Ok(parsed),
        None => parse_any(line),
    }
}

/// Parses a line of the usual shape, `THREAD|op(ARG)|LOC` with no spaces around its parts,
/// in one pass; `None` for any other line, which [`parse_any`] then reads or explains. (Where
/// this succeeds, `parse_any` gives the same.)
#[inline]
fn parse_plain(line: &[u8]) -> Option<Line<'_>> {
    let (thread, rest) = split_at_byte(line, b'|')?;
    let (op_name, rest) = split_at_byte(rest, b'(')?;
    let (arg, rest) = split_at_byte(rest, b')')?;
    let loc = parse_u32(rest.strip_prefix(b"|")?)?;
    let op = op(op_name)?;
    let plain = |part: &[u8]| {
        let spaced = |byte: Option<&u8>| byte.is_some_and(u8::is_ascii_whitespace);
        !spaced(part.first()) && !spaced(part.last())
    };
    let arg_ok = !arg.is_empty() || matches!(op, Op::Begin | Op::End);
    let ok = !thread.is_empty() && plain(thread) && plain(arg) && arg_ok && !arg.contains(&b'|');
    ok.then_some(Line { thread, op, arg, loc })
}

/// Parses any line (trimmed, not empty), or says what is wrong with it.
#[cold]
fn parse_any(line: &[u8]) -> Result<Line<'_>, String> {
    let shape = || "expected THREAD|OP(ARG)|LOC".to_owned();
    let (thread, rest) = split_at_byte(line, b'|').ok_or_else(shape)?;
    let (op_arg, loc) = split_at_byte(rest, b'|').ok_or_else(shape)?;
    if loc.contains(&b'|') {
        return Err(shape());
    }
    let thread = thread.trim_ascii();
    if thread.is_empty() {
        return Err("empty thread".into());
    }
    let op_arg = op_arg.trim_ascii();
    let (op_name, arg) = op_arg
        .strip_suffix(b")")
        .and_then(|rest| split_at_byte(rest, b'('))
        .ok_or_else(|| format!("expected OP(ARG), found `{}`", String::from_utf8_lossy(op_arg)))?;
    let op = op(op_name).ok_or_else(|| {
        format!(
            "unknown operation `{}` (expected r, w, req, acq, rel, fork, join, begin, end)",
            String::from_utf8_lossy(op_name)
        )
    })?;
    let arg = arg.trim_ascii();
    if arg.is_empty() && !matches!(op, Op::Begin | Op::End) {
        return Err(format!("`{}` needs an argument", String::from_utf8_lossy(op_name)));
    }
    let loc = loc.trim_ascii();
    let loc = parse_u32(loc)
        .ok_or_else(|| format!("LOC `{}` is not a number", String::from_utf8_lossy(loc)))?;
    Ok(Line { thread, op, arg, loc })
}

/// A decimal number that fits a `u32`.
#[inline]
fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |value, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value.checked_mul(10)?.checked_add(u32::from(digit))
    })
}

/// LOCs below this are looked up in a table indexed by LOC (at most 256 KiB), the others by
/// hashing: most traces number their locations from 1.
const DENSE_LOCS: u32 = 1 << 16;

/// A LOC with no site yet in the dense table.
const NO_SITE: u32 = u32::MAX;

/// What a name of an STD line names.
#[derive(Debug, Clone, Copy)]
enum Named {
    Thread,
    Lock,
    Variable,
}

/// Names numbered as first seen. Most names are short, and a trace has many (a variable
/// each): those of up to 7 bytes are keyed by their bytes and length packed in a `u64`, those
/// of up to 15 in a `u128`, so that looking one up hashes and compares a word or two, with no
/// call to compare bytes, in a table small enough for the cache.
#[derive(Debug, Default)]
struct Names {
    small: FxHashMap<u64, u32>,
    medium: FxHashMap<u128, u32>,
    long: FxHashMap<Box<[u8]>, u32>,
}

/// A name as a key of [`Names`].
enum Key<'a> {
    Small(u64),
    Medium(u128),
    Long(&'a [u8]),
}

impl Names {
    #[inline]
    fn key(name: &[u8]) -> Key<'_> {
        // Byte by byte: a copy of a slice of unknown length would be a call to `memcpy`.
        let packed = |length_at: u32| {
            let bytes = name.iter().enumerate();
            let key = bytes.fold(0u128, |key, (i, &byte)| key | u128::from(byte) << (8 * i));
            key | (name.len() as u128) << length_at
        };
        match name.len() {
            0..8 => Key::Small(packed(56) as u64),
            8..16 => Key::Medium(packed(120)),
            _ => Key::Long(name),
        }
    }

    #[inline]
    fn get(&self, name: &[u8]) -> Option<u32> {
        match Names::key(name) {
            Key::Small(key) => self.small.get(&key).copied(),
            Key::Medium(key) => self.medium.get(&key).copied(),
            Key::Long(name) => self.long.get(name).copied(),
        }
    }

    /// Numbers `name` (not yet numbered) next; its number.
    fn insert(&mut self, name: &[u8]) -> u32 {
        let id = (self.small.len() + self.medium.len() + self.long.len()) as u32;
        match Names::key(name) {
            Key::Small(key) => self.small.insert(key, id),
            Key::Medium(key) => self.medium.insert(key, id),
            Key::Long(name) => self.long.insert(name.into(), id),
        };
        id
    }
}

/// Turns parsed lines into events, numbering threads, locks, variables and LOCs as they are
/// first seen (names are interned by their bytes with a fast hash) and collecting the
/// definitions of the new ones.
#[derive(Debug, Default)]
struct Builder {
    strings: Names,
    /// Per [`Named`] kind, the ids of its names.
    names: [Names; 3],
    /// The site of each LOC below [`DENSE_LOCS`], by LOC ([`NO_SITE`] if it has none yet),
    /// and of the others.
    dense_sites: Vec<u32>,
    sparse_sites: FxHashMap<u32, u32>,
    site_count: u32,
    /// Per lock, the last sequence number given.
    lock_seqs: Vec<u64>,
    /// Definitions not yet handed out.
    definitions: Vec<Definition>,
    /// Events parsed, to be handed out after `definitions`.
    events: Vec<Event>,
}

impl Builder {
    fn event(&mut self, line: Line<'_>, time: u64) {
        let thread = ThreadId(self.id(Named::Thread, line.thread));
        let site = self.site(line.loc);
        let kind = match line.op {
            Op::Read => EventKind::Read { var: VarId(self.id(Named::Variable, line.arg)), site },
            Op::Write => EventKind::Write { var: VarId(self.id(Named::Variable, line.arg)), site },
            Op::Request => {
                let lock = LockId(self.id(Named::Lock, line.arg));
                EventKind::LockRequested { lock, mode: LockMode::Exclusive, site }
            }
            Op::Acquire => {
                let lock = LockId(self.id(Named::Lock, line.arg));
                let seq = Some(self.next_seq(lock));
                let mode = LockMode::Exclusive;
                EventKind::LockAcquired { lock, mode, site, seq, via_try: false }
            }
            Op::Release => {
                let lock = LockId(self.id(Named::Lock, line.arg));
                let seq = Some(self.next_seq(lock));
                EventKind::LockReleased { lock, mode: LockMode::Exclusive, seq, poisoned: false }
            }
            Op::Fork => {
                let child = ThreadId(self.id(Named::Thread, line.arg));
                EventKind::ThreadSpawned { thread: child, site: Some(site) }
            }
            Op::Join => {
                let child = ThreadId(self.id(Named::Thread, line.arg));
                EventKind::ThreadJoined { thread: child, site: Some(site) }
            }
            Op::Begin | Op::End => {
                let label = if line.op == Op::Begin { "begin" } else { "end" };
                let label = self.string(label.as_bytes());
                EventKind::Mark { label, site: Some(site) }
            }
        };
        self.events.push(Event { time_ns: time, thread, task: None, kind });
    }

    fn next_seq(&mut self, lock: LockId) -> NonZeroU64 {
        // Locks are numbered densely as they are first seen.
        let last = &mut self.lock_seqs[lock.index()];
        let seq = NonZeroU64::MIN.saturating_add(*last);
        *last = seq.get();
        seq
    }

    fn string(&mut self, text: &[u8]) -> StringId {
        if let Some(id) = self.strings.get(text) {
            return StringId(id);
        }
        let id = StringId(self.strings.insert(text));
        let text = String::from_utf8_lossy(text).into_owned();
        self.definitions.push(Definition::String { id, text });
        id
    }

    /// The id of the thread, lock or variable called `name`, defined if it is new.
    #[inline]
    fn id(&mut self, named: Named, name: &[u8]) -> u32 {
        if let Some(id) = self.names[named as usize].get(name) {
            return id;
        }
        self.define(named, name)
    }

    #[cold]
    fn define(&mut self, named: Named, name: &[u8]) -> u32 {
        let id = self.names[named as usize].insert(name);
        let name = self.string(name);
        self.definitions.push(match named {
            Named::Thread => {
                Definition::Thread(ThreadDef { id: ThreadId(id), name: Some(name), os_id: 0 })
            }
            Named::Lock => {
                self.lock_seqs.push(0);
                Definition::Lock(LockDef {
                    id: LockId(id),
                    kind: LockKind::Mutex,
                    blocking: true,
                    name: Some(name),
                    site: None,
                    implementation: LockImplementation::Unknown,
                    capacity: None,
                })
            }
            Named::Variable => Definition::Variable(VarDef { id: VarId(id), name, site: None }),
        });
        id
    }

    /// The site of `LOC loc`: a program location known by its number only, so a site with
    /// no file and no column (which reports show as `LOC n`).
    #[inline]
    fn site(&mut self, loc: u32) -> SiteId {
        let dense = self.dense_sites.get(loc as usize).copied().filter(|&id| id != NO_SITE);
        if let Some(id) = dense.or_else(|| self.sparse_sites.get(&loc).copied()) {
            return SiteId(id);
        }
        self.define_site(loc)
    }

    #[cold]
    fn define_site(&mut self, loc: u32) -> SiteId {
        let file = self.string(b"");
        let id = self.site_count;
        self.site_count += 1;
        if loc < DENSE_LOCS {
            if self.dense_sites.len() <= loc as usize {
                self.dense_sites.resize(loc as usize + 1, NO_SITE);
            }
            self.dense_sites[loc as usize] = id;
        } else {
            self.sparse_sites.insert(loc, id);
        }
        let (id, line) = (SiteId(id), loc);
        let site = SiteDef { id, file, line, col: 0, function: None };
        self.definitions.push(Definition::Site(site));
        id
    }
}

/// What [`StdReader::next_into`] hands out next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Parse the next batch of lines (and hand out its new definitions, if any).
    Parse,
    /// Hand out the batch's events.
    Events,
    /// Hand out a watermark at the batch's last event.
    Watermark,
    /// Nothing: the file is read, or a line was malformed.
    Done,
}

/// A streaming reader of an STD trace, yielding the same [`Unit`]s as a binary trace reader:
/// per batch of lines, the definitions of the names first seen there, then the events (of
/// every thread, in file order), then a watermark at the last of them. Since the file is one
/// total order, that watermark lets replay take each batch's events before reading the next:
/// memory holds a batch, not the trace.
#[derive(Debug)]
pub struct StdReader<R> {
    input: R,
    path: String,
    header: Header,
    /// The number of the last line read.
    line_no: u64,
    /// The start of a line that the input's buffer ended inside.
    partial: Vec<u8>,
    builder: Builder,
    stage: Stage,
    /// The input is read to its end.
    at_end: bool,
}

impl StdReader<BufReader<File>> {
    /// Opens the STD trace at `path`.
    pub fn open(path: &Path) -> Result<Self, StdError> {
        let name = path.display().to_string();
        let file =
            File::open(path).map_err(|source| StdError::Io { path: name.clone(), source })?;
        Ok(StdReader::new(BufReader::with_capacity(1 << 16, file), name))
    }
}

impl<R: BufRead> StdReader<R> {
    /// Reads an STD trace from `input`; `path` names it in messages.
    pub fn new(input: R, path: impl Into<String>) -> Self {
        let path = path.into();
        let program = Path::new(&path)
            .file_name()
            .map_or_else(|| path.clone(), |name| name.to_string_lossy().into_owned());
        StdReader {
            input,
            header: Header {
                program,
                clock: "line number".into(),
                recorder_version: "RAPID STD".into(),
                ..Header::default()
            },
            path,
            line_no: 0,
            partial: Vec::new(),
            builder: Builder::default(),
            stage: Stage::Parse,
            at_end: false,
        }
    }

    /// A header describing the STD file (times are line numbers).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads the next unit, appending a batch's events to `events` (the events of a batch
    /// may be of several threads); `None` at the end. A malformed line is an error, once,
    /// and then the end.
    pub fn next_into(&mut self, events: &mut Vec<Event>) -> Option<Result<Unit, StdError>> {
        loop {
            match self.stage {
                Stage::Parse => {
                    if let Err(error) = self.parse_batch() {
                        self.stage = Stage::Done;
                        return Some(Err(error));
                    }
                    self.stage = Stage::Events;
                    if !self.builder.definitions.is_empty() {
                        let definitions = std::mem::take(&mut self.builder.definitions);
                        return Some(Ok(Unit::Definitions(definitions)));
                    }
                }
                Stage::Events => {
                    self.stage = if self.at_end { Stage::Done } else { Stage::Watermark };
                    let parsed = &mut self.builder.events;
                    if !parsed.is_empty() {
                        if events.is_empty() {
                            // The caller's buffer takes the events; this reader the buffer.
                            std::mem::swap(events, parsed);
                        } else {
                            events.append(parsed);
                        }
                        return Some(Ok(Unit::Events));
                    }
                }
                Stage::Watermark => {
                    self.stage = Stage::Parse;
                    // Every line up to this one is read: the events before its time.
                    return Some(Ok(Unit::Watermark { time_ns: self.line_no }));
                }
                Stage::Done => return None,
            }
        }
    }

    /// Parses up to [`LINES_PER_BATCH`] lines into the builder.
    fn parse_batch(&mut self) -> Result<(), StdError> {
        let mut lines = 0;
        while lines < LINES_PER_BATCH {
            let io_error = |source| StdError::Io { path: self.path.clone(), source };
            let buffer = self.input.fill_buf().map_err(io_error)?;
            if buffer.is_empty() {
                self.at_end = true;
                if !self.partial.is_empty() {
                    // The last line, without a newline.
                    self.line_no += 1;
                    let partial = std::mem::take(&mut self.partial);
                    line(&mut self.builder, &partial, self.line_no, &self.path)?;
                }
                return Ok(());
            }
            let mut consumed = 0;
            let mut result = Ok(());
            while lines < LINES_PER_BATCH {
                let rest = &buffer[consumed..];
                let Some(end) = rest.iter().position(|&byte| byte == b'\n') else {
                    // A line the buffer ends inside: kept for the next fill, up to the limit.
                    self.partial.extend_from_slice(rest);
                    consumed = buffer.len();
                    if self.partial.len() > MAX_LINE_LEN {
                        result = Err(overlong(&self.partial, self.line_no + 1, &self.path));
                    }
                    break;
                };
                consumed += end + 1;
                lines += 1;
                self.line_no += 1;
                result = if self.partial.is_empty() {
                    line(&mut self.builder, &rest[..end], self.line_no, &self.path)
                } else {
                    self.partial.extend_from_slice(&rest[..end]);
                    let result = line(&mut self.builder, &self.partial, self.line_no, &self.path);
                    self.partial.clear();
                    result
                };
                if result.is_err() {
                    break;
                }
            }
            self.input.consume(consumed);
            result?;
        }
        Ok(())
    }
}

/// Parses line `line_no` of the file at `path` into `builder`.
#[inline]
fn line(builder: &mut Builder, text: &[u8], line_no: u64, path: &str) -> Result<(), StdError> {
    if text.len() > MAX_LINE_LEN {
        return Err(overlong(text, line_no, path));
    }
    let text = text.trim_ascii();
    if text.is_empty() {
        return Ok(());
    }
    let parsed = parse_line(text).map_err(|reason| malformed(text, line_no, path, reason))?;
    builder.event(parsed, line_no);
    Ok(())
}

fn overlong(text: &[u8], line_no: u64, path: &str) -> StdError {
    let reason = format!("line longer than {MAX_LINE_LEN} bytes");
    malformed(&text[..text.len().min(60)], line_no, path, reason)
}

fn malformed(text: &[u8], line_no: u64, path: &str, reason: String) -> StdError {
    let text: String = String::from_utf8_lossy(text).chars().take(80).collect();
    StdError::Malformed { path: path.to_owned(), line: line_no, text, reason }
}

/// Why `hindsight convert` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The STD input could not be read.
    #[error(transparent)]
    Read(#[from] StdError),
    /// The STD input holds no line to convert.
    #[error("{path}: empty file, not an STD trace")]
    Empty {
        /// The input file.
        path: String,
    },
    /// The output could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The output file.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// Converts the STD trace `input` into a hindsight trace at `output` (an
/// [`Output`](crate::output::Output): `-` is standard output, a regular file is replaced only
/// once the whole trace is written). Returns the number of events written.
pub fn convert_to_trace(input: &Path, output: &Path) -> Result<u64, ConvertError> {
    let write_error = |source| ConvertError::Write { path: output.display().to_string(), source };
    let mut reader = StdReader::open(input)?;
    let header = reader.header().clone();
    let mut events = Vec::new();
    let Some(first) = reader.next_into(&mut events) else {
        return Err(ConvertError::Empty { path: input.display().to_string() });
    };
    let out = crate::output::Output::create(output).map_err(write_error)?;
    let mut writer = TraceWriter::new(out, &header).map_err(write_error)?;
    let mut written = 0;
    let mut unit = Some(first);
    while let Some(read) = unit {
        match read? {
            Unit::Definitions(definitions) => {
                writer.write_definitions(&definitions).map_err(write_error)?
            }
            Unit::Events => {
                written += events.len() as u64;
                writer.write_events(&events).map_err(write_error)?;
                events.clear();
            }
            Unit::Watermark { time_ns } => writer.write_watermark(time_ns).map_err(write_error)?,
            // (Losses are found in binary traces only.)
            Unit::Lost { .. } => {}
        }
        unit = reader.next_into(&mut events);
    }
    writer.flush().map_err(write_error)?;
    writer.into_inner().commit().map_err(write_error)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::Item;

    /// What the reader hands out for `text`, batches of events as `Item::Events`.
    fn read(text: &str) -> Result<Vec<Item>, StdError> {
        read_from(text.as_bytes())
    }

    /// What the reader hands out for `input`.
    fn read_from(input: impl BufRead) -> Result<Vec<Item>, StdError> {
        let mut reader = StdReader::new(input, "t.std");
        let (mut items, mut events) = (Vec::new(), Vec::new());
        while let Some(unit) = reader.next_into(&mut events) {
            items.push(match unit? {
                Unit::Definitions(definitions) => Item::Definitions(definitions),
                Unit::Events => Item::Events(std::mem::take(&mut events)),
                Unit::Watermark { time_ns } => Item::Watermark { time_ns },
                Unit::Lost { .. } => unreachable!("an STD file has no batches to lose"),
            });
        }
        Ok(items)
    }

    /// The events among `items`.
    fn events(items: &[Item]) -> Vec<Event> {
        let events = items.iter().filter_map(|item| match item {
            Item::Events(events) => Some(events),
            _ => None,
        });
        events.flatten().copied().collect()
    }

    /// The definitions among `items`.
    fn definitions(items: &[Item]) -> Vec<Definition> {
        let mut definitions = Vec::new();
        for item in items {
            if let Item::Definitions(batch) = item {
                definitions.extend_from_slice(batch);
            }
        }
        definitions
    }

    #[test]
    fn lines_become_definitions_and_events_in_file_order() {
        let items =
            read("T0|fork(T1)|1\nT1|acq(L)|2\nT1|w(x)|3\nT1|rel(L)|4\n\nT0|join(T1)|5\n").unwrap();
        let events = events(&items);
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].kind.name(), "thread_spawned");
        assert_eq!(events[1].kind.lock_seq(), Some((LockId(0), NonZeroU64::MIN)));
        assert_eq!(events[3].kind.lock_seq(), NonZeroU64::new(2).map(|seq| (LockId(0), seq)));
        assert_eq!(events[4].time_ns, 6, "times are line numbers, blank lines counted");
        assert!(matches!(items[0], Item::Definitions(_)));
        assert!(
            !items.iter().any(|item| matches!(item, Item::Watermark { .. })),
            "no watermark after the last batch"
        );
    }

    #[test]
    fn a_loc_is_a_site_with_no_file() {
        let items = read("T0|w(x)|374\nT0|r(x)|374\nT0|r(x)|12\n").unwrap();
        let sites: Vec<(u32, u32, String)> = {
            let definitions = definitions(&items);
            let text = |id: StringId| {
                definitions.iter().find_map(|d| match d {
                    Definition::String { id: s, text } if *s == id => Some(text.clone()),
                    _ => None,
                })
            };
            definitions
                .iter()
                .filter_map(|d| match d {
                    Definition::Site(site) => Some((site.line, site.col, text(site.file)?)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(sites, vec![(374, 0, String::new()), (12, 0, String::new())]);
        let events = events(&items);
        assert_eq!(events[0].kind, EventKind::Write { var: VarId(0), site: SiteId(0) });
        assert_eq!(events[1].kind, EventKind::Read { var: VarId(0), site: SiteId(0) });
        assert_eq!(events[2].kind, EventKind::Read { var: VarId(0), site: SiteId(1) });
    }

    #[test]
    fn a_request_is_a_lock_request_without_a_sequence_number() {
        let events = events(&read("T0|req(A)|7\nT0|acq(A)|8\nT1|req(A)|9\n").unwrap());
        let request = EventKind::LockRequested {
            lock: LockId(0),
            mode: LockMode::Exclusive,
            site: SiteId(0),
        };
        assert_eq!(events[0].kind, request);
        assert_eq!(events[0].kind.lock_seq(), None);
        assert_eq!(events[1].kind.lock_seq(), Some((LockId(0), NonZeroU64::MIN)));
        assert_eq!(events[2].kind.name(), "lock_requested");
        assert_eq!(events[2].thread, ThreadId(1), "the request still open at the end");
    }

    #[test]
    fn names_of_every_length_are_told_apart() {
        // Short (up to 7 bytes), medium (up to 15) and long names, some sharing a prefix.
        let names = ["x", "x1", "abcdefg", "abcdefgh", "abcdefghijklmno", "abcdefghijklmnop"];
        let names: Vec<String> = names
            .iter()
            .map(|n| n.to_string())
            .chain((0..3).map(|i| format!("{}{i}", "v".repeat(20))))
            .collect();
        let mut text = String::new();
        for round in 0..2 {
            for name in &names {
                text.push_str(&format!("T{round}|w({name})|1\n"));
            }
        }
        let items = read(&text).unwrap();
        let vars: Vec<VarId> = events(&items)
            .iter()
            .map(|e| match e.kind {
                EventKind::Write { var, .. } => var,
                _ => panic!("a write"),
            })
            .collect();
        let expected: Vec<VarId> = (0..names.len() as u32).map(VarId).collect();
        assert_eq!(vars[..names.len()], expected[..], "each name a variable of its own");
        assert_eq!(vars[names.len()..], expected[..], "and the same one the second time");
        let defined =
            definitions(&items).iter().filter(|d| matches!(d, Definition::Variable(_))).count();
        assert_eq!(defined, names.len());
    }

    #[test]
    fn lines_cut_by_the_input_buffer_are_read_whole() {
        let text = "T0|fork(T1)|1\nT1|acq(lock_with_a_long_name)|22\nT1|w(x)|333\nT1|rel(lock_with_a_long_name)|4444";
        let whole = read(text).unwrap();
        for capacity in [1, 2, 5, 16] {
            let cut = read_from(std::io::BufReader::with_capacity(capacity, text.as_bytes()));
            assert_eq!(cut.unwrap(), whole, "buffer of {capacity} bytes");
        }
        assert_eq!(events(&whole).len(), 4, "the last line needs no newline");
    }

    #[test]
    fn each_batch_of_lines_ends_with_a_watermark_at_its_last_line() {
        let lines = LINES_PER_BATCH * 2 + 10;
        let text: String = (0..lines).map(|i| format!("T{}|w(v{i})|{i}\n", i % 3)).collect();
        let items = read(&text).unwrap();
        let kinds: Vec<&str> = items
            .iter()
            .map(|item| match item {
                Item::Definitions(_) => "definitions",
                Item::Events(_) => "events",
                Item::Watermark { .. } => "watermark",
            })
            .collect();
        let batch = ["definitions", "events", "watermark"];
        assert_eq!(kinds, [&batch[..], &batch[..], &batch[..2]].concat());
        let watermarks: Vec<&Item> =
            items.iter().filter(|item| matches!(item, Item::Watermark { .. })).collect();
        let at = |line: usize| Item::Watermark { time_ns: line as u64 };
        assert_eq!(watermarks, [&at(LINES_PER_BATCH), &at(2 * LINES_PER_BATCH)]);
        let events = events(&items);
        assert_eq!(events.len(), lines);
        assert!(events.windows(2).all(|pair| pair[0].time_ns + 1 == pair[1].time_ns));
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_line() {
        let error = read("T0|w(x)|1\nT0|w(x)\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.std:2: malformed STD line `T0|w(x)`: expected THREAD|OP(ARG)|LOC"
        );
        let error = read("T0|frob(x)|1\n").unwrap_err();
        assert!(error.to_string().starts_with("t.std:1: malformed"), "{error}");
        let error = read("T0|w(x)|twelve\n").unwrap_err();
        assert!(error.to_string().contains("LOC `twelve` is not a number"), "{error}");
        let long = format!("T0|w({})|1\n", "x".repeat(10_000));
        assert!(read(&long).unwrap_err().to_string().contains("line longer than"));
        let cut = read_from(std::io::BufReader::with_capacity(64, long.as_bytes())).unwrap_err();
        assert!(cut.to_string().starts_with("t.std:1: malformed"), "{cut}");
        assert!(cut.to_string().contains("line longer than"), "{cut}");
    }

    proptest::proptest! {
        /// Wherever the one-pass reading of the usual shape succeeds, the general one reads
        /// the line the same way.
        #[test]
        fn the_fast_path_reads_lines_as_the_general_one(
            tokens in proptest::collection::vec(proptest::sample::select(vec![
                "T1", "w", "acq", "begin", "(", ")", "|", " ", "x", "12", "+", "()",
            ]), 0..10)
        ) {
            let line = tokens.concat();
            let line = line.as_bytes().trim_ascii();
            if let Some(plain) = parse_plain(line) {
                proptest::prop_assert_eq!(parse_any(line), Ok(plain));
            }
        }
    }

    #[test]
    fn odd_lines_are_read_as_before() {
        fn read(line: &str) -> Result<(&[u8], &[u8], u32), String> {
            parse_line(line.as_bytes()).map(|l| (l.thread, l.arg, l.loc))
        }
        assert_eq!(read("T1|w(a(b))|1"), Ok((&b"T1"[..], &b"a(b)"[..], 1)));
        assert_eq!(read("T1 | w( x ) | 7"), Ok((&b"T1"[..], &b"x"[..], 7)));
        assert_eq!(read("T1|begin()|3"), Ok((&b"T1"[..], &b""[..], 3)));
        assert!(read("T1|w()|3").is_err());
        assert!(read("T1|w(x|y)|3").is_err());
        assert!(read("T1|w(x)|3|4").is_err());
        assert!(read("T1|w(x)|99999999999").is_err());
    }

    #[test]
    fn std_text_is_told_apart_from_binary_traces() {
        assert!(looks_like_std(b"\n T0|acq(l0)|12\nT1|rel(l0)|13"));
        assert!(!looks_like_std(b"HSTR\x01\x00\x00\x00"));
        assert!(!looks_like_std(b"hello world"));
        assert!(!looks_like_std(b""));
    }
}
