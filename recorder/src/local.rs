//! Per-thread recording state: the thread's ring, its id in the trace, the task it is
//! polling, a cache of interned sites, and the held events of tokio task polls.
//!
//! Everything a recording thread does goes through [`with`], which finds (or, on the
//! thread's first event in a session, creates and registers) the thread's ring.
//!
//! # Telling a poll from a drop
//!
//! tokio enters a task's `runtime.spawn` span for each poll, and once more to drop the
//! task's future, right before the span closes: after a poll that returned `Ready` (on the
//! same thread, at once) or when the task is cancelled. The enter that only drops the future
//! is not a poll, and a poll followed at once by that drop is the one that returned `Ready`.
//! Neither is known until the span closes, so the Layer *holds* these events in the ring
//! (see [`crate::ring`]) for as long as it takes to see what comes next:
//!
//! ```text
//! exit(T)                          hold  [end(T)]                      -> Exited
//!   enter(T)                       hold  [end(T), start(T)]            -> Entered
//!     events of T                  hold  [..., e1, e2]
//!   exit(T)                        hold  [..., end(T)]                 -> Reexited
//!   close(T)     the second enter was the drop: end(T) becomes ready, start and the last
//!                end are withdrawn, the task finished                  -> Idle
//!   anything else                  it was a poll: publish all but the last end -> Exited
//! ```
//!
//! An enter that does not directly follow an exit of the same task (on this thread, within
//! 1 ms: tokio drops a finished future at once) and is followed by the close is a drop
//! without a `Ready` poll: the task was cancelled. Held events that stay
//! unresolved (a thread that parks after a poll) are published by the writer as they stand
//! (ordinary, pending polls) once they are older than the flush interval.

use crate::clock;
use crate::format::{EventKind, LockId, LockMode, SiteId, TaskId, ThreadId};
use crate::registry::{Entity, SiteSource};
use crate::ring::{Full, Held, Producer, RawEvent, Ring};
use crate::session::{self, OverflowPolicy, Session};
use crate::waits::{self, Wait};
use std::cell::RefCell;
use std::panic::Location;
use std::sync::Arc;

/// Slots of the per-thread site cache (direct-mapped, by address).
const SITE_CACHE: usize = 64;
/// tokio drops a future that returned `Ready` at once, on the thread that polled it; an enter
/// of the same task later than this after its exit is not that drop.
const READY_DROP_WINDOW_NS: u64 = 1_000_000;

/// [`READY_DROP_WINDOW_NS`] in clock ticks, computed once.
fn ready_drop_window_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| clock::ticks_for(READY_DROP_WINDOW_NS))
}

/// The longest run of events held for one task before it is taken for a poll.
const MAX_HELD: usize = 64;

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Where the held events of a tokio task's span stand (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum PollHold {
    /// Nothing held.
    #[default]
    Idle,
    /// Held: the end of a poll of `task`.
    Exited { task: TaskId },
    /// Held: (the end of the previous poll if `after_exit`), the span's enter, events since.
    Entered { task: TaskId, after_exit: bool },
    /// As `Entered`, then the span's exit.
    Reexited { task: TaskId, after_exit: bool },
}

/// The thread's recording state.
#[derive(Debug, Default)]
pub(crate) struct Local {
    generation: u64,
    session: Option<Arc<Session>>,
    producer: Option<Producer>,
    thread: Option<ThreadId>,
    current_task: Option<TaskId>,
    hold: PollHold,
    sites: Vec<(usize, SiteId)>,
    /// The next tokio task spawned from this thread is this helper task (see `task::spawn`).
    adopt: Option<TaskId>,
    /// tokio resources created now belong to a hindsight wrapper and are not recorded twice.
    wrapping: u32,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.retire();
    }
}

