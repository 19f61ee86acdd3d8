//! What each lock implementation does, in one table: the analyzer's questions about a lock's
//! behaviour (does waiting block the OS thread, may a reader pass a waiting writer, does a
//! panic poison it) are answered here and nowhere else.
//!
//! An answer is `None` where the implementation is not known: nothing is assumed then, so no
//! finding rests on it.

use crate::trace::{Lock, Trace};
use hindsight_recorder::format::LockImplementation;
use hindsight_recorder::format::SiteId;

/// How one lock implementation behaves. Each answer is `None` where it is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSemantics {
    /// A writer waiting for a rwlock keeps new readers out: a read request made while a write
    /// request waits waits too, even though only readers hold the lock. (So two readers and
    /// a writer of one lock can deadlock.)
    pub waiting_writer_blocks_new_readers: Option<bool>,
    /// A holder's panic poisons the lock: later acquisitions see an error.
    pub poisons_on_panic: Option<bool>,
    /// Waiting for the lock blocks the OS thread (rather than suspending a task).
    pub waiting_blocks_thread: Option<bool>,
    /// A semaphore hands out permits in request order: a request waits while an earlier one
    /// is queued, even when enough permits are free for it (tokio's semaphore is fair). Only
    /// meaningful for semaphores.
    pub permits_in_request_order: Option<bool>,
}

impl LockSemantics {
    /// What `implementation` does.
    pub fn of(implementation: LockImplementation) -> LockSemantics {
        use LockImplementation as I;
        let known = |writer_first, poisons, blocks| LockSemantics {
            waiting_writer_blocks_new_readers: Some(writer_first),
            poisons_on_panic: Some(poisons),
            waiting_blocks_thread: Some(blocks),
            permits_in_request_order: None,
        };
        match implementation {
            // std's futex rwlock (Linux) prefers writers; std's documentation leaves the
            // policy to the platform, and this is the platform hindsight records on.
            I::Std | I::HindsightStd => known(true, true, true),
            // tokio's RwLock is fair (a FIFO of requests), its locks never poison.
            I::Tokio | I::HindsightTokio => {
                LockSemantics { permits_in_request_order: Some(true), ..known(true, false, false) }
            }
            // parking_lot's RwLock is task-fair: "readers trying to acquire the lock will
            // block even if the lock is unlocked when there are writers waiting".
            I::ParkingLot => known(true, false, true),
            // A lock recorded through the tracing convention says only whether it blocks
            // (`LockDef::blocking`).
            I::UserDefined | I::Unknown => LockSemantics {
                waiting_writer_blocks_new_readers: None,
                poisons_on_panic: None,
                waiting_blocks_thread: None,
                permits_in_request_order: None,
            },
        }
    }
}

impl Lock {
    /// What its implementation does.
    pub fn semantics(&self) -> LockSemantics {
        LockSemantics::of(self.implementation)
    }

    /// Whether it counts permits (a semaphore) rather than excluding: its holders do not
    /// exclude one another, and a waiter is stuck only while fewer permits are free than it
    /// asked for and none can come back (replay keeps the count: `State::permits`).
    pub fn counts_permits(&self) -> bool {
        self.kind == hindsight_recorder::format::LockKind::Semaphore
    }

    /// Whether `site`, the site of one of its operations, is only its creation site: tokio's
    /// own locks, recorded through tokio's instrumentation, carry no call site (their resource
    /// spans say where the lock was created), and the recorder names their operations' sites
    /// after it.
    pub fn site_is_creation(&self, trace: &Trace, site: SiteId) -> bool {
        let Some(created) = self.site else { return false };
        let (a, b) = (trace.site(created), trace.site(site));
        self.implementation == LockImplementation::Tokio
            && (a.file, a.line, a.col) == (b.file, b.line, b.col)
    }

    /// The role to give `site`, the site of one of its operations, in a finding: `role` (such
    /// as `"acquired"`), or `"created"` where it is only the lock's creation site.
    pub fn site_role<'a>(&self, trace: &Trace, site: SiteId, role: &'a str) -> &'a str {
        if self.site_is_creation(trace, site) {
            "created"
        } else {
            role
        }
    }

    /// Words for where one of its operations happened, at `site`: `at SITE`, or, where that is
    /// only the lock's creation site, that tokio gave no call site.
    pub fn at_site(&self, trace: &Trace, site: SiteId) -> String {
        let text = trace.site_text(site);
        if self.site_is_creation(trace, site) {
            format!("(tokio gives no call site; the lock was created at {text})")
        } else {
            format!("at {text}")
        }
    }

    /// Words for what was done at `site` (`verb`, such as `"acquired"`): `VERB at SITE`, or,
    /// where that is only the lock's creation site, `created at SITE (tokio gives no call
    /// site)` — never a creation line passed off as the place of the operation.
    pub fn did_at(&self, trace: &Trace, site: SiteId, verb: &str) -> String {
        let text = trace.site_text(site);
        if self.site_is_creation(trace, site) {
            format!("created at {text} (tokio gives no call site)")
        } else {
            format!("{verb} at {text}")
        }
    }

    /// Whether waiting for it blocks the OS thread: as its implementation does, or as
    /// recorded where the implementation does not say.
    pub fn waiting_blocks_thread(&self) -> bool {
        self.semantics().waiting_blocks_thread.unwrap_or(self.blocking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_behave_as_the_locks_they_wrap_and_unknown_assumes_nothing() {
        use LockImplementation as I;
        assert_eq!(LockSemantics::of(I::HindsightStd), LockSemantics::of(I::Std));
        assert_eq!(LockSemantics::of(I::HindsightTokio), LockSemantics::of(I::Tokio));
        let unknown = LockSemantics::of(I::Unknown);
        assert_eq!(unknown.waiting_writer_blocks_new_readers, None);
        assert_eq!(unknown.poisons_on_panic, None);
        assert_eq!(unknown.waiting_blocks_thread, None);
        assert_eq!(LockSemantics::of(I::Tokio).waiting_blocks_thread, Some(false));
        assert_eq!(LockSemantics::of(I::ParkingLot).poisons_on_panic, Some(false));
        assert_eq!(LockSemantics::of(I::Tokio).permits_in_request_order, Some(true));
        assert_eq!(unknown.permits_in_request_order, None);
    }
}
