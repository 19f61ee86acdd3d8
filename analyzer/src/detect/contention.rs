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
//! tasks briefly queueing on one lock add up to a large total without anyone being slowed.)
//! Semaphores get statistics but no finding: waiting for a permit is the admission control
//! they exist for.

use super::{Context, Detector, Interest};
use crate::replay::{Actor, WaitFor};
use crate::report::{counted, format_ns};
use crate::report::{
    push_unique, Detail, DurationStats, Finding, FindingKind, HotspotDetail, LockStatistics,
    Severity, SiteTime,
};
use hdrhistogram::Histogram;
use hindsight_recorder::format::{Event, EventKind, LockId, LockKind, SiteId};
use rustc_hash::FxHashMap;

/// The default `--wait-threshold`.
pub const DEFAULT_WAIT_THRESHOLD_NS: u64 = 100_000_000;

/// Sites listed per lock, for waiting and for holding.
const TOP_SITES: usize = 3;

/// Durations are recorded from 100 ns (shorter ones land in the lowest bucket) to an hour, to
/// two significant digits.
const HISTOGRAM_LOW_NS: u64 = 100;
const HISTOGRAM_HIGH_NS: u64 = 3_600_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;

/// A lock is a hotspot by share when it has more than this fraction of all wait time...
const MOST_OF_THE_WAIT: f64 = 0.5;

/// ...and its p99 wait is at least the wait threshold divided by this.
const SIGNIFICANT_P99_DIVISOR: u64 = 10;

/// The bins (the counts) of an HDR histogram of those bounds, as the histogram sets them up:
/// values below `2^(UNIT_MAGNITUDE + HALF_MAGNITUDE + 1)` fill the first `2^(HALF_MAGNITUDE + 1)`
/// bins, `2^UNIT_MAGNITUDE` apart; every further power of two gets `2^HALF_MAGNITUDE` bins.
const UNIT_MAGNITUDE: u32 = HISTOGRAM_LOW_NS.ilog2();
const HALF_MAGNITUDE: u32 =
    (2 * 10u32.pow(SIGNIFICANT_DIGITS as u32)).next_power_of_two().ilog2() - 1;

/// The bin of a duration of at most [`HISTOGRAM_HIGH_NS`]: its position among the counts of
/// the histogram, computed as the histogram computes it (a test checks every bin).
#[inline]
fn bin_of(nanos: u64) -> u32 {
    let first_range = (1 << (UNIT_MAGNITUDE + HALF_MAGNITUDE + 1)) - 1;
    // How many powers of two `nanos` lies past the first bins' range.
    let magnitude = 63 - (nanos | first_range).leading_zeros() - (UNIT_MAGNITUDE + HALF_MAGNITUDE);
    (magnitude << HALF_MAGNITUDE) + (nanos >> (magnitude + UNIT_MAGNITUDE)) as u32
}

/// The highest duration in `bin`, below [`HISTOGRAM_HIGH_NS`]'s.
#[inline]
fn bin_top(bin: u32) -> u64 {
    bin_floor(bin + 1) - 1
}

/// The lowest duration in `bin`.
fn bin_floor(bin: u32) -> u64 {
    let half = 1 << HALF_MAGNITUDE;
    let (magnitude, step) =
        if bin < 2 * half { (0, bin) } else { (bin / half - 1, bin % half + half) };
    u64::from(step) << (magnitude + UNIT_MAGNITUDE)
}

/// An empty HDR histogram of the detector's bucketing, covering durations up to `high_ns`.
fn histogram(high_ns: u64) -> Histogram<u32> {
    Histogram::new_with_bounds(
        HISTOGRAM_LOW_NS,
        high_ns.max(2 * HISTOGRAM_LOW_NS),
        SIGNIFICANT_DIGITS,
    )
    .expect("histogram bounds from the constants are valid; this is a bug")
}

/// A [`Tally`] keeps its keys in a window while the window spans at most this many keys...
const MIN_SPAN: usize = 64;

