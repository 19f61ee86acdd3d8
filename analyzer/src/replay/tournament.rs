//! Which queue has the earliest head: a tournament tree over the queues' head times. The
//! earliest head is at the root, and changing one head replays only its path to the root
//! (log₂ of the queues compares).
//!
//! Each node holds the key of the earliest head below it: the head's time and its queue in
//! one `u64`, so that a match is one comparison, and ties go to the smaller queue. The queue
//! takes the low bits (4 of them for up to 16 queues, 8 for up to 256) and the time the rest,
//! counted from an anchor somewhat before the first time seen: 2⁵⁶ ns (over two years) after
//! it stay in order with 256 queues. Times outside the range (only a hostile file has them)
//! are clamped: they are replayed, in an order that ties are broken in.

/// A queue without a head that may be replayed.
pub(super) const NO_HEAD: u64 = u64::MAX;

/// The leaves of a tournament over at most 16 queues (depth 4), and over at most 256.
const SMALL_TREE: usize = 16;
const MEDIUM_TREE: usize = 256;

/// The tournament; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Tournament {
    /// `nodes[1]` is the root; `nodes[leaves + q]` is queue `q`'s head; the children of node
    /// `i` are `2i` and `2i + 1`. Empty until [`grow`](Self::grow).
    nodes: Vec<u64>,
    /// Leaves: the number of queues rounded up to a power of two.
    leaves: usize,
    /// log₂ of `leaves`: how many low bits of a key name the queue.
    queue_bits: u32,
    /// Those bits.
    queue_mask: u64,
    /// Keys count time from here.
    anchor: u64,
    /// Whether [`anchor`](Self::anchor) set the anchor yet.
    anchored: bool,
}

impl Tournament {
    /// Makes room for `queues` queues.
    pub(super) fn grow(&mut self, queues: usize) {
        if queues <= self.leaves {
            return;
        }
        let leaves = if queues <= SMALL_TREE {
            SMALL_TREE
        } else if queues <= MEDIUM_TREE {
            MEDIUM_TREE
        } else {
            queues.next_power_of_two()
        };
        let old = std::mem::replace(
            self,
            Tournament { anchor: self.anchor, anchored: self.anchored, ..Self::default() },
        );
        self.leaves = leaves;
        self.queue_bits = leaves.trailing_zeros();
        self.queue_mask = leaves as u64 - 1;
        self.nodes = vec![NO_HEAD; 2 * leaves];
        for q in 0..old.leaves {
            if let Some(&old_key) = old.nodes.get(old.leaves + q) {
                let time = old.time_of(old_key);
                self.nodes[leaves + q] = key(time, self.anchor, self.queue_bits, q);
            }
        }
        for node in (1..leaves).rev() {
            self.nodes[node] = self.nodes[2 * node].min(self.nodes[2 * node + 1]);
        }
    }

    /// Counts the keys' times from a while before `time` (the first one seen), unless they
    /// already are; until then every time is at or after the anchor.
    pub(super) fn anchor(&mut self, time: u64) {
        if !self.anchored {
            let before = (u64::MAX >> self.queue_bits.max(8)) / 256;
            self.anchor = time.saturating_sub(before);
            self.anchored = true;
        }
    }

    /// The time a key was made of (clamped as in the key).
    fn time_of(&self, key: u64) -> u64 {
        match key {
            NO_HEAD => NO_HEAD,
            _ => (key >> self.queue_bits).saturating_add(self.anchor),
        }
    }

    /// Sets queue `q`'s head time.
    #[inline(always)]
    pub(super) fn set(&mut self, q: usize, time: u64) {
        // The number of matches is a constant in each arm, so that the compiler unrolls the
        // walk up the tree into straight code of conditional moves: a loop of them it turns
        // into branches, and which side wins a match is data, unpredictable. Trees come in
        // few depths (see `grow`), so that this inlines and always takes the same arm.
        match self.leaves {
            SMALL_TREE => self.set_unrolled::<4>(q, time),
            MEDIUM_TREE => self.set_unrolled::<8>(q, time),
            _ => self.set_looped(q, time),
        }
    }

