//! Deadlock prediction against a brute-force oracle: random programs of a few threads over a
//! few locks (with a spawn and a join), each recorded as one random schedule that completes.
//! The oracle runs every interleaving of the program and collects the deadlocks it can reach.
//! Every `lock-order-cycle` error must be one of them (soundness); every cycle refuted must
//! be none of them; and the test counts how many of the oracle's two-lock deadlocks are
//! reported as errors (completeness, printed with `--nocapture`).
//!
//! `HINDSIGHT_ORACLE_CASES` sets the number of programs (300 by default, for CI) and
//! `HINDSIGHT_ORACLE_SEED` the first seed.

mod common;

use common::{analyze, Rng};
use hindsight_analyzer::report::Detail;
use hindsight_analyzer::{FindingKind, Severity};
use hindsight_recorder::format::{LockId, ThreadId, TraceBuilder};
use std::collections::{BTreeSet, HashSet};

/// One step of a thread's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Acquire(usize),
    Release(usize),
    /// Starts thread `.0` (which does nothing before).
    Spawn(usize),
    /// Waits for thread `.0` to finish.
    Join(usize),
}

/// A random program: 3 threads over 3 locks; thread 0 spawns thread 2 and may join it.
fn program(rng: &mut Rng) -> Vec<Vec<Op>> {
    let locks = 3;
    let mut threads: Vec<Vec<Op>> = Vec::new();
    for _ in 0..3 {
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(2) {
            // A nest of one to three distinct locks.
            let depth = 1 + rng.below(3);
            let mut nest: Vec<usize> = Vec::new();
            while nest.len() < depth {
                let l = rng.below(locks);
                if !nest.contains(&l) {
                    nest.push(l);
                }
            }
            ops.extend(nest.iter().map(|&l| Op::Acquire(l)));
            // Releases in reverse, sometimes with a spawn or join inside the nest.
            ops.extend(nest.iter().rev().map(|&l| Op::Release(l)));
        }
        threads.push(ops);
    }
    let spawn_at = rng.below(threads[0].len() + 1);
    threads[0].insert(spawn_at, Op::Spawn(2));
    if rng.below(2) == 0 {
        let join_at = spawn_at + 1 + rng.below(threads[0].len() - spawn_at);
        threads[0].insert(join_at, Op::Join(2));
    }
    threads
}

/// A state of the program's run: per thread, how far it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Run {
    at: Vec<usize>,
}

impl Run {
    fn holder(&self, program: &[Vec<Op>], lock: usize) -> Option<usize> {
        (0..program.len()).find(|&t| {
            let done = &program[t][..self.at[t]];
            let taken = done.iter().filter(|&&op| op == Op::Acquire(lock)).count();
            let released = done.iter().filter(|&&op| op == Op::Release(lock)).count();
            taken > released
        })
    }

    fn started(&self, program: &[Vec<Op>], thread: usize) -> bool {
        thread != 2 || program[0][..self.at[0]].contains(&Op::Spawn(2))
    }

    fn finished(&self, program: &[Vec<Op>], thread: usize) -> bool {
        self.at[thread] == program[thread].len()
    }

    /// Whether `thread` can take its next step.
    fn can_step(&self, program: &[Vec<Op>], thread: usize) -> bool {
        if !self.started(program, thread) || self.finished(program, thread) {
            return false;
        }
        match program[thread][self.at[thread]] {
            Op::Acquire(lock) => self.holder(program, lock).is_none(),
            Op::Join(child) => self.finished(program, child),
            Op::Release(_) | Op::Spawn(_) => true,
        }
    }
}

/// Every deadlock reachable: per wait-for cycle of stuck threads, the locks its threads ask
/// for, in cycle order (each asks for a lock the next one holds), from the least; threads
/// stuck behind the cycle are not part of it, and a join in it is `None`.
fn deadlocks(program: &[Vec<Op>]) -> HashSet<Vec<Option<usize>>> {
    let mut found = HashSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![Run { at: vec![0; program.len()] }];
    while let Some(run) = stack.pop() {
        if !seen.insert(run.clone()) {
            continue;
        }
        let movable: Vec<usize> =
            (0..program.len()).filter(|&t| run.can_step(program, t)).collect();
        if movable.is_empty() {
            let stuck: Vec<usize> =
                (0..program.len()).filter(|&t| !run.finished(program, t)).collect();
            // Each stuck thread waits for one other: a lock's holder, or a joined child.
            let waits_for = |t: usize| match program[t].get(run.at[t]) {
                Some(&Op::Acquire(lock)) => run.holder(program, lock),
                Some(&Op::Join(child)) => Some(child),
                _ => None,
            };
            for &start in stuck.iter().filter(|&&t| run.started(program, t)) {
                let mut path = vec![start];
                while let Some(next) = waits_for(*path.last().expect("not empty")) {
                    if let Some(i) = path.iter().position(|&t| t == next) {
                        let asked = path[i..]
                            .iter()
                            .map(|&t| match program[t][run.at[t]] {
                                Op::Acquire(lock) => Some(lock),
                                _ => None,
                            })
                            .collect();
                        found.insert(from_least(asked));
                        break;
                    }
                    path.push(next);
                }
            }
        }
        for t in movable {
            let mut next = run.clone();
            next.at[t] += 1;
            stack.push(next);
        }
    }
    found
}

