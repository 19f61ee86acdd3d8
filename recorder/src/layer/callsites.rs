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

use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::subscriber::Interest;
use tracing::Metadata;

/// What a callsite is to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What `metadata`'s callsite is to the recorder: a few string comparisons.
pub(crate) fn classify(metadata: &Metadata<'_>) -> Callsite {
    // tokio's timers report as resources too; the recorder reads none of them.
    let timer = || metadata.module_path().is_some_and(|m| m.starts_with("tokio::time"));
    if metadata.is_span() {
        let callsite = match metadata.name() {
            "runtime.spawn" => Callsite::Spawn,
            "runtime.resource" => Callsite::Resource,
            "runtime.resource.async_op" => Callsite::AsyncOp,
            "runtime.resource.async_op.poll" => Callsite::AsyncOpPoll,
            _ => return Callsite::Unread,
        };
        return if timer() { Callsite::Unread } else { callsite };
    }
    let callsite = match metadata.target() {
        "runtime::resource::state_update" => Callsite::ResourceState,
        "runtime::resource::async_op::state_update" => Callsite::AsyncOpState,
        "runtime::resource::poll_op" => Callsite::PollOp,
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
    match classify(metadata) {
        Callsite::Unread => Interest::never(),
        Callsite::Waker => Interest::sometimes(),
        _ => Interest::always(),
    }
}

/// Whether the recorder reads a span or event of `metadata` (asked for callsites whose
/// interest is "sometimes": the waker's, or any when another subscriber disagrees).
pub(crate) fn enabled(metadata: &Metadata<'_>) -> bool {
    match classify(metadata) {
        Callsite::Unread => false,
        Callsite::Waker => !is_unread_waker(metadata),
        _ => true,
    }
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
