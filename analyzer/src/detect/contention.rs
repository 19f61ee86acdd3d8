//! Lock statistics and `contention-hotspot`.
//!
//! For every lock the detector keeps, as Linux lockdep's lock statistics do: acquisitions,
//! contended acquisitions (those that had to wait), owner changes (acquisitions by another
//! thread or task than the previous one), wait times over the contended acquisitions, hold
//! times over all of them, and the sites that waited and held longest. Percentiles come from
//! HDR histograms (two significant digits), never from stored samples, so memory grows with
//! the locks and sites, not with the trace.
//!
//! A lock is a hotspot when its longest wait reaches the wait threshold (`--wait-threshold`,
//! 100 ms by default), or when it accounts for most of the trace's lock wait time and its
//! waits are long enough to matter: a p99 wait of at least a tenth of the threshold. (Many
//! tasks briefly queueing on one lock add up to a large total without anyone being slowed.) Semaphores get statistics but no finding: waiting for a
//! permit is the admission control they exist for.

use super::{Context, Detector, Interest};
use crate::replay::{Actor, WaitFor};
use crate::report::{counted, format_ns};
use crate::report::{
    push_unique, Detail, DurationStats, Finding, FindingKind, HotspotDetail, LockStatistics,
    Severity, SiteTime,
};
use hdrhistogram::Histogram;
use hindsight_recorder::format::{Event, EventKind, LockId, LockKind, SiteId, TaskId, ThreadId};
use rustc_hash::FxHashMap;

/// The default `--wait-threshold`.
pub const DEFAULT_WAIT_THRESHOLD_NS: u64 = 100_000_000;

/// Sites listed per lock, for waiting and for holding.
const TOP_SITES: usize = 3;

/// Durations are recorded from 100 ns (shorter ones land in the lowest bucket) to an hour.
const HISTOGRAM_LOW_NS: u64 = 100;
const HISTOGRAM_HIGH_NS: u64 = 3_600_000_000_000;

/// A lock is a hotspot by share when it has more than this fraction of all wait time...
const MOST_OF_THE_WAIT: f64 = 0.5;

/// ...and its p99 wait is at least the wait threshold divided by this.
const SIGNIFICANT_P99_DIVISOR: u64 = 10;

/// The bucketing every duration histogram uses: an empty HDR histogram of the detector's
/// bounds, asked which bucket a duration falls in, and cloned to build a lock's histogram.
#[derive(Debug, Clone)]
struct Scale(Histogram<u32>);

impl Scale {
    fn new() -> Scale {
        let histogram = Histogram::new_with_bounds(HISTOGRAM_LOW_NS, HISTOGRAM_HIGH_NS, 2)
            .expect("constant histogram bounds are valid; this is a bug");
        Scale(histogram)
    }
}

/// Durations of one lock: the counts of an HDR histogram (two significant digits), kept per
/// bucket in a map, plus the exact total. A lock's durations fall in a few dozen buckets, where
/// the histogram's dense counts take 18 KiB per lock and a cache miss per duration; the
/// histogram itself is built, bucket for bucket the same, when it is read.
#[derive(Debug, Clone, Default)]
struct Durations {
    /// Durations per bucket, keyed by the bucket's highest value; zero durations apart, by 0.
    /// (A histogram's maximum counts only durations above zero: recording the keys themselves
    /// gives the same histogram, maximum included.)
    buckets: FxHashMap<u64, u32>,
    /// Durations past the histogram's range (over an hour), which it clamps: kept in a real
    /// histogram, which knows how.
    beyond: Option<Box<Histogram<u32>>>,
    /// Durations recorded.
    count: u64,
    /// The histogram's maximum: the highest value of the largest duration's bucket (0 if no
    /// duration was above 0).
    max_ns: u64,
    total_ns: u64,
}

