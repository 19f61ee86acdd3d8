//! `data-race`: unordered conflicting accesses between threads and between tasks, and every
//! happens-before edge that orders them away.

mod common;

use common::{analyze, analyze_grouped, of_kind, sites, strings};
use hindsight_analyzer::causality::Relation;
use hindsight_analyzer::report::{Detail, Finding, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind};
use hindsight_recorder::format::{LockKind, SiteId, TraceBuilder};

fn races(b: &TraceBuilder) -> Vec<Finding> {
    of_kind(&analyze(b), FindingKind::DataRace).into_iter().cloned().collect()
}

/// The races `relation` finds.
fn races_in(b: &TraceBuilder, relation: Relation) -> Vec<Finding> {
    let options = AnalyzeOptions { races: relation, ..AnalyzeOptions::default() };
    let report = analyze_bytes(vec![("test.trace".to_owned(), b.build())], &options)
        .expect("a built trace is readable");
    of_kind(&report, FindingKind::DataRace).into_iter().cloned().collect()
}

/// Each race as (earlier site, later site, count).
fn pairs(found: &[Finding]) -> Vec<(String, String, u64)> {
    found
        .iter()
        .map(|f| {
            let Detail::DataRace(detail) = &f.detail else { panic!("{:?}", f.detail) };
            (detail.first.site.clone(), detail.second.site.clone(), detail.count)
        })
        .collect()
}

/// ```text
/// t1: write(counter)@a
/// t2:                   write(counter)@b      (no lock, no join)
/// ```
#[test]
fn unlocked_writes_from_two_threads_race() {
    let mut b = TraceBuilder::new("race");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let counter = b.variable("counter");
    let (a, s) = (b.site("src/stats.rs", 10, 9), b.site("src/stats.rs", 20, 9));
    b.on(t1).write(counter, a);
    b.on(t2).write(counter, s);
    let found = races(&b);
    assert_eq!(found.len(), 1, "{found:#?}");
    let race = &found[0];
    assert_eq!(race.severity, Severity::Error);
    assert_eq!(race.variables, strings(&["counter"]));
    assert_eq!(race.threads, strings(&["t1", "t2"]));
    assert_eq!(
        sites(race),
        vec![
            ("write".to_owned(), "src/stats.rs:10:9".to_owned()),
            ("write".to_owned(), "src/stats.rs:20:9".to_owned())
        ]
    );
    assert_eq!(
        race.title,
        "data race on `counter`: write at src/stats.rs:10:9 and write at src/stats.rs:20:9 are not ordered"
    );
    assert!(race.evidence[2].contains("no lock is held by both"), "{:?}", race.evidence);
    let help = race.help.as_deref().unwrap();
    assert!(help.contains("annotate::release") && help.contains("Condvar"), "{help}");
}

/// ```text
/// t1: lock(m) write(x) unlock(m)
/// t2:                            lock(m) write(x) unlock(m)
/// ```
#[test]
fn writes_under_one_lock_do_not_race_even_when_replayed_thread_by_thread() {
    let mut b = TraceBuilder::new("locked");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (m, x) = (b.mutex("m"), b.variable("x"));
    let s = b.site("src/a.rs", 1, 1);
    b.on(t1).acquire(m, s).write(x, s).release(m);
    b.on(t2).acquire(m, s).write(x, s).release(m);
    assert!(races(&b).is_empty());
    assert!(of_kind(&analyze_grouped(&b), FindingKind::DataRace).is_empty());
}

/// The double-checked pattern: a read outside the lock races with the write inside it, and
/// the finding shows which locks each side held.
#[test]
fn a_check_outside_the_lock_races_with_the_write_inside_it() {
    let mut b = TraceBuilder::new("double-checked");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (lock, sessions) = (b.mutex("sessions_lock"), b.variable("sessions"));
    let check = b.site("src/session.rs", 31, 12);
    let create = b.site("src/session.rs", 35, 13);
    let take = b.site("src/session.rs", 34, 20);
    b.on(t1).read(sessions, check).acquire(lock, take).write(sessions, create).release(lock);
    b.on(t2).read(sessions, check);
    let found = races(&b);
    assert_eq!(found.len(), 1, "{found:#?}");
    let Detail::DataRace(detail) = &found[0].detail else { panic!("{:?}", found[0].detail) };
    assert_eq!((detail.first.access.as_str(), detail.second.access.as_str()), ("write", "read"));
    assert_eq!(detail.first.locks_held, strings(&["sessions_lock"]));
    assert!(detail.second.locks_held.is_empty());
    assert_eq!(detail.first.site, "src/session.rs:35:13");
    assert_eq!(detail.second.site, "src/session.rs:31:12");
}

