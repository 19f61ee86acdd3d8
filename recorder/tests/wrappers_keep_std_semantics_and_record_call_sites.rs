//! The blocking and async wrappers behave like the locks they wrap (poisoning, `try_lock`,
//! `into_inner`, `get_mut`) and record each operation with the caller's site.
#![cfg(feature = "record")]

mod common;

use common::{check_lock_order, serial, trace_path, Trace};
use hindsight_recorder::format::{EventKind, LockKind, LockMode};
use hindsight_recorder::sync::{Mutex, RwLock};
use hindsight_recorder::Recorder;
use std::sync::{Arc, TryLockError};

/// The site of an event, as (file, line).
fn site_of(trace: &Trace, kind: &EventKind) -> (String, u32) {
    let site = match *kind {
        EventKind::LockAcquired { site, .. }
        | EventKind::LockRequested { site, .. }
        | EventKind::LockTryFailed { site, .. } => site,
        _ => panic!("{kind:?} has no site"),
    };
    let (file, line, _) = trace.site(site).unwrap();
    (file, line)
}

#[test]
fn blocking_mutex_poisons_like_std_and_records_sites() {
    let _turn = serial();
    let path = trace_path("wrapper-mutex");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();

    let created = line!() + 1;
    let lock = Arc::new(Mutex::named("poisonable", vec![1]));
    let acquired_at = line!() + 1;
    lock.lock().unwrap().push(2);

    let held = lock.lock().unwrap();
    let try_at = line!() + 1;
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    drop(held);

    let clone = lock.clone();
    let panicked = std::thread::spawn(move || {
        let _guard = clone.lock().unwrap();
        panic!("poisoning the lock on purpose");
    })
    .join();
    assert!(panicked.is_err());
    assert!(lock.is_poisoned());
    let poisoned = lock.lock().expect_err("a poisoned lock reports it");
    assert_eq!(*poisoned.into_inner(), [1, 2]);
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    let via_try = lock.try_lock().map(|guard| guard.len()).unwrap();
    assert_eq!(via_try, 2);

    let mut lock = Arc::try_unwrap(lock).unwrap();
    lock.get_mut().unwrap().push(3);
    assert_eq!(lock.into_inner().unwrap(), [1, 2, 3]);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let id = trace.lock_named("poisonable").unwrap();
    let def = trace.definitions.iter().find_map(|d| match d {
        hindsight_recorder::format::Definition::Lock(l) if l.id == id => Some(l.clone()),
        _ => None,
    });
    let def = def.unwrap();
    assert_eq!(def.kind, LockKind::Mutex);
    assert!(def.blocking);
    assert_eq!(def.implementation, hindsight_recorder::format::LockImplementation::HindsightStd);
    assert_eq!(def.capacity, None);
    let (file, line, _) = trace.site(def.site.unwrap()).unwrap();
    assert_eq!((file.as_str(), line), (file!(), created));

    let ops: Vec<_> = trace.events.iter().filter(|e| e.kind.lock() == Some(id)).collect();
    let first = ops.iter().find(|e| matches!(e.kind, EventKind::LockAcquired { .. })).unwrap();
    assert_eq!(site_of(&trace, &first.kind), (file!().to_owned(), acquired_at));
    let failed = ops.iter().find(|e| matches!(e.kind, EventKind::LockTryFailed { .. })).unwrap();
    assert_eq!(site_of(&trace, &failed.kind), (file!().to_owned(), try_at));
    let poisoned_releases = ops
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LockReleased { poisoned: true, .. }))
        .count();
    assert_eq!(poisoned_releases, 1, "the panicking thread's release is marked poisoned");
    assert!(ops.iter().any(|e| matches!(e.kind, EventKind::LockAcquired { via_try: true, .. })));
    let order = check_lock_order(&trace.events)[&id];
    assert_eq!(order.acquisitions, 5);
    assert_eq!(order.acquisitions, order.releases);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn blocking_rwlock_records_shared_and_exclusive_holds() {
    let _turn = serial();
    let path = trace_path("wrapper-rwlock");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();

    let lock = RwLock::named("settings", 1);
    {
        let a = lock.read().unwrap();
        let b = lock.try_read().unwrap();
        assert_eq!(*a + *b, 2);
        assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    }
    *lock.write().unwrap() = 5;
    assert_eq!(*lock.read().unwrap(), 5);
    let mut lock = lock;
    *lock.get_mut().unwrap() += 1;
    assert_eq!(lock.into_inner().unwrap(), 6);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let id = trace.lock_named("settings").unwrap();
    let modes: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LockAcquired { lock, mode, .. } if lock == id => Some(mode),
            _ => None,
        })
        .collect();
    use LockMode::{Exclusive, Shared};
    assert_eq!(modes, [Shared, Shared, Exclusive, Shared]);
    assert_eq!(trace.count("lock_try_failed"), 1);
    let order = check_lock_order(&trace.events)[&id];
    assert_eq!(order.acquisitions, order.releases);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn async_wrappers_record_waits_and_abandoned_waits_on_one_and_many_threads() {
    let _turn = serial();
    for multi_thread in [false, true] {
        let path = trace_path(&format!("wrapper-async-{multi_thread}"));
        let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .unwrap();
        runtime.block_on(async {
            let lock = Arc::new(hindsight_recorder::sync::tokio::Mutex::named("queue", 0));
            let held = lock.lock().await;
            // A waiter that gives up: the wait is recorded as abandoned.
            let gave_up = tokio::time::timeout(std::time::Duration::from_millis(20), lock.lock());
            assert!(gave_up.await.is_err());
            assert!(lock.try_lock().is_err());
            // A waiter that gets it once the holder lets go.
            let waiter = {
                let lock = lock.clone();
                tokio::spawn(async move { *lock.lock().await += 1 })
            };
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(held);
            waiter.await.unwrap();
            let rw = hindsight_recorder::sync::tokio::RwLock::named("table", 1);
            assert_eq!(*rw.read().await + *rw.try_read().unwrap(), 2);
            *rw.write().await += 1;
            assert_eq!(rw.into_inner(), 2);
            assert_eq!(*lock.lock().await, 1);
        });
        drop(runtime);
        guard.finish().unwrap();

        let trace = Trace::read(&path);
        let queue = trace.lock_named("queue").unwrap();
        let of_queue = |name: &str| {
            trace
                .events
                .iter()
                .filter(|e| e.kind.lock() == Some(queue) && e.kind.name() == name)
                .count()
        };
        assert_eq!(of_queue("lock_requested"), 2, "the abandoned and the successful wait");
        assert_eq!(of_queue("lock_try_failed"), 2, "the abandoned wait and the try_lock");
        assert_eq!(of_queue("lock_acquired"), 3);
        let orders = check_lock_order(&trace.events);
        for order in orders.values() {
            assert_eq!(order.acquisitions, order.releases);
        }
        // The tokio locks inside the wrappers are not recorded a second time.
        assert_eq!(trace.locks(), 2);
        let _ = std::fs::remove_file(&path);
    }
}
