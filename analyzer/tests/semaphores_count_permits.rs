//! Semaphores are counting resources, not locks (issue 21, item 1): permits handed over with
//! `forget` and `add_permits` are not stale, overlapping holders do not conflict, a permit
//! wait is a lock wait for the statistics and a suspension for `guard-across-await`, and
//! permits that can never come back to a waiter are a `stale-lock`.

mod common;

use common::{analyze, of_kind, sites, strings};
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{PermitOp, TraceBuilder};

/// `accept` takes a connection permit and forgets it; the connection's task gives it back
/// with `add_permits` when it ends, as mini-redis does.
///
/// ```text
/// accept:  acquire(limit) forget ── spawn(conn) ── acquire(limit) forget ── ...
/// conn-N:                              ... work ... add_permits(1) end
/// ```
#[test]
fn permits_forgotten_and_added_back_elsewhere_give_no_finding() {
    let mut b = TraceBuilder::new("mini-redis");
    let worker = b.thread("tokio-rt-worker");
    let limit = b.semaphore("limit_connections", 2);
    let at = b.site("src/server.rs", 230, 45);
    let accept = b.task("accept", None);
    let conns: Vec<_> = (0..4).map(|i| b.task(&format!("conn-{i}"), None)).collect();
    for (i, &conn) in conns.iter().enumerate() {
        b.in_task(worker, accept)
            .poll_start()
            .acquire(limit, at)
            .permits(limit, PermitOp::Forgotten, 1)
            .spawn_task(conn, None)
            .poll_end(false);
        b.in_task(worker, conn).poll_start().advance(1_000);
        if i % 2 == 1 {
            // Two connections are open at once: the next two give back their permits.
            for &done in &conns[i - 1..=i] {
                b.in_task(worker, done)
                    .permits(limit, PermitOp::Added, 1)
                    .poll_end(true)
                    .finish_task();
            }
        } else {
            b.in_task(worker, conn).poll_end(false);
        }
    }
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.trace.replay_conflicts, 0);
    assert_eq!(report.locks[0].acquisitions, 4);
}

#[test]
fn overlapping_holders_of_a_many_permit_semaphore_are_neither_conflicts_nor_stale() {
    // Three tasks hold permits of a four-permit pool at once, one of them two permits; one
    // ends holding its permit, which goes back by drop in tokio but was not recorded so.
    let mut b = TraceBuilder::new("pool");
    let worker = b.thread("worker");
    let pool = b.semaphore("pool", 4);
    let at = b.site("src/pool.rs", 10, 9);
    let tasks: Vec<_> = (0..3).map(|i| b.task(&format!("job-{i}"), None)).collect();
    b.in_task(worker, tasks[0]).poll_start().acquire(pool, at).poll_end(false);
    b.in_task(worker, tasks[1])
        .poll_start()
        .acquire(pool, at)
        .permits(pool, PermitOp::Acquired, 2)
        .poll_end(false);
    b.in_task(worker, tasks[2]).poll_start().acquire(pool, at).poll_end(false);
    b.in_task(worker, tasks[0]).poll_start().release(pool).poll_end(true).finish_task();
    b.in_task(worker, tasks[1]).poll_start().release(pool).poll_end(true).finish_task();
    b.in_task(worker, tasks[2]).poll_start().poll_end(true).finish_task();
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.trace.replay_conflicts, 0);
}

