//! The causality engine: the orders between the events of a trace that the detectors ask
//! about, computed once with vector clocks over logical threads.
//!
//! Every OS thread (outside tasks) and every task is a logical thread with its own slot and
//! clock: a task keeps its clock when it moves between workers, and two tasks polled on one
//! worker are not ordered by sharing it. *Hard* edges order events in every relation:
//!
//! | from | to |
//! | --- | --- |
//! | spawning a task or thread | everything the child does |
//! | everything a task or thread did | whoever joins it |
//! | sending a message | receiving that message |
//! | waking a task | its next poll |
//! | a release annotation on an object | a later acquire annotation on it |
//! | everything a `block_on` future did | the thread that blocked on it, once it finished |
//! | releasing a semaphore permit | a later acquisition of a permit |
//!
//! On top of them, a [`Relation`] adds lock edges and more:
//!
//! - [`Relation::Hb`], happens-before: a release of a lock orders a later acquisition (a
//!   shared release orders only a later exclusive acquisition: read-read sections never
//!   order each other).
//! - [`Relation::Shb`], schedulable happens-before (Mathur, Kini, Viswanathan, OOPSLA 2018):
//!   HB plus an edge from the last write of a variable to every later read of it ([`shb`]).
//! - [`Relation::Wcp`], weak causal precedence (Kini, Mathur, Viswanathan, PLDI 2017): lock
//!   edges only where two critical sections cannot be reordered ([`wcp`]).
//! - [`Causality::without_lock_edges`]: hard edges only, what deadlock prediction asks for.
//!
//! A detector feeds every event to [`Causality::on_event`] and asks [`Causality::ordering`]
//! for the clock to compare an access against: an earlier event of epoch `e` is ordered before
//! the current event of slot `s` unless `e.unordered(s, ordering(s))`.
//!
//! Clocks may be kept lazily, from the first event that needs them on (see
//! [`Causality::start`]): before that, every edge carries what its source knew before ticking
//! its own clock (a release, a spawn, a wake, a send), so nothing learnt then can order an event
//! of that source after it, and whether an access happens before a later one depends only on the
//! edges between them. A join is the exception (the joiner learns the child's clock as it is,
//! which orders anything the child did without a tick since), so detectors start the clocks at
//! a join too.

mod clock;
pub mod shb;
pub mod wcp;
pub mod witness;

pub use clock::{Clock, ClockTable, Epoch};

use crate::detect::Context;
use crate::replay::Actor;
use hindsight_recorder::format::{
    ChannelId, Event, EventKind, LockId, LockKind, LockMode, TaskId, VarId,
};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Messages sent and not yet received are remembered up to this many; past that they are
/// forgotten, and receiving a forgotten message adds no edge (which could only add reports,
/// so the bound is generous).
const MAX_MESSAGES_IN_FLIGHT: usize = 1 << 20;

/// Clocks of received messages kept for reuse, at most.
const SPARE_CLOCKS: usize = 64;

/// Which order between events the race detector uses (`--races`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Relation {
    /// Happens-before as observed: every race of the recorded schedule; only the first is
    /// sure to be real.
    Hb,
    /// Schedulable happens-before: HB plus last-write → read order; every race reported is
    /// real.
    #[default]
    Shb,
    /// Weak causal precedence: also races that reordering critical sections would expose;
    /// the first is sure to be real, later ones are predicted.
    Wcp,
}

impl Relation {
    /// Every relation, in the order `--races` lists them.
    pub const ALL: [Relation; 3] = [Relation::Hb, Relation::Shb, Relation::Wcp];

