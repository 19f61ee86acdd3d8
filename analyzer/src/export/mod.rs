//! Exports of a replayed trace for other tools: the timeline as Chrome trace-event JSON
//! ([`chrome`]: Perfetto's UI, `chrome://tracing`, speedscope) and the lock-order graph as
//! Graphviz DOT ([`dot`]).
//!
//! Each exporter reads a [`Replay`](crate::replay::Replay) to its end and streams what it
//! writes, so its memory grows with the threads, tasks and locks of the trace, never with its
//! length. [`to_file`] gives an exporter an [`Output`] (a file, a device, a FIFO or standard
//! output) and leaves nothing half-written if it fails.

pub mod chrome;
pub mod dot;
mod slices;

use crate::error::AnalyzeError;
use crate::output::Output;
use std::io;
use std::path::Path;

/// Why an export failed. Each displays as one line that names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A trace could not be opened or read.
    #[error(transparent)]
    Trace(#[from] AnalyzeError),
    /// Writing the export failed (to a writer with no name; see [`Output`](Self::Output)).
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
    /// The output file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The output file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// Runs `export` on the [`Output`] at `path` (`-` is standard output; see
/// [`output`](crate::output) for how symlinks, devices and files are written) and commits it.
/// If the export fails, nothing it wrote replaces a file, and a write error names `path`.
pub fn to_file<T>(
    path: &Path,
    export: impl FnOnce(&mut Output) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let name = || path.display().to_string();
    let mut out =
        Output::create(path).map_err(|source| ExportError::Output { path: name(), source })?;
    let result = export(&mut out).and_then(|value| {
        out.commit()?;
        Ok(value)
    });
    result.map_err(|error| match error {
        ExportError::Io(source) => ExportError::Output { path: name(), source },
        other => other,
    })
}
