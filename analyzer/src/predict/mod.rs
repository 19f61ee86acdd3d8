//! Deadlock prediction with witnesses: sync-preserving deadlock prediction (Tunç, Mathur,
//! Pavlogiannis, Viswanathan, PLDI 2023) over lock instances, threads and tasks, with joins
//! and read-write locks.
//!
//! The lock-order detector finds cycles between lock classes as the trace streams by; this
//! module reads the trace again for the locks on them (and locks nested inside their own
//! class, and locks held at joins), window by window ([`WINDOW`] events at a time, so memory
//! does not grow with the trace), and checks every deadlock pattern over lock instances
//! (the `patterns` module). A pattern is *witnessed* when a reordering that keeps program order,
//! spawn/join/message order, each lock's critical sections in their order and what each read
//! saw (the write before it in its variable's recorded order; a write stays after the reads of
//! the previous one, and two reads are never ordered) ends with every actor of the pattern
//! blocked; *refuted* when a
//! named reason rules out every reordering; else *not witnessed*. Orders that span two
//! windows are not checked, and the result says how many windows there were.

mod closure;
mod log;
mod patterns;
mod simulate;

use crate::replay::{Actor, Replay};
use crate::report::WitnessStep;
use crate::trace::{ClassId, Trace};
use hindsight_recorder::format::{EventKind, LockId, LockMode, SiteId, ThreadId};
use log::{Log, Step};
use patterns::{Abstract, Budget, Want};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

pub use log::Held;

/// Events per window of the second reading.
pub const WINDOW: usize = 1 << 18;

/// Work allowed per window: cycles of the instance graph, patterns, and closure steps per
/// event of the window (each pattern's check costs up to a few passes over it).
const BUDGET: Budget = Budget { cycles: 1_000, patterns: 10_000, steps: 0 };

/// Closure steps allowed per event of a window, and at least.
const STEPS_PER_EVENT: u64 = 8;
const MIN_STEPS: u64 = 1_000_000;

/// What the second reading looks at: the lock classes on class cycles (or nested in their
/// own class, or held at joins, or leading to those).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Per class (by index), whether its locks are looked at.
    pub classes: Vec<bool>,
}

impl Targets {
    /// Whether `class` is looked at.
    pub fn has(&self, class: ClassId) -> bool {
        self.classes.get(class.index()).copied().unwrap_or(false)
    }

    /// Whether nothing is looked at.
    pub fn is_empty(&self) -> bool {
        !self.classes.iter().any(|&c| c)
    }
}

/// What an actor of a pattern asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// A lock, in a mode.
    Lock(LockId, LockMode),
    /// Another actor's end (a join, or an await of its handle).
    End(Actor),
}

/// One actor of a pattern: what it holds and what it asks for (at its first instance).
#[derive(Debug, Clone)]
pub struct Item {
    /// The actor.
    pub actor: Actor,
    /// The thread it ran on.
    pub thread: ThreadId,
    /// What it holds when it asks.
    pub held: Vec<Held>,
    /// What it asks for.
    pub want: Wanted,
    /// Where it asks.
    pub site: Option<SiteId>,
    /// When.
    pub time_ns: u64,
    /// How many times it asked so.
    pub instances: usize,
}

/// What became of one pattern.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A reordering deadlocks: its deciding steps.
    Witnessed(Vec<WitnessStep>),
    /// Two actors hold one lock in conflicting modes when they ask (`actors` index the
    /// pattern's items).
    CommonLock {
        /// The two holds.
        held: [Held; 2],
        /// The items that hold it.
        actors: [usize; 2],
    },
    /// At `lock` both the hold and the request are shared; `fair` if a waiting writer would
    /// block the reader, but no other actor ever asked to write it.
    SharedOnly {
        /// The lock.
        lock: LockId,
        /// Its implementation queues readers behind a waiting writer.
        fair: bool,
    },
    /// Ruled out in every correct reordering by this order (described).
    Ordered(String),
    /// Neither witnessed nor refuted.
    NotWitnessed,
}

impl Outcome {
    /// How much it says that the pattern can deadlock: the best verdict of a cycle is kept.
    fn rank(&self) -> u8 {
        match self {
            Outcome::Witnessed(_) => 4,
            Outcome::NotWitnessed => 3,
            Outcome::Ordered(_) => 2,
            Outcome::CommonLock { .. } | Outcome::SharedOnly { .. } => 1,
        }
    }
}

/// The verdict on one pattern.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The actors, in cycle order (each asks for what the next holds), then any writers
    /// queued on read-held locks.
    pub items: Vec<Item>,
    /// Per item of the cycle, the lock it holds that the previous one asks for (`None`: the
    /// previous one waits for its end).
    pub nodes: Vec<Option<LockId>>,
    /// What became of it.
    pub outcome: Outcome,
}

