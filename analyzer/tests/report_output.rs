//! The report's JSON shape (a contract with scripts), its text form, exit statuses, `--only`,
//! and hostile input.

mod common;

use hindsight_analyzer::report::{json, text};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind, Severity};
use hindsight_recorder::format::{
    EventKind, LockId, LockMode, SiteId, TaskId, ThreadId, TraceBuilder,
};
use serde_json::Value;
use std::num::NonZeroU64;

/// An inversion between two threads, and a lock leaked by a finished third.
fn incident() -> TraceBuilder {
    let mut b = TraceBuilder::new("incident");
    let (ta, tb, tc) = (b.thread("recorder"), b.thread("sync"), b.thread("janitor"));
    let (sqlite, git, leak) = (b.mutex("sqlite"), b.mutex("git"), b.mutex("leak"));
    let (s1, s2) = (b.site("src/a.rs", 1, 5), b.site("src/a.rs", 2, 5));
    let (s3, s4) = (b.site("src/b.rs", 3, 5), b.site("src/b.rs", 4, 5));
    b.on(ta).acquire(sqlite, s1).acquire(git, s2).release(git).release(sqlite);
    b.on(tb).acquire(git, s3).acquire(sqlite, s4).release(sqlite).release(git);
    b.on(tc).acquire(leak, s1).finish();
    b
}

fn report(options: &AnalyzeOptions) -> hindsight_analyzer::Report {
    analyze_bytes(vec![("incident.trace".to_owned(), incident().build())], options)
        .expect("readable")
}

#[test]
fn json_has_the_documented_shape() {
    let value: Value =
        serde_json::from_str(&json::render(&report(&AnalyzeOptions::default()))).expect("json");
    let keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["findings", "locks", "tasks", "trace"]);
    let findings = value["findings"].as_array().expect("array");
    assert_eq!(findings.len(), 2);
    for finding in findings {
        for key in [
            "kind",
            "severity",
            "title",
            "locks",
            "threads",
            "tasks",
            "variables",
            "sites",
            "time_ns",
        ] {
            assert!(finding.get(key).is_some(), "finding lacks `{key}`: {finding}");
        }
        for site in finding["sites"].as_array().expect("sites") {
            let mut keys: Vec<&str> =
                site.as_object().expect("site").keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, vec!["col", "file", "line", "role"]);
        }
    }
    assert_eq!(findings[0]["kind"], "lock-order-cycle");
    assert_eq!(findings[0]["severity"], "error");
    assert_eq!(findings[0]["locks"], serde_json::json!(["sqlite", "git"]));
    assert_eq!(
        findings[0]["sites"][0],
        serde_json::json!({"file": "src/a.rs", "line": 1, "col": 5, "role": "held"})
    );
    assert_eq!(findings[1]["kind"], "stale-lock");
    let lock = &value["locks"][0];
    assert_eq!(lock["name"], "sqlite");
    assert_eq!(lock["kind"], "mutex");
    assert_eq!(lock["class"], "sqlite");
    assert_eq!(lock["acquisitions"], 2);
    assert_eq!(lock["contended"], 0);
    // Ten, and the recorder's clean end.
    assert_eq!(value["trace"]["events"], 11);
}

#[test]
fn json_reads_back_into_the_same_report() {
    let mut report = report(&AnalyzeOptions::default());
    let back: hindsight_analyzer::Report =
        serde_json::from_str(&json::render(&report)).expect("json");
    // All but the lock-order graph, which the JSON report leaves out (its contracted shape).
    assert_eq!((report.lock_orders.len(), report.lock_orders_total), (2, 2));
    report.lock_orders.clear();
    report.lock_orders_total = 0;
    assert_eq!(back, report);
}

#[test]
fn text_groups_findings_by_severity_with_evidence_and_help() {
    let out = text::render(&report(&AnalyzeOptions::default()));
    let expected_start = "incident.trace: incident (pid 1) on builder, 11 events\n\
         analysed 11 events over 90ns (t=0ns to 90ns): 3 threads, 0 tasks, 3 locks\n\
         \n\
         Errors (2):\n\
         \n\
         error[lock-order-cycle]: locks `sqlite` and `git` are taken in opposite orders\n  \
         at t=50ns; threads: `recorder`, `sync`\n  \
         - thread `recorder` holds `sqlite` (acquired at src/a.rs:1:5) and takes `git` at src/a.rs:2:5, t=10ns\n  \
         - thread `sync` holds `git` (acquired at src/b.rs:3:5) and takes `sqlite` at src/b.rs:4:5, t=50ns\n";
    assert!(out.starts_with(expected_start), "{out}");
    assert!(out.contains("\n  help: take these locks in one global order everywhere (for example always `sqlite` before `git`), or take them only while holding one common outer lock\n"), "{out}");
    assert!(out.contains("\nerror[stale-lock]: lock `leak` is still held by thread `janitor`, which finished without releasing it\n"), "{out}");
    assert!(out.ends_with("\n2 errors, 0 warnings, 0 info\n"), "{out}");
    // The locks that made their users wait longest, before the count.
    assert!(out.contains("\nLocks (by total wait):\n  lock "), "{out}");
    for lock in ["`sqlite`", "`git`", "`leak`"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("  {lock} "))), "{lock} in {out}");
    }
}

