//! The report model: what an analysis found, as plain serde structs.
//!
//! Everything a renderer (text, JSON, later SARIF and the TUI) shows comes from here; nothing
//! here refers to a detector's internals or to the trace's ids. Names are display names (a
//! lock's explicit name or creation site, a thread's name), sites are `file:line:col` with a
//! role, times are nanoseconds on the merged trace's time axis.
//!
//! The JSON form is a contract (see README.md): `{"trace", "findings", "locks", "tasks"}`, and
//! each finding's `kind`, `severity`, `title`, `locks`, `threads`, `tasks`, `variables`,
//! `sites`, `time_ns`. Change those names only on purpose.

pub mod json;
mod repeats;
pub mod sarif;
pub mod text;
pub mod witness;

pub use witness::WitnessStep;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a bug by itself.
    Info,
    /// Likely a problem.
    Warning,
    /// A bug.
    Error,
}

impl Severity {
    /// The lowercase name, as JSON and the text report write it.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!("unknown severity `{other}` (known: error, warning, info)")),
        }
    }
}

/// The stable kinds of findings (README.md). Not every kind has a detector yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FindingKind {
    /// Threads or tasks blocked on each other at the end of the trace.
    Deadlock,
    /// Locks taken in conflicting orders: a deadlock that can happen.
    LockOrderCycle,
    /// A guard held across an `.await`.
    GuardAcrossAwait,
    /// Unordered conflicting accesses.
    DataRace,
    /// A lock whose waits cross a threshold.
    ContentionHotspot,
    /// A lock still held when its holder ended, panicked, or the trace ended.
    StaleLock,
    /// A long poll or a blocking wait on an async worker.
    BlockingInAsync,
}

impl FindingKind {
    /// Every kind.
    pub const ALL: [FindingKind; 7] = [
        FindingKind::Deadlock,
        FindingKind::LockOrderCycle,
        FindingKind::GuardAcrossAwait,
        FindingKind::DataRace,
        FindingKind::ContentionHotspot,
        FindingKind::StaleLock,
        FindingKind::BlockingInAsync,
    ];

    /// Every kind's name.
    pub const ALL_NAMES: [&'static str; 7] = [
        "deadlock",
        "lock-order-cycle",
        "guard-across-await",
        "data-race",
        "contention-hotspot",
        "stale-lock",
        "blocking-in-async",
    ];

    /// The stable name, such as `lock-order-cycle`.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Deadlock => "deadlock",
            FindingKind::LockOrderCycle => "lock-order-cycle",
            FindingKind::GuardAcrossAwait => "guard-across-await",
            FindingKind::DataRace => "data-race",
            FindingKind::ContentionHotspot => "contention-hotspot",
            FindingKind::StaleLock => "stale-lock",
            FindingKind::BlockingInAsync => "blocking-in-async",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FindingKind {
    type Err = crate::error::AnalyzeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| crate::error::AnalyzeError::UnknownKind(s.to_owned()))
    }
}

/// A source location with the part it plays in a finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SiteRef {
    /// The source file, as recorded (empty for an STD trace's `LOC`, a location known by its
    /// number only).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// What happened there: `held` (where a held lock was acquired), `acquired` (where the
    /// next lock was taken while holding it), `waiting` (where a blocked actor waits), ...
    pub role: String,
}

impl fmt::Display for SiteRef {
    /// `file:line:col`, or `LOC n` for a location with no file (an STD trace's `LOC`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::trace::write_site(f, &self.file, self.line, self.col)
    }
}

/// One finding: what is wrong, and the evidence to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Its stable kind.
    pub kind: FindingKind,
    /// How serious it is.
    pub severity: Severity,
    /// One line saying what is wrong.
    pub title: String,
    /// The locks involved (display names), in the order the evidence tells.
    pub locks: Vec<String>,
    /// The threads involved.
    pub threads: Vec<String>,
    /// The tasks involved.
    pub tasks: Vec<String>,
    /// The annotated variables involved.
    pub variables: Vec<String>,
    /// The relevant sites, each with its role.
    pub sites: Vec<SiteRef>,
    /// When it happened (the moment the timeline should show), on the merged time axis.
    pub time_ns: u64,
    /// The evidence, one sentence per line, as the detector words it.
    pub evidence: Vec<String>,
    /// How to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Kind-specific detail.
    pub detail: Detail,
    /// When the same finding (kind, severity, sites, lock classes) was met more than once:
    /// each time it was, the first one included (see [`Report::group_repeats`]); empty when
    /// it was met once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<FindingInstance>,
}

