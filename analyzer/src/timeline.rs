//! The timeline model the terminal UI draws: what every thread and task did over time, per
//! lock, aggregated into buckets, at every zoom level, in memory that does not grow with the
//! trace.
//!
//! One pass over the replayed events ([`TimelineBuilder::observe`], then
//! [`finish`](TimelineBuilder::finish)) builds:
//!
//! - **lanes**, one per thread and per task: for each time bucket, how long the lane held a lock
//!   (and which locks most), waited for one, and ran a poll. The finest level has at most
//!   [`FINEST_BUCKETS`] buckets per lane; the bucket width starts at 1 ns and doubles (merging
//!   neighbours) whenever the trace outgrows it, so a trace of any length ends with at most
//!   that many. Coarser levels (each bucket two of the level below, like mipmaps) are computed
//!   once at the end, so that drawing any zoom reads a few buckets per screen column;
//! - per lock, the time spent waiting for it over the trace ([`SERIES_BUCKETS`] buckets), for
//!   the Locks view's sparkline (the lock statistics themselves are in the report);
//! - per-lane statistics for the Tasks view: polls, busy time, longest poll, the locks taken,
//!   the state at the end;
//! - a bounded index of the events near any moment: per finest bucket up to
//!   [`SAMPLES_PER_BUCKET`] events (waits first, then other lock events), and every lane's
//!   last event in the bucket, already described in words.
//!
//! A lane's time is accounted when the lane has an event (its holds and wait between two of its
//! events are known), so the cost is a few bucket updates per event and the memory is bounded
//! by lanes × buckets, never by events.

use crate::replay::{Actor, Replay};
use crate::report::format_ns;
use crate::trace::Trace;
use crate::AnalyzeError;
use hindsight_recorder::format::{
    ChannelId, Event, EventKind, LockId, LockMode, SiteId, TaskId, ThreadId,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// Buckets of the finest level of a lane, at most.
pub const FINEST_BUCKETS: u64 = 4096;

/// Buckets of each lock's waiting-over-time series.
pub const SERIES_BUCKETS: usize = 512;

/// Events kept per finest bucket for [`Timeline::events_near`].
pub const SAMPLES_PER_BUCKET: usize = 6;

/// Distinct locks kept per lane for its "locks taken" statistics.
const MAX_LOCKS_PER_LANE: usize = 32;

/// Finest buckets per series bucket.
const SERIES_FACTOR: u64 = FINEST_BUCKETS / SERIES_BUCKETS as u64;

// === public model ===

/// The few locks that took the most time in a bucket, and the time of all others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopLocks {
    ids: [u32; 3],
    ns: [u64; 3],
    len: u8,
    other_ns: u64,
}

impl TopLocks {
    /// Adds `ns` of `lock` (an index into [`Timeline::locks`]).
    #[inline]
    pub fn add(&mut self, lock: u32, ns: u64) {
        let len = usize::from(self.len);
        if let Some(i) = self.ids[..len].iter().position(|&l| l == lock) {
            self.ns[i] = self.ns[i].saturating_add(ns);
            self.bubble(i);
            return;
        }
        if len < self.ids.len() {
            self.ids[len] = lock;
            self.ns[len] = ns;
            self.len += 1;
            self.bubble(len);
            return;
        }
        let last = self.ids.len() - 1;
        if ns > self.ns[last] {
            self.other_ns = self.other_ns.saturating_add(self.ns[last]);
            self.ids[last] = lock;
            self.ns[last] = ns;
            self.bubble(last);
        } else {
            self.other_ns = self.other_ns.saturating_add(ns);
        }
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &TopLocks) {
        for (lock, ns) in other.iter() {
            self.add(lock, ns);
        }
        self.other_ns = self.other_ns.saturating_add(other.other_ns);
    }

    /// The lock with the most time, and its time.
    pub fn top(&self) -> Option<(u32, u64)> {
        (self.len > 0).then(|| (self.ids[0], self.ns[0]))
    }

    /// The locks kept, most time first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.ids.iter().copied().zip(self.ns.iter().copied()).take(usize::from(self.len))
    }

    /// The time of the locks not kept.
    pub fn other_ns(&self) -> u64 {
        self.other_ns
    }

    /// Keeps the entries ordered by time, most first, after entry `i` grew.
    fn bubble(&mut self, mut i: usize) {
        while i > 0 && self.ns[i] > self.ns[i - 1] {
            self.ns.swap(i, i - 1);
            self.ids.swap(i, i - 1);
            i -= 1;
        }
    }
}

/// What one lane did during one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// The bucket's index on its level.
    pub bucket: u32,
    /// Time spent in polls (a task being polled, or a thread polling a task).
    pub busy_ns: u64,
    /// Time holding at least one lock.
    pub hold_ns: u64,
    /// Time waiting for a lock.
    pub wait_ns: u64,
    /// Hold time per lock (nested holds count for each lock).
    pub holds: TopLocks,
    /// Wait time per lock.
    pub waits: TopLocks,
}

impl Cell {
    fn merge(&mut self, other: &Cell) {
        self.busy_ns = self.busy_ns.saturating_add(other.busy_ns);
        self.hold_ns = self.hold_ns.saturating_add(other.hold_ns);
        self.wait_ns = self.wait_ns.saturating_add(other.wait_ns);
        self.holds.merge(&other.holds);
        self.waits.merge(&other.waits);
    }
}

/// What one lane did during one screen column: a [`Cell`] summed over the buckets the column
/// covers, in proportion to the overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Column {
    /// The column's length.
    pub span_ns: u64,
    /// The lane existed during the column (between its first event and its end).
    pub alive: bool,
    /// Time spent in polls.
    pub busy_ns: u64,
    /// Time holding at least one lock.
    pub hold_ns: u64,
    /// Time waiting for a lock.
    pub wait_ns: u64,
    /// Hold time per lock.
    pub holds: TopLocks,
    /// Wait time per lock.
    pub waits: TopLocks,
}

/// Whether a lane is a thread or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LaneKind {
    /// An OS thread (what it did outside tasks, and the polls it ran).
    Thread,
    /// An async task.
    Task,
}

impl LaneKind {
    /// `thread` or `task`.
    pub fn name(self) -> &'static str {
        match self {
            LaneKind::Thread => "thread",
            LaneKind::Task => "task",
        }
    }
}

/// How many times a lane took a lock, and for how long it held it in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockUse {
    /// The lock's display name.
    pub lock: String,
    /// Acquisitions.
    pub count: u64,
    /// Total hold time.
    pub hold_ns: u64,
}

