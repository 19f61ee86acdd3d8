//! Witness schedules for races: a reordering of the recorded events in which two racing
//! accesses run back to back.
//!
//! The schedule runs every event recorded before the earlier access `a` as recorded, then the
//! *moved* events — those recorded between `a` and the later access `b` that `b` cannot run
//! without — in their recorded order, then `a`, then `b`. What `b` cannot run without is the
//! closure, backwards from `b`, of: program order, spawn before the child, the child's events
//! before its join, a message's send before its receipt, a wake before the task's next poll, a
//! release annotation before a later acquire one, a semaphore's releases before a later
//! acquisition, a `block_on` future's end before its caller's later events, and
//! the write a read saw before the read. Locks are then checked by running the schedule: where
//! a moved acquisition finds its lock held by a section whose release was left out, that
//! release (and its own closure) is moved too, and the run starts again. If `a` itself joins
//! the moved events, no schedule of this shape exists.
//!
//! Every read but `a` and `b` sees the write it saw in the trace (the schedule keeps recorded
//! order, and the write each read saw is in it), so the schedule is one the program could
//! run. For an SHB race one always exists (what it adds is ordered before `b` by SHB, which
//! `a` is not); for a WCP race it often does, and then proves the race.
//!
//! Only the last [`WINDOW`] events are kept, so a schedule is built only when the two accesses
//! are at most that many events apart.

use crate::detect::Context;
use crate::replay::Actor;
use crate::report::witness::WitnessStep;
use hindsight_recorder::format::{Event, EventKind, LockId, LockMode, SiteId};
use std::collections::{HashMap, HashSet};

/// Events kept, and so the most events apart two accesses can be for a schedule.
pub const WINDOW: usize = 4096;

/// Lock hand-overs a schedule may have to add before it is given up.
const MAX_HAND_OVERS: usize = 64;

/// Schedules built per analysis, at most (each costs up to a pass over [`WINDOW`] events per
/// hand-over).
pub const MAX_SCHEDULES: usize = 1000;

/// Why no schedule was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbuilt {
    /// The accesses are too far apart in the trace.
    #[error(
        "schedule not built: the two accesses are {0} events apart, more than the {WINDOW} kept"
    )]
    TooFar(u64),
    /// Running the later access needs the earlier one to have run (some order this
    /// construction keeps and the relation does not: WCP lets critical sections swap in ways
    /// a single reordering of this shape cannot).
    #[error("no schedule of the recorded events found that runs them back to back: the later access needs events that follow the earlier one")]
    Needed,
    /// Too many lock hand-overs to add.
    #[error("schedule not built: more than {MAX_HAND_OVERS} critical sections had to be moved")]
    TooManyHandOvers,
    /// Enough schedules were built already.
    #[error("schedule not built: only the first {MAX_SCHEDULES} racing pairs get one")]
    TooMany,
}

/// The last [`WINDOW`] events a detector saw, numbered from 0 in the order seen.
#[derive(Debug)]
pub struct Recent {
    events: Vec<Event>,
    /// Events seen: the number of the next.
    seen: u64,
    /// Schedules asked for so far.
    schedules: usize,
}

impl Default for Recent {
    fn default() -> Self {
        Recent { events: Vec::with_capacity(WINDOW), seen: 0, schedules: 0 }
    }
}

impl Recent {
    /// Keeps `event`, forgetting the oldest kept past [`WINDOW`].
    #[inline]
    pub fn push(&mut self, event: &Event) {
        if self.events.len() < WINDOW {
            self.events.push(*event);
        } else {
            self.events[(self.seen % WINDOW as u64) as usize] = *event;
        }
        self.seen += 1;
    }

    /// The number of the last event pushed.
    #[inline]
    pub fn last(&self) -> u64 {
        self.seen.saturating_sub(1)
    }

    /// Event number `number`, if kept.
    pub fn get(&self, number: u64) -> Option<&Event> {
        if number >= self.seen || self.seen - number > self.events.len() as u64 {
            return None;
        }
        self.events.get((number % WINDOW as u64) as usize)
    }

    /// The moved events (their numbers, in order) of a schedule that runs event `first` then
    /// event `second` back to back (see the module docs). Past [`MAX_SCHEDULES`] calls, none.
    pub fn schedule(
        &mut self,
        cx: &Context<'_>,
        first: u64,
        second: u64,
    ) -> Result<Vec<u64>, Unbuilt> {
        if self.schedules == MAX_SCHEDULES {
            return Err(Unbuilt::TooMany);
        }
        self.schedules += 1;
        if self.get(first).is_none() || self.get(second).is_none() || second <= first {
            return Err(Unbuilt::TooFar(second.saturating_sub(first)));
        }
        let events: Vec<&Event> = (first..=second).filter_map(|n| self.get(n)).collect();
        let window = Window::new(cx, &events);
        let mut needed = vec![false; events.len()];
        window.close(&mut needed, events.len() - 1)?;
        for _ in 0..MAX_HAND_OVERS {
            match window.lock_conflict(&needed)? {
                None => {
                    let moved = (1..events.len() - 1).filter(|&p| needed[p]);
                    return Ok(moved.map(|p| first + p as u64).collect());
                }
                Some(release) => window.close(&mut needed, release)?,
            }
        }
        Err(Unbuilt::TooManyHandOvers)
    }
}