    /// [`set`](Self::set) for a tree of `DEPTH` levels below the root: the new key travels
    /// up in a register and meets each sibling's key on the way (keys are unique, so the
    /// minimum does not depend on the side).
    #[inline(always)]
    fn set_unrolled<const DEPTH: usize>(&mut self, q: usize, time: u64) {
        let leaves = 1 << DEPTH;
        debug_assert!(self.leaves == leaves && q < leaves, "queue {q} outside the tree; a bug");
        // A slice of constant length, indexed below it: no bounds check on the way up.
        let Some(nodes) = self.nodes.get_mut(..2 * leaves) else {
            return;
        };
        let mut node = leaves + (q & (leaves - 1));
        let mut winner = key(time, self.anchor, DEPTH as u32, q);
        nodes[node] = winner;
        for _ in 0..DEPTH {
            winner = winner.min(nodes[node ^ 1]);
            node /= 2;
            nodes[node] = winner;
        }
    }

    /// [`set`](Self::set) for trees of any depth.
    fn set_looped(&mut self, q: usize, time: u64) {
        let mut node = self.leaves + q;
        let mut winner = key(time, self.anchor, self.queue_bits, q);
        let Some(leaf) = self.nodes.get_mut(node) else {
            return;
        };
        *leaf = winner;
        while node > 1 {
            winner = winner.min(self.nodes[node ^ 1]);
            node /= 2;
            self.nodes[node] = winner;
        }
    }

    /// The queue with the earliest head, if any queue has a head.
    #[inline(always)]
    pub(super) fn earliest(&self) -> Option<usize> {
        let root = *self.nodes.get(1)?;
        (root != NO_HEAD).then_some((root & self.queue_mask) as usize)
    }
}

/// The key of queue `q`'s head at `time` ([`NO_HEAD`] for none), in a tree whose keys count
/// time from `anchor` and give the queue `queue_bits` bits.
#[inline(always)]
fn key(time: u64, anchor: u64, queue_bits: u32, q: usize) -> u64 {
    // The largest time a key holds, one short of what would make a key NO_HEAD.
    let last = (u64::MAX >> queue_bits) - 1;
    let since = time.saturating_sub(anchor).min(last);
    if time == NO_HEAD {
        NO_HEAD
    } else {
        (since << queue_bits) | q as u64
    }
}

#[cfg(test)]
mod tests {
    use super::{Tournament, NO_HEAD};

    const DAY: u64 = 86_400_000_000_000;

    /// Every tree size (unrolled at 16 and 256 leaves, looped beyond) finds the earliest
    /// head, ties to the smaller queue, through growth and changes; times days before the
    /// anchor and months after it included.
    #[test]
    fn the_tournament_finds_the_earliest_head_at_every_size() {
        for queues in [1, 3, 16, 17, 256, 300, 1025] {
            let mut tree = Tournament::default();
            let mut heads = vec![NO_HEAD; queues];
            let mut rng = 0x2545_f491_4f6c_dd1d_u64;
            let anchor = 1 << 62;
            tree.anchor(anchor);
            for step in 0..4 * queues {
                // Grow in two steps, so that growing keeps the heads set so far.
                let limit = if step < queues / 2 { queues / 2 + 1 } else { queues };
                tree.grow(limit);
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let q = (rng as usize) % limit;
                let time = match rng % 8 {
                    0 => NO_HEAD,
                    1 => anchor - 2 * DAY + (rng >> 40) % 50,
                    2 => anchor + 90 * DAY + (rng >> 40) % 50,
                    _ => anchor + (rng >> 40) % 50,
                };
                heads[q] = time;
                tree.set(q, time);
                let expected = heads
                    .iter()
                    .enumerate()
                    .filter(|(_, &t)| t != NO_HEAD)
                    .min_by_key(|(q, &t)| (t, *q))
                    .map(|(q, _)| q);
                assert_eq!(tree.earliest(), expected, "{queues} queues, step {step}");
            }
        }
    }

    /// Times out of range (a hostile file's) are clamped, not lost.
    #[test]
    fn times_out_of_range_are_still_replayed() {
        let mut tree = Tournament::default();
        tree.grow(2);
        tree.anchor(1000 * DAY);
        tree.set(0, NO_HEAD - 1);
        assert_eq!(tree.earliest(), Some(0));
        tree.set(1, 0);
        assert_eq!(tree.earliest(), Some(1));
        tree.set(1, NO_HEAD);
        tree.set(0, NO_HEAD);
        assert_eq!(tree.earliest(), None);
    }
}
