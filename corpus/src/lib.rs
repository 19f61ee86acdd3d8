//! Harnesses that run real programs nobody here wrote — unmodified, from crates.io — under
//! hindsight, each with a known answer (see the binaries in `src/bin/` and the tests in
//! `tests/`). What the harnesses share is here: their command lines and how they record.

use anyhow::{bail, Context, Result};
use hindsight_recorder::Recorder;
use std::future::Future;
use std::path::{Path, PathBuf};
use tracing_subscriber::prelude::*;

/// The command line of a harness with a known answer for a correct and a wrong use:
/// `TRACE correct|wrong COUNT SECONDS`.
#[derive(Debug, Clone)]
pub struct KnownAnswerArgs {
    /// Where to write the trace.
    pub path: PathBuf,
    /// `wrong`: run the deliberately wrong use.
    pub wrong: bool,
    /// How many callers, tasks or clients.
    pub count: u64,
    /// How long to run.
    pub seconds: f64,
}

impl KnownAnswerArgs {
    /// Parses the process's arguments; `usage` is the error for anything else.
    pub fn parse(usage: &str) -> Result<KnownAnswerArgs> {
        let mut args = std::env::args().skip(1);
        let path = PathBuf::from(args.next().context(usage.to_owned())?);
        let wrong = match args.next().context(usage.to_owned())?.as_str() {
            "correct" => false,
            "wrong" => true,
            _ => bail!(usage.to_owned()),
        };
        let count = args.next().context(usage.to_owned())?.parse().context(usage.to_owned())?;
        let seconds = args.next().context(usage.to_owned())?.parse().context(usage.to_owned())?;
        Ok(KnownAnswerArgs { path, wrong, count, seconds })
    }
}

/// Runs `body` on a tokio runtime of two workers, recorded by hindsight (through tokio's
/// instrumentation) into `path` as `program`, then prints `program: DONE; N events, B bytes
/// -> PATH`, where `done` says what `body` returned.
pub fn record<T>(
    program: &str,
    path: &Path,
    body: impl Future<Output = Result<T>>,
    done: impl FnOnce(&T) -> String,
) -> Result<T> {
    let (recorder, guard) = Recorder::builder().path(path).program(program).build()?;
    tracing_subscriber::registry().with(recorder).init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let output = runtime.block_on(body)?;
    drop(runtime);
    let summary = guard.finish()?;
    println!(
        "{program}: {}; {} events, {} bytes -> {}",
        done(&output),
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(output)
}
