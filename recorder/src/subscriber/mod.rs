//! [`Subscriber`]: the recorder as a `tracing` subscriber of its own, the cheapest way to
//! record tokio's instrumentation (what [`init`](crate::init) installs).
//!
//! It reads what the [Layer](crate::layer) reads and records the same events, through the
//! same code, but keeps no registry: a span id carries what the span is in its top four bits
//! (all there is to know of most spans) and, for spans with state (tasks, recorded locks and
//! their operations), an index into a flat, bounded table and the slot's version. Entering or exiting a span
//! touches only the thread's stack (and, for a task, two atomics); no allocation, lock or
//! map lookup. Callsites the recorder does not read get `Interest::never`: tracing skips them
//! at the macro.
//!
//! The program's own spans and events are not seen by anyone while it is the global
//! subscriber: to see them too (with fmt, console-subscriber, ...), install
//! [`Recorder::layer()`](crate::Recorder::layer) in a `Registry` with the other layers
//! instead.

mod table;

use crate::format::TaskId;
use crate::layer::spans::{self, Class, SpanKind, Spans};
use crate::layer::{self, Callsite};
use table::{Key, Table};
use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};

/// The top four bits of a span id: its class (see the module docs).
mod tag {
    pub(super) const TASK: u64 = 1;
    pub(super) const RESOURCE: u64 = 2;
    pub(super) const INTERNAL_SEMAPHORE: u64 = 3;
    pub(super) const OTHER_RESOURCE: u64 = 4;
    pub(super) const ASYNC_OP: u64 = 5;
    pub(super) const INTERNAL_ASYNC_OP: u64 = 6;
    pub(super) const OTHER_ASYNC_OP: u64 = 7;
    pub(super) const ASYNC_OP_POLL: u64 = 8;
    /// A span the recorder does not record (created while nothing records).
    pub(super) const IGNORED: u64 = 9;
    pub(super) const TIMER: u64 = 10;
}

const TAG_SHIFT: u32 = 60;
const VERSION_SHIFT: u32 = 20;
const INDEX_MASK: u64 = (1 << VERSION_SHIFT) - 1;

fn tag_of(id: u64) -> u64 {
    id >> TAG_SHIFT
}

fn key_of(id: u64) -> Key {
    Key { index: (id & INDEX_MASK) as u32, version: (id >> VERSION_SHIFT) as u32 }
}

fn id_of(tag: u64, key: Key) -> span::Id {
    let id = tag << TAG_SHIFT
        | u64::from(key.version) << VERSION_SHIFT
        | u64::from(key.index) & INDEX_MASK;
    span::Id::from_u64(id)
}

/// Whether spans with this tag live in the table.
fn in_table(tag: u64) -> bool {
    matches!(
        tag,
        tag::TASK
            | tag::RESOURCE
            | tag::INTERNAL_SEMAPHORE
            | tag::TIMER
            | tag::ASYNC_OP
            | tag::INTERNAL_ASYNC_OP
    )
}

/// The recorder as a `tracing` subscriber: records into whichever recording is active (one
/// started by [`RecorderBuilder::build`](crate::RecorderBuilder::build) or
/// [`init`](crate::init)) and does nothing while none is. See the [module docs](self).
///
/// ```no_run
/// let (_, guard) = hindsight_recorder::Recorder::builder().path("run.trace").build()?;
/// tracing::subscriber::set_global_default(hindsight_recorder::Recorder::subscriber())
///     .expect("no other global subscriber");
/// // ... run the program; the trace is complete when `guard` is dropped.
/// # Ok::<(), hindsight_recorder::RecorderError>(())
/// ```
#[derive(Debug, Default)]
pub struct Subscriber {
    table: Table,
}

impl Subscriber {
    /// A subscriber; the same as [`Recorder::subscriber`](crate::Recorder::subscriber).
    pub fn new() -> Subscriber {
        Subscriber::default()
    }

