//! The flight recorder's sink: the newest rounds of events, encoded, in a bounded queue; and
//! the dumps it writes from them.
//!
//! Each writer round is encoded at once into the chunks a trace file would hold (event
//! batches and a watermark, about five bytes per event) and queued. Whole rounds are let go
//! from the front while the queue holds more than [`FlightRecorder::max_bytes`] (the newest
//! round of program events always stays, and a round of only marks or gaps joins it), and while the oldest round is more than
//! [`FlightRecorder::max_age`] older than the newest event of the program — so a hung,
//! quiet program keeps the activity that led to the hang.
//!
//! # Dumps
//!
//! A dump is a complete trace: the preamble and header, then every definition the registry
//! keeps — those of the entities still alive, and of ended ones for as long as a queued round
//! may hold an event that uses them (the sink tells the registry its oldest round kept,
//! [`Sink::kept_from`]), so every id the queued events use is defined, also long after its
//! entity ended — then the queued chunks as they are, then a watermark. The writer drained
//! all rings and added the trigger's mark just before, so the dump ends with the last events
//! of every thread, blocked ones included.
//!
//! For a trace path `DIR/NAME.trace` (or `DIR/NAME`), dumps are `DIR/NAME.1.trace`,
//! `DIR/NAME.2.trace`, ...: the first number whose file does not exist yet, so neither a
//! second dump nor a restarted process overwrites an earlier one. Each is written to
//! `DIR/NAME.<n>.trace.tmp` and then published under its final name with a hard link (which
//! fails rather than replace a file) or, where the file system has none, a rename; a reader
//! never sees a half-written dump under the final name.

use crate::format::{Header, TraceWriter};
use crate::mode::FlightRecorder;
use crate::session::{self, Session};
use crate::trigger::DumpError;
use crate::writer::{Batch, Sink};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The highest dump number tried before giving up.
const MAX_NUMBER: u32 = 100_000;

/// One writer round, encoded.
#[derive(Debug)]
struct Round {
    /// The number of the writer round it starts with (later rounds of only marks may join it).
    first: u64,
    chunks: Box<[u8]>,
    /// The newest program event of the round (ns); marks and gaps do not count.
    newest: u64,
}

/// The flight recorder (see the module docs).
#[derive(Debug)]
pub(crate) struct FlightSink {
    base: PathBuf,
    header: Header,
    encoder: TraceWriter<Vec<u8>>,
    rounds: VecDeque<Round>,
    bytes: u64,
    max_bytes: u64,
    max_age_ns: Option<u64>,
    max_dumps: u32,
    dumps: u32,
    next_number: u32,
    /// The newest program event kept (ns).
    newest: u64,
    /// The latest round's collection time (ns), for the dump's final watermark.
    now: u64,
    /// The number of the next writer round.
    next_round: u64,
    bytes_written: u64,
}

impl FlightSink {
    /// A flight recorder whose dumps are named after `base` (see the module docs), which
    /// must be in an existing directory.
    pub(crate) fn new(base: PathBuf, header: Header, config: &FlightRecorder) -> io::Result<Self> {
        let directory = match base.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !std::fs::metadata(directory)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        let mut encoder = TraceWriter::new(Vec::new(), &header)?;
        // The encoder's own preamble and header are not wanted: only the chunks that follow.
        encoder.get_mut().clear();
        Ok(FlightSink {
            base,
            header,
            encoder,
            rounds: VecDeque::new(),
            bytes: 0,
            max_bytes: config.max_bytes,
            max_age_ns: config.max_age.map(|age| age.as_nanos().min(u64::MAX as u128) as u64),
            max_dumps: config.max_dumps,
            dumps: 0,
            next_number: 1,
            newest: 0,
            now: 0,
            next_round: 0,
            bytes_written: 0,
        })
    }

