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
//! Either way it takes a few contended acquisitions (five), not one long wait.
//! Semaphores get statistics, their permit waits counted as lock waits; waiting for a permit
//! is the admission control they exist for, so a semaphore is a hotspot only by its long
//! waits (a pool whose checkouts wait past the threshold, again and again), never by its share
//! of the trace's wait time, which counts locks only.
//!
//! A wait given up — a timeout, a cancelled future, a closed semaphore: a request followed by
//! a failed attempt — is counted as such (`abandoned_waits`) and its time goes into the wait
//! statistics, since it was waited all the same.

use super::{Context, Detector, Interest};
use crate::prefetch::{prefetch, prefetch_entry};
use crate::replay::{Actor, Hold, Wait, WaitFor};
use crate::report::{counted, format_ns};
use crate::report::{
    push_unique, Detail, DurationStats, Finding, FindingKind, HotspotDetail, LockStatistics,
    Severity, SiteTime,
};
use hdrhistogram::Histogram;
use hindsight_recorder::format::{Event, EventKind, LockId, LockKind, LockMode, SiteId, StringId};
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

/// A hotspot has at least this many contended acquisitions: one long wait is an incident of
/// its own (in the lock's statistics), not a lock that keeps making its users wait.
const MIN_CONTENDED: u64 = 5;

/// The bins (the counts) of an HDR histogram of those bounds, as the histogram sets them up:
/// values below `2^(UNIT_MAGNITUDE + HALF_MAGNITUDE + 1)` fill the first `2^(HALF_MAGNITUDE + 1)`
/// bins, `2^UNIT_MAGNITUDE` apart; every further power of two gets `2^HALF_MAGNITUDE` bins.
const UNIT_MAGNITUDE: u32 = HISTOGRAM_LOW_NS.ilog2();
const HALF_MAGNITUDE: u32 =
    (2 * 10u32.pow(SIGNIFICANT_DIGITS as u32)).next_power_of_two().ilog2() - 1;

/// The durations below this fill the first bins, `2^UNIT_MAGNITUDE` apart.
const FIRST_RANGE_NS: u64 = 1 << (UNIT_MAGNITUDE + HALF_MAGNITUDE + 1);

/// The bin of a duration of at most [`HISTOGRAM_HIGH_NS`]: its position among the counts of
/// the histogram, computed as the histogram computes it (a test checks every bin).
#[inline]
fn bin_of(nanos: u64) -> u32 {
    // How many powers of two `nanos` lies past the first bins' range.
    let magnitude =
        63 - (nanos | (FIRST_RANGE_NS - 1)).leading_zeros() - (UNIT_MAGNITUDE + HALF_MAGNITUDE);
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

/// The key of a duration among a lock's durations per bin: 0 for no time, else its bin plus
/// one; none past [`HISTOGRAM_HIGH_NS`]. The histogram's maximum, the highest value of the
/// largest duration's bin (or 0 if no duration was above 0), is then that of the highest key.
#[inline(always)]
fn key_of(nanos: u64) -> Option<u32> {
    if nanos < FIRST_RANGE_NS {
        // (As `bin_of` computes it, for a duration in the first bins' range, as most are.)
        Some((nanos >> UNIT_MAGNITUDE) as u32 + u32::from(nanos != 0))
    } else if nanos <= HISTOGRAM_HIGH_NS {
        Some(bin_of(nanos) + 1)
    } else {
        None
    }
}

/// Counts one more duration in a bin (a count stays at its maximum once there).
#[inline(always)]
fn count_one(count: &mut u32) {
    if let Some(more) = count.checked_add(1) {
        *count = more;
    }
}

/// The bin of the durations of `key` (see [`key_of`]).
fn key_bin(key: u32) -> u32 {
    key.saturating_sub(1)
}

/// The histogram's maximum were `key`'s durations the largest: the highest value of their bin,
/// or 0 for no time.
#[inline(always)]
fn key_top(key: u32) -> u64 {
    match key {
        0 => 0,
        key => bin_top(key - 1),
    }
}

/// A [`Tally`] keeps its keys in a window while the window spans at most this many keys...
const MIN_SPAN: usize = 64;

/// ...or this many per key tallied in it...
const SPAN_PER_KEY: usize = 4;

/// ...and tries to widen only while this few keys are outside it.
const MAX_OUTSIDE_TO_WIDEN: usize = 64;

/// Where `key` is in a window of first key `first` and of `len` keys, if it is in it.
#[inline(always)]
fn window_offset(first: u32, len: usize, key: u32) -> Option<usize> {
    let offset = key.wrapping_sub(first) as usize;
    (offset < len).then_some(offset)
}

/// The values of the keys outside a [`Tally`]'s window, once there are some.
type Outside<T> = Option<Box<FxHashMap<u32, T>>>;

/// Values per key, where keys are small numbers (histogram bins, site ids) of which a lock
/// sees few, mostly close together. The values of a window of keys are kept in a slice (so
/// that finding one is an index, where a map hashes and probes); those of keys far from the
/// rest, in a map. The window widens to a new key while it stays dense (see [`MIN_SPAN`] and
/// [`SPAN_PER_KEY`]), so that its memory grows with the keys tallied, as a map's does. A key
/// is in the window or in the map, never both.
///
/// A `Tally` borrows its parts, which their owner keeps apart: the window and its first key
/// where every lookup reads them (see [`Windows`]), the map with what is rarely read.
struct Tally<'a, T> {
    /// The key of `window[0]`.
    first: &'a mut u32,
    window: &'a mut Box<[T]>,
    outside: &'a mut Outside<T>,
}

