//! Random small concurrent programs for the race tests: a valid interleaving of threads and
//! tasks that access variables, take mutexes and read-write locks, spawn and join, send and
//! receive messages, wake tasks and annotate release/acquire — as abstract steps (for oracles)
//! and as a built trace (for the analyzer). Every step has its own site, on line `index + 1`
//! of file `p`, so that a finding's sites name the steps.
#![allow(dead_code)]

use crate::common::Rng;
use hindsight_analyzer::causality::Relation;
use hindsight_analyzer::report::{Detail, Severity};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind};
use hindsight_recorder::format::{EventKind, TraceBuilder, VarId};
use std::collections::{HashMap, HashSet};

/// What an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An OS thread (actor 0, `main`, runs from the start).
    Thread,
    /// A task, polled on the `runtime` thread.
    Task,
}

/// One step of one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read(u32),
    Write(u32),
    /// Acquire lock `.0`, shared if `.1`.
    Acquire(u32, bool),
    Release(u32, bool),
    Spawn(usize),
    Join(usize),
    Finish,
    Send(u64),
    Receive(u64),
    Wake(usize),
    SyncRelease,
    SyncAcquire,
}

impl Op {
    /// The variable of an access, and whether it is a write.
    pub fn access(self) -> Option<(u32, bool)> {
        match self {
            Op::Read(var) => Some((var, false)),
            Op::Write(var) => Some((var, true)),
            _ => None,
        }
    }
}

/// A step: `actor` does `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub actor: usize,
    pub op: Op,
}

/// Which operations a program may use.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub threads: usize,
    pub tasks: usize,
    pub vars: u32,
    pub mutexes: u32,
    /// Read-write locks, numbered after the mutexes.
    pub rwlocks: u32,
    pub messages: bool,
    pub wakes: bool,
    pub annotations: bool,
}

impl Features {
    /// Everything the analyzer orders by.
    pub const ALL: Features = Features {
        threads: 3,
        tasks: 2,
        vars: 2,
        mutexes: 2,
        rwlocks: 1,
        messages: true,
        wakes: true,
        annotations: true,
    };
}

/// A program: its actors (actor 0 is `main`) and its interleaving.
#[derive(Debug, Clone)]
pub struct Program {
    pub actors: Vec<Kind>,
    pub features: Features,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default)]
struct ActorState {
    spawned: bool,
    finished: bool,
    joined: bool,
    holds: Vec<(u32, bool)>,
}

