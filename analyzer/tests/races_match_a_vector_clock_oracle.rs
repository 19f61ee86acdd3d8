//! The race detector is exact: on random programs (threads, tasks, mutexes, read-write locks,
//! spawn/join, messages, wakes, release/acquire annotations) it finds the same racy accesses as
//! an obviously correct oracle — the full vector clock of every step, every pair of accesses
//! compared — and every pair it reports is a racy pair of the oracle. In HB, and in SHB (the
//! oracle then also orders each read after the last write before it). In WCP, the oracle is
//! the relation's definition computed as a fixpoint over sets of steps. Every witness
//! schedule given passes the program's constraints (see `race_support::check_witnesses`).
//!
//! `RACE_ORACLE_CASES=300000 cargo test --release -p hindsight-analyzer --test
//! races_match_a_vector_clock_oracle` runs a large size.

mod common;
mod race_support;

use hindsight_analyzer::causality::Relation;
use proptest::prelude::*;
use race_support::{check_witnesses, generate, reported, Features, Kind, Op, Program};
use std::collections::{BTreeSet, HashMap};

/// A vector clock with one entry per actor.
type Clock = Vec<u32>;

fn join(into: &mut Clock, from: &Clock) {
    for (mine, theirs) in into.iter_mut().zip(from) {
        *mine = (*mine).max(*theirs);
    }
}

fn leq(a: &Clock, b: &Clock) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

/// The racy pairs (earlier step, later step) of `program` under HB, or SHB if `shb`.
fn oracle(program: &Program, shb: bool) -> BTreeSet<(usize, usize)> {
    let n = program.actors.len();
    let mut clocks: Vec<Clock> = vec![vec![0; n]; n];
    let locks = (program.features.mutexes + program.features.rwlocks) as usize;
    let mut exclusive_releases: Vec<Vec<Clock>> = vec![Vec::new(); locks];
    let mut shared_releases: Vec<Vec<Clock>> = vec![Vec::new(); locks];
    let mut messages: HashMap<u64, Clock> = HashMap::new();
    let mut wakes: Vec<Option<Clock>> = vec![None; n];
    let mut sync_object: Clock = vec![0; n];
    let mut last_write: HashMap<u32, Clock> = HashMap::new();
    // Every access so far: (step, actor, var, write, clock).
    let mut accesses: Vec<(usize, usize, u32, bool, Clock)> = Vec::new();
    let mut racy = BTreeSet::new();
    for (index, step) in program.steps.iter().enumerate() {
        let a = step.actor;
        clocks[a][a] += 1;
        if program.actors[a] == Kind::Task {
            if let Some(woken) = wakes[a].take() {
                join(&mut clocks[a], &woken);
            }
        }
        match step.op {
            Op::Read(var) | Op::Write(var) => {
                let write = matches!(step.op, Op::Write(_));
                let now = clocks[a].clone();
                for (earlier, actor, v, w, clock) in &accesses {
                    if *v == var && *actor != a && (write || *w) && !leq(clock, &now) {
                        racy.insert((*earlier, index));
                    }
                }
                accesses.push((index, a, var, write, now.clone()));
                if write {
                    last_write.insert(var, now);
                } else if shb {
                    if let Some(written) = last_write.get(&var) {
                        join(&mut clocks[a], written);
                    }
                }
            }
            Op::Acquire(lock, shared) => {
                let mut learnt = clocks[a].clone();
                for released in &exclusive_releases[lock as usize] {
                    join(&mut learnt, released);
                }
                if !shared {
                    for released in &shared_releases[lock as usize] {
                        join(&mut learnt, released);
                    }
                }
                clocks[a] = learnt;
            }
            Op::Release(lock, shared) => {
                let list = if shared { &mut shared_releases } else { &mut exclusive_releases };
                list[lock as usize].push(clocks[a].clone());
            }
            Op::Spawn(child) => {
                let parent = clocks[a].clone();
                join(&mut clocks[child], &parent);
            }
            Op::Join(child) => {
                let done = clocks[child].clone();
                join(&mut clocks[a], &done);
            }
            Op::Finish => {}
            Op::Send(message) => drop(messages.insert(message, clocks[a].clone())),
            Op::Receive(message) => {
                let sent = messages.remove(&message).expect("a program receives what was sent");
                join(&mut clocks[a], &sent);
            }
            Op::Wake(task) => join(wakes[task].get_or_insert_with(|| vec![0; n]), &clocks[a]),
            Op::SyncRelease => join(&mut sync_object, &clocks[a]),
            Op::SyncAcquire => join(&mut clocks[a], &sync_object),
        }
    }
    racy
}