impl<'a, T: Copy + Default + PartialEq> Tally<'a, T> {
    /// The value of `key` (the default value if it has none yet).
    #[inline(always)]
    fn get_mut(self, key: u32) -> &'a mut T {
        let Tally { first, window, outside } = self;
        match window_offset(*first, window.len(), key) {
            Some(offset) => &mut window[offset],
            None => Self::get_outside(first, window, outside, key),
        }
    }

    /// [`get_mut`](Self::get_mut) for a key outside the window: in the map if it is there,
    /// else in the window widened to it if it stays dense, else added to the map. (It takes
    /// the tally's parts one by one, which a call passes in registers.)
    #[inline(never)]
    fn get_outside(
        first: &'a mut u32,
        window: &'a mut Box<[T]>,
        outside: &'a mut Outside<T>,
        key: u32,
    ) -> &'a mut T {
        let map = outside.as_deref();
        if map.is_some_and(|map| map.len() > MAX_OUTSIDE_TO_WIDEN || map.contains_key(&key)) {
            return Self::get_in_map(outside, key);
        }
        // The window widened to `key`, as keys in `u64` (a window may end past `u32::MAX`).
        let (key, start_key, len) = (u64::from(key), u64::from(*first), window.len() as u64);
        let (start, end) = match len {
            0 => (key, key + 1),
            _ => (start_key.min(key), (start_key + len).max(key + 1)),
        };
        let in_map = |range: &std::ops::Range<u64>| {
            let keys = map.into_iter().flat_map(|map| map.keys());
            keys.filter(|key| range.contains(&u64::from(**key))).count()
        };
        let keys = 1
            + window.iter().filter(|value| **value != T::default()).count()
            + in_map(&(start..end));
        let most = MIN_SPAN.max(SPAN_PER_KEY * keys) as u64;
        if end - start > most {
            return Self::get_in_map(outside, key as u32);
        }
        // Room to grow further the same way, so that a window grown key by key is copied a
        // few times only: up to twice as long.
        let span = (end - start).max(2 * len).min(most);
        let (start, end) = if key < start_key {
            (end.saturating_sub(span), end)
        } else {
            (start, (start + span).min(1 << u32::BITS))
        };
        let mut widened = vec![T::default(); (end - start) as usize].into_boxed_slice();
        if len > 0 {
            let at = (start_key - start) as usize;
            widened[at..at + window.len()].copy_from_slice(window);
        }
        if let Some(map) = outside {
            map.retain(|&key, value| {
                let inside = (start..end).contains(&u64::from(key));
                if inside {
                    widened[(u64::from(key) - start) as usize] = *value;
                }
                !inside
            });
        }
        *window = widened;
        // (`start` is at most a key, so it is a `u32`.)
        *first = start as u32;
        &mut window[(key - start) as usize]
    }

    /// The value of `key` in the map `outside`.
    fn get_in_map(outside: &'a mut Outside<T>, key: u32) -> &'a mut T {
        outside.get_or_insert_with(Box::default).entry(key).or_default()
    }
}

/// The keys of a tally with a value (other than the default), with it: those of its window
/// (of first key `first`), then those of its map.
fn tallied<'a, T: Copy + Default + PartialEq>(
    first: u32,
    window: &'a [T],
    outside: &'a Outside<T>,
) -> impl Iterator<Item = (u32, T)> + 'a {
    let window = window.iter().enumerate();
    let window = window.map(move |(offset, &value)| (first + offset as u32, value));
    let window = window.filter(|(_, value)| *value != T::default());
    let outside = outside.iter().flat_map(|outside| outside.iter());
    window.chain(outside.map(|(&key, &value)| (key, value)))
}