#[test]
fn spawn_and_join_order_parent_and_child() {
    let mut b = TraceBuilder::new("fork-join");
    let (main, worker) = (b.thread("main"), b.thread("worker"));
    let x = b.variable("x");
    let s = b.site("src/a.rs", 1, 1);
    b.on(main).write(x, s).spawn_thread(worker, None);
    b.on(worker).start().write(x, s).finish();
    b.on(main).join_thread(worker, None).read(x, s);
    assert!(races(&b).is_empty());
}

#[test]
fn a_message_orders_the_sender_before_the_receiver() {
    let mut b = TraceBuilder::new("channel");
    let (producer, consumer) = (b.thread("producer"), b.thread("consumer"));
    let (x, ch) = (b.variable("state"), b.channel("handoff"));
    let s = b.site("src/a.rs", 1, 1);
    b.on(producer).write(x, s).send(ch, 7, s);
    b.on(consumer).receive(ch, 7, s).write(x, s);
    assert!(races(&b).is_empty());

    // Receiving another message does not order them.
    let mut b = TraceBuilder::new("channel");
    let (producer, consumer) = (b.thread("producer"), b.thread("consumer"));
    let (x, ch) = (b.variable("state"), b.channel("handoff"));
    let s = b.site("src/a.rs", 1, 1);
    b.on(producer).write(x, s).send(ch, 7, s);
    b.on(consumer).receive(ch, 8, s).write(x, s);
    assert_eq!(races(&b).len(), 1);
}

/// Two tasks on one thread (a current-thread runtime): sharing the worker orders nothing.
#[test]
fn tasks_interleaved_on_one_thread_race() {
    let mut b = TraceBuilder::new("tasks");
    let worker = b.thread("worker");
    let spawn = b.site("src/main.rs", 5, 5);
    let (t1, t2) = (b.task("reader", Some(spawn)), b.task("writer", Some(spawn)));
    let x = b.variable("cache");
    let (r, w) = (b.site("src/cache.rs", 8, 9), b.site("src/cache.rs", 14, 9));
    b.on(worker).spawn_task(t1, Some(spawn)).spawn_task(t2, Some(spawn));
    b.in_task(worker, t1).poll_start().read(x, r).poll_end(false);
    b.in_task(worker, t2).poll_start().write(x, w).poll_end(true);
    b.in_task(worker, t1).poll_start().read(x, r).poll_end(true);
    let found = races(&b);
    // The read before the write and the read after it: two ordered pairs of sites.
    assert_eq!(
        pairs(&found),
        vec![
            ("src/cache.rs:8:9".to_owned(), "src/cache.rs:14:9".to_owned(), 1),
            ("src/cache.rs:14:9".to_owned(), "src/cache.rs:8:9".to_owned(), 1),
        ]
    );
    for race in &found {
        let mut tasks = race.tasks.clone();
        tasks.sort();
        assert_eq!(tasks, strings(&["reader", "writer"]));
        assert_eq!(race.threads, strings(&["worker"]));
    }
}

#[test]
fn a_wake_orders_the_waker_before_the_next_poll() {
    let mut b = TraceBuilder::new("wake");
    let worker = b.thread("worker");
    let (t1, t2) = (b.task("producer", None), b.task("consumer", None));
    let x = b.variable("slot");
    let s = b.site("src/a.rs", 1, 1);
    b.on(worker).spawn_task(t1, None).spawn_task(t2, None);
    b.in_task(worker, t2).poll_start().poll_end(false);
    b.in_task(worker, t1).poll_start().write(x, s).wake(t2).poll_end(true);
    b.in_task(worker, t2).poll_start().read(x, s).poll_end(true);
    assert!(races(&b).is_empty());
}

