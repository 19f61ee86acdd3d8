//! `blocking-in-async` judges a long poll by its recorded CPU and run-queue time where it has
//! them (issue 21, item 3): a CPU burn and an off-CPU wait are warnings, a poll long only
//! because it was runnable but not running (a starved process) is `info`.

mod common;

use common::analyze;
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{EventKind, TraceBuilder};

/// Four tasks, each with one 15 ms poll: `hash` on the CPU, `read-file` off it, `parse` mostly
/// waiting for a CPU, `legacy` with no CPU time recorded.
#[test]
fn a_long_poll_is_judged_by_where_its_time_went() {
    let mut b = TraceBuilder::new("polls");
    let worker = b.thread("worker");
    let polls = [
        ("hash", Some((14_500_000, 300_000))),
        ("read-file", Some((200_000, 300_000))),
        ("parse", Some((2_000_000, 12_900_000))),
        ("legacy", None),
    ];
    for (line, (name, cpu)) in (1..).zip(polls) {
        let spawned = b.site("src/main.rs", line, 5);
        let task = b.task(name, Some(spawned));
        let actor = b.in_task(worker, task).poll_start().advance(15_000_000);
        let actor = match cpu {
            Some((cpu_ns, runnable_ns)) => actor.event(EventKind::PollCpu { cpu_ns, runnable_ns }),
            None => actor,
        };
        actor.poll_end(true).finish_task();
    }
    let report = analyze(&b);
    let found: Vec<(Vec<String>, Severity)> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::BlockingInAsync)
        .map(|f| (f.tasks.clone(), f.severity))
        .collect();
    let task = |n: &str| vec![n.to_owned()];
    assert_eq!(
        found,
        vec![
            (task("hash"), Severity::Warning),
            (task("read-file"), Severity::Warning),
            (task("legacy"), Severity::Warning),
            (task("parse"), Severity::Info),
        ]
    );
    let evidence = |name: &str| {
        let f = report.findings.iter().find(|f| f.tasks == task(name)).expect("a finding");
        f.evidence.join("\n")
    };
    assert!(evidence("hash").contains("it burned the CPU"), "{}", evidence("hash"));
    assert!(evidence("read-file").contains("waited off the CPU"), "{}", evidence("read-file"));
    assert!(evidence("parse").contains("starved of CPU"), "{}", evidence("parse"));
    let parse = report.findings.iter().find(|f| f.tasks == task("parse")).expect("parse");
    assert_eq!(
        parse.title,
        "task `parse` had a poll of 15.000ms while the process was starved of CPU (not blocking)"
    );
    assert!(!evidence("legacy").contains("on the CPU"), "{}", evidence("legacy"));
}

/// A poll still open when a trace stops mid-flight may have lost its end with its thread's
/// last buffer: it is not judged. Open at a clean end, it is.
#[test]
fn a_poll_open_when_a_trace_stops_mid_flight_is_not_judged() {
    let build = |mid_flight: bool| {
        let mut b = TraceBuilder::new("cut");
        let worker = b.thread("worker");
        let task = b.task("short-lived", None);
        b.in_task(worker, task).poll_start();
        b.on(worker).advance(50_000_000).mark("later");
        if mid_flight {
            b.end_mid_flight();
        }
        analyze(&b)
    };
    let blocking = |report: &hindsight_analyzer::Report| {
        report.findings.iter().filter(|f| f.kind == FindingKind::BlockingInAsync).count()
    };
    let cut = build(true);
    assert_eq!(blocking(&cut), 0);
    // Where it stood is the state at death.
    let titles: Vec<&str> = cut.findings.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        ["state at death: the trace ended mid-flight with 0 locks held, 0 actors waiting and 1 \
          task in a poll"]
    );
    assert!(cut.findings[0].evidence.iter().any(|e| e.starts_with(
        "task `short-lived` was in a poll on thread `worker` since t=0ns (50.000ms before the end)"
    )));
    assert_eq!(blocking(&build(false)), 1);
}
