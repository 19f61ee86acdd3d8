//! Tasks checking connections out of deadpool 0.13's unmodified managed pool (a tokio
//! semaphore whose permit each checkout `forget`s and the returned connection gives back with
//! `add_permits`) under hindsight (issue 21): used correctly, no finding; with a connection
//! kept out across a slow call while the pool is exhausted, a `contention-hotspot` on the
//! pool's semaphore, and nothing else.

mod common;

use common::{run_harness, summary};
use hindsight_analyzer::Report;

/// The pool's semaphore, named by its creation line in deadpool's source.
const POOL: &str = "deadpool-0.13.1/src/managed/pool.rs:78:28";

/// Runs the harness in `mode` and analyses its trace.
fn run(mode: &str) -> Report {
    let binary = env!("CARGO_BIN_EXE_deadpool_pool_load");
    run_harness(binary, &format!("deadpool-{mode}"), &[mode, "16", "1"])
}

#[test]
fn tasks_that_return_each_connection_after_one_query_give_no_finding() {
    let report = run("correct");
    assert_eq!(summary(&report.findings), Vec::<String>::new());
    let pool = report.locks.iter().find(|l| l.kind == "semaphore").expect("the pool");
    assert_eq!((pool.name.as_str(), pool.capacity), (POOL, Some(4)));
    // Every checkout's permit is forgotten and given back by `add_permits`: each is a hold.
    assert!(pool.acquisitions >= 16, "{pool:?}");
}

#[test]
fn a_connection_kept_across_a_slow_call_while_the_pool_is_exhausted_is_a_contention_hotspot() {
    let report = run("wrong");
    assert_eq!(summary(&report.findings), [format!("contention-hotspot Warning [{POOL:?}]")]);
    let pool = report.locks.iter().find(|l| l.kind == "semaphore").expect("the pool");
    // 16 tasks queue for 4 connections each kept ~51 ms: a checkout waits ~150 ms.
    assert!(pool.wait.max_ns >= 100_000_000, "{pool:?}");
    // tokio gives its semaphore's operations no call site: the one site given is the pool's
    // creation, said as such, never as where the checkouts held or waited.
    let sites: Vec<(String, &str)> =
        report.findings[0].sites.iter().map(|s| (s.to_string(), s.role.as_str())).collect();
    assert_eq!(sites, [(POOL.to_owned(), "created"), (POOL.to_owned(), "created")]);
}
