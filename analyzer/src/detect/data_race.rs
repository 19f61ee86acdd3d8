//! `data-race`: two accesses to one annotated variable, at least one a write, by different
//! threads or tasks, with no happens-before order between them.
//!
//! Every OS thread (outside tasks) and every task is a logical thread with its own vector
//! clock: a task keeps its clock when it moves between workers, and two tasks polled on one
//! worker are not ordered by sharing it. Happens-before edges:
//!
//! | from | to |
//! | --- | --- |
//! | a release of a lock | a later acquisition (a shared release orders only a later exclusive acquisition) |
//! | spawning a task or thread | everything the child does |
//! | everything a task or thread did | whoever joins it |
//! | sending a message | receiving that message |
//! | waking a task | its next poll |
//! | a release annotation on an object | a later acquire annotation on it |
//! | everything a `block_on` future did | the thread that blocked on it, once it finished |
//!
//! Accesses are checked FastTrack-style: a variable remembers its last write as one epoch
//! (actor, clock) and its reads as one epoch until reads become concurrent, so the common
//! access costs O(1). Races are grouped by the pair of sites, with an occurrence count.
//!
//! Clocks are kept from the first access or join on, so that a trace of locks alone (most
//! traces) costs the detector next to nothing. Before that, every edge carries what its source
//! knew before ticking its own clock (a release, a spawn, a wake, a send), so nothing learnt
//! then can order an event of that source after it; and whether an access happens before a
//! later one depends only on the edges between them. A join is the exception (the joiner
//! learns the child's clock as it is, which orders anything the child did without a tick
//! since, as a child that runs after being joined can), so it starts the clocks too.

use super::{Context, Detector, Interest};
use crate::prefetch::prefetch_entry;
use crate::replay::Actor;
use crate::report::{AccessDetail, Detail, Finding, FindingKind, RaceDetail, Severity};
use hindsight_recorder::format::{
    ChannelId, Event, EventKind, LockId, LockMode, SiteId, TaskId, ThreadId, VarId,
};
use std::collections::HashMap;

/// Messages sent and not yet received are remembered up to this many; past that they are
/// forgotten, and receiving a forgotten message adds no edge (which could only add reports,
/// so the bound is generous).
const MAX_MESSAGES_IN_FLIGHT: usize = 1 << 20;

/// Clocks of received messages kept for reuse, at most.
const SPARE_CLOCKS: usize = 64;

/// Locks remembered as held at an access, for the report.
const HELD_LOCKS_KEPT: usize = 4;

/// A vector clock, indexed by logical-thread slot; missing entries are 0.
#[derive(Debug, Clone, Default)]
struct Clock(Vec<u32>);

impl Clock {
    #[inline]
    fn get(&self, slot: u32) -> u32 {
        self.0.get(slot as usize).copied().unwrap_or(0)
    }

    fn tick(&mut self, slot: u32) {
        let slot = slot as usize;
        if self.0.len() <= slot {
            self.0.resize(slot + 1, 0);
        }
        self.0[slot] += 1;
    }

    fn join(&mut self, other: &Clock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn assign(&mut self, other: &Clock) {
        self.0.clear();
        self.0.extend_from_slice(&other.0);
    }
}

/// No lock in an entry of [`Info::locks`].
const NO_LOCK: u32 = u32::MAX;

/// Where, when and by whom an access happened: what the report tells of it, and nothing the
/// check needs.
#[derive(Debug, Clone, Copy)]
struct Info {
    actor: Actor,
    time_ns: u64,
    thread: ThreadId,
    site: SiteId,
    /// The first locks held, [`NO_LOCK`] past the last.
    locks: [u32; HELD_LOCKS_KEPT],
}

impl Default for Info {
    fn default() -> Self {
        Info {
            actor: Actor::Thread(ThreadId(0)),
            time_ns: 0,
            thread: ThreadId(0),
            site: SiteId(0),
            locks: [NO_LOCK; HELD_LOCKS_KEPT],
        }
    }
}

/// A logical thread's slot and its own clock entry at an access; FastTrack's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    slot: u32,
    clock: u32,
}

