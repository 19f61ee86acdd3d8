//! Schedulable happens-before's extra edge: the last write of a variable orders every later
//! read of it (the read must keep seeing that write in any schedule the analysis vouches for).

use super::{Clock, Epoch};
use crate::prefetch::{prefetch, prefetch_entry};
use hindsight_recorder::format::VarId;

/// Slots up to which last-write clocks are kept in one flat table (so that a variable's clock
/// is found, and prefetched, without reading a pointer first); past it, one clock each.
const FLAT_SLOTS: usize = 16;

/// Per variable, the happens-before clock of its last write, and its epoch.
#[derive(Debug, Default)]
pub struct LastWrites {
    epochs: Vec<Epoch>,
    /// `width` entries per variable, while every clock has at most [`FLAT_SLOTS`] entries.
    flat: Vec<u32>,
    width: usize,
    /// Once a clock has more: one clock per variable (and `flat` is empty).
    clocks: Vec<Clock>,
}

impl LastWrites {
    /// A write of `var` by `slot`, whose clock is `clock` (before it ticks).
    pub fn wrote(&mut self, var: VarId, slot: u32, clock: &Clock) {
        let index = var.index();
        if self.epochs.len() <= index {
            self.epochs.resize(index + 1, Epoch::NONE);
        }
        self.epochs[index] = Epoch { slot, clock: clock.get(slot) };
        let entries = clock.entries();
        if self.clocks.is_empty() && entries.len() > self.width {
            self.widen(entries.len());
        }
        if self.clocks.is_empty() {
            let width = self.width;
            if self.flat.len() < (index + 1) * width {
                self.flat.resize((index + 1) * width, 0);
            }
            let row = &mut self.flat[index * width..(index + 1) * width];
            row[..entries.len()].copy_from_slice(entries);
            row[entries.len()..].fill(0);
        } else {
            if self.clocks.len() <= index {
                self.clocks.resize(index + 1, Clock::default());
            }
            self.clocks[index].assign(clock);
        }
    }

    /// Makes room for clocks of `entries` entries: a wider flat table, or one clock per
    /// variable past [`FLAT_SLOTS`].
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
                    for (slot, &value) in
                        self.flat.get(row * old..(row + 1) * old).unwrap_or(&[]).iter().enumerate()
                    {
                        if value > 0 {
                            clock.set(slot as u32, value);
                        }
                    }
                    clock
                })
                .collect();
            self.flat = Vec::new();
        }
    }

    /// Fetches what an access of `var` will touch: its epoch and its clock.
    #[inline]
    pub fn prefetch(&self, var: VarId) {
        prefetch_entry(&self.epochs, var.index());
        if let Some(row) = self.flat.get(var.index() * self.width..(var.index() + 1) * self.width) {
            prefetch(row);
        }
    }

    /// A read of `var` by an actor whose clock is `clock`: it learns the last write's clock.
    #[inline]
    pub fn read(&self, var: VarId, clock: &mut Clock) {
        let index = var.index();
        let Some(&epoch) = self.epochs.get(index) else { return };
        // A clock that knows the writer's entry at the write knows all the write knew: the
        // write ticks, and only ticking events hand clocks on. The common case, a read of a
        // variable last written under the lock the reader holds, stops here.
        if epoch.slot == Epoch::NONE.slot || clock.get(epoch.slot) >= epoch.clock {
            return;
        }
        if self.clocks.is_empty() {
            let row = &self.flat[index * self.width..(index + 1) * self.width];
            for (slot, &value) in row.iter().enumerate() {
                if value > clock.get(slot as u32) {
                    clock.set(slot as u32, value);
                }
            }
        } else if let Some(written) = self.clocks.get(index) {
            clock.join(written);
        }
    }
}
