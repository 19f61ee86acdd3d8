//! Soundness of predicted races, against brute force: on random programs of up to ~12 steps
//! (threads, a task, mutexes, read-write locks, spawn/join), enumerate every correct reordering of the
//! trace — each thread's program order, spawn before the child, the child's end before its
//! join, locks held per their mode, and every read seeing the same write as in the trace (the
//! racing pair exempt) — and check that
//!
//! - every SHB race is witnessed by a reordering after which its two accesses are both next
//!   (so can run back to back);
//! - the first WCP race, and the first HB race, are witnessed so, or some reordering
//!   deadlocks (WCP is weakly sound);
//! - every schedule the analyzer gives (SHB and WCP) passes the program's constraints, so
//!   brute force finds its race too, and WCP races are errors exactly when proved.
//!
//! It also counts, per relation, the share of the oracle's racy accesses it finds
//! (`cargo test -p hindsight-analyzer --test predicted_races_are_witnessed_by_reorderings --
//! --nocapture` prints them; `RACE_WITNESS_PROGRAMS` sets how many programs).

mod common;
mod race_support;

use hindsight_analyzer::causality::Relation;
use race_support::{check_witnesses, generate, program_order, reported, Features, Op, Program};
use std::collections::{BTreeSet, HashSet};

/// Programs of threads (and a task, a logical thread) and locks only: the setting of the SHB
/// and WCP papers.
const FEATURES: Features = Features {
    threads: 2,
    tasks: 1,
    vars: 2,
    mutexes: 2,
    rwlocks: 1,
    messages: false,
    wakes: false,
    annotations: false,
};

/// What brute force says of a program.
#[derive(Debug, Default)]
struct Truth {
    /// Pairs of steps (earlier, later in the trace) that some correct reordering makes both
    /// next.
    races: BTreeSet<(usize, usize)>,
    /// Whether some correct reordering deadlocks.
    deadlocks: bool,
}

/// A point of a reordering: how many steps of each actor ran, the lock holders, each
/// variable's last write (a step), and which children were spawned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Point {
    done: Vec<usize>,
    exclusive: Vec<Option<usize>>,
    shared: Vec<u8>,
    last_write: Vec<Option<usize>>,
    spawned: Vec<bool>,
}

struct Explorer<'a> {
    /// Per actor, the indices of its steps, in order.
    steps_of: Vec<Vec<usize>>,
    program: &'a Program,
    /// Per step, the write its read saw in the trace.
    saw: Vec<Option<usize>>,
    seen: HashSet<Point>,
    truth: Truth,
}

impl Explorer<'_> {
    fn next(&self, point: &Point, actor: usize) -> Option<usize> {
        if !point.spawned[actor] {
            return None;
        }
        self.steps_of[actor].get(point.done[actor]).copied()
    }

    /// Whether `step` can run at `point`, its read exempt if `exempt`.
    fn enabled(&self, point: &Point, step: usize, exempt: bool) -> bool {
        let s = self.program.steps[step];
        match s.op {
            Op::Read(var) => exempt || point.last_write[var as usize] == self.saw[step],
            Op::Acquire(lock, shared) => {
                let l = lock as usize;
                point.exclusive[l].is_none() && (shared || point.shared[l] == 0)
            }
            Op::Join(child) => point.done[child] == self.steps_of[child].len(),
            _ => true,
        }
    }

    fn run(&self, point: &Point, step: usize) -> Point {
        let mut next = point.clone();
        let s = self.program.steps[step];
        next.done[s.actor] += 1;
        match s.op {
            Op::Write(var) => next.last_write[var as usize] = Some(step),
            Op::Acquire(lock, true) => next.shared[lock as usize] += 1,
            Op::Acquire(lock, false) => next.exclusive[lock as usize] = Some(s.actor),
            Op::Release(lock, true) => next.shared[lock as usize] -= 1,
            Op::Release(lock, false) => next.exclusive[lock as usize] = None,
            Op::Spawn(child) => next.spawned[child] = true,
            _ => {}
        }
        next
    }

    /// Whether actors wait on each other's locks in a cycle at `point`.
    fn deadlocked(&self, point: &Point) -> bool {
        let n = self.steps_of.len();
        // waits[a] = the actor holding exclusively the lock a's next step asks for.
        let waits: Vec<Option<usize>> = (0..n)
            .map(|a| {
                let step = self.next(point, a)?;
                match self.program.steps[step].op {
                    Op::Acquire(lock, _) => point.exclusive[lock as usize].filter(|&h| h != a),
                    _ => None,
                }
            })
            .collect();
        (0..n).any(|start| {
            let mut at = start;
            for _ in 0..n {
                match waits[at] {
                    Some(holder) if holder == start => return true,
                    Some(holder) => at = holder,
                    None => return false,
                }
            }
            false
        })
    }

    fn explore(&mut self, point: Point) {
        if !self.seen.insert(point.clone()) {
            return;
        }
        let n = self.steps_of.len();
        let next: Vec<Option<usize>> = (0..n).map(|a| self.next(&point, a)).collect();
        for a in 0..n {
            for b in a + 1..n {
                let (Some(x), Some(y)) = (next[a], next[b]) else { continue };
                let (sx, sy) = (self.program.steps[x], self.program.steps[y]);
                let (Some((vx, wx)), Some((vy, wy))) = (sx.op.access(), sy.op.access()) else {
                    continue;
                };
                if vx == vy && (wx || wy) {
                    self.truth.races.insert((x.min(y), x.max(y)));
                }
            }
        }
        if self.deadlocked(&point) {
            self.truth.deadlocks = true;
        }
        for step in next.into_iter().flatten() {
            if self.enabled(&point, step, false) {
                let after = self.run(&point, step);
                self.explore(after);
            }
        }
    }
}

