//! Annotations — `Variable`, the free functions of `annotate`, and `Shared<T>` — record each
//! access (read, write, release, acquire) with the annotated variable, the caller's site, and
//! the thread and task that made it; with one thread and with many.
#![cfg(feature = "record")]

mod common;

use common::{serial, trace_path, Trace};
use hindsight_recorder::annotate::{self, Variable};
use hindsight_recorder::format::{Definition, Event, EventKind, SiteId, VarId};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// An annotation event reduced to what the tests compare: kind, variable name, site line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    kind: &'static str,
    var: String,
    line: u32,
}

/// The variable and site of an annotation event.
fn annotation(kind: &EventKind) -> Option<(VarId, SiteId)> {
    match *kind {
        EventKind::Read { var, site }
        | EventKind::Write { var, site }
        | EventKind::SyncRelease { var, site }
        | EventKind::SyncAcquire { var, site } => Some((var, site)),
        _ => None,
    }
}

/// Variable definitions: id -> (name, creation site line).
fn variables(trace: &Trace) -> HashMap<VarId, (String, u32)> {
    trace
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Variable(v) => {
                let name = trace.string(v.name).expect("the name is defined");
                let (file, line, _) = trace.site(v.site.expect("a creation site")).unwrap();
                assert_eq!(file, file!());
                Some((v.id, (name, line)))
            }
            _ => None,
        })
        .collect()
}

/// The annotation events of `events`, reduced; every site is in this file.
fn accesses<'a>(trace: &Trace, events: impl IntoIterator<Item = &'a Event>) -> Vec<Access> {
    let vars = variables(trace);
    events
        .into_iter()
        .filter_map(|e| {
            let (var, site) = annotation(&e.kind)?;
            let (file, line, _) = trace.site(site).expect("the site is defined");
            assert_eq!(file, file!());
            Some(Access { kind: e.kind.name(), var: vars[&var].0.clone(), line })
        })
        .collect()
}

fn access(kind: &'static str, var: &str, line: u32) -> Access {
    Access { kind, var: var.to_owned(), line }
}

static CONFIG_LINE: u32 = line!() + 1;
static CONFIG: Variable = Variable::named("config");

#[test]
fn variables_and_free_functions_record_kind_variable_and_call_site() {
    let _turn = serial();
    let path = trace_path("annotate-variable");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();

    let ready_line = line!() + 1;
    let ready = Variable::named("config_ready");
    let flag = AtomicBool::new(false);
    let lines = [line!() + 1, line!() + 2, line!() + 4, line!() + 6, line!() + 7, line!() + 8];
    annotate::write(&CONFIG);
    annotate::release(&ready);
    flag.store(true, Ordering::Release);
    CONFIG.write();
    assert!(flag.load(Ordering::Acquire));
    annotate::acquire(&ready);
    annotate::read(&CONFIG);
    ready.release();
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let main = trace.events.iter().filter(|e| annotation(&e.kind).is_some());
    assert_eq!(
        accesses(&trace, main.clone()),
        [
            access("write", "config", lines[0]),
            access("sync_release", "config_ready", lines[1]),
            access("write", "config", lines[2]),
            access("sync_acquire", "config_ready", lines[3]),
            access("read", "config", lines[4]),
            access("sync_release", "config_ready", lines[5]),
        ]
    );
    // Both were defined once, with their creation sites (the static's too).
    let mut defined: Vec<_> = variables(&trace).into_values().collect();
    defined.sort();
    assert_eq!(
        defined,
        [("config".to_owned(), CONFIG_LINE), ("config_ready".to_owned(), ready_line)]
    );
    // All on this thread, in no task.
    let threads: Vec<_> = main.clone().map(|e| (e.thread, e.task)).collect();
    assert!(threads.iter().all(|t| *t == (threads[0].0, None)), "{threads:?}");
}

#[test]
fn shared_records_each_access_before_running_the_closure() {
    let _turn = serial();
    let path = trace_path("annotate-shared");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();

    let created = line!() + 1;
    let mut hits = Shared::named("hits", AtomicU64::new(0));
    let first = line!() + 1;
    let seen = hits.read(|h| h.load(Ordering::Relaxed));
    hits.write(|h| h.store(seen + 1, Ordering::Relaxed));
    hits.write_mut(|h| *h.get_mut() += 1);
    hits.release(|h| h.store(10, Ordering::Release));
    let (saw, missed) = (line!() + 1, line!() + 2);
    let ten = hits.acquire(|h| (true, h.load(Ordering::Acquire)));
    let not_published = hits.acquire(|h| (false, h.load(Ordering::Acquire)));
    assert_eq!((ten, not_published), (10, 10));
    assert_eq!(hits.variable().name(), "hits");
    assert!(format!("{hits:?}").contains("hits"));
    assert_eq!(hits.into_inner().into_inner(), 10);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    assert_eq!(
        accesses(&trace, &trace.events),
        [
            access("read", "hits", first),
            access("write", "hits", first + 1),
            access("write", "hits", first + 2),
            access("sync_release", "hits", first + 3),
            access("sync_acquire", "hits", saw),
        ],
        "an acquire whose load saw no release ({missed}) records nothing"
    );
    assert_eq!(variables(&trace).into_values().collect::<Vec<_>>(), [("hits".to_owned(), created)]);
}

