//! The production incident: the service of `traces/src/bin/incident_hang.rs`, recorded by the
//! flight recorder, deadlocks under load; the watchdog dumps the trace. The analysis shows the
//! deadlock with both waits, the inversion behind it, the trigger's mark, and nothing else.

use serde_json::Value;
use std::process::{Command, Output};

const TRACE: &str = "traces/incident_hang.trace";
const SOURCE: &str = "traces/src/bin/incident_hang.rs";

fn hindsight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the hindsight binary runs")
}

fn site(role: &str, line: u32, col: u32) -> Value {
    serde_json::json!({ "file": SOURCE, "line": line, "col": col, "role": role })
}

#[test]
fn the_dump_shows_the_deadlock_with_both_waits_and_the_inversion_behind_it() {
    let output = hindsight(&["analyze", TRACE, "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let kinds: Vec<&str> = findings.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lock-order-cycle", "deadlock"], "{findings:#?}");

    let deadlock = &findings[1];
    assert_eq!(deadlock["severity"], "error");
    assert_eq!(deadlock["locks"], serde_json::json!(["accounts", "ledger"]));
    // `transfer` holds `accounts` (58) and waits for `ledger` (65); `audit` holds `ledger`
    // (71) and waits for `accounts` (73). Which two connections collided depends on timing.
    assert_eq!(
        deadlock["sites"],
        serde_json::json!([
            site("held", 58, 42),
            site("waiting", 65, 38),
            site("held", 71, 34),
            site("waiting", 73, 38)
        ])
    );
    let cycle = deadlock["detail"]["cycle"].as_array().unwrap();
    assert_eq!(cycle.len(), 2);
    for (blocked, (holds, waits)) in
        cycle.iter().zip([("accounts", "ledger"), ("ledger", "accounts")])
    {
        assert!(blocked["task"].as_str().unwrap().starts_with("connection-"), "{blocked}");
        assert_eq!(blocked["holds"]["lock"], holds);
        assert_eq!(
            (blocked["waits_for"].as_str(), blocked["wait_kind"].as_str()),
            (Some(waits), Some("lock"))
        );
    }

    let cycle_finding = &findings[0];
    assert_eq!(cycle_finding["severity"], "error");
    assert_eq!(cycle_finding["locks"], serde_json::json!(["ledger", "accounts"]));
}

#[test]
fn info_shows_the_watchdog_mark_that_triggered_the_dump() {
    let output = hindsight(&["info", TRACE, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let info: Value = serde_json::from_slice(&output.stdout).unwrap();
    let marks = info["marks"].as_array().unwrap();
    assert_eq!(marks.len(), 1, "{marks:#?}");
    let label = marks[0]["label"].as_str().unwrap();
    assert!(
        label.starts_with("hindsight: dump triggered by watchdog: task `connection-"),
        "{label}"
    );
    assert!(label.contains("waited 5.0 s for lock"), "{label}");
    assert_eq!(info["truncated_bytes"], 0);
}
