//! `lock-order-cycle`: conflicting lock orders between threads are errors; orders that cannot
//! deadlock (one thread, a common gate lock, readers only, `try_lock`) are not.

mod common;

use common::{analyze, analyze_grouped, of_kind, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind};
use hindsight_recorder::format::{LockKind, TraceBuilder};

/// ```text
/// failure-recorder: lock(sqlite)@20 ── lock(git)@21 ── unlock ── unlock
/// sync:                                                          lock(git)@30 ── lock(sqlite)@31 ...
/// ```
fn inversion() -> TraceBuilder {
    let mut b = TraceBuilder::new("inversion");
    let recorder = b.thread("failure-recorder");
    let sync = b.thread("sync");
    let sqlite = b.mutex("sqlite");
    let git = b.mutex("git");
    let s20 = b.site("src/store.rs", 20, 9);
    let s21 = b.site("src/store.rs", 21, 9);
    let s30 = b.site("src/sync.rs", 30, 13);
    let s31 = b.site("src/sync.rs", 31, 13);
    b.on(recorder).acquire(sqlite, s20).acquire(git, s21).release(git).release(sqlite);
    b.advance(1_000_000);
    b.on(sync).acquire(git, s30).acquire(sqlite, s31).release(sqlite).release(git);
    b
}

#[test]
fn opposite_orders_in_two_threads_are_one_error_with_all_four_sites() {
    let report = analyze(&inversion());
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.kind, FindingKind::LockOrderCycle);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.title, "locks `sqlite` and `git` are taken in opposite orders");
    assert_eq!(finding.locks, strings(&["sqlite", "git"]));
    assert_eq!(finding.threads, strings(&["failure-recorder", "sync"]));
    assert!(finding.tasks.is_empty());
    assert_eq!(
        sites(finding),
        vec![
            ("held".to_owned(), "src/store.rs:20:9".to_owned()),
            ("acquired".to_owned(), "src/store.rs:21:9".to_owned()),
            ("held".to_owned(), "src/sync.rs:30:13".to_owned()),
            ("acquired".to_owned(), "src/sync.rs:31:13".to_owned()),
        ]
    );
    assert_eq!(
        finding.evidence[0],
        "thread `failure-recorder` holds `sqlite` (acquired at src/store.rs:20:9) and takes \
         `git` at src/store.rs:21:9, t=10ns"
    );
    let Detail::LockOrderCycle(detail) = &finding.detail else { panic!("{:?}", finding.detail) };
    assert_eq!(detail.edges.len(), 2);
    assert_eq!(detail.reason, None);
    assert_eq!(finding.time_ns, detail.edges[1].time_ns);
}

#[test]
fn the_same_inversion_is_found_whatever_order_the_file_holds_it_in() {
    assert_eq!(analyze_grouped(&inversion()).findings, analyze(&inversion()).findings);
}

#[test]
fn both_orders_in_one_thread_are_info_only() {
    let mut b = TraceBuilder::new("one-thread");
    let t = b.thread("main");
    let (x, y) = (b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(t).acquire(x, s).acquire(y, s).release(y).release(x);
    b.on(t).acquire(y, s).acquire(x, s).release(x).release(y);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1);
    let finding = &report.findings[0];
    assert_eq!(finding.severity, Severity::Info);
    assert!(finding.title.ends_with("but cannot deadlock"), "{}", finding.title);
    let Detail::LockOrderCycle(detail) = &finding.detail else { panic!() };
    assert!(detail.reason.as_deref().is_some_and(|r| r.contains("one thread or task")));
}

/// ```text
/// a: lock(gate) lock(x) lock(y) unlock unlock unlock
/// b:                                                lock(gate) lock(y) lock(x) ...
/// ```
#[test]
fn orders_always_taken_under_one_gate_lock_are_info_only() {
    let mut b = TraceBuilder::new("gate");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (gate, x, y) = (b.mutex("gate"), b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    for _ in 0..3 {
        b.on(ta).acquire(gate, s).acquire(x, s).acquire(y, s).release(y).release(x).release(gate);
        b.on(tb).acquire(gate, s).acquire(y, s).acquire(x, s).release(x).release(y).release(gate);
    }
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].severity, Severity::Info);
    assert_eq!(report.findings[0].locks, strings(&["x", "y"]));
    let Detail::LockOrderCycle(detail) = &report.findings[0].detail else { panic!() };
    assert!(detail.reason.as_deref().is_some_and(|r| r.contains("`gate`")));
}

