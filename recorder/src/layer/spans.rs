//! tokio's spans as the recorder sees them, for both front-ends (the Layer and the
//! [`Subscriber`](crate::subscriber::Subscriber)): what each span is ([`SpanKind`]), the
//! thread's stack of entered spans, and what creating, entering, exiting and closing a span
//! records.
//!
//! The front-ends differ only in where they keep a span's kind (the Layer in the span's
//! extensions, the Subscriber in flat tables its span ids index) and reach it through
//! [`Spans`]. The stack keeps each entered span's id and [`Class`] — no lookup, no reference
//! count — and the kind itself is looked up only by the events that need it.

use super::fields::SpanFields;
use super::resource::{self, AsyncOp, Resource, Timer};
use crate::format::{LockImplementation, LockKind, TaskId};
use crate::local;
use crate::registry::Entity;
use crate::session;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a span is to the recorder.
#[derive(Debug, Clone)]
pub(crate) enum SpanKind {
    /// A tokio task of the session `generation`. `adopted`: spawned by `task::spawn`, which
    /// records it (and retires it) itself. `container`: a `block_on` future or a blocking-pool
    /// launch, inside which other tasks are polled (a `LocalSet`'s, a worker thread's).
    Task { task: TaskId, adopted: bool, container: bool, generation: u64 },
    /// A tokio lock the recorder records.
    Resource(Arc<Resource>),
    /// The internal semaphore of a recorded tokio `Semaphore`.
    InternalSemaphore(Arc<Resource>),
    /// A tokio timer (`Sleep`) that says where it was made.
    Timer(Arc<Timer>),
    /// Any other resource (other timers, internal semaphores, locks inside wrappers).
    OtherResource,
    /// An async operation on a recorded lock.
    AsyncOp(Arc<AsyncOp>),
    /// An async operation on the internal semaphore of a recorded `Semaphore`.
    InternalAsyncOp(Arc<Resource>),
    /// Any other async operation.
    OtherAsyncOp,
    /// The poll span of an async operation.
    AsyncOpPoll,
}

/// A [`SpanKind`] without its shared state: what the stack keeps of an entered span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// [`SpanKind::Task`] (all but the generation).
    Task { task: TaskId, adopted: bool, container: bool },
    /// [`SpanKind::Resource`].
    Resource,
    /// [`SpanKind::InternalSemaphore`].
    InternalSemaphore,
    /// [`SpanKind::Timer`].
    Timer,
    /// [`SpanKind::OtherResource`].
    OtherResource,
    /// [`SpanKind::AsyncOp`].
    AsyncOp,
    /// [`SpanKind::InternalAsyncOp`].
    InternalAsyncOp,
    /// [`SpanKind::OtherAsyncOp`].
    OtherAsyncOp,
    /// [`SpanKind::AsyncOpPoll`].
    AsyncOpPoll,
}

impl Class {
    /// A resource's span.
    pub(crate) fn is_resource(self) -> bool {
        matches!(
            self,
            Class::Resource | Class::InternalSemaphore | Class::Timer | Class::OtherResource
        )
    }

    /// An async operation's span.
    pub(crate) fn is_async_op(self) -> bool {
        matches!(self, Class::AsyncOp | Class::InternalAsyncOp | Class::OtherAsyncOp)
    }
}

impl SpanKind {
    /// Its class.
    pub(crate) fn class(&self) -> Class {
        match *self {
            SpanKind::Task { task, adopted, container, .. } => {
                Class::Task { task, adopted, container }
            }
            SpanKind::Resource(_) => Class::Resource,
            SpanKind::InternalSemaphore(_) => Class::InternalSemaphore,
            SpanKind::Timer(_) => Class::Timer,
            SpanKind::OtherResource => Class::OtherResource,
            SpanKind::AsyncOp(_) => Class::AsyncOp,
            SpanKind::InternalAsyncOp(_) => Class::InternalAsyncOp,
            SpanKind::OtherAsyncOp => Class::OtherAsyncOp,
            SpanKind::AsyncOpPoll => Class::AsyncOpPoll,
        }
    }
}

/// Where a front-end keeps its spans' kinds.
pub(crate) trait Spans {
    /// The kind of the live span `id`, if the recorder knows it.
    fn kind(&self, id: u64) -> Option<SpanKind>;

    /// The task of the live span `id`, if it is a task's.
    fn task(&self, id: u64) -> Option<TaskId> {
        match self.kind(id)? {
            SpanKind::Task { task, .. } => Some(task),
            _ => None,
        }
    }
}

/// One entered span of the thread's stack, with the task that was current before it.
#[derive(Debug)]
struct Entered {
    id: u64,
    class: Class,
    previous_task: Option<TaskId>,
    /// A task's span entered by tokio to poll it (see [`entered`]).
    poll: bool,
}

