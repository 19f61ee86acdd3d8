//! The events of one window of the trace, as prediction needs them: per actor in program
//! order, each with the one event of another actor that must precede it in every correct
//! reordering, and per lock its acquisitions in trace order.

use crate::replay::Actor;
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId, ThreadId, VarId};
use rustc_hash::FxHashMap as HashMap;

/// No event (an index that is none).
pub(crate) const NONE: u32 = u32::MAX;

/// What an event is to prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A lock acquisition (its request, when it blocks).
    Acquire {
        /// The lock.
        lock: LockId,
        /// The mode.
        mode: LockMode,
        /// Made by `try_lock`: it cannot block.
        via_try: bool,
    },
    /// A lock release.
    Release {
        /// The lock.
        lock: LockId,
    },
    /// The spawn of another actor.
    Spawn {
        /// The actor spawned.
        child: Actor,
    },
    /// The start of a wait for another actor to finish (a join, or an await of a handle).
    JoinWait {
        /// The actor waited for.
        target: Actor,
    },
    /// Anything else: it only takes a place in its actor's order.
    Other,
}

/// One logged event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged {
    /// Its actor, by index in [`Log::actors`].
    pub actor: u32,
    /// The OS thread it ran on.
    pub thread: ThreadId,
    /// Its place in its actor's events of the window.
    pub pos: u32,
    /// What it is.
    pub step: Step,
    /// For an acquisition, its place in its lock's list in [`Log::locks`].
    pub at: u32,
    /// The event (window index) that must precede it in every correct reordering: the spawn
    /// before a child's first event, the end of the joined actor before a join, the send
    /// before a receive, the release annotation before an acquire annotation, the write a
    /// read saw. [`NONE`] if none is in the window. (A wake orders nothing here: tokio's
    /// timer and I/O drivers wake tasks from whatever the worker ran before, and a lock's
    /// wake is already its release.)
    pub cross: u32,
    /// The accesses to the same variable that must come before it in every *witness*, as a
    /// range of [`Log::access_preds`]: for a write, the previous write and every read of it
    /// (which must not see this one instead); for a read, none beyond the write it saw
    /// (`cross`). Two reads are never ordered: what each saw is all that is kept.
    pub access: (u32, u32),
    /// Where it happened.
    pub site: Option<SiteId>,
    /// When.
    pub time_ns: u64,
    /// Its kind's name, for witness steps.
    pub kind: &'static str,
}

/// One acquisition of a lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acquisition {
    /// The actor.
    pub actor: u32,
    /// The acquisition's place in the actor's events; [`NONE`] for a hold open when the
    /// window began (its acquisition is before the window, so in every closure).
    pub pos: u32,
    /// The mode.
    pub mode: LockMode,
    /// The release's place in the actor's events; [`NONE`] while not released in the
    /// window.
    pub release: u32,
}

/// A lock held by an actor: what prediction keeps of it across windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The lock.
    pub lock: LockId,
    /// The mode.
    pub mode: LockMode,
    /// Where it was acquired.
    pub site: Option<SiteId>,
    /// When.
    pub time_ns: u64,
    /// The actor that holds it for this one: `Some(parent)` for a lock that the parent held
    /// from spawning this actor until joining it.
    pub inherited_from: Option<Actor>,
}

