//! `data-race`: two accesses to one annotated variable, at least one a write, by different
//! threads or tasks, with no order between them in the chosen [`Relation`] (`--races`), which
//! the [causality engine](crate::causality) computes: happens-before (HB) through locks,
//! spawn/join, channels, wakes, annotations and `block_on`; SHB, which adds last-write → read
//! order so that every race it reports is real; or WCP, which lets critical sections that do
//! not conflict swap and so predicts races of other schedules.
//!
//! An access is *racy* when some earlier conflicting access is not ordered before it. The
//! check is exact, FastTrack-style: a variable remembers the writes and the reads that no later
//! access of the same kind (or, for reads, no later write) is ordered after — one epoch each in
//! the common case, a short list (at most one per logical thread) after a race or concurrent
//! reads. An access dropped from those lists is ordered before one kept, so a later access
//! unordered with it is unordered with that one too, or ordered after the dropped one: no race
//! is lost (the minimal case of issue 20 reports both its races).
//!
//! Races are reported per ordered pair of sites (earlier, later), with an occurrence count, so
//! that every racy access's site appears as the later site of a pair. In HB the racy access is
//! paired with every remembered earlier access it is unordered with (the latest always among
//! them); in SHB and WCP only with the latest (the one their soundness theorems speak of).
//!
//! In SHB and WCP, the first occurrence of each pair also gets a witness schedule (see
//! [`crate::causality::witness`]) from the last events the detector saw: the steps
//! of a reordering that runs the two accesses back to back. HB and SHB races are errors; in
//! WCP only the first race is sure to be real, so a later one is an error when a schedule
//! proves it, else a warning, "predicted, unverified".
//!
//! Clocks are kept from the first access or join on (see the causality engine's docs), so that
//! a trace of locks alone (most traces) costs the detector next to nothing.

use super::{Context, Detector, Interest};
use crate::causality::witness::{self, Recent, Unbuilt};
use crate::causality::{Causality, Epoch, Relation};
use crate::prefetch::prefetch_entry;
use crate::replay::Actor;
use crate::report::witness::WitnessStep;
use crate::report::{AccessDetail, Detail, Finding, FindingKind, Forgotten, RaceDetail, Severity};
use hindsight_recorder::format::{Event, EventKind, LockId, SiteId, ThreadId, VarId};
use std::collections::HashMap;

/// Locks remembered as held at an access, for the report.
const HELD_LOCKS_KEPT: usize = 4;

/// No lock in an entry of [`Info::locks`].
const NO_LOCK: u32 = u32::MAX;

/// Where, when and by whom an access happened: what the report tells of it, and nothing the
/// check needs.
#[derive(Debug, Clone, Copy)]
struct Info {
    actor: Actor,
    time_ns: u64,
    /// The access's position among all accesses, in replay order.
    order: u64,
    /// Its number among the events the detector saw (see [`Recent`]).
    event: u64,
    thread: ThreadId,
    site: SiteId,
    /// The first locks held, [`NO_LOCK`] past the last.
    locks: [u32; HELD_LOCKS_KEPT],
}

impl Default for Info {
    fn default() -> Self {
        Info {
            actor: Actor::Thread(ThreadId(0)),
            time_ns: 0,
            order: 0,
            event: 0,
            thread: ThreadId(0),
            site: SiteId(0),
            locks: [NO_LOCK; HELD_LOCKS_KEPT],
        }
    }
}

/// Several accesses, kept in [`DataRace::many_writes`] or [`DataRace::many_reads`].
const MANY: Epoch = Epoch { slot: u32::MAX - 1, clock: 0 };

/// An access, as remembered for the report.
#[derive(Debug, Clone, Copy)]
struct Access {
    epoch: Epoch,
    write: bool,
    info: Info,
}

/// What the check needs of a variable: the epoch of its one remembered write and read, or
/// [`MANY`]. 16 bytes, so that the shadows of many variables stay in cache; the report's
/// details are kept apart in [`Details`].
#[derive(Debug, Clone, Copy)]
struct Shadow {
    write: Epoch,
    read: Epoch,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow { write: Epoch::NONE, read: Epoch::NONE }
    }
}

/// The report's details of a variable's one remembered write and read.
#[derive(Debug, Clone, Copy, Default)]
struct Details {
    write: Info,
    read: Info,
}

/// An ordered pair of sites that raced: the earlier access's, then the racy one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RaceKey {
    var: VarId,
    earlier: (SiteId, bool),
    later: (SiteId, bool),
}

