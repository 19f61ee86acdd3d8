//! The writer thread (`hindsight-writer`): drains every thread's ring each flush interval
//! (or sooner, when asked or when a ring fills up) and hands what it drained to a [`Sink`]:
//! the trace file ([`StreamSink`], streaming mode) or the flight recorder's memory
//! ([`FlightSink`](crate::flight::FlightSink)). One round:
//!
//! 1. drain all rings into memory (and claim stale held events);
//! 2. take the definitions made since the last round — after step 1, so every id an event of
//!    this round carries is defined by now — and tell the registry how far the rounds have
//!    drained the events of retired entities (see [`crate::registry`]);
//! 3. add the marks of the triggers asked for since the last round, as events of the writer's
//!    own thread (with their definitions);
//! 4. give the round to the sink (streaming: definitions chunk, one event chunk per thread,
//!    a watermark), let the registry forget the retired definitions that the sink no longer
//!    needs, and, if triggers came, have the sink dump.
//!
//! # When writing fails
//!
//! The writer never panics and never blocks the program (only itself) on I/O. When the trace
//! file cannot be written (a full disk, a vanished directory), it says so once on standard
//! error, stops writing, and from then on counts every event it drains as dropped. A dump
//! that cannot be written is lost, said once too; the flight recorder goes on.

use crate::clock;
use crate::format::{Definition, Event, EventKind, Header, ThreadId, TraceWriter};
use crate::registry::Entity;
use crate::ring::{RawEvent, Ring};
use crate::session::{self, DumpOutcome, Session};
use crate::trigger::{DumpError, DumpRequest};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What one round drained.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The round's number, counting from 1.
    pub(crate) number: u64,
    /// Definitions made since the previous round.
    pub(crate) definitions: Vec<Definition>,
    /// Events, thread after thread, each thread's in its program order.
    pub(crate) events: Vec<Event>,
    /// Every event recorded before this time (ns) has been drained, as far as the writer can
    /// tell (see [`Collector::collect`]).
    pub(crate) watermark: u64,
    /// Events the rings dropped since the previous round (the sum of this round's gaps).
    pub(crate) dropped: u64,
    /// When the round was collected (ns).
    pub(crate) now: u64,
}

impl Batch {
    /// Events of the round that are not gap markers.
    fn recorded(&self) -> u64 {
        let gaps = self.events.iter().filter(|e| matches!(e.kind, EventKind::Gap { .. })).count();
        (self.events.len() - gaps) as u64
    }
}

/// Drains a session's rings.
#[derive(Debug)]
pub(crate) struct Collector {
    session: Arc<Session>,
    scratch: Vec<RawEvent>,
    previous_round: u64,
    /// Rounds collected so far.
    rounds: u64,
    watermark: u64,
    /// The writer's own thread, once a mark needed it.
    own_thread: Option<ThreadId>,
    /// The events vector of the previous round, emptied, for the next: a busy program's
    /// rounds are large, and growing a vector from nothing each round copies it over and
    /// over. Bounded by what the rings hold.
    spare_events: Vec<Event>,
}

impl Collector {
    /// A collector of `session`.
    pub(crate) fn new(session: Arc<Session>) -> Collector {
        let previous_round = session.start_ticks;
        Collector {
            session,
            scratch: Vec::new(),
            previous_round,
            rounds: 0,
            watermark: 0,
            own_thread: None,
            spare_events: Vec::new(),
        }
    }

    /// Takes back the vectors of a round that has been written, for the next round.
    pub(crate) fn recycle(&mut self, mut batch: Batch) {
        batch.events.clear();
        self.spare_events = batch.events;
    }

