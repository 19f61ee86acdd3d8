//! `blocking-in-async`: a task that kept its worker thread from running other tasks — a poll
//! longer than a threshold, or a wait for a blocking (std-like) lock inside a poll.
//!
//! An async runtime multiplexes many tasks over a few worker threads; a poll that does not
//! return stalls every task queued on that worker. One finding per task, with its longest
//! poll and its longest blocking-lock wait, and what it waited on. Tasks of tokio's blocking
//! pool (`spawn_blocking`, kind `blocking`) run on threads meant to block and are not judged.
//!
//! Wall-clock time alone cannot tell a blocking poll from a preempted one: on a busy machine
//! every poll is long. Where the recorder wrote a long poll's CPU time and run-queue delay
//! ([`EventKind::PollCpu`]), the poll is judged by them: it blocked its worker if it burned
//! the CPU for the threshold, or waited off the CPU (a blocking call, a sleep, I/O) for it;
//! a poll long only because it was runnable but not running (the process was starved of CPU)
//! is `info`, and says so. Without them (older traces, tokio's own tasks), wall-clock time
//! decides, as before.
//!
//! A poll that panics is measured up to its panic: what follows (panic hooks, a backtrace
//! printed, unwinding) is the panic's handling, and `stale-lock` reports what the panic left
//! behind.

use super::{task_kind, Context, Detector, Interest};
use crate::replay::Actor;
use crate::report::format_ns;
use crate::report::{BlockingDetail, Detail, Finding, FindingKind, Severity};
use hindsight_recorder::format::{Event, EventKind, LockId, SiteId, TaskId, ThreadId};
use std::collections::HashMap;

/// The default `--poll-threshold`.
pub const DEFAULT_POLL_THRESHOLD_NS: u64 = 10_000_000;

/// A wait for a blocking lock inside a poll is reported from this long on: shorter waits are
/// ordinary uncontended-mutex traffic, longer ones a worker visibly stalled.
pub const BLOCKING_WAIT_REPORT_NS: u64 = 1_000_000;

/// A blocking-lock wait inside a poll.
#[derive(Debug, Clone, Copy)]
struct LockWait {
    lock: LockId,
    site: SiteId,
    since_ns: u64,
    waited_ns: u64,
}

/// The poll a task is in now.
#[derive(Debug, Clone, Copy)]
struct Poll {
    started_ns: u64,
    thread: ThreadId,
    waiting: Option<LockWait>,
    longest_wait: Option<LockWait>,
    /// When the task panicked in this poll.
    panicked_ns: Option<u64>,
    /// Its CPU and run-queue time, if recorded.
    cpu: Option<(u64, u64)>,
}

/// What made a long poll long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    /// Runnable but not running: the process was starved of CPU.
    Starved,
    /// Not recorded: wall-clock time only.
    Unknown,
    /// Off the CPU while runnable time was short: a blocking call, a sleep, I/O.
    OffCpu,
    /// On the CPU.
    Cpu,
}

impl Cause {
    /// The cause of a poll of `duration_ns` with `cpu` (CPU and run-queue time, if recorded),
    /// against `threshold_ns`.
    fn of(duration_ns: u64, cpu: Option<(u64, u64)>, threshold_ns: u64) -> Cause {
        let Some((cpu_ns, runnable_ns)) = cpu else { return Cause::Unknown };
        let off_cpu_ns = duration_ns.saturating_sub(cpu_ns.saturating_add(runnable_ns));
        if cpu_ns >= threshold_ns {
            Cause::Cpu
        } else if off_cpu_ns >= threshold_ns {
            Cause::OffCpu
        } else {
            Cause::Starved
        }
    }
}

/// What one task did over the trace.
#[derive(Debug, Clone, Copy)]
struct Aggregate {
    long_polls: u64,
    longest_poll_ns: u64,
    longest_poll_at: u64,
    thread: ThreadId,
    longest_wait: Option<LockWait>,
    /// The worst cause of its long polls (a CPU burn over an off-CPU wait over unknown over
    /// starvation), with that poll's CPU and run-queue time.
    cause: Option<(Cause, Option<(u64, u64)>)>,
}

/// The blocking-in-async detector; see the module docs.
#[derive(Debug)]
pub struct BlockingInAsync {
    poll_threshold_ns: u64,
    polls: Vec<Option<Poll>>,
    found: HashMap<TaskId, Aggregate>,
}