impl Epoch {
    /// No access.
    const NONE: Epoch = Epoch { slot: u32::MAX, clock: 0 };
    /// Concurrent reads, kept in [`DataRace::shared_reads`].
    const SHARED: Epoch = Epoch { slot: u32::MAX - 1, clock: 0 };

    /// The access of this epoch is not ordered before the access of `slot` with `clock`.
    #[inline]
    fn unordered(self, slot: u32, clock: &Clock) -> bool {
        self.slot != slot && self.clock > clock.get(self.slot)
    }
}

/// An access, as remembered for the report.
#[derive(Debug, Clone, Copy)]
struct Access {
    epoch: Epoch,
    write: bool,
    info: Info,
}

/// What the check needs of a variable: the epochs of its last write and of its reads since
/// (one epoch while they are ordered). 16 bytes, so that the shadows of many variables stay
/// in cache; the report's details are kept apart in [`Details`].
#[derive(Debug, Clone, Copy)]
struct Shadow {
    write: Epoch,
    read: Epoch,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow { write: Epoch::NONE, read: Epoch::NONE }
    }
}

/// The report's details of a variable's last write and last read (while reads are ordered).
#[derive(Debug, Clone, Copy, Default)]
struct Details {
    write: Info,
    read: Info,
}

/// What the releases of one lock published.
#[derive(Debug, Clone, Default)]
struct LockClocks {
    /// The clock of the last exclusive release.
    write: Clock,
    /// The joined clocks of the shared releases since the last exclusive acquisition.
    read: Clock,
}

/// A pair of sites that raced, in a canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RaceKey {
    var: VarId,
    first: (SiteId, bool),
    second: (SiteId, bool),
}

#[derive(Debug, Clone)]
struct RaceRecord {
    earlier: Access,
    later: Access,
    count: u64,
}

/// The data-race detector; see the module docs.
#[derive(Debug, Default)]
pub struct DataRace {
    thread_slots: Vec<Option<u32>>,
    task_slots: Vec<Option<u32>>,
    clocks: Vec<Clock>,
    /// Per lock, what its releases published (one entry per lock, so that a lock event
    /// touches one place).
    locks: Vec<LockClocks>,
    pending_wakes: Vec<Option<Clock>>,
    /// Per task: the slot of the thread blocked in `block_on` on it, for `block_on` futures.
    blocked_callers: Vec<Option<u32>>,
    sync_objects: Vec<Clock>,
    messages: HashMap<(ChannelId, u64), Clock>,
    /// Clocks of received messages, kept for the next sends to copy into without allocating.
    spare_clocks: Vec<Clock>,
    /// Per variable, the epochs the check compares against.
    shadows: Vec<Shadow>,
    /// Per variable, the report's details of the accesses in its shadow.
    details: Vec<Details>,
    /// The concurrent reads of variables whose shadow says [`Epoch::SHARED`], one per
    /// logical thread.
    shared_reads: HashMap<VarId, Vec<Access>>,
    races: HashMap<RaceKey, RaceRecord>,
    /// An access or a join has been seen: clocks are kept from now on (see the module docs).
    started: bool,
}

impl DataRace {
    /// A detector with no state.
    pub fn new() -> Self {
        DataRace::default()
    }

    /// The slot of `actor`, creating its clock (1 in its own entry) on first sight.
    fn slot(&mut self, actor: Actor) -> u32 {
        let (table, index) = match actor {
            Actor::Thread(thread) => (&mut self.thread_slots, thread.index()),
            Actor::Task(task) => (&mut self.task_slots, task.index()),
        };
        if table.len() <= index {
            table.resize(index + 1, None);
        }
        if let Some(slot) = table[index] {
            return slot;
        }
        let slot = self.clocks.len() as u32;
        table[index] = Some(slot);
        let mut clock = Clock::default();
        clock.tick(slot);
        self.clocks.push(clock);
        slot
    }

