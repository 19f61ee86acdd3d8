//! The writer thread (`hindsight-writer`): drains every thread's ring each flush interval
//! (or sooner, when asked or when a ring fills up) and writes what it drained.
//!
//! Draining ([`Collector`]) is separate from writing ([`StreamSink`]), so that another sink
//! (an in-memory flight recorder) can take the same batches. One round:
//!
//! 1. drain all rings into memory (and claim stale held events);
//! 2. take the definitions made since the last round — after step 1, so every id an event of
//!    this round carries is defined by now;
//! 3. write the definitions chunk, then one event chunk per thread, then a watermark.

use crate::clock;
use crate::format::{Definition, Event, EventKind, Header, ThreadId, TraceWriter};
use crate::ring::{RawEvent, Ring};
use crate::session::{self, Session};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// What one round drained.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Definitions made since the previous round.
    pub(crate) definitions: Vec<Definition>,
    /// Events, thread after thread, each thread's in its program order.
    pub(crate) events: Vec<Event>,
    /// Every event recorded before this time (ns) has been drained, as far as the writer can
    /// tell (see [`Collector::collect`]).
    pub(crate) watermark: u64,
    /// Events the rings dropped since the previous round (the sum of this round's gaps).
    pub(crate) dropped: u64,
}

/// Drains a session's rings.
#[derive(Debug)]
pub(crate) struct Collector {
    session: Arc<Session>,
    scratch: Vec<RawEvent>,
    previous_round: u64,
    watermark: u64,
}

impl Collector {
    /// A collector of `session`.
    pub(crate) fn new(session: Arc<Session>) -> Collector {
        let previous_round = session.start_ticks;
        Collector { session, scratch: Vec::new(), previous_round, watermark: 0 }
    }

    /// One round. With `last`, held events are claimed however fresh they are.
    ///
    /// The watermark is the start of the *previous* round (or the oldest event still held,
    /// if older): an event is stamped a moment before it is pushed, and one round interval is
    /// the slack allowed for that moment.
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
        let mut batch = Batch::default();
        let mut oldest_held = self.previous_round;
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
            }
        }
        batch.definitions = session::lock(&self.session.registry).take_unwritten();
        let watermark = if last { now } else { oldest_held };
        self.watermark = self.watermark.max(clock::to_nanos(start, watermark));
        batch.watermark = self.watermark;
        self.previous_round = now;
        batch
    }
}

/// Writes batches to a trace file as they come (streaming mode).
#[derive(Debug)]
pub(crate) struct StreamSink<W: Write> {
    writer: TraceWriter<W>,
}

impl<W: Write> StreamSink<W> {
    /// Starts the trace: preamble and header.
    pub(crate) fn new(out: W, header: &Header) -> io::Result<Self> {
        Ok(StreamSink { writer: TraceWriter::new(out, header)? })
    }

    /// Writes one round and makes it reach the file.
    pub(crate) fn write(&mut self, batch: &Batch) -> io::Result<()> {
        if !batch.definitions.is_empty() {
            self.writer.write_definitions(&batch.definitions)?;
        }
        if !batch.events.is_empty() {
            self.writer.write_events(&batch.events)?;
        }
        self.writer.write_watermark(batch.watermark)?;
        self.writer.flush()
    }

    /// Bytes written so far.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }
}

/// What the writer thread did, reported when it stops.
#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    /// Events written.
    pub(crate) events: u64,
    /// Events the rings dropped (written as gaps).
    pub(crate) dropped: u64,
    /// Bytes of the trace.
    pub(crate) bytes: u64,
    /// The first write error; after it nothing more was written.
    pub(crate) error: Option<io::Error>,
}

/// Runs the writer loop on a new thread named `hindsight-writer`.
pub(crate) fn spawn<W: Write + Send + 'static>(
    session: Arc<Session>,
    mut sink: StreamSink<W>,
    interval: Duration,
) -> io::Result<std::thread::JoinHandle<WriterReport>> {
    let handle = std::thread::Builder::new().name("hindsight-writer".into()).spawn({
        let session = session.clone();
        move || {
            let mut collector = Collector::new(session.clone());
            let mut report = WriterReport::default();
            loop {
                let (ticket, stop) = session.pending_work();
                let batch = collector.collect(stop);
                report.dropped += batch.dropped;
                if report.error.is_none() {
                    match sink.write(&batch) {
                        Ok(()) => report.events += batch.events.len() as u64,
                        Err(e) => report.error = Some(e),
                    }
                }
                session.complete(ticket);
                if stop {
                    break;
                }
                std::thread::park_timeout(interval);
            }
            report.bytes = sink.bytes_written();
            report
        }
    })?;
    session.set_writer(handle.thread().clone());
    Ok(handle)
}
