//! A long poll's CPU time and run-queue delay ([`EventKind::PollCpu`]), so that the analyzer
//! can tell a poll that burned the CPU or blocked off it from one that was runnable but not
//! running because the machine was busy.
//!
//! The CPU time is the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, exact to the moment);
//! the run-queue time is Linux's per-thread `/proc/thread-self/schedstat` (its second field,
//! which grows each time the thread is switched in after waiting). Reading them takes two
//! system calls, too dear for every poll, so
//! each thread keeps a *sample* of the two counters, refreshed at a poll's start only when it
//! is older than [`RESAMPLE_NS`]: at most one read per millisecond per thread. A poll that
//! lasted [`LONG_POLL_NS`] or more reads the counters again at its end and records their
//! growth since the sample — the poll's own CPU and run-queue time, plus at most the
//! millisecond before it began. The file stays open per thread (one `pread` per read).
//! Elsewhere than Linux nothing is recorded.

use crate::clock;
use crate::format::EventKind;
use std::cell::RefCell;
use std::sync::OnceLock;

/// A poll at least this long gets its CPU time recorded.
pub(crate) const LONG_POLL_NS: u64 = 1_000_000;

/// A thread's sample is refreshed at a poll's start once it is older than this.
const RESAMPLE_NS: u64 = 1_000_000;

/// The two counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ticks: u64,
    cpu_ns: u64,
    runnable_ns: u64,
}

/// A thread's open schedstat file and latest sample.
#[derive(Debug, Default)]
struct ThreadClock {
    /// The open file: `None` before the first read, `Some(-1)` where it cannot be read.
    fd: Option<i32>,
    sample: Option<Sample>,
    /// When the poll of a tokio task open on this thread started (tokio's polls do not nest).
    tokio_poll: Option<u64>,
}

impl Drop for ThreadClock {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.filter(|fd| *fd >= 0) {
            // SAFETY: `fd` was opened by this thread's clock and is closed once, here.
            unsafe { libc::close(fd) };
        }
    }
}

thread_local! {
    static CLOCK: RefCell<ThreadClock> = RefCell::default();
}

/// Ticks per [`LONG_POLL_NS`] and per [`RESAMPLE_NS`] (the same duration), computed once.
fn millisecond_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| clock::ticks_for(LONG_POLL_NS.min(RESAMPLE_NS)))
}

impl ThreadClock {
    /// The counters now, if this thread can read them.
    fn read(&mut self, ticks: u64) -> Option<Sample> {
        let fd = *self.fd.get_or_insert_with(open_schedstat);
        if fd < 0 {
            return None;
        }
        let mut buf = [0u8; 96];
        // SAFETY: `buf` is writable for its length; `fd` is this thread's open file.
        let read = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let text = std::str::from_utf8(buf.get(..usize::try_from(read).ok()?)?).ok()?;
        let runnable_ns = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        // schedstat's CPU time is brought up to date only at the scheduler's ticks; the
        // thread's CPU clock is exact.
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a valid timespec to write.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
            return None;
        }
        let cpu_ns = u64::try_from(now.tv_sec).ok()?.saturating_mul(1_000_000_000)
            + u64::try_from(now.tv_nsec).ok()?;
        Some(Sample { ticks, cpu_ns, runnable_ns })
    }
}

/// Opens this thread's schedstat file; -1 where there is none.
fn open_schedstat() -> i32 {
    if !cfg!(target_os = "linux") {
        return -1;
    }
    let path = c"/proc/thread-self/schedstat";
    // SAFETY: `path` is a NUL-terminated string; the flags ask for nothing unusual.
    unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
}

/// A poll starts on this thread now; returns its start, for [`poll_ended`].
pub(crate) fn poll_started() -> u64 {
    let ticks = clock::ticks();
    with_clock(|clock| clock.started(ticks, false));
    ticks
}

/// The poll that started at `started` (see [`poll_started`]) ends at `ended`: its CPU time
/// event, if it was long and the counters can be read.
pub(crate) fn poll_ended(started: u64, ended: u64) -> Option<EventKind> {
    with_clock(|clock| clock.ended(started, ended)).flatten()
}

/// tokio started polling a task on this thread at `ticks`.
pub(crate) fn tokio_poll_started(ticks: u64) {
    with_clock(|clock| clock.started(ticks, true));
}

/// tokio's poll of a task on this thread ends at `ticks`: as [`poll_ended`].
pub(crate) fn tokio_poll_ended(ticks: u64) -> Option<EventKind> {
    with_clock(|clock| {
        let started = clock.tokio_poll.take()?;
        clock.ended(started, ticks)
    })
    .flatten()
}

/// `f` on this thread's clock, unless it is gone (the thread is ending) or in use.
fn with_clock<R>(f: impl FnOnce(&mut ThreadClock) -> R) -> Option<R> {
    CLOCK.try_with(|clock| clock.try_borrow_mut().ok().map(|mut clock| f(&mut clock))).ok()?
}

impl ThreadClock {
    /// A poll starts at `ticks` (a tokio task's, if `tokio`): refreshes the sample if stale.
    fn started(&mut self, ticks: u64, tokio: bool) {
        if tokio {
            self.tokio_poll = Some(ticks);
        }
        let fresh =
            self.sample.is_some_and(|s| ticks.saturating_sub(s.ticks) < millisecond_ticks());
        if !fresh {
            self.sample = self.read(ticks);
        }
    }

    /// The poll that started at `started` ends at `ticks`: its CPU time event, if it was long
    /// and the counters can be read.
    fn ended(&mut self, started: u64, ticks: u64) -> Option<EventKind> {
        if ticks.saturating_sub(started) < millisecond_ticks() {
            return None;
        }
        let before = self.sample.filter(|s| s.ticks <= started)?;
        let now = self.read(ticks)?;
        self.sample = Some(now);
        Some(EventKind::PollCpu {
            cpu_ns: now.cpu_ns.saturating_sub(before.cpu_ns),
            runnable_ns: now.runnable_ns.saturating_sub(before.runnable_ns),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A poll that spins for 20 ms records about that much CPU; a short one records nothing.
    #[test]
    fn a_long_busy_poll_records_its_cpu_time() {
        let start = poll_started();
        assert_eq!(poll_ended(start, clock::ticks()), None, "a short poll");
        let start = poll_started();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {
            std::hint::black_box(0);
        }
        let Some(EventKind::PollCpu { cpu_ns, runnable_ns }) = poll_ended(start, clock::ticks())
        else {
            panic!("a 20 ms poll records its CPU time")
        };
        // On a busy machine part of the 20 ms may be spent waiting for a CPU.
        assert!(cpu_ns + runnable_ns >= 15_000_000, "{cpu_ns} + {runnable_ns}");
        assert!(cpu_ns <= 22_000_000, "{cpu_ns}");
    }
}
