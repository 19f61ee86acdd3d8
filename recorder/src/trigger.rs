//! What makes the recorder write a dump, and the words its mark uses.
//!
//! Every trigger — the program's request, a panic, `SIGUSR1`, the watchdog — becomes a
//! [`DumpRequest`] with a label. The writer thread records the label as a `Mark` event (on
//! its own thread, `hindsight-writer`), drains every ring and writes the dump; in streaming
//! mode it writes the mark into the stream and flushes. Labels all start with
//! `hindsight: dump triggered by `, then the trigger:
//!
//! ```text
//! hindsight: dump triggered by request: <the reason given>
//! hindsight: dump triggered by panic: thread `worker-3` panicked at src/db.rs:88:14: <message>
//! hindsight: dump triggered by signal SIGUSR1
//! hindsight: dump triggered by watchdog: task `transfer` waited 5.0 s for lock `accounts`
//! hindsight: dump triggered by contention: thread `worker-1` waited 120 ms for lock `cache`
//! ```

use std::path::PathBuf;
use std::time::Duration;

/// Every trigger label starts with this.
pub const MARK_PREFIX: &str = "hindsight: dump triggered by ";

/// The longest panic message quoted in a label.
const MAX_MESSAGE: usize = 200;

/// A trigger, as the writer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpRequest {
    /// The mark's label.
    pub(crate) label: String,
    /// Where the trigger happened, if a source location says it: file, line, column.
    pub(crate) site: Option<(String, u32, u32)>,
}

impl DumpRequest {
    /// The program asked, at `site`.
    pub(crate) fn request(reason: &str, site: &std::panic::Location<'_>) -> DumpRequest {
        DumpRequest {
            label: format!("{MARK_PREFIX}request: {}", shorten(reason)),
            site: Some((site.file().to_owned(), site.line(), site.column())),
        }
    }

    /// The current thread panicked with `payload` at `location`.
    pub(crate) fn panic(
        payload: &(dyn std::any::Any + Send),
        location: Option<&std::panic::Location<'_>>,
    ) -> DumpRequest {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        let site = location.map(|l| (l.file().to_owned(), l.line(), l.column()));
        let at = site.as_ref().map_or(String::new(), |(f, l, c)| format!(" at {f}:{l}:{c}"));
        DumpRequest {
            label: format!(
                "{MARK_PREFIX}panic: thread `{name}` panicked{at}: {}",
                shorten(message)
            ),
            site,
        }
    }

    /// `SIGUSR1` arrived.
    pub(crate) fn signal() -> DumpRequest {
        DumpRequest { label: format!("{MARK_PREFIX}signal SIGUSR1"), site: None }
    }

    /// The watchdog saw `who` wait `waited` for `lock` (`contention`: over the contention
    /// threshold rather than the hang threshold); `others` more waits are over it too.
    pub(crate) fn wait(
        contention: bool,
        who: &str,
        waited: Duration,
        lock: &str,
        others: usize,
    ) -> DumpRequest {
        let trigger = if contention { "contention" } else { "watchdog" };
        let more = match others {
            0 => String::new(),
            1 => " (and 1 more wait)".to_owned(),
            n => format!(" (and {n} more waits)"),
        };
        DumpRequest {
            label: format!(
                "{MARK_PREFIX}{trigger}: {who} waited {} for {lock}{more}",
                format_duration(waited)
            ),
            site: None,
        }
    }
}

/// `120 ms`, `5.0 s`.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// `text` cut to [`MAX_MESSAGE`] bytes (at a character boundary) and to its first line.
fn shorten(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    let mut end = line.len().min(MAX_MESSAGE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Why a dump was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// No recorder is recording (or it is finishing).
    #[error("no hindsight recorder is recording")]
    NotRecording,
    /// The flight recorder already wrote as many dumps as it may.
    #[error("the flight recorder already wrote its maximum of {max} dumps")]
    Limit {
        /// [`FlightRecorder::max_dumps`](crate::FlightRecorder::max_dumps).
        max: u32,
    },
    /// The writer thread did not finish in time (it may still write the dump).
    #[error("the hindsight-writer thread did not finish the dump within {0:?}")]
    Timeout(Duration),
    /// The dump could not be written.
    #[error("cannot write the dump {path}: {reason}")]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_trigger_in_one_line() {
        let wait = DumpRequest::wait(
            false,
            "thread `worker-3`",
            Duration::from_millis(5000),
            "lock `accounts`",
            1,
        );
        assert_eq!(
            wait.label,
            "hindsight: dump triggered by watchdog: thread `worker-3` waited 5.0 s for lock \
             `accounts` (and 1 more wait)"
        );
        let wait = DumpRequest::wait(true, "task `t`", Duration::from_millis(120), "lock `c`", 0);
        assert_eq!(
            wait.label,
            "hindsight: dump triggered by contention: task `t` waited 120 ms for lock `c`"
        );
        let request = DumpRequest::request("first line\nsecond", std::panic::Location::caller());
        assert_eq!(request.label, "hindsight: dump triggered by request: first line");
        assert_eq!(request.site.map(|s| s.0), Some(file!().to_owned()));
        assert_eq!(shorten(&"é".repeat(300)).len(), MAX_MESSAGE);
    }
}
