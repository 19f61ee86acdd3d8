//! Deadlock prediction on the minimal STD traces of issue 19 (cases 1–4): each lock-order
//! cycle is an error only with a witness schedule, and lower with the reason that refutes it.

use hindsight_analyzer::report::{Detail, Finding};
use hindsight_analyzer::{analyze_paths, AnalyzeOptions, FindingKind, Severity};
use std::path::PathBuf;

/// The findings of `tests/data/std/NAME.std`.
fn findings(name: &str) -> Vec<Finding> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/std/{name}.std"));
    let report = analyze_paths(&[path], &AnalyzeOptions::default()).expect("the STD trace reads");
    report.findings
}

/// `(severity, locks)` of each finding, all of them lock-order cycles.
fn verdicts(findings: &[Finding]) -> Vec<(Severity, Vec<String>)> {
    assert!(findings.iter().all(|f| f.kind == FindingKind::LockOrderCycle), "{findings:#?}");
    findings.iter().map(|f| (f.severity, f.locks.clone())).collect()
}

fn detail(finding: &Finding) -> &hindsight_analyzer::report::CycleDetail {
    let Detail::LockOrderCycle(detail) = &finding.detail else { panic!("{finding:#?}") };
    detail
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

/// Case 1: `T1` is spawned after `T0` released both locks: a warning naming the spawn.
#[test]
fn orders_separated_by_a_spawn_are_a_warning_naming_it() {
    let found = findings("ordered_by_spawn");
    assert_eq!(verdicts(&found), vec![(Severity::Warning, strings(&["A", "B"]))]);
    let reason = detail(&found[0]).reason.clone().unwrap_or_default();
    assert!(reason.contains("ordered by the spawn of thread `T1` at LOC 14"), "{reason}");
    assert!(detail(&found[0]).witness.is_empty());
}

/// Case 2: both hold `G` at the inner acquisitions of A/B; A/G and G/B can deadlock; two
/// threads cannot close a three-lock cycle.
#[test]
fn a_lock_held_by_both_refutes_only_the_cycle_it_covers() {
    let found = findings("common_inner_lock");
    assert_eq!(
        verdicts(&found),
        vec![
            (Severity::Error, strings(&["G", "B"])),
            (Severity::Error, strings(&["A", "G"])),
            (Severity::Info, strings(&["A", "B"])),
            (Severity::Info, strings(&["A", "B", "G"])),
            (Severity::Info, strings(&["A", "G", "B"])),
        ]
    );
    for error in &found[..2] {
        let witness = &detail(error).witness;
        assert_eq!(witness.len(), 4, "{witness:#?}");
        assert!(witness[2].event.starts_with("asks for"), "{witness:#?}");
    }
    let reason = |i: usize| detail(&found[i]).reason.clone().unwrap_or_default();
    assert!(reason(2).contains("both hold `G` when they ask"), "{}", reason(2));
    for i in [3, 4] {
        assert!(reason(i).contains("closing a cycle of 3 locks needs 3"), "{}", reason(i));
    }
}

/// Case 3: `T3` runs only inside its parent's hold of `G`, which `T2` takes first.
#[test]
fn a_child_inside_its_parents_gate_cannot_deadlock() {
    let found = findings("child_inside_parent_gate");
    assert_eq!(verdicts(&found), vec![(Severity::Info, strings(&["A", "B"]))]);
    let reason = detail(&found[0]).reason.clone().unwrap_or_default();
    assert!(reason.contains("inside its parent thread `T1`'s hold of `G`"), "{reason}");
}

/// Case 4: `T2` holds A and joins `T3`, which needs B, which `T1` holds while asking for A.
#[test]
fn a_join_made_while_holding_a_lock_closes_a_cycle() {
    let found = findings("join_while_holding");
    assert_eq!(verdicts(&found), vec![(Severity::Error, strings(&["B", "A"]))]);
    let witness = &detail(&found[0]).witness;
    let last: Vec<(&str, &str)> = witness
        .iter()
        .skip(witness.len() - 3)
        .map(|s| (s.actor.as_str(), s.event.as_str()))
        .collect();
    assert_eq!(
        last,
        vec![
            ("thread `T2`", "waits for thread `T3` to finish, holding `A`"),
            ("thread `T1`", "asks for `A` and waits"),
            ("thread `T3`", "asks for `B` and waits"),
        ]
    );
}