/// One lock's holds, or its waits, as every one of them updates them: the windows of two
/// [`Tally`]s, of durations per histogram bin (by [`key_of`]: the counts of an HDR histogram
/// of two significant digits, whose dense counts would take 15 KiB per lock and a cache miss
/// per duration) and of counts and time per site (by site id). The histogram itself is built,
/// bin for bin the same, when it is read. The rest of the tallies is in a [`Rest`], which the
/// methods take along.
///
/// Its fields are laid out in order, the first keys together after the windows, so that the
/// holds' fit in the first cache line of a [`LockStats`] with the lock's counts.
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct Windows {
    bins: Box<[u32]>,
    sites: Box<[SiteTotal]>,
    first_bin: u32,
    first_site: u32,
}

/// The rest of one lock's holds, or of its waits, rarely read: the maps of their
/// [`Windows`]' tallies, and the durations past the histogram's range (over an hour), which
/// it clamps, kept in a real histogram, which knows how.
#[derive(Debug, Clone, Default)]
struct Rest {
    bins: Outside<u32>,
    sites: Outside<SiteTotal>,
    beyond: Option<Box<Histogram<u32>>>,
}

impl Rest {
    /// Counts a duration past the histogram's range; returns the maximum of those so far.
    #[cold]
    #[inline(never)]
    fn record_beyond(&mut self, nanos: u64) -> u64 {
        let beyond = self.beyond.get_or_insert_with(|| Box::new(histogram(HISTOGRAM_HIGH_NS)));
        beyond.saturating_record(nanos);
        beyond.max()
    }
}

impl Windows {
    /// The durations per bin key, with `rest`, their windows' rest.
    #[inline(always)]
    fn bins<'a>(&'a mut self, rest: &'a mut Rest) -> Tally<'a, u32> {
        Tally { first: &mut self.first_bin, window: &mut self.bins, outside: &mut rest.bins }
    }

    /// The counts and time per site, with `rest`, their windows' rest.
    #[inline(always)]
    fn sites<'a>(&'a mut self, rest: &'a mut Rest) -> Tally<'a, SiteTotal> {
        Tally { first: &mut self.first_site, window: &mut self.sites, outside: &mut rest.sites }
    }

    /// The bin keys with durations, with how many.
    fn bin_counts<'a>(&'a self, rest: &'a Rest) -> impl Iterator<Item = (u32, u32)> + 'a {
        tallied(self.first_bin, &self.bins, &rest.bins)
    }

    /// The sites with durations, with their counts and time.
    fn site_totals<'a>(&'a self, rest: &'a Rest) -> impl Iterator<Item = (u32, SiteTotal)> + 'a {
        tallied(self.first_site, &self.sites, &rest.sites)
    }

    /// Counts a duration of `nanos`, spent at `site` if known; returns what the histogram's
    /// maximum is at least from now on: its bin's highest value (0 for no time), or past the
    /// histogram's range, the maximum of the durations past it so far.
    #[inline(always)]
    fn record(&mut self, rest: &mut Rest, nanos: u64, site: Option<SiteId>) -> u64 {
        // (The site first: less is needed after it.)
        if let Some(site) = site {
            self.sites(rest).get_mut(site.0).add(1, nanos);
        }
        match key_of(nanos) {
            Some(key) => {
                count_one(self.bins(rest).get_mut(key));
                key_top(key)
            }
            None => rest.record_beyond(nanos),
        }
    }

    /// Counts a duration of `nanos` at `site`, as [`record`](Self::record) does, if both have
    /// a place in their windows (as most do); returns whether they had. It calls nothing, so
    /// that the common path of an event saves no registers.
    #[inline(always)]
    fn record_in_windows(&mut self, nanos: u64, site: SiteId) -> bool {
        let site_at = window_offset(self.first_site, self.sites.len(), site.0);
        let bin_at =
            key_of(nanos).and_then(|key| window_offset(self.first_bin, self.bins.len(), key));
        let (Some(site_at), Some(bin_at)) = (site_at, bin_at) else {
            return false;
        };
        self.sites[site_at].add(1, nanos);
        count_one(&mut self.bins[bin_at]);
        true
    }

    /// Asks the CPU for what a hold's release will update: the time per site of `site`, if it
    /// is in its window (an acquisition knows the site of its hold), and the ends of the
    /// window of bins (it does not know the hold's duration yet, but a lock's holds mostly
    /// fall in a few bins, whose counts take a line or two).
    #[inline(always)]
    fn prefetch_for_hold(&self, site: SiteId) {
        if let Some(at) = window_offset(self.first_site, self.sites.len(), site.0) {
            prefetch_entry(&self.sites, at);
        }
        prefetch(&*self.bins);
    }

    /// Whether no duration was counted. (A window or a map is made for a key to count.)
    fn is_empty(&self, rest: &Rest) -> bool {
        self.bins.is_empty() && rest.bins.is_none() && rest.beyond.is_none()
    }

