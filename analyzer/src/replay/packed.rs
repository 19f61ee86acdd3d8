//! Queued events in a compact form: 32 bytes, where an [`Event`] takes 56 and its sequence
//! slot 8 more. Replay buffers every event between two watermarks (over a hundred thousand on
//! a busy trace), and writing them into the queues and reading them back is a large part of
//! its cost, so halving them pays for the packing.
//!
//! A queue holds the events of one thread, so the thread is not stored; a lock event stores
//! its lock's sequence slot, which names the lock too (see `Trace::slot_locks`).

use crate::trace::Known;
use hindsight_recorder::format::{
    ChannelId, Event, EventKind, LockId, LockMode, SiteId, StringId, TaskId, ThreadId, VarId,
};

/// The event has a task.
const TASK: u8 = 1;
/// The optional id `b` (a site) is present.
const B: u8 = 1 << 1;
/// The first flag of the kind (a shared mode, `ready`, `cancelled`, `panicked`, `by_ref`).
const FLAG0: u8 = 1 << 2;
/// The second flag of the kind (`via_try`, `poisoned`).
const FLAG1: u8 = 1 << 3;
/// `wide` holds the lock sequence number, which replay orders the event by.
const SEQ: u8 = 1 << 4;

/// One queued event; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Packed {
    /// The event's time.
    pub(super) time_ns: u64,
    /// The kind's 64-bit field: a lock sequence number, a message id, a count of lost events.
    wide: u64,
    /// The kind's main id: a lock's sequence slot, a task, thread, channel, variable or label.
    a: u32,
    /// The kind's site, where it has one.
    b: u32,
    task: u32,
    kind: u8,
    flags: u8,
}

fn flag(set: bool, bit: u8) -> u8 {
    if set {
        bit
    } else {
        0
    }
}

fn shared(mode: LockMode) -> u8 {
    flag(mode == LockMode::Shared, FLAG0)
}

impl Packed {
    /// A packed event with no field of its kind set yet.
    #[inline]
    fn new(time_ns: u64, task: Option<TaskId>) -> Packed {
        Packed {
            time_ns,
            wide: 0,
            a: 0,
            b: 0,
            task: task.map_or(0, |t| t.0),
            kind: 0,
            flags: flag(task.is_some(), TASK),
        }
    }

    /// Remaps and packs `event`, as read from a file, if it is of the kinds that dominate
    /// traces (lock events, polls, accesses) and every id it carries is `known`: what remapping it and
    /// then [`pack`](Self::pack)ing it gives, in one step.
    #[inline]
    pub(super) fn remap_known(known: &Known<'_>, event: &Event) -> Option<Packed> {
        use EventKind as K;
        let task = known.task(event.task)?;
        let mut p = Packed::new(known.time(event.time_ns), task);
        match event.kind {
            K::LockAcquired { lock, mode, site, seq, via_try } => {
                (p.kind, p.a, p.b) = (1, known.slot(lock)?, known.site(site)?.0);
                p.flags |= shared(mode) | flag(via_try, FLAG1);
                p.set_seq(seq);
            }
            K::LockReleased { lock, mode, seq, poisoned } => {
                (p.kind, p.a) = (3, known.slot(lock)?);
                p.flags |= shared(mode) | flag(poisoned, FLAG1);
                p.set_seq(seq);
            }
            K::LockRequested { lock, mode, site } => {
                (p.kind, p.a, p.b) = (0, known.slot(lock)?, known.site(site)?.0);
                p.flags |= shared(mode);
            }
            K::PollStarted => p.kind = 5,
            K::PollEnded { ready } => (p.kind, p.flags) = (6, p.flags | flag(ready, FLAG0)),
            K::Read { var, site } => {
                (p.kind, p.a, p.b) = (18, known.var(var)?.0, known.site(site)?.0)
            }
            K::Write { var, site } => {
                (p.kind, p.a, p.b) = (19, known.var(var)?.0, known.site(site)?.0);
            }
            _ => return None,
        }
        Some(p)
    }

