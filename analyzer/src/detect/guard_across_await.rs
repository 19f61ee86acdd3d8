//! `guard-across-await`: a task suspended at an `.await` while holding a lock guard.
//!
//! For every hold of a lock by a task, the detector counts the task's suspensions (polls that
//! ended pending) while it held it, how long it stayed suspended, and who asked for that lock
//! meanwhile. A blocking (std-like) guard held across a suspension is an error: any thread
//! that then needs the lock blocks its worker, and if the task is resumed on that worker the
//! program deadlocks. An async guard is a warning when someone waited for it meanwhile, and
//! info otherwise; a suspension of an async guard's holder that waits for another recorded
//! lock or for a task to finish is nested locking, which the lock-order and deadlock detectors
//! judge, and is not counted here. A wait for a semaphore's permit is a suspension like any
//! other (a permit is not a lock: it cannot be part of a lock-order cycle), so a guard held
//! while waiting for one is counted. Semaphore permits themselves are made to be held across
//! `.await`s (they bound concurrency) and are not judged. Holds are grouped by lock and
//! acquisition site.
//!
//! The finding names the `.await` the task suspended at: the site of the recorded wait it was
//! in (a lock, a permit, a join), else the site its pending leaf future recorded
//! ([`EventKind::AwaitPending`]: hindsight's lock futures, tokio's `Sleep`, annotated awaits),
//! else it says the await site is unknown.

use super::{Context, Detector, Interest};
use crate::replay::Actor;
use crate::report::format_ns;
use crate::report::{AwaitWaiter, Detail, Finding, FindingKind, GuardDetail, Severity};
use hindsight_recorder::format::{Event, EventKind, LockId, LockKind, SiteId, TaskId, ThreadId};
use std::collections::HashMap;

/// Waiters remembered per hold, and per finding.
const WAITERS_KEPT: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Waiter {
    actor: Actor,
    thread: ThreadId,
    site: SiteId,
    since_ns: u64,
}

/// A lock held by a task, followed while it is held.
#[derive(Debug, Clone)]
struct TaskHold {
    lock: LockId,
    site: SiteId,
    since_ns: u64,
    thread: ThreadId,
    suspensions: u32,
    suspended_since: Option<u64>,
    suspended_ns: u64,
    await_site: Option<SiteId>,
    waiters: Vec<Waiter>,
}

/// A task's recorded wait.
#[derive(Debug, Clone, Copy)]
struct CurrentWait {
    /// Where it waits.
    site: SiteId,
    /// It waits for a lock or a task (nested locking, judged by other detectors), not for a
    /// semaphore's permit.
    nested: bool,
}

/// What one (lock, acquisition site) pair did across all its holds.
#[derive(Debug, Clone)]
struct Aggregate {
    task: TaskId,
    thread: ThreadId,
    since_ns: u64,
    holds: u64,
    suspensions: u64,
    suspended_ns: u64,
    held_ns: u64,
    await_site: Option<SiteId>,
    waiters: Vec<(Waiter, u64)>,
}

/// The guard-across-await detector; see the module docs.
#[derive(Debug, Default)]
pub struct GuardAcrossAwait {
    /// Per task (dense id): the locks it holds now.
    holds: Vec<Vec<TaskHold>>,
    /// Per task: the recorded wait (a lock, a permit or a join) it is in now: the await it
    /// suspends at.
    current_wait: Vec<Option<CurrentWait>>,
    /// Per task: the `.await` its pending leaf future recorded in the current poll.
    pending_at: Vec<Option<SiteId>>,
    /// Per lock: the tasks holding it now.
    holders: Vec<Vec<TaskId>>,
    found: HashMap<(LockId, SiteId), Aggregate>,
}

impl GuardAcrossAwait {
    /// A detector with no state.
    pub fn new() -> Self {
        GuardAcrossAwait::default()
    }

    fn task_holds(&mut self, task: TaskId) -> &mut Vec<TaskHold> {
        let index = task.index();
        if self.holds.len() <= index {
            self.holds.resize_with(index + 1, Vec::new);
            self.current_wait.resize(index + 1, None);
            self.pending_at.resize(index + 1, None);
        }
        &mut self.holds[index]
    }

