//! The state replay keeps while it walks the events: who holds which lock in which mode, who
//! waits for what since when, which task runs on which thread, who has ended.
//!
//! Its size grows with the threads, tasks and locks of the trace, never with its length: each
//! lock keeps its current holders, each thread or task its current holds and its one wait.

use crate::prefetch::prefetch_entry;
use crate::trace::Trace;
use hindsight_recorder::format::{
    ChannelId, Event, EventKind, LockId, LockMode, PermitOp, SiteId, TaskId, ThreadId,
};

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
    /// A message on a channel.
    Message(ChannelId),
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
    /// Leaf futures that said they were pending in the task's current (or last) poll: a
    /// receive, a lock, a sleep. A wait for a message stands only when its receive was the
    /// poll's only one; with another (a timeout, a `select!`), something else may wake it.
    leaf_waits_in_poll: u8,
}

/// Extra state of a thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadState {
    /// As an actor (what it does outside tasks).
    pub actor: ActorState,
    /// The task being polled on it now.
    pub current_task: Option<TaskId>,
    /// It has polled tasks (a worker, or a thread in `block_on`).
    pub polled_tasks: bool,
    /// Events the recorder dropped on it (gaps), if any were.
    pub lost: Option<Lost>,
}

/// Events of a thread that the recorder dropped (its buffer was full): after the first gap,
/// what replay believes about the thread, and about the tasks it polls, is uncertain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// When the first gap was.
    pub first_ns: u64,
    /// Gaps.
    pub gaps: u64,
    /// Events dropped in all.
    pub events: u64,
    /// When the latest [`Lost::RECENT`] gaps were, in a ring (slot `n % RECENT` for the
    /// `n`th gap): bounded memory, exact times for a thread with few gaps.
    recent: [u64; Lost::RECENT],
}

impl Lost {
    /// How many gap times are kept exactly.
    pub const RECENT: usize = 8;

    /// A thread's lost events from its first gap, at `time_ns` (counted by [`add`](Self::add)).
    fn new(time_ns: u64) -> Lost {
        Lost { first_ns: time_ns, gaps: 0, events: 0, recent: [0; Lost::RECENT] }
    }

    /// Counts a gap at `time_ns` of `dropped` events.
    fn add(&mut self, time_ns: u64, dropped: u64) {
        self.recent[(self.gaps % Lost::RECENT as u64) as usize] = time_ns;
        self.gaps += 1;
        self.events = self.events.saturating_add(dropped);
    }

    /// Whether a gap may fall in `(from, to]`: the events it stands for, dropped just before
    /// it, may then have changed what replay believes from `from` on. Exact for the latest
    /// [`Lost::RECENT`] gaps; the earlier ones are known only to lie between the first gap and
    /// the oldest one kept.
    pub fn may_fall_in(&self, from: u64, to: u64) -> bool {
        let inside = |time: u64| from < time && time <= to;
        let kept = (self.gaps as usize).min(Lost::RECENT);
        if self.recent[..kept].iter().any(|&time| inside(time)) {
            return true;
        }
        if self.gaps as usize <= Lost::RECENT {
            return false;
        }
        let oldest_kept = self.recent[(self.gaps % Lost::RECENT as u64) as usize];
        from < oldest_kept && self.first_ns <= to
    }
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
    /// When its current (or last) poll started.
    pub poll_started_ns: u64,
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
/// reads one lock's state from one place rather than chasing a list on the heap. (48 bytes,
/// so that the parts of a [`LockState`] that every lock event touches fit one cache line.)
#[derive(Clone)]
#[repr(C)]
pub struct Holders {
    /// How many holders there are: one field to test, whichever place holds them.
    len: u32,
    /// The only holder, while `len` is 1.
    inline: [Holder; 1],
    /// All holders, while `len` is 2 or more; empty otherwise (keeping its capacity). Boxed,
    /// since few locks ever have two holders.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes where a Vec takes 24 keep a lock's hot state in one cache line"
    )]
    spilled: Option<Box<Vec<Holder>>>,
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
        Holders { len: 0, inline: [NO_HOLDER], spilled: None }
    }
}

