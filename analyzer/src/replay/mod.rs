//! Replay: the events of one or several trace files in a causally correct order, and the
//! [`State`] they build up.
//!
//! # Ordering
//!
//! A file holds batches of events, each batch one thread's events in program order, batches of
//! different threads interleaved as their buffers happened to be flushed. Replay keeps one
//! queue per thread and merges the queues by time, with two rules on top:
//!
//! - **Lock sequence numbers.** An acquisition or release that carries a sequence number is
//!   held back until every smaller number of that lock has been replayed, so a release by A
//!   always comes before the acquisition by B that it enabled, whatever the timestamps say.
//!   The first number expected of a lock is the smallest one read (a flight-recorder trace
//!   may start in the middle of a lock's history).
//! - **Watermarks.** An event at time `t` is replayed only once every file has either ended or
//!   promised (with a watermark past `t`) that nothing earlier is still to come. Replay reads
//!   further only when nothing can be replayed, so memory holds the events between two
//!   watermarks, not the trace. A file without watermarks (such as a
//!   [`TraceBuilder`](hindsight_recorder::format::TraceBuilder)'s) is read to its end first.
//!
//! A held-back event whose predecessor never arrives (the recorder dropped it, or the file was
//! cut) is released once the watermarks have moved [`REORDER_SLACK_NS`] past it, or at the
//! end of input; [`ReplayStats::forced`] counts those. Once a damaged region of a file has
//! been skipped, a hole in a lock's numbers is taken as that loss: a held-back event is
//! released as soon as the watermarks pass it, with no slack; and the threads whose batches
//! the region held (the reader names them, [`Unit::Lost`]) are noted as uncertain
//! ([`Process::lost_threads`]).
//!
//! [`Process::lost_threads`]: crate::trace::Process::lost_threads
//!
//! # Detectors
//!
//! [`Replay::visit`] shows every event to its [`Visitor`] (the detectors) *before*
//! applying it to the [`State`], so that a detector sees, say, the locks held at the moment of
//! an acquisition.

mod queue;
mod state;
mod tournament;

pub use state::{
    Actor, ActorState, End, Hold, Holder, LockState, Lost, Permits, State, TaskState, ThreadState,
    Wait, WaitFor,
};

use crate::detect::{Context, Detector, Dispatch, Visitor};
use crate::error::AnalyzeError;
use crate::prefetch::prefetch_entry;
use crate::source::{SourceError, TraceSource};
use crate::trace::Trace;
use hindsight_recorder::format::{
    Damage, Definition, Event, EventKind, Header, LockId, LockKind, Tail, ThreadId, TraceReader,
    Unit,
};
use queue::{Pool, Queue};
use std::io::Read;
use std::path::Path;
use tournament::{Tournament, NO_HEAD};

/// How far (ns) the watermarks must move past a held-back lock event before replay gives up
/// waiting for its predecessor.
pub const REORDER_SLACK_NS: u64 = 50_000_000;

/// How many events [`Replay::visit`] reads ahead of the detectors.
const LOOKAHEAD: usize = 8;

/// Past this many locks, [`Replay::visit`] reads ahead for lock events too: the per-lock
/// state of replay and of the detectors (a few hundred bytes per lock) then outgrows the
/// CPU's caches, and a lock event would otherwise wait for its lock's lines from memory.
const LOOKAHEAD_LOCKS: usize = 16_384;

/// What fills the unused entries of the lookahead ring.
const EMPTY_EVENT: Event =
    Event { time_ns: 0, thread: ThreadId(0), task: None, kind: EventKind::PollStarted };

/// Where a file's items come from.
enum Input {
    /// A file of either format.
    File(Box<TraceSource>),
    /// A binary trace from any reader (such as bytes in memory).
    Reader(Box<TraceReader<Box<dyn Read>>>),
}

impl Input {
    fn next_into(&mut self, events: &mut Vec<Event>) -> Option<Result<Unit, SourceError>> {
        match self {
            Input::File(source) => source.next_into(events),
            Input::Reader(reader) => reader.next_into(events).map(Ok),
        }
    }

