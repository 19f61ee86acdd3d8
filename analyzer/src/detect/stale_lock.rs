//! `stale-lock`: a lock still held when its holder ended, released by a panicking holder
//! (poisoned), or still held when the trace ended.
//!
//! - A release marked `poisoned` means the holder panicked while holding the lock: whatever
//!   it protects may be half-updated, and every later `lock()` sees a `PoisonError`. Error.
//! - A lock still held by a thread or task that has finished can never be released (its guard
//!   was leaked, for example with `mem::forget`): whoever asks for it next waits forever.
//!   Error.
//! - A lock still held at the end of the trace by a thread or task that is running (not
//!   blocked itself) is a warning: the trace may just have been cut while it held it. Holders
//!   that are blocked themselves are left to the `deadlock` detector.

use super::{Context, Detector, Interest};
use crate::replay::{Actor, Hold};
use crate::report::{format_ns, Detail, Finding, FindingKind, Severity, StaleLockDetail};
use hindsight_recorder::format::{Event, EventKind, LockId, SiteId};
use std::collections::HashSet;

/// The `stale-lock` detector; see the module docs.
#[derive(Debug, Default)]
pub struct StaleLock {
    /// Poisonings found during replay.
    poisoned: Vec<Finding>,
    /// Poisoned `(lock, acquisition site)` pairs reported already, so that a lock poisoned
    /// in a loop is one finding.
    seen: HashSet<(LockId, SiteId)>,
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
        let mut finding = Finding::new(
            FindingKind::StaleLock,
            Severity::Error,
            format!("lock `{name}` was poisoned: {holder} panicked while holding it"),
        );
        finding.evidence.push(format!(
            "{holder} acquired `{name}` at {}, t={}, and panicked {} later while holding it \
             (released by unwinding at t={})",
            cx.trace.site_text(hold.site),
            format_ns(hold.since_ns),
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
        self.poisoned.push(fill(cx, finding, actor, &hold, held_ns, "poisoned", event.time_ns));
    }
}

impl Detector for StaleLock {
    fn kind(&self) -> FindingKind {
        FindingKind::StaleLock
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_RELEASED
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        if let EventKind::LockReleased { lock, poisoned: true, .. } = event.kind {
            self.report_poisoning(cx, event, lock);
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        findings.append(&mut self.poisoned);
        let end = cx.state.end_ns();
        for (index, lock_state) in cx.state.locks().iter().enumerate() {
            let lock = LockId(index as u32);
            for holder in &lock_state.holders {
                let Some(actor_state) = cx.state.actor(holder.actor) else {
                    continue;
                };
                let hold = holder.hold;
                let name = cx.trace.lock_name(lock);
                let who = holder.actor.describe(cx.trace);
                let acquired =
                    format!("at {}, t={}", cx.trace.site_text(hold.site), format_ns(hold.since_ns));
                let finding = match actor_state.end {
                    Some(ended) => {
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
                            "{who} acquired `{name}` {acquired} and {how} at t={} still holding it; \
                             nobody can release it now, and anyone who asks for it waits forever",
                            format_ns(ended.time_ns)
                        ));
                        f.help = Some(
                            "make sure the guard is dropped on every path (no `mem::forget`, no \
                             guard stored in a leaked or `'static` place), or release the lock \
                             explicitly before the holder ends"
                                .to_owned(),
                        );
                        fill(
                            cx,
                            f,
                            holder.actor,
                            &hold,
                            end.saturating_sub(hold.since_ns),
                            reason,
                            ended.time_ns,
                        )
                    }
                    None if actor_state.wait.is_some() => continue,
                    None => {
                        let mut f = Finding::new(
                            FindingKind::StaleLock,
                            Severity::Warning,
                            format!("lock `{name}` was still held by {who} when the trace ended"),
                        );
                        f.evidence.push(format!(
                            "{who} acquired `{name}` {acquired} and still held it {} later, when \
                             the trace ended at t={}",
                            format_ns(end.saturating_sub(hold.since_ns)),
                            format_ns(end)
                        ));
                        f.help = Some(
                            "if the program was not stopped in the middle of this critical \
                             section, look for a guard that outlives its use"
                                .to_owned(),
                        );
                        fill(
                            cx,
                            f,
                            holder.actor,
                            &hold,
                            end.saturating_sub(hold.since_ns),
                            "trace-ended",
                            end,
                        )
                    }
                };
                findings.push(finding);
            }
        }
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
    finding.sites.push(cx.site_ref(hold.site, "acquired"));
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
