//! The task and thread helpers record spawn, polls (pending and ready), completion and joins.
#![cfg(feature = "record")]

mod common;

use common::{serial, trace_path, Trace};
use hindsight_recorder::format::{Definition, EventKind, TaskId};
use hindsight_recorder::Recorder;

#[test]
fn a_helper_task_records_its_polls_completion_and_join() {
    let _turn = serial();
    for multi_thread in [false, true] {
        let path = trace_path(&format!("task-helper-{multi_thread}"));
        let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let join_line = line!() + 6;
        let value = runtime.block_on(async {
            let handle = hindsight_recorder::task::spawn("child", async {
                tokio::task::yield_now().await;
                7
            });
            handle.await.unwrap()
        });
        assert_eq!(value, 7);
        drop(runtime);
        guard.finish().unwrap();

        let trace = Trace::read(&path);
        let child = trace
            .definitions
            .iter()
            .find_map(|d| match d {
                Definition::Task(t)
                    if t.name.and_then(|n| trace.string(n)).as_deref() == Some("child") =>
                {
                    Some(t.id)
                }
                _ => None,
            })
            .expect("the child task is defined");
        // Without the CPU time of long polls: whether a poll is long depends on the load.
        let of_child: Vec<_> = trace
            .events
            .iter()
            .filter(|e| e.task == Some(child) && !matches!(e.kind, EventKind::PollCpu { .. }))
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            of_child,
            [
                EventKind::PollStarted,
                EventKind::PollEnded { ready: false },
                EventKind::PollStarted,
                EventKind::PollEnded { ready: true },
                EventKind::TaskFinished { cancelled: false },
            ]
        );
        let spawned = trace
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskSpawned { task, .. } if task == child))
            .count();
        assert_eq!(spawned, 1);
        let join_site = trace.events.iter().find_map(|e| match e.kind {
            EventKind::TaskJoined { task, site } if task == child => site,
            _ => None,
        });
        let (file, line, _) = trace.site(join_site.expect("the join is recorded")).unwrap();
        assert_eq!((file.as_str(), line), (file!(), join_line));
        assert_eq!(trace.count("task_join_requested"), 1);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_helper_thread_records_spawn_start_finish_and_join() {
    let _turn = serial();
    let path = trace_path("thread-helper");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let ok = hindsight_recorder::thread::spawn("worker", || 1 + 1).unwrap();
    assert_eq!(ok.join().unwrap(), 2);
    let failing = hindsight_recorder::thread::spawn("failing", || panic!("on purpose")).unwrap();
    assert!(failing.join().is_err());
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let kinds: Vec<_> = trace.events.iter().map(|e| e.kind.name()).collect();
    for name in [
        "thread_spawned",
        "thread_started",
        "thread_finished",
        "thread_join_requested",
        "thread_joined",
    ] {
        assert_eq!(kinds.iter().filter(|k| **k == name).count(), 2, "{name}");
    }
    assert!(trace.events.iter().any(|e| e.kind == EventKind::ThreadFinished { panicked: true }));
    // Every spawned thread is defined, and starts after it was spawned.
    for event in &trace.events {
        if let EventKind::ThreadSpawned { thread, .. } = event.kind {
            let start = trace
                .events
                .iter()
                .find(|e| e.thread == thread && e.kind == EventKind::ThreadStarted)
                .unwrap();
            assert!(start.time_ns >= event.time_ns);
        }
    }
    let _ = TaskId(0);
    let _ = std::fs::remove_file(&path);
}
