//! The state replay keeps while it walks the events: who holds which lock in which mode, who
//! waits for what since when, which task runs on which thread, who has ended.
//!
//! Its size grows with the threads, tasks and locks of the trace, never with its length: each
//! lock keeps its current holders, each thread or task its current holds and its one wait.

use crate::trace::Trace;
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId, TaskId, ThreadId};

/// Who does something: an OS thread outside any task, or an async task (wherever it is
/// polled). Locks taken inside a task are held by the task, since its guard travels with it
/// across threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    /// An OS thread, outside any task.
    Thread(ThreadId),
    /// An async task.
    Task(TaskId),
}

impl Actor {
    /// The actor of an event: its task if it ran in one, else its thread.
    #[inline]
    pub fn of(event: &Event) -> Actor {
        match event.task {
            Some(task) => Actor::Task(task),
            None => Actor::Thread(event.thread),
        }
    }

    /// The actor's display name, such as ``thread `main` `` or ``task `fetch` ``.
    pub fn describe(self, trace: &Trace) -> String {
        match self {
            Actor::Thread(t) => format!("thread `{}`", trace.thread_name(t)),
            Actor::Task(t) => format!("task `{}`", trace.task_name(t)),
        }
    }
}

/// One hold of a lock by an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The lock held.
    pub lock: LockId,
    /// How it is held.
    pub mode: LockMode,
    /// Where it was acquired.
    pub site: SiteId,
    /// When it was acquired.
    pub since_ns: u64,
    /// The thread it was acquired on.
    pub thread: ThreadId,
    /// It was taken by `try_lock`.
    pub via_try: bool,
}

/// What an actor is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// A lock, in a mode.
    Lock {
        /// The lock.
        lock: LockId,
        /// The mode asked for.
        mode: LockMode,
    },
    /// A thread to finish (`join`).
    Thread(ThreadId),
    /// A task to finish (awaiting its handle).
    Task(TaskId),
}

/// An actor's current wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// What it waits for.
    pub target: WaitFor,
    /// Where it started waiting, if known.
    pub site: Option<SiteId>,
    /// When it started waiting.
    pub since_ns: u64,
    /// The thread it waits on.
    pub thread: ThreadId,
}

/// How an actor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// When.
    pub time_ns: u64,
    /// It panicked (a thread) or was cancelled or panicked (a task).
    pub abnormal: bool,
}

/// The state of a thread or task.
#[derive(Debug, Clone, Default)]
pub struct ActorState {
    /// Locks held now, in the order taken.
    pub holds: Vec<Hold>,
    /// What it waits for now.
    pub wait: Option<Wait>,
    /// When it was first seen.
    pub first_seen_ns: Option<u64>,
    /// How it ended, if it did.
    pub end: Option<End>,
}

/// Extra state of a thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadState {
    /// As an actor (what it does outside tasks).
    pub actor: ActorState,
    /// The task being polled on it now.
    pub current_task: Option<TaskId>,
}

/// Extra state of a task.
#[derive(Debug, Clone, Default)]
pub struct TaskState {
    /// As an actor.
    pub actor: ActorState,
    /// When and by whom it was spawned.
    pub spawned: Option<(u64, Actor)>,
    /// The thread polling it now.
    pub running_on: Option<ThreadId>,
    /// Polls started.
    pub polls: u64,
}

/// A current holder of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Who holds it.
    pub actor: Actor,
    /// The hold.
    pub hold: Hold,
}

/// The current holders of a lock, in the order they acquired it. Reads as a slice. Most locks
/// have at most one holder at a time, and it is kept inline, so that replaying a lock event
/// reads one lock's state from one place rather than chasing a list on the heap.
#[derive(Clone)]
pub struct Holders {
    /// The only holder, while there is at most one (see `len`).
    inline: [Holder; 1],
    /// 0 or 1: how much of `inline` is in use; unused once the holders spill.
    len: u8,
    /// All holders, once there were two at a time.
    spilled: Vec<Holder>,
}