    /// The name `--races` takes.
    pub fn name(self) -> &'static str {
        match self {
            Relation::Hb => "hb",
            Relation::Shb => "shb",
            Relation::Wcp => "wcp",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown race relation `{0}` (expected hb, shb or wcp)")]
pub struct UnknownRelation(String);

impl FromStr for Relation {
    type Err = UnknownRelation;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Relation::ALL
            .into_iter()
            .find(|relation| relation.name() == name)
            .ok_or_else(|| UnknownRelation(name.to_owned()))
    }
}

/// What the releases of one lock published (happens-before lock edges).
#[derive(Debug, Clone, Default)]
struct LockClocks {
    /// The clock of the last exclusive release.
    write: Clock,
    /// The joined clocks of the shared releases since the last exclusive acquisition.
    read: Clock,
}

/// The causality engine; see the module docs.
#[derive(Debug)]
pub struct Causality {
    relation: Relation,
    /// Whether releases of locks (other than semaphores) order later acquisitions.
    lock_edges: bool,
    thread_slots: Vec<Option<u32>>,
    task_slots: Vec<Option<u32>>,
    /// Per slot, its happens-before clock.
    clocks: Vec<Clock>,
    /// Per lock, what its releases published.
    locks: Vec<LockClocks>,
    pending_wakes: Vec<Option<Clock>>,
    /// Per task: the slot of the thread blocked in `block_on` on it, for `block_on` futures.
    blocked_callers: Vec<Option<u32>>,
    sync_objects: Vec<Clock>,
    messages: HashMap<(ChannelId, u64), Clock>,
    /// Clocks of received messages, kept for the next sends to copy into without allocating.
    spare_clocks: Vec<Clock>,
    /// Last-write clocks, in [`Relation::Shb`].
    shb: Option<shb::LastWrites>,
    /// Weak causal precedence's clocks and lock rules, in [`Relation::Wcp`].
    wcp: Option<wcp::Wcp>,
    started: bool,
}

impl Causality {
    /// An engine computing `relation`.
    pub fn new(relation: Relation) -> Self {
        Causality {
            relation,
            lock_edges: true,
            thread_slots: Vec::new(),
            task_slots: Vec::new(),
            clocks: Vec::new(),
            locks: Vec::new(),
            pending_wakes: Vec::new(),
            blocked_callers: Vec::new(),
            sync_objects: Vec::new(),
            messages: HashMap::new(),
            spare_clocks: Vec::new(),
            shb: (relation == Relation::Shb).then(shb::LastWrites::default),
            wcp: (relation == Relation::Wcp).then(wcp::Wcp::default),
            // WCP's lock rules look back at critical sections before the first access.
            started: relation == Relation::Wcp,
        }
    }

    /// An engine computing happens-before through hard edges only, with no lock edge: what
    /// deadlock prediction needs (two critical sections on a lock can be reordered).
    pub fn without_lock_edges() -> Self {
        Causality { lock_edges: false, ..Causality::new(Relation::Hb) }
    }

    /// The relation computed.
    pub fn relation(&self) -> Relation {
        self.relation
    }

    /// Whether clocks are kept (see the module docs).
    #[inline]
    pub fn started(&self) -> bool {
        self.started
    }

    /// Starts keeping clocks, from the current event on.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// The slot of `actor`, creating its clock (1 in its own entry) on first sight.
    pub fn slot(&mut self, actor: Actor) -> u32 {
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
        if let Some(wcp) = &mut self.wcp {
            wcp.add_slot();
        }
        slot
    }

    /// The happens-before clock of `slot` (with lock edges unless built
    /// [`without_lock_edges`](Self::without_lock_edges)).
    #[inline]
    pub fn clock(&self, slot: u32) -> &Clock {
        &self.clocks[slot as usize]
    }

    /// `slot`'s own entry now: the epoch of its current event.
    #[inline]
    pub fn epoch(&self, slot: u32) -> Epoch {
        Epoch { slot, clock: self.clocks[slot as usize].get(slot) }
    }

    /// The clock that says which earlier events of other slots are ordered before the current
    /// event of `slot` in the engine's relation (its own entry aside: program order always
    /// orders a slot's own events).
    #[inline]
    pub fn ordering(&self, slot: u32) -> &Clock {
        match &self.wcp {
            Some(wcp) => wcp.predecessors(slot),
            None => &self.clocks[slot as usize],
        }
    }

