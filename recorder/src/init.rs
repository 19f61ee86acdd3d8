//! [`init`]: recording switched on by the environment.

use crate::mode::{Mode, MODE_VAR};
use crate::recorder::{Recorder, RecorderGuard};
use crate::writer::say;

/// The variable naming the trace file.
pub const TRACE_VAR: &str = "HINDSIGHT_TRACE";

/// Records as `HINDSIGHT_TRACE` and `HINDSIGHT_MODE` say, if `HINDSIGHT_TRACE` is set; does
/// nothing otherwise.
///
/// - `HINDSIGHT_TRACE=PATH`: the trace file (streaming), or the name the flight recorder's
///   dumps are numbered after (`PATH` = `DIR/NAME.trace` gives `DIR/NAME.1.trace`, ...).
/// - `HINDSIGHT_MODE`: `streaming` (the default when unset or empty) or `ring` with its
///   options, such as `ring:size=64MiB,age=30s` (the grammar is in [`Mode`]'s module docs).
///
/// When recording, this builds a [`Recorder`] with the default settings and that mode, and
/// installs [`Recorder::subscriber()`] as the global default subscriber (the cheapest way to
/// record tokio's instrumentation; the program's own spans and events are then seen by no
/// one). If a global subscriber is already installed, the recorder's wrappers and helpers still
/// record, but tokio's instrumentation is not seen: install the recorder yourself next to
/// your layers then (see [`Recorder`]). Keep the guard alive for as long as the program
/// should be recorded:
///
/// ```no_run
/// let _hindsight = hindsight_recorder::init(); // first line of `main`
/// // ... the program ...
/// ```
///
/// Problems (a malformed `HINDSIGHT_MODE`, a file that cannot be created, another recorder
/// recording) are reported in one line on standard error, and the program runs unrecorded.
pub fn init() -> Option<RecorderGuard> {
    let path = std::env::var_os(TRACE_VAR).filter(|path| !path.is_empty())?;
    let mode = match std::env::var(MODE_VAR) {
        Ok(value) if !value.trim().is_empty() => match value.parse::<Mode>() {
            Ok(mode) => mode,
            Err(e) => {
                say(format_args!("not recording: {MODE_VAR}={e}"));
                return None;
            }
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            say(format_args!("not recording: {MODE_VAR} is not valid UTF-8"));
            return None;
        }
        _ => Mode::Streaming,
    };
    match Recorder::builder().path(&path).mode(mode).build() {
        Ok((_layer, guard)) => {
            // An already installed global subscriber keeps its place.
            let _ = tracing::subscriber::set_global_default(Recorder::subscriber());
            Some(guard)
        }
        Err(e) => {
            say(format_args!("not recording: {e}"));
            None
        }
    }
}
