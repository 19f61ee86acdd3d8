//! The timeline as Chrome trace-event JSON, the format Perfetto's UI, `chrome://tracing` and
//! speedscope read: `{"traceEvents": [...], "displayTimeUnit": "ns"}`, times in microseconds.
//!
//! # Lanes
//!
//! Each traced process is a `pid` (named `PROGRAM (pid N)`); in it, each OS thread is a lane
//! (`tid` = its merged thread id + 1, named after the thread) and so is each async task (`tid`
//! = [`TASK_TID_BASE`] + its task id, named `task NAME`): a task migrates between worker threads,
//! so what it holds and waits for is drawn on its own lane. Lanes appear as their first event
//! is replayed.
//!
//! # Events
//!
//! - `hold LOCK` (category `hold`): a complete (`X`) event from the acquisition to the release,
//!   on the lane of the thread or task that holds it; args `lock`, `mode`, `site` (where it was
//!   acquired, `file:line:col`), and `outcome`, `poisoned`, `released_by`, `try_lock` where
//!   they apply;
//! - `wait LOCK` (category `wait`): from the request to the acquisition (or to giving up);
//!   args `lock`, `mode`, `site` (where it was requested) and `outcome`;
//! - `join thread NAME` and `join task NAME` (category `wait`): from the join's start to its
//!   end, waiting for a thread or task to finish; args `thread` or `task`, `site` and
//!   `outcome`;
//! - `poll TASK` (category `poll`): a poll, on the lane of the thread that ran it; args `task`
//!   and `outcome` (`ready` or `pending`);
//! - instant (`i`) events for marks (category `mark`, on their lane), lost events (`gap`), and
//!   each finding of the analysis (category `finding`, global, named by its title; args `kind`,
//!   `severity`, `locks`, `threads`, `tasks`, `variables`, `sites`, `evidence`).
//!
//! Slices still open when the trace ends are closed at its end with the arg
//! `"open_at_end": true`. The complete events of a lane always nest, as the format requires: a
//! slice that outlives the one it started in (a lock released out of order) is cut into
//! pieces, marked `continues` and `continued`.
//!
//! # Memory
//!
//! Events are written as replay goes, through serde one at a time; the exporter keeps only the
//! slices open now, per lane. The findings come from the same detectors as
//! [`analyze`](crate::analyze()) (with the default thresholds), which run alongside, and are
//! written last.

use super::slices::{Closed, Lane};
use super::ExportError;
use crate::detect::{self, Context, Suite, Visitor};
use crate::replay::{Actor, Holder, Replay, State, Wait, WaitFor};
use crate::report::Finding;
use crate::trace::Trace;
use crate::AnalyzeOptions;
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId, TaskId};
use serde::Serialize;
use std::fmt;
use std::io::{self, Write};

/// The `tid` of the lane of task 0. Thread lanes' `tid`s are their thread ids plus one (so
/// none is 0, which viewers take for the idle thread): at most 2³², below every task lane's.
pub const TASK_TID_BASE: u64 = (1 << 32) + 1;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChromeSummary {
    /// What a damaged trace lost ([`Trace::damage_note`](crate::trace::Trace::damage_note)),
    /// to be said before anything else.
    pub damage: Option<String>,
    /// Trace events written, metadata included.
    pub events: u64,
    /// Lanes: threads and tasks.
    pub lanes: usize,
}

impl fmt::Display for ChromeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} events on {} lanes", self.events, self.lanes)
    }
}

