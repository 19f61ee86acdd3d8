//! One thread's events read but not yet replayed: the batches they were read in, remapped in
//! place (a lock event holding its lock's sequence slot until it is replayed: see
//! `Trace::remap_events`).
//!
//! A batch is decoded into a vector that then *becomes* part of its thread's queue, and
//! replay takes events straight out of it: no event is copied between being read and being
//! taken out to be replayed. (Replay buffers every event between two watermarks, over a
//! hundred thousand on a busy trace, and copying them in and out of queues was a large part
//! of its cost.) Small batches are copied onto the end of the queue instead, so that a queue
//! of many tiny batches does not hold a large vector for each; emptied batches go back to a
//! [`Pool`] for the next read.

use super::tournament::NO_HEAD;
use crate::prefetch::prefetch;
use hindsight_recorder::format::Event;
use std::collections::VecDeque;

/// How many events ahead of the head [`Queue::advance`] asks the CPU to fetch: the batches
/// were read a whole watermark interval ago, and without this every replayed event waits for
/// memory.
const PREFETCH_DISTANCE: usize = 8;

/// At most this many emptied batches are kept for reuse.
const POOL_LIMIT: usize = 64;

/// Emptied batches, kept with their memory for the next reads.
#[derive(Debug, Default)]
pub(super) struct Pool(Vec<Vec<Event>>);

impl Pool {
    /// A batch with no events.
    pub(super) fn take(&mut self) -> Vec<Event> {
        self.0.pop().unwrap_or_default()
    }

    /// Keeps `batch` for reuse (or frees it, if enough are kept).
    pub(super) fn give(&mut self, mut batch: Vec<Event>) {
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
    front: Vec<Event>,
    /// The position of the head in `front`.
    head: usize,
    /// The batches after `front`, in order.
    later: VecDeque<Vec<Event>>,
    /// The sequence slot whose earlier numbers the head waits for.
    pub(super) blocked_on: Option<u32>,
}

impl Queue {
    /// The head.
    #[inline(always)]
    pub(super) fn head(&self) -> Option<&Event> {
        self.front.get(self.head)
    }

    /// The head, to change.
    #[inline(always)]
    pub(super) fn head_mut(&mut self) -> Option<&mut Event> {
        self.front.get_mut(self.head)
    }

    /// The time of the head, or [`NO_HEAD`].
    #[inline(always)]
    pub(super) fn head_time(&self) -> u64 {
        self.head().map_or(NO_HEAD, |e| e.time_ns)
    }

    /// Whether the queue has no event.
    pub(super) fn is_empty(&self) -> bool {
        self.head >= self.front.len()
    }

    /// Drops the head; returns the new head's time, or [`NO_HEAD`].
    #[inline(always)]
    pub(super) fn advance(&mut self, pool: &mut Pool) -> u64 {
        self.head += 1;
        if let Some(ahead) = self.front.get(self.head + PREFETCH_DISTANCE) {
            prefetch(ahead);
        }
        match self.front.get(self.head) {
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

    /// Adds a batch read from a file (not yet remapped) to the end; returns the events added,
    /// where they now lie, for remapping. A batch full enough to be worth its memory joins
    /// the queue as it is, and `events` is left with an empty vector from the pool; a small
    /// one is copied.
    pub(super) fn push(&mut self, events: &mut Vec<Event>, pool: &mut Pool) -> &mut [Event] {
        if events.len() < events.capacity() / 4 {
            let added = self.extend(events, pool);
            events.clear();
            return added;
        }
        let batch = std::mem::replace(events, pool.take());
        if self.is_empty() {
            pool.give(std::mem::replace(&mut self.front, batch));
            self.head = 0;
        } else {
            self.later.push_back(batch);
        }
        self.tail()
    }

    /// Copies events read from a file (not yet remapped) to the end; returns the copies, for
    /// remapping.
    pub(super) fn extend(&mut self, events: &[Event], pool: &mut Pool) -> &mut [Event] {
        if self.is_empty() {
            self.front.clear();
            self.head = 0;
        }
        let tail = self.tail();
        if tail.capacity() - tail.len() < events.len() && !tail.is_empty() {
            self.later.push_back(pool.take());
        }
        let tail = self.tail();
        let start = tail.len();
        tail.extend_from_slice(events);
        &mut tail[start..]
    }

    /// The batch that new events go to the end of.
    fn tail(&mut self) -> &mut Vec<Event> {
        match self.later.back_mut() {
            Some(last) => last,
            None => &mut self.front,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Pool, Queue};
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
            let added = if rng.is_multiple_of(3) {
                queue.extend(&events, &mut pool)
            } else {
                buffer.clear();
                buffer.reserve(64);
                buffer.extend_from_slice(&events);
                queue.push(&mut buffer, &mut pool)
            };
            // The caller remaps the events added, where they lie.
            assert_eq!(added, &events[..]);
            for _ in 0..(rng >> 40) as usize % 70 {
                let Some(head) = queue.head() else {
                    assert!(expected.is_empty());
                    break;
                };
                assert_eq!(Some(head), expected.front());
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
                queue.later.iter().chain([&queue.front]).map(|b| b.capacity()).sum();
            assert!(capacity <= 8 * expected.len() + 2 * 64, "{capacity} for {}", expected.len());
        }
    }
}
