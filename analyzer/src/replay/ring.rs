//! A first-in first-out queue in a ring whose size is a power of two, so that a position wraps
//! with a mask where [`VecDeque`](std::collections::VecDeque)'s wraps with a compare: replay
//! pushes to, reads and pops a queue for every event, and the wrapping was a measurable part
//! of it.

/// A FIFO of `T`; see the module docs. Keeps its memory as it empties, so that a steady replay
/// allocates nothing.
#[derive(Debug, Clone)]
pub(super) struct Ring<T> {
    /// The ring; its length is 0 or a power of two.
    slots: Vec<T>,
    /// The position of the first element (below `slots.len()`, or 0).
    head: usize,
    /// How many elements there are.
    len: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring { slots: Vec::new(), head: 0, len: 0 }
    }
}

impl<T: Copy + Default> Ring<T> {
    /// The mask that wraps a position.
    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Whether there is no element.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first element.
    #[inline]
    pub(super) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The element `index` places after the first.
    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<&T> {
        if index < self.len {
            self.slots.get((self.head + index) & self.mask())
        } else {
            None
        }
    }

    /// Drops the first element, if any.
    #[inline]
    pub(super) fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) & self.mask();
            self.len -= 1;
        }
    }

    /// Adds an element at the end.
    #[inline]
    pub(super) fn push_back(&mut self, value: T) {
        if self.len == self.slots.len() {
            self.reserve(1);
        }
        let at = (self.head + self.len) & self.mask();
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = value;
            self.len += 1;
        }
    }

    /// Makes room for `extra` more elements.
    pub(super) fn reserve(&mut self, extra: usize) {
        let needed = self.len + extra;
        if needed <= self.slots.len() {
            return;
        }
        let capacity = needed.next_power_of_two().max(16);
        let mut slots = Vec::with_capacity(capacity);
        slots.extend((0..self.len).filter_map(|i| self.get(i).copied()));
        slots.resize(capacity, T::default());
        self.slots = slots;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;
    use std::collections::VecDeque;

    /// Pushes, pops and growth, wrapping around many times, agree with `VecDeque`.
    #[test]
    fn a_ring_is_a_fifo_through_wrapping_and_growth() {
        let (mut ring, mut model) = (Ring::<u64>::default(), VecDeque::new());
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match rng % 7 {
                0..=2 => {
                    ring.push_back(step);
                    model.push_back(step);
                }
                3 => {
                    let extra = (rng >> 8) as usize % 40;
                    ring.reserve(extra);
                    for i in 0..extra as u64 {
                        ring.push_back(step * 100 + i);
                        model.push_back(step * 100 + i);
                    }
                }
                _ => {
                    ring.pop_front();
                    model.pop_front();
                }
            }
            assert_eq!(ring.is_empty(), model.is_empty(), "step {step}");
            assert_eq!(ring.get(model.len()), None, "step {step}");
            assert_eq!(ring.get(model.len().wrapping_sub(1)), model.back(), "step {step}");
            assert_eq!(ring.front(), model.front(), "step {step}");
            let k = (rng >> 24) as usize % 12;
            assert_eq!(ring.get(k), model.get(k), "step {step}");
        }
    }
}
