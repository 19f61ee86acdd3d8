//! The causality engine as a detector other than the race detector asks it: happens-before
//! with lock edges orders two accesses a lock hands over; without lock edges (what deadlock
//! prediction needs) only hard edges, such as a join, do.

use hindsight_analyzer::causality::{Causality, Epoch};
use hindsight_analyzer::detect::{Context, Detector, Interest};
use hindsight_analyzer::replay::{Actor, Replay};
use hindsight_analyzer::report::Finding;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{Event, EventKind, TraceBuilder};

/// Feeds every event to an engine and notes, at each access, whether the previous access
/// (by anyone) is ordered before it.
struct Asker {
    causality: Causality,
    previous: Option<Epoch>,
    ordered: Vec<bool>,
}

impl Detector for Asker {
    fn kind(&self) -> FindingKind {
        FindingKind::DataRace
    }

    fn interest(&self) -> Interest {
        Interest::ALL
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        match event.kind {
            EventKind::Read { .. } | EventKind::Write { .. } => {
                let slot = self.causality.slot(Actor::of(event));
                if let Some(previous) = self.previous {
                    let clock = self.causality.ordering(slot);
                    self.ordered.push(!previous.unordered(slot, clock));
                }
                self.previous = Some(self.causality.epoch(slot));
            }
            _ => self.causality.on_event(cx, event),
        }
    }

    fn finish(&mut self, _cx: &Context<'_>, _findings: &mut Vec<Finding>) {}
}

fn ordered(b: &TraceBuilder, causality: Causality) -> Vec<bool> {
    let mut replay = Replay::from_bytes(vec![("t.trace".to_owned(), b.build())]).expect("reads");
    let mut asker = Asker { causality, previous: None, ordered: Vec::new() };
    replay.visit(&mut asker);
    asker.ordered
}

/// ```text
/// t1: write(x) lock(m) unlock(m)
/// t2:                            lock(m) unlock(m) write(x) ... join(t1) write(x)
/// ```
#[test]
fn lock_edges_order_only_when_asked_for_and_joins_always() {
    let mut b = TraceBuilder::new("edges");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (m, x) = (b.mutex("m"), b.variable("x"));
    let s = b.site("a", 1, 0);
    b.on(t1).write(x, s).acquire(m, s).release(m);
    b.on(t2).acquire(m, s).release(m).write(x, s);
    b.on(t1).write(x, s).finish();
    b.on(t2).join_thread(t1, None).write(x, s);
    assert_eq!(ordered(&b, Causality::new(Default::default())), [true, false, true]);
    assert_eq!(ordered(&b, Causality::without_lock_edges()), [false, false, true]);
}