/// What fills an unused inline holder.
const NO_HOLDER: Holder = Holder {
    actor: Actor::Thread(ThreadId(0)),
    hold: Hold {
        lock: LockId(0),
        mode: LockMode::Exclusive,
        site: SiteId(0),
        since_ns: 0,
        thread: ThreadId(0),
        via_try: false,
    },
};

impl Default for Holders {
    fn default() -> Self {
        Holders { inline: [NO_HOLDER], len: 0, spilled: Vec::new() }
    }
}

impl Holders {
    /// Adds a holder at the end.
    #[inline]
    fn push(&mut self, holder: Holder) {
        if self.spilled.is_empty() {
            if self.len == 0 {
                self.inline[0] = holder;
                self.len = 1;
                return;
            }
            self.spilled.push(self.inline[0]);
            self.len = 0;
        }
        self.spilled.push(holder);
    }

    /// Removes and returns the holder at `index` (which must be in range).
    #[inline]
    fn remove(&mut self, index: usize) -> Holder {
        if self.spilled.is_empty() {
            debug_assert!(index == 0 && self.len == 1, "no holder {index}; this is a bug");
            self.len = 0;
            return self.inline[0];
        }
        let holder = self.spilled.remove(index);
        if let [only] = self.spilled[..] {
            // Back to one holder: inline again.
            self.spilled.clear();
            self.inline[0] = only;
            self.len = 1;
        }
        holder
    }
}

impl std::ops::Deref for Holders {
    type Target = [Holder];

    #[inline]
    fn deref(&self) -> &[Holder] {
        if self.spilled.is_empty() {
            &self.inline[..usize::from(self.len)]
        } else {
            &self.spilled
        }
    }
}

impl<'a> IntoIterator for &'a Holders {
    type Item = &'a Holder;
    type IntoIter = std::slice::Iter<'a, Holder>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Holders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The state and counters of one lock.
#[derive(Debug, Clone, Default)]
pub struct LockState {
    /// Its holders now (several only for shared holds).
    pub holders: Holders,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait (a request came first).
    pub contended: u64,
    /// Failed `try_lock` attempts.
    pub try_failed: u64,
    /// It was released by a panicking holder.
    pub poisoned: bool,
    /// It is a semaphore: its holders hold permits, which do not conflict with one another
    /// (a trace does not say how many permits there are).
    pub semaphore: bool,
}

/// Replay's view of the world after the events replayed so far.
#[derive(Debug, Clone, Default)]
pub struct State {
    threads: Vec<ThreadState>,
    tasks: Vec<TaskState>,
    locks: Vec<LockState>,
    now_ns: u64,
    end_ns: u64,
    events: u64,
    conflicts: u64,
}

impl State {
    /// A state with nothing happened yet.
    pub fn new() -> Self {
        State::default()
    }

    /// The time of the last event applied.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// When the trace ended: the last event, or later if the recorder said (with a final
    /// watermark) that it was still recording, and nothing happened, until then.
    pub fn end_ns(&self) -> u64 {
        self.end_ns.max(self.now_ns)
    }

    /// Notes that the trace covers time up to `time_ns` (a watermark).
    pub fn extend_end(&mut self, time_ns: u64) {
        self.end_ns = self.end_ns.max(time_ns);
    }

    /// Events applied.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Acquisitions replayed while the state said another actor held the lock in a
    /// conflicting mode. Zero when the trace's ordering is complete; a lost release (a gap)
    /// makes it count.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// All lock states, indexed by lock id (locks never touched may be missing).
    pub fn locks(&self) -> &[LockState] {
        &self.locks
    }

    /// A lock's state, if it was ever touched.
    pub fn lock(&self, lock: LockId) -> Option<&LockState> {
        self.locks.get(lock.index())
    }