/// A witness schedule of a race, as the report tells it.
#[derive(Debug, Clone)]
struct Witness {
    steps: Vec<WitnessStep>,
    /// Whether it runs events recorded before the earlier access in another order (else it
    /// runs them all as recorded, then steps recorded after it).
    reordered: bool,
}

#[derive(Debug, Clone)]
struct RaceRecord {
    earlier: Access,
    later: Access,
    /// Whether happens-before orders the pair (only in WCP, which does not).
    hb_ordered: bool,
    /// If so, the locks whose critical sections happens-before orders it through.
    via_locks: Vec<LockId>,
    /// A schedule that runs the two back to back (SHB and WCP).
    witness: Option<Result<Witness, Unbuilt>>,
    count: u64,
}

/// The data-race detector; see the module docs.
#[derive(Debug)]
pub struct DataRace {
    causality: Causality,
    /// Per variable, the epochs the check compares against.
    shadows: Vec<Shadow>,
    /// Per variable, the report's details of the accesses in its shadow.
    details: Vec<Details>,
    /// The remembered writes of variables whose shadow says [`MANY`].
    many_writes: HashMap<VarId, Vec<Access>>,
    /// The remembered reads of variables whose shadow says [`MANY`].
    many_reads: HashMap<VarId, Vec<Access>>,
    races: HashMap<RaceKey, RaceRecord>,
    /// Accesses seen.
    accesses: u64,
    /// The last events seen, for witness schedules (SHB and WCP).
    recent: Option<Recent>,
}

impl Default for DataRace {
    fn default() -> Self {
        DataRace::new()
    }
}

impl DataRace {
    /// A detector using happens-before.
    pub fn new() -> Self {
        DataRace::with_relation(Relation::Hb)
    }

    /// A detector using `relation`.
    pub fn with_relation(relation: Relation) -> Self {
        DataRace {
            causality: Causality::new(relation),
            shadows: Vec::new(),
            details: Vec::new(),
            many_writes: HashMap::new(),
            many_reads: HashMap::new(),
            races: HashMap::new(),
            accesses: 0,
            recent: (relation != Relation::Hb).then(Recent::default),
        }
    }

    fn on_access(
        &mut self,
        cx: &Context<'_>,
        event: &Event,
        var: VarId,
        site: SiteId,
        write: bool,
    ) {
        let actor = Actor::of(event);
        let slot = self.causality.slot(actor);
        self.causality.before_access(slot, var, write);
        let mut locks = [NO_LOCK; HELD_LOCKS_KEPT];
        for (kept, hold) in locks.iter_mut().zip(cx.state.holds(actor)) {
            *kept = hold.lock.0;
        }
        self.accesses += 1;
        let info = Info {
            actor,
            time_ns: event.time_ns,
            order: self.accesses,
            event: self.recent.as_ref().map_or(0, Recent::last),
            thread: event.thread,
            site,
            locks,
        };
        let epoch = self.causality.epoch(slot);
        let access = Access { epoch, write, info };
        let index = var.index();
        if self.shadows.len() <= index {
            self.shadows.resize(index + 1, Shadow::default());
            self.details.resize(index + 1, Details::default());
        }
        let clock = self.causality.ordering(slot);
        let shadow = &mut self.shadows[index];
        let details = &mut self.details[index];
        // Races are rare: the earlier accesses they involve are gathered only then.
        let mut raced: Vec<Access> = Vec::new();
        // Earlier writes: all conflict.
        if shadow.write == MANY {
            let writes = self.many_writes.get_mut(&var).expect("MANY has a list; this is a bug");
            raced.extend(writes.iter().filter(|w| w.epoch.unordered(slot, clock)));
            if write {
                writes.retain(|w| w.epoch.unordered(slot, clock));
                if writes.is_empty() {
                    drop(self.many_writes.remove(&var));
                    (shadow.write, details.write) = (epoch, info);
                } else {
                    writes.push(access);
                }
            }
        } else if shadow.write.unordered(slot, clock) {
            let earlier = Access { epoch: shadow.write, write: true, info: details.write };
            raced.push(earlier);
            if write {
                self.many_writes.insert(var, vec![earlier, access]);
                shadow.write = MANY;
            }
        } else if write {
            (shadow.write, details.write) = (epoch, info);
        }
        // Earlier reads: a write conflicts with them; a read replaces those ordered before it.
        if shadow.read == MANY {
            let reads = self.many_reads.get_mut(&var).expect("MANY has a list; this is a bug");
            if write {
                raced.extend(reads.iter().filter(|r| r.epoch.unordered(slot, clock)));
            }
            reads.retain(|r| r.epoch.unordered(slot, clock));
            if !write {
                reads.push(access);
            }
            match reads.len() {
                0 => {
                    drop(self.many_reads.remove(&var));
                    shadow.read = Epoch::NONE;
                }
                1 => {
                    let only = reads[0];
                    drop(self.many_reads.remove(&var));
                    (shadow.read, details.read) = (only.epoch, only.info);
                }
                _ => {}
            }
        } else if shadow.read.unordered(slot, clock) {
            let earlier = Access { epoch: shadow.read, write: false, info: details.read };
            if write {
                raced.push(earlier);
            } else {
                self.many_reads.insert(var, vec![earlier, access]);
                shadow.read = MANY;
            }
        } else if write {
            shadow.read = Epoch::NONE;
        } else {
            (shadow.read, details.read) = (epoch, info);
        }
        if !raced.is_empty() {
            self.record_races(cx, var, raced, access);
        }
        self.causality.after_access(slot, var, write);
    }

