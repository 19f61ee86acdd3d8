//! [`init`]: recording switched on by the environment.

use crate::recorder::{Recorder, RecorderGuard};
use tracing_subscriber::prelude::*;

/// The variable naming the trace file.
pub const TRACE_VAR: &str = "HINDSIGHT_TRACE";

/// Records to the file named by `HINDSIGHT_TRACE`, if it is set; does nothing otherwise.
///
/// When set, this builds a [`Recorder`] with the default settings and installs it as the
/// global default subscriber (a [`Registry`](tracing_subscriber::Registry) with the recorder
/// as its only layer). If a global subscriber is already installed, the recorder's wrappers
/// and helpers still record, but tokio's instrumentation is not seen: install the recorder
/// yourself next to your layers then (see [`Recorder`]). Keep the guard alive for as long as
/// the program should be recorded:
///
/// ```no_run
/// let _hindsight = hindsight_recorder::init(); // first line of `main`
/// // ... the program ...
/// ```
///
/// Problems (the file cannot be created, another recorder is recording) are reported on
/// standard error, and the program runs unrecorded. `HINDSIGHT_MODE` is reserved for the
/// choice between streaming to the file (today's only mode) and a flight recorder.
pub fn init() -> Option<RecorderGuard> {
    let path = std::env::var_os(TRACE_VAR).filter(|path| !path.is_empty())?;
    match Recorder::builder().path(&path).build() {
        Ok((recorder, guard)) => {
            // An already installed global subscriber keeps its place.
            let _ = tracing_subscriber::registry().with(recorder).try_init();
            Some(guard)
        }
        Err(e) => {
            eprintln!("hindsight: not recording: {e}");
            None
        }
    }
}
