//! `deadlock`: threads and tasks blocked on each other at the end of the trace, the hang that
//! was captured.
//!
//! At the end, each actor still waiting (for a lock, a permit, a thread or task to finish, a
//! message) points to whoever keeps it waiting: the holders of the lock in a conflicting
//! mode, the thread or task it joins, or whoever may hold the sending end of the channel it
//! waits on (module `senders`). A lock or a join needs all of those to move; a permit or a message
//! needs any one of them, so such a wait is stuck only when every one of them is stuck too
//! (found as a fixpoint from the actors that can move). One stuck group of actors (a
//! strongly connected part of the wait-for graph) is one finding, told by its first cycle,
//! with who holds what since when, and who waits for what since when. Actors that only wait
//! for work on queues (mailboxes) or for notifications are idle, not stuck: a group of them
//! alone is no finding.

mod senders;

use super::cycles::{elementary_cycles, Bounds};
use super::{Context, Detector, Interest};
use crate::replay::{Actor, Hold, Holder, State, Wait, WaitFor};
use crate::report::{
    format_ns, push_unique, BlockedActor, DeadlockDetail, Detail, Finding, FindingKind, HeldLock,
    Severity,
};
use hindsight_recorder::format::{ChannelKind, Event, LockId, LockMode};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use senders::{Holders, SenderReach, Via};
use std::collections::{HashMap, HashSet};

/// Bounds of the cycle enumeration over the wait-for graph.
const BOUNDS: Bounds = Bounds { max_cycles: 100, max_len: 64, max_steps: 1_000_000 };

/// The `deadlock` detector; see the module docs. Besides the state at the end, it follows
/// where channels' sending ends may have gone (module `senders`).
#[derive(Debug, Default)]
pub struct Deadlock {
    senders: SenderReach,
}

impl Deadlock {
    /// The detector.
    pub fn new() -> Self {
        Deadlock::default()
    }
}

/// Why one actor waits for the next: a hold of the lock it wants, the sending end of the
/// channel it waits on, or nothing (a join, a writer queued ahead).
#[derive(Debug, Clone, Copy)]
enum Blocker {
    Hold(Hold),
    Sender(Via),
    Ahead,
}

impl Blocker {
    fn hold(self) -> Option<Hold> {
        match self {
            Blocker::Hold(hold) => Some(hold),
            Blocker::Sender(_) | Blocker::Ahead => None,
        }
    }
}

/// Whom one actor's wait needs: all of its targets to move (a lock's holders, a joined
/// actor), or any one of them (a permit back, a message from any possible sender).
#[derive(Debug)]
struct Needs {
    targets: Vec<(Actor, Blocker)>,
    any: bool,
}

impl Detector for Deadlock {
    fn kind(&self) -> FindingKind {
        FindingKind::Deadlock
    }

    /// The state at the end, and the events that move channels' sending ends.
    fn interest(&self) -> Interest {
        Interest::CHANNEL_CREATED
            | Interest::SEND
            | Interest::RECEIVE
            | Interest::TASK_SPAWNED
            | Interest::THREAD_SPAWNED
    }