/// Replays `replay` to its end and writes its timeline to `out` as Chrome trace-event JSON,
/// with the findings of the analysis run with `options`; see the module docs. A file that stops
/// being readable part-way as a whole (a malformed STD line) is an error, as in the analysis.
pub fn write<W: Write>(
    mut replay: Replay,
    again: Option<Replay>,
    options: &AnalyzeOptions,
    out: W,
) -> Result<ChromeSummary, ExportError> {
    let mut suite = Suite::new(options);
    let mut timeline = Timeline::new(out);
    timeline.begin(replay.trace())?;
    while let Some(event) = replay.next_event() {
        let cx = Context { trace: replay.trace(), state: replay.state() };
        suite.visit(&cx, &event);
        let wait_before = timeline.before(replay.state(), &event);
        replay.apply(&event);
        timeline.after(replay.trace(), replay.state(), &event, wait_before)?;
    }
    if let Some(error) = replay.take_error() {
        return Err(ExportError::Trace(error.into()));
    }
    if let Some(again) = again {
        suite.lock_order_mut().check_cycles(|| Ok::<_, ExportError>(again))?;
    }
    let cx = Context { trace: replay.trace(), state: replay.state() };
    let mut findings = Vec::new();
    suite.finish(&cx, &mut findings);
    Ok(timeline.finish(replay.trace(), replay.state().end_ns(), &findings)?)
}

// === the trace-event format ===

/// One trace event, as the format spells it.
#[derive(Debug, Serialize)]
struct TraceEvent<'a, A> {
    name: &'a str,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    /// The scope of an instant event: `t` (its lane) or `g` (global).
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    pid: u32,
    tid: u64,
    args: A,
}

/// The args of a metadata event.
#[derive(Debug, Serialize)]
struct NameArgs<'a> {
    name: &'a str,
}

/// The args of a slice; see the module docs.
#[derive(Debug, Default, Serialize)]
struct SliceArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    released_by: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    try_lock: bool,
    #[serde(skip_serializing_if = "is_false")]
    poisoned: bool,
    #[serde(skip_serializing_if = "is_false")]
    open_at_end: bool,
    #[serde(skip_serializing_if = "is_false")]
    continued: bool,
    #[serde(skip_serializing_if = "is_false")]
    continues: bool,
}

/// The args of a mark or gap.
#[derive(Debug, Serialize)]
struct InstantArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<u64>,
}

/// The args of a finding.
#[derive(Debug, Serialize)]
struct FindingArgs<'a> {
    kind: &'static str,
    severity: &'static str,
    locks: &'a [String],
    threads: &'a [String],
    tasks: &'a [String],
    variables: &'a [String],
    /// `file:line:col (role)`.
    sites: Vec<String>,
    evidence: &'a [String],
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Nanoseconds as the format's microseconds.
fn micros(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

/// Writes trace events one at a time, separated by commas, into the `traceEvents` array.
struct Sink<W> {
    out: W,
    events: u64,
}

impl<W: Write> Sink<W> {
    fn event<A: Serialize>(&mut self, event: &TraceEvent<'_, A>) -> io::Result<()> {
        let separator: &[u8] = if self.events == 0 { b"\n" } else { b",\n" };
        self.out.write_all(separator)?;
        serde_json::to_writer(&mut self.out, event)?;
        self.events += 1;
        Ok(())
    }

    /// A metadata event naming a process (`process_name`) or a lane (`thread_name`).
    fn name(&mut self, what: &'static str, pid: u32, tid: u64, name: &str) -> io::Result<()> {
        self.event(&TraceEvent {
            name: what,
            cat: "__metadata",
            ph: "M",
            ts: 0.0,
            dur: None,
            s: None,
            pid,
            tid,
            args: NameArgs { name },
        })
    }
}

// === slices ===

/// What a slice of a lane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slice {
    /// A lock held, since `since_ns` (the acquisition's time, which identifies the hold).
    Hold { lock: LockId, mode: LockMode, site: SiteId, via_try: bool, since_ns: u64 },
    /// A wait: for a lock, or for a thread or task to finish (a join).
    Wait { target: WaitFor, site: Option<SiteId> },
    /// A task being polled (on a thread's lane).
    Poll { task: TaskId },
}

/// How a slice ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// A hold's release: by another thread or task than the holder if `by` is set.
    Released { poisoned: bool, by: Option<Actor> },
    /// A wait's or a poll's end, in words.
    Outcome(&'static str),
    /// The trace ended first.
    TraceEnd,
}

