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
//!   variable; since happens-before orders the exclusive sections on a lock, the last release
//!   by another slot knows all earlier ones, so two are kept — the last, and the last by
//!   another slot than its — so that a slot never orders itself through them; shared
//!   sections overlap, and keep one per slot; as in happens-before, a shared section orders
//!   nothing in another shared one);
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
//! Clocks kept per variable and per section are rows of flat [`ClockTable`]s: no allocation
//! per event, and no pointer to follow per access.
//!
//! Bounds: a lock's history keeps [`HISTORY`] sections, and a critical section remembers
//! [`SECTION_ACCESSES`] distinct accesses; what is forgotten past them are orders WCP would
//! have kept, counted in [`Losses`] so that the findings can say so.

use super::{Clock, ClockTable, Epoch};
use hindsight_recorder::format::{LockId, LockMode, VarId};
use rustc_hash::FxHashMap;

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
#[derive(Debug, Clone, Copy)]
struct Section {
    slot: u32,
    /// The acquiring slot's own clock entry at the acquisition.
    acquired: u32,
    exclusive: bool,
    /// Whether it was released (its `H` at the release is in [`LockState::released`]).
    done: bool,
}

/// WCP's state of one lock.
#[derive(Debug, Default)]
struct LockState {
    /// `P` of the last exclusive release.
    write: Clock,
    /// Joined `P` of the shared releases since the last exclusive acquisition.
    read: Clock,
    /// The last [`HISTORY`] sections, the one at position `p` (counted from the lock's first
    /// section) at index `p % HISTORY`.
    history: Vec<Section>,
    /// Per entry of `history`, `H` at its release.
    released: ClockTable,
    /// Sections so far: the position of the next.
    next: u64,
    /// Per slot that released the lock, where it is in the history.
    cursors: Vec<Cursor>,
}

/// Where a slot is in a lock's history, for rule (b).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    slot: u32,
    /// The position of the first section it has not yet passed.
    position: u64,
    /// The acquisition (acquirer's slot, own entry) of the section at `position` if it was
    /// released and stopped the slot only because its acquisition was not WCP-before: until
    /// the slot's `P` knows it, nothing changes (read here, the history is left alone).
    waits_for: Epoch,
}

impl LockState {
    /// The position of the oldest section kept.
    fn base(&self) -> u64 {
        self.next.saturating_sub(HISTORY as u64)
    }
}

/// A critical section a slot is inside.
#[derive(Debug)]
struct Open {
    lock: LockId,
    exclusive: bool,
    /// Its position in the lock's history.
    position: u64,
    /// The accesses made inside it (and inside sections nested in it), `true` for writes.
    accesses: Vec<(VarId, bool)>,
}

/// The kind of the accesses of the sections whose releases rule (a) keeps (a read followed
/// by a write of the same variable counts as the write only: a later access that conflicts
/// with the read conflicts with the write too).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Read = 0,
    Write = 1,
}

impl Kind {
    /// The kind of an access.
    fn of(write: bool) -> Self {
        if write {
            Kind::Write
        } else {
            Kind::Read
        }
    }

    /// The kinds of earlier accesses an access of this kind conflicts with.
    fn conflicting(self) -> &'static [Kind] {
        match self {
            Kind::Read => &[Kind::Write],
            Kind::Write => &[Kind::Read, Kind::Write],
        }
    }
}

/// The last release of a section (of one kind of access, on one lock and variable), and the
/// last by another slot than its own: for slot `t`, the release to order after is the last
/// not by `t`, which knows every earlier one, since happens-before orders the exclusive
/// sections on a lock. Their clocks are rows of a [`ReleaseTable`].
#[derive(Debug, Clone, Copy)]
struct LastTwo {
    releases: [Epoch; 2],
    /// Which of `releases` is the last.
    latest: u8,
}

impl Default for LastTwo {
    fn default() -> Self {
        LastTwo { releases: [Epoch::NONE; 2], latest: 0 }
    }
}

/// A (lock, variable) pair's rule (a) releases, by [`Kind`].
#[derive(Debug, Clone, Copy)]
struct Group {
    lock: u32,
    last: [LastTwo; 2],
}

