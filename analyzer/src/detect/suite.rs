//! Every detector of this build, as `hindsight analyze` runs them: one [`Visitor`] that calls
//! each detector directly (see the [`visitor`](super::visitor) module's docs), so that replay
//! pays no `dyn` call, and no call at all, for a detector that ignores an event.

use super::{BlockingInAsync, Contention, DataRace, Deadlock, GuardAcrossAwait, LockOrder};
use super::{Context, Detector, Interest, StaleLock, Visitor};
use crate::report::{Finding, FindingKind};
use crate::AnalyzeOptions;
use hindsight_recorder::format::Event;

/// The detectors of this build, in report order; see the module docs. All of them run, and
/// [`finish`](Self::finish) drops the findings that `--only` leaves out: testing per event
/// whether a detector runs would cost every analysis more than running the few that
/// `--only` leaves out costs a narrowed one. ([`Contention`]'s lock statistics go into every
/// report anyway.)
#[derive(Debug)]
pub struct Suite {
    deadlock: Deadlock,
    stale_lock: StaleLock,
    guard_across_await: GuardAcrossAwait,
    blocking_in_async: BlockingInAsync,
    data_race: DataRace,
    lock_order: LockOrder,
    contention: Contention,
    options: AnalyzeOptions,
}

/// Runs `$body` with `$d` bound to each detector of suite `$suite` in report order, borrowed
/// as `&` or `&mut`.
macro_rules! each_detector {
    (@ $suite:expr, [$($field:ident)+] &mut $d:ident => $body:expr) => {{
        let suite = $suite;
        $({
            let $d = &mut suite.$field;
            $body;
        })+
    }};
    (@ $suite:expr, [$($field:ident)+] & $d:ident => $body:expr) => {{
        let suite = $suite;
        $({
            let $d = &suite.$field;
            $body;
        })+
    }};
    ($suite:expr, $($rest:tt)+) => {
        each_detector!(@ $suite, [
            deadlock stale_lock guard_across_await blocking_in_async data_race lock_order
            contention
        ] $($rest)+)
    };
}

impl Suite {
    /// Every detector, with the thresholds of `options`, reporting the kinds it wants.
    pub fn new(options: &AnalyzeOptions) -> Suite {
        Suite {
            deadlock: Deadlock::new(),
            stale_lock: StaleLock::new(),
            guard_across_await: GuardAcrossAwait::new(),
            blocking_in_async: BlockingInAsync::new(options.poll_threshold_ns),
            data_race: DataRace::with_relation(options.races),
            lock_order: LockOrder::new(),
            contention: Contention::new(options.wait_threshold_ns),
            options: options.clone(),
        }
    }

    /// The detectors, in report order, for callers that handle them one by one.
    pub fn detectors_mut(&mut self) -> Vec<&mut dyn Detector> {
        let mut detectors: Vec<&mut dyn Detector> = Vec::new();
        each_detector!(self, &mut detector => detectors.push(detector));
        detectors
    }

    /// Adds the findings of the kinds the options want, once the trace has ended.
    pub fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let mut found = Vec::new();
        each_detector!(&mut *self, &mut detector => detector.finish(cx, &mut found));
        found.retain(|finding| self.options.wants(finding.kind));
        findings.append(&mut found);
    }

    /// The lock-order detector, for its graph, unless `--only` leaves out its findings.
    pub fn lock_order(&self) -> Option<&LockOrder> {
        self.options.wants(FindingKind::LockOrderCycle).then_some(&self.lock_order)
    }

    /// The lock-order detector, to hand it what prediction found.
    pub fn lock_order_mut(&mut self) -> &mut LockOrder {
        &mut self.lock_order
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