    fn lock_holders(&mut self, lock: LockId) -> &mut Vec<TaskId> {
        let index = lock.index();
        if self.holders.len() <= index {
            self.holders.resize_with(index + 1, Vec::new);
        }
        &mut self.holders[index]
    }

    fn close(&mut self, task: TaskId, hold: TaskHold, now: u64) {
        let mut hold = hold;
        if let Some(since) = hold.suspended_since.take() {
            hold.suspended_ns = hold.suspended_ns.saturating_add(now.saturating_sub(since));
        }
        if hold.suspensions == 0 {
            return;
        }
        let entry = self.found.entry((hold.lock, hold.site)).or_insert_with(|| Aggregate {
            task,
            thread: hold.thread,
            since_ns: hold.since_ns,
            holds: 0,
            suspensions: 0,
            suspended_ns: 0,
            held_ns: 0,
            await_site: None,
            waiters: Vec::new(),
        });
        entry.holds += 1;
        entry.suspensions += u64::from(hold.suspensions);
        entry.suspended_ns = entry.suspended_ns.saturating_add(hold.suspended_ns);
        entry.held_ns = entry.held_ns.saturating_add(now.saturating_sub(hold.since_ns));
        entry.await_site = entry.await_site.or(hold.await_site);
        for waiter in hold.waiters {
            if entry.waiters.len() < WAITERS_KEPT {
                entry.waiters.push((waiter, now.saturating_sub(waiter.since_ns)));
            }
        }
    }

    /// [`on_event`](Detector::on_event) for an event of `task`.
    #[inline(never)]
    fn on_task_event(&mut self, cx: &Context<'_>, event: &Event, task: TaskId) {
        let now = event.time_ns;
        match event.kind {
            EventKind::LockAcquired { lock, .. }
                if cx.trace.lock(lock).kind == LockKind::Semaphore =>
            {
                self.task_holds(task);
                self.current_wait[task.index()] = None;
            }
            EventKind::LockAcquired { lock, site, .. } => {
                self.task_holds(task);
                self.current_wait[task.index()] = None;
                self.holds[task.index()].push(TaskHold {
                    lock,
                    site,
                    since_ns: now,
                    thread: event.thread,
                    suspensions: 0,
                    suspended_since: None,
                    suspended_ns: 0,
                    await_site: None,
                    waiters: Vec::new(),
                });
                self.lock_holders(lock).push(task);
            }
            EventKind::LockReleased { lock, .. } => {
                let holds = self.task_holds(task);
                match holds.iter().rposition(|h| h.lock == lock) {
                    Some(at) => {
                        let hold = holds.remove(at);
                        let holders = self.lock_holders(lock);
                        if let Some(at) = holders.iter().position(|t| *t == task) {
                            holders.swap_remove(at);
                        }
                        self.close(task, hold, now);
                    }
                    None => self.end_moved_hold(lock, now),
                }
            }
            EventKind::PollStarted => {
                for hold in self.task_holds(task) {
                    if let Some(since) = hold.suspended_since.take() {
                        hold.suspended_ns =
                            hold.suspended_ns.saturating_add(now.saturating_sub(since));
                    }
                }
            }
            EventKind::PollEnded { ready: false } => {
                self.task_holds(task);
                let recorded_wait = self.current_wait[task.index()];
                let pending_at = self.pending_at[task.index()].take();
                let nested = recorded_wait.is_some_and(|wait| wait.nested);
                let await_site = recorded_wait.map(|wait| wait.site).or(pending_at);
                for hold in &mut self.holds[task.index()] {
                    if nested && !cx.trace.lock(hold.lock).waiting_blocks_thread() {
                        continue;
                    }
                    hold.suspensions += 1;
                    hold.suspended_since = Some(now);
                    hold.await_site = hold.await_site.or(await_site);
                }
            }
            EventKind::PollEnded { ready: true } => {
                self.task_holds(task);
                self.pending_at[task.index()] = None;
            }
            EventKind::AwaitPending { site } => {
                self.task_holds(task);
                self.pending_at[task.index()] = Some(site);
            }
            EventKind::TaskJoinRequested { site, .. } => {
                self.task_holds(task);
                self.current_wait[task.index()] =
                    site.map(|site| CurrentWait { site, nested: true });
            }
            EventKind::TaskJoined { .. } | EventKind::LockTryFailed { .. } => {
                self.task_holds(task);
                self.current_wait[task.index()] = None;
            }
            EventKind::LockRequested { lock, site, .. } => {
                self.task_holds(task);
                let nested = !cx.trace.lock(lock).counts_permits();
                self.current_wait[task.index()] = Some(CurrentWait { site, nested });
                self.note_waiter(event, lock, site);
            }
            _ => {}
        }
    }