thread_local! {
    static STACK: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// Whether a task's poll is open on this thread, other than a container's (a `block_on`
/// future or a blocking-pool launch, inside which tasks are polled).
fn inside_a_poll(stack: &[Entered]) -> bool {
    stack.iter().any(|e| e.poll && matches!(e.class, Class::Task { container: false, .. }))
}

/// The innermost entered span whose class `pick` accepts: its id and class.
pub(crate) fn innermost(pick: impl Fn(Class) -> bool) -> Option<(u64, Class)> {
    STACK
        .try_with(|stack| {
            let stack = stack.try_borrow().ok()?;
            stack.iter().rev().find(|e| pick(e.class)).map(|e| (e.id, e.class))
        })
        .ok()
        .flatten()
}

/// The classes of the two innermost entered spans.
pub(crate) fn top_two() -> (Option<(u64, Class)>, Option<Class>) {
    STACK
        .try_with(|stack| {
            let Ok(stack) = stack.try_borrow() else { return (None, None) };
            let mut top = stack.iter().rev();
            (top.next().map(|e| (e.id, e.class)), top.next().map(|e| e.class))
        })
        .unwrap_or((None, None))
}

/// The kind of the innermost entered resource span.
pub(crate) fn innermost_resource(spans: &impl Spans) -> Option<SpanKind> {
    match innermost(Class::is_resource)? {
        (_, Class::OtherResource) => Some(SpanKind::OtherResource),
        (id, _) => spans.kind(id),
    }
}

/// Whether a session is recording.
pub(crate) fn recording() -> bool {
    session::active_generation() != 0
}

/// What a new span of `callsite` is, read from its fields; records a task's spawn.
pub(crate) fn new_span(
    callsite: super::Callsite,
    attrs: &tracing::span::Attributes<'_>,
    spans: &impl Spans,
) -> Option<SpanKind> {
    use super::Callsite;
    match callsite {
        Callsite::Spawn => with_fields(attrs, new_task),
        Callsite::Resource => with_fields(attrs, |fields| new_resource(fields, spans)),
        Callsite::AsyncOp => new_async_op(attrs, spans),
        Callsite::AsyncOpPoll => Some(SpanKind::AsyncOpPoll),
        _ => None,
    }
}

/// Runs `f` with the fields of `attrs`, read in place (they are large: no moves).
fn with_fields<R>(attrs: &tracing::span::Attributes<'_>, f: impl FnOnce(&SpanFields) -> R) -> R {
    let mut fields = SpanFields::default();
    attrs.record(&mut fields);
    f(&fields)
}

fn new_task(fields: &SpanFields) -> Option<SpanKind> {
    if let Some(task) = local::take_adopt() {
        return Some(SpanKind::Task { task, adopted: true, container: false, generation: 0 });
    }
    local::with(|ctx| {
        let mut registry = session::lock(&ctx.session().registry);
        let site = fields.file.as_ref().map(|file| {
            registry.site_by_value(
                file.as_str(),
                fields.line.unwrap_or(0),
                fields.col.unwrap_or(0),
                None,
            )
        });
        let kind = fields.kind.as_ref().map_or("task", |kind| kind.as_str());
        let name = fields.task_name.as_ref().map(|name| name.as_str());
        let task = registry.task(name, kind, site, fields.task_id);
        drop(registry);
        ctx.record(crate::format::EventKind::TaskSpawned { task, site });
        // A blocking-pool thread runs inside its launch's span (tokio's workers too).
        let container = matches!(kind, "block_on" | "blocking");
        SpanKind::Task { task, adopted: false, container, generation: ctx.generation() }
    })
}

fn new_resource(fields: &SpanFields, spans: &impl Spans) -> Option<SpanKind> {
    if fields.is_internal {
        // A semaphore inside a `Semaphore` is created in the scope of the `Semaphore`'s
        // resource span; it is the one that sees permits come back.
        return Some(match innermost_resource(spans) {
            Some(SpanKind::Resource(parent)) if parent.kind == LockKind::Semaphore => {
                SpanKind::InternalSemaphore(parent)
            }
            _ => SpanKind::OtherResource,
        });
    }
    let concrete = fields.concrete_type.as_ref().map_or("", |t| t.as_str());
    if concrete == "Sleep" {
        // Where `sleep` was called is where a task awaiting it suspends.
        return Some(match fields.file.as_ref() {
            Some(file) => SpanKind::Timer(Arc::new(Timer::new(
                file.as_str(),
                fields.line.unwrap_or(0),
                fields.col.unwrap_or(0),
            ))),
            None => SpanKind::OtherResource,
        });
    }
    let kind = match concrete {
        "Mutex" => LockKind::Mutex,
        "RwLock" => LockKind::RwLock,
        "Semaphore" => LockKind::Semaphore,
        _ => return Some(SpanKind::OtherResource),
    };
    if local::is_wrapping() {
        return Some(SpanKind::OtherResource);
    }
    local::with(|ctx| {
        let file = fields.file.as_ref().map_or("", |file| file.as_str()).to_owned();
        let (line, col) = (fields.line.unwrap_or(0), fields.col.unwrap_or(0));
        let mut registry = session::lock(&ctx.session().registry);
        let site = registry.site_by_value(&file, line, col, None);
        let name = resource::made_inside_tokio(&file).then(|| {
            let owner = registry.describe_actor(ctx.task(), ctx.thread());
            resource::name_by_owner(concrete, &owner)
        });
        let lock =
            registry.lock(kind, LockImplementation::Tokio, false, name.as_deref(), Some(site));
        SpanKind::Resource(Arc::new(Resource {
            generation: ctx.session().generation(),
            lock,
            kind,
            site,
            location: (file, line, col),
            holders: Default::default(),
        }))
    })
}

fn new_async_op(attrs: &tracing::span::Attributes<'_>, spans: &impl Spans) -> Option<SpanKind> {
    match innermost_resource(spans) {
        Some(SpanKind::Resource(resource)) => with_fields(attrs, move |fields| {
            let source = fields.source.as_ref().map_or("", |source| source.as_str());
            let known = session::lock(&resource.holders).op_site(source);
            let site = match known {
                Some(site) => site,
                None => local::with(|ctx| {
                    let (file, line, col) = &resource.location;
                    let site = session::lock(&ctx.session().registry).site_by_value(
                        file,
                        *line,
                        *col,
                        Some(source),
                    );
                    session::lock(&resource.holders).set_op_site(source, site);
                    site
                })?,
            };
            Some(SpanKind::AsyncOp(Arc::new(AsyncOp {
                site,
                mode: resource::mode_of(source),
                resource,
                permits: std::sync::atomic::AtomicU32::new(1),
                requested: Default::default(),
                ready: Default::default(),
                wait: Default::default(),
            })))
        }),
        Some(SpanKind::InternalSemaphore(resource)) => Some(SpanKind::InternalAsyncOp(resource)),
        _ => Some(SpanKind::OtherAsyncOp),
    }
}

/// The span `id` of `class` was entered on this thread.
pub(crate) fn entered(id: u64, class: Class) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else { return };
        // tokio enters a task's span to poll it, on a thread where no other task is being
        // polled (but for containers: a worker inside its launch, a `LocalSet`'s tasks
        // inside a `block_on`). Code that propagates spans (`.instrument(Span::current())`,
        // an actor carrying its sender's span) enters a task's span inside some task's
        // poll: that is not a poll of the task.
        let poll = matches!(class, Class::Task { .. }) && !inside_a_poll(&stack);
        let previous_task = match class {
            Class::Task { task, adopted: false, .. } if poll => {
                let previous = local::set_current_task(Some(task));
                local::with(|ctx| ctx.tokio_task_entered(task));
                previous
            }
            _ => None,
        };
        stack.push(Entered { id, class, previous_task, poll });
    });
}

