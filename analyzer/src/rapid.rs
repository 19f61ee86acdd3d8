//! Reading RAPID's STD text traces (`THREAD|OP(ARG)|LOC`, one event a line), the format of the
//! academic trace analyzers (RAPID, and deadlock predictors that add `req`).
//!
//! Operations: `r(x)` / `w(x)` read and write variable `x`; `acq(l)` / `rel(l)` acquire and
//! release lock `l`; `req(l)` request it (before the `acq`, for deadlock prediction);
//! `fork(t)` / `join(t)` start and join thread `t`; `begin` / `end` delimit an atomic block
//! (kept as marks). `LOC` is a number; it becomes the site `FILE:LOC:0` of the STD file.
//!
//! The file's line order is the real order of events: event times are line numbers, and lock
//! sequence numbers follow the file. A line that does not parse is an error naming its line
//! number; nothing is skipped.

use hindsight_recorder::format::{
    Definition, Event, EventKind, Header, Item, LockDef, LockId, LockKind, LockMode, SiteDef,
    SiteId, StringId, ThreadDef, ThreadId, TraceWriter, VarDef, VarId,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::num::NonZeroU64;
use std::path::Path;

/// Lines parsed per batch of items.
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
    let text = String::from_utf8_lossy(start);
    let Some(first) = text.lines().map(str::trim).find(|line| !line.is_empty()) else {
        return false;
    };
    parse_line(first).is_ok()
}

/// One parsed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line<'a> {
    thread: &'a str,
    op: Op,
    arg: &'a str,
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

fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let mut parts = line.split('|');
    let (Some(thread), Some(op_arg), Some(loc), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected THREAD|OP(ARG)|LOC".into());
    };
    let thread = thread.trim();
    if thread.is_empty() {
        return Err("empty thread".into());
    }
    let op_arg = op_arg.trim();
    let (op_name, arg) = op_arg
        .strip_suffix(')')
        .and_then(|rest| rest.split_once('('))
        .ok_or_else(|| format!("expected OP(ARG), found `{op_arg}`"))?;
    let op = match op_name {
        "r" => Op::Read,
        "w" => Op::Write,
        "req" => Op::Request,
        "acq" => Op::Acquire,
        "rel" => Op::Release,
        "fork" => Op::Fork,
        "join" => Op::Join,
        "begin" => Op::Begin,
        "end" => Op::End,
        other => {
            return Err(format!(
                "unknown operation `{other}` (expected r, w, req, acq, rel, fork, join, begin, end)"
            ))
        }
    };
    let arg = arg.trim();
    if arg.is_empty() && !matches!(op, Op::Begin | Op::End) {
        return Err(format!("`{op_name}` needs an argument"));
    }
    let loc = loc.trim();
    let loc = loc.parse().map_err(|_| format!("LOC `{loc}` is not a number"))?;
    Ok(Line { thread, op, arg, loc })
}

