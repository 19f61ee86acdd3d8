//! Panics and endings (issue 21, items 2, 4 and 5): a panic while holding a lock that does not
//! poison is a `stale-lock` with the panic's site; a trace that ended mid-flight reports what
//! was held and awaited then once, as its state at death, not as stale locks; a guard held
//! across an `.await` names the `.await` its pending future recorded, or says it is unknown.

mod common;

use common::{analyze, of_kind, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{EventKind, LockKind, TraceBuilder};

/// ```text
/// worker: poll(adder) ─ lock(total) ─ panic ─ 50 ms ─ (unwinding releases total) ─ task ends
///         poll(reader) ─ lock(total) ─ unlock
/// ```
#[test]
fn a_task_that_panics_holding_an_async_mutex_is_a_stale_lock_with_the_panic_site() {
    let mut b = TraceBuilder::new("panic");
    let worker = b.thread("tokio-rt-worker");
    let total = b.async_mutex("total");
    let (locked, panicked, read) =
        (b.site("src/sum.rs", 14, 33), b.site("src/sum.rs", 16, 13), b.site("src/sum.rs", 30, 30));
    let (adder, reader) = (b.task("adder", None), b.task("reader", None));
    b.in_task(worker, adder)
        .poll_start()
        .acquire(total, locked)
        .advance(2_000)
        .panic(Some(panicked))
        // Printing a backtrace and unwinding: the panic's time, not a blocking poll's.
        .advance(50_000_000)
        .release(total)
        .poll_end(true)
        .event(EventKind::TaskFinished { cancelled: true });
    b.in_task(worker, reader).poll_start().acquire(total, read).release(total).poll_end(true);
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!((finding.kind, finding.severity), (FindingKind::StaleLock, Severity::Error));
    assert_eq!(
        finding.title,
        "task `adder` panicked holding lock `total`: released by unwinding, its data may be \
         inconsistent"
    );
    assert_eq!(finding.locks, strings(&["total"]));
    assert_eq!(finding.tasks, strings(&["adder"]));
    assert_eq!(
        sites(finding),
        vec![
            ("acquired".to_owned(), "src/sum.rs:14:33".to_owned()),
            ("panicked".to_owned(), "src/sum.rs:16:13".to_owned()),
        ]
    );
    let Detail::StaleLock(detail) = &finding.detail else { panic!() };
    assert_eq!(detail.reason, "unwound");

    // A std mutex poisons instead: that finding names the panic site too, and there is one.
    let mut b = TraceBuilder::new("poison");
    let t = b.thread("parser");
    let cache = b.mutex("cache");
    let (locked, panicked) = (b.site("src/sum.rs", 14, 33), b.site("src/sum.rs", 16, 13));
    b.on(t).start().acquire(cache, locked).panic(Some(panicked)).release_poisoned(cache);
    b.on(t).event(EventKind::ThreadFinished { panicked: true });
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert!(report.findings[0].title.contains("was poisoned"));
    assert_eq!(
        sites(&report.findings[0]),
        vec![
            ("acquired".to_owned(), "src/sum.rs:14:33".to_owned()),
            ("panicked".to_owned(), "src/sum.rs:16:13".to_owned()),
        ]
    );
}

#[test]
fn a_panic_holding_nothing_is_no_finding() {
    let mut b = TraceBuilder::new("panic");
    let worker = b.thread("worker");
    let total = b.async_mutex("total");
    let s = b.site("src/sum.rs", 14, 33);
    let task = b.task("adder", None);
    b.in_task(worker, task).poll_start().acquire(total, s).release(total).panic(Some(s));
    b.in_task(worker, task).poll_end(true).event(EventKind::TaskFinished { cancelled: true });
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// ```text
/// main:   lock(db) ──────────────────── (killed)
/// worker:          request(db) ········ (killed)
/// janitor:   lock(registry) finish        (leaked before the end: still an error)
/// ```
#[test]
fn a_trace_that_ends_mid_flight_reports_its_state_at_death_once() {
    let build = |mid_flight: bool| {
        let mut b = TraceBuilder::new("killed");
        let (main, worker, janitor) = (b.thread("main"), b.thread("worker"), b.thread("janitor"));
        let (db, registry) = (b.mutex("db"), b.mutex("registry"));
        let (s1, s2, s3) =
            (b.site("src/db.rs", 1, 5), b.site("src/db.rs", 2, 5), b.site("src/j.rs", 3, 5));
        b.on(main).acquire(db, s1).advance(1_000_000);
        b.on(worker).request(db, s2);
        b.on(janitor).start().acquire(registry, s3).finish();
        b.on(main).advance(2_000_000).mark("last");
        if mid_flight {
            b.end_mid_flight();
        }
        analyze(&b)
    };
    let report = build(true);
    let kinds: Vec<(Severity, String)> =
        report.findings.iter().map(|f| (f.severity, f.title.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (
                Severity::Error,
                "lock `registry` is still held by thread `janitor`, which finished without \
                 releasing it"
                    .to_owned()
            ),
            (
                Severity::Info,
                "state at death: the trace ended mid-flight with 1 lock held and 1 actor waiting"
                    .to_owned()
            ),
        ]
    );
    let at_death = &report.findings[1];
    assert_eq!(at_death.locks, strings(&["db"]));
    assert_eq!(at_death.threads, strings(&["main", "worker"]));
    assert_eq!(
        sites(at_death),
        vec![
            ("acquired".to_owned(), "src/db.rs:1:5".to_owned()),
            ("waiting".to_owned(), "src/db.rs:2:5".to_owned()),
        ]
    );
    let Detail::StaleLock(detail) = &at_death.detail else { panic!() };
    assert_eq!(detail.reason, "state-at-death");

    // Ended cleanly, the same holds are a stale lock of a running thread (a warning; the
    // waiting one is the deadlock detector's).
    let report = build(false);
    let stale = of_kind(&report, FindingKind::StaleLock);
    let severities: Vec<Severity> = stale.iter().map(|f| f.severity).collect();
    assert_eq!(severities, vec![Severity::Error, Severity::Warning], "{stale:#?}");
    assert!(stale.iter().all(|f| !f.title.starts_with("state at death")));
}

#[test]
fn a_guard_across_await_names_the_recorded_await_site_or_says_it_is_unknown() {
    let build = |recorded: bool| {
        let mut b = TraceBuilder::new("await");
        let worker = b.thread("worker");
        let cache = b.mutex("cache");
        let (locked, slept) = (b.site("src/c.rs", 8, 25), b.site("src/c.rs", 9, 50));
        let task = b.task("refresh", None);
        let actor = b.in_task(worker, task).poll_start().acquire(cache, locked);
        let actor = if recorded { actor.await_pending(slept) } else { actor };
        actor.poll_end(false).advance(3_000_000).poll_start().release(cache).poll_end(true);
        analyze(&b)
    };
    let report = build(true);
    let guards = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(guards.len(), 1, "{:#?}", report.findings);
    assert_eq!(guards[0].severity, Severity::Error);
    assert!(sites(guards[0]).contains(&("await".to_owned(), "src/c.rs:9:50".to_owned())));
    assert!(
        guards[0].evidence.iter().any(|e| e.contains("suspended at the `.await` at src/c.rs:9:50")),
        "{:#?}",
        guards[0].evidence
    );
    let report = build(false);
    let guards = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(guards.len(), 1, "{:#?}", report.findings);
    // The acquisition only: no `.await` site.
    assert_eq!(sites(guards[0]), vec![("acquired".to_owned(), "src/c.rs:8:25".to_owned())]);
    assert!(
        guards[0].evidence.iter().any(|e| e.contains("await site unknown")),
        "{:#?}",
        guards[0].evidence
    );
}

#[test]
fn a_tokio_lock_seen_through_tokios_instrumentation_is_labelled_by_its_creation_site() {
    // tokio's own `Mutex`: its events carry where it was created, not where it was locked.
    let mut b = TraceBuilder::new("tokio-lock");
    let worker = b.thread("worker");
    let created = b.site("src/db.rs", 3, 14);
    let db = b.lock(LockKind::Mutex, false, Some("db"), Some(created));
    let task = b.task("writer", None);
    b.in_task(worker, task).poll_start().acquire(db, created).poll_end(true).finish_task();
    let report = analyze(&b);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(sites(finding), vec![("created".to_owned(), "src/db.rs:3:14".to_owned())]);
    assert!(
        finding.evidence[0].contains(
            "acquired `db` (tokio gives no call site; the lock was created at src/db.rs:3:14)"
        ),
        "{}",
        finding.evidence[0]
    );
}

/// ```text
/// spawner: lock(cache) ─ spawn(owner, moving the guard in) ─ await ··· await ··· await
/// owner:                      await ─ unlock(cache)
/// ```
/// The spawner's hold ends where the guard's new owner releases it, not at the trace's end.
#[test]
fn a_guard_moved_to_another_task_stops_counting_for_its_taker_at_its_release() {
    let mut b = TraceBuilder::new("moved");
    let worker = b.thread("worker");
    let cache = b.async_mutex("cache");
    let (locked, spawned) = (b.site("src/m.rs", 3, 20), b.site("src/m.rs", 4, 5));
    let (spawner, owner) = (b.task("spawner", None), b.task("owner", Some(spawned)));
    b.in_task(worker, spawner).poll_start().acquire(cache, locked).spawn_task(owner, Some(spawned));
    b.in_task(worker, spawner).poll_end(false);
    b.in_task(worker, owner).poll_start().poll_end(false).advance(1_000_000);
    b.in_task(worker, owner).poll_start().release(cache).poll_end(true).finish_task();
    for _ in 0..5 {
        b.in_task(worker, spawner).advance(10_000_000).poll_start().poll_end(false);
    }
    let report = analyze(&b);
    let guards = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(guards.len(), 1, "{:#?}", report.findings);
    let Detail::GuardAcrossAwait(detail) = &guards[0].detail else { panic!() };
    assert_eq!(detail.task, "spawner");
    assert_eq!(detail.suspensions, 1, "only the suspension before the owner released it");
    assert!(detail.held_ns < 2_000_000, "{}", detail.held_ns);
}
