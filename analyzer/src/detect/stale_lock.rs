//! `stale-lock`: a lock left in a state nobody can trust or undo — released by a panicking
//! holder, still held when its holder ended — and the state at death of a trace that ended
//! mid-flight.
//!
//! - A release marked `poisoned` means the holder panicked while holding the lock: whatever
//!   it protects may be half-updated, and every later `lock()` sees a `PoisonError`. Error.
//! - A panic while holding a lock that does not poison (tokio's, parking_lot's): unwinding
//!   drops the guard, the lock is free again, and the next holder reads the data as the panic
//!   left it, with nothing to warn it. Error, with the panic's site.
//! - A lock still held by a thread or task that has finished can never be released (its guard
//!   was leaked, for example with `mem::forget`): whoever asks for it next waits forever.
//!   Error.
//! - A lock still held at the clean end of the trace by a thread or task that is running (not
//!   blocked itself) is a warning: a guard outlived its use. Holders that are blocked
//!   themselves are left to the `deadlock` detector.
//! - A trace (of format 3 or later) without the recorder's clean end stopped mid-flight: the
//!   process was killed, or it is a flight recorder's dump. What was held or awaited then is
//!   its state at death, reported once as one `info` finding: holding a lock at the instant a
//!   process dies is what running programs do, and says nothing wrong by itself. It is the
//!   evidence for whoever investigates the crash (a captured hang is a `deadlock` finding of
//!   its own). Holders that had ended are still errors: that happened before the end.
//! - Semaphores count permits; they are not locks (see `lock_semantics`). A permit held by a
//!   finished task, or forgotten, is how permits are handed over (`forget` here,
//!   `add_permits` there), not a stale lock: a semaphore is reported only when a waiter was
//!   still waiting for it at the clean end while fewer permits were free than it needed and
//!   every holder had ended, so that no permit could come back but through `add_permits`.

use super::{Context, Detector, Interest};
use crate::replay::{Actor, Hold, WaitFor};
use crate::report::{format_ns, Detail, Finding, FindingKind, Severity, StaleLockDetail};
use hindsight_recorder::format::{Event, EventKind, LockId, SiteId, TaskId, ThreadId};
use rustc_hash::FxHashMap;
use std::collections::HashSet;

/// The `stale-lock` detector; see the module docs.
#[derive(Debug, Default)]
pub struct StaleLock {
    /// Poisonings and unwound holds found during replay.
    unwound: Vec<Finding>,
    /// `(lock, acquisition site)` pairs reported already, so that a lock poisoned in a loop
    /// is one finding.
    seen: HashSet<(LockId, SiteId)>,
    /// Where each actor that panicked panicked, if recorded.
    panics: FxHashMap<Actor, Option<SiteId>>,
}

impl StaleLock {
    /// A detector that has seen nothing yet.
    pub fn new() -> Self {
        StaleLock::default()
    }

    /// Reports a release by a panicking holder (`event`, of `lock`), once per acquisition site.
    /// Rare, and apart, so that the common release costs `on_event` only the check.
    #[cold]
    #[inline(never)]
    fn report_poisoning(&mut self, cx: &Context<'_>, event: &Event, lock: LockId) {
        let actor = Actor::of(event);
        let hold = cx
            .state
            .holds(actor)
            .iter()
            .rev()
            .find(|h| h.lock == lock)
            .copied()
            .or_else(|| cx.state.lock(lock).and_then(|l| l.holders.last()).map(|h| h.hold));
        let Some(hold) = hold else {
            return;
        };
        if !self.seen.insert((lock, hold.site)) {
            return;
        }
        let name = cx.trace.lock_name(lock);
        let holder = actor.describe(cx.trace);
        let held_ns = event.time_ns.saturating_sub(hold.since_ns);
        let panic_site = self.panics.get(&actor).copied().flatten();
        let mut finding = Finding::new(
            FindingKind::StaleLock,
            Severity::Error,
            format!("lock `{name}` was poisoned: {holder} panicked while holding it"),
        );
        finding.evidence.push(format!(
            "{holder} acquired `{name}` {}, t={}, and panicked{} {} later while holding it \
             (released by unwinding at t={})",
            acquired_at(cx, &hold),
            format_ns(hold.since_ns),
            at_site(cx, panic_site),
            format_ns(held_ns),
            format_ns(event.time_ns),
        ));
        finding.evidence.push(
            "the data it protects may be half-updated, and every later `lock()` returns a \
             `PoisonError`"
                .to_owned(),
        );
        finding.help = Some(format!(
            "find why {holder} panicked; if the protected data stays valid after a panic, \
             recover it with `PoisonError::into_inner`, else keep the critical section free \
             of code that can panic"
        ));
        let mut finding = fill(cx, finding, actor, &hold, held_ns, "poisoned", event.time_ns);
        if let Some(site) = panic_site {
            finding.sites.push(cx.site_ref(site, "panicked"));
        }
        self.unwound.push(finding);
    }