    /// Ends a task's hold of `lock` that an actor holding none of it released at `now`: the
    /// guard was moved to that actor (`lock_owned`, a guard sent to another task or to the
    /// blocking pool), and the task that took the lock holds it no longer.
    #[cold]
    #[inline(never)]
    fn end_moved_hold(&mut self, lock: LockId, now: u64) {
        let Some(task) = self.holders.get_mut(lock.index()).and_then(Vec::pop) else { return };
        let holds = self.task_holds(task);
        if let Some(at) = holds.iter().rposition(|h| h.lock == lock) {
            let hold = holds.remove(at);
            self.close(task, hold, now);
        }
    }

    /// Notes the requester of `lock` (at `site`, in `event`) as a waiter of the tasks that
    /// hold it.
    #[inline(never)]
    fn note_waiter(&mut self, event: &Event, lock: LockId, site: SiteId) {
        let actor = Actor::of(event);
        let holders = self.holders.get(lock.index()).map_or(&[][..], Vec::as_slice);
        for &holder in holders {
            if Some(holder) == event.task {
                continue;
            }
            let waiter = Waiter { actor, thread: event.thread, site, since_ns: event.time_ns };
            if let Some(hold) = self.holds[holder.index()].iter_mut().rev().find(|h| h.lock == lock)
            {
                if hold.waiters.len() < WAITERS_KEPT {
                    hold.waiters.push(waiter);
                }
            }
        }
    }
}

