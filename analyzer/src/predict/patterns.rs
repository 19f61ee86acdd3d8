//! Deadlock patterns of one window and their verdicts.
//!
//! An *abstract acquisition* is every time one actor asked for one thing (a lock in a mode,
//! or another actor's end) while holding one set of locks. A *pattern* is a cycle of them
//! over lock instances, from pairwise different actors: each asks for what the next one holds
//! (or, for a join, for the next one's end), and no lock is held by two of them in
//! conflicting modes. Its concrete instances are checked in program order against the
//! sync-preserving closure of their predecessors ([`Closure`]); one whose closure contains
//! none of them is a witness: run the closure in trace order, then every actor of the
//! pattern asks and none can go on.

use super::closure::{Closure, Pull, BEYOND};
use super::log::{Held, Log, Step, NONE};
use super::simulate::simulate;
use super::{normalize, CycleKey, Item, Outcome, Verdict, WitnessStep};
use crate::detect::cycles::{elementary_cycles, Bounds};
use crate::lock_semantics::LockSemantics;
use crate::trace::Trace;
use hindsight_recorder::format::{LockId, LockMode};
use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// What an actor asks for at a step where it may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Want {
    /// A lock, in a mode.
    Lock(LockId, LockMode),
    /// The end of another actor (by log index).
    End(u32),
}

/// Every instance of one actor asking for one thing while holding one set of locks.
#[derive(Debug, Clone)]
pub(crate) struct Abstract {
    /// The actor (log index).
    pub actor: u32,
    /// What it asks for.
    pub want: Want,
    /// What it holds meanwhile, sorted by lock.
    pub held: Vec<Held>,
    /// The instances' places in the actor's events, in program order.
    pub instances: Vec<u32>,
}

/// A node of the instance graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    Lock(LockId),
    End(u32),
}

/// Bounds of the work per window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Cycles of the instance graph enumerated at most.
    pub cycles: usize,
    /// Patterns (choices of abstract acquisitions along a cycle) checked at most.
    pub patterns: usize,
    /// Closure steps at most, over all patterns.
    pub steps: u64,
}

/// What one window's check found: a verdict per pattern checked, and what was left.
#[derive(Debug, Default)]
pub(crate) struct WindowResult {
    /// Per pattern checked.
    pub verdicts: Vec<Verdict>,
    /// Cycles of the instance graph not (fully) checked for want of budget.
    pub unchecked: usize,
}

