//! What the process-per-run benchmarks share: starting a recording (or a console) as a
//! mode names it, running a child process of the bench binary, reading a process's CPU
//! time, and summarizing rounds.
#![allow(dead_code)] // each bench uses a different part

use hindsight_recorder::{FlightRecorder, Mode, Recorder, RecorderGuard};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;
use tracing_subscriber::prelude::*;

/// What a mode installs in the child. `plain`: nothing; `console`: console-subscriber as the
/// global subscriber; `streaming` / `ring` (a flight recorder, 64 MiB, nothing written but a
/// final dump): a recording, with, after a `+`, `tokio` (the recorder's `Subscriber` as the
/// global subscriber: what `init()` installs), `layer` (`Recorder::layer()` in a `Registry`)
/// or nothing (no subscriber: the wrappers and helpers record alone); `floor`: [`Floor`], a
/// subscriber of tokio's instrumentation that does nothing.
pub struct Installed {
    guard: Option<RecorderGuard>,
    trace: PathBuf,
    ring: bool,
}

/// Installs what `mode` names (see [`Installed`]).
pub fn install(mode: &str) -> Installed {
    let trace = std::env::temp_dir().join(format!("hindsight-bench-{}.trace", std::process::id()));
    let (base, front) = mode.split_once('+').unwrap_or((mode, ""));
    let ring = base == "ring";
    let guard = match base {
        "streaming" | "ring" => {
            let recording = if ring {
                Mode::Ring(FlightRecorder::new().on_signal(false))
            } else {
                Mode::Streaming
            };
            let (_, guard) =
                Recorder::builder().path(&trace).mode(recording).build().expect("recording");
            match front {
                "tokio" => tracing::subscriber::set_global_default(Recorder::subscriber())
                    .expect("the only subscriber"),
                "layer" => tracing_subscriber::registry().with(Recorder::layer()).init(),
                _ => {}
            }
            Some(guard)
        }
        "floor" => {
            tracing::subscriber::set_global_default(Floor(1.into())).expect("the only one");
            None
        }
        "console" => {
            let layer = console_subscriber::ConsoleLayer::builder()
                .server_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
                .spawn();
            tracing_subscriber::registry().with(layer).init();
            None
        }
        _ => None,
    };
    Installed { guard, trace, ring }
}

impl Installed {
    /// Ends the recording (a flight recorder dumps first); what it wrote, as `key=value`s.
    pub fn finish(self) -> String {
        let mut summary = String::new();
        if let Some(guard) = self.guard {
            let dump = Instant::now();
            if self.ring {
                let path = guard.dump("end of the benchmark").expect("a dump");
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                summary += &format!(" dump_bytes={bytes} dump_ms={}", dump.elapsed().as_millis());
                let _ = std::fs::remove_file(path);
            }
            let s = guard.finish().expect("the recording ends cleanly");
            let per_event = s.bytes as f64 / s.events.max(1) as f64;
            summary += &format!(
                " events={} dropped={} bytes={} bytes/event={per_event:.2}",
                s.events, s.dropped, s.bytes
            );
        }
        let _ = std::fs::remove_file(&self.trace);
        summary.trim().to_owned()
    }
}

/// Starts this bench binary again with `args`, its standard input and output piped.
pub fn child(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    child_of(&std::env::current_exe().expect("own path"), args)
}

/// Starts `exe` (this bench built another way) with `args`, its standard input and output
/// piped.
pub fn child_of(exe: &std::path::Path, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdout)
}

/// The value of `key=` on the next line of `out`.
pub fn read_value(out: &mut BufReader<ChildStdout>, key: &str) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("a line from the child");
    let prefix = format!("{key}=");
    line.trim().strip_prefix(&prefix).unwrap_or_else(|| panic!("{key}= in {line:?}")).to_owned()
}

/// CPU time (s) the process `pid` has used so far (user + system, all threads), from
/// `/proc/PID/stat`: what `getrusage` would report inside it.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) are space-separated.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime are the 14th and 15th fields, 12th and 13th after the name.
    (ticks(11) + ticks(12)) / per_second
}

/// The CPU time (s) of this process so far, from `getrusage`.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The median of `values`.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The first and third quartiles of `values` (nearest rank): how far the middle half of
/// the rounds spreads, which a shared machine's outliers do not move.
pub fn quartiles(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: usize| sorted[(sorted.len() * q / 4).min(sorted.len() - 1)];
    (at(1), at(3))
}

/// The machine's 1-minute load average.
pub fn load_now() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The smallest and largest of `values`.
pub fn range(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// The machine's load averages, as `uptime` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Tasks of the lock loop.
pub const LOOP_TASKS: usize = 8;
/// Lock/unlock rounds of each task of the lock loop.
pub const LOOP_ITERATIONS: usize = 2_000;

/// A lock and unlock of one of the lock loop's mutexes.
pub type LockUnlock<M> =
    fn(&M) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;

/// The lock loop: [`LOOP_TASKS`] tasks taking the shared mutexes `locks` in turn,
/// [`LOOP_ITERATIONS`] times each, yielding every 64.
pub async fn lock_loop<M: Send + Sync + 'static>(
    locks: std::sync::Arc<Vec<M>>,
    lock_unlock: LockUnlock<M>,
) {
    let tasks: Vec<_> = (0..LOOP_TASKS)
        .map(|task| {
            let locks = locks.clone();
            tokio::spawn(async move {
                for i in 0..LOOP_ITERATIONS {
                    lock_unlock(&locks[(task + i) % locks.len()]).await;
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task completes");
    }
}

/// A lock and unlock of a tokio mutex, for [`lock_loop`].
pub fn tokio_lock(
    m: &tokio::sync::Mutex<u64>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(async move { *m.lock().await += 1 })
}

/// A subscriber that enables tokio's instrumentation (its task, resource and waker spans and
/// events) and does nothing with it: the floor that any subscriber of tokio's
/// instrumentation pays, for the `floor` mode.
pub struct Floor(std::sync::atomic::AtomicU64);

impl tracing::Subscriber for Floor {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        let tokio = metadata.name().starts_with("runtime.")
            || metadata.target().starts_with("runtime::")
            || metadata.target() == "tokio::task::waker";
        if tokio {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id.max(1))
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
