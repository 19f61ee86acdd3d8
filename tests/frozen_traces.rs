//! The frozen traces of older format versions (`tests/data/vN/`) still read, with the findings
//! they had when they were recorded.

use hindsight_analyzer::report::{FindingKind, Report, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions};

/// The report of the frozen trace `name` of format `version`, checked to be of that version,
/// to have `events` events and no damage.
fn frozen(version: u32, name: &str, events: u64) -> Report {
    let path = format!("{}/tests/data/v{version}/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(bytes[4..8], version.to_le_bytes(), "a version {version} trace");
    let options = AnalyzeOptions::default();
    let report = analyze_bytes(vec![(name.into(), bytes)], &options).unwrap();
    assert_eq!(report.trace.files[0].format_version, version);
    assert_eq!(report.trace.events, events);
    assert!(!report.trace.damaged);
    report
}

/// Each finding's kind, severity, locks and tasks.
fn findings(report: &Report) -> Vec<(FindingKind, Severity, Vec<String>, Vec<String>)> {
    report.findings.iter().map(|f| (f.kind, f.severity, f.locks.clone(), f.tasks.clone())).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Recorded before version 3 added panics, await sites, semaphore permits, poll CPU times and
/// the clean end. A version 2 trace has no clean-end marker: that says nothing about how it
/// ended, so it gets no "state at death" finding.
#[test]
fn the_frozen_version_2_trace_reads_with_its_findings() {
    let report = frozen(2, "await_holding_std_lock.trace", 45);
    let contexts = strings(&["contexts"]);
    assert_eq!(
        findings(&report),
        vec![
            (
                FindingKind::GuardAcrossAwait,
                Severity::Error,
                contexts.clone(),
                strings(&["update-context", "list-contexts"])
            ),
            (
                FindingKind::BlockingInAsync,
                Severity::Warning,
                contexts,
                strings(&["list-contexts"])
            ),
        ]
    );
}

/// Recorded before version 4 added channel creations and waits for messages: its panic
/// record still tells the stale lock.
#[test]
fn the_frozen_version_3_trace_reads_with_its_findings() {
    let report = frozen(3, "panic_holding_async_lock.trace", 38);
    assert_eq!(
        findings(&report),
        vec![(
            FindingKind::StaleLock,
            Severity::Error,
            strings(&["total"]),
            strings(&["transfer"])
        )]
    );
}
