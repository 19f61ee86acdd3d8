//! One thread's events read but not yet replayed: the batches they were read in, remapped in
//! place.
//!
//! A batch is decoded into a vector that then *becomes* part of its thread's queue, and
//! replay reads events straight out of it: no event is copied between reading and replaying
//! it. (Replay buffers every event between two watermarks, over a hundred thousand on a busy
//! trace, and copying them in and out of queues was a large part of its cost.) Small batches
//! are copied onto the end of the queue instead, so that a queue of many tiny batches does not
//! hold a large vector for each; emptied batches go back to a [`Pool`] for the next read.

use super::tournament::NO_HEAD;
use crate::prefetch::prefetch;
use hindsight_recorder::format::Event;
use std::collections::VecDeque;

/// Marks an event that no lock sequence number orders.
pub(super) const NO_SLOT: u32 = u32::MAX;

/// How many events ahead of the head [`Queue::advance`] asks the CPU to fetch: the batches
/// were read a whole watermark interval ago, and without this every replayed event waits for
/// memory.
const PREFETCH_DISTANCE: usize = 8;

/// At most this many emptied batches are kept for reuse.
const POOL_LIMIT: usize = 64;

/// Events of one thread in program order, each with the sequence slot of the lock number it
/// is ordered by ([`NO_SLOT`] if none).
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The events, remapped.
    pub(super) events: Vec<Event>,
    /// `slots[i]` is the sequence slot of `events[i]`.
    pub(super) slots: Vec<u32>,
}

impl Batch {
    fn clear(&mut self) {
        self.events.clear();
        self.slots.clear();
    }

    /// Whether `n` more events fit without reallocating.
    fn has_room(&self, n: usize) -> bool {
        self.events.capacity() - self.events.len() >= n
    }
}

/// Emptied batches, kept with their memory for the next reads.
#[derive(Debug, Default)]
pub(super) struct Pool(Vec<Batch>);

impl Pool {
    /// A batch with no events.
    pub(super) fn take(&mut self) -> Batch {
        self.0.pop().unwrap_or_default()
    }

    /// Keeps `batch` for reuse (or frees it, if enough are kept).
    pub(super) fn give(&mut self, mut batch: Batch) {
        if self.0.len() < POOL_LIMIT {
            batch.clear();
            self.0.push(batch);
        }
    }
}

/// One thread's queue; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// The batch the head is in. Once it is used up, the next batch takes its place, so that
    /// the head is in `front` whenever the queue has events.
    front: Batch,
    /// The position of the head in `front`.
    head: usize,
    /// The batches after `front`, in order.
    later: VecDeque<Batch>,
    /// The sequence slot whose earlier numbers the head waits for.
    pub(super) blocked_on: Option<u32>,
}

impl Queue {
    /// The head and its sequence slot.
    #[inline(always)]
    pub(super) fn head(&self) -> Option<(&Event, u32)> {
        let event = self.front.events.get(self.head)?;
        let slot = self.front.slots.get(self.head).copied().unwrap_or(NO_SLOT);
        Some((event, slot))
    }

    /// The time of the head, or [`NO_HEAD`].
    #[inline(always)]
    pub(super) fn head_time(&self) -> u64 {
        self.front.events.get(self.head).map_or(NO_HEAD, |e| e.time_ns)
    }

    /// Whether the queue has no event.
    pub(super) fn is_empty(&self) -> bool {
        self.head >= self.front.events.len()
    }

    /// Drops the head; returns the new head's time, or [`NO_HEAD`].
    #[inline(always)]
    pub(super) fn advance(&mut self, pool: &mut Pool) -> u64 {
        self.head += 1;
        if let Some(ahead) = self.front.events.get(self.head + PREFETCH_DISTANCE) {
            prefetch(ahead);
        }
        match self.front.events.get(self.head) {
            Some(next) => next.time_ns,
            None => self.next_batch(pool),
        }
    }