/// ...or this many per key tallied in it...
const SPAN_PER_KEY: usize = 4;

/// ...and tries to widen only while this few keys are outside it.
const MAX_OUTSIDE_TO_WIDEN: usize = 64;

/// Values per key, where keys are small numbers (histogram bins, site ids) of which a lock
/// sees few, mostly close together. The values of a window of keys are kept in a slice (so
/// that finding one is an index, where a map hashes and probes); those of keys far from the
/// rest, in a map. The window widens to a new key while it stays dense (see [`MIN_SPAN`] and
/// [`SPAN_PER_KEY`]), so that its memory grows with the keys tallied, as a map's does. A key
/// is in the window or in the map, never both.
///
/// (Its fields are laid out in order, the window first: see [`LockStats`].)
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct Tally<T> {
    /// The key of `window[0]`.
    first: u32,
    window: Box<[T]>,
    /// The keys outside the window, once there is one.
    outside: Option<Box<FxHashMap<u32, T>>>,
}

impl<T: Copy + Default + PartialEq> Tally<T> {
    /// The value of `key` (the default value if it has none yet).
    #[inline(always)]
    fn get_mut(&mut self, key: u32) -> &mut T {
        let offset = key.wrapping_sub(self.first) as usize;
        if offset < self.window.len() {
            &mut self.window[offset]
        } else {
            self.get_outside(key)
        }
    }

    /// [`get_mut`](Self::get_mut) for a key outside the window: in the map if it is there,
    /// else in the window widened to it if it stays dense, else added to the map.
    #[inline(never)]
    fn get_outside(&mut self, key: u32) -> &mut T {
        let outside = self.outside.as_deref();
        if outside.is_some_and(|outside| {
            outside.len() > MAX_OUTSIDE_TO_WIDEN || outside.contains_key(&key)
        }) {
            return self.get_in_map(key);
        }
        // The window widened to `key`, as keys in `u64` (a window may end past `u32::MAX`).
        let (key, first, len) = (u64::from(key), u64::from(self.first), self.window.len() as u64);
        let (start, end) = match len {
            0 => (key, key + 1),
            _ => (first.min(key), (first + len).max(key + 1)),
        };
        let in_map = |range: &std::ops::Range<u64>| {
            let keys = outside.into_iter().flat_map(|outside| outside.keys());
            keys.filter(|key| range.contains(&u64::from(**key))).count()
        };
        let keys = 1
            + self.window.iter().filter(|value| **value != T::default()).count()
            + in_map(&(start..end));
        let most = MIN_SPAN.max(SPAN_PER_KEY * keys) as u64;
        if end - start > most {
            return self.get_in_map(key as u32);
        }
        // Room to grow further the same way, so that a window grown key by key is copied a
        // few times only: up to twice as long.
        let span = (end - start).max(2 * len).min(most);
        let (start, end) = if key < first {
            (end.saturating_sub(span), end)
        } else {
            (start, (start + span).min(1 << u32::BITS))
        };
        let mut window = vec![T::default(); (end - start) as usize].into_boxed_slice();
        if len > 0 {
            let at = (first - start) as usize;
            window[at..at + self.window.len()].copy_from_slice(&self.window);
        }
        if let Some(outside) = &mut self.outside {
            outside.retain(|&key, value| {
                let inside = (start..end).contains(&u64::from(key));
                if inside {
                    window[(u64::from(key) - start) as usize] = *value;
                }
                !inside
            });
        }
        self.window = window;
        // (`start` is at most a key, so it is a `u32`.)
        self.first = start as u32;
        &mut self.window[(key - start) as usize]
    }

    /// The value of `key` in the map.
    fn get_in_map(&mut self, key: u32) -> &mut T {
        self.outside.get_or_insert_with(Box::default).entry(key).or_default()
    }

