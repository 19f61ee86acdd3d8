//! `init()` records only when `HINDSIGHT_TRACE` names a file.
#![cfg(feature = "record")]

#[test]
fn init_without_hindsight_trace_returns_no_guard_and_installs_nothing() {
    std::env::remove_var(hindsight_recorder::TRACE_VAR);
    assert!(hindsight_recorder::init().is_none());
    assert!(!tracing::dispatcher::has_been_set(), "no global subscriber was installed");
    // Wrappers work, recording nothing.
    let lock = hindsight_recorder::sync::Mutex::new(1);
    assert_eq!(*lock.lock().unwrap(), 1);
    assert!(hindsight_recorder::flush());
}

#[test]
fn init_with_an_empty_hindsight_trace_does_nothing_either() {
    std::env::set_var(hindsight_recorder::TRACE_VAR, "");
    assert!(hindsight_recorder::init().is_none());
}