    /// Remembers the caller (`slot`) of a `block_on` future's `task`, which it waits for.
    fn note_block_on(&mut self, cx: &Context<'_>, task: TaskId, slot: u32) {
        if super::task_kind(cx, task) == Some("block_on") {
            let index = task.index();
            if self.blocked_callers.len() <= index {
                self.blocked_callers.resize(index + 1, None);
            }
            self.blocked_callers[index] = Some(slot);
        }
    }

    /// The slot of the caller blocked on the task that `event` (its end) finished, if any.
    fn blocked_caller(&self, event: &Event) -> Option<u32> {
        let task = event.task?;
        self.blocked_callers.get(task.index()).copied().flatten()
    }

    /// [`blocked_caller`](Self::blocked_caller), forgetting it.
    fn take_blocked_caller(&mut self, event: &Event) -> Option<u32> {
        let task = event.task?;
        self.blocked_callers.get_mut(task.index()).and_then(Option::take)
    }

    /// Takes in an event before the clocks start: starts them if the event does (see
    /// [`starts_clocks`](Self::starts_clocks)). Else no clock changes (see the module docs),
    /// but what outlives the event does, as it would have: who blocks on which `block_on`
    /// future, and which messages are in flight (with no clock), so that once the clocks start
    /// the state is the same as if they had been kept all along, but for clock entries that no
    /// comparison can tell apart. (Actors get their slots, in which no comparison is
    /// interested either, when they first matter.)
    #[inline(never)]
    fn before_start(&mut self, cx: &Context<'_>, event: &Event) {
        if self.starts_clocks(event) {
            self.started = true;
            self.on_clocked_event(cx, event);
            return;
        }
        match event.kind {
            EventKind::TaskSpawned { task, .. } => {
                let slot = self.slot(Actor::of(event));
                self.note_block_on(cx, task, slot);
            }
            EventKind::Send { channel, message, .. } => {
                if self.messages.len() >= MAX_MESSAGES_IN_FLIGHT {
                    self.messages.clear();
                }
                drop(self.messages.insert((channel, message), Clock::default()));
            }
            EventKind::Receive { channel, message, .. } => {
                drop(self.messages.remove(&(channel, message)));
            }
            _ => {}
        }
    }

    /// Joins `from`'s clock into `into`'s (a fork or join edge).
    fn join_actor(&mut self, into: u32, from: u32) {
        if into == from {
            return;
        }
        let source = std::mem::take(&mut self.clocks[from as usize]);
        self.clocks[into as usize].join(&source);
        self.clocks[from as usize] = source;
    }

    /// The clocks of `lock`.
    #[inline]
    fn lock_clocks(&mut self, lock: LockId) -> &mut LockClocks {
        let index = lock.index();
        if self.locks.len() <= index {
            self.locks.resize_with(index + 1, LockClocks::default);
        }
        &mut self.locks[index]
    }

    fn on_lock_acquired(&mut self, slot: u32, lock: LockId, mode: LockMode) {
        self.lock_clocks(lock);
        let released = &mut self.locks[lock.index()];
        let clock = &mut self.clocks[slot as usize];
        clock.join(&released.write);
        if mode == LockMode::Exclusive && !released.read.0.is_empty() {
            clock.join(&released.read);
            // What earlier readers published now travels with this writer's release.
            released.read.0.clear();
        }
    }

    fn on_lock_released(&mut self, slot: u32, lock: LockId, mode: LockMode) {
        self.lock_clocks(lock);
        let released = &mut self.locks[lock.index()];
        let clock = &self.clocks[slot as usize];
        match mode {
            LockMode::Exclusive => released.write.assign(clock),
            LockMode::Shared => released.read.join(clock),
        }
        self.clocks[slot as usize].tick(slot);
    }