/// The events from the earlier access (position 0) to the later one (the last), with what
/// each one needs.
struct Window<'a> {
    events: &'a [&'a Event],
    actors: Vec<Actor>,
    /// Per position, the earlier positions it needs, lock hand-overs aside.
    needs: Vec<Vec<usize>>,
    /// Per position of a lock event: its lock and mode, and whether it acquires.
    locks: Vec<Option<(LockId, LockMode, bool)>>,
}

impl<'a> Window<'a> {
    fn new(cx: &Context<'_>, events: &'a [&'a Event]) -> Self {
        let semaphore = |lock| crate::causality::is_semaphore(cx, lock);
        let actors: Vec<Actor> = events.iter().map(|e| Actor::of(e)).collect();
        let mut needs = vec![Vec::new(); events.len()];
        let mut locks = vec![None; events.len()];
        let mut last_of: HashMap<Actor, usize> = HashMap::new();
        let mut spawned_at: HashMap<Actor, usize> = HashMap::new();
        let mut last_write: HashMap<u32, usize> = HashMap::new();
        let mut sent: HashMap<(u32, u64), usize> = HashMap::new();
        let mut wakes: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut sync_releases: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut permits: HashMap<LockId, Vec<usize>> = HashMap::new();
        // Per thread, the ends of the `block_on` futures it ran (and waited for).
        let mut task_ends: HashMap<u32, Vec<usize>> = HashMap::new();
        for (p, event) in events.iter().enumerate() {
            let actor = actors[p];
            let need = &mut needs[p];
            if let Some(&q) = last_of.get(&actor) {
                need.push(q);
            } else if let Some(&q) = spawned_at.get(&actor) {
                need.push(q);
            }
            if let Actor::Thread(thread) = actor {
                need.extend(task_ends.get(&thread.0).into_iter().flatten());
            }
            match event.kind {
                // (The later access may see another write: the racing pair is exempt.)
                EventKind::Read { var, .. } if p + 1 < events.len() => {
                    need.extend(last_write.get(&var.0));
                }
                EventKind::Write { var, .. } => {
                    last_write.insert(var.0, p);
                }
                EventKind::LockAcquired { lock, .. } if semaphore(lock) => {
                    need.extend(permits.get(&lock).into_iter().flatten());
                }
                EventKind::LockReleased { lock, .. } if semaphore(lock) => {
                    permits.entry(lock).or_default().push(p);
                }
                EventKind::LockAcquired { lock, mode, .. } => locks[p] = Some((lock, mode, true)),
                EventKind::LockReleased { lock, mode, .. } => locks[p] = Some((lock, mode, false)),
                EventKind::TaskSpawned { task, .. } => {
                    spawned_at.insert(Actor::Task(task), p);
                }
                EventKind::ThreadSpawned { thread, .. } => {
                    spawned_at.insert(Actor::Thread(thread), p);
                }
                EventKind::TaskJoined { task, .. } => {
                    need.extend(last_of.get(&Actor::Task(task)));
                }
                EventKind::ThreadJoined { thread, .. } => {
                    need.extend(last_of.get(&Actor::Thread(thread)));
                }
                EventKind::TaskFinished { .. }
                    if event.task.is_some_and(|task| {
                        crate::detect::task_kind(cx, task) == Some("block_on")
                    }) =>
                {
                    task_ends.entry(event.thread.0).or_default().push(p);
                }
                EventKind::Send { channel, message, .. } => {
                    sent.insert((channel.0, message), p);
                }
                EventKind::Receive { channel, message, .. } => {
                    need.extend(sent.get(&(channel.0, message)));
                }
                EventKind::Wake { task, .. } => wakes.entry(task.0).or_default().push(p),
                EventKind::PollStarted => {
                    if let Some(task) = event.task {
                        need.extend(wakes.remove(&task.0).into_iter().flatten());
                    }
                }
                EventKind::SyncRelease { var, .. } => {
                    sync_releases.entry(var.0).or_default().push(p);
                }
                EventKind::SyncAcquire { var, .. } => {
                    need.extend(sync_releases.get(&var.0).into_iter().flatten());
                }
                _ => {}
            }
            last_of.insert(actor, p);
        }
        Window { events, actors, needs, locks }
    }

    /// Marks `from` and what it needs, transitively; fails if that includes the earlier
    /// access (position 0).
    fn close(&self, needed: &mut [bool], from: usize) -> Result<(), Unbuilt> {
        let mut stack = vec![from];
        while let Some(p) = stack.pop() {
            if p == 0 {
                return Err(Unbuilt::Needed);
            }
            if std::mem::replace(&mut needed[p], true) {
                continue;
            }
            stack.extend(&self.needs[p]);
        }
        Ok(())
    }

    /// Runs the schedule's locks: the position of a release that must be moved, because a
    /// moved acquisition finds its lock held by that release's section, if any.
    fn lock_conflict(&self, needed: &[bool]) -> Result<Option<usize>, Unbuilt> {
        // Who holds what as the earlier access runs: whoever releases a lock in the window
        // before acquiring it there.
        let mut holders: HashMap<LockId, Vec<(Actor, LockMode)>> = HashMap::new();
        let mut touched: HashSet<(LockId, Actor)> = HashSet::new();
        for (p, lock) in self.locks.iter().enumerate() {
            let Some((lock, mode, acquires)) = *lock else { continue };
            if touched.insert((lock, self.actors[p])) && !acquires {
                holders.entry(lock).or_default().push((self.actors[p], mode));
            }
        }
        for p in (1..self.events.len()).filter(|&p| needed[p]) {
            let Some((lock, mode, acquires)) = self.locks[p] else { continue };
            let actor = self.actors[p];
            let held = holders.entry(lock).or_default();
            if !acquires {
                if let Some(at) = held.iter().position(|&(holder, _)| holder == actor) {
                    held.remove(at);
                }
                continue;
            }
            let blocking = held.iter().find(|&&(holder, held_mode)| {
                holder != actor && (mode == LockMode::Exclusive || held_mode == LockMode::Exclusive)
            });
            if let Some(&(holder, _)) = blocking {
                // The holder released it before this acquisition in the trace (if the trace
                // says otherwise, events are missing: give up).
                let release = (1..p).rev().find(|&q| {
                    self.actors[q] == holder
                        && matches!(self.locks[q], Some((l, _, false)) if l == lock)
                });
                return release.map(Some).ok_or(Unbuilt::Needed);
            }
            held.push((actor, mode));
        }
        Ok(None)
    }
}

/// `event` as a step of a witness schedule.
pub fn step(cx: &Context<'_>, event: &Event) -> WitnessStep {
    let trace = cx.trace;
    let site = |site: SiteId| Some(cx.site_ref(site, "").to_string());
    let (event_text, site) = match event.kind {
        EventKind::Read { var, site: at } => (format!("reads `{}`", trace.var_name(var)), site(at)),
        EventKind::Write { var, site: at } => {
            (format!("writes `{}`", trace.var_name(var)), site(at))
        }
        EventKind::LockAcquired { lock, mode, site: at, .. } => {
            let shared = if mode == LockMode::Shared { " (shared)" } else { "" };
            (format!("acquires `{}`{shared}", trace.lock_name(lock)), site(at))
        }
        EventKind::LockReleased { lock, .. } => {
            (format!("releases `{}`", trace.lock_name(lock)), None)
        }
        EventKind::TaskSpawned { task, site: at } => {
            (format!("spawns task `{}`", trace.task_name(task)), at.and_then(site))
        }
        EventKind::ThreadSpawned { thread, site: at } => {
            (format!("spawns thread `{}`", trace.thread_name(thread)), at.and_then(site))
        }
        EventKind::TaskJoined { task, site: at } => {
            (format!("joins task `{}`", trace.task_name(task)), at.and_then(site))
        }
        EventKind::ThreadJoined { thread, site: at } => {
            (format!("joins thread `{}`", trace.thread_name(thread)), at.and_then(site))
        }
        EventKind::TaskFinished { .. } => ("finishes".to_owned(), None),
        EventKind::Send { message, site: at, .. } => (format!("sends message {message}"), site(at)),
        EventKind::Receive { message, site: at, .. } => {
            (format!("receives message {message}"), site(at))
        }
        EventKind::Wake { task, .. } => (format!("wakes task `{}`", trace.task_name(task)), None),
        EventKind::PollStarted => ("is polled".to_owned(), None),
        EventKind::SyncRelease { var, site: at } => {
            (format!("annotates a release of `{}`", trace.var_name(var)), site(at))
        }
        EventKind::SyncAcquire { var, site: at } => {
            (format!("annotates an acquire of `{}`", trace.var_name(var)), site(at))
        }
        _ => ("acts".to_owned(), None),
    };
    WitnessStep {
        actor: Actor::of(event).describe(trace),
        event: event_text,
        site,
        time_ns: event.time_ns,
    }
}
