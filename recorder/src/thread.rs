//! A thread spawn helper that records the thread's life: spawned (by the parent), started and
//! finished (by the thread itself, with whether it panicked), and joins.

use crate::clock;
use crate::format::{EventKind, ThreadId};
use crate::local::{self, Life};
use crate::registry::Entity;
use crate::session;
use std::panic::{self, AssertUnwindSafe, Location};

/// Spawns a recorded OS thread named `name`, like [`std::thread::Builder::spawn`].
///
/// The call returns once the new thread has registered with the recorder (so that its id is
/// defined before the parent's spawn event uses it).
///
/// ```
/// let handle = hindsight_recorder::thread::spawn("worker", || 6 * 7).unwrap();
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let at = Location::caller();
    let spawned_at = clock::ticks();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<(ThreadId, u64)>>(1);
    let inner = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        // The thread and its join handle are the parties to its life: it retires (as it
        // ends, `local::retire` below) and so does the handle, when dropped.
        let _ = tx.send(local::with(|ctx| {
            let thread = ctx.thread();
            session::lock(&ctx.session().registry).hold(Entity::Thread(thread));
            (thread, ctx.generation())
        }));
        drop(tx);
        local::with(|ctx| ctx.record(EventKind::ThreadStarted));
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        local::with(|ctx| ctx.record(EventKind::ThreadFinished { panicked: result.is_err() }));
        local::retire();
        match result {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    })?;
    let defined = rx.recv().ok().flatten();
    if let Some((thread, _)) = defined {
        local::with(|ctx| {
            let site = Some(ctx.site(at));
            ctx.record_at(spawned_at, EventKind::ThreadSpawned { thread, site });
        });
    }
    Ok(JoinHandle {
        inner,
        thread: defined.map(|(thread, _)| thread),
        life: defined.map(|(thread, generation)| Life::new(generation, Entity::Thread(thread))),
    })
}

/// The handle of a thread spawned by [`spawn`]; joining it is recorded.
#[derive(Debug)]
pub struct JoinHandle<T> {
    inner: std::thread::JoinHandle<T>,
    thread: Option<ThreadId>,
    /// The handle's party to the thread's life: a join is recorded while it lives.
    life: Option<Life>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish, like [`std::thread::JoinHandle::join`].
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        let at = Location::caller();
        let JoinHandle { inner, thread, life } = self;
        if let Some(thread) = thread {
            local::with(|ctx| {
                let site = Some(ctx.site(at));
                ctx.record(EventKind::ThreadJoinRequested { thread, site });
            });
        }
        let result = inner.join();
        if let Some(thread) = thread {
            local::with(|ctx| {
                let site = Some(ctx.site(at));
                ctx.record(EventKind::ThreadJoined { thread, site });
            });
        }
        drop(life);
        result
    }

    /// The underlying std thread.
    pub fn thread(&self) -> &std::thread::Thread {
        self.inner.thread()
    }

    /// Whether the thread has finished, like [`std::thread::JoinHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}