/// One occurrence of a finding that was met several times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingInstance {
    /// Its own title.
    pub title: String,
    /// Its locks (display names).
    pub locks: Vec<String>,
    /// Its threads.
    pub threads: Vec<String>,
    /// Its tasks.
    pub tasks: Vec<String>,
    /// When it happened.
    pub time_ns: u64,
}

impl FindingInstance {
    /// The occurrence that `finding` describes.
    fn of(finding: &Finding) -> Self {
        FindingInstance {
            title: finding.title.clone(),
            locks: finding.locks.clone(),
            threads: finding.threads.clone(),
            tasks: finding.tasks.clone(),
            time_ns: finding.time_ns,
        }
    }
}

impl Finding {
    /// A finding with a title and no evidence yet.
    pub fn new(kind: FindingKind, severity: Severity, title: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            title: title.into(),
            locks: Vec::new(),
            threads: Vec::new(),
            tasks: Vec::new(),
            variables: Vec::new(),
            sites: Vec::new(),
            time_ns: 0,
            evidence: Vec::new(),
            help: None,
            detail: Detail::None,
            instances: Vec::new(),
        }
    }

    /// The time its facts span on the threads and tasks it names, `(from, to)`, where its
    /// detail says: a hold (`stale-lock`, `guard-across-await`), a poll (`blocking-in-async`),
    /// waits and holds to the end (`deadlock`). Events lost inside that span may have changed
    /// them; events lost outside it cannot, for the events at its start showed the actor
    /// again. `None` where a finding may rest on anything before it (a lock order, a race's
    /// clocks, statistics).
    pub fn facts_span(&self) -> Option<(u64, u64)> {
        let t = self.time_ns;
        match &self.detail {
            Detail::StaleLock(d) => {
                Some((d.held_since_ns, d.held_since_ns.saturating_add(d.held_ns)))
            }
            Detail::GuardAcrossAwait(d) => Some((t, t.saturating_add(d.held_ns))),
            Detail::BlockingInAsync(d) => Some((t, t.saturating_add(d.longest_poll_ns))),
            Detail::Deadlock(d) => {
                let holds = d.cycle.iter().filter_map(|a| a.holds.as_ref().map(|h| h.since_ns));
                let waits = d.cycle.iter().map(|a| a.waiting_since_ns);
                holds.chain(waits).min().map(|from| (from, u64::MAX))
            }
            _ => None,
        }
    }
}

/// Adds `item` to `list` unless it is there already (keeps the first-seen order).
pub fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Kind-specific detail of a finding. Serialized as a plain object (or `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Detail {
    /// Of a `lock-order-cycle`.
    LockOrderCycle(CycleDetail),
    /// Of a `deadlock`.
    Deadlock(DeadlockDetail),
    /// Of a `stale-lock`.
    StaleLock(StaleLockDetail),
    /// Of a `data-race`.
    DataRace(Box<RaceDetail>),
    /// Of a `guard-across-await`.
    GuardAcrossAwait(GuardDetail),
    /// Of a `blocking-in-async`.
    BlockingInAsync(BlockingDetail),
    /// Of a `contention-hotspot`.
    ContentionHotspot(HotspotDetail),
    /// No detail.
    None,
}

/// The cycle of a `lock-order-cycle`, one edge per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleDetail {
    /// The edges, in cycle order: each `to` is the next edge's `from`.
    pub edges: Vec<CycleEdge>,
    /// Why the cycle cannot deadlock, when it was lowered below `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an `error`, a schedule that deadlocks: the deciding steps of a reordering of the
    /// recorded events that ends with every actor of the cycle blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<WitnessStep>,
}

/// One edge of a lock-order cycle: `thread` held `from` and took `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleEdge {
    /// The held lock's class.
    pub from: String,
    /// The class of the lock taken while holding it.
    pub to: String,
    /// The held lock instance.
    pub from_lock: String,
    /// The lock instance taken.
    pub to_lock: String,
    /// The thread that did it.
    pub thread: String,
    /// The task, if it happened in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Where the held lock was acquired (`file:line:col`).
    pub held_at: String,
    /// Where the next lock was acquired (`file:line:col`).
    pub acquired_at: String,
    /// `exclusive` or `shared`: how `from` was held.
    pub held_mode: String,
    /// `exclusive` or `shared`: how `to` was taken.
    pub mode: String,
    /// When `from` was acquired.
    pub held_since_ns: u64,
    /// When `to` was acquired.
    pub time_ns: u64,
    /// How often this order was seen in the trace.
    pub count: u64,
}