#[test]
fn shared_readers_do_not_race_and_a_writer_after_them_is_ordered() {
    let mut b = TraceBuilder::new("rwlock");
    let (t1, t2, t3) = (b.thread("r1"), b.thread("r2"), b.thread("w"));
    let (rw, x) = (b.rwlock("config"), b.variable("config"));
    let s = b.site("src/a.rs", 1, 1);
    b.on(t1).acquire_shared(rw, s).read(x, s);
    b.on(t2).acquire_shared(rw, s).read(x, s).release_shared(rw);
    b.on(t1).release_shared(rw);
    b.on(t3).acquire(rw, s).write(x, s).release(rw);
    assert!(races(&b).is_empty());
}

#[test]
fn a_write_under_a_read_lock_races_with_another_reader() {
    let mut b = TraceBuilder::new("rwlock-misuse");
    let (t1, t2) = (b.thread("r1"), b.thread("r2"));
    let (rw, x) = (b.rwlock("config"), b.variable("config"));
    let (w, r) = (b.site("src/a.rs", 3, 1), b.site("src/a.rs", 9, 1));
    b.on(t1).acquire_shared(rw, w).write(x, w).release_shared(rw);
    b.on(t2).acquire_shared(rw, r).read(x, r).release_shared(rw);
    let found = races(&b);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].evidence[2].contains("shared mode"), "{:?}", found[0].evidence);
}

#[test]
fn every_pair_of_racing_sites_is_one_finding_with_a_count() {
    let mut b = TraceBuilder::new("count");
    let threads: Vec<_> = (0..4).map(|i| b.thread(&format!("worker-{i}"))).collect();
    let stats = b.variable("worker_stats");
    let update: SiteId = b.site("src/executor.rs", 77, 13);
    for _ in 0..3 {
        for &t in &threads {
            b.on(t).read(stats, update).write(stats, update);
        }
    }
    // t0's first read comes before any write; each later read races the write of the thread
    // before it, and (in HB) each later write the previous write: 11 times each, two pairs of
    // sites. In SHB a read orders the write it saw before its thread's next write: only the
    // reads race.
    let found = races_in(&b, Relation::Shb);
    let at = "src/executor.rs:77:13".to_owned();
    assert_eq!(pairs(&found), vec![(at.clone(), at.clone(), 11)]);
    let found = races_in(&b, Relation::Hb);
    let summary: Vec<(Vec<(String, String)>, u64)> = found
        .iter()
        .map(|f| {
            let Detail::DataRace(detail) = &f.detail else { panic!() };
            (sites(f), detail.count)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (vec![("write".to_owned(), at.clone()), ("read".to_owned(), at.clone())], 11),
            (vec![("write".to_owned(), at.clone()), ("write".to_owned(), at)], 11),
        ]
    );
    assert!(found.iter().all(|f| f.variables == strings(&["worker_stats"])));
}

/// ```text
/// main:   spawn(block_on future) ........................ write(config)
/// future:                        write(config) ─ finished
/// ```
/// `Runtime::block_on` blocks its caller until the future finishes: a join. A task that is
/// spawned and never joined is not ordered before the thread's later write.
#[test]
fn a_block_on_future_is_ordered_before_the_thread_that_waited_for_it() {
    let trace = |kind: &str| {
        let mut b = TraceBuilder::new("block_on");
        let main = b.thread("main");
        let future = b.task_of_kind("main-future", kind, None);
        let config = b.variable("config");
        let (inside, after) = (b.site("src/main.rs", 12, 9), b.site("src/main.rs", 20, 5));
        b.on(main).spawn_task(future, None);
        b.in_task(main, future).poll_start().write(config, inside).poll_end(true).finish_task();
        b.on(main).write(config, after);
        b
    };
    assert!(races(&trace("block_on")).is_empty());
    assert_eq!(races(&trace("task")).len(), 1);
}

/// Issue 20's minimal case: a race must not hide a later one on the same variable.
///
/// ```text
/// T0: fork(T1) fork(T2) ................... join(T2) read(x)@30
/// T1:                   write(x)@10
/// T2:                            write(x)@20
/// ```
/// T0's read is ordered after T2's write by the join, but nothing orders T1's write before it.
#[test]
fn a_race_does_not_hide_a_later_race_on_the_same_variable_in_any_relation() {
    let mut b = TraceBuilder::new("std-minimal");
    let (t0, t1, t2) = (b.thread("T0"), b.thread("T1"), b.thread("T2"));
    let x = b.variable("x");
    let (s10, s20, s30) = (b.site("std", 10, 0), b.site("std", 20, 0), b.site("std", 30, 0));
    b.on(t0).spawn_thread(t1, None).spawn_thread(t2, None);
    b.on(t1).start().write(x, s10).finish();
    b.on(t2).start().write(x, s20).finish();
    b.on(t0).join_thread(t2, None).read(x, s30);
    for relation in Relation::ALL {
        assert_eq!(
            pairs(&races_in(&b, relation)),
            vec![
                ("std:10:0".to_owned(), "std:20:0".to_owned(), 1),
                ("std:10:0".to_owned(), "std:30:0".to_owned(), 1),
            ],
            "{relation}"
        );
    }
}