impl Local {
    /// Joins the session of `generation`; `false` if it is no longer active.
    fn register(&mut self, generation: u64) -> bool {
        let Some(session) = session::current().filter(|s| s.generation() == generation) else {
            return false;
        };
        self.retire();
        let ring = Arc::new(Ring::new(session.ring_capacity));
        let current = std::thread::current();
        let thread = session::lock(&session.registry).thread(current.name(), os_thread_id());
        session::lock(&session.rings).push((thread, ring.clone()));
        self.producer = Some(Producer::new(ring));
        self.thread = Some(thread);
        self.sites.clear();
        self.sites.resize(SITE_CACHE, (0, SiteId(0)));
        self.generation = generation;
        self.session = Some(session);
        true
    }

    /// Leaves the current session: publishes what is held, closes the ring, and retires the
    /// thread's id (its events are all in the ring by now).
    fn retire(&mut self) {
        self.settle();
        if let Some(producer) = self.producer.take() {
            producer.ring().close();
        }
        if let (Some(session), Some(thread)) = (self.session.take(), self.thread.take()) {
            let mut registry = session::lock(&session.registry);
            registry.retire(Entity::Thread(thread), clock::ticks());
        }
        self.session = None;
        self.generation = 0;
        self.hold = PollHold::Idle;
    }

    /// Publishes everything held, as it stands.
    fn settle(&mut self) {
        if let Some(producer) = &mut self.producer {
            if producer.reclaim() {
                let held = producer.held();
                producer.publish_held(held);
            }
        }
        self.hold = PollHold::Idle;
    }

    /// The time of the `index`-th held event, if it is held.
    fn held_since(&mut self, index: usize) -> Option<u64> {
        let producer = self.producer.as_mut()?;
        if producer.held() <= index {
            return None;
        }
        producer.held_mut(index).map(|event| event.ticks)
    }

    /// Publishes everything held except a final poll end, which stays held.
    fn settle_to_exit(&mut self) {
        let task = match self.hold {
            PollHold::Idle | PollHold::Exited { .. } => return,
            PollHold::Entered { .. } => return self.settle(),
            PollHold::Reexited { task, .. } => task,
        };
        let Some(producer) = &mut self.producer else { return };
        if producer.reclaim() {
            let held = producer.held();
            producer.publish_held(held - 1);
            self.hold = PollHold::Exited { task };
        } else {
            self.hold = PollHold::Idle;
        }
    }

    #[inline(always)]
    fn publish(&mut self, event: RawEvent) {
        let Some(producer) = &mut self.producer else { return };
        if producer.push(event).is_err() {
            return self.overflow(event);
        }
        if producer.half_full() {
            self.wake_writer();
        }
    }

    /// The ring is full: wait for room ([`OverflowPolicy::Block`]) or drop `event`.
    #[cold]
    #[inline(never)]
    fn overflow(&mut self, event: RawEvent) {
        let (Some(producer), Some(session)) = (&mut self.producer, &self.session) else { return };
        loop {
            if session.overflow == OverflowPolicy::Block && session.is_current() {
                session.wake_writer();
                std::thread::yield_now();
                if producer.push(event).is_ok() {
                    return;
                }
                continue;
            }
            producer.count_dropped();
            session.wake_writer();
            return;
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_writer(&self) {
        if let Some(session) = &self.session {
            session.wake_writer();
        }
    }

    /// Holds `event`; `Some(outcome)` if it was held.
    ///
    /// With no room to hold it, what is held is published as it stands and `event` goes the
    /// ordinary way ([`publish`](Self::publish)), so the session's [`OverflowPolicy`] decides
    /// whether it waits for room or is dropped and counted: `None`, nothing is held.
    fn hold_event(&mut self, event: RawEvent) -> Option<Held> {
        let producer = self.producer.as_mut()?;
        match producer.hold(event) {
            Ok(outcome) => {
                if producer.half_full() {
                    self.wake_writer();
                }
                Some(outcome)
            }
            Err(Full::Full) => {
                self.settle();
                self.publish(event);
                None
            }
        }
    }

    #[inline(always)]
    fn push(&mut self, ticks: u64, kind: EventKind) {
        let event = RawEvent { ticks, task: self.current_task, kind };
        if self.hold == PollHold::Idle {
            return self.publish(event);
        }
        self.push_while_holding(event);
    }

    /// [`push`](Self::push) while events of a tokio task's poll are held.
    #[inline(never)]
    fn push_while_holding(&mut self, event: RawEvent) {
        match self.hold {
            PollHold::Entered { task, .. } if self.current_task == Some(task) => {
                let held = self.producer.as_ref().map_or(0, |p| p.held());
                if held < MAX_HELD {
                    if self.hold_event(event) == Some(Held::AfterClaim) {
                        self.settle();
                    }
                    return;
                }
                self.settle();
            }
            PollHold::Idle => {}
            _ => self.settle(),
        }
        self.publish(event);
    }
}

/// The id of the calling OS thread.
pub(crate) fn os_thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions and cannot fail.
        (unsafe { libc::gettid() }) as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// A recording thread's view of the session, handed out by [`with`].
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    local: &'a mut Local,
}

impl Ctx<'_> {
    /// The session.
    #[inline]
    pub(crate) fn session(&self) -> &Arc<Session> {
        self.local.session.as_ref().expect("a registered thread has a session; this is a bug")
    }