    /// Adds `other`'s durations and sites, with `other_rest`, to these, with `rest`.
    fn add(&mut self, rest: &mut Rest, other: &Windows, other_rest: &Rest) {
        for (key, n) in other.bin_counts(other_rest) {
            let count = self.bins(rest).get_mut(key);
            *count = count.saturating_add(n);
        }
        for (site, total) in other.site_totals(other_rest) {
            self.sites(rest).get_mut(site).add(total.count, total.total_ns);
        }
        if let Some(other_beyond) = &other_rest.beyond {
            match &mut rest.beyond {
                // Both histograms have the same bounds, so adding cannot fail.
                Some(beyond) => drop(beyond.add(&**other_beyond)),
                None => rest.beyond = Some(other_beyond.clone()),
            }
        }
    }

    /// The histogram's maximum: the highest value of the largest duration's bin (0 if no
    /// duration was above 0).
    fn max_ns(&self, rest: &Rest) -> u64 {
        let max_ns = self.bin_counts(rest).map(|(key, _)| key).max().map_or(0, key_top);
        rest.beyond.as_ref().map_or(max_ns, |beyond| max_ns.max(beyond.max()))
    }

    /// The HDR histogram of the durations, but for its maximum and minimum: each bin's
    /// durations are recorded at the bin's lowest value. It spans the durations only, which
    /// buckets them as the full range does.
    fn histogram(&self, rest: &Rest) -> Histogram<u32> {
        let mut histogram = match &rest.beyond {
            Some(beyond) => (**beyond).clone(),
            None => histogram(self.max_ns(rest)),
        };
        for (key, n) in self.bin_counts(rest) {
            // A bin's lowest value is at most the maximum, so recording cannot fail.
            let _ = histogram.record_n(bin_floor(key_bin(key)), n);
        }
        histogram
    }