    /// Takes in an access of `var` by `slot`, before the detector checks it against
    /// [`ordering`](Self::ordering): WCP orders it after the critical sections of the locks
    /// `slot` holds that made a conflicting access.
    #[inline]
    pub fn before_access(&mut self, slot: u32, var: VarId, write: bool) {
        if let Some(wcp) = &mut self.wcp {
            wcp.on_access(slot, var, write);
        }
    }

    /// Takes in an access of `var` by `slot`, once the detector has checked it: SHB orders
    /// the last write before a read.
    #[inline]
    pub fn after_access(&mut self, slot: u32, var: VarId, write: bool) {
        if let Some(last) = &mut self.shb {
            let clock = &mut self.clocks[slot as usize];
            if write {
                last.wrote(var, slot, clock);
                clock.tick(slot);
            } else {
                last.read(var, clock);
            }
        }
    }

    /// Fetches what an access of `var` will touch in the engine (a look-ahead hint).
    #[inline]
    pub fn prefetch_access(&self, var: VarId) {
        if let Some(last) = &self.shb {
            last.prefetch(var);
        }
        if let Some(wcp) = &self.wcp {
            wcp.prefetch(var);
        }
    }

    /// Fetches what an acquisition of `lock` will touch in the engine (a look-ahead hint).
    #[inline]
    pub fn prefetch_acquisition(&self, lock: LockId) {
        if let Some(wcp) = &self.wcp {
            wcp.prefetch_acquisition(lock);
        }
    }

    /// Remembers the caller (`slot`) of a `block_on` future's `task`, which it waits for.
    fn note_block_on(&mut self, cx: &Context<'_>, task: TaskId, slot: u32) {
        if crate::detect::task_kind(cx, task) == Some("block_on") {
            let index = task.index();
            if self.blocked_callers.len() <= index {
                self.blocked_callers.resize(index + 1, None);
            }
            self.blocked_callers[index] = Some(slot);
        }
    }

    /// The slot of the caller blocked on the task that `event` (its end) finished, if any.
    pub fn blocked_caller(&self, event: &Event) -> Option<u32> {
        let task = event.task?;
        self.blocked_callers.get(task.index()).copied().flatten()
    }

    /// [`blocked_caller`](Self::blocked_caller), forgetting it.
    fn take_blocked_caller(&mut self, event: &Event) -> Option<u32> {
        let task = event.task?;
        self.blocked_callers.get_mut(task.index()).and_then(Option::take)
    }

