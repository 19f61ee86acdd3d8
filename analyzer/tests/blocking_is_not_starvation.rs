//! `blocking-in-async` judges a long poll by its recorded CPU and run-queue time where it has
//! them (issue 21, item 3): a CPU burn and an off-CPU wait are warnings, a poll long only
//! because it was runnable but not running (a starved process) is `info`.

mod common;

use common::{analyze, of_kind};
use hindsight_analyzer::report::{Report, Severity};
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
    let found: Vec<(Vec<String>, Severity)> = of_kind(&report, FindingKind::BlockingInAsync)
        .iter()
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
    let blocking =
        |report: &hindsight_analyzer::Report| of_kind(report, FindingKind::BlockingInAsync).len();
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

/// `reader` waits 22.5 ms off the CPU in a 25 ms poll on `worker-1`, on a lock hindsight cannot
/// see (a std mutex inside a library) held by `writer`, whose poll on `worker-0` was runnable
/// but not running for 20 ms of it: the wait is the machine's starvation passed on, `info`.
/// Without a starved poll beside it, the same wait is a warning. `writer`'s poll ends before
/// or after `reader`'s: the judgment waits for it.
///
/// ```text
/// worker-0  writer  [poll 30 ms: 1 ms CPU, 20 ms runnable  ]       (holder_ends_first: ends at 27 ms)
/// worker-1  reader      [poll 25 ms: 0.5 ms CPU, 2 ms runnable, 22.5 ms off the CPU]
///           0 ms    2 ms                                     27 ms    32 ms
/// ```
#[test]
fn an_off_cpu_wait_beside_a_starved_poll_is_starvation_passed_on() {
    let build = |writer_starved: bool, holder_ends_first: bool| {
        let mut b = TraceBuilder::new("starved-holder");
        let (worker0, worker1) = (b.thread("worker-0"), b.thread("worker-1"));
        // Spawned at two sites: two findings, not one repeated.
        let (writes, reads) = (b.site("src/db.rs", 10, 5), b.site("src/db.rs", 20, 5));
        let (writer, reader) = (b.task("writer", Some(writes)), b.task("reader", Some(reads)));
        let writer_runnable = if writer_starved { 20_000_000 } else { 0 };
        let writer_cpu = EventKind::PollCpu { cpu_ns: 1_000_000, runnable_ns: writer_runnable };
        b.in_task(worker0, writer).poll_start();
        b.advance(2_000_000);
        b.in_task(worker1, reader).poll_start();
        if holder_ends_first {
            b.advance(25_000_000);
            b.in_task(worker0, writer).event(writer_cpu).poll_end(true).finish_task();
        } else {
            b.advance(25_000_000);
        }
        let reader_cpu = EventKind::PollCpu { cpu_ns: 500_000, runnable_ns: 2_000_000 };
        b.in_task(worker1, reader).event(reader_cpu).poll_end(true).finish_task();
        if !holder_ends_first {
            b.advance(5_000_000);
            b.in_task(worker0, writer).event(writer_cpu).poll_end(true).finish_task();
        }
        analyze(&b)
    };
    assert_starvation_passed_on(
        build,
        "task `reader` had a poll of 25.000ms while the process was starved of CPU (not \
         blocking)",
        "of its worst long poll (25.000ms), 500.0µs on the CPU and 2.000ms waiting for one: it \
         waited off the CPU for 22.500ms, while the other threads' polls beside it were \
         runnable but not running for 20.000ms",
        "it waited off the CPU (a blocking call",
    );
}

/// `reader` waits 9 ms inside a poll for blocking lock `cache`, held by `writer` on another
/// worker, whose poll was runnable but not running for 8.5 ms of it: the holder was preempted,
/// the wait is `info`. With a holder that ran, the same wait is a warning. `writer`'s poll
/// ends before or after `reader`'s acquisition.
///
/// ```text
/// worker-0  writer  [poll: lock(cache) ........ unlock (10 ms)] (ends at 10 or 12 ms)
/// worker-1  reader       [poll: request(cache) ........ acquire (10 ms), unlock, end]
///           0 ms    1 ms
/// ```
#[test]
fn a_wait_for_a_holder_that_was_preempted_is_starvation() {
    let build = |holder_starved: bool, holder_ends_first: bool| {
        let mut b = TraceBuilder::new("preempted-holder");
        let (worker0, worker1) = (b.thread("worker-0"), b.thread("worker-1"));
        let (writes, reads) = (b.site("src/db.rs", 10, 5), b.site("src/db.rs", 20, 5));
        let (writer, reader) = (b.task("writer", Some(writes)), b.task("reader", Some(reads)));
        let cache = b.mutex("cache");
        let (write_at, read_at) = (b.site("src/db.rs", 11, 9), b.site("src/db.rs", 21, 9));
        let (cpu_ns, runnable_ns) =
            if holder_starved { (1_000_000, 8_500_000) } else { (9_000_000, 0) };
        let writer_cpu = EventKind::PollCpu { cpu_ns, runnable_ns };
        b.in_task(worker0, writer).poll_start().acquire(cache, write_at);
        b.advance(1_000_000);
        b.in_task(worker1, reader).poll_start().request(cache, read_at);
        b.advance(9_000_000);
        b.in_task(worker0, writer).release(cache);
        if holder_ends_first {
            b.in_task(worker0, writer).event(writer_cpu).poll_end(true).finish_task();
        }
        b.in_task(worker1, reader).acquire(cache, read_at).release(cache).poll_end(true);
        if !holder_ends_first {
            b.advance(2_000_000);
            b.in_task(worker0, writer).event(writer_cpu).poll_end(true).finish_task();
        }
        analyze(&b)
    };
    assert_starvation_passed_on(
        build,
        "task `reader` waited 9.000ms for blocking lock `cache` whose holder was itself \
         preempted (starved of CPU, not blocking)",
        "the lock's holder, on thread `worker-0`, was runnable but not running for 8.500ms of \
         that wait",
        "blocked its worker thread for 9.000ms waiting",
    );
}

/// Checks that task `reader` gets one finding, whether the other worker's poll ends before
/// or after its own (`build(other_starved, other_ends_first)`): `info`, titled `title`, with
/// `evidence`, when the other worker was starved; a warning that says `otherwise` when it ran.
fn assert_starvation_passed_on(
    build: impl Fn(bool, bool) -> Report,
    title: &str,
    evidence: &str,
    otherwise: &str,
) {
    let of_reader = |report: &Report| {
        let reader = vec!["reader".to_owned()];
        let found = report.findings.iter().filter(|f| f.tasks == reader);
        found.map(|f| (f.severity, format!("{}\n{}", f.title, f.evidence.join("\n")))).collect()
    };
    for other_ends_first in [true, false] {
        let found: Vec<(Severity, String)> = of_reader(&build(true, other_ends_first));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, Severity::Info, "{found:#?}");
        assert!(found[0].1.starts_with(&format!("{title}\n")), "{found:#?}");
        assert!(found[0].1.contains(evidence), "{found:#?}");
        let ran: Vec<(Severity, String)> = of_reader(&build(false, other_ends_first));
        assert_eq!(ran.len(), 1, "{ran:#?}");
        assert_eq!(ran[0].0, Severity::Warning, "{ran:#?}");
        assert!(ran[0].1.contains(otherwise), "{ran:#?}");
    }
}
