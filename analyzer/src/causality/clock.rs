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
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
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