/// No lock: a group not yet used.
const NO_LOCK: u32 = u32::MAX;

impl Default for Group {
    fn default() -> Self {
        Group { lock: NO_LOCK, last: [LastTwo::default(); 2] }
    }
}

/// Rule (a)'s releases of exclusive sections, by group of (lock, variable), their `H` clocks
/// in one flat table: row `4 * group + 2 * kind + i` for `last[kind].releases[i]`.
#[derive(Debug, Default)]
struct ReleaseTable {
    groups: Vec<Group>,
    clocks: ClockTable,
}

impl ReleaseTable {
    fn row(group: usize, kind: Kind, index: u8) -> usize {
        4 * group + 2 * kind as usize + usize::from(index)
    }

    /// The group at `index`, made if missing.
    fn group_mut(&mut self, index: usize) -> &mut Group {
        if self.groups.len() <= index {
            self.groups.resize(index + 1, Group::default());
        }
        &mut self.groups[index]
    }

    /// `slot`, whose `H` is `h`, released a section that made an access of `kind`.
    fn released(&mut self, group: usize, kind: Kind, slot: u32, h: &Clock) {
        let last = &mut self.groups[group].last[kind as usize];
        let latest = last.releases[usize::from(last.latest)];
        // The last release by another slot than `slot` stays; `slot`'s earlier one, known
        // to this one, goes.
        let index = if latest.slot == slot || latest.slot == Epoch::NONE.slot {
            last.latest
        } else {
            1 - last.latest
        };
        last.releases[usize::from(index)] = Epoch { slot, clock: h.get(slot) };
        last.latest = index;
        self.clocks.set(Self::row(group, kind, index), h);
    }

    /// Orders `pred`, `P` of `slot`, after the last release by another slot of a section
    /// that made an access of `kind`, unless it knows it already.
    #[inline]
    fn order_after(&self, group: usize, kind: Kind, slot: u32, pred: &mut Clock) {
        let last = &self.groups[group].last[kind as usize];
        let mut index = last.latest;
        if last.releases[usize::from(index)].slot == slot {
            index = 1 - index;
        }
        // A clock that knows a slot's event at least as late as the release knows all the
        // release knew (only ticking events hand clocks on), so a release known adds nothing.
        if last.releases[usize::from(index)].unordered(slot, pred) {
            pred.join_entries(self.clocks.row(Self::row(group, kind, index)));
        }
    }

    /// Fetches a group and its clocks (a look-ahead hint).
    #[inline]
    fn prefetch(&self, group: usize) {
        crate::prefetch::prefetch_entry(&self.groups, group);
        self.clocks.prefetch(4 * group, 4);
    }
}

/// The releases of shared sections on a lock that made accesses to a variable, one per slot
/// and [`Kind`]: shared sections overlap, so no release knows the others.
#[derive(Debug, Default)]
struct SharedReleases([Vec<(Epoch, Clock)>; 2]);

/// WCP's clocks and lock rules; see the module docs.
#[derive(Debug, Default)]
pub struct Wcp {
    /// Per slot, `P`.
    preds: Vec<Clock>,
    /// Per slot, the critical sections it is inside, innermost last.
    open: Vec<Vec<Open>>,
    locks: Vec<LockState>,
    /// Rule (a)'s releases on each variable's first lock seen guarding it (most variables
    /// have one): group `v` for variable `v`, so that no hashing is needed.
    primary: ReleaseTable,
    /// Rule (a)'s releases on the other locks of a variable: their groups in `secondary`.
    secondary_groups: FxHashMap<(LockId, VarId), usize>,
    secondary: ReleaseTable,
    /// Rule (a)'s releases of shared sections.
    shared: FxHashMap<(LockId, VarId), SharedReleases>,
    losses: Losses,
    /// Access lists of closed sections, kept for the next sections to reuse.
    spare_accesses: Vec<Vec<(VarId, bool)>>,
}

