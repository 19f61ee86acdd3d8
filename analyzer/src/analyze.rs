//! One analysis from files to report: open and merge the traces, replay them through the
//! detectors, build the [`Report`], and decide the exit status.

use crate::causality::Relation;
use crate::detect::blocking_in_async::DEFAULT_POLL_THRESHOLD_NS;
use crate::detect::contention::DEFAULT_WAIT_THRESHOLD_NS;
use crate::detect::{Context, LockOrder, Suite};
use crate::error::AnalyzeError;
use crate::replay::{Actor, Replay, State};
use crate::report::{
    ClassTotals, DamagedRegion, FileSummary, Finding, FindingKind, LockEntry, LockOrderEdge,
    LockStatistics, Report, Severity, TaskEntry, ThreadEntry, TraceSummary, LOCK_ORDERS_KEPT,
};
use crate::trace::{ClassId, Trace};
use hindsight_recorder::format::{LockId, TaskId, ThreadId};
use std::path::Path;

/// What to run and what fails the analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// Findings at or above this severity make [`exit_code`](Self::exit_code) 1.
    pub fail_on: Severity,
    /// Report only these kinds (all when empty).
    pub only: Vec<FindingKind>,
    /// Polls at least this long are `blocking-in-async` (`--poll-threshold`).
    pub poll_threshold_ns: u64,
    /// Lock waits at least this long make a `contention-hotspot` (`--wait-threshold`).
    pub wait_threshold_ns: u64,
    /// The order that decides which accesses race (`--races`).
    pub races: Relation,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            fail_on: Severity::Error,
            only: Vec::new(),
            poll_threshold_ns: DEFAULT_POLL_THRESHOLD_NS,
            wait_threshold_ns: DEFAULT_WAIT_THRESHOLD_NS,
            races: Relation::default(),
        }
    }
}

impl AnalyzeOptions {
    /// Whether findings of `kind` are wanted.
    pub fn wants(&self, kind: FindingKind) -> bool {
        self.only.is_empty() || self.only.contains(&kind)
    }

    /// The exit status of `hindsight analyze` for `report`: 1 if any finding is at or above
    /// [`fail_on`](Self::fail_on), or if a damaged region of a trace was skipped (whatever
    /// `fail_on` says: the trace may hide findings), else 0; 2 if the trace is damaged and no
    /// event could be read. (2, an unreadable trace, is otherwise an error.) A truncated tail
    /// alone changes nothing: it is the normal end of a killed process.
    pub fn exit_code(&self, report: &Report) -> u8 {
        if report.trace.damaged {
            return if report.trace.events == 0 { 2 } else { 1 };
        }
        u8::from(report.fails(self.fail_on))
    }
}

/// Analyses the trace files at `paths` as one incident.
pub fn analyze_paths<P: AsRef<Path>>(
    paths: &[P],
    options: &AnalyzeOptions,
) -> Result<Report, AnalyzeError> {
    let reopen = || Replay::open(paths);
    analyze_predicting(Replay::open(paths)?, Some(&reopen), options)
}

/// Analyses traces held in memory, as `(name, bytes)` pairs.
pub fn analyze_bytes(
    traces: Vec<(String, Vec<u8>)>,
    options: &AnalyzeOptions,
) -> Result<Report, AnalyzeError> {
    let copies = traces.clone();
    let reopen = move || Replay::from_bytes(copies.clone());
    analyze_predicting(Replay::from_bytes(traces)?, Some(&reopen), options)
}

/// Replays `replay` to its end through the wanted detectors and builds the report. A file
/// that stops being readable part-way as a whole (a malformed STD line) is an error; a binary
/// trace with a truncated or corrupt tail is analysed as far as it reads, and the report says
/// how much was lost. Lock-order cycles are not checked for witnesses (that reads the trace
/// again): [`analyze_paths`] and [`analyze_bytes`] do.
pub fn analyze(replay: Replay, options: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    analyze_predicting(replay, None, options)
}

/// A way to read the same traces again from the start.
type Reopen<'a> = &'a dyn Fn() -> Result<Replay, AnalyzeError>;

/// [`analyze`], and then, if the lock-order graph has cycles and `reopen` is given, the
/// second reading of the trace that checks them for witnesses
/// ([`predict`](crate::predict)).
fn analyze_predicting(
    mut replay: Replay,
    reopen: Option<Reopen<'_>>,
    options: &AnalyzeOptions,
) -> Result<Report, AnalyzeError> {
    let mut suite = Suite::new(options);
    replay.visit(&mut suite);
    if let Some(error) = replay.take_error() {
        return Err(error.into());
    }
    if let (Some(reopen), true) = (reopen, suite.lock_order().is_some()) {
        suite.lock_order_mut().check_cycles(reopen)?;
    }
    let mut findings: Vec<Finding> = Vec::new();
    let cx = Context { trace: replay.trace(), state: replay.state() };
    suite.finish(&cx, &mut findings);
    demote_uncertain(replay.trace(), replay.state(), &mut findings);
    let (lock_statistics, class_statistics) = suite.contention_mut().statistics(&cx);
    let (lock_orders, lock_orders_total) =
        suite.lock_order().map_or_else(|| (Vec::new(), 0), |graph| lock_orders(&cx, graph));
    let mut report = Report {
        trace: summary(&replay),
        findings,
        locks: locks(&replay, &lock_statistics, &class_statistics),
        tasks: tasks(&replay),
        lock_orders,
        lock_orders_total,
    };
    report.group_repeats();
    report.sort_findings();
    Ok(report)
}

