//! The wait board: the lock waits going on right now, published for the watchdog.
//!
//! A thread or task that starts waiting for a lock (the contended path only: an uncontended
//! acquisition never comes here) claims a slot of a fixed, process-wide board and writes
//! *since when*, *which lock* and *who* into it; when the wait ends — the lock acquired, the
//! attempt abandoned — it frees the slot. The watchdog thread reads the board a few times a
//! second and sees every wait older than its threshold, including those of threads that are
//! blocked for good and can never report anything themselves.
//!
//! A slot is a tiny seqlock: `since` is 0 when free and [`FILLING`] while its owner writes the
//! other fields; a reader that sees the same `since` before and after reading them has a
//! consistent copy. When the board is full, new waits are not watched (the oldest ones, the
//! most interesting, keep their slots).

use crate::format::{LockId, LockMode, TaskId, ThreadId};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Slots on the board.
const SLOTS: usize = 1024;
/// Slots a claim looks at before giving up.
const PROBES: usize = 64;
/// `since` of a slot whose owner is still writing it.
const FILLING: u64 = 1;

/// One published wait.
struct Slot {
    /// Raw clock ticks when the wait began; 0: free; [`FILLING`]: being written.
    since: AtomicU64,
    /// `generation << 33 | shared << 32 | lock`.
    lock: AtomicU64,
    /// `(task + 1) << 32 | thread`, task 0 meaning none.
    actor: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the board
const FREE: Slot =
    Slot { since: AtomicU64::new(0), lock: AtomicU64::new(0), actor: AtomicU64::new(0) };

static BOARD: [Slot; SLOTS] = [FREE; SLOTS];

/// A wait in progress, as the watchdog reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// The board slot (a wait's identity together with `since`).
    pub(crate) slot: usize,
    /// Raw ticks when it began.
    pub(crate) since: u64,
    /// The lock waited for.
    pub(crate) lock: LockId,
    /// The mode asked for.
    pub(crate) mode: LockMode,
    /// The thread that asked.
    pub(crate) thread: ThreadId,
    /// The task that asked, if a task did.
    pub(crate) task: Option<TaskId>,
}

/// A claimed slot; dropping it ends the wait.
#[derive(Debug)]
#[must_use = "the wait ends when this is dropped"]
pub(crate) struct Wait {
    slot: u32,
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(slot) = BOARD.get(self.slot as usize) {
            slot.since.store(0, Ordering::Release);
        }
    }
}

fn generation_bits(generation: u64) -> u64 {
    generation & ((1 << 31) - 1)
}

/// Publishes a wait of `thread` (in `task`) for `lock` that began at `since` (raw ticks), in
/// the session of `generation`. `None` if the board has no free slot nearby.
pub(crate) fn begin(
    generation: u64,
    since: u64,
    lock: LockId,
    mode: LockMode,
    thread: ThreadId,
    task: Option<TaskId>,
) -> Option<Wait> {
    let start = (thread.0 as usize).wrapping_mul(61) ^ task.map_or(0, |t| t.0 as usize * 17);
    for probe in 0..PROBES {
        let index = (start + probe) % SLOTS;
        let slot = &BOARD[index];
        if slot.since.load(Ordering::Relaxed) != 0
            || slot
                .since
                .compare_exchange(0, FILLING, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        // The fields must not become visible before the slot reads as being written.
        fence(Ordering::Release);
        let shared = u64::from(mode == LockMode::Shared);
        slot.lock.store(
            generation_bits(generation) << 33 | shared << 32 | lock.0 as u64,
            Ordering::Relaxed,
        );
        let task = task.map_or(0, |t| t.0 as u64 + 1);
        slot.actor.store(task << 32 | thread.0 as u64, Ordering::Relaxed);
        slot.since.store(since.max(FILLING + 1), Ordering::Release);
        return Some(Wait { slot: index as u32 });
    }
    None
}

/// Every wait of the session of `generation` going on now, in board order.
pub(crate) fn current(generation: u64) -> Vec<Waiting> {
    let mut waits = Vec::new();
    for (index, slot) in BOARD.iter().enumerate() {
        let since = slot.since.load(Ordering::Acquire);
        if since <= FILLING {
            continue;
        }
        let lock = slot.lock.load(Ordering::Relaxed);
        let actor = slot.actor.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.since.load(Ordering::Relaxed) != since || lock >> 33 != generation_bits(generation)
        {
            continue;
        }
        let task = (actor >> 32) as u32;
        waits.push(Waiting {
            slot: index,
            since,
            lock: LockId(lock as u32),
            mode: if lock >> 32 & 1 == 1 { LockMode::Shared } else { LockMode::Exclusive },
            thread: ThreadId(actor as u32),
            task: task.checked_sub(1).map(TaskId),
        });
    }
    waits
}

/// Whether the wait `(slot, since)` is still going on.
pub(crate) fn still_waiting(slot: usize, since: u64) -> bool {
    BOARD.get(slot).is_some_and(|s| s.since.load(Ordering::Acquire) == since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_visible_until_it_ends_and_only_to_its_session() {
        let generation = (1 << 31) - 3; // not a generation any other test uses
        let wait =
            begin(generation, 1000, LockId(3), LockMode::Shared, ThreadId(5), Some(TaskId(0)))
                .expect("a free slot");
        let seen = current(generation);
        assert_eq!(seen.len(), 1);
        let w = seen[0];
        assert_eq!((w.since, w.lock, w.mode), (1000, LockId(3), LockMode::Shared));
        assert_eq!((w.thread, w.task), (ThreadId(5), Some(TaskId(0))));
        assert!(still_waiting(w.slot, w.since));
        assert!(current(generation + 1).iter().all(|other| other.since != 1000));
        drop(wait);
        assert!(current(generation).is_empty());
        assert!(!still_waiting(w.slot, w.since));
    }
}