impl Detector for GuardAcrossAwait {
    fn kind(&self) -> FindingKind {
        FindingKind::GuardAcrossAwait
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_REQUESTED
            | Interest::LOCK_ACQUIRED
            | Interest::LOCK_TRY_FAILED
            | Interest::LOCK_RELEASED
            | Interest::POLL_STARTED
            | Interest::POLL_ENDED
            | Interest::TASK_JOIN_REQUESTED
            | Interest::TASK_JOINED
            | Interest::AWAIT_PENDING
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        match (event.task, event.kind) {
            (Some(task), _) => self.on_task_event(cx, event, task),
            // A thread matters only when it waits for a lock that tasks hold.
            (None, EventKind::LockRequested { lock, site, .. })
                if self.holders.get(lock.index()).is_some_and(|holders| !holders.is_empty()) =>
            {
                self.note_waiter(event, lock, site);
            }
            // A guard a task took, moved to a thread (the blocking pool) and released there.
            (None, EventKind::LockReleased { lock, .. })
                if self.holders.get(lock.index()).is_some_and(|holders| !holders.is_empty())
                    && !cx.state.holds(Actor::of(event)).iter().any(|h| h.lock == lock) =>
            {
                self.end_moved_hold(lock, event.time_ns);
            }
            (None, _) => {}
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let now = cx.state.now_ns();
        for index in 0..self.holds.len() {
            for hold in std::mem::take(&mut self.holds[index]) {
                self.close(TaskId(index as u32), hold, now);
            }
        }
        let mut found: Vec<_> = self.found.drain().collect();
        found.sort_by_key(|((lock, site), aggregate)| (aggregate.since_ns, *lock, *site));
        for ((lock, site), aggregate) in found {
            findings.push(finding(cx, lock, site, &aggregate));
        }
    }
}

fn finding(cx: &Context<'_>, lock: LockId, site: SiteId, found: &Aggregate) -> Finding {
    let name = cx.trace.lock_name(lock);
    let blocking = cx.trace.lock(lock).waiting_blocks_thread();
    let guard = if blocking { "blocking" } else { "async" };
    let severity = match (blocking, found.waiters.is_empty()) {
        (true, _) => Severity::Error,
        (false, false) => Severity::Warning,
        (false, true) => Severity::Info,
    };
    let task = Actor::Task(found.task);
    let acquired_at = cx.trace.site_text(site);
    let plural = if found.suspensions == 1 { "" } else { "s" };
    let mut finding = Finding::new(
        FindingKind::GuardAcrossAwait,
        severity,
        format!(
            "{} held {guard} lock `{name}` across {} `.await`{plural} ({} suspended)",
            task.describe(cx.trace),
            found.suspensions,
            format_ns(found.suspended_ns)
        ),
    );
    finding.locks.push(name.clone());
    cx.add_actor(&mut finding, task, found.thread);
    let lock_def = cx.trace.lock(lock);
    finding.sites.push(cx.site_ref(site, lock_def.site_role(cx.trace, site, "acquired")));
    let spawned_at = cx.trace.tasks().get(found.task.index()).and_then(|t| t.spawn_site);
    if let Some(spawned) = spawned_at {
        finding.sites.push(cx.site_ref(spawned, "spawned"));
    }
    if let Some(await_site) = found.await_site {
        finding.sites.push(cx.site_ref(await_site, "await"));
    }
    finding.time_ns = found.since_ns;
    let spawn_text =
        spawned_at.map(|s| format!(" (spawned at {})", cx.trace.site_text(s))).unwrap_or_default();
    finding.evidence.push(format!(
        "{}{spawn_text} acquired {guard} lock `{name}` {} (t={})",
        task.describe(cx.trace),
        lock_def.at_site(cx.trace, site),
        format_ns(found.since_ns)
    ));
    let await_text = match found.await_site {
        Some(site) => format!("; it suspended at the `.await` at {}", cx.trace.site_text(site)),
        None => "; await site unknown (the future it suspended in recorded none)".to_owned(),
    };
    finding.evidence.push(format!(
        "it suspended {} time{plural} while holding it, {} in all, of {} held{await_text}",
        found.suspensions,
        format_ns(found.suspended_ns),
        format_ns(found.held_ns)
    ));
    let mut waiters = Vec::new();
    for (waiter, waited_ns) in &found.waiters {
        cx.add_actor(&mut finding, waiter.actor, waiter.thread);
        let role = lock_def.site_role(cx.trace, waiter.site, "waiting");
        finding.sites.push(cx.site_ref(waiter.site, role));
        finding.evidence.push(format!(
            "meanwhile {} waited {} for `{name}` {}",
            waiter.actor.describe(cx.trace),
            format_ns(*waited_ns),
            lock_def.at_site(cx.trace, waiter.site)
        ));
        waiters.push(AwaitWaiter {
            actor: waiter.actor.describe(cx.trace),
            site: cx.trace.site_text(waiter.site),
            waited_ns: *waited_ns,
        });
    }
    if found.holds > 1 {
        finding.evidence.push(format!("{} holds from this site suspended", found.holds));
    }
    finding.help = Some(if blocking {
        format!(
            "drop the guard of `{name}` before the `.await` (end its scope first), or use an \
             async lock if it really must be held while suspended"
        )
    } else {
        format!("release `{name}` before awaiting, or keep the awaited work out of the critical section")
    });
    finding.detail = Detail::GuardAcrossAwait(GuardDetail {
        lock: name,
        guard: guard.to_owned(),
        acquired_at,
        task: cx.trace.task_name(found.task),
        spawned_at: spawned_at.map(|s| cx.trace.site_text(s)),
        suspensions: found.suspensions,
        suspended_ns: found.suspended_ns,
        held_ns: found.held_ns,
        await_site: found.await_site.map(|s| cx.trace.site_text(s)),
        waiters,
        holds: found.holds,
    });
    finding
}