#[test]
fn a_waiter_left_with_no_permit_by_holders_that_ended_is_a_stale_lock() {
    // One permit; `leaker` ends holding it; `waiter` asks for it and still waits at the end.
    let mut b = TraceBuilder::new("leak");
    let (worker, other) = (b.thread("worker"), b.thread("other"));
    let pool = b.semaphore("pool", 1);
    let (taken, wanted) = (b.site("src/pool.rs", 10, 9), b.site("src/pool.rs", 20, 9));
    let (leaker, waiter) = (b.task("leaker", None), b.task("waiter", None));
    b.in_task(worker, leaker).poll_start().acquire(pool, taken).poll_end(true).finish_task();
    b.in_task(other, waiter).poll_start().request(pool, wanted).poll_end(false);
    b.on(other).advance(1_000_000).mark("end");
    let report = analyze(&b);
    let stale = of_kind(&report, FindingKind::StaleLock);
    assert_eq!(stale.len(), 1, "{:#?}", report.findings);
    assert_eq!(stale[0].severity, Severity::Error);
    assert_eq!(
        stale[0].title,
        "semaphore `pool` has no permit left for task `waiter`: its holders ended holding them"
    );
    assert_eq!(stale[0].tasks, strings(&["leaker"]));
    assert_eq!(sites(stale[0]), vec![("acquired".to_owned(), "src/pool.rs:10:9".to_owned())]);
    let Detail::StaleLock(detail) = &stale[0].detail else { panic!() };
    assert_eq!(detail.reason, "permits-leaked");

    // The same, with the permit forgotten and added back before the waiter asked: nothing.
    let mut b = TraceBuilder::new("handed-over");
    let (worker, other) = (b.thread("worker"), b.thread("other"));
    let pool = b.semaphore("pool", 1);
    let (taken, wanted) = (b.site("src/pool.rs", 10, 9), b.site("src/pool.rs", 20, 9));
    let (leaker, waiter) = (b.task("leaker", None), b.task("waiter", None));
    b.in_task(worker, leaker)
        .poll_start()
        .acquire(pool, taken)
        .permits(pool, PermitOp::Forgotten, 1)
        .permits(pool, PermitOp::Added, 1)
        .poll_end(true)
        .finish_task();
    b.in_task(other, waiter).poll_start().acquire(pool, wanted).release(pool).poll_end(true);
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// Twelve checkouts of a two-connection pool; from the fourth on, each waits 150 ms.
fn starved_pool(waits_ns: u64) -> TraceBuilder {
    let mut b = TraceBuilder::new("pool");
    let worker = b.thread("worker");
    let pool = b.semaphore("connections", 2);
    let (checkout, used) = (b.site("src/db.rs", 40, 22), b.site("src/db.rs", 41, 9));
    for i in 0..12 {
        let task = b.task(&format!("query-{i}"), None);
        let actor = b.in_task(worker, task).poll_start();
        let actor = if i >= 3 {
            actor.request(pool, checkout).poll_end(false).advance(waits_ns).poll_start()
        } else {
            actor
        };
        actor.acquire(pool, used).advance(1_000).release(pool).poll_end(true).finish_task();
    }
    b
}

#[test]
fn a_pool_whose_checkouts_wait_past_the_threshold_is_a_contention_hotspot() {
    let report = analyze(&starved_pool(150_000_000));
    let hot = of_kind(&report, FindingKind::ContentionHotspot);
    assert_eq!(hot.len(), 1, "{:#?}", report.findings);
    assert_eq!(hot[0].locks, strings(&["connections"]));
    assert!(
        hot[0].title.starts_with(
            "semaphore `connections` is a contention hotspot: waits for a permit up to 150"
        ),
        "{}",
        hot[0].title
    );
    assert!(hot[0].help.as_deref().is_some_and(|h| h.contains("(it has 2)")), "{:?}", hot[0].help);
    assert_eq!(report.locks[0].contended, 9);
    // Short waits are what a semaphore is for: statistics, no finding.
    let report = analyze(&starved_pool(2_000_000));
    assert!(of_kind(&report, FindingKind::ContentionHotspot).is_empty(), "{:#?}", report.findings);
    assert_eq!(report.locks[0].contended, 9);
}

#[test]
fn a_permit_wait_given_up_by_a_timeout_is_counted_as_abandoned() {
    let mut b = TraceBuilder::new("timeout");
    let (worker, other) = (b.thread("worker"), b.thread("other"));
    let pool = b.semaphore("pool", 1);
    let at = b.site("src/pool.rs", 10, 9);
    let (holder, impatient) = (b.task("holder", None), b.task("impatient", None));
    b.in_task(worker, holder).poll_start().acquire(pool, at).poll_end(false);
    b.in_task(other, impatient).poll_start().request(pool, at).poll_end(false);
    b.in_task(other, impatient).advance(50_000_000).poll_start().try_fail(pool, at).poll_end(true);
    b.in_task(worker, holder).poll_start().release(pool).poll_end(true).finish_task();
    let report = analyze(&b);
    let pool_entry = &report.locks[0];
    assert_eq!((pool_entry.contended, pool_entry.abandoned_waits), (0, 1));
    assert!(pool_entry.wait.max_ns >= 50_000_000, "{:?}", pool_entry.wait);
}

#[test]
fn a_guard_held_while_waiting_for_a_permit_is_a_guard_across_await() {
    // `handler` holds the async `sessions` lock and waits for a pool permit that `other`
    // holds; `reader` asks for `sessions` meanwhile.
    let mut b = TraceBuilder::new("guard-and-permit");
    let (worker, second) = (b.thread("worker"), b.thread("second"));
    let sessions = b.async_mutex("sessions");
    let pool = b.semaphore("pool", 1);
    let (locked, checkout, read) =
        (b.site("src/h.rs", 5, 30), b.site("src/h.rs", 6, 36), b.site("src/r.rs", 9, 20));
    let (handler, other, reader) =
        (b.task("handler", None), b.task("other", None), b.task("reader", None));
    b.in_task(second, other).poll_start().acquire(pool, checkout).poll_end(false);
    b.in_task(worker, handler)
        .poll_start()
        .acquire(sessions, locked)
        .request(pool, checkout)
        .poll_end(false);
    b.in_task(second, reader).poll_start().request(sessions, read).poll_end(false);
    b.in_task(second, other).advance(5_000_000).poll_start().release(pool).poll_end(true);
    b.in_task(worker, handler)
        .poll_start()
        .acquire(pool, checkout)
        .release(pool)
        .release(sessions)
        .poll_end(true);
    b.in_task(second, reader).poll_start().acquire(sessions, read).release(sessions).poll_end(true);
    let report = analyze(&b);
    let guards = of_kind(&report, FindingKind::GuardAcrossAwait);
    assert_eq!(guards.len(), 1, "{:#?}", report.findings);
    assert_eq!(guards[0].severity, Severity::Warning);
    assert_eq!(guards[0].locks, strings(&["sessions"]));
    let Detail::GuardAcrossAwait(detail) = &guards[0].detail else { panic!() };
    assert_eq!(detail.await_site.as_deref(), Some("src/h.rs:6:36"));
    assert_eq!(detail.suspensions, 1);
}

#[test]
fn permits_given_back_by_the_task_they_were_handed_to_count_as_holds() {
    // Each checkout's permit moves to a `recycle` task, which drops it 2 ms later.
    let mut b = TraceBuilder::new("recycle");
    let worker = b.thread("worker");
    let pool = b.semaphore("pool", 4);
    let at = b.site("src/pool.rs", 10, 9);
    let (client, recycle) = (b.task("client", None), b.task("recycle", None));
    for _ in 0..3 {
        b.in_task(worker, client).poll_start().acquire(pool, at).poll_end(false);
        b.in_task(worker, recycle).poll_start().advance(2_000_000).release(pool).poll_end(false);
    }
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let hold = &report.locks[0].hold;
    assert_eq!(hold.count, 3, "{hold:?}");
    assert!(hold.max_ns >= 2_000_000, "{hold:?}");
}

/// `checkout` takes the pool's only permit and moves it into `conn`, which `forget`s it and
/// later gives one back with `add_permits`; `checkout` goes on to await and to take `ledger`.
#[test]
fn a_permit_forgotten_by_the_task_it_moved_to_ends_its_taker_s_hold() {
    let mut b = TraceBuilder::new("moved-permit");
    let worker = b.thread("tokio-rt-worker");
    let pool = b.semaphore("pool", 1);
    let ledger = b.mutex("ledger");
    let at = b.site("src/pool.rs", 10, 9);
    let (checkout, conn) = (b.task("checkout", None), b.task("conn", None));
    b.in_task(worker, checkout)
        .poll_start()
        .acquire(pool, at)
        .spawn_task(conn, None)
        .poll_end(false);
    b.in_task(worker, conn).poll_start().permits(pool, PermitOp::Forgotten, 1).poll_end(false);
    b.advance(2_000_000_000);
    b.in_task(worker, checkout)
        .poll_start()
        .acquire(ledger, at)
        .release(ledger)
        .poll_end(true)
        .finish_task();
    b.in_task(worker, conn)
        .poll_start()
        .permits(pool, PermitOp::Added, 1)
        .poll_end(true)
        .finish_task();
    let audit = b.task("audit", None);
    b.in_task(worker, audit)
        .poll_start()
        .acquire(ledger, at)
        .acquire(pool, at)
        .release(pool)
        .release(ledger)
        .poll_end(true)
        .finish_task();
    let report = analyze(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn leaked_permits_are_counted_as_permits_not_holders() {
    // Two permits, both taken by one `acquire_many(2)` of `leaker`, which ends holding them.
    let mut b = TraceBuilder::new("leak-many");
    let (worker, other) = (b.thread("worker"), b.thread("other"));
    let pool = b.semaphore("pool", 2);
    let (taken, wanted) = (b.site("src/pool.rs", 10, 9), b.site("src/pool.rs", 20, 9));
    let (leaker, waiter) = (b.task("leaker", None), b.task("waiter", None));
    b.in_task(worker, leaker)
        .poll_start()
        .acquire(pool, taken)
        .permits(pool, PermitOp::Acquired, 2)
        .poll_end(true)
        .finish_task();
    b.in_task(other, waiter).poll_start().request(pool, wanted).poll_end(false);
    b.on(other).advance(1_000_000).mark("end");
    let report = analyze(&b);
    let stale = of_kind(&report, FindingKind::StaleLock);
    assert_eq!(stale.len(), 1, "{:#?}", report.findings);
    assert_eq!(
        stale[0].evidence[0],
        "task `waiter` waited for a permit of `pool` from t=60ns to the end; 2 of 2 permits were \
         held by actors that had ended, and none was free"
    );
}
