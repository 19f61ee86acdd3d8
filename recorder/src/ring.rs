//! The per-thread event buffer: a fixed-size single-producer single-consumer ring.
//!
//! Each recording thread owns the producer side of one ring ([`Producer`]); the writer thread
//! is the only consumer. A push is a copy into a preallocated slot and one release store: no
//! allocation, no lock, no system call. The writer reaches every ring through the session's
//! list, so the events of a thread that is blocked forever still get written.
//!
//! # Held events
//!
//! Some events can only be told apart by what happens next (tokio enters a task's span both
//! to poll the task and to drop its future). The producer may therefore *hold* a short run of
//! events: written into the slots after the published tail but not yet published. It later
//! either patches and publishes them itself, or — if the thread stays quiet for too long,
//! say because it is blocked — the writer *claims* them and publishes them as they stand.
//! One atomic word arbitrates between the two:
//!
//! ```text
//!   state     NONE ──producer holds──▶ OPEN(n) ──producer takes back──▶ NONE
//!                                        │
//!                                        └──writer claims──▶ CLAIMED(n) ──writer done──▶ NONE
//! ```
//!
//! While events are held the producer never moves the tail; while the writer has claimed them
//! it moves the tail past them itself, and the producer waits (briefly) for it to finish.

use crate::format::{EventKind, TaskId};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// An event as the hot path stores it: raw clock ticks, the task being polled, what happened.
/// The writer adds the thread (one per ring) and converts the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEvent {
    /// Raw clock ticks (see [`crate::clock`]).
    pub(crate) ticks: u64,
    /// The task being polled, if any.
    pub(crate) task: Option<TaskId>,
    /// What happened. [`RawEvent::NOTHING`] marks a slot the writer skips.
    pub(crate) kind: EventKind,
}

impl RawEvent {
    /// The kind of a slot whose event was withdrawn: a gap of zero events, never written.
    pub(crate) const NOTHING: EventKind = EventKind::Gap { dropped: 0 };
}

/// Keeps the producer's and the consumer's counters on separate cache lines.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Padded<T>(T);

const OPEN: u64 = 1 << 62;
const CLAIMED: u64 = 2 << 62;
const STATE_MASK: u64 = 3 << 62;
const COUNT_MASK: u64 = u32::MAX as u64;

/// The shared part of a ring.
pub(crate) struct Ring {
    slots: Box<[UnsafeCell<RawEvent>]>,
    mask: usize,
    /// The next slot the consumer reads.
    head: Padded<AtomicUsize>,
    /// One past the last published slot.
    tail: Padded<AtomicUsize>,
    /// The held-events state word (see the module docs).
    held: Padded<AtomicU64>,
    /// Ticks of the newest change to the held events, so the writer claims only stale ones.
    held_since: AtomicU64,
    /// Ticks of the oldest held event, for the writer's watermark.
    held_first: AtomicU64,
    /// Events dropped because the ring was full and not yet reported as a gap.
    pending_gap: AtomicU64,
    /// The producer thread has ended; once empty the ring can be forgotten.
    closed: AtomicBool,
}

// SAFETY: slots are written only by the single producer in the region it owns (after the
// published tail, and held slots only while it owns them) and read only by the single consumer
// in the region published to it; the atomics above order those accesses.
unsafe impl Sync for Ring {}
// SAFETY: see `Sync`; `RawEvent` is plain data.
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.slots.len())
            .field("head", &self.head.0.load(Ordering::Relaxed))
            .field("tail", &self.tail.0.load(Ordering::Relaxed))
            .finish()
    }
}

