//! `hindsight analyze` on the committed traces of the async and lock-statistics scenarios
//! (`await_holding_std_lock`, `await_scoped_guards`, `blocking_poll`, `nested_task_wait`,
//! `contention_hotspot`): exact findings — kinds, severities, locks, threads, tasks, sites —
//! and nothing else.
//!
//! Expected sites are found in the scenario sources by their `// site: NAME` comments; if you
//! change a scenario, re-record its trace
//! (`cargo run --release -p hindsight-scenarios --bin NAME -- traces`).

mod scenario_support;

use scenario_support::{analyze_json, seen, site, sorted, Seen};
use serde_json::Value;

#[test]
fn await_holding_std_lock_is_a_blocking_guard_across_an_await_and_the_worker_it_blocked() {
    let (status, report) = analyze_json(&["traces/await_holding_std_lock.trace"]);
    assert_eq!(status, 1, "an error is reported");
    let s = |marker, token, role| site("await_holding_std_lock", marker, token, role);
    let mut guard_sites = vec![
        s("write-guard", "write()", "acquired"),
        s("update-spawn", "task::spawn_local", "spawned"),
        s("blocked-read", "read()", "waiting"),
    ];
    guard_sites.sort();
    let mut blocking_sites =
        vec![s("list-spawn", "task::spawn(", "spawned"), s("blocked-read", "read()", "waiting")];
    blocking_sites.sort();
    assert_eq!(
        seen(&report),
        vec![
            Seen {
                kind: "blocking-in-async".into(),
                severity: "warning".into(),
                locks: sorted(&["contexts"]),
                threads: sorted(&["tokio-rt-worker"]),
                tasks: sorted(&["list-contexts"]),
                variables: vec![],
                sites: blocking_sites,
            },
            Seen {
                kind: "guard-across-await".into(),
                severity: "error".into(),
                locks: sorted(&["contexts"]),
                threads: sorted(&["main", "tokio-rt-worker"]),
                tasks: sorted(&["list-contexts", "update-context"]),
                variables: vec![],
                sites: guard_sites,
            },
        ]
    );
    let detail = |kind: &str| -> Value {
        let findings = report["findings"].as_array().expect("findings");
        findings.iter().find(|f| f["kind"] == kind).expect("the finding")["detail"].clone()
    };
    let guard = detail("guard-across-await");
    assert_eq!(guard["guard"], "blocking");
    assert_eq!(guard["task"], "update-context");
    assert_eq!(guard["suspensions"], 1);
    let waiters = guard["waiters"].as_array().expect("waiters");
    assert_eq!(waiters.len(), 1);
    assert_eq!(waiters[0]["actor"], "task `list-contexts`");
    // The reader waited for the blocking lock inside its poll: long enough to stall its
    // worker (1 ms), short of a long poll and of contention.
    let blocking = detail("blocking-in-async");
    assert_eq!(blocking["blocking_lock"], "contexts");
    let waited = blocking["blocking_wait_ns"].as_u64().expect("a wait");
    assert!((1_000_000..10_000_000).contains(&waited), "waited {waited} ns");
    assert_eq!(blocking["long_polls"], 0);
}

