//! Every detector of this build, as `hindsight analyze` runs them: one [`Visitor`] that calls
//! each detector directly (see the [`visitor`](super::visitor) module's docs), so that replay
//! pays no `dyn` call, and no call at all, for a detector that ignores an event.

use super::{BlockingInAsync, Contention, DataRace, Deadlock, GuardAcrossAwait, LockOrder};
use super::{Context, Detector, Interest, StaleLock, Visitor};
use crate::report::Finding;
use crate::AnalyzeOptions;
use hindsight_recorder::format::Event;

/// The detectors of this build, in report order; see the module docs. Those whose findings
/// `--only` leaves out are not run, but for [`Contention`], whose lock statistics go into every
/// report.
#[derive(Debug)]
pub struct Suite {
    deadlock: Option<Deadlock>,
    stale_lock: Option<StaleLock>,
    guard_across_await: Option<GuardAcrossAwait>,
    blocking_in_async: Option<BlockingInAsync>,
    data_race: Option<DataRace>,
    lock_order: Option<LockOrder>,
    contention: Contention,
    options: AnalyzeOptions,
}

/// Runs `$body` with `$d` bound to each detector of suite `$suite` that runs, in report
/// order, borrowed as `$how` (`&` or `&mut`).
macro_rules! each_detector {
    ($suite:expr, &mut $d:ident => $body:expr) => {
        each_detector!(@ $suite, [&mut] $d => $body)
    };
    ($suite:expr, & $d:ident => $body:expr) => {
        each_detector!(@ $suite, [&] $d => $body)
    };
    (@ $suite:expr, [$($how:tt)+] $d:ident => $body:expr) => {{
        let suite = $suite;
        if let Some($d) = $($how)+ suite.deadlock {
            $body;
        }
        if let Some($d) = $($how)+ suite.stale_lock {
            $body;
        }
        if let Some($d) = $($how)+ suite.guard_across_await {
            $body;
        }
        if let Some($d) = $($how)+ suite.blocking_in_async {
            $body;
        }
        if let Some($d) = $($how)+ suite.data_race {
            $body;
        }
        if let Some($d) = $($how)+ suite.lock_order {
            $body;
        }
        let $d = $($how)+ suite.contention;
        $body;
    }};
}

impl Suite {
    /// The detectors whose findings `options` wants (and [`Contention`]), with its
    /// thresholds.
    pub fn new(options: &AnalyzeOptions) -> Suite {
        let wanted = |detector: &dyn Detector| options.wants(detector.kind());
        Suite {
            deadlock: Some(Deadlock::new()).filter(|d| wanted(d)),
            stale_lock: Some(StaleLock::new()).filter(|d| wanted(d)),
            guard_across_await: Some(GuardAcrossAwait::new()).filter(|d| wanted(d)),
            blocking_in_async: Some(BlockingInAsync::new(options.poll_threshold_ns))
                .filter(|d| wanted(d)),
            data_race: Some(DataRace::new()).filter(|d| wanted(d)),
            lock_order: Some(LockOrder::new()).filter(|d| wanted(d)),
            contention: Contention::new(options.wait_threshold_ns),
            options: options.clone(),
        }
    }

    /// The detectors that run, in report order, for callers that handle them one by one.
    pub fn detectors_mut(&mut self) -> Vec<&mut dyn Detector> {
        let mut detectors: Vec<&mut dyn Detector> = Vec::new();
        each_detector!(self, &mut detector => detectors.push(detector));
        detectors
    }

    /// Adds the findings of every detector that runs, of the kinds the options want, once
    /// the trace has ended.
    pub fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let mut found = Vec::new();
        each_detector!(&mut *self, &mut detector => detector.finish(cx, &mut found));
        found.retain(|finding| self.options.wants(finding.kind));
        findings.append(&mut found);
    }

    /// The lock-order detector, unless `--only` left it out.
    pub fn lock_order(&self) -> Option<&LockOrder> {
        self.lock_order.as_ref()
    }

    /// The lock statistics collector.
    pub fn contention_mut(&mut self) -> &mut Contention {
        &mut self.contention
    }
}

impl Visitor for Suite {
    #[inline(always)]
    fn visit(&mut self, cx: &Context<'_>, event: &Event) {
        // The event's kind is looked up once, and each detector's (constant) interest tested
        // against it.
        let kind = Interest::of(&event.kind);
        each_detector!(self, &mut detector => if detector.interest().contains(kind) {
            detector.on_event(cx, event);
        });
    }

    fn prefetches(&self) -> bool {
        let mut prefetches = false;
        each_detector!(self, & detector => prefetches |= detector.prefetches());
        prefetches
    }

    #[inline(always)]
    fn prefetch_for(&self, event: &Event) {
        let kind = Interest::of(&event.kind);
        each_detector!(self, & detector => if detector.prefetch_interest().contains(kind) {
            detector.prefetch(event);
        });
    }
}