/// A read racing a write after an earlier racy read is still found when reads were
/// concurrent, and a write after racy reads races each of them (HB pairs every one).
#[test]
fn a_write_races_every_concurrent_read_before_it() {
    let mut b = TraceBuilder::new("reads");
    let (t1, t2, t3) = (b.thread("t1"), b.thread("t2"), b.thread("t3"));
    let x = b.variable("x");
    let (r1, r2, w) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    b.on(t1).read(x, r1);
    b.on(t2).read(x, r2);
    b.on(t3).write(x, w);
    assert_eq!(
        pairs(&races_in(&b, Relation::Hb)),
        vec![
            ("a:1:0".to_owned(), "a:3:0".to_owned(), 1),
            ("a:2:0".to_owned(), "a:3:0".to_owned(), 1)
        ]
    );
    // SHB and WCP name the latest one, which their theorems speak of.
    for relation in [Relation::Shb, Relation::Wcp] {
        assert_eq!(
            pairs(&races_in(&b, relation)),
            vec![("a:2:0".to_owned(), "a:3:0".to_owned(), 1)]
        );
    }
}

/// WCP's first example: happens-before orders the write before the read only because `t1`
/// happened to take `m` first; the critical sections touch nothing in common, so another
/// schedule runs `t2`'s first and the accesses race.
///
/// ```text
/// t1: write(x)@1 lock(m) write(y) unlock(m)
/// t2:                                       lock(m) read(z) unlock(m) read(x)@2
/// ```
#[test]
fn wcp_predicts_a_race_that_lock_order_hid() {
    let mut b = TraceBuilder::new("wcp");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (m, x, y, z) = (b.mutex("m"), b.variable("x"), b.variable("y"), b.variable("z"));
    let (w, r, s) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    b.on(t1).write(x, w).acquire(m, s).write(y, s).release(m);
    b.on(t2).acquire(m, s).read(z, s).release(m).read(x, r);
    assert!(races_in(&b, Relation::Hb).is_empty());
    assert!(races_in(&b, Relation::Shb).is_empty());
    let found = races_in(&b, Relation::Wcp);
    assert_eq!(pairs(&found), vec![("a:1:0".to_owned(), "a:2:0".to_owned(), 1)]);
    assert_eq!(found[0].severity, Severity::Error, "the first WCP race is sure");
    assert!(found[0].title.starts_with("predicted data race"), "{}", found[0].title);
    assert!(found[0].evidence[2].contains("do not conflict"), "{:?}", found[0].evidence);

    // When the sections conflict (both touch `y`, one writing), they cannot swap: no race.
    let mut b = TraceBuilder::new("wcp-conflict");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (m, x, y) = (b.mutex("m"), b.variable("x"), b.variable("y"));
    let (w, r, s) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    b.on(t1).write(x, w).acquire(m, s).write(y, s).release(m);
    b.on(t2).acquire(m, s).read(y, s).release(m).read(x, r);
    assert!(races_in(&b, Relation::Wcp).is_empty());
}

/// A semaphore's sections can overlap, so WCP cannot swap them as it swaps a mutex's: a
/// permit handed on orders the giver before the taker in every relation.
///
/// ```text
/// t1: write(x) acquire(permits) release(permits)
/// t2:                                            acquire(permits) release(permits) read(x)
/// ```
#[test]
fn a_semaphore_permit_orders_in_every_relation() {
    let mut b = TraceBuilder::new("semaphore");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let permits = b.lock(LockKind::Semaphore, false, Some("permits"), None);
    let x = b.variable("x");
    let s = b.site("a", 1, 0);
    b.on(t1).write(x, s).acquire(permits, s).release(permits);
    b.on(t2).acquire(permits, s).release(permits).read(x, s);
    for relation in Relation::ALL {
        assert!(races_in(&b, relation).is_empty(), "{relation}");
    }
}