/// Finds and checks the patterns among `abstracts` of `log`. Cycles of classes in
/// `witnessed` (by this window or an earlier one) are not checked again: one witness is what
/// a cycle's finding shows; cycles witnessed here are added.
pub(crate) fn check(
    trace: &Trace,
    log: &Log,
    abstracts: &[Abstract],
    budget: Budget,
    witnessed: &mut HashSet<CycleKey>,
) -> WindowResult {
    let mut graph: DiGraph<Node, Vec<usize>> = DiGraph::new();
    let mut nodes: HashMap<Node, NodeIndex> = HashMap::default();
    let mut node = |graph: &mut DiGraph<Node, Vec<usize>>, n: Node| {
        *nodes.entry(n).or_insert_with(|| graph.add_node(n))
    };
    let mut edges: HashMap<(NodeIndex, NodeIndex), Vec<usize>> = HashMap::default();
    let targets: HashSet<u32> = abstracts
        .iter()
        .filter_map(|a| match a.want {
            Want::End(x) if !a.held.is_empty() => Some(x),
            _ => None,
        })
        .collect();
    for (ix, a) in abstracts.iter().enumerate() {
        let to = match a.want {
            Want::Lock(lock, _) => Node::Lock(lock),
            Want::End(x) => Node::End(x),
        };
        let to_ix = node(&mut graph, to);
        for h in &a.held {
            if Node::Lock(h.lock) != to {
                let from = node(&mut graph, Node::Lock(h.lock));
                edges.entry((from, to_ix)).or_default().push(ix);
            }
        }
        if let (Want::Lock(..), true) = (a.want, targets.contains(&a.actor)) {
            let from = node(&mut graph, Node::End(a.actor));
            edges.entry((from, to_ix)).or_default().push(ix);
        }
    }
    let mut keyed: Vec<((NodeIndex, NodeIndex), Vec<usize>)> = edges.into_iter().collect();
    keyed.sort();
    for ((a, b), list) in keyed {
        graph.add_edge(a, b, list);
    }
    let bounds = Bounds { max_cycles: budget.cycles, max_len: 6, max_steps: 1_000_000 };
    let (cycles, cut) = elementary_cycles(&graph, bounds);
    let mut result = WindowResult::default();
    if cut {
        result.unchecked += 1;
    }
    let mut steps = 0u64;
    for cycle in cycles {
        let lists: Vec<&Vec<usize>> = (0..cycle.len())
            .map(|i| {
                let (a, b) = (cycle[i], cycle[(i + 1) % cycle.len()]);
                let e = graph.find_edge(a, b).expect("a cycle's edges are in the graph");
                &graph[e]
            })
            .collect();
        let wanted: Vec<Node> =
            (0..cycle.len()).map(|i| graph[cycle[(i + 1) % cycle.len()]]).collect();
        let key: CycleKey = normalize(
            wanted
                .iter()
                .map(|n| match n {
                    Node::Lock(lock) => Some(trace.lock_class(*lock)),
                    Node::End(_) => None,
                })
                .collect(),
        );
        if witnessed.contains(&key) {
            continue;
        }
        if result.verdicts.len() >= budget.patterns || steps > budget.steps {
            result.unchecked += 1;
            continue;
        }
        let mut choice: Vec<usize> = Vec::with_capacity(cycle.len());
        let (mut done, mut cut_short) = (false, false);
        combinations(&lists, &mut choice, &mut |choice| {
            if result.verdicts.len() >= budget.patterns || steps > budget.steps {
                cut_short = true;
                return false;
            }
            let items: Vec<&Abstract> = choice.iter().map(|&a| &abstracts[a]).collect();
            if let Some(verdict) = judge(trace, log, abstracts, &items, &wanted, &mut steps) {
                done = matches!(verdict.outcome, Outcome::Witnessed(_));
                result.verdicts.push(verdict);
            }
            !done
        });
        if done {
            witnessed.insert(key);
        } else if cut_short {
            result.unchecked += 1;
        }
    }
    result
}

/// Calls `f` with each choice of one element per list, while it returns `true` (and at most
/// 4096 times).
fn combinations(
    lists: &[&Vec<usize>],
    choice: &mut Vec<usize>,
    f: &mut dyn FnMut(&[usize]) -> bool,
) {
    fn go(
        lists: &[&Vec<usize>],
        choice: &mut Vec<usize>,
        f: &mut dyn FnMut(&[usize]) -> bool,
        budget: &mut usize,
    ) -> bool {
        if choice.len() == lists.len() {
            *budget = budget.saturating_sub(1);
            return *budget > 0 && f(choice);
        }
        for &x in lists[choice.len()].iter() {
            choice.push(x);
            let go_on = go(lists, choice, f, budget);
            choice.pop();
            if !go_on {
                return false;
            }
        }
        true
    }
    let mut budget = 4096;
    go(lists, choice, f, &mut budget);
}