/// The window's events; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// The events, in trace order.
    pub events: Vec<Logged>,
    /// The actors, by index.
    pub actors: Vec<Actor>,
    /// Per actor, its events' window indices in program order.
    pub by_actor: Vec<Vec<u32>>,
    /// Per lock, its acquisitions in trace order (holds open at the window's start first).
    pub locks: HashMap<LockId, Vec<Acquisition>>,
    /// Per actor, what it holds now (at the end of what was logged).
    pub holds: Vec<Vec<(Held, u32)>>,
    /// The holds open when the window began: (lock, place in its list).
    pub open_at_start: Vec<(LockId, u32)>,
    actor_ix: HashMap<Actor, u32>,
    /// Per actor, its spawn (window index) while its first event is not seen yet.
    spawned_by: HashMap<Actor, u32>,
    /// Per actor, whether its last event was the start of a join (so the join's end is no
    /// second wait).
    joining: Vec<bool>,
    /// The accesses each write must follow (see [`Logged::access`]).
    pub access_preds: Vec<u32>,
    messages: HashMap<u64, u32>,
    sync_releases: HashMap<VarId, u32>,
    last_write: HashMap<VarId, u32>,
    /// Per variable, the reads since its last write.
    reads_since_write: HashMap<VarId, Vec<u32>>,
}

impl Log {
    /// A log that starts with the holds `open` (by actor) of the previous window.
    pub fn starting_with(open: Vec<(Actor, Vec<Held>)>) -> Log {
        let mut log = Log::default();
        for (actor, holds) in open {
            let ix = log.actor(actor);
            for held in holds {
                let acquisition =
                    Acquisition { actor: ix, pos: NONE, mode: held.mode, release: NONE };
                let list = log.locks.entry(held.lock).or_default();
                list.push(acquisition);
                let at = (list.len() - 1) as u32;
                log.holds[ix as usize].push((held, at));
                log.open_at_start.push((held.lock, at));
            }
        }
        log
    }

    /// The holds still open, by actor: what the next window starts with.
    pub fn open_holds(&self) -> Vec<(Actor, Vec<Held>)> {
        self.holds
            .iter()
            .enumerate()
            .filter(|(_, holds)| !holds.is_empty())
            .map(|(ix, holds)| (self.actors[ix], holds.iter().map(|(h, _)| *h).collect()))
            .collect()
    }

    /// The index of `actor`, added if new.
    pub fn actor(&mut self, actor: Actor) -> u32 {
        if let Some(&ix) = self.actor_ix.get(&actor) {
            return ix;
        }
        let ix = self.actors.len() as u32;
        self.actors.push(actor);
        self.by_actor.push(Vec::new());
        self.holds.push(Vec::new());
        self.joining.push(false);
        self.actor_ix.insert(actor, ix);
        ix
    }

    /// The index of `actor`, if it has events in the window.
    pub fn actor_index(&self, actor: Actor) -> Option<u32> {
        self.actor_ix.get(&actor).copied()
    }

    /// The accesses that must come before `event` in every witness (see
    /// [`Logged::access`]).
    pub fn access_preds(&self, event: &Logged) -> &[u32] {
        let (start, len) = event.access;
        &self.access_preds[start as usize..(start + len) as usize]
    }

    /// The last event of `actor` in the window.
    fn last_of(&self, actor: Actor) -> u32 {
        self.actor_index(actor)
            .and_then(|ix| self.by_actor[ix as usize].last().copied())
            .unwrap_or(NONE)
    }