/// Read sections of a read-write lock never order each other, in WCP as in HB; a write
/// section after them is ordered after each.
#[test]
fn read_sections_order_nothing_in_wcp() {
    let mut b = TraceBuilder::new("rw-wcp");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (rw, x, y) = (b.rwlock("config"), b.variable("x"), b.variable("y"));
    let (w, r, s) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    b.on(t1).write(x, w).acquire_shared(rw, s).read(y, s).release_shared(rw);
    b.on(t2).acquire_shared(rw, s).read(y, s).release_shared(rw).read(x, r);
    for relation in Relation::ALL {
        assert_eq!(
            pairs(&races_in(&b, relation)),
            vec![("a:1:0".to_owned(), "a:2:0".to_owned(), 1)],
            "{relation}"
        );
    }
}

/// WCP keeps a bounded history of critical sections per lock; what it drops before every
/// thread looked at it is said in the findings, since orders may have been lost with it.
#[test]
fn wcp_says_when_its_bounds_forgot_critical_sections() {
    let mut b = TraceBuilder::new("wcp-bound");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (m, x) = (b.mutex("m"), b.variable("x"));
    let (w, r, s) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    b.on(t2).acquire(m, s).release(m);
    b.on(t1).write(x, w);
    for _ in 0..300 {
        b.on(t1).acquire(m, s).release(m);
    }
    b.on(t2).read(x, r);
    // 301 sections, 256 kept: 45 dropped before `t2` (and `t1`) passed them.
    let found = races_in(&b, Relation::Wcp);
    assert_eq!(pairs(&found), vec![("a:1:0".to_owned(), "a:2:0".to_owned(), 1)]);
    let said = found[0].evidence.iter().any(|line| line.contains("forgot 45 critical sections"));
    assert!(said, "{:?}", found[0].evidence);
    let Detail::DataRace(detail) = &found[0].detail else { panic!("{:?}", found[0].detail) };
    let forgotten = detail.forgotten.expect("the JSON detail says it too");
    assert_eq!((forgotten.sections, forgotten.accesses), (45, 0));
}

/// SHB with many logical threads (its last-write clocks leave their flat table past 16):
/// a read that saw a flag set is ordered after what was written before the flag.
#[test]
fn shb_orders_a_read_after_the_write_it_saw_with_many_threads() {
    let mut b = TraceBuilder::new("publish");
    let main = b.thread("main");
    let idle: Vec<_> = (0..20).map(|i| b.thread(&format!("idle-{i}"))).collect();
    let (publisher, reader) = (b.thread("publisher"), b.thread("reader"));
    let (config, ready) = (b.variable("config"), b.variable("ready"));
    let sites: Vec<SiteId> = (1..=4).map(|line| b.site("a", line, 0)).collect();
    for &thread in &idle {
        b.on(main).spawn_thread(thread, None);
        b.on(thread).start().write(config, sites[0]).finish();
        b.on(main).join_thread(thread, None);
    }
    b.on(main).spawn_thread(publisher, None).spawn_thread(reader, None);
    b.on(publisher).start().write(config, sites[0]).write(ready, sites[1]);
    b.on(reader).start().read(ready, sites[2]).read(config, sites[3]);
    let ready_race = ("a:2:0".to_owned(), "a:3:0".to_owned(), 1);
    assert_eq!(
        pairs(&races_in(&b, Relation::Hb)),
        vec![ready_race.clone(), ("a:1:0".to_owned(), "a:4:0".to_owned(), 1)]
    );
    assert_eq!(pairs(&races_in(&b, Relation::Shb)), vec![ready_race]);
}

