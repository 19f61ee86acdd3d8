//! `SIGUSR1` as a dump trigger (Unix only).
//!
//! The handler only sets a flag (through `signal-hook`, which is async-signal-safe and chains
//! a handler the program installed before); the watchdog thread polls the flag and asks for
//! the dump. The handler stays installed for the life of the process (handlers cannot be
//! removed safely), but while no flight recorder listens, a `SIGUSR1` does what it did before
//! hindsight came: if the program had not handled it, its default action (ending the process)
//! is carried out.

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    /// The flags of the installed handler: (arrived, nobody listens).
    static HANDLER: OnceLock<Option<(Arc<AtomicBool>, Arc<AtomicBool>)>> = OnceLock::new();
    /// Listeners (flight recordings) right now; at most one records at a time, but a session
    /// may end while the next one starts.
    static LISTENERS: Mutex<u32> = Mutex::new(0);

    fn install() -> Option<(Arc<AtomicBool>, Arc<AtomicBool>)> {
        let arrived = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(true));
        let signal = signal_hook::consts::SIGUSR1;
        // SAFETY: an all-zero sigaction is a valid out-parameter; a null new action only
        // queries the current one.
        let default = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
        };
        if default {
            // Keep the default action for when no flight recorder listens.
            signal_hook::flag::register_conditional_default(signal, idle.clone()).ok()?;
        }
        signal_hook::flag::register(signal, arrived.clone()).ok()?;
        Some((arrived, idle))
    }

    /// Starts listening; `false` if the handler could not be installed.
    pub(crate) fn listen() -> bool {
        let Some((arrived, idle)) = HANDLER.get_or_init(install) else { return false };
        let mut listeners = crate::session::lock(&LISTENERS);
        *listeners += 1;
        arrived.store(false, Ordering::SeqCst);
        idle.store(false, Ordering::SeqCst);
        true
    }

    /// Stops listening (after a successful [`listen`]).
    pub(crate) fn unlisten() {
        let Some(Some((_, idle))) = HANDLER.get() else { return };
        let mut listeners = crate::session::lock(&LISTENERS);
        *listeners = listeners.saturating_sub(1);
        if *listeners == 0 {
            idle.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the signal arrived since the last call.
    pub(crate) fn arrived() -> bool {
        matches!(HANDLER.get(), Some(Some((arrived, _))) if arrived.swap(false, Ordering::SeqCst))
    }
}

#[cfg(not(unix))]
mod imp {
    /// No signal here.
    pub(crate) fn listen() -> bool {
        false
    }

    /// Nothing to stop.
    pub(crate) fn unlisten() {}

    /// Never.
    pub(crate) fn arrived() -> bool {
        false
    }
}

pub(crate) use imp::{arrived, listen, unlisten};