/// The verdict on one choice of abstract acquisitions along a cycle (`wanted[i]` is what
/// item `i` asks for); `None` when it is no pattern (an actor twice, or an end asked for
/// that is not the next actor's).
fn judge(
    trace: &Trace,
    log: &Log,
    abstracts: &[Abstract],
    items: &[&Abstract],
    wanted: &[Node],
    steps: &mut u64,
) -> Option<Verdict> {
    let k = items.len();
    for i in 0..k {
        if items[..i].iter().any(|a| a.actor == items[i].actor) {
            return None;
        }
        if let Node::End(x) = wanted[i] {
            let child = items[(i + 1) % k];
            if child.actor != x {
                return None;
            }
            // A child spawned and joined inside the joiner's hold of the lock before the
            // join holds it too: the cycle without the join is the same pattern.
            let parent = log.actors[items[i].actor as usize];
            let held_before = wanted[(i + k - 1) % k];
            let inherits = child
                .held
                .iter()
                .any(|h| h.inherited_from == Some(parent) && Node::Lock(h.lock) == held_before);
            if inherits {
                return None;
            }
        }
    }
    // A child that holds a lock of the cycle only as its parent's, with the parent in the
    // pattern too: the parent is the holder, and the cycle without the child is the pattern.
    for i in 0..k {
        let Node::Lock(lock) = wanted[(i + k - 1) % k] else { continue };
        let holder = items[i].held.iter().find(|h| h.lock == lock).and_then(|h| h.inherited_from);
        let parent_in_pattern = holder.is_some_and(|parent| {
            items.iter().any(|other| log.actors[other.actor as usize] == parent)
        });
        if parent_in_pattern {
            return None;
        }
    }
    // A parent whose hold a child inherits keeps it only until it joins the child: it must
    // be stuck at that join.
    let joins = parent_joins(log, items, wanted)?;
    let mut pattern: Vec<&Abstract> = items.iter().copied().chain(&joins).collect();
    let mut outcome = None;
    // A lock held by two of them in conflicting modes keeps them apart.
    'common: for i in 0..k {
        for j in i + 1..k {
            for a in &items[i].held {
                for b in &items[j].held {
                    let conflict = a.mode == LockMode::Exclusive || b.mode == LockMode::Exclusive;
                    // A parent's hold and its child's inherited copy are one hold.
                    let (ai, aj) =
                        (log.actors[items[i].actor as usize], log.actors[items[j].actor as usize]);
                    let same_hold = b.inherited_from == Some(ai) || a.inherited_from == Some(aj);
                    if a.lock == b.lock && conflict && !same_hold {
                        outcome = Some(Outcome::CommonLock { held: [*a, *b], actors: [i, j] });
                        break 'common;
                    }
                }
            }
        }
    }
    // Each asks in a mode the next one's hold blocks, or (where the lock's implementation
    // queues new readers behind a waiting writer) a writer of another actor waits first.
    if outcome.is_none() {
        for i in 0..k {
            let (Node::Lock(lock), Want::Lock(_, mode)) = (wanted[i], items[i].want) else {
                continue;
            };
            let next = items[(i + 1) % k];
            let Some(held) = next.held.iter().find(|h| h.lock == lock) else { continue };
            if mode == LockMode::Exclusive || held.mode == LockMode::Exclusive {
                continue;
            }
            let fair = LockSemantics::of(trace.lock(lock).implementation)
                .waiting_writer_blocks_new_readers
                == Some(true);
            let writer = fair.then(|| {
                abstracts.iter().find(|w| {
                    w.want == Want::Lock(lock, LockMode::Exclusive)
                        && !pattern.iter().any(|p| p.actor == w.actor)
                })
            });
            match writer.flatten() {
                Some(w) => pattern.push(w),
                None => {
                    outcome = Some(Outcome::SharedOnly { lock, fair });
                    break;
                }
            }
        }
    }
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => search(trace, log, &pattern, k, steps),
    };
    let nodes = (0..k)
        .map(|i| match wanted[(i + k - 1) % k] {
            Node::Lock(lock) => Some(lock),
            Node::End(_) => None,
        })
        .collect();
    Some(Verdict { items: pattern.iter().map(|a| item(log, a)).collect(), nodes, outcome })
}

/// What the report needs of one abstract acquisition (its first instance).
fn item(log: &Log, a: &Abstract) -> Item {
    let event = log.at(a.actor, a.instances[0]);
    Item {
        actor: log.actors[a.actor as usize],
        thread: event.thread,
        held: a.held.clone(),
        want: match a.want {
            Want::Lock(lock, mode) => super::Wanted::Lock(lock, mode),
            Want::End(x) => super::Wanted::End(log.actors[x as usize]),
        },
        site: event.site,
        time_ns: event.time_ns,
        instances: a.instances.len(),
    }
}