/// The rotation of a cycle that starts at its least element.
fn from_least<T: Ord + Clone>(mut cycle: Vec<T>) -> Vec<T> {
    if let Some(start) = (0..cycle.len()).min_by_key(|&i| cycle[i].clone()) {
        cycle.rotate_left(start);
    }
    cycle
}

/// Records one random complete schedule of `program`, or `None` if the one tried deadlocked.
fn record(program: &[Vec<Op>], rng: &mut Rng) -> Option<TraceBuilder> {
    let mut b = TraceBuilder::new("oracle");
    let threads: Vec<ThreadId> = (0..program.len()).map(|t| b.thread(&format!("T{t}"))).collect();
    let locks: Vec<LockId> = (0..3).map(|l| b.mutex(["A", "B", "C"][l])).collect();
    let sites: Vec<Vec<_>> = (0..program.len())
        .map(|t| {
            (0..program[t].len()).map(|i| b.site(&format!("t{t}.rs"), i as u32 + 1, 1)).collect()
        })
        .collect();
    let mut run = Run { at: vec![0; program.len()] };
    loop {
        let movable: Vec<usize> =
            (0..program.len()).filter(|&t| run.can_step(program, t)).collect();
        if movable.is_empty() {
            return (0..program.len()).all(|t| run.finished(program, t)).then_some(b);
        }
        let t = movable[rng.below(movable.len())];
        let site = sites[t][run.at[t]];
        let actor = b.on(threads[t]);
        match program[t][run.at[t]] {
            Op::Acquire(l) => actor.acquire(locks[l], site),
            Op::Release(l) => actor.release(locks[l]),
            Op::Spawn(c) => actor.spawn_thread(threads[c], Some(site)),
            Op::Join(c) => actor.join_thread(threads[c], Some(site)),
        };
        run.at[t] += 1;
    }
}

#[test]
fn lock_order_errors_are_deadlocks_the_oracle_reaches() {
    let cases: u64 =
        std::env::var("HINDSIGHT_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let seed: u64 =
        std::env::var("HINDSIGHT_ORACLE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let names = ["A", "B", "C"];
    let (mut real, mut reported, mut refuted, mut errors) = (0, 0, 0, 0);
    for case in seed..seed + cases {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ case.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let program = program(&mut rng);
        let Some(builder) = record(&program, &mut rng) else { continue };
        let reachable = deadlocks(&program);
        let report = analyze(&builder);
        let mut errored: HashSet<Vec<Option<usize>>> = HashSet::new();
        for finding in report.findings.iter().filter(|f| f.kind == FindingKind::LockOrderCycle) {
            let Detail::LockOrderCycle(detail) = &finding.detail else { continue };
            // The cycle's locks in order (each edge holds one and takes the next), a join
            // (the end of a thread) as `None`.
            let cycle: Vec<Option<usize>> = from_least(
                detail.edges.iter().map(|e| names.iter().position(|n| *n == e.to)).collect(),
            );
            let joins = cycle.contains(&None);
            let locks: BTreeSet<usize> = cycle.iter().flatten().copied().collect();
            // A child spawned and joined inside its parent's hold is reported as holding the
            // parent's lock: the oracle sees the join in the cycle.
            let through_join = |d: &Vec<Option<usize>>| {
                let theirs: BTreeSet<usize> = d.iter().flatten().copied().collect();
                d.contains(&None) && (locks == theirs || (joins && locks.is_subset(&theirs)))
            };
            let reached = reachable.contains(&cycle) || reachable.iter().any(through_join);
            match finding.severity {
                Severity::Error => {
                    errors += 1;
                    assert!(!detail.witness.is_empty(), "case {case}: an error without a witness");
                    assert!(
                        reached,
                        "case {case}: {:?} is an error but no schedule of {program:?} deadlocks \
                         so ({reachable:?})",
                        finding.title
                    );
                    errored.insert(cycle);
                }
                Severity::Info => {
                    refuted += 1;
                    assert!(
                        !reachable.contains(&cycle),
                        "case {case}: {:?} is refuted ({:?}) but {program:?} deadlocks so",
                        finding.title,
                        detail.reason
                    );
                }
                _ if detail.reason.as_deref().is_some_and(|r| r.starts_with("ordered by")) => {
                    refuted += 1;
                    assert!(
                        !reachable.contains(&cycle),
                        "case {case}: {:?} is ruled out by order ({:?}) but {program:?} \
                         deadlocks so",
                        finding.title,
                        detail.reason
                    );
                }
                _ => {}
            }
        }
        for deadlock in reachable.iter().filter(|d| d.len() == 2 && !d.contains(&None)) {
            real += 1;
            reported += usize::from(errored.contains(deadlock));
        }
    }
    println!(
        "{cases} programs: {errors} errors, all reachable deadlocks; {refuted} refuted cycles, \
         none reachable; {reported} of {real} two-lock deadlocks reported as errors"
    );
}