    /// All thread states, indexed by thread id.
    pub fn threads(&self) -> &[ThreadState] {
        &self.threads
    }

    /// All task states, indexed by task id.
    pub fn tasks(&self) -> &[TaskState] {
        &self.tasks
    }

    /// An actor's state, if it was ever seen.
    pub fn actor(&self, actor: Actor) -> Option<&ActorState> {
        match actor {
            Actor::Thread(t) => self.threads.get(t.index()).map(|s| &s.actor),
            Actor::Task(t) => self.tasks.get(t.index()).map(|s| &s.actor),
        }
    }

    /// The locks an actor holds now, in the order taken.
    #[inline]
    pub fn holds(&self, actor: Actor) -> &[Hold] {
        self.actor(actor).map_or(&[], |a| a.holds.as_slice())
    }

    /// Every actor seen, threads first.
    pub fn actors(&self) -> impl Iterator<Item = (Actor, &ActorState)> {
        let threads = self
            .threads
            .iter()
            .enumerate()
            .map(|(i, s)| (Actor::Thread(ThreadId(i as u32)), &s.actor));
        let tasks =
            self.tasks.iter().enumerate().map(|(i, s)| (Actor::Task(TaskId(i as u32)), &s.actor));
        threads.chain(tasks)
    }

    #[inline]
    fn actor_mut(&mut self, actor: Actor) -> &mut ActorState {
        match actor {
            Actor::Thread(t) => &mut grow(&mut self.threads, t.index()).actor,
            Actor::Task(t) => &mut grow(&mut self.tasks, t.index()).actor,
        }
    }

    /// Notes that `lock` is a semaphore (see [`LockState::semaphore`]).
    pub fn mark_semaphore(&mut self, lock: LockId) {
        grow(&mut self.locks, lock.index()).semaphore = true;
    }

