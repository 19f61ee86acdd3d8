//! The recording session: what one [`Recorder`](crate::Recorder) shares between the threads
//! that record and the writer thread.
//!
//! At most one session is active in a process at a time. Threads find it through a global
//! *generation* number: the hot path loads it once (a relaxed atomic load) to learn whether
//! recording is on and whether its thread-local state still belongs to the current session.
//! Only when it does not (the first event of a thread, or a new session) does a thread take
//! the session's locks to register its ring.

use crate::format::ThreadId;
use crate::registry::Registry;
use crate::ring::Ring;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The generation of the active session; 0 when none is active.
static ACTIVE: AtomicU64 = AtomicU64::new(0);
/// The last generation handed out.
static LAST_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The active session itself, for the slow path.
static CURRENT: Mutex<Option<Arc<Session>>> = Mutex::new(None);

/// What a thread does when its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the event and count it. The thread's next event that fits is preceded by a
    /// [`Gap`](crate::format::EventKind::Gap) event carrying the count, so the analyzer sees
    /// where and how much was lost. The program is never slowed down. The default.
    #[default]
    Drop,
    /// Wait (spinning, then yielding) until the writer thread has made room: nothing is lost,
    /// at the price of slowing the recording thread down while the writer catches up. Never
    /// waits once the session has ended.
    Block,
}

/// Locks a std mutex, ignoring poison: the recorder's state stays usable after a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The generation of the active session (0 when none).
#[inline]
pub(crate) fn active_generation() -> u64 {
    ACTIVE.load(Ordering::Relaxed)
}

/// The active session, if any (slow path: takes a global lock).
pub(crate) fn current() -> Option<Arc<Session>> {
    lock(&CURRENT).clone()
}

/// The active session, if it can be had without waiting (for the panic hook, which must not
/// block on a lock its own thread might hold).
pub(crate) fn current_nonblocking() -> Option<Arc<Session>> {
    match CURRENT.try_lock() {
        Ok(current) => current.clone(),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().clone(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// The flush handshake between recording threads and the writer.
#[derive(Debug, Default)]
struct FlushState {
    /// Flushes asked for so far.
    requested: u64,
    /// Flushes the writer has completed (it completes all requests made before it started).
    completed: u64,
    /// The session is ending: the writer drains one last time and stops.
    stop: bool,
}

/// One recording session.
#[derive(Debug)]
pub(crate) struct Session {
    generation: u64,
    /// Raw clock ticks at the trace's time zero.
    pub(crate) start_ticks: u64,
    /// Slots per thread ring.
    pub(crate) ring_capacity: usize,
    /// What a full ring does.
    pub(crate) overflow: OverflowPolicy,
    /// Held events older than this many ticks may be claimed by the writer.
    pub(crate) held_claim_ticks: u64,
    /// The definitions.
    pub(crate) registry: Mutex<Registry>,
    /// Every thread's ring.
    pub(crate) rings: Mutex<Vec<(ThreadId, Arc<Ring>)>>,
    writer: OnceLock<std::thread::Thread>,
    flush: Mutex<FlushState>,
    flushed: Condvar,
}

/// Why a session could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlreadyActive;

impl Session {
    /// Creates a session; it records nothing until [`activate`](Self::activate)d.
    pub(crate) fn new(
        ring_capacity: usize,
        overflow: OverflowPolicy,
        held_claim: Duration,
    ) -> Session {
        Session {
            generation: LAST_GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            start_ticks: crate::clock::ticks(),
            ring_capacity,
            overflow,
            held_claim_ticks: crate::clock::ticks_for(held_claim.as_nanos() as u64),
            registry: Mutex::new(Registry::default()),
            rings: Mutex::new(Vec::new()),
            writer: OnceLock::new(),
            flush: Mutex::new(FlushState::default()),
            flushed: Condvar::new(),
        }
    }

    /// This session's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Makes `session` the one threads record into, unless another is active.
    pub(crate) fn activate(session: &Arc<Session>) -> Result<(), AlreadyActive> {
        let mut current = lock(&CURRENT);
        if current.is_some() {
            return Err(AlreadyActive);
        }
        *current = Some(session.clone());
        ACTIVE.store(session.generation, Ordering::Release);
        Ok(())
    }

    /// Stops recording into this session (if it is the active one).
    pub(crate) fn deactivate(&self) {
        let mut current = lock(&CURRENT);
        if current.as_ref().is_some_and(|s| s.generation == self.generation) {
            *current = None;
            ACTIVE.store(0, Ordering::Release);
        }
    }

    /// Whether this session is the one recording.
    pub(crate) fn is_current(&self) -> bool {
        active_generation() == self.generation
    }

    /// Tells the session which thread writes, so that it can be woken.
    pub(crate) fn set_writer(&self, thread: std::thread::Thread) {
        let _ = self.writer.set(thread);
    }

    /// Wakes the writer early (a ring is filling up). Cheap if it is already awake.
    pub(crate) fn wake_writer(&self) {
        if let Some(thread) = self.writer.get() {
            thread.unpark();
        }
    }

    /// Asks the writer to write everything recorded so far and waits for it, at most
    /// `timeout`. Returns whether the flush completed in time.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let ticket = {
            let mut state = lock(&self.flush);
            if state.stop && state.completed >= state.requested {
                return true;
            }
            state.requested += 1;
            state.requested
        };
        self.wake_writer();
        self.wait_for(ticket, timeout)
    }

    fn wait_for(&self, ticket: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.flush);
        while state.completed < ticket {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.flushed.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Asks the writer to drain one last time and stop.
    pub(crate) fn request_stop(&self) {
        let mut state = lock(&self.flush);
        state.stop = true;
        state.requested += 1;
        drop(state);
        self.wake_writer();
    }

    /// Writer side: what to do next. `(flush ticket to complete, stop)`.
    pub(crate) fn pending_work(&self) -> (u64, bool) {
        let state = lock(&self.flush);
        (state.requested, state.stop)
    }

    /// Writer side: every flush up to `ticket` is done.
    pub(crate) fn complete(&self, ticket: u64) {
        let mut state = lock(&self.flush);
        state.completed = state.completed.max(ticket);
        drop(state);
        self.flushed.notify_all();
    }
}
