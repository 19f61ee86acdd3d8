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
//! A poll can also wait off the CPU *for* a starved thread: a task blocked on a std mutex
//! (one hindsight cannot see, inside a library) whose holder, a poll on another worker, was
//! itself runnable but not running. Such a wait is the machine's starvation passed on, not
//! the task blocking: when the run-queue time of the other threads' polls that overlapped an
//! off-CPU poll covers its off-CPU time but for less than the threshold, the poll is judged
//! starved too (`info`), and the finding says so. A wait for a blocking lock hindsight does
//! see is judged by its holder alone: when the holder's thread, in a poll, was runnable but
//! not running for all of the wait but less than [`BLOCKING_WAIT_REPORT_NS`], the holder was
//! preempted and the wait is `info` too. The polls that explain may end after what they
//! explain: its judgment waits for them, for at most [`MAX_PENDING`] judgments at once.
//!
//! A poll that panics is measured up to its panic: what follows (panic hooks, a backtrace
//! printed, unwinding) is the panic's handling, and `stale-lock` reports what the panic left
//! behind.

use super::{task_kind, Context, Detector, Interest};
use crate::replay::Actor;
use crate::report::format_ns;
use crate::report::{BlockingDetail, Detail, Finding, FindingKind, Severity};
use hindsight_recorder::format::{Event, EventKind, LockId, SiteId, TaskId, ThreadId};
use std::collections::{HashMap, VecDeque};

/// The default `--poll-threshold`.
pub const DEFAULT_POLL_THRESHOLD_NS: u64 = 10_000_000;

/// A wait for a blocking lock inside a poll is reported from this long on: shorter waits are
/// ordinary uncontended-mutex traffic, longer ones a worker visibly stalled.
pub const BLOCKING_WAIT_REPORT_NS: u64 = 1_000_000;

/// Off-CPU polls awaiting the other threads' run-queue time, at most; past it, the oldest is
/// judged with what is known (off the CPU).
pub const MAX_PENDING: usize = 256;

/// The recent long polls kept per thread to explain other threads' off-CPU waits.
const RECENT_PER_THREAD: usize = 32;

/// A long poll's run-queue time, between its start and end.
#[derive(Debug, Clone, Copy)]
struct Runnable {
    started_ns: u64,
    ended_ns: u64,
    runnable_ns: u64,
}

impl Runnable {
    /// Its run-queue time that can fall within `[from, to]`.
    fn within(&self, from: u64, to: u64) -> u64 {
        let overlap = self.ended_ns.min(to).saturating_sub(self.started_ns.max(from));
        self.runnable_ns.min(overlap)
    }
}

/// What a pending judgment is about, and whose run-queue time can explain it.
#[derive(Debug, Clone, Copy)]
enum Suspect {
    /// A long poll that waited off the CPU: any other thread's run-queue time explains it.
    OffCpuPoll(Judged),
    /// A blocking-lock wait: only its holder's thread's run-queue time explains it.
    LockWait { wait: LockWait, holder: ThreadId },
}

/// A long off-CPU poll or a blocking-lock wait of `task` on `thread`, not yet judged:
/// `unexplained_ns` of waiting over `span`, of which other threads' run-queue time explains
/// `explained_ns` so far.
#[derive(Debug, Clone, Copy)]
struct Pending {
    task: TaskId,
    thread: ThreadId,
    span: Runnable,
    unexplained_ns: u64,
    explained_ns: u64,
    suspect: Suspect,
}

impl Pending {
    /// Whether the run-queue time of `thread` can explain it.
    fn explained_by(&self, thread: ThreadId) -> bool {
        match self.suspect {
            Suspect::OffCpuPoll(_) => thread != self.thread,
            Suspect::LockWait { holder, .. } => thread == holder,
        }
    }
}

