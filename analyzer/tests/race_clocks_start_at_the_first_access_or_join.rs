//! The data-race detector keeps vector clocks only from the first access or join of a trace
//! on; before that, it only notes who exists, who blocks on which `block_on` future and which
//! messages are in flight. These pin that it finds exactly what keeping clocks all along finds.

mod common;

use common::{analyze, of_kind, strings};
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::TraceBuilder;

/// ```text
/// a: lock(m) unlock(m)                     write(x)            lock(m) write(y) unlock(m)
/// b:                   lock(m) unlock(m)             read(x)                            lock(m) read(y) unlock(m)
/// ```
/// The lock handoffs before the first access order nothing that comes after them.
#[test]
fn lock_handoffs_before_the_first_access_order_nothing_after_it() {
    let mut b = TraceBuilder::new("late");
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let (m, x, y) = (b.mutex("m"), b.variable("x"), b.variable("y"));
    let s = b.site("src/late.rs", 1, 1);
    b.on(ta).acquire(m, s).release(m);
    b.on(tb).acquire(m, s).release(m);
    b.on(ta).write(x, s);
    b.on(tb).read(x, s);
    b.on(ta).acquire(m, s).write(y, s).release(m);
    b.on(tb).acquire(m, s).read(y, s).release(m);
    let report = analyze(&b);
    let races = of_kind(&report, FindingKind::DataRace);
    assert_eq!(races.len(), 1, "{races:#?}");
    assert_eq!(races[0].variables, strings(&["x"]));
}

/// ```text
/// main: spawn(worker) join(worker)            read(x)
/// worker:                          write(x)              (runs on after the join)
/// ```
/// A join teaches the joiner the child's clock as it is, so a child that goes on without
/// synchronising (which only a damaged trace shows) is ordered before the joiner's later
/// events: the join starts the clocks like an access would.
#[test]
fn a_join_before_the_first_access_still_orders_what_follows() {
    let mut b = TraceBuilder::new("joined");
    let (main, worker) = (b.thread("main"), b.thread("worker"));
    let x = b.variable("x");
    let s = b.site("src/joined.rs", 1, 1);
    b.on(main).spawn_thread(worker, Some(s));
    b.on(worker).start();
    b.on(main).join_thread(worker, Some(s));
    b.on(worker).write(x, s);
    b.on(main).read(x, s);
    assert!(of_kind(&analyze(&b), FindingKind::DataRace).is_empty());
}
