//! `lock-order-cycle`: locks taken in conflicting orders by different threads or tasks, a
//! deadlock that can happen even if it did not in this run (Linux lockdep, Goodlock).
//!
//! Every blocking acquisition of a lock `B` while holding `A` adds the edge `class(A) →
//! class(B)` to a graph over lock *classes* (explicit name, else creation site), so that
//! per-object locks created at one site are analysed together. Each edge keeps a few
//! witnesses (who, where `A` was acquired, where `B` was, when, in which modes) and the gate
//! locks that were held at every occurrence. At the end, each elementary cycle of the graph
//! is one finding, reported as an error only if it could really deadlock:
//!
//! - witnesses of its edges can be chosen from pairwise *different* threads/tasks (one actor
//!   cannot wait in two places), else it is lowered to `info`;
//! - at every lock of the cycle, the mode waited for and the mode held conflict (two shared
//!   holds of a rwlock do not block each other), else `info`;
//! - no common *gate* lock was held exclusively, before both locks, at every occurrence of
//!   every edge (the gate serialises the two orders), else `info`.
//!
//! `try_lock` acquisitions add no edge: they cannot block. Edges between locks of one class
//! (nested per-object locks) are not considered.

use super::cycles::{elementary_cycles, Bounds};
use super::{mode_name, Context, Detector, Interest};
use crate::replay::{Actor, Hold};
use crate::report::{format_ns, CycleDetail, CycleEdge, Detail, Finding, FindingKind, Severity};
use crate::trace::{ClassId, Trace};
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId, ThreadId};
use petgraph::graph::DiGraph;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Witnesses kept per edge.
const MAX_WITNESSES: usize = 6;

/// Cycles reported at most.
const MAX_CYCLES: usize = 100;

/// Bounds of the cycle enumeration.
const BOUNDS: Bounds = Bounds { max_cycles: MAX_CYCLES, max_len: 12, max_steps: 2_000_000 };

/// Steps allowed when choosing witnesses for one cycle.
const MAX_ASSIGNMENT_STEPS: usize = 100_000;

/// One observed acquisition of `lock` while holding `held`.
#[derive(Debug, Clone, Copy)]
struct Witness {
    actor: Actor,
    thread: ThreadId,
    held: Hold,
    lock: LockId,
    mode: LockMode,
    site: SiteId,
    time_ns: u64,
}

/// An acquisition that orders the locks held before it: a [`Witness`] for each, if kept.
struct Taken {
    actor: Actor,
    thread: ThreadId,
    lock: LockId,
    /// The lock's class.
    class: ClassId,
    mode: LockMode,
    site: SiteId,
    time_ns: u64,
}

/// Everything known about one order `from → to` of two lock classes.
#[derive(Debug, Clone)]
struct Edge {
    from: ClassId,
    to: ClassId,
    witnesses: Vec<Witness>,
    /// Locks held exclusively, before the held lock, at every occurrence.
    gates: Vec<LockId>,
}

/// What every occurrence of an edge updates, kept inline in the index so that the common case
/// (an order seen before, nothing new about it) touches one hash bucket.
#[derive(Debug, Clone, Copy)]
struct EdgeHot {
    /// The edge's index in [`LockOrder::edges`].
    ix: u32,
    /// Bit `2·shared(held) + shared(taken)` per combination of modes seen.
    modes_seen: u8,
    /// The edge has as many witnesses as it keeps.
    full: bool,
    /// The edge still has gate candidates.
    gated: bool,
    /// Who took this order first (a witness already).
    first_actor: Actor,
    /// Occurrences.
    count: u64,
}

impl EdgeHot {
    /// Updates the edge, at `edges[self.ix]`, with an occurrence that may tell something new
    /// about it: `taken` made while holding `held`, taken after `gates_before`. Out of line:
    /// most occurrences of a known order need none of it.
    #[inline(never)]
    fn learn(&mut self, edges: &mut [Edge], held: &Hold, gates_before: &[Hold], taken: &Taken) {
        let bit = 1u8 << mode_bit(held.mode, taken.mode);
        let new_modes = self.modes_seen & bit == 0;
        self.modes_seen |= bit;
        let maybe_new_witness = !self.full && (new_modes || taken.actor != self.first_actor);
        if !maybe_new_witness && !self.gated {
            return;
        }
        let edge = &mut edges[self.ix as usize];
        if self.gated {
            edge.gates.retain(|g| {
                gates_before.iter().any(|h| h.lock == *g && h.mode == LockMode::Exclusive)
            });
            self.gated = !edge.gates.is_empty();
        }
        if maybe_new_witness && (new_modes || edge.witnesses.iter().all(|x| x.actor != taken.actor))
        {
            edge.witnesses.push(Witness {
                actor: taken.actor,
                thread: taken.thread,
                held: *held,
                lock: taken.lock,
                mode: taken.mode,
                site: taken.site,
                time_ns: taken.time_ns,
            });
            self.full = edge.witnesses.len() >= MAX_WITNESSES;
        }
    }
}