/// Sets of steps, as bits (programs have at most 64 steps).
type Steps = u64;

/// The racy pairs (earlier step, later step) of `program` under WCP, by its definition
/// (Kini, Mathur, Viswanathan, PLDI 2017), computed as a fixpoint over relations between
/// steps: happens-before is the closure of program order, lock edges (a release before a
/// later acquisition of its lock, unless both are shared) and hard edges (spawn, join,
/// messages, wakes, annotations); WCP is the smallest relation that holds the hard edges,
/// rule (a) — a release before a later access, under the same lock (not both sections
/// shared), that conflicts with an access of the released section — and rule (b) — if a
/// section's acquisition is WCP-before the release of a later section on its lock (not both
/// shared), so is its release — and is closed under composition with happens-before on both
/// sides.
fn wcp_oracle(program: &Program) -> BTreeSet<(usize, usize)> {
    let steps = &program.steps;
    let n = steps.len();
    assert!(n <= 64, "a program of at most 64 steps");
    let bit = |i: usize| 1u64 << i;
    let mut hard: Vec<Steps> = vec![0; n];
    let mut hb: Vec<Steps> = vec![0; n];
    let mut last_of: Vec<Option<usize>> = vec![None; program.actors.len()];
    let mut spawned_at: Vec<Option<usize>> = vec![None; program.actors.len()];
    let mut wakes: Vec<Steps> = vec![0; program.actors.len()];
    // Per step holding locks: (lock, shared, acquisition step) of each section it is in.
    let mut holds: Vec<Vec<(u32, bool, usize)>> = vec![Vec::new(); program.actors.len()];
    let mut held_at: Vec<Vec<(u32, bool, usize)>> = vec![Vec::new(); n];
    // Sections: (actor, lock, shared, acquisition, release).
    let mut sections: Vec<(usize, u32, bool, usize, usize)> = Vec::new();
    for (j, step) in steps.iter().enumerate() {
        let a = step.actor;
        // A child's first step after its spawn, a woken task's next step after the wakes.
        let mut hard_in: Steps = std::mem::take(&mut wakes[a]);
        if last_of[a].is_none() {
            hard_in |= spawned_at[a].map_or(0, bit);
        }
        let mut lock_in: Steps = 0;
        match step.op {
            Op::Spawn(child) => spawned_at[child] = Some(j),
            Op::Join(child) => hard_in |= last_of[child].map_or(0, bit),
            Op::Receive(message) => {
                let send = (0..j).find(|&i| steps[i].op == Op::Send(message));
                hard_in |= send.map_or(0, bit);
            }
            Op::Wake(task) => wakes[task] |= bit(j),
            Op::SyncAcquire => {
                let releases = (0..j).filter(|&i| steps[i].op == Op::SyncRelease);
                hard_in |= releases.fold(0, |set, i| set | bit(i));
            }
            Op::Acquire(lock, shared) => {
                for (i, earlier) in steps[..j].iter().enumerate() {
                    if let Op::Release(l, released_shared) = earlier.op {
                        if l == lock && !(shared && released_shared) {
                            lock_in |= bit(i);
                        }
                    }
                }
                holds[a].push((lock, shared, j));
            }
            Op::Release(lock, _) => {
                let at = holds[a].iter().rposition(|h| h.0 == lock).expect("a held lock");
                let (_, shared, acquired) = holds[a].remove(at);
                sections.push((a, lock, shared, acquired, j));
            }
            _ => {}
        }
        hard[j] = hard_in;
        let direct = hard_in | lock_in | last_of[a].map_or(0, bit);
        hb[j] = (0..j).filter(|&i| direct & bit(i) != 0).fold(direct, |set, i| set | hb[i]);
        held_at[j] = holds[a].clone();
        last_of[a] = Some(j);
    }
    // The accesses of a section: its actor's, from its acquisition to its release.
    let accesses = |&(a, _, _, acquired, released): &(usize, u32, bool, usize, usize)| {
        (acquired..released).filter(move |&i| steps[i].actor == a && steps[i].op.access().is_some())
    };
    let conflict = |i: usize, j: usize| match (steps[i].op.access(), steps[j].op.access()) {
        (Some((x, wi)), Some((y, wj))) => x == y && (wi || wj) && steps[i].actor != steps[j].actor,
        _ => false,
    };
    // Rule (a) edges: release -> later access.
    let mut base: Vec<Steps> = hard.clone();
    for section in &sections {
        let &(a, lock, shared, _, released) = section;
        for j in released + 1..n {
            let under = held_at[j].iter().any(|&(l, s, _)| l == lock && !(s && shared));
            if steps[j].actor != a && under && accesses(section).any(|i| conflict(i, j)) {
                base[j] |= bit(released);
            }
        }
    }
    let mut wcp: Vec<Steps> = vec![0; n];
    loop {
        let before = (wcp.clone(), base.clone());
        for j in 0..n {
            let mut set = wcp[j];
            for i in 0..j {
                if base[j] & bit(i) != 0 {
                    set |= bit(i) | hb[i];
                }
                if hb[j] & bit(i) != 0 {
                    set |= wcp[i];
                }
            }
            wcp[j] = set;
        }
        // Rule (b).
        for &(a, lock, shared, acquired, released) in &sections {
            for &(b, l, s, later_acquired, later_released) in &sections {
                let ordered = l == lock && b != a && !(s && shared) && released < later_acquired;
                if ordered && wcp[later_released] & bit(acquired) != 0 {
                    base[later_released] |= bit(released);
                }
            }
        }
        if (&wcp, &base) == (&before.0, &before.1) {
            break;
        }
    }
    let unordered = |(i, j): &(usize, usize)| conflict(*i, *j) && wcp[*j] & bit(*i) == 0;
    (0..n).flat_map(|j| (0..j).map(move |i| (i, j))).filter(unordered).collect()
}

