//! Deadlock prediction keeps what each read saw, and nothing more: a reordering that would make
//! a read see another write is no witness, and such a cycle is a warning naming the read; but
//! two reads are never ordered, so reads alone never keep a deadlock from being witnessed.

mod common;

use common::{analyze, of_kind};
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::TraceBuilder;

/// `t2` takes `b` then `a` and, inside, touches `x` (a write with `write`, else a read);
/// then `t1` reads `x` and takes `a` then `b`.
///
/// ```text
/// t2: lock(b) lock(a) [w|r](x) unlock unlock
/// t1:                                         r(x) lock(a) lock(b) unlock unlock
/// ```
fn reader_after_nest(write: bool) -> TraceBuilder {
    let mut b = TraceBuilder::new("reads");
    let (t1, t2) = (b.thread("t1"), b.thread("t2"));
    let (a, lock_b) = (b.mutex("a"), b.mutex("b"));
    let x = b.variable("x");
    let s = |b: &mut TraceBuilder, line| b.site("src/config.rs", line, 9);
    let (inner, touch, read, outer) = (s(&mut b, 10), s(&mut b, 11), s(&mut b, 20), s(&mut b, 21));
    let t2_nest = b.on(t2).acquire(lock_b, outer).acquire(a, inner);
    let t2_nest = if write { t2_nest.write(x, touch) } else { t2_nest.read(x, touch) };
    t2_nest.release(a).release(lock_b);
    b.on(t1).read(x, read).acquire(a, inner).acquire(lock_b, outer).release(lock_b).release(a);
    b
}

#[test]
fn a_read_that_saw_a_write_inside_the_other_nest_pins_the_order() {
    // Every deadlocking schedule has `t1` read `x` before `t2` writes it: `t1` would see
    // another value. The orders still conflict: a warning naming the read.
    let report = analyze(&reader_after_nest(true));
    let found = of_kind(&report, FindingKind::LockOrderCycle);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].severity, Severity::Warning);
    let evidence = found[0].evidence.join("\n");
    assert!(
        evidence
            .contains("what the read at src/config.rs:20:9 saw (the write at src/config.rs:11:9)"),
        "{evidence}"
    );
}

#[test]
fn two_reads_of_one_value_do_not_order_anything() {
    // Both only read `x`: the deadlock is witnessed whichever read comes first.
    let report = analyze(&reader_after_nest(false));
    let found = of_kind(&report, FindingKind::LockOrderCycle);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].severity, Severity::Error, "{:#?}", found[0]);
}
