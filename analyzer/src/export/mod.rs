//! Exports of a replayed trace for other tools: the timeline as Chrome trace-event JSON
//! ([`chrome`]: Perfetto's UI, `chrome://tracing`, speedscope) and the lock-order graph as
//! Graphviz DOT ([`dot`]).
//!
//! Each exporter reads a [`Replay`](crate::replay::Replay) to its end and streams what it
//! writes, so its memory grows with the threads, tasks and locks of the trace, never with its
//! length. [`to_file`] gives an exporter a buffered file and removes what it wrote if it fails.

pub mod chrome;
pub mod dot;
mod slices;

use crate::error::AnalyzeError;
use std::fs::File;
use std::io::{self, BufWriter, Write};
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

/// Runs `export` on a buffered writer to a new file at `path` (replacing any file there) and
/// flushes it. If the export fails, the partial file is removed, and a write error names
/// `path`.
pub fn to_file<T>(
    path: &Path,
    export: impl FnOnce(&mut BufWriter<File>) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let name = || path.display().to_string();
    let file = File::create(path).map_err(|source| ExportError::Output { path: name(), source })?;
    let mut out = BufWriter::new(file);
    let result = export(&mut out).and_then(|value| {
        out.flush()?;
        Ok(value)
    });
    if result.is_err() {
        drop(out);
        // Best effort: the error being reported matters more than a leftover file.
        let _ = std::fs::remove_file(path);
    }
    result.map_err(|error| match error {
        ExportError::Io(source) => ExportError::Output { path: name(), source },
        other => other,
    })
}