    fn on_event(&mut self, _cx: &Context<'_>, event: &Event) {
        self.senders.on_event(event);
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let state = cx.state;
        let mut waits: HashMap<Actor, Wait> = HashMap::new();
        let mut needs: HashMap<Actor, Needs> = HashMap::new();
        let mut reached: HashMap<Actor, Holders> = HashMap::new();
        let mut self_waits: Vec<(Actor, Hold)> = Vec::new();
        let ended = |actor: Actor| state.actor(actor).is_some_and(|a| a.end.is_some());
        for (actor, actor_state) in state.actors() {
            let (Some(wait), None) = (actor_state.wait, actor_state.end) else {
                continue;
            };
            waits.insert(actor, wait);
            let mut targets: Vec<(Actor, Blocker)> = Vec::new();
            let mut any = false;
            match wait.target {
                WaitFor::Lock { lock, mode } => {
                    let Some(lock_state) = state.lock(lock) else { continue };
                    if lock_state.semaphore {
                        // A semaphore used as a counter (permits forgotten or added) gets
                        // permits from whoever adds them, which the trace cannot name; a
                        // closed one fails its waiters.
                        let permits = state.permits(lock);
                        if permits.is_some_and(|p| p.forgotten > 0 || p.added > 0 || p.closed) {
                            continue;
                        }
                        // It needs any one permit back, not all of them.
                        any = true;
                        let holders = &lock_state.holders;
                        let others: Vec<&Holder> =
                            holders.iter().filter(|h| h.actor != actor).collect();
                        if others.is_empty() {
                            // It holds all the permits itself: it waits for itself.
                            if let Some(own) = holders.iter().rev().find(|h| h.actor == actor) {
                                self_waits.push((actor, own.hold));
                            }
                        }
                        targets.extend(others.iter().map(|h| (h.actor, Blocker::Hold(h.hold))));
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
                                targets.push((holder.actor, Blocker::Hold(holder.hold)));
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
                        targets.push((target, Blocker::Ahead));
                    }
                }
                WaitFor::Task(task) => {
                    if !ended(Actor::Task(task)) {
                        targets.push((Actor::Task(task), Blocker::Ahead));
                    }
                }
                WaitFor::Message(channel) => {
                    // Whoever may hold the sending end could send; one that ended dropped
                    // it, which ends the wait too.
                    let Some(holders) = self.senders.holders(channel) else { continue };
                    let others: Vec<(Actor, Via)> =
                        holders.holders.iter().copied().filter(|(a, _)| *a != actor).collect();
                    if others.is_empty() || others.iter().any(|(a, _)| ended(*a)) {
                        continue;
                    }
                    any = true;
                    targets.extend(others.into_iter().map(|(a, via)| (a, Blocker::Sender(via))));
                    reached.insert(actor, holders);
                }
            }
            if !targets.is_empty() {
                needs.insert(actor, Needs { targets, any });
            }
        }
        let stuck = stuck_actors(state, &needs);
        // The wait-for graph: a wait that needs any one of its targets is an edge only when
        // all of them are stuck.
        let mut graph: DiGraph<Actor, Blocker> = DiGraph::new();
        let mut nodes: HashMap<Actor, NodeIndex> = HashMap::new();
        let mut node = |graph: &mut DiGraph<Actor, Blocker>, actor: Actor| {
            *nodes.entry(actor).or_insert_with(|| graph.add_node(actor))
        };
        let mut order: Vec<(&Actor, &Needs)> = needs.iter().collect();
        order.sort_by_key(|(actor, _)| **actor);
        for (&actor, need) in order {
            if need.any && !stuck.contains(&actor) {
                continue;
            }
            let from = node(&mut graph, actor);
            for &(target, blocker) in &need.targets {
                let to = node(&mut graph, target);
                if graph.find_edge(from, to).is_none() {
                    graph.add_edge(from, to, blocker);
                }
            }
        }
        // One stuck group of actors (a strongly connected part of the wait-for graph) is one
        // incident: one finding, told by its first cycle, listing the others. Cycles are
        // enumerated group by group, so that the bounds never hide a group.
        let mut group_of = vec![0; graph.node_count()];
        let mut groups: Vec<(usize, Vec<Vec<NodeIndex>>, bool)> = Vec::new();
        for (group, members) in tarjan_scc(&graph).into_iter().enumerate() {
            for &n in &members {
                group_of[n.index()] = group;
            }
            let (cycles, cut) = group_cycles(&graph, &members);
            if !cycles.is_empty() {
                groups.push((group, cycles, cut));
            }
        }
        // Per stuck group, its finding's place in `findings`.
        let mut finding_of: HashMap<usize, usize> = HashMap::new();
        // Actors idle on a queue (a mailbox, a work queue): waiting for work is no hang.
        let idle = |actor: &Actor| {
            reached
                .get(actor)
                .is_some_and(|h| matches!(h.kind, ChannelKind::Queue | ChannelKind::Notify))
        };
        for (group_id, group, cut) in groups {
            let members = group.iter().flatten().map(|&n| graph[n]);
            if members.clone().all(|actor| idle(&actor)) {
                continue;
            }
            let cycle = &group[0];
            let mut found = cycle_finding(cx, &graph, cycle, &waits, &reached);
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
                    found.absorb(cycle_finding(cx, &graph, other, &waits, &reached));
                }
                if let Detail::Deadlock(detail) = &mut found.detail {
                    detail.other_cycles = others;
                }
            }
            if cut {
                found.evidence.push(format!(
                    "the group has more cycles than listed: their enumeration stops at {} cycles \
                     of at most {} actors",
                    BOUNDS.max_cycles, BOUNDS.max_len
                ));
            }
            finding_of.insert(group_id, findings.len());
            findings.push(found);
        }
        for (actor, hold) in self_waits {
            findings.push(finding(cx, &[actor], &[Blocker::Hold(hold)], &waits, &reached));
        }
        // Waits outside every cycle: behind a deadlock, part of its incident; else, if long,
        // a hang the trace cannot close, told with what is known of whoever could end it.
        let in_cycle: Vec<Actor> = groups_members(&graph, &group_of);
        let mut outside: Vec<(&Actor, &Wait)> =
            waits.iter().filter(|(actor, _)| !in_cycle.contains(actor)).collect();
        outside.sort_by_key(|(actor, wait)| (wait.since_ns, **actor));
        for (&actor, wait) in outside {
            // Stuck behind a deadlock: part of that incident.
            let mut group = None;
            if let Some(&from) = nodes.get(&actor) {
                let mut behind = petgraph::visit::Bfs::new(&graph, from);
                while let Some(n) = behind.next(&graph) {
                    if let Some(&ix) = finding_of.get(&group_of[n.index()]) {
                        group = Some(ix);
                        break;
                    }
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
            let Some(need) = needs.get(&actor) else { continue };
            if long && !idle(&actor) {
                findings.push(long_wait(cx, actor, wait, &need.targets, &waits));
            }
        }
    }
}