    /// Whether each batch read holds one thread's events only.
    fn batches_are_one_thread(&self) -> bool {
        match self {
            Input::File(source) => source.batches_are_one_thread(),
            Input::Reader(_) => true,
        }
    }

    fn tail(&self) -> Tail {
        match self {
            Input::File(source) => source.tail(),
            Input::Reader(reader) => reader.tail().cloned().unwrap_or(Tail::Complete),
        }
    }

    fn damage(&self) -> &[Damage] {
        match self {
            Input::File(source) => source.damage(),
            Input::Reader(reader) => reader.damage(),
        }
    }
}

/// One file being read.
struct Source {
    input: Input,
    process: usize,
    /// Every event of this file before this (merged) time has been read.
    watermark: u64,
    eof: bool,
    /// A damaged region of this file was skipped: holes in its locks' numbers are losses.
    lossy: bool,
}

/// The sequencing state of one lock of one file: 16 bytes, so that the slots of a thousand
/// locks stay in the first-level cache, since replay reads one at every lock event. The queues
/// parked on a lock are listed apart (in [`Replay::parked`]).
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Numbers up to this one may be replayed now: before the first is replayed, the smallest
    /// read so far; then the one after the largest replayed.
    bound: u64,
    /// A number of this lock has been replayed (`bound` follows the replayed numbers).
    started: bool,
    /// Some queue is parked on this lock.
    parked: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot { bound: u64::MAX, started: false, parked: false }
    }
}

impl Slot {
    /// Notes that number `seq` was read (before any is replayed, the smallest is the first).
    #[inline]
    fn read(&mut self, seq: u64) {
        if !self.started {
            self.bound = self.bound.min(seq);
        }
    }

    /// Whether number `seq` may be replayed now.
    #[inline]
    fn ready(&self, seq: u64) -> bool {
        seq <= self.bound
    }

    /// Notes that number `seq` was replayed.
    #[inline]
    fn replayed(&mut self, seq: u64) {
        if !self.started || seq >= self.bound {
            self.bound = seq.saturating_add(1);
            self.started = true;
        }
    }
}

/// Counters about the replay itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Events replayed.
    pub events: u64,
    /// Lock events replayed before an earlier number of their lock, because that number never
    /// arrived (lost events, a cut trace).
    pub forced: u64,
    /// The most events held in memory at once.
    pub max_buffered: usize,
}

/// Streams the merged, causally ordered events of one or more traces; see the module docs.
pub struct Replay {
    trace: Trace,
    state: State,
    sources: Vec<Source>,
    queues: Vec<Queue>,
    /// Per queue, the time of its head if it may be replayed, else [`NO_HEAD`]; and which
    /// queue has the earliest.
    heads: Tournament,
    slots: Vec<Slot>,
    /// Per sequence slot, the queues parked until that lock reaches their head's number.
    parked: Vec<Vec<u32>>,
    /// Events at or after this time may still be unread.
    safe: u64,
    /// Events read so far, and how many of them are still queued: the others were replayed.
    read: u64,
    buffered: usize,
    /// The counters other than [`ReplayStats::events`], which `read` and `buffered` give.
    stats: ReplayStats,
    error: Option<SourceError>,
    /// The batch being read, before it joins its queue.
    batch: Vec<Event>,
    /// Emptied batches, for reading the next ones into.
    pool: Pool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Replay {
    /// Opens trace files (hindsight binary traces or RAPID STD text, told apart by content);
    /// their headers are read now, their events as replay goes.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Replay, AnalyzeError> {
        if paths.is_empty() {
            return Err(AnalyzeError::NoTraces);
        }
        let mut inputs = Vec::with_capacity(paths.len());
        for path in paths {
            let path = path.as_ref();
            let source = TraceSource::open(path)?;
            let header = source.header().clone();
            let version = source.format_version();
            inputs.push((
                path.display().to_string(),
                header,
                version,
                Input::File(Box::new(source)),
            ));
        }
        Ok(Replay::from_inputs(inputs))
    }

