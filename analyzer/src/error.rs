//! The errors of an analysis. Each displays as one line that names the file at fault.

use crate::source::SourceError;
use hindsight_recorder::format::ReadError;

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// No trace was given.
    #[error("no trace given")]
    NoTraces,
    /// A binary trace could not be read (not a trace, unsupported version, bad header).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A trace file could not be opened or read (either format; a malformed STD line).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A finding kind given to `--only` is not one hindsight knows.
    #[error("unknown finding kind `{0}` (known: {known})", known = crate::report::FindingKind::ALL_NAMES.join(", "))]
    UnknownKind(String),
}
