//! Vector clocks over logical-thread slots, and FastTrack's epochs.

/// A vector clock, indexed by logical-thread slot; missing entries are 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clock(Vec<u32>);

impl Clock {
    /// The entry of `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> u32 {
        self.0.get(slot as usize).copied().unwrap_or(0)
    }

    /// Sets the entry of `slot` to `value`.
    pub fn set(&mut self, slot: u32, value: u32) {
        let index = slot as usize;
        if self.0.len() <= index {
            self.0.resize(index + 1, 0);
        }
        self.0[index] = value;
    }

    /// Adds one to the entry of `slot`.
    pub fn tick(&mut self, slot: u32) {
        let next = self.get(slot).saturating_add(1);
        self.set(slot, next);
    }

    /// Every entry becomes the larger of its own and `other`'s.
    #[inline]
    pub fn join(&mut self, other: &Clock) {
        self.join_entries(&other.0);
    }

    /// Every entry becomes the larger of its own and `entries`' (indexed by slot).
    #[inline]
    pub fn join_entries(&mut self, entries: &[u32]) {
        if self.0.len() < entries.len() {
            self.0.resize(entries.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(entries) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Becomes a copy of `other`, reusing its allocation.
    pub fn assign(&mut self, other: &Clock) {
        self.0.clear();
        self.0.extend_from_slice(&other.0);
    }

    /// The entries, by slot.
    pub fn entries(&self) -> &[u32] {
        &self.0
    }

    /// Whether no entry is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Slots up to which a [`ClockTable`] keeps its rows in one flat array (so that a row is found,
/// and prefetched, without reading a pointer first); past it, one clock per row.
const FLAT_SLOTS: usize = 16;

/// Numbered rows of clocks, stored flat while clocks are short: the clocks that detectors keep
/// per variable or per critical section, where a pointer per clock would cost a cache miss
/// and an allocation each. Rows never written read as empty clocks.
#[derive(Debug, Default)]
pub struct ClockTable {
    /// `width` entries per row, while every clock has at most [`FLAT_SLOTS`] entries.
    flat: Vec<u32>,
    width: usize,
    /// Once a clock has more: one clock per row (and `flat` is empty).
    clocks: Vec<Clock>,
}

impl ClockTable {
    /// Row `row` becomes a copy of `clock`.
    #[inline]
    pub fn set(&mut self, row: usize, clock: &Clock) {
        let entries = clock.entries();
        if self.clocks.is_empty() && entries.len() > self.width {
            self.widen(entries.len());
        }
        if self.clocks.is_empty() {
            let width = self.width;
            if self.flat.len() < (row + 1) * width {
                self.flat.resize((row + 1) * width, 0);
            }
            let cells = &mut self.flat[row * width..(row + 1) * width];
            match width {
                1 => copy_padded::<1>(cells, entries),
                2 => copy_padded::<2>(cells, entries),
                4 => copy_padded::<4>(cells, entries),
                8 => copy_padded::<8>(cells, entries),
                _ => copy_padded::<FLAT_SLOTS>(cells, entries),
            }
        } else {
            if self.clocks.len() <= row {
                self.clocks.resize(row + 1, Clock::default());
            }
            self.clocks[row].assign(clock);
        }
    }

    /// The entries of row `row`, by slot (empty if it was never written).
    #[inline]
    pub fn row(&self, row: usize) -> &[u32] {
        if self.clocks.is_empty() {
            self.flat.get(row * self.width..(row + 1) * self.width).unwrap_or(&[])
        } else {
            self.clocks.get(row).map_or(&[], Clock::entries)
        }
    }

    /// Fetches `rows` rows from `first` on (a look-ahead hint).
    #[inline]
    pub fn prefetch(&self, first: usize, rows: usize) {
        if let Some(cells) = self.flat.get(first * self.width..(first + rows) * self.width) {
            crate::prefetch::prefetch(cells);
        }
    }

    /// Makes room for clocks of `entries` entries: wider flat rows, or one clock per row past
    /// [`FLAT_SLOTS`].
    #[cold]
    fn widen(&mut self, entries: usize) {
        let old = self.width;
        let rows = self.flat.len().checked_div(old).unwrap_or(0);
        if entries <= FLAT_SLOTS {
            let width = entries.next_power_of_two().min(FLAT_SLOTS);
            let mut flat = vec![0; rows * width];
            for row in 0..rows {
                flat[row * width..row * width + old]
                    .copy_from_slice(&self.flat[row * old..(row + 1) * old]);
            }
            (self.flat, self.width) = (flat, width);
        } else {
            self.clocks = (0..rows.max(1))
                .map(|row| {
                    let mut clock = Clock::default();
                    clock.join_entries(&self.flat[row * old..(row + 1) * old]);
                    clock
                })
                .collect();
            self.flat = Vec::new();
        }
    }
}

/// Copies `entries` into `cells`, `W` of them, and zeroes the rest: a copy of a size known
/// when compiling, which costs a few moves where `copy_from_slice` and `fill` would call
/// `memcpy` and `memset`.
#[inline(always)]
fn copy_padded<const W: usize>(cells: &mut [u32], entries: &[u32]) {
    let Ok(cells) = <&mut [u32; W]>::try_from(cells) else { return };
    for (slot, cell) in cells.iter_mut().enumerate() {
        *cell = entries.get(slot).copied().unwrap_or(0);
    }
}

/// A logical thread's slot and its own clock entry at an event: FastTrack's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// The logical thread's slot.
    pub slot: u32,
    /// Its own clock entry at the event.
    pub clock: u32,
}

impl Epoch {
    /// No event.
    pub const NONE: Epoch = Epoch { slot: u32::MAX, clock: 0 };

    /// The event of this epoch is not ordered before an event of `slot` whose ordering clock
    /// is `clock` (an event of the same slot always is, by program order).
    #[inline]
    pub fn unordered(self, slot: u32, clock: &Clock) -> bool {
        self.slot != slot && self.slot != Epoch::NONE.slot && self.clock > clock.get(self.slot)
    }
}