#[test]
fn await_scoped_guards_has_no_finding() {
    let (status, report) = analyze_json(&["traces/await_scoped_guards.trace"]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
    // Not vacuous: the tasks ran and the async locks were used, contended or not.
    let tasks: Vec<&str> = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for name in ["update-context-0", "update-context-3", "list-contexts"] {
        assert!(tasks.contains(&name), "{name} in {tasks:?}");
    }
    let mut locks: Vec<(&str, bool, u64)> = report["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| {
            let name = l["name"].as_str().expect("a name");
            (
                name,
                l["blocking"].as_bool().expect("blocking"),
                l["acquisitions"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    locks.sort();
    assert_eq!(locks.len(), 2);
    assert_eq!((locks[0].0, locks[0].1), ("contexts", false));
    assert_eq!((locks[1].0, locks[1].1), ("persist_queue", false));
    assert!(locks.iter().all(|(_, _, acquisitions)| *acquisitions >= 12), "{locks:?}");
}

#[test]
fn blocking_poll_flags_the_thumbnailer_only() {
    let (status, report) = analyze_json(&["traces/blocking_poll.trace"]);
    assert_eq!(status, 0, "a warning does not fail the default --fail-on error");
    assert_eq!(
        seen(&report),
        vec![Seen {
            kind: "blocking-in-async".into(),
            severity: "warning".into(),
            locks: vec![],
            threads: sorted(&["tokio-rt-worker"]),
            tasks: sorted(&["thumbnailer"]),
            variables: vec![],
            sites: vec![site("blocking_poll", "thumbnailer-spawn", "task::spawn", "spawned")],
        }]
    );
    let detail = &report["findings"][0]["detail"];
    assert_eq!(detail["long_polls"], 2, "one long poll per resize");
    let longest = detail["longest_poll_ns"].as_u64().expect("longest poll");
    assert!((50_000_000..100_000_000).contains(&longest), "longest poll {longest} ns");
    assert_eq!(detail["blocking_lock"], Value::Null);

    // The threshold decides: polls of 50 ms are not reported from 60 ms on.
    let (status, report) =
        analyze_json(&["traces/blocking_poll.trace", "--poll-threshold", "60ms"]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
    // ...and with --fail-on warning the default run fails.
    let (status, _) = analyze_json(&["traces/blocking_poll.trace", "--fail-on", "warning"]);
    assert_eq!(status, 1);
}

#[test]
fn nested_task_wait_is_one_deadlock_of_both_tasks() {
    let (status, report) = analyze_json(&["traces/nested_task_wait.trace"]);
    assert_eq!(status, 1);
    let s = |marker, token, role| site("nested_task_wait", marker, token, role);
    let mut sites = vec![
        s("session-lock", "lock()", "held"),
        s("join-refresh", "await", "waiting"),
        s("refresh-lock", "lock()", "waiting"),
    ];
    sites.sort();
    assert_eq!(
        seen(&report),
        vec![Seen {
            kind: "deadlock".into(),
            severity: "error".into(),
            locks: sorted(&["session"]),
            threads: sorted(&["tokio-rt-worker"]),
            tasks: sorted(&["handle-request", "refresh-token"]),
            variables: vec![],
            sites,
        }]
    );
    // Who holds what and waits for what.
    let mut cycle: Vec<(String, String, String, String)> = report["findings"][0]["detail"]["cycle"]
        .as_array()
        .expect("cycle")
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (s(&a["task"]), s(&a["holds"]["lock"]), s(&a["wait_kind"]), s(&a["waits_for"]))
        })
        .collect();
    cycle.sort();
    let row = |task: &str, holds: &str, kind: &str, waits_for: &str| {
        (task.to_owned(), holds.to_owned(), kind.to_owned(), waits_for.to_owned())
    };
    assert_eq!(
        cycle,
        vec![
            row("handle-request", "session", "task", "refresh-token"),
            row("refresh-token", "-", "lock", "session"),
        ]
    );
}

/// A lock's (p99, max) wait in the `locks` section.
fn waits(report: &Value, name: &str) -> (u64, u64) {
    let locks = report["locks"].as_array().expect("locks");
    let lock = locks.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("lock {name}"));
    let wait = &lock["wait"];
    (wait["p99_ns"].as_u64().unwrap_or(0), wait["max_ns"].as_u64().unwrap_or(0))
}

#[test]
fn contention_hotspot_is_metrics_only_and_tops_the_lock_statistics() {
    let (status, report) = analyze_json(&["traces/contention_hotspot.trace"]);
    assert_eq!(status, 0, "a warning does not fail the default --fail-on error");
    let s = |marker, role| site("contention_hotspot", marker, "lock()", role);
    let mut sites = vec![
        s("metrics-lock", "holding"),
        s("final-read", "holding"),
        s("metrics-lock", "waiting"),
    ];
    sites.sort();
    assert_eq!(
        seen(&report),
        vec![Seen {
            kind: "contention-hotspot".into(),
            severity: "warning".into(),
            locks: sorted(&["metrics"]),
            // Every worker queued on `metrics` at some point.
            threads: sorted(&[
                "worker-0", "worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6",
                "worker-7",
            ]),
            tasks: vec![],
            variables: vec![],
            sites,
        }]
    );
    let mut names: Vec<&str> = report["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["config", "metrics", "registry"]);
    let (p99, max) = waits(&report, "metrics");
    assert!(max >= 100_000_000, "metrics waited at most {max} ns");
    for quiet in ["config", "registry"] {
        let (quiet_p99, quiet_max) = waits(&report, quiet);
        assert!(
            p99 > quiet_p99 && max > quiet_max,
            "metrics ({p99}, {max}) vs {quiet} ({quiet_p99}, {quiet_max})"
        );
        assert!(quiet_max < 10_000_000, "{quiet} waited {quiet_max} ns");
    }

    // With a threshold ten times the longest wait, nothing is a hotspot any more.
    let threshold = format!("{}ms", max / 100_000 + 1);
    let (status, report) =
        analyze_json(&["traces/contention_hotspot.trace", "--wait-threshold", &threshold]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
}