#[test]
fn many_threads_share_one_variable_defined_once_and_each_access_is_theirs() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let _turn = serial();
    let path = trace_path("annotate-threads");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();

    let stats = Arc::new(Shared::named("worker_stats", AtomicU64::new(0)));
    let (read_line, write_line) = (line!() + 7, line!() + 8);
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let stats = stats.clone();
            hindsight_recorder::thread::spawn(&format!("worker-{n}"), move || {
                for _ in 0..ROUNDS {
                    // Every thread defines the variable on its first access, all at once.
                    let seen = stats.read(|s| s.load(Ordering::Relaxed));
                    stats.write(|s| s.store(seen + 1, Ordering::Relaxed));
                }
            })
            .unwrap()
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    assert_eq!(variables(&trace).len(), 1, "one variable, however many threads define it");
    for n in 0..THREADS {
        let thread = trace.thread_named(&format!("worker-{n}"));
        let mine = accesses(&trace, trace.events.iter().filter(|e| e.thread == thread));
        let expected: Vec<_> = (0..ROUNDS)
            .flat_map(|_| {
                [
                    access("read", "worker_stats", read_line),
                    access("write", "worker_stats", write_line),
                ]
            })
            .collect();
        assert_eq!(mine, expected, "worker-{n}");
    }
    assert_eq!(trace.count("read") + trace.count("write"), THREADS * ROUNDS * 2);
}

#[test]
fn accesses_in_tasks_carry_the_task_on_one_worker_and_on_many() {
    let _turn = serial();
    for multi_thread in [false, true] {
        let path = trace_path(&format!("annotate-tasks-{multi_thread}"));
        let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let counter = Arc::new(Shared::named("counter", AtomicU64::new(0)));
        let write_line = line!() + 5;
        runtime.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|n| {
                    let counter = counter.clone();
                    let add = async move { counter.write(|c| c.fetch_add(1, Ordering::Relaxed)) };
                    hindsight_recorder::task::spawn(&format!("adder-{n}"), add)
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        drop(runtime);
        guard.finish().unwrap();

        let trace = Trace::read(&path);
        for n in 0..4 {
            let task = trace.task_named(&format!("adder-{n}"));
            let of_task = accesses(&trace, trace.events.iter().filter(|e| e.task == Some(task)));
            assert_eq!(of_task, [access("write", "counter", write_line)], "adder-{n}");
        }
        assert_eq!(trace.count("write"), 4);
    }
}

#[test]
fn accesses_in_local_tasks_carry_their_task() {
    let _turn = serial();
    let path = trace_path("annotate-local-tasks");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cache = std::rc::Rc::new(Shared::named("cache", std::cell::RefCell::new(Vec::new())));
    let (write_line, read_line) = (line!() + 6, line!() + 13);
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let tasks: Vec<_> = (0..2u32)
            .map(|n| {
                let cache = cache.clone();
                let fill = async move { cache.write(|c| c.borrow_mut().push(n)) };
                hindsight_recorder::task::spawn_local(&format!("filler-{n}"), fill)
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(cache.read(|c| c.borrow().len()), 2);
    });
    drop(local);
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    for n in 0..2 {
        let task = trace.task_named(&format!("filler-{n}"));
        let of_task = accesses(&trace, trace.events.iter().filter(|e| e.task == Some(task)));
        assert_eq!(of_task, [access("write", "cache", write_line)], "filler-{n}");
    }
    let untasked = accesses(&trace, trace.events.iter().filter(|e| e.task.is_none()));
    assert_eq!(untasked, [access("read", "cache", read_line)]);
}

#[test]
fn nothing_is_recorded_while_no_recorder_records_and_a_new_recording_redefines() {
    let _turn = serial();
    let var = Variable::named("between");
    var.write(); // no recorder: nothing happens
    for round in 0..2 {
        let path = trace_path(&format!("annotate-sessions-{round}"));
        let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
        let line = line!() + 1;
        var.read();
        guard.finish().unwrap();
        var.write(); // recording ended: nothing happens

        let trace = Trace::read(&path);
        assert_eq!(accesses(&trace, &trace.events), [access("read", "between", line)]);
        assert_eq!(variables(&trace).len(), 1, "each trace defines what it uses");
    }
}
