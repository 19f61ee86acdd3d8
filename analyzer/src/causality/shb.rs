//! Schedulable happens-before's extra edge: the last write of a variable orders every later
//! read of it (the read must keep seeing that write in any schedule the analysis vouches for).

use super::{Clock, Epoch};
use crate::prefetch::{prefetch, prefetch_entry};
use hindsight_recorder::format::VarId;

/// Per variable, the happens-before clock of its last write, and its epoch.
#[derive(Debug, Default)]
pub struct LastWrites {
    epochs: Vec<Epoch>,
    clocks: Vec<Clock>,
}

impl LastWrites {
    /// A write of `var` by `slot`, whose clock is `clock` (before it ticks).
    pub fn wrote(&mut self, var: VarId, slot: u32, clock: &Clock) {
        let index = var.index();
        if self.clocks.len() <= index {
            self.clocks.resize(index + 1, Clock::default());
            self.epochs.resize(index + 1, Epoch::NONE);
        }
        self.epochs[index] = Epoch { slot, clock: clock.get(slot) };
        self.clocks[index].assign(clock);
    }

    /// Fetches what an access of `var` will touch: its epoch, and its clock (whose entries
    /// come whole if the clock's header is already in cache).
    #[inline]
    pub fn prefetch(&self, var: VarId) {
        prefetch_entry(&self.epochs, var.index());
        if let Some(clock) = self.clocks.get(var.index()) {
            prefetch(clock);
            prefetch(clock.entries());
        }
    }

    /// A read of `var` by an actor whose clock is `clock`: it learns the last write's clock.
    #[inline]
    pub fn read(&self, var: VarId, clock: &mut Clock) {
        let Some(&epoch) = self.epochs.get(var.index()) else { return };
        // A clock that knows the writer's entry at the write knows all the write knew: the
        // write ticks, and only ticking events hand clocks on. The common case, a read of a
        // variable last written under the lock the reader holds, stops here.
        if epoch.slot == Epoch::NONE.slot || clock.get(epoch.slot) >= epoch.clock {
            return;
        }
        clock.join(&self.clocks[var.index()]);
    }
}
