//! Detectors: each a visitor of replayed events behind one trait, owning its check and the
//! wording of its findings.
//!
//! A detector sees every event through [`Detector::on_event`], *before* replay applies it to
//! the [`State`] (so the state shows, for example, what the actor held when it took a lock),
//! and reports in [`Detector::finish`], when the state is that of the end of the trace. Its
//! memory must grow with the trace's threads, tasks, locks and sites, never with its length.

pub mod blocking_in_async;
pub mod contention;
pub(crate) mod cycles;
pub mod data_race;
pub mod deadlock;
pub mod guard_across_await;
pub(crate) mod interest;
pub mod lock_order;
pub mod stale_lock;
mod suite;
mod visitor;

use crate::replay::{Actor, State};
use crate::report::{Finding, FindingKind, SiteRef};
use crate::trace::Trace;
use hindsight_recorder::format::{Event, LockMode, SiteId, TaskId};

pub use blocking_in_async::BlockingInAsync;
pub use contention::Contention;
pub use data_race::DataRace;
pub use deadlock::Deadlock;
pub use guard_across_await::GuardAcrossAwait;
pub use interest::Interest;
pub use lock_order::LockOrder;
pub use stale_lock::StaleLock;
pub use suite::Suite;
pub(crate) use visitor::Dispatch;
pub use visitor::Visitor;

/// What a detector can look at: the definitions, and the replay state.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The definitions read so far (names, sites, lock classes).
    pub trace: &'a Trace,
    /// The replay state (before the current event, in `on_event`; at the end, in `finish`).
    pub state: &'a State,
}

impl Context<'_> {
    /// A site with its role, for a finding.
    pub fn site_ref(&self, site: SiteId, role: &str) -> SiteRef {
        let s = self.trace.site(site);
        SiteRef {
            file: self.trace.string(s.file).to_owned(),
            line: s.line,
            col: s.col,
            role: role.to_owned(),
        }
    }

    /// Whether the trace stopped mid-flight: a file of a format that marks the recorder's
    /// clean end (3 or later) has none, so the process was killed or the file is a flight
    /// recorder's dump. Then each thread's last events may be lost with its buffer: what is
    /// open at the end (a poll, a hold) is where things stood, not how they ended.
    pub fn ended_mid_flight(&self) -> bool {
        /// The format version that added the clean-end marker.
        const FIRST_VERSION_WITH_CLEAN_END: u32 = 3;
        let marking = self
            .trace
            .processes()
            .iter()
            .filter(|p| p.format_version >= FIRST_VERSION_WITH_CLEAN_END)
            .count() as u64;
        self.state.clean_ends() < marking
    }

    /// Adds an actor's thread (and task) names to a finding.
    pub fn add_actor(
        &self,
        finding: &mut Finding,
        actor: Actor,
        thread: hindsight_recorder::format::ThreadId,
    ) {
        crate::report::push_unique(&mut finding.threads, self.trace.thread_name(thread));
        if let Actor::Task(task) = actor {
            crate::report::push_unique(&mut finding.tasks, self.trace.task_name(task));
        }
    }
}

/// A check over replayed events; see the module docs.
pub trait Detector {
    /// The kind of finding it reports.
    fn kind(&self) -> FindingKind;

    /// The kinds of events it wants to see in [`on_event`](Self::on_event); it is shown no
    /// other. Asked once, before replay starts.
    fn interest(&self) -> Interest {
        Interest::ALL
    }

    /// Sees one event of a kind it is interested in, before the state applies it.
    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let _ = (cx, event);
    }

    /// The kinds of events it wants to [`prefetch`](Self::prefetch) for; none unless it says.
    /// Asked once, before replay starts.
    fn prefetch_interest(&self) -> Interest {
        Interest::NONE
    }

    /// Sees an event of a kind in [`prefetch_interest`](Self::prefetch_interest) a few events
    /// before [`on_event`](Self::on_event) does, to ask the CPU for the memory that event will
    /// touch (a CPU prefetch hint); changes nothing.
    fn prefetch(&self, event: &Event) {
        let _ = event;
    }

    /// Adds its findings, once the trace has ended.
    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>);
}

/// The kind of a task as its trace names it: tokio's `task`, `local`, `blocking` (the
/// blocking pool) or `block_on`, or `hindsight` for the recorder's spawn helper.
pub(crate) fn task_kind<'a>(cx: &Context<'a>, task: TaskId) -> Option<&'a str> {
    let kind = cx.trace.tasks().get(task.index())?.kind?;
    Some(cx.trace.string(kind))
}

/// `exclusive` or `shared`.
pub(crate) fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
    }
}
