//! The production incident: the service of `traces/src/bin/incident_hang.rs`, recorded by the
//! flight recorder, deadlocks under load; the watchdog dumps the trace. The analysis shows the
//! deadlock with both waits, the inversion behind it, the trigger's mark, the state at death
//! (the dump has no clean end), and nothing else.

mod scenario_support;

use scenario_support::{analyze_json, hindsight, seen, site, sorted, Seen};
use serde_json::Value;

const TRACE: &str = "traces/incident_hang.trace";

#[test]
fn the_dump_shows_the_deadlock_with_both_waits_and_the_inversion_behind_it() {
    let (status, report) = analyze_json(&[TRACE]);
    assert_eq!(status, 1, "errors are reported");
    let s = |marker, role| site("incident_hang", marker, "lock()", role);
    // `transfer` takes `accounts` then `ledger`; `audit` takes `ledger` then `accounts`.
    let mut cycle_sites = vec![
        s("transfer-accounts", "held"),
        s("transfer-ledger", "acquired"),
        s("audit-ledger", "held"),
        s("audit-accounts", "acquired"),
    ];
    cycle_sites.sort();
    let mut deadlock_sites = vec![
        s("transfer-accounts", "held"),
        s("transfer-ledger", "waiting"),
        s("audit-ledger", "held"),
        s("audit-accounts", "waiting"),
    ];
    deadlock_sites.sort();
    // Which connections took the orders and which two collided is the run's choice.
    let mut found = seen(&report);
    // The dump ended mid-flight: what was held and awaited then is one `info` finding.
    let at_death: Vec<Seen> = found.iter().filter(|f| f.severity == "info").cloned().collect();
    assert_eq!(at_death.len(), 1, "{at_death:?}");
    assert_eq!(at_death[0].kind, "stale-lock");
    assert_eq!(at_death[0].locks, sorted(&["accounts", "ledger"]));
    let findings = report["findings"].as_array().expect("findings");
    let reasons: Vec<&Value> = findings.iter().map(|f| &f["detail"]["reason"]).collect();
    assert!(reasons.iter().any(|r| *r == "state-at-death"), "{reasons:?}");
    found.retain(|f| f.severity != "info");
    for finding in &mut found {
        assert!(finding.tasks.iter().all(|t| t.starts_with("connection-")), "{finding:?}");
        finding.tasks.clear();
    }
    assert_eq!(
        found,
        vec![
            Seen {
                kind: "deadlock".into(),
                severity: "error".into(),
                locks: sorted(&["accounts", "ledger"]),
                threads: sorted(&["tokio-rt-worker"]),
                tasks: vec![],
                variables: vec![],
                sites: deadlock_sites,
            },
            Seen {
                kind: "lock-order-cycle".into(),
                severity: "error".into(),
                locks: sorted(&["accounts", "ledger"]),
                threads: sorted(&["tokio-rt-worker"]),
                tasks: vec![],
                variables: vec![],
                sites: cycle_sites,
            },
        ]
    );
    let findings = report["findings"].as_array().expect("findings");
    let deadlock = findings.iter().find(|f| f["kind"] == "deadlock").expect("a deadlock");
    let cycle = deadlock["detail"]["cycle"].as_array().expect("its cycle");
    assert_eq!(cycle.len(), 2);
    let mut waits: Vec<(String, String)> = cycle
        .iter()
        .map(|blocked| {
            assert_eq!(blocked["wait_kind"], "lock");
            let holds = blocked["holds"]["lock"].as_str().expect("a held lock");
            (holds.to_owned(), blocked["waits_for"].as_str().expect("a lock").to_owned())
        })
        .collect();
    waits.sort();
    let expected = [("accounts", "ledger"), ("ledger", "accounts")];
    assert_eq!(waits, expected.map(|(h, w)| (h.to_owned(), w.to_owned())));
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
    // The watchdog fires once a wait passes 5 s, at its next look (every 250 ms at most).
    assert!(label.contains("waited 5."), "{label}");
    assert!(label.contains(" s for lock `"), "{label}");
    assert_eq!(info["truncated_bytes"], 0);
}
