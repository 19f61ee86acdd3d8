//! Schedulable happens-before's extra edge: the last write of a variable orders every later
//! read of it (the read must keep seeing that write in any schedule the analysis vouches for).

use super::{Clock, ClockTable, Epoch};
use crate::prefetch::prefetch_entry;
use hindsight_recorder::format::VarId;

/// Per variable, the happens-before clock of its last write, and its epoch.
#[derive(Debug, Default)]
pub struct LastWrites {
    epochs: Vec<Epoch>,
    /// Per variable, the clock.
    clocks: ClockTable,
}

impl LastWrites {
    /// A write of `var` by `slot`, whose clock is `clock` (before it ticks).
    pub fn wrote(&mut self, var: VarId, slot: u32, clock: &Clock) {
        let index = var.index();
        if self.epochs.len() <= index {
            self.epochs.resize(index + 1, Epoch::NONE);
        }
        self.epochs[index] = Epoch { slot, clock: clock.get(slot) };
        self.clocks.set(index, clock);
    }

    /// Fetches what an access of `var` will touch: its epoch and its clock.
    #[inline]
    pub fn prefetch(&self, var: VarId) {
        prefetch_entry(&self.epochs, var.index());
        self.clocks.prefetch(var.index(), 1);
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
        clock.join_entries(self.clocks.row(index));
    }
}