    fn on_access(
        &mut self,
        cx: &Context<'_>,
        event: &Event,
        var: VarId,
        site: SiteId,
        write: bool,
    ) {
        let actor = Actor::of(event);
        let slot = self.slot(actor);
        let clock = &self.clocks[slot as usize];
        let mut locks = [NO_LOCK; HELD_LOCKS_KEPT];
        for (kept, hold) in locks.iter_mut().zip(cx.state.holds(actor)) {
            *kept = hold.lock.0;
        }
        let info = Info { actor, time_ns: event.time_ns, thread: event.thread, site, locks };
        let access = Access { epoch: Epoch { slot, clock: clock.get(slot) }, write, info };
        let index = var.index();
        if self.shadows.len() <= index {
            self.shadows.resize(index + 1, Shadow::default());
            self.details.resize(index + 1, Details::default());
        }
        let shadow = &mut self.shadows[index];
        let details = &mut self.details[index];
        // Races are rare: the earlier accesses they involve are gathered only then.
        let mut raced: Vec<Access> = Vec::new();
        if shadow.write.unordered(slot, clock) {
            raced.push(Access { epoch: shadow.write, write: true, info: details.write });
        }
        if write {
            if shadow.read == Epoch::SHARED {
                let reads = self.shared_reads.remove(&var).unwrap_or_default();
                raced.extend(reads.into_iter().filter(|r| r.epoch.unordered(slot, clock)));
            } else if shadow.read.unordered(slot, clock) {
                raced.push(Access { epoch: shadow.read, write: false, info: details.read });
            }
            (shadow.write, shadow.read) = (access.epoch, Epoch::NONE);
            details.write = info;
        } else if shadow.read == Epoch::SHARED {
            let reads = self.shared_reads.entry(var).or_default();
            reads.retain(|read| read.epoch.unordered(slot, clock));
            reads.push(access);
        } else if shadow.read == Epoch::NONE
            || shadow.read.slot == slot
            || !shadow.read.unordered(slot, clock)
        {
            shadow.read = access.epoch;
            details.read = info;
        } else {
            let earlier = Access { epoch: shadow.read, write: false, info: details.read };
            self.shared_reads.insert(var, vec![earlier, access]);
            shadow.read = Epoch::SHARED;
        }
        for earlier in raced {
            self.record_race(var, earlier, access);
        }
    }

    fn record_race(&mut self, var: VarId, earlier: Access, later: Access) {
        let a = (earlier.info.site, earlier.write);
        let b = (later.info.site, later.write);
        let key = RaceKey { var, first: a.min(b), second: a.max(b) };
        self.races.entry(key).and_modify(|record| record.count += 1).or_insert(RaceRecord {
            earlier,
            later,
            count: 1,
        });
    }