    /// Notes that `event`'s actor panicked, and reports each lock it held that does not
    /// poison: unwinding releases it silently.
    #[cold]
    #[inline(never)]
    fn report_panic(&mut self, cx: &Context<'_>, event: &Event, site: Option<SiteId>) {
        let actor = Actor::of(event);
        self.panics.insert(actor, site);
        for hold in cx.state.holds(actor) {
            let lock = cx.trace.lock(hold.lock);
            let poisons = lock.semantics().poisons_on_panic;
            if lock.counts_permits() || poisons != Some(false) {
                continue;
            }
            if !self.seen.insert((hold.lock, hold.site)) {
                continue;
            }
            let name = cx.trace.lock_name(hold.lock);
            let holder = actor.describe(cx.trace);
            let held_ns = event.time_ns.saturating_sub(hold.since_ns);
            let mut finding = Finding::new(
                FindingKind::StaleLock,
                Severity::Error,
                format!(
                    "{holder} panicked holding lock `{name}`: released by unwinding, its data \
                     may be inconsistent"
                ),
            );
            finding.evidence.push(format!(
                "{holder} acquired `{name}` {}, t={}, and panicked{} {} later while holding \
                 it",
                acquired_at(cx, hold),
                format_ns(hold.since_ns),
                at_site(cx, site),
                format_ns(held_ns),
            ));
            finding.evidence.push(format!(
                "`{name}` ({}) does not poison: unwinding dropped the guard, and the next \
                 holder reads the data as the panic left it, with no error to warn it",
                lock.implementation.name()
            ));
            finding.help = Some(format!(
                "find why {holder} panicked; make the critical section's updates all-or-nothing \
                 (compute first, then assign), or mark the data invalid until it is restored"
            ));
            let mut finding = fill(cx, finding, actor, hold, held_ns, "unwound", event.time_ns);
            if let Some(site) = site {
                finding.sites.push(cx.site_ref(site, "panicked"));
            }
            self.unwound.push(finding);
        }
    }
}