    /// Takes in an event before the clocks start. No clock changes (see the module docs), but
    /// what outlives the event does, as it would have: who blocks on which `block_on` future,
    /// and which messages are in flight (with no clock), so that once the clocks start the
    /// state is the same as if they had been kept all along, but for clock entries that no
    /// comparison can tell apart. (Actors get their slots, in which no comparison is
    /// interested either, when they first matter.)
    pub fn before_start(&mut self, cx: &Context<'_>, event: &Event) {
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

    /// A hard edge: `into` learns what `from` knows.
    fn join_actor(&mut self, into: u32, from: u32) {
        if into == from {
            return;
        }
        let source = std::mem::take(&mut self.clocks[from as usize]);
        self.hard_edge(into, &source);
        self.clocks[from as usize] = source;
    }

    /// A hard edge into `into` from an event whose happens-before clock was `source`: it
    /// orders `into` after it in every relation.
    fn hard_edge(&mut self, into: u32, source: &Clock) {
        self.clocks[into as usize].join(source);
        if let Some(wcp) = &mut self.wcp {
            wcp.hard_edge(into, source);
        }
    }

    /// The happens-before clocks of `lock`.
    #[inline]
    fn lock_clocks(&mut self, lock: LockId) -> &mut LockClocks {
        let index = lock.index();
        if self.locks.len() <= index {
            self.locks.resize_with(index + 1, LockClocks::default);
        }
        &mut self.locks[index]
    }

    fn on_lock_acquired(&mut self, slot: u32, lock: LockId, mode: LockMode, semaphore: bool) {
        if !self.lock_edges && !semaphore {
            return;
        }
        let released = std::mem::take(self.lock_clocks(lock));
        let mut published = released;
        if semaphore {
            // A permit handed on is a hard edge in every relation.
            self.hard_edge(slot, &published.write);
        } else {
            self.clocks[slot as usize].join(&published.write);
            if mode == LockMode::Exclusive && !published.read.is_empty() {
                self.clocks[slot as usize].join(&published.read);
                // What earlier readers published now travels with this writer's release.
                published.read.clear();
            }
            if let Some(wcp) = &mut self.wcp {
                wcp.on_acquired(slot, lock, mode, self.clocks[slot as usize].get(slot));
            }
        }
        self.locks[lock.index()] = published;
    }

    fn on_lock_released(&mut self, slot: u32, lock: LockId, mode: LockMode, semaphore: bool) {
        if self.lock_edges || semaphore {
            if let (Some(wcp), false) = (&mut self.wcp, semaphore) {
                wcp.on_released(slot, lock, mode, &self.clocks[slot as usize]);
            }
            self.lock_clocks(lock);
            let released = &mut self.locks[lock.index()];
            let clock = &self.clocks[slot as usize];
            match mode {
                LockMode::Exclusive => released.write.assign(clock),
                LockMode::Shared => released.read.join(clock),
            }
        }
        self.clocks[slot as usize].tick(slot);
    }

    /// Takes in a synchronisation event once the clocks are kept (accesses go through
    /// [`before_access`](Self::before_access) and [`after_access`](Self::after_access)).
    pub fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let actor = Actor::of(event);
        let slot = self.slot(actor);
        match event.kind {
            EventKind::LockAcquired { lock, mode, .. } => {
                let semaphore = is_semaphore(cx, lock);
                self.on_lock_acquired(slot, lock, mode, semaphore);
            }
            EventKind::LockReleased { lock, mode, .. } => {
                let semaphore = is_semaphore(cx, lock);
                self.on_lock_released(slot, lock, mode, semaphore);
            }
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
                        self.hard_edge(slot, &woken);
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
                    self.hard_edge(slot, &sent);
                    if self.spare_clocks.len() < SPARE_CLOCKS {
                        self.spare_clocks.push(sent);
                    }
                }
            }
            EventKind::SyncRelease { var, .. } => {
                if self.sync_objects.len() <= var.index() {
                    self.sync_objects.resize(var.index() + 1, Clock::default());
                }
                self.sync_objects[var.index()].join(&self.clocks[slot as usize]);
                self.clocks[slot as usize].tick(slot);
            }
            EventKind::SyncAcquire { var, .. } => {
                if let Some(published) = self.sync_objects.get(var.index()) {
                    let published = published.clone();
                    self.hard_edge(slot, &published);
                }
            }
            _ => {}
        }
    }

    /// The locks (at most `limit`, lowest ids first) whose releases have published the event
    /// of `epoch`: the critical sections through which happens-before may order it before a
    /// later event, for a finding to name.
    pub fn locks_knowing(&self, epoch: Epoch, limit: usize) -> Vec<LockId> {
        self.locks
            .iter()
            .enumerate()
            .filter(|(_, clocks)| {
                clocks.write.get(epoch.slot) >= epoch.clock
                    || clocks.read.get(epoch.slot) >= epoch.clock
            })
            .map(|(index, _)| LockId(index as u32))
            .take(limit)
            .collect()
    }

    /// What WCP's bounds cost in precision so far (none in other relations).
    pub fn losses(&self) -> wcp::Losses {
        self.wcp.as_ref().map(wcp::Wcp::losses).unwrap_or_default()
    }
}

/// Whether `lock` is a counting semaphore (whose sections can overlap: not a lock to WCP).
pub fn is_semaphore(cx: &Context<'_>, lock: LockId) -> bool {
    cx.trace.locks().get(lock.index()).is_some_and(|l| l.kind == LockKind::Semaphore)
}
