//! A long poll's CPU time and run-queue delay ([`EventKind::PollCpu`]), so that the analyzer
//! can tell a poll that burned the CPU or blocked off it from one that was runnable but not
//! running because the machine was busy.
//!
//! Linux keeps both per thread in `/proc/thread-self/schedstat` (time on a CPU, time waiting
//! on a run queue, in nanoseconds). Reading it is a system call, too dear for every poll, so
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
        let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
        let (cpu_ns, runnable_ns) = (fields.next()??, fields.next()??);
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
    let _ = CLOCK.try_with(|clock| {
        let Ok(mut clock) = clock.try_borrow_mut() else { return };
        let fresh =
            clock.sample.is_some_and(|s| ticks.saturating_sub(s.ticks) < millisecond_ticks());
        if !fresh {
            clock.sample = clock.read(ticks);
        }
    });
    ticks
}

/// The poll that started at `started` (see [`poll_started`]) ends now: its CPU time event, if
/// it was long and the counters can be read.
pub(crate) fn poll_ended(started: u64) -> Option<EventKind> {
    let ticks = clock::ticks();
    if ticks.saturating_sub(started) < millisecond_ticks() {
        return None;
    }
    CLOCK
        .try_with(|clock| {
            let mut clock = clock.try_borrow_mut().ok()?;
            let before = clock.sample.filter(|s| s.ticks <= started)?;
            let now = clock.read(ticks)?;
            clock.sample = Some(now);
            Some(EventKind::PollCpu {
                cpu_ns: now.cpu_ns.saturating_sub(before.cpu_ns),
                runnable_ns: now.runnable_ns.saturating_sub(before.runnable_ns),
            })
        })
        .ok()
        .flatten()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A poll that spins for 20 ms records about that much CPU; a short one records nothing.
    #[test]
    fn a_long_busy_poll_records_its_cpu_time() {
        let start = poll_started();
        assert_eq!(poll_ended(start), None, "a short poll");
        let start = poll_started();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {
            std::hint::black_box(0);
        }
        let Some(EventKind::PollCpu { cpu_ns, runnable_ns }) = poll_ended(start) else {
            panic!("a 20 ms poll records its CPU time")
        };
        // On a busy machine part of the 20 ms may be spent waiting for a CPU.
        assert!(cpu_ns + runnable_ns >= 15_000_000, "{cpu_ns} + {runnable_ns}");
        assert!(cpu_ns <= 22_000_000, "{cpu_ns}");
    }
}
