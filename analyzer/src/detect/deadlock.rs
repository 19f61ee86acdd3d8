//! `deadlock`: threads and tasks blocked on each other at the end of the trace, the hang that
//! was captured.
//!
//! At the end, each actor still waiting (for a lock, or for a thread or task to finish) points
//! to whoever keeps it waiting: the holders of the lock in a conflicting mode, or the thread
//! or task it joins. Each elementary cycle of that wait-for graph is one finding, with who
//! holds what since when, and who waits for what since when.

use super::cycles::{elementary_cycles, Bounds};
use super::{Context, Detector, Interest};
use crate::replay::{Actor, Hold, Holder, State, Wait, WaitFor};
use crate::report::{
    format_ns, push_unique, BlockedActor, DeadlockDetail, Detail, Finding, FindingKind, HeldLock,
    Severity,
};
use hindsight_recorder::format::{LockId, LockMode};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// Bounds of the cycle enumeration over the wait-for graph.
const BOUNDS: Bounds = Bounds { max_cycles: 100, max_len: 64, max_steps: 1_000_000 };

/// The `deadlock` detector; see the module docs. It needs only the final state.
#[derive(Debug, Default)]
pub struct Deadlock;

impl Deadlock {
    /// The detector.
    pub fn new() -> Self {
        Deadlock
    }
}

/// Why one actor waits for the next: a hold of the lock it wants, or nothing (a join).
type Blocker = Option<Hold>;

impl Detector for Deadlock {
    fn kind(&self) -> FindingKind {
        FindingKind::Deadlock
    }

    /// It looks only at the state at the end.
    fn interest(&self) -> Interest {
        Interest::NONE
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let state = cx.state;
        let mut graph: DiGraph<Actor, Blocker> = DiGraph::new();
        let mut nodes: HashMap<Actor, NodeIndex> = HashMap::new();
        let mut waits: HashMap<Actor, Wait> = HashMap::new();
        let mut node = |graph: &mut DiGraph<Actor, Blocker>, actor: Actor| {
            *nodes.entry(actor).or_insert_with(|| graph.add_node(actor))
        };
        let ended = |actor: Actor| state.actor(actor).is_some_and(|a| a.end.is_some());
        let mut self_waits: Vec<(Actor, Hold)> = Vec::new();
        for (actor, actor_state) in state.actors() {
            let (Some(wait), None) = (actor_state.wait, actor_state.end) else {
                continue;
            };
            let mut targets: Vec<(Actor, Blocker)> = Vec::new();
            match wait.target {
                WaitFor::Lock { lock, mode } => {
                    if let Some(lock_state) = state.lock(lock) {
                        if lock_state.semaphore {
                            let holders = &lock_state.holders;
                            permit_wait(state, actor, holders, &mut targets, &mut self_waits);
                        } else {
                            if mode == LockMode::Shared {
                                queued_writers(cx, actor, lock, &wait, &mut targets);
                            }
                            for holder in &lock_state.holders {
                                let conflict = mode == LockMode::Exclusive
                                    || holder.hold.mode == LockMode::Exclusive;
                                if holder.actor == actor && conflict {
                                    // Relocking a lock it holds: it waits for itself.
                                    self_waits.push((actor, holder.hold));
                                } else if conflict {
                                    targets.push((holder.actor, Some(holder.hold)));
                                }
                            }
                        }
                    }
                }
                WaitFor::Thread(thread) => {
                    // A thread stuck inside a task's poll is stuck where the task is.
                    let target = match state.threads().get(thread.index()) {
                        Some(t) => match t.current_task {
                            Some(task) if !ended(Actor::Task(task)) => Actor::Task(task),
                            _ => Actor::Thread(thread),
                        },
                        None => Actor::Thread(thread),
                    };
                    if !ended(Actor::Thread(thread)) {
                        targets.push((target, None));
                    }
                }
                WaitFor::Task(task) => {
                    if !ended(Actor::Task(task)) {
                        targets.push((Actor::Task(task), None));
                    }
                }
            }
            waits.insert(actor, wait);
            if targets.is_empty() {
                continue;
            }
            let from = node(&mut graph, actor);
            for (target, blocker) in targets {
                let to = node(&mut graph, target);
                if graph.find_edge(from, to).is_none() {
                    graph.add_edge(from, to, blocker);
                }
            }
        }
        let (cycles, _) = elementary_cycles(&graph, BOUNDS);
        // One stuck group of actors (a strongly connected part of the wait-for graph) is one
        // incident: one finding, told by its first cycle, listing the others.
        let mut group_of = vec![0; graph.node_count()];
        for (group, members) in tarjan_scc(&graph).into_iter().enumerate() {
            for n in members {
                group_of[n.index()] = group;
            }
        }
        let mut groups: Vec<(usize, Vec<Vec<NodeIndex>>)> = Vec::new();
        for cycle in cycles {
            let group = group_of[cycle[0].index()];
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, list)) => list.push(cycle),
                None => groups.push((group, vec![cycle])),
            }
        }
        // Per stuck group, its finding's place in `findings`.
        let mut finding_of: HashMap<usize, usize> = HashMap::new();
        for (group_id, group) in groups {
            let cycle = &group[0];
            let mut found = cycle_finding(cx, &graph, cycle, &waits);
            let others: Vec<Vec<String>> = group[1..]
                .iter()
                .map(|c| c.iter().map(|&n| graph[n].describe(cx.trace)).collect())
                .collect();
            if !others.is_empty() {
                found.evidence.push(format!(
                    "the same stuck group waits in {} more cycles: {}",
                    others.len(),
                    others
                        .iter()
                        .map(|c| format!("{} → {}", c.join(" → "), c[0]))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                for other in &group[1..] {
                    found.absorb(cycle_finding(cx, &graph, other, &waits));
                }
                if let Detail::Deadlock(detail) = &mut found.detail {
                    detail.other_cycles = others;
                }
            }
            finding_of.insert(group_id, findings.len());
            findings.push(found);
        }
        for (actor, hold) in self_waits {
            findings.push(finding(cx, &[actor], &[Some(hold)], &waits));
        }
        // Waits outside every cycle: behind a deadlock, part of its incident; else, if long,
        // a hang the trace cannot close, told with what is known of whoever could end it.
        let in_cycle: Vec<Actor> = groups_members(&graph, &group_of);
        let mut outside: Vec<(&Actor, &Wait)> =
            waits.iter().filter(|(actor, _)| !in_cycle.contains(actor)).collect();
        outside.sort_by_key(|(actor, wait)| (wait.since_ns, **actor));
        for (&actor, wait) in outside {
            let Some(&from) = nodes.get(&actor) else { continue };
            // Stuck behind a deadlock: part of that incident.
            let behind = petgraph::visit::Bfs::new(&graph, from);
            let mut behind = behind;
            let mut group = None;
            while let Some(n) = behind.next(&graph) {
                if let Some(&ix) = finding_of.get(&group_of[n.index()]) {
                    group = Some(ix);
                    break;
                }
            }
            if let Some(ix) = group {
                let deadlock = &mut findings[ix];
                cx.add_actor(deadlock, actor, wait.thread);
                deadlock.evidence.push(format!(
                    "{} is stuck behind it too: it waits for {} since t={}",
                    actor.describe(cx.trace),
                    waited_for(cx, wait),
                    format_ns(wait.since_ns)
                ));
                continue;
            }
            let long = state.end_ns().saturating_sub(wait.since_ns) >= LONG_WAIT_NS;
            let blockers: Vec<Actor> = graph.neighbors(from).map(|n| graph[n]).collect();
            if long && !blockers.is_empty() {
                findings.push(long_wait(cx, actor, wait, &blockers, &waits));
            }
        }
    }
}

