//! `deadlock`: wait-for cycles at the end of the trace, with who holds and who waits for
//! what; and `stale-lock` leaves blocked holders to it.

mod common;

use common::{analyze, analyze_grouped, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{LockKind, TraceBuilder};

/// ```text
/// a: lock(sqlite)@10 ─────────── request(git)@11 ...  (blocked to the end)
/// b:            lock(git)@20 ─────────── request(sqlite)@21 ...
/// ```
fn deadlocked() -> TraceBuilder {
    let mut b = TraceBuilder::new("deadlock");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (sqlite, git) = (b.mutex("sqlite"), b.mutex("git"));
    let (s10, s11) = (b.site("src/a.rs", 10, 5), b.site("src/a.rs", 11, 5));
    let (s20, s21) = (b.site("src/b.rs", 20, 5), b.site("src/b.rs", 21, 5));
    b.on(ta).acquire(sqlite, s10);
    b.on(tb).acquire(git, s20);
    b.on(ta).request(git, s11);
    b.on(tb).request(sqlite, s21);
    b.advance(2_000_000_000);
    let main = b.thread("main");
    b.on(main).mark("no progress");
    b
}

#[test]
fn two_threads_waiting_for_each_others_lock_are_one_deadlock() {
    let report = analyze(&deadlocked());
    let kinds: Vec<_> = report.findings.iter().map(|f| (f.kind, f.severity)).collect();
    // The inversion that caused it was never completed (neither got its second lock), so
    // there is no lock-order edge: only the captured deadlock.
    assert_eq!(kinds, vec![(FindingKind::Deadlock, Severity::Error)]);
    let finding = &report.findings[0];
    assert_eq!(finding.title, "thread `a` and thread `b` wait for each other forever");
    assert_eq!(finding.threads, strings(&["a", "b"]));
    assert_eq!(finding.locks, strings(&["sqlite", "git"]));
    assert_eq!(
        sites(finding),
        vec![
            ("held".to_owned(), "src/a.rs:10:5".to_owned()),
            ("waiting".to_owned(), "src/a.rs:11:5".to_owned()),
            ("held".to_owned(), "src/b.rs:20:5".to_owned()),
            ("waiting".to_owned(), "src/b.rs:21:5".to_owned()),
        ]
    );
    assert_eq!(
        finding.evidence[0],
        "thread `a` holds `sqlite` (acquired at src/a.rs:10:5, t=0ns) and waits for `git` at \
         src/a.rs:11:5, held by thread `b`, since t=20ns"
    );
    let Detail::Deadlock(detail) = &finding.detail else { panic!() };
    assert_eq!(detail.cycle.len(), 2);
    assert_eq!(detail.cycle[0].waits_for, "git");
    assert_eq!(detail.cycle[1].holds.as_ref().map(|h| h.lock.as_str()), Some("git"));
    assert_eq!(finding.time_ns, 30);
}

#[test]
fn a_deadlock_is_found_whatever_order_the_file_holds_it_in() {
    assert_eq!(analyze_grouped(&deadlocked()).findings, analyze(&deadlocked()).findings);
}

#[test]
fn a_wait_that_ended_is_no_deadlock() {
    let mut b = TraceBuilder::new("contended");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let m = b.mutex("m");
    let s = b.site("src/a.rs", 1, 1);
    b.on(ta).acquire(m, s);
    b.on(tb).request(m, s);
    b.on(ta).release(m);
    b.on(tb).acquire(m, s).release(m);
    assert_eq!(analyze(&b).findings, vec![]);
}

#[test]
fn joining_a_thread_that_waits_for_a_lock_you_hold_is_a_deadlock() {
    let mut b = TraceBuilder::new("join");
    let (main, worker) = (b.thread("main"), b.thread("worker"));
    let config = b.mutex("config");
    let (s1, s2, s3) =
        (b.site("src/main.rs", 5, 5), b.site("src/main.rs", 6, 5), b.site("src/worker.rs", 9, 9));
    b.on(main).acquire(config, s1).spawn_thread(worker, None);
    b.on(worker).start().request(config, s3);
    b.on(main).request_join_thread(worker, Some(s2));
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.kind, FindingKind::Deadlock);
    // The story starts with the first to wait: the worker.
    assert_eq!(finding.threads, strings(&["worker", "main"]));
    assert_eq!(finding.locks, strings(&["config"]));
    let Detail::Deadlock(detail) = &finding.detail else { panic!() };
    let kinds: Vec<_> = detail.cycle.iter().map(|a| a.wait_kind.as_str()).collect();
    assert_eq!(kinds, vec!["lock", "thread"]);
    assert_eq!(
        finding.evidence[1],
        "thread `main` holds `config` (acquired at src/main.rs:5:5, t=0ns) and waits for \
         thread `worker` to finish at src/main.rs:6:5, since t=40ns"
    );
}

