//! The frozen version 2 trace (`tests/data/v2/`, recorded before version 3 added panics,
//! await sites, semaphore permits, poll CPU times and the clean end) still reads, with the
//! findings it had when it was recorded. A version 2 trace has no clean-end marker: that
//! says nothing about how it ended, so it gets no "state at death" finding.

use hindsight_analyzer::report::{FindingKind, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions};

#[test]
fn the_frozen_version_2_trace_reads_with_its_findings() {
    let path = format!("{}/tests/data/v2/await_holding_std_lock.trace", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(bytes[4..8], 2u32.to_le_bytes(), "a version 2 trace");
    let options = AnalyzeOptions::default();
    let report = analyze_bytes(vec![("v2.trace".into(), bytes)], &options).unwrap();
    assert_eq!(report.trace.files[0].format_version, 2);
    assert_eq!(report.trace.events, 45);
    assert!(!report.trace.damaged);
    let findings: Vec<(FindingKind, Severity, Vec<String>, Vec<String>)> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.severity, f.locks.clone(), f.tasks.clone()))
        .collect();
    let contexts = vec!["contexts".to_owned()];
    assert_eq!(
        findings,
        vec![
            (
                FindingKind::GuardAcrossAwait,
                Severity::Error,
                contexts.clone(),
                vec!["update-context".to_owned(), "list-contexts".to_owned()]
            ),
            (
                FindingKind::BlockingInAsync,
                Severity::Warning,
                contexts,
                vec!["list-contexts".to_owned()]
            ),
        ]
    );
}
