//! The lock-order graph as Graphviz DOT.
//!
//! One node per lock class of the trace's locks (labelled with the class name), one edge `A -> B` per order seen: a
//! lock of class `B` was taken while one of class `A` was held, labelled with how many times
//! and the sites of the first time. The graph is the `lock-order-cycle` detector's own
//! ([`LockOrder::order_edges`]), so it has the detector's rules: `try_lock` adds no edge, nor
//! does nesting two locks of one class. The detector's findings style the edges: an edge of a
//! cycle reported as an error is red and bold, one of a cycle lowered to info (it cannot
//! deadlock) dashed.
//!
//! Nodes are named `c0`, `c1`, ... (in the order of the classes' ids); names appear only in quoted labels,
//! escaped, so any lock name makes a valid file.

use super::ExportError;
use crate::detect::{Context, Detector, LockOrder};
use crate::replay::Replay;
use crate::report::{Detail, Finding, Severity};
use crate::trace::ClassId;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;

/// What the graph says about itself, at its foot.
const LEGEND: &str = "lock-order graph: A -> B means a lock of class B was taken while one of \
                      class A was held (how many times; the sites of the first time).\nRed: a \
                      lock-order-cycle error. Dashed: a cycle that cannot deadlock.";

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotSummary {
    /// What a damaged trace lost ([`Trace::damage_note`](crate::trace::Trace::damage_note)),
    /// to be said before anything else.
    pub damage: Option<String>,
    /// Nodes: lock classes.
    pub classes: usize,
    /// Edges: orders of two classes.
    pub edges: usize,
    /// Edges of a cycle reported as an error (drawn red).
    pub error_edges: usize,
}

impl fmt::Display for DotSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lock classes and {} lock-order edges ({} in lock-order-cycle errors)",
            self.classes, self.edges, self.error_edges
        )
    }
}

/// Replays `replay` to its end through the lock-order detector and writes its graph to `out`;
/// see the module docs. `again`, the same traces opened once more, lets the detector check
/// its cycles for witnesses (without it, no cycle is an error).
pub fn write<W: Write>(
    mut replay: Replay,
    again: Option<Replay>,
    mut out: W,
) -> Result<DotSummary, ExportError> {
    let mut lock_order = LockOrder::new();
    replay.visit(&mut lock_order);
    if let Some(error) = replay.take_error() {
        return Err(ExportError::Trace(error.into()));
    }
    if let Some(again) = again {
        lock_order.check_cycles(|| Ok::<_, ExportError>(again))?;
    }
    let trace = replay.trace();
    let mut findings = Vec::new();
    lock_order.finish(&Context { trace, state: replay.state() }, &mut findings);
    let errors = cycle_edges(&findings, |severity| severity == Severity::Error);
    let infos = cycle_edges(&findings, |severity| severity < Severity::Error);
    let mut edges: Vec<_> = lock_order.order_edges().collect();
    edges.sort_unstable_by_key(|&(from, to, ..)| (from, to));

    writeln!(out, "digraph lock_order {{")?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  labelloc=b;")?;
    writeln!(out, "  label={};", quote(LEGEND))?;
    writeln!(out, "  node [shape=box, fontname=\"monospace\"];")?;
    writeln!(out, "  edge [fontname=\"monospace\", fontsize=10];")?;
    let mut classes: Vec<ClassId> = trace.locks().iter().map(|lock| lock.class).collect();
    classes.sort_unstable();
    classes.dedup();
    for (node, &class) in classes.iter().enumerate() {
        writeln!(out, "  c{node} [label={}];", quote(trace.class_name(class)))?;
    }
    // Every edge joins classes of locks, which are all nodes.
    let node = |class: ClassId| classes.binary_search(&class).unwrap_or(usize::MAX);
    let mut error_edges = 0;
    for &(from, to, count, held_at, taken_at) in &edges {
        let pair = (trace.class_name(from), trace.class_name(to));
        let style = if errors.contains(&pair) {
            error_edges += 1;
            ", color=red, fontcolor=red, style=bold, penwidth=2"
        } else if infos.contains(&pair) {
            ", style=dashed"
        } else {
            ""
        };
        let label = format!(
            "{count}×\nheld at {}\ntaken at {}",
            trace.site_text(held_at),
            trace.site_text(taken_at)
        );
        writeln!(out, "  c{} -> c{} [label={}{style}];", node(from), node(to), quote(&label))?;
    }
    writeln!(out, "}}")?;
    Ok(DotSummary {
        damage: trace.damage_note(),
        classes: classes.len(),
        edges: edges.len(),
        error_edges,
    })
}

