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

use super::{Context, Detector};
use crate::replay::{Actor, WaitFor};
use crate::report::format_ns;
use crate::report::{
    Detail, DurationStats, Finding, FindingKind, HotspotDetail, Severity, SiteTime,
};
use hdrhistogram::Histogram;
use hindsight_recorder::format::{Event, EventKind, LockId, LockKind, SiteId};
use std::collections::HashMap;

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

/// Durations of one lock: an HDR histogram plus the exact total and count.
#[derive(Debug, Clone)]
struct Durations {
    histogram: Histogram<u32>,
    total_ns: u64,
}

impl Durations {
    fn new() -> Durations {
        let histogram = Histogram::new_with_bounds(HISTOGRAM_LOW_NS, HISTOGRAM_HIGH_NS, 2)
            .expect("constant histogram bounds are valid; this is a bug");
        Durations { histogram, total_ns: 0 }
    }

    fn record(&mut self, nanos: u64) {
        self.histogram.saturating_record(nanos);
        self.total_ns = self.total_ns.saturating_add(nanos);
    }

    fn add(&mut self, other: &Durations) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
    }

    fn summary(&self) -> DurationStats {
        let count = self.histogram.len();
        if count == 0 {
            return DurationStats::default();
        }
        DurationStats {
            count,
            total_ns: self.total_ns,
            mean_ns: self.total_ns / count,
            p50_ns: self.histogram.value_at_quantile(0.50),
            p95_ns: self.histogram.value_at_quantile(0.95),
            p99_ns: self.histogram.value_at_quantile(0.99),
            max_ns: self.histogram.max(),
        }
    }
}

/// Counts and time per site.
#[derive(Debug, Clone, Copy, Default)]
struct SiteTotal {
    count: u64,
    total_ns: u64,
}

/// Everything kept about one lock.
#[derive(Debug, Clone)]
struct LockStats {
    acquisitions: u64,
    contended: u64,
    owner_changes: u64,
    last_owner: Option<Actor>,
    wait: Durations,
    hold: Durations,
    max_wait_at_ns: u64,
    wait_sites: HashMap<SiteId, SiteTotal>,
    hold_sites: HashMap<SiteId, SiteTotal>,
}

impl LockStats {
    fn new() -> LockStats {
        LockStats {
            acquisitions: 0,
            contended: 0,
            owner_changes: 0,
            last_owner: None,
            wait: Durations::new(),
            hold: Durations::new(),
            max_wait_at_ns: 0,
            wait_sites: HashMap::new(),
            hold_sites: HashMap::new(),
        }
    }
}

/// The statistics of one lock, as the report shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockStatistics {
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Acquisitions by another thread or task than the previous one.
    pub owner_changes: u64,
    /// Wait times of the contended acquisitions.
    pub wait: DurationStats,
    /// Hold times.
    pub hold: DurationStats,
    /// The sites that waited longest, in all.
    pub top_waiting_sites: Vec<SiteTime>,
    /// The sites that held longest, in all.
    pub top_holding_sites: Vec<SiteTime>,
}

/// The lock statistics collector and contention-hotspot detector; see the module docs.
#[derive(Debug)]
pub struct Contention {
    wait_threshold_ns: u64,
    locks: Vec<Option<Box<LockStats>>>,
}

impl Contention {
    /// A detector reporting waits of at least `wait_threshold_ns`.
    pub fn new(wait_threshold_ns: u64) -> Self {
        Contention { wait_threshold_ns, locks: Vec::new() }
    }

    fn stats(&mut self, lock: LockId) -> &mut LockStats {
        let index = lock.index();
        if self.locks.len() <= index {
            self.locks.resize_with(index + 1, || None);
        }
        self.locks[index].get_or_insert_with(|| Box::new(LockStats::new()))
    }

    /// The statistics of every lock, indexed by lock id (all zero for a lock never taken).
    pub fn lock_statistics(&self, cx: &Context<'_>) -> Vec<LockStatistics> {
        (0..cx.trace.locks().len())
            .map(|index| match self.locks.get(index).and_then(Option::as_deref) {
                Some(stats) => summarize(cx, stats),
                None => LockStatistics::default(),
            })
            .collect()
    }