/// Adds where `wait` started to `finding`'s sites and returns it as text (` at SITE`, or
/// empty): a tokio lock's only site is its creation, said as such.
fn wait_site(cx: &Context<'_>, finding: &mut Finding, wait: &Wait) -> String {
    let Some(site) = wait.site else { return String::new() };
    let (role, at) = match wait.target {
        WaitFor::Lock { lock, .. } => {
            let lock = cx.trace.lock(lock);
            (lock.site_role(cx.trace, site, "waiting"), lock.at_site(cx.trace, site))
        }
        WaitFor::Thread(_) | WaitFor::Task(_) | WaitFor::Message(_) => {
            ("waiting", format!("at {}", cx.trace.site_text(site)))
        }
    };
    finding.sites.push(cx.site_ref(site, role));
    format!(" {at}")
}

/// The elementary cycles of the stuck group `members` (a strongly connected part of `graph`),
/// within [`BOUNDS`], and whether the bounds cut them short. None for a single actor that
/// does not wait for itself.
fn group_cycles(
    graph: &DiGraph<Actor, Blocker>,
    members: &[NodeIndex],
) -> (Vec<Vec<NodeIndex>>, bool) {
    if let [one] = members {
        if graph.find_edge(*one, *one).is_none() {
            return (Vec::new(), false);
        }
    }
    let inside: HashSet<NodeIndex> = members.iter().copied().collect();
    let group = graph.filter_map(|n, _| inside.contains(&n).then_some(n), |_, _| Some(()));
    let (cycles, cut) = elementary_cycles(&group, BOUNDS);
    let cycles = cycles.into_iter().map(|c| c.into_iter().map(|n| group[n]).collect()).collect();
    (cycles, cut)
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
        WaitFor::Message(c) => format!("a message on `{}`", cx.trace.channel_name(c)),
    }
}