/// The `(from, to)` class names of the edges of the lock-order cycles found with a severity
/// that `wanted` accepts.
fn cycle_edges(findings: &[Finding], wanted: impl Fn(Severity) -> bool) -> HashSet<(&str, &str)> {
    findings
        .iter()
        .filter(|finding| wanted(finding.severity))
        .filter_map(|finding| match &finding.detail {
            Detail::LockOrderCycle(cycle) => Some(&cycle.edges),
            _ => None,
        })
        .flatten()
        .map(|edge| (edge.from.as_str(), edge.to.as_str()))
        .collect()
}

/// `text` as a quoted DOT string whose label shows `text`: quotes and backslashes escaped (a
/// backslash would otherwise start a label escape such as `\N`), line breaks as `\n`, other
/// control characters as spaces.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::TraceBuilder;

    /// The DOT of a built trace, without its header lines (up to the node defaults).
    fn export(builder: &TraceBuilder) -> (DotSummary, Vec<String>) {
        let open = || {
            Replay::from_bytes(vec![("built".to_owned(), builder.build())])
                .expect("a built trace opens")
        };
        let mut out = Vec::new();
        let summary = write(open(), Some(open()), &mut out).expect("exporting to memory works");
        let text = String::from_utf8(out).expect("DOT is UTF-8");
        let lines = text.lines().skip_while(|l| !l.starts_with("  edge [")).skip(1);
        (summary, lines.map(str::to_owned).collect())
    }

    #[test]
    fn odd_lock_names_are_escaped_in_labels() {
        // t1: lock(quote) ── lock(slash) ── unlock ── unlock
        // t2:                                               lock(slash) ── lock(quote) ...
        let mut b = TraceBuilder::new("odd_names");
        let (t1, t2) = (b.thread("t1"), b.thread("t2"));
        let quote_lock = b.mutex("say \"hi\"");
        let slash_lock = b.mutex("C:\\locks\\N\nsecond line\t.");
        let (s1, s2) = (b.site("a.rs", 1, 2), b.site("b.rs", 3, 4));
        b.on(t1).acquire(quote_lock, s1).acquire(slash_lock, s2).release(slash_lock);
        b.on(t1).release(quote_lock);
        b.on(t2).acquire(slash_lock, s2).acquire(quote_lock, s1).release(quote_lock);
        b.on(t2).release(slash_lock);
        let (summary, lines) = export(&b);
        assert_eq!(summary, DotSummary { damage: None, classes: 2, edges: 2, error_edges: 2 });
        let red = ", color=red, fontcolor=red, style=bold, penwidth=2";
        assert_eq!(
            lines,
            vec![
                r#"  c0 [label="say \"hi\""];"#.to_owned(),
                r#"  c1 [label="C:\\locks\\N\nsecond line ."];"#.to_owned(),
                format!(r#"  c0 -> c1 [label="1×\nheld at a.rs:1:2\ntaken at b.rs:3:4"{red}];"#),
                format!(r#"  c1 -> c0 [label="1×\nheld at b.rs:3:4\ntaken at a.rs:1:2"{red}];"#),
                "}".to_owned(),
            ]
        );
    }

    #[test]
    fn a_cycle_within_one_thread_is_dashed_and_counts_repeat() {
        // main: (lock(a) ── lock(b) ── unlock ── unlock) × 2 ── lock(b) ── lock(a) ...
        let mut b = TraceBuilder::new("one_thread");
        let main = b.thread("main");
        let (a, b_lock) = (b.mutex("a"), b.mutex("b"));
        let site = b.site("m.rs", 1, 1);
        for _ in 0..2 {
            b.on(main).acquire(a, site).acquire(b_lock, site).release(b_lock).release(a);
        }
        b.on(main).acquire(b_lock, site).acquire(a, site).release(a).release(b_lock);
        let (summary, lines) = export(&b);
        assert_eq!(summary.error_edges, 0);
        assert_eq!(
            lines[2..4],
            [
                r#"  c0 -> c1 [label="2×\nheld at m.rs:1:1\ntaken at m.rs:1:1", style=dashed];"#,
                r#"  c1 -> c0 [label="1×\nheld at m.rs:1:1\ntaken at m.rs:1:1", style=dashed];"#,
            ]
        );
    }
}
