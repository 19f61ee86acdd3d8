//! The panic hook: a panic flushes the trace before the previous hook runs, so that a panic
//! that ends the process still leaves every event recorded up to it in the file.

use crate::session;
use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the hook once per process; it chains whatever hook was set before it and does
/// nothing while no recorder is recording.
pub(crate) fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(session) = session::current_nonblocking() {
                session.flush(crate::recorder::FLUSH_TIMEOUT);
            }
            previous(info);
        }));
    });
}
