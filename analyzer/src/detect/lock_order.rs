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
use crate::predict::{self, Outcome, Prediction, Predictions, Targets, Wanted};
use crate::prefetch::prefetch_entry;
use crate::replay::{Actor, Hold, Replay};
use crate::report::{format_ns, CycleDetail, CycleEdge, Detail, Finding, FindingKind, Severity};
use crate::trace::{ClassId, Trace};
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId, ThreadId};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Witnesses kept per edge.
const MAX_WITNESSES: usize = 3;

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

impl Witness {
    /// The acquisition `event` made while holding `held` (`None` for another kind of event).
    /// Made only when an edge is added or learns something: most occurrences need none of it.
    fn of(event: &Event, held: &Hold) -> Option<Witness> {
        let EventKind::LockAcquired { lock, mode, site, .. } = event.kind else {
            return None;
        };
        Some(Witness {
            actor: Actor::of(event),
            thread: event.thread,
            held: *held,
            lock,
            mode,
            site,
            time_ns: event.time_ns,
        })
    }
}

/// The witnesses of an edge, up to [`MAX_WITNESSES`], kept in the edge: a `Vec` per edge
/// cost an allocation and a pointer to chase for at most three entries, and a trace of
/// 100,000 locks has nearly a million edges, each learning from most of its few occurrences.
/// Reads as a slice.
#[derive(Debug, Clone, Copy)]
struct Witnesses {
    len: u8,
    /// The witnesses, then copies of the first witness made, as filler.
    slots: [Witness; MAX_WITNESSES],
}

impl Witnesses {
    /// None yet; `filler` fills the room.
    fn new(filler: Witness) -> Self {
        Witnesses { len: 0, slots: [filler; MAX_WITNESSES] }
    }

    /// Adds `witness`, if there is room.
    fn push(&mut self, witness: Witness) {
        if let Some(slot) = self.slots.get_mut(usize::from(self.len)) {
            *slot = witness;
            self.len += 1;
        }
    }
}

impl std::ops::Deref for Witnesses {
    type Target = [Witness];

    fn deref(&self) -> &[Witness] {
        &self.slots[..usize::from(self.len)]
    }
}

/// Everything known about one order `from → to` of two lock classes.
#[derive(Debug, Clone)]
struct Edge {
    from: ClassId,
    to: ClassId,
    witnesses: Witnesses,
    /// Locks held exclusively, before the held lock, at every occurrence.
    gates: Vec<LockId>,
}

/// What an occurrence of an edge updates while the edge [learns](EdgeHot::learns) (and every
/// occurrence of an edge past its class's [`Outgoing`] line), apart from the rest of the
/// [`Edge`]: in [`LockOrder::hot`], by edge index.
#[derive(Debug, Clone, Copy)]
struct EdgeHot {
    /// Bit `2·shared(held) + shared(taken)` per combination of modes seen.
    modes_seen: u8,
    /// The edge has as many witnesses as it keeps.
    full: bool,
    /// The edge still has gate candidates.
    gated: bool,
    /// Who took this order first (a witness already).
    first_actor: Actor,
    /// The [`actor_bit`]s of the witnesses' actors: an actor whose bit is clear has none, which
    /// the witnesses need not be read to tell.
    witnessed: u64,
    /// Occurrences counted here (the edge's [`Outgoing`] slot, if it has one, counts the
    /// others).
    count: u64,
}

impl EdgeHot {
    /// Occurrences may still tell something new about the edge: witnesses are wanted (the
    /// modes seen only matter while they are), or gates are left to rule out. Once it is not,
    /// it never is again.
    fn learns(&self) -> bool {
        !self.full || self.gated
    }

    /// Updates the edge, `edge`, with an occurrence that may tell something new about it:
    /// `taken`, made after `gates_before`. Out of line: most occurrences of a known order
    /// need none of it.
    #[inline(never)]
    fn learn(&mut self, edge: &mut Edge, gates_before: &[Hold], taken: &Witness) {
        let modes = 1u8 << mode_bit(taken.held.mode, taken.mode);
        let new_modes = self.modes_seen & modes == 0;
        self.modes_seen |= modes;
        let maybe_new_witness = !self.full && (new_modes || taken.actor != self.first_actor);
        if !maybe_new_witness && !self.gated {
            return;
        }
        if self.gated {
            edge.gates.retain(|g| {
                gates_before.iter().any(|h| h.lock == *g && h.mode == LockMode::Exclusive)
            });
            self.gated = !edge.gates.is_empty();
        }
        let actor = actor_bit(taken.actor);
        if maybe_new_witness
            && (new_modes
                || self.witnessed & actor == 0
                || edge.witnesses.iter().all(|x| x.actor != taken.actor))
        {
            self.witnessed |= actor;
            edge.witnesses.push(*taken);
            self.full = edge.witnesses.len() >= MAX_WITNESSES;
        }
    }
}