/// A witness schedule is built from the last 4096 events only: two racing writes 5000 lock
/// events apart are still reported, with the reason no schedule was built; 100 apart, with
/// the schedule (the two writes: nothing between them is needed).
#[test]
fn a_schedule_is_built_only_for_accesses_close_enough() {
    let build = |between: usize| {
        let mut b = TraceBuilder::new("far");
        let (t1, t2, t3) = (b.thread("t1"), b.thread("t2"), b.thread("t3"));
        let (x, m) = (b.variable("x"), b.mutex("m"));
        let (a, s, l) =
            (b.site("src/x.rs", 1, 1), b.site("src/x.rs", 2, 1), b.site("src/x.rs", 3, 1));
        b.on(t1).write(x, a);
        for _ in 0..between / 2 {
            b.on(t3).acquire(m, l).release(m);
        }
        b.on(t2).write(x, s);
        b
    };
    let far = races_in(&build(5000), Relation::Shb);
    assert_eq!(far.len(), 1, "{far:#?}");
    let Detail::DataRace(detail) = &far[0].detail else { panic!("{:?}", far[0].detail) };
    assert!(detail.witness.is_empty());
    assert_eq!(
        detail.witness_missing.as_deref(),
        Some("schedule not built: the two accesses are 5001 events apart, more than the 4096 kept")
    );
    let near = races_in(&build(100), Relation::Shb);
    let Detail::DataRace(detail) = &near[0].detail else { panic!("{:?}", near[0].detail) };
    let steps: Vec<(&str, &str)> =
        detail.witness.iter().map(|s| (s.actor.as_str(), s.event.as_str())).collect();
    assert_eq!(steps, [("thread `t1`", "writes `x`"), ("thread `t2`", "writes `x`")]);
    assert_eq!(detail.witness_missing, None);
}

/// WCP with more logical threads than its flat clock rows hold (16): writes under one lock by
/// twenty threads never race, in any relation; an unlocked write after them races with the
/// last locked one.
#[test]
fn wcp_orders_conflicting_sections_of_many_threads() {
    let mut b = TraceBuilder::new("many");
    let (m, x) = (b.mutex("m"), b.variable("x"));
    let (locked, unlocked, at) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0));
    let threads: Vec<_> = (0..20).map(|t| b.thread(&format!("t{t}"))).collect();
    for _ in 0..3 {
        for &thread in &threads {
            b.on(thread).acquire(m, at).write(x, locked).release(m);
        }
    }
    b.on(threads[0]).write(x, unlocked);
    for relation in Relation::ALL {
        let found = races_in(&b, relation);
        assert_eq!(pairs(&found), vec![("a:1:0".to_owned(), "a:2:0".to_owned(), 1)], "{relation}");
    }
}

/// A WCP race whose schedule must run a critical section before the earlier access's own:
/// `t2`'s section on `m` touched nothing of `t1`'s, so it may run first, and then `t1`'s write
/// and `t2`'s read are back to back. The schedule proves it, so this second race is an error.
#[test]
fn a_wcp_schedule_may_run_a_section_before_the_earlier_access_own() {
    let mut b = TraceBuilder::new("swap");
    let (t0, t1, t2, t3) = (b.thread("t0"), b.thread("t1"), b.thread("t2"), b.thread("t3"));
    let (m, x, y) = (b.mutex("m"), b.variable("x"), b.variable("y"));
    let (w, r, s, u) = (b.site("a", 1, 0), b.site("a", 2, 0), b.site("a", 3, 0), b.site("a", 4, 0));
    // A first race, so that the one below is a later one.
    b.on(t0).write(y, u);
    b.on(t3).write(y, u);
    b.on(t1).acquire(m, s).write(x, w).release(m);
    b.on(t2).acquire(m, s).release(m).read(x, r);
    assert_eq!(
        pairs(&races_in(&b, Relation::Shb)),
        vec![("a:4:0".to_owned(), "a:4:0".to_owned(), 1)]
    );
    let found = races_in(&b, Relation::Wcp);
    assert_eq!(
        pairs(&found),
        vec![
            ("a:4:0".to_owned(), "a:4:0".to_owned(), 1),
            ("a:1:0".to_owned(), "a:2:0".to_owned(), 1)
        ]
    );
    assert_eq!(found[1].severity, Severity::Error);
    let Detail::DataRace(detail) = &found[1].detail else { panic!("{:?}", found[1].detail) };
    let steps: Vec<(&str, &str)> =
        detail.witness.iter().map(|s| (s.actor.as_str(), s.event.as_str())).collect();
    assert_eq!(
        steps,
        [
            ("thread `t2`", "acquires `m`"),
            ("thread `t2`", "releases `m`"),
            ("thread `t1`", "acquires `m`"),
            ("thread `t1`", "writes `x`"),
            ("thread `t2`", "reads `x`"),
        ]
    );
    let said =
        found[1].evidence.iter().any(|line| line.contains("the events recorded before step 1"));
    assert!(said, "{:?}", found[1].evidence);
}