#[test]
fn tasks_blocked_on_each_others_async_locks_are_a_deadlock() {
    let mut b = TraceBuilder::new("tasks");
    let worker = b.thread("tokio-runtime-worker");
    let spawn = b.site("src/main.rs", 3, 5);
    let (t1, t2) = (b.task("ingest", Some(spawn)), b.task("flush", Some(spawn)));
    let (queue, disk) = (b.async_mutex("queue"), b.async_mutex("disk"));
    let s = b.site("src/main.rs", 10, 9);
    b.in_task(worker, t1).poll_start().acquire(queue, s).request(disk, s).poll_end(false);
    b.in_task(worker, t2).poll_start().acquire(disk, s).request(queue, s).poll_end(false);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.title, "task `ingest` and task `flush` wait for each other forever");
    assert_eq!(finding.tasks, strings(&["ingest", "flush"]));
    assert_eq!(finding.threads, strings(&["tokio-runtime-worker"]));
    assert_eq!(report.tasks.len(), 2);
    assert_eq!(report.tasks[0].polls, 1);
}

#[test]
fn relocking_a_held_mutex_is_a_deadlock_of_one_thread() {
    let mut b = TraceBuilder::new("relock");
    let t = b.thread("main");
    let m = b.mutex("config");
    let (s1, s2) = (b.site("src/main.rs", 3, 17), b.site("src/main.rs", 9, 21));
    b.on(t).acquire(m, s1).request(m, s2);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.kind, FindingKind::Deadlock);
    assert_eq!(finding.title, "thread `main` waits forever for a lock it holds itself");
    assert_eq!(
        sites(finding),
        vec![
            ("held".to_owned(), "src/main.rs:3:17".to_owned()),
            ("waiting".to_owned(), "src/main.rs:9:21".to_owned()),
        ]
    );
}

#[test]
fn upgrading_a_read_lock_to_a_write_lock_deadlocks_but_a_second_reader_does_not() {
    let mut b = TraceBuilder::new("upgrade");
    let ta = b.thread("a");
    let rw = b.rwlock("config");
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire_shared(rw, s).request(rw, s);
    let report = analyze(&b);
    let kinds: Vec<_> = report.findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(kinds, vec![(FindingKind::Deadlock, Severity::Error)]);

    let mut b = TraceBuilder::new("readers");
    let rw = b.rwlock("config");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    b.on(ta).acquire_shared(rw, s);
    b.on(tb).request_shared(rw, s);
    // b waits (a writer queued in between, say) while a still reads: a wait, not a cycle.
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::StaleLock);
    assert_eq!(report.findings[0].severity, Severity::Warning);
}

#[test]
fn an_abandoned_async_wait_is_no_longer_a_wait() {
    // Two tasks each hold one lock and ask for the other's, but both give up (a timeout
    // dropped the lock future): recorded as failed attempts, so nobody is blocked.
    let mut b = TraceBuilder::new("timeout");
    let worker = b.thread("worker");
    let (t1, t2) = (b.task("a", None), b.task("b", None));
    let (x, y) = (b.async_mutex("x"), b.async_mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.in_task(worker, t1).acquire(x, s).request(y, s).poll_end(false);
    b.in_task(worker, t2).acquire(y, s).request(x, s).poll_end(false);
    b.in_task(worker, t1).poll_start().try_fail(y, s).release(x).finish_task();
    b.in_task(worker, t2).poll_start().try_fail(x, s).release(y).finish_task();
    let report = analyze(&b);
    assert_eq!(report.findings, vec![]);
}

/// `a` holds `db` and a permit and waits for a permit; `b` holds a permit and waits for `db`;
/// `c` holds the third permit, with `c_waits` deciding whether `c` is still running (it will
/// give its permit back) or waits for `db` too.
fn permits(c_waits: bool) -> TraceBuilder {
    let mut b = TraceBuilder::new("permits");
    let (ta, tb, tc) = (b.thread("a"), b.thread("b"), b.thread("c"));
    let db = b.mutex("db");
    let permits = b.lock(LockKind::Semaphore, false, Some("permits"), None);
    let site = b.site("src/pool.rs", 3, 9);
    b.on(ta).acquire(db, site).acquire(permits, site);
    b.on(tb).acquire(permits, site);
    b.on(tc).acquire(permits, site);
    b.on(ta).request(permits, site);
    b.on(tb).request(db, site);
    if c_waits {
        b.on(tc).request(db, site);
    }
    b
}

/// The threads of each deadlock found (the locks still held at the end are stale-lock
/// findings too, beside the point here).
fn deadlocks(b: &TraceBuilder) -> Vec<Vec<String>> {
    let report = analyze(b);
    report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Deadlock)
        .map(|f| f.threads.clone())
        .collect()
}