    /// Whether `event` starts the clocks (see the module docs): an access, a join, or the end
    /// of a `block_on` future, which its caller joins.
    #[inline]
    fn starts_clocks(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Read { .. }
            | EventKind::Write { .. }
            | EventKind::TaskJoined { .. }
            | EventKind::ThreadJoined { .. } => true,
            EventKind::TaskFinished { .. } => self.blocked_caller(event).is_some(),
            _ => false,
        }
    }

    /// [`on_event`](Detector::on_event) once the clocks are kept.
    #[inline(never)]
    fn on_clocked_event(&mut self, cx: &Context<'_>, event: &Event) {
        let actor = Actor::of(event);
        let slot = self.slot(actor);
        match event.kind {
            EventKind::Read { var, site } => self.on_access(cx, event, var, site, false),
            EventKind::Write { var, site } => self.on_access(cx, event, var, site, true),
            EventKind::LockAcquired { lock, mode, .. } => self.on_lock_acquired(slot, lock, mode),
            EventKind::LockReleased { lock, mode, .. } => self.on_lock_released(slot, lock, mode),
            EventKind::TaskSpawned { task, .. } => {
                let child = self.slot(Actor::Task(task));
                self.join_actor(child, slot);
                self.clocks[slot as usize].tick(slot);
                self.note_block_on(cx, task, slot);
            }
            EventKind::TaskFinished { .. } => {
                // The caller of `block_on` waited for this future: a join.
                if let Some(caller) = self.take_blocked_caller(event) {
                    self.join_actor(caller, slot);
                }
            }
            EventKind::ThreadSpawned { thread, .. } => {
                let child = self.slot(Actor::Thread(thread));
                self.join_actor(child, slot);
                self.clocks[slot as usize].tick(slot);
            }
            EventKind::TaskJoined { task, .. } => {
                let child = self.slot(Actor::Task(task));
                self.join_actor(slot, child);
            }
            EventKind::ThreadJoined { thread, .. } => {
                let child = self.slot(Actor::Thread(thread));
                self.join_actor(slot, child);
            }
            EventKind::Wake { task, .. } => {
                let index = task.index();
                if self.pending_wakes.len() <= index {
                    self.pending_wakes.resize(index + 1, None);
                }
                let clock = &self.clocks[slot as usize];
                self.pending_wakes[index].get_or_insert_with(Clock::default).join(clock);
                self.clocks[slot as usize].tick(slot);
            }
            EventKind::PollStarted => {
                if let Some(task) = event.task {
                    let woken = self.pending_wakes.get_mut(task.index()).and_then(Option::take);
                    if let Some(woken) = woken {
                        self.clocks[slot as usize].join(&woken);
                    }
                }
            }
            EventKind::Send { channel, message, .. } => {
                if self.messages.len() >= MAX_MESSAGES_IN_FLIGHT {
                    self.messages.clear();
                }
                let mut sent = self.spare_clocks.pop().unwrap_or_default();
                sent.assign(&self.clocks[slot as usize]);
                // A message id sent twice (a corrupt trace) keeps its last clock.
                drop(self.messages.insert((channel, message), sent));
                self.clocks[slot as usize].tick(slot);
            }
            EventKind::Receive { channel, message, .. } => {
                if let Some(sent) = self.messages.remove(&(channel, message)) {
                    self.clocks[slot as usize].join(&sent);
                    if self.spare_clocks.len() < SPARE_CLOCKS {
                        self.spare_clocks.push(sent);
                    }
                }
            }
            EventKind::SyncRelease { var, .. } => {
                grow(&mut self.sync_objects, var.index());
                self.sync_objects[var.index()].join(&self.clocks[slot as usize]);
                self.clocks[slot as usize].tick(slot);
            }
            EventKind::SyncAcquire { var, .. } => {
                if let Some(published) = self.sync_objects.get(var.index()) {
                    self.clocks[slot as usize].join(published);
                }
            }
            _ => {}
        }
    }
}

fn grow(clocks: &mut Vec<Clock>, index: usize) {
    if clocks.len() <= index {
        clocks.resize(index + 1, Clock::default());
    }
}

impl Detector for DataRace {
    fn kind(&self) -> FindingKind {
        FindingKind::DataRace
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::READ
            | Interest::WRITE
            | Interest::LOCK_ACQUIRED
            | Interest::LOCK_RELEASED
            | Interest::TASK_SPAWNED
            | Interest::TASK_FINISHED
            | Interest::THREAD_SPAWNED
            | Interest::TASK_JOINED
            | Interest::THREAD_JOINED
            | Interest::WAKE
            | Interest::POLL_STARTED
            | Interest::SEND
            | Interest::RECEIVE
            | Interest::SYNC_RELEASE
            | Interest::SYNC_ACQUIRE
    }

    fn prefetch_interest(&self) -> Interest {
        Interest::READ | Interest::WRITE
    }