/// A blocking-lock wait inside a poll.
#[derive(Debug, Clone, Copy)]
struct LockWait {
    lock: LockId,
    site: SiteId,
    since_ns: u64,
    waited_ns: u64,
    /// The thread of the lock's holder when the wait began, if another thread held it.
    holder: Option<ThreadId>,
    /// The holder's run-queue time during the wait, when it explains the wait: the holder
    /// was preempted, and the wait is the machine's starvation passed on.
    holder_runnable_ns: Option<u64>,
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
    /// Off the CPU while other threads' overlapping polls were runnable but not running for
    /// as long: it waited for a preempted thread, most likely.
    WaitedForStarved,
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

/// A judged long poll: why it was long, with its CPU and run-queue time and (for a wait for
/// a starved thread) the other threads' run-queue time that explains it.
#[derive(Debug, Clone, Copy)]
struct Judged {
    cause: Cause,
    duration_ns: u64,
    cpu: Option<(u64, u64)>,
    others_runnable_ns: u64,
}

/// What one task did over the trace.
#[derive(Debug, Clone, Copy)]
struct Aggregate {
    long_polls: u64,
    longest_poll_ns: u64,
    longest_poll_at: u64,
    thread: ThreadId,
    longest_wait: Option<LockWait>,
    /// Its long poll of the worst cause (a CPU burn over an off-CPU wait over unknown over
    /// starvation).
    worst: Option<Judged>,
}

impl Aggregate {
    /// Keeps `judged` if its cause is worse than the worst so far.
    fn keep_worst(&mut self, judged: Judged) {
        if self.worst.is_none_or(|worst| judged.cause > worst.cause) {
            self.worst = Some(judged);
        }
    }
}

/// The blocking-in-async detector; see the module docs.
#[derive(Debug)]
pub struct BlockingInAsync {
    poll_threshold_ns: u64,
    polls: Vec<Option<Poll>>,
    found: HashMap<TaskId, Aggregate>,
    /// Per thread, its recent long polls' run-queue time.
    recent: Vec<VecDeque<Runnable>>,
    /// Off-CPU polls and blocking-lock waits that other threads' run-queue time may still
    /// explain, oldest first.
    pending: VecDeque<Pending>,
}

impl BlockingInAsync {
    /// A detector reporting polls of at least `poll_threshold_ns`.
    pub fn new(poll_threshold_ns: u64) -> Self {
        BlockingInAsync {
            poll_threshold_ns,
            polls: Vec::new(),
            found: HashMap::new(),
            recent: Vec::new(),
            pending: VecDeque::new(),
        }
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
        let span = Runnable { started_ns: poll.started_ns, ended_ns: now, runnable_ns: 0 };
        if let Some((_, runnable_ns)) = poll.cpu.filter(|&(_, runnable)| runnable > 0) {
            self.explain_pending(poll.thread, Runnable { runnable_ns, ..span });
        }
        let long = duration >= self.poll_threshold_ns;
        let stalled = poll.longest_wait.filter(|w| w.waited_ns >= BLOCKING_WAIT_REPORT_NS);
        if !long && stalled.is_none() {
            return;
        }
        let entry = self.found.entry(task).or_insert(Aggregate {
            long_polls: 0,
            longest_poll_ns: 0,
            longest_poll_at: poll.started_ns,
            thread: poll.thread,
            longest_wait: None,
            worst: None,
        });
        entry.long_polls += u64::from(long);
        if duration > entry.longest_poll_ns {
            entry.longest_poll_ns = duration;
            entry.longest_poll_at = poll.started_ns;
            entry.thread = poll.thread;
        }
        let base = Pending {
            task,
            thread: poll.thread,
            span,
            unexplained_ns: 0,
            explained_ns: 0,
            suspect: Suspect::OffCpuPoll(Judged {
                cause: Cause::Unknown,
                duration_ns: duration,
                cpu: poll.cpu,
                others_runnable_ns: 0,
            }),
        };
        if let Some(wait) = stalled {
            // A wait for another thread's hold is judged by that thread's run-queue time.
            match wait.holder.filter(|&holder| holder != poll.thread) {
                Some(holder) => self.judge(Pending {
                    span: Runnable {
                        started_ns: wait.since_ns,
                        ended_ns: wait.since_ns.saturating_add(wait.waited_ns),
                        runnable_ns: 0,
                    },
                    unexplained_ns: wait.waited_ns,
                    suspect: Suspect::LockWait { wait, holder },
                    ..base
                }),
                None => {
                    let suspect = Suspect::LockWait { wait, holder: poll.thread };
                    self.settle(Pending { suspect, ..base }, false)
                }
            }
        }
        if long {
            let cause = Cause::of(duration, poll.cpu, self.poll_threshold_ns);
            let judged =
                Judged { cause, duration_ns: duration, cpu: poll.cpu, others_runnable_ns: 0 };
            let pending = Pending { suspect: Suspect::OffCpuPoll(judged), ..base };
            match (cause, poll.cpu) {
                (Cause::OffCpu, Some((cpu_ns, runnable_ns))) => self.judge(Pending {
                    unexplained_ns: duration.saturating_sub(cpu_ns.saturating_add(runnable_ns)),
                    ..pending
                }),
                _ => self.settle(pending, false),
            }
        }
    }

