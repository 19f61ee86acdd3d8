//! Schedulable happens-before's extra edge: the last write of a variable orders every later
//! read of it (the read must keep seeing that write in any schedule the analysis vouches for).

use super::Clock;
use hindsight_recorder::format::VarId;

/// Per variable, the happens-before clock of its last write.
#[derive(Debug, Default)]
pub struct LastWrites {
    clocks: Vec<Clock>,
}

impl LastWrites {
    /// A write of `var` by an actor whose clock is `clock` (before it ticks).
    pub fn wrote(&mut self, var: VarId, clock: &Clock) {
        let index = var.index();
        if self.clocks.len() <= index {
            self.clocks.resize(index + 1, Clock::default());
        }
        self.clocks[index].assign(clock);
    }

    /// A read of `var` by an actor whose clock is `clock`: it learns the last write's clock.
    pub fn read(&self, var: VarId, clock: &mut Clock) {
        if let Some(written) = self.clocks.get(var.index()) {
            clock.join(written);
        }
    }
}