    #[inline]
    fn set_seq(&mut self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.wide = seq;
            self.flags |= SEQ;
        }
    }

    /// Caps the time below `limit`.
    #[inline]
    pub(super) fn cap_time(&mut self, limit: u64) {
        self.time_ns = self.time_ns.min(limit);
    }

    /// Packs `event`, a remapped event of a queue's thread; `slot` is its lock's sequence slot
    /// if it is a lock event.
    #[inline]
    pub(super) fn pack(event: &Event, slot: u32) -> Packed {
        use EventKind as K;
        let mut p = Packed::new(event.time_ns, event.task);
        let site = |p: &mut Packed, site: Option<SiteId>| {
            if let Some(site) = site {
                p.b = site.0;
                p.flags |= B;
            }
        };
        match event.kind {
            K::LockRequested { mode, site: s, .. } => {
                (p.kind, p.a, p.b) = (0, slot, s.0);
                p.flags |= shared(mode);
            }
            K::LockAcquired { mode, site: s, seq: n, via_try, .. } => {
                (p.kind, p.a, p.b) = (1, slot, s.0);
                p.flags |= shared(mode) | flag(via_try, FLAG1);
                p.set_seq(n);
            }
            K::LockTryFailed { mode, site: s, .. } => {
                (p.kind, p.a, p.b) = (2, slot, s.0);
                p.flags |= shared(mode);
            }
            K::LockReleased { mode, seq: n, poisoned, .. } => {
                (p.kind, p.a) = (3, slot);
                p.flags |= shared(mode) | flag(poisoned, FLAG1);
                p.set_seq(n);
            }
            K::TaskSpawned { task, site: s } => {
                (p.kind, p.a) = (4, task.0);
                site(&mut p, s);
            }
            K::PollStarted => p.kind = 5,
            K::PollEnded { ready } => (p.kind, p.flags) = (6, p.flags | flag(ready, FLAG0)),
            K::TaskFinished { cancelled } => {
                (p.kind, p.flags) = (7, p.flags | flag(cancelled, FLAG0));
            }
            K::TaskJoined { task, site: s } => {
                (p.kind, p.a) = (8, task.0);
                site(&mut p, s);
            }
            K::TaskJoinRequested { task, site: s } => {
                (p.kind, p.a) = (9, task.0);
                site(&mut p, s);
            }
            K::Wake { task, by_ref } => {
                (p.kind, p.a) = (10, task.0);
                p.flags |= flag(by_ref, FLAG0);
            }
            K::ThreadSpawned { thread, site: s } => {
                (p.kind, p.a) = (11, thread.0);
                site(&mut p, s);
            }
            K::ThreadStarted => p.kind = 12,
            K::ThreadFinished { panicked } => {
                (p.kind, p.flags) = (13, p.flags | flag(panicked, FLAG0));
            }
            K::ThreadJoinRequested { thread, site: s } => {
                (p.kind, p.a) = (14, thread.0);
                site(&mut p, s);
            }
            K::ThreadJoined { thread, site: s } => {
                (p.kind, p.a) = (15, thread.0);
                site(&mut p, s);
            }
            K::Send { channel, message, site: s } => {
                (p.kind, p.a, p.wide, p.b) = (16, channel.0, message, s.0);
            }
            K::Receive { channel, message, site: s } => {
                (p.kind, p.a, p.wide, p.b) = (17, channel.0, message, s.0);
            }
            K::Read { var, site: s } => (p.kind, p.a, p.b) = (18, var.0, s.0),
            K::Write { var, site: s } => (p.kind, p.a, p.b) = (19, var.0, s.0),
            K::SyncRelease { var, site: s } => (p.kind, p.a, p.b) = (20, var.0, s.0),
            K::SyncAcquire { var, site: s } => (p.kind, p.a, p.b) = (21, var.0, s.0),
            K::Mark { label, site: s } => {
                (p.kind, p.a) = (22, label.0);
                site(&mut p, s);
            }
            K::Gap { dropped } => (p.kind, p.wide) = (23, dropped),
        }
        p
    }

    /// The lock sequence slot and number replay orders this event by, if any.
    #[inline]
    pub(super) fn sequence(&self) -> Option<(u32, u64)> {
        (self.flags & SEQ != 0).then_some((self.a, self.wide))
    }

    /// Writes the event again into `out`: it happened on `thread`, and `slot_locks` maps
    /// sequence slots to locks.
    #[inline]
    pub(super) fn unpack_into(&self, thread: ThreadId, slot_locks: &[LockId], out: &mut Event) {
        use EventKind as K;
        let f0 = self.flags & FLAG0 != 0;
        let f1 = self.flags & FLAG1 != 0;
        let mode = if f0 { LockMode::Shared } else { LockMode::Exclusive };
        let site = SiteId(self.b);
        let opt_site = (self.flags & B != 0).then_some(site);
        let seq = (self.flags & SEQ != 0).then_some(self.wide);
        let lock = || slot_locks[self.a as usize];
        let (time_ns, task) = (self.time_ns, (self.flags & TASK != 0).then_some(TaskId(self.task)));
        // Each arm writes the whole event: building the kind first and the event after
        // costs a copy of it.
        let mut put = |kind| *out = Event { time_ns, thread, task, kind };
        match self.kind {
            0 => put(K::LockRequested { lock: lock(), mode, site }),
            1 => put(K::LockAcquired { lock: lock(), mode, site, seq, via_try: f1 }),
            2 => put(K::LockTryFailed { lock: lock(), mode, site }),
            3 => put(K::LockReleased { lock: lock(), mode, seq, poisoned: f1 }),
            4 => put(K::TaskSpawned { task: TaskId(self.a), site: opt_site }),
            5 => put(K::PollStarted),
            6 => put(K::PollEnded { ready: f0 }),
            7 => put(K::TaskFinished { cancelled: f0 }),
            8 => put(K::TaskJoined { task: TaskId(self.a), site: opt_site }),
            9 => put(K::TaskJoinRequested { task: TaskId(self.a), site: opt_site }),
            10 => put(K::Wake { task: TaskId(self.a), by_ref: f0 }),
            11 => put(K::ThreadSpawned { thread: ThreadId(self.a), site: opt_site }),
            12 => put(K::ThreadStarted),
            13 => put(K::ThreadFinished { panicked: f0 }),
            14 => put(K::ThreadJoinRequested { thread: ThreadId(self.a), site: opt_site }),
            15 => put(K::ThreadJoined { thread: ThreadId(self.a), site: opt_site }),
            16 => put(K::Send { channel: ChannelId(self.a), message: self.wide, site }),
            17 => put(K::Receive { channel: ChannelId(self.a), message: self.wide, site }),
            18 => put(K::Read { var: VarId(self.a), site }),
            19 => put(K::Write { var: VarId(self.a), site }),
            20 => put(K::SyncRelease { var: VarId(self.a), site }),
            21 => put(K::SyncAcquire { var: VarId(self.a), site }),
            22 => put(K::Mark { label: StringId(self.a), site: opt_site }),
            _ => put(K::Gap { dropped: self.wide }),
        }
    }
}
