//! [`Recorder`], its builder and its guard: starting and ending a recording session.

use crate::format::Header;
use crate::session::{OverflowPolicy, Session};
use crate::writer::{self, StreamSink, WriterReport};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default events per thread buffer: 32 Ki events, about 1.5 MiB per recording thread.
pub const DEFAULT_BUFFER_EVENTS: usize = 32 * 1024;
/// Default time between two rounds of the writer thread.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How long the guard and the panic hook wait for the writer to flush.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why recording could not start or end cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// [`RecorderBuilder::path`] was not given.
    #[error("no trace path given to the recorder")]
    NoPath,
    /// Another recorder is recording in this process.
    #[error("another hindsight recorder is already recording in this process")]
    AlreadyRecording,
    /// The trace file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The trace file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("could not start the hindsight-writer thread: {0}")]
    WriterThread(io::Error),
    /// The writer thread died.
    #[error("the hindsight-writer thread panicked; the trace may be incomplete")]
    WriterPanicked,
}

/// What a finished recording wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingSummary {
    /// Events written (gap markers included).
    pub events: u64,
    /// Events lost because a thread's buffer was full (see [`OverflowPolicy`]).
    pub dropped: u64,
    /// Size of the trace file in bytes.
    pub bytes: u64,
}

/// The recorder: a [`tracing_subscriber::Layer`] that records tokio's own instrumentation and
/// the [tracing convention for user-defined locks](crate::layer#user-defined-locks), while
/// the recorder's [wrappers](crate::sync) and [helpers](crate::task) record directly.
///
/// Recording starts when the recorder is built and ends when its [`RecorderGuard`] is dropped
/// (or [finished](RecorderGuard::finish)); at most one recorder records in a process at a
/// time. Install the layer in a [`Registry`](tracing_subscriber::Registry) next to any other
/// layers:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
///
/// let (recorder, guard) = hindsight_recorder::Recorder::builder()
///     .path("incident.trace")
///     .build()?;
/// tracing_subscriber::registry().with(recorder).init();
/// // ... run the program; the trace is complete when `guard` is dropped.
/// drop(guard);
/// # Ok::<(), hindsight_recorder::RecorderError>(())
/// ```
///
/// # Filters
///
/// tokio's task and resource instrumentation is emitted at `TRACE` level (and only with
/// `RUSTFLAGS="--cfg tokio_unstable"` and tokio's `tracing` feature). A *global* filter —
/// an [`EnvFilter`](tracing_subscriber::EnvFilter) added with `.with(filter)` as a layer of
/// its own, or a `max_level_*` feature of `tracing` — disables those callsites for every
/// layer, the recorder included. Attach such filters to the layers they are meant for instead
/// (per-layer filtering), and leave the recorder unfiltered:
///
/// ```no_run
/// use tracing_subscriber::{fmt, prelude::*, EnvFilter};
///
/// let (recorder, _guard) = hindsight_recorder::Recorder::builder().path("t.trace").build()?;
/// tracing_subscriber::registry()
///     .with(fmt::layer().with_filter(EnvFilter::from_default_env())) // only the log output
///     .with(recorder) // sees everything, tokio's TRACE spans included
///     .init();
/// # Ok::<(), hindsight_recorder::RecorderError>(())
/// ```
///
/// The layer records into whichever recording is active, so a layer installed once (say, as
/// the global default) serves every recording the process makes, one after the other.
#[derive(Debug, Clone)]
pub struct Recorder {
    _private: (),
}

impl Recorder {
    /// Configures a recorder.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// The layer alone, without starting a recording: it records into whichever recording
    /// is active (one started by [`RecorderBuilder::build`] or [`init`](crate::init)), and
    /// does nothing while none is.
    pub fn layer() -> Recorder {
        Recorder { _private: () }
    }
}

/// Configures and starts a [`Recorder`].
#[derive(Debug, Clone)]
pub struct RecorderBuilder {
    path: Option<PathBuf>,
    buffer_events: usize,
    flush_interval: Duration,
    overflow: OverflowPolicy,
    program: Option<String>,
}

