//! hindsight's recorder: the event model and trace file format ([`format`](mod@format)), and — with the
//! default `record` feature — what runs inside a program to capture its locks, tasks and
//! accesses.
//!
//! # Recording
//!
//! - [`init`]: one line in `main` records as `HINDSIGHT_TRACE` and `HINDSIGHT_MODE` say, when
//!   set, with the recorder's own [`Subscriber`](subscriber::Subscriber) as the global
//!   subscriber (the cheapest way to record tokio's instrumentation).
//! - [`Recorder`]: a `tracing` Layer with a builder ([path](RecorderBuilder::path), [buffer
//!   sizes](RecorderBuilder::buffer_events), [overflow policy](OverflowPolicy),
//!   [mode](RecorderBuilder::mode)) and a guard that finishes the trace when dropped. It
//!   records tokio's own instrumentation (with `--cfg tokio_unstable`) and user-defined locks
//!   (see [`layer`]); [`Recorder::layer()`] puts it next to other layers (fmt,
//!   console-subscriber), [`Recorder::subscriber()`] records alone, for less.
//! - Two [modes](Mode): streaming every event to a file, or a [flight
//!   recorder](FlightRecorder) that keeps the last N MiB in memory and writes a complete,
//!   numbered trace (a *dump*) when triggered: by [`dump()`], a panic, `SIGUSR1`, or its
//!   watchdog seeing a lock wait last longer than a threshold (a hang).
//! - [`sync`]: instrumented `Mutex` and `RwLock`, blocking (std API) and async (tokio API).
//! - [`task::spawn`] and [`thread::spawn`]: spawn helpers that record the life of what they
//!   spawn, joins included.
//! - [`annotate`] and [`shared::Shared`]: reads and writes of shared state, and
//!   release/acquire pairs of atomics, for the race detector.
//! - [`channel`]: tokio's `mpsc` and `oneshot` and std's `mpsc` channels that record each
//!   message sent and received.
//!
//! # How recording works
//!
//! Each recording thread appends fixed-size events to its own preallocated ring buffer: no
//! allocation, no lock, no system call per event. A writer thread named `hindsight-writer`
//! drains every ring each flush interval (50 ms by default), on [`RecorderGuard::flush`], when
//! the guard is dropped, and when a thread panics (a panic hook that chains the previous one),
//! and appends chunks to the trace. Because the writer reads the rings of *all* threads, a
//! thread that is blocked forever — in a deadlock — still gets its last events, above all the
//! lock request it is stuck on, into the file.
//!
//! Memory is bounded: [`buffer_events`](RecorderBuilder::buffer_events) events per thread,
//! plus, for a flight recorder, its [`max_bytes`](FlightRecorder::max_bytes) of encoded
//! events, plus the definitions (names, sites) of what is alive: those of threads, tasks,
//! locks, channels and variables that have ended are forgotten once written or, for a flight
//! recorder, once its memory holds no event that uses them.
//! When a thread's ring is full, the default [`OverflowPolicy::Drop`] drops the event, counts
//! it and writes the count as a [`Gap`](format::EventKind::Gap) event where the loss happened;
//! [`OverflowPolicy::Block`] makes the thread wait for the writer instead.
//!
//! Ordering is kept by per-lock sequence numbers taken while each lock is held (see
//! [`format`](mod@format)). The recorder never panics into the host program: its own locks are never
//! recorded or re-entered, and a failing disk only ends the recording.
#![warn(missing_docs)]

pub mod format;
pub mod paths;

#[cfg(feature = "record")]
pub mod annotate;
#[cfg(feature = "record")]
pub mod channel;
#[cfg(feature = "record")]
mod clock;
#[cfg(feature = "record")]
mod defined;
#[cfg(feature = "record")]
mod flight;
#[cfg(feature = "record")]
mod init;
#[cfg(feature = "record")]
pub mod layer;
#[cfg(feature = "record")]
mod local;
#[cfg(feature = "record")]
mod mode;
#[cfg(feature = "record")]
mod panic;
#[cfg(feature = "record")]
mod poll_cpu;
#[cfg(feature = "record")]
mod recorder;
#[cfg(feature = "record")]
mod registry;
#[cfg(feature = "record")]
mod ring;
#[cfg(feature = "record")]
mod session;
#[cfg(feature = "record")]
pub mod shared;
#[cfg(feature = "record")]
mod signal;
#[cfg(feature = "record")]
pub mod subscriber;
#[cfg(feature = "record")]
pub mod sync;
#[cfg(feature = "record")]
pub mod task;
#[cfg(feature = "record")]
pub mod thread;
#[cfg(feature = "record")]
mod trigger;
#[cfg(feature = "record")]
mod waits;
#[cfg(feature = "record")]
mod watchdog;
#[cfg(feature = "record")]
mod writer;

#[cfg(feature = "record")]
pub use init::{init, TRACE_VAR};
#[cfg(feature = "record")]
pub use mode::{
    FlightRecorder, Mode, ModeError, CONTENTION_COOLDOWN, DEFAULT_MAX_DUMPS, DEFAULT_RING_BYTES,
    DEFAULT_WATCHDOG, MODE_VAR,
};
#[cfg(feature = "record")]
pub use recorder::{
    Recorder, RecorderBuilder, RecorderError, RecorderGuard, RecordingSummary,
    DEFAULT_BUFFER_EVENTS, DEFAULT_FLUSH_INTERVAL,
};
#[cfg(feature = "record")]
pub use session::OverflowPolicy;
#[cfg(feature = "record")]
pub use trigger::{DumpError, MARK_PREFIX};

/// Writes everything recorded so far, if a recorder is recording, and waits for it (a few
/// seconds at most). Returns whether everything was written in time (`true` when nothing
/// records).
#[cfg(feature = "record")]
pub fn flush() -> bool {
    match session::current() {
        Some(session) => session.flush(recorder::FLUSH_TIMEOUT),
        None => true,
    }
}

/// Writes a dump now if a recorder is recording, like [`RecorderGuard::dump`] (for code that
/// has no access to the guard, such as an admin endpoint): a flight recorder writes a
/// numbered trace marked `hindsight: dump triggered by request: <reason>` and returns its
/// file; a streaming recorder writes the mark into its stream, flushes and returns the trace
/// file.
#[cfg(feature = "record")]
#[track_caller]
pub fn dump(reason: &str) -> Result<std::path::PathBuf, DumpError> {
    let request = trigger::DumpRequest::request(reason, std::panic::Location::caller());
    match session::current() {
        Some(session) => session.dump(request, recorder::DUMP_TIMEOUT),
        None => Err(DumpError::NotRecording),
    }
}