#[test]
fn a_gate_taken_only_sometimes_does_not_excuse_the_cycle() {
    let mut b = TraceBuilder::new("gate-sometimes");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (gate, x, y) = (b.mutex("gate"), b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire(gate, s).acquire(x, s).acquire(y, s).release(y).release(x).release(gate);
    b.on(tb).acquire(gate, s).acquire(y, s).acquire(x, s).release(x).release(y).release(gate);
    b.on(tb).acquire(y, s).acquire(x, s).release(x).release(y);
    let report = analyze(&b);
    assert_eq!(of_kind(&report, FindingKind::LockOrderCycle).len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Error);
}

#[test]
fn a_gate_held_in_shared_mode_does_not_serialise_anything() {
    let mut b = TraceBuilder::new("shared-gate");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let gate = b.rwlock("gate");
    let (x, y) = (b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire_shared(gate, s).acquire(x, s).acquire(y, s);
    b.on(ta).release(y).release(x).release_shared(gate);
    b.on(tb).acquire_shared(gate, s).acquire(y, s).acquire(x, s);
    b.on(tb).release(x).release(y).release_shared(gate);
    let report = analyze(&b);
    let cycles = of_kind(&report, FindingKind::LockOrderCycle);
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].severity, Severity::Error);
    assert_eq!(cycles[0].locks, strings(&["x", "y"]));
}