/// The wait-for cycle of a `deadlock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlockDetail {
    /// The blocked threads or tasks, in cycle order: each waits for something the next one
    /// holds (or for the next one to finish).
    pub cycle: Vec<BlockedActor>,
    /// The other wait cycles of the same stuck group of actors (one incident, one finding),
    /// each as its actors in cycle order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_cycles: Vec<Vec<String>>,
}

/// One thread or task of a deadlock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedActor {
    /// The thread (or the thread the task was on).
    pub thread: String,
    /// The task, if the actor is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// What it holds that the previous actor of the cycle waits for (empty for a join).
    pub holds: Option<HeldLock>,
    /// What it waits for: a lock name, or the thread or task it joins.
    pub waits_for: String,
    /// `lock`, `thread` or `task`.
    pub wait_kind: String,
    /// Where it waits (`file:line:col`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_site: Option<String>,
    /// Since when.
    pub waiting_since_ns: u64,
}

/// A lock held, with where and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldLock {
    /// The lock.
    pub lock: String,
    /// Where it was acquired (`file:line:col`).
    pub site: String,
    /// Since when.
    pub since_ns: u64,
}

/// The hold of a `stale-lock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleLockDetail {
    /// The lock.
    pub lock: String,
    /// The holder (``thread `x` `` or ``task `y` ``).
    pub holder: String,
    /// Where it was acquired (`file:line:col`).
    pub acquired_at: String,
    /// When it was acquired.
    pub held_since_ns: u64,
    /// How long it was held: until the panic, or until the end of the trace.
    pub held_ns: u64,
    /// `poisoned` (released by a panicking holder), `unwound` (a lock that does not poison,
    /// released by a panicking holder's unwinding), `holder-finished`, `holder-panicked` (the
    /// holder ended without releasing it), `trace-ended`, `permits-leaked` (a semaphore's
    /// waiter left with no permit to come back) or `state-at-death` (the trace ended
    /// mid-flight; the detail names the longest hold).
    pub reason: String,
}

/// One file of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The path.
    pub path: String,
    /// The recorded program.
    pub program: String,
    /// Its process id.
    pub pid: u32,
    /// The host.
    pub host: String,
    /// The trace format version.
    pub format_version: u32,
    /// Wall-clock time of the file's time zero (ns since the Unix epoch).
    pub start_unix_ns: u64,
    /// Events read.
    pub events: u64,
    /// Bytes of an incomplete or corrupt tail that could not be read.
    pub truncated_bytes: u64,
    /// Why reading stopped early, if the tail was corrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    /// Events the recorder counted as lost.
    pub dropped_events: u64,
    /// Regions of the file that were damaged and skipped (empty for an undamaged file).
    #[serde(default)]
    pub damaged_regions: Vec<DamagedRegion>,
}

/// A region of a trace file that was damaged and skipped; what it held is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DamagedRegion {
    /// File offset of its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// Of those, bytes whose content was read again from the copy written after them (the
    /// header and definitions are written twice).
    #[serde(default)]
    pub recovered_bytes: u64,
    /// An estimate of the events it held (0 if it held only definitions read again from their
    /// copy).
    pub events_lost: u64,
    /// Threads whose later events show a hole there (findings on them are uncertain).
    pub threads: Vec<String>,
    /// What was wrong with it.
    pub reason: String,
}

/// A thread of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadEntry {
    /// Its display name.
    pub name: String,
    /// The OS id.
    pub os_id: u64,
    /// When it was first seen.
    pub first_seen_ns: Option<u64>,
    /// When it finished, if it did.
    pub finished_ns: Option<u64>,
    /// It panicked.
    pub panicked: bool,
}