/// The best verdict on the patterns of one cycle of lock classes.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The best verdict.
    pub best: Verdict,
    /// Patterns checked on this cycle.
    pub patterns: usize,
    /// Of them, witnessed.
    pub witnessed: usize,
}

/// A cycle of lock classes (`None`: the end of an actor a join waits for), starting at its
/// least element.
pub type CycleKey = Vec<Option<ClassId>>;

/// Everything the second reading found.
#[derive(Debug, Default)]
pub struct Predictions {
    /// Per cycle of classes.
    pub cycles: HashMap<CycleKey, Prediction>,
    /// Patterns checked.
    pub patterns: usize,
    /// Cycles over lock instances left unchecked (or checked in part) for want of budget.
    pub unchecked: usize,
    /// Windows the trace was read in.
    pub windows: usize,
    /// The cycles witnessed so far, which later windows need not check again.
    witnessed: HashSet<CycleKey>,
}

/// `lock`'s name, with its id when another lock of `among` has the same name (two locks made
/// at one line: `pool #0`, `pool #1`).
pub(crate) fn instance_name(
    trace: &Trace,
    among: impl IntoIterator<Item = LockId>,
    lock: LockId,
) -> String {
    let name = trace.lock_name(lock);
    if among.into_iter().any(|other| other != lock && trace.lock_name(other) == name) {
        format!("{name} #{}", lock.0)
    } else {
        name
    }
}

/// The rotation of `cycle` that starts at its least element.
pub fn normalize(mut cycle: CycleKey) -> CycleKey {
    if let Some(start) = (0..cycle.len()).min_by_key(|&i| cycle[i]) {
        cycle.rotate_left(start);
    }
    cycle
}

/// Reads `replay` to its end and checks the patterns over the locks of `targets`.
pub fn predict(mut replay: Replay, targets: &Targets) -> Predictions {
    let mut predictions = Predictions::default();
    let mut window = Window::new(Vec::new());
    while let Some(event) = replay.next_event() {
        window.push(replay.trace(), targets, &event);
        replay.apply(&event);
        if window.log.len() >= WINDOW {
            let open = window.log.open_holds();
            window.check(replay.trace(), &mut predictions);
            window = Window::new(open);
        }
    }
    window.check(replay.trace(), &mut predictions);
    predictions
}

/// A spawn made while holding locks: the parent (log index), the child, the parent's holds
/// (with their places in their locks' lists).
type Spawn = (u32, Actor, Vec<(Held, u32)>);

/// What makes an abstract acquisition: its actor, what it asks for, what it holds.
type AbstractKey = (u32, Want, Vec<(LockId, LockMode)>);

/// One window being read.
#[derive(Debug)]
struct Window {
    log: Log,
    /// The events that may block in a pattern, with what their actors held before them.
    asks: Vec<(u32, Vec<Held>)>,
    /// Per spawn made while holding locks: the parent, the child, the holds (with their
    /// places in their locks' lists).
    spawns: Vec<Spawn>,
    /// Per child forked and joined inside its parent's holds: those holds.
    inherited: HashMap<u32, Vec<Held>>,
    /// Which children inherit from which parents (child, parent), for holds passed down.
    lineage: Vec<(u32, u32)>,
}

impl Window {
    fn new(open: Vec<(Actor, Vec<Held>)>) -> Window {
        Window {
            log: Log::starting_with(open),
            asks: Vec::new(),
            spawns: Vec::new(),
            inherited: HashMap::default(),
            lineage: Vec::new(),
        }
    }

    /// Logs `event`, noting what prediction needs of it.
    fn push(
        &mut self,
        trace: &Trace,
        targets: &Targets,
        event: &hindsight_recorder::format::Event,
    ) {
        let actor = Actor::of(event);
        let ix = self.log.actor(actor);
        let holding = !self.log.holds[ix as usize].is_empty();
        let asks = match event.kind {
            EventKind::LockAcquired { lock, via_try: false, .. } => {
                targets.has(trace.lock_class(lock))
            }
            EventKind::ThreadJoinRequested { .. } | EventKind::TaskJoinRequested { .. } => holding,
            EventKind::ThreadJoined { thread: child, .. } => {
                self.joined(ix, Actor::Thread(child));
                holding
            }
            EventKind::TaskJoined { task: child, .. } => {
                self.joined(ix, Actor::Task(child));
                holding
            }
            EventKind::ThreadSpawned { thread: child, .. } if holding => {
                let holds = self.log.holds[ix as usize].clone();
                self.spawns.push((ix, Actor::Thread(child), holds));
                false
            }
            EventKind::TaskSpawned { task: child, .. } if holding => {
                let holds = self.log.holds[ix as usize].clone();
                self.spawns.push((ix, Actor::Task(child), holds));
                false
            }
            _ => false,
        };
        let before: Vec<Held> = if asks {
            self.log.holds[ix as usize].iter().map(|(h, _)| *h).collect()
        } else {
            Vec::new()
        };
        let index = self.log.push(event);
        // The end of a join already asked for is not a second ask.
        if asks && !matches!(self.log.events[index as usize].step, Step::Other) {
            self.asks.push((index, before));
        }
    }

