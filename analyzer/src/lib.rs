//! hindsight's analyzer: reads traces, replays them in a causally correct order, runs the
//! detectors and builds the report that the renderers and the TUI show.
#![warn(missing_docs)]

pub mod analyze;
pub mod causality;
pub mod detect;
pub mod error;
pub mod export;
pub mod info;
pub mod lock_semantics;
pub mod output;
pub mod predict;
mod prefetch;
pub mod progress;
pub mod rapid;
pub mod replay;
pub mod report;
pub mod source;
pub mod timeline;
pub mod trace;

pub use analyze::{analyze, analyze_bytes, analyze_paths, AnalyzeOptions};
pub use error::AnalyzeError;
pub use report::{Finding, FindingKind, Report, Severity};