/// Makes `info` every finding that rests on what a thread's lost events may have changed — in
/// a damaged region, or dropped by the recorder (a gap) — and names the loss: what replay
/// believes about that thread is uncertain until its events show it again, and a loss never
/// produces an error (see "Lost events" in ARCHITECTURE.md). A thread that polled tasks may
/// have lost any of their events too (which tasks it polled in the lost part is unknown), so
/// then every finding about a task is uncertain as well.
///
/// A gap's events were dropped just before it: a finding whose facts span a known time
/// ([`Finding::facts_span`]) rests on the gap only if the gap falls inside that span
/// ([`Lost::may_fall_in`](crate::replay::Lost::may_fall_in): exact for a thread's latest
/// gaps, conservative for older ones). A damaged region's time is unknown: it touches every
/// finding of its threads.
fn demote_uncertain(trace: &Trace, state: &State, findings: &mut [Finding]) {
    for (index, thread_state) in state.threads().iter().enumerate() {
        let Some(lost) = thread_state.lost else { continue };
        let touched = |finding: &Finding| {
            finding.facts_span().is_none_or(|(from, to)| lost.may_fall_in(from, to))
        };
        let name = trace.thread_name(ThreadId(index as u32));
        let loss = |which: &str| {
            format!(
                "the recorder dropped {} of thread `{name}`{which} (its buffer was full) in {}, \
                 the first at t={}",
                crate::report::counted(lost.events, "event", "events"),
                crate::report::counted(lost.gaps, "gap", "gaps"),
                crate::report::format_ns(lost.first_ns)
            )
        };
        demote(findings.iter_mut().filter(|f| touched(f)), &name, thread_state.polled_tasks, loss);
    }
    for process in trace.processes() {
        for &thread in &process.lost_threads {
            let name = trace.thread_name(thread);
            let polled_tasks = state.threads().get(thread.index()).is_some_and(|t| t.polled_tasks);
            let loss = |which: &str| {
                format!(
                    "events of thread `{name}`{which} were lost in a damaged part of {}",
                    process.path
                )
            };
            demote(findings.iter_mut(), &name, polled_tasks, loss);
        }
    }
}

/// Makes `info` the findings about thread `name` (and, if it `polled_tasks`, about any task),
/// saying which loss they may rest on: `loss` describes it, given what to say of the thread
/// (nothing, or that it polled tasks).
fn demote<'a>(
    findings: impl Iterator<Item = &'a mut Finding>,
    name: &str,
    polled_tasks: bool,
    loss: impl Fn(&str) -> String,
) {
    for finding in findings {
        let which = if finding.threads.iter().any(|t| t == name) {
            ""
        } else if polled_tasks && !finding.tasks.is_empty() {
            ", which polled tasks,"
        } else {
            continue;
        };
        finding.severity = Severity::Info;
        finding
            .evidence
            .push(format!("uncertain: {}; this finding may rest on what was lost", loss(which)));
    }
}

/// The lock-order graph, most frequent order first (then by class names).
/// The most frequent orders of the lock-order graph (at most [`LOCK_ORDERS_KEPT`]), and how
/// many it has in all: chosen by count before any name is written out.
fn lock_orders(cx: &Context<'_>, graph: &LockOrder) -> (Vec<LockOrderEdge>, usize) {
    let mut all: Vec<_> = graph.order_edges().collect();
    let total = all.len();
    if total > LOCK_ORDERS_KEPT {
        all.select_nth_unstable_by_key(LOCK_ORDERS_KEPT - 1, |&(.., count, _, _)| {
            std::cmp::Reverse(count)
        });
        all.truncate(LOCK_ORDERS_KEPT);
    }
    let mut edges: Vec<LockOrderEdge> = all
        .into_iter()
        .map(|(from, to, count, held_at, taken_at)| LockOrderEdge {
            from: cx.trace.class_name(from).to_owned(),
            to: cx.trace.class_name(to).to_owned(),
            count,
            held_at: cx.trace.site_text(held_at),
            taken_at: cx.trace.site_text(taken_at),
        })
        .collect();
    edges.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    (edges, total)
}