    fn record_races(
        &mut self,
        cx: &Context<'_>,
        var: VarId,
        mut raced: Vec<Access>,
        later: Access,
    ) {
        if self.causality.relation() != Relation::Hb {
            // SHB's and WCP's guarantees are about the latest unordered access.
            raced.sort_by_key(|earlier| earlier.info.order);
            raced.drain(..raced.len() - 1);
        }
        // One count per racy access and pair of sites, however many earlier accesses at one
        // site it races.
        raced.sort_by_key(|earlier| (earlier.info.site, earlier.write));
        raced.dedup_by_key(|earlier| (earlier.info.site, earlier.write));
        let hb = self.causality.clock(later.epoch.slot);
        for earlier in raced {
            let hb_ordered = !earlier.epoch.unordered(later.epoch.slot, hb);
            let key = RaceKey {
                var,
                earlier: (earlier.info.site, earlier.write),
                later: (later.info.site, later.write),
            };
            if let Some(record) = self.races.get_mut(&key) {
                record.count += 1;
                continue;
            }
            let via_locks = if hb_ordered {
                self.causality.locks_knowing(earlier.epoch, HELD_LOCKS_KEPT)
            } else {
                Vec::new()
            };
            let witness = self.recent.as_mut().map(|recent| {
                let numbers = recent.schedule(cx, earlier.info.event, later.info.event)?;
                let reordered = numbers.iter().any(|&number| number < earlier.info.event);
                let steps = numbers
                    .into_iter()
                    .filter_map(|number| recent.get(number))
                    .map(|event| witness::step(cx, event))
                    .collect();
                Ok(Witness { steps, reordered })
            });
            let record = RaceRecord { earlier, later, hb_ordered, via_locks, witness, count: 1 };
            self.races.insert(key, record);
        }
    }

    /// Whether `event` starts the clocks (see the module docs): an access, a join, or the end
    /// of a `block_on` future, which its caller joins.
    #[inline]
    fn starts_clocks(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Read { .. }
            | EventKind::Write { .. }
            | EventKind::TaskJoined { .. }
            | EventKind::ThreadJoined { .. } => true,
            EventKind::TaskFinished { .. } => self.causality.blocked_caller(event).is_some(),
            _ => false,
        }
    }

    /// [`on_event`](Detector::on_event) once the clocks are kept.
    #[inline(never)]
    fn on_clocked_event(&mut self, cx: &Context<'_>, event: &Event) {
        match event.kind {
            EventKind::Read { var, site } => self.on_access(cx, event, var, site, false),
            EventKind::Write { var, site } => self.on_access(cx, event, var, site, true),
            _ => self.causality.on_event(cx, event),
        }
    }
}

impl Detector for DataRace {
    fn kind(&self) -> FindingKind {
        FindingKind::DataRace
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::READ
            | Interest::WRITE
            | Interest::LOCK_ACQUIRED
            | Interest::LOCK_RELEASED
            | Interest::TASK_SPAWNED
            | Interest::TASK_FINISHED
            | Interest::THREAD_SPAWNED
            | Interest::TASK_JOINED
            | Interest::THREAD_JOINED
            | Interest::WAKE
            | Interest::POLL_STARTED
            | Interest::SEND
            | Interest::RECEIVE
            | Interest::SYNC_RELEASE
            | Interest::SYNC_ACQUIRE
    }

    fn prefetch_interest(&self) -> Interest {
        Interest::READ | Interest::WRITE | Interest::LOCK_ACQUIRED
    }

