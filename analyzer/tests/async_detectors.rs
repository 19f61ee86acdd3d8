//! `guard-across-await`, `blocking-in-async`, `contention-hotspot` with the lock statistics,
//! and deadlocks through task joins.

mod common;

use common::{analyze, of_kind, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind};
use hindsight_recorder::format::{LockId, LockKind, TraceBuilder};

const MS: u64 = 1_000_000;

/// ```text
/// worker-1: [update] write(contexts) ── poll ends pending ── (2 ms) ── poll ── release
/// worker-2:                               [reader] request(contexts) ........ acquire
/// ```
fn held_across_an_await(blocking: bool) -> TraceBuilder {
    let mut b = TraceBuilder::new("guard");
    let (w1, w2) = (b.thread("worker-1"), b.thread("worker-2"));
    let spawn = b.site("src/context.rs", 10, 5);
    let update = b.task("update_context_state", Some(spawn));
    let reader = b.task("reader", Some(spawn));
    let contexts = b.lock(LockKind::RwLock, blocking, Some("contexts"), None);
    let (take, wait) = (b.site("src/context.rs", 42, 30), b.site("src/context.rs", 60, 25));
    b.in_task(w1, update).poll_start().acquire(contexts, take).poll_end(false);
    b.in_task(w2, reader).poll_start().request_shared(contexts, wait);
    b.advance(2 * MS);
    b.in_task(w1, update).poll_start().release(contexts).poll_end(true).finish_task();
    b.in_task(w2, reader).acquire_shared(contexts, wait).release_shared(contexts).poll_end(true);
    b
}

#[test]
fn a_blocking_guard_held_across_an_await_is_an_error_with_its_evidence() {
    let report = analyze(&held_across_an_await(true));
    let found = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let finding = found[0];
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.locks, strings(&["contexts"]));
    assert_eq!(finding.tasks, strings(&["update_context_state", "reader"]));
    assert_eq!(
        sites(finding),
        vec![
            ("acquired".to_owned(), "src/context.rs:42:30".to_owned()),
            ("spawned".to_owned(), "src/context.rs:10:5".to_owned()),
            ("waiting".to_owned(), "src/context.rs:60:25".to_owned()),
        ]
    );
    let Detail::GuardAcrossAwait(detail) = &finding.detail else { panic!() };
    assert_eq!((detail.guard.as_str(), detail.suspensions), ("blocking", 1));
    assert_eq!(
        detail.suspended_ns,
        2 * MS + 30,
        "from the pending poll end (t=20) to the next poll"
    );
    assert_eq!(detail.waiters.len(), 1);
    assert_eq!(detail.waiters[0].actor, "task `reader`");
    assert_eq!(detail.waiters[0].waited_ns, 2 * MS + 20);
    // The reader waited on a blocking lock inside its poll for over 1 ms: its worker stalled.
    let stalled = of_kind(&report, FindingKind::BlockingInAsync);
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0].tasks, strings(&["reader"]));
    assert_eq!(stalled[0].locks, strings(&["contexts"]));
}

#[test]
fn an_async_guard_is_a_warning_when_someone_waited_and_info_otherwise() {
    let report = analyze(&held_across_an_await(false));
    let found = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(of_kind(&report, FindingKind::BlockingInAsync).is_empty(), "an async wait suspends");

    let mut b = TraceBuilder::new("alone");
    let worker = b.thread("worker");
    let task = b.task("flush", None);
    let buffer = b.async_mutex("buffer");
    let s = b.site("src/flush.rs", 3, 9);
    b.in_task(worker, task).poll_start().acquire(buffer, s).poll_end(false);
    b.in_task(worker, task).poll_start().release(buffer).poll_end(true);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Info);
}