    /// Logs `event`; returns its window index and the locks its actor held before it.
    pub fn push(&mut self, event: &Event) -> u32 {
        let actor = Actor::of(event);
        let ix = self.actor(actor);
        let index = self.events.len() as u32;
        let pos = self.by_actor[ix as usize].len() as u32;
        let mut cross =
            if pos == 0 { self.spawned_by.remove(&actor).unwrap_or(NONE) } else { NONE };
        let mut access = (self.access_preds.len() as u32, 0);
        let mut step = Step::Other;
        let joining = std::mem::take(&mut self.joining[ix as usize]);
        let mut site = None;
        let mut at = NONE;
        match event.kind {
            EventKind::LockAcquired { lock, mode, via_try, site: s, .. } => {
                step = Step::Acquire { lock, mode, via_try };
                site = Some(s);
                let list = self.locks.entry(lock).or_default();
                list.push(Acquisition { actor: ix, pos, mode, release: NONE });
                at = (list.len() - 1) as u32;
                let held = Held { lock, mode, site, time_ns: event.time_ns, inherited_from: None };
                self.holds[ix as usize].push((held, at));
            }
            EventKind::LockReleased { lock, .. } => {
                step = Step::Release { lock };
                let holds = &mut self.holds[ix as usize];
                if let Some(i) = holds.iter().rposition(|(h, _)| h.lock == lock) {
                    let (_, at) = holds.remove(i);
                    if let Some(a) = self.locks.get_mut(&lock).and_then(|l| l.get_mut(at as usize))
                    {
                        a.release = pos;
                    }
                }
            }
            EventKind::LockRequested { site: s, .. } | EventKind::LockTryFailed { site: s, .. } => {
                site = Some(s);
            }
            EventKind::TaskSpawned { task, site: s } => {
                site = s;
                step = Step::Spawn { child: Actor::Task(task) };
                self.spawned_by.insert(Actor::Task(task), index);
            }
            EventKind::ThreadSpawned { thread, site: s } => {
                site = s;
                step = Step::Spawn { child: Actor::Thread(thread) };
                self.spawned_by.insert(Actor::Thread(thread), index);
            }
            EventKind::TaskJoinRequested { task, site: s } => {
                site = s;
                step = Step::JoinWait { target: Actor::Task(task) };
                self.joining[ix as usize] = true;
            }
            EventKind::ThreadJoinRequested { thread, site: s } => {
                site = s;
                step = Step::JoinWait { target: Actor::Thread(thread) };
                self.joining[ix as usize] = true;
            }
            EventKind::TaskJoined { task, site: s } => {
                site = s;
                let target = Actor::Task(task);
                cross = self.last_of(target);
                if !joining {
                    step = Step::JoinWait { target };
                }
            }
            EventKind::ThreadJoined { thread, site: s } => {
                site = s;
                let target = Actor::Thread(thread);
                cross = self.last_of(target);
                if !joining {
                    step = Step::JoinWait { target };
                }
            }
            EventKind::Send { message, site: s, .. } => {
                site = Some(s);
                self.messages.insert(message, index);
            }
            EventKind::Receive { message, site: s, .. } => {
                site = Some(s);
                cross = self.messages.remove(&message).unwrap_or(NONE);
            }
            EventKind::SyncRelease { var, site: s } => {
                site = Some(s);
                self.sync_releases.insert(var, index);
            }
            EventKind::SyncAcquire { var, site: s } => {
                site = Some(s);
                cross = self.sync_releases.get(&var).copied().unwrap_or(NONE);
            }
            EventKind::Read { var, site: s } => {
                site = Some(s);
                cross = self.last_write.get(&var).copied().unwrap_or(NONE);
                self.reads_since_write.entry(var).or_default().push(index);
            }
            EventKind::Write { var, site: s } => {
                site = Some(s);
                if let Some(previous) = self.last_write.insert(var, index) {
                    self.access_preds.push(previous);
                }
                if let Some(reads) = self.reads_since_write.get_mut(&var) {
                    self.access_preds.append(reads);
                }
                access.1 = self.access_preds.len() as u32 - access.0;
            }
            EventKind::Mark { site: s, .. } => site = s,
            _ => {}
        }
        // A spawn or a send of an actor's own is no order between two actors.
        if cross != NONE && self.events[cross as usize].actor == ix {
            cross = NONE;
        }
        self.events.push(Logged {
            actor: ix,
            thread: event.thread,
            pos,
            step,
            at,
            cross,
            access,
            site,
            time_ns: event.time_ns,
            kind: event.kind.name(),
        });
        self.by_actor[ix as usize].push(index);
        index
    }

    /// The number of events logged.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The event at `pos` of actor `actor`.
    pub fn at(&self, actor: u32, pos: u32) -> &Logged {
        &self.events[self.by_actor[actor as usize][pos as usize] as usize]
    }
}
