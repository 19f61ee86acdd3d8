//! `hindsight analyze` on the committed traces of the scenarios of issue 21
//! (`connection_limit`, `pool_starved`, `panic_holding_async_lock`, `guard_across_sleep`):
//! exact findings, and nothing else.
//!
//! Expected sites are found in the scenario sources by their `// site: NAME` comments; if you
//! change a scenario, re-record its trace
//! (`cargo run --release -p hindsight-scenarios --bin NAME -- traces`).

mod scenario_support;

use scenario_support::{analyze_json, seen, site, sorted, Seen};

#[test]
fn a_connection_limit_handed_over_with_forget_and_add_permits_has_no_finding() {
    let (status, report) = analyze_json(&["traces/connection_limit.trace"]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
    let limit = report["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .find(|l| l["name"] == "limit_connections")
        .expect("the semaphore");
    assert_eq!((limit["kind"].as_str(), limit["capacity"].as_u64()), (Some("semaphore"), Some(3)));
    assert_eq!(limit["acquisitions"], 10);
}

#[test]
fn a_starved_pool_is_one_contention_hotspot_on_its_semaphore() {
    let (status, report) = analyze_json(&["traces/pool_starved.trace"]);
    assert_eq!(status, 0, "a warning does not fail by default");
    let checkout = site("pool_starved", "checkout", "acquire()", "");
    let found = seen(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    let hotspot = &found[0];
    assert_eq!(
        (hotspot.kind.as_str(), hotspot.severity.as_str()),
        ("contention-hotspot", "warning")
    );
    assert_eq!(hotspot.locks, sorted(&["connections"]));
    let checkout = checkout.trim_start();
    assert_eq!(
        hotspot.sites,
        sorted(&[&format!("holding {checkout}"), &format!("waiting {checkout}")])
    );
    let pool = &report["locks"][0];
    assert!(pool["contended"].as_u64().is_some_and(|n| n >= 5), "{pool}");
    assert!(pool["wait"]["max_ns"].as_u64().is_some_and(|n| n >= 100_000_000), "{pool}");
}

#[test]
fn a_task_that_panics_holding_an_async_mutex_is_a_stale_lock_at_the_panic() {
    let (status, report) = analyze_json(&["traces/panic_holding_async_lock.trace"]);
    assert_eq!(status, 1);
    let s = |marker, token, role| site("panic_holding_async_lock", marker, token, role);
    let mut sites = vec![s("lock", "lock()", "acquired"), s("panic", "expect(", "panicked")];
    sites.sort();
    assert_eq!(
        seen(&report),
        vec![Seen {
            kind: "stale-lock".into(),
            severity: "error".into(),
            locks: sorted(&["total"]),
            threads: sorted(&["tokio-rt-worker"]),
            tasks: sorted(&["transfer"]),
            variables: vec![],
            sites,
        }]
    );
    assert_eq!(report["findings"][0]["detail"]["reason"], "unwound");
}

#[test]
fn a_guard_held_across_a_sleep_names_the_sleeps_await() {
    let (status, report) = analyze_json(&["traces/guard_across_sleep.trace"]);
    assert_eq!(status, 0, "a warning does not fail by default");
    let s = |marker, token, role| site("guard_across_sleep", marker, token, role);
    let mut sites = vec![
        s("lock", "lock()", "acquired"),
        s("refresh-spawn", "task::spawn", "spawned"),
        s("backoff", "tokio::time::sleep", "await"),
        s("wait", "lock()", "waiting"),
    ];
    sites.sort();
    assert_eq!(
        seen(&report),
        vec![Seen {
            kind: "guard-across-await".into(),
            severity: "warning".into(),
            locks: sorted(&["token"]),
            threads: sorted(&["tokio-rt-worker"]),
            tasks: sorted(&["refresh", "request"]),
            variables: vec![],
            sites,
        }]
    );
}