/// One thread or task: its buckets and its statistics.
#[derive(Debug, Clone)]
pub struct Lane {
    /// Thread or task.
    pub kind: LaneKind,
    /// Its display name, as the report writes it.
    pub name: String,
    /// Where it was spawned (`file:line:col`), if known.
    pub spawn_site: Option<String>,
    /// Its first event (or its spawn).
    pub first_ns: u64,
    /// When it finished, if it did.
    pub end_ns: Option<u64>,
    /// Polls (for a thread: the task polls it ran).
    pub polls: u64,
    /// Time spent in polls.
    pub busy_ns: u64,
    /// The longest poll.
    pub longest_poll_ns: u64,
    /// The locks it took, most held first (at most a few dozen).
    pub locks_taken: Vec<LockUse>,
    /// The locks it held when the trace ended.
    pub held_at_end: Vec<String>,
    /// Its state when the trace ended, in words (`finished`, ``waiting for lock `a` ``, ...).
    pub state_at_end: String,
    /// Events of its own.
    pub events: u64,
    /// Level 0 is the finest; each level's buckets are twice as wide as the one below.
    levels: Vec<Vec<Cell>>,
}

impl Lane {
    /// The buckets of `level` that have any activity, in order.
    pub fn cells(&self, level: usize) -> &[Cell] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }
}

/// A lock's waiting-over-time series (its statistics are in the report's `locks`).
#[derive(Debug, Clone)]
pub struct LockTimeline {
    /// Its display name, as the report writes it.
    pub name: String,
    /// Waiting time summed over all waiters, per series bucket ([`SERIES_BUCKETS`] buckets
    /// of [`Timeline::series_width_ns`]).
    pub wait_series: Vec<u64>,
}

/// One recorded event near some moment, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When.
    pub time_ns: u64,
    /// The lane it belongs to (an index into [`Timeline::lanes`]).
    pub lane: usize,
    /// What happened, such as ``acquired `db` at src/db.rs:10:5``.
    pub text: String,
}

/// The whole timeline; see the module docs.
#[derive(Debug, Clone)]
pub struct Timeline {
    start_ns: u64,
    end_ns: u64,
    width_ns: u64,
    lanes: Vec<Lane>,
    locks: Vec<LockTimeline>,
    samples: Vec<Sample>,
    events: u64,
}

impl Timeline {
    /// Builds the timeline of the trace files at `paths` (one pass over them).
    pub fn from_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Timeline, AnalyzeError> {
        Timeline::build(Replay::open(paths)?)
    }

    /// Builds the timeline of traces held in memory, as `(name, bytes)` pairs.
    pub fn from_bytes(traces: Vec<(String, Vec<u8>)>) -> Result<Timeline, AnalyzeError> {
        Timeline::build(Replay::from_bytes(traces)?)
    }

    /// Replays `replay` to its end and builds its timeline. A file that stops being readable
    /// part-way as a whole (a malformed STD line) is an error, as in the analysis.
    pub fn build(mut replay: Replay) -> Result<Timeline, AnalyzeError> {
        let mut builder = TimelineBuilder::new();
        while let Some(event) = replay.next_event() {
            builder.observe(&event);
        }
        if let Some(error) = replay.take_error() {
            return Err(error.into());
        }
        // The trace may cover time after its last event (a recorder's final watermark):
        // threads blocked until the end show as blocked until then.
        Ok(builder.finish(replay.trace(), replay.state().end_ns()))
    }

    /// The first event's time.
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// The last event's time (at least [`start_ns`](Self::start_ns) + 1).
    pub fn end_ns(&self) -> u64 {
        self.end_ns
    }

    /// The width of a finest bucket.
    pub fn finest_width_ns(&self) -> u64 {
        self.width_ns
    }

    /// The width of a bucket of each lock's [`wait_series`](LockTimeline::wait_series).
    pub fn series_width_ns(&self) -> u64 {
        self.width_ns.saturating_mul(SERIES_FACTOR)
    }

    /// How many levels there are (level `n` has buckets `2^n` finest buckets wide).
    pub fn levels(&self) -> usize {
        self.lanes.first().map_or(1, |l| l.levels.len())
    }