/// Checks the detector against the oracle on `program`.
fn check(program: &Program, relation: Relation) -> Result<(), TestCaseError> {
    let expected = oracle(program, relation == Relation::Shb);
    let found = reported(program, relation);
    let racy: BTreeSet<usize> = expected.iter().map(|&(_, later)| later).collect();
    let found_racy: BTreeSet<usize> = found.iter().map(|r| r.later).collect();
    prop_assert_eq!(&found_racy, &racy, "racy accesses in {}: {:?}", relation, program);
    for race in &found {
        prop_assert!(
            expected.contains(&(race.earlier, race.later)),
            "{relation} reported {race:?}, not a racy pair of the oracle: {program:?}"
        );
    }
    let witnesses = check_witnesses(program, relation, &found);
    prop_assert!(witnesses.is_ok(), "{}: {program:?}", witnesses.unwrap_err());
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RACE_ORACLE_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn hb_finds_exactly_the_racy_accesses_of_full_vector_clocks(seed in any::<u64>(), len in 4usize..40) {
        check(&generate(seed, len, Features::ALL), Relation::Hb)?;
    }

    #[test]
    fn wcp_finds_exactly_the_racy_accesses_of_its_definition(seed in any::<u64>(), len in 4usize..40) {
        let program = generate(seed, len, Features::ALL);
        let expected = wcp_oracle(&program);
        let found = reported(&program, Relation::Wcp);
        let racy: BTreeSet<usize> = expected.iter().map(|&(_, later)| later).collect();
        let found_racy: BTreeSet<usize> = found.iter().map(|r| r.later).collect();
        prop_assert_eq!(&found_racy, &racy, "racy accesses in wcp: {:?}", program);
        for race in &found {
            prop_assert!(
                expected.contains(&(race.earlier, race.later)),
                "wcp reported {race:?}, not a racy pair of the oracle: {program:?}"
            );
        }
        // WCP orders less than HB: every HB racy access is a WCP one.
        let hb: BTreeSet<usize> = oracle(&program, false).iter().map(|&(_, later)| later).collect();
        prop_assert!(racy.is_superset(&hb), "the WCP oracle lost an HB race: {:?}", program);
        let witnesses = check_witnesses(&program, Relation::Wcp, &found);
        prop_assert!(witnesses.is_ok(), "{}: {program:?}", witnesses.unwrap_err());
    }

    #[test]
    fn shb_finds_exactly_the_racy_accesses_of_full_vector_clocks_with_reads_from(seed in any::<u64>(), len in 4usize..40) {
        check(&generate(seed, len, Features::ALL), Relation::Shb)?;
    }
}
