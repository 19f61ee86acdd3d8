//! What the UI shows, computed once at start-up: the analyzer's report and the timeline.
//!
//! The two come from two passes over the trace files, run on two threads at once (the
//! analyzer's `analyze` runs its own replay; the timeline needs another one until the analyzer
//! lets other visitors ride along on its pass).

use hindsight_analyzer::report::{Detail, Finding, FindingKind, Report};
use hindsight_analyzer::timeline::{LaneKind, Timeline};
use hindsight_analyzer::{AnalyzeError, AnalyzeOptions};
use std::path::{Path, PathBuf};

/// Why the UI could not start or went wrong. One line, naming the file where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A trace could not be read.
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    /// The terminal could not be set up or drawn.
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// A start-up thread panicked (a bug).
    #[error("the analysis stopped unexpectedly (this is a bug)")]
    Panicked,
}

/// A moment to show in the timeline: a time, and the lane to select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// The time, on the trace's time axis.
    pub time_ns: u64,
    /// The lane (thread or task, by its display name), if one is involved.
    pub lane: Option<(LaneKind, String)>,
}

/// The analysed trace; see the module docs.
#[derive(Debug, Clone)]
pub struct Data {
    /// The analysis.
    pub report: Report,
    /// The timeline and the per-lock and per-lane statistics.
    pub timeline: Timeline,
    /// The names of the files shown (without their directories).
    pub files: Vec<String>,
}

impl Data {
    /// Analyses the files at `paths` with `options` and builds their timeline, on two threads.
    pub fn load<P: AsRef<Path>>(paths: &[P], options: &AnalyzeOptions) -> Result<Data, Error> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let (report, timeline) = std::thread::scope(|scope| {
            let timeline = scope.spawn(|| Timeline::from_paths(&paths));
            let report = hindsight_analyzer::analyze_paths(&paths, options);
            (report, timeline.join())
        });
        let report = report?;
        let timeline = timeline.map_err(|_| Error::Panicked)??;
        let files = paths.iter().map(|p| file_name(p)).collect();
        Ok(Data { report, timeline, files })
    }

    /// Analyses traces held in memory, as `(name, bytes)` pairs.
    pub fn from_bytes(traces: Vec<(String, Vec<u8>)>) -> Result<Data, Error> {
        let files = traces.iter().map(|(name, _)| file_name(Path::new(name))).collect();
        let timeline = Timeline::from_bytes(traces.clone())?;
        let report = hindsight_analyzer::analyze_bytes(traces, &AnalyzeOptions::default())?;
        Ok(Data { report, timeline, files })
    }

    /// The index of the lane of kind `kind` named `name`.
    pub fn lane_named(&self, kind: LaneKind, name: &str) -> Option<usize> {
        self.timeline.lanes().iter().position(|l| l.kind == kind && l.name == name)
    }
}

/// Where a finding happened, for the timeline: for a lock-order cycle, the first acquisition
/// of the cycle (the earliest hold among its edges); for a deadlock, the earliest wait; for a
/// stale lock, the acquisition; else the finding's time and first actor.
pub fn moment_of(finding: &Finding) -> Moment {
    let thread_or_task = |thread: &str, task: &Option<String>| match task {
        Some(task) => (LaneKind::Task, task.clone()),
        None => (LaneKind::Thread, thread.to_owned()),
    };
    match &finding.detail {
        Detail::LockOrderCycle(cycle) if !cycle.edges.is_empty() => {
            let first = cycle.edges.iter().min_by_key(|e| (e.held_since_ns, e.time_ns));
            if let Some(edge) = first {
                return Moment {
                    time_ns: edge.held_since_ns,
                    lane: Some(thread_or_task(&edge.thread, &edge.task)),
                };
            }
        }
        Detail::Deadlock(deadlock) => {
            if let Some(actor) = deadlock.cycle.iter().min_by_key(|a| a.waiting_since_ns) {
                return Moment {
                    time_ns: actor.waiting_since_ns,
                    lane: Some(thread_or_task(&actor.thread, &actor.task)),
                };
            }
        }
        Detail::StaleLock(stale) => {
            let lane = finding
                .tasks
                .first()
                .map(|t| (LaneKind::Task, t.clone()))
                .or_else(|| finding.threads.first().map(|t| (LaneKind::Thread, t.clone())));
            return Moment { time_ns: stale.held_since_ns, lane };
        }
        _ => {}
    }
    let lane = finding
        .tasks
        .first()
        .map(|t| (LaneKind::Task, t.clone()))
        .or_else(|| finding.threads.first().map(|t| (LaneKind::Thread, t.clone())));
    Moment { time_ns: finding.time_ns, lane }
}

/// Whether a finding is a lock-order cycle with its edges (what the Lock graph view lists).
pub fn is_cycle(finding: &Finding) -> bool {
    finding.kind == FindingKind::LockOrderCycle
        && matches!(&finding.detail, Detail::LockOrderCycle(c) if !c.edges.is_empty())
}

/// `text` as it may reach a terminal, control and bidirectional formatting characters escaped
/// (the text report's function: one definition of what is safe to print). Every string from a
/// trace goes through this before it becomes a span (see `view::styled`).
pub use hindsight_analyzer::report::text::terminal_safe as sanitize;

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::TraceBuilder;

    /// ```text
    /// indexer:   lock(sqlite) lock(git) unlock(git) unlock(sqlite)
    /// committer:                                                   lock(git) lock(sqlite) ...
    /// ```
    fn inversion() -> Data {
        let mut b = TraceBuilder::new("inversion");
        let indexer = b.thread("indexer");
        let committer = b.thread("committer");
        let (sqlite, git) = (b.mutex("sqlite"), b.mutex("git"));
        let (s1, s2) = (b.site("src/index.rs", 10, 5), b.site("src/commit.rs", 20, 9));
        b.advance(1_000);
        b.on(indexer).acquire(sqlite, s1).acquire(git, s1).release(git).release(sqlite);
        b.advance(5_000);
        b.on(committer).acquire(git, s2).acquire(sqlite, s2).release(sqlite).release(git);
        Data::from_bytes(vec![("dir/inversion.trace".to_owned(), b.build())])
            .expect("a built trace loads")
    }

    #[test]
    fn a_cycle_is_shown_at_its_first_acquisition_in_its_lane() {
        let data = inversion();
        assert_eq!(data.files, vec!["inversion.trace".to_owned()]);
        let cycle = data.report.findings.iter().find(|f| is_cycle(f)).expect("the cycle");
        let moment = moment_of(cycle);
        assert_eq!(moment.time_ns, 1_000, "indexer takes `sqlite` first, at t=1000");
        assert_eq!(moment.lane, Some((LaneKind::Thread, "indexer".to_owned())));
        let lane = data.lane_named(LaneKind::Thread, "indexer").expect("indexer's lane");
        assert_eq!(data.timeline.lanes()[lane].locks_taken.len(), 2);
        assert_eq!(
            data.timeline.events_near(moment.time_ns, 1)[0].text,
            "acquired `sqlite` at src/index.rs:10:5"
        );
    }

    #[test]
    fn the_timeline_names_lanes_and_locks_as_the_report_does() {
        let data = inversion();
        let names: Vec<&str> = data.report.locks.iter().map(|l| l.name.as_str()).collect();
        let timeline: Vec<&str> = data.timeline.locks().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, timeline);
        for thread in &data.report.trace.threads {
            assert!(data.lane_named(LaneKind::Thread, &thread.name).is_some(), "{}", thread.name);
        }
    }
}