/// The warning for `actor`, waiting since long at the end for something `blockers` keep.
fn long_wait(
    cx: &Context<'_>,
    actor: Actor,
    wait: &Wait,
    blockers: &[(Actor, Blocker)],
    waits: &HashMap<Actor, Wait>,
) -> Finding {
    let trace = cx.trace;
    let waited = cx.state.end_ns().saturating_sub(wait.since_ns);
    let what = waited_for(cx, wait);
    let lock = match wait.target {
        WaitFor::Lock { lock, .. } => Some(lock),
        WaitFor::Thread(_) | WaitFor::Task(_) | WaitFor::Message(_) => None,
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
    let at = wait_site(cx, &mut finding, wait);
    finding.time_ns = wait.since_ns;
    finding.evidence.push(format!(
        "{} started waiting for {what}{at} at t={} and was still waiting when the trace ended \
         at t={}",
        actor.describe(trace),
        format_ns(wait.since_ns),
        format_ns(cx.state.end_ns())
    ));
    for &(blocker, why) in blockers {
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
        let role = match why {
            Blocker::Hold(_) => "holds it".to_owned(),
            Blocker::Sender(via) => format!("may hold its sending end ({})", via_text(cx, via)),
            Blocker::Ahead => "has not finished".to_owned(),
        };
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
            targets.push((actor, Blocker::Ahead));
        }
    }
}

/// The finding for one cycle of the wait-for graph.
fn cycle_finding(
    cx: &Context<'_>,
    graph: &DiGraph<Actor, Blocker>,
    cycle: &[NodeIndex],
    waits: &HashMap<Actor, Wait>,
    reached: &HashMap<Actor, Holders>,
) -> Finding {
    let actors: Vec<Actor> = cycle.iter().map(|&n| graph[n]).collect();
    // The blocker between each actor and the next.
    let blockers: Vec<Blocker> = (0..cycle.len())
        .map(|i| {
            let (a, b) = (cycle[i], cycle[(i + 1) % cycle.len()]);
            graph.find_edge(a, b).map_or(Blocker::Ahead, |e| graph[e])
        })
        .collect();
    finding(cx, &actors, &blockers, waits, reached)
}

/// The actors whose waits can never end: a fixpoint from those that can move (not waiting,
/// not ended). A wait that needs all its targets ends once all of them can move; one that
/// needs any one, once one of them can. An ended actor never moves (a lock it holds stays
/// held); message waits with an ended possible sender were left out already.
fn stuck_actors(state: &State, needs: &HashMap<Actor, Needs>) -> HashSet<Actor> {
    let mut moving: HashSet<Actor> = HashSet::new();
    loop {
        let before = moving.len();
        for (&actor, need) in needs {
            if moving.contains(&actor) {
                continue;
            }
            // A target moves if it is not waiting, or waits for something that will end or
            // that the trace cannot tell; an ended one never does.
            let moves = |(target, _): &(Actor, Blocker)| {
                moving.contains(target)
                    || state.actor(*target).is_none_or(|a| {
                        a.end.is_none() && (a.wait.is_none() || !needs.contains_key(target))
                    })
            };
            let unblocked = if need.any {
                need.targets.iter().any(moves)
            } else {
                need.targets.iter().all(moves)
            };
            if unblocked {
                moving.insert(actor);
            }
        }
        if moving.len() == before {
            break;
        }
    }
    needs.keys().filter(|a| !moving.contains(a)).copied().collect()
}

/// How a possible holder of a sending end may have got it, as evidence says it.
fn via_text(cx: &Context<'_>, via: Via) -> String {
    let trace = cx.trace;
    match via {
        Via::Created => "it created the channel".to_owned(),
        Via::Message { channel, from, site } => format!(
            "it received the message {} sent on `{}` at {} after it may have had it",
            from.describe(trace),
            trace.channel_name(channel),
            trace.site_text(site)
        ),
        Via::Spawned { parent } => {
            format!("spawned by {}, which may have moved it in", parent.describe(trace))
        }
        Via::InFlight { channel, from, site } => format!(
            "it reads `{}`, where the message {} sent at {} may carry it, still unread",
            trace.channel_name(channel),
            from.describe(trace),
            trace.site_text(site)
        ),
    }
}

