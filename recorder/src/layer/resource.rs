//! tokio's locks as the Layer sees them: who holds each one, and its sequence counter; and
//! tokio's timers, for the `.await` a task suspends at in one.
//!
//! tokio reports a lock's state from inside the operations (`locked = true` after an
//! acquisition, `locked = false` in the guard's drop), but its guards let go of the lock
//! *before* reporting `locked = false`. Between the two, another task can acquire the lock
//! and report `locked = true` first. Recording those reports naively would show the lock
//! acquired while still held.
//!
//! The Layer therefore keeps each lock's holders. When an acquisition arrives while the Layer
//! still believes someone else holds the lock, that holder has in fact already let go: its
//! release takes the next sequence number *now*, before the acquisition's, and is kept
//! pending. When the holder's late report arrives, its release is recorded — on its own
//! thread, in its own program order — with the number it was given. Replay, which honours
//! each lock's numbers, sees the release before the acquisition it enabled.

use crate::format::{EventKind, LockId, LockKind, LockMode, SiteId, TaskId, ThreadId};
use crate::{local, session};
use std::num::NonZeroU64;
use std::sync::Mutex;

/// Who holds or waits: a task when one is being polled, else the OS thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    /// A task.
    Task(TaskId),
    /// A thread outside any task.
    Thread(ThreadId),
}

/// One hold of a lock: who, in which mode, of how many permits (1 but for a semaphore's
/// `acquire_many`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    actor: Actor,
    mode: LockMode,
    permits: u64,
}

/// The holders of one lock and its sequence counter.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    /// The number of the lock's last operation (0 before the first).
    seq: u64,
    /// Permits (1 for a mutex; a rwlock's writers are checked by mode).
    capacity: Option<usize>,
    holders: Vec<Held>,
    /// Releases given their number early, waiting for their holder's late report.
    pending: Vec<(Held, NonZeroU64)>,
    /// Actors whose lock operation just completed (so their next acquisition is not a
    /// `try_lock`), with the operation's site.
    ready: Vec<(Actor, SiteId)>,
    /// The sites of the lock's operations, by operation name.
    op_sites: Vec<(Box<str>, SiteId)>,
}

impl Holders {
    fn next(&mut self) -> NonZeroU64 {
        let seq = NonZeroU64::MIN.saturating_add(self.seq);
        self.seq = seq.get();
        seq
    }

    /// The site of operation `source` on this lock, if already defined.
    pub(crate) fn op_site(&self, source: &str) -> Option<SiteId> {
        self.op_sites.iter().find(|(s, _)| &**s == source).map(|(_, id)| *id)
    }

    /// Remembers the site of operation `source`.
    pub(crate) fn set_op_site(&mut self, source: &str, site: SiteId) {
        self.op_sites.push((source.into(), site));
    }

    /// Sets the number of permits (a semaphore's).
    pub(crate) fn set_capacity(&mut self, permits: usize) {
        self.capacity = Some(permits.max(1));
    }

    /// `actor`'s lock operation completed at `site`.
    pub(crate) fn mark_ready(&mut self, actor: Actor, site: SiteId) {
        self.ready.push((actor, site));
    }

    /// The site of `actor`'s completed lock operation, if its acquisition came from one.
    pub(crate) fn take_ready(&mut self, actor: Actor) -> Option<SiteId> {
        let index = self.ready.iter().position(|(a, _)| *a == actor)?;
        Some(self.ready.swap_remove(index).1)
    }

    /// `actor` acquired the lock in `mode`, `permits` of it (1 but for a semaphore's
    /// `acquire_many`); returns the acquisition's number. Holders that cannot still hold it
    /// are given their release numbers first.
    pub(crate) fn acquire(
        &mut self,
        kind: LockKind,
        actor: Actor,
        mode: LockMode,
        permits: u64,
    ) -> NonZeroU64 {
        let capacity = match kind {
            LockKind::Semaphore => self.capacity.map_or(u64::MAX, |c| c as u64),
            _ => 1,
        };
        loop {
            let conflict = match (kind, mode) {
                (LockKind::Semaphore, _) => {
                    let out: u64 = self.holders.iter().map(|h| h.permits).sum();
                    let full = out.saturating_add(permits) > capacity;
                    (full && !self.holders.is_empty()).then_some(0)
                }
                (_, LockMode::Exclusive) => (!self.holders.is_empty()).then_some(0),
                (_, LockMode::Shared) => {
                    self.holders.iter().position(|h| h.mode == LockMode::Exclusive)
                }
            };
            let Some(index) = conflict else { break };
            let holder = self.holders.remove(index);
            let seq = self.next();
            self.pending.push((holder, seq));
        }
        self.holders.push(Held { actor, mode, permits });
        self.next()
    }

    /// How many holds `actor` giving back `count` units of a lock of `kind` ends. A lock's
    /// units are its holds. A semaphore's are permits: a holder gives back its own hold, of
    /// however many permits it took (`acquire_many`); an actor that holds none gives back a
    /// hold of exactly `count` permits that moved to it (a permit dropped by the task it was
    /// handed to) if there is one, else permits forgotten by others (`add_permits`): the
    /// oldest holds, as many as `count` permits cover.
    pub(crate) fn holds_ended_by(&self, kind: LockKind, actor: Actor, count: u64) -> u64 {
        if kind != LockKind::Semaphore {
            return count;
        }
        let all = || self.pending.iter().map(|(held, _)| held).chain(&self.holders);
        if all().any(|h| h.actor == actor || h.permits == count) {
            return 1;
        }
        let mut left = count;
        let covered = all().take_while(|h| match left.checked_sub(h.permits) {
            Some(rest) => {
                left = rest;
                true
            }
            None => false,
        });
        covered.count() as u64
    }