impl Holders {
    /// Adds a holder at the end; returns whether another actor held the lock in a mode that
    /// conflicts with the new holder's.
    #[inline]
    fn push(&mut self, holder: Holder) -> bool {
        // The slot is chosen first and written once: handing `holder` to the spilling path
        // would make the common path copy it through the stack.
        let (slot, conflict) = if self.len == 0 {
            self.len = 1;
            (&mut self.inline[0], false)
        } else {
            self.spilled_slot(holder.actor, holder.hold.mode)
        };
        *slot = holder;
        conflict
    }

    /// A new last slot for [`push`](Self::push) to a lock already held (a shared hold, or a
    /// lost release) by `actor` in `mode`, and whether another actor's hold conflicts with
    /// it. The holders move to `spilled` if they were not there yet.
    #[cold]
    #[inline(never)]
    fn spilled_slot(&mut self, actor: Actor, mode: LockMode) -> (&mut Holder, bool) {
        let conflict = self.iter().any(|h| {
            h.actor != actor && (mode == LockMode::Exclusive || h.hold.mode == LockMode::Exclusive)
        });
        let inline = self.inline[0];
        let spilled = self.spilled.get_or_insert_with(Box::default);
        if self.len == 1 {
            spilled.push(inline);
        }
        self.len += 1;
        spilled.push(NO_HOLDER);
        let last = spilled.len() - 1;
        (&mut spilled[last], conflict)
    }

    /// Removes the hold that `actor` releasing the lock in `mode` ends, and returns its
    /// holder: the actor's own hold in that mode, else its own in any mode, else (a guard
    /// moved to another thread or task) the most recent hold in that mode.
    #[inline]
    fn release(&mut self, actor: Actor, mode: LockMode) -> Option<Actor> {
        if self.len == 1 {
            // With one holder, each of the three choices above is that holder or nothing.
            let only = &self.inline[0];
            if only.actor == actor {
                self.len = 0;
                // `actor` rather than the equal `only.actor`: the caller, inlined, then knows
                // it is the releasing actor's own hold without comparing again.
                return Some(actor);
            }
            if only.hold.mode == mode {
                self.len = 0;
                return Some(only.actor);
            }
            return None;
        }
        self.release_spilled(actor, mode)
    }

    /// [`release`](Self::release) with no holder or several.
    #[cold]
    #[inline(never)]
    fn release_spilled(&mut self, actor: Actor, mode: LockMode) -> Option<Actor> {
        let spilled = self.spilled.as_deref_mut()?;
        let position = spilled
            .iter()
            .rposition(|h| h.actor == actor && h.hold.mode == mode)
            .or_else(|| spilled.iter().rposition(|h| h.actor == actor))
            .or_else(|| spilled.iter().rposition(|h| h.hold.mode == mode))?;
        let holder = spilled.remove(position);
        self.len -= 1;
        if let [only] = spilled[..] {
            // Back to one holder: inline again.
            spilled.clear();
            self.inline[0] = only;
        }
        Some(holder.actor)
    }
}

impl std::ops::Deref for Holders {
    type Target = [Holder];