impl Durations {
    #[inline]
    fn record(&mut self, scale: &Scale, nanos: u64) {
        if nanos <= scale.0.high() {
            let bucket = if nanos == 0 { 0 } else { scale.0.highest_equivalent(nanos) };
            let count = self.buckets.entry(bucket).or_insert(0);
            *count = count.saturating_add(1);
            self.max_ns = self.max_ns.max(bucket);
        } else {
            let beyond = self.beyond.get_or_insert_with(|| Box::new(scale.0.clone()));
            beyond.saturating_record(nanos);
            self.max_ns = self.max_ns.max(beyond.max());
        }
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(nanos);
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn add(&mut self, other: &Durations) {
        for (&bucket, &n) in &other.buckets {
            let count = self.buckets.entry(bucket).or_insert(0);
            *count = count.saturating_add(n);
        }
        if let Some(other_beyond) = &other.beyond {
            match &mut self.beyond {
                // Both histograms have the same bounds, so adding cannot fail.
                Some(beyond) => drop(beyond.add(&**other_beyond)),
                None => self.beyond = Some(other_beyond.clone()),
            }
        }
        self.max_ns = self.max_ns.max(other.max_ns);
        self.count += other.count;
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
    }

    /// The HDR histogram of the durations.
    fn histogram(&self, scale: &Scale) -> Histogram<u32> {
        let mut histogram = scale.0.clone();
        for (&bucket, &n) in &self.buckets {
            // A bucket's highest value is within the bounds, so recording cannot fail.
            let _ = histogram.record_n(bucket, n);
        }
        if let Some(beyond) = &self.beyond {
            let _ = histogram.add(&**beyond);
        }
        histogram
    }

    fn summary(&self, scale: &Scale) -> DurationStats {
        if self.is_empty() {
            return DurationStats::default();
        }
        let histogram = self.histogram(scale);
        let count = histogram.len();
        DurationStats {
            count,
            total_ns: self.total_ns,
            mean_ns: self.total_ns / count,
            p50_ns: histogram.value_at_quantile(0.50),
            p95_ns: histogram.value_at_quantile(0.95),
            p99_ns: histogram.value_at_quantile(0.99),
            max_ns: histogram.max(),
        }
    }
}

/// Counts and time per site.
#[derive(Debug, Clone, Copy, Default)]
struct SiteTotal {
    count: u64,
    total_ns: u64,
}

impl SiteTotal {
    #[inline]
    fn add(sites: &mut FxHashMap<SiteId, SiteTotal>, site: SiteId, nanos: u64) {
        let total = sites.entry(site).or_default();
        total.count += 1;
        total.total_ns = total.total_ns.saturating_add(nanos);
    }
}

/// Everything kept about one lock.
#[derive(Debug, Clone, Default)]
struct LockStats {
    acquisitions: u64,
    contended: u64,
    owner_changes: u64,
    last_owner: Option<Actor>,
    wait: Durations,
    hold: Durations,
    max_wait_at_ns: u64,
    wait_sites: FxHashMap<SiteId, SiteTotal>,
    hold_sites: FxHashMap<SiteId, SiteTotal>,
    /// The first few threads and tasks that had to wait for it, for the finding.
    waiters: Vec<Actor>,
}

/// Waiting threads and tasks named per hotspot.
const WAITERS_NAMED: usize = 8;

/// Lock events logged before they are counted (see [`Contention::flush`]).
const PENDING: usize = 8192;

/// Above this many locks, a flush sorts its events by comparison rather than by counting.
const COUNTING_SORT_LOCKS: usize = 4 * PENDING;

/// The logged event is a release (else an acquisition).
const RELEASE: u8 = 1;
/// The acquisition waited for `nanos`.
const WAITED: u8 = 1 << 1;
/// `site` is set.
const SITE: u8 = 1 << 2;
/// The acquiring actor is a task (else a thread).
const TASK: u8 = 1 << 3;

/// A lock event, logged to be counted later together with the others of its lock.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    /// How long the acquisition waited, or the hold lasted.
    nanos: u64,
    /// When it happened.
    time_ns: u64,
    lock: u32,
    /// The wait's or the hold's site.
    site: u32,
    /// The acquiring actor's thread or task.
    actor: u32,
    flags: u8,
}