#[test]
fn cycles_of_read_acquisitions_only_are_info_only() {
    let mut b = TraceBuilder::new("readers");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (x, y) = (b.rwlock("x"), b.rwlock("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire_shared(x, s).acquire_shared(y, s).release_shared(y).release_shared(x);
    b.on(tb).acquire_shared(y, s).acquire_shared(x, s).release_shared(x).release_shared(y);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Info);
    let Detail::LockOrderCycle(detail) = &report.findings[0].detail else { panic!() };
    assert!(detail.reason.as_deref().is_some_and(|r| r.contains("shared (read)")));
}

#[test]
fn a_writer_in_the_cycle_makes_it_an_error() {
    // a holds x for reading and wants y for writing; b holds y for reading and wants x for
    // writing: each writer waits for the other's reader.
    let mut b = TraceBuilder::new("writer");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (x, y) = (b.rwlock("x"), b.rwlock("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire_shared(x, s).acquire(y, s).release(y).release_shared(x);
    b.on(tb).acquire_shared(y, s).acquire(x, s).release(x).release_shared(y);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Error);
}

#[test]
fn try_lock_acquisitions_add_no_order() {
    let mut b = TraceBuilder::new("try");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (x, y) = (b.mutex("x"), b.mutex("y"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire(x, s).acquire(y, s).release(y).release(x);
    b.on(tb).acquire(y, s).try_acquire(x, s).release(x).release(y);
    assert_eq!(analyze(&b).findings, vec![]);
}

#[test]
fn a_cycle_through_three_threads_names_its_three_locks_once() {
    let mut b = TraceBuilder::new("three");
    let ts: Vec<_> = ["a", "b", "c"].iter().map(|n| b.thread(n)).collect();
    let ls: Vec<_> = ["x", "y", "z"].iter().map(|n| b.mutex(n)).collect();
    let s = b.site("src/main.rs", 1, 1);
    for i in 0..3 {
        let (first, second) = (ls[i], ls[(i + 1) % 3]);
        b.on(ts[i]).acquire(first, s).acquire(second, s).release(second).release(first);
    }
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.locks, strings(&["x", "y", "z"]));
    assert_eq!(finding.threads, strings(&["a", "b", "c"]));
    assert_eq!(finding.title, "locks `x`, `y` and `z` are taken in a cyclic order");
}

#[test]
fn a_cycle_whose_every_edge_is_one_threads_in_turn_is_not_a_deadlock() {
    // x→y and y→z by thread a (nested), z→x by b: a cannot wait at two places, but x→z (a
    // holds x when it takes z) and z→x form a real two-lock inversion.
    let mut b = TraceBuilder::new("nested");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (x, y, z) = (b.mutex("x"), b.mutex("y"), b.mutex("z"));
    let s = b.site("src/main.rs", 1, 1);
    b.on(ta).acquire(x, s).acquire(y, s).acquire(z, s).release(z).release(y).release(x);
    b.on(tb).acquire(z, s).acquire(x, s).release(x).release(z);
    let report = analyze(&b);
    let errors: Vec<_> = report.findings.iter().filter(|f| f.severity == Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{:#?}", report.findings);
    assert_eq!(errors[0].locks, strings(&["x", "z"]));
    // x → y → z → x needs thread a twice: info.
    assert_eq!(report.findings.len(), 2);
    assert_eq!(report.findings[1].severity, Severity::Info);
    assert_eq!(report.findings[1].locks.len(), 3);
}

#[test]
fn locks_always_taken_in_one_order_give_nothing() {
    let mut b = TraceBuilder::new("ordered");
    let ts: Vec<_> = (0..8).map(|i| b.thread(&format!("t{i}"))).collect();
    let (agents, files, metrics) =
        (b.async_rwlock("agents"), b.async_rwlock("context_files"), b.async_rwlock("metrics"));
    let s = b.site("src/main.rs", 1, 1);
    for round in 0..20 {
        for &t in &ts {
            if round % 2 == 0 {
                b.on(t).acquire_shared(agents, s).acquire(files, s).acquire(metrics, s);
                b.on(t).release(metrics).release(files).release_shared(agents);
            } else {
                b.on(t).acquire(agents, s).acquire_shared(metrics, s);
                b.on(t).release_shared(metrics).release(agents);
            }
        }
    }
    assert_eq!(analyze_grouped(&b).findings, vec![]);
}

#[test]
fn per_object_locks_are_one_class_named_by_their_creation_site() {
    // Two account locks created at one site, nested in either order by two threads, and an
    // audit lock: account → audit by one thread, audit → account by another.
    let mut b = TraceBuilder::new("classes");
    let (ta, tb) = (b.thread("transfer"), b.thread("audit"));
    let created = b.site("src/bank.rs", 5, 17);
    let acc1 = b.lock(LockKind::Mutex, true, None, Some(created));
    let acc2 = b.lock(LockKind::Mutex, true, None, Some(created));
    let audit = b.mutex("audit");
    let s = b.site("src/bank.rs", 40, 9);
    let t = b.site("src/bank.rs", 41, 9);
    b.on(ta).acquire(acc1, s).acquire(acc2, s).release(acc2).release(acc1);
    b.on(tb).acquire(acc2, s).acquire(acc1, s).release(acc1).release(acc2);
    b.on(ta).acquire(acc1, s).acquire(audit, t).release(audit).release(acc1);
    b.on(tb).acquire(audit, t).acquire(acc2, s).release(acc2).release(audit);
    let report = analyze(&b);
    // The two accounts are two locks of one class taken in both orders: a deadlock that a
    // schedule shows (issue 19, case 7). The account/audit cycle exists only between the
    // classes (each thread took a different account): a warning naming them.
    let found: Vec<_> = report.findings.iter().map(|f| (f.severity, f.locks.clone())).collect();
    assert_eq!(
        found,
        vec![
            (Severity::Error, strings(&["src/bank.rs:5:17", "src/bank.rs:5:17"])),
            (Severity::Warning, strings(&["src/bank.rs:5:17", "audit"])),
        ],
        "{:#?}",
        report.findings
    );
    let Detail::LockOrderCycle(accounts) = &report.findings[0].detail else { panic!() };
    assert!(!accounts.witness.is_empty());
    assert_eq!(accounts.edges[0].from_lock, "src/bank.rs:5:17 #0");
    assert_eq!(accounts.edges[0].to_lock, "src/bank.rs:5:17 #1");
    let Detail::LockOrderCycle(audit) = &report.findings[1].detail else { panic!() };
    assert!(audit.reason.as_deref().is_some_and(|r| r.contains("only between lock classes")));
    assert_eq!(audit.edges[0].from_lock, "src/bank.rs:5:17");
}

#[test]
fn named_locks_of_several_processes_are_one_lock() {
    // Process 1 takes db.lock then index.lock; process 2 the other way round.
    let trace = |pid: u32, first: &str, second: &str| {
        let mut b = TraceBuilder::new("indexer");
        b.header_mut().pid = pid;
        b.header_mut().start_unix_ns += u64::from(pid) * 1_000;
        let t = b.thread("main");
        let l1 = b.lock(LockKind::Custom, true, Some(first), None);
        let l2 = b.lock(LockKind::Custom, true, Some(second), None);
        let s1 = b.site(&format!("src/p{pid}.rs"), 10, 5);
        let s2 = b.site(&format!("src/p{pid}.rs"), 11, 5);
        b.on(t).acquire(l1, s1).acquire(l2, s2).release(l2).release(l1);
        (format!("p{pid}.trace"), b.build())
    };
    let traces = vec![trace(1, "db.lock", "index.lock"), trace(2, "index.lock", "db.lock")];
    let report = analyze_bytes(traces, &AnalyzeOptions::default()).expect("readable");
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.locks, strings(&["db.lock", "index.lock"]));
    assert_eq!(finding.threads, strings(&["main (pid 1)", "main (pid 2)"]));
    assert_eq!(report.locks.len(), 2);
    assert_eq!(report.trace.files.len(), 2);
}

#[test]
fn in_process_locks_of_one_name_in_two_processes_are_two_locks_of_one_class() {
    // Two instances of one service, each with its own `Mutex::named("cache")` and "db": each
    // holds its own cache while the other waits for its own db. Not a deadlock between them,
    // but the same code takes the two classes in opposite orders: still a lock-order cycle.
    let trace = |pid: u32, first: &str, second: &str| {
        let mut b = TraceBuilder::new("service");
        b.header_mut().pid = pid;
        let t = b.thread("main");
        let (l1, l2) = (b.mutex(first), b.mutex(second));
        let s = b.site("src/service.rs", 7, 9);
        b.on(t).acquire(l1, s).acquire(l2, s).release(l2).release(l1);
        b.on(t).acquire(l1, s).request(l2, s);
        (format!("p{pid}.trace"), b.build())
    };
    let traces = vec![trace(1, "cache", "db"), trace(2, "db", "cache")];
    let report = analyze_bytes(traces, &AnalyzeOptions::default()).expect("readable");
    assert_eq!(report.locks.len(), 4, "{:?}", report.locks);
    let kinds: Vec<_> = report.findings.iter().map(|f| (f.kind, f.severity)).collect();
    // Each process waits on its own lock, held by nobody else: no captured deadlock. The
    // cycle exists only between the classes (no two actors share a lock), so it is a
    // warning naming them, not an error (issue 19: an error needs a witness).
    assert_eq!(kinds, vec![(FindingKind::LockOrderCycle, Severity::Warning)]);
    assert_eq!(report.trace.replay_conflicts, 0);
}

#[test]
fn a_user_defined_lock_defined_again_under_its_name_is_still_one_lock() {
    // The recorder forgets an idle user-defined lock and defines it again, under a new id,
    // when its name is next used: in each process, both ids are one `db.lock`, and across
    // processes too.
    let trace = |pid: u32, first: &str, second: &str| {
        let mut b = TraceBuilder::new("indexer");
        b.header_mut().pid = pid;
        b.header_mut().start_unix_ns += u64::from(pid) * 1_000;
        let t = b.thread("main");
        let s1 = b.site(&format!("src/p{pid}.rs"), 10, 5);
        let s2 = b.site(&format!("src/p{pid}.rs"), 11, 5);
        let l1 = b.lock(LockKind::Custom, true, Some(first), None);
        let l2 = b.lock(LockKind::Custom, true, Some(second), None);
        b.on(t).acquire(l1, s1).release(l1);
        let again = b.lock(LockKind::Custom, true, Some(first), None);
        b.on(t).acquire(again, s1).acquire(l2, s2).release(l2).release(again);
        (format!("p{pid}.trace"), b.build())
    };
    let traces = vec![trace(1, "db.lock", "index.lock"), trace(2, "index.lock", "db.lock")];
    let report = analyze_bytes(traces, &AnalyzeOptions::default()).expect("readable");
    let names: Vec<&str> = report.locks.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["db.lock", "index.lock"]);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].locks, strings(&["db.lock", "index.lock"]));
    assert_eq!(report.findings[0].severity, Severity::Error);
}

#[test]
fn the_report_carries_the_whole_lock_order_graph_most_frequent_first() {
    // A hierarchy taken in one order (no cycle): outer → inner three times, outer → leaf
    // once (with inner held too, so inner → leaf once as well).
    let mut b = TraceBuilder::new("hierarchy");
    let t = b.thread("main");
    let (outer, inner, leaf) = (b.mutex("outer"), b.mutex("inner"), b.mutex("leaf"));
    let (s1, s2, s3) =
        (b.site("src/h.rs", 1, 5), b.site("src/h.rs", 2, 5), b.site("src/h.rs", 3, 5));
    for _ in 0..2 {
        b.on(t).acquire(outer, s1).acquire(inner, s2).release(inner).release(outer);
    }
    b.on(t).acquire(outer, s1).acquire(inner, s2).acquire(leaf, s3);
    b.on(t).release(leaf).release(inner).release(outer);
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let orders: Vec<(&str, &str, u64, &str, &str)> = report
        .lock_orders
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.count, e.held_at.as_str(), e.taken_at.as_str()))
        .collect();
    assert_eq!(
        orders,
        vec![
            ("outer", "inner", 3, "src/h.rs:1:5", "src/h.rs:2:5"),
            ("inner", "leaf", 1, "src/h.rs:2:5", "src/h.rs:3:5"),
            ("outer", "leaf", 1, "src/h.rs:1:5", "src/h.rs:3:5"),
        ]
    );
}