    /// Events replayed.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The lanes: threads first, then tasks, each in the order the trace defines them.
    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The locks, indexed like the report's `locks` (by the trace's lock order).
    pub fn locks(&self) -> &[LockTimeline] {
        &self.locks
    }

    /// The level whose buckets best fit columns of `column_ns`: the coarsest whose buckets
    /// are no wider than a column.
    pub fn level_for(&self, column_ns: u64) -> usize {
        let ratio = column_ns / self.width_ns.max(1);
        let level = if ratio <= 1 { 0 } else { ratio.ilog2() as usize };
        level.min(self.levels().saturating_sub(1))
    }

    /// What `lane` did in each of `columns` equal columns of `[from_ns, to_ns)`. Reads a few
    /// buckets per column from the level that fits, whatever the trace's length.
    pub fn columns(&self, lane: usize, from_ns: u64, to_ns: u64, columns: usize) -> Vec<Column> {
        let mut out = vec![Column::default(); columns];
        let Some(lane) = self.lanes.get(lane) else {
            return out;
        };
        if columns == 0 || to_ns <= from_ns {
            return out;
        }
        let span = to_ns - from_ns;
        let level = self.level_for(span / columns as u64);
        let width = self.width_ns.saturating_mul(1 << level);
        let cells = lane.cells(level);
        let bounds = |c: usize| from_ns + (u128::from(span) * c as u128 / columns as u128) as u64;
        let bucket_of = |t: u64| t.saturating_sub(self.start_ns) / width;
        let first = bucket_of(from_ns);
        let mut i = cells.partition_point(|c| u64::from(c.bucket) < first);
        for (c, column) in out.iter_mut().enumerate() {
            let (lo, hi) = (bounds(c), bounds(c + 1));
            column.span_ns = hi - lo;
            column.alive = lane.first_ns < hi && lane.end_ns.is_none_or(|e| e >= lo);
            // Cells that end before this column can be skipped for good.
            while i < cells.len() && self.bucket_end(cells[i].bucket, width) <= lo {
                i += 1;
            }
            let mut j = i;
            while j < cells.len() {
                let cell = &cells[j];
                let b_lo =
                    self.start_ns.saturating_add(u64::from(cell.bucket).saturating_mul(width));
                if b_lo >= hi {
                    break;
                }
                let b_hi = self.bucket_end(cell.bucket, width);
                let overlap = hi.min(b_hi).saturating_sub(lo.max(b_lo));
                if overlap > 0 {
                    let part =
                        |ns: u64| (u128::from(ns) * u128::from(overlap) / u128::from(width)) as u64;
                    column.busy_ns = column.busy_ns.saturating_add(part(cell.busy_ns));
                    column.hold_ns = column.hold_ns.saturating_add(part(cell.hold_ns));
                    column.wait_ns = column.wait_ns.saturating_add(part(cell.wait_ns));
                    for (lock, ns) in cell.holds.iter() {
                        column.holds.add(lock, part(ns).max(1));
                    }
                    for (lock, ns) in cell.waits.iter() {
                        column.waits.add(lock, part(ns).max(1));
                    }
                }
                j += 1;
            }
        }
        out
    }

    fn bucket_end(&self, bucket: u32, width: u64) -> u64 {
        self.start_ns.saturating_add((u64::from(bucket) + 1).saturating_mul(width))
    }

    /// Up to `n` kept events nearest to `time_ns`, in time order. Looks at the few finest
    /// buckets around the moment, never at the whole trace.
    pub fn events_near(&self, time_ns: u64, n: usize) -> Vec<&Sample> {
        let at = self.samples.partition_point(|s| s.time_ns < time_ns);
        let (mut lo, mut hi) = (at, at);
        while hi - lo < n && (lo > 0 || hi < self.samples.len()) {
            let take_low = match (lo.checked_sub(1), self.samples.get(hi)) {
                (Some(l), Some(h)) => {
                    time_ns.abs_diff(self.samples[l].time_ns) <= time_ns.abs_diff(h.time_ns)
                }
                (Some(_), None) => true,
                _ => false,
            };
            if take_low {
                lo -= 1;
            } else {
                hi += 1;
            }
        }
        self.samples[lo..hi].iter().collect()
    }

    /// The kept event at or after `time_ns` that is nearest to it, if any.
    pub fn next_sample(&self, time_ns: u64) -> Option<&Sample> {
        self.samples.get(self.samples.partition_point(|s| s.time_ns < time_ns))
    }

    /// The kept event before `time_ns` that is nearest to it, if any.
    pub fn previous_sample(&self, time_ns: u64) -> Option<&Sample> {
        let at = self.samples.partition_point(|s| s.time_ns < time_ns);
        at.checked_sub(1).and_then(|i| self.samples.get(i))
    }

    /// A lock's waiting time over `[from_ns, to_ns)` in `columns` columns (summed over its
    /// waiters), for a sparkline.
    pub fn wait_series(&self, lock: usize, from_ns: u64, to_ns: u64, columns: usize) -> Vec<u64> {
        let mut out = vec![0; columns];
        let Some(series) = self.locks.get(lock).map(|l| &l.wait_series) else {
            return out;
        };
        let width = self.series_width_ns().max(1);
        if columns == 0 || to_ns <= from_ns {
            return out;
        }
        let span = u128::from(to_ns - from_ns);
        for (b, &ns) in series.iter().enumerate() {
            if ns == 0 {
                continue;
            }
            let t = self.start_ns.saturating_add((b as u64).saturating_mul(width));
            if t < from_ns || t >= to_ns {
                continue;
            }
            let c = (u128::from(t - from_ns) * columns as u128 / span) as usize;
            if let Some(slot) = out.get_mut(c) {
                *slot = slot.saturating_add(ns);
            }
        }
        out
    }
}

// === building ===

/// A lock held by a lane, while building.
#[derive(Debug, Clone, Copy)]
struct HoldNow {
    lock: u32,
    since: u64,
}

/// What a lane waits for, while building.
#[derive(Debug, Clone, Copy)]
enum WaitNow {
    Lock { lock: u32, shared: bool, since: u64 },
    Thread { thread: ThreadId, since: u64 },
    Task { task: TaskId, since: u64 },
    Message { channel: ChannelId, since: u64 },
}

/// A lane's state while building.
#[derive(Debug, Default)]
struct LaneBuild {
    seen: bool,
    first_ns: u64,
    /// Time accounted up to.
    last_ns: u64,
    holds: Vec<HoldNow>,
    wait: Option<WaitNow>,
    /// A task's current (or last) poll waited for a message again.
    waited_for_message_in_poll: bool,
    poll_since: Option<u64>,
    /// For a thread: the task it is polling now.
    polling: Option<TaskId>,
    /// When it ended, and whether abnormally (panicked, cancelled).
    end: Option<(u64, bool)>,
    polls: u64,
    busy_ns: u64,
    longest_poll_ns: u64,
    /// Lock → (acquisitions, hold ns), for at most [`MAX_LOCKS_PER_LANE`] locks.
    locks_taken: HashMap<u32, (u64, u64), BuildHasherDefault<IdHasher>>,
    spawn_site: Option<SiteId>,
    events: u64,
    cells: Vec<Cell>,
    /// The lane's last event in each finest bucket (the newest bucket's still changing), so
    /// that what every lane was doing near any moment is kept, such as the wait it was stuck
    /// in at the end.
    last_events: Vec<RawSample>,
}

impl LaneBuild {
    /// The lock this lane waits for now, if any.
    fn lock_wait(&self) -> Option<u32> {
        match self.wait {
            Some(WaitNow::Lock { lock, .. }) => Some(lock),
            _ => None,
        }
    }
}

/// A hasher for small integer ids: one multiply.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A lock while building: who holds it now (several for shared holds), and its waiting
/// series.
#[derive(Debug, Default)]
struct LockBuild {
    holders: Vec<Actor>,
    series: Vec<u64>,
}

/// A kept event, not yet described.
#[derive(Debug, Clone, Copy)]
struct RawSample {
    bucket: u64,
    priority: u8,
    event: Event,
}

/// Builds a [`Timeline`] from replayed events; see the module docs.
///
/// It keeps its own state of who holds and waits for what, so the events need not be
/// applied to a replay [`State`](crate::replay::State) for it: a pass that only builds the
/// timeline calls [`Replay::next_event`] and [`observe`](Self::observe), nothing else.
pub struct TimelineBuilder {
    start_ns: Option<u64>,
    end_ns: u64,
    /// The finest bucket is `1 << shift` ns wide.
    shift: u32,
    threads: Vec<LaneBuild>,
    tasks: Vec<LaneBuild>,
    locks: Vec<LockBuild>,
    samples: Vec<RawSample>,
    /// The bucket of the last kept sample, how many it has and their lowest priority, so that
    /// most events are turned away without looking at the samples.
    sample_tail: Option<(u64, usize, u8)>,
    events: u64,
}

