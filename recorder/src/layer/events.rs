//! What tokio's events (and the lock convention's) record, for both front-ends.

use super::fields::{Change, ConventionFields, EventFields, WakerOp};
use super::resource::{Actor, Resource};
use super::spans::{self, Class, SpanKind, Spans};
use super::{callsites, convention, Callsite};
use crate::format::{EventKind, LockKind, LockMode, PermitOp, SiteId};
use crate::local::{self, Ctx};
use crate::session;
use std::sync::atomic::Ordering;
use tracing::Metadata;

/// Records `event` of `callsite`.
pub(crate) fn record(callsite: Callsite, event: &tracing::Event<'_>, spans: &impl Spans) {
    let metadata = event.metadata();
    if callsite == Callsite::Convention {
        let mut fields = ConventionFields::default();
        event.record(&mut fields);
        return convention::record(metadata, &fields);
    }
    // Each finds the span it is about first, and reads the fields only if it records.
    match callsite {
        Callsite::ResourceState => resource_state(event, spans),
        Callsite::AsyncOpState => async_op_state(event, spans),
        Callsite::PollOp => poll_op(event, spans),
        Callsite::Waker => waker(metadata, &fields_of(event), spans),
        _ => {}
    }
}

fn fields_of(event: &tracing::Event<'_>) -> EventFields {
    let mut fields = EventFields::default();
    event.record(&mut fields);
    fields
}

fn actor(ctx: &Ctx<'_>) -> Actor {
    match ctx.task() {
        Some(task) => Actor::Task(task),
        None => Actor::Thread(ctx.thread()),
    }
}

/// A state update of a resource (`runtime::resource::state_update`).
fn resource_state(event: &tracing::Event<'_>, spans: &impl Spans) {
    match spans::innermost_resource(spans) {
        Some(SpanKind::Resource(resource)) => {
            let fields = fields_of(event);
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
                Some((true, mode)) => acquired(&resource, mode, None, 1),
                Some((false, mode)) => released(&resource, mode, 1),
                None => {}
            }
        }
        Some(SpanKind::InternalSemaphore(resource)) => {
            let fields = fields_of(event);
            match fields.permits_op {
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
            }
        }
        _ => {}
    }
}

/// A state update of an async op: the permits a semaphore's acquisition asks for, as it is
/// made; permits handed to a waiter by whoever released them.
fn async_op_state(event: &tracing::Event<'_>, spans: &impl Spans) {
    // The waiter's own poll also reports what it obtained, from inside its poll span;
    // a releaser handing permits over reports them with only the op span entered.
    let (Some((id, Class::InternalAsyncOp)), below) = spans::top_two() else { return };
    if below == Some(Class::AsyncOpPoll) {
        return;
    }
    let fields = fields_of(event);
    if let Some(requested) = fields.permits_requested {
        // Made inside the `Semaphore::acquire_many` (or `acquire`) op it serves.
        if let Some((op, _)) = spans::innermost(|class| class == Class::AsyncOp) {
            if let Some(SpanKind::AsyncOp(op)) = spans.kind(op) {
                let requested = u32::try_from(requested).unwrap_or(u32::MAX);
                op.permits.store(requested, Ordering::Relaxed);
            }
        }
        return;
    }
    if fields.permits_op != Some(Change::Add) {
        return;
    }
    if let Some(SpanKind::InternalAsyncOp(resource)) = spans.kind(id) {
        released(&resource, LockMode::Exclusive, fields.permits_obtained.unwrap_or(1));
    }
}

/// A poll of an async op returned (`runtime::resource::poll_op`).
fn poll_op(event: &tracing::Event<'_>, spans: &impl Spans) {
    // A timer's poll: a pending one is the `.await` its task suspends at.
    if let Some((id, Class::Timer)) = spans::innermost(Class::is_resource) {
        if let (Some(SpanKind::Timer(timer)), Some(false)) =
            (spans.kind(id), fields_of(event).is_ready)
        {
            timer.pending();
        }
        return;
    }
    let Some((id, Class::AsyncOp)) = spans::innermost(Class::is_async_op) else { return };
    let Some(SpanKind::AsyncOp(op)) = spans.kind(id) else { return };
    let resource = &op.resource;
    match fields_of(event).is_ready {
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
                let permits = op.permits.load(Ordering::Relaxed);
                acquired(resource, LockMode::Exclusive, Some(op.site), permits);
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

/// A waker event (`tokio::task::waker`): a wake is recorded; a clone or a drop teaches
/// [`callsites`] to turn its callsite off.
fn waker(metadata: &Metadata<'_>, fields: &EventFields, spans: &impl Spans) {
    let by_ref = match fields.waker_op {
        Some(WakerOp::Wake) => false,
        Some(WakerOp::WakeByRef) => true,
        Some(WakerOp::CloneOrDrop) => return callsites::unread_waker(metadata),
        None => return,
    };
    let Some(span_id) = fields.task_id.filter(|id| *id != 0) else { return };
    let Some(task) = spans.task(span_id) else { return };
    local::with(|ctx| ctx.record(EventKind::Wake { task, by_ref }));
}

/// `resource` was acquired in `mode` by the current actor, `permits` of it (more than 1 only
/// for a semaphore's `acquire_many`); `site` if known already.
fn acquired(resource: &Resource, mode: LockMode, site: Option<SiteId>, permits: u32) {
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
            (holders.acquire(resource.kind, actor, mode, u64::from(permits)), site, via_try)
        };
        let lock = resource.lock;
        ctx.record(EventKind::LockAcquired { lock, mode, site, seq: Some(seq), via_try });
        if permits != 1 {
            ctx.record(EventKind::Permits { lock, op: PermitOp::Acquired, count: permits });
        }
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
            let released = session::lock(&resource.holders).release(actor, mode, count);
            let Some(seq) = released else { break };
            let lock = resource.lock;
            ctx.record(EventKind::LockReleased { lock, mode, seq: Some(seq), poisoned: false });
        }
    });
}