    /// Applies one replayed event.
    #[inline]
    pub fn apply(&mut self, event: &Event) {
        use EventKind as K;
        self.now_ns = self.now_ns.max(event.time_ns);
        self.events += 1;
        let actor = Actor::of(event);
        let now = event.time_ns;
        {
            let state = self.actor_mut(actor);
            if state.first_seen_ns.is_none() {
                state.first_seen_ns = Some(now);
            }
        }
        match event.kind {
            K::LockRequested { lock, mode, site } => {
                self.actor_mut(actor).wait = Some(Wait {
                    target: WaitFor::Lock { lock, mode },
                    site: Some(site),
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::LockAcquired { lock, mode, site, via_try, .. } => {
                let hold = Hold { lock, mode, site, since_ns: now, thread: event.thread, via_try };
                let state = self.actor_mut(actor);
                let waited = matches!(
                    state.wait,
                    Some(Wait { target: WaitFor::Lock { lock: l, .. }, .. }) if l == lock
                );
                if waited {
                    state.wait = None;
                }
                state.holds.push(hold);
                let lock_state = grow(&mut self.locks, lock.index());
                lock_state.acquisitions += 1;
                if waited {
                    lock_state.contended += 1;
                }
                let conflict = !lock_state.semaphore
                    && lock_state.holders.iter().any(|h| {
                        h.actor != actor
                            && (mode == LockMode::Exclusive || h.hold.mode == LockMode::Exclusive)
                    });
                if conflict {
                    self.conflicts += 1;
                }
                lock_state.holders.push(Holder { actor, hold });
            }
            K::LockTryFailed { lock, .. } => {
                grow(&mut self.locks, lock.index()).try_failed += 1;
                // An async wait given up (its future dropped, as in a `select!` or a timeout)
                // is recorded as a failed attempt: the actor no longer waits.
                let state = self.actor_mut(actor);
                if matches!(
                    state.wait,
                    Some(Wait { target: WaitFor::Lock { lock: l, .. }, .. }) if l == lock
                ) {
                    state.wait = None;
                }
            }
            K::LockReleased { lock, mode, poisoned, .. } => {
                let lock_state = grow(&mut self.locks, lock.index());
                if poisoned {
                    lock_state.poisoned = true;
                }
                // The releasing actor's own hold; else (a guard moved to another thread or
                // task) the most recent hold in that mode.
                let position = lock_state
                    .holders
                    .iter()
                    .rposition(|h| h.actor == actor && h.hold.mode == mode)
                    .or_else(|| lock_state.holders.iter().rposition(|h| h.actor == actor))
                    .or_else(|| lock_state.holders.iter().rposition(|h| h.hold.mode == mode));
                if let Some(position) = position {
                    let holder = lock_state.holders.remove(position).actor;
                    let holds = &mut self.actor_mut(holder).holds;
                    match holds.iter().rposition(|h| h.lock == lock) {
                        // Locks are mostly released in the reverse order of taking them.
                        Some(i) if i + 1 == holds.len() => drop(holds.pop()),
                        Some(i) => drop(holds.remove(i)),
                        None => {}
                    }
                }
            }
            K::TaskSpawned { task, .. } => {
                grow(&mut self.tasks, task.index()).spawned = Some((now, actor));
            }
            K::PollStarted => {
                grow(&mut self.threads, event.thread.index()).current_task = event.task;
                if let Some(task) = event.task {
                    let task = grow(&mut self.tasks, task.index());
                    task.polls += 1;
                    task.running_on = Some(event.thread);
                }
            }
            K::PollEnded { .. } => {
                grow(&mut self.threads, event.thread.index()).current_task = None;
                if let Some(task) = event.task {
                    grow(&mut self.tasks, task.index()).running_on = None;
                }
            }
            K::TaskFinished { cancelled } => {
                if let Some(task) = event.task {
                    let task = grow(&mut self.tasks, task.index());
                    task.actor.end = Some(End { time_ns: now, abnormal: cancelled });
                    task.running_on = None;
                }
            }
            K::ThreadFinished { panicked } => {
                let thread = grow(&mut self.threads, event.thread.index());
                thread.actor.end = Some(End { time_ns: now, abnormal: panicked });
            }
            K::ThreadJoinRequested { thread, site } => {
                self.actor_mut(actor).wait = Some(Wait {
                    target: WaitFor::Thread(thread),
                    site,
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::TaskJoinRequested { task, site } => {
                self.actor_mut(actor).wait = Some(Wait {
                    target: WaitFor::Task(task),
                    site,
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::ThreadJoined { thread, .. } => {
                let state = self.actor_mut(actor);
                if matches!(state.wait, Some(Wait { target: WaitFor::Thread(t), .. }) if t == thread)
                {
                    state.wait = None;
                }
            }
            K::TaskJoined { task, .. } => {
                let state = self.actor_mut(actor);
                if matches!(state.wait, Some(Wait { target: WaitFor::Task(t), .. }) if t == task) {
                    state.wait = None;
                }
            }
            K::ThreadSpawned { thread, .. } => {
                grow(&mut self.threads, thread.index());
            }
            K::ThreadStarted
            | K::Wake { .. }
            | K::Send { .. }
            | K::Receive { .. }
            | K::Read { .. }
            | K::Write { .. }
            | K::SyncRelease { .. }
            | K::SyncAcquire { .. }
            | K::Mark { .. }
            | K::Gap { .. } => {}
        }
    }
}

/// The entry `index` of `table`, growing the table with defaults to reach it. Indices are
/// dense ids from [`Trace`], so the table never grows past the number of entities.
#[inline(always)]
fn grow<T: Default>(table: &mut Vec<T>, index: usize) -> &mut T {
    if index >= table.len() {
        grow_to(table, index);
    }
    &mut table[index]
}

/// The rare part of [`grow`], out of the way of the common one.
#[cold]
#[inline(never)]
fn grow_to<T: Default>(table: &mut Vec<T>, index: usize) {
    table.resize_with(index + 1, T::default);
}