    /// The keys with a value (other than the default), with it.
    fn iter(&self) -> impl Iterator<Item = (u32, T)> + '_ {
        let window = self.window.iter().enumerate();
        let window = window.map(|(offset, &value)| (self.first + offset as u32, value));
        let window = window.filter(|(_, value)| *value != T::default());
        let outside = self.outside.iter().flat_map(|outside| outside.iter());
        window.chain(outside.map(|(&key, &value)| (key, value)))
    }
}

/// Durations of one lock: the counts of an HDR histogram (two significant digits), per bin,
/// plus the exact total. The histogram's dense counts would take 15 KiB per lock and a cache
/// miss per duration; a lock's durations fall in a few dozen bins, mostly close together,
/// counted here in a [`Tally`]. The histogram itself is built, bin for bin the same, when it
/// is read.
///
/// (Its fields are laid out in order, those a duration updates first: see [`LockStats`].)
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct Durations {
    /// Durations recorded.
    count: u64,
    /// The histogram's maximum: the highest value of the largest duration's bin (0 if no
    /// duration was above 0).
    max_ns: u64,
    total_ns: u64,
    /// Durations per bin.
    bins: Tally<u32>,
    /// Durations past the histogram's range (over an hour), which it clamps: kept in a real
    /// histogram, which knows how.
    beyond: Option<Box<Histogram<u32>>>,
}

impl Durations {
    #[inline(always)]
    fn record(&mut self, nanos: u64) {
        if nanos <= HISTOGRAM_HIGH_NS {
            let bin = bin_of(nanos);
            let count = self.bins.get_mut(bin);
            *count = count.saturating_add(1);
            // `max_ns` is the highest value of a bin (or 0): a duration past it is in a later bin.
            if nanos > self.max_ns {
                self.max_ns = bin_top(bin);
            }
        } else {
            self.record_beyond(nanos);
        }
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(nanos);
    }

    /// [`record`](Self::record) for a duration past the histogram's range.
    #[cold]
    #[inline(never)]
    fn record_beyond(&mut self, nanos: u64) {
        let beyond = self.beyond.get_or_insert_with(|| Box::new(histogram(HISTOGRAM_HIGH_NS)));
        beyond.saturating_record(nanos);
        self.max_ns = self.max_ns.max(beyond.max());
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn add(&mut self, other: &Durations) {
        for (bin, n) in other.bins.iter() {
            let count = self.bins.get_mut(bin);
            *count = count.saturating_add(n);
        }
        if let Some(other_beyond) = &other.beyond {
            match &mut self.beyond {
                // Both histograms have the same bounds, so adding cannot fail.
                Some(beyond) => drop(beyond.add(&**other_beyond)),
                None => self.beyond = Some(other_beyond.clone()),
            }
        }
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
    }

    /// The HDR histogram of the durations, but for its maximum and minimum: each bin's
    /// durations are recorded at the bin's lowest value. It spans the durations only, which
    /// buckets them as the full range does.
    fn histogram(&self) -> Histogram<u32> {
        let mut histogram = match &self.beyond {
            Some(beyond) => (**beyond).clone(),
            None => histogram(self.max_ns),
        };
        for (bin, n) in self.bins.iter() {
            // A bin's lowest value is at most the maximum, so recording cannot fail.
            let _ = histogram.record_n(bin_floor(bin), n);
        }
        histogram
    }

    fn summary(&self) -> DurationStats {
        if self.is_empty() {
            return DurationStats::default();
        }
        let histogram = self.histogram();
        let count = histogram.len();
        let mut quantiles = histogram.value_at_quantiles([0.50, 0.95, 0.99]);
        let mut quantile = || quantiles.next().unwrap_or(0);
        DurationStats {
            count,
            total_ns: self.total_ns,
            mean_ns: self.total_ns / count,
            p50_ns: quantile(),
            p95_ns: quantile(),
            p99_ns: quantile(),
            max_ns: self.max_ns,
        }
    }
}

/// Counts and time per site.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SiteTotal {
    count: u64,
    total_ns: u64,
}