    /// Moves on to the next batch once `front` is used up.
    #[cold]
    #[inline(never)]
    fn next_batch(&mut self, pool: &mut Pool) -> u64 {
        match self.later.pop_front() {
            Some(next) => pool.give(std::mem::replace(&mut self.front, next)),
            None => self.front.clear(),
        }
        self.head = 0;
        self.head_time()
    }

    /// Adds a batch read from a file (not yet remapped) to the end; returns the batch it
    /// joined, whose events after its first `slots.len()` are the new ones, for remapping.
    /// A batch full enough to be worth its memory joins the queue as it is, and `events` is
    /// left with an empty vector from the pool; a small one is copied.
    pub(super) fn push(&mut self, events: &mut Vec<Event>, pool: &mut Pool) -> &mut Batch {
        if events.len() < events.capacity() / 4 {
            let tail = self.extend(events, pool);
            events.clear();
            return tail;
        }
        let mut batch = pool.take();
        std::mem::swap(&mut batch.events, events);
        if self.is_empty() {
            pool.give(std::mem::replace(&mut self.front, batch));
            self.head = 0;
        } else {
            self.later.push_back(batch);
        }
        self.tail()
    }

    /// Copies events read from a file (not yet remapped) to the end; returns the batch they
    /// joined, whose events after its first `slots.len()` are the new ones, for remapping.
    pub(super) fn extend(&mut self, events: &[Event], pool: &mut Pool) -> &mut Batch {
        if self.is_empty() {
            self.front.clear();
            self.head = 0;
        }
        if !self.tail().has_room(events.len()) && !self.tail().events.is_empty() {
            self.later.push_back(pool.take());
        }
        let tail = self.tail();
        tail.events.extend_from_slice(events);
        tail
    }

    /// The batch that new events go to the end of.
    fn tail(&mut self) -> &mut Batch {
        match self.later.back_mut() {
            Some(last) => last,
            None => &mut self.front,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Pool, Queue, NO_SLOT};
    use hindsight_recorder::format::{Event, EventKind, ThreadId};
    use std::collections::VecDeque;

    fn event(time_ns: u64) -> Event {
        Event { time_ns, thread: ThreadId(0), task: None, kind: EventKind::PollStarted }
    }

    /// Whole batches of every fill (some join as they are, some are copied), copied runs and
    /// pops, interleaved: the queue gives the events back in order, as a `VecDeque` does,
    /// and holds memory in proportion to its events.
    #[test]
    fn the_queue_gives_events_back_in_order() {
        let (mut queue, mut pool, mut expected) =
            (Queue::default(), Pool::default(), VecDeque::new());
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next_time = 0;
        let mut buffer = Vec::with_capacity(64);
        for _ in 0..5000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = (rng >> 20) as usize % 64;
            let events: Vec<Event> = (next_time..next_time + n as u64).map(event).collect();
            next_time += n as u64;
            expected.extend(events.iter().copied());
            let batch = if rng.is_multiple_of(3) {
                queue.extend(&events, &mut pool)
            } else {
                buffer.clear();
                buffer.reserve(64);
                buffer.extend_from_slice(&events);
                queue.push(&mut buffer, &mut pool)
            };
            // The caller remaps the new events and gives their slots.
            while batch.slots.len() < batch.events.len() {
                batch.slots.push(NO_SLOT);
            }
            for _ in 0..(rng >> 40) as usize % 70 {
                let Some((head, slot)) = queue.head() else {
                    assert!(expected.is_empty());
                    break;
                };
                assert_eq!((Some(head), slot), (expected.front(), NO_SLOT));
                let next = queue.advance(&mut pool);
                expected.pop_front();
                assert_eq!(next, expected.front().map_or(u64::MAX, |e| e.time_ns));
                assert_eq!(queue.head_time(), next);
            }
            assert_eq!(queue.is_empty(), expected.is_empty());
            // Whole batches joined only at least a quarter full, and a batch of copies is
            // followed by a whole one or is the last: memory stays within a small multiple
            // of the events held.
            let capacity: usize =
                queue.later.iter().chain([&queue.front]).map(|b| b.events.capacity()).sum();
            assert!(capacity <= 8 * expected.len() + 2 * 64, "{capacity} for {}", expected.len());
        }
    }
}