/// A wait at least this long at the end of the trace, outside every cycle, is reported.
pub const LONG_WAIT_NS: u64 = 1_000_000_000;

/// The actors of the wait-for graph that are in a stuck group (a strongly connected part
/// with a cycle).
fn groups_members(graph: &DiGraph<Actor, Blocker>, group_of: &[usize]) -> Vec<Actor> {
    let mut size = vec![0usize; graph.node_count()];
    for &g in group_of {
        size[g] += 1;
    }
    graph
        .node_indices()
        .filter(|n| size[group_of[n.index()]] > 1 || graph.find_edge(*n, *n).is_some())
        .map(|n| graph[n])
        .collect()
}

/// What `wait` waits for, as a report says it.
fn waited_for(cx: &Context<'_>, wait: &Wait) -> String {
    match wait.target {
        WaitFor::Lock { lock, .. } => format!("`{}`", cx.trace.lock_name(lock)),
        WaitFor::Thread(t) => format!("thread `{}` to finish", cx.trace.thread_name(t)),
        WaitFor::Task(t) => format!("task `{}` to finish", cx.trace.task_name(t)),
    }
}

/// The warning for `actor`, waiting since long at the end for something `blockers` keep.
fn long_wait(
    cx: &Context<'_>,
    actor: Actor,
    wait: &Wait,
    blockers: &[Actor],
    waits: &HashMap<Actor, Wait>,
) -> Finding {
    let trace = cx.trace;
    let waited = cx.state.end_ns().saturating_sub(wait.since_ns);
    let what = waited_for(cx, wait);
    let lock = match wait.target {
        WaitFor::Lock { lock, .. } => Some(lock),
        WaitFor::Thread(_) | WaitFor::Task(_) => None,
    };
    let title = format!(
        "{} waited {} for {what} until the trace ended, with no deadlock cycle found",
        actor.describe(trace),
        format_ns(waited)
    );
    let mut finding = Finding::new(FindingKind::Deadlock, Severity::Warning, title);
    cx.add_actor(&mut finding, actor, wait.thread);
    if let Some(lock) = lock {
        push_unique(&mut finding.locks, trace.lock_name(lock));
    }
    if let Some(site) = wait.site {
        finding.sites.push(cx.site_ref(site, "waiting"));
    }
    finding.time_ns = wait.since_ns;
    let at = wait.site.map(|s| format!(" at {}", trace.site_text(s))).unwrap_or_default();
    finding.evidence.push(format!(
        "{} started waiting for {what}{at} at t={} and was still waiting when the trace ended \
         at t={}",
        actor.describe(trace),
        format_ns(wait.since_ns),
        format_ns(cx.state.end_ns())
    ));
    for &blocker in blockers {
        let doing = match waits.get(&blocker) {
            Some(other) => format!(
                "itself waits for {} since t={}",
                waited_for(cx, other),
                format_ns(other.since_ns)
            ),
            None => "is not waiting for anything the trace shows (it may be busy, or waiting \
                     for something hindsight does not record)"
                .to_owned(),
        };
        let role = if lock.is_some() { "holds it" } else { "has not finished" };
        finding.evidence.push(format!("{} {role} and {doing}", blocker.describe(trace)));
    }
    finding.help = Some(
        "find out why the holder does not let go: a long computation, a wait on something \
         unrecorded (I/O, a channel, a condition variable), or a lost wake-up"
            .to_owned(),
    );
    finding
}

