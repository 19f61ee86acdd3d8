//! The [`Recorder`]'s `tracing` Layer: tokio's own instrumentation, and a convention for
//! user-defined locks.
//!
//! # tokio's instrumentation
//!
//! With `RUSTFLAGS="--cfg tokio_unstable"` and tokio's `tracing` feature, tokio emits what
//! console-subscriber consumes, and the recorder turns it into events:
//!
//! | tokio emits | recorded as |
//! | --- | --- |
//! | `runtime.spawn` span created (`task.id`, `task.name`, `kind`, `loc.*`) | task defined, `TaskSpawned` by the spawning thread/task |
//! | that span entered / exited | `PollStarted` / `PollEnded` (`ready` for the poll right before the future is dropped) |
//! | the last enter, which only drops the future, then the span's close | no poll; `TaskFinished` (`cancelled` if no `Ready` poll came before) |
//! | `tokio::task::waker` event, `op = waker.wake` / `waker.wake_by_ref` | `Wake` of the task |
//! | `runtime.resource` span of a `Mutex`, `RwLock` or `Semaphore` | lock defined (not blocking, creation site) |
//! | `runtime::resource::poll_op` returning pending in a lock's async op | `LockRequested` (once per operation) |
//! | `locked = true`, `write_locked = true`, `current_readers` `add`; a semaphore's async op ready | `LockAcquired` (`via_try` when no async op preceded it: `try_lock`) |
//! | `locked = false`, `write_locked = false`, `current_readers` `sub`; permits given back | `LockReleased` |
//! | a lock's async op dropped after a pending poll, before completing | `LockTryFailed` (an abandoned wait) |
//!
//! Lock events are attributed to the task being polled. tokio's own internal semaphores
//! and the tokio locks inside the recorder's [wrappers](crate::sync::tokio) are not recorded
//! twice. tokio's guards let go before they report it; see `resource` for how the order is
//! kept right. A semaphore's `acquire_many` counts as one hold; `try_acquire` is not seen.
//! When a task's span or a lock's resource span closes, the task or lock is retired: its
//! definition is forgotten once no output needs it (see `registry`).
//!
//! The recorder keeps its own per-thread stack of the spans it cares about (the registry's is
//! private). It never emits tracing events and never touches tokio types in its callbacks.
//!
//! # Two front-ends
//!
//! The same interpretation (`spans`, `events`) runs behind two front-ends:
//!
//! - the [`Subscriber`](crate::subscriber::Subscriber), which [`init`](crate::init) installs:
//!   cheapest, for programs that want only hindsight (no other layer can be added to it);
//! - the Layer, [`Recorder::layer()`](crate::Recorder::layer), with its per-layer
//!   [`RecorderFilter`], to install next to other layers (fmt, console-subscriber).
//!
//! Both tell tracing once per callsite which ones they read, so that the program's own spans
//! and events, tokio's timers and its waker clones and drops are skipped at the macro.
//!
//! # User-defined locks
//!
//! Locks the recorder cannot wrap — a file lock, a database lock, a lock in another process —
//! are recorded from plain `tracing` events of target `hindsight::lock`:
//!
//! ```
//! # fn flock() {}
//! tracing::trace!(target: "hindsight::lock", op = "requested", lock.name = "repo.lock",
//!                 lock.kind = "file");
//! flock(); // take the file lock, blocking
//! tracing::trace!(target: "hindsight::lock", op = "acquired", lock.name = "repo.lock",
//!                 lock.kind = "file", mode = "exclusive");
//! // ... work ...
//! tracing::trace!(target: "hindsight::lock", op = "released", lock.name = "repo.lock");
//! ```
//!
//! (Write `op` first: `tracing`'s macros cannot parse a dotted field name right after
//! `target:`.)
//!
//! Fields: `lock.name` (required: the lock's identity — one name is one lock, also across the
//! processes of a merged analysis), `op` (required: `requested`, `acquired`, `try_acquired`,
//! `try_failed` or `released`), `mode` (`exclusive`, the default, or `shared`), `lock.kind`
//! (free text for people, such as `file` or `database`; the trace records the lock as
//! `Custom`). The site is the event's callsite (file and line). Such locks carry no sequence
//! numbers: their order is their events' times.

mod callsites;
mod convention;
mod events;
mod fields;
mod resource;
pub(crate) mod spans;

pub(crate) use callsites::{
    classify, enabled as callsites_enabled, interest as callsites_interest, Callsite,
};
pub(crate) use events::record as record_event;

use crate::recorder::Recorder;
use spans::{SpanKind, Spans};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The Layer's spans: kinds kept in the registry's extensions.
struct Extensions<'a, S>(&'a Context<'a, S>);

impl<S> Spans for Extensions<'_, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn kind(&self, id: u64) -> Option<SpanKind> {
        let span = self.0.span(&span::Id::from_u64(id))?;
        let extensions = span.extensions();
        extensions.get::<SpanKind>().cloned()
    }
}

/// The per-layer filter of [`Recorder::layer()`]: enables only the callsites the recorder
/// reads, so that tracing skips the others for this layer (and at the macro, when no other
/// layer wants them) without silencing the other layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecorderFilter;

impl<S> Filter<S> for RecorderFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        callsites::enabled(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        callsites::interest(metadata)
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !spans::recording() {
            return;
        }
        let callsite = callsites::classify(attrs.metadata());
        if callsite == Callsite::Unread {
            return;
        }
        let kind = spans::new_span(callsite, attrs, &Extensions(&ctx));
        if let (Some(kind), Some(span)) = (kind, ctx.span(id)) {
            span.extensions_mut().insert(kind);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !spans::recording() {
            return;
        }
        let callsite = callsites::classify(event.metadata());
        if matches!(callsite, Callsite::Unread | Callsite::Spawn) {
            return;
        }
        events::record(callsite, event, &Extensions(&ctx));
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if !spans::recording() {
            return;
        }
        let class =
            ctx.span(id).and_then(|span| span.extensions().get::<SpanKind>().map(SpanKind::class));
        if let Some(class) = class {
            spans::entered(id.into_u64(), class);
        }
    }

    fn on_exit(&self, id: &span::Id, _ctx: Context<'_, S>) {
        spans::exited(id.into_u64());
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if !spans::recording() {
            return;
        }
        if let Some(kind) = Extensions(&ctx).kind(id.into_u64()) {
            spans::closed(kind);
        }
    }
}