    /// The id of a new span of `kind`.
    fn id_for(&self, kind: SpanKind) -> span::Id {
        let tag = match kind.class() {
            Class::Task { .. } => tag::TASK,
            Class::Resource => tag::RESOURCE,
            Class::InternalSemaphore => tag::INTERNAL_SEMAPHORE,
            Class::Timer => tag::TIMER,
            Class::AsyncOp => tag::ASYNC_OP,
            Class::InternalAsyncOp => tag::INTERNAL_ASYNC_OP,
            Class::OtherResource => return id_of(tag::OTHER_RESOURCE, Key::NONE),
            Class::OtherAsyncOp => return id_of(tag::OTHER_ASYNC_OP, Key::NONE),
            Class::AsyncOpPoll => return id_of(tag::ASYNC_OP_POLL, Key::NONE),
        };
        match self.table.insert(kind) {
            Ok(key) => id_of(tag, key),
            // Full: the span is not followed (the bound on memory comes first), and what its
            // creation defined is closed at once, so that it does not stay defined for ever.
            Err(kind) => {
                if spans::recording() {
                    spans::closed(kind);
                }
                id_of(tag::IGNORED, Key::NONE)
            }
        }
    }

    /// The class of the span `id`, if it is recorded.
    fn class(&self, id: u64) -> Option<Class> {
        Some(match tag_of(id) {
            tag::TASK => return self.table.task_class(key_of(id)),
            tag::RESOURCE => Class::Resource,
            tag::INTERNAL_SEMAPHORE => Class::InternalSemaphore,
            tag::TIMER => Class::Timer,
            tag::OTHER_RESOURCE => Class::OtherResource,
            tag::ASYNC_OP => Class::AsyncOp,
            tag::INTERNAL_ASYNC_OP => Class::InternalAsyncOp,
            tag::OTHER_ASYNC_OP => Class::OtherAsyncOp,
            tag::ASYNC_OP_POLL => Class::AsyncOpPoll,
            _ => return None,
        })
    }
}

impl Key {
    /// The key of spans outside the table.
    const NONE: Key = Key { index: 0, version: 0 };
}

impl Spans for Subscriber {
    fn kind(&self, id: u64) -> Option<SpanKind> {
        if !in_table(tag_of(id)) {
            return None;
        }
        self.table.kind(key_of(id))
    }

    fn task(&self, id: u64) -> Option<TaskId> {
        if tag_of(id) != tag::TASK {
            return None;
        }
        match self.table.task_class(key_of(id))? {
            Class::Task { task, .. } => Some(task),
            _ => None,
        }
    }
}

impl tracing::Subscriber for Subscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        layer::callsites_interest(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        layer::callsites_enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, attrs: &span::Attributes<'_>) -> span::Id {
        if !spans::recording() {
            return id_of(tag::IGNORED, Key::NONE);
        }
        let callsite = layer::classify(attrs.metadata());
        match spans::new_span(callsite, attrs, self) {
            Some(kind) => self.id_for(kind),
            None => id_of(tag::IGNORED, Key::NONE),
        }
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        if !spans::recording() {
            return;
        }
        let callsite = layer::classify(event.metadata());
        if matches!(callsite, Callsite::Unread | Callsite::Spawn) {
            return;
        }
        layer::record_event(callsite, event, self);
    }

    fn enter(&self, id: &span::Id) {
        if !spans::recording() {
            return;
        }
        let id = id.into_u64();
        if let Some(class) = self.class(id) {
            spans::entered(id, class);
        }
    }

    fn exit(&self, id: &span::Id) {
        spans::exited(id.into_u64());
    }

    fn clone_span(&self, id: &span::Id) -> span::Id {
        let raw = id.into_u64();
        if in_table(tag_of(raw)) {
            self.table.clone_ref(key_of(raw));
        }
        id.clone()
    }

    fn try_close(&self, id: span::Id) -> bool {
        let id = id.into_u64();
        if !in_table(tag_of(id)) {
            return false;
        }
        match self.table.release(key_of(id)) {
            Some(kind) => {
                if spans::recording() {
                    spans::closed(kind);
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_class_and_key() {
        let key = Key { index: table::CAPACITY as u32 - 1, version: u32::MAX };
        let id = id_of(tag::ASYNC_OP, key).into_u64();
        assert_eq!(tag_of(id), tag::ASYNC_OP);
        assert_eq!(key_of(id), key);
        assert_eq!(
            Subscriber::new().class(id_of(tag::ASYNC_OP_POLL, Key::NONE).into_u64()),
            Some(Class::AsyncOpPoll)
        );
        assert_eq!(Subscriber::new().class(id_of(tag::IGNORED, Key::NONE).into_u64()), None);
    }
}