    /// The generation of the session (see [`crate::session`]).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.local.generation
    }

    /// This thread's id in the trace.
    #[inline]
    pub(crate) fn thread(&self) -> ThreadId {
        self.local.thread.expect("a registered thread has an id; this is a bug")
    }

    /// The task being polled on this thread.
    #[inline]
    pub(crate) fn task(&self) -> Option<TaskId> {
        self.local.current_task
    }

    /// The id of a `#[track_caller]` location.
    #[inline]
    pub(crate) fn site(&mut self, location: &'static Location<'static>) -> SiteId {
        let key = location as *const Location<'static> as usize;
        match self.local.sites.get((key >> 3) % SITE_CACHE) {
            Some((cached, id)) if *cached == key => *id,
            _ => self.site_miss((key >> 3) % SITE_CACHE, SiteSource::location(location)),
        }
    }

    /// The id of a site.
    #[inline]
    pub(crate) fn site_of(&mut self, source: SiteSource) -> SiteId {
        let slot = (source.key >> 3) % SITE_CACHE;
        if let Some((key, id)) = self.local.sites.get(slot) {
            if *key == source.key {
                return *id;
            }
        }
        self.site_miss(slot, source)
    }

    /// Defines (or finds) a site missing from the cache, and caches it.
    #[inline(never)]
    fn site_miss(&mut self, slot: usize, source: SiteSource) -> SiteId {
        let id = session::lock(&self.session().registry).site(source);
        if let Some(entry) = self.local.sites.get_mut(slot) {
            *entry = (source.key, id);
        }
        id
    }

    /// Records `kind` now.
    #[inline(always)]
    pub(crate) fn record(&mut self, kind: EventKind) {
        self.local.push(clock::ticks(), kind);
    }

    /// Records `kind` at `ticks` (read earlier by this thread).
    pub(crate) fn record_at(&mut self, ticks: u64, kind: EventKind) {
        self.local.push(ticks, kind);
    }

    /// Publishes a wait for `lock` that began at `ticks`, if the session's watchdog reads
    /// waits (see [`crate::waits`]); it ends when the result is dropped.
    pub(crate) fn begin_wait(&self, ticks: u64, lock: LockId, mode: LockMode) -> Option<Wait> {
        let session = self.session();
        if !session.watch.waits {
            return None;
        }
        waits::begin(session.generation(), ticks, lock, mode, self.thread(), self.task())
    }

    /// tokio entered the span of `task` on this thread (a poll, or the drop of its future).
    pub(crate) fn tokio_task_entered(&mut self, task: TaskId) {
        let ticks = clock::ticks();
        crate::poll_cpu::tokio_poll_started(ticks);
        self.local.settle_to_exit();
        if let PollHold::Exited { task: previous } = self.local.hold {
            // Only an enter right after the exit can be the drop of a future that returned
            // `Ready`; a later one (an idle worker dropping a cancelled task) follows a
            // pending poll.
            let stale = self
                .local
                .held_since(0)
                .is_some_and(|end| ticks.saturating_sub(end) > ready_drop_window_ticks());
            if previous != task || stale {
                self.local.settle();
            }
        }
        let after_exit = self.local.hold == (PollHold::Exited { task });
        let event = RawEvent { ticks, task: Some(task), kind: EventKind::PollStarted };
        self.local.hold = match self.local.hold_event(event) {
            Some(Held::Appended) => PollHold::Entered { task, after_exit },
            Some(Held::AfterClaim) => PollHold::Entered { task, after_exit: false },
            None => PollHold::Idle,
        };
    }

    /// tokio exited the span of `task` on this thread.
    pub(crate) fn tokio_task_exited(&mut self, task: TaskId) {
        let ticks = clock::ticks();
        // A long poll's CPU time goes before its end (with the poll's events, if held).
        if let Some(cpu) = crate::poll_cpu::tokio_poll_ended(ticks) {
            self.local.push(ticks, cpu);
        }
        let event =
            RawEvent { ticks, task: Some(task), kind: EventKind::PollEnded { ready: false } };
        if let PollHold::Entered { task: entered, after_exit } = self.local.hold {
            if entered == task {
                self.local.hold = match self.local.hold_event(event) {
                    Some(Held::Appended) => PollHold::Reexited { task, after_exit },
                    Some(Held::AfterClaim) => PollHold::Exited { task },
                    None => PollHold::Idle,
                };
                return;
            }
        }
        self.local.settle();
        self.local.hold = match self.local.hold_event(event) {
            Some(_) => PollHold::Exited { task },
            None => PollHold::Idle,
        };
    }

    /// tokio closed the span of `task` (its future is gone).
    pub(crate) fn tokio_task_closed(&mut self, task: TaskId) {
        let ticks = clock::ticks();
        let local = &mut *self.local;
        let hold = std::mem::take(&mut local.hold);
        let Some(producer) = local.producer.as_mut() else { return };
        match hold {
            PollHold::Reexited { task: held, after_exit } if held == task && producer.reclaim() => {
                // [end?] start e1 .. en end: the second enter only dropped the future.
                let count = producer.held();
                if after_exit {
                    if let Some(end) = producer.held_mut(0) {
                        end.kind = EventKind::PollEnded { ready: true };
                    }
                }
                let start = usize::from(after_exit);
                if let Some(start) = producer.held_mut(start) {
                    start.kind = RawEvent::NOTHING;
                }
                if let Some(end) = producer.held_mut(count - 1) {
                    end.kind = EventKind::TaskFinished { cancelled: !after_exit };
                }
                producer.publish_held(count);
                return;
            }
            PollHold::Exited { task: held } if held == task && producer.reclaim() => {
                if let Some(end) = producer.held_mut(0) {
                    end.kind = EventKind::PollEnded { ready: true };
                }
                producer.publish_held(1);
            }
            _ => local.settle(),
        }
        let event = RawEvent {
            ticks,
            task: Some(task),
            kind: EventKind::TaskFinished { cancelled: false },
        };
        local.publish(event);
    }
}

