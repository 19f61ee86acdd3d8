//! The sync-preserving closure of a set of events (Tunç, Mathur, Pavlogiannis, Viswanathan,
//! "Sound Dynamic Deadlock Prediction in Linear Time", PLDI 2023): the smallest set that
//! contains them, is closed under program order and the orders every correct reordering keeps
//! (spawn, join, messages, annotations, the write each read saw), and keeps the critical
//! sections of each lock in their recorded order: when it contains two conflicting
//! acquisitions of one lock, it contains the earlier one's release.
//!
//! Executed in trace order, such a set is a correct reordering's prefix. A set of events
//! downward closed in program order is one cut per actor (how many of its events are in); the
//! closure only grows the cuts, so checking the instances of one pattern in order, each
//! against the closure of the previous, costs one pass over the window in all.

use super::log::{Log, Step, NONE};
use hindsight_recorder::format::{LockId, LockMode};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// A cut past every event of an actor's window: the closure needs an event after the
/// window (a release not logged in it).
pub(crate) const BEYOND: u32 = u32::MAX;

/// Why an actor's cut grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pull {
    /// Asked for directly (a pattern's own predecessors).
    Seed,
    /// By the order into the event at this window index (a join, a receive, a child's first
    /// event, a read, an acquire annotation, a poll after a wake).
    Order(u32),
    /// By a lock's critical sections: the acquisition at this window index is in, and a
    /// conflicting one of the same lock before it must have been released first.
    Lock(u32),
    /// By what a read saw: a write that must follow a read of the previous write, or the
    /// previous write (the later access's index).
    Access(u32),
}

/// Per lock: what of it the closure holds.
#[derive(Debug, Clone, Default)]
struct LockState {
    /// The latest (in trace order) acquisition in, any mode, and exclusive.
    latest: Option<u32>,
    latest_exclusive: Option<u32>,
    /// Acquisitions in whose releases are not yet required, by their place in the lock's
    /// list, with their modes.
    open: Vec<(u32, LockMode)>,
}

/// A closure being grown; see the module docs.
#[derive(Debug)]
pub(crate) struct Closure<'a> {
    log: &'a Log,
    /// Per actor, how many of its events are in.
    cut: Vec<u32>,
    /// Per actor, what last grew its cut.
    pulled: Vec<Pull>,
    locks: HashMap<LockId, LockState>,
    work: Vec<(u32, Pull)>,
    /// Keep critical sections apart and what each read saw (off: only the
    /// orders that every correct reordering keeps, which refutes rather than witnesses).
    sync_preserving: bool,
    /// Relaxed: conflicting critical sections may run in any order, but all of them but
    /// these acquisitions (lock, place in its list: what a pattern's actors hold when they
    /// ask) must be complete. The result needs checking by [`simulate`](super::simulate).
    pinned: Option<HashSet<(LockId, u32)>>,
    /// Events visited, for bounding the work.
    pub steps: u64,
}

impl<'a> Closure<'a> {
    /// An empty closure over `log`; see [`Closure::sync_preserving`](Self).
    pub fn new(log: &'a Log, sync_preserving: bool) -> Self {
        let mut closure = Closure {
            log,
            cut: vec![0; log.actors.len()],
            pulled: vec![Pull::Seed; log.actors.len()],
            locks: HashMap::default(),
            work: Vec::new(),
            sync_preserving,
            pinned: None,
            steps: 0,
        };
        // Holds open when the window began are acquisitions in every closure.
        if sync_preserving {
            for &(lock, at) in &log.open_at_start {
                let mode = log.locks[&lock][at as usize].mode;
                closure.acquired(lock, at, mode, NONE);
            }
            closure.settle();
        }
        closure
    }

    /// A relaxed closure over `log` (see [`Closure::pinned`](Self)), in which only the
    /// acquisitions of `pinned` may stay open.
    pub fn relaxed(log: &'a Log, pinned: HashSet<(LockId, u32)>) -> Self {
        let mut closure = Closure::new(log, true);
        closure.pinned = Some(pinned);
        closure
    }

    /// Whether the event at `pos` of `actor` is in.
    pub fn contains(&self, actor: u32, pos: u32) -> bool {
        self.cut[actor as usize] > pos
    }

    /// How many of `actor`'s events are in ([`BEYOND`] if more than the window has).
    pub fn cut(&self, actor: u32) -> u32 {
        self.cut[actor as usize]
    }

    /// What last grew `actor`'s cut.
    pub fn pulled(&self, actor: u32) -> Pull {
        self.pulled[actor as usize]
    }