impl BlockingInAsync {
    /// A detector reporting polls of at least `poll_threshold_ns`.
    pub fn new(poll_threshold_ns: u64) -> Self {
        BlockingInAsync { poll_threshold_ns, polls: Vec::new(), found: HashMap::new() }
    }

    fn poll(&mut self, task: TaskId) -> &mut Option<Poll> {
        let index = task.index();
        if self.polls.len() <= index {
            self.polls.resize(index + 1, None);
        }
        &mut self.polls[index]
    }

    fn end_poll(&mut self, task: TaskId, poll: Poll, now: u64) {
        let mut poll = poll;
        if let Some(mut wait) = poll.waiting.take() {
            wait.waited_ns = now.saturating_sub(wait.since_ns);
            keep_longest(&mut poll.longest_wait, wait);
        }
        let duration = poll.panicked_ns.unwrap_or(now).saturating_sub(poll.started_ns);
        let long = duration >= self.poll_threshold_ns;
        let stalled = poll.longest_wait.is_some_and(|w| w.waited_ns >= BLOCKING_WAIT_REPORT_NS);
        if !long && !stalled {
            return;
        }
        let entry = self.found.entry(task).or_insert(Aggregate {
            long_polls: 0,
            longest_poll_ns: 0,
            longest_poll_at: poll.started_ns,
            thread: poll.thread,
            longest_wait: None,
            cause: None,
        });
        entry.long_polls += u64::from(long);
        if long {
            let cause = Cause::of(duration, poll.cpu, self.poll_threshold_ns);
            if entry.cause.is_none_or(|(worst, _)| cause > worst) {
                entry.cause = Some((cause, poll.cpu));
            }
        }
        if duration > entry.longest_poll_ns {
            entry.longest_poll_ns = duration;
            entry.longest_poll_at = poll.started_ns;
            entry.thread = poll.thread;
        }
        if let Some(wait) = poll.longest_wait.filter(|w| w.waited_ns >= BLOCKING_WAIT_REPORT_NS) {
            keep_longest(&mut entry.longest_wait, wait);
        }
    }

    /// [`on_event`](Detector::on_event) for an event of `task`, apart, so that a thread's
    /// event (most lock events) costs `on_event` only the check.
    #[inline(never)]
    fn on_task_event(&mut self, cx: &Context<'_>, event: &Event, task: TaskId) {
        let now = event.time_ns;
        match event.kind {
            EventKind::PollStarted if task_kind(cx, task) == Some("blocking") => {}
            EventKind::PollStarted => {
                *self.poll(task) = Some(Poll {
                    started_ns: now,
                    thread: event.thread,
                    waiting: None,
                    longest_wait: None,
                    panicked_ns: None,
                    cpu: None,
                });
            }
            EventKind::PollCpu { cpu_ns, runnable_ns } => {
                if let Some(poll) = self.poll(task) {
                    poll.cpu = Some((cpu_ns, runnable_ns));
                }
            }
            EventKind::Panicked { .. } => {
                if let Some(poll) = self.poll(task) {
                    poll.panicked_ns.get_or_insert(now);
                }
            }
            EventKind::PollEnded { .. } => {
                if let Some(poll) = self.poll(task).take() {
                    self.end_poll(task, poll, now);
                }
            }
            EventKind::LockRequested { lock, site, .. }
                if cx.trace.lock(lock).waiting_blocks_thread() =>
            {
                if let Some(poll) = self.poll(task) {
                    poll.waiting = Some(LockWait { lock, site, since_ns: now, waited_ns: 0 });
                }
            }
            EventKind::LockAcquired { lock, .. } => {
                if let Some(poll) = self.poll(task) {
                    if let Some(mut wait) = poll.waiting.take_if(|w| w.lock == lock) {
                        wait.waited_ns = now.saturating_sub(wait.since_ns);
                        keep_longest(&mut poll.longest_wait, wait);
                    }
                }
            }
            _ => {}
        }
    }
}

fn keep_longest(slot: &mut Option<LockWait>, wait: LockWait) {
    if slot.is_none_or(|kept| wait.waited_ns > kept.waited_ns) {
        *slot = Some(wait);
    }
}