impl std::fmt::Debug for TimelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimelineBuilder").field("events", &self.events).finish_non_exhaustive()
    }
}

impl Default for TimelineBuilder {
    fn default() -> Self {
        TimelineBuilder::new()
    }
}

impl TimelineBuilder {
    /// A builder that has seen nothing.
    pub fn new() -> Self {
        TimelineBuilder {
            start_ns: None,
            end_ns: 0,
            shift: 0,
            threads: Vec::new(),
            tasks: Vec::new(),
            locks: Vec::new(),
            samples: Vec::new(),
            sample_tail: None,
            events: 0,
        }
    }

    /// Takes in the next replayed event, in replay order.
    pub fn observe(&mut self, event: &Event) {
        let start = *self.start_ns.get_or_insert(event.time_ns);
        let now = event.time_ns.max(start);
        if now > self.end_ns {
            self.end_ns = now;
            self.fit(now);
        }
        self.events += 1;
        let actor = Actor::of(event);
        self.sample(now, event);
        self.touch(actor, now);
        {
            let bucket = self.bucket(now);
            let mut last = *event;
            last.time_ns = now;
            let raw = RawSample { bucket, priority: 0, event: last };
            let lane = self.lane(actor);
            match lane.last_events.last_mut() {
                Some(previous) if previous.bucket == bucket => *previous = raw,
                _ => lane.last_events.push(raw),
            }
        }
        self.lane(actor).events += 1;
        self.account(actor, now);
        use EventKind as K;
        // A thread blocked in a receive does nothing else until it returns (as replay).
        if event.task.is_none() && !matches!(event.kind, K::ReceiveWaiting { .. }) {
            let lane = self.lane(actor);
            if matches!(lane.wait, Some(WaitNow::Message { .. })) {
                lane.wait = None;
            }
        }
        match event.kind {
            K::LockRequested { lock, mode, .. } => {
                let lock = self.lock_ix(lock);
                let shared = mode == LockMode::Shared;
                self.lane(actor).wait = Some(WaitNow::Lock { lock, shared, since: now });
            }
            K::LockAcquired { lock, .. } => {
                let lock = self.lock_ix(lock);
                let lane = self.lane(actor);
                if matches!(lane.wait, Some(WaitNow::Lock { lock: l, .. }) if l == lock) {
                    lane.wait = None;
                }
                lane.holds.push(HoldNow { lock, since: now });
                let taken = lane.locks_taken.len();
                match lane.locks_taken.get_mut(&lock) {
                    Some(entry) => entry.0 += 1,
                    None if taken < MAX_LOCKS_PER_LANE => {
                        lane.locks_taken.insert(lock, (1, 0));
                    }
                    None => {}
                }
                self.locks[lock as usize].holders.push(actor);
            }
            K::LockTryFailed { lock, .. } => {
                self.lock_ix(lock);
            }
            K::LockReleased { lock, .. } => self.release(actor, lock, now),
            K::TaskSpawned { task, .. } => self.touch(Actor::Task(task), now),
            K::ThreadSpawned { thread, site } => {
                self.touch(Actor::Thread(thread), now);
                self.lane(Actor::Thread(thread)).spawn_site = site;
            }
            K::PollStarted => {
                if let Some(task) = event.task {
                    let thread = Actor::Thread(event.thread);
                    self.touch(thread, now);
                    self.account(thread, now);
                    let thread = self.lane(thread);
                    thread.poll_since = Some(now);
                    thread.polling = Some(task);
                    thread.polls += 1;
                    let task = self.lane(Actor::Task(task));
                    task.poll_since = Some(now);
                    task.polls += 1;
                    task.waited_for_message_in_poll = false;
                }
            }
            K::PollEnded { .. } => {
                if let Some(task) = event.task {
                    let thread = Actor::Thread(event.thread);
                    self.touch(thread, now);
                    self.account(thread, now);
                    end_poll(self.lane(thread), now);
                    self.lane(thread).polling = None;
                    let task = self.lane(Actor::Task(task));
                    end_poll(task, now);
                    // A poll that did not wait for its message again went on to other things.
                    if !task.waited_for_message_in_poll
                        && matches!(task.wait, Some(WaitNow::Message { .. }))
                    {
                        task.wait = None;
                    }
                }
            }
            K::TaskFinished { cancelled } => {
                let lane = self.lane(actor);
                end_poll(lane, now);
                lane.end = Some((now, cancelled));
            }
            K::ThreadFinished { panicked } => {
                self.lane(Actor::Thread(event.thread)).end = Some((now, panicked));
            }
            K::ThreadJoinRequested { thread, .. } => {
                self.lane(actor).wait = Some(WaitNow::Thread { thread, since: now });
            }
            K::TaskJoinRequested { task, .. } => {
                self.lane(actor).wait = Some(WaitNow::Task { task, since: now });
            }
            K::ThreadJoined { thread, .. } => {
                let lane = self.lane(actor);
                if matches!(lane.wait, Some(WaitNow::Thread { thread: t, .. }) if t == thread) {
                    lane.wait = None;
                }
            }
            K::TaskJoined { task, .. } => {
                let lane = self.lane(actor);
                if matches!(lane.wait, Some(WaitNow::Task { task: t, .. }) if t == task) {
                    lane.wait = None;
                }
            }
            K::ReceiveWaiting { channel, .. } => {
                let lane = self.lane(actor);
                lane.waited_for_message_in_poll = true;
                if !matches!(lane.wait, Some(WaitNow::Message { channel: c, .. }) if c == channel) {
                    lane.wait = Some(WaitNow::Message { channel, since: now });
                }
            }
            K::Receive { channel, .. } => {
                let lane = self.lane(actor);
                if matches!(lane.wait, Some(WaitNow::Message { channel: c, .. }) if c == channel) {
                    lane.wait = None;
                }
            }
            _ => {}
        }
    }