    /// One round. With `last`, held events are claimed however fresh they are.
    ///
    /// The watermark is the start of the *previous* round (or the oldest event still held,
    /// if older): an event is stamped a moment before it is pushed, and one round interval is
    /// the slack allowed for that moment.
    ///
    /// An entity retires after every event its parties recorded with its id was pushed: one
    /// retired before the round began (and before the oldest event still held) is used by no
    /// event of a later round than the next one (see
    /// [`Registry::drained`](crate::registry::Registry::drained)). The registry is told so
    /// with a margin of one held-events claim interval, for events of others that can race
    /// with the end (a tokio waker firing as its task finishes).
    pub(crate) fn collect(&mut self, last: bool) -> Batch {
        let now = clock::ticks();
        let rings: Vec<(ThreadId, Arc<Ring>)> = {
            let mut rings = session::lock(&self.session.rings);
            let snapshot = rings.clone();
            rings.retain(|(_, ring)| !ring.is_finished());
            snapshot
        };
        let start = self.session.start_ticks;
        let claim_after = self.session.held_claim_ticks;
        let mut batch =
            Batch { events: std::mem::take(&mut self.spare_events), ..Batch::default() };
        let mut oldest_held = self.previous_round;
        // Events pushed before the round began have been drained (or are held since then).
        let mut drained_before = now;
        for (thread, ring) in &rings {
            self.scratch.clear();
            let dropped = ring
                .drain(&mut self.scratch, |since| last || now.saturating_sub(since) >= claim_after);
            let mut last_time = 0;
            for raw in &self.scratch {
                match raw.kind {
                    RawEvent::NOTHING => continue,
                    EventKind::Gap { dropped } => batch.dropped += dropped,
                    _ => {}
                }
                last_time = clock::to_nanos(start, raw.ticks);
                batch.events.push(Event {
                    time_ns: last_time,
                    thread: *thread,
                    task: raw.task,
                    kind: raw.kind,
                });
            }
            if dropped > 0 {
                let time_ns = last_time.max(clock::to_nanos(start, now));
                let kind = EventKind::Gap { dropped };
                batch.events.push(Event { time_ns, thread: *thread, task: None, kind });
                batch.dropped += dropped;
            }
            if let Some(held) = ring.oldest_held() {
                oldest_held = oldest_held.min(held);
                drained_before = drained_before.min(held);
            }
        }
        self.rounds += 1;
        batch.number = self.rounds;
        let watermark = if last { now } else { oldest_held };
        {
            let mut registry = session::lock(&self.session.registry);
            batch.definitions = registry.take_unwritten();
            let horizon = drained_before.saturating_sub(self.session.held_claim_ticks);
            registry.drained(self.rounds, horizon);
        }
        self.watermark = self.watermark.max(clock::to_nanos(start, watermark));
        batch.watermark = self.watermark;
        batch.now = clock::to_nanos(start, now);
        self.previous_round = now;
        batch
    }

    /// Adds the marks of `requests` to `batch`, now, as events of the writer's own thread.
    pub(crate) fn add_marks(&mut self, batch: &mut Batch, requests: &[DumpRequest]) {
        if requests.is_empty() {
            return;
        }
        let mut registry = session::lock(&self.session.registry);
        let thread = *self.own_thread.get_or_insert_with(|| {
            let current = std::thread::current();
            registry.thread(current.name(), crate::local::os_thread_id())
        });
        for request in requests {
            let label = registry.string(&request.label);
            let site =
                request.site.as_ref().map(|(f, l, c)| registry.site_by_value(f, *l, *c, None));
            let time_ns = clock::to_nanos(self.session.start_ticks, clock::ticks());
            let kind = EventKind::Mark { label, site };
            batch.events.push(Event { time_ns, thread, task: None, kind });
            // The label is used by this mark only: once its round is let go, it may go.
            registry.retire(Entity::Label(label), clock::ticks());
        }
        batch.definitions.extend(registry.take_unwritten());
    }
}

/// Where the writer's rounds go.
pub(crate) trait Sink: Send {
    /// Takes one round.
    fn write(&mut self, batch: &Batch) -> io::Result<()>;

    /// Whether a dump may be made now (the flight recorder writes at most so many).
    fn may_dump(&self) -> Result<(), DumpError>;

    /// Makes a trace of what the sink holds, right after a round that carried the triggers'
    /// marks. The stream is its own trace already: it only names its file.
    fn dump(&mut self, session: &Session) -> Result<PathBuf, (PathBuf, io::Error)>;

    /// Whether a dump is a new file (rather than the stream itself).
    fn dumps_to_new_files(&self) -> bool;

    /// The trace file, or the base name of the dumps.
    fn path(&self) -> &Path;

    /// Bytes written to files so far.
    fn bytes_written(&self) -> u64;

    /// The oldest round whose events the sink still holds for a later output (a dump), or
    /// `None` if it holds none (the stream's events are in the file already): definitions of
    /// retired entities used only by older rounds may be forgotten.
    fn kept_from(&self) -> Option<u64>;
}

/// Writes batches to a trace file as they come (streaming mode).
#[derive(Debug)]
pub(crate) struct StreamSink<W: Write> {
    writer: TraceWriter<W>,
    path: PathBuf,
}

impl<W: Write> StreamSink<W> {
    /// Starts the trace `path`: preamble and header.
    pub(crate) fn new(out: W, header: &Header, path: PathBuf) -> io::Result<Self> {
        Ok(StreamSink { writer: TraceWriter::new(out, header)?, path })
    }
}