impl Detector for BlockingInAsync {
    fn kind(&self) -> FindingKind {
        FindingKind::BlockingInAsync
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::POLL_STARTED
            | Interest::POLL_ENDED
            | Interest::LOCK_REQUESTED
            | Interest::LOCK_ACQUIRED
            | Interest::PANICKED
            | Interest::POLL_CPU
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        if let Some(task) = event.task {
            self.on_task_event(cx, event, task);
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let now = cx.state.now_ns();
        // A trace cut mid-flight may have lost the ends of the polls open at its end, with
        // their threads' last buffers: their length is unknown, and they are not judged.
        let open_polls_ended_here = !cx.ended_mid_flight();
        for index in 0..self.polls.len() {
            if let Some(poll) = self.polls[index].take().filter(|_| open_polls_ended_here) {
                self.end_poll(TaskId(index as u32), poll, now);
            }
        }
        let mut found: Vec<_> = self.found.drain().collect();
        found.sort_by_key(|(task, aggregate)| (aggregate.longest_poll_at, *task));
        for (task, aggregate) in found {
            findings.push(finding(cx, task, &aggregate, self.poll_threshold_ns));
        }
    }
}

fn finding(cx: &Context<'_>, task: TaskId, found: &Aggregate, threshold_ns: u64) -> Finding {
    let actor = Actor::Task(task);
    let who = actor.describe(cx.trace);
    // Long only because the machine was busy, and no blocking-lock wait: not the task's doing.
    let starved = found.longest_wait.is_none() && matches!(found.cause, Some((Cause::Starved, _)));
    let title = match found.longest_wait {
        None if starved => format!(
            "{who} had a poll of {} while the process was starved of CPU (not blocking)",
            format_ns(found.longest_poll_ns)
        ),
        Some(wait) => format!(
            "{who} blocked its worker thread for {} waiting for blocking lock `{}`",
            format_ns(wait.waited_ns),
            cx.trace.lock_name(wait.lock)
        ),
        None => format!(
            "{who} blocked its worker thread for {} in one poll",
            format_ns(found.longest_poll_ns)
        ),
    };
    let severity = if starved { Severity::Info } else { Severity::Warning };
    let mut finding = Finding::new(FindingKind::BlockingInAsync, severity, title);
    cx.add_actor(&mut finding, actor, found.thread);
    let spawned_at = cx.trace.tasks().get(task.index()).and_then(|t| t.spawn_site);
    if let Some(site) = spawned_at {
        finding.sites.push(cx.site_ref(site, "spawned"));
    }
    finding.time_ns = found.longest_poll_at;
    finding.evidence.push(format!(
        "its longest poll ran {} on thread `{}` from t={}; no other task could run on that worker meanwhile",
        format_ns(found.longest_poll_ns),
        cx.trace.thread_name(found.thread),
        format_ns(found.longest_poll_at)
    ));
    if found.long_polls > 0 {
        finding.evidence.push(format!(
            "{} poll{} ran longer than {}",
            found.long_polls,
            if found.long_polls == 1 { "" } else { "s" },
            format_ns(threshold_ns)
        ));
    }
    if let Some((cause, Some((cpu_ns, runnable_ns)))) = found.cause {
        let what = match cause {
            Cause::Cpu => "it burned the CPU: the work itself is long",
            Cause::OffCpu => "it waited off the CPU (a blocking call, a sleep or I/O)",
            _ => {
                "it was runnable but not running: the process was starved of CPU, so this \
                  poll was long because the machine was busy, not because it blocked"
            }
        };
        finding.evidence.push(format!(
            "of its worst long poll, {} on the CPU and {} waiting for one: {what}",
            format_ns(cpu_ns),
            format_ns(runnable_ns)
        ));
    }
    if let Some(wait) = found.longest_wait {
        let lock = cx.trace.lock_name(wait.lock);
        finding.locks.push(lock.clone());
        finding.sites.push(cx.site_ref(wait.site, "waiting"));
        finding.evidence.push(format!(
            "inside a poll it waited {} for blocking lock `{lock}` at {}",
            format_ns(wait.waited_ns),
            cx.trace.site_text(wait.site)
        ));
    }
    finding.help = Some(
        "move blocking work to `spawn_blocking`, and use an async lock where a task may wait"
            .to_owned(),
    );
    finding.detail = Detail::BlockingInAsync(BlockingDetail {
        task: cx.trace.task_name(task),
        spawned_at: spawned_at.map(|s| cx.trace.site_text(s)),
        longest_poll_ns: found.longest_poll_ns,
        long_polls: found.long_polls,
        poll_threshold_ns: threshold_ns,
        blocking_lock: found.longest_wait.map(|w| cx.trace.lock_name(w.lock)),
        blocking_wait_ns: found.longest_wait.map(|w| w.waited_ns),
        wait_site: found.longest_wait.map(|w| cx.trace.site_text(w.site)),
    });
    finding
}