    /// Notes that `parent` joined `child`: the holds it kept from spawning the child until
    /// now were the child's too.
    fn joined(&mut self, parent: u32, child: Actor) {
        let Some(i) = self.spawns.iter().position(|(p, c, _)| *p == parent && *c == child) else {
            return;
        };
        let (_, _, at_spawn) = self.spawns.swap_remove(i);
        let now = &self.log.holds[parent as usize];
        let kept: Vec<Held> = at_spawn
            .iter()
            .filter(|(h, at)| now.iter().any(|(n, a)| n.lock == h.lock && a == at))
            .map(|(h, _)| Held { inherited_from: Some(self.log.actors[parent as usize]), ..*h })
            .collect();
        let Some(child) = self.log.actor_index(child) else { return };
        if !kept.is_empty() {
            self.inherited.entry(child).or_default().extend(kept);
            self.lineage.push((child, parent));
        }
    }

    /// Checks the window's patterns into `predictions`.
    fn check(mut self, trace: &Trace, predictions: &mut Predictions) {
        predictions.windows += 1;
        // Holds passed down: a grandchild inside its parent's inherited holds has them too.
        for _ in 0..8 {
            let mut changed = false;
            for &(child, parent) in &self.lineage {
                let from_parent = self.inherited.get(&parent).cloned().unwrap_or_default();
                let mine = self.inherited.entry(child).or_default();
                for h in from_parent {
                    if !mine.iter().any(|m| m.lock == h.lock) {
                        mine.push(h);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let abstracts = self.abstracts();
        if abstracts.is_empty() {
            return;
        }
        let steps = (STEPS_PER_EVENT * self.log.len() as u64).max(MIN_STEPS);
        let budget = Budget { steps, ..BUDGET };
        let result =
            patterns::check(trace, &self.log, &abstracts, budget, &mut predictions.witnessed);
        predictions.unchecked += result.unchecked;
        for verdict in result.verdicts {
            predictions.patterns += 1;
            let key: CycleKey =
                normalize(verdict.nodes.iter().map(|n| n.map(|l| trace.lock_class(l))).collect());
            let witnessed = matches!(verdict.outcome, Outcome::Witnessed(_));
            match predictions.cycles.get_mut(&key) {
                Some(p) => {
                    p.patterns += 1;
                    p.witnessed += usize::from(witnessed);
                    if verdict.outcome.rank() > p.best.outcome.rank() {
                        p.best = verdict;
                    }
                }
                None => {
                    let witnessed = usize::from(witnessed);
                    predictions
                        .cycles
                        .insert(key, Prediction { best: verdict, patterns: 1, witnessed });
                }
            }
        }
    }

    /// The window's abstract acquisitions.
    fn abstracts(&mut self) -> Vec<Abstract> {
        let mut by_key: HashMap<AbstractKey, usize> = HashMap::default();
        let mut abstracts: Vec<Abstract> = Vec::new();
        for (index, before) in std::mem::take(&mut self.asks) {
            let event = self.log.events[index as usize];
            let want = match event.step {
                Step::Acquire { lock, mode, .. } => Want::Lock(lock, mode),
                Step::JoinWait { target } => match self.log.actor_index(target) {
                    Some(target) => Want::End(target),
                    None => continue,
                },
                _ => continue,
            };
            let mut held = before;
            if let Some(inherited) = self.inherited.get(&event.actor) {
                for h in inherited {
                    if !held.iter().any(|x| x.lock == h.lock) {
                        held.push(*h);
                    }
                }
            }
            held.sort_by_key(|h| h.lock);
            let key = (event.actor, want, held.iter().map(|h| (h.lock, h.mode)).collect());
            let ix = *by_key.entry(key).or_insert_with(|| {
                abstracts.push(Abstract { actor: event.actor, want, held, instances: Vec::new() });
                abstracts.len() - 1
            });
            abstracts[ix].instances.push(event.pos);
        }
        abstracts
    }
}