impl LockStats {
    /// Counts one logged event of this lock.
    #[inline]
    fn count(&mut self, scale: &Scale, event: &Pending) {
        if event.flags & RELEASE != 0 {
            self.hold.record(scale, event.nanos);
            SiteTotal::add(&mut self.hold_sites, SiteId(event.site), event.nanos);
            return;
        }
        let actor = if event.flags & TASK != 0 {
            Actor::Task(TaskId(event.actor))
        } else {
            Actor::Thread(ThreadId(event.actor))
        };
        self.acquisitions += 1;
        if self.last_owner.is_some_and(|owner| owner != actor) {
            self.owner_changes += 1;
        }
        self.last_owner = Some(actor);
        if event.flags & WAITED != 0 {
            let waited_ns = event.nanos;
            self.contended += 1;
            if waited_ns > self.wait.max_ns || self.wait.is_empty() {
                self.max_wait_at_ns = event.time_ns;
            }
            self.wait.record(scale, waited_ns);
            if self.waiters.len() < WAITERS_NAMED && !self.waiters.contains(&actor) {
                self.waiters.push(actor);
            }
            if event.flags & SITE != 0 {
                SiteTotal::add(&mut self.wait_sites, SiteId(event.site), waited_ns);
            }
        }
    }
}

/// The lock statistics collector and contention-hotspot detector; see the module docs.
///
/// It logs the lock events it sees and counts them a batch at a time, each lock's events
/// together (in their order): a lock's statistics are then read from memory once per batch
/// rather than once per event, which matters when a trace has many locks.
#[derive(Debug)]
pub struct Contention {
    wait_threshold_ns: u64,
    scale: Scale,
    locks: Vec<Option<LockStats>>,
    /// Events not counted yet, in replay order.
    pending: Vec<Pending>,
    /// The same, ordered by lock (reused by each flush).
    sorted: Vec<Pending>,
    /// Where each lock's events start in `sorted` (reused by each flush).
    starts: Vec<u32>,
}