/// Edges from one class kept in its [`Outgoing`] line; the class's further edges are found
/// in [`LockOrder::more`].
const NEAR: usize = 8;

/// Past this many classes (with edges out), an acquisition also fetches where its class's
/// edges are (see [`LockOrder::outgoing_ix`]): the tables outgrow the caches.
const MANY_CLASSES: usize = 16_384;

/// The first [`NEAR`] edges from one class, in the order added, in one cache line: the class
/// each leads to, and its occurrences since it stopped learning. Finding an edge is a scan of
/// the line (where a map hashes and probes a table larger than the CPU's nearest caches), and
/// the common occurrence, of an order known well with nothing left to learn, is counted in
/// it and touches nothing else.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Outgoing {
    /// Per edge, the class it leads to (its id).
    to: [u32; NEAR],
    /// Per edge: 0 while it [learns](EdgeHot::learns) (its [`EdgeHot`] counts its
    /// occurrences), then 1 plus the occurrences counted here (moved to the [`EdgeHot`] before
    /// they would overflow).
    counts: [u16; NEAR],
    /// Edges in the line.
    len: u8,
}

impl Outgoing {
    /// The slot of the edge to `class`, if it is in the line.
    #[inline(always)]
    fn find(&self, class: ClassId) -> Option<usize> {
        let to = self.to.get(..usize::from(self.len))?;
        to.iter().position(|&to| to == class.0)
    }

    /// The occurrences of the edge in `slot` counted in the line.
    fn counted(&self, slot: usize) -> u64 {
        u64::from(self.counts[slot].saturating_sub(1))
    }
}