/// What was analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The files, one per process.
    pub files: Vec<FileSummary>,
    /// Events replayed.
    pub events: u64,
    /// Time from the first to the last event.
    pub duration_ns: u64,
    /// When the first event happened, on the merged time axis that finding times use.
    pub start_ns: u64,
    /// The threads.
    pub threads: Vec<ThreadEntry>,
    /// A damaged region of some file was skipped: events were lost in the middle of a trace,
    /// and findings may miss or misjudge what they did (see each file's `damaged_regions`).
    #[serde(default)]
    pub damaged: bool,
    /// Bytes that could not be read, over all files.
    pub truncated_bytes: u64,
    /// Events the recorders counted as lost, over all files.
    pub dropped_events: u64,
    /// Lock events replayed out of their lock's order because an earlier one was missing.
    pub forced_reorders: u64,
    /// Acquisitions replayed while another holder still held the lock (0 for a complete
    /// trace).
    pub replay_conflicts: u64,
}

/// The implementation of a lock entry read from a report that predates the field.
fn unknown_implementation() -> String {
    "unknown".into()
}

/// A lock and its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockEntry {
    /// Its display name.
    pub name: String,
    /// `mutex`, `rwlock`, `semaphore` or `custom`.
    pub kind: String,
    /// Its class.
    pub class: String,
    /// Waiting for it blocks the OS thread.
    pub blocking: bool,
    /// The code that implements it: `std`, `tokio`, `parking_lot`, `hindsight-std`,
    /// `hindsight-tokio` (hindsight's wrappers of those), `user-defined` or `unknown`.
    #[serde(default = "unknown_implementation")]
    pub implementation: String,
    /// A semaphore's initial permits, where recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Where it was created (`file:line:col`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Failed `try_lock` attempts.
    pub try_failed: u64,
    /// Waits given up before the lock was acquired (a timeout, a cancelled future, a closed
    /// semaphore).
    #[serde(default)]
    pub abandoned_waits: u64,
    /// A holder panicked while holding it.
    pub poisoned: bool,
    /// Acquisitions by another thread or task than the previous one.
    pub owner_changes: u64,
    /// Wait times of the contended acquisitions.
    pub wait: DurationStats,
    /// Hold times of all acquisitions.
    pub hold: DurationStats,
    /// The sites that waited longest for it, in all.
    pub top_waiting_sites: Vec<SiteTime>,
    /// The sites that held it longest, in all.
    pub top_holding_sites: Vec<SiteTime>,
    /// Its class's statistics, when the class has other locks too (per-object locks created
    /// at one site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_totals: Option<ClassTotals>,
}

/// The statistics of a lock class (the locks of one explicit name, or of one creation site)
/// over all its locks: given with each lock of a class that has several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassTotals {
    /// How many lock instances the class has.
    pub locks: u64,
    /// The class's statistics, as fields of this object in JSON.
    #[serde(flatten)]
    pub statistics: LockStatistics,
}

/// The contention statistics of one lock or lock class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockStatistics {
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Waits given up before the lock was acquired (a timeout, a cancelled future, a closed
    /// semaphore); their time is in `wait` too.
    #[serde(default)]
    pub abandoned_waits: u64,
    /// Acquisitions by another thread or task than the previous one.
    pub owner_changes: u64,
    /// Wait times of the contended acquisitions.
    pub wait: DurationStats,
    /// Hold times of all acquisitions.
    pub hold: DurationStats,
    /// The sites that waited longest, in all.
    pub top_waiting_sites: Vec<SiteTime>,
    /// The sites that held longest, in all.
    pub top_holding_sites: Vec<SiteTime>,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Its display name.
    pub name: String,
    /// Its kind (`task`, `blocking`, ...), if known.
    pub kind: Option<String>,
    /// Where it was spawned (`file:line:col`), if known.
    pub spawn_site: Option<String>,
    /// When it was spawned.
    pub spawned_ns: Option<u64>,
    /// When it finished, if it did.
    pub finished_ns: Option<u64>,
    /// It was cancelled or panicked.
    pub cancelled: bool,
    /// Polls.
    pub polls: u64,
    /// It is the async runtime's own rather than the program's (see
    /// [`is_runtime_internal`](Self::is_runtime_internal)): reports count it apart.
    #[serde(default)]
    pub runtime: bool,
}

impl TaskEntry {
    /// Whether a task of `kind` spawned at `spawn_site` is the runtime's own rather than the
    /// program's: a `block_on` future, or a task tokio spawned from its own source (the
    /// launches of its worker threads on the blocking pool).
    pub fn is_runtime_internal(kind: Option<&str>, spawn_site: Option<&str>) -> bool {
        let from_tokio = spawn_site
            .is_some_and(|site| site.starts_with("tokio-") && site.contains("/src/runtime/"));
        kind == Some("block_on") || from_tokio
    }
}