    /// Ends the build: accounts every lane up to its end (or the trace's: the last event, or
    /// `end_ns` if that is later), computes the coarser levels, and names everything from
    /// `trace`.
    pub fn finish(mut self, trace: &Trace, end_ns: u64) -> Timeline {
        let start = self.start_ns.unwrap_or(0);
        let end = self.end_ns.max(end_ns).max(start + 1);
        self.fit(end);
        let mut ends: Vec<(Actor, u64)> = Vec::new();
        for (kind, table) in [(LaneKind::Thread, &self.threads), (LaneKind::Task, &self.tasks)] {
            for (i, lane) in table.iter().enumerate() {
                if !lane.seen {
                    continue;
                }
                let actor = match kind {
                    LaneKind::Thread => Actor::Thread(ThreadId(i as u32)),
                    LaneKind::Task => Actor::Task(TaskId(i as u32)),
                };
                ends.push((actor, lane.end.map_or(end, |(t, _)| t.max(lane.last_ns))));
            }
        }
        for &(actor, until) in &ends {
            self.account(actor, until);
        }

        let lock_names: Vec<String> =
            (0..trace.locks().len()).map(|i| trace.lock_name(LockId(i as u32))).collect();
        let lock_name =
            |ix: u32| lock_names.get(ix as usize).cloned().unwrap_or_else(|| format!("lock#{ix}"));
        let levels = levels_for(FINEST_BUCKETS);

        for lane in self.threads.iter_mut().chain(self.tasks.iter_mut()) {
            self.samples.append(&mut lane.last_events);
        }
        let mut lanes = Vec::new();
        let mut lane_of_thread = vec![usize::MAX; self.threads.len()];
        let mut lane_of_task = vec![usize::MAX; self.tasks.len()];
        let threads = std::mem::take(&mut self.threads);
        let tasks = std::mem::take(&mut self.tasks);
        for (kind, builds) in [(LaneKind::Thread, threads), (LaneKind::Task, tasks)] {
            for (i, build) in builds.into_iter().enumerate() {
                if !build.seen {
                    continue;
                }
                let actor = match kind {
                    LaneKind::Thread => {
                        lane_of_thread[i] = lanes.len();
                        Actor::Thread(ThreadId(i as u32))
                    }
                    LaneKind::Task => {
                        lane_of_task[i] = lanes.len();
                        Actor::Task(TaskId(i as u32))
                    }
                };
                lanes.push(finish_lane(actor, build, trace, &lock_name, levels));
            }
        }

        let mut builds = std::mem::take(&mut self.locks);
        builds.resize_with(builds.len().max(lock_names.len()), LockBuild::default);
        let locks: Vec<LockTimeline> = builds
            .into_iter()
            .enumerate()
            .map(|(i, build)| {
                let mut wait_series = build.series;
                wait_series.resize(SERIES_BUCKETS, 0);
                LockTimeline { name: lock_name(i as u32), wait_series }
            })
            .collect();

        let mut raw = std::mem::take(&mut self.samples);
        raw.sort_by_key(|r| (r.event.time_ns, r.event.thread, r.event.task));
        raw.dedup_by(|a, b| a.event == b.event);
        let samples: Vec<Sample> = raw
            .into_iter()
            .filter_map(|raw| {
                let lane = match Actor::of(&raw.event) {
                    Actor::Thread(t) => lane_of_thread.get(t.index()),
                    Actor::Task(t) => lane_of_task.get(t.index()),
                }
                .copied()
                .filter(|&l| l != usize::MAX)?;
                Some(Sample { time_ns: raw.event.time_ns, lane, text: describe(trace, &raw.event) })
            })
            .collect();

        Timeline {
            start_ns: start,
            end_ns: end,
            width_ns: 1 << self.shift,
            lanes,
            locks,
            samples,
            events: self.events,
        }
    }

    // --- internals ---

    #[inline]
    fn lane(&mut self, actor: Actor) -> &mut LaneBuild {
        match actor {
            Actor::Thread(t) => grow(&mut self.threads, t.index()),
            Actor::Task(t) => grow(&mut self.tasks, t.index()),
        }
    }

    /// Marks a lane as existing from `now` on, if it was not seen before.
    #[inline]
    fn touch(&mut self, actor: Actor, now: u64) {
        let lane = self.lane(actor);
        if !lane.seen {
            lane.seen = true;
            lane.first_ns = now;
            lane.last_ns = now;
        }
    }

    #[inline]
    fn lock_ix(&mut self, lock: LockId) -> u32 {
        let ix = lock.index();
        if ix >= self.locks.len() {
            self.locks.resize_with(ix + 1, LockBuild::default);
        }
        lock.0
    }

    /// A release of `lock` by `actor`: the actor's own hold, else (a guard moved to another
    /// thread or task) the most recent holder's.
    fn release(&mut self, actor: Actor, lock: LockId, now: u64) {
        let lock = self.lock_ix(lock);
        let holders = &mut self.locks[lock as usize].holders;
        let holder = match holders.iter().rposition(|&h| h == actor) {
            Some(i) => holders.remove(i),
            None => match holders.pop() {
                Some(other) => other,
                None => return,
            },
        };
        if holder != actor {
            self.account(holder, now);
        }
        let lane = self.lane(holder);
        let Some(i) = lane.holds.iter().rposition(|h| h.lock == lock) else {
            return;
        };
        let hold = lane.holds.remove(i);
        let ns = now - hold.since.min(now);
        if let Some(entry) = lane.locks_taken.get_mut(&lock) {
            entry.1 = entry.1.saturating_add(ns);
        }
    }

    #[inline]
    fn bucket(&self, t: u64) -> u64 {
        t.saturating_sub(self.start_ns.unwrap_or(0)) >> self.shift
    }

    /// Widens the buckets until `t` falls into the finest level.
    fn fit(&mut self, t: u64) {
        while self.bucket(t) >= FINEST_BUCKETS {
            self.coarsen();
        }
    }

    /// Doubles the bucket width, merging neighbouring buckets everywhere.
    fn coarsen(&mut self) {
        self.shift += 1;
        for lane in self.threads.iter_mut().chain(self.tasks.iter_mut()) {
            lane.cells = halve(std::mem::take(&mut lane.cells));
            let mut last_events: Vec<RawSample> = Vec::with_capacity(lane.last_events.len());
            for mut raw in std::mem::take(&mut lane.last_events) {
                raw.bucket /= 2;
                match last_events.last_mut() {
                    Some(previous) if previous.bucket == raw.bucket => *previous = raw,
                    _ => last_events.push(raw),
                }
            }
            lane.last_events = last_events;
        }
        for lock in &mut self.locks {
            if lock.series.is_empty() {
                continue;
            }
            let halved: Vec<u64> =
                lock.series.chunks(2).map(|pair| pair[0].saturating_add(pair[1])).collect();
            lock.series = halved;
            lock.series.resize(SERIES_BUCKETS, 0);
        }
        let mut kept: Vec<RawSample> = Vec::with_capacity(self.samples.len());
        for mut sample in std::mem::take(&mut self.samples) {
            sample.bucket /= 2;
            keep_sample(&mut kept, sample);
        }
        self.samples = kept;
        self.sample_tail = None;
    }

