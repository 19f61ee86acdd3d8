//! The recorder's clock: raw ticks on the hot path, nanoseconds on the writer thread.
//!
//! Reading the clock is the most frequent thing the recorder does, so events store the raw
//! value of [`quanta`]'s clock: the CPU's time-stamp counter where it is invariant (a few
//! nanoseconds, no system call), else `CLOCK_MONOTONIC`. The writer thread converts ticks to
//! nanoseconds since the session's start. The trace header names the source in its `clock`
//! field: `"tsc"` or `"monotonic"`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
/// quanta reads the time-stamp counter: the hot path may read it directly.
static TSC: AtomicBool = AtomicBool::new(false);

/// The process-wide clock; calibrated once, on first use.
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        // quanta's counter source is a plain `rdtsc`, so its calibration applies to ours.
        let tsc = cfg!(all(target_arch = "x86_64", target_feature = "sse2"))
            && clock.delta_as_nanos(1, 1 + 1_000_000_000) != 1_000_000_000;
        TSC.store(tsc, Ordering::Relaxed);
        clock
    })
}

/// Raw ticks now. Cheap; meaningful only through [`to_nanos`].
#[inline]
pub(crate) fn ticks() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if TSC.load(Ordering::Relaxed) {
        // SAFETY: `rdtsc` has no preconditions; TSC is set only where it exists.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    clock().raw()
}

/// Nanoseconds from `start` to `ticks` (both raw); 0 if `ticks` is not after `start`.
pub(crate) fn to_nanos(start: u64, ticks: u64) -> u64 {
    clock().delta_as_nanos(start, ticks)
}

/// Raw ticks per `nanos` nanoseconds, rounded down (at least 1).
pub(crate) fn ticks_for(nanos: u64) -> u64 {
    // Calibrate the ratio on one second, which keeps the integer arithmetic exact enough.
    let per_second = to_nanos(1, 1 + 1_000_000_000).max(1);
    ((nanos as u128 * 1_000_000_000 / per_second as u128) as u64).max(1)
}

/// The name of the clock source, for [`Header::clock`](crate::format::Header::clock).
pub(crate) fn source_name() -> &'static str {
    // The monotonic source counts nanoseconds itself, so its conversion is the identity.
    if to_nanos(1, 1 + 1_000_000_000) == 1_000_000_000 {
        "monotonic"
    } else {
        "tsc"
    }
}