/// Spare lists kept for reuse, at most.
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

    /// The table and group of rule (a)'s releases on `lock` of `var`, if any.
    #[inline]
    fn group(&self, lock: LockId, var: VarId) -> Option<(&ReleaseTable, usize)> {
        match self.primary.groups.get(var.index())?.lock {
            NO_LOCK => None,
            first if first == lock.0 => Some((&self.primary, var.index())),
            _ => Some((&self.secondary, *self.secondary_groups.get(&(lock, var))?)),
        }
    }

    /// [`group`](Self::group), made if missing.
    fn group_mut(&mut self, lock: LockId, var: VarId) -> (&mut ReleaseTable, usize) {
        let primary = self.primary.group_mut(var.index());
        if primary.lock == NO_LOCK {
            primary.lock = lock.0;
        }
        if primary.lock == lock.0 {
            return (&mut self.primary, var.index());
        }
        let fresh = self.secondary_groups.len();
        let group = *self.secondary_groups.entry((lock, var)).or_insert(fresh);
        self.secondary.group_mut(group).lock = lock.0;
        (&mut self.secondary, group)
    }

    /// Fetches what an access of `var` will touch (a look-ahead hint).
    #[inline]
    pub(super) fn prefetch(&self, var: VarId) {
        self.primary.prefetch(var.index());
    }

    /// Fetches the history entry and clock row the next section on `lock` will fill (a
    /// look-ahead hint).
    #[inline]
    pub(super) fn prefetch_acquisition(&self, lock: LockId) {
        if let Some(state) = self.locks.get(lock.index()) {
            let index = (state.next % HISTORY as u64) as usize;
            crate::prefetch::prefetch_entry(&state.history, index);
            state.released.prefetch(index, 1);
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
        self.lock(lock);
        let state = &mut self.locks[lock.index()];
        let pred = &mut self.preds[slot as usize];
        pred.join(&state.write);
        if exclusive && !state.read.is_empty() {
            pred.join(&state.read);
            // What earlier readers published now travels with this writer's release.
            state.read.clear();
        }
        let position = state.next;
        state.next += 1;
        let section = Section { slot, acquired: own, exclusive, done: false };
        if state.history.len() < HISTORY {
            state.history.push(section);
        } else {
            state.history[(position % HISTORY as u64) as usize] = section;
            // The section at `position - HISTORY` is dropped.
            let base = state.base();
            let mut unseen = false;
            for cursor in &mut state.cursors {
                if cursor.position < base {
                    *cursor = Cursor { position: base, waits_for: Epoch::NONE, ..*cursor };
                    unseen = true;
                }
            }
            self.losses.sections += u64::from(unseen);
        }
        // Rule (b) will walk the history from this slot's cursor at the release.
        if let Some(cursor) = state.cursors.iter().find(|cursor| cursor.slot == slot) {
            let from = (cursor.position.max(state.base()) % HISTORY as u64) as usize;
            crate::prefetch::prefetch_entry(&state.history, from);
            state.released.prefetch(from, 1);
        }
        let accesses = self.spare_accesses.pop().unwrap_or_default();
        self.open[slot as usize].push(Open { lock, exclusive, position, accesses });
    }

    /// `slot` accesses `var` (a write if `write`): rule (a) orders it after the releases of
    /// earlier sections on the locks it holds that made a conflicting access.
    pub(super) fn on_access(&mut self, slot: u32, var: VarId, write: bool) {
        if self.open[slot as usize].is_empty() {
            return;
        }
        let conflicting = Kind::of(write).conflicting();
        let mut pred = std::mem::take(&mut self.preds[slot as usize]);
        for section in self.open[slot as usize].iter() {
            if let Some((table, group)) = self.group(section.lock, var) {
                for &kind in conflicting {
                    table.order_after(group, kind, slot, &mut pred);
                }
            }
            // Two shared sections are never ordered, as in happens-before.
            if self.shared.is_empty() || !section.exclusive {
                continue;
            }
            if let Some(SharedReleases(lists)) = self.shared.get(&(section.lock, var)) {
                let releases = conflicting.iter().flat_map(|&kind| &lists[kind as usize]);
                for (release, clock) in releases {
                    if release.unordered(slot, &pred) {
                        pred.join(clock);
                    }
                }
            }
        }
        self.preds[slot as usize] = pred;
        let open = &mut self.open[slot as usize];
        let innermost = open.last_mut().expect("checked non-empty above; this is a bug");
        match innermost.accesses.last_mut() {
            Some(last) if *last == (var, write) => {}
            // Publishing a write publishes what a read of it would.
            Some(last) if *last == (var, false) => last.1 = true,
            _ => {
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
    }

    /// Rule (a): the release of a section that made `accesses` on `lock`, by `slot` whose `H`
    /// is `h`, publishes them.
    fn publish(
        &mut self,
        slot: u32,
        lock: LockId,
        exclusive: bool,
        accesses: &[(VarId, bool)],
        h: &Clock,
    ) {
        for &(var, write) in accesses {
            let kind = Kind::of(write);
            if exclusive {
                let (table, group) = self.group_mut(lock, var);
                table.released(group, kind, slot, h);
                continue;
            }
            let SharedReleases(lists) = self.shared.entry((lock, var)).or_default();
            let list = &mut lists[kind as usize];
            let release = Epoch { slot, clock: h.get(slot) };
            match list.iter_mut().find(|(earlier, _)| earlier.slot == slot) {
                Some((earlier, clock)) => {
                    *earlier = release;
                    clock.assign(h);
                }
                None => list.push((release, h.clone())),
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
        self.publish(slot, lock, exclusive, &section.accesses, h);
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
        if section.position >= state.base() {
            let index = (section.position % HISTORY as u64) as usize;
            state.released.set(index, h);
            state.history[index].done = true;
        }
    }

    /// Rule (b): every earlier section on `lock` whose acquisition is WCP-before this release
    /// (of the section at `own`) has its release WCP-before it too. Sections are passed in
    /// history order, stopping at the first that is not (the paper's queues).
    fn rule_b(&mut self, slot: u32, lock: LockId, exclusive: bool, own: u64) {
        let state = &mut self.locks[lock.index()];
        let base = state.base();
        let index = match state.cursors.iter().position(|cursor| cursor.slot == slot) {
            Some(index) => index,
            None => {
                state.cursors.push(Cursor { slot, position: base, waits_for: Epoch::NONE });
                state.cursors.len() - 1
            }
        };
        let pred = &mut self.preds[slot as usize];
        let cursor = &mut state.cursors[index];
        // Most releases stop where the last one did.
        if cursor.waits_for.unordered(slot, pred) {
            return;
        }
        cursor.waits_for = Epoch::NONE;
        let mut position = cursor.position.max(base);
        // The last section passed whose release is not yet joined: a later one's release
        // knows it unless both are shared (happens-before orders the sections of a lock
        // otherwise), so only the last of a run is joined.
        let mut pending: Option<(usize, bool)> = None;
        // The first shared section a shared release passed over: rule (b) never holds between
        // two shared sections, but it may between that one and a later exclusive release of
        // this slot, so the cursor stays there.
        let mut skipped = None;
        while position < own {
            let index = (position % HISTORY as u64) as usize;
            let entry = state.history[index];
            if entry.slot != slot {
                if !exclusive && !entry.exclusive {
                    skipped = skipped.or(Some(position));
                    position += 1;
                    continue;
                }
                if !entry.done {
                    break;
                }
                let acquired = Epoch { slot: entry.slot, clock: entry.acquired };
                if acquired.unordered(slot, pred) {
                    // (Past a skipped section, the next release must look again.)
                    if skipped.is_none() {
                        cursor.waits_for = acquired;
                    }
                    break;
                }
                if let Some((earlier, false)) = pending.filter(|_| !entry.exclusive) {
                    pred.join_entries(state.released.row(earlier));
                }
                pending = Some((index, entry.exclusive));
            }
            position += 1;
        }
        if let Some((last, _)) = pending {
            pred.join_entries(state.released.row(last));
        }
        cursor.position = skipped.unwrap_or(position);
    }
}