/// Looks for instances of `pattern` none of which is in the sync-preserving closure of
/// their predecessors; failing that, whether the orders every correct reordering keeps
/// already rule every instance out.
/// (`pattern[cycle..]` are writers queued on read-held locks.)
fn search(
    trace: &Trace,
    log: &Log,
    pattern: &[&Abstract],
    cycle: usize,
    steps: &mut u64,
) -> Outcome {
    let witnessing = monotone(log, pattern, true, steps);
    if let Ok((closure, chosen)) = witnessing {
        let rank = |index: u32| index as usize;
        return Outcome::Witnessed(schedule(trace, log, pattern, cycle, &closure, &chosen, &rank));
    }
    // No sync-preserving witness: try reordering critical sections, at the first and the
    // last instances, and keep what a run confirms.
    for last in [false, true] {
        let chosen: Vec<u32> = pattern
            .iter()
            .map(|a| if last { a.instances[a.instances.len() - 1] } else { a.instances[0] })
            .collect();
        let pinned = pinned_holds(log, pattern, &chosen);
        let mut closure = Closure::relaxed(log, pinned.clone());
        for (a, &pos) in pattern.iter().zip(&chosen) {
            closure.add_predecessors(a.actor, pos);
        }
        *steps += closure.steps;
        if pattern.iter().zip(&chosen).any(|(a, &pos)| closure.contains(a.actor, pos)) {
            continue;
        }
        let simulated = simulate(log, &closure, &pinned);
        *steps += log.len() as u64;
        if let Some(order) = simulated {
            let place: HashMap<u32, usize> =
                order.iter().enumerate().map(|(i, &index)| (index, i)).collect();
            let rank = |index: u32| place.get(&index).copied().unwrap_or(usize::MAX);
            return Outcome::Witnessed(schedule(
                trace, log, pattern, cycle, &closure, &chosen, &rank,
            ));
        }
    }
    match monotone(log, pattern, false, steps) {
        Err(Some(by)) => Outcome::Ordered(describe_order(trace, log, by)),
        _ => Outcome::NotWitnessed,
    }
}

/// The instances (positions, one per element of `pattern`) outside the closure of their
/// predecessors, and that closure; or, when every instance of some element ends up inside,
/// the order that last pulled one in (a window index), if an order did.
fn monotone<'a>(
    log: &'a Log,
    pattern: &[&Abstract],
    sync_preserving: bool,
    steps: &mut u64,
) -> Result<(Closure<'a>, Vec<u32>), Option<u32>> {
    let mut closure = Closure::new(log, sync_preserving);
    let mut next = vec![0usize; pattern.len()];
    loop {
        for (i, a) in pattern.iter().enumerate() {
            closure.add_predecessors(a.actor, a.instances[next[i]]);
        }
        *steps += closure.steps;
        closure.steps = 0;
        let inside = pattern
            .iter()
            .enumerate()
            .find(|(i, a)| closure.contains(a.actor, a.instances[next[*i]]));
        let Some((i, a)) = inside else {
            let chosen = pattern.iter().zip(&next).map(|(a, &n)| a.instances[n]).collect();
            return Ok((closure, chosen));
        };
        let cut = closure.cut(a.actor);
        match a.instances[next[i]..].iter().position(|&pos| pos >= cut) {
            Some(skip) => next[i] += skip,
            None => {
                return Err(match closure.pulled(a.actor) {
                    Pull::Order(index) => Some(index),
                    _ => None,
                });
            }
        }
    }
}