    /// Replays traces held in memory, as `(name, bytes)` pairs.
    pub fn from_bytes(traces: Vec<(String, Vec<u8>)>) -> Result<Replay, AnalyzeError> {
        if traces.is_empty() {
            return Err(AnalyzeError::NoTraces);
        }
        let mut readers = Vec::with_capacity(traces.len());
        for (name, bytes) in traces {
            let input: Box<dyn Read> = Box::new(std::io::Cursor::new(bytes));
            readers.push(TraceReader::from_reader(input, name)?);
        }
        Ok(Replay::from_readers(readers))
    }

    /// Replays binary traces from opened readers.
    pub fn from_readers(readers: Vec<TraceReader<Box<dyn Read>>>) -> Replay {
        let inputs = readers
            .into_iter()
            .map(|r| {
                let (path, header, version) =
                    (r.path().to_owned(), r.header().clone(), r.format_version());
                (path, header, version, Input::Reader(Box::new(r)))
            })
            .collect();
        Replay::from_inputs(inputs)
    }

    fn from_inputs(inputs: Vec<(String, Header, u32, Input)>) -> Replay {
        let mut trace = Trace::new();
        let mut sources = Vec::with_capacity(inputs.len());
        for (path, header, version, input) in inputs {
            let process = trace.add_process(path, header, version);
            sources.push(Source { input, process, watermark: 0, eof: false, lossy: false });
        }
        trace.align_times();
        Replay {
            trace,
            state: State::new(),
            sources,
            queues: Vec::new(),
            heads: Tournament::default(),
            slots: Vec::new(),
            parked: Vec::new(),
            safe: 0,
            read: 0,
            buffered: 0,
            stats: ReplayStats::default(),
            error: None,
            batch: Vec::new(),
            pool: Pool::default(),
        }
    }

    /// The error that ended reading a file early (a malformed line of an STD trace), if any.
    /// Replay stops reading that file there; the caller decides whether to trust the rest.
    pub fn error(&self) -> Option<&SourceError> {
        self.error.as_ref()
    }

    /// Takes the error that ended reading early, if any.
    pub fn take_error(&mut self) -> Option<SourceError> {
        self.error.take()
    }

