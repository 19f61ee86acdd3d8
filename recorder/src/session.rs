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
use crate::trigger::{DumpError, DumpRequest};
use std::collections::VecDeque;
use std::path::PathBuf;
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

/// The most dump outcomes remembered for the threads waiting for them.
const OUTCOMES: usize = 64;

/// What became of a dump request: the file written, or why not.
pub(crate) type DumpOutcome = Result<PathBuf, DumpError>;

/// The flush handshake between recording threads and the writer.
#[derive(Debug, Default)]
struct FlushState {
    /// Flushes asked for so far (a dump request is a flush too).
    requested: u64,
    /// Flushes the writer has completed (it completes all requests made before it started).
    completed: u64,
    /// The session is ending: the writer drains one last time and stops.
    stop: bool,
    /// Dumps asked for and not yet taken by the writer, with their tickets.
    dumps: Vec<(u64, DumpRequest)>,
    /// The outcomes of the latest dump requests, by ticket.
    outcomes: VecDeque<(u64, DumpOutcome)>,
    /// The dumps written so far.
    written: Vec<PathBuf>,
}

/// What the writer is to do in one round.
#[derive(Debug)]
pub(crate) struct Work {
    /// The flush ticket the round completes.
    pub(crate) ticket: u64,
    /// The round is the last.
    pub(crate) stop: bool,
    /// Triggers to honour, with their tickets.
    pub(crate) dumps: Vec<(u64, DumpRequest)>,
}

/// What the hot path needs to know about the triggers of a session.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Watch {
    /// Lock waits are published on the [wait board](crate::waits) for the watchdog.
    pub(crate) waits: bool,
    /// A panic asks for a dump (rather than only a flush).
    pub(crate) panics: bool,
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
    /// What the triggers need.
    pub(crate) watch: Watch,
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
        watch: Watch,
    ) -> Session {
        Session {
            generation: LAST_GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            start_ticks: crate::clock::ticks(),
            ring_capacity,
            overflow,
            held_claim_ticks: crate::clock::ticks_for(held_claim.as_nanos() as u64),
            watch,
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

    /// Asks the writer for a dump (in streaming mode: a mark and a flush) and waits for it,
    /// at most `timeout`.
    pub(crate) fn dump(&self, request: DumpRequest, timeout: Duration) -> DumpOutcome {
        let ticket = self.request_dump(request).ok_or(DumpError::NotRecording)?;
        if !self.wait_for(ticket, timeout) {
            return Err(DumpError::Timeout(timeout));
        }
        let state = lock(&self.flush);
        let outcome = state.outcomes.iter().find(|(t, _)| *t == ticket).map(|(_, o)| o.clone());
        outcome.unwrap_or(Err(DumpError::NotRecording))
    }

    /// Asks the writer for a dump without waiting; its ticket, or `None` once the session is
    /// ending.
    pub(crate) fn request_dump(&self, request: DumpRequest) -> Option<u64> {
        let ticket = {
            let mut state = lock(&self.flush);
            if state.stop {
                return None;
            }
            state.requested += 1;
            let ticket = state.requested;
            state.dumps.push((ticket, request));
            ticket
        };
        self.wake_writer();
        Some(ticket)
    }

    /// Whether the session is ending.
    pub(crate) fn is_stopping(&self) -> bool {
        lock(&self.flush).stop
    }

    /// The dumps written so far.
    pub(crate) fn written_dumps(&self) -> Vec<PathBuf> {
        lock(&self.flush).written.clone()
    }

    /// Writer side: what to do next.
    pub(crate) fn take_work(&self) -> Work {
        let mut state = lock(&self.flush);
        Work { ticket: state.requested, stop: state.stop, dumps: std::mem::take(&mut state.dumps) }
    }

    /// Writer side: the outcome of the dumps of `tickets`; `new_file` if it is a dump file
    /// (rather than the stream, in streaming mode).
    pub(crate) fn dumped(&self, tickets: &[u64], outcome: &DumpOutcome, new_file: bool) {
        let mut state = lock(&self.flush);
        if let (Ok(path), true) = (outcome, new_file) {
            state.written.push(path.clone());
        }
        for ticket in tickets {
            if state.outcomes.len() >= OUTCOMES {
                state.outcomes.pop_front();
            }
            state.outcomes.push_back((*ticket, outcome.clone()));
        }
    }

    /// Writer side: every flush up to `ticket` is done.
    pub(crate) fn complete(&self, ticket: u64) {
        let mut state = lock(&self.flush);
        state.completed = state.completed.max(ticket);
        drop(state);
        self.flushed.notify_all();
    }
}
