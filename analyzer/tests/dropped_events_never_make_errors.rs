//! Events the recorder dropped (a gap) make what replay believes about their thread
//! uncertain: a finding resting on it is `info` and names the gap (issue 21, item 2).

mod common;

use common::{analyze, of_kind};
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{EventKind, TraceBuilder};

/// The `stale-lock` findings of `report`: each one's severity and locks.
fn stale_locks(report: &hindsight_analyzer::report::Report) -> Vec<(Severity, Vec<String>)> {
    of_kind(report, FindingKind::StaleLock).iter().map(|f| (f.severity, f.locks.clone())).collect()
}

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
    assert_eq!(
        stale_locks(&report),
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

/// A gap makes uncertain only the facts it falls inside: a hold taken after the gap (its
/// acquisition showed the thread again) is as certain as any, and a poll that ended before
/// the gap was seen whole.
///
/// ```text
/// worker: [poll of `early` 20 ms] ─ lock(held-across) ─ [gap: 4 dropped] ─ lock(after) ─ finish
/// ```
/// `held-across` and `after` both leak; only `held-across`'s hold spans the gap.
#[test]
fn a_gap_demotes_only_the_findings_whose_facts_it_falls_inside() {
    let mut b = TraceBuilder::new("gap-per-fact");
    let worker = b.thread("worker");
    let early = b.task("early", None);
    let (across, after) = (b.mutex("held-across"), b.mutex("after"));
    let s = b.site("src/w.rs", 3, 9);
    b.on(worker).start();
    b.in_task(worker, early).poll_start().advance(20_000_000).poll_end(true).finish_task();
    b.on(worker).acquire(across, s).advance(1_000_000);
    b.on(worker).event(EventKind::Gap { dropped: 4 }).advance(1_000_000);
    b.on(worker).acquire(after, s).finish();
    let report = analyze(&b);
    let found: Vec<(&str, Severity, Vec<String>)> =
        report.findings.iter().map(|f| (f.kind.name(), f.severity, f.locks.clone())).collect();
    let lock = |name: &str| vec![name.to_owned()];
    assert_eq!(
        found,
        vec![
            ("stale-lock", Severity::Error, lock("after")),
            ("blocking-in-async", Severity::Warning, vec![]),
            ("stale-lock", Severity::Info, lock("held-across")),
        ],
        "{:#?}",
        report.findings
    );
}

/// A thread's many early gaps, more than replay keeps exactly, still leave a hold taken long
/// after them certain; a hold taken among them is not.
///
/// ```text
/// worker: lock(early) ─ [12 gaps, 1 µs apart] ─ (1 ms) ─ lock(late) ─ finish
/// ```
#[test]
fn many_early_gaps_leave_a_later_hold_certain() {
    let mut b = TraceBuilder::new("many-gaps");
    let worker = b.thread("worker");
    let (early, late) = (b.mutex("early"), b.mutex("late"));
    let s = b.site("src/w.rs", 3, 9);
    b.on(worker).start().acquire(early, s);
    for _ in 0..12 {
        b.advance(1_000);
        b.on(worker).event(EventKind::Gap { dropped: 2 });
    }
    b.advance(1_000_000);
    b.on(worker).acquire(late, s).finish();
    let report = analyze(&b);
    assert_eq!(
        stale_locks(&report),
        vec![
            (Severity::Error, vec!["late".to_owned()]),
            (Severity::Info, vec!["early".to_owned()])
        ]
    );
    assert_eq!(report.trace.dropped_events, 24);
}
