//! Witness schedules for races: a reordering of the recorded events in which two racing
//! accesses run back to back. A schedule is given as its steps: every event recorded before
//! its first step runs first, as recorded; then the steps, in their order, the earlier access
//! `a` and the later one `b` last; events recorded since the first step and not among the
//! steps wait.
//!
//! First, the schedule that keeps everything before `a`: the steps are the events recorded
//! between `a` and `b` that `b` cannot run without, in their recorded order, then `a`, then
//! `b`. What `b` cannot run without is the closure, backwards from `b`, of: program order,
//! spawn before the child, the child's events before its join, a message's send before its
//! receipt, a wake before the task's next poll, a release annotation before a later acquire
//! one, a semaphore's releases before a later acquisition, a `block_on` future's end before
//! its caller's later events, and the write a read saw before the read. Locks are then
//! checked by running the schedule: where a step's acquisition finds its lock held by a
//! section whose release was left out, that release (and its own closure) joins the steps, and
//! the run starts again. If `a` itself is needed, no schedule of this shape exists.
//!
//! Then, if that fails, one that reorders events before `a` too (WCP's races often need a
//! critical section to run before `a`'s own): the steps are what `a` and what `b` need, run in
//! recorded order where locks allow, except that a section left open at the end (`a`'s own)
//! is acquired only after the other sections on its lock, and conflicting accesses keep their
//! recorded order; again with releases added where a lock must be handed over. It starts a
//! few events before `a` (what is recorded before runs as recorded), then further back.
//!
//! Every read but `a` and `b` sees the write it saw in the trace (the write each read saw is
//! among the steps, and conflicting accesses keep their order), so the schedule is one the
//! program could run. For an SHB race the first kind always exists (what it adds is ordered
//! before `b` by SHB, which `a` is not); for a WCP race one of the two often does, and then
//! proves the race.
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

/// Events a reordered schedule may need, at most (each step of its run looks at all).
const MAX_REORDERED: usize = 256;

/// How far before the earlier access a reordered schedule may start, tried in turn (in
/// events; the last reaches back to the oldest kept).
const REORDER_FROM: [u64; 4] = [16, 128, 1024, WINDOW as u64];

/// Lock hand-overs a reordered schedule may add (each costs a new run).
const MAX_REORDERED_HAND_OVERS: usize = 8;

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
    /// Neither kind of schedule exists: the later access needs the earlier one to have run,
    /// or the locks allow no order of what they need (a WCP prediction may be false).
    #[error("no schedule of the recorded events found that runs them back to back: what the later access needs includes the earlier one, or the locks allow no such order")]
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

    /// The steps (event numbers, in the order the schedule runs them, `first` and `second`
    /// last) of a schedule that runs event `first` then event `second` back to back, after
    /// every event recorded before its first step (see the module docs). Past
    /// [`MAX_SCHEDULES`] calls, none.
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
        let numbered = |from: u64| -> Vec<&Event> {
            (from..=second).filter_map(|number| self.get(number)).collect()
        };
        let events = numbered(first);
        match Window::new(cx, &events, 0).moved_after_first() {
            Ok(moved) => {
                let numbers = moved.into_iter().map(|p| first + p as u64);
                Ok(numbers.chain([first, second]).collect())
            }
            Err(Unbuilt::Needed) => {
                // Reordering the events before the first access too (critical sections that
                // must run before the first access's own), from a little before it on, then
                // from further back (what the accesses need grows with the stretch).
                let oldest = self.seen - self.events.len() as u64;
                let starts =
                    REORDER_FROM.iter().map(|&back| first.saturating_sub(back).max(oldest));
                let mut tried = None;
                for start in starts {
                    if tried == Some(start) {
                        continue;
                    }
                    tried = Some(start);
                    let events = numbered(start);
                    let window = Window::new(cx, &events, (first - start) as usize);
                    if let Ok(order) = window.reordered() {
                        return Ok(order.into_iter().map(|p| start + p as u64).collect());
                    }
                }
                // (Whatever stops these, the first kind's reason stands.)
                Err(Unbuilt::Needed)
            }
            Err(unbuilt) => Err(unbuilt),
        }
    }
}

/// Per lock, who holds it: actor, mode, and the position of the release that ends the hold,
/// if the window has it.
type Holders = HashMap<LockId, Vec<(Actor, LockMode, Option<usize>)>>;