/// The result of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was analysed.
    pub trace: TraceSummary,
    /// The findings, most severe first, then by time.
    pub findings: Vec<Finding>,
    /// The locks.
    pub locks: Vec<LockEntry>,
    /// The tasks.
    pub tasks: Vec<TaskEntry>,
    /// The orders in which two lock classes were taken (the lock-order graph), most frequent
    /// first, at most [`LOCK_ORDERS_KEPT`]; empty when lock-order cycles were not asked for.
    /// For the terminal UI: the JSON report keeps its contracted shape, and `hindsight export
    /// --dot` draws the whole graph.
    #[serde(skip)]
    pub lock_orders: Vec<LockOrderEdge>,
    /// How many orders the graph has in all (`lock_orders` keeps the most frequent).
    #[serde(skip)]
    pub lock_orders_total: usize,
}

/// The most frequent lock orders a [`Report`] keeps for the terminal UI (a graph over
/// 100,000 locks has 800,000 of them; nobody reads past the first screens).
pub const LOCK_ORDERS_KEPT: usize = 4096;

/// One edge of the lock-order graph: a lock of class `to` taken while one of class `from`
/// was held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOrderEdge {
    /// The class held.
    pub from: String,
    /// The class taken meanwhile.
    pub to: String,
    /// How many times.
    pub count: u64,
    /// Where the held lock was acquired, the first time (`file:line:col`).
    pub held_at: String,
    /// Where the other was taken, the first time.
    pub taken_at: String,
}

impl Report {
    /// How many findings have each severity: `(errors, warnings, infos)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        (count(Severity::Error), count(Severity::Warning), count(Severity::Info))
    }

    /// Whether any finding is at or above `level`: the exit status `1` of `analyze`.
    pub fn fails(&self, level: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= level)
    }

    /// Puts the findings in report order: most severe first, then by time, then by kind.
    pub fn sort_findings(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.time_ns.cmp(&b.time_ns))
                .then(a.kind.cmp(&b.kind))
                .then(a.title.cmp(&b.title))
        });
    }
}

/// A count with its noun: `1 thread`, `3 threads`, `0 threads`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A duration or trace time for people: `850ns`, `12.5µs`, `1.203ms`, `2.500s`.
pub fn format_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.3}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A class's totals are one flat JSON object: `locks` beside the statistics' fields.
    #[test]
    fn class_totals_are_flat_in_json() {
        let mut statistics = LockStatistics { acquisitions: 5, contended: 2, ..Default::default() };
        statistics.wait.max_ns = 7;
        let totals = ClassTotals { locks: 3, statistics };
        let json = serde_json::to_value(&totals).expect("serializable");
        // In the order written (serde_json's map would sort the keys).
        let text = serde_json::to_string(&totals).expect("serializable");
        let fields = [
            "locks",
            "acquisitions",
            "contended",
            "abandoned_waits",
            "owner_changes",
            "wait",
            "hold",
            "top_waiting_sites",
            "top_holding_sites",
        ];
        let at: Vec<usize> =
            fields.iter().map(|f| text.find(&format!("\"{f}\":")).expect(f)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(json.as_object().map(|o| o.len()), Some(fields.len()), "{text}");
        assert_eq!(
            (json["acquisitions"].as_u64(), json["wait"]["max_ns"].as_u64()),
            (Some(5), Some(7))
        );
        let back: ClassTotals = serde_json::from_value(json).expect("deserializable");
        assert_eq!(back, totals);
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for (kind, name) in FindingKind::ALL.into_iter().zip(FindingKind::ALL_NAMES) {
            assert_eq!(kind.name(), name);
            assert_eq!(name.parse::<FindingKind>().ok(), Some(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(name)));
        }
        assert!("deadlocks".parse::<FindingKind>().is_err());
    }

    #[test]
    fn severities_are_ordered_and_named_in_lowercase() {
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(
            serde_json::to_value(Severity::Warning).ok(),
            Some(serde_json::json!("warning"))
        );
        assert_eq!("info".parse::<Severity>(), Ok(Severity::Info));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_ns(850), "850ns");
        assert_eq!(format_ns(12_500), "12.5µs");
        assert_eq!(format_ns(1_203_000), "1.203ms");
        assert_eq!(format_ns(2_500_000_000), "2.500s");
    }
}