impl SiteTotal {
    /// Counts `count` more times, of `total_ns` in all.
    #[inline(always)]
    fn add(&mut self, count: u64, total_ns: u64) {
        self.count += count;
        self.total_ns = self.total_ns.saturating_add(total_ns);
    }
}

/// Counts and time per site, by site id.
type Sites = Tally<SiteTotal>;

/// Everything kept about one lock.
///
/// Its fields are laid out in order, and it starts a cache line: what every acquisition and
/// release updates comes first, in two lines, and what only contended acquisitions update
/// after. (A trace's locks take more memory than the CPU's nearest caches hold.)
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
struct LockStats {
    acquisitions: u64,
    owner_changes: u64,
    last_owner: Option<Actor>,
    hold: Durations,
    hold_sites: Sites,
    contended: u64,
    max_wait_at_ns: u64,
    wait: Durations,
    wait_sites: Sites,
    /// The first few threads and tasks that had to wait for it, for the finding.
    waiters: Vec<Actor>,
}

/// Waiting threads and tasks named per hotspot.
const WAITERS_NAMED: usize = 8;

impl LockStats {
    /// Counts an acquisition by `actor`, which waited for the lock for `waited` (how long, and
    /// where), if it had to.
    #[inline]
    fn acquired(&mut self, actor: Actor, now: u64, waited: Option<(u64, Option<SiteId>)>) {
        self.acquisitions += 1;
        if self.last_owner.is_some_and(|owner| owner != actor) {
            self.owner_changes += 1;
        }
        self.last_owner = Some(actor);
        if let Some((waited_ns, site)) = waited {
            self.contended += 1;
            if waited_ns > self.wait.max_ns || self.wait.is_empty() {
                self.max_wait_at_ns = now;
            }
            self.wait.record(waited_ns);
            if self.waiters.len() < WAITERS_NAMED && !self.waiters.contains(&actor) {
                self.waiters.push(actor);
            }
            if let Some(site) = site {
                self.wait_sites.get_mut(site.0).add(1, waited_ns);
            }
        }
    }

    /// Counts a hold of `held_ns`, acquired at `site`.
    #[inline]
    fn released(&mut self, site: SiteId, held_ns: u64) {
        self.hold.record(held_ns);
        self.hold_sites.get_mut(site.0).add(1, held_ns);
    }
}

/// The lock statistics collector and contention-hotspot detector; see the module docs.
#[derive(Debug)]
pub struct Contention {
    wait_threshold_ns: u64,
    /// Per lock (by id), what was counted of it (nothing, for a lock never taken: see
    /// [`Contention::counted`]).
    locks: Vec<LockStats>,
    /// Events counted.
    events: u64,
    /// The statistics of every lock once asked for, and how many events they count.
    summaries: Option<(u64, Vec<LockStatistics>)>,
}

impl Contention {
    /// A detector reporting waits of at least `wait_threshold_ns`.
    pub fn new(wait_threshold_ns: u64) -> Self {
        Contention { wait_threshold_ns, locks: Vec::new(), events: 0, summaries: None }
    }

    /// What was counted of `lock`, which an event counts more of.
    #[inline(always)]
    fn stats(&mut self, lock: LockId) -> &mut LockStats {
        self.events += 1;
        let index = lock.index();
        if index >= self.locks.len() {
            return self.make_room(index);
        }
        &mut self.locks[index]
    }

