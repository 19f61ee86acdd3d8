//! hindsight's analyzer: reads traces, replays them in a causally correct order, runs the
//! detectors and builds the report that the renderers and the TUI show.
#![warn(missing_docs)]

pub mod info;
pub mod rapid;
pub mod source;
