//! Which callsites the recorder reads, decided once per callsite.
//!
//! Both front-ends — the [`Subscriber`](crate::subscriber::Subscriber) (through
//! `register_callsite`) and the Layer (through its per-layer [`Filter`](super::RecorderFilter))
//! — answer tracing's interest with [`interest`], so that every callsite the recorder does not
//! read (the program's own spans and events, tokio's timers) is skipped at the macro.
//!
//! tokio reports all four waker operations (`clone`, `drop`, `wake`, `wake_by_ref`) from one
//! macro, expanded at four callsites that differ only by line. Only wakes are read; which
//! callsite is which is learned from the first event of each (its `op` field), after which
//! [`enabled`] turns the clone and drop callsites off before their fields are visited.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tracing::subscriber::Interest;
use tracing::Metadata;

/// What a callsite is to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Callsite {
    /// `runtime.spawn`: a tokio task.
    Spawn,
    /// `runtime.resource`: a tokio resource (a lock, a semaphore, ...).
    Resource,
    /// `runtime.resource.async_op`: an operation on a resource.
    AsyncOp,
    /// `runtime.resource.async_op.poll`: a poll of such an operation.
    AsyncOpPoll,
    /// `runtime::resource::state_update`.
    ResourceState,
    /// `runtime::resource::async_op::state_update`.
    AsyncOpState,
    /// `runtime::resource::poll_op`.
    PollOp,
    /// `tokio::task::waker` (or `runtime::waker`).
    Waker,
    /// An event of the [lock convention](super#user-defined-locks).
    Convention,
    /// Anything else: never read.
    Unread,
}

impl Callsite {
    /// Every callsite class, in declaration order (`ALL[c as usize] == c`).
    const ALL: [Callsite; 10] = [
        Callsite::Spawn,
        Callsite::Resource,
        Callsite::AsyncOp,
        Callsite::AsyncOpPoll,
        Callsite::ResourceState,
        Callsite::AsyncOpState,
        Callsite::PollOp,
        Callsite::Waker,
        Callsite::Convention,
        Callsite::Unread,
    ];
}

/// Slots of the classification cache.
const CACHE_SLOTS: usize = 256;

/// Classes of recently seen callsites, direct-mapped by metadata address: the address
/// (shifted left by 8 bits; user-space addresses fit) and the class in the low byte.
static CACHE: [AtomicU64; CACHE_SLOTS] = [const { AtomicU64::new(0) }; CACHE_SLOTS];

/// What the callsite of `metadata` (a callsite's own, static) is to the recorder: classified
/// once, then one load from a direct-mapped cache.
#[inline]
pub(crate) fn classify(metadata: &'static Metadata<'static>) -> Callsite {
    let address = address(metadata) as u64;
    let slot = &CACHE[(address as usize >> 4) % CACHE_SLOTS];
    let cached = slot.load(Ordering::Relaxed);
    if cached != 0 && cached >> 8 == address & (u64::MAX >> 8) {
        if let Some(callsite) = Callsite::ALL.get(cached as u8 as usize) {
            return *callsite;
        }
    }
    let callsite = classify_uncached(metadata);
    slot.store(address << 8 | callsite as u64, Ordering::Relaxed);
    callsite
}

/// What `metadata`'s callsite is to the recorder: a few string comparisons.
fn classify_uncached(metadata: &Metadata<'_>) -> Callsite {
    // tokio's timers report as resources too; the recorder reads only a timer's resource
    // span (where `sleep` was called) and its polls (a pending one is the `.await` a task
    // suspends at), none of its async ops or state updates.
    let timer = || metadata.module_path().is_some_and(|m| m.starts_with("tokio::time"));
    if metadata.is_span() {
        let callsite = match metadata.name() {
            "runtime.spawn" => Callsite::Spawn,
            "runtime.resource" => return Callsite::Resource,
            "runtime.resource.async_op" => Callsite::AsyncOp,
            "runtime.resource.async_op.poll" => Callsite::AsyncOpPoll,
            _ => return Callsite::Unread,
        };
        return if timer() { Callsite::Unread } else { callsite };
    }
    let callsite = match metadata.target() {
        "runtime::resource::state_update" => Callsite::ResourceState,
        "runtime::resource::async_op::state_update" => Callsite::AsyncOpState,
        "runtime::resource::poll_op" => return Callsite::PollOp,
        "tokio::task::waker" | "runtime::waker" => return Callsite::Waker,
        super::convention::TARGET => return Callsite::Convention,
        _ => return Callsite::Unread,
    };
    if timer() {
        Callsite::Unread
    } else {
        callsite
    }
}

/// tracing's interest in `metadata`'s callsite: never for what the recorder does not read,
/// sometimes for waker events (see [`enabled`]), always for the rest.
pub(crate) fn interest(metadata: &'static Metadata<'static>) -> Interest {
    match classify_uncached(metadata) {
        Callsite::Unread => Interest::never(),
        Callsite::Waker => Interest::sometimes(),
        _ => Interest::always(),
    }
}

/// Whether the recorder reads a span or event of `metadata` (asked for callsites whose
/// interest is "sometimes": the waker's, or any when another subscriber disagrees).
pub(crate) fn enabled(metadata: &Metadata<'_>) -> bool {
    // A learned clone or drop callsite first: four loads, where classifying compares strings
    // (only waker callsites are ever learned, so an address match is one).
    if is_unread_waker(metadata) {
        return false;
    }
    // Not cached: metadata asked about here need not be a callsite's own.
    classify_uncached(metadata) != Callsite::Unread
}

/// The waker callsites learned not to be wakes (clones and drops), by metadata address.
static UNREAD_WAKERS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn address(metadata: &Metadata<'_>) -> usize {
    metadata as *const Metadata<'_> as usize
}

/// Whether `metadata` is a waker callsite learned to be a clone or a drop.
fn is_unread_waker(metadata: &Metadata<'_>) -> bool {
    let address = address(metadata);
    UNREAD_WAKERS.iter().any(|slot| slot.load(Ordering::Relaxed) == address)
}

/// Remembers that the waker callsite of `metadata` reports no wakes (at most four such
/// callsites are remembered; the rest are read and ignored, as before).
pub(crate) fn unread_waker(metadata: &Metadata<'_>) {
    let address = address(metadata);
    for slot in &UNREAD_WAKERS {
        match slot.compare_exchange(0, address, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(taken) if taken == address => return,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_index() {
        for (index, callsite) in Callsite::ALL.iter().enumerate() {
            assert_eq!(*callsite as usize, index);
        }
    }
}