    /// Makes room in [`locks`](Self::locks) for the lock at `index`, and returns its entry.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, index: usize) -> &mut LockStats {
        self.locks.resize_with(index + 1, LockStats::default);
        &mut self.locks[index]
    }

    /// The locks something was counted of, with what, by lock id.
    fn counted(&self) -> impl Iterator<Item = (usize, &LockStats)> {
        // An acquisition is always counted, a release only with its hold (so after its
        // acquisition, but for a detector fed by hand).
        let counted = |stats: &LockStats| stats.acquisitions > 0 || !stats.hold.is_empty();
        self.locks.iter().enumerate().filter(move |(_, stats)| counted(stats))
    }

    /// The statistics of every lock, indexed by lock id (all zero for a lock never taken), and
    /// of every lock class (the locks of one name or creation site taken together), indexed by
    /// class id.
    pub fn statistics(&mut self, cx: &Context<'_>) -> (Vec<LockStatistics>, Vec<LockStatistics>) {
        self.make_summaries(cx);
        let (_, locks) = self.summaries.take().unwrap_or_default();
        let classes = self.class_statistics(cx, &locks);
        (locks, classes)
    }

    /// Makes [`summaries`](Self::summaries) current: computes them once for all the askers
    /// (the detector itself and the report, and the classes of one lock).
    fn make_summaries(&mut self, cx: &Context<'_>) {
        let locks = cx.trace.locks().len();
        let current = |(events, summaries): &(u64, Vec<_>)| {
            *events == self.events && summaries.len() == locks
        };
        if !self.summaries.as_ref().is_some_and(current) {
            let mut summaries = vec![LockStatistics::default(); locks];
            let mut texts = SiteTexts::default();
            for (index, stats) in self.counted().take_while(|(index, _)| *index < locks) {
                summaries[index] = summarize(cx, stats, &mut texts);
            }
            self.summaries = Some((self.events, summaries));
        }
    }

    /// The statistics of every lock, as [`make_summaries`](Self::make_summaries) made them.
    fn summaries(&self) -> &[LockStatistics] {
        self.summaries.as_ref().map_or(&[], |(_, summaries)| summaries)
    }

    /// The statistics of every lock class, indexed by class id, given those of every lock.
    fn class_statistics(&self, cx: &Context<'_>, locks: &[LockStatistics]) -> Vec<LockStatistics> {
        let class_of = |index: usize| Some(cx.trace.locks().get(index)?.class.index());
        // Per class, how many of its locks were taken, and the last of them.
        let mut taken: Vec<(u32, usize)> = vec![(0, 0); cx.trace.class_count()];
        for (index, _) in self.counted() {
            if let Some(class) = class_of(index).and_then(|class| taken.get_mut(class)) {
                *class = (class.0 + 1, index);
            }
        }
        // A class of one lock taken has that lock's statistics; the others add theirs up.
        let mut classes: Vec<Option<LockStats>> = vec![None; taken.len()];
        for (index, stats) in self.counted() {
            let Some(class) = class_of(index).filter(|&class| taken[class].0 > 1) else {
                continue;
            };
            let class = classes[class].get_or_insert_with(LockStats::default);
            class.acquisitions += stats.acquisitions;
            class.contended += stats.contended;
            class.owner_changes += stats.owner_changes;
            class.wait.add(&stats.wait);
            class.hold.add(&stats.hold);
            for (into, from) in [
                (&mut class.wait_sites, &stats.wait_sites),
                (&mut class.hold_sites, &stats.hold_sites),
            ] {
                for (site, total) in from.iter() {
                    into.get_mut(site).add(total.count, total.total_ns);
                }
            }
        }
        let mut texts = SiteTexts::default();
        classes
            .iter()
            .zip(&taken)
            .map(|(class, &(taken, last))| match class {
                Some(stats) => summarize(cx, stats, &mut texts),
                None if taken == 1 => locks.get(last).cloned().unwrap_or_default(),
                None => LockStatistics::default(),
            })
            .collect()
    }
}

/// The sites with the most time, most first (ties by site id, so reports are stable).
fn ranked(sites: &Sites) -> Vec<(SiteId, SiteTotal)> {
    let mut sorted: Vec<(SiteId, SiteTotal)> = sites.iter().map(|(s, t)| (SiteId(s), t)).collect();
    sorted.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
    sorted.truncate(TOP_SITES);
    sorted
}

/// The texts of sites (`file:line:col`), each made once for all the locks that list it.
#[derive(Debug, Default)]
struct SiteTexts(FxHashMap<SiteId, String>);

impl SiteTexts {
    /// The text of `site`.
    fn get(&mut self, cx: &Context<'_>, site: SiteId) -> String {
        self.0.entry(site).or_insert_with(|| cx.trace.site_text(site)).clone()
    }
}