/// A random valid program of about `len` steps.
pub fn generate(seed: u64, len: usize, features: Features) -> Program {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut actors = vec![Kind::Thread];
    actors.extend(std::iter::repeat_n(Kind::Thread, rng.below(features.threads + 1)));
    actors.extend(std::iter::repeat_n(Kind::Task, rng.below(features.tasks + 1)));
    let mut state = vec![ActorState::default(); actors.len()];
    state[0].spawned = true;
    let locks = features.mutexes + features.rwlocks;
    // Per lock: exclusive holder, shared holders.
    let mut exclusive: Vec<Option<usize>> = vec![None; locks as usize];
    let mut shared: Vec<usize> = vec![0; locks as usize];
    let mut in_flight: Vec<u64> = Vec::new();
    let mut next_message = 0u64;
    let mut steps = Vec::new();
    let mut attempts = 0;
    while steps.len() < len && attempts < len * 20 {
        attempts += 1;
        let live: Vec<usize> =
            (0..actors.len()).filter(|&a| state[a].spawned && !state[a].finished).collect();
        if live.is_empty() {
            break;
        }
        let actor = live[rng.below(live.len())];
        if locks > 0 && rng.below(4) == 0 {
            // A critical section around one access, as programs write them.
            let lock = rng.below(locks as usize) as u32;
            let held = state[actor].holds.iter().any(|&(l, _)| l == lock);
            let var = rng.below(features.vars as usize) as u32;
            let write = rng.below(2) == 0;
            let is_shared = lock >= features.mutexes && !write && rng.below(2) == 0;
            let free =
                exclusive[lock as usize].is_none() && (is_shared || shared[lock as usize] == 0);
            if !held && free && steps.len() + 3 <= len {
                let access = if write { Op::Write(var) } else { Op::Read(var) };
                for op in [Op::Acquire(lock, is_shared), access, Op::Release(lock, is_shared)] {
                    steps.push(Step { actor, op });
                }
            }
            continue;
        }
        let op = match rng.below(12) {
            0..=3 => {
                let var = rng.below(features.vars as usize) as u32;
                if rng.below(2) == 0 {
                    Op::Read(var)
                } else {
                    Op::Write(var)
                }
            }
            4 | 5 if locks > 0 => {
                let lock = rng.below(locks as usize) as u32;
                let want_shared = lock >= features.mutexes && rng.below(2) == 0;
                let held = state[actor].holds.iter().any(|&(l, _)| l == lock);
                let free = exclusive[lock as usize].is_none()
                    && (want_shared || shared[lock as usize] == 0);
                if held || !free {
                    continue;
                }
                Op::Acquire(lock, want_shared)
            }
            6 => {
                let Some(&(lock, is_shared)) = state[actor].holds.last() else { continue };
                Op::Release(lock, is_shared)
            }
            7 => {
                let unspawned: Vec<usize> =
                    (1..actors.len()).filter(|&a| !state[a].spawned).collect();
                if unspawned.is_empty() {
                    continue;
                }
                Op::Spawn(unspawned[rng.below(unspawned.len())])
            }
            8 => {
                let done: Vec<usize> = (1..actors.len())
                    .filter(|&a| state[a].finished && !state[a].joined && a != actor)
                    .collect();
                if done.is_empty() {
                    if actor != 0 && state[actor].holds.is_empty() && rng.below(3) == 0 {
                        Op::Finish
                    } else {
                        continue;
                    }
                } else {
                    Op::Join(done[rng.below(done.len())])
                }
            }
            9 if features.messages => {
                if !in_flight.is_empty() && rng.below(2) == 0 {
                    Op::Receive(in_flight.swap_remove(rng.below(in_flight.len())))
                } else {
                    next_message += 1;
                    in_flight.push(next_message);
                    Op::Send(next_message)
                }
            }
            10 if features.wakes => {
                let tasks: Vec<usize> = (0..actors.len())
                    .filter(|&a| actors[a] == Kind::Task && state[a].spawned && a != actor)
                    .filter(|&a| !state[a].finished)
                    .collect();
                if tasks.is_empty() {
                    continue;
                }
                Op::Wake(tasks[rng.below(tasks.len())])
            }
            11 if features.annotations => {
                if rng.below(2) == 0 {
                    Op::SyncRelease
                } else {
                    Op::SyncAcquire
                }
            }
            _ => continue,
        };
        match op {
            Op::Acquire(lock, true) => shared[lock as usize] += 1,
            Op::Acquire(lock, false) => exclusive[lock as usize] = Some(actor),
            Op::Release(lock, true) => shared[lock as usize] -= 1,
            Op::Release(lock, false) => exclusive[lock as usize] = None,
            Op::Spawn(child) => state[child].spawned = true,
            Op::Join(child) => state[child].joined = true,
            Op::Finish => state[actor].finished = true,
            _ => {}
        }
        match op {
            Op::Acquire(lock, is_shared) => state[actor].holds.push((lock, is_shared)),
            Op::Release(..) => drop(state[actor].holds.pop()),
            _ => {}
        }
        steps.push(Step { actor, op });
    }
    Program { actors, features, steps }
}