/// Recorded events up to the later access (the last), the earlier one among them, with what
/// each one needs.
struct Window<'a> {
    events: &'a [&'a Event],
    /// The position of the earlier access.
    first: usize,
    actors: Vec<Actor>,
    /// Per position, the earlier positions it needs, lock hand-overs aside.
    needs: Vec<Vec<usize>>,
    /// Per position of a lock event: its lock and mode, and whether it acquires.
    locks: Vec<Option<(LockId, LockMode, bool)>>,
}

impl<'a> Window<'a> {
    fn new(cx: &Context<'_>, events: &'a [&'a Event], first: usize) -> Self {
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
        Window { events, first, actors, needs, locks }
    }

    /// Marks `from` and what it needs, transitively; fails if that includes the earlier
    /// access.
    fn close(&self, needed: &mut [bool], from: usize) -> Result<(), Unbuilt> {
        let mut stack = vec![from];
        while let Some(p) = stack.pop() {
            if p == self.first {
                return Err(Unbuilt::Needed);
            }
            if std::mem::replace(&mut needed[p], true) {
                continue;
            }
            stack.extend(&self.needs[p]);
        }
        Ok(())
    }

    /// The positions of the events moved before the earlier access (at position 0): what
    /// the later one needs, and the lock hand-overs that lets run.
    fn moved_after_first(&self) -> Result<Vec<usize>, Unbuilt> {
        let last = self.events.len() - 1;
        let mut needed = vec![false; self.events.len()];
        self.close(&mut needed, last)?;
        for _ in 0..MAX_HAND_OVERS {
            match self.lock_conflict(&needed)? {
                None => return Ok((1..last).filter(|&p| needed[p]).collect()),
                Some(release) => self.close(&mut needed, release)?,
            }
        }
        Err(Unbuilt::TooManyHandOvers)
    }

    /// Who holds which lock as the window starts: whoever releases it there before
    /// acquiring it; with the position of that release.
    fn holders_at_start(&self) -> Holders {
        let mut holders = Holders::new();
        let mut touched: HashSet<(LockId, Actor)> = HashSet::new();
        for (p, lock) in self.locks.iter().enumerate() {
            let Some((lock, mode, acquires)) = *lock else { continue };
            if touched.insert((lock, self.actors[p])) && !acquires {
                holders.entry(lock).or_default().push((self.actors[p], mode, Some(p)));
            }
        }
        holders
    }

    /// The position of the release that ends the section acquired at `acquired`, if the
    /// window has it.
    fn release_of(&self, acquired: usize) -> Option<usize> {
        let Some((lock, _, true)) = self.locks[acquired] else { return None };
        let actor = self.actors[acquired];
        (acquired + 1..self.events.len()).find(|&q| {
            self.actors[q] == actor && matches!(self.locks[q], Some((l, _, false)) if l == lock)
        })
    }

    /// A schedule of the window's events that the two accesses need, in an order of its own
    /// (the positions, the two accesses last): what each access needs, run in recorded
    /// order where locks allow, a section that stays open to the end (the earlier access's
    /// own) acquired only after the other sections on its lock, conflicting accesses kept in
    /// recorded order (so that every read still sees its write), and releases added where a
    /// lock must be handed over.
    fn reordered(&self) -> Result<Vec<usize>, Unbuilt> {
        let (first, last) = (self.first, self.events.len() - 1);
        let mut needed = vec![false; self.events.len()];
        for &need in &self.needs[first] {
            self.close(&mut needed, need)?;
        }
        needed[first] = true;
        self.close(&mut needed, last)?;
        for _ in 0..=MAX_REORDERED_HAND_OVERS {
            if needed.iter().filter(|&&n| n).count() > MAX_REORDERED {
                return Err(Unbuilt::Needed);
            }
            match self.run_in_order(&needed) {
                Ok(mut order) => {
                    order.extend([first, last]);
                    return Ok(order);
                }
                Err(Some(release)) => self.close(&mut needed, release)?,
                Err(None) => return Err(Unbuilt::Needed),
            }
        }
        Err(Unbuilt::Needed)
    }

    /// [`reordered`](Self::reordered)'s run of the `needed` events but the two accesses:
    /// their order, or the release a stuck acquisition waits for (`None` if none helps).
    fn run_in_order(&self, needed: &[bool]) -> Result<Vec<usize>, Option<usize>> {
        let (first, last) = (self.first, self.events.len() - 1);
        let mut remaining: Vec<usize> = (0..last).filter(|&p| needed[p] && p != first).collect();
        let mut done = vec![false; self.events.len()];
        let mut holders = self.holders_at_start();
        // The events recorded before the earliest needed one run first, as recorded.
        let start = needed.iter().position(|&n| n).unwrap_or(first);
        for p in 0..start {
            self.take_or_give(&mut holders, p);
        }
        done[..start].fill(true);
        let mut order = Vec::with_capacity(remaining.len());
        while !remaining.is_empty() {
            let mut wanted = None;
            let ready = remaining.iter().position(|&p| {
                if !self.needs[p].iter().all(|&q| done[q]) || self.waits_for_access(p, &remaining) {
                    return false;
                }
                let Some((lock, mode, true)) = self.locks[p] else { return true };
                let actor = self.actors[p];
                let conflicts = |other: Actor, other_mode: LockMode| {
                    other != actor
                        && (mode == LockMode::Exclusive || other_mode == LockMode::Exclusive)
                };
                let held = holders.get(&lock).into_iter().flatten();
                if let Some(&(_, _, release)) = held.clone().find(|h| conflicts(h.0, h.1)) {
                    wanted = wanted.or(release.filter(|&r| !needed[r]));
                    return false;
                }
                // A section left open runs after the others on its lock.
                let open = self.release_of(p).is_none_or(|r| !needed[r]);
                !(open
                    && remaining.iter().any(|&q| {
                        q != p
                            && matches!(self.locks[q], Some((l, m, true))
                                if l == lock && conflicts(self.actors[q], m))
                    }))
            });
            let Some(index) = ready else { return Err(wanted) };
            let p = remaining.remove(index);
            self.take_or_give(&mut holders, p);
            done[p] = true;
            order.push(p);
        }
        Ok(order)
    }

    /// Runs the lock event at `p` (if it is one) on `holders`.
    fn take_or_give(&self, holders: &mut Holders, p: usize) {
        match self.locks[p] {
            Some((lock, mode, true)) => {
                let hold = (self.actors[p], mode, self.release_of(p));
                holders.entry(lock).or_default().push(hold);
            }
            Some((lock, _, false)) => {
                let held = holders.entry(lock).or_default();
                if let Some(at) = held.iter().position(|h| h.0 == self.actors[p]) {
                    held.remove(at);
                }
            }
            None => {}
        }
    }

    /// Whether the access at `p` must wait for a conflicting access recorded before it that
    /// has not run (keeping what every read sees).
    fn waits_for_access(&self, p: usize, remaining: &[usize]) -> bool {
        let Some((var, write)) = access(self.events[p]) else { return false };
        remaining.iter().take_while(|&&q| q < p).any(|&q| {
            access(self.events[q])
                .is_some_and(|(other, other_write)| other == var && (write || other_write))
        })
    }

    /// Runs the schedule's locks: the position of a release that must be moved, because a
    /// moved acquisition finds its lock held by that release's section, if any.
    fn lock_conflict(&self, needed: &[bool]) -> Result<Option<usize>, Unbuilt> {
        // Who holds what as the earlier access runs.
        let mut holders = self.holders_at_start();
        for p in (1..self.events.len()).filter(|&p| needed[p]) {
            if let Some((lock, mode, true)) = self.locks[p] {
                let actor = self.actors[p];
                let blocking =
                    holders.get(&lock).into_iter().flatten().find(|&&(holder, held, _)| {
                        holder != actor
                            && (mode == LockMode::Exclusive || held == LockMode::Exclusive)
                    });
                if let Some(&(_, _, release)) = blocking {
                    // The release that ends that hold (the trace has it before this
                    // acquisition, unless events are missing: then give up).
                    return release.map(Some).ok_or(Unbuilt::Needed);
                }
            }
            self.take_or_give(&mut holders, p);
        }
        Ok(None)
    }
}

/// The variable an event accesses, and whether it writes it.
fn access(event: &Event) -> Option<(u32, bool)> {
    match event.kind {
        EventKind::Read { var, .. } => Some((var.0, false)),
        EventKind::Write { var, .. } => Some((var.0, true)),
        _ => None,
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