impl Detector for StaleLock {
    fn kind(&self) -> FindingKind {
        FindingKind::StaleLock
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_RELEASED | Interest::PANICKED
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        match event.kind {
            EventKind::LockReleased { lock, poisoned: true, .. } => {
                self.report_poisoning(cx, event, lock)
            }
            EventKind::Panicked { site } => self.report_panic(cx, event, site),
            _ => {}
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        findings.append(&mut self.unwound);
        let mid_flight = cx.ended_mid_flight();
        let end = cx.state.end_ns();
        let mut at_death = StateAtDeath::default();
        for (index, lock_state) in cx.state.locks().iter().enumerate() {
            let lock = LockId(index as u32);
            if lock_state.semaphore {
                if !mid_flight {
                    findings.extend(leaked_permits(cx, lock));
                }
                continue;
            }
            for holder in &lock_state.holders {
                let Some(actor_state) = cx.state.actor(holder.actor) else {
                    continue;
                };
                let hold = holder.hold;
                match actor_state.end {
                    Some(ended) => findings.push(held_after_end(cx, holder.actor, &hold, ended)),
                    None if mid_flight => at_death.holds.push((holder.actor, hold)),
                    None if actor_state.wait.is_some() => {}
                    None => findings.push(held_at_clean_end(cx, holder.actor, &hold, end)),
                }
            }
        }
        if mid_flight {
            findings.extend(at_death.finding(cx, end));
        }
    }
}

/// Where `hold` was acquired, in words: `at SITE`, or that tokio gave no call site.
fn acquired_at(cx: &Context<'_>, hold: &Hold) -> String {
    cx.trace.lock(hold.lock).at_site(cx.trace, hold.site)
}

/// ` at file:line:col`, or nothing for no site.
fn at_site(cx: &Context<'_>, site: Option<SiteId>) -> String {
    site.map(|site| format!(" at {}", cx.trace.site_text(site))).unwrap_or_default()
}

/// A lock still held by `actor`, which ended.
fn held_after_end(
    cx: &Context<'_>,
    actor: Actor,
    hold: &Hold,
    ended: crate::replay::End,
) -> Finding {
    let name = cx.trace.lock_name(hold.lock);
    let who = actor.describe(cx.trace);
    let (how, reason) = if ended.abnormal {
        ("panicked", "holder-panicked")
    } else {
        ("finished", "holder-finished")
    };
    let mut f = Finding::new(
        FindingKind::StaleLock,
        Severity::Error,
        format!("lock `{name}` is still held by {who}, which {how} without releasing it"),
    );
    f.evidence.push(format!(
        "{who} acquired `{name}` {}, t={}, and {how} at t={} still holding it; nobody can \
         release it now, and anyone who asks for it waits forever",
        acquired_at(cx, hold),
        format_ns(hold.since_ns),
        format_ns(ended.time_ns)
    ));
    f.help = Some(
        "make sure the guard is dropped on every path (no `mem::forget`, no guard stored in a \
         leaked or `'static` place), or release the lock explicitly before the holder ends"
            .to_owned(),
    );
    let end = cx.state.end_ns();
    fill(cx, f, actor, hold, end.saturating_sub(hold.since_ns), reason, ended.time_ns)
}

/// A lock still held by a running `actor` when the trace ended cleanly at `end`.
fn held_at_clean_end(cx: &Context<'_>, actor: Actor, hold: &Hold, end: u64) -> Finding {
    let name = cx.trace.lock_name(hold.lock);
    let who = actor.describe(cx.trace);
    let mut f = Finding::new(
        FindingKind::StaleLock,
        Severity::Warning,
        format!("lock `{name}` was still held by {who} when the trace ended"),
    );
    f.evidence.push(format!(
        "{who} acquired `{name}` {}, t={}, and still held it {} later, when the trace ended \
         at t={}",
        acquired_at(cx, hold),
        format_ns(hold.since_ns),
        format_ns(end.saturating_sub(hold.since_ns)),
        format_ns(end)
    ));
    f.help = Some(
        "if the program was not stopped in the middle of this critical section, look for a \
         guard that outlives its use"
            .to_owned(),
    );
    fill(cx, f, actor, hold, end.saturating_sub(hold.since_ns), "trace-ended", end)
}

/// The finding on semaphore `lock` if, at the clean end, an actor still waited for a permit
/// that could not come back: fewer permits free than one, and every holder ended.
fn leaked_permits(cx: &Context<'_>, lock: LockId) -> Option<Finding> {
    let capacity = cx.trace.lock(lock).capacity?;
    let lock_state = cx.state.lock(lock)?;
    let free = lock_state.permits.as_deref().map_or(u64::from(capacity), |p| p.free(capacity));
    let holders_ended =
        lock_state.holders.iter().all(|h| cx.state.actor(h.actor).is_some_and(|a| a.end.is_some()));
    if free > 0 || lock_state.holders.is_empty() || !holders_ended {
        return None;
    }
    let (waiter, wait) = cx.state.actors().find_map(|(actor, state)| match state.wait {
        Some(wait @ crate::replay::Wait { target: WaitFor::Lock { lock: l, .. }, .. })
            if l == lock && state.end.is_none() =>
        {
            Some((actor, wait))
        }
        _ => None,
    })?;
    // Permits out, not holders: one hold may have taken several.
    let held = lock_state.permits.as_deref().map_or(lock_state.holders.len() as u64, |p| p.out);
    let name = cx.trace.lock_name(lock);
    let who = waiter.describe(cx.trace);
    let holder = lock_state.holders.first()?;
    let mut f = Finding::new(
        FindingKind::StaleLock,
        Severity::Error,
        format!("semaphore `{name}` has no permit left for {who}: its holders ended holding them"),
    );
    f.evidence.push(format!(
        "{who} waited for a permit of `{name}` from t={} to the end; {} of {capacity} permits \
         were held by actors that had ended, and none was free",
        format_ns(wait.since_ns),
        held
    ));
    f.help = Some(
        "give each permit back on every path (drop it, or `add_permits` after a `forget`) \
         before its holder ends"
            .to_owned(),
    );
    let end = cx.state.end_ns();
    let held_ns = end.saturating_sub(holder.hold.since_ns);
    Some(fill(cx, f, holder.actor, &holder.hold, held_ns, "permits-leaked", end))
}

/// What was held and awaited when a trace ended mid-flight.
#[derive(Debug, Default)]
struct StateAtDeath {
    /// Holds of actors that had not ended.
    holds: Vec<(Actor, Hold)>,
}

impl StateAtDeath {
    /// The one finding that says what was held and awaited at `end`, if anything was.
    fn finding(mut self, cx: &Context<'_>, end: u64) -> Option<Finding> {
        let waits: Vec<(Actor, crate::replay::Wait)> = cx
            .state
            .actors()
            .filter(|(_, state)| state.end.is_none())
            .filter_map(|(actor, state)| Some((actor, state.wait?)))
            .collect();
        // Tasks in a poll at the end (a task stuck in a loop or a blocking call is one), but
        // the runtime's containers (a `block_on` future, a worker's launch on the blocking
        // pool), inside which other tasks are polled.
        let polling: Vec<(TaskId, ThreadId, u64)> = (cx.state.tasks().iter().enumerate())
            .filter(|(_, task)| task.actor.end.is_none())
            .filter_map(|(i, task)| {
                Some((TaskId(i as u32), task.running_on?, task.poll_started_ns))
            })
            .filter(|(task, ..)| !cx.trace.is_runtime_container(*task))
            .collect();
        if self.holds.is_empty() && waits.is_empty() && polling.is_empty() {
            return None;
        }
        // Longest held first: the likeliest culprit of a hang.
        self.holds.sort_by_key(|(_, hold)| hold.since_ns);
        let mut f = Finding::new(FindingKind::StaleLock, Severity::Info, {
            let held = crate::report::counted(self.holds.len() as u64, "lock", "locks");
            let waiting = crate::report::counted(waits.len() as u64, "actor", "actors");
            match polling.len() {
                0 => format!(
                    "state at death: the trace ended mid-flight with {held} held and \
                         {waiting} waiting"
                ),
                n => format!(
                    "state at death: the trace ended mid-flight with {held} held, \
                         {waiting} waiting and {} in a poll",
                    crate::report::counted(n as u64, "task", "tasks")
                ),
            }
        });
        f.evidence.push(format!(
            "the trace has no clean end: the process was killed at t={} or this is a flight \
             recorder's dump; what follows is what it was doing then, not a defect by itself",
            format_ns(end)
        ));
        for (actor, hold) in &self.holds {
            let who = actor.describe(cx.trace);
            f.evidence.push(format!(
                "{who} held `{}` ({}, {} before the end)",
                cx.trace.lock_name(hold.lock),
                cx.trace.lock(hold.lock).did_at(cx.trace, hold.site, "acquired"),
                format_ns(end.saturating_sub(hold.since_ns))
            ));
            crate::report::push_unique(&mut f.locks, cx.trace.lock_name(hold.lock));
            cx.add_actor(&mut f, *actor, hold.thread);
            let role = cx.trace.lock(hold.lock).site_role(cx.trace, hold.site, "acquired");
            push_site(&mut f, cx.site_ref(hold.site, role));
        }
        for (actor, wait) in &waits {
            let who = actor.describe(cx.trace);
            let waited_lock = match wait.target {
                WaitFor::Lock { lock, .. } => Some(cx.trace.lock(lock)),
                _ => None,
            };
            let what = match wait.target {
                WaitFor::Lock { lock, .. } => {
                    crate::report::push_unique(&mut f.locks, cx.trace.lock_name(lock));
                    format!("`{}`", cx.trace.lock_name(lock))
                }
                WaitFor::Thread(thread) => format!("thread `{}`", cx.trace.thread_name(thread)),
                WaitFor::Task(task) => format!("task `{}`", cx.trace.task_name(task)),
                WaitFor::Message(channel) => {
                    format!("a message on `{}`", cx.trace.channel_name(channel))
                }
            };
            f.evidence.push(format!(
                "{who} waited for {what}{} since t={}",
                match (waited_lock, wait.site) {
                    (Some(lock), Some(site)) => format!(" {}", lock.at_site(cx.trace, site)),
                    _ => at_site(cx, wait.site),
                },
                format_ns(wait.since_ns)
            ));
            cx.add_actor(&mut f, *actor, wait.thread);
            if let Some(site) = wait.site {
                let role =
                    waited_lock.map_or("waiting", |l| l.site_role(cx.trace, site, "waiting"));
                push_site(&mut f, cx.site_ref(site, role));
            }
        }
        for &(task, thread, since) in &polling {
            f.evidence.push(format!(
                "task `{}` was in a poll on thread `{}` since t={} ({} before the end)",
                cx.trace.task_name(task),
                cx.trace.thread_name(thread),
                format_ns(since),
                format_ns(end.saturating_sub(since))
            ));
            cx.add_actor(&mut f, Actor::Task(task), thread);
        }
        f.help = Some(
            "if the process hung, look first at what was held longest and who waited for it"
                .to_owned(),
        );
        f.time_ns = end;
        if let Some((actor, hold)) = self.holds.first() {
            f.detail = Detail::StaleLock(StaleLockDetail {
                lock: cx.trace.lock_name(hold.lock),
                holder: actor.describe(cx.trace),
                acquired_at: cx.trace.site_text(hold.site),
                held_since_ns: hold.since_ns,
                held_ns: end.saturating_sub(hold.since_ns),
                reason: "state-at-death".to_owned(),
            });
        }
        Some(f)
    }
}

/// Adds `site` to the finding's sites unless it is there already.
fn push_site(finding: &mut Finding, site: crate::report::SiteRef) {
    if !finding.sites.contains(&site) {
        finding.sites.push(site);
    }
}

/// Adds the common evidence of a stale-lock finding.
fn fill(
    cx: &Context<'_>,
    mut finding: Finding,
    actor: Actor,
    hold: &Hold,
    held_ns: u64,
    reason: &str,
    time_ns: u64,
) -> Finding {
    let name = cx.trace.lock_name(hold.lock);
    finding.locks.push(name.clone());
    cx.add_actor(&mut finding, actor, hold.thread);
    let role = cx.trace.lock(hold.lock).site_role(cx.trace, hold.site, "acquired");
    finding.sites.push(cx.site_ref(hold.site, role));
    finding.time_ns = time_ns;
    finding.detail = Detail::StaleLock(StaleLockDetail {
        lock: name,
        holder: actor.describe(cx.trace),
        acquired_at: cx.trace.site_text(hold.site),
        held_since_ns: hold.since_ns,
        held_ns,
        reason: reason.to_owned(),
    });
    finding
}
