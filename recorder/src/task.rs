//! A task spawn helper that records the async life of the task: spawn, every poll (pending or
//! ready), completion, and joins (awaiting its handle). It works without `tokio_unstable`;
//! with it, the recorder's Layer knows the tokio task for the helper's task and records
//! nothing twice.

use crate::format::{EventKind, TaskId};
use crate::local::{self, Life};
use crate::registry::Entity;
use crate::session;
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Spawns `future` on the current tokio runtime as a recorded task named `name`, like
/// [`tokio::spawn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = hindsight_recorder::task::spawn("fetch", async { 40 + 2 });
/// assert_eq!(handle.await.unwrap(), 42); // the join is recorded, with this line as its site
/// # }
/// ```
///
/// # Panics
///
/// Like [`tokio::spawn`], when called outside a tokio runtime.
#[track_caller]
pub fn spawn<F>(name: &str, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (task, own, handle) = define(name, Location::caller());
    let recorded = Recorded { task, finished: false, inner: future, _life: own };
    // With tokio's instrumentation on, the Layer sees tokio's span of this task being created
    // right now, on this thread: it takes this task as the one that span stands for.
    local::set_adopt(task);
    let inner = ::tokio::spawn(recorded);
    local::set_adopt(None);
    JoinHandle { inner, task, _life: handle }
}

/// Spawns the `!Send` `future` on the current [`LocalSet`](tokio::task::LocalSet) as a
/// recorded task named `name`, like [`tokio::task::spawn_local`]. Tasks of one `LocalSet`
/// all run on its thread, yet are as concurrent as any two tasks: the race detector checks
/// them as such.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let count = std::rc::Rc::new(std::cell::Cell::new(1));
/// let c = count.clone();
/// local
///     .run_until(async move {
///         let double = async move { c.set(c.get() * 2) };
///         hindsight_recorder::task::spawn_local("double", double).await.unwrap();
///     })
///     .await;
/// assert_eq!(count.get(), 2);
/// # }
/// ```
///
/// # Panics
///
/// Like [`tokio::task::spawn_local`], when called outside a `LocalSet`.
#[track_caller]
pub fn spawn_local<F>(name: &str, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (task, own, handle) = define(name, Location::caller());
    let recorded = Recorded { task, finished: false, inner: future, _life: own };
    local::set_adopt(task);
    let inner = ::tokio::task::spawn_local(recorded);
    local::set_adopt(None);
    JoinHandle { inner, task, _life: handle }
}

/// Defines the task `name` spawned at `at` and records its spawn: its id and the two parties
/// to its life, the task's own and its join handle's (it retires once both are gone).
fn define(
    name: &str,
    at: &'static Location<'static>,
) -> (Option<TaskId>, Option<Life>, Option<Life>) {
    let defined = local::with(|ctx| {
        let site = ctx.site(at);
        let mut registry = session::lock(&ctx.session().registry);
        let task = registry.task(Some(name), "hindsight", Some(site), None);
        registry.hold(Entity::Task(task));
        drop(registry);
        ctx.record(EventKind::TaskSpawned { task, site: Some(site) });
        (task, ctx.generation())
    });
    match defined {
        Some((task, generation)) => {
            let life = || Some(Life::new(generation, Entity::Task(task)));
            (Some(task), life(), life())
        }
        None => (None, None, None),
    }
}

/// A future that records its polls as those of `task`.
struct Recorded<F> {
    task: Option<TaskId>,
    finished: bool,
    inner: F,
    /// The task's own party to its life: it ends after the future is dropped (fields drop in
    /// order).
    _life: Option<Life>,
}

/// Restores the thread's current task when a poll ends, even by a panic.
struct PollScope {
    previous: Option<TaskId>,
}

impl Drop for PollScope {
    fn drop(&mut self) {
        local::set_current_task(self.previous);
    }
}

impl<F: Future> Future for Recorded<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and the
        // other fields are plain data that are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Some(task) = this.task else { return inner.poll(cx) };
        let _scope = PollScope { previous: local::set_current_task(Some(task)) };
        let started = crate::poll_cpu::poll_started();
        local::with(|ctx| ctx.record_at(started, EventKind::PollStarted));
        let result = inner.poll(cx);
        let ready = result.is_ready();
        // One clock read stamps the poll's end and what is recorded with it.
        let ended = crate::clock::ticks();
        let cpu = crate::poll_cpu::poll_ended(started, ended);
        local::with(|ctx| {
            if let Some(cpu) = cpu {
                ctx.record_at(ended, cpu);
            }
            ctx.record_at(ended, EventKind::PollEnded { ready });
            if ready {
                ctx.record_at(ended, EventKind::TaskFinished { cancelled: false });
            }
        });
        this.finished = ready;
        result
    }
}

impl<F> Drop for Recorded<F> {
    fn drop(&mut self) {
        if let (Some(task), false) = (self.task, self.finished) {
            // Dropped before completing: aborted, panicked, or the runtime shut down.
            let _scope = PollScope { previous: local::set_current_task(Some(task)) };
            local::with(|ctx| ctx.record(EventKind::TaskFinished { cancelled: true }));
        }
    }
}

/// The handle of a task spawned by [`spawn`]; awaiting it records the join.
#[derive(Debug)]
pub struct JoinHandle<T> {
    inner: ::tokio::task::JoinHandle<T>,
    task: Option<TaskId>,
    /// The handle's party to the task's life: a join is recorded while it lives.
    _life: Option<Life>,
}

impl<T> JoinHandle<T> {
    /// Aborts the task, like [`tokio::task::JoinHandle::abort`].
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Whether the task has finished, like [`tokio::task::JoinHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> IntoFuture for JoinHandle<T> {
    type Output = Result<T, ::tokio::task::JoinError>;
    type IntoFuture = Join<T>;

    /// Awaiting the handle: the `.await` is the join's site.
    #[track_caller]
    fn into_future(self) -> Join<T> {
        Join { handle: self, at: Location::caller(), requested: false }
    }
}

/// The future of awaiting a [`JoinHandle`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T> {
    handle: JoinHandle<T>,
    at: &'static Location<'static>,
    requested: bool,
}

impl<T> Future for Join<T> {
    type Output = Result<T, ::tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (task, at) = (self.handle.task, self.at);
        if let (Some(task), false) = (task, self.requested) {
            self.requested = true;
            local::with(|ctx| {
                let site = Some(ctx.site(at));
                ctx.record(EventKind::TaskJoinRequested { task, site });
            });
        }
        let result = Pin::new(&mut self.handle.inner).poll(cx);
        if let (Some(task), true) = (task, result.is_ready()) {
            local::with(|ctx| {
                let site = Some(ctx.site(at));
                ctx.record(EventKind::TaskJoined { task, site });
            });
        }
        result
    }
}
