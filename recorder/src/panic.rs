//! The panic hook: a panic flushes the trace before the previous hook runs, so that a panic
//! that ends the process still leaves every event recorded up to it in the file; a flight
//! recorder (with [`on_panic`](crate::FlightRecorder::on_panic)) writes a dump instead,
//! marked with the panicking thread, the location and the message. Before either, the panic
//! itself is recorded ([`EventKind::Panicked`]) for the thread or task that panicked, so that
//! replay knows which locks it held when it began to unwind.

use crate::format::EventKind;
use crate::local;
use crate::recorder::{DUMP_TIMEOUT, FLUSH_TIMEOUT};
use crate::session;
use crate::trigger::DumpRequest;
use std::panic::Location;
use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the hook once per process; it chains whatever hook was set before it and does
/// nothing while no recorder is recording.
pub(crate) fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The recorder's own threads must not wait for themselves.
            let own = matches!(
                std::thread::current().name(),
                Some("hindsight-writer" | "hindsight-watchdog")
            );
            if let (Some(session), false) = (session::current_nonblocking(), own) {
                record_panic(info.location());
                if session.watch.panics {
                    let request = DumpRequest::panic(info.payload(), info.location());
                    let _ = session.dump(request, DUMP_TIMEOUT);
                } else {
                    session.flush(FLUSH_TIMEOUT);
                }
            }
            previous(info);
        }));
    });
}

/// How many times a panic's record tries the registry before it gives up the panic's site.
const REGISTRY_TRIES: u32 = 1_000;

/// Records that the current thread or task panicked at `location`.
fn record_panic(location: Option<&Location<'_>>) {
    local::with(|ctx| {
        // A panic hook must not block: the registry is tried a bounded number of times (its
        // holders keep it for moments), so a thread that panicked while it held the registry
        // itself records the panic without its site rather than wait for ever.
        let site = location.and_then(|at| {
            let mut registry =
                (0..REGISTRY_TRIES).find_map(|_| match ctx.session().registry.try_lock() {
                    Ok(registry) => Some(registry),
                    Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        std::thread::yield_now();
                        None
                    }
                })?;
            Some(registry.site_by_value(at.file(), at.line(), at.column(), None))
        });
        ctx.record(EventKind::Panicked { site });
    });
}