    /// Adds everything that must come before the event at `pos` of `actor`, but not the
    /// event, and closes. The end of the actor a join waits for is left out: the join is
    /// what blocks.
    pub fn add_predecessors(&mut self, actor: u32, pos: u32) {
        let index = self.log.by_actor[actor as usize][pos as usize];
        let event = self.log.events[index as usize];
        if pos > 0 {
            let previous = self.log.by_actor[actor as usize][pos as usize - 1];
            self.work.push((previous, Pull::Seed));
        }
        if event.cross != NONE && !matches!(event.step, Step::JoinWait { .. }) {
            self.work.push((event.cross, Pull::Order(index)));
        }
        if self.sync_preserving {
            let preds = self.log.access_preds(&event);
            self.work.extend(preds.iter().map(|&pred| (pred, Pull::Access(index))));
        }
        self.settle();
    }

    /// Includes queued events until nothing more is required.
    fn settle(&mut self) {
        while let Some((index, why)) = self.work.pop() {
            if index == NONE {
                continue;
            }
            let event = self.log.events[index as usize];
            let to = event.pos + 1;
            self.grow(event.actor, to, why);
        }
    }

    /// Grows `actor`'s cut to at least `to` ([`BEYOND`]: all of it and more), queueing what
    /// the new events require.
    fn grow(&mut self, actor: u32, to: u32, why: Pull) {
        let from = self.cut[actor as usize];
        if from >= to {
            return;
        }
        self.cut[actor as usize] = to;
        self.pulled[actor as usize] = why;
        let log = self.log;
        let events = &log.by_actor[actor as usize];
        let end = (to as usize).min(events.len());
        for &index in &events[(from as usize).min(end)..end] {
            self.steps += 1;
            let event = self.log.events[index as usize];
            if event.cross != NONE {
                self.work.push((event.cross, Pull::Order(index)));
            }
            if !self.sync_preserving {
                continue;
            }
            let preds = log.access_preds(&event);
            self.work.extend(preds.iter().map(|&pred| (pred, Pull::Access(index))));
            if let Step::Acquire { lock, mode, .. } = event.step {
                self.acquired(lock, event.at, mode, index);
            }
        }
    }

    /// Notes that acquisition `at` of `lock` (at window index `index`, [`NONE`] before the
    /// window) is in: the releases of the conflicting acquisitions on the other side of it
    /// in trace order are required.
    fn acquired(&mut self, lock: LockId, at: u32, mode: LockMode, index: u32) {
        let state = self.locks.entry(lock).or_default();
        let exclusive = mode == LockMode::Exclusive;
        let mut required: Vec<u32> = Vec::new();
        if let Some(pinned) = &self.pinned {
            // Any order of sections, but only pinned ones may stay open beside another.
            let mut met = false;
            state.open.retain(|&(other, other_mode)| {
                if !(exclusive || other_mode == LockMode::Exclusive) {
                    return true;
                }
                met = true;
                let keep = pinned.contains(&(lock, other));
                if !keep {
                    required.push(other);
                }
                keep
            });
            if met && !pinned.contains(&(lock, at)) {
                required.push(at);
            } else {
                state.open.push((at, mode));
            }
            self.require(lock, required, index);
            return;
        }
        // Earlier conflicting acquisitions in: their releases come first.
        state.open.retain(|&(other, other_mode)| {
            let conflict = exclusive || other_mode == LockMode::Exclusive;
            if other < at && conflict {
                required.push(other);
                false
            } else {
                true
            }
        });
        // A later conflicting acquisition in: this one's release comes first.
        let later = if exclusive { state.latest } else { state.latest_exclusive };
        if later.is_some_and(|later| later > at) {
            required.push(at);
        } else {
            state.open.push((at, mode));
        }
        state.latest = state.latest.max(Some(at));
        if exclusive {
            state.latest_exclusive = state.latest_exclusive.max(Some(at));
        }
        self.require(lock, required, index);
    }

    /// Requires the releases of acquisitions `required` of `lock`, because of the
    /// acquisition at window index `index`.
    fn require(&mut self, lock: LockId, required: Vec<u32>, index: u32) {
        let Some(list) = self.log.locks.get(&lock) else { return };
        for at in required {
            let a = list[at as usize];
            if a.release == NONE {
                // Released after the window, or never: the closure needs all of that actor.
                self.grow(a.actor, BEYOND, Pull::Lock(index));
            } else {
                let release = self.log.by_actor[a.actor as usize][a.release as usize];
                self.work.push((release, Pull::Lock(index)));
            }
        }
    }
}
