//! What tokio's own instrumentation becomes in the trace: task spawns, polls (and not the
//! enter that only drops a future), completion and cancellation, wakes, and tokio's `Mutex`,
//! `RwLock` and `Semaphore` attributed to the tasks that used them. Also the tracing
//! convention for user-defined locks, which goes through the same Layer.
#![cfg(feature = "record")]

mod common;

use common::{check_lock_order, serial, trace_path, Trace};
use hindsight_recorder::format::{
    Definition, EventKind, LockImplementation, LockKind, LockMode, PermitOp, TaskId,
};
use hindsight_recorder::Recorder;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

fn install() {
    let _ = tracing_subscriber::registry().with(Recorder::layer()).try_init();
}

/// What `task` did, in time order: the file keeps only each thread's order, and a task's
/// events come from every thread that polled or dropped it (replay merges them by time).
/// Without the CPU time of long polls: whether a poll is long depends on the machine's load.
fn kinds_of(trace: &Trace, task: TaskId) -> Vec<EventKind> {
    let mut events: Vec<_> = trace
        .events
        .iter()
        .filter(|e| e.task == Some(task) && !matches!(e.kind, EventKind::PollCpu { .. }))
        .collect();
    events.sort_by_key(|e| e.time_ns);
    events.into_iter().map(|e| e.kind).collect()
}

