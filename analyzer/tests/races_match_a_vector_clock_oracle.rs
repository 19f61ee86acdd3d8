//! The race detector is exact: on random programs (threads, tasks, mutexes, read-write locks,
//! spawn/join, messages, wakes, release/acquire annotations) it finds the same racy accesses as
//! an obviously correct oracle — the full vector clock of every step, every pair of accesses
//! compared — and every pair it reports is a racy pair of the oracle. In HB, and in SHB (the
//! oracle then also orders each read after the last write before it).
//!
//! `RACE_ORACLE_CASES=300000 cargo test --release -p hindsight-analyzer --test
//! races_match_a_vector_clock_oracle` runs a large size.

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
    fn wcp_finds_every_racy_access_of_hb_and_proves_what_it_says(seed in any::<u64>(), len in 4usize..40) {
        let program = generate(seed, len, Features::ALL);
        let hb: BTreeSet<usize> = oracle(&program, false).iter().map(|&(_, later)| later).collect();
        let found = reported(&program, Relation::Wcp);
        let racy: BTreeSet<usize> = found.iter().map(|r| r.later).collect();
        prop_assert!(racy.is_superset(&hb), "WCP lost an HB race: {:?}", program);
        let witnesses = check_witnesses(&program, Relation::Wcp, &found);
        prop_assert!(witnesses.is_ok(), "{}: {program:?}", witnesses.unwrap_err());
    }

    #[test]
    fn shb_finds_exactly_the_racy_accesses_of_full_vector_clocks_with_reads_from(seed in any::<u64>(), len in 4usize..40) {
        check(&generate(seed, len, Features::ALL), Relation::Shb)?;
    }
}
