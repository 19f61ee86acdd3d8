//! What replay shows events to: one detector, several behind `dyn`, or a fixed set of them.
//!
//! Replay calls its [`Visitor`] once per event, so the visitor decides how the event reaches
//! the detectors. A concrete detector (every [`Detector`] is a visitor) or a fixed set of
//! them ([`Suite`](super::Suite)) is called directly, which lets the compiler inline each
//! detector's test of the event's kind into the replay loop; detectors chosen at run time go
//! through [`Dispatch`], a call through `dyn` per detector that wants the event.

use super::interest::KINDS;
use super::{Context, Detector, Interest};
use hindsight_recorder::format::Event;

/// What [`Replay::visit`](crate::replay::Replay::visit) shows every replayed event to,
/// before applying it to the state; see the module docs.
pub trait Visitor {
    /// Sees one event, before the state applies it.
    fn visit(&mut self, cx: &Context<'_>, event: &Event);

    /// Whether [`prefetch_for`](Self::prefetch_for) does anything; asked once, before replay
    /// starts.
    fn prefetches(&self) -> bool;

    /// Sees an event a few events before [`visit`](Self::visit) does, to ask the CPU for the
    /// memory that the visit will touch (see [`Detector::prefetch`]).
    fn prefetch_for(&self, event: &Event);
}

/// A detector shown the events of the kinds it is interested in.
impl<D: Detector> Visitor for D {
    #[inline(always)]
    fn visit(&mut self, cx: &Context<'_>, event: &Event) {
        // (`interest` of a concrete detector is a constant once inlined.)
        if self.interest().wants(&event.kind) {
            self.on_event(cx, event);
        }
    }

    fn prefetches(&self) -> bool {
        self.prefetch_interest() != Interest::NONE
    }

    #[inline(always)]
    fn prefetch_for(&self, event: &Event) {
        if self.prefetch_interest().wants(&event.kind) {
            self.prefetch(event);
        }
    }
}

/// Detectors chosen at run time, each shown the events of the kinds it is interested in
/// through a `dyn` call.
pub struct Dispatch<'a, 'b, 'd> {
    detectors: &'a mut [&'b mut (dyn Detector + 'd)],
    /// Per kind of event, the detectors that want it, and those that prefetch for it.
    wanted: [Vec<usize>; KINDS],
    prefetching: [Vec<usize>; KINDS],
}

impl<'a, 'b, 'd> Dispatch<'a, 'b, 'd> {
    /// Dispatches to `detectors`, in the order given; asks each for its interests now.
    pub fn new(detectors: &'a mut [&'b mut (dyn Detector + 'd)]) -> Self {
        let mut wanted: [Vec<usize>; KINDS] = Default::default();
        let mut prefetching: [Vec<usize>; KINDS] = Default::default();
        for (d, detector) in detectors.iter().enumerate() {
            let (interest, prefetch) = (detector.interest(), detector.prefetch_interest());
            for kind in 0..KINDS {
                if interest.contains_index(kind) {
                    wanted[kind].push(d);
                }
                if prefetch.contains_index(kind) {
                    prefetching[kind].push(d);
                }
            }
        }
        Dispatch { detectors, wanted, prefetching }
    }
}

impl Visitor for Dispatch<'_, '_, '_> {
    #[inline]
    fn visit(&mut self, cx: &Context<'_>, event: &Event) {
        for &d in &self.wanted[Interest::index(&event.kind)] {
            self.detectors[d].on_event(cx, event);
        }
    }

    fn prefetches(&self) -> bool {
        self.prefetching.iter().any(|list| !list.is_empty())
    }

    #[inline]
    fn prefetch_for(&self, event: &Event) {
        for &d in &self.prefetching[Interest::index(&event.kind)] {
            self.detectors[d].prefetch(event);
        }
    }
}