fn summary(replay: &Replay) -> TraceSummary {
    let trace = replay.trace();
    let state = replay.state();
    let files: Vec<FileSummary> = trace
        .processes()
        .iter()
        .enumerate()
        .map(|(process, p)| FileSummary {
            path: p.path.clone(),
            program: p.header.program.clone(),
            pid: p.header.pid,
            host: p.header.host.clone(),
            format_version: p.format_version,
            start_unix_ns: p.header.start_unix_ns,
            events: p.events,
            truncated_bytes: p.tail.as_ref().map_or(0, |t| t.unread_bytes()),
            corrupt: match &p.tail {
                Some(hindsight_recorder::format::Tail::Corrupt { reason, .. }) => {
                    Some(reason.clone())
                }
                _ => None,
            },
            dropped_events: p.dropped_events,
            damaged_regions: p
                .damage
                .iter()
                .map(|d| DamagedRegion {
                    offset: d.offset,
                    bytes: d.bytes,
                    recovered_bytes: d.recovered_bytes,
                    events_lost: d.events,
                    threads: d
                        .threads
                        .iter()
                        .filter_map(|raw| trace.thread_of(process, *raw))
                        .map(|t| trace.thread_name(t))
                        .collect(),
                    reason: d.reason.clone(),
                })
                .collect(),
        })
        .collect();
    let first = state.actors().filter_map(|(_, a)| a.first_seen_ns).min().unwrap_or(0);
    let threads = (0..trace.threads().len())
        .map(|i| {
            let id = ThreadId(i as u32);
            let actor = state.actor(Actor::Thread(id));
            ThreadEntry {
                name: trace.thread_name(id),
                os_id: trace.threads()[i].os_id,
                first_seen_ns: actor.and_then(|a| a.first_seen_ns),
                finished_ns: actor.and_then(|a| a.end).map(|e| e.time_ns),
                panicked: actor.and_then(|a| a.end).is_some_and(|e| e.abnormal),
            }
        })
        .collect();
    TraceSummary {
        damaged: files.iter().any(|f| !f.damaged_regions.is_empty()),
        truncated_bytes: files.iter().map(|f| f.truncated_bytes).fold(0, u64::saturating_add),
        dropped_events: files.iter().map(|f| f.dropped_events).fold(0, u64::saturating_add),
        files,
        events: replay.stats().events,
        duration_ns: state.end_ns().saturating_sub(first),
        start_ns: first,
        threads,
        forced_reorders: replay.stats().forced,
        replay_conflicts: state.conflicts(),
    }
}

fn locks(
    replay: &Replay,
    statistics: &[LockStatistics],
    class_statistics: &[LockStatistics],
) -> Vec<LockEntry> {
    let trace = replay.trace();
    let state = replay.state();
    let mut instances = vec![0u64; trace.class_count()];
    for lock in trace.locks() {
        if let Some(count) = instances.get_mut(lock.class.index()) {
            *count += 1;
        }
    }
    let class_totals = |class: ClassId| {
        let locks = instances.get(class.index()).copied().unwrap_or(0);
        let statistics = class_statistics.get(class.index()).filter(|_| locks > 1)?.clone();
        Some(ClassTotals { locks, statistics })
    };
    trace
        .locks()
        .iter()
        .enumerate()
        .map(|(i, lock)| {
            let id = LockId(i as u32);
            let stats = state.lock(id);
            let measured = statistics.get(i).cloned().unwrap_or_default();
            LockEntry {
                name: trace.lock_name(id),
                kind: Trace::lock_kind_name(lock.kind).to_owned(),
                class: trace.class_name(lock.class).to_owned(),
                blocking: lock.waiting_blocks_thread(),
                implementation: lock.implementation.name().to_owned(),
                capacity: lock.capacity,
                created_at: lock.site.map(|s| trace.site_text(s)),
                acquisitions: stats.map_or(0, |s| s.acquisitions),
                contended: stats.map_or(0, |s| s.contended),
                try_failed: stats.map_or(0, |s| s.try_failed),
                abandoned_waits: measured.abandoned_waits,
                poisoned: stats.is_some_and(|s| s.poisoned),
                owner_changes: measured.owner_changes,
                wait: measured.wait,
                hold: measured.hold,
                top_waiting_sites: measured.top_waiting_sites,
                top_holding_sites: measured.top_holding_sites,
                class_totals: class_totals(lock.class),
            }
        })
        .collect()
}

fn tasks(replay: &Replay) -> Vec<TaskEntry> {
    let trace = replay.trace();
    let state = replay.state();
    trace
        .tasks()
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let id = TaskId(i as u32);
            let task_state = state.tasks().get(i);
            let end = task_state.and_then(|t| t.actor.end);
            let kind = task.kind.map(|k| trace.string(k).to_owned());
            let spawn_site = task.spawn_site.map(|s| trace.site_text(s));
            TaskEntry {
                name: trace.task_name(id),
                runtime: TaskEntry::is_runtime_internal(kind.as_deref(), spawn_site.as_deref()),
                kind,
                spawn_site,
                spawned_ns: task_state.and_then(|t| t.spawned).map(|(time, _)| time),
                finished_ns: end.map(|e| e.time_ns),
                cancelled: end.is_some_and(|e| e.abnormal),
                polls: task_state.map_or(0, |t| t.polls),
            }
        })
        .collect()
}