    /// The statistics of the durations, of `total_ns` in all.
    fn summary(&self, rest: &Rest, total_ns: u64) -> DurationStats {
        if self.is_empty(rest) {
            return DurationStats::default();
        }
        let histogram = self.histogram(rest);
        let count = histogram.len();
        let mut quantiles = histogram.value_at_quantiles([0.50, 0.95, 0.99]);
        let mut quantile = || quantiles.next().unwrap_or(0);
        DurationStats {
            count,
            total_ns,
            mean_ns: total_ns / count,
            p50_ns: quantile(),
            p95_ns: quantile(),
            p99_ns: quantile(),
            max_ns: self.max_ns(rest),
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

/// Everything kept about one lock.
///
/// Its fields are laid out in order, and it starts a cache line: what every acquisition and
/// release updates fills that line, and what only contended acquisitions update (and the rest
/// of the holds' tallies) comes after. (A trace's locks take more memory than the CPU's
/// nearest caches hold.) The holds' total time is not kept apart: every hold has a site, so
/// it is the sum of the sites' (see [`hold_total_ns`](Self::hold_total_ns)).
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
struct LockStats {
    acquisitions: u64,
    owner_changes: u64,
    hold: Windows,
    last_owner: Option<Actor>,
    hold_rest: Rest,
    contended: u64,
    max_wait_at_ns: u64,
    /// The waits' histogram's maximum (see [`Windows::max_ns`]), kept up to date for
    /// `max_wait_at_ns`.
    max_wait_ns: u64,
    wait_total_ns: u64,
    wait: Windows,
    wait_rest: Rest,
    /// The first few threads and tasks that had to wait for it, for the finding.
    waiters: Vec<Actor>,
    /// Waits given up before the lock was acquired.
    abandoned: u64,
}

// What every acquisition and release updates fills one cache line.
const _: () = assert!(std::mem::offset_of!(LockStats, hold_rest) == 64);

/// Waiting threads and tasks named per hotspot.
const WAITERS_NAMED: usize = 8;

impl LockStats {
    /// Counts an acquisition by `actor`.
    #[inline(always)]
    fn acquired(&mut self, actor: Actor) {
        self.acquisitions += 1;
        if self.last_owner.is_some_and(|owner| owner != actor) {
            self.owner_changes += 1;
        }
        self.last_owner = Some(actor);
    }

    /// Counts that the acquisition by `actor` at `now` had to `wait`.
    #[inline(never)]
    fn waited(&mut self, actor: Actor, now: u64, wait: &Wait) {
        self.contended += 1;
        self.record_wait(actor, now, wait);
    }

    /// Counts that `actor` gave up its `wait` at `now`.
    #[cold]
    #[inline(never)]
    fn abandoned(&mut self, actor: Actor, now: u64, wait: &Wait) {
        self.abandoned += 1;
        self.record_wait(actor, now, wait);
    }

    /// Records the time of `wait`, which ended at `now`.
    fn record_wait(&mut self, actor: Actor, now: u64, wait: &Wait) {
        let (waited_ns, site) = (now.saturating_sub(wait.since_ns), wait.site);
        if waited_ns > self.max_wait_ns || self.max_wait_at_ns == 0 {
            self.max_wait_at_ns = now;
        }
        let max_ns = self.wait.record(&mut self.wait_rest, waited_ns, site);
        self.max_wait_ns = self.max_wait_ns.max(max_ns);
        self.wait_total_ns = self.wait_total_ns.saturating_add(waited_ns);
        if self.waiters.len() < WAITERS_NAMED && !self.waiters.contains(&actor) {
            self.waiters.push(actor);
        }
    }

    /// Counts a hold of `held_ns`, acquired at `site`.
    #[inline(always)]
    fn released(&mut self, site: SiteId, held_ns: u64) {
        if !self.hold.record_in_windows(held_ns, site) {
            self.released_outside(site, held_ns);
        }
    }

    /// [`released`](Self::released) for a hold whose site or duration is outside the windows.
    #[inline(never)]
    fn released_outside(&mut self, site: SiteId, held_ns: u64) {
        self.hold.record(&mut self.hold_rest, held_ns, Some(site));
    }

    /// Whether something was counted: an acquisition is always counted, a release only with
    /// its hold (so after its acquisition, but for a detector fed by hand).
    fn is_counted(&self) -> bool {
        self.acquisitions > 0 || !self.hold.is_empty(&self.hold_rest)
    }

    /// The holds' total time: the sum of their sites', as every hold has one. (Saturating
    /// sums of parts add up to the saturating sum of the whole.)
    fn hold_total_ns(&self) -> u64 {
        let sites = self.hold.site_totals(&self.hold_rest);
        sites.map(|(_, total)| total.total_ns).fold(0, u64::saturating_add)
    }

    /// Adds `other`'s counts to these, as a lock class's statistics add up its locks'.
    fn add(&mut self, other: &LockStats) {
        self.acquisitions += other.acquisitions;
        self.contended += other.contended;
        self.abandoned += other.abandoned;
        self.owner_changes += other.owner_changes;
        self.hold.add(&mut self.hold_rest, &other.hold, &other.hold_rest);
        self.wait.add(&mut self.wait_rest, &other.wait, &other.wait_rest);
        self.max_wait_ns = self.max_wait_ns.max(other.max_wait_ns);
        self.wait_total_ns = self.wait_total_ns.saturating_add(other.wait_total_ns);
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

    /// Makes room in [`locks`](Self::locks) for `lock`, and then counts `event`, which found
    /// none. (Called last, as every call on the common paths of `on_event`, so that they save
    /// no registers.)
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, cx: &Context<'_>, event: &Event, lock: LockId) {
        self.locks.resize_with(lock.index() + 1, LockStats::default);
        self.on_event(cx, event);
    }

    /// The locks something was counted of, with what, by lock id.
    fn counted(&self) -> impl Iterator<Item = (usize, &LockStats)> {
        self.locks.iter().enumerate().filter(|(_, stats)| stats.is_counted())
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
        // A class of one lock taken has that lock's statistics; the others add theirs up (in
        // a map: most classes have one lock, and a table of all would take a lock's
        // statistics per class).
        let mut classes: FxHashMap<usize, LockStats> = FxHashMap::default();
        for (index, stats) in self.counted() {
            let Some(class) = class_of(index).filter(|&class| taken[class].0 > 1) else {
                continue;
            };
            classes.entry(class).or_default().add(stats);
        }
        let mut texts = SiteTexts::default();
        taken
            .iter()
            .enumerate()
            .map(|(class, &(taken, last))| match classes.get(&class) {
                Some(stats) => summarize(cx, stats, &mut texts),
                None if taken == 1 => locks.get(last).cloned().unwrap_or_default(),
                None => LockStatistics::default(),
            })
            .collect()
    }
}

/// The sites with the most time, most first (ties by site id, so reports are stable).
///
/// Sites at one place in the source (tokio's operations on one lock, which it names after the
/// lock's creation line, each have a site of their own) count as one, under the smallest id.
fn ranked(cx: &Context<'_>, sites: &Windows, rest: &Rest) -> Vec<(SiteId, SiteTotal)> {
    let mut places: FxHashMap<(StringId, u32, u32), usize> = FxHashMap::default();
    let mut sorted: Vec<(SiteId, SiteTotal)> = Vec::new();
    for (site, total) in sites.site_totals(rest) {
        let site = SiteId(site);
        let at = cx.trace.site(site);
        let index = *places.entry((at.file, at.line, at.col)).or_insert_with(|| {
            sorted.push((site, SiteTotal::default()));
            sorted.len() - 1
        });
        let entry = &mut sorted[index];
        entry.0 = entry.0.min(site);
        entry.1.add(total.count, total.total_ns);
    }
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

/// The sites of `sites` (with `rest`) with the most time, with their texts.
fn top_sites(
    cx: &Context<'_>,
    sites: &Windows,
    rest: &Rest,
    texts: &mut SiteTexts,
) -> Vec<SiteTime> {
    ranked(cx, sites, rest)
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
        abandoned_waits: stats.abandoned,
        owner_changes: stats.owner_changes,
        wait: stats.wait.summary(&stats.wait_rest, stats.wait_total_ns),
        hold: stats.hold.summary(&stats.hold_rest, stats.hold_total_ns()),
        top_waiting_sites: top_sites(cx, &stats.wait, &stats.wait_rest, texts),
        top_holding_sites: top_sites(cx, &stats.hold, &stats.hold_rest, texts),
    }
}

impl Detector for Contention {
    fn kind(&self) -> FindingKind {
        FindingKind::ContentionHotspot
    }

    /// The kinds its `on_event` handles: keep the two in step.
    fn interest(&self) -> Interest {
        Interest::LOCK_ACQUIRED | Interest::LOCK_RELEASED | Interest::LOCK_TRY_FAILED
    }

    fn prefetch_interest(&self) -> Interest {
        Interest::LOCK_ACQUIRED | Interest::LOCK_RELEASED
    }

    /// Fetches the line of the lock's statistics that every acquisition and release updates.
    #[inline]
    fn prefetch(&self, event: &Event) {
        if let EventKind::LockAcquired { lock, .. } | EventKind::LockReleased { lock, .. } =
            event.kind
        {
            if let Some(stats) = self.locks.get(lock.index()) {
                prefetch(&stats.acquisitions);
            }
        }
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        let now = event.time_ns;
        match event.kind {
            EventKind::LockAcquired { lock, site, .. } => {
                let Some(stats) = self.locks.get_mut(lock.index()) else {
                    return self.make_room(cx, event, lock);
                };
                self.events += 1;
                let actor = Actor::of(event);
                stats.acquired(actor);
                stats.hold.prefetch_for_hold(site);
                let wait = cx.state.actor(actor).and_then(|a| a.wait.as_ref());
                if let Some(wait @ Wait { target: WaitFor::Lock { lock: waited_for, .. }, .. }) =
                    wait
                {
                    if *waited_for == lock {
                        stats.waited(actor, now, wait);
                    }
                }
            }
            EventKind::LockReleased { lock, mode, .. } => {
                let actor = Actor::of(event);
                // The actor's last hold of the lock: mostly its last hold, locks being released
                // in the reverse order of taking them. A guard or permit moved to another task
                // or thread is released by it: then the hold replay ends, the lock's most
                // recent in that mode, so that the hold is counted all the same.
                let holds = cx.state.holds(actor);
                let hold = match holds.last() {
                    Some(last) if last.lock == lock => last,
                    _ => match holds.iter().rev().find(|h| h.lock == lock) {
                        Some(hold) => hold,
                        None => match moved_hold(cx, lock, mode) {
                            Some(hold) => hold,
                            None => return,
                        },
                    },
                };
                let Some(stats) = self.locks.get_mut(lock.index()) else {
                    return self.make_room(cx, event, lock);
                };
                self.events += 1;
                stats.released(hold.site, now.saturating_sub(hold.since_ns));
            }
            EventKind::LockTryFailed { lock, .. } => {
                let actor = Actor::of(event);
                let Some(wait @ Wait { target: WaitFor::Lock { lock: waited_for, .. }, .. }) =
                    cx.state.actor(actor).and_then(|a| a.wait.as_ref())
                else {
                    return;
                };
                if *waited_for != lock {
                    return;
                }
                let Some(stats) = self.locks.get_mut(lock.index()) else {
                    return self.make_room(cx, event, lock);
                };
                self.events += 1;
                stats.abandoned(actor, now, wait);
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
        let locks = || self.counted().filter(|(index, _)| !is_semaphore(*index));
        let all_wait = locks().map(|(_, s)| s.wait_total_ns).fold(0, u64::saturating_add);
        for (index, stats) in self.counted() {
            let share =
                if all_wait == 0 { 0.0 } else { stats.wait_total_ns as f64 / all_wait as f64 };
            // (An empty histogram's maximum and p99 are 0, as its summary's are.)
            let wait = &statistics[index].wait;
            let long_wait = wait.max_ns >= self.wait_threshold_ns;
            let significant = wait.p99_ns >= self.wait_threshold_ns / SIGNIFICANT_P99_DIVISOR;
            let most_wait = share > MOST_OF_THE_WAIT && significant && !is_semaphore(index);
            let recurring = statistics[index].contended >= MIN_CONTENDED;
            if recurring && (long_wait || most_wait) {
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

/// The hold of `lock` in `mode` that a release by an actor holding none of it ends (a guard
/// or permit moved to it): the most recent, as replay's state chooses.
#[cold]
fn moved_hold<'a>(cx: &Context<'a>, lock: LockId, mode: LockMode) -> Option<&'a Hold> {
    let holders = &cx.state.lock(lock)?.holders;
    holders.iter().rev().find(|h| h.hold.mode == mode).map(|h| &h.hold)
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
    let lock_def = cx.trace.lock(lock);
    let semaphore = lock_def.kind == LockKind::Semaphore;
    let title = if semaphore {
        format!(
            "semaphore `{name}` is a contention hotspot: waits for a permit up to {} (p99 {})",
            format_ns(wait.max_ns),
            format_ns(wait.p99_ns)
        )
    } else {
        format!(
            "lock `{name}` is a contention hotspot: waits up to {} (p99 {}), {percent}% of all lock wait time",
            format_ns(wait.max_ns),
            format_ns(wait.p99_ns)
        )
    };
    let mut finding = Finding::new(FindingKind::ContentionHotspot, Severity::Warning, title);
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
    if summary.abandoned_waits > 0 {
        finding.evidence.push(format!(
            "{} given up before getting it (a timeout, a cancelled future, a closed semaphore)",
            counted(summary.abandoned_waits, "wait", "waits")
        ));
    }
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
    // tokio's own locks carry only their creation site: `at_site` says so rather than "holding
    // at" it.
    for (role, sites, rest) in
        [("holding", &stats.hold, &stats.hold_rest), ("waiting", &stats.wait, &stats.wait_rest)]
    {
        for (site, total) in ranked(cx, sites, rest) {
            finding.evidence.push(format!(
                "{role} {}: {}, {} in all",
                lock_def.at_site(cx.trace, site),
                counted(total.count, "time", "times"),
                format_ns(total.total_ns)
            ));
            finding.sites.push(cx.site_ref(site, lock_def.site_role(cx.trace, site, role)));
        }
    }
    let read_write = if lock_def.kind == LockKind::RwLock {
        ""
    } else {
        ", or use a read-write lock if most holders only read"
    };
    finding.help = Some(if semaphore {
        let capacity = lock_def.capacity.map(|n| format!(" (it has {n})")).unwrap_or_default();
        format!(
            "`{name}` runs out of permits: give them back sooner at the top holding sites, or \
             raise its number of permits{capacity} if what it guards allows"
        )
    } else {
        format!(
            "shorten the critical sections of `{name}` at the top holding sites (move work out \
             of the lock), or split the lock{read_write}"
        )
    });
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
    use hindsight_recorder::format::{LockMode, ThreadId};

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
            for nanos in [low, high] {
                let key = (nanos <= HISTOGRAM_HIGH_NS).then_some(bin + u32::from(nanos != 0));
                assert_eq!(key_of(nanos), key, "the key of {nanos}");
            }
            if bin + 1 < bins {
                assert_eq!(bin_top(bin), high, "bin {} follows bin {bin}", bin + 1);
            }
        }
        assert_eq!(bin_of(0), 0);
        assert!(bin_of(HISTOGRAM_HIGH_NS) + 1 < bins);
        assert_eq!(key_of(HISTOGRAM_HIGH_NS), Some(bin_of(HISTOGRAM_HIGH_NS) + 1));
        assert_eq!(key_of(HISTOGRAM_HIGH_NS + 1), None);
    }

    /// Counts `v` as the `i`th hold, at one of a few sites, and as the `i`th wait, at one of
    /// a few others or at none.
    fn record(stats: &mut LockStats, i: u64, v: u64) {
        stats.released(SiteId((i % 3) as u32), v);
        let site = (!i.is_multiple_of(4)).then_some(SiteId(100 + (i % 5) as u32));
        let target = WaitFor::Lock { lock: LockId(0), mode: LockMode::Exclusive };
        let wait = Wait { target, site, since_ns: 0, thread: ThreadId(0) };
        stats.waited(Actor::Thread(ThreadId(0)), v, &wait);
    }

    /// The statistics of `stats`' holds and waits.
    fn summaries(stats: &LockStats) -> [DurationStats; 2] {
        [
            stats.hold.summary(&stats.hold_rest, stats.hold_total_ns()),
            stats.wait.summary(&stats.wait_rest, stats.wait_total_ns),
        ]
    }

    /// The maxima of `stats`' holds and waits, as its summaries and the hotspot see them.
    fn maxima(stats: &LockStats) -> [u64; 3] {
        [
            stats.hold.max_ns(&stats.hold_rest),
            stats.wait.max_ns(&stats.wait_rest),
            stats.max_wait_ns,
        ]
    }

    #[test]
    fn zero_and_tiny_durations_keep_the_histograms_maximum() {
        let cases: [&[u64]; 9] =
            [&[0], &[0, 0], &[5], &[0, 5], &[50, 0], &[63], &[64, 0], &[0, 100], &[1, 0, 64]];
        for values in cases {
            let mut stats = LockStats::default();
            for (i, &v) in values.iter().enumerate() {
                record(&mut stats, i as u64, v);
            }
            let (histogram, total) = recorded(values);
            assert_eq!(maxima(&stats), [histogram.max(); 3], "{values:?}");
            assert_eq!(summaries(&stats), [summary_of(&histogram, total); 2], "{values:?}");
            let mut class = LockStats::default();
            class.add(&stats);
            class.add(&LockStats::default());
            assert_eq!(summaries(&class), [summary_of(&histogram, total); 2], "{values:?}");
        }
    }

    #[test]
    fn sparse_durations_report_what_a_full_histogram_reports() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = Vec::new();
        let mut stats = LockStats::default();
        let mut class = LockStats::default();
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
            assert_eq!(maxima(&stats), [histogram.max(); 3], "the maxima after {i} durations");
            assert_eq!(stats.hold.is_empty(&stats.hold_rest), histogram.is_empty());
            assert_eq!(stats.wait.is_empty(&stats.wait_rest), histogram.is_empty());
            record(&mut stats, i, v);
            values.push(v);
            if i % 1000 == 999 || i % 4000 == 2 {
                let (histogram, total) = recorded(&values);
                assert_eq!(summaries(&stats), [summary_of(&histogram, total); 2]);
                class.add(&stats);
                class_values.extend_from_slice(&values);
                let (histogram, total) = recorded(&class_values);
                assert_eq!(summaries(&class), [summary_of(&histogram, total); 2]);
                values.clear();
                stats = LockStats::default();
            }
        }
    }

    #[test]
    fn sites_count_their_time_as_the_whole_does() {
        let mut stats = LockStats::default();
        let mut expected: FxHashMap<u32, SiteTotal> = FxHashMap::default();
        for i in 0..1000u64 {
            // Far apart sites (some in the map), and times that saturate some sites' totals.
            let site = SiteId((i % 7) as u32 * 1000 + (i % 3) as u32);
            let v = if i % 11 == 0 { u64::MAX / 3 } else { i * 37 };
            stats.released(site, v);
            expected.entry(site.0).or_default().add(1, v);
        }
        let mut sites: Vec<_> = stats.hold.site_totals(&stats.hold_rest).collect();
        sites.sort_by_key(|(site, _)| *site);
        let mut expected: Vec<_> = expected.into_iter().collect();
        expected.sort_by_key(|(site, _)| *site);
        assert_eq!(sites, expected);
        assert_eq!(stats.hold_total_ns(), u64::MAX);
        assert!(stats.hold_rest.sites.is_some(), "far sites are in the map");
    }

    #[test]
    fn tallies_keep_each_key_in_the_window_or_the_map() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        // Keys close together, spread, far apart, and at the ends of the key range.
        let keys: [&dyn Fn(u64) -> u32; 4] = [
            &|x| 500 + (x % 40) as u32,
            &|x| (x % 3000) as u32,
            &|x| (x % 4) as u32 * 1_000_000 + (x % 8) as u32,
            &|x| if x % 2 == 0 { (x % 70) as u32 } else { u32::MAX - (x % 70) as u32 },
        ];
        for key_of in keys {
            let (mut first, mut window, mut outside) = (0, Box::default(), None);
            let mut expected: FxHashMap<u32, u32> = FxHashMap::default();
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = key_of(x);
                let tally = Tally { first: &mut first, window: &mut window, outside: &mut outside };
                *tally.get_mut(key) += 1;
                *expected.entry(key).or_default() += 1;
            }
            let mut values: Vec<_> = tallied(first, &window, &outside).collect();
            values.sort();
            let mut expected: Vec<_> = expected.into_iter().collect();
            expected.sort();
            assert_eq!(values, expected);
            let in_window = |key: u32| key.wrapping_sub(first) < window.len() as u32;
            let outside = outside.iter().flat_map(|outside| outside.keys());
            assert!(outside.clone().all(|&key| !in_window(key)), "a key in both places");
            let keys = values.len() - outside.count();
            assert!(window.len() <= MIN_SPAN.max(SPAN_PER_KEY * keys), "a sparse window");
        }
    }
}