/// Two readers take two fair `RwLock`s for reading in opposite orders, and writers take each
/// lock now and then: with a writer queued on each lock before the second reader asks, all
/// four wait (issue 19, case 5). Witnessed: an error. Without the writers: info.
#[test]
fn read_read_cycles_deadlock_only_with_writers_queued_on_both_locks() {
    let build = |writers: bool| {
        let mut b = TraceBuilder::new("rw-cycle");
        let (r1, r2) = (b.thread("r1"), b.thread("r2"));
        let (w1, w2) = (b.thread("w1"), b.thread("w2"));
        let (config, routes) = (b.async_rwlock("config"), b.async_rwlock("routes"));
        let s = b.site("src/router.rs", 1, 9);
        b.on(r1).acquire_shared(config, s).acquire_shared(routes, s);
        b.on(r1).release_shared(routes).release_shared(config);
        if writers {
            b.on(w1).acquire(config, s).release(config);
            b.on(w2).acquire(routes, s).release(routes);
        }
        b.on(r2).acquire_shared(routes, s).acquire_shared(config, s);
        b.on(r2).release_shared(config).release_shared(routes);
        analyze(&b)
    };
    let with = build(true);
    let found: Vec<_> = with.findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(found, vec![(FindingKind::LockOrderCycle, Severity::Error)], "{:#?}", with.findings);
    let Detail::LockOrderCycle(detail) = &with.findings[0].detail else { panic!() };
    let asks: Vec<&str> = detail.witness.iter().rev().take(4).map(|s| s.actor.as_str()).collect();
    // The readers ask last, after the writers queued.
    assert_eq!(asks[..2], ["thread `r2`", "thread `r1`"], "{:#?}", detail.witness);
    let without = build(false);
    let found: Vec<_> = without.findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(found, vec![(FindingKind::LockOrderCycle, Severity::Info)]);
    let Detail::LockOrderCycle(detail) = &without.findings[0].detail else { panic!() };
    let reason = detail.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("no writer queued"), "{reason}");
}