    /// Bytes of encoded events held.
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.bytes
    }

    fn evict(&mut self) {
        while self.rounds.len() > 1 {
            let Some(front) = self.rounds.front() else { break };
            let too_old = self.max_age_ns.is_some_and(|age| front.newest + age < self.newest);
            if self.bytes <= self.max_bytes && !too_old {
                break;
            }
            self.bytes -= front.chunks.len() as u64;
            self.rounds.pop_front();
        }
    }

    /// Writes a dump to a fresh temporary file and publishes it; the published path.
    fn write_dump(&mut self, session: &Session) -> Result<PathBuf, (PathBuf, io::Error)> {
        let definitions = session::lock(&session.registry).all();
        let (mut number, temporary, file) = self.create_temporary()?;
        let written = (|| {
            let mut writer =
                TraceWriter::new(BufWriter::with_capacity(1 << 16, file), &self.header)?;
            writer.write_definitions(&definitions)?;
            for round in &self.rounds {
                writer.get_mut().write_all(&round.chunks)?;
            }
            writer.write_watermark(self.now)?;
            let mut out = writer.into_inner();
            out.flush()?;
            Ok(out.get_ref().metadata()?.len())
        })();
        let published = written.and_then(|bytes| {
            loop {
                let path = dump_path(&self.base, number);
                match std::fs::hard_link(&temporary, &path) {
                    Ok(()) => break Ok((path, bytes)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && number < MAX_NUMBER => {
                        number += 1
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => break Err(e),
                    // No hard links here: publish by renaming, unless the name was taken.
                    Err(_) if !path.exists() => {
                        break std::fs::rename(&temporary, &path).map(|()| (path, bytes))
                    }
                    Err(e) => break Err(e),
                }
            }
        });
        let _ = std::fs::remove_file(&temporary);
        let (path, bytes) = published.map_err(|e| (dump_path(&self.base, number), e))?;
        self.next_number = number + 1;
        self.bytes_written += bytes;
        Ok(path)
    }

    /// Creates the temporary file of the first free dump number.
    fn create_temporary(&self) -> Result<(u32, PathBuf, File), (PathBuf, io::Error)> {
        let mut number = self.next_number;
        loop {
            let path = dump_path(&self.base, number);
            let mut temporary = path.clone().into_os_string();
            temporary.push(".tmp");
            let temporary = PathBuf::from(temporary);
            let taken = path.exists();
            if !taken {
                match OpenOptions::new().write(true).create_new(true).open(&temporary) {
                    Ok(file) => return Ok((number, temporary, file)),
                    // Another process is writing this number: try the next.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err((path, e)),
                }
            }
            if number >= MAX_NUMBER {
                let e = io::Error::new(io::ErrorKind::AlreadyExists, "every dump number is taken");
                return Err((path, e));
            }
            number += 1;
        }
    }
}

impl Sink for FlightSink {
    fn write(&mut self, batch: &Batch) -> io::Result<()> {
        self.now = self.now.max(batch.now);
        self.next_round = self.next_round.max(batch.number + 1);
        if batch.events.is_empty() {
            return Ok(());
        }
        let newest = batch
            .events
            .iter()
            .filter(|e| {
                !matches!(
                    e.kind,
                    crate::format::EventKind::Mark { .. } | crate::format::EventKind::Gap { .. }
                )
            })
            .map(|e| e.time_ns)
            .max();
        self.newest = self.newest.max(newest.unwrap_or(0));
        self.encoder.write_events(&batch.events)?;
        self.encoder.write_watermark(batch.watermark)?;
        let chunks = std::mem::take(self.encoder.get_mut());
        self.bytes += chunks.len() as u64;
        match (newest, self.rounds.back_mut()) {
            // Only marks and gaps (a dump's trigger mark, written after the final drain):
            // they join the newest round rather than become it, or eviction would keep the
            // mark and let go of the events it marks.
            (None, Some(last)) => {
                let mut joined = std::mem::take(&mut last.chunks).into_vec();
                joined.extend_from_slice(&chunks);
                last.chunks = joined.into_boxed_slice();
            }
            _ => self.rounds.push_back(Round {
                first: batch.number,
                chunks: chunks.into_boxed_slice(),
                newest: newest.unwrap_or(self.newest),
            }),
        }
        self.evict();
        Ok(())
    }

    fn may_dump(&self) -> Result<(), DumpError> {
        if self.dumps >= self.max_dumps {
            return Err(DumpError::Limit { max: self.max_dumps });
        }
        Ok(())
    }

    fn dump(&mut self, session: &Session) -> Result<PathBuf, (PathBuf, io::Error)> {
        let path = self.write_dump(session)?;
        self.dumps += 1;
        Ok(path)
    }

    fn dumps_to_new_files(&self) -> bool {
        true
    }

    fn path(&self) -> &Path {
        &self.base
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn kept_from(&self) -> Option<u64> {
        Some(self.rounds.front().map_or(self.next_round, |round| round.first))
    }
}

/// The file of dump `number` for the trace path `base`: `NAME.trace` becomes
/// `NAME.<number>.trace`; a path without the `.trace` extension gets `.<number>.trace`
/// appended.
pub(crate) fn dump_path(base: &Path, number: u32) -> PathBuf {
    let stem = if base.extension().is_some_and(|e| e == "trace") {
        base.with_extension("")
    } else {
        base.to_owned()
    };
    let mut name = OsString::from(stem);
    name.push(format!(".{number}.trace"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Event, EventKind, ThreadId};

    #[test]
    fn dump_names_are_numbered_after_the_trace_path() {
        assert_eq!(
            dump_path(Path::new("/var/tmp/svc.trace"), 1),
            Path::new("/var/tmp/svc.1.trace")
        );
        assert_eq!(dump_path(Path::new("svc"), 12), Path::new("svc.12.trace"));
        assert_eq!(dump_path(Path::new("a.b.trace"), 2), Path::new("a.b.2.trace"));
        assert_eq!(dump_path(Path::new("x.log"), 3), Path::new("x.log.3.trace"));
    }

    fn round(time_ns: u64, events: usize) -> Batch {
        let kind = EventKind::ThreadStarted;
        let events = (0..events)
            .map(|i| Event { time_ns: time_ns + i as u64, thread: ThreadId(0), task: None, kind })
            .collect();
        Batch { events, now: time_ns, watermark: time_ns, ..Batch::default() }
    }

    #[test]
    fn the_queue_keeps_the_newest_rounds_within_its_bounds() {
        let dir = std::env::temp_dir();
        let config = FlightRecorder::default()
            .max_bytes(64 << 10)
            .max_age(Some(std::time::Duration::from_secs(1)));
        let mut sink =
            FlightSink::new(dir.join("unused.trace"), Header::default(), &config).unwrap();
        for i in 0..200 {
            sink.write(&round(i * 1_000_000, 1000)).unwrap();
            assert!(sink.held_bytes() <= 64 << 10 || sink.rounds.len() == 1);
        }
        assert!(sink.rounds.len() < 200, "older rounds were let go");
        // One second of age: rounds 1 ms apart, so at most about a thousand would stay; the
        // size bound is the tighter one here.
        sink.write(&round(10_000_000_000, 10)).unwrap();
        assert_eq!(sink.rounds.len(), 1, "everything more than a second older went");
    }

    /// A writer starved under load drains everything in one round larger than the bound; the
    /// dump's trigger mark comes in a round of its own right after. The mark must not push out
    /// the events it marks (it once did: a dump of a busy program held no events at all).
    #[test]
    fn a_round_of_only_marks_joins_the_newest_round_instead_of_evicting_it() {
        let config = FlightRecorder::default().max_bytes(4 << 10);
        let mut sink =
            FlightSink::new(std::env::temp_dir().join("unused.trace"), Header::default(), &config)
                .unwrap();
        sink.write(&round(1_000, 5_000)).unwrap();
        assert!(sink.held_bytes() > 4 << 10, "one oversized round stays whole");
        let label = crate::format::StringId(0);
        let mark = Event {
            time_ns: 10_000,
            thread: ThreadId(1),
            task: None,
            kind: EventKind::Mark { label, site: None },
        };
        sink.write(&Batch {
            events: vec![mark],
            now: 10_000,
            watermark: 10_000,
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(sink.rounds.len(), 1, "the mark joined the round of events");
        assert!(sink.held_bytes() > 4 << 10, "and the events are still held");
    }
}
