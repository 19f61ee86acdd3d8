//! tokio's own locks, recorded through tokio's instrumentation, carry only their creation site
//! (tokio's resource spans give no call site): a finding labels that site "created", never
//! "holding", "waiting" or "acquired", and says tokio gave no call site (issue 21, item 5).

mod common;

use common::{analyze, of_kind, sites};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{LockKind, TraceBuilder};

const MS: u64 = 1_000_000;

/// Eight tasks queue 150 ms each on a tokio mutex created at `src/db.rs:3:14`; the first holds
/// it across an `.await`.
///
/// ```text
/// worker  [task-0] acquire(db) ── poll ends pending ── ... ── release
///         [task-1..7]   request(db) .............. acquire, release (one after another)
/// ```
fn queued_on_a_tokio_mutex() -> TraceBuilder {
    queued_on_a_tokio_mutex_at(1)
}

/// [`queued_on_a_tokio_mutex`], its operations' sites spread over `ids` site definitions of the
/// one creation line (as the recorder defines one per kind of tokio operation).
fn queued_on_a_tokio_mutex_at(ids: usize) -> TraceBuilder {
    let mut b = TraceBuilder::new("tokio-sites");
    let worker = b.thread("worker");
    let sites: Vec<_> = (0..ids).map(|_| b.site("src/db.rs", 3, 14)).collect();
    let created = sites[0];
    let site = |task: usize| sites[task % ids];
    let db = b.lock(LockKind::Mutex, false, None, Some(created));
    let tasks: Vec<_> = (0..8).map(|i| b.task(&format!("task-{i}"), None)).collect();
    b.in_task(worker, tasks[0]).poll_start().acquire(db, created).poll_end(false);
    for (i, &task) in tasks.iter().enumerate().skip(1) {
        b.in_task(worker, task).poll_start().request(db, site(i)).poll_end(false);
    }
    b.advance(150 * MS);
    b.in_task(worker, tasks[0]).poll_start().release(db).poll_end(true).finish_task();
    for (i, &task) in tasks.iter().enumerate().skip(1) {
        b.in_task(worker, task).poll_start().acquire(db, site(i));
        b.advance(20 * MS);
        b.in_task(worker, task).release(db).poll_end(true).finish_task();
    }
    b
}

#[test]
fn a_tokio_lock_s_operations_at_its_one_creation_line_count_as_one_site() {
    let report = analyze(&queued_on_a_tokio_mutex_at(3));
    let lock = &report.locks[0];
    let at = |sites: &[hindsight_analyzer::report::SiteTime]| {
        sites.iter().map(|s| (s.site.clone(), s.count)).collect::<Vec<_>>()
    };
    assert_eq!(at(&lock.top_holding_sites), vec![("src/db.rs:3:14".to_owned(), 8)]);
    assert_eq!(at(&lock.top_waiting_sites), vec![("src/db.rs:3:14".to_owned(), 7)]);
    let found = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let created = ("created".to_owned(), "src/db.rs:3:14".to_owned());
    assert_eq!(sites(found[0]), vec![created.clone(), created]);
}

#[test]
fn a_tokio_mutex_hotspot_names_its_creation_site_as_such() {
    let report = analyze(&queued_on_a_tokio_mutex());
    let found = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let created = ("created".to_owned(), "src/db.rs:3:14".to_owned());
    assert_eq!(sites(found[0]), vec![created.clone(), created.clone()]);
    let evidence = found[0].evidence.join("\n");
    assert!(
        evidence.contains(
            "holding (tokio gives no call site; the lock was created at src/db.rs:3:14): 8 times"
        ),
        "{evidence}"
    );
    assert!(
        evidence.contains(
            "waiting (tokio gives no call site; the lock was created at src/db.rs:3:14): 7 times"
        ),
        "{evidence}"
    );
    assert!(!evidence.contains("holding at") && !evidence.contains("waiting at"), "{evidence}");
}

#[test]
fn the_waiters_of_a_tokio_guard_held_across_an_await_are_at_its_creation_site() {
    let report = analyze(&queued_on_a_tokio_mutex());
    let found = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let roles: Vec<String> = sites(found[0]).into_iter().map(|(role, _)| role).collect();
    // The guard's holding site and the seven waiters' sites: all the creation line.
    assert_eq!(roles, vec!["created"; 8], "{:?}", sites(found[0]));
    let meanwhile: Vec<&String> =
        found[0].evidence.iter().filter(|e| e.starts_with("meanwhile")).collect();
    assert_eq!(meanwhile.len(), 7, "{:#?}", found[0].evidence);
    assert!(
        meanwhile.iter().all(|e| e.ends_with(
            "for `src/db.rs:3:14` (tokio gives no call site; the lock was created at \
             src/db.rs:3:14)"
        )),
        "{meanwhile:#?}"
    );
}

/// Two tasks take two tokio mutexes, created at `src/db.rs:3:14` and `src/db.rs:4:14`, in
/// opposite orders; with `hang`, the second order never completes: each holds one and waits
/// for the other.
fn crossed_tokio_mutexes(hang: bool) -> TraceBuilder {
    let mut b = TraceBuilder::new("tokio-crossed");
    let worker = b.thread("worker");
    let (at_a, at_b) = (b.site("src/db.rs", 3, 14), b.site("src/db.rs", 4, 14));
    let a = b.lock(LockKind::Mutex, false, Some("a"), Some(at_a));
    let c = b.lock(LockKind::Mutex, false, Some("b"), Some(at_b));
    let (t1, t2) = (b.task("one", None), b.task("two", None));
    if hang {
        b.in_task(worker, t1).poll_start().acquire(a, at_a).request(c, at_b).poll_end(false);
        b.in_task(worker, t2).poll_start().acquire(c, at_b).request(a, at_a).poll_end(false);
        b.advance(2_000 * MS);
    } else {
        b.in_task(worker, t1).poll_start().acquire(a, at_a).acquire(c, at_b);
        b.in_task(worker, t1).release(c).release(a).poll_end(true).finish_task();
        b.in_task(worker, t2).poll_start().acquire(c, at_b).acquire(a, at_a);
        b.in_task(worker, t2).release(a).release(c).poll_end(true).finish_task();
    }
    b
}

#[test]
fn lock_order_and_deadlock_findings_on_tokio_locks_say_their_sites_are_creations() {
    for (hang, kind) in [(false, FindingKind::LockOrderCycle), (true, FindingKind::Deadlock)] {
        let report = analyze(&crossed_tokio_mutexes(hang));
        let found = of_kind(&report, kind);
        assert_eq!(found.len(), 1, "{:#?}", report.findings);
        let roles: Vec<String> = sites(found[0]).into_iter().map(|(role, _)| role).collect();
        // Each task's holding and requesting sites: all creation lines.
        assert_eq!(roles, vec!["created"; 4], "{kind:?}: {:?}", sites(found[0]));
        let evidence = found[0].evidence.join("\n");
        assert!(
            evidence.contains("created at src/db.rs:3:14 (tokio gives no call site)")
                && evidence.contains("(tokio gives no call site; the lock was created at"),
            "{kind:?}: {evidence}"
        );
        assert!(!evidence.contains("acquired at src/db.rs"), "{kind:?}: {evidence}");
    }
}