/// The `lock-order-cycle` detector; see the module docs.
#[derive(Debug, Default)]
pub struct LockOrder {
    /// Per class (by id), the first edges from it.
    outgoing: Vec<Outgoing>,
    /// Per class, the indices of the edges in its [`Outgoing`] line, slot for slot: apart from
    /// the line, since only the occurrences that learn need them.
    outgoing_ix: Vec<[u32; NEAR]>,
    /// The index of every further edge, by `(from, to)` packed in a `u64`.
    more: HashMap<u64, u32, BuildHasherDefault<PairHasher>>,
    edges: Vec<Edge>,
    /// Per edge, by index as [`edges`](Self::edges).
    hot: Vec<EdgeHot>,
    /// Per class (by id), whether one of its locks was taken while holding another of it.
    nested: Vec<bool>,
    /// Per class (by id), whether one of its locks was held while waiting for a thread or
    /// task to finish.
    held_at_join: Vec<bool>,
    /// What the second reading of the trace found, once it has run.
    predictions: Option<Predictions>,
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
        self.edges.iter().enumerate().filter_map(|(ix, edge)| {
            let first = edge.witnesses.first()?;
            Some((edge.from, edge.to, self.count(ix), first.held.site, first.site))
        })
    }

    /// The occurrences of the edge `ix`.
    fn count(&self, ix: usize) -> u64 {
        let edge = &self.edges[ix];
        let outgoing = self.outgoing.get(edge.from.index());
        let near = outgoing.and_then(|outgoing| Some(outgoing.counted(outgoing.find(edge.to)?)));
        self.hot[ix].count + near.unwrap_or(0)
    }

    /// Notes the acquisition `event` made while holding `holds` (not empty): an edge from each
    /// held lock of another class. Out of line, so that [`on_event`](Detector::on_event) needs
    /// no stack frame to return from the many acquisitions made while holding nothing.
    #[inline(never)]
    fn observe(&mut self, trace: &Trace, holds: &[Hold], event: &Event) {
        let EventKind::LockAcquired { lock, .. } = event.kind else {
            // `on_event` passes acquisitions only.
            return;
        };
        let class = trace.lock_class(lock);
        for position in 0..holds.len() {
            let (gates_before, held_on) = holds.split_at(position);
            let held = &held_on[0];
            let from = trace.lock_class(held.lock);
            // Nested locks of one class (per-object locks) are no edge of the class graph;
            // prediction looks at their instances.
            if held.lock == lock {
                continue;
            }
            if from == class {
                mark(&mut self.nested, class);
                continue;
            }
            let Some(outgoing) = self.outgoing.get_mut(from.index()) else {
                self.add_edge(held, gates_before, from, event, class);
                continue;
            };
            if let Some(slot) = outgoing.find(class) {
                let count = &mut outgoing.counts[slot];
                // Most often the order is known well, with nothing left to learn.
                if (1..u16::MAX).contains(count) {
                    *count += 1;
                } else {
                    self.occurred_near(from, slot, held, gates_before, event);
                }
            } else if let Some(&ix) = self.more.get(&pair(from, class)) {
                self.occurred(ix as usize, held, gates_before, event);
            } else {
                self.add_edge(held, gates_before, from, event, class);
            }
        }
    }

    /// Counts an occurrence of the edge in `slot` of the [`Outgoing`] line of `from` that
    /// the line does not count: one while the edge learns, or one that would overflow the
    /// line's count.
    #[cold]
    #[inline(never)]
    fn occurred_near(
        &mut self,
        from: ClassId,
        slot: usize,
        held: &Hold,
        gates_before: &[Hold],
        event: &Event,
    ) {
        let ix = self.outgoing_ix[from.index()][slot] as usize;
        let count = self.outgoing[from.index()].counts[slot];
        let learns = if count == 0 {
            self.occurred(ix, held, gates_before, event)
        } else {
            // This occurrence and the line's `count - 1`.
            self.hot[ix].count += u64::from(count);
            false
        };
        self.outgoing[from.index()].counts[slot] = u16::from(!learns);
    }

    /// Counts an occurrence of the edge `ix` in its [`EdgeHot`], learning from it what there
    /// is to learn; whether the edge still [learns](EdgeHot::learns).
    fn occurred(&mut self, ix: usize, held: &Hold, gates_before: &[Hold], event: &Event) -> bool {
        let hot = &mut self.hot[ix];
        hot.count += 1;
        if hot.learns() {
            if let Some(taken) = Witness::of(event, held) {
                hot.learn(&mut self.edges[ix], gates_before, &taken);
            }
        }
        hot.learns()
    }

    /// Adds the edge `from → class`, first seen with the acquisition `event` while holding
    /// `held`, taken after `gates_before`.
    #[cold]
    #[inline(never)]
    fn add_edge(
        &mut self,
        held: &Hold,
        gates_before: &[Hold],
        from: ClassId,
        event: &Event,
        class: ClassId,
    ) {
        let Some(taken) = Witness::of(event, held) else {
            return;
        };
        let gates: Vec<LockId> = gates_before
            .iter()
            .filter(|g| g.mode == LockMode::Exclusive && g.lock != taken.lock)
            .map(|g| g.lock)
            .collect();
        let gated = !gates.is_empty();
        let mut edge = Edge { from, to: class, witnesses: Witnesses::new(taken), gates };
        let mut hot = EdgeHot {
            modes_seen: 0,
            full: false,
            gated,
            first_actor: taken.actor,
            witnessed: 0,
            count: 1,
        };
        hot.learn(&mut edge, gates_before, &taken);
        let ix = self.edges.len();
        self.edges.push(edge);
        self.hot.push(hot);
        if from.index() >= self.outgoing.len() {
            self.outgoing.resize(from.index() + 1, Outgoing::default());
            self.outgoing_ix.resize(from.index() + 1, [0; NEAR]);
        }
        let outgoing = &mut self.outgoing[from.index()];
        let slot = usize::from(outgoing.len);
        if slot < NEAR {
            outgoing.to[slot] = class.0;
            outgoing.counts[slot] = u16::from(!hot.learns());
            outgoing.len += 1;
            self.outgoing_ix[from.index()][slot] = ix as u32;
        } else {
            self.more.insert(pair(from, class), ix as u32);
        }
    }

    /// Notes a wait for another actor to finish: the locks its actor holds meanwhile are
    /// part of deadlock patterns.
    #[cold]
    fn on_join(&mut self, cx: &Context<'_>, event: &Event) {
        for held in cx.state.holds(Actor::of(event)) {
            mark(&mut self.held_at_join, cx.trace.lock_class(held.lock));
        }
    }

    /// The lock classes whose instances prediction must look at: those on a cycle of the
    /// class graph, those with locks nested in another of their own class, and those held
    /// at a join together with every class that leads to one. `None` when there are none.
    pub fn targets(&self) -> Option<Targets> {
        let classes = self.edges.iter().flat_map(|e| [e.from.index(), e.to.index()]);
        let len = classes.chain([self.nested.len(), self.held_at_join.len()]).max().unwrap_or(0);
        let len = len.max(self.nested.len()).max(self.held_at_join.len()) + 1;
        let mut targets = Targets { classes: vec![false; len] };
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<_> = (0..len).map(|c| graph.add_node(c)).collect();
        for edge in &self.edges {
            graph.add_edge(nodes[edge.from.index()], nodes[edge.to.index()], ());
        }
        for scc in tarjan_scc(&graph) {
            if scc.len() > 1 {
                for n in scc {
                    targets.classes[graph[n]] = true;
                }
            }
        }
        for (class, &nested) in self.nested.iter().enumerate() {
            targets.classes[class] |= nested;
        }
        // Classes that lead (through the class graph) to one held at a join.
        let mut stack: Vec<usize> =
            (0..self.held_at_join.len()).filter(|&c| self.held_at_join[c]).collect();
        let mut seen: HashSet<usize> = stack.iter().copied().collect();
        while let Some(class) = stack.pop() {
            targets.classes[class] = true;
            for n in graph.neighbors_directed(nodes[class], Direction::Incoming) {
                if seen.insert(graph[n]) {
                    stack.push(graph[n]);
                }
            }
        }
        (!targets.is_empty()).then_some(targets)
    }

    /// Reads the same traces again from the start (`reopen` opens them) to check the cycles
    /// found for witnesses (see [`predict`]), if there are any: lock-order cycles are errors
    /// only where a pattern was witnessed. Without it, none is.
    pub fn check_cycles<E>(&mut self, reopen: impl FnOnce() -> Result<Replay, E>) -> Result<(), E> {
        if let Some(targets) = self.targets() {
            self.predictions = Some(predict::predict(reopen()?, &targets));
        }
        Ok(())
    }

    /// What the second reading of the trace found, if it ran.
    pub fn predictions(&self) -> Option<&Predictions> {
        self.predictions.as_ref()
    }

    /// How often a lock of class `to` was taken while one of `from` was held.
    fn occurrences(&self, from: ClassId, to: ClassId) -> u64 {
        let near = self.outgoing.get(from.index()).and_then(|line| {
            let slot = line.find(to)?;
            Some(self.outgoing_ix[from.index()][slot])
        });
        near.or_else(|| self.more.get(&pair(from, to)).copied())
            .map_or(0, |ix| self.count(ix as usize))
    }

    /// The prediction of the class cycle of `edge_ixs`, if the second reading checked one.
    fn prediction_of(&self, edge_ixs: &[usize]) -> Option<&Prediction> {
        let key = predict::normalize(edge_ixs.iter().map(|&e| Some(self.edges[e].from)).collect());
        self.predictions.as_ref()?.cycles.get(&key)
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
        for w in self.edges[cycle[depth]].witnesses.iter() {
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
                    // Different actors took the orders, but never on the same locks: the
                    // second reading found no pattern over instances.
                    None if self.predictions.is_some() => (
                        Severity::Warning,
                        Some(
                            "the cycle is only between lock classes: the orders were taken on \
                             different locks of these classes, never closing a cycle over the \
                             same locks; code that takes one pair both ways can deadlock"
                                .to_owned(),
                        ),
                        witnesses,
                    ),
                    None => (
                        Severity::Warning,
                        Some(
                            "not witnessed: the trace was not read again to build a schedule"
                                .to_owned(),
                        ),
                        witnesses,
                    ),
                }
            }
            None => {
                let first: Vec<Witness> =
                    cycle.iter().map(|&e| self.edges[e].witnesses[0]).collect();
                let reason = if self.assign(cycle, false).is_some() {
                    "its locks are held and requested in shared (read) mode only where the \
                     orders meet, and readers do not block each other"
                        .to_owned()
                } else {
                    let mut actors: Vec<Actor> = cycle
                        .iter()
                        .flat_map(|&e| self.edges[e].witnesses.iter().map(|w| w.actor))
                        .collect();
                    actors.sort();
                    actors.dedup();
                    if actors.len() <= 1 {
                        "its orders were all taken by one thread or task, which cannot wait for \
                         itself (another thread doing the same would deadlock)"
                            .to_owned()
                    } else {
                        format!(
                            "only {} threads or tasks take its orders, and closing a cycle of {} \
                             locks needs {} different ones",
                            actors.len(),
                            cycle.len(),
                            cycle.len()
                        )
                    }
                };
                (Severity::Info, Some(reason), first)
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
            (2, Severity::Warning) => {
                format!("locks {names} are taken in opposite orders (not proved to deadlock)")
            }
            (_, Severity::Warning) => {
                format!("locks {names} are taken in a cyclic order (not proved to deadlock)")
            }
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
            let (held_lock, taken_lock) = (cx.trace.lock(w.held.lock), cx.trace.lock(w.lock));
            let held_role = held_lock.site_role(cx.trace, w.held.site, "held");
            finding.sites.push(cx.site_ref(w.held.site, held_role));
            let taken_role = taken_lock.site_role(cx.trace, w.site, "acquired");
            finding.sites.push(cx.site_ref(w.site, taken_role));
            finding.time_ns = finding.time_ns.max(w.time_ns);
            let from = cx.trace.class_name(edge.from).to_owned();
            let to = cx.trace.class_name(edge.to).to_owned();
            let from_lock = cx.trace.lock_name(w.held.lock);
            let to_lock = cx.trace.lock_name(w.lock);
            let held_at = held_lock.did_at(cx.trace, w.held.site, "acquired");
            let acquired_at = taken_lock.at_site(cx.trace, w.site);
            finding.evidence.push(format!(
                "{} holds `{}`{} ({}) and takes `{}`{} {}, t={}",
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
                count: self.count(cycle[i]),
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
        finding.detail = Detail::LockOrderCycle(CycleDetail { edges, reason, witness: Vec::new() });
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
            | Interest::THREAD_JOIN_REQUESTED
            | Interest::TASK_JOIN_REQUESTED
            | Interest::THREAD_JOINED
            | Interest::TASK_JOINED
    }

    #[inline]
    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let EventKind::LockAcquired { lock, via_try: false, .. } = event.kind else {
            if !matches!(event.kind, EventKind::LockAcquired { .. }) {
                self.on_join(cx, event);
            }
            return;
        };
        // A lock just taken is often held while the actor takes another one, a few events
        // on, which then scans this lock's line of edges: fetch it now, so that the scan does
        // not wait for it (a thousand classes' lines fill the first-level cache).
        let class = cx.trace.lock_class(lock).index();
        prefetch_entry(&self.outgoing, class);
        if self.outgoing.len() > MANY_CLASSES {
            // And where its edges are, for an occurrence that learns: with many classes, most
            // edges are new for most of the trace, and learn from most of their occurrences.
            prefetch_entry(&self.outgoing_ix, class);
        }
        let actor = Actor::of(event);
        let holds = cx.state.holds(actor);
        if holds.is_empty() {
            return;
        }
        self.observe(cx.trace, holds, event);
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        // (Sized for the edges up front, and indexed by class id rather than hashed: a trace
        // of 100,000 locks has nearly a million edges.)
        let mut graph: DiGraph<ClassId, usize> =
            DiGraph::with_capacity(self.outgoing.len(), self.edges.len());
        // Nodes and edges in class order, so that cycles come out in a stable order. (The
        // edges' classes sorted side by side, with their index: sorting indices by the edges'
        // fields would read a scattered edge at every comparison.)
        let mut edges: Vec<(ClassId, ClassId, usize)> =
            self.edges.iter().enumerate().map(|(e, edge)| (edge.from, edge.to, e)).collect();
        edges.sort_unstable();
        let mut in_graph = Vec::new();
        for &(from, to, _) in &edges {
            mark(&mut in_graph, from);
            mark(&mut in_graph, to);
        }
        let nodes: Vec<Option<NodeIndex>> = in_graph
            .iter()
            .enumerate()
            .map(|(class, &in_graph)| in_graph.then(|| graph.add_node(ClassId(class as u32))))
            .collect();
        for (from, to, e) in edges {
            if let (Some(a), Some(b)) = (nodes[from.index()], nodes[to.index()]) {
                graph.add_edge(a, b, e);
            }
        }
        let (cycles, cut) = elementary_cycles(&graph, BOUNDS);
        let mut predicted: HashSet<predict::CycleKey> = HashSet::new();
        for cycle in &cycles {
            // (The graph has one edge per pair of classes, in a class's few out-edges.)
            let edge_ixs: Option<Vec<usize>> = (0..cycle.len())
                .map(|i| graph.find_edge(cycle[i], cycle[(i + 1) % cycle.len()]).map(|e| graph[e]))
                .collect();
            let Some(edge_ixs) = edge_ixs else {
                continue;
            };
            match self.prediction_of(&edge_ixs) {
                Some(prediction) => {
                    findings.push(predicted_finding(cx, prediction, &|from, to| {
                        self.occurrences(from, to)
                    }));
                    let key = edge_ixs.iter().map(|&e| Some(self.edges[e].from)).collect();
                    predicted.insert(predict::normalize(key));
                }
                None => findings.push(self.finding(cx, &edge_ixs)),
            }
        }
        if let Some(predictions) = &self.predictions {
            // Cycles over instances that the class graph does not show: between locks of
            // one class, or through a join.
            let mut rest: Vec<_> =
                predictions.cycles.iter().filter(|(key, _)| !predicted.contains(*key)).collect();
            rest.sort_by(|a, b| a.0.cmp(b.0));
            for (_, prediction) in rest {
                findings.push(predicted_finding(cx, prediction, &|from, to| {
                    self.occurrences(from, to)
                }));
            }
            if predictions.unchecked > 0 {
                let mut note = Finding::new(
                    FindingKind::LockOrderCycle,
                    Severity::Info,
                    format!(
                        "{} cycles over lock instances were left unchecked ({} patterns checked)",
                        predictions.unchecked, predictions.patterns
                    ),
                );
                note.evidence.push(
                    "prediction bounds its work per window of the trace; the patterns beyond \
                     the bound may hide deadlocks"
                        .to_owned(),
                );
                findings.push(note);
            }
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

/// Sets `flags[class]`, growing `flags` as needed.
fn mark(flags: &mut Vec<bool>, class: ClassId) {
    if flags.len() <= class.index() {
        flags.resize(class.index() + 1, false);
    }
    flags[class.index()] = true;
}

/// The finding for a cycle that prediction checked: an error with its witness, or lower with
/// the reason it gives.
/// (`occurrences(from, to)` counts an order of two classes in the whole trace.)
fn predicted_finding(
    cx: &Context<'_>,
    prediction: &Prediction,
    occurrences: &dyn Fn(ClassId, ClassId) -> u64,
) -> Finding {
    let verdict = &prediction.best;
    let trace = cx.trace;
    let k = verdict.nodes.len();
    // Two locks of one name (made at one line) are told apart by their ids.
    let lock_name =
        |lock: LockId| predict::instance_name(trace, verdict.nodes.iter().flatten().copied(), lock);
    let node_name = |i: usize| match verdict.nodes[i] {
        Some(lock) => lock_name(lock),
        None => format!("end of {}", verdict.items[i].actor.describe(trace)),
    };
    let (severity, reason) = match &verdict.outcome {
        Outcome::Witnessed(_) => (Severity::Error, None),
        Outcome::NotWitnessed => (
            Severity::Warning,
            Some(
                "not witnessed: no reordering that keeps every lock's critical sections in \
                 their recorded order deadlocks, and none of them is ruled out either"
                    .to_owned(),
            ),
        ),
        Outcome::Ordered(by) => (
            Severity::Warning,
            Some(format!(
                "ordered by {by}: in this run the orders cannot overlap, but they still \
                 conflict, and code that orders them differently can deadlock"
            )),
        ),
        Outcome::CommonLock { held, actors } => {
            let lock = lock_name(held[0].lock);
            let inside = held
                .iter()
                .zip(actors)
                .find_map(|(h, &i)| Some((h.inherited_from?, &verdict.items[i])));
            (
                Severity::Info,
                Some(match inside {
                    Some((parent, item)) => format!(
                        "{} runs only inside its parent {}'s hold of `{lock}` (spawned and \
                         joined while holding it), so the two cannot overlap",
                        item.actor.describe(trace),
                        parent.describe(trace)
                    ),
                    None => format!("both hold `{lock}` when they ask, so the two cannot overlap"),
                }),
            )
        }
        Outcome::SharedOnly { lock, fair } => (
            Severity::Info,
            Some(if *fair {
                format!(
                    "read locks, and no writer queued on them: `{}` is held and requested in \
                     shared (read) mode where the orders meet, and readers do not block each \
                     other",
                    trace.lock_name(*lock)
                )
            } else {
                format!(
                    "read locks: `{}` is held and requested in shared (read) mode where the \
                     orders meet, readers do not block each other, and its implementation is \
                     not known to queue readers behind a waiting writer",
                    trace.lock_name(*lock)
                )
            }),
        ),
    };
    let names: Vec<String> = (0..k).map(node_name).collect();
    let quoted = quote_list(&names);
    let opposite = k == 2 && verdict.nodes.iter().all(Option::is_some);
    // Through a join: who waits for whom to finish, holding what.
    let join = (0..k).find(|&i| verdict.nodes[i].is_none()).map(|i| {
        let before = (i + k - 1) % k;
        let child = verdict.items[i].actor.describe(trace);
        let joiner = verdict.items[before].actor.describe(trace);
        let held = verdict.nodes[before].map_or_else(String::new, lock_name);
        (joiner, child, held)
    });
    let title = match (&join, opposite, severity) {
        (Some((joiner, child, held)), _, _) => {
            let through: Vec<String> = verdict
                .nodes
                .iter()
                .flatten()
                .map(|&l| lock_name(l))
                .filter(|name| name != held)
                .collect();
            let needs = if through.is_empty() {
                format!("which {child} needs")
            } else {
                format!("which {child} needs through {}", quote_list(&through))
            };
            let verdict = match severity {
                Severity::Error => "",
                Severity::Warning => " (not proved to deadlock)",
                _ => ", but they cannot deadlock",
            };
            format!("{joiner} waits for {child} to finish while holding `{held}`, {needs}{verdict}")
        }
        (None, true, Severity::Error) => format!("locks {quoted} are taken in opposite orders"),
        (None, false, Severity::Error) => format!("locks {quoted} are taken in a cyclic order"),
        (None, true, Severity::Warning) => {
            format!("locks {quoted} are taken in opposite orders (not proved to deadlock)")
        }
        (None, false, Severity::Warning) => {
            format!("locks {quoted} are taken in a cyclic order (not proved to deadlock)")
        }
        (None, true, _) => {
            format!("locks {quoted} are taken in opposite orders, but cannot deadlock")
        }
        (None, false, _) => {
            format!("locks {quoted} are taken in a cyclic order, but cannot deadlock")
        }
    };
    let mut finding = Finding::new(FindingKind::LockOrderCycle, severity, title);
    finding.locks = verdict
        .nodes
        .iter()
        .flatten()
        .map(|&l| trace.class_name(trace.lock_class(l)).to_owned())
        .collect();
    let mut edges = Vec::with_capacity(k);
    for (i, item) in verdict.items.iter().enumerate() {
        cx.add_actor(&mut finding, item.actor, item.thread);
        finding.time_ns = finding.time_ns.max(item.time_ns);
        let asked_at =
            item.site.map_or_else(|| "an unknown site".to_owned(), |s| trace.site_text(s));
        let asks = match item.want {
            Wanted::Lock(lock, mode) => format!(
                "takes `{}`{} {}",
                lock_name(lock),
                if mode == LockMode::Shared { " to read" } else { "" },
                item.site.map_or_else(
                    || "at an unknown site".to_owned(),
                    |s| trace.lock(lock).at_site(trace, s)
                )
            ),
            Wanted::End(actor) => {
                format!("waits for {} to finish at {asked_at}", actor.describe(trace))
            }
        };
        let held = (i < k)
            .then(|| verdict.nodes[i])
            .flatten()
            .and_then(|lock| item.held.iter().find(|h| h.lock == lock));
        let holds = match held {
            Some(h) => {
                let lock = trace.lock(h.lock);
                let at = h.site.map_or_else(
                    || "acquired at an unknown site".to_owned(),
                    |s| lock.did_at(trace, s, "acquired"),
                );
                if let Some(site) = h.site {
                    finding.sites.push(cx.site_ref(site, lock.site_role(trace, site, "held")));
                }
                match h.inherited_from {
                    Some(parent) => format!(
                        "runs inside its parent {}'s hold of `{}` ({at}; the parent joins it \
                         before releasing) and ",
                        parent.describe(trace),
                        lock_name(h.lock)
                    ),
                    None => format!("holds `{}` ({at}) and ", lock_name(h.lock)),
                }
            }
            None if i >= k => "(a writer) ".to_owned(),
            None => String::new(),
        };
        if let Some(site) = item.site {
            let role = match item.want {
                Wanted::Lock(lock, _) => trace.lock(lock).site_role(trace, site, "acquired"),
                Wanted::End(_) => "joined",
            };
            finding.sites.push(cx.site_ref(site, role));
        }
        let times =
            if item.instances > 1 { format!(" ({} times)", item.instances) } else { String::new() };
        finding.evidence.push(format!(
            "{} {holds}{asks}{times}, t={}",
            item.actor.describe(trace),
            format_ns(item.time_ns)
        ));
        if i >= k {
            continue;
        }
        let (to, to_lock, mode) = match item.want {
            Wanted::Lock(lock, mode) => {
                (trace.class_name(trace.lock_class(lock)).to_owned(), lock_name(lock), mode)
            }
            Wanted::End(actor) => {
                let name = format!("end of {}", actor.describe(trace));
                (name.clone(), name, LockMode::Exclusive)
            }
        };
        let (from, from_lock) = match held {
            Some(h) => (trace.class_name(trace.lock_class(h.lock)).to_owned(), lock_name(h.lock)),
            None => (node_name(i), node_name(i)),
        };
        edges.push(CycleEdge {
            from,
            to,
            from_lock,
            to_lock,
            thread: trace.thread_name(item.thread),
            task: match item.actor {
                Actor::Task(t) => Some(trace.task_name(t)),
                Actor::Thread(_) => None,
            },
            held_at: held.and_then(|h| h.site).map_or_else(String::new, |s| trace.site_text(s)),
            acquired_at: asked_at,
            held_mode: mode_name(held.map_or(LockMode::Exclusive, |h| h.mode)).to_owned(),
            mode: mode_name(mode).to_owned(),
            held_since_ns: held.map_or(0, |h| h.time_ns),
            time_ns: item.time_ns,
            count: match (held, item.want) {
                // Orders within one class are no edge of the class graph: their instances.
                (Some(h), Wanted::Lock(lock, _)) => {
                    occurrences(trace.lock_class(h.lock), trace.lock_class(lock))
                        .max(item.instances as u64)
                }
                _ => item.instances as u64,
            },
        });
    }
    let witness = match &verdict.outcome {
        Outcome::Witnessed(steps) => steps.clone(),
        _ => Vec::new(),
    };
    if !witness.is_empty() {
        finding.evidence.push("a schedule that deadlocks (each actor's deciding step):".to_owned());
        for (n, step) in witness.iter().enumerate() {
            finding.evidence.push(format!("{}. {step}", n + 1));
        }
    }
    if prediction.patterns > 1 {
        finding.evidence.push(format!(
            "{} patterns over these locks were checked, {} witnessed",
            prediction.patterns, prediction.witnessed
        ));
    }
    match &reason {
        Some(reason) if severity == Severity::Info => {
            finding.evidence.push(format!("not an error: {reason}"));
        }
        Some(reason) => finding.evidence.push(format!("not proved: {reason}")),
        None => {}
    }
    if severity != Severity::Info {
        let order = names.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" before ");
        let joins = verdict.nodes.iter().any(Option::is_none)
            || verdict.items.iter().any(|i| i.held.iter().any(|h| h.inherited_from.is_some()));
        finding.help = Some(if let Some((_, child, held)) = &join {
            format!(
                "release `{held}` before waiting for {child} to finish, or let {child} do its \
                 work without `{held}`: a thread or task must not wait for another while \
                 holding a lock the other needs"
            )
        } else if joins {
            format!(
                "do not wait for a thread or task to finish while holding a lock it needs: \
                 release it before the join, or take the locks in one order ({order})"
            )
        } else {
            format!(
                "take these locks in one global order everywhere (for example always \
                 {order}), or take them only while holding one common outer lock"
            )
        });
    }
    finding.detail = Detail::LockOrderCycle(CycleDetail { edges, reason, witness });
    finding
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

/// One of 64 bits for `actor`, by its id (threads and tasks of nearby ids apart).
fn actor_bit(actor: Actor) -> u64 {
    let slot = match actor {
        Actor::Thread(thread) => thread.0,
        Actor::Task(task) => task.0 ^ 32,
    };
    1 << (slot % 64)
}

/// The edge `from → to` as a key of [`LockOrder::more`].
fn pair(from: ClassId, to: ClassId) -> u64 {
    (u64::from(from.0) << 32) | u64::from(to.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analyze_bytes, AnalyzeOptions};
    use hindsight_recorder::format::TraceBuilder;

    /// Occurrences are counted wherever an edge keeps them: past its class's line, and in the
    /// line past what a line's count holds.
    #[test]
    fn every_occurrence_is_counted() {
        let mut b = TraceBuilder::new("counts");
        let threads: Vec<_> = (0..=MAX_WITNESSES).map(|t| b.thread(&format!("t{t}"))).collect();
        let hub = b.mutex("hub");
        let others: Vec<_> = (0..NEAR + 3).map(|i| b.mutex(&format!("m{i}"))).collect();
        let site = b.site("src/lib.rs", 1, 1);
        let (rounds, all_rounds) = (usize::from(u16::MAX) + 100, 50);
        for round in 0..rounds {
            let mut actor = b.on(threads[round % threads.len()]).acquire(hub, site);
            for &lock in if round < all_rounds { &others[..] } else { &others[..1] } {
                actor = actor.acquire(lock, site).release(lock);
            }
            actor.release(hub);
        }
        let bytes = b.build();
        let report = analyze_bytes(vec![("t".to_owned(), bytes)], &AnalyzeOptions::default());
        let orders = report.expect("a built trace is readable").lock_orders;
        assert_eq!(orders.len(), others.len());
        for order in orders {
            let expected = if order.to == "m0" { rounds } else { all_rounds };
            assert_eq!((order.from.as_str(), order.count), ("hub", expected as u64), "{order:?}");
        }
    }
}