/// Runs `f` with this thread's recording state, if a session is recording (and this thread
/// can still record: not while its thread-local state is being torn down).
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut Ctx<'_>) -> R) -> Option<R> {
    let generation = session::active_generation();
    if generation == 0 {
        return None;
    }
    LOCAL
        .try_with(|cell| {
            let mut local = cell.try_borrow_mut().ok()?;
            if local.generation != generation && !local.register(generation) {
                return None;
            }
            Some(f(&mut Ctx { local: &mut local }))
        })
        .ok()
        .flatten()
}

/// Sets the task being polled on this thread, whether or not a session is recording;
/// returns the previous one.
pub(crate) fn set_current_task(task: Option<TaskId>) -> Option<TaskId> {
    LOCAL
        .try_with(|cell| {
            cell.try_borrow_mut()
                .ok()
                .and_then(|mut l| std::mem::replace(&mut l.current_task, task))
        })
        .ok()
        .flatten()
}

/// Makes the next tokio task spawned from this thread the helper task `task` (or clears it).
pub(crate) fn set_adopt(task: Option<TaskId>) {
    let _ = LOCAL.try_with(|cell| {
        if let Ok(mut local) = cell.try_borrow_mut() {
            local.adopt = task;
        }
    });
}

/// Takes the helper task that the tokio task being spawned now belongs to, if any.
pub(crate) fn take_adopt() -> Option<TaskId> {
    LOCAL
        .try_with(|cell| cell.try_borrow_mut().ok().and_then(|mut l| l.adopt.take()))
        .ok()
        .flatten()
}

