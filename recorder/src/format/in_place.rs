//! Decoding an event batch's records straight into a vector's spare capacity, each from a
//! fixed window of the payload's bytes: the driver every version's direct decoder shares.
//!
//! Reading a record from a window as long as the longest record needs no check of the
//! payload's end inside the record; the last records are read from a copy of the payload's
//! end padded with zeros. Writing events in place instead of `push`ing them saves a tenth of
//! the decoding instructions, and setting the vector's length only once the whole batch is
//! decoded leaves it as it was when the batch is damaged.

use super::event::Event;
use super::ids::{TaskId, ThreadId};
use std::mem::MaybeUninit;

/// Bytes a record is decoded from: at least the longest record of every version (and any
/// wide read past it that a version's reader does), and a power of two.
pub(crate) const WINDOW: usize = 64;

/// Where decoded events go: the unwritten part of the output's spare capacity.
pub(crate) type Slots<'a> = std::slice::IterMut<'a, MaybeUninit<Event>>;

/// The context of a batch's records while they are decoded, with a version's per-lock state
/// `S`.
pub(crate) struct Records<'a, S> {
    /// The batch's thread.
    pub(crate) thread: ThreadId,
    /// The previous record's time.
    pub(crate) time: u64,
    /// The current task.
    pub(crate) task: Option<TaskId>,
    /// What the version remembers of each lock within the batch.
    pub(crate) locks: &'a mut S,
}

/// A version's decoder of one record, with the batch's context (thread, time, task, lock
/// state).
pub(crate) trait DecodeRecord {
    /// Decodes the record at the start of `window`, writing its event, if it has one, into
    /// the next of `slots`. Returns the bytes it took and how many of the units its batch
    /// counts (records, or events) it was; `None` if it is damaged.
    fn decode_record(
        &mut self,
        window: &[u8; WINDOW],
        slots: &mut Slots<'_>,
    ) -> Option<(usize, u64)>;
}

/// Decodes records from `bytes` until `left` units are counted off, appending their events
/// to `out` (reserving `reserve` events first: no more than the bytes can hold). Returns
/// `None`, and leaves `out` as it was, if a record is damaged, or the bytes end before the
/// units do or go on after them.
pub(crate) fn decode_records(
    bytes: &[u8],
    mut left: u64,
    reserve: usize,
    out: &mut Vec<Event>,
    decoder: &mut impl DecodeRecord,
) -> Option<()> {
    out.reserve(reserve);
    let spare = out.spare_capacity_mut();
    let capacity = spare.len();
    let mut slots = spare.iter_mut();
    let mut rest = bytes.get(run(bytes, &mut left, &mut slots, decoder)?..)?;
    if left > 0 {
        // The last records, from a copy padded with zeros to whole windows: records that
        // read the padding, or run out of it, mean a truncated payload.
        let mut padded = [0; 2 * WINDOW];
        padded.get_mut(..rest.len())?.copy_from_slice(rest);
        rest = rest.get(run(&padded, &mut left, &mut slots, decoder)?..)?;
    }
    if left > 0 || !rest.is_empty() {
        return None;
    }
    let filled = capacity - slots.len();
    // SAFETY: `slots` handed out the first `filled` slots of `out`'s spare capacity, in
    // order, and the decoder initialized each one it took; `out` has not changed since.
    unsafe { out.set_len(out.len() + filled) };
    Some(())
}

/// Decodes records from the start of `bytes` while `left` counts some and a whole window
/// remains, counting them off; returns the bytes they take.
#[inline(never)]
fn run(
    bytes: &[u8],
    left: &mut u64,
    slots: &mut Slots<'_>,
    decoder: &mut impl DecodeRecord,
) -> Option<usize> {
    let mut rest = bytes;
    while *left > 0 {
        let Some(window) = rest.first_chunk() else { break };
        let (taken, counted) = decoder.decode_record(window, slots)?;
        rest = rest.get(taken..)?;
        *left = left.saturating_sub(counted);
    }
    Some(bytes.len() - rest.len())
}