    /// Keeps `event` for [`Timeline::events_near`] if its bucket has room (or holds only
    /// less interesting events).
    #[inline]
    fn sample(&mut self, now: u64, event: &Event) {
        let bucket = self.bucket(now);
        let priority = priority(&event.kind);
        match self.sample_tail {
            Some((b, count, lowest))
                if b == bucket && count >= SAMPLES_PER_BUCKET && priority <= lowest =>
            {
                return
            }
            Some((b, ..)) if b > bucket => return,
            _ => {}
        }
        let mut event = *event;
        event.time_ns = now;
        keep_sample(&mut self.samples, RawSample { bucket, priority, event });
        let tail = self.samples.iter().rev().take_while(|s| s.bucket == bucket);
        let (count, lowest) =
            tail.fold((0, u8::MAX), |(n, lowest), s| (n + 1, lowest.min(s.priority)));
        self.sample_tail = Some((bucket, count, lowest));
    }

    /// Accounts what `actor` did from its last accounted time up to `now`: its holds, its
    /// wait, its poll, spread over the buckets.
    #[inline]
    fn account(&mut self, actor: Actor, now: u64) {
        let start = self.start_ns.unwrap_or(0);
        let shift = self.shift;
        let (lane, locks) = match actor {
            Actor::Thread(t) => (grow(&mut self.threads, t.index()), &mut self.locks),
            Actor::Task(t) => (grow(&mut self.tasks, t.index()), &mut self.locks),
        };
        let from = lane.last_ns.max(start);
        if now <= from {
            return;
        }
        lane.last_ns = now;
        let waiting = lane.lock_wait();
        if lane.holds.is_empty() && waiting.is_none() && lane.poll_since.is_none() {
            return;
        }
        let mut t = from;
        while t < now {
            let bucket = (t - start) >> shift;
            // The bucket's end, which is past `u64::MAX` for the last bucket of a trace that
            // spans nearly all of it (a hostile or corrupt one).
            let end = u128::from(start) + (u128::from(bucket + 1) << shift);
            let until = end.min(u128::from(now)) as u64;
            let ns = until - t;
            let cell = match lane.cells.last_mut() {
                Some(cell) if u64::from(cell.bucket) == bucket => cell,
                _ => {
                    lane.cells.push(Cell { bucket: bucket as u32, ..Cell::default() });
                    lane.cells.last_mut().expect("just pushed; this is a bug")
                }
            };
            if lane.poll_since.is_some() {
                cell.busy_ns = cell.busy_ns.saturating_add(ns);
            }
            if !lane.holds.is_empty() {
                cell.hold_ns = cell.hold_ns.saturating_add(ns);
                for hold in &lane.holds {
                    cell.holds.add(hold.lock, ns);
                }
            }
            if let Some(lock) = waiting {
                cell.wait_ns = cell.wait_ns.saturating_add(ns);
                cell.waits.add(lock, ns);
                let series = &mut locks[lock as usize].series;
                if series.is_empty() {
                    series.resize(SERIES_BUCKETS, 0);
                }
                let sum = &mut series[(bucket / SERIES_FACTOR) as usize];
                *sum = sum.saturating_add(ns);
            }
            t = until;
        }
    }
}

/// Keeps `sample` in `kept` (ordered by bucket) if its bucket has room, or replaces a less
/// interesting event of its bucket.
fn keep_sample(kept: &mut Vec<RawSample>, sample: RawSample) {
    let same = kept.iter().rev().take_while(|s| s.bucket == sample.bucket).count();
    if same < SAMPLES_PER_BUCKET {
        kept.push(sample);
        return;
    }
    let from = kept.len() - same;
    let (worst, _) = kept[from..]
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| s.priority)
        .expect("the bucket is full, so not empty; this is a bug");
    if kept[from + worst].priority < sample.priority {
        kept.remove(from + worst);
        kept.push(sample);
    }
}

/// How much an event is worth keeping for "events near": waits first, then the other lock
/// events and the life-cycle events.
fn priority(kind: &EventKind) -> u8 {
    use EventKind as K;
    match kind {
        K::LockRequested { .. } => 4,
        K::LockAcquired { .. }
        | K::LockReleased { .. }
        | K::LockTryFailed { .. }
        | K::ThreadJoinRequested { .. }
        | K::TaskJoinRequested { .. }
        | K::Mark { .. }
        | K::Gap { .. } => 3,
        K::TaskSpawned { .. }
        | K::TaskFinished { .. }
        | K::ThreadSpawned { .. }
        | K::ThreadFinished { .. }
        | K::ThreadStarted
        | K::ThreadJoined { .. }
        | K::TaskJoined { .. } => 2,
        _ => 1,
    }
}

/// Ends the poll a lane is in, if any, and counts its time.
fn end_poll(lane: &mut LaneBuild, now: u64) {
    if let Some(since) = lane.poll_since.take() {
        let ns = now - since.min(now);
        lane.busy_ns = lane.busy_ns.saturating_add(ns);
        lane.longest_poll_ns = lane.longest_poll_ns.max(ns);
    }
}

#[inline]
fn grow(table: &mut Vec<LaneBuild>, ix: usize) -> &mut LaneBuild {
    if ix >= table.len() {
        table.resize_with(ix + 1, LaneBuild::default);
    }
    &mut table[ix]
}

/// Merges pairs of neighbouring buckets: the level above `cells`.
fn halve(cells: Vec<Cell>) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::with_capacity(cells.len() / 2 + 1);
    for mut cell in cells {
        cell.bucket /= 2;
        match out.last_mut() {
            Some(last) if last.bucket == cell.bucket => last.merge(&cell),
            _ => out.push(cell),
        }
    }
    out
}

/// Levels needed for `buckets` finest buckets to reach one bucket.
fn levels_for(buckets: u64) -> usize {
    buckets.next_power_of_two().ilog2() as usize + 1
}

fn site_text(trace: &Trace, site: SiteId) -> String {
    if site.index() < trace.site_count() {
        trace.site_text(site)
    } else {
        "?".to_owned()
    }
}

