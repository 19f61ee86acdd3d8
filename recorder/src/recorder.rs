//! [`Recorder`], its builder and its guard: starting and ending a recording session.

use crate::flight::FlightSink;
use crate::format::Header;
use crate::layer::RecorderFilter;
use crate::mode::Mode;
use crate::session::{OverflowPolicy, Session, Watch};
use crate::subscriber::Subscriber;
use crate::trigger::{DumpError, DumpRequest};
use crate::writer::{self, Sink, StreamSink, WriterReport};
use std::fs::File;
use std::io::{self, BufWriter};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Default events per thread buffer: 32 Ki events, about 1.5 MiB per recording thread.
pub const DEFAULT_BUFFER_EVENTS: usize = 32 * 1024;
/// Default time between two rounds of the writer thread.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How long the guard and the panic hook wait for the writer to flush.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the guard and the panic hook wait for the writer to write a dump.
pub(crate) const DUMP_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Writing the trace failed during the recording; what came after was counted as
    /// dropped.
    #[error("{path}: writing the trace failed: {source}; {} events dropped", summary.dropped)]
    WriteFailed {
        /// The trace file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
        /// What was recorded, written and dropped.
        summary: RecordingSummary,
    },
}

/// What a finished recording wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingSummary {
    /// Events recorded and handed to the writer (gap markers not counted). In streaming
    /// mode these are in the file, unless writing failed; a flight recorder kept the newest
    /// of them.
    pub events: u64,
    /// Events lost: dropped because a thread's buffer was full (see [`OverflowPolicy`]),
    /// and all events after writing the trace failed.
    pub dropped: u64,
    /// Bytes written: the trace file, or all dumps together.
    pub bytes: u64,
    /// Dumps the flight recorder wrote.
    pub dumps: u64,
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
/// use hindsight_recorder::Recorder;
///
/// let (_, guard) = Recorder::builder().path("incident.trace").build()?;
/// tracing_subscriber::registry().with(Recorder::layer()).init();
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
/// (per-layer filtering), and leave the recorder with its own:
///
/// ```no_run
/// use hindsight_recorder::Recorder;
/// use tracing_subscriber::{fmt, prelude::*, EnvFilter};
///
/// let (_, _guard) = Recorder::builder().path("t.trace").build()?;
/// tracing_subscriber::registry()
///     .with(fmt::layer().with_filter(EnvFilter::from_default_env())) // only the log output
///     .with(Recorder::layer()) // sees what it reads, tokio's TRACE spans included
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

    /// The layer alone, without starting a recording, with its per-layer
    /// [filter](crate::layer::RecorderFilter): it records into whichever recording is active
    /// (one started by [`RecorderBuilder::build`] or [`init`](crate::init)), and does nothing
    /// while none is. The filter lets tracing skip every callsite the recorder does not read
    /// (unless another layer reads it), without hiding anything from the other layers; a
    /// bare [`Recorder`] (as [`RecorderBuilder::build`] returns it) records the same, but is
    /// called for every span and event.
    pub fn layer<S>() -> Filtered<Recorder, RecorderFilter, S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        Recorder { _private: () }.with_filter(RecorderFilter)
    }

    /// The recorder as a `tracing` subscriber of its own, for programs that want only
    /// hindsight: cheaper than the layer, but no other layer can be added to it (see
    /// [`Subscriber`]). [`init`](crate::init) installs one.
    pub fn subscriber() -> Subscriber {
        Subscriber::new()
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
    mode: Mode,
}

impl Default for RecorderBuilder {
    fn default() -> Self {
        RecorderBuilder {
            path: None,
            buffer_events: DEFAULT_BUFFER_EVENTS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            overflow: OverflowPolicy::Drop,
            program: None,
            mode: Mode::Streaming,
        }
    }
}

impl RecorderBuilder {
    /// The trace file to write (created or truncated), or in [flight-recorder
    /// mode](Mode::Ring) the name the dumps are numbered after: `DIR/NAME.trace` gives
    /// `DIR/NAME.1.trace`, `DIR/NAME.2.trace`, ... (the first numbers not taken yet; see
    /// [`mode`](Self::mode)). Required.
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