impl Ring {
    /// A ring of at least `capacity` slots (rounded up to a power of two, at least 64).
    pub(crate) fn new(capacity: usize) -> Ring {
        let capacity = capacity.clamp(64, 1 << 28).next_power_of_two();
        let empty = RawEvent { ticks: 0, task: None, kind: RawEvent::NOTHING };
        let slots = (0..capacity).map(|_| UnsafeCell::new(empty)).collect();
        Ring {
            slots,
            mask: capacity - 1,
            head: Padded::default(),
            tail: Padded::default(),
            held: Padded::default(),
            held_since: AtomicU64::new(0),
            held_first: AtomicU64::new(0),
            pending_gap: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Slots in the ring.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Marks the producer as gone.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The producer is gone and nothing is left to read.
    pub(crate) fn is_finished(&self) -> bool {
        self.closed.load(Ordering::Acquire)
            && self.held.0.load(Ordering::Acquire) == 0
            && self.head.0.load(Ordering::Relaxed) == self.tail.0.load(Ordering::Acquire)
    }

    /// Ticks of the oldest held event, if events are held.
    pub(crate) fn oldest_held(&self) -> Option<u64> {
        if self.held.0.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.held_first.load(Ordering::Relaxed))
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut RawEvent {
        debug_assert_eq!(self.mask + 1, self.slots.len(), "the mask fits the slots; a bug");
        // SAFETY: `mask` is `slots.len() - 1` for a power-of-two length (see `new`), so the
        // masked index is in bounds.
        unsafe { self.slots.get_unchecked(index & self.mask) }.get()
    }

    /// Consumer side: appends every published event to `out`, and also the held ones if
    /// `claim(held_since)` says they are stale. Returns how many events were dropped since the
    /// last call (the caller writes them as a gap after the drained events).
    pub(crate) fn drain(&self, out: &mut Vec<RawEvent>, claim: impl Fn(u64) -> bool) -> u64 {
        let mut head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        self.copy_out(head, tail, out);
        head = tail;
        let state = self.held.0.load(Ordering::Acquire);
        if state & STATE_MASK == OPEN && claim(self.held_since.load(Ordering::Relaxed)) {
            let claimed = (state & !STATE_MASK) | CLAIMED;
            if self
                .held
                .0
                .compare_exchange(state, claimed, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // The producer published more before it held these; read those first.
                let tail = self.tail.0.load(Ordering::Acquire);
                self.copy_out(head, tail, out);
                let end = tail + (state & COUNT_MASK) as usize;
                self.copy_out(tail, end, out);
                head = end;
                self.tail.0.store(end, Ordering::Release);
                self.head.0.store(head, Ordering::Release);
                self.held.0.store(0, Ordering::Release);
                return self.pending_gap.swap(0, Ordering::AcqRel);
            }
        }
        self.head.0.store(head, Ordering::Release);
        self.pending_gap.swap(0, Ordering::AcqRel)
    }

    fn copy_out(&self, from: usize, to: usize, out: &mut Vec<RawEvent>) {
        for index in from..to {
            // SAFETY: slots in [head, tail) (or a claimed held run) belong to the consumer.
            out.push(unsafe { *self.slot(index) });
        }
    }
}

/// Why a push did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// No free slot.
    Full,
}

/// What became of a held event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// Appended to the held run.
    Appended,
    /// The writer had claimed (and published) the earlier held run; this event starts a new
    /// run of one.
    AfterClaim,
}

/// The producer side of a ring, owned by its thread.
#[derive(Debug)]
pub(crate) struct Producer {
    ring: std::sync::Arc<Ring>,
    /// The published tail, as this producer last set it.
    tail: usize,
    /// A recent value of the consumer's head (refreshed when the ring looks full).
    cached_head: usize,
    /// Events held after `tail`.
    held: usize,
    /// Events were dropped since the last gap marker.
    gap: bool,
    /// [`half_full`](Self::half_full) said so since the consumer's head was last read.
    said_half_full: bool,
}

impl Producer {
    /// The producer of `ring`, which must have no other producer.
    pub(crate) fn new(ring: std::sync::Arc<Ring>) -> Producer {
        Producer { ring, tail: 0, cached_head: 0, held: 0, gap: false, said_half_full: false }
    }

    /// The ring.
    #[inline]
    pub(crate) fn ring(&self) -> &std::sync::Arc<Ring> {
        &self.ring
    }

    /// Whether the ring has become half full (held events included, as last known): `true`
    /// once per filling, the moment to wake the consumer. Both publishing and holding fill
    /// it (a busy tokio worker holds most of its events a moment), so both must ask.
    #[inline]
    pub(crate) fn half_full(&mut self) -> bool {
        if self.said_half_full
            || self.tail + self.held - self.cached_head < self.ring.capacity() / 2
        {
            return false;
        }
        self.said_half_full = true;
        true
    }

    /// Events held.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    #[inline]
    fn has_room(&mut self, needed: usize) -> bool {
        let capacity = self.ring.capacity();
        if self.tail + self.held + needed - self.cached_head <= capacity {
            return true;
        }
        self.refresh_head(needed)
    }

    /// [`has_room`](Self::has_room) after learning how far the consumer got.
    #[inline(never)]
    fn refresh_head(&mut self, needed: usize) -> bool {
        self.cached_head = self.ring.head.0.load(Ordering::Acquire);
        self.said_half_full = false;
        self.tail + self.held + needed - self.cached_head <= self.ring.capacity()
    }

    /// Counts an event lost to a full ring.
    pub(crate) fn count_dropped(&mut self) {
        self.ring.pending_gap.fetch_add(1, Ordering::Relaxed);
        self.gap = true;
    }

    /// Writes `event` into the next free slot after the held ones.
    #[inline]
    fn write_slot(&mut self, event: RawEvent) {
        // SAFETY: the slot is after the published tail and after the held run, inside the
        // ring's capacity (checked by `has_room`): only this producer touches it.
        unsafe { *self.ring.slot(self.tail + self.held) = event };
    }

    /// Reports pending drops as a gap before the next event, if there is room for both.
    #[inline]
    fn write_gap(&mut self, ticks: u64, task: Option<TaskId>) -> Result<(), Full> {
        if !self.gap {
            return Ok(());
        }
        self.write_pending_gap(ticks, task)
    }

