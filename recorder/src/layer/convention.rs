//! The tracing convention for user-defined locks (see the [module docs](super)).

use super::fields::ConventionFields;
use crate::format::{EventKind, LockMode};
use crate::local;
use crate::registry::{NamedUse, SiteSource};
use crate::session;
use crate::waits::Wait;
use std::cell::RefCell;
use tracing::Metadata;

/// The target of lock convention events.
pub(crate) const TARGET: &str = "hindsight::lock";

/// Waits of this thread for user-defined locks, watched until the acquisition or failure.
const MAX_WAITS: usize = 8;

thread_local! {
    static WAITS: RefCell<Vec<(crate::format::LockId, Wait)>> = const { RefCell::new(Vec::new()) };
}

/// Ends this thread's wait for `lock` (if one is watched); starts `wait` (if any).
fn track(lock: crate::format::LockId, wait: Option<Wait>) {
    let _ = WAITS.try_with(|waits| {
        let Ok(mut waits) = waits.try_borrow_mut() else { return };
        waits.retain(|(l, _)| *l != lock);
        if let Some(wait) = wait.filter(|_| waits.len() < MAX_WAITS) {
            waits.push((lock, wait));
        }
    });
}

/// Records one lock convention event; malformed ones are ignored.
pub(crate) fn record(metadata: &'static Metadata<'static>, fields: &ConventionFields) {
    let Some(name) = fields.lock_name.as_ref().map(|name| name.as_str()) else { return };
    let mode = match fields.mode.as_ref().map(|mode| mode.as_str()) {
        Some("shared") | Some("read") => LockMode::Shared,
        _ => LockMode::Exclusive,
    };
    let Some(op) = fields.op.as_ref().map(|op| op.as_str()) else { return };
    let used = match op {
        "requested" => NamedUse::Request,
        "acquired" | "try_acquired" => NamedUse::Acquire,
        "try_failed" => NamedUse::Fail,
        "released" => NamedUse::Release,
        _ => return,
    };
    local::with(|ctx| {
        // Stamped before the lookup: a sweep that retires the lock later (under the
        // registry's lock) comes after this event's time.
        let ticks = crate::clock::ticks();
        let site = ctx.site_of(SiteSource {
            key: metadata as *const Metadata<'static> as usize,
            file: metadata.file().unwrap_or("<unknown>"),
            line: metadata.line().unwrap_or(0),
            col: 0,
            function: None,
        });
        let mut registry = session::lock(&ctx.session().registry);
        let lock = registry.named_lock(name, Some(site), used, crate::clock::ticks());
        drop(registry);
        let kind = match used {
            NamedUse::Request => EventKind::LockRequested { lock, mode, site },
            NamedUse::Acquire => {
                let via_try = op == "try_acquired";
                EventKind::LockAcquired { lock, mode, site, seq: None, via_try }
            }
            NamedUse::Fail => EventKind::LockTryFailed { lock, mode, site },
            NamedUse::Release => EventKind::LockReleased { lock, mode, seq: None, poisoned: false },
        };
        ctx.record_at(ticks, kind);
        match used {
            NamedUse::Request => track(lock, ctx.begin_wait(ticks, lock, mode)),
            NamedUse::Acquire | NamedUse::Fail => track(lock, None),
            NamedUse::Release => {}
        }
    });
}
