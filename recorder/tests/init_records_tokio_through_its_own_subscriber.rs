//! `init()` installs the recorder's own `Subscriber` as the global subscriber, and a tokio
//! program recorded through it has its tasks and its tokio `Mutex` in the trace.
#![cfg(feature = "record")]

mod child;
mod common;

use common::{check_lock_order, contend_a_tokio_mutex, Trace};

/// The child: records through `init()` as `HINDSIGHT_TRACE` says.
#[test]
fn child_recording_a_tokio_program() {
    if child::role().as_deref() != Some("tokio") {
        return;
    }
    let guard = hindsight_recorder::init().expect("HINDSIGHT_TRACE names a writable file");
    let own =
        tracing::dispatcher::get_default(|d| d.is::<hindsight_recorder::subscriber::Subscriber>());
    println!("subscriber={}", u64::from(own));
    println!("total={}", contend_a_tokio_mutex(4, 50, 5));
    guard.finish().expect("the trace is written");
}

#[test]
fn a_tokio_program_recorded_through_init_has_its_tasks_and_lock() {
    let path = common::trace_path("init-tokio");
    let output = child::command("child_recording_a_tokio_program", "tokio")
        .env(hindsight_recorder::TRACE_VAR, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(child::field(&stdout, "subscriber"), Some(1), "init() installed the Subscriber");
    assert_eq!(child::field(&stdout, "total"), Some(4 * 50));

    let trace = Trace::read(&path);
    // The four tasks, the `block_on` future; the runtime's workers run inside their launch.
    assert!(trace.tasks() >= 5, "{} tasks", trace.tasks());
    assert_eq!(trace.count("poll_started"), trace.count("poll_ended"));
    let orders = check_lock_order(&trace.events);
    assert_eq!(orders.len(), 1, "one tokio Mutex");
    let mutex = orders.values().next().unwrap();
    assert_eq!(mutex.acquisitions, 4 * 50 + 1, "every lock, and the final read");
    assert_eq!(mutex.acquisitions, mutex.releases);
    let _ = std::fs::remove_file(&path);
}
