//! Callers of a service behind tower 0.5's unmodified `ConcurrencyLimit` (a tokio semaphore)
//! under hindsight (issue 21): used correctly, no finding; with a `stats` guard held across
//! the wait for the service and the call, a `guard-across-await` on `stats` (and the
//! contention it causes), and no error.

mod common;

use common::{run_harness, summary};
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::Report;

/// Runs the harness in `mode` and analyses its trace.
fn run(mode: &str) -> Report {
    run_harness(
        env!("CARGO_BIN_EXE_tower_limit_load"),
        &format!("tower-{mode}"),
        &[mode, "16", "1"],
    )
}

#[test]
fn callers_that_wait_for_the_limit_before_taking_the_stats_lock_give_no_finding() {
    let report = run("correct");
    assert_eq!(summary(&report.findings), Vec::<String>::new());
    let limit = report.locks.iter().find(|l| l.kind == "semaphore").expect("the limit");
    assert_eq!(limit.capacity, Some(4));
    assert!(limit.acquisitions >= 16, "{limit:?}");
}

#[test]
fn a_stats_guard_held_across_the_call_is_a_guard_across_await() {
    let report = run("wrong");
    let stats = "corpus/src/bin/tower_limit_load.rs:35:30";
    let found = summary(&report.findings);
    assert!(found.contains(&format!("guard-across-await Warning [{stats:?}]")), "{found:#?}");
    // Every caller queues on `stats`: the contention is the same bug's, seen from the lock.
    let rest: Vec<&String> =
        found.iter().filter(|f| !f.starts_with("guard-across-await")).collect();
    assert_eq!(rest, [&format!("contention-hotspot Warning [{stats:?}]")], "{found:#?}");
    assert!(report.findings.iter().all(|f| f.severity < Severity::Error));
}