/// The span `id` was exited on this thread.
pub(crate) fn exited(id: u64) {
    let entered = STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            // Spans are almost always exited innermost first.
            if stack.last().is_some_and(|e| e.id == id) {
                return stack.pop();
            }
            let index = stack.iter().rposition(|e| e.id == id)?;
            Some(stack.remove(index))
        })
        .ok()
        .flatten();
    let Some(entered) = entered else { return };
    if let (Class::Task { task, adopted: false, .. }, true) = (entered.class, entered.poll) {
        local::with(|ctx| ctx.tokio_task_exited(task));
        local::set_current_task(entered.previous_task);
    }
}

/// The span of `kind` closed: a task finished, a lock is gone, an operation ended.
pub(crate) fn closed(kind: SpanKind) {
    match kind {
        SpanKind::Task { task, adopted: false, generation, .. } => {
            local::with(|ctx| ctx.tokio_task_closed(task));
            local::retire_entity(generation, Entity::Task(task));
        }
        SpanKind::Resource(resource) => {
            local::retire_entity(resource.generation, Entity::Lock(resource.lock));
        }
        SpanKind::AsyncOp(op) => {
            drop(session::lock(&op.wait).take());
            let abandoned =
                op.requested.load(Ordering::Relaxed) && !op.ready.load(Ordering::Relaxed);
            let resource = &op.resource;
            if abandoned {
                local::with(|ctx| {
                    if resource.generation == ctx.session().generation() {
                        let (lock, mode, site) = (resource.lock, op.mode, op.site);
                        ctx.record(crate::format::EventKind::LockTryFailed { lock, mode, site });
                    }
                });
            }
        }
        _ => {}
    }
}