/// A lane: its slices and where it is drawn.
#[derive(Debug)]
struct LaneSlot {
    lane: Lane<Slice>,
    pid: u32,
    tid: u64,
}

/// The exporter's state while replay goes; see the module docs.
struct Timeline<W> {
    sink: Sink<W>,
    threads: Vec<Option<LaneSlot>>,
    tasks: Vec<Option<LaneSlot>>,
    lanes: usize,
    /// The holders of the lock an event releases, before it does (reused).
    holders_before: Vec<Holder>,
    /// Pieces of slices just closed (reused).
    closed: Vec<Closed<Slice>>,
}

impl<W: Write> Timeline<W> {
    fn new(out: W) -> Self {
        Timeline {
            sink: Sink { out, events: 0 },
            threads: Vec::new(),
            tasks: Vec::new(),
            lanes: 0,
            holders_before: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// Opens the document and names the processes.
    fn begin(&mut self, trace: &Trace) -> io::Result<()> {
        self.sink.out.write_all(b"{\"traceEvents\": [")?;
        for (i, process) in trace.processes().iter().enumerate() {
            let name = format!("{} (pid {})", process.header.program, process.header.pid);
            self.sink.name("process_name", pid(i), 0, &name)?;
        }
        Ok(())
    }

    /// Notes what `event` will change, before the state applies it: the holders of the lock
    /// it releases, and (returned) what its actor waits for.
    fn before(&mut self, state: &State, event: &Event) -> Option<Wait> {
        self.holders_before.clear();
        if let EventKind::LockReleased { lock, .. } = event.kind {
            if let Some(lock) = state.lock(lock) {
                self.holders_before.extend_from_slice(&lock.holders);
            }
        }
        state.actor(Actor::of(event)).and_then(|a| a.wait)
    }

    /// Writes what `event` ended and opens what it began, now that the state has applied it;
    /// `wait_before` is what its actor waited for before.
    fn after(
        &mut self,
        trace: &Trace,
        state: &State,
        event: &Event,
        wait_before: Option<Wait>,
    ) -> io::Result<()> {
        use EventKind as K;
        let actor = Actor::of(event);
        let thread = Actor::Thread(event.thread);
        let time = event.time_ns;
        self.ensure_lane(trace, thread)?;
        self.ensure_lane(trace, actor)?;
        let wait_after = state.actor(actor).and_then(|a| a.wait);
        let wait_changed = wait_before != wait_after;
        if let (true, Some(Wait { target, .. })) = (wait_changed, wait_before) {
            let outcome = match (event.kind, target) {
                (K::LockAcquired { lock: taken, .. }, WaitFor::Lock { lock, .. })
                    if taken == lock =>
                {
                    "acquired"
                }
                (K::LockTryFailed { lock: busy, .. }, WaitFor::Lock { lock, .. })
                    if busy == lock =>
                {
                    "gave up"
                }
                (K::ThreadJoined { thread: joined, .. }, WaitFor::Thread(thread))
                    if joined == thread =>
                {
                    "joined"
                }
                (K::TaskJoined { task: joined, .. }, WaitFor::Task(task)) if joined == task => {
                    "joined"
                }
                (K::Receive { channel: got, .. }, WaitFor::Message(channel)) if got == channel => {
                    "received"
                }
                _ => "stopped waiting",
            };
            let is_wait = |s: &Slice| matches!(s, Slice::Wait { .. });
            self.close(trace, actor, time, is_wait, Ending::Outcome(outcome))?;
        }
        match event.kind {
            K::LockAcquired { lock, mode, site, via_try, .. } => {
                let hold = Slice::Hold { lock, mode, site, via_try, since_ns: time };
                self.open(actor, hold, time);
            }
            K::LockReleased { lock, poisoned, .. } => {
                let after: &[Holder] = state.lock(lock).map_or(&[], |l| &l.holders);
                let released = self
                    .holders_before
                    .iter()
                    .enumerate()
                    .find(|(i, holder)| after.get(*i) != Some(holder))
                    .map(|(_, holder)| *holder);
                if let Some(Holder { actor: holder, hold }) = released {
                    let by = (holder != actor).then_some(actor);
                    let is_hold = |s: &Slice| {
                        matches!(*s, Slice::Hold { lock: l, since_ns, .. }
                            if l == lock && since_ns == hold.since_ns)
                    };
                    self.close(trace, holder, time, is_hold, Ending::Released { poisoned, by })?;
                }
            }
            K::PollStarted => {
                if let Some(task) = event.task {
                    self.open(thread, Slice::Poll { task }, time);
                }
            }
            K::PollEnded { ready } => {
                if let Some(task) = event.task {
                    let outcome = if ready { "ready" } else { "pending" };
                    let is_poll = |s: &Slice| *s == Slice::Poll { task };
                    self.close(trace, thread, time, is_poll, Ending::Outcome(outcome))?;
                }
            }
            K::TaskFinished { .. } => {
                // A poll whose end was not recorded ends with its task.
                if let Some(task) = event.task {
                    let is_poll = |s: &Slice| *s == Slice::Poll { task };
                    let finished = Ending::Outcome("task finished");
                    self.close(trace, thread, time, is_poll, finished)?;
                }
            }
            K::Mark { label, site } => {
                let args = InstantArgs { site: site.map(|s| trace.site_text(s)), dropped: None };
                self.instant(actor, trace.string(label), "mark", time, args)?;
            }
            K::Gap { dropped } => {
                let name = format!("gap: {dropped} events lost");
                self.instant(
                    thread,
                    &name,
                    "gap",
                    time,
                    InstantArgs { site: None, dropped: Some(dropped) },
                )?;
            }
            _ => {}
        }
        if let (true, Some(Wait { target, site, .. })) = (wait_changed, wait_after) {
            self.open(actor, Slice::Wait { target, site }, time);
        }
        Ok(())
    }

    /// Closes every slice still open at `end_ns`, writes the findings and ends the document.
    fn finish(
        mut self,
        trace: &Trace,
        end_ns: u64,
        findings: &[Finding],
    ) -> io::Result<ChromeSummary> {
        let lanes = self.threads.iter_mut().chain(self.tasks.iter_mut()).flatten();
        for slot in lanes {
            slot.lane.close_all(end_ns, &mut self.closed);
            for piece in self.closed.drain(..) {
                write_slice(&mut self.sink, trace, slot.pid, slot.tid, &piece, Ending::TraceEnd)?;
            }
        }
        for finding in findings {
            let sites = finding.sites.iter().map(|s| format!("{s} ({})", s.role)).collect();
            self.sink.event(&TraceEvent {
                name: &finding.title,
                cat: "finding",
                ph: "i",
                ts: micros(finding.time_ns),
                dur: None,
                s: Some("g"),
                pid: 0,
                tid: 0,
                args: FindingArgs {
                    kind: finding.kind.name(),
                    severity: finding.severity.name(),
                    locks: &finding.locks,
                    threads: &finding.threads,
                    tasks: &finding.tasks,
                    variables: &finding.variables,
                    sites,
                    evidence: &finding.evidence,
                },
            })?;
        }
        self.sink.out.write_all(b"\n],\n\"displayTimeUnit\": \"ns\"}\n")?;
        Ok(ChromeSummary {
            damage: trace.damage_note(),
            events: self.sink.events,
            lanes: self.lanes,
        })
    }

    /// The lane of `actor`, if it has one.
    fn slot(&mut self, actor: Actor) -> Option<&mut LaneSlot> {
        let (table, index) = match actor {
            Actor::Thread(t) => (&mut self.threads, t.index()),
            Actor::Task(t) => (&mut self.tasks, t.index()),
        };
        table.get_mut(index)?.as_mut()
    }

    /// Gives `actor` a lane, named, unless it has one.
    fn ensure_lane(&mut self, trace: &Trace, actor: Actor) -> io::Result<()> {
        if self.slot(actor).is_some() {
            return Ok(());
        }
        let (table, index, process, tid, name) = match actor {
            Actor::Thread(t) => (
                &mut self.threads,
                t.index(),
                trace.threads().get(t.index()).map_or(0, |t| t.process),
                u64::from(t.0) + 1,
                trace.thread_name(t),
            ),
            Actor::Task(t) => (
                &mut self.tasks,
                t.index(),
                trace.tasks().get(t.index()).map_or(0, |t| t.process),
                TASK_TID_BASE + u64::from(t.0),
                format!("task {}", trace.task_name(t)),
            ),
        };
        if table.len() <= index {
            table.resize_with(index + 1, || None);
        }
        table[index] = Some(LaneSlot { lane: Lane::new(), pid: pid(process), tid });
        self.lanes += 1;
        self.sink.name("thread_name", pid(process), tid, &name)
    }

    /// Opens a slice on `actor`'s lane (which exists).
    fn open(&mut self, actor: Actor, slice: Slice, time_ns: u64) {
        if let Some(slot) = self.slot(actor) {
            slot.lane.open(slice, time_ns);
        }
    }

    /// Closes the innermost slice of `actor`'s lane that `target` accepts, if there is one,
    /// and writes it (with the pieces of slices cut to keep the lane nested).
    fn close(
        &mut self,
        trace: &Trace,
        actor: Actor,
        time_ns: u64,
        target: impl Fn(&Slice) -> bool,
        ending: Ending,
    ) -> io::Result<()> {
        let mut closed = std::mem::take(&mut self.closed);
        let Some(slot) = self.slot(actor) else {
            self.closed = closed;
            return Ok(());
        };
        let (pid, tid) = (slot.pid, slot.tid);
        slot.lane.close(time_ns, target, &mut closed);
        let result = closed
            .drain(..)
            .try_for_each(|piece| write_slice(&mut self.sink, trace, pid, tid, &piece, ending));
        self.closed = closed;
        result
    }

    /// Writes an instant event on `actor`'s lane.
    fn instant(
        &mut self,
        actor: Actor,
        name: &str,
        cat: &'static str,
        time_ns: u64,
        args: InstantArgs,
    ) -> io::Result<()> {
        let Some(slot) = self.slot(actor) else {
            return Ok(());
        };
        let (pid, tid) = (slot.pid, slot.tid);
        self.sink.event(&TraceEvent {
            name,
            cat,
            ph: "i",
            ts: micros(time_ns),
            dur: None,
            s: Some("t"),
            pid,
            tid,
            args,
        })
    }
}

/// The `pid` of the process at `index` of the trace (0 is left for global events).
fn pid(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

/// Writes one piece of a slice as a complete event; `ending` applies unless the slice goes on
/// in a later piece.
fn write_slice<W: Write>(
    sink: &mut Sink<W>,
    trace: &Trace,
    pid: u32,
    tid: u64,
    piece: &Closed<Slice>,
    ending: Ending,
) -> io::Result<()> {
    let mut args = SliceArgs {
        continued: piece.continued,
        continues: piece.continues,
        ..SliceArgs::default()
    };
    if !piece.continues {
        match ending {
            Ending::Released { poisoned, by } => {
                args.outcome = Some("released");
                args.poisoned = poisoned;
                args.released_by = by.map(|actor| actor.describe(trace));
            }
            Ending::Outcome(outcome) => args.outcome = Some(outcome),
            Ending::TraceEnd => args.open_at_end = true,
        }
    }
    let (cat, name) = match piece.what {
        Slice::Hold { lock, mode, site, via_try, .. } => {
            let name = trace.lock_name(lock);
            args.mode = Some(detect::mode_name(mode));
            args.site = Some(trace.site_text(site));
            args.try_lock = via_try;
            let title = format!("hold {name}");
            args.lock = Some(name);
            ("hold", title)
        }
        Slice::Wait { target, site } => {
            args.site = site.map(|s| trace.site_text(s));
            let title = match target {
                WaitFor::Lock { lock, mode } => {
                    let name = trace.lock_name(lock);
                    args.mode = Some(detect::mode_name(mode));
                    let title = format!("wait {name}");
                    args.lock = Some(name);
                    title
                }
                WaitFor::Thread(thread) => {
                    let name = trace.thread_name(thread);
                    let title = format!("join thread {name}");
                    args.thread = Some(name);
                    title
                }
                WaitFor::Task(task) => {
                    let name = trace.task_name(task);
                    let title = format!("join task {name}");
                    args.task = Some(name);
                    title
                }
                WaitFor::Message(channel) => format!("receive {}", trace.channel_name(channel)),
            };
            ("wait", title)
        }
        Slice::Poll { task } => {
            let name = trace.task_name(task);
            let title = format!("poll {name}");
            args.task = Some(name);
            ("poll", title)
        }
    };
    sink.event(&TraceEvent {
        name: &name,
        cat,
        ph: "X",
        ts: micros(piece.start_ns),
        dur: Some(micros(piece.end_ns.saturating_sub(piece.start_ns))),
        s: None,
        pid,
        tid,
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::TraceBuilder;
    use serde_json::Value;

    /// The exported document of a built trace.
    fn export(builder: &TraceBuilder) -> (ChromeSummary, Value) {
        let open = || {
            Replay::from_bytes(vec![("built".to_owned(), builder.build())])
                .expect("a built trace opens")
        };
        let mut out = Vec::new();
        let summary = write(open(), Some(open()), &AnalyzeOptions::default(), &mut out)
            .expect("exporting to memory works");
        (summary, serde_json::from_slice(&out).expect("the export is JSON"))
    }

    /// The complete events of the document, as `(lane name, name, ts, dur, args)`.
    fn slices(doc: &Value) -> Vec<(String, String, f64, f64, Value)> {
        let events = doc["traceEvents"].as_array().expect("traceEvents");
        let lane_name = |tid: &Value| {
            events
                .iter()
                .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == *tid)
                .map(|e| e["args"]["name"].as_str().expect("a name").to_owned())
                .expect("every lane is named")
        };
        events
            .iter()
            .filter(|e| e["ph"] == "X")
            .map(|e| {
                (
                    lane_name(&e["tid"]),
                    e["name"].as_str().expect("a name").to_owned(),
                    e["ts"].as_f64().expect("ts"),
                    e["dur"].as_f64().expect("dur"),
                    e["args"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn joins_are_waits_on_the_joiners_lane() {
        // main:   join(worker) ──────── joined
        // worker:          finished
        // waiter:                join(job) ··· (trace ends)
        let mut b = TraceBuilder::new("joins");
        b.step(1_000);
        let (main, worker, waiter) = (b.thread("main"), b.thread("worker"), b.thread("waiter"));
        let site = b.site("src/main.rs", 7, 13);
        let job = b.task("job", Some(site));
        b.on(main).event(EventKind::ThreadJoinRequested { thread: worker, site: Some(site) });
        b.on(worker).event(EventKind::ThreadFinished { panicked: false });
        b.on(main).event(EventKind::ThreadJoined { thread: worker, site: Some(site) });
        b.on(waiter).event(EventKind::TaskJoinRequested { task: job, site: Some(site) });
        let (_, doc) = export(&b);
        let joins: Vec<(String, String, f64, f64, Value)> =
            slices(&doc).into_iter().filter(|s| s.1.starts_with("join ")).collect();
        let seen: Vec<(&str, &str, f64, f64)> = joins
            .iter()
            .map(|(lane, name, ts, dur, _)| (&lane[..], &name[..], *ts, *dur))
            .collect();
        assert_eq!(
            seen,
            vec![("main", "join thread worker", 0.0, 2.0), ("waiter", "join task job", 3.0, 0.0)]
        );
        assert_eq!(joins[0].4["outcome"], "joined");
        assert_eq!(joins[0].4["thread"], "worker");
        assert_eq!(joins[0].4["site"], "src/main.rs:7:13");
        assert_eq!(joins[1].4["task"], "job");
        assert_eq!(joins[1].4["open_at_end"], true);
    }

    #[test]
    fn holds_and_waits_open_at_the_end_are_closed_at_the_end() {
        // main:   lock(db) ─────────────── request(cache) ··· (trace ends)
        // worker:           lock(cache) ──────────────────────── (trace ends)
        let mut b = TraceBuilder::new("stuck");
        b.step(1_000);
        let main = b.thread("main");
        let worker = b.thread("worker");
        let (db, cache) = (b.mutex("db"), b.mutex("cache"));
        let s1 = b.site("src/db.rs", 10, 5);
        let s2 = b.site("src/cache.rs", 20, 9);
        b.on(main).acquire(db, s1); // t = 0
        b.on(worker).acquire(cache, s2); // t = 1µs
        b.on(main).request(cache, s2); // t = 2µs, the last event
        let (summary, doc) = export(&b);
        assert_eq!(summary.lanes, 2);
        let open_at_end = |lane: &str, name: &str| {
            slices(&doc)
                .into_iter()
                .find(|(l, n, ..)| l == lane && n == name)
                .map(|(_, _, ts, dur, args)| (ts, dur, args["open_at_end"].clone()))
        };
        assert_eq!(open_at_end("main", "hold db"), Some((0.0, 2.0, Value::Bool(true))));
        assert_eq!(open_at_end("worker", "hold cache"), Some((1.0, 1.0, Value::Bool(true))));
        assert_eq!(open_at_end("main", "wait cache"), Some((2.0, 0.0, Value::Bool(true))));
        let hold_db = slices(&doc).into_iter().find(|s| s.1 == "hold db").expect("hold db");
        assert_eq!(hold_db.4["site"], "src/db.rs:10:5");
        assert_eq!(hold_db.4["mode"], "exclusive");
        assert!(hold_db.4.get("outcome").is_none());
    }

    #[test]
    fn a_lock_released_out_of_order_is_cut_so_that_the_lane_nests() {
        // main: lock(a) ── lock(b) ── unlock(a) ── unlock(b)
        let mut b = TraceBuilder::new("out_of_order");
        b.step(1_000);
        let main = b.thread("main");
        let (a, b_lock) = (b.mutex("a"), b.mutex("b"));
        let site = b.site("src/lib.rs", 1, 1);
        b.on(main).acquire(a, site).acquire(b_lock, site).release(a).release(b_lock);
        let (_, doc) = export(&b);
        let pieces: Vec<(String, f64, f64, bool, bool)> = slices(&doc)
            .into_iter()
            .map(|(_, name, ts, dur, args)| {
                (name, ts, dur, args["continued"] == true, args["continues"] == true)
            })
            .collect();
        assert_eq!(
            pieces,
            vec![
                ("hold b".to_owned(), 1.0, 1.0, false, true),
                ("hold a".to_owned(), 0.0, 2.0, false, false),
                ("hold b".to_owned(), 2.0, 1.0, true, false),
            ]
        );
    }

    #[test]
    fn polls_are_on_the_thread_lane_and_task_holds_on_the_task_lane() {
        // worker-thread: poll(fetch) [ lock(db) ] pending ── poll(fetch) [ unlock(db) ] ready
        let mut b = TraceBuilder::new("async");
        b.step(1_000);
        let thread = b.thread("tokio-rt-worker");
        let site = b.site("src/fetch.rs", 3, 7);
        let fetch = b.task("fetch", Some(site));
        let db = b.async_mutex("db");
        b.in_task(thread, fetch).poll_start().acquire(db, site).poll_end(false);
        b.in_task(thread, fetch).poll_start().release(db).poll_end(true).finish_task();
        let (summary, doc) = export(&b);
        assert_eq!(summary.lanes, 2);
        let lanes: Vec<(String, String)> =
            slices(&doc).into_iter().map(|(lane, name, ..)| (lane, name)).collect();
        let poll = ("tokio-rt-worker".to_owned(), "poll fetch".to_owned());
        let hold = ("task fetch".to_owned(), "hold db".to_owned());
        assert_eq!(lanes, vec![poll.clone(), hold, poll]);
    }
}