/// The trace of `program`, as the recorder would write it, with the time of each step's event
/// (every event has its own time).
pub fn build(program: &Program) -> (TraceBuilder, Vec<u64>) {
    let mut b = TraceBuilder::new("random");
    let runtime = b.thread("runtime");
    let mut threads = Vec::new();
    let mut tasks = Vec::new();
    for (index, kind) in program.actors.iter().enumerate() {
        match kind {
            Kind::Thread => threads.push(Some(b.thread(&format!("a{index}")))),
            Kind::Task => threads.push(None),
        }
        tasks.push((*kind == Kind::Task).then(|| b.task(&format!("a{index}"), None)));
    }
    let f = program.features;
    let vars: Vec<VarId> = (0..f.vars).map(|v| b.variable(&format!("v{v}"))).collect();
    let mut locks = Vec::new();
    for m in 0..f.mutexes {
        locks.push(b.mutex(&format!("m{m}")));
    }
    for r in 0..f.rwlocks {
        locks.push(b.rwlock(&format!("rw{r}")));
    }
    let sync_object = b.variable("sync");
    let channel = b.channel("ch");
    let mut started = vec![false; program.actors.len()];
    started[0] = true;
    let mut times = Vec::new();
    for (index, step) in program.steps.iter().enumerate() {
        let site = b.site("p", index as u32 + 1, 0);
        let a = step.actor;
        let actor = match (threads[a], tasks[a]) {
            (Some(thread), _) => {
                if !started[a] {
                    started[a] = true;
                    b.on(thread).start();
                }
                b.on(thread)
            }
            (None, Some(task)) => b.in_task(runtime, task).poll_start(),
            (None, None) => unreachable!("an actor is a thread or a task"),
        };
        match step.op {
            Op::Read(var) => actor.read(vars[var as usize], site),
            Op::Write(var) => actor.write(vars[var as usize], site),
            Op::Acquire(lock, false) => actor.acquire(locks[lock as usize], site),
            Op::Acquire(lock, true) => actor.acquire_shared(locks[lock as usize], site),
            Op::Release(lock, false) => actor.release(locks[lock as usize]),
            Op::Release(lock, true) => actor.release_shared(locks[lock as usize]),
            Op::Spawn(child) => match (threads[child], tasks[child]) {
                (Some(thread), _) => actor.spawn_thread(thread, Some(site)),
                (_, Some(task)) => actor.spawn_task(task, Some(site)),
                _ => unreachable!("an actor is a thread or a task"),
            },
            Op::Join(child) => match (threads[child], tasks[child]) {
                (Some(thread), _) => actor.join_thread(thread, Some(site)),
                (_, Some(task)) => actor.join_task(task, Some(site)),
                _ => unreachable!("an actor is a thread or a task"),
            },
            Op::Finish if tasks[a].is_some() => actor.poll_end(true).finish_task(),
            Op::Finish => actor.finish(),
            Op::Send(message) => actor.send(channel, message, site),
            Op::Receive(message) => actor.receive(channel, message, site),
            Op::Wake(task) => actor.wake(tasks[task].expect("only tasks are woken")),
            Op::SyncRelease => actor.event(EventKind::SyncRelease { var: sync_object, site }),
            Op::SyncAcquire => actor.event(EventKind::SyncAcquire { var: sync_object, site }),
        };
        times.push(b.events().last().expect("a step adds an event").time_ns);
        if let (Some(task), false) = (tasks[a], step.op == Op::Finish) {
            let _ = b.in_task(runtime, task).poll_end(false);
        }
    }
    (b, times)
}

/// A race as the analyzer reports it: the steps of its earlier and later accesses, its
/// severity, and the steps of its witness schedule (the moved steps, then the two
/// accesses), if it has one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reported {
    pub earlier: usize,
    pub later: usize,
    pub error: bool,
    pub witness: Option<Vec<usize>>,
}

/// The step a site `p:LINE:0` names.
fn step_of(site: &str) -> usize {
    let line = site.split(':').nth(1).expect("a site has a line");
    line.parse::<usize>().expect("a line number") - 1
}

/// The races `relation` reports on `program`, in report order.
pub fn reported(program: &Program, relation: Relation) -> Vec<Reported> {
    let options = AnalyzeOptions { races: relation, ..AnalyzeOptions::default() };
    let (builder, times) = build(program);
    let step_at: HashMap<u64, usize> = times.into_iter().zip(0..).collect();
    let bytes = builder.build();
    let report = analyze_bytes(vec![("random.trace".to_owned(), bytes)], &options)
        .expect("a built trace is analysed");
    report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::DataRace)
        .map(|f| {
            let Detail::DataRace(detail) = &f.detail else { panic!("{:?}", f.detail) };
            // A task's polls are no steps of the program.
            let witness = (!detail.witness.is_empty()).then(|| {
                detail.witness.iter().filter_map(|s| step_at.get(&s.time_ns).copied()).collect()
            });
            Reported {
                earlier: step_of(&detail.first.site),
                later: step_of(&detail.second.site),
                error: f.severity == Severity::Error,
                witness,
            }
        })
        .collect()
}

/// Per actor, the indices of its steps that `keep` keeps, in order; and per step, the write
/// (a step) that its read saw in the trace.
pub fn program_order(
    program: &Program,
    keep: impl Fn(&usize) -> bool,
) -> (Vec<Vec<usize>>, Vec<Option<usize>>) {
    let mut steps_of = vec![Vec::new(); program.actors.len()];
    let mut saw = vec![None; program.steps.len()];
    let mut last = vec![None; program.features.vars as usize];
    for (index, step) in program.steps.iter().enumerate() {
        if keep(&index) {
            steps_of[step.actor].push(index);
        }
        match step.op {
            Op::Read(var) => saw[index] = last[var as usize],
            Op::Write(var) => last[var as usize] = Some(index),
            _ => {}
        }
    }
    (steps_of, saw)
}