/// Every correct reordering of `program`, explored.
fn brute_force(program: &Program) -> Truth {
    let n = program.actors.len();
    let (steps_of, saw) = program_order(program, |_| true);
    let locks = (program.features.mutexes + program.features.rwlocks) as usize;
    let mut spawned = vec![false; n];
    spawned[0] = true;
    let start = Point {
        done: vec![0; n],
        exclusive: vec![None; locks],
        shared: vec![0; locks],
        last_write: vec![None; program.features.vars as usize],
        spawned,
    };
    let mut explorer =
        Explorer { steps_of, program, saw, seen: HashSet::new(), truth: Truth::default() };
    explorer.explore(start);
    explorer.truth
}

/// Per relation: what it found of the oracle's racy accesses, and what it reported.
#[derive(Debug, Default, Clone, Copy)]
struct Share {
    found: usize,
    /// Pairs reported.
    reported: usize,
    /// Of those, pairs brute force finds no reordering for.
    reported_not_real: usize,
    /// Of those, pairs with a schedule (SHB and WCP).
    with_schedule: usize,
}

#[test]
fn predicted_races_are_witnessed_and_their_shares_counted() {
    let programs: u64 =
        std::env::var("RACE_WITNESS_PROGRAMS").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    let mut racy_total = 0;
    let mut shares = [Share::default(); 3];
    let mut with_races = 0;
    for seed in 0..programs {
        let program = generate(seed, 12, FEATURES);
        let truth = brute_force(&program);
        let racy: BTreeSet<usize> = truth.races.iter().map(|&(_, later)| later).collect();
        racy_total += racy.len();
        with_races += usize::from(!racy.is_empty());
        for (relation, share) in Relation::ALL.into_iter().zip(&mut shares) {
            let found = reported(&program, relation);
            if let Err(problem) = check_witnesses(&program, relation, &found) {
                panic!("{problem}: {program:?}");
            }
            let real = |r: &race_support::Reported| truth.races.contains(&(r.earlier, r.later));
            match relation {
                Relation::Shb => {
                    for race in &found {
                        assert!(real(race), "SHB race {race:?} not witnessed: {program:?}");
                    }
                }
                Relation::Hb | Relation::Wcp => {
                    if let Some(first) = found.first() {
                        assert!(
                            real(first) || truth.deadlocks,
                            "first {relation} race {first:?} neither witnessed nor a deadlock: {program:?}"
                        );
                    }
                }
            }
            // A schedule the analyzer built is a correct reordering, so brute force finds it.
            for race in found.iter().filter(|r| r.witness.is_some()) {
                assert!(real(race), "{relation} race {race:?} has a schedule brute force lacks");
            }
            let later: BTreeSet<usize> = found.iter().map(|r| r.later).collect();
            share.found += later.intersection(&racy).count();
            share.reported += found.len();
            share.reported_not_real += found.iter().filter(|r| !real(r)).count();
            share.with_schedule += found.iter().filter(|r| r.witness.is_some()).count();
        }
    }
    eprintln!(
        "{programs} programs of 12 steps, {with_races} with races, {racy_total} racy accesses"
    );
    for (relation, share) in Relation::ALL.into_iter().zip(shares) {
        eprintln!(
            "{relation}: found {} of {racy_total} racy accesses ({:.1}%); of {} reported pairs, {} not witnessed by brute force, {} with a schedule",
            share.found,
            100.0 * share.found as f64 / racy_total.max(1) as f64,
            share.reported,
            share.reported_not_real,
            share.with_schedule,
        );
    }
    assert!(with_races > 0, "the programs race sometimes");
}

/// The oracle itself: an unlocked write racing a locked one is found, and a lock-order
/// inversion deadlocks.
#[test]
fn the_oracle_sees_a_plain_race_and_a_deadlock() {
    use race_support::{Kind, Step};
    let step = |actor, op| Step { actor, op };
    let program = Program {
        actors: vec![Kind::Thread, Kind::Thread],
        features: FEATURES,
        steps: vec![
            step(0, Op::Spawn(1)),
            step(0, Op::Acquire(0, false)),
            step(0, Op::Write(0)),
            step(0, Op::Release(0, false)),
            step(1, Op::Write(0)),
        ],
    };
    assert_eq!(brute_force(&program).races, BTreeSet::from([(2, 4)]));
    let inversion = Program {
        actors: vec![Kind::Thread, Kind::Thread],
        features: FEATURES,
        steps: vec![
            step(0, Op::Spawn(1)),
            step(0, Op::Acquire(0, false)),
            step(0, Op::Acquire(1, false)),
            step(0, Op::Release(1, false)),
            step(0, Op::Release(0, false)),
            step(1, Op::Acquire(1, false)),
            step(1, Op::Acquire(0, false)),
            step(1, Op::Release(0, false)),
            step(1, Op::Release(1, false)),
        ],
    };
    assert!(brute_force(&inversion).deadlocks);
}