/// A streaming reader of an STD trace, yielding the same [`Item`]s as a binary trace reader.
#[derive(Debug)]
pub struct StdReader<R> {
    input: R,
    path: String,
    header: Header,
    line_no: u64,
    line: Vec<u8>,
    strings: HashMap<String, StringId>,
    threads: HashMap<String, ThreadId>,
    locks: HashMap<String, LockId>,
    vars: HashMap<String, VarId>,
    sites: HashMap<u32, SiteId>,
    lock_seqs: HashMap<LockId, u64>,
    file_string: Option<StringId>,
    pending: std::collections::VecDeque<Item>,
    done: bool,
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
    /// Reads an STD trace from `input`; `path` names it in messages and sites.
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
            line: Vec::new(),
            strings: HashMap::new(),
            threads: HashMap::new(),
            locks: HashMap::new(),
            vars: HashMap::new(),
            sites: HashMap::new(),
            lock_seqs: HashMap::new(),
            file_string: None,
            pending: Default::default(),
            done: false,
        }
    }

    /// A header describing the STD file (times are line numbers).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Parses the next batch of lines into `pending`.
    fn read_batch(&mut self) -> Result<(), StdError> {
        let mut definitions = Vec::new();
        let mut events = Vec::new();
        for _ in 0..LINES_PER_BATCH {
            if !self.next_line()? {
                self.done = true;
                break;
            }
            let text = String::from_utf8_lossy(&self.line).into_owned();
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let line = parse_line(text).map_err(|reason| self.malformed(text, reason))?;
            let event = self.event(line, &mut definitions);
            events.push(event);
        }
        if !definitions.is_empty() {
            self.pending.push_back(Item::Definitions(definitions));
        }
        for run in events.chunk_by(|a, b| a.thread == b.thread) {
            self.pending.push_back(Item::Events(run.to_vec()));
        }
        Ok(())
    }

    /// Reads one line into `self.line`, refusing overlong lines without buffering them.
    fn next_line(&mut self) -> Result<bool, StdError> {
        self.line.clear();
        let limit = (MAX_LINE_LEN + 1) as u64;
        let read = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.line)
            .map_err(|source| StdError::Io { path: self.path.clone(), source })?;
        if read == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line.len() > MAX_LINE_LEN && self.line.last() != Some(&b'\n') {
            let start = String::from_utf8_lossy(&self.line[..60]).into_owned();
            return Err(self.malformed(&start, format!("line longer than {MAX_LINE_LEN} bytes")));
        }
        Ok(true)
    }

    fn malformed(&self, text: &str, reason: String) -> StdError {
        let text: String = text.chars().take(80).collect();
        StdError::Malformed { path: self.path.clone(), line: self.line_no, text, reason }
    }

    fn event(&mut self, line: Line<'_>, definitions: &mut Vec<Definition>) -> Event {
        let thread = self.thread(line.thread, definitions);
        let site = self.site(line.loc, definitions);
        let kind = match line.op {
            Op::Read => EventKind::Read { var: self.var(line.arg, definitions), site },
            Op::Write => EventKind::Write { var: self.var(line.arg, definitions), site },
            Op::Request => {
                let lock = self.lock(line.arg, definitions);
                EventKind::LockRequested { lock, mode: LockMode::Exclusive, site }
            }
            Op::Acquire => {
                let lock = self.lock(line.arg, definitions);
                let seq = Some(self.next_seq(lock));
                EventKind::LockAcquired {
                    lock,
                    mode: LockMode::Exclusive,
                    site,
                    seq,
                    via_try: false,
                }
            }
            Op::Release => {
                let lock = self.lock(line.arg, definitions);
                let seq = Some(self.next_seq(lock));
                EventKind::LockReleased { lock, mode: LockMode::Exclusive, seq, poisoned: false }
            }
            Op::Fork => {
                let child = self.thread(line.arg, definitions);
                EventKind::ThreadSpawned { thread: child, site: Some(site) }
            }
            Op::Join => {
                let child = self.thread(line.arg, definitions);
                EventKind::ThreadJoined { thread: child, site: Some(site) }
            }
            Op::Begin | Op::End => {
                let label = if line.op == Op::Begin { "begin" } else { "end" };
                let label = self.string(label, definitions);
                EventKind::Mark { label, site: Some(site) }
            }
        };
        Event { time_ns: self.line_no, thread, task: None, kind }
    }

    fn next_seq(&mut self, lock: LockId) -> NonZeroU64 {
        let last = self.lock_seqs.entry(lock).or_insert(0);
        let seq = NonZeroU64::MIN.saturating_add(*last);
        *last = seq.get();
        seq
    }

    fn string(&mut self, text: &str, definitions: &mut Vec<Definition>) -> StringId {
        if let Some(id) = self.strings.get(text) {
            return *id;
        }
        let id = StringId(self.strings.len() as u32);
        self.strings.insert(text.to_owned(), id);
        definitions.push(Definition::String { id, text: text.to_owned() });
        id
    }

    fn thread(&mut self, name: &str, definitions: &mut Vec<Definition>) -> ThreadId {
        if let Some(id) = self.threads.get(name) {
            return *id;
        }
        let id = ThreadId(self.threads.len() as u32);
        let name_id = self.string(name, definitions);
        self.threads.insert(name.to_owned(), id);
        definitions.push(Definition::Thread(ThreadDef { id, name: Some(name_id), os_id: 0 }));
        id
    }

    fn lock(&mut self, name: &str, definitions: &mut Vec<Definition>) -> LockId {
        if let Some(id) = self.locks.get(name) {
            return *id;
        }
        let id = LockId(self.locks.len() as u32);
        let name_id = self.string(name, definitions);
        self.locks.insert(name.to_owned(), id);
        definitions.push(Definition::Lock(LockDef {
            id,
            kind: LockKind::Mutex,
            blocking: true,
            name: Some(name_id),
            site: None,
        }));
        id
    }

    fn var(&mut self, name: &str, definitions: &mut Vec<Definition>) -> VarId {
        if let Some(id) = self.vars.get(name) {
            return *id;
        }
        let id = VarId(self.vars.len() as u32);
        let name_id = self.string(name, definitions);
        self.vars.insert(name.to_owned(), id);
        definitions.push(Definition::Variable(VarDef { id, name: name_id, site: None }));
        id
    }

    fn site(&mut self, loc: u32, definitions: &mut Vec<Definition>) -> SiteId {
        if let Some(id) = self.sites.get(&loc) {
            return *id;
        }
        let file = match self.file_string {
            Some(file) => file,
            None => {
                let path = self.path.clone();
                let file = self.string(&path, definitions);
                self.file_string = Some(file);
                file
            }
        };
        let id = SiteId(self.sites.len() as u32);
        self.sites.insert(loc, id);
        definitions.push(Definition::Site(SiteDef { id, file, line: loc, col: 0, function: None }));
        id
    }
}