/// Checks a witness schedule of the race (`earlier`, `later`): running every step recorded
/// before the earliest step of `witness` as recorded, then `witness` in its order (`earlier`
/// and `later` last), must be a correct run of `program` — each actor's steps in program order, a child after its
/// spawn, a join after the child's last step, locks held per their mode, a message received
/// after it was sent, an acquire annotation after the release annotations recorded before it,
/// and every read but the racing pair's seeing the write it saw in the trace — that ends with
/// the two accesses back to back. (A thread's end is no event of the trace: it ends after its
/// last step.)
pub fn check_witness(
    program: &Program,
    earlier: usize,
    later: usize,
    witness: &[usize],
) -> Result<(), String> {
    let steps = &program.steps;
    if witness.len() < 2 || witness[witness.len() - 2..] != [earlier, later] {
        return Err(format!("the schedule {witness:?} does not end with {earlier}, {later}"));
    }
    let (Some((v1, w1)), Some((v2, w2))) = (steps[earlier].op.access(), steps[later].op.access())
    else {
        return Err("the racing steps are not accesses".to_owned());
    };
    if v1 != v2 || !(w1 || w2) || steps[earlier].actor == steps[later].actor {
        return Err("the racing steps do not conflict".to_owned());
    }
    let is_step = |index: &usize| {
        let step = steps[*index];
        !(step.op == Op::Finish && program.actors[step.actor] == Kind::Thread)
    };
    let n = program.actors.len();
    let (steps_of, saw) = program_order(program, is_step);
    let locks = (program.features.mutexes + program.features.rwlocks) as usize;
    let mut exclusive: Vec<Option<usize>> = vec![None; locks];
    let mut shared = vec![0usize; locks];
    let mut last_write = vec![None; program.features.vars as usize];
    let mut done = vec![0usize; n];
    let mut spawned = vec![false; n];
    spawned[0] = true;
    let mut sent = HashSet::new();
    let mut run = HashSet::new();
    let start = witness.iter().copied().min().unwrap_or(earlier);
    for index in (0..start).chain(witness.iter().copied()).filter(is_step) {
        let step = steps[index];
        let a = step.actor;
        if !run.insert(index) {
            return Err(format!("step {index} runs twice"));
        }
        if steps_of[a].get(done[a]) != Some(&index) {
            return Err(format!("step {index} runs out of its actor's program order"));
        }
        if !spawned[a] {
            return Err(format!("step {index} runs before its actor is spawned"));
        }
        let racing = index == earlier || index == later;
        match step.op {
            Op::Read(var) if !racing && last_write[var as usize] != saw[index] => {
                return Err(format!("read {index} sees another write than in the trace"));
            }
            Op::Write(var) => last_write[var as usize] = Some(index),
            Op::Acquire(lock, is_shared) => {
                let l = lock as usize;
                if exclusive[l].is_some() || (!is_shared && shared[l] > 0) {
                    return Err(format!("step {index} acquires a held lock"));
                }
                if is_shared {
                    shared[l] += 1;
                } else {
                    exclusive[l] = Some(a);
                }
            }
            Op::Release(lock, true) => shared[lock as usize] -= 1,
            Op::Release(lock, false) => exclusive[lock as usize] = None,
            Op::Spawn(child) => spawned[child] = true,
            Op::Join(child) if done[child] != steps_of[child].len() => {
                return Err(format!("join {index} runs before its child's last step"));
            }
            Op::Send(message) => drop(sent.insert(message)),
            Op::Receive(message) if !sent.contains(&message) => {
                return Err(format!("receive {index} runs before its send"));
            }
            Op::SyncAcquire => {
                let mut released = (0..index).filter(|&r| steps[r].op == Op::SyncRelease);
                if let Some(missing) = released.find(|r| !run.contains(r)) {
                    return Err(format!(
                        "acquire annotation {index} runs before release {missing}"
                    ));
                }
            }
            _ => {}
        }
        done[a] += 1;
    }
    Ok(())
}

/// Checks the witnesses of the races `found` that `relation` reported on `program`: HB
/// builds none; every SHB race has one; every witness given passes [`check_witness`]; and a
/// WCP race is an error exactly when it is the first or has a witness (else "predicted,
/// unverified").
pub fn check_witnesses(
    program: &Program,
    relation: Relation,
    found: &[Reported],
) -> Result<(), String> {
    for (rank, race) in found.iter().enumerate() {
        match (&race.witness, relation) {
            (Some(_), Relation::Hb) => return Err(format!("HB built a witness: {race:?}")),
            (None, Relation::Shb) => return Err(format!("SHB race without a witness: {race:?}")),
            _ => {}
        }
        if let Some(witness) = &race.witness {
            check_witness(program, race.earlier, race.later, witness)
                .map_err(|e| format!("{relation} witness of {race:?}: {e}"))?;
        }
        let proved = relation != Relation::Wcp || rank == 0 || race.witness.is_some();
        if race.error != proved {
            return Err(format!("{relation} race {race:?} has the wrong severity"));
        }
    }
    Ok(())
}