#[test]
fn waiting_for_a_permit_is_a_deadlock_only_if_every_other_holder_is_stuck() {
    // `c` runs on and will give its permit back: `a` is not stuck.
    assert!(deadlocks(&permits(false)).is_empty());
    // Every permit holder waits for `db`, which `a` holds while it waits for a permit: two
    // cycles of one stuck group, at the same sites, are one finding listing both.
    assert_eq!(deadlocks(&permits(true)), vec![strings(&["a", "b", "c"])]);
    let report = analyze(&permits(true));
    let deadlock = report.findings.iter().find(|f| f.kind == FindingKind::Deadlock).unwrap();
    let cycles: Vec<_> = deadlock.instances.iter().map(|i| i.threads.clone()).collect();
    assert_eq!(cycles, vec![strings(&["a", "b"]), strings(&["a", "c"])]);
}

#[test]
fn waiting_for_a_permit_of_a_counter_semaphore_is_not_claimed() {
    // The same stuck holders, but the semaphore is used as a counter: a permit was forgotten
    // and permits are added back by whoever produces them, which the trace cannot name. So
    // the waiter is not proved stuck, and no deadlock is claimed through it.
    let mut b = permits(true);
    let permits = hindsight_recorder::format::LockId(1);
    let producer = b.thread("producer");
    b.on(producer).permits(permits, hindsight_recorder::format::PermitOp::Added, 1);
    assert_eq!(deadlocks(&b), Vec::<Vec<String>>::new());
}

#[test]
fn waiting_for_a_permit_while_holding_the_only_ones_is_a_deadlock_of_one() {
    let mut b = TraceBuilder::new("permits");
    let t = b.thread("a");
    let permits = b.lock(LockKind::Semaphore, false, Some("permits"), None);
    let site = b.site("src/pool.rs", 3, 9);
    b.on(t).acquire(permits, site).acquire(permits, site).request(permits, site);
    assert_eq!(deadlocks(&b), vec![strings(&["a"])]);
}