    #[cold]
    #[inline(never)]
    fn write_pending_gap(&mut self, ticks: u64, task: Option<TaskId>) -> Result<(), Full> {
        if !self.has_room(2) {
            return Err(Full::Full);
        }
        self.gap = false;
        let dropped = self.ring.pending_gap.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            self.write_slot(RawEvent { ticks, task, kind: EventKind::Gap { dropped } });
            self.tail += 1;
        }
        Ok(())
    }

    /// Publishes `event`. There must be no held events.
    #[inline(always)]
    pub(crate) fn push(&mut self, event: RawEvent) -> Result<(), Full> {
        debug_assert_eq!(self.held, 0, "publishing while events are held is a bug");
        self.write_gap(event.ticks, event.task)?;
        if !self.has_room(1) {
            return Err(Full::Full);
        }
        self.write_slot(event);
        self.tail += 1;
        self.ring.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Appends `event` to the held run.
    pub(crate) fn hold(&mut self, event: RawEvent) -> Result<Held, Full> {
        if self.held == 0 {
            self.write_gap(event.ticks, event.task)?;
        }
        if !self.has_room(1) {
            return Err(Full::Full);
        }
        self.write_slot(event);
        if self.held == 0 {
            // The gap (if any) is published with the run; nothing is held yet, so the state
            // word is ours to set.
            self.ring.tail.0.store(self.tail, Ordering::Release);
            self.held = 1;
            self.ring.held_since.store(event.ticks, Ordering::Relaxed);
            self.ring.held_first.store(event.ticks, Ordering::Relaxed);
            self.ring.held.0.store(OPEN | 1, Ordering::Release);
            return Ok(Held::Appended);
        }
        let current = OPEN | self.held as u64;
        let next = OPEN | (self.held as u64 + 1);
        self.ring.held_since.store(event.ticks, Ordering::Relaxed);
        if self
            .ring
            .held
            .0
            .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.held += 1;
            return Ok(Held::Appended);
        }
        // The writer claimed the run; the slot just written is now the first after its tail.
        self.wait_for_claim();
        self.held = 1;
        self.ring.held_since.store(event.ticks, Ordering::Relaxed);
        self.ring.held_first.store(event.ticks, Ordering::Relaxed);
        self.ring.held.0.store(OPEN | 1, Ordering::Release);
        Ok(Held::AfterClaim)
    }

    /// Takes the held run back from the writer's reach. `true`: the run is still held and
    /// may be patched ([`held_mut`](Self::held_mut)) and published; `false`: the writer had
    /// already published it as it stood, and nothing is held any more.
    pub(crate) fn reclaim(&mut self) -> bool {
        if self.held == 0 {
            return false;
        }
        let current = OPEN | self.held as u64;
        if self
            .ring
            .held
            .0
            .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
        self.wait_for_claim();
        false
    }

    /// The `index`th held event, after a successful [`reclaim`](Self::reclaim).
    pub(crate) fn held_mut(&mut self, index: usize) -> Option<&mut RawEvent> {
        if index >= self.held {
            return None;
        }
        // SAFETY: held slots belong to the producer after a successful reclaim (state NONE,
        // not yet published), and `&mut self` makes this the only reference.
        Some(unsafe { &mut *self.ring.slot(self.tail + index) })
    }

    /// Publishes the first `count` held events after a successful reclaim; the rest stay
    /// held.
    pub(crate) fn publish_held(&mut self, count: usize) {
        let count = count.min(self.held);
        self.tail += count;
        self.held -= count;
        self.ring.tail.0.store(self.tail, Ordering::Release);
        if self.held > 0 {
            self.ring.held.0.store(OPEN | self.held as u64, Ordering::Release);
        }
    }

    /// Waits for the writer to finish publishing a claimed run, then takes up its tail.
    fn wait_for_claim(&mut self) {
        let mut spins = 0u32;
        while self.ring.held.0.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.tail = self.ring.tail.0.load(Ordering::Acquire);
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ticks: u64) -> RawEvent {
        RawEvent { ticks, task: None, kind: EventKind::PollStarted }
    }

    #[test]
    fn half_full_is_said_once_per_filling_whether_events_are_published_or_held() {
        let ring = std::sync::Arc::new(Ring::new(64));
        let mut producer = Producer::new(ring.clone());
        // A tokio worker holds its poll's events: they fill the ring as much as published ones.
        for ticks in 0..31 {
            producer.push(event(ticks)).expect("room");
            assert!(!producer.half_full());
        }
        producer.hold(event(31)).expect("room");
        assert!(producer.half_full(), "32 of 64 slots used, the last one held");
        producer.hold(event(32)).expect("room");
        assert!(!producer.half_full(), "said once");
        assert!(producer.reclaim());
        producer.publish_held(2);
        // The consumer drains; the producer learns it when the ring looks full, and says
        // half full again at the next filling.
        let mut out = Vec::new();
        ring.drain(&mut out, |_| false);
        assert_eq!(out.len(), 33);
        for ticks in 33..64 + 33 {
            producer.push(event(ticks)).expect("room");
        }
        assert!(producer.half_full(), "64 published since the drain");
        assert!(!producer.half_full());
    }
}
