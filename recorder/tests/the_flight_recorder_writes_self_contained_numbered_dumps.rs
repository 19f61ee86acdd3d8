//! The flight recorder keeps the last events in memory, bounded, and writes a dump when
//! triggered — by the program, a panic, `SIGUSR1`, a hang or contention. Each dump is a
//! complete trace on its own (every id it uses is defined, also after the memory wrapped),
//! carries a mark naming its trigger, and has a number of its own: dumps never overwrite each
//! other, and only finished dumps appear under their final names.
#![cfg(feature = "record")]

mod common;

use common::{flight, scratch_dir, serial, Trace};
use hindsight_recorder::format::{Definition, EventKind};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::{DumpError, FlightRecorder, Recorder, RecorderGuard};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The labels of the trace's marks, in file order.
fn marks(trace: &Trace) -> Vec<String> {
    trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Mark { label, .. } => trace.string(label),
            _ => None,
        })
        .collect()
}

/// Panics unless every id an event uses is defined in the trace.
fn assert_self_contained(trace: &Trace) {
    let mut threads = HashSet::new();
    let mut tasks = HashSet::new();
    let mut locks = HashSet::new();
    let mut sites = HashSet::new();
    let mut strings = HashSet::new();
    for definition in &trace.definitions {
        match definition {
            Definition::String { id, .. } => drop(strings.insert(*id)),
            Definition::Site(s) => drop(sites.insert(s.id)),
            Definition::Thread(t) => drop(threads.insert(t.id)),
            Definition::Task(t) => drop(tasks.insert(t.id)),
            Definition::Lock(l) => drop(locks.insert(l.id)),
            _ => {}
        }
    }
    for event in &trace.events {
        assert!(threads.contains(&event.thread), "{} undefined", event.thread);
        if let Some(task) = event.task {
            assert!(tasks.contains(&task), "{task} undefined");
        }
        if let Some(lock) = event.kind.lock() {
            assert!(locks.contains(&lock), "{lock} undefined");
        }
        match event.kind {
            EventKind::LockRequested { site, .. } | EventKind::LockAcquired { site, .. } => {
                assert!(sites.contains(&site), "{site} undefined")
            }
            EventKind::Mark { label, site } => {
                assert!(strings.contains(&label), "{label} undefined");
                assert!(site.is_none_or(|s| sites.contains(&s)), "mark site undefined");
            }
            _ => {}
        }
    }
}