    /// The statistics of every lock class (the locks of one name or creation site taken
    /// together), indexed by class id.
    pub fn class_statistics(&self, cx: &Context<'_>) -> Vec<LockStatistics> {
        let mut classes: Vec<Option<LockStats>> = vec![None; cx.trace.class_count()];
        for (index, stats) in self.locks.iter().enumerate() {
            let (Some(stats), Some(lock)) = (stats, cx.trace.locks().get(index)) else { continue };
            let Some(slot) = classes.get_mut(lock.class.index()) else { continue };
            let class = slot.get_or_insert_with(LockStats::new);
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
            .map(|class| class.as_ref().map(|stats| summarize(cx, stats)).unwrap_or_default())
            .collect()
    }
}

/// The sites with the most time, most first (ties by site id, so reports are stable).
fn ranked(sites: &HashMap<SiteId, SiteTotal>) -> Vec<(SiteId, SiteTotal)> {
    let mut sorted: Vec<(SiteId, SiteTotal)> = sites.iter().map(|(s, t)| (*s, *t)).collect();
    sorted.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
    sorted.truncate(TOP_SITES);
    sorted
}

fn top_sites(cx: &Context<'_>, sites: &HashMap<SiteId, SiteTotal>) -> Vec<SiteTime> {
    ranked(sites)
        .into_iter()
        .map(|(site, total)| SiteTime {
            site: cx.trace.site_text(site),
            count: total.count,
            total_ns: total.total_ns,
        })
        .collect()
}

fn summarize(cx: &Context<'_>, stats: &LockStats) -> LockStatistics {
    LockStatistics {
        acquisitions: stats.acquisitions,
        contended: stats.contended,
        owner_changes: stats.owner_changes,
        wait: stats.wait.summary(),
        hold: stats.hold.summary(),
        top_waiting_sites: top_sites(cx, &stats.wait_sites),
        top_holding_sites: top_sites(cx, &stats.hold_sites),
    }
}

impl Detector for Contention {
    fn kind(&self) -> FindingKind {
        FindingKind::ContentionHotspot
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
                let stats = self.stats(lock);
                stats.acquisitions += 1;
                if stats.last_owner.is_some_and(|owner| owner != actor) {
                    stats.owner_changes += 1;
                }
                stats.last_owner = Some(actor);
                if let Some((waited_ns, site)) = waited {
                    stats.contended += 1;
                    if waited_ns > stats.wait.histogram.max() || stats.wait.histogram.is_empty() {
                        stats.max_wait_at_ns = now;
                    }
                    stats.wait.record(waited_ns);
                    if let Some(site) = site {
                        let total = stats.wait_sites.entry(site).or_default();
                        total.count += 1;
                        total.total_ns = total.total_ns.saturating_add(waited_ns);
                    }
                }
            }
            EventKind::LockReleased { lock, .. } => {
                let actor = Actor::of(event);
                let hold = cx.state.holds(actor).iter().rev().find(|h| h.lock == lock).copied();
                if let Some(hold) = hold {
                    let held_ns = now.saturating_sub(hold.since_ns);
                    let stats = self.stats(lock);
                    stats.hold.record(held_ns);
                    let total = stats.hold_sites.entry(hold.site).or_default();
                    total.count += 1;
                    total.total_ns = total.total_ns.saturating_add(held_ns);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        let is_semaphore = |index: usize| {
            cx.trace.locks().get(index).is_some_and(|l| l.kind == LockKind::Semaphore)
        };
        let judged = || {
            self.locks
                .iter()
                .enumerate()
                .filter_map(|(index, stats)| Some((index, stats.as_deref()?)))
                .filter(|(index, _)| !is_semaphore(*index))
        };
        let all_wait: u64 = judged().map(|(_, s)| s.wait.total_ns).sum();
        let statistics = self.lock_statistics(cx);
        for (index, stats) in judged() {
            let share =
                if all_wait == 0 { 0.0 } else { stats.wait.total_ns as f64 / all_wait as f64 };
            let long_wait = stats.wait.histogram.max() >= self.wait_threshold_ns;
            let significant = stats.wait.histogram.value_at_quantile(0.99)
                >= self.wait_threshold_ns / SIGNIFICANT_P99_DIVISOR;
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
                "{role} at {}: {} times, {} in all",
                site.site,
                site.count,
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