/// The finding for one wait-for cycle: `actors[i]` waits for `actors[i + 1]`, which holds
/// `blockers[i]`.
fn finding(
    cx: &Context<'_>,
    actors: &[Actor],
    blockers: &[Blocker],
    waits: &HashMap<Actor, Wait>,
    reached: &HashMap<Actor, Holders>,
) -> Finding {
    let n = actors.len();
    let since = |i: usize| waits.get(&actors[i]).map_or(0, |w| w.since_ns);
    // Tell the story from the actor that started waiting first.
    let start = (0..n).min_by_key(|&i| (since(i), i)).unwrap_or_default();
    let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    let names: Vec<String> = order.iter().map(|&i| actors[i].describe(cx.trace)).collect();
    let title = match names.as_slice() {
        [a] => format!("{a} waits forever for a lock it holds itself"),
        [a, b] if reached.contains_key(&actors[order[0]]) => {
            format!("{a} and {b} wait for each other's messages forever")
        }
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
        let held = blockers[(i + n - 1) % n].hold();
        let (waits_for, wait_kind) = match wait.target {
            WaitFor::Lock { lock, .. } => (cx.trace.lock_name(lock), "lock"),
            WaitFor::Thread(t) => (cx.trace.thread_name(t), "thread"),
            WaitFor::Task(t) => (cx.trace.task_name(t), "task"),
            WaitFor::Message(c) => (cx.trace.channel_name(c), "message"),
        };
        cx.add_actor(&mut finding, actor, wait.thread);
        if let Some(hold) = held {
            push_unique(&mut finding.locks, cx.trace.lock_name(hold.lock));
            let role = cx.trace.lock(hold.lock).site_role(cx.trace, hold.site, "held");
            finding.sites.push(cx.site_ref(hold.site, role));
        }
        if let WaitFor::Lock { lock, .. } = wait.target {
            push_unique(&mut finding.locks, cx.trace.lock_name(lock));
        }
        let at = wait_site(cx, &mut finding, wait);
        // Where the sending end of the channel it waits on left for the next one.
        if let Blocker::Sender(Via::Message { site, .. } | Via::InFlight { site, .. }) = blockers[i]
        {
            finding.sites.push(cx.site_ref(site, "sent"));
        }
        finding.time_ns = finding.time_ns.max(wait.since_ns);
        let next = actors[(i + 1) % n].describe(cx.trace);
        let holds_text = match held {
            Some(hold) => format!(
                "holds `{}` ({}, t={}) and ",
                cx.trace.lock_name(hold.lock),
                cx.trace.lock(hold.lock).did_at(cx.trace, hold.site, "acquired"),
                format_ns(hold.since_ns)
            ),
            None => String::new(),
        };
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
            WaitFor::Message(_) => message_wait_text(cx, actor, &waits_for, &at, reached),
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
    let through_messages = actors.iter().any(|a| reached.contains_key(a));
    finding.help = Some(
        if through_messages {
            "each waits for a message that only another stuck one can send: an actor that \
             awaits a reply while it cannot serve its own mailbox deadlocks when the call comes \
             back to it; answer from a spawned task, or do not await the reply inside the \
             handler"
        } else {
            "each waits for something the next one holds: take these locks in one global \
             order everywhere (or take them all under one outer lock), and never wait for a \
             thread or task while holding a lock it needs"
        }
        .to_owned(),
    );
    finding.detail = Detail::Deadlock(DeadlockDetail { cycle, other_cycles: Vec::new() });
    finding
}

/// What an actor waiting for a message on `channel` waits for, as evidence says it: the
/// channel and every possible holder of its sending end, with how each may have got it.
fn message_wait_text(
    cx: &Context<'_>,
    actor: Actor,
    channel: &str,
    at: &str,
    reached: &HashMap<Actor, Holders>,
) -> String {
    let Some(holders) = reached.get(&actor) else {
        return format!("waits for a message on `{channel}`{at}");
    };
    let what = match holders.kind {
        ChannelKind::Oneshot => "the reply",
        ChannelKind::Queue => "a message",
        ChannelKind::Notify => "a notification",
    };
    let others: Vec<String> = holders
        .holders
        .iter()
        .filter(|(a, _)| *a != actor)
        .map(|&(a, via)| format!("{} ({})", a.describe(cx.trace), via_text(cx, via)))
        .collect();
    match others.as_slice() {
        [only] => format!(
            "waits for {what} on `{channel}`{at}; only {only} may hold its sending end, and it \
             is stuck too"
        ),
        _ => format!(
            "waits for {what} on `{channel}`{at}; only {} may hold its sending end, and all of \
             them are stuck too",
            others.join(" or ")
        ),
    }
}