/// Of a `data-race`: the two unordered accesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceDetail {
    /// The variable.
    pub variable: String,
    /// The earlier access.
    pub first: AccessDetail,
    /// The later access.
    pub second: AccessDetail,
    /// How often this pair of sites raced.
    pub count: u64,
    /// The relation that found it (`hb`, `shb` or `wcp`, as `--races` names them).
    #[serde(default)]
    pub relation: String,
    /// Why the two accesses can run back to back (for WCP, the critical sections that may be
    /// reordered).
    #[serde(default)]
    pub reason: String,
    /// A schedule that runs them back to back (SHB and WCP): after every event the trace
    /// recorded before its first step, these steps in this order, the two accesses last
    /// (events recorded since the first step and not among them wait). Empty when none was
    /// built (see `witness_missing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<witness::WitnessStep>,
    /// Why no schedule was built, when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_missing: Option<String>,
    /// WCP's bounds: orders it forgot, which may make this race one a complete analysis
    /// would not report (absent when nothing was forgotten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<Forgotten>,
}

/// What WCP's bounds made it forget over the whole trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Critical sections dropped from a lock's history before every thread or task had
    /// looked at them.
    pub sections: u64,
    /// Accesses inside critical sections forgotten.
    pub accesses: u64,
}

/// One access of a data race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessDetail {
    /// `read` or `write`.
    pub access: String,
    /// The thread it ran on.
    pub thread: String,
    /// The task, if it ran in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Where (`file:line:col`).
    pub site: String,
    /// When.
    pub time_ns: u64,
    /// The locks held at the access (the first few), so that "no common lock" is visible.
    pub locks_held: Vec<String>,
}

/// Of a `guard-across-await`: the hold and its suspensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardDetail {
    /// The lock.
    pub lock: String,
    /// `blocking` (a std-like guard) or `async`.
    pub guard: String,
    /// Where it was acquired (`file:line:col`).
    pub acquired_at: String,
    /// The task that held it.
    pub task: String,
    /// Where that task was spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_at: Option<String>,
    /// Suspensions while held, over all holds from this site.
    pub suspensions: u64,
    /// Time spent suspended while holding it.
    pub suspended_ns: u64,
    /// Time held in all.
    pub held_ns: u64,
    /// The await it suspended at, where known (a lock or join it waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_site: Option<String>,
    /// Who asked for the lock meanwhile, and how long they waited.
    pub waiters: Vec<AwaitWaiter>,
    /// Holds from this site that suspended.
    pub holds: u64,
}

/// Someone who waited for a lock held across an `.await`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwaitWaiter {
    /// ``thread `x` `` or ``task `y` ``.
    pub actor: String,
    /// Where it waited.
    pub site: String,
    /// How long it waited while the lock was held.
    pub waited_ns: u64,
}

/// Of a `blocking-in-async`: how the task stalled its worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockingDetail {
    /// The task.
    pub task: String,
    /// Where it was spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_at: Option<String>,
    /// Its longest poll.
    pub longest_poll_ns: u64,
    /// Polls longer than the threshold.
    pub long_polls: u64,
    /// The threshold (`--poll-threshold`).
    pub poll_threshold_ns: u64,
    /// The blocking lock it waited for inside a poll, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_lock: Option<String>,
    /// How long it waited for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_wait_ns: Option<u64>,
    /// Where it waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_site: Option<String>,
}

/// Of a `contention-hotspot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotspotDetail {
    /// The lock.
    pub lock: String,
    /// Its share of all lock wait time in the trace (0 to 1).
    pub wait_share: f64,
    /// Its longest wait.
    pub max_wait_ns: u64,
    /// The threshold (`--wait-threshold`).
    pub wait_threshold_ns: u64,
}

/// Statistics of a set of durations (from an HDR histogram with two significant digits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationStats {
    /// How many.
    pub count: u64,
    /// Their sum.
    pub total_ns: u64,
    /// Their mean.
    pub mean_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// The longest.
    pub max_ns: u64,
}

/// Time spent at one site (waiting for or holding a lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTime {
    /// `file:line:col`.
    pub site: String,
    /// How many times.
    pub count: u64,
    /// How long in all.
    pub total_ns: u64,
}
