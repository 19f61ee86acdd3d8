//! The flat table of live spans that the [`Subscriber`](super::Subscriber)'s span ids index.
//!
//! Slots are allocated in chunks on first need and never freed while the table lives; a
//! closed span's slot goes on a lock-free free list (a Treiber stack whose head carries a
//! counter against ABA) and is reused with its version bumped, so that a stale id finds
//! nothing. At most [`CAPACITY`] spans are live at once: memory stays bounded, and spans
//! beyond that are not recorded.
//!
//! Everything a hot-path call reads is an atomic: a slot's reference count and version, and
//! a task span's task. The shared state of a resource or an async operation (an `Arc`) is
//! behind the slot's own mutex, taken by the few events that need it and by the span's
//! creation and close; no two threads contend for it but by touching the same span.

use crate::format::TaskId;
use crate::layer::spans::{Class, SpanKind};
use crate::session;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Slots per chunk.
const CHUNK: usize = 4096;
/// Chunks at most.
const CHUNKS: usize = 256;
/// The most live spans the table holds (fits the 20 bits of an id's index).
pub(crate) const CAPACITY: usize = CHUNK * CHUNKS;

/// A slot's place and version, as a span id carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// The slot.
    pub(crate) index: u32,
    /// Its version when the span was created.
    pub(crate) version: u32,
}

const REFS: u64 = u32::MAX as u64;
/// `Slot::task`: the task span's flags above its task id.
const ADOPTED: u64 = 1 << 32;
const CONTAINER: u64 = 1 << 33;

#[derive(Debug, Default)]
struct Slot {
    /// The version (high 32 bits) and the number of references to the span (low 32 bits;
    /// 0 when free).
    state: AtomicU64,
    /// For a task's span: the task id and the `ADOPTED` and `CONTAINER` flags.
    task: AtomicU64,
    /// The next free slot + 1 (0: none), while on the free list.
    next_free: AtomicU32,
    /// The span's kind.
    kind: Mutex<Option<SpanKind>>,
}

/// Live spans.
#[derive(Debug)]
pub(crate) struct Table {
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    /// The free list's head: a counter (high 32 bits) and the first free slot + 1.
    free: AtomicU64,
    /// Slots handed out at least once.
    used: AtomicU32,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            chunks: [const { OnceLock::new() }; CHUNKS],
            free: AtomicU64::new(0),
            used: AtomicU32::new(0),
        }
    }
}

impl Table {
    fn slot(&self, index: u32) -> Option<&Slot> {
        let index = index as usize;
        self.chunks.get(index / CHUNK)?.get()?.get(index % CHUNK)
    }

    fn slot_or_new(&self, index: u32) -> Option<&Slot> {
        let index = index as usize;
        let chunk = self.chunks.get(index / CHUNK)?;
        chunk.get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect()).get(index % CHUNK)
    }

    /// The live slot of `key`.
    fn live(&self, key: Key) -> Option<&Slot> {
        let slot = self.slot(key.index)?;
        let state = slot.state.load(Ordering::Acquire);
        (state >> 32 == u64::from(key.version) && state & REFS != 0).then_some(slot)
    }

    /// Stores a new span of `kind` with one reference; `kind` back when the table is full.
    pub(crate) fn insert(&self, kind: SpanKind) -> Result<Key, SpanKind> {
        let index = match self.pop_free() {
            Some(index) => index,
            None => match self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                ((used as usize) < CAPACITY).then_some(used + 1)
            }) {
                Ok(index) => index,
                Err(_) => return Err(kind),
            },
        };
        let Some(slot) = self.slot_or_new(index) else { return Err(kind) };
        if let SpanKind::Task { task, adopted, container, .. } = kind {
            let flags = if adopted { ADOPTED } else { 0 } | if container { CONTAINER } else { 0 };
            slot.task.store(u64::from(task.0) | flags, Ordering::Relaxed);
        }
        *session::lock(&slot.kind) = Some(kind);
        let version = (slot.state.load(Ordering::Relaxed) >> 32) as u32;
        slot.state.store(u64::from(version) << 32 | 1, Ordering::Release);
        Ok(Key { index, version })
    }

    /// The kind of the live span of `key`.
    pub(crate) fn kind(&self, key: Key) -> Option<SpanKind> {
        session::lock(&self.live(key)?.kind).clone()
    }

    /// The class of the live task span of `key`: atomics only.
    pub(crate) fn task_class(&self, key: Key) -> Option<Class> {
        let word = self.live(key)?.task.load(Ordering::Relaxed);
        Some(Class::Task {
            task: TaskId(word as u32),
            adopted: word & ADOPTED != 0,
            container: word & CONTAINER != 0,
        })
    }

    /// One more reference to the span of `key`.
    pub(crate) fn clone_ref(&self, key: Key) {
        if let Some(slot) = self.live(key) {
            slot.state.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One reference fewer to the span of `key`; returns its kind when that was the last
    /// (the span closed, its slot is free).
    pub(crate) fn release(&self, key: Key) -> Option<SpanKind> {
        let slot = self.slot(key.index)?;
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if state >> 32 != u64::from(key.version) || state & REFS == 0 {
                return None;
            }
            let last = state & REFS == 1;
            let next =
                if last { u64::from(key.version.wrapping_add(1)) << 32 | 1 } else { state - 1 };
            match slot.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if last => break,
                Ok(_) => return None,
                Err(now) => state = now,
            }
        }
        // The slot is ours alone now (one reference under a version no id carries).
        let kind = session::lock(&slot.kind).take();
        slot.state.store(u64::from(key.version.wrapping_add(1)) << 32, Ordering::Release);
        self.push_free(key.index, slot);
        kind
    }

    fn push_free(&self, index: u32, slot: &Slot) {
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            slot.next_free.store(head as u32, Ordering::Relaxed);
            let next = ((head >> 32).wrapping_add(1) << 32) | u64::from(index + 1);
            match self.free.compare_exchange_weak(head, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let first = (head as u32).checked_sub(1)?;
            let next_free = self.slot(first)?.next_free.load(Ordering::Relaxed);
            let next = ((head >> 32).wrapping_add(1) << 32) | u64::from(next_free);
            match self.free.compare_exchange_weak(head, next, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(first),
                Err(now) => head = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_with_a_new_version_and_stale_keys_find_nothing() {
        let table = Table::default();
        let a = table.insert(SpanKind::OtherResource).unwrap();
        table.clone_ref(a);
        assert!(table.release(a).is_none(), "one reference is left");
        assert!(matches!(table.release(a), Some(SpanKind::OtherResource)));
        assert!(table.kind(a).is_none(), "closed");
        assert!(table.release(a).is_none(), "a close too many is ignored");
        let b = table.insert(SpanKind::AsyncOpPoll).unwrap();
        assert_eq!(b.index, a.index);
        assert_ne!(b.version, a.version);
        assert!(table.kind(a).is_none(), "the stale key finds nothing");
        assert!(matches!(table.kind(b), Some(SpanKind::AsyncOpPoll)));
        let task = TaskId(7);
        let c = table
            .insert(SpanKind::Task { task, adopted: false, container: true, generation: 3 })
            .unwrap();
        assert_ne!(c.index, b.index);
        assert_eq!(
            table.task_class(c),
            Some(Class::Task { task, adopted: false, container: true })
        );
    }
}