/// Two readers, each holding one fair `RwLock` for reading, and a writer queued on each lock
/// before the other reader asks: the readers wait behind the writers, the writers for the
/// readers. A captured deadlock of four (issue 19, case 5).
#[test]
fn readers_queued_behind_waiting_writers_are_a_captured_deadlock() {
    let mut b = TraceBuilder::new("rw-hang");
    let (r1, r2, w1, w2) = (b.thread("r1"), b.thread("r2"), b.thread("w1"), b.thread("w2"));
    let (config, routes) = (b.async_rwlock("config"), b.async_rwlock("routes"));
    let s = |b: &mut TraceBuilder, line| b.site("src/router.rs", line, 9);
    let (s1, s2, s3, s4, s5, s6) =
        (s(&mut b, 1), s(&mut b, 2), s(&mut b, 3), s(&mut b, 4), s(&mut b, 5), s(&mut b, 6));
    b.on(r1).acquire_shared(config, s1);
    b.on(r2).acquire_shared(routes, s2);
    b.on(w1).request(config, s3);
    b.on(w2).request(routes, s4);
    b.on(r1).request_shared(routes, s5);
    b.on(r2).request_shared(config, s6);
    b.advance(2_000_000_000);
    let report = analyze(&b);
    let kinds: Vec<_> = report.findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(kinds, vec![(FindingKind::Deadlock, Severity::Error)], "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.threads, strings(&["w1", "r1", "w2", "r2"]));
    assert!(
        finding.evidence.iter().any(|e| e.starts_with("thread `r1` holds `config`")
            && e.contains(
                "waits to read `routes` at src/router.rs:5:9, queued behind thread `w2`"
            )),
        "{:#?}",
        finding.evidence
    );
}

/// The same with user-defined locks (recorded through the tracing convention), whose policy
/// is unknown: no reader is assumed to wait behind a writer, so no deadlock is claimed.
#[test]
fn readers_of_a_lock_of_unknown_policy_are_not_assumed_queued() {
    let mut b = TraceBuilder::new("rw-unknown");
    let (r1, r2, w1, w2) = (b.thread("r1"), b.thread("r2"), b.thread("w1"), b.thread("w2"));
    let config = b.lock(LockKind::Custom, true, Some("config"), None);
    let routes = b.lock(LockKind::Custom, true, Some("routes"), None);
    let s = b.site("src/router.rs", 1, 9);
    b.on(r1).acquire_shared(config, s);
    b.on(r2).acquire_shared(routes, s);
    b.on(w1).request(config, s);
    b.on(w2).request(routes, s);
    b.on(r1).request_shared(routes, s);
    b.on(r2).request_shared(config, s);
    b.advance(2_000_000_000);
    let report = analyze(&b);
    assert!(of_deadlocks(&report).is_empty(), "{:#?}", report.findings);
}

fn of_deadlocks(report: &hindsight_analyzer::Report) -> Vec<&hindsight_analyzer::Finding> {
    report.findings.iter().filter(|f| f.kind == FindingKind::Deadlock).collect()
}

/// A writer holds `index` and waits to write `table`, which two readers hold while each
/// waits for `index`: two wait cycles of one stuck group, at different sites, are one
/// incident, one finding that lists both.
#[test]
fn one_stuck_group_is_one_finding_listing_its_cycles() {
    let mut b = TraceBuilder::new("stuck-group");
    let (w, r1, r2) = (b.thread("writer"), b.thread("reader-1"), b.thread("reader-2"));
    let (index, table) = (b.mutex("index"), b.rwlock("table"));
    let site = |b: &mut TraceBuilder, line| b.site("src/db.rs", line, 5);
    let (s1, s2, s3, s4, s5) =
        (site(&mut b, 1), site(&mut b, 2), site(&mut b, 3), site(&mut b, 4), site(&mut b, 5));
    b.on(r1).acquire_shared(table, s1);
    b.on(r2).acquire_shared(table, s2);
    b.on(w).acquire(index, s3).request(table, s3);
    b.on(r1).request(index, s4);
    b.on(r2).request(index, s5);
    b.advance(2_000_000_000);
    let report = analyze(&b);
    let deadlocks = of_deadlocks(&report);
    assert_eq!(deadlocks.len(), 1, "{:#?}", report.findings);
    let Detail::Deadlock(detail) = &deadlocks[0].detail else { panic!() };
    assert_eq!(detail.cycle.len(), 2);
    assert_eq!(detail.other_cycles.len(), 1);
    assert_eq!(deadlocks[0].instances.len(), 2);
    assert_eq!(deadlocks[0].threads, strings(&["writer", "reader-1", "reader-2"]));
}

/// A thread waits two seconds at the end for a lock whose holder is busy (it waits for
/// nothing the trace shows): no cycle, but a hang worth a warning that says who holds it.
#[test]
fn a_long_wait_with_no_cycle_is_a_warning_naming_the_holder() {
    let mut b = TraceBuilder::new("long-wait");
    let (worker, client) = (b.thread("compactor"), b.thread("client"));
    let db = b.mutex("db");
    let (held, waits) = (b.site("src/compact.rs", 12, 9), b.site("src/client.rs", 40, 5));
    b.on(worker).acquire(db, held);
    b.on(client).request(db, waits);
    b.advance(2_000_000_000);
    let main = b.thread("main");
    b.on(main).mark("dump");
    let report = analyze(&b);
    let found: Vec<_> = report.findings.iter().map(|f| (f.kind, f.severity)).collect();
    // (The hold still open at the end is a stale-lock finding of its own.)
    let expected = vec![
        (FindingKind::Deadlock, Severity::Warning),
        (FindingKind::StaleLock, Severity::Warning),
    ];
    assert_eq!(found, expected, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert!(finding.title.starts_with("thread `client` waited 2.0"), "{}", finding.title);
    assert!(finding
        .title
        .ends_with("for `db` until the trace ended, with no deadlock cycle found"));
    assert_eq!(finding.locks, strings(&["db"]));
    assert!(
        finding
            .evidence
            .iter()
            .any(|e| e.starts_with("thread `compactor` holds it and is not waiting")),
        "{:#?}",
        finding.evidence
    );
}

#[test]
fn a_stuck_group_with_more_cycles_than_listed_is_one_finding_that_says_so() {
    // Six threads each hold a permit of a full pool and ask for a second one: each waits for
    // any of the other five, all stuck, a group of hundreds of cycles.
    let mut b = TraceBuilder::new("pool");
    let pool = b.lock(LockKind::Semaphore, false, Some("pool"), None);
    let site = b.site("src/pool.rs", 3, 9);
    let threads: Vec<_> = (0..6).map(|i| b.thread(&format!("w{i}"))).collect();
    for &t in &threads {
        b.on(t).acquire(pool, site);
    }
    for &t in &threads {
        b.on(t).request(pool, site);
    }
    let report = analyze(&b);
    let found = of_deadlocks(&report);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].threads.len(), 6);
    let last = found[0].evidence.last().expect("evidence");
    assert!(last.starts_with("the group has more cycles than listed"), "{last}");
}