    /// `actor` reported releasing the lock held in `mode`, giving back `permits` (1 but for a
    /// semaphore); returns the release's number, or `None` for a release of a hold the Layer
    /// never saw. Its own hold ends; else a hold moved to it: one of exactly `permits`
    /// permits if there is one, else the oldest of that mode.
    pub(crate) fn release(
        &mut self,
        actor: Actor,
        mode: LockMode,
        permits: u64,
    ) -> Option<NonZeroU64> {
        let picks: [&dyn Fn(&Held) -> bool; 3] = [
            &|h| h.actor == actor && h.mode == mode,
            &|h| h.permits == permits && h.mode == mode,
            &|h| h.mode == mode,
        ];
        for pick in picks {
            if let Some(i) = self.pending.iter().position(|(held, _)| pick(held)) {
                return Some(self.pending.remove(i).1);
            }
            if let Some(i) = self.holders.iter().position(pick) {
                self.holders.remove(i);
                return Some(self.next());
            }
        }
        None
    }
}

/// Whether `file`, a tokio lock's creation site, is inside tokio's own source: the lock was
/// made by tokio's `Default` or `From` (`Mutex::default()`), which carry no caller's
/// location, so the site says nothing of the program.
pub(crate) fn made_inside_tokio(file: &str) -> bool {
    crate::paths::dependency_path(file)
        .is_some_and(|path| path.starts_with("tokio-") && path.contains("/src/sync/"))
}

/// The name of a tokio lock of type `concrete` made inside tokio's own source (see
/// [`made_inside_tokio`]) by `owner` (who was running, in words): its type and owner, as
/// the caller's line cannot be found.
pub(crate) fn name_by_owner(concrete: &str, owner: &str) -> String {
    format!("tokio {concrete} made by `default()` or `from()` in {owner}")
}

/// A tokio lock that the Layer records.
#[derive(Debug)]
pub(crate) struct Resource {
    /// The session that defined it.
    pub(crate) generation: u64,
    /// Its id.
    pub(crate) lock: LockId,
    /// Mutex, RwLock or Semaphore.
    pub(crate) kind: LockKind,
    /// Its creation site, the site of acquisitions not made through an async operation
    /// (`try_lock`).
    pub(crate) site: SiteId,
    /// Where it was created, to name the sites of its operations: file, line, column.
    pub(crate) location: (String, u32, u32),
    /// Holders and counter.
    pub(crate) holders: Mutex<Holders>,
}

/// One async lock operation (`Mutex::lock`, `RwLock::read`, `Semaphore::acquire`, ...).
#[derive(Debug)]
pub(crate) struct AsyncOp {
    /// The lock.
    pub(crate) resource: std::sync::Arc<Resource>,
    /// The lock's creation site, named after the operation.
    pub(crate) site: SiteId,
    /// The mode it asks for.
    pub(crate) mode: LockMode,
    /// The permits it asks for (a semaphore's `acquire_many`; 1 otherwise), from tokio's
    /// `permits_requested`.
    pub(crate) permits: std::sync::atomic::AtomicU32,
    /// A request was recorded (a poll returned pending).
    pub(crate) requested: std::sync::atomic::AtomicBool,
    /// The operation completed.
    pub(crate) ready: std::sync::atomic::AtomicBool,
    /// The wait on the watchdog's board, from the request until the operation completes or
    /// is dropped.
    pub(crate) wait: Mutex<Option<crate::waits::Wait>>,
}

/// The mode an async operation of `source` asks for.
pub(crate) fn mode_of(source: &str) -> LockMode {
    if source.starts_with("RwLock::read") {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

/// A tokio timer (`Sleep`): its resource span says where `sleep` was called, which is where
/// a task awaiting it suspends.
#[derive(Debug)]
pub(crate) struct Timer {
    /// Where `sleep` (or `sleep_until`, `interval`, ...) was called: file, line, column.
    location: (String, u32, u32),
    /// That place's site, in the session that defined it: `(generation, site)`.
    site: Mutex<Option<(u64, SiteId)>>,
}

impl Timer {
    /// The timer of a `Sleep` resource span made at `file`, `line`, `col`.
    pub(crate) fn new(file: &str, line: u32, col: u32) -> Timer {
        Timer { location: (file.to_owned(), line, col), site: Mutex::new(None) }
    }

    /// A poll of the timer returned pending: the task being polled suspends at the `.await`
    /// of this `sleep` ([`EventKind::AwaitPending`]).
    pub(crate) fn pending(&self) {
        local::with(|ctx| {
            if ctx.task().is_none() {
                return;
            }
            let generation = ctx.generation();
            let mut cached = session::lock(&self.site);
            let site = match *cached {
                Some((defined_in, site)) if defined_in == generation => site,
                _ => {
                    let (file, line, col) = &self.location;
                    let mut registry = session::lock(&ctx.session().registry);
                    let site = registry.site_by_value(file, *line, *col, Some("sleep"));
                    *cached = Some((generation, site));
                    site
                }
            };
            drop(cached);
            ctx.record(EventKind::AwaitPending { site });
        });
    }
}
