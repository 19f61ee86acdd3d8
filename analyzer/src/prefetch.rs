//! A hint to the CPU to bring memory into cache ahead of use.
//!
//! Replay looks a few events ahead (see [`Replay::visit`](crate::replay::Replay::visit)) and lets
//! the state and the detectors fetch what those events will touch, so that the cache misses
//! of several events overlap instead of each event waiting for its own.

/// Asks the CPU to bring `value` (its first and last cache lines) into cache; does nothing
/// else, and nothing at all on other architectures than x86-64. A slice is a value too: one
/// of a line or two comes whole.
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = (value as *const T).cast::<i8>();
        let last = start.wrapping_add(std::mem::size_of_val(value).saturating_sub(1));
        // SAFETY: a prefetch never faults and has no effect the program can observe (the
        // pointers point into a live value, or are an empty one's dangling pointer).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(start);
            _mm_prefetch::<_MM_HINT_T0>(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// [`prefetch`]es entry `index` of `table`, if there is one.
#[inline(always)]
pub(crate) fn prefetch_entry<T>(table: &[T], index: usize) {
    if let Some(entry) = table.get(index) {
        prefetch(entry);
    }
}