    /// Fetches the variable's shadow and details.
    #[inline]
    fn prefetch(&self, event: &Event) {
        if let EventKind::Read { var, .. } | EventKind::Write { var, .. } = event.kind {
            prefetch_entry(&self.shadows, var.index());
            prefetch_entry(&self.details, var.index());
        }
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let lock_event =
            matches!(event.kind, EventKind::LockAcquired { .. } | EventKind::LockReleased { .. });
        if self.started {
            self.on_clocked_event(cx, event);
        } else if !lock_event {
            // (Before the clocks start, lock events, most of a trace of locks alone, change
            // nothing.)
            self.before_start(cx, event);
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let mut races: Vec<(RaceKey, RaceRecord)> = self.races.drain().collect();
        races.sort_by_key(|(key, record)| {
            (record.later.info.time_ns, key.var, key.first, key.second)
        });
        for (key, record) in races {
            findings.push(race_finding(cx, key.var, &record));
        }
    }
}

fn access_detail(cx: &Context<'_>, access: &Access) -> AccessDetail {
    AccessDetail {
        access: if access.write { "write" } else { "read" }.to_owned(),
        thread: cx.trace.thread_name(access.info.thread),
        task: match access.info.actor {
            Actor::Task(task) => Some(cx.trace.task_name(task)),
            Actor::Thread(_) => None,
        },
        site: cx.site_ref(access.info.site, "").to_string(),
        time_ns: access.info.time_ns,
        locks_held: access
            .info
            .locks
            .iter()
            .take_while(|&&lock| lock != NO_LOCK)
            .map(|&lock| cx.trace.lock_name(LockId(lock)))
            .collect(),
    }
}

fn describe_access(cx: &Context<'_>, access: &Access, detail: &AccessDetail, var: &str) -> String {
    let verb = if access.write { "wrote" } else { "read" };
    let held = if detail.locks_held.is_empty() {
        "holding no lock".to_owned()
    } else {
        let names: Vec<String> = detail.locks_held.iter().map(|l| format!("`{l}`")).collect();
        format!("holding {}", names.join(", "))
    };
    format!(
        "{} {verb} `{var}` at {} (t={}), {held}",
        access.info.actor.describe(cx.trace),
        detail.site,
        crate::report::format_ns(access.info.time_ns),
    )
}

fn race_finding(cx: &Context<'_>, var: VarId, record: &RaceRecord) -> Finding {
    let name = cx.trace.var_name(var);
    let (earlier, later) = (&record.earlier, &record.later);
    let first = access_detail(cx, earlier);
    let second = access_detail(cx, later);
    let mut finding = Finding::new(
        FindingKind::DataRace,
        Severity::Error,
        format!(
            "data race on `{name}`: {} at {} and {} at {} are not ordered",
            first.access, first.site, second.access, second.site
        ),
    );
    finding.variables.push(name.clone());
    for access in [earlier, later] {
        cx.add_actor(&mut finding, access.info.actor, access.info.thread);
        let role = if access.write { "write" } else { "read" };
        finding.sites.push(cx.site_ref(access.info.site, role));
    }
    for lock in first.locks_held.iter().chain(&second.locks_held) {
        crate::report::push_unique(&mut finding.locks, lock.clone());
    }
    finding.time_ns = later.info.time_ns;
    finding.evidence.push(describe_access(cx, earlier, &first, &name));
    finding.evidence.push(describe_access(cx, later, &second, &name));
    let common = first.locks_held.iter().any(|lock| second.locks_held.contains(lock));
    finding.evidence.push(if common {
        "they hold a common lock only in shared mode, or through different acquisitions that do not order them".to_owned()
    } else {
        "no lock is held by both, and no spawn, join, channel message or wake orders them".to_owned()
    });
    if record.count > 1 {
        finding.evidence.push(format!("this pair of sites raced {} times", record.count));
    }
    finding.help = Some(format!(
        "guard every access to `{name}` with one lock, or hand it over through a channel or a join"
    ));
    finding.detail =
        Detail::DataRace(RaceDetail { variable: name, first, second, count: record.count });
    finding
}
