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
//! end of input; [`ReplayStats::forced`] counts those.
//!
//! # Detectors
//!
//! [`Replay::run`] shows every event to every [`Detector`] *before*
//! applying it to the [`State`], so that a detector sees, say, the locks held at the moment of
//! an acquisition.

mod state;

pub use state::{
    Actor, ActorState, End, Hold, Holder, LockState, State, TaskState, ThreadState, Wait, WaitFor,
};

use crate::detect::{Context, Detector};
use crate::error::AnalyzeError;
use crate::source::{SourceError, TraceSource};
use crate::trace::Trace;
use hindsight_recorder::format::{Event, Header, Item, Tail, TraceReader};
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

/// How far (ns) the watermarks must move past a held-back lock event before replay gives up
/// waiting for its predecessor.
pub const REORDER_SLACK_NS: u64 = 50_000_000;

/// How many events ahead in its queue [`Replay::pop`] asks the CPU to fetch: the queues were
/// filled a whole watermark interval ago, and without this every replayed event waits for
/// memory.
const PREFETCH_DISTANCE: usize = 8;

/// Asks the CPU to bring `value` (every cache line of it) into cache; does nothing else.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = (value as *const T).cast::<i8>();
        let last = start.wrapping_add(std::mem::size_of::<T>().saturating_sub(1));
        // SAFETY: a prefetch never faults and has no effect the program can observe (the
        // pointers point into a live value anyway).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(start);
            _mm_prefetch::<_MM_HINT_T0>(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Marks a queue with no event that may be replayed now.
const NO_HEAD: u64 = u64::MAX;

/// Marks an event that carries no lock sequence number.
const NO_SLOT: u32 = u32::MAX;

/// Where a file's items come from.
enum Input {
    /// A file of either format.
    File(Box<TraceSource>),
    /// A binary trace from any reader (such as bytes in memory).
    Reader(Box<TraceReader<Box<dyn Read>>>),
}

impl Input {
    fn next_item(&mut self) -> Option<Result<Item, SourceError>> {
        match self {
            Input::File(source) => source.next_item(),
            Input::Reader(reader) => reader.next().map(Ok),
        }
    }

    fn tail(&self) -> Tail {
        match self {
            Input::File(source) => source.tail(),
            Input::Reader(reader) => reader.tail().cloned().unwrap_or(Tail::Complete),
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
}

/// One thread's events read but not yet replayed, in program order: the batches as read
/// (remapped in place, never copied), with each event's sequence slot alongside.
#[derive(Default)]
struct Queue {
    batches: VecDeque<(Vec<Event>, Vec<u32>)>,
    /// Position of the head in the front batch.
    pos: usize,
    /// The sequence slot whose earlier numbers the head waits for.
    blocked_on: Option<u32>,
}

impl Queue {
    /// The head event and its slot.
    #[inline]
    fn head(&self) -> Option<(&Event, u32)> {
        let (events, slots) = self.batches.front()?;
        Some((events.get(self.pos)?, slots.get(self.pos).copied().unwrap_or(NO_SLOT)))
    }

    /// The time of the head, or [`NO_HEAD`].
    #[inline]
    fn head_time(&self) -> u64 {
        self.head().map_or(NO_HEAD, |(e, _)| e.time_ns)
    }

    /// Takes the head.
    #[inline]
    fn pop(&mut self) -> Option<(Event, u32)> {
        let (events, slots) = self.batches.front()?;
        let event = *events.get(self.pos)?;
        let slot = slots.get(self.pos).copied().unwrap_or(NO_SLOT);
        self.pos += 1;
        if self.pos >= events.len() {
            self.batches.pop_front();
            self.pos = 0;
        } else if let Some(ahead) = events.get(self.pos + PREFETCH_DISTANCE) {
            prefetch(ahead);
        }
        Some((event, slot))
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// The queues' head times and a tournament tree over them: the earliest head is at the root,
/// and changing one head replays only its path to the root (log₂ of the queues compares).
#[derive(Debug, Default)]
struct Tournament {
    /// Head time per queue (leaves), padded to a power of two with [`NO_HEAD`].
    times: Vec<u64>,
    /// `winners[i]` is the queue with the earliest head below node `i` (root at 1; leaf `q` at
    /// `times.len() + q`, implicit). Ties go to the smaller queue index.
    winners: Vec<u32>,
}

impl Tournament {
    /// Makes room for `queues` queues.
    fn grow(&mut self, queues: usize) {
        if queues <= self.times.len() {
            return;
        }
        let size = queues.next_power_of_two();
        self.times.resize(size, NO_HEAD);
        self.winners = vec![0; size];
        for node in (1..size).rev() {
            self.winners[node] = self.play(node);
        }
    }

    /// The winner of the two children of `node`.
    #[inline]
    fn play(&self, node: usize) -> u32 {
        let size = self.times.len();
        let child = |c: usize| if c >= size { (c - size) as u32 } else { self.winners[c] };
        let (a, b) = (child(2 * node), child(2 * node + 1));
        if self.times[b as usize] < self.times[a as usize] {
            b
        } else {
            a
        }
    }

    /// Sets queue `q`'s head time.
    #[inline]
    fn set(&mut self, q: usize, time: u64) {
        self.times[q] = time;
        let mut node = (self.times.len() + q) / 2;
        while node >= 1 {
            self.winners[node] = self.play(node);
            node /= 2;
        }
    }

    /// The queue with the earliest head, and its time; `None` if no queue has a head.
    #[inline]
    fn earliest(&self) -> Option<(usize, u64)> {
        let q = match self.times.len() {
            0 => return None,
            1 => 0,
            _ => self.winners[1] as usize,
        };
        let time = self.times[q];
        (time != NO_HEAD).then_some((q, time))
    }
}

/// The sequencing state of one lock of one file.
#[derive(Clone, Copy)]
struct Slot {
    /// The next number to replay; 0 before the first.
    next: u64,
    /// The smallest number read so far.
    min_seen: u64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot { next: 0, min_seen: u64::MAX }
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
    slot_waiters: Vec<Vec<u32>>,
    /// Events at or after this time may still be unread.
    safe: u64,
    buffered: usize,
    stats: ReplayStats,
    error: Option<SourceError>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").field("stats", &self.stats).finish_non_exhaustive()
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
            sources.push(Source { input, process, watermark: 0, eof: false });
        }
        trace.align_times();
        Replay {
            trace,
            state: State::new(),
            sources,
            queues: Vec::new(),
            heads: Tournament::default(),
            slots: Vec::new(),
            slot_waiters: Vec::new(),
            safe: 0,
            buffered: 0,
            stats: ReplayStats::default(),
            error: None,
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
        self.stats
    }

    /// Replays every event: shows it to each detector, then applies it to the state.
    pub fn run<'d>(&mut self, detectors: &mut [&mut (dyn Detector + 'd)]) {
        while let Some(event) = self.next_event() {
            let cx = Context { trace: &self.trace, state: &self.state };
            for detector in detectors.iter_mut() {
                detector.on_event(&cx, &event);
            }
            self.state.apply(&event);
        }
    }

    /// Replays every event into the state, showing none to a detector.
    pub fn run_to_end(&mut self) {
        while let Some(event) = self.next_event() {
            self.state.apply(&event);
        }
    }

    /// Applies an event returned by [`next_event`](Self::next_event) to the state.
    pub fn apply(&mut self, event: &Event) {
        self.state.apply(event);
    }

    /// The next event in causal order, not yet applied to the state; `None` at the end.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(q) = self.pick() {
                return Some(self.pop(q));
            }
            if self.force_stale() {
                continue;
            }
            if self.read_more() {
                continue;
            }
            if self.force_oldest(u64::MAX) {
                continue;
            }
            return None;
        }
    }

    // === ordering ===

    /// The queue whose head is next, if one may be replayed now.
    #[inline]
    fn pick(&mut self) -> Option<usize> {
        loop {
            let (q, t) = self.heads.earliest()?;
            if t >= self.safe {
                return None;
            }
            if self.ready(q) {
                return Some(q);
            }
            self.block(q);
        }
    }

    /// Whether the head of queue `q` may be replayed as far as its lock's order goes.
    #[inline]
    fn ready(&self, q: usize) -> bool {
        let Some((event, slot)) = self.queues[q].head() else {
            return false;
        };
        let Some((_, seq)) = event.kind.lock_seq() else {
            return true;
        };
        let Some(state) = self.slots.get(slot as usize) else {
            return true;
        };
        if state.next == 0 {
            seq <= state.min_seen
        } else {
            seq <= state.next
        }
    }

    /// Parks queue `q` until its head's lock reaches the head's number.
    fn block(&mut self, q: usize) {
        self.heads.set(q, NO_HEAD);
        if let Some((_, slot)) = self.queues[q].head() {
            self.queues[q].blocked_on = Some(slot);
            self.slot_waiters[slot as usize].push(q as u32);
        }
    }

    /// Takes the head of queue `q`.
    #[inline]
    fn pop(&mut self, q: usize) -> Event {
        let queue = &mut self.queues[q];
        let (event, slot) = queue.pop().expect("pick returns a non-empty queue; this is a bug");
        let time = queue.head_time();
        self.heads.set(q, time);
        self.buffered -= 1;
        self.stats.events += 1;
        if let Some((_, seq)) = event.kind.lock_seq() {
            if let Some(state) = self.slots.get_mut(slot as usize) {
                if seq >= state.next {
                    state.next = seq.saturating_add(1);
                }
                if !self.slot_waiters[slot as usize].is_empty() {
                    self.wake(slot);
                }
            }
        }
        event
    }

    /// Re-examines the queues parked on `slot`.
    fn wake(&mut self, slot: u32) {
        let mut waiters = std::mem::take(&mut self.slot_waiters[slot as usize]);
        for q in waiters.drain(..) {
            let queue = &mut self.queues[q as usize];
            queue.blocked_on = None;
            let time = queue.head_time();
            self.heads.set(q as usize, time);
        }
        if self.slot_waiters[slot as usize].is_empty() {
            self.slot_waiters[slot as usize] = waiters;
        }
    }

    /// Releases the held-back head that is oldest, if the watermarks are far past it.
    fn force_stale(&mut self) -> bool {
        match self.safe.checked_sub(REORDER_SLACK_NS) {
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
            .filter_map(|(i, q)| q.head().map(|(e, slot)| (e.time_ns, i, slot, *e)))
            .filter(|(t, ..)| *t < before)
            .min_by_key(|(t, i, ..)| (*t, *i));
        let Some((_, _, slot, event)) = oldest else {
            return false;
        };
        if let (Some((_, seq)), Some(state)) =
            (event.kind.lock_seq(), self.slots.get_mut(slot as usize))
        {
            state.next = seq;
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
        match self.sources[s].input.next_item() {
            Some(Ok(Item::Definitions(definitions))) => self.trace.define(process, &definitions),
            Some(Ok(Item::Events(events))) => {
                // A batch is one thread's events; split any other source's mixed batches.
                match events.first().map(|first| first.thread) {
                    Some(thread) if events.iter().any(|e| e.thread != thread) => {
                        for run in events.chunk_by(|a, b| a.thread == b.thread) {
                            self.enqueue(process, run.to_vec());
                        }
                    }
                    _ => self.enqueue(process, events),
                }
            }
            Some(Ok(Item::Watermark { time_ns })) => {
                let offset = self.trace.processes()[process].time_offset_ns;
                let time_ns = time_ns.saturating_add(offset);
                let source = &mut self.sources[s];
                source.watermark = source.watermark.max(time_ns);
                self.state.extend_end(time_ns);
            }
            Some(Err(error)) => {
                self.sources[s].eof = true;
                self.trace.set_tail(process, Tail::Complete);
                self.error.get_or_insert(error);
            }
            None => {
                let source = &mut self.sources[s];
                source.eof = true;
                let tail = source.input.tail();
                self.trace.set_tail(process, tail);
            }
        }
        self.safe =
            self.sources.iter().filter(|s| !s.eof).map(|s| s.watermark).min().unwrap_or(u64::MAX);
        true
    }

    /// Adds a batch of one thread's events to its queue.
    fn enqueue(&mut self, process: usize, mut events: Vec<Event>) {
        let Some(first) = events.first() else {
            return;
        };
        let thread = self.trace.thread_ix(process, first.thread);
        let q = thread.index();
        if self.queues.len() <= q {
            self.queues.resize_with(q + 1, Queue::default);
            self.heads.grow(q + 1);
        }
        self.trace.count_events(process, events.len());
        let mut slots = Vec::with_capacity(events.len());
        self.trace.remap_batch(process, thread, &mut events, &mut slots);
        if self.slots.len() < self.trace.slot_count() {
            let needed = self.trace.slot_count();
            self.slots.resize(needed, Slot::default());
            self.slot_waiters.resize_with(needed, Vec::new);
        }
        for (event, slot) in events.iter_mut().zip(slots.iter_mut()) {
            // NO_HEAD means "nothing to replay": no event may carry that time.
            event.time_ns = event.time_ns.min(NO_HEAD - 1);
            match (event.kind.lock_seq(), self.slots.get_mut(*slot as usize)) {
                (Some((_, seq)), Some(state)) => state.min_seen = state.min_seen.min(seq),
                _ => *slot = NO_SLOT,
            }
        }
        self.buffered += events.len();
        self.stats.max_buffered = self.stats.max_buffered.max(self.buffered);
        let queue = &mut self.queues[q];
        let was_empty = queue.is_empty();
        queue.batches.push_back((events, slots));
        if was_empty && queue.blocked_on.is_none() {
            let time = queue.head_time();
            self.heads.set(q, time);
        }
    }
}