impl Contention {
    /// A detector reporting waits of at least `wait_threshold_ns`.
    pub fn new(wait_threshold_ns: u64) -> Self {
        Contention {
            wait_threshold_ns,
            scale: Scale::new(),
            locks: Vec::new(),
            pending: Vec::with_capacity(PENDING),
            sorted: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Logs an event, and counts the log once it is full.
    #[inline]
    fn log(&mut self, event: Pending) {
        self.pending.push(event);
        if self.pending.len() >= PENDING {
            self.flush();
        }
    }

    /// Counts the logged events: sorts them by lock (stably, so that each lock's events stay
    /// in their order), then counts each lock's events together.
    fn flush(&mut self) {
        let Some(last) = self.pending.iter().map(|p| p.lock as usize).max() else {
            return;
        };
        if self.locks.len() <= last {
            self.locks.resize_with(last + 1, || None);
        }
        let locks = self.locks.len();
        self.sorted.clear();
        if locks <= COUNTING_SORT_LOCKS {
            self.starts.clear();
            self.starts.resize(locks + 1, 0);
            for event in &self.pending {
                self.starts[event.lock as usize + 1] += 1;
            }
            for i in 1..=locks {
                self.starts[i] += self.starts[i - 1];
            }
            self.sorted.resize(self.pending.len(), Pending::default());
            for event in &self.pending {
                let at = &mut self.starts[event.lock as usize];
                self.sorted[*at as usize] = *event;
                *at += 1;
            }
        } else {
            self.sorted.extend_from_slice(&self.pending);
            self.sorted.sort_by_key(|event| event.lock);
        }
        self.pending.clear();
        for events in self.sorted.chunk_by(|a, b| a.lock == b.lock) {
            let stats = self.locks[events[0].lock as usize].get_or_insert_with(LockStats::default);
            for event in events {
                stats.count(&self.scale, event);
            }
        }
    }

    /// The statistics of every lock, indexed by lock id (all zero for a lock never taken).
    pub fn lock_statistics(&mut self, cx: &Context<'_>) -> Vec<LockStatistics> {
        self.flush();
        self.statistics(cx)
    }

    /// [`lock_statistics`](Self::lock_statistics), once the log is counted.
    fn statistics(&self, cx: &Context<'_>) -> Vec<LockStatistics> {
        (0..cx.trace.locks().len())
            .map(|index| match self.locks.get(index).and_then(Option::as_ref) {
                Some(stats) => summarize(cx, &self.scale, stats),
                None => LockStatistics::default(),
            })
            .collect()
    }

    /// The statistics of every lock class (the locks of one name or creation site taken
    /// together), indexed by class id.
    pub fn class_statistics(&mut self, cx: &Context<'_>) -> Vec<LockStatistics> {
        self.flush();
        let mut classes: Vec<Option<LockStats>> = vec![None; cx.trace.class_count()];
        for (index, stats) in self.locks.iter().enumerate() {
            let (Some(stats), Some(lock)) = (stats, cx.trace.locks().get(index)) else { continue };
            let Some(slot) = classes.get_mut(lock.class.index()) else { continue };
            let class = slot.get_or_insert_with(LockStats::default);
            class.acquisitions += stats.acquisitions;
            class.contended += stats.contended;
            class.owner_changes += stats.owner_changes;
            class.wait.add(&stats.wait);
            class.hold.add(&stats.hold);
            for (into, from) in [
                (&mut class.wait_sites, &stats.wait_sites),
                (&mut class.hold_sites, &stats.hold_sites),
            ] {
                for (site, total) in from {
                    let sum = into.entry(*site).or_default();
                    sum.count += total.count;
                    sum.total_ns = sum.total_ns.saturating_add(total.total_ns);
                }
            }
        }
        classes
            .iter()
            .map(|class| {
                class.as_ref().map(|stats| summarize(cx, &self.scale, stats)).unwrap_or_default()
            })
            .collect()
    }
}

/// The sites with the most time, most first (ties by site id, so reports are stable).
fn ranked(sites: &FxHashMap<SiteId, SiteTotal>) -> Vec<(SiteId, SiteTotal)> {
    let mut sorted: Vec<(SiteId, SiteTotal)> = sites.iter().map(|(s, t)| (*s, *t)).collect();
    sorted.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
    sorted.truncate(TOP_SITES);
    sorted
}

fn top_sites(cx: &Context<'_>, sites: &FxHashMap<SiteId, SiteTotal>) -> Vec<SiteTime> {
    ranked(sites)
        .into_iter()
        .map(|(site, total)| SiteTime {
            site: cx.trace.site_text(site),
            count: total.count,
            total_ns: total.total_ns,
        })
        .collect()
}

fn summarize(cx: &Context<'_>, scale: &Scale, stats: &LockStats) -> LockStatistics {
    LockStatistics {
        acquisitions: stats.acquisitions,
        contended: stats.contended,
        owner_changes: stats.owner_changes,
        wait: stats.wait.summary(scale),
        hold: stats.hold.summary(scale),
        top_waiting_sites: top_sites(cx, &stats.wait_sites),
        top_holding_sites: top_sites(cx, &stats.hold_sites),
    }
}

impl Detector for Contention {
    fn kind(&self) -> FindingKind {
        FindingKind::ContentionHotspot
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_ACQUIRED | Interest::LOCK_RELEASED
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let now = event.time_ns;
        match event.kind {
            EventKind::LockAcquired { lock, .. } => {
                let actor = Actor::of(event);
                let waited =
                    cx.state.actor(actor).and_then(|a| a.wait).and_then(|wait| match wait.target {
                        WaitFor::Lock { lock: waited_for, .. } if waited_for == lock => {
                            Some((now.saturating_sub(wait.since_ns), wait.site))
                        }
                        _ => None,
                    });
                let (task, id) = match actor {
                    Actor::Thread(thread) => (0, thread.0),
                    Actor::Task(task) => (TASK, task.0),
                };
                let (nanos, site, flags) = match waited {
                    Some((waited_ns, Some(site))) => (waited_ns, site.0, WAITED | SITE),
                    Some((waited_ns, None)) => (waited_ns, 0, WAITED),
                    None => (0, 0, 0),
                };
                let flags = flags | task;
                self.log(Pending { nanos, time_ns: now, lock: lock.0, site, actor: id, flags });
            }
            EventKind::LockReleased { lock, .. } => {
                let actor = Actor::of(event);
                let hold = cx.state.holds(actor).iter().rev().find(|h| h.lock == lock).copied();
                if let Some(hold) = hold {
                    let nanos = now.saturating_sub(hold.since_ns);
                    let (site, flags) = (hold.site.0, RELEASE | SITE);
                    self.log(Pending { nanos, time_ns: now, lock: lock.0, site, actor: 0, flags });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        self.flush();
        let is_semaphore = |index: usize| {
            cx.trace.locks().get(index).is_some_and(|l| l.kind == LockKind::Semaphore)
        };
        let judged = || {
            self.locks
                .iter()
                .enumerate()
                .filter_map(|(index, stats)| Some((index, stats.as_ref()?)))
                .filter(|(index, _)| !is_semaphore(*index))
        };
        let all_wait = judged().map(|(_, s)| s.wait.total_ns).fold(0, u64::saturating_add);
        let statistics = self.statistics(cx);
        for (index, stats) in judged() {
            let share =
                if all_wait == 0 { 0.0 } else { stats.wait.total_ns as f64 / all_wait as f64 };
            // (An empty histogram's maximum and p99 are 0, as its summary's are.)
            let wait = &statistics[index].wait;
            let long_wait = wait.max_ns >= self.wait_threshold_ns;
            let significant = wait.p99_ns >= self.wait_threshold_ns / SIGNIFICANT_P99_DIVISOR;
            let most_wait = share > MOST_OF_THE_WAIT && significant;
            if long_wait || most_wait {
                let lock = LockId(index as u32);
                findings.push(hotspot(
                    cx,
                    lock,
                    stats,
                    &statistics[index],
                    share,
                    self.wait_threshold_ns,
                ));
            }
        }
    }
}

fn hotspot(
    cx: &Context<'_>,
    lock: LockId,
    stats: &LockStats,
    summary: &LockStatistics,
    share: f64,
    threshold_ns: u64,
) -> Finding {
    let name = cx.trace.lock_name(lock);
    let (wait, hold) = (&summary.wait, &summary.hold);
    let percent = (share * 100.0).round() as u64;
    let mut finding = Finding::new(
        FindingKind::ContentionHotspot,
        Severity::Warning,
        format!(
            "lock `{name}` is a contention hotspot: waits up to {} (p99 {}), {percent}% of all lock wait time",
            format_ns(wait.max_ns),
            format_ns(wait.p99_ns)
        ),
    );
    finding.locks.push(name.clone());
    for waiter in &stats.waiters {
        match *waiter {
            Actor::Thread(thread) => {
                push_unique(&mut finding.threads, cx.trace.thread_name(thread))
            }
            Actor::Task(task) => push_unique(&mut finding.tasks, cx.trace.task_name(task)),
        }
    }
    finding.time_ns = stats.max_wait_at_ns;
    let contended_percent =
        (summary.contended * 100).checked_div(summary.acquisitions).unwrap_or(0);
    finding.evidence.push(format!(
        "{} acquisitions, {} of them contended ({contended_percent}%), {} owner changes",
        summary.acquisitions, summary.contended, summary.owner_changes
    ));
    finding.evidence.push(format!(
        "wait: total {}, mean {}, p50 {}, p95 {}, p99 {}, max {} (threshold {})",
        format_ns(wait.total_ns),
        format_ns(wait.mean_ns),
        format_ns(wait.p50_ns),
        format_ns(wait.p95_ns),
        format_ns(wait.p99_ns),
        format_ns(wait.max_ns),
        format_ns(threshold_ns)
    ));
    finding.evidence.push(format!(
        "hold: mean {}, p50 {}, p99 {}, max {}",
        format_ns(hold.mean_ns),
        format_ns(hold.p50_ns),
        format_ns(hold.p99_ns),
        format_ns(hold.max_ns)
    ));
    for (role, sites) in
        [("holding", &summary.top_holding_sites), ("waiting", &summary.top_waiting_sites)]
    {
        for site in sites {
            finding.evidence.push(format!(
                "{role} at {}: {}, {} in all",
                site.site,
                counted(site.count, "time", "times"),
                format_ns(site.total_ns)
            ));
        }
    }
    for (role, sites) in [("holding", &stats.hold_sites), ("waiting", &stats.wait_sites)] {
        for (site, _) in ranked(sites) {
            finding.sites.push(cx.site_ref(site, role));
        }
    }
    finding.help = Some(format!(
        "shorten the critical sections of `{name}` at the top holding sites (move work out of the \
         lock), split the lock, or use a read-write lock if most holders only read"
    ));
    finding.detail = Detail::ContentionHotspot(HotspotDetail {
        lock: name,
        wait_share: share,
        max_wait_ns: wait.max_ns,
        wait_threshold_ns: threshold_ns,
    });
    finding
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an HDR histogram recording every duration reports, for comparison.
    fn recorded(values: &[u64]) -> (Histogram<u32>, u64) {
        let mut histogram = Scale::new().0;
        let mut total = 0u64;
        for &v in values {
            histogram.saturating_record(v);
            total = total.saturating_add(v);
        }
        (histogram, total)
    }

    fn summary_of(histogram: &Histogram<u32>, total_ns: u64) -> DurationStats {
        let count = histogram.len();
        if count == 0 {
            return DurationStats::default();
        }
        DurationStats {
            count,
            total_ns,
            mean_ns: total_ns / count,
            p50_ns: histogram.value_at_quantile(0.50),
            p95_ns: histogram.value_at_quantile(0.95),
            p99_ns: histogram.value_at_quantile(0.99),
            max_ns: histogram.max(),
        }
    }

    #[test]
    fn zero_and_tiny_durations_keep_the_histograms_maximum() {
        let scale = Scale::new();
        let cases: [&[u64]; 9] =
            [&[0], &[0, 0], &[5], &[0, 5], &[50, 0], &[63], &[64, 0], &[0, 100], &[1, 0, 64]];
        for values in cases {
            let mut durations = Durations::default();
            for &v in values {
                durations.record(&scale, v);
            }
            let (histogram, total) = recorded(values);
            assert_eq!(durations.max_ns, histogram.max(), "{values:?}");
            assert_eq!(durations.summary(&scale), summary_of(&histogram, total), "{values:?}");
            let mut class = Durations::default();
            class.add(&durations);
            class.add(&Durations::default());
            assert_eq!(class.summary(&scale), summary_of(&histogram, total), "{values:?}");
        }
    }

    #[test]
    fn sparse_durations_report_what_a_full_histogram_reports() {
        let scale = Scale::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = Vec::new();
        let mut durations = Durations::default();
        let mut class = Durations::default();
        let mut class_values = Vec::new();
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every magnitude, and the edges: 0, below the lowest bucket, past the range.
            let v = match i % 9 {
                0 => x % 100,
                7 => x % 2,
                8 if i % 4000 < 2000 => 0,
                1 => x >> (x % 64),
                2 => HISTOGRAM_HIGH_NS + x % 1_000_000_000_000,
                3 => u64::MAX - x % 3,
                _ => x % 5_000_000,
            };
            let (histogram, _) = recorded(&values);
            assert_eq!(durations.max_ns, histogram.max(), "the maximum after {i} durations");
            assert_eq!(durations.is_empty(), histogram.is_empty());
            durations.record(&scale, v);
            values.push(v);
            if i % 1000 == 999 || i % 4000 == 2 {
                let (histogram, total) = recorded(&values);
                assert_eq!(durations.summary(&scale), summary_of(&histogram, total));
                class.add(&durations);
                class_values.extend_from_slice(&values);
                let (histogram, total) = recorded(&class_values);
                assert_eq!(class.summary(&scale), summary_of(&histogram, total));
                values.clear();
                durations = Durations::default();
            }
        }
    }
}
