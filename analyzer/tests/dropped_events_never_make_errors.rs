//! Events the recorder dropped (a gap) make what replay believes about their thread
//! uncertain: a finding resting on it is `info` and names the gap (issue 21, item 2).

mod common;

use common::{analyze, of_kind};
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{EventKind, TraceBuilder};

/// ```text
/// worker: lock(registry) ─ [gap: 3 events dropped, the release among them] ─ finish
/// main:   lock(config) ─ finish                  (config really leaked: still an error)
/// ```
#[test]
fn a_finding_about_a_thread_that_dropped_events_is_info_and_names_the_gap() {
    let mut b = TraceBuilder::new("gap");
    let (worker, main) = (b.thread("worker"), b.thread("main"));
    let (registry, config) = (b.mutex("registry"), b.mutex("config"));
    let s = b.site("src/w.rs", 3, 9);
    b.on(worker).start().acquire(registry, s).advance(1_000);
    b.on(worker).event(EventKind::Gap { dropped: 3 }).finish();
    b.on(main).start().acquire(config, s).finish();
    let report = analyze(&b);
    let stale: Vec<(Severity, Vec<String>)> = of_kind(&report, FindingKind::StaleLock)
        .iter()
        .map(|f| (f.severity, f.locks.clone()))
        .collect();
    assert_eq!(
        stale,
        vec![
            (Severity::Error, vec!["config".to_owned()]),
            (Severity::Info, vec!["registry".to_owned()])
        ]
    );
    let uncertain = report.findings.iter().find(|f| f.severity == Severity::Info).unwrap();
    assert!(
        uncertain.evidence.iter().any(|e| {
            e
            == "uncertain: the recorder dropped 3 events of thread `worker` (its buffer was full) \
                in 1 gap, the first at t=1.0µs; this finding may rest on what was lost"
        }),
        "{:#?}",
        uncertain.evidence
    );
    assert_eq!(report.trace.dropped_events, 3);
}
