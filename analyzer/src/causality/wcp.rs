//! Weak causal precedence (Kini, Mathur, Viswanathan, "Dynamic race prediction in linear
//! time", PLDI 2017): the order that stays when critical sections on one lock are allowed to
//! swap, so that its races include those a reordering of the trace would expose.
//!
//! Each slot keeps, beside its happens-before clock `H`, a clock `P` of the events that are
//! WCP-before its current event (its own entry aside). A lock edge is kept only where the
//! paper's rules keep it:
//!
//! - (a) the release of a critical section orders an access in a later critical section on
//!   the same lock that conflicts with an access of the first (`L` clocks, per lock and
//!   variable, one per releasing slot so that a slot never orders itself through them);
//! - (b) if the acquisition of a critical section is WCP-before the release of a later one on
//!   the same lock, so is its release (a per-lock history of sections, each slot with a cursor
//!   into it: the paper's `Acq`/`Rel` queues with one entry per section instead of one per
//!   slot);
//! - and WCP is closed under composition with happens-before on both sides: acquisitions
//!   learn `P` of the lock's last release, and `L` and the history carry `H`.
//!
//! Hard edges (spawn, join, messages, wakes, annotations, semaphore permits) order their
//! source's whole happens-before past before their target, as RAPID's implementation does
//! for fork and join. Read (shared) sections of a read-write lock: a shared release passes
//! its `P` only to a later exclusive acquisition, as happens-before does, and rule (b) never
//! applies between two shared sections (they can overlap). Semaphores are not locks here:
//! their sections can overlap, so neither rule holds; their permits are hard edges.
//!
//! Bounds: a lock's history keeps [`HISTORY`] sections, and a critical section remembers
//! [`SECTION_ACCESSES`] distinct accesses; what is forgotten past them are orders WCP would
//! have kept, counted in [`Losses`] so that the findings can say so.

use super::Clock;
use hindsight_recorder::format::{LockId, LockMode, VarId};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Critical sections a lock's history keeps for rule (b).
pub const HISTORY: usize = 256;

/// Distinct accesses a critical section remembers for rule (a).
pub const SECTION_ACCESSES: usize = 4096;

/// What WCP's bounds made it forget: orders it might have kept, so races it might report
/// that a complete analysis would not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Critical sections dropped from a lock's history before every slot had looked at them.
    pub sections: u64,
    /// Accesses inside critical sections forgotten.
    pub accesses: u64,
}

impl Losses {
    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        *self == Losses::default()
    }
}

/// A critical section in a lock's history.
#[derive(Debug)]
struct Section {
    slot: u32,
    /// The acquiring slot's own clock entry at the acquisition.
    acquired: u32,
    exclusive: bool,
    /// Whether it was released.
    done: bool,
    /// `H` at the release, once [`done`](Self::done).
    released: Clock,
}

/// WCP's state of one lock.
#[derive(Debug, Default)]
struct LockState {
    /// `P` of the last exclusive release.
    write: Clock,
    /// Joined `P` of the shared releases since the last exclusive acquisition.
    read: Clock,
    history: VecDeque<Section>,
    /// The position of `history[0]` since the first section.
    base: u64,
    /// Per slot that released the lock, the position of the first section it has not
    /// yet passed.
    cursors: Vec<(u32, u64)>,
}

/// A critical section a slot is inside.
#[derive(Debug)]
struct Open {
    lock: LockId,
    /// Its position in the lock's history.
    position: u64,
    /// The accesses made inside it (and inside sections nested in it), `true` for writes.
    accesses: Vec<(VarId, bool)>,
}

/// The last release by one slot of a critical section that accessed a variable.
#[derive(Debug)]
struct Released {
    slot: u32,
    /// The slot's own entry of [`clock`](Self::clock), kept beside it so that a release
    /// already known is skipped without reading the clock.
    own: u32,
    clock: Clock,
}

/// The last releases of critical sections on a lock that accessed a variable, one per slot.
#[derive(Debug)]
struct Releases {
    lock: LockId,
    read: Vec<Released>,
    write: Vec<Released>,
}

impl Releases {
    fn new(lock: LockId) -> Self {
        Releases { lock, read: Vec::new(), write: Vec::new() }
    }
}