fn finish_lane(
    actor: Actor,
    build: LaneBuild,
    trace: &Trace,
    lock_name: &impl Fn(u32) -> String,
    levels: usize,
) -> Lane {
    let (kind, name, spawn_site) = match actor {
        Actor::Thread(t) => {
            (LaneKind::Thread, trace.thread_name(t), build.spawn_site.map(|s| site_text(trace, s)))
        }
        Actor::Task(t) => (
            LaneKind::Task,
            trace.task_name(t),
            trace
                .tasks()
                .get(t.index())
                .and_then(|task| task.spawn_site)
                .map(|s| site_text(trace, s)),
        ),
    };
    let state_at_end = state_at_end(trace, actor, &build);
    let held_at_end: Vec<String> = build.holds.iter().map(|h| lock_name(h.lock)).collect();
    let mut locks_taken: Vec<LockUse> = build
        .locks_taken
        .iter()
        .map(|(&lock, &(count, hold_ns))| LockUse { lock: lock_name(lock), count, hold_ns })
        .collect();
    locks_taken.sort_by(|a, b| {
        b.hold_ns.cmp(&a.hold_ns).then(b.count.cmp(&a.count)).then(a.lock.cmp(&b.lock))
    });
    let mut all_levels = Vec::with_capacity(levels);
    all_levels.push(build.cells);
    while all_levels.len() < levels {
        let next = halve(all_levels.last().cloned().unwrap_or_default());
        all_levels.push(next);
    }
    Lane {
        kind,
        name,
        spawn_site,
        first_ns: build.first_ns,
        end_ns: build.end.map(|(t, _)| t),
        polls: build.polls,
        busy_ns: build.busy_ns,
        longest_poll_ns: build.longest_poll_ns,
        locks_taken,
        held_at_end,
        state_at_end,
        events: build.events,
        levels: all_levels,
    }
}

/// A lane's state at the end of the trace, in words.
fn state_at_end(trace: &Trace, actor: Actor, lane: &LaneBuild) -> String {
    if let Some((time, abnormal)) = lane.end {
        return match (actor, abnormal) {
            (Actor::Thread(_), true) => format!("panicked at {}", format_ns(time)),
            (Actor::Task(_), true) => format!("cancelled at {}", format_ns(time)),
            (_, false) => format!("finished at {}", format_ns(time)),
        };
    }
    let lock_name = |l: u32| {
        if (l as usize) < trace.locks().len() {
            trace.lock_name(LockId(l))
        } else {
            format!("lock#{l}")
        }
    };
    match lane.wait {
        Some(WaitNow::Lock { lock, shared, since, .. }) => {
            let mode = if shared { " (shared)" } else { "" };
            return format!(
                "waiting for lock `{}`{mode} since {}",
                lock_name(lock),
                format_ns(since)
            );
        }
        Some(WaitNow::Thread { thread, since }) => {
            return format!(
                "waiting for thread `{}` since {}",
                trace.thread_name(thread),
                format_ns(since)
            );
        }
        Some(WaitNow::Task { task, since }) => {
            return format!(
                "waiting for task `{}` since {}",
                trace.task_name(task),
                format_ns(since)
            );
        }
        Some(WaitNow::Message { channel, since }) => {
            return format!(
                "waiting for a message on `{}` since {}",
                trace.channel_name(channel),
                format_ns(since)
            );
        }
        None => {}
    }
    match actor {
        Actor::Task(_) if lane.poll_since.is_some() => "running (in a poll)".to_owned(),
        Actor::Task(_) if lane.polls > 0 => "suspended (not finished)".to_owned(),
        Actor::Task(_) => "never polled".to_owned(),
        Actor::Thread(_) => match lane.polling {
            Some(task) => format!("polling task `{}`", trace.task_name(task)),
            None => "running (not finished)".to_owned(),
        },
    }
}