    #[inline]
    fn deref(&self) -> &[Holder] {
        match &self.spilled {
            Some(spilled) if self.len > 1 => spilled,
            _ => &self.inline[..self.len.min(1) as usize],
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
///
/// What every acquisition and release reads or writes comes first and fills one cache line,
/// which the lock starts: a trace's locks outgrow the CPU's nearest cache, and replay would
/// otherwise miss it twice per lock event.
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
pub struct LockState {
    /// Its holders now (several only for shared holds).
    pub holders: Holders,
    /// Acquisitions.
    pub acquisitions: u64,
    /// It was released by a panicking holder.
    pub poisoned: bool,
    /// It is a semaphore: its holders hold permits, which do not conflict with one another
    /// (a trace does not say how many permits there are).
    pub semaphore: bool,
    /// Acquisitions that had to wait (a request came first).
    pub contended: u64,
    /// Failed `try_lock` attempts.
    pub try_failed: u64,
    /// A semaphore's permits, once any was taken (none for other locks).
    pub permits: Option<Box<Permits>>,
}

/// A semaphore's permits: a counting resource, not a lock. Permits are held by their holders,
/// forgotten (gone until permits are added), added (`add_permits`), and a semaphore can be
/// closed; the semaphore's capacity is its definition's (see [`Permits::free`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permits {
    /// Permits held now.
    pub out: u64,
    /// Permits forgotten: their holds ended without giving them back.
    pub forgotten: u64,
    /// Permits added by `add_permits`.
    pub added: u64,
    /// The semaphore was closed.
    pub closed: bool,
    /// The holds of more than one permit, with how many each holds (a hold not listed holds
    /// one).
    multi: Vec<(Actor, u32)>,
}

impl Permits {
    /// Permits free now, of a semaphore that started with `capacity`.
    pub fn free(&self, capacity: u32) -> u64 {
        let available = u64::from(capacity).saturating_add(self.added);
        available.saturating_sub(self.out.saturating_add(self.forgotten))
    }

    /// How many permits `actor`'s hold has, forgetting the count: the hold ends.
    fn take_hold(&mut self, actor: Actor) -> u64 {
        match self.multi.iter().position(|(a, _)| *a == actor) {
            Some(i) => u64::from(self.multi.swap_remove(i).1),
            None => 1,
        }
    }
}

const _: () = assert!(std::mem::offset_of!(LockState, semaphore) < 64, "see LockState's docs");

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
    clean_ends: u64,
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

    /// The recorder's clean ends replayed ([`EventKind::RecordingEnded`]): one per file of
    /// format 3 or later that was not cut short.
    pub fn clean_ends(&self) -> u64 {
        self.clean_ends
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

    /// A semaphore's permits, if any was taken or changed.
    pub fn permits(&self, lock: LockId) -> Option<&Permits> {
        self.lock(lock)?.permits.as_deref()
    }

    /// Notes that `lock` is a semaphore (see [`LockState::semaphore`]).
    pub fn mark_semaphore(&mut self, lock: LockId) {
        grow(&mut self.locks, lock.index()).semaphore = true;
    }

    /// Asks the CPU for the lock state that applying `event` will touch (a prefetch hint, see
    /// [`Replay::visit`](super::Replay::visit)); changes nothing.
    #[inline(always)]
    pub(crate) fn prefetch_for(&self, event: &Event) {
        use EventKind as K;
        match event.kind {
            K::LockAcquired { lock, .. }
            | K::LockReleased { lock, .. }
            | K::LockTryFailed { lock, .. } => prefetch_entry(&self.locks, lock.index()),
            _ => {}
        }
    }

    /// Applies one replayed event.
    // Always inlined into the replay loops: it runs once per event, and as a call it would
    // save and restore registers every time (about 12 instructions per event).
    #[inline(always)]
    pub fn apply(&mut self, event: &Event) {
        use EventKind as K;
        let now = event.time_ns;
        self.now_ns = self.now_ns.max(now);
        self.events += 1;
        let actor = Actor::of(event);
        // The event's actor, looked up once: a lock event updates it and the lock's state.
        let state = actor_state(&mut self.threads, &mut self.tasks, actor);
        if state.first_seen_ns.is_none() {
            state.first_seen_ns = Some(now);
        }
        // A thread blocked in a receive does nothing else until it returns.
        if event.task.is_none() && !matches!(event.kind, K::ReceiveWaiting { .. }) {
            state.end_message_wait(None);
        }
        match event.kind {
            K::LockRequested { lock, mode, site } => {
                state.wait = Some(Wait {
                    target: WaitFor::Lock { lock, mode },
                    site: Some(site),
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::LockAcquired { lock, mode, site, via_try, .. } => {
                let hold = Hold { lock, mode, site, since_ns: now, thread: event.thread, via_try };
                let waited = state.end_lock_wait(lock);
                state.holds.push(hold);
                let lock_state = grow(&mut self.locks, lock.index());
                lock_state.acquisitions += 1;
                if waited {
                    lock_state.contended += 1;
                }
                let conflict = lock_state.holders.push(Holder { actor, hold });
                if lock_state.semaphore {
                    lock_state.permits.get_or_insert_with(Box::default).out += 1;
                } else if conflict {
                    self.conflicts += 1;
                }
            }
            K::LockReleased { lock, mode, poisoned, .. } => {
                let lock_state = grow(&mut self.locks, lock.index());
                if poisoned {
                    lock_state.poisoned = true;
                }
                if let Some(holder) = lock_state.holders.release(actor, mode) {
                    if let Some(permits) = lock_state.permits.as_deref_mut() {
                        let count = permits.take_hold(holder);
                        permits.out = permits.out.saturating_sub(count);
                    }
                    let holder_state = if holder == actor {
                        state
                    } else {
                        actor_state(&mut self.threads, &mut self.tasks, holder)
                    };
                    holder_state.remove_hold(lock);
                }
            }
            K::LockTryFailed { lock, .. } => {
                grow(&mut self.locks, lock.index()).try_failed += 1;
                // An async wait given up (its future dropped, as in a `select!` or a timeout)
                // is recorded as a failed attempt: the actor no longer waits.
                state.end_lock_wait(lock);
            }
            K::TaskSpawned { task, .. } => {
                grow(&mut self.tasks, task.index()).spawned = Some((now, actor));
            }
            K::PollStarted => {
                let thread = grow(&mut self.threads, event.thread.index());
                thread.current_task = event.task;
                thread.polled_tasks = true;
                if let Some(task) = event.task {
                    let task = grow(&mut self.tasks, task.index());
                    task.actor.leaf_waits_in_poll = 0;
                    task.polls += 1;
                    task.running_on = Some(event.thread);
                    task.poll_started_ns = now;
                }
            }
            K::PollEnded { .. } => {
                grow(&mut self.threads, event.thread.index()).current_task = None;
                if let Some(task) = event.task {
                    let task = grow(&mut self.tasks, task.index());
                    task.running_on = None;
                    // A poll that did not wait for its message again went on to other things.
                    if task.actor.leaf_waits_in_poll != 1 {
                        task.actor.end_message_wait(None);
                    }
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
                state.wait = Some(Wait {
                    target: WaitFor::Thread(thread),
                    site,
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::TaskJoinRequested { task, site } => {
                state.wait = Some(Wait {
                    target: WaitFor::Task(task),
                    site,
                    since_ns: now,
                    thread: event.thread,
                });
            }
            K::ThreadJoined { thread, .. } => {
                if matches!(state.wait, Some(Wait { target: WaitFor::Thread(t), .. }) if t == thread)
                {
                    state.wait = None;
                }
            }
            K::TaskJoined { task, .. } => {
                if matches!(state.wait, Some(Wait { target: WaitFor::Task(t), .. }) if t == task) {
                    state.wait = None;
                }
            }
            K::ThreadSpawned { thread, .. } => {
                grow(&mut self.threads, thread.index());
            }
            K::Receive { channel, .. } => state.end_message_wait(Some(channel)),
            K::ReceiveWaiting { channel, site } => {
                state.leaf_waits_in_poll = state.leaf_waits_in_poll.saturating_add(1);
                let since_ns = match state.wait {
                    Some(Wait { target: WaitFor::Message(c), since_ns, .. }) if c == channel => {
                        since_ns
                    }
                    _ => now,
                };
                state.wait = Some(Wait {
                    target: WaitFor::Message(channel),
                    site: Some(site),
                    since_ns,
                    thread: event.thread,
                });
            }
            K::AwaitPending { .. } => {
                state.leaf_waits_in_poll = state.leaf_waits_in_poll.saturating_add(1);
            }
            K::ThreadStarted
            | K::Wake { .. }
            | K::Send { .. }
            | K::ChannelCreated { .. }
            | K::Read { .. }
            | K::Write { .. }
            | K::SyncRelease { .. }
            | K::SyncAcquire { .. }
            | K::Mark { .. } => {}
            K::Gap { dropped } => {
                let thread = grow(&mut self.threads, event.thread.index());
                thread.lost.get_or_insert_with(|| Lost::new(now)).add(now, dropped);
            }
            K::Permits { lock, op, count } => {
                let lock_state = grow(&mut self.locks, lock.index());
                let permits = lock_state.permits.get_or_insert_with(Box::default);
                match op {
                    PermitOp::Acquired => {
                        // The hold counted one permit when it was acquired.
                        permits.out =
                            permits.out.saturating_add(u64::from(count.saturating_sub(1)));
                        permits.multi.push((actor, count));
                    }
                    PermitOp::Forgotten => {
                        // The hold ends (its taker's, if the permit moved to this actor, as
                        // for a release), and its permits do not come back.
                        permits.out = permits.out.saturating_sub(u64::from(count));
                        permits.forgotten = permits.forgotten.saturating_add(u64::from(count));
                        let holder = lock_state.holders.release(actor, LockMode::Exclusive);
                        permits.take_hold(holder.unwrap_or(actor));
                        if let Some(holder) = holder {
                            let holder_state = if holder == actor {
                                state
                            } else {
                                actor_state(&mut self.threads, &mut self.tasks, holder)
                            };
                            holder_state.remove_hold(lock);
                        }
                    }
                    PermitOp::Added => {
                        permits.added = permits.added.saturating_add(u64::from(count))
                    }
                    PermitOp::Closed => permits.closed = true,
                }
            }
            K::Panicked { .. } | K::PollCpu { .. } => {}
            K::RecordingEnded => self.clean_ends += 1,
        }
    }
}

impl ActorState {
    /// Ends the actor's wait if it waits for a message on `channel` (on any channel: `None`).
    #[inline]
    fn end_message_wait(&mut self, channel: Option<ChannelId>) {
        if let Some(Wait { target: WaitFor::Message(c), .. }) = self.wait {
            if channel.is_none_or(|channel| channel == c) {
                self.wait = None;
            }
        }
    }

    /// Ends the actor's wait if it waits for `lock`; returns whether it did.
    #[inline]
    fn end_lock_wait(&mut self, lock: LockId) -> bool {
        let waited = matches!(
            self.wait,
            Some(Wait { target: WaitFor::Lock { lock: l, .. }, .. }) if l == lock
        );
        if waited {
            self.wait = None;
        }
        waited
    }

    /// Drops the actor's most recent hold of `lock`, if it has one.
    #[inline]
    fn remove_hold(&mut self, lock: LockId) {
        // Locks are mostly released in the reverse order of taking them.
        if self.holds.last().is_some_and(|h| h.lock == lock) {
            self.holds.pop();
        } else if let Some(i) = self.holds.iter().rposition(|h| h.lock == lock) {
            self.holds.remove(i);
        }
    }
}

/// The state of `actor`, growing its table to reach it. It takes the two tables rather than
/// the [`State`], so that the caller can update a lock while it holds an actor's state.
#[inline(always)]
fn actor_state<'a>(
    threads: &'a mut Vec<ThreadState>,
    tasks: &'a mut Vec<TaskState>,
    actor: Actor,
) -> &'a mut ActorState {
    match actor {
        Actor::Thread(t) => &mut grow(threads, t.index()).actor,
        Actor::Task(t) => &mut grow(tasks, t.index()).actor,
    }
}

/// The entry `index` of `table`, growing the table with defaults to reach it. Indices are
/// dense ids from [`Trace`], so the table never grows past the number of entities.
#[inline(always)]
fn grow<T: Default>(table: &mut Vec<T>, index: usize) -> &mut T {
    if index < table.len() {
        &mut table[index]
    } else {
        grow_to(table, index)
    }
}

/// The rare part of [`grow`], out of the way of the common one.
#[cold]
#[inline(never)]
fn grow_to<T: Default>(table: &mut Vec<T>, index: usize) -> &mut T {
    table.resize_with(index + 1, T::default);
    &mut table[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(thread: u32, mode: LockMode) -> Holder {
        let actor = Actor::Thread(ThreadId(thread));
        Holder { actor, hold: Hold { mode, thread: ThreadId(thread), ..NO_HOLDER.hold } }
    }

    fn actors(holders: &Holders) -> Vec<Actor> {
        holders.iter().map(|h| h.actor).collect()
    }

    /// Shared holders spill to the heap and come back inline, in acquisition order, and a
    /// release ends the releasing actor's own hold first.
    #[test]
    fn holders_spill_and_come_back_inline() {
        let thread = |t| Actor::Thread(ThreadId(t));
        let mut holders = Holders::default();
        assert!(holders.is_empty());
        assert!(!holders.push(holder(1, LockMode::Shared)));
        assert!(!holders.push(holder(2, LockMode::Shared)));
        assert!(!holders.push(holder(3, LockMode::Shared)));
        assert_eq!(actors(&holders), [thread(1), thread(2), thread(3)]);
        assert_eq!(holders.release(thread(2), LockMode::Shared), Some(thread(2)));
        assert_eq!(actors(&holders), [thread(1), thread(3)]);
        // A guard moved to another actor: the most recent hold in the mode ends.
        assert_eq!(holders.release(thread(9), LockMode::Shared), Some(thread(3)));
        assert_eq!(actors(&holders), [thread(1)]);
        assert!(holders.spilled.as_ref().is_some_and(|s| s.is_empty()), "back inline");
        assert!(holders.push(holder(4, LockMode::Exclusive)), "a writer conflicts");
        assert_eq!(actors(&holders), [thread(1), thread(4)]);
        assert_eq!(holders.release(thread(1), LockMode::Exclusive), Some(thread(1)));
        assert_eq!(holders.release(thread(4), LockMode::Exclusive), Some(thread(4)));
        assert!(holders.is_empty());
        assert_eq!(holders.release(thread(4), LockMode::Exclusive), None);
    }

    /// The parts of a lock's state that every lock event touches share one cache line.
    #[test]
    fn a_locks_hot_state_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Holders>(), 48);
        assert_eq!(std::mem::align_of::<LockState>(), 64);
    }

    #[test]
    fn a_gap_falls_in_a_span_exactly_for_the_latest_gaps_and_conservatively_before() {
        let mut lost = Lost::new(10);
        for time in [10, 20, 30] {
            lost.add(time, 1);
        }
        assert!(lost.may_fall_in(15, 20), "the gap at 20");
        assert!(!lost.may_fall_in(20, 29), "the events of 30 were lost after 20, before 30");
        assert!(!lost.may_fall_in(31, 100));
        // 12 gaps, 10 apart: the latest 8 (50..=120) are exact, 10..=40 lie in [10, 50].
        for time in (40..=120).step_by(10) {
            lost.add(time, 1);
        }
        assert!(lost.may_fall_in(71, 80));
        assert!(!lost.may_fall_in(71, 79));
        assert!(lost.may_fall_in(21, 22), "older gaps are known only to lie in [10, 50]");
        assert!(!lost.may_fall_in(121, 1_000));
    }
}