    /// Fetches the variable's shadow and details, or what the causality engine keeps of
    /// the lock.
    #[inline]
    fn prefetch(&self, event: &Event) {
        match event.kind {
            EventKind::Read { var, .. } | EventKind::Write { var, .. } => {
                prefetch_entry(&self.shadows, var.index());
                prefetch_entry(&self.details, var.index());
                self.causality.prefetch_access(var);
            }
            EventKind::LockAcquired { lock, .. } => self.causality.prefetch_acquisition(lock),
            _ => {}
        }
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        // (Only the kinds it declares, so that a schedule does not depend on what else
        // replay shows it.)
        if self.recent.is_some() && self.interest().wants(&event.kind) {
            if let Some(recent) = &mut self.recent {
                recent.push(event);
            }
        }
        if self.causality.started() {
            self.on_clocked_event(cx, event);
        } else if self.starts_clocks(event) {
            self.causality.start();
            self.on_clocked_event(cx, event);
        } else if !matches!(
            event.kind,
            EventKind::LockAcquired { .. } | EventKind::LockReleased { .. }
        ) {
            // (Before the clocks start, lock events, most of a trace of locks alone, change
            // nothing.)
            self.causality.before_start(cx, event);
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let mut races: Vec<(RaceKey, RaceRecord)> = self.races.drain().collect();
        races.sort_by_key(|(key, record)| {
            (record.later.info.order, key.var, key.earlier, key.later)
        });
        let relation = self.causality.relation();
        let losses = self.causality.losses();
        let forgotten = (relation == Relation::Wcp && !losses.is_empty())
            .then_some(Forgotten { sections: losses.sections, accesses: losses.accesses });
        for (rank, (key, record)) in races.iter().enumerate() {
            let witnessed = matches!(record.witness, Some(Ok(_)));
            let proved = relation != Relation::Wcp || rank == 0 || witnessed;
            let mut finding = race_finding(cx, key.var, record, relation, proved);
            if let Some(forgotten) = forgotten {
                finding.evidence.push(format!(
                    "WCP's bounds forgot {} critical sections and {} accesses inside them: it may have lost orders that would rule this race out",
                    forgotten.sections, forgotten.accesses
                ));
                if let Detail::DataRace(detail) = &mut finding.detail {
                    detail.forgotten = Some(forgotten);
                }
            }
            findings.push(finding);
        }
    }
}

fn access_detail(cx: &Context<'_>, access: &Access) -> AccessDetail {
    AccessDetail {
        access: if access.write { "write" } else { "read" }.to_owned(),
        thread: cx.trace.thread_name(access.info.thread),
        task: match access.info.actor {
            Actor::Task(task) => Some(cx.trace.task_name(task)),
            Actor::Thread(_) => None,
        },
        site: cx.site_ref(access.info.site, "").to_string(),
        time_ns: access.info.time_ns,
        locks_held: access
            .info
            .locks
            .iter()
            .take_while(|&&lock| lock != NO_LOCK)
            .map(|&lock| cx.trace.lock_name(LockId(lock)))
            .collect(),
    }
}

fn describe_access(cx: &Context<'_>, access: &Access, detail: &AccessDetail, var: &str) -> String {
    let verb = if access.write { "wrote" } else { "read" };
    let held = if detail.locks_held.is_empty() {
        "holding no lock".to_owned()
    } else {
        let names: Vec<String> = detail.locks_held.iter().map(|l| format!("`{l}`")).collect();
        format!("holding {}", names.join(", "))
    };
    format!(
        "{} {verb} `{var}` at {} (t={}), {held}",
        access.info.actor.describe(cx.trace),
        detail.site,
        crate::report::format_ns(access.info.time_ns),
    )
}

/// Why the two accesses of `record` can run back to back, in `relation`.
fn adjacency_reason(cx: &Context<'_>, record: &RaceRecord, relation: Relation) -> String {
    let via: Vec<String> =
        record.via_locks.iter().map(|&lock| format!("`{}`", cx.trace.lock_name(lock))).collect();
    let common = record
        .earlier
        .info
        .locks
        .iter()
        .any(|&lock| lock != NO_LOCK && record.later.info.locks.contains(&lock));
    let locks = if common {
        "they hold a common lock only in shared mode, or through different acquisitions that do not order them"
    } else {
        "no lock is held by both"
    };
    match relation {
        Relation::Hb => format!("{locks}, and no spawn, join, channel message or wake orders them"),
        Relation::Shb => format!("{locks}, and no spawn, join, channel message, wake or write that a read saw orders them: a schedule that keeps what every read saw can run them back to back"),
        Relation::Wcp if !record.hb_ordered => "nothing orders them, not even the order in which locks were taken in this run".to_owned(),
        Relation::Wcp if via.is_empty() => "this run ordered them only through critical sections that do not conflict, which another schedule may run the other way round".to_owned(),
        Relation::Wcp => format!(
            "this run ordered them only through critical sections on {} that do not conflict: another schedule may run those sections the other way round",
            via.join(", ")
        ),
    }
}

fn race_finding(
    cx: &Context<'_>,
    var: VarId,
    record: &RaceRecord,
    relation: Relation,
    proved: bool,
) -> Finding {
    let name = cx.trace.var_name(var);
    let (earlier, later) = (&record.earlier, &record.later);
    let first = access_detail(cx, earlier);
    let second = access_detail(cx, later);
    let (severity, prefix) = match (relation, proved) {
        (Relation::Wcp, false) => (Severity::Warning, "predicted, unverified data race"),
        (Relation::Wcp, true) if record.hb_ordered => (Severity::Error, "predicted data race"),
        _ => (Severity::Error, "data race"),
    };
    let mut finding = Finding::new(
        FindingKind::DataRace,
        severity,
        format!(
            "{prefix} on `{name}`: {} at {} and {} at {} are not ordered",
            first.access, first.site, second.access, second.site
        ),
    );
    finding.variables.push(name.clone());
    for access in [earlier, later] {
        cx.add_actor(&mut finding, access.info.actor, access.info.thread);
        let role = if access.write { "write" } else { "read" };
        finding.sites.push(cx.site_ref(access.info.site, role));
    }
    for lock in first.locks_held.iter().chain(&second.locks_held) {
        crate::report::push_unique(&mut finding.locks, lock.clone());
    }
    finding.time_ns = later.info.time_ns;
    finding.evidence.push(describe_access(cx, earlier, &first, &name));
    finding.evidence.push(describe_access(cx, later, &second, &name));
    let reason = adjacency_reason(cx, record, relation);
    finding.evidence.push(format!("{reason} ({relation})"));
    if relation == Relation::Wcp && !proved {
        finding.evidence.push(
            "WCP is sure only of the first race it finds; this later one is predicted, not proved"
                .to_owned(),
        );
    }
    let (witness, witness_missing) = match &record.witness {
        Some(Ok(witness)) => {
            schedule_evidence(&mut finding.evidence, witness);
            (witness.steps.clone(), None)
        }
        Some(Err(unbuilt)) => {
            finding.evidence.push(unbuilt.to_string());
            (Vec::new(), Some(unbuilt.to_string()))
        }
        None => (Vec::new(), None),
    };
    if record.count > 1 {
        finding.evidence.push(format!("this pair of sites raced {} times", record.count));
    }
    finding.help = Some(format!(
        "guard every access to `{name}` with one lock, or hand it over through a channel or a \
         join; if something hindsight cannot see orders them (a Condvar, a Barrier, an atomic \
         flag), record that order with `hindsight_recorder::annotate::release` after the first \
         access and `annotate::acquire` before the second, on one synchronisation variable"
    ));
    finding.detail = Detail::DataRace(Box::new(RaceDetail {
        variable: name,
        first,
        second,
        count: record.count,
        relation: relation.name().to_owned(),
        reason,
        witness,
        witness_missing,
        forgotten: None,
    }));
    finding
}

/// Schedule steps the text tells, at most: the JSON has them all.
const SCHEDULE_SHOWN: usize = 12;

/// A witness schedule as evidence lines: a short numbered list.
fn schedule_evidence(evidence: &mut Vec<String>, witness: &Witness) {
    let steps = &witness.steps;
    let moved = steps.len().saturating_sub(2);
    evidence.push(if witness.reordered {
        format!(
            "a schedule runs them back to back: the events recorded before step 1, then these {} steps in this order (the others recorded since wait), the two last:",
            steps.len()
        )
    } else if moved == 0 {
        "a schedule runs them back to back: the events recorded before the first access, then:"
            .to_owned()
    } else {
        format!(
            "a schedule runs them back to back: the events recorded before the first access, then {moved} recorded after it that the second access needs, then the two:"
        )
    });
    let (count, head) = (steps.len(), SCHEDULE_SHOWN - 2);
    for (number, step) in steps.iter().enumerate() {
        // The first moved steps and the two accesses.
        if count <= SCHEDULE_SHOWN || number < head || number >= count - 2 {
            evidence.push(format!("  {}. {step}", number + 1));
        } else if number == head {
            evidence.push(format!("  … {} more steps", count - SCHEDULE_SHOWN));
        }
    }
}