/// Names the order into the event at window index `index`.
fn describe_order(trace: &Trace, log: &Log, index: u32) -> String {
    let event = log.events[index as usize];
    let actor = log.actors[event.actor as usize].describe(trace);
    let site =
        |s: Option<_>| s.map_or_else(|| "an unknown site".to_owned(), |s| trace.site_text(s));
    let cross = (event.cross != NONE).then(|| log.events[event.cross as usize]);
    match (event.kind, cross) {
        ("thread_joined" | "task_joined", _) => {
            format!("the join by {actor} at {}", site(event.site))
        }
        ("receive", Some(send)) => format!("the message sent at {}", site(send.site)),
        ("read", Some(write)) => {
            format!("what the read at {} saw (the write at {})", site(event.site), site(write.site))
        }
        ("sync_acquire", Some(release)) => {
            format!("the release annotation at {}", site(release.site))
        }
        ("poll_started", Some(wake)) => format!("the wake at {}", site(wake.site)),
        (_, Some(spawn)) if event.pos == 0 => {
            format!("the spawn of {actor} at {}", site(spawn.site))
        }
        _ => format!("the order into {} at {}", event.kind, site(event.site)),
    }
}

/// The deciding steps of a witness: each actor's cut point that something forced (its last
/// event in the closure), in trace order, then each actor of the pattern asking: the
/// writers queued on read-held locks (`pattern[cycle..]`) first.
fn schedule(
    trace: &Trace,
    log: &Log,
    pattern: &[&Abstract],
    cycle: usize,
    closure: &Closure<'_>,
    chosen: &[u32],
    rank: &dyn Fn(u32) -> usize,
) -> Vec<WitnessStep> {
    let name = |lock: LockId| instance_name(trace, pattern, lock);
    let mut cuts: Vec<(u32, WitnessStep)> = Vec::new();
    for actor in 0..log.actors.len() as u32 {
        let cut = closure.cut(actor);
        let in_pattern = pattern.iter().any(|a| a.actor == actor);
        if cut == 0 || cut == BEYOND || (!in_pattern && closure.pulled(actor) == Pull::Seed) {
            continue;
        }
        let index = log.by_actor[actor as usize][cut as usize - 1];
        let event = log.events[index as usize];
        // The runtime's own tasks (worker threads, `block_on`) and steps that order nothing
        // tell a reader nothing.
        let runtime = is_runtime_task(trace, log.actors[actor as usize]);
        let what = match event.step {
            Step::Acquire { lock, .. } => format!("takes `{}`", name(lock)),
            Step::Release { lock } => format!("releases `{}`", name(lock)),
            Step::Spawn { child } if is_runtime_task(trace, child) => continue,
            Step::Spawn { child } => format!("spawns {}", child.describe(trace)),
            Step::JoinWait { target } => format!("joins {}", target.describe(trace)),
            Step::Other if ordering(event.kind) => action(event.kind).to_owned(),
            Step::Other => continue,
        };
        if runtime && !in_pattern {
            continue;
        }
        cuts.push((index, step(trace, log, actor, &event, format!("runs until it {what}"))));
    }
    cuts.sort_by_key(|(index, _)| rank(*index));
    let mut steps: Vec<WitnessStep> = cuts.into_iter().map(|(_, s)| s).collect();
    // Writers queued on a lock ask first, so that the readers after them wait.
    let mut asks: Vec<(bool, WitnessStep)> = Vec::new();
    for (i, (a, &pos)) in pattern.iter().zip(chosen).enumerate() {
        let event = *log.at(a.actor, pos);
        let (first, what) = match a.want {
            Want::Lock(lock, mode) => (
                i >= cycle,
                format!(
                    "asks for `{}`{} and waits",
                    name(lock),
                    if mode == LockMode::Shared { " (read)" } else { "" }
                ),
            ),
            Want::End(x) => {
                let holding: Vec<String> =
                    a.held.iter().map(|h| format!("`{}`", name(h.lock))).collect();
                let holding = if holding.is_empty() {
                    String::new()
                } else {
                    format!(", holding {}", holding.join(", "))
                };
                let child = log.actors[x as usize].describe(trace);
                (i >= cycle, format!("waits for {child} to finish{holding}"))
            }
        };
        asks.push((!first, step(trace, log, a.actor, &event, what)));
    }
    asks.sort_by_key(|(later, _)| *later);
    steps.extend(asks.into_iter().map(|(_, s)| s));
    steps
}