/// Runs `f` (which creates tokio sync primitives inside a hindsight wrapper) so that the
/// Layer does not record those primitives a second time.
pub(crate) fn wrapping<R>(f: impl FnOnce() -> R) -> R {
    let set = |delta: i32| {
        let _ = LOCAL.try_with(|cell| {
            if let Ok(mut local) = cell.try_borrow_mut() {
                local.wrapping = local.wrapping.saturating_add_signed(delta);
            }
        });
    };
    set(1);
    let result = f();
    set(-1);
    result
}

/// Whether tokio resources created now belong to a hindsight wrapper.
pub(crate) fn is_wrapping() -> bool {
    LOCAL
        .try_with(|cell| cell.try_borrow().map(|l| l.wrapping > 0).unwrap_or(false))
        .unwrap_or(false)
}

/// Leaves the current session on this thread (publishing what is held). Used by the thread
/// helper when its thread ends, and harmless elsewhere.
pub(crate) fn retire() {
    let _ = LOCAL.try_with(|cell| {
        if let Ok(mut local) = cell.try_borrow_mut() {
            local.retire();
        }
    });
}

/// Whether `a` and `b` are one session's generation, as objects store it (its low 32 bits).
fn same_generation(a: u64, b: u64) -> bool {
    a & u64::from(u32::MAX) == b & u64::from(u32::MAX)
}

/// Tells the session of `generation` (as stored with the entity's id: its low 32 bits are
/// enough) that a party to `entity`'s life is done with it, if that session is still the one
/// recording (see [`Registry::retire`](crate::registry::Registry::retire)). Takes the
/// registry's lock: for the end of an entity's life, never per event. Costs one atomic load
/// when nothing records.
pub(crate) fn retire_entity(generation: u64, entity: Entity) {
    if generation & u64::from(u32::MAX) == 0
        || !same_generation(session::active_generation(), generation)
    {
        return;
    }
    let retire = |session: &Session| {
        let mut registry = session::lock(&session.registry);
        registry.retire(entity, clock::ticks());
    };
    // The thread's own session, if it is that one, spares the global lock.
    let done = LOCAL.try_with(|cell| {
        let local = cell.try_borrow().ok()?;
        let session = local.session.as_ref()?;
        same_generation(session.generation(), generation).then(|| retire(session))
    });
    if done.ok().flatten().is_none() {
        if let Some(session) =
            session::current().filter(|s| same_generation(s.generation(), generation))
        {
            retire(&session);
        }
    }
}

/// One party to the life of an entity defined in the session of `generation` (a join handle
/// to its task or thread): dropping it [retires](retire_entity) the entity for this party.
#[derive(Debug)]
pub(crate) struct Life {
    generation: u64,
    entity: Entity,
}

impl Life {
    /// The party of `entity` of the session `generation`.
    pub(crate) fn new(generation: u64, entity: Entity) -> Life {
        Life { generation, entity }
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        retire_entity(self.generation, self.entity);
    }
}