impl<R: BufRead> Iterator for StdReader<R> {
    type Item = Result<Item, StdError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if let Err(error) = self.read_batch() {
                self.done = true;
                self.pending.clear();
                return Some(Err(error));
            }
        }
    }
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
    let mut items = reader.by_ref().peekable();
    if items.peek().is_none() {
        return Err(ConvertError::Empty { path: input.display().to_string() });
    }
    let out = crate::output::Output::create(output).map_err(write_error)?;
    let mut writer = TraceWriter::new(out, &header).map_err(write_error)?;
    let mut events = 0;
    for item in items {
        match item? {
            Item::Definitions(definitions) => {
                writer.write_definitions(&definitions).map_err(write_error)?
            }
            Item::Events(batch) => {
                events += batch.len() as u64;
                writer.write_events(&batch).map_err(write_error)?
            }
            Item::Watermark { time_ns } => writer.write_watermark(time_ns).map_err(write_error)?,
        }
    }
    writer.flush().map_err(write_error)?;
    writer.into_inner().commit().map_err(write_error)?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Item>, StdError> {
        StdReader::new(text.as_bytes(), "t.std").collect()
    }

    #[test]
    fn lines_become_definitions_and_events_in_file_order() {
        let items =
            read("T0|fork(T1)|1\nT1|acq(L)|2\nT1|w(x)|3\nT1|rel(L)|4\n\nT0|join(T1)|5\n").unwrap();
        let events: Vec<Event> = items
            .iter()
            .filter_map(|item| match item {
                Item::Events(events) => Some(events.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].kind.name(), "thread_spawned");
        assert_eq!(events[1].kind.lock_seq(), Some((LockId(0), NonZeroU64::MIN)));
        assert_eq!(events[3].kind.lock_seq(), NonZeroU64::new(2).map(|seq| (LockId(0), seq)));
        assert_eq!(events[4].time_ns, 6, "times are line numbers, blank lines counted");
        assert!(matches!(items[0], Item::Definitions(_)));
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
    }

    #[test]
    fn std_text_is_told_apart_from_binary_traces() {
        assert!(looks_like_std(b"\n T0|acq(l0)|12\nT1|rel(l0)|13"));
        assert!(!looks_like_std(b"HSTR\x01\x00\x00\x00"));
        assert!(!looks_like_std(b"hello world"));
        assert!(!looks_like_std(b""));
    }
}