#[test]
fn guards_dropped_before_the_await_nested_lock_waits_and_permits_are_not_findings() {
    let mut b = TraceBuilder::new("scoped");
    let worker = b.thread("worker");
    let (t1, t2) = (b.task("scoped", None), b.task("nested", None));
    let (a, c) = (b.async_mutex("a"), b.async_mutex("c"));
    let permits = b.lock(LockKind::Semaphore, false, Some("connections"), None);
    let s = b.site("src/lib.rs", 1, 1);
    // Guard dropped before suspending.
    b.in_task(worker, t1).poll_start().acquire(a, s).release(a).poll_end(false);
    // Holding `a` while suspended waiting for `c` is nested locking, for the lock-order detector.
    b.in_task(worker, t2).poll_start().acquire(a, s).request(c, s).poll_end(false);
    b.in_task(worker, t2).poll_start().acquire(c, s).release(c).release(a).poll_end(true);
    // A permit held across an await is what a semaphore is for.
    b.in_task(worker, t1).poll_start().acquire(permits, s).poll_end(false);
    b.in_task(worker, t1).poll_start().release(permits).poll_end(true);
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn a_long_poll_blocks_the_worker_but_the_blocking_pool_may_block() {
    let mut b = TraceBuilder::new("polls");
    let worker = b.thread("tokio-runtime-worker");
    let spawn = b.site("src/main.rs", 20, 5);
    let slow = b.task("checksum", Some(spawn));
    let quick = b.task("ping", Some(spawn));
    let pool = b.task_of_kind("file-read", "blocking", Some(spawn));
    b.in_task(worker, quick).poll_start().advance(MS).poll_end(true);
    b.in_task(worker, slow).poll_start().advance(50 * MS).poll_end(false);
    b.in_task(worker, slow).poll_start().advance(12 * MS).poll_end(true);
    b.in_task(worker, pool).poll_start().advance(300 * MS).poll_end(true);
    let report = analyze(&b);
    let found = of_kind(&report, FindingKind::BlockingInAsync);
    let names: Vec<&str> = found.iter().map(|f| f.tasks[0].as_str()).collect();
    assert_eq!(names, vec!["checksum"], "the blocking pool's task is meant to block");
    let Detail::BlockingInAsync(detail) = &found[0].detail else { panic!() };
    assert_eq!((detail.long_polls, detail.longest_poll_ns), (2, 50 * MS + 10));
    assert_eq!(sites(found[0]), vec![("spawned".to_owned(), "src/main.rs:20:5".to_owned())]);

    let strict = AnalyzeOptions { poll_threshold_ns: 60 * MS, ..AnalyzeOptions::default() };
    let report = analyze_bytes(vec![("t".into(), b.build())], &strict).unwrap();
    assert!(
        of_kind(&report, FindingKind::BlockingInAsync).is_empty(),
        "--poll-threshold moves the line past the 50 ms poll"
    );
}

/// Eight threads queue on `metrics` for up to 150 ms; `quiet` is taken without waiting.
fn contended() -> TraceBuilder {
    contended_by(8, TraceBuilder::mutex)
}

/// `workers` threads queue on `metrics` (made by `make`), each waiting 20 ms and holding one
/// ms longer than the last; `quiet` is taken without waiting.
fn contended_by(workers: usize, make: fn(&mut TraceBuilder, &str) -> LockId) -> TraceBuilder {
    let mut b = TraceBuilder::new("hot");
    let threads: Vec<_> = (0..workers).map(|i| b.thread(&format!("worker-{i}"))).collect();
    let metrics = make(&mut b, "metrics");
    let quiet = b.mutex("quiet");
    let (hot_path, record) = (b.site("src/metrics.rs", 30, 22), b.site("src/metrics.rs", 12, 9));
    for (i, &t) in threads.iter().enumerate() {
        b.on(t).request(metrics, hot_path);
        b.advance(20 * MS);
        b.on(t).acquire(metrics, hot_path);
        b.advance(i as u64 * MS);
        b.on(t).release(metrics).acquire(quiet, record).release(quiet);
    }
    b
}

#[test]
fn lock_statistics_give_waits_holds_owner_changes_and_top_sites() {
    let report = analyze(&contended());
    let metrics = report.locks.iter().find(|l| l.name == "metrics").unwrap();
    assert_eq!((metrics.acquisitions, metrics.contended, metrics.owner_changes), (8, 8, 7));
    assert_eq!(metrics.wait.count, 8);
    assert!(metrics.wait.max_ns >= 20 * MS && metrics.wait.max_ns <= 21 * MS, "{:?}", metrics.wait);
    assert!(metrics.wait.p99_ns >= metrics.wait.p50_ns);
    assert_eq!(metrics.hold.count, 8);
    assert_eq!(metrics.top_holding_sites[0].site, "src/metrics.rs:30:22");
    assert_eq!(metrics.top_waiting_sites[0].count, 8);
    let quiet = report.locks.iter().find(|l| l.name == "quiet").unwrap();
    assert_eq!((quiet.acquisitions, quiet.contended, quiet.wait.max_ns), (8, 0, 0));
    assert!(metrics.class_totals.is_none(), "a named lock is a class of one");
}

#[test]
fn the_lock_with_long_waits_is_the_only_hotspot() {
    let options = AnalyzeOptions { wait_threshold_ns: 15 * MS, ..AnalyzeOptions::default() };
    let report = analyze_bytes(vec![("t".into(), contended().build())], &options).unwrap();
    let found = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].locks, strings(&["metrics"]));
    assert_eq!(found[0].severity, Severity::Warning);
    let waiters: Vec<String> = (0..8).map(|i| format!("worker-{i}")).collect();
    assert_eq!(found[0].threads, waiters, "the threads that waited, in the order they did");
    assert_eq!(
        sites(found[0]),
        vec![
            ("holding".to_owned(), "src/metrics.rs:30:22".to_owned()),
            ("waiting".to_owned(), "src/metrics.rs:30:22".to_owned())
        ]
    );
    // With the default 100 ms threshold, 20 ms waits are no hotspot by length, but `metrics`
    // has all the wait time and a p99 over 10 ms: a hotspot by share.
    let report = analyze(&contended());
    let found = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(found.len(), 1);
    let Detail::ContentionHotspot(detail) = &found[0].detail else { panic!() };
    assert_eq!(detail.wait_share, 1.0);
}