/// The writers that keep a reader of `lock` waiting although only readers hold it: those
/// that asked before it, where the lock's implementation queues new readers behind a waiting
/// writer (tokio's fair `RwLock`, std's on Linux). Where that is unknown, none.
fn queued_writers(
    cx: &Context<'_>,
    reader: Actor,
    lock: LockId,
    wait: &Wait,
    targets: &mut Vec<(Actor, Blocker)>,
) {
    let semantics = cx.trace.lock(lock).semantics();
    if semantics.waiting_writer_blocks_new_readers != Some(true) {
        return;
    }
    for (actor, state) in cx.state.actors() {
        let Some(other) = state.wait.filter(|_| actor != reader && state.end.is_none()) else {
            continue;
        };
        let writer = other.target == WaitFor::Lock { lock, mode: LockMode::Exclusive };
        if writer && other.since_ns <= wait.since_ns {
            targets.push((actor, None));
        }
    }
}

/// The finding for one cycle of the wait-for graph.
fn cycle_finding(
    cx: &Context<'_>,
    graph: &DiGraph<Actor, Blocker>,
    cycle: &[NodeIndex],
    waits: &HashMap<Actor, Wait>,
) -> Finding {
    let actors: Vec<Actor> = cycle.iter().map(|&n| graph[n]).collect();
    // The blocker between each actor and the next.
    let blockers: Vec<Blocker> = (0..cycle.len())
        .map(|i| {
            let (a, b) = (cycle[i], cycle[(i + 1) % cycle.len()]);
            graph.find_edge(a, b).and_then(|e| graph[e])
        })
        .collect();
    finding(cx, &actors, &blockers, waits)
}

/// Who keeps `actor` waiting for a permit of a semaphore that `holders` hold. It needs any
/// one permit back, not all of them, so it is stuck only if every other holder is stuck too.
/// (A trace does not say how many permits there are; whoever waits found them all taken.)
/// With no other holder, it holds all the permits itself: it waits for itself.
fn permit_wait(
    state: &State,
    actor: Actor,
    holders: &[Holder],
    targets: &mut Vec<(Actor, Blocker)>,
    self_waits: &mut Vec<(Actor, Hold)>,
) {
    let others: Vec<&Holder> = holders.iter().filter(|h| h.actor != actor).collect();
    if others.is_empty() {
        if let Some(own) = holders.iter().rev().find(|h| h.actor == actor) {
            self_waits.push((actor, own.hold));
        }
        return;
    }
    let stuck =
        |h: &&Holder| state.actor(h.actor).is_some_and(|a| a.wait.is_some() && a.end.is_none());
    if others.iter().all(stuck) {
        targets.extend(others.iter().map(|h| (h.actor, Some(h.hold))));
    }
}