#[test]
fn exit_status_follows_fail_on_and_only() {
    let default = AnalyzeOptions::default();
    assert_eq!(default.exit_code(&report(&default)), 1);
    let only_deadlocks = AnalyzeOptions { only: vec![FindingKind::Deadlock], ..default.clone() };
    let r = report(&only_deadlocks);
    assert!(r.findings.is_empty());
    assert_eq!(only_deadlocks.exit_code(&r), 0);
    let only_stale = AnalyzeOptions { only: vec![FindingKind::StaleLock], ..default.clone() };
    let kinds: Vec<_> = report(&only_stale).findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::StaleLock]);

    // A lone single-thread cycle is info: it fails only with --fail-on info.
    let mut b = TraceBuilder::new("info");
    let t = b.thread("main");
    let (x, y) = (b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(t).acquire(x, s).acquire(y, s).release(y).release(x);
    b.on(t).acquire(y, s).acquire(x, s).release(x).release(y);
    let info = analyze_bytes(vec![("t".into(), b.build())], &default).expect("readable");
    assert_eq!(default.exit_code(&info), 0);
    let strict = AnalyzeOptions { fail_on: Severity::Info, ..default };
    assert_eq!(strict.exit_code(&info), 1);
}

#[test]
fn undefined_and_huge_ids_do_not_panic_or_allocate() {
    let mut b = TraceBuilder::new("hostile");
    let t = b.thread("main");
    let huge = LockId(u32::MAX - 1);
    let site = SiteId(u32::MAX);
    let acquired = |lock, seq| EventKind::LockAcquired {
        lock,
        mode: LockMode::Exclusive,
        site,
        seq: NonZeroU64::new(seq),
        via_try: false,
    };
    b.event(t, Some(TaskId(4_000_000_000)), acquired(huge, u64::MAX));
    b.event(ThreadId(3_000_000_000), None, acquired(LockId(7), 5));
    b.event(ThreadId(3_000_000_000), None, acquired(huge, 1));
    b.event(t, None, EventKind::ThreadJoined { thread: ThreadId(u32::MAX), site: None });
    let report =
        analyze_bytes(vec![("t".into(), b.build())], &AnalyzeOptions::default()).expect("readable");
    // Four, and the clean end.
    assert_eq!(report.trace.events, 5);
    assert_eq!(report.locks.len(), 2);
    assert_eq!(report.locks[0].name, "lock#0");
}

#[test]
fn a_file_that_is_not_a_trace_is_an_error_naming_it() {
    let error =
        analyze_bytes(vec![("notes.txt".into(), b"hello".to_vec())], &AnalyzeOptions::default())
            .expect_err("not a trace");
    assert_eq!(error.to_string(), "notes.txt: not a hindsight trace (wrong magic number)");
}

#[test]
fn a_truncated_trace_is_analysed_as_far_as_it_reads() {
    let mut bytes = incident().build();
    bytes.truncate(bytes.len() - 3);
    let report = analyze_bytes(vec![("cut.trace".into(), bytes)], &AnalyzeOptions::default())
        .expect("readable");
    assert!(report.trace.truncated_bytes > 0);
    assert_eq!(report.findings[0].kind, FindingKind::LockOrderCycle);
}

/// A task without a name holds a blocking lock across an await that a named task waits for:
/// the text names the unnamed one by its number and where it was spawned, the named one by its
/// name only.
#[test]
fn text_names_an_unnamed_task_with_its_spawn_site() {
    let mut b = TraceBuilder::new("tasks");
    let (w1, w2) = (b.thread("worker-1"), b.thread("worker-2"));
    let spawn = b.site("src/server.rs", 40, 9);
    let (unnamed, reader) = (b.task("", Some(spawn)), b.task("reader", Some(spawn)));
    let cache = b.lock(hindsight_recorder::format::LockKind::Mutex, true, Some("cache"), None);
    let (take, wait) = (b.site("src/server.rs", 42, 13), b.site("src/server.rs", 60, 13));
    b.in_task(w1, unnamed).poll_start().acquire(cache, take).poll_end(false);
    b.in_task(w2, reader).poll_start().request(cache, wait);
    b.advance(2_000_000);
    b.in_task(w1, unnamed).poll_start().release(cache).poll_end(true).finish_task();
    b.in_task(w2, reader).acquire(cache, wait).release(cache).poll_end(true);
    let report = analyze_bytes(vec![("tasks.trace".to_owned(), b.build())], &Default::default())
        .expect("readable");
    let out = text::render(&report);
    let actors = "threads/tasks: `worker-1`, `worker-2`, task `task#1` (spawned at \
                  src/server.rs:40:9), task `reader`\n";
    assert!(out.contains(actors), "{out}");
}

/// tokio's own tasks — a `block_on` future, the launches of its workers from its own source —
/// are not counted as the program's tasks, in the text and in JSON (`"runtime": true`).
#[test]
fn text_and_json_count_the_runtimes_own_tasks_apart() {
    let mut b = TraceBuilder::new("runtime");
    let main = b.thread("main");
    let launch = b.site("tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs", 515, 13);
    let spawn = b.site("src/main.rs", 9, 5);
    let tasks = [
        b.task_of_kind("", "blocking", Some(launch)),
        b.task_of_kind("", "block_on", Some(spawn)),
        b.task_of_kind("", "blocking", Some(spawn)),
        b.task_of_kind("serve", "task", Some(spawn)),
    ];
    for task in tasks {
        b.in_task(main, task).poll_start().poll_end(true).finish_task();
    }
    let report = analyze_bytes(vec![("runtime.trace".to_owned(), b.build())], &Default::default())
        .expect("readable");
    let out = text::render(&report);
    assert!(out.contains(": 1 thread, 2 tasks (and 2 of the runtime's own), 0 locks\n"), "{out}");
    let json: Value = serde_json::from_str(&json::render(&report)).expect("JSON");
    let runtime: Vec<bool> = (json["tasks"].as_array().expect("tasks").iter())
        .map(|task| task["runtime"].as_bool().expect("a flag"))
        .collect();
    assert_eq!(runtime, [true, true, false, false]);
}