#[test]
fn one_long_wait_is_no_hotspot_and_a_read_write_lock_is_not_told_to_become_one() {
    let options = AnalyzeOptions { wait_threshold_ns: 15 * MS, ..AnalyzeOptions::default() };
    let analyze_with = |b: TraceBuilder| analyze_bytes(vec![("t".into(), b.build())], &options);
    let report = analyze_with(contended_by(2, TraceBuilder::mutex)).unwrap();
    let statistics = report.locks.iter().find(|l| l.name == "metrics").unwrap();
    assert_eq!(statistics.contended, 2, "both waits are in the statistics");
    assert!(of_kind(&report, FindingKind::ContentionHotspot).is_empty(), "{:#?}", report.findings);

    let report = analyze_with(contended_by(8, TraceBuilder::rwlock)).unwrap();
    let found = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let help = found[0].help.as_deref().unwrap();
    assert!(help.contains("split the lock") && !help.contains("read-write"), "{help}");
    let report = analyze_with(contended()).unwrap();
    let help = of_kind(&report, FindingKind::ContentionHotspot)[0].help.clone().unwrap();
    assert!(help.contains("use a read-write lock if most holders only read"), "{help}");
}

/// ```text
/// task A: lock(registry) ── await B's handle .........
/// task B:                      request(registry) .....
/// ```
#[test]
fn a_task_awaiting_a_task_that_waits_for_its_lock_is_a_deadlock() {
    let mut b = TraceBuilder::new("join");
    let worker = b.thread("worker");
    let (a, c) = (b.task("supervisor", None), b.task("child", None));
    let registry = b.async_mutex("registry");
    let (take, join, wait) =
        (b.site("src/sup.rs", 5, 9), b.site("src/sup.rs", 7, 9), b.site("src/child.rs", 3, 9));
    b.in_task(worker, a).poll_start().acquire(registry, take).spawn_task(c, None);
    b.in_task(worker, a).request_join_task(c, Some(join)).poll_end(false);
    b.in_task(worker, c).poll_start().request(registry, wait).poll_end(false);
    let report = analyze(&b);
    let found = of_kind(&report, FindingKind::Deadlock);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].tasks.len(), 2);
    assert!(found[0].tasks.contains(&"supervisor".to_owned()));
    assert!(found[0].tasks.contains(&"child".to_owned()));
    assert!(
        of_kind(&report, FindingKind::GuardAcrossAwait).is_empty(),
        "the join is a recorded wait"
    );
}