fn top_sites(cx: &Context<'_>, sites: &Sites, texts: &mut SiteTexts) -> Vec<SiteTime> {
    ranked(sites)
        .into_iter()
        .map(|(site, total)| SiteTime {
            site: texts.get(cx, site),
            count: total.count,
            total_ns: total.total_ns,
        })
        .collect()
}

fn summarize(cx: &Context<'_>, stats: &LockStats, texts: &mut SiteTexts) -> LockStatistics {
    LockStatistics {
        acquisitions: stats.acquisitions,
        contended: stats.contended,
        owner_changes: stats.owner_changes,
        wait: stats.wait.summary(),
        hold: stats.hold.summary(),
        top_waiting_sites: top_sites(cx, &stats.wait_sites, texts),
        top_holding_sites: top_sites(cx, &stats.hold_sites, texts),
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
                self.stats(lock).acquired(actor, now, waited);
            }
            EventKind::LockReleased { lock, .. } => {
                let actor = Actor::of(event);
                let hold = cx.state.holds(actor).iter().rev().find(|h| h.lock == lock).copied();
                if let Some(hold) = hold {
                    let held_ns = now.saturating_sub(hold.since_ns);
                    self.stats(lock).released(hold.site, held_ns);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        self.make_summaries(cx);
        let statistics = self.summaries();
        let is_semaphore = |index: usize| {
            cx.trace.locks().get(index).is_some_and(|l| l.kind == LockKind::Semaphore)
        };
        let judged = || self.counted().filter(|(index, _)| !is_semaphore(*index));
        let all_wait = judged().map(|(_, s)| s.wait.total_ns).fold(0, u64::saturating_add);
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
        let mut histogram = histogram(HISTOGRAM_HIGH_NS);
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
    fn bins_are_the_histograms() {
        let full = histogram(HISTOGRAM_HIGH_NS);
        let bins = full.distinct_values() as u32;
        for bin in 0..bins {
            let (low, high) = (bin_floor(bin), full.highest_equivalent(bin_floor(bin)));
            assert_eq!(full.lowest_equivalent(low), low, "bin {bin} starts a bucket");
            assert_eq!((bin_of(low), bin_of(high)), (bin, bin), "bin {bin} is [{low}, {high}]");
            if bin + 1 < bins {
                assert_eq!(bin_top(bin), high, "bin {} follows bin {bin}", bin + 1);
            }
        }
        assert_eq!(bin_of(0), 0);
        assert!(bin_of(HISTOGRAM_HIGH_NS) + 1 < bins);
    }

    #[test]
    fn zero_and_tiny_durations_keep_the_histograms_maximum() {
        let cases: [&[u64]; 9] =
            [&[0], &[0, 0], &[5], &[0, 5], &[50, 0], &[63], &[64, 0], &[0, 100], &[1, 0, 64]];
        for values in cases {
            let mut durations = Durations::default();
            for &v in values {
                durations.record(v);
            }
            let (histogram, total) = recorded(values);
            assert_eq!(durations.max_ns, histogram.max(), "{values:?}");
            assert_eq!(durations.summary(), summary_of(&histogram, total), "{values:?}");
            let mut class = Durations::default();
            class.add(&durations);
            class.add(&Durations::default());
            assert_eq!(class.summary(), summary_of(&histogram, total), "{values:?}");
        }
    }

    #[test]
    fn sparse_durations_report_what_a_full_histogram_reports() {
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
            durations.record(v);
            values.push(v);
            if i % 1000 == 999 || i % 4000 == 2 {
                let (histogram, total) = recorded(&values);
                assert_eq!(durations.summary(), summary_of(&histogram, total));
                class.add(&durations);
                class_values.extend_from_slice(&values);
                let (histogram, total) = recorded(&class_values);
                assert_eq!(class.summary(), summary_of(&histogram, total));
                values.clear();
                durations = Durations::default();
            }
        }
    }
}