/// One event in words, without its actor (the lane says who).
fn describe(trace: &Trace, event: &Event) -> String {
    use EventKind as K;
    let lock = |l: LockId| {
        if l.index() < trace.locks().len() {
            trace.lock_name(l)
        } else {
            format!("lock#{}", l.0)
        }
    };
    let mode = |m: LockMode| match m {
        LockMode::Exclusive => "",
        LockMode::Shared => " (shared)",
    };
    let at =
        |s: Option<SiteId>| s.map(|s| format!(" at {}", site_text(trace, s))).unwrap_or_default();
    match event.kind {
        K::LockRequested { lock: l, mode: m, site } => {
            format!("waits for `{}`{}{}", lock(l), mode(m), at(Some(site)))
        }
        K::LockAcquired { lock: l, mode: m, site, via_try, .. } => format!(
            "{} `{}`{}{}",
            if via_try { "try-acquired" } else { "acquired" },
            lock(l),
            mode(m),
            at(Some(site))
        ),
        K::LockTryFailed { lock: l, site, .. } => {
            format!("try_lock of `{}` failed{}", lock(l), at(Some(site)))
        }
        K::LockReleased { lock: l, mode: m, poisoned, .. } => format!(
            "released `{}`{}{}",
            lock(l),
            mode(m),
            if poisoned { " (poisoned)" } else { "" }
        ),
        K::TaskSpawned { task, site } => {
            format!("spawned task `{}`{}", trace.task_name(task), at(site))
        }
        K::PollStarted => "poll started".to_owned(),
        K::PollEnded { ready: true } => "poll ended (ready)".to_owned(),
        K::PollEnded { ready: false } => "poll ended (pending)".to_owned(),
        K::TaskFinished { cancelled: false } => "task finished".to_owned(),
        K::TaskFinished { cancelled: true } => "task cancelled".to_owned(),
        K::TaskJoined { task, site } => {
            format!("joined task `{}`{}", trace.task_name(task), at(site))
        }
        K::TaskJoinRequested { task, site } => {
            format!("awaits task `{}`{}", trace.task_name(task), at(site))
        }
        K::Wake { task, .. } => format!("woke task `{}`", trace.task_name(task)),
        K::ThreadSpawned { thread, site } => {
            format!("spawned thread `{}`{}", trace.thread_name(thread), at(site))
        }
        K::ThreadStarted => "thread started".to_owned(),
        K::ThreadFinished { panicked: false } => "thread finished".to_owned(),
        K::ThreadFinished { panicked: true } => "thread panicked".to_owned(),
        K::ThreadJoinRequested { thread, site } => {
            format!("joins thread `{}`{}", trace.thread_name(thread), at(site))
        }
        K::ThreadJoined { thread, site } => {
            format!("joined thread `{}`{}", trace.thread_name(thread), at(site))
        }
        K::Send { message, site, .. } => format!("sent message {message}{}", at(Some(site))),
        K::Receive { message, site, .. } => format!("received message {message}{}", at(Some(site))),
        K::Read { var, site } => format!("read `{}`{}", trace.var_name(var), at(Some(site))),
        K::Write { var, site } => format!("wrote `{}`{}", trace.var_name(var), at(Some(site))),
        K::SyncRelease { var, site } => {
            format!("release on `{}`{}", trace.var_name(var), at(Some(site)))
        }
        K::SyncAcquire { var, site } => {
            format!("acquire on `{}`{}", trace.var_name(var), at(Some(site)))
        }
        K::Mark { label, site } => format!("mark `{}`{}", trace.string(label), at(site)),
        K::Gap { dropped } => format!("the recorder lost {dropped} events here"),
        K::Panicked { site } => format!("panicked{}", at(site)),
        K::AwaitPending { site } => format!("suspends at the `.await`{}", at(Some(site))),
        K::Permits { lock: l, op, count } => {
            format!("{count} permit(s) of `{}` {}", lock(l), op.name())
        }
        K::PollCpu { cpu_ns, runnable_ns } => format!(
            "this poll used {} of CPU and waited {} for one",
            crate::report::format_ns(cpu_ns),
            crate::report::format_ns(runnable_ns)
        ),
        K::RecordingEnded => "the recording ended cleanly".to_owned(),
        K::ChannelCreated { channel, kind } => {
            format!("created {} channel `{}`", kind.name(), trace.channel_name(channel))
        }
        K::ReceiveWaiting { channel, site } => {
            format!("waits for a message on `{}`{}", trace.channel_name(channel), at(Some(site)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::TraceBuilder;

    fn timeline(builder: &TraceBuilder) -> Timeline {
        Timeline::from_bytes(vec![("t.trace".to_owned(), builder.build())])
            .expect("a built trace is readable")
    }

    #[test]
    fn top_locks_keep_the_largest_and_count_the_rest() {
        let mut top = TopLocks::default();
        for (lock, ns) in [(1, 5), (2, 50), (3, 7), (4, 100), (1, 1)] {
            top.add(lock, ns);
        }
        assert_eq!(top.iter().collect::<Vec<_>>(), vec![(4, 100), (2, 50), (3, 7)]);
        assert_eq!(top.other_ns(), 6);
        assert_eq!(top.top(), Some((4, 100)));
    }

    #[test]
    fn holds_and_waits_land_in_their_lanes_and_buckets() {
        // main:   acquire(a) ──────── 100ns ──────── release(a)
        // worker:          request(a) ──── waits ────────────── acquire(a) release(a)
        let mut b = TraceBuilder::new("t");
        let main = b.thread("main");
        let worker = b.thread("worker");
        let a = b.mutex("a");
        let site = b.site("src/a.rs", 1, 1);
        b.on(main).acquire(a, site);
        b.on(worker).request(a, site);
        b.advance(100);
        b.on(main).release(a);
        b.on(worker).acquire(a, site).release(a);
        let t = timeline(&b);
        assert_eq!(t.lanes().len(), 2);
        let hold: u64 = t.lanes()[0].cells(0).iter().map(|c| c.hold_ns).sum();
        let wait: u64 = t.lanes()[1].cells(0).iter().map(|c| c.wait_ns).sum();
        assert_eq!(hold, 120, "main holds `a` from t=0 to t=120");
        assert_eq!(wait, 120, "worker waits from t=10 to t=130");
        assert_eq!(t.locks()[0].wait_series.iter().sum::<u64>(), 120);
        assert_eq!(t.lanes()[1].locks_taken[0].count, 1);
        assert_eq!(t.lanes()[0].locks_taken[0].hold_ns, 120);
        // Every level keeps the totals.
        for level in 0..t.levels() {
            let hold: u64 = t.lanes()[0].cells(level).iter().map(|c| c.hold_ns).sum();
            assert_eq!(hold, 120, "level {level}");
        }
        let columns = t.columns(0, t.start_ns(), t.end_ns(), 10);
        assert_eq!(columns.iter().map(|c| c.hold_ns).sum::<u64>(), 120);
        assert_eq!(columns[0].holds.top().map(|(l, _)| l), Some(0));
        let near = t.events_near(0, 1);
        assert_eq!(near[0].text, "acquired `a` at src/a.rs:1:1");
    }

    #[test]
    fn a_task_that_waits_for_a_message_again_in_each_poll_still_waits_at_the_end() {
        let mut b = TraceBuilder::new("t");
        let worker = b.thread("worker");
        let (waiter, quitter) = (b.task("waiter", None), b.task("quitter", None));
        let reply = b.channel("reply");
        let site = b.site("src/a.rs", 1, 1);
        b.in_task(worker, waiter).poll_start().receive_waiting(reply, site).poll_end(false);
        b.in_task(worker, quitter).poll_start().receive_waiting(reply, site).poll_end(false);
        b.advance(100);
        // A spurious wake: the waiter waits there again; the quitter went on to other things.
        b.in_task(worker, waiter).poll_start().receive_waiting(reply, site).poll_end(false);
        b.in_task(worker, quitter).poll_start().poll_end(false);
        let t = timeline(&b);
        let state = |name: &str| {
            let lane = t.lanes().iter().find(|l| l.name.contains(name)).expect("a lane");
            lane.state_at_end.clone()
        };
        assert_eq!(state("waiter"), "waiting for a message on `reply` since 10ns");
        assert_eq!(state("quitter"), "suspended (not finished)");
    }

    #[test]
    fn a_long_trace_keeps_a_bounded_number_of_buckets() {
        let mut b = TraceBuilder::new("t");
        let main = b.thread("main");
        let a = b.mutex("a");
        let site = b.site("src/a.rs", 1, 1);
        for _ in 0..20_000 {
            b.on(main).acquire(a, site).advance(1_000).release(a);
        }
        let t = timeline(&b);
        assert!(t.lanes()[0].cells(0).len() as u64 <= FINEST_BUCKETS);
        assert!(t.events_near(t.end_ns() / 2, 10).len() == 10);
        let total: u64 = t.lanes()[0].cells(0).iter().map(|c| c.hold_ns).sum();
        assert_eq!(total, 20_000 * 1_010);
        assert_eq!(t.lanes()[0].locks_taken[0].count, 20_000);
    }
}