    /// The definitions read so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The state after the events applied so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Counters about the replay.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats { events: self.read - self.buffered as u64, ..self.stats }
    }

    /// Replays every event: shows it to each detector interested in its kind (in the order
    /// given), then applies it to the state. (Through a `dyn` call per detector and event:
    /// [`visit`](Self::visit) with a concrete detector or a [`Suite`](crate::detect::Suite)
    /// spares those.)
    pub fn run<'d>(&mut self, detectors: &mut [&mut (dyn Detector + 'd)]) {
        self.visit(&mut Dispatch::new(detectors));
    }

    /// Replays every event: shows it to `visitor`, then applies it to the state.
    ///
    /// Once the trace has defined variables, and if the visitor
    /// [prefetches](Visitor::prefetches), replay runs 8 events ahead of the
    /// visits and shows each event to its `prefetch_for` first: a variable's state (one per
    /// variable, and programs annotate many) is then in cache by the time its access is
    /// checked. The same holds for the locks' states once a trace has more than 16,384 locks:
    /// replay's state and the detectors then fetch what a lock event will touch. On other
    /// traces the lookahead costs more than it saves: the detectors fetch a lock's state when
    /// the lock is taken, a few events before its release and nested acquisitions need it,
    /// and a thousand locks' states stay in cache. (Reading ahead changes nothing the detectors
    /// see: the order does not depend on the state, and definitions read early only name
    /// what later events use.)
    pub fn visit<V: Visitor + ?Sized>(&mut self, visitor: &mut V) {
        let prefetches = visitor.prefetches();
        // Event by event until reading ahead pays, which definitions read on the way (with
        // the events) may make it do.
        let mut next = EMPTY_EVENT;
        while !self.reads_ahead(prefetches) {
            if !self.next_into(&mut next, false) {
                return;
            }
            self.show(visitor, &next);
        }
        self.visit_reading_ahead(visitor, prefetches);
    }

    /// Whether [`visit`](Self::visit) reads ahead now, for a visitor that `prefetches` or not.
    #[inline(always)]
    fn reads_ahead(&self, prefetches: bool) -> bool {
        self.trace.locks().len() > LOOKAHEAD_LOCKS || (prefetches && !self.trace.vars().is_empty())
    }

    /// The rest of [`visit`](Self::visit), reading [`LOOKAHEAD`] events ahead of the visits.
    /// (A loop of its own, so that the other one carries none of this.)
    fn visit_reading_ahead<V: Visitor + ?Sized>(&mut self, visitor: &mut V, prefetches: bool) {
        // A ring of the events read ahead: `ahead[read % LOOKAHEAD]` up to `written`.
        let mut ahead = [EMPTY_EVENT; LOOKAHEAD];
        let (mut read, mut written, mut ended) = (0usize, 0usize, false);
        loop {
            while !ended && written - read < LOOKAHEAD {
                let slot = &mut ahead[written % LOOKAHEAD];
                if !self.next_into(slot, true) {
                    ended = true;
                    break;
                }
                self.prefetch_for(slot);
                if prefetches {
                    visitor.prefetch_for(slot);
                }
                written += 1;
            }
            // (The ring is full unless the trace has ended.)
            if read == written {
                return;
            }
            read += 1;
            self.show(visitor, &ahead[(read - 1) % LOOKAHEAD]);
        }
    }

    /// Shows `event` to `visitor`, then applies it to the state.
    #[inline(always)]
    fn show<V: Visitor + ?Sized>(&mut self, visitor: &mut V, event: &Event) {
        macro_rules! handle {
            () => {{
                let cx = Context { trace: &self.trace, state: &self.state };
                visitor.visit(&cx, event);
                self.state.apply(event);
            }};
        }
        // An arm, and a copy of `handle!`, per common kind: in each, the compiler knows
        // the kind and drops tests of it that the state and the detectors make (with
        // every detector, 16 instructions per event, and jumps the CPU cannot predict:
        // the kinds of a merge of threads come in no order). A function in place of the
        // macro loses that: callgrind counts its instructions the same as one arm's.
        match event.kind {
            EventKind::LockAcquired { .. } => handle!(),
            EventKind::LockReleased { .. } => handle!(),
            EventKind::LockRequested { .. } => handle!(),
            _ => handle!(),
        }
    }

    /// Asks the CPU for what replaying `event` will touch (see [`visit`](Self::visit)): its
    /// lock's state, and at an acquisition the lock's class, which the lock-order detector
    /// looks up.
    #[inline(always)]
    fn prefetch_for(&self, event: &Event) {
        self.state.prefetch_for(event);
        if let EventKind::LockAcquired { lock, .. } = event.kind {
            self.trace.prefetch_lock_class(lock);
        }
    }

    /// Replays every event into the state, showing none to a detector.
    pub fn run_to_end(&mut self) {
        let mut event = EMPTY_EVENT;
        while self.next_into(&mut event, false) {
            self.state.apply(&event);
        }
    }

    /// Applies an event returned by [`next_event`](Self::next_event) to the state.
    pub fn apply(&mut self, event: &Event) {
        self.state.apply(event);
    }

    /// The next event in causal order, not yet applied to the state; `None` at the end.
    #[inline]
    pub fn next_event(&mut self) -> Option<Event> {
        let mut event = EMPTY_EVENT;
        self.next_into(&mut event, false).then_some(event)
    }

    /// Writes the next event in causal order into `event`, not yet applied to the state;
    /// `false` at the end. The common case, an event ready in a queue, is inlined into the
    /// caller's loop; reading and forcing are not. With `fetch_ahead` (a constant where it is
    /// inlined), it fetches what ordering the next head of the queue will read.
    #[inline(always)]
    fn next_into(&mut self, event: &mut Event, fetch_ahead: bool) -> bool {
        self.pop_ready(event, fetch_ahead) || self.next_after_reading(event)
    }

    /// [`next_into`](Self::next_into) when no queued event is ready.
    #[inline(never)]
    fn next_after_reading(&mut self, event: &mut Event) -> bool {
        loop {
            let progressed = self.force_stale() || self.read_more() || self.force_oldest(u64::MAX);
            if !progressed {
                return false;
            }
            if self.pop_ready(event, false) {
                return true;
            }
        }
    }

    // === ordering ===

    /// Takes the earliest head that may be replayed now into `event`, if there is one (else
    /// `false`): parks the heads that wait for an earlier number of their lock on the way.
    ///
    /// The event is copied out and its queue moves on at once, before the caller handles the
    /// event: so the choice of the next event (a chain of dependent loads and compares, from
    /// the queue's next time up the tournament) does not wait for that handling, and the
    /// CPU works on both at the same time. With `fetch_ahead`, past [`LOOKAHEAD_LOCKS`]
    /// locks, it asks for what ordering the queue's new head will read.
    #[inline(always)]
    fn pop_ready(&mut self, event: &mut Event, fetch_ahead: bool) -> bool {
        loop {
            let Some(q) = self.heads.earliest() else {
                return false;
            };
            let Some(head) = self.queues[q].head_mut() else {
                return false;
            };
            if head.time_ns >= self.safe {
                return false;
            }
            match order(head, &mut self.slots, &self.trace) {
                Order::Now => *event = *head,
                Order::NowWaking(slot) => {
                    *event = *head;
                    self.wake(slot);
                }
                Order::Blocked(slot) => {
                    self.block(q, slot);
                    continue;
                }
            }
            let time = self.queues[q].advance(&mut self.pool);
            if fetch_ahead && self.slots.len() > LOOKAHEAD_LOCKS {
                // The new head is replayed a few events on, once the other queues' earlier
                // heads are: fetch what ordering it will read now.
                if let Some(head) = self.queues[q].head() {
                    prefetch_order(&self.slots, &self.trace, head);
                }
            }
            self.heads.set(q, time);
            self.buffered -= 1;
            return true;
        }
    }

    /// Parks queue `q` until its head's lock (sequence slot `slot`) reaches the head's number.
    fn block(&mut self, q: usize, slot: u32) {
        self.heads.set(q, NO_HEAD);
        self.queues[q].blocked_on = Some(slot);
        self.slots[slot as usize].parked = true;
        if self.parked.len() <= slot as usize {
            self.parked.resize_with(slot as usize + 1, Vec::new);
        }
        self.parked[slot as usize].push(q as u32);
    }

    /// Re-examines the queues parked on `slot`.
    fn wake(&mut self, slot: u32) {
        let Some(list) = self.parked.get_mut(slot as usize) else {
            return;
        };
        self.slots[slot as usize].parked = false;
        let mut waiters = std::mem::take(list);
        for q in waiters.drain(..) {
            let queue = &mut self.queues[q as usize];
            queue.blocked_on = None;
            let time = queue.head_time();
            self.heads.set(q as usize, time);
        }
        // Keep the list's memory for the next parking.
        self.parked[slot as usize] = waiters;
    }

    /// Releases the held-back head that is oldest, if the watermarks are far past it (or past
    /// it at all, once a file lost a chunk: its missing predecessor is taken as lost).
    fn force_stale(&mut self) -> bool {
        let slack = if self.sources.iter().any(|s| s.lossy) { 0 } else { REORDER_SLACK_NS };
        match self.safe.checked_sub(slack) {
            Some(before) if self.safe != u64::MAX => self.force_oldest(before),
            _ => false,
        }
    }

    /// Releases the oldest held-back head older than `before`: its lock's missing numbers are
    /// taken as lost.
    fn force_oldest(&mut self, before: u64) -> bool {
        let oldest = self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.blocked_on.is_some())
            .filter_map(|(i, q)| q.head().map(|head| (head.time_ns, i, head)))
            .filter(|(t, ..)| *t < before)
            .min_by_key(|(t, i, _)| (*t, *i));
        // A parked head always waits for a number (and holds its sequence slot as its lock).
        let Some((LockId(slot), seq)) = oldest.and_then(|(_, _, head)| head.kind.lock_seq()) else {
            return false;
        };
        if let Some(state) = self.slots.get_mut(slot as usize) {
            state.bound = seq.get();
            state.started = true;
        }
        self.stats.forced += 1;
        self.wake(slot);
        true
    }

    /// Reads one item from the file that holds replay back. `false` when every file is read.
    fn read_more(&mut self) -> bool {
        let Some(s) = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.eof)
            .min_by_key(|(_, s)| s.watermark)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let process = self.sources[s].process;
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        match self.sources[s].input.next_into(&mut batch) {
            Some(Ok(Unit::Definitions(definitions))) => {
                self.trace.define(process, &definitions);
                for definition in &definitions {
                    if let Definition::Lock(def) = definition {
                        let lock = self.trace.lock_of(process, def.id);
                        if let (LockKind::Semaphore, Some(lock)) = (def.kind, lock) {
                            self.state.mark_semaphore(lock);
                        }
                    }
                }
            }
            Some(Ok(Unit::Events)) => {
                // A binary trace's batch is one thread's events; split any other source's
                // mixed batches.
                let one_thread = self.sources[s].input.batches_are_one_thread();
                match batch.first().map(|first| first.thread) {
                    Some(thread) if !one_thread && batch.iter().any(|e| e.thread != thread) => {
                        for run in batch.chunk_by(|a, b| a.thread == b.thread) {
                            self.enqueue(process, Incoming::Copied(run));
                        }
                    }
                    _ => self.enqueue(process, Incoming::Whole(&mut batch)),
                }
            }
            Some(Ok(Unit::Watermark { time_ns })) => {
                let offset = self.trace.processes()[process].time_offset_ns;
                let time_ns = time_ns.saturating_add(offset);
                let source = &mut self.sources[s];
                source.watermark = source.watermark.max(time_ns);
                self.state.extend_end(time_ns);
            }
            Some(Ok(Unit::Lost { thread, .. })) => {
                self.sources[s].lossy = true;
                self.trace.note_lost(process, thread);
            }
            Some(Err(error)) => {
                self.sources[s].eof = true;
                self.trace.set_tail(process, Tail::Complete, Vec::new());
                self.error.get_or_insert(error);
            }
            None => {
                let source = &mut self.sources[s];
                source.eof = true;
                let (tail, damage) = (source.input.tail(), source.input.damage().to_vec());
                self.trace.set_tail(process, tail, damage);
            }
        }
        self.batch = batch;
        // A skipped region makes a hole in a lock's numbers a loss, even where no thread's
        // batch numbers named the thread that lost it (its last batch).
        let source = &mut self.sources[s];
        source.lossy |= !source.input.damage().is_empty();
        self.safe =
            self.sources.iter().filter(|s| !s.eof).map(|s| s.watermark).min().unwrap_or(u64::MAX);
        true
    }

    /// Adds events of one thread, as read from `process`, to its queue, and remaps them
    /// there.
    fn enqueue(&mut self, process: usize, incoming: Incoming<'_>) {
        let first = match &incoming {
            Incoming::Whole(events) => events.first(),
            Incoming::Copied(events) => events.first(),
        };
        let Some(first) = first else {
            return;
        };
        let thread = self.trace.thread_ix(process, first.thread);
        let q = thread.index();
        if self.queues.len() <= q {
            self.queues.resize_with(q + 1, Queue::default);
            self.heads.grow(q + 1);
        }
        let queue = &mut self.queues[q];
        let was_empty = queue.is_empty();
        let added = match incoming {
            Incoming::Whole(events) => queue.push(events, &mut self.pool),
            Incoming::Copied(events) => queue.extend(events, &mut self.pool),
        };
        let count = added.len();
        self.trace.count_events(process, count);
        let sequencing = &mut self.slots;
        self.trace.remap_events(process, thread, added, |event| {
            // NO_HEAD means "nothing to replay": no event may carry that time.
            event.time_ns = event.time_ns.min(NO_HEAD - 1);
            // (A queued lock event holds its sequence slot in place of its lock.)
            if let Some((slot, seq)) = event.kind.lock_seq() {
                // A lock seen for the first time has a new slot.
                let index = slot.index();
                if index >= sequencing.len() {
                    sequencing.resize_with(index + 1, Slot::default);
                }
                sequencing[index].read(seq.get());
            }
        });
        if let Some(first) = added.first() {
            self.heads.anchor(first.time_ns);
        }
        self.buffered += count;
        self.read += count as u64;
        self.stats.max_buffered = self.stats.max_buffered.max(self.buffered);
        if was_empty && queue.blocked_on.is_none() {
            let time = queue.head_time();
            self.heads.set(q, time);
        }
    }
}

