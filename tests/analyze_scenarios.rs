//! `hindsight analyze` on the committed scenario traces (`traces/`): exact findings — kinds,
//! severities, lock names, threads, sites — and nothing else; exit statuses; the text report.
//!
//! The sites are lines of the scenario programs in `traces/src/bin/`: if you edit one, re-record
//! (`traces/record-all.sh`) and update the lines here.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hindsight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the hindsight binary runs")
}

/// Runs `analyze --format json` on `traces`; returns the exit status and the report.
fn analyze_json(traces: &[&str]) -> (i32, Value) {
    let mut args = vec!["analyze", "--format", "json"];
    args.extend_from_slice(traces);
    let out = hindsight(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    let report = serde_json::from_slice(&out.stdout).expect("analyze prints one JSON object");
    (out.status.code().expect("exit status"), report)
}

/// A finding reduced to what the tests compare: kind, severity, locks, threads and sites
/// (`role file:line:col`), each list sorted where the run's timing decides its order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    kind: String,
    severity: String,
    locks: Vec<String>,
    threads: Vec<String>,
    sites: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn seen(report: &Value, sort: bool) -> Vec<Seen> {
    let mut all: Vec<Seen> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let mut s = Seen {
                kind: f["kind"].as_str().expect("kind").to_owned(),
                severity: f["severity"].as_str().expect("severity").to_owned(),
                locks: strings(&f["locks"]),
                threads: strings(&f["threads"]),
                sites: f["sites"]
                    .as_array()
                    .expect("sites")
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}:{}:{}",
                            s["role"].as_str().unwrap_or("?"),
                            s["file"].as_str().unwrap_or("?"),
                            s["line"],
                            s["col"]
                        )
                    })
                    .collect(),
            };
            assert!(strings(&f["tasks"]).is_empty() && strings(&f["variables"]).is_empty());
            if sort {
                s.locks.sort();
                s.threads.sort();
                s.sites.sort();
            }
            s
        })
        .collect();
    if sort {
        all.sort();
    }
    all
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn lock_order_inversion_is_one_lock_order_cycle_between_sqlite_and_git() {
    let (status, report) = analyze_json(&["traces/lock_order_inversion.trace"]);
    assert_eq!(status, 1);
    let file = "traces/src/bin/lock_order_inversion.rs";
    assert_eq!(
        seen(&report, false),
        vec![Seen {
            kind: "lock-order-cycle".into(),
            severity: "error".into(),
            locks: owned(&["sqlite", "git"]),
            threads: owned(&["failure-recorder", "sync"]),
            sites: vec![
                format!("held {file}:74:36"),
                format!("acquired {file}:76:29"),
                format!("held {file}:82:25"),
                format!("acquired {file}:83:36"),
            ],
        }]
    );
    let locks: Vec<(&str, &str, &str)> = report["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or(""),
                l["kind"].as_str().unwrap_or(""),
                l["class"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(locks, vec![("sqlite", "mutex", "sqlite"), ("git", "mutex", "git")]);
}

#[test]
fn lock_order_inversion_reads_as_text_a_stranger_can_act_on() {
    let out = hindsight(&["analyze", "traces/lock_order_inversion.trace"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let file = "traces/src/bin/lock_order_inversion.rs";
    for line in [
        "error[lock-order-cycle]: locks `sqlite` and `git` are taken in opposite orders".to_owned(),
        format!("  - thread `failure-recorder` holds `sqlite` (acquired at {file}:74:36) and takes `git` at {file}:76:29, t="),
        format!("  - thread `sync` holds `git` (acquired at {file}:82:25) and takes `sqlite` at {file}:83:36, t="),
        "  help: take these locks in one global order everywhere (for example always `sqlite` before `git`), or take them only while holding one common outer lock".to_owned(),
        "1 error, 0 warnings, 0 info".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn lock_order_processes_merged_are_one_cycle_between_the_lock_files() {
    let dir = root().join("traces/lock_order_processes");
    let mut traces: Vec<String> = std::fs::read_dir(&dir)
        .expect("traces/lock_order_processes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "trace"))
        .map(|p| p.display().to_string())
        .collect();
    traces.sort();
    assert_eq!(traces.len(), 2);
    let args: Vec<&str> = traces.iter().map(String::as_str).collect();
    let (status, report) = analyze_json(&args);
    assert_eq!(status, 1);
    let findings = seen(&report, true);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let file = "traces/src/bin/lock_order_processes.rs";
    assert_eq!(findings[0].kind, "lock-order-cycle");
    assert_eq!(findings[0].severity, "error");
    assert_eq!(findings[0].locks, owned(&["db.lock", "index.lock"]));
    assert_eq!(
        findings[0].sites,
        vec![
            format!("acquired {file}:88:0"),
            format!("acquired {file}:95:0"),
            format!("held {file}:87:0"),
            format!("held {file}:94:0"),
        ]
    );
    // One `main` thread in each process, told apart by pid.
    assert_eq!(findings[0].threads.len(), 2);
    assert!(findings[0].threads.iter().all(|t| t.starts_with("main (pid ")), "{findings:?}");
    let locks: Vec<&str> = report["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(locks.len(), 2, "a name is one lock across processes: {locks:?}");
}

#[test]
fn deadlock_captured_is_one_deadlock_of_both_threads() {
    let (status, report) = analyze_json(&["traces/deadlock_captured.trace"]);
    assert_eq!(status, 1);
    let file = "traces/src/bin/deadlock_captured.rs";
    assert_eq!(
        seen(&report, true),
        vec![Seen {
            kind: "deadlock".into(),
            severity: "error".into(),
            locks: owned(&["git", "sqlite"]),
            threads: owned(&["failure-recorder", "sync"]),
            sites: vec![
                format!("held {file}:44:36"),
                format!("held {file}:53:25"),
                format!("waiting {file}:47:29"),
                format!("waiting {file}:55:36"),
            ],
        }]
    );
    // Who holds what and waits for what.
    let mut cycle: Vec<(String, String, String)> = report["findings"][0]["detail"]["cycle"]
        .as_array()
        .expect("cycle")
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
            (s(&a["thread"]), s(&a["holds"]["lock"]), s(&a["waits_for"]))
        })
        .collect();
    cycle.sort();
    assert_eq!(
        cycle,
        vec![
            ("failure-recorder".into(), "sqlite".into(), "git".into()),
            ("sync".into(), "git".into(), "sqlite".into()),
        ]
    );
}

#[test]
fn ordered_hierarchy_has_no_finding() {
    let (status, report) = analyze_json(&["traces/ordered_hierarchy.trace"]);
    assert_eq!(status, 0);
    // The program is correct: no finding at all. (Re-recorded on a machine busy enough to
    // starve its polls, the trace may hold `info` findings saying so; record it on a quiet
    // one.)
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(report["tasks"].as_array().map(|t| t.len() >= 100), Some(true));
    assert_eq!(report["trace"]["replay_conflicts"], 0);
    assert_eq!(report["trace"]["forced_reorders"], 0);
}

#[test]
fn gate_lock_has_no_error_only_the_gated_cycle_as_info() {
    let (status, report) = analyze_json(&["traces/gate_lock.trace"]);
    assert_eq!(status, 0);
    let file = "traces/src/bin/gate_lock.rs";
    assert_eq!(
        seen(&report, true),
        vec![Seen {
            kind: "lock-order-cycle".into(),
            severity: "info".into(),
            locks: owned(&["blobs", "index"]),
            threads: owned(&["evictor", "writer"]),
            sites: vec![
                format!("acquired {file}:64:33"),
                format!("acquired {file}:73:33"),
                format!("held {file}:63:33"),
                format!("held {file}:72:33"),
            ],
        }]
    );
    assert!(report["findings"][0]["detail"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("`cache`")));
}

#[test]
fn stale_lock_is_a_poisoned_cache_and_a_leaked_registry() {
    let (status, report) = analyze_json(&["traces/stale_lock.trace"]);
    assert_eq!(status, 1);
    let file = "traces/src/bin/stale_lock.rs";
    assert_eq!(
        seen(&report, true),
        vec![
            Seen {
                kind: "stale-lock".into(),
                severity: "error".into(),
                locks: owned(&["cache"]),
                threads: owned(&["parser"]),
                sites: vec![format!("acquired {file}:67:34"), format!("panicked {file}:68:45")],
            },
            Seen {
                kind: "stale-lock".into(),
                severity: "error".into(),
                locks: owned(&["registry"]),
                threads: owned(&["janitor"]),
                sites: vec![format!("acquired {file}:45:39")],
            },
        ]
    );
    let mut reasons: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["detail"]["reason"].as_str())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, vec!["holder-finished", "poisoned"]);
}

#[test]
fn fail_on_and_only_decide_the_exit_status() {
    let gate = "traces/gate_lock.trace";
    assert_eq!(hindsight(&["analyze", gate, "--fail-on", "info"]).status.code(), Some(1));
    assert_eq!(hindsight(&["analyze", gate, "--fail-on", "warning"]).status.code(), Some(0));
    let inversion = "traces/lock_order_inversion.trace";
    let only =
        hindsight(&["analyze", inversion, "--format", "json", "--only", "deadlock", "stale-lock"]);
    assert_eq!(only.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&only.stdout).expect("json");
    assert_eq!(report["findings"], serde_json::json!([]));
}

#[test]
fn unreadable_traces_and_bad_arguments_exit_2_with_one_line() {
    let missing = hindsight(&["analyze", "traces/no_such.trace"]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("hindsight: traces/no_such.trace: "), "{stderr}");

    let not_a_trace = hindsight(&["analyze", "Cargo.toml"]);
    assert_eq!(not_a_trace.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&not_a_trace.stderr),
        "hindsight: Cargo.toml: not a hindsight trace (wrong magic number)\n"
    );

    let bad_kind = hindsight(&["analyze", "traces/gate_lock.trace", "--only", "races"]);
    assert_eq!(bad_kind.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_kind.stderr).contains("unknown finding kind `races`"));
    assert_eq!(hindsight(&["analyze"]).status.code(), Some(2));
}