#[test]
fn polls_completion_cancellation_and_wakes_of_tokio_tasks() {
    let _turn = serial();
    install();
    for multi_thread in [false, true] {
        let path = trace_path(&format!("tokio-tasks-{multi_thread}"));
        let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .unwrap();
        runtime.block_on(async {
            let once = tokio::task::Builder::new().name("once").spawn(async { 1 }).unwrap();
            assert_eq!(once.await.unwrap(), 1);
            let twice = tokio::task::Builder::new()
                .name("twice")
                .spawn(async {
                    tokio::task::yield_now().await;
                    2
                })
                .unwrap();
            assert_eq!(twice.await.unwrap(), 2);
            let forever = tokio::task::Builder::new()
                .name("forever")
                .spawn(async { std::future::pending::<()>().await })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            forever.abort();
            assert!(forever.await.unwrap_err().is_cancelled());
            // A helper task under tokio's instrumentation is recorded once, by the helper.
            let helper = hindsight_recorder::task::spawn("helper", async {
                tokio::task::yield_now().await;
            });
            helper.await.unwrap();
        });
        drop(runtime);
        guard.finish().unwrap();

        let trace = Trace::read(&path);
        use EventKind::{PollEnded, PollStarted, TaskFinished};
        let once = trace.task_named("once");
        assert_eq!(
            kinds_of(&trace, once),
            [PollStarted, PollEnded { ready: true }, TaskFinished { cancelled: false }],
            "one poll; the enter that drops the future is not a poll"
        );
        let twice = trace.task_named("twice");
        let twice_kinds = kinds_of(&trace, twice);
        assert_eq!(twice_kinds.iter().filter(|k| **k == PollStarted).count(), 2, "{twice_kinds:?}");
        assert_eq!(twice_kinds.last(), Some(&TaskFinished { cancelled: false }));
        assert!(twice_kinds.contains(&PollEnded { ready: false }));
        assert!(
            trace
                .events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Wake { task, .. } if task == twice)),
            "yield_now wakes the task"
        );
        let forever = trace.task_named("forever");
        let forever_kinds = kinds_of(&trace, forever);
        assert_eq!(
            forever_kinds,
            [PollStarted, PollEnded { ready: false }, TaskFinished { cancelled: true }]
        );
        let helper = trace.task_named("helper");
        let helpers = trace
            .definitions
            .iter()
            .filter(|d| matches!(d, Definition::Task(t) if t.name == trace.definitions.iter().find_map(|d| match d {
                Definition::String { id, text } if text == "helper" => Some(*id),
                _ => None,
            })))
            .count();
        assert_eq!(helpers, 1, "the helper's tokio task is not recorded a second time");
        assert_eq!(kinds_of(&trace, helper).iter().filter(|k| **k == PollStarted).count(), 2);
        for event in &trace.events {
            if let EventKind::TaskSpawned { task, .. } = event.kind {
                assert!(task.0 < trace.tasks() as u32);
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn tokio_locks_are_recorded_for_the_tasks_that_use_them() {
    let _turn = serial();
    install();
    let path = trace_path("tokio-locks");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mutex = Arc::new(tokio::sync::Mutex::new(0));
        let rwlock = Arc::new(tokio::sync::RwLock::new(0));
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
        let held = mutex.lock().await;
        assert!(mutex.try_lock().is_err());
        let waiter = {
            let mutex = mutex.clone();
            tokio::task::Builder::new()
                .name("waiter")
                .spawn(async move { *mutex.lock().await += 1 })
                .unwrap()
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        waiter.await.unwrap();
        {
            let a = rwlock.read().await;
            let b = rwlock.read().await;
            assert_eq!(*a + *b, 0);
        }
        *rwlock.write().await += 1;
        let permit = semaphore.acquire().await.unwrap();
        let other = {
            let semaphore = semaphore.clone();
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(permit);
        other.await.unwrap();
        let _ = mutex.try_lock().map(|guard| *guard);
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let locks: Vec<_> = trace
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Lock(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    let of_kind = |kind| locks.iter().find(|l| l.kind == kind).map(|l| l.id).unwrap();
    assert_eq!(locks.len(), 3, "internal semaphores are not recorded: {locks:?}");
    assert!(locks.iter().all(|l| !l.blocking && l.site.is_some()));
    assert!(locks.iter().all(|l| l.implementation == LockImplementation::Tokio), "{locks:?}");
    let (mutex, rwlock, semaphore) =
        (of_kind(LockKind::Mutex), of_kind(LockKind::RwLock), of_kind(LockKind::Semaphore));
    // The semaphore's permits, from its resource span's first state update; the locks have
    // none.
    let capacity = |id| locks.iter().find(|l| l.id == id).unwrap().capacity;
    assert_eq!((capacity(mutex), capacity(rwlock), capacity(semaphore)), (None, None, Some(1)));
    let waiter = trace.task_named("waiter");
    let waiter_kinds = kinds_of(&trace, waiter);
    assert!(
        matches!(waiter_kinds[1], EventKind::LockRequested { lock, .. } if lock == mutex),
        "the waiter asked for the mutex in its first poll: {waiter_kinds:?}"
    );
    assert!(waiter_kinds.iter().any(
        |k| matches!(k, EventKind::LockAcquired { lock, via_try: false, .. } if *lock == mutex)
    ));
    assert!(waiter_kinds
        .iter()
        .any(|k| matches!(k, EventKind::LockReleased { lock, .. } if *lock == mutex)));
    let acquired = |lock, mode| {
        trace
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LockAcquired { lock: l, mode: m, .. } if l == lock && m == mode))
            .count()
    };
    assert_eq!(acquired(mutex, LockMode::Exclusive), 3);
    assert!(trace.events.iter().any(
        |e| matches!(e.kind, EventKind::LockAcquired { lock, via_try: true, .. } if lock == mutex)
    ));
    assert_eq!(acquired(rwlock, LockMode::Shared), 2);
    assert_eq!(acquired(rwlock, LockMode::Exclusive), 1);
    assert_eq!(acquired(semaphore, LockMode::Exclusive), 2);
    let requested = |lock| {
        trace
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LockRequested { lock: l, .. } if l == lock))
            .count()
    };
    assert_eq!(requested(semaphore), 1);
    for (lock, order) in check_lock_order(&trace.events) {
        assert_eq!(order.acquisitions, order.releases, "{lock}");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn user_defined_locks_follow_the_tracing_convention() {
    let _turn = serial();
    install();
    let path = trace_path("convention");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let line = line!() + 1;
    tracing::trace!(target: "hindsight::lock", op = "requested", lock.name = "repo.lock", lock.kind = "file");
    tracing::trace!(target: "hindsight::lock", op = "acquired", lock.name = "repo.lock", mode = "exclusive");
    tracing::trace!(target: "hindsight::lock", op = "released", lock.name = "repo.lock");
    tracing::trace!(target: "hindsight::lock", op = "try_failed", lock.name = "db", mode = "shared");
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let repo = trace.lock_named("repo.lock").unwrap();
    let db = trace.lock_named("db").unwrap();
    let kinds: Vec<_> = trace.events.iter().map(|e| e.kind).collect();
    let EventKind::LockRequested { lock, mode: LockMode::Exclusive, site } = kinds[0] else {
        panic!("{kinds:?}")
    };
    assert_eq!(lock, repo);
    assert_eq!(trace.site(site).map(|(f, l, _)| (f, l)), Some((file!().to_owned(), line)));
    assert!(matches!(kinds[1], EventKind::LockAcquired { lock, seq: None, .. } if lock == repo));
    assert!(matches!(kinds[2], EventKind::LockReleased { lock, seq: None, .. } if lock == repo));
    assert!(
        matches!(kinds[3], EventKind::LockTryFailed { lock, mode: LockMode::Shared, .. } if lock == db)
    );
    let defs: Vec<_> = trace
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Lock(l) => Some(l.kind),
            _ => None,
        })
        .collect();
    assert_eq!(defs, [LockKind::Custom, LockKind::Custom]);
    let _ = std::fs::remove_file(&path);
}

/// Span propagation: a task hands its own span to another task, which instruments its work
/// with it (`.instrument(span)`, as actor crates do with the sender's span). tokio enters the
/// `listener`'s span only to poll it; the `worker`'s enters of it happen inside the worker's
/// own polls and are not polls of `listener`, and what runs there is the worker's.
#[test]
fn entering_another_tasks_span_inside_a_poll_is_not_a_poll_of_it() {
    use tracing::Instrument;
    let _turn = serial();
    install();
    let path = trace_path("span-propagation");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    const JOBS: usize = 20;
    runtime.block_on(async {
        let (spans, mut received) = tokio::sync::mpsc::channel::<tracing::Span>(1);
        let listener = tokio::task::Builder::new()
            .name("listener")
            .spawn(async move {
                spans.send(tracing::Span::current()).await.unwrap();
            })
            .unwrap();
        let worker = tokio::task::Builder::new()
            .name("worker")
            .spawn(async move {
                let span = received.recv().await.unwrap();
                let state = tokio::sync::Mutex::new(0);
                for _ in 0..JOBS {
                    async {
                        *state.lock().await += 1;
                        tokio::task::yield_now().await;
                    }
                    .instrument(span.clone())
                    .await;
                }
            })
            .unwrap();
        listener.await.unwrap();
        worker.await.unwrap();
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let (listener, worker) = (trace.task_named("listener"), trace.task_named("worker"));
    let listener_polls =
        kinds_of(&trace, listener).iter().filter(|k| **k == EventKind::PollStarted).count();
    assert!(listener_polls <= 2, "the listener ran once or twice, not {listener_polls} times");
    let worker_kinds = kinds_of(&trace, worker);
    let acquired =
        worker_kinds.iter().filter(|k| matches!(k, EventKind::LockAcquired { .. })).count();
    assert_eq!(acquired, JOBS, "the worker's acquisitions are the worker's: {worker_kinds:?}");
    let worker_polls = worker_kinds.iter().filter(|k| **k == EventKind::PollStarted).count();
    assert!(worker_polls > JOBS, "one poll per yield, at least: {worker_polls}");
    let _ = std::fs::remove_file(&path);
}

/// A task suspended in `tokio::time::sleep` or in a hindsight lock future records the
/// `.await` it suspends at, before the poll's end; the recording ends with its clean end.
#[test]
fn a_pending_sleep_or_lock_records_the_await_it_suspends_at() {
    let _turn = serial();
    install();
    let path = trace_path("await-sites");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let lock = Arc::new(hindsight_recorder::sync::tokio::Mutex::named("cache", 0));
    let (sleep_line, lock_line) = runtime.block_on(async {
        let held = lock.lock().await;
        let waiter = {
            let lock = lock.clone();
            tokio::task::Builder::new()
                .name("waiter")
                .spawn(async move {
                    let lock_line = line!() + 1;
                    *lock.lock().await += 1;
                    lock_line
                })
                .unwrap()
        };
        let sleeper = tokio::task::Builder::new()
            .name("sleeper")
            .spawn(async {
                let sleep_line = line!() + 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                sleep_line
            })
            .unwrap();
        let sleep_line = sleeper.await.unwrap();
        drop(held);
        (sleep_line, waiter.await.unwrap())
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let await_line = |task: TaskId| {
        let kinds = kinds_of(&trace, task);
        let at = kinds.iter().position(|k| matches!(k, EventKind::AwaitPending { .. }));
        let Some(EventKind::AwaitPending { site }) = at.map(|i| kinds[i]) else {
            panic!("no await site in {kinds:?}")
        };
        assert_eq!(kinds.get(at.unwrap() + 1), Some(&EventKind::PollEnded { ready: false }));
        trace.site(site).expect("a defined site")
    };
    let (file, line, _) = await_line(trace.task_named("sleeper"));
    assert!(file.ends_with("tokio_instrumentation_is_recorded_faithfully.rs"), "{file}");
    assert_eq!(line, sleep_line);
    let (_, line, _) = await_line(trace.task_named("waiter"));
    assert_eq!(line, lock_line);
    assert_eq!(trace.count("recording_ended"), 1);
}

/// tokio's own `Semaphore`: a holder of many permits gives back its one hold; a permit
/// forgotten and added back by another task ends the forgetter's hold. (A permit moved to
/// another task and dropped there is not told apart from `add_permits`: tokio reports both as
/// permits added.)
#[test]
fn a_tokio_semaphores_releases_end_the_holds_they_give_back() {
    let _turn = serial();
    install();
    let path = trace_path("tokio-permits");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let pool = Arc::new(tokio::sync::Semaphore::new(4));
        let single = pool.clone().acquire_owned().await.unwrap();
        // The holder of three permits gives them back: one hold ends, not three (the other
        // holder's).
        tokio::task::Builder::new()
            .name("many")
            .spawn({
                let pool = pool.clone();
                async move {
                    let permits = pool.acquire_many(3).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    drop(permits);
                }
            })
            .unwrap()
            .await
            .unwrap();
        // A pair of permits moved to another task and dropped there: that task's release of
        // the pair's one hold, not two holds of others.
        let pair = pool.clone().acquire_many_owned(2).await.unwrap();
        tokio::task::Builder::new()
            .name("dropper")
            .spawn(async move { drop(pair) })
            .unwrap()
            .await
            .unwrap();
        single.forget();
        tokio::task::Builder::new()
            .name("adder")
            .spawn({
                let pool = pool.clone();
                async move { pool.add_permits(1) }
            })
            .unwrap()
            .await
            .unwrap();
        assert_eq!(pool.available_permits(), 4);
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let released_by = |name: &str| {
        let task = trace.task_named(name);
        kinds_of(&trace, task)
            .iter()
            .filter(|k| matches!(k, EventKind::LockReleased { .. }))
            .count()
    };
    assert_eq!(released_by("many"), 1, "one hold of three permits");
    assert_eq!(released_by("dropper"), 1, "the moved pair's hold");
    assert_eq!(released_by("adder"), 1, "the forgotten permit's hold");
    // `acquire_many` says how many permits it took, right after its acquisition.
    let many = kinds_of(&trace, trace.task_named("many"));
    let taken = many.iter().position(|k| matches!(k, EventKind::LockAcquired { .. }));
    let taken = taken.expect("`many` acquires");
    assert!(
        matches!(many[taken + 1], EventKind::Permits { op: PermitOp::Acquired, count: 3, .. }),
        "{many:?}"
    );
    let counts: Vec<u32> = (trace.events.iter())
        .filter_map(|e| match e.kind {
            EventKind::Permits { op: PermitOp::Acquired, count, .. } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [3, 2], "the single permits need no count");
    // Every hold (the permits overlap: no lock order to check) ends exactly once.
    assert_eq!((trace.count("lock_acquired"), trace.count("lock_released")), (3, 3));
    let _ = std::fs::remove_file(&path);
}

/// tokio's `Default` (and `From`) make a lock inside tokio's own source, with no caller's
/// location: such a lock is named by its type and by who made it — the task by its name, or
/// by its spawn site — never by a line of tokio's. A lock made by `new` keeps no name.
#[test]
fn a_tokio_lock_made_by_default_is_named_by_its_type_and_owner() {
    let _turn = serial();
    install();
    let path = trace_path("tokio-default");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let spawned_at = runtime.block_on(async {
        tokio::task::Builder::new()
            .name("owner")
            .spawn(async { *tokio::sync::Mutex::<u32>::default().lock().await += 1 })
            .unwrap()
            .await
            .unwrap();
        let line = line!() + 1;
        tokio::spawn(async { *tokio::sync::RwLock::<u32>::default().write().await += 1 })
            .await
            .unwrap();
        *tokio::sync::Mutex::new(0u32).lock().await += 1;
        line
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let names: Vec<Option<String>> = (trace.definitions.iter())
        .filter_map(|d| match d {
            Definition::Lock(lock) => Some(lock.name.and_then(|n| trace.string(n))),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            Some("tokio Mutex made by `default()` or `from()` in task `owner`".to_owned()),
            Some(format!(
                "tokio RwLock made by `default()` or `from()` in the task spawned at {}:{spawned_at}:9",
                file!()
            )),
            None,
        ]
    );
    let _ = std::fs::remove_file(&path);
}
