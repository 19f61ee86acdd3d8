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
//! The Layer keeps its own per-thread stack of the spans it cares about (the registry's is
//! private), and its own ids (tokio's span ids are reused once a span closes). It never emits
//! tracing events and never touches tokio types in its callbacks.
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

mod convention;
mod fields;
mod resource;

use crate::format::{EventKind, LockImplementation, LockKind, LockMode, TaskId};
use crate::local::{self, Ctx};
use crate::recorder::Recorder;
use crate::registry::Entity;
use crate::session;
use fields::{Change, Fields};
use resource::{Actor, AsyncOp, Resource, Timer};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::span;
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// What a span is to the recorder; kept in the span's extensions.
#[derive(Debug, Clone)]
enum SpanKind {
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

impl SpanKind {
    fn is_resource(&self) -> bool {
        matches!(
            self,
            SpanKind::Resource(_)
                | SpanKind::InternalSemaphore(_)
                | SpanKind::Timer(_)
                | SpanKind::OtherResource
        )
    }

    fn is_async_op(&self) -> bool {
        matches!(self, SpanKind::AsyncOp(_) | SpanKind::InternalAsyncOp(_) | SpanKind::OtherAsyncOp)
    }
}

/// One entered span of the thread's stack, with the task that was current before it.
#[derive(Debug)]
struct Entered {
    id: span::Id,
    kind: SpanKind,
    previous_task: Option<TaskId>,
    /// A task's span entered by tokio to poll it (see [`Recorder::on_enter`]).
    poll: bool,
}

/// Whether a task's poll is open on this thread, other than a container's (a `block_on`
/// future or a blocking-pool launch, inside which tasks are polled).
fn inside_a_poll() -> bool {
    STACK
        .try_with(|stack| {
            let Ok(stack) = stack.try_borrow() else { return false };
            stack
                .iter()
                .any(|e| e.poll && matches!(e.kind, SpanKind::Task { container: false, .. }))
        })
        .unwrap_or(false)
}

thread_local! {
    static STACK: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// The innermost entered span for which `pick` says yes.
fn innermost(pick: impl Fn(&SpanKind) -> bool) -> Option<SpanKind> {
    STACK
        .try_with(|stack| {
            let stack = stack.try_borrow().ok()?;
            stack.iter().rev().find(|e| pick(&e.kind)).map(|e| e.kind.clone())
        })
        .ok()
        .flatten()
}

/// The two innermost entered spans.
fn top_two() -> (Option<SpanKind>, Option<SpanKind>) {
    STACK
        .try_with(|stack| {
            let Ok(stack) = stack.try_borrow() else { return (None, None) };
            let mut top = stack.iter().rev().map(|e| e.kind.clone());
            (top.next(), top.next())
        })
        .unwrap_or((None, None))
}

fn actor(ctx: &Ctx<'_>) -> Actor {
    match ctx.task() {
        Some(task) => Actor::Task(task),
        None => Actor::Thread(ctx.thread()),
    }
}

impl Recorder {
    fn recording(&self) -> bool {
        session::active_generation() != 0
    }

    fn new_task_span(&self, fields: Fields) -> Option<SpanKind> {
        if let Some(task) = local::take_adopt() {
            return Some(SpanKind::Task { task, adopted: true, container: false, generation: 0 });
        }
        local::with(|ctx| {
            let mut registry = session::lock(&ctx.session().registry);
            let site = fields.file.as_deref().map(|file| {
                registry.site_by_value(
                    file,
                    fields.line.unwrap_or(0),
                    fields.col.unwrap_or(0),
                    None,
                )
            });
            let kind = fields.kind.as_deref().unwrap_or("task");
            let task = registry.task(fields.task_name.as_deref(), kind, site, fields.task_id);
            drop(registry);
            ctx.record(EventKind::TaskSpawned { task, site });
            // A blocking-pool thread runs inside its launch's span (tokio's workers too).
            let container = matches!(kind, "block_on" | "blocking");
            SpanKind::Task { task, adopted: false, container, generation: ctx.generation() }
        })
    }

    fn new_resource_span(&self, fields: Fields) -> Option<SpanKind> {
        let concrete = fields.concrete_type.as_deref().unwrap_or("");
        if fields.is_internal {
            // A semaphore inside a `Semaphore` is created in the scope of the `Semaphore`'s
            // resource span; it is the one that sees permits come back.
            return Some(match innermost(SpanKind::is_resource) {
                Some(SpanKind::Resource(parent)) if parent.kind == LockKind::Semaphore => {
                    SpanKind::InternalSemaphore(parent)
                }
                _ => SpanKind::OtherResource,
            });
        }
        if concrete == "Sleep" {
            return Some(
                Timer::new(&fields)
                    .map_or(SpanKind::OtherResource, |timer| SpanKind::Timer(Arc::new(timer))),
            );
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
            let file = fields.file.unwrap_or_default();
            let (line, col) = (fields.line.unwrap_or(0), fields.col.unwrap_or(0));
            let mut registry = session::lock(&ctx.session().registry);
            let site = registry.site_by_value(&file, line, col, None);
            let lock = registry.lock(kind, LockImplementation::Tokio, false, None, Some(site));
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

    fn new_async_op_span(&self, fields: Fields) -> Option<SpanKind> {
        Some(match innermost(SpanKind::is_resource) {
            Some(SpanKind::Resource(resource)) => {
                let source = fields.source.unwrap_or_default();
                let known = session::lock(&resource.holders).op_site(&source);
                let site = match known {
                    Some(site) => site,
                    None => local::with(|ctx| {
                        let (file, line, col) = &resource.location;
                        let site = session::lock(&ctx.session().registry).site_by_value(
                            file,
                            *line,
                            *col,
                            Some(&source),
                        );
                        session::lock(&resource.holders).set_op_site(&source, site);
                        site
                    })?,
                };
                SpanKind::AsyncOp(Arc::new(AsyncOp {
                    resource: resource.clone(),
                    site,
                    mode: resource::mode_of(&source),
                    requested: Default::default(),
                    ready: Default::default(),
                    wait: Default::default(),
                }))
            }
            Some(SpanKind::InternalSemaphore(resource)) => SpanKind::InternalAsyncOp(resource),
            _ => SpanKind::OtherAsyncOp,
        })
    }

    /// A state update of a resource (`runtime::resource::state_update`).
    fn resource_state(&self, fields: &Fields) {
        match innermost(SpanKind::is_resource) {
            Some(SpanKind::Resource(resource)) => {
                let change = match resource.kind {
                    LockKind::Mutex => fields.locked.map(|locked| (locked, LockMode::Exclusive)),
                    LockKind::RwLock => match (fields.write_locked, fields.readers_op) {
                        (Some(locked), _) => Some((locked, LockMode::Exclusive)),
                        (None, Some(Change::Add)) => Some((true, LockMode::Shared)),
                        (None, Some(Change::Sub)) => Some((false, LockMode::Shared)),
                        _ => None,
                    },
                    _ => None,
                };
                match change {
                    Some((true, mode)) => acquired(&resource, mode, None),
                    Some((false, mode)) => released(&resource, mode, 1),
                    None => {}
                }
            }
            Some(SpanKind::InternalSemaphore(resource)) => match fields.permits_op {
                Some(Change::Override) => {
                    let permits = fields.permits.unwrap_or(1) as usize;
                    session::lock(&resource.holders).set_capacity(permits);
                    let permits = u32::try_from(permits).unwrap_or(u32::MAX);
                    local::with(|ctx| {
                        session::lock(&ctx.session().registry)
                            .set_lock_capacity(resource.lock, permits)
                    });
                }
                Some(Change::Add) => {
                    released(&resource, LockMode::Exclusive, fields.permits.unwrap_or(1))
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// A state update of an async op: permits handed to a waiter by whoever released them.
    fn async_op_state(&self, fields: &Fields) {
        if fields.permits_op != Some(Change::Add) {
            return;
        }
        // The waiter's own poll also reports what it obtained, from inside its poll span;
        // a releaser handing permits over reports them with only the op span entered.
        if let (Some(SpanKind::InternalAsyncOp(resource)), below) = top_two() {
            if !matches!(below, Some(SpanKind::AsyncOpPoll)) {
                released(&resource, LockMode::Exclusive, fields.permits_obtained.unwrap_or(1));
            }
        }
    }

    /// A poll of an async op returned (`runtime::resource::poll_op`).
    fn poll_op(&self, fields: &Fields) {
        if let Some(SpanKind::Timer(timer)) = innermost(SpanKind::is_resource) {
            if fields.is_ready == Some(false) {
                timer.pending();
            }
            return;
        }
        let Some(SpanKind::AsyncOp(op)) = innermost(SpanKind::is_async_op) else { return };
        let resource = &op.resource;
        match fields.is_ready {
            Some(false) if !op.requested.swap(true, Ordering::Relaxed) => {
                let wait = local::with(|ctx| {
                    if resource.generation != ctx.session().generation() {
                        return None;
                    }
                    let (lock, mode, site) = (resource.lock, op.mode, op.site);
                    let ticks = crate::clock::ticks();
                    ctx.record_at(ticks, EventKind::LockRequested { lock, mode, site });
                    ctx.begin_wait(ticks, lock, mode)
                });
                *session::lock(&op.wait) = wait.flatten();
            }
            Some(true) => {
                op.ready.store(true, Ordering::Relaxed);
                drop(session::lock(&op.wait).take());
                if resource.kind == LockKind::Semaphore {
                    acquired(resource, LockMode::Exclusive, Some(op.site));
                } else {
                    local::with(|ctx| {
                        let actor = actor(ctx);
                        session::lock(&resource.holders).mark_ready(actor, op.site);
                    });
                }
            }
            _ => {}
        }
    }

    /// A waker event (`tokio::task::waker`).
    fn waker<S>(&self, fields: &Fields, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let by_ref = match fields.op.as_deref() {
            Some("waker.wake") => false,
            Some("waker.wake_by_ref") => true,
            _ => return,
        };
        let Some(span_id) = fields.task_id.filter(|id| *id != 0) else { return };
        let Some(span) = ctx.span(&span::Id::from_u64(span_id)) else { return };
        let Some(SpanKind::Task { task, .. }) = span.extensions().get::<SpanKind>().cloned() else {
            return;
        };
        local::with(|ctx| ctx.record(EventKind::Wake { task, by_ref }));
    }
}

/// `resource` was acquired in `mode` by the current actor; `site` if known already.
fn acquired(resource: &Resource, mode: LockMode, site: Option<crate::format::SiteId>) {
    local::with(|ctx| {
        if resource.generation != ctx.session().generation() {
            return;
        }
        let actor = actor(ctx);
        let (seq, site, via_try) = {
            let mut holders = session::lock(&resource.holders);
            let (site, via_try) = match site.or_else(|| holders.take_ready(actor)) {
                Some(site) => (site, false),
                None => (resource.site, true),
            };
            (holders.acquire(resource.kind, actor, mode), site, via_try)
        };
        let lock = resource.lock;
        ctx.record(EventKind::LockAcquired { lock, mode, site, seq: Some(seq), via_try });
    });
}

/// The current actor released `count` holds of `resource` in `mode`.
fn released(resource: &Resource, mode: LockMode, count: u64) {
    local::with(|ctx| {
        if resource.generation != ctx.session().generation() {
            return;
        }
        let actor = actor(ctx);
        let holds = session::lock(&resource.holders).holds_ended_by(resource.kind, actor, count);
        for _ in 0..holds.min(1024) {
            let Some(seq) = session::lock(&resource.holders).release(actor, mode) else { break };
            let lock = resource.lock;
            ctx.record(EventKind::LockReleased { lock, mode, seq: Some(seq), poisoned: false });
        }
    });
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !self.recording() {
            return;
        }
        let metadata = attrs.metadata();
        let name = metadata.name();
        if !name.starts_with("runtime.") {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let kind = match name {
            "runtime.spawn" => self.new_task_span(fields),
            "runtime.resource" => self.new_resource_span(fields),
            "runtime.resource.async_op" => self.new_async_op_span(fields),
            "runtime.resource.async_op.poll" => Some(SpanKind::AsyncOpPoll),
            _ => None,
        };
        if let (Some(kind), Some(span)) = (kind, ctx.span(id)) {
            span.extensions_mut().insert(kind);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !self.recording() {
            return;
        }
        let metadata = event.metadata();
        let target = metadata.target();
        if !(target.starts_with("runtime::")
            || target.starts_with("tokio::task::waker")
            || target == convention::TARGET)
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        match target {
            "runtime::resource::state_update" => self.resource_state(&fields),
            "runtime::resource::async_op::state_update" => self.async_op_state(&fields),
            "runtime::resource::poll_op" => self.poll_op(&fields),
            "tokio::task::waker" | "runtime::waker" => self.waker(&fields, &ctx),
            convention::TARGET => convention::record(metadata, fields),
            _ => {}
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if !self.recording() {
            return;
        }
        let Some(kind) = ctx.span(id).and_then(|span| span.extensions().get::<SpanKind>().cloned())
        else {
            return;
        };
        // tokio enters a task's span to poll it, on a thread where no other task is being
        // polled (but for containers: a worker inside its launch, a `LocalSet`'s tasks inside
        // a `block_on`). Code that propagates
        // spans (`.instrument(Span::current())`, an actor carrying its sender's span) enters
        // a task's span inside some task's poll: that is not a poll of the task.
        let poll = matches!(kind, SpanKind::Task { .. }) && !inside_a_poll();
        let previous_task = match kind {
            SpanKind::Task { task, adopted: false, .. } if poll => {
                let previous = local::set_current_task(Some(task));
                local::with(|ctx| ctx.tokio_task_entered(task));
                previous
            }
            _ => None,
        };
        let _ = STACK.try_with(|stack| {
            if let Ok(mut stack) = stack.try_borrow_mut() {
                stack.push(Entered { id: id.clone(), kind, previous_task, poll });
            }
        });
    }

    fn on_exit(&self, id: &span::Id, _ctx: Context<'_, S>) {
        let entered = STACK
            .try_with(|stack| {
                let mut stack = stack.try_borrow_mut().ok()?;
                let index = stack.iter().rposition(|e| e.id == *id)?;
                Some(stack.remove(index))
            })
            .ok()
            .flatten();
        let Some(entered) = entered else { return };
        if let (SpanKind::Task { task, adopted: false, .. }, true) = (&entered.kind, entered.poll) {
            let task = *task;
            local::with(|ctx| ctx.tokio_task_exited(task));
            local::set_current_task(entered.previous_task);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if !self.recording() {
            return;
        }
        let Some(kind) =
            ctx.span(&id).and_then(|span| span.extensions().get::<SpanKind>().cloned())
        else {
            return;
        };
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
                            ctx.record(EventKind::LockTryFailed { lock, mode, site });
                        }
                    });
                }
            }
            _ => {}
        }
    }
}