/// The `lock-order-cycle` detector; see the module docs.
#[derive(Debug, Default)]
pub struct LockOrder {
    index: HashMap<u64, EdgeHot, BuildHasherDefault<PairHasher>>,
    edges: Vec<Edge>,
    /// Occurrences per edge, gathered from the index at the end.
    counts: Vec<u64>,
}

impl LockOrder {
    /// A detector with no edges yet.
    pub fn new() -> Self {
        LockOrder::default()
    }

    /// The lock-order graph so far, one edge per order of two classes, in no particular order:
    /// `(from, to, count, held_at, taken_at)`, `count` times a lock of class `to` was taken
    /// while one of `from` was held; the sites are those of the first time (where the held
    /// lock was acquired, where the other was).
    pub fn order_edges(
        &self,
    ) -> impl Iterator<Item = (ClassId, ClassId, u64, SiteId, SiteId)> + '_ {
        self.index.values().filter_map(|hot| {
            let edge = self.edges.get(hot.ix as usize)?;
            let first = edge.witnesses.first()?;
            Some((edge.from, edge.to, hot.count, first.held.site, first.site))
        })
    }

    /// Notes the acquisition `event` made while holding `holds` (not empty): an edge from each
    /// held lock of another class. Out of line, so that [`on_event`](Detector::on_event) needs
    /// no stack frame to return from the many acquisitions made while holding nothing.
    #[inline(never)]
    fn observe(&mut self, trace: &Trace, holds: &[Hold], event: &Event) {
        let EventKind::LockAcquired { lock, mode, site, .. } = event.kind else {
            // `on_event` passes acquisitions only.
            return;
        };
        let class = trace.lock_class(lock);
        let taken = Taken {
            actor: Actor::of(event),
            thread: event.thread,
            lock,
            class,
            mode,
            site,
            time_ns: event.time_ns,
        };
        for position in 0..holds.len() {
            let (gates_before, held_on) = holds.split_at(position);
            let held = &held_on[0];
            let from = trace.lock_class(held.lock);
            // Nested locks of one class (per-object locks) are not ordered.
            if held.lock == lock || from == class {
                continue;
            }
            let key = (u64::from(from.0) << 32) | u64::from(class.0);
            if let Some(hot) = self.index.get_mut(&key) {
                hot.count += 1;
                // Most often the order is known well and there is nothing left to learn (the
                // modes seen only matter while witnesses are still wanted).
                if !hot.full || hot.gated {
                    hot.learn(&mut self.edges, held, gates_before, &taken);
                }
            } else {
                self.add_edge(key, held, gates_before, from, &taken);
            }
        }
    }

    /// Adds the edge `key`, `from → taken.class`, first seen with `taken` while holding
    /// `held`, taken after `gates_before`.
    #[cold]
    #[inline(never)]
    fn add_edge(
        &mut self,
        key: u64,
        held: &Hold,
        gates_before: &[Hold],
        from: ClassId,
        taken: &Taken,
    ) {
        let gates: Vec<LockId> = gates_before
            .iter()
            .filter(|g| g.mode == LockMode::Exclusive && g.lock != taken.lock)
            .map(|g| g.lock)
            .collect();
        let gated = !gates.is_empty();
        let ix = self.edges.len() as u32;
        self.edges.push(Edge { from, to: taken.class, witnesses: Vec::new(), gates });
        let hot = self.index.entry(key).or_insert(EdgeHot {
            ix,
            modes_seen: 0,
            full: false,
            gated,
            first_actor: taken.actor,
            count: 1,
        });
        hot.learn(&mut self.edges, held, gates_before, taken);
    }

    /// Chooses one witness per edge of `cycle`: from pairwise different actors and, if
    /// `modes` is set, with conflicting modes at every lock. `None` if there is no such
    /// choice (within a bounded search).
    fn assign(&self, cycle: &[usize], modes: bool) -> Option<Vec<Witness>> {
        let mut chosen: Vec<Witness> = Vec::with_capacity(cycle.len());
        let mut steps = 0;
        if self.search(cycle, modes, &mut chosen, &mut steps) {
            Some(chosen)
        } else {
            None
        }
    }

    fn search(
        &self,
        cycle: &[usize],
        modes: bool,
        chosen: &mut Vec<Witness>,
        steps: &mut usize,
    ) -> bool {
        let depth = chosen.len();
        if depth == cycle.len() {
            return !modes || conflicts(chosen[depth - 1].mode, chosen[0].held.mode);
        }
        for w in &self.edges[cycle[depth]].witnesses {
            *steps += 1;
            if *steps > MAX_ASSIGNMENT_STEPS {
                return false;
            }
            if chosen.iter().any(|c| c.actor == w.actor) {
                continue;
            }
            if modes && depth > 0 && !conflicts(chosen[depth - 1].mode, w.held.mode) {
                continue;
            }
            chosen.push(*w);
            if self.search(cycle, modes, chosen, steps) {
                return true;
            }
            chosen.pop();
        }
        false
    }

    /// The finding for one cycle of edges.
    fn finding(&self, cx: &Context<'_>, cycle: &[usize]) -> Finding {
        let (severity, reason, witnesses) = match self.assign(cycle, true) {
            Some(witnesses) => {
                let gates = self.common_gates(cycle);
                match gates.first() {
                    Some(&gate) => (
                        Severity::Info,
                        Some(format!(
                            "every edge was taken while holding `{}`, which keeps the two \
                             orders from overlapping",
                            cx.trace.lock_name(gate)
                        )),
                        witnesses,
                    ),
                    None => (Severity::Error, None, witnesses),
                }
            }
            None => {
                let first: Vec<Witness> =
                    cycle.iter().map(|&e| self.edges[e].witnesses[0]).collect();
                let reason = if self.assign(cycle, false).is_none() {
                    "its orders were all taken by one thread or task, which cannot wait for \
                     itself (another thread doing the same would deadlock)"
                } else {
                    "its locks are held and requested in shared (read) mode only where the \
                     orders meet, and readers do not block each other"
                };
                (Severity::Info, Some(reason.to_owned()), first)
            }
        };
        // Tell the story from the earliest edge on.
        let start = (0..cycle.len()).min_by_key(|&i| (witnesses[i].time_ns, i)).unwrap_or_default();
        let order: Vec<usize> = (0..cycle.len()).map(|i| (start + i) % cycle.len()).collect();

        let classes: Vec<String> = order
            .iter()
            .map(|&i| cx.trace.class_name(self.edges[cycle[i]].from).to_owned())
            .collect();
        let names = quote_list(&classes);
        let title = match (cycle.len(), severity) {
            (2, Severity::Error) => format!("locks {names} are taken in opposite orders"),
            (_, Severity::Error) => format!("locks {names} are taken in a cyclic order"),
            (2, _) => format!("locks {names} are taken in opposite orders, but cannot deadlock"),
            _ => format!("locks {names} are taken in a cyclic order, but cannot deadlock"),
        };
        let mut finding = Finding::new(FindingKind::LockOrderCycle, severity, title);
        finding.locks = classes.clone();
        let mut edges = Vec::with_capacity(cycle.len());
        for &i in &order {
            let edge = &self.edges[cycle[i]];
            let w = witnesses[i];
            cx.add_actor(&mut finding, w.actor, w.thread);
            finding.sites.push(cx.site_ref(w.held.site, "held"));
            finding.sites.push(cx.site_ref(w.site, "acquired"));
            finding.time_ns = finding.time_ns.max(w.time_ns);
            let from = cx.trace.class_name(edge.from).to_owned();
            let to = cx.trace.class_name(edge.to).to_owned();
            let from_lock = cx.trace.lock_name(w.held.lock);
            let to_lock = cx.trace.lock_name(w.lock);
            let held_at = cx.trace.site_text(w.held.site);
            let acquired_at = cx.trace.site_text(w.site);
            finding.evidence.push(format!(
                "{} holds `{}`{} (acquired at {}) and takes `{}`{} at {}, t={}",
                w.actor.describe(cx.trace),
                from,
                instance_note(&from, &from_lock),
                held_at,
                to,
                instance_note(&to, &to_lock),
                acquired_at,
                format_ns(w.time_ns),
            ));
            edges.push(CycleEdge {
                from,
                to,
                from_lock,
                to_lock,
                thread: cx.trace.thread_name(w.thread),
                task: match w.actor {
                    Actor::Task(t) => Some(cx.trace.task_name(t)),
                    Actor::Thread(_) => None,
                },
                held_at,
                acquired_at,
                held_mode: mode_name(w.held.mode).to_owned(),
                mode: mode_name(w.mode).to_owned(),
                held_since_ns: w.held.since_ns,
                time_ns: w.time_ns,
                count: self.counts.get(cycle[i]).copied().unwrap_or(0),
            });
        }
        match &reason {
            Some(reason) => finding.evidence.push(format!("not an error: {reason}")),
            None => {
                finding.evidence.push(
                    "whenever these acquisitions overlap in time, each waits for a lock the \
                     next one holds, and none can go on: a deadlock"
                        .to_owned(),
                );
                let order_hint = classes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>();
                finding.help = Some(format!(
                    "take these locks in one global order everywhere (for example always {}), \
                     or take them only while holding one common outer lock",
                    order_hint.join(" before "),
                ));
            }
        }
        finding.detail = Detail::LockOrderCycle(CycleDetail { edges, reason });
        finding
    }

    /// Gate locks common to every edge of the cycle.
    fn common_gates(&self, cycle: &[usize]) -> Vec<LockId> {
        let mut gates = self.edges[cycle[0]].gates.clone();
        for &e in &cycle[1..] {
            gates.retain(|g| self.edges[e].gates.contains(g));
        }
        gates
    }
}