    /// How the recording keeps its events (default [`Mode::Streaming`]).
    ///
    /// With [`Mode::Ring`], the flight recorder, nothing is written until a trigger (see
    /// [`FlightRecorder`](crate::FlightRecorder)); then a *dump* is written: a complete
    /// trace of the events kept, with every definition and a `Mark` event naming the
    /// trigger. For the path `DIR/NAME.trace` (or `DIR/NAME`) the dumps are
    /// `DIR/NAME.1.trace`, `DIR/NAME.2.trace`, ...: each the first number whose file does not
    /// exist yet, written as `DIR/NAME.<n>.trace.tmp` and then published under its name at
    /// once, so dumps never overwrite each other, nor those of an earlier run. `DIR` must
    /// exist.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Creates the trace file (streaming mode), starts the writer thread (and, for a flight
    /// recorder, the `hindsight-watchdog` thread) and starts recording.
    pub fn build(self) -> Result<(Recorder, RecorderGuard), RecorderError> {
        let path = self.path.ok_or(RecorderError::NoPath)?;
        let ring = match &self.mode {
            Mode::Ring(config) => Some(config.clone()),
            Mode::Streaming => None,
        };
        let watch = Watch {
            waits: ring.as_ref().is_some_and(|r| r.watchdog.is_some() || r.contention.is_some()),
            panics: ring.as_ref().is_some_and(|r| r.on_panic),
        };
        let session =
            Arc::new(Session::new(self.buffer_events, self.overflow, self.flush_interval, watch));
        // Claim the process before touching the file, so a second recorder fails cleanly.
        Session::activate(&session).map_err(|_| RecorderError::AlreadyRecording)?;
        let started = (|| {
            let io_error = |source| RecorderError::Io { path: path.clone(), source };
            let header = header(self.program, &path);
            let sink: Box<dyn Sink> = match &ring {
                None => {
                    let file = File::create(&path).map_err(io_error)?;
                    let out = BufWriter::with_capacity(1 << 16, file);
                    Box::new(StreamSink::new(out, &header, path.clone()).map_err(io_error)?)
                }
                Some(config) => {
                    Box::new(FlightSink::new(path.clone(), header, config).map_err(io_error)?)
                }
            };
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
        let mut guard =
            RecorderGuard { session, path, writer: Some(writer), watchdog: None, signal: false };
        if let Some(config) = ring {
            guard.signal = config.on_signal && crate::signal::listen();
            match crate::watchdog::spawn(guard.session.clone(), &config, guard.signal) {
                Ok(watchdog) => guard.watchdog = Some(watchdog),
                Err(e) => writer::say(format_args!(
                    "could not start the hindsight-watchdog thread: {e}; \
                     hangs and signals will not trigger dumps"
                )),
            }
        }
        Ok((Recorder { _private: () }, guard))
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
    watchdog: Option<std::thread::JoinHandle<()>>,
    /// Listening to `SIGUSR1`.
    signal: bool,
}

impl RecorderGuard {
    /// Writes everything recorded so far (by every thread, also blocked ones) and waits for
    /// it, at most a few seconds. Returns whether it completed in time.
    pub fn flush(&self) -> bool {
        self.session.flush(FLUSH_TIMEOUT)
    }

    /// The trace file (streaming), or the path the dumps are numbered after (flight
    /// recorder).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a dump now, with a mark labelled `hindsight: dump triggered by request:
    /// <reason>` at the caller's location, and waits for it (a few seconds at most). Returns
    /// the dump's file. In streaming mode, writes the mark into the stream, flushes, and
    /// returns the trace file.
    #[track_caller]
    pub fn dump(&self, reason: &str) -> Result<PathBuf, DumpError> {
        if !self.session.is_current() {
            return Err(DumpError::NotRecording);
        }
        self.session.dump(DumpRequest::request(reason, Location::caller()), DUMP_TIMEOUT)
    }

    /// The dumps the flight recorder has written so far, oldest first.
    pub fn dumps(&self) -> Vec<PathBuf> {
        self.session.written_dumps()
    }

    /// How many definitions (of threads, tasks, locks, strings, ...) the recorder keeps in
    /// memory now: those of live entities and sites, and of retired ones that an output may
    /// still need. For tests of its memory bound.
    #[doc(hidden)]
    pub fn retained_definitions(&self) -> usize {
        crate::session::lock(&self.session.registry).len()
    }

    /// Stops recording, writes the rest and reports what was written.
    pub fn finish(mut self) -> Result<RecordingSummary, RecorderError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<RecordingSummary, RecorderError> {
        let Some(writer) = self.writer.take() else {
            return Ok(RecordingSummary { events: 0, dropped: 0, bytes: 0, dumps: 0 });
        };
        // The clean end: a trace without it ended mid-flight (see `EventKind::RecordingEnded`).
        crate::local::with(|ctx| ctx.record(crate::format::EventKind::RecordingEnded));
        // Publish this thread's held events while it still belongs to the session.
        crate::local::retire();
        self.session.deactivate();
        self.session.request_stop();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.thread().unpark();
            let _ = watchdog.join();
        }
        if std::mem::take(&mut self.signal) {
            crate::signal::unlisten();
        }
        let report = writer.join().map_err(|_| RecorderError::WriterPanicked)?;
        let summary = RecordingSummary {
            events: report.events,
            dropped: report.dropped,
            bytes: report.bytes,
            dumps: report.dumps,
        };
        match report.error {
            Some(source) => {
                Err(RecorderError::WriteFailed { path: self.path.clone(), source, summary })
            }
            None => Ok(summary),
        }
    }
}

impl Drop for RecorderGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