    /// Judges `pending` by the run-queue time of the threads' polls that can explain it, that
    /// overlapped it and have ended; if they do not explain it yet, it waits for those still
    /// to end.
    fn judge(&mut self, mut pending: Pending) {
        let (from, to) = (pending.span.started_ns, pending.span.ended_ns);
        pending.explained_ns = (self.recent.iter().enumerate())
            .filter(|(thread, _)| pending.explained_by(ThreadId(*thread as u32)))
            .flat_map(|(_, polls)| polls.iter().map(|p| p.within(from, to)))
            .fold(0, u64::saturating_add);
        if !self.settle_if_explained(pending) {
            if self.pending.len() == MAX_PENDING {
                let oldest =
                    self.pending.pop_front().expect("a full queue has a front; this is a bug");
                self.settle(oldest, false);
            }
            self.pending.push_back(pending);
        }
    }

    /// Counts a poll of `thread` that was runnable for a while toward the pending judgments
    /// it can explain and overlapped, settles those it explains, and keeps it for those to
    /// come.
    fn explain_pending(&mut self, thread: ThreadId, poll: Runnable) {
        let mut still = VecDeque::with_capacity(self.pending.len());
        for mut pending in std::mem::take(&mut self.pending) {
            if pending.explained_by(thread) {
                let (from, to) = (pending.span.started_ns, pending.span.ended_ns);
                pending.explained_ns = pending.explained_ns.saturating_add(poll.within(from, to));
            }
            if !self.settle_if_explained(pending) {
                still.push_back(pending);
            }
        }
        self.pending = still;
        if self.recent.len() <= thread.index() {
            self.recent.resize_with(thread.index() + 1, VecDeque::new);
        }
        let recent = &mut self.recent[thread.index()];
        if recent.len() == RECENT_PER_THREAD {
            recent.pop_front();
        }
        recent.push_back(poll);
    }

    /// Settles `pending` as starvation passed on if the run-queue time that can explain it
    /// leaves less than its margin unexplained: the poll threshold for a poll, the reported
    /// wait for a blocking-lock wait.
    fn settle_if_explained(&mut self, pending: Pending) -> bool {
        let margin = match pending.suspect {
            Suspect::OffCpuPoll(_) => self.poll_threshold_ns,
            Suspect::LockWait { .. } => BLOCKING_WAIT_REPORT_NS,
        };
        let explained = pending.unexplained_ns.saturating_sub(pending.explained_ns) < margin;
        if explained {
            self.settle(pending, true);
        }
        explained
    }