/// The finding for one wait-for cycle: `actors[i]` waits for `actors[i + 1]`, which holds
/// `blockers[i]`.
fn finding(
    cx: &Context<'_>,
    actors: &[Actor],
    blockers: &[Blocker],
    waits: &HashMap<Actor, Wait>,
) -> Finding {
    let n = actors.len();
    let since = |i: usize| waits.get(&actors[i]).map_or(0, |w| w.since_ns);
    // Tell the story from the actor that started waiting first.
    let start = (0..n).min_by_key(|&i| (since(i), i)).unwrap_or_default();
    let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    let names: Vec<String> = order.iter().map(|&i| actors[i].describe(cx.trace)).collect();
    let title = match names.as_slice() {
        [a] => format!("{a} waits forever for a lock it holds itself"),
        [a, b] => format!("{a} and {b} wait for each other forever"),
        _ => format!("{} wait for each other in a cycle, forever", names.join(", ")),
    };
    let mut finding = Finding::new(FindingKind::Deadlock, Severity::Error, title);
    let mut cycle = Vec::with_capacity(n);
    for &i in &order {
        let actor = actors[i];
        let Some(wait) = waits.get(&actor) else {
            continue;
        };
        // What this actor holds that the previous one waits for.
        let held = blockers[(i + n - 1) % n];
        let (waits_for, wait_kind) = match wait.target {
            WaitFor::Lock { lock, .. } => (cx.trace.lock_name(lock), "lock"),
            WaitFor::Thread(t) => (cx.trace.thread_name(t), "thread"),
            WaitFor::Task(t) => (cx.trace.task_name(t), "task"),
        };
        cx.add_actor(&mut finding, actor, wait.thread);
        if let Some(hold) = held {
            push_unique(&mut finding.locks, cx.trace.lock_name(hold.lock));
            finding.sites.push(cx.site_ref(hold.site, "held"));
        }
        if let WaitFor::Lock { lock, .. } = wait.target {
            push_unique(&mut finding.locks, cx.trace.lock_name(lock));
        }
        if let Some(site) = wait.site {
            finding.sites.push(cx.site_ref(site, "waiting"));
        }
        finding.time_ns = finding.time_ns.max(wait.since_ns);
        let next = actors[(i + 1) % n].describe(cx.trace);
        let holds_text = match held {
            Some(hold) => format!(
                "holds `{}` (acquired at {}, t={}) and ",
                cx.trace.lock_name(hold.lock),
                cx.trace.site_text(hold.site),
                format_ns(hold.since_ns)
            ),
            None => String::new(),
        };
        let at = wait.site.map(|s| format!(" at {}", cx.trace.site_text(s))).unwrap_or_default();
        let next_wait = waits.get(&actors[(i + 1) % n]).map(|w| w.target);
        let waits_text = match wait.target {
            WaitFor::Lock { lock, mode: LockMode::Shared }
                if next_wait == Some(WaitFor::Lock { lock, mode: LockMode::Exclusive }) =>
            {
                format!(
                    "waits to read `{waits_for}`{at}, queued behind {next}, which asked to \
                     write it first (the lock lets no new reader pass a waiting writer)"
                )
            }
            WaitFor::Lock { .. } => format!("waits for `{waits_for}`{at}, held by {next}"),
            WaitFor::Thread(_) | WaitFor::Task(_) => format!("waits for {next} to finish{at}"),
        };
        finding.evidence.push(format!(
            "{} {holds_text}{waits_text}, since t={}",
            actor.describe(cx.trace),
            format_ns(wait.since_ns)
        ));
        cycle.push(BlockedActor {
            thread: cx.trace.thread_name(wait.thread),
            task: match actor {
                Actor::Task(t) => Some(cx.trace.task_name(t)),
                Actor::Thread(_) => None,
            },
            holds: held.map(|hold| HeldLock {
                lock: cx.trace.lock_name(hold.lock),
                site: cx.trace.site_text(hold.site),
                since_ns: hold.since_ns,
            }),
            waits_for,
            wait_kind: wait_kind.to_owned(),
            wait_site: wait.site.map(|s| cx.trace.site_text(s)),
            waiting_since_ns: wait.since_ns,
        });
    }
    let end = cx.state.end_ns();
    finding.evidence.push(format!(
        "none of them moved again before the trace ended at t={} ({} after the last of them \
         started waiting)",
        format_ns(end),
        format_ns(end.saturating_sub(finding.time_ns))
    ));
    finding.help = Some(
        "each waits for something the next one holds: take these locks in one global order \
         everywhere (or take them all under one outer lock), and never wait for a thread or \
         task while holding a lock it needs"
            .to_owned(),
    );
    finding.detail = Detail::Deadlock(DeadlockDetail { cycle, other_cycles: Vec::new() });
    finding
}