impl<W: Write + Send> Sink for StreamSink<W> {
    fn write(&mut self, batch: &Batch) -> io::Result<()> {
        if !batch.definitions.is_empty() {
            self.writer.write_definitions(&batch.definitions)?;
        }
        if !batch.events.is_empty() {
            self.writer.write_events(&batch.events)?;
        }
        self.writer.write_watermark(batch.watermark)?;
        self.writer.flush()
    }

    fn may_dump(&self) -> Result<(), DumpError> {
        Ok(())
    }

    fn dump(&mut self, _session: &Session) -> Result<PathBuf, (PathBuf, io::Error)> {
        Ok(self.path.clone())
    }

    fn dumps_to_new_files(&self) -> bool {
        false
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }

    fn kept_from(&self) -> Option<u64> {
        None
    }
}

/// What the writer thread did, reported when it stops.
#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    /// Events drained (gap markers excluded).
    pub(crate) events: u64,
    /// Events lost: dropped by full rings (written as gaps), and every event drained after
    /// writing failed.
    pub(crate) dropped: u64,
    /// Bytes written to files.
    pub(crate) bytes: u64,
    /// Dumps written.
    pub(crate) dumps: u64,
    /// The first write error of the stream; after it nothing more was written.
    pub(crate) error: Option<io::Error>,
}

/// The writer's loop, and what it says on standard error (once each).
struct Writer {
    session: Arc<Session>,
    collector: Collector,
    sink: Box<dyn Sink>,
    report: WriterReport,
    dump_failure_said: bool,
    limit_said: bool,
}

impl Writer {
    fn round(&mut self) -> bool {
        let work = self.session.take_work();
        let (tickets, requests): (Vec<u64>, Vec<DumpRequest>) = work.dumps.into_iter().unzip();
        let refused = if requests.is_empty() { Ok(()) } else { self.sink.may_dump() };
        let mut batch = self.collector.collect(work.stop);
        if refused.is_ok() {
            self.collector.add_marks(&mut batch, &requests);
        }
        self.report.dropped += batch.dropped;
        if self.report.error.is_none() {
            self.report.events += batch.recorded();
            if let Err(e) = self.sink.write(&batch) {
                say(format_args!(
                    "cannot write trace to {}: {e}; recording stops, events are counted as dropped",
                    self.sink.path().display()
                ));
                self.report.dropped += batch.recorded();
                self.report.error = Some(e);
            }
        } else {
            self.report.dropped += batch.recorded();
        }
        self.collector.recycle(batch);
        let kept_from = self.sink.kept_from();
        session::lock(&self.session.registry).forget_retired(kept_from);
        if !requests.is_empty() {
            let outcome = match refused {
                Ok(()) => self.dump(),
                Err(e) => {
                    if !self.limit_said {
                        self.limit_said = true;
                        say(format_args!("{e}; later triggers are ignored"));
                    }
                    Err(e)
                }
            };
            self.session.dumped(&tickets, &outcome, self.sink.dumps_to_new_files());
        }
        self.session.complete(work.ticket);
        !work.stop
    }

    fn dump(&mut self) -> DumpOutcome {
        if let Some(e) = &self.report.error {
            return Err(DumpError::Write {
                path: self.sink.path().to_owned(),
                reason: e.to_string(),
            });
        }
        match self.sink.dump(&self.session) {
            Ok(path) => {
                if self.sink.dumps_to_new_files() {
                    self.report.dumps += 1;
                }
                Ok(path)
            }
            Err((path, e)) => {
                if !self.dump_failure_said {
                    self.dump_failure_said = true;
                    say(format_args!(
                        "cannot write trace to {}: {e}; this dump is lost, recording goes on",
                        path.display()
                    ));
                }
                Err(DumpError::Write { path, reason: e.to_string() })
            }
        }
    }
}

/// Says `message` on standard error, prefixed with `hindsight: `; never fails.
pub(crate) fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "hindsight: {message}");
}

/// Runs the writer loop on a new thread named `hindsight-writer`.
pub(crate) fn spawn(
    session: Arc<Session>,
    sink: Box<dyn Sink>,
    interval: Duration,
) -> io::Result<std::thread::JoinHandle<WriterReport>> {
    let handle = std::thread::Builder::new().name("hindsight-writer".into()).spawn({
        let session = session.clone();
        move || {
            let collector = Collector::new(session.clone());
            let mut writer = Writer {
                session,
                collector,
                sink,
                report: WriterReport::default(),
                dump_failure_said: false,
                limit_said: false,
            };
            while writer.round() {
                std::thread::park_timeout(interval);
            }
            writer.report.bytes = writer.sink.bytes_written();
            writer.report
        }
    })?;
    session.set_writer(handle.thread().clone());
    Ok(handle)
}
