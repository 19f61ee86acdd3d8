//! `stale-lock`: poisoned locks, locks leaked by a holder that ended, locks still held when
//! the trace ended.

mod common;

use common::{analyze, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{EventKind, TraceBuilder};

#[test]
fn a_holder_that_panics_poisons_the_lock() {
    let mut b = TraceBuilder::new("poison");
    let worker = b.thread("worker");
    let cache = b.mutex("cache");
    let s = b.site("src/worker.rs", 12, 21);
    b.on(worker).start().acquire(cache, s).advance(5_000).release_poisoned(cache);
    b.on(worker).event(EventKind::ThreadFinished { panicked: true });
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.kind, FindingKind::StaleLock);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(
        finding.title,
        "lock `cache` was poisoned: thread `worker` panicked while holding it"
    );
    assert_eq!(finding.locks, strings(&["cache"]));
    assert_eq!(finding.threads, strings(&["worker"]));
    assert_eq!(sites(finding), vec![("acquired".to_owned(), "src/worker.rs:12:21".to_owned())]);
    let Detail::StaleLock(detail) = &finding.detail else { panic!() };
    assert_eq!((detail.reason.as_str(), detail.held_ns), ("poisoned", 5_010));
    assert!(report.locks[0].poisoned);
}

#[test]
fn a_lock_leaked_by_a_finished_thread_is_an_error() {
    let mut b = TraceBuilder::new("leak");
    let (main, worker) = (b.thread("main"), b.thread("worker"));
    let registry = b.mutex("registry");
    let s = b.site("src/worker.rs", 30, 5);
    b.on(worker).start().acquire(registry, s).finish();
    b.on(main).mark("done");
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(
        finding.title,
        "lock `registry` is still held by thread `worker`, which finished without releasing it"
    );
    let Detail::StaleLock(detail) = &finding.detail else { panic!() };
    assert_eq!(detail.reason, "holder-finished");
    assert_eq!(detail.acquired_at, "src/worker.rs:30:5");
}

#[test]
fn a_lock_held_by_a_running_thread_at_the_end_is_a_warning() {
    let mut b = TraceBuilder::new("cut");
    let t = b.thread("main");
    let m = b.mutex("m");
    let s = b.site("src/main.rs", 1, 1);
    b.on(t).acquire(m, s).advance(1_000).mark("dump");
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Warning);
    assert_eq!(
        report.findings[0].title,
        "lock `m` was still held by thread `main` when the trace ended"
    );
}

#[test]
fn a_lock_passed_to_another_thread_and_released_there_is_not_stale() {
    let mut b = TraceBuilder::new("moved");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let m = b.async_mutex("m");
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire(m, s).finish();
    b.on(tb).release(m).finish();
    assert_eq!(analyze(&b).findings, vec![]);
}

/// Six workers each leak the guard of their own connection lock, all made by one constructor
/// line and taken at one line: one bug, met six times, is one finding that names every
/// worker. A lock made elsewhere and leaked at the same line is another bug.
#[test]
fn the_same_leak_by_many_workers_is_one_finding_with_its_instances() {
    use hindsight_recorder::format::LockKind;
    let mut b = TraceBuilder::new("pool");
    let main = b.thread("main");
    let (made, taken) = (b.site("src/pool.rs", 40, 17), b.site("src/worker.rs", 30, 5));
    for i in 0..6 {
        let worker = b.thread(&format!("worker-{i}"));
        let connection = b.lock(LockKind::Mutex, true, None, Some(made));
        b.on(worker).start().acquire(connection, taken).advance(1_000).finish();
    }
    let elsewhere = b.site("src/admin.rs", 9, 5);
    let other = b.lock(LockKind::Mutex, true, None, Some(elsewhere));
    let admin = b.thread("admin");
    b.on(admin).start().acquire(other, taken).finish();
    b.on(main).mark("done");
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 2, "{:#?}", report.findings);
    let pool = &report.findings[0];
    assert_eq!(pool.instances.len(), 6);
    let workers: Vec<String> = (0..6).map(|i| format!("worker-{i}")).collect();
    assert_eq!(pool.threads, workers, "every worker, in the order they leaked");
    // (An unnamed lock is named after its creation site, as its class is.)
    assert_eq!(pool.locks, strings(&["src/pool.rs:40:17"]));
    assert!(
        pool.evidence.last().unwrap().starts_with("the same happened 6 times in all"),
        "{:?}",
        pool.evidence
    );
    let admin = &report.findings[1];
    assert_eq!((admin.threads.clone(), admin.instances.len()), (strings(&["admin"]), 0));
}