    /// Counts a judged long poll or blocking-lock wait toward its task's finding; `explained`:
    /// by other threads' starvation.
    fn settle(&mut self, pending: Pending, explained: bool) {
        let Some(entry) = self.found.get_mut(&pending.task) else { return };
        let by_others = explained.then_some(pending.explained_ns);
        match pending.suspect {
            Suspect::OffCpuPoll(judged) => entry.keep_worst(match by_others {
                Some(others_runnable_ns) => {
                    Judged { cause: Cause::WaitedForStarved, others_runnable_ns, ..judged }
                }
                None => judged,
            }),
            Suspect::LockWait { wait, .. } => keep_longest(
                &mut entry.longest_wait,
                LockWait { holder_runnable_ns: by_others, ..wait },
            ),
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
                let holders = cx.state.lock(lock).map(|state| &state.holders[..]);
                let holder = holders.and_then(|holders| holders.first()).map(|h| h.hold.thread);
                if let Some(poll) = self.poll(task) {
                    poll.waiting = Some(LockWait {
                        lock,
                        site,
                        since_ns: now,
                        waited_ns: 0,
                        holder,
                        holder_runnable_ns: None,
                    });
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

/// Keeps the longest wait, a wait the holder's starvation does not explain over any that it
/// does.
fn keep_longest(slot: &mut Option<LockWait>, wait: LockWait) {
    let rank = |w: &LockWait| (w.holder_runnable_ns.is_none(), w.waited_ns);
    if slot.is_none_or(|kept| rank(&wait) > rank(&kept)) {
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
        // What no other thread's starvation explained waited off the CPU, or for its lock.
        while let Some(pending) = self.pending.pop_front() {
            self.settle(pending, false);
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
    // Long only because the machine was busy, and no blocking-lock wait but for a holder that
    // was itself preempted: not the task's doing.
    let polls_starved =
        found.worst.map(|w| matches!(w.cause, Cause::Starved | Cause::WaitedForStarved));
    let starved = match found.longest_wait {
        None => polls_starved == Some(true),
        Some(wait) => wait.holder_runnable_ns.is_some() && polls_starved != Some(false),
    };
    let title = match found.longest_wait {
        None if starved => format!(
            "{who} had a poll of {} while the process was starved of CPU (not blocking)",
            format_ns(found.longest_poll_ns)
        ),
        Some(wait) if starved => format!(
            "{who} waited {} for blocking lock `{}` whose holder was itself preempted (starved \
             of CPU, not blocking)",
            format_ns(wait.waited_ns),
            cx.trace.lock_name(wait.lock)
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
    if let Some(Judged {
        cause,
        duration_ns,
        cpu: Some((cpu_ns, runnable_ns)),
        others_runnable_ns,
    }) = found.worst
    {
        let off_cpu_ns = duration_ns.saturating_sub(cpu_ns.saturating_add(runnable_ns));
        let what = match cause {
            Cause::Cpu => "it burned the CPU: the work itself is long".to_owned(),
            Cause::OffCpu => "it waited off the CPU (a blocking call, a sleep or I/O)".to_owned(),
            Cause::WaitedForStarved => format!(
                "it waited off the CPU for {}, while the other threads' polls beside it were \
                 runnable but not running for {}: it most likely waited for one of them (a \
                 lock holder that was preempted), so the machine was busy, not the task blocking",
                format_ns(off_cpu_ns),
                format_ns(others_runnable_ns)
            ),
            _ => "it was runnable but not running: the process was starved of CPU, so this \
                  poll was long because the machine was busy, not because it blocked"
                .to_owned(),
        };
        finding.evidence.push(format!(
            "of its worst long poll ({}), {} on the CPU and {} waiting for one: {what}",
            format_ns(duration_ns),
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
        if let (Some(holder), Some(runnable_ns)) = (wait.holder, wait.holder_runnable_ns) {
            finding.evidence.push(format!(
                "the lock's holder, on thread `{}`, was runnable but not running for {} of that \
                 wait: it was preempted, so the wait is the machine's starvation passed on",
                cx.trace.thread_name(holder),
                format_ns(runnable_ns)
            ));
        }
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