/// Events read from a file for [`Replay::enqueue`].
enum Incoming<'a> {
    /// A whole batch, which may join the queue as it is (leaving an empty vector in its place).
    Whole(&'a mut Vec<Event>),
    /// Part of a batch, to be copied.
    Copied(&'a [Event]),
}

/// Whether a queued head may be replayed now, by its lock sequence number.
enum Order {
    /// Yes.
    Now,
    /// Yes, and queues parked on this sequence slot may be replayed now too.
    NowWaking(u32),
    /// Not before an earlier number of this sequence slot.
    Blocked(u32),
}

/// Asks the CPU for what [`order`] will read for queued head `event`: the sequencing slot,
/// if the event numbers its lock's events, and the slot's lock.
#[inline(always)]
fn prefetch_order(slots: &[Slot], trace: &Trace, event: &Event) {
    let (slot, numbered) = match event.kind {
        EventKind::LockAcquired { lock, seq, .. } | EventKind::LockReleased { lock, seq, .. } => {
            (lock, seq.is_some())
        }
        EventKind::LockRequested { lock, .. } | EventKind::LockTryFailed { lock, .. } => {
            (lock, false)
        }
        _ => return,
    };
    if numbered {
        prefetch_entry(slots, slot.index());
    }
    trace.prefetch_slot_lock(slot.0);
}

/// Decides whether queued head `event` may be replayed now, given the sequencing state of
/// the locks (`slots`). If so, it notes the event's number as replayed and puts the event's
/// merged lock in place of the sequence slot it carried while queued (see
/// [`Trace::remap_events`]). One match on the kind does both, since replay pays for every
/// branch on it.
#[inline(always)]
fn order(event: &mut Event, slots: &mut [Slot], trace: &Trace) -> Order {
    let (lock, seq) = match &mut event.kind {
        EventKind::LockAcquired { lock, seq, .. } | EventKind::LockReleased { lock, seq, .. } => {
            (lock, *seq)
        }
        EventKind::LockRequested { lock, .. } | EventKind::LockTryFailed { lock, .. } => {
            (lock, None)
        }
        _ => return Order::Now,
    };
    let slot = lock.0;
    let mut order = Order::Now;
    if let (Some(seq), Some(state)) = (seq, slots.get_mut(slot as usize)) {
        if !state.ready(seq.get()) {
            return Order::Blocked(slot);
        }
        state.replayed(seq.get());
        if state.parked {
            order = Order::NowWaking(slot);
        }
    }
    // Slots are numbered as locks are, until a lock shared between files takes a second
    // slot: most often the slot is the lock already. Writing it anyway would cost more than
    // the test, since the event is read whole right after, and a read that spans a recent
    // smaller write waits for that write to reach the cache.
    if let Some(merged) = trace.slot_lock(slot).filter(|merged| merged.0 != slot) {
        *lock = merged;
    }
    order
}