/// WCP's clocks and lock rules; see the module docs.
#[derive(Debug, Default)]
pub struct Wcp {
    /// Per slot, `P`.
    preds: Vec<Clock>,
    /// Per slot, the critical sections it is inside, innermost last.
    open: Vec<Vec<Open>>,
    locks: Vec<LockState>,
    /// Per variable, the releases of the first lock seen guarding it (most variables have
    /// one), indexed so that no hashing is needed; other locks' in `other_releases`.
    releases: Vec<Option<Releases>>,
    other_releases: FxHashMap<(LockId, VarId), Releases>,
    losses: Losses,
    /// Access lists of closed sections, kept for the next sections to reuse.
    spare_accesses: Vec<Vec<(VarId, bool)>>,
    /// Clocks of sections dropped from histories, kept for the next sections to reuse.
    spare_clocks: Vec<Clock>,
}

/// Spare lists and clocks kept for reuse, at most.
const SPARES: usize = 64;

impl Wcp {
    /// Makes room for a new slot.
    pub(super) fn add_slot(&mut self) {
        self.preds.push(Clock::default());
        self.open.push(Vec::new());
    }

    /// `P` of `slot`.
    #[inline]
    pub(super) fn predecessors(&self, slot: u32) -> &Clock {
        &self.preds[slot as usize]
    }

    /// What the bounds made it forget so far.
    pub(super) fn losses(&self) -> Losses {
        self.losses
    }

    /// A hard edge into `into` from an event whose `H` was `source`.
    pub(super) fn hard_edge(&mut self, into: u32, source: &Clock) {
        self.preds[into as usize].join(source);
    }

    /// The releases of sections on `lock` that accessed `var`, if any.
    #[inline]
    fn releases(&self, lock: LockId, var: VarId) -> Option<&Releases> {
        match self.releases.get(var.index()) {
            Some(Some(releases)) if releases.lock == lock => Some(releases),
            Some(Some(_)) => self.other_releases.get(&(lock, var)),
            _ => None,
        }
    }

    /// [`releases`](Self::releases), made if missing.
    fn releases_mut(&mut self, lock: LockId, var: VarId) -> &mut Releases {
        if self.releases.len() <= var.index() {
            self.releases.resize_with(var.index() + 1, || None);
        }
        let primary = self.releases[var.index()].get_or_insert_with(|| Releases::new(lock));
        if primary.lock == lock {
            return primary;
        }
        self.other_releases.entry((lock, var)).or_insert_with(|| Releases::new(lock))
    }

    /// Fetches what an access of `var` will touch (a look-ahead hint).
    #[inline]
    pub(super) fn prefetch(&self, var: VarId) {
        if let Some(Some(releases)) = self.releases.get(var.index()) {
            crate::prefetch::prefetch(releases.write.as_slice());
        } else {
            crate::prefetch::prefetch_entry(&self.releases, var.index());
        }
    }

    fn lock(&mut self, lock: LockId) -> &mut LockState {
        if self.locks.len() <= lock.index() {
            self.locks.resize_with(lock.index() + 1, LockState::default);
        }
        &mut self.locks[lock.index()]
    }

    /// `slot` acquired `lock`; `own` is its own `H` entry.
    pub(super) fn on_acquired(&mut self, slot: u32, lock: LockId, mode: LockMode, own: u32) {
        let exclusive = mode == LockMode::Exclusive;
        let state = self.lock(lock);
        let mut released = std::mem::take(&mut state.write);
        let mut read = std::mem::take(&mut state.read);
        let pred = &mut self.preds[slot as usize];
        pred.join(&released);
        if exclusive && !read.is_empty() {
            pred.join(&read);
            // What earlier readers published now travels with this writer's release.
            read.clear();
        }
        let state = &mut self.locks[lock.index()];
        std::mem::swap(&mut state.write, &mut released);
        state.read = read;
        let released = self.spare_clocks.pop().unwrap_or_default();
        state.history.push_back(Section { slot, acquired: own, exclusive, done: false, released });
        if state.history.len() > HISTORY {
            if let Some(dropped) = state.history.pop_front() {
                if self.spare_clocks.len() < SPARES {
                    self.spare_clocks.push(dropped.released);
                }
            }
            state.base += 1;
            let base = state.base;
            let mut unseen = false;
            for (_, cursor) in &mut state.cursors {
                if *cursor < base {
                    *cursor = base;
                    unseen = true;
                }
            }
            self.losses.sections += u64::from(unseen);
        }
        let position = state.base + state.history.len() as u64 - 1;
        let accesses = self.spare_accesses.pop().unwrap_or_default();
        self.open[slot as usize].push(Open { lock, position, accesses });
    }