/// How a witness names `lock`: its name, and its id when another lock of the pattern has the
/// same name (two locks made at one line), as the finding names them (`pool #0`).
fn instance_name(trace: &Trace, pattern: &[&Abstract], lock: LockId) -> String {
    let wanted = pattern.iter().filter_map(|a| match a.want {
        Want::Lock(wanted, _) => Some(wanted),
        Want::End(_) => None,
    });
    let held = pattern.iter().flat_map(|a| a.held.iter().map(|h| h.lock));
    super::instance_name(trace, wanted.chain(held), lock)
}

/// One step of a witness.
fn step(
    trace: &Trace,
    log: &Log,
    actor: u32,
    event: &super::log::Logged,
    what: String,
) -> WitnessStep {
    WitnessStep {
        actor: log.actors[actor as usize].describe(trace),
        event: what,
        site: event.site.map(|s| trace.site_text(s)),
        time_ns: event.time_ns,
    }
}

/// Whether an event of kind `kind` orders another actor's (so a witness step may rest on it).
fn ordering(kind: &str) -> bool {
    matches!(kind, "send" | "receive" | "read" | "write" | "sync_release" | "sync_acquire")
}

/// What an event of kind `kind` (one that [orders](ordering)) does, as a witness step says it.
fn action(kind: &str) -> &'static str {
    match kind {
        "send" => "sends a message",
        "receive" => "receives a message",
        "read" => "reads",
        "write" => "writes",
        _ => "synchronises",
    }
}

/// Whether `actor` is one of the async runtime's own tasks (a worker thread's or a
/// `block_on`'s), not one of the program's.
fn is_runtime_task(trace: &Trace, actor: crate::replay::Actor) -> bool {
    matches!(actor, crate::replay::Actor::Task(task) if trace.is_runtime_container(task))
}

/// The acquisitions (lock, place in its list) that the actors of `pattern` hold when they
/// ask at `chosen`.
fn pinned_holds(log: &Log, pattern: &[&Abstract], chosen: &[u32]) -> HashSet<(LockId, u32)> {
    let mut pinned = HashSet::default();
    for (a, &pos) in pattern.iter().zip(chosen) {
        for h in a.held.iter().filter(|h| h.inherited_from.is_none()) {
            let Some(list) = log.locks.get(&h.lock) else { continue };
            let open = list.iter().rposition(|x| {
                x.actor == a.actor
                    && (x.pos == NONE || x.pos < pos)
                    && (x.release == NONE || x.release > pos)
            });
            if let Some(at) = open {
                pinned.insert((h.lock, at as u32));
            }
        }
    }
    pinned
}

/// For each child among `items` that holds its lock of the cycle (`wanted` by the item before
/// it) only as its parent's, the parent stuck at its join of the child, holding it; `None` if
/// such a join is not in the window.
fn parent_joins(log: &Log, items: &[&Abstract], wanted: &[Node]) -> Option<Vec<Abstract>> {
    let k = items.len();
    let mut joins: Vec<Abstract> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let child = log.actors[item.actor as usize];
        let on_cycle = wanted[(i + k - 1) % k];
        for h in item.held.iter().filter(|h| Node::Lock(h.lock) == on_cycle) {
            let Some(parent) = h.inherited_from else { continue };
            let parent = log.actor_index(parent)?;
            if let Some(join) = joins.iter_mut().find(|j| j.actor == parent) {
                join.held.push(Held { inherited_from: None, ..*h });
                continue;
            }
            let pos = log.by_actor[parent as usize].iter().position(|&index| {
                log.events[index as usize].step == Step::JoinWait { target: child }
            })?;
            joins.push(Abstract {
                actor: parent,
                want: Want::End(item.actor),
                held: vec![Held { inherited_from: None, ..*h }],
                instances: vec![pos as u32],
            });
        }
    }
    Some(joins)
}
