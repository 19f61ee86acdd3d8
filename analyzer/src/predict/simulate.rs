//! Checks a relaxed closure by running it: a schedule of its events that keeps every order
//! and every lock's mutual exclusion, found greedily. A schedule found is a witness whatever
//! the closure's rules; none found proves nothing.

use super::closure::{Closure, BEYOND};
use super::log::{Log, Step, NONE};
use hindsight_recorder::format::{LockId, LockMode};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// The window indices of the closure's events in an order that runs, or `None` if the greedy
/// run gets stuck (or the closure needs events past the window). Acquisitions in `pinned`
/// (held to the end by the pattern's actors) are taken only when nothing else can run.
pub(crate) fn simulate(
    log: &Log,
    closure: &Closure<'_>,
    pinned: &HashSet<(LockId, u32)>,
) -> Option<Vec<u32>> {
    let actors = log.actors.len();
    let mut target = Vec::with_capacity(actors);
    for actor in 0..actors as u32 {
        let cut = closure.cut(actor);
        if cut == BEYOND {
            return None;
        }
        target.push(cut as usize);
    }
    let mut next = vec![0usize; actors];
    let mut holders: HashMap<LockId, Vec<(u32, LockMode)>> = HashMap::default();
    for &(lock, at) in &log.open_at_start {
        let a = log.locks[&lock][at as usize];
        holders.entry(lock).or_default().push((a.actor, a.mode));
    }
    let mut order = Vec::new();
    loop {
        let mut progressed = false;
        for allow_pinned in [false, true] {
            for actor in 0..actors {
                while next[actor] < target[actor] {
                    let index = log.by_actor[actor][next[actor]];
                    let event = log.events[index as usize];
                    let done = |i: u32| {
                        let e = &log.events[i as usize];
                        next[e.actor as usize] > e.pos as usize
                    };
                    if (event.cross != NONE && !done(event.cross))
                        || log.access_preds(&event).iter().any(|&pred| !done(pred))
                    {
                        break;
                    }
                    match event.step {
                        Step::Acquire { lock, mode, .. } => {
                            if !allow_pinned && pinned.contains(&(lock, event.at)) {
                                break;
                            }
                            let held = holders.entry(lock).or_default();
                            let busy = held.iter().any(|&(other, other_mode)| {
                                other != actor as u32
                                    && (mode == LockMode::Exclusive
                                        || other_mode == LockMode::Exclusive)
                            });
                            if busy {
                                break;
                            }
                            held.push((actor as u32, mode));
                        }
                        Step::Release { lock } => {
                            let held = holders.entry(lock).or_default();
                            if let Some(i) = held.iter().position(|&(a, _)| a == actor as u32) {
                                held.remove(i);
                            }
                        }
                        _ => {}
                    }
                    next[actor] += 1;
                    order.push(index);
                    progressed = true;
                }
            }
            if progressed {
                break;
            }
        }
        if !progressed {
            break;
        }
    }
    (next == target).then_some(order)
}