    /// `slot` accesses `var` (a write if `write`): rule (a) orders it after the releases of
    /// earlier sections on the locks it holds that made a conflicting access.
    pub(super) fn on_access(&mut self, slot: u32, var: VarId, write: bool) {
        if self.open[slot as usize].is_empty() {
            return;
        }
        let mut pred = std::mem::take(&mut self.preds[slot as usize]);
        for section in self.open[slot as usize].iter() {
            let Some(releases) = self.releases(section.lock, var) else { continue };
            let reads: &[Released] = if write { &releases.read } else { &[] };
            for released in releases.write.iter().chain(reads) {
                // A clock that knows a slot's event at least as late as the release knows
                // all the release knew (only ticking events hand clocks on), so a release
                // already known adds nothing.
                if released.slot != slot && released.own > pred.get(released.slot) {
                    pred.join(&released.clock);
                }
            }
        }
        self.preds[slot as usize] = pred;
        let open = &mut self.open[slot as usize];
        let innermost = open.last_mut().expect("checked non-empty above; this is a bug");
        if innermost.accesses.last() != Some(&(var, write)) {
            innermost.accesses.push((var, write));
            if innermost.accesses.len() > SECTION_ACCESSES {
                innermost.accesses.sort_unstable();
                innermost.accesses.dedup();
                if innermost.accesses.len() > SECTION_ACCESSES / 2 {
                    let forgotten = innermost.accesses.len() - SECTION_ACCESSES / 2;
                    innermost.accesses.truncate(SECTION_ACCESSES / 2);
                    self.losses.accesses += forgotten as u64;
                }
            }
        }
    }

    /// `slot` releases `lock`; `h` is its `H` (before it ticks).
    pub(super) fn on_released(&mut self, slot: u32, lock: LockId, mode: LockMode, h: &Clock) {
        let exclusive = mode == LockMode::Exclusive;
        let Some(index) = self.open[slot as usize].iter().rposition(|open| open.lock == lock)
        else {
            return; // A release of what replay never saw acquired: nothing to order.
        };
        let mut section = self.open[slot as usize].remove(index);
        self.rule_b(slot, lock, exclusive, section.position);
        // Rule (a): what this section accessed, its release publishes.
        let own = h.get(slot);
        for &(var, write) in &section.accesses {
            let releases = self.releases_mut(lock, var);
            let list = if write { &mut releases.write } else { &mut releases.read };
            match list.iter_mut().find(|released| released.slot == slot) {
                Some(released) => {
                    released.own = own;
                    released.clock.assign(h);
                }
                None => list.push(Released { slot, own, clock: h.clone() }),
            }
        }
        // The enclosing section (if any) made these accesses too.
        if let Some(outer) = self.open[slot as usize].last_mut() {
            outer.accesses.extend_from_slice(&section.accesses);
        }
        if self.spare_accesses.len() < SPARES {
            section.accesses.clear();
            self.spare_accesses.push(section.accesses);
        }
        let pred = &self.preds[slot as usize];
        let state = &mut self.locks[lock.index()];
        if exclusive {
            state.write.assign(pred);
        } else {
            state.read.join(pred);
        }
        if let Some(position) = section.position.checked_sub(state.base) {
            if let Some(entry) = state.history.get_mut(position as usize) {
                entry.released.assign(h);
                entry.done = true;
            }
        }
    }

    /// Rule (b): every earlier section on `lock` whose acquisition is WCP-before this release
    /// (of the section at `own`) has its release WCP-before it too. Sections are passed in
    /// history order, stopping at the first that is not (the paper's queues).
    fn rule_b(&mut self, slot: u32, lock: LockId, exclusive: bool, own: u64) {
        let state = &mut self.locks[lock.index()];
        let cursor = match state.cursors.iter().position(|(s, _)| *s == slot) {
            Some(index) => index,
            None => {
                state.cursors.push((slot, state.base));
                state.cursors.len() - 1
            }
        };
        let pred = &mut self.preds[slot as usize];
        let mut position = state.cursors[cursor].1.max(state.base);
        while position < own {
            let Some(entry) = state.history.get((position - state.base) as usize) else { break };
            if entry.slot != slot {
                if !exclusive && !entry.exclusive {
                    break; // Two read sections can overlap: no order between them.
                }
                if !entry.done || entry.acquired > pred.get(entry.slot) {
                    break;
                }
                pred.join(&entry.released);
            }
            position += 1;
        }
        state.cursors[cursor].1 = position;
    }
}