/// Waits (at most `timeout`) until the flight recorder has written `count` dumps.
fn wait_for_dumps(guard: &RecorderGuard, count: usize, timeout: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        let dumps = guard.dumps();
        if dumps.len() >= count || Instant::now() > deadline {
            return dumps;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dumps_are_numbered_complete_and_never_overwrite_each_other() {
    let _turn = serial();
    let dir = scratch_dir("numbered");
    let guard = flight(&dir, FlightRecorder::new().max_bytes(64 << 10).watchdog(None));
    // Many more events than 64 KiB hold: the memory wraps, several times.
    let locks: Vec<_> = (0..4).map(|i| Mutex::named(format!("lock-{i}"), 0u64)).collect();
    for round in 0..100_000u64 {
        *locks[(round % 4) as usize].lock().unwrap() += 1;
        if round % 20_000 == 0 {
            std::thread::sleep(Duration::from_millis(15)); // let the writer take a round
        }
    }
    let first = guard.dump("first look").unwrap();
    assert_eq!(first, dir.join("svc.1.trace"));
    let second = guard.dump("second look").unwrap();
    assert_eq!(second, dir.join("svc.2.trace"));
    // A file of that name from somewhere else is kept, and its number skipped.
    std::fs::write(dir.join("svc.3.trace"), b"not ours").unwrap();
    let fourth = guard.dump("third look").unwrap();
    assert_eq!(fourth, dir.join("svc.4.trace"));
    assert_eq!(std::fs::read(dir.join("svc.3.trace")).unwrap(), b"not ours");
    assert_eq!(guard.dumps(), vec![first.clone(), second.clone(), fourth.clone()]);
    let summary = guard.finish().unwrap();
    assert_eq!(summary.dumps, 3);

    let trace = Trace::read(&first);
    assert_eq!(trace.tail, hindsight_recorder::format::Tail::Complete);
    assert_self_contained(&trace);
    assert_eq!(marks(&trace), ["hindsight: dump triggered by request: first look"]);
    // Whole writer rounds are kept or let go, so how many stay depends on the rounds.
    let kept = trace.count("lock_acquired");
    assert!(kept > 0 && kept < 100_000, "the newest events, not all: {kept}");
    // The mark is at this file's `guard.dump` call.
    let mark_site = trace.events.iter().find_map(|e| match e.kind {
        EventKind::Mark { site, .. } => site,
        _ => None,
    });
    let (file, _, _) = trace.site(mark_site.unwrap()).unwrap();
    assert!(file.ends_with("the_flight_recorder_writes_self_contained_numbered_dumps.rs"));
    // Every lock was defined before the window, and is still defined in every dump.
    assert_eq!(trace.locks(), 4);
    let trace = Trace::read(&second);
    assert_self_contained(&trace);
    assert_eq!(marks(&trace).last().unwrap(), "hindsight: dump triggered by request: second look");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_watchdog_dumps_a_deadlock_once_with_both_waits() {
    let _turn = serial();
    let dir = scratch_dir("watchdog");
    let threshold = Duration::from_millis(300);
    let guard = flight(&dir, FlightRecorder::new().watchdog(Some(threshold)));
    let accounts = Arc::new(Mutex::named("accounts", ()));
    let ledger = Arc::new(Mutex::named("ledger", ()));
    let both_hold_one = Arc::new(Barrier::new(2));
    let stuck = Arc::new(AtomicUsize::new(0));
    // transfer-a:  lock(accounts) ── barrier ── lock(ledger)    (blocks forever)
    // transfer-b:  lock(ledger)   ── barrier ── lock(accounts)  (blocks forever)
    for (first, second, name) in [
        (accounts.clone(), ledger.clone(), "transfer-a"),
        (ledger.clone(), accounts.clone(), "transfer-b"),
    ] {
        let (barrier, stuck) = (both_hold_one.clone(), stuck.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _held = first.lock().unwrap();
                barrier.wait();
                stuck.fetch_add(1, Ordering::SeqCst);
                let _never = second.lock().unwrap();
            })
            .unwrap();
    }
    let dumps = wait_for_dumps(&guard, 1, Duration::from_secs(10));
    assert_eq!(dumps, [dir.join("svc.1.trace")], "the watchdog dumped");
    // Three more thresholds: the same hang is not dumped again.
    std::thread::sleep(threshold * 3);
    assert_eq!(guard.dumps().len(), 1, "one hang, one dump");
    drop(guard);

    let trace = Trace::read(&dumps[0]);
    assert_self_contained(&trace);
    let marks = marks(&trace);
    assert_eq!(marks.len(), 1);
    let label = &marks[0];
    assert!(
        label.starts_with("hindsight: dump triggered by watchdog: thread `transfer-")
            && label.contains(" waited ")
            && label.ends_with(" (and 1 more wait)"),
        "{label}"
    );
    assert!(label.contains("for lock `accounts`") || label.contains("for lock `ledger`"));
    assert_eq!(trace.count("lock_requested"), 2, "both waits are in the dump");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn contention_past_its_threshold_dumps_naming_the_waiter() {
    let _turn = serial();
    let dir = scratch_dir("contention");
    let guard = flight(
        &dir,
        FlightRecorder::new()
            .watchdog(Some(Duration::from_secs(30)))
            .contention(Some(Duration::from_millis(100))),
    );
    let cache = Arc::new(Mutex::named("cache", 0));
    let held = cache.lock().unwrap();
    let waiter = {
        let cache = cache.clone();
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || *cache.lock().unwrap())
            .unwrap()
    };
    let dumps = wait_for_dumps(&guard, 1, Duration::from_secs(10));
    drop(held);
    waiter.join().unwrap();
    assert_eq!(dumps.len(), 1);
    drop(guard);
    let trace = Trace::read(&dumps[0]);
    let label = &marks(&trace)[0];
    assert!(
        label.starts_with("hindsight: dump triggered by contention: thread `reader` waited ")
            && label.ends_with(" for lock `cache`"),
        "{label}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_task_stuck_on_an_async_lock_is_seen_by_the_watchdog() {
    let _turn = serial();
    let dir = scratch_dir("async");
    let guard = flight(&dir, FlightRecorder::new().watchdog(Some(Duration::from_millis(200))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dumps = runtime.block_on(async {
        let session = Arc::new(hindsight_recorder::sync::tokio::Mutex::named("session", 0));
        let held = session.lock().await;
        let waiter = {
            let session = session.clone();
            hindsight_recorder::task::spawn("refresh", async move { *session.lock().await += 1 })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while guard.dumps().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(held);
        waiter.await.unwrap();
        guard.dumps()
    });
    assert_eq!(dumps.len(), 1);
    drop(guard);
    let trace = Trace::read(&dumps[0]);
    let label = &marks(&trace)[0];
    assert!(
        label.starts_with("hindsight: dump triggered by watchdog: task `refresh` waited ")
            && label.ends_with(" for lock `session`"),
        "{label}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_panic_dumps_with_its_message_and_the_previous_hook_still_runs() {
    let _turn = serial();
    let previous_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = previous_ran.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flag.store(true, Ordering::SeqCst);
        default(info);
    }));
    let dir = scratch_dir("panic");
    let guard = flight(&dir, FlightRecorder::new());
    let lock = Mutex::named("before-the-panic", ());
    drop(lock.lock().unwrap());
    let panicked = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| panic!("on purpose"))
        .unwrap()
        .join();
    assert!(panicked.is_err());
    assert!(previous_ran.load(Ordering::SeqCst), "the previous hook ran");
    // The hook waited for the dump: it is there already.
    let dumps = guard.dumps();
    assert_eq!(dumps.len(), 1);
    drop(guard);
    let trace = Trace::read(&dumps[0]);
    let label = &marks(&trace)[0];
    assert!(
        label.starts_with("hindsight: dump triggered by panic: thread `worker` panicked at ")
            && label.ends_with(": on purpose"),
        "{label}"
    );
    assert_eq!(trace.count("lock_acquired"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn sigusr1_dumps() {
    let _turn = serial();
    let dir = scratch_dir("signal");
    let guard = flight(&dir, FlightRecorder::new());
    // SAFETY: raising a signal whose handler the recorder installed.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
    let dumps = wait_for_dumps(&guard, 1, Duration::from_secs(10));
    assert_eq!(dumps.len(), 1);
    drop(guard);
    let trace = Trace::read(&dumps[0]);
    assert_eq!(marks(&trace), ["hindsight: dump triggered by signal SIGUSR1"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dump_count_is_capped() {
    let _turn = serial();
    let dir = scratch_dir("capped");
    let guard = flight(&dir, FlightRecorder::new().max_dumps(1));
    assert!(guard.dump("one").is_ok());
    assert_eq!(guard.dump("two"), Err(DumpError::Limit { max: 1 }));
    assert_eq!(guard.finish().unwrap().dumps, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_streaming_mode_a_dump_is_a_mark_in_the_stream() {
    let _turn = serial();
    let path = common::trace_path("streaming-dump");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    assert_eq!(hindsight_recorder::dump("look here").unwrap(), path);
    // Flushed already: readable before the recording ends.
    let trace = Trace::read(&path);
    assert_eq!(marks(&trace), ["hindsight: dump triggered by request: look here"]);
    assert!(guard.dumps().is_empty());
    guard.finish().unwrap();
    assert_eq!(hindsight_recorder::dump("after"), Err(DumpError::NotRecording));
    let _ = std::fs::remove_file(&path);
}