impl Detector for LockOrder {
    fn kind(&self) -> FindingKind {
        FindingKind::LockOrderCycle
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_ACQUIRED
    }

    #[inline]
    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let EventKind::LockAcquired { via_try: false, .. } = event.kind else {
            return;
        };
        let actor = Actor::of(event);
        let holds = cx.state.holds(actor);
        if holds.is_empty() {
            return;
        }
        self.observe(cx.trace, holds, event);
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        self.counts = vec![0; self.edges.len()];
        for hot in self.index.values() {
            if let Some(count) = self.counts.get_mut(hot.ix as usize) {
                *count = hot.count;
            }
        }
        let mut graph: DiGraph<ClassId, usize> = DiGraph::new();
        let mut nodes = HashMap::new();
        // Nodes in class order, so that cycles come out in a stable order.
        let mut edges: Vec<usize> = (0..self.edges.len()).collect();
        edges.sort_by_key(|&e| (self.edges[e].from, self.edges[e].to));
        let mut classes: Vec<ClassId> =
            self.edges.iter().flat_map(|e| [e.from, e.to]).collect::<Vec<_>>();
        classes.sort();
        classes.dedup();
        for class in classes {
            nodes.insert(class, graph.add_node(class));
        }
        let mut by_pair = HashMap::new();
        for e in edges {
            let edge = &self.edges[e];
            let (a, b) = (nodes[&edge.from], nodes[&edge.to]);
            graph.add_edge(a, b, e);
            by_pair.insert((a, b), e);
        }
        let (cycles, cut) = elementary_cycles(&graph, BOUNDS);
        for cycle in &cycles {
            let edge_ixs: Vec<usize> = (0..cycle.len())
                .map(|i| by_pair[&(cycle[i], cycle[(i + 1) % cycle.len()])])
                .collect();
            findings.push(self.finding(cx, &edge_ixs));
        }
        if cut {
            let mut note = Finding::new(
                FindingKind::LockOrderCycle,
                Severity::Info,
                format!("the lock-order graph has more cycles than the {} listed", cycles.len()),
            );
            note.evidence.push(format!(
                "cycle enumeration stops after {MAX_CYCLES} cycles or cycles longer than {}",
                BOUNDS.max_len
            ));
            findings.push(note);
        }
    }
}

/// ``" (instance `x`)"`` when a lock's instance name tells more than its class name.
fn instance_note(class: &str, instance: &str) -> String {
    if class == instance {
        String::new()
    } else {
        format!(" (instance `{instance}`)")
    }
}

/// `` `a` and `b` `` or `` `a`, `b` and `c` ``.
fn quote_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// Whether a wait in mode `wanted` is blocked by a hold in mode `held`.
fn conflicts(wanted: LockMode, held: LockMode) -> bool {
    wanted == LockMode::Exclusive || held == LockMode::Exclusive
}

fn mode_bit(held: LockMode, taken: LockMode) -> u8 {
    2 * u8::from(held == LockMode::Shared) + u8::from(taken == LockMode::Shared)
}

/// A hasher for the detector's packed `(from, to)` class pairs: one multiply, no allocation.
#[derive(Debug, Default, Clone, Copy)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (n ^ (n >> 33)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}