impl Default for RecorderBuilder {
    fn default() -> Self {
        RecorderBuilder {
            path: None,
            buffer_events: DEFAULT_BUFFER_EVENTS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            overflow: OverflowPolicy::Drop,
            program: None,
        }
    }
}

impl RecorderBuilder {
    /// The trace file to write (created or truncated). Required.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_owned());
        self
    }

    /// Events each thread's buffer holds (rounded up to a power of two, at least 64; default
    /// [`DEFAULT_BUFFER_EVENTS`]). Each event takes 48 bytes; the buffer is allocated when the
    /// thread records its first event. Memory is bounded by this times the recording threads.
    pub fn buffer_events(mut self, events: usize) -> Self {
        self.buffer_events = events;
        self
    }

    /// Time between two rounds of the writer thread (default [`DEFAULT_FLUSH_INTERVAL`]).
    /// The writer also runs early when a buffer is half full or a flush is asked for.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// What a thread does when its buffer is full (default [`OverflowPolicy::Drop`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// The program name written in the trace header (default: the executable's name).
    pub fn program(mut self, name: impl Into<String>) -> Self {
        self.program = Some(name.into());
        self
    }

    /// Creates the trace file, starts the writer thread and starts recording.
    pub fn build(self) -> Result<(Recorder, RecorderGuard), RecorderError> {
        let path = self.path.ok_or(RecorderError::NoPath)?;
        let session =
            Arc::new(Session::new(self.buffer_events, self.overflow, self.flush_interval));
        // Claim the process before touching the file, so a second recorder fails cleanly.
        Session::activate(&session).map_err(|_| RecorderError::AlreadyRecording)?;
        let started = (|| {
            let io_error = |source| RecorderError::Io { path: path.clone(), source };
            let file = File::create(&path).map_err(io_error)?;
            let header = header(self.program, &path);
            let sink = StreamSink::new(BufWriter::with_capacity(1 << 16, file), &header)
                .map_err(io_error)?;
            writer::spawn(session.clone(), sink, self.flush_interval)
                .map_err(RecorderError::WriterThread)
        })();
        let writer = match started {
            Ok(writer) => writer,
            Err(e) => {
                session.deactivate();
                return Err(e);
            }
        };
        crate::panic::install_hook();
        let recorder = Recorder::layer();
        Ok((recorder, RecorderGuard { session, path, writer: Some(writer) }))
    }
}

/// The trace header of a session starting now.
fn header(program: Option<String>, path: &Path) -> Header {
    let program = program
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| path.display().to_string());
    let start_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Header {
        program,
        pid: std::process::id(),
        host: host_name(),
        start_unix_ns,
        recorder_version: env!("CARGO_PKG_VERSION").to_owned(),
        clock: crate::clock::source_name().to_owned(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Keeps a recording going; dropping it stops recording and writes everything recorded so
/// far (the trace is complete once the drop returns). Use [`finish`](Self::finish) to learn
/// whether writing succeeded.
#[must_use = "recording stops (and the trace is finished) when the guard is dropped"]
#[derive(Debug)]
pub struct RecorderGuard {
    session: Arc<Session>,
    path: PathBuf,
    writer: Option<std::thread::JoinHandle<WriterReport>>,
}

impl RecorderGuard {
    /// Writes everything recorded so far (by every thread, also blocked ones) and waits for
    /// it, at most a few seconds. Returns whether it completed in time.
    pub fn flush(&self) -> bool {
        self.session.flush(FLUSH_TIMEOUT)
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops recording, writes the rest and reports what was written.
    pub fn finish(mut self) -> Result<RecordingSummary, RecorderError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<RecordingSummary, RecorderError> {
        let Some(writer) = self.writer.take() else {
            return Ok(RecordingSummary { events: 0, dropped: 0, bytes: 0 });
        };
        // Publish this thread's held events while it still belongs to the session.
        crate::local::retire();
        self.session.deactivate();
        self.session.request_stop();
        let report = writer.join().map_err(|_| RecorderError::WriterPanicked)?;
        if let Some(source) = report.error {
            return Err(RecorderError::Io { path: self.path.clone(), source });
        }
        Ok(RecordingSummary { events: report.events, dropped: report.dropped, bytes: report.bytes })
    }
}

impl Drop for RecorderGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
