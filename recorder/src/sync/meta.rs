//! What every wrapper lock carries to record itself: its identity in the current session,
//! its sequence counter, and its creation site and name.

use crate::format::{EventKind, LockId, LockKind, LockMode};
use crate::local::{self, Ctx};
use crate::session;
use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

/// The recording side of a wrapper lock.
pub(crate) struct LockMeta {
    /// `generation << 32 | id` of the lock in the session that last saw it.
    id: AtomicU64,
    /// The sequence counter: acquisitions and releases take the next number while the lock is
    /// held (see the ordering docs of [`crate::format`]).
    seq: AtomicU64,
    site: &'static Location<'static>,
    name: Option<Cow<'static, str>>,
    kind: LockKind,
    blocking: bool,
}

impl std::fmt::Debug for LockMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockMeta")
            .field("name", &self.name)
            .field("site", &format_args!("{}", self.site))
            .finish_non_exhaustive()
    }
}

impl LockMeta {
    /// A lock of `kind` created at `site`.
    pub(crate) fn new(
        kind: LockKind,
        blocking: bool,
        name: Option<Cow<'static, str>>,
        site: &'static Location<'static>,
    ) -> LockMeta {
        LockMeta { id: AtomicU64::new(0), seq: AtomicU64::new(0), site, name, kind, blocking }
    }

    /// The lock's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The next sequence number of an exclusive hold; call only while holding it exclusively.
    #[inline]
    pub(crate) fn next_seq_exclusive(&self) -> u64 {
        // The lock orders these accesses, so a plain load and store suffice.
        let seq = self.seq.load(Ordering::Relaxed) + 1;
        self.seq.store(seq, Ordering::Relaxed);
        seq
    }

    /// The next sequence number of a hold that may be shared; call only while holding it.
    #[inline]
    pub(crate) fn next_seq_shared(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The lock's id in the current session, defined on first use.
    #[inline]
    fn id(&self, ctx: &mut Ctx<'_>) -> LockId {
        let generation = ctx.session().generation() & u32::MAX as u64;
        let packed = self.id.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return LockId(packed as u32);
        }
        self.define(ctx, generation)
    }

    #[cold]
    fn define(&self, ctx: &mut Ctx<'_>, generation: u64) -> LockId {
        let site = ctx.site(self.site);
        let mut registry = session::lock(&ctx.session().registry);
        // Another thread may have defined it while this one waited for the registry.
        let packed = self.id.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return LockId(packed as u32);
        }
        let id = registry.lock(self.kind, self.blocking, self.name.as_deref(), Some(site));
        self.id.store(generation << 32 | id.0 as u64, Ordering::Release);
        id
    }

    /// The actor starts waiting for the lock.
    pub(crate) fn requested(&self, at: &'static Location<'static>, mode: LockMode) {
        local::with(|ctx| {
            let lock = self.id(ctx);
            let site = ctx.site(at);
            ctx.record(EventKind::LockRequested { lock, mode, site });
        });
    }

    /// The actor got the lock, with sequence number `seq`.
    #[inline]
    pub(crate) fn acquired(
        &self,
        at: &'static Location<'static>,
        mode: LockMode,
        seq: u64,
        via_try: bool,
    ) {
        local::with(|ctx| {
            let lock = self.id(ctx);
            let site = ctx.site(at);
            ctx.record(EventKind::LockAcquired { lock, mode, site, seq: Some(seq), via_try });
        });
    }

    /// A non-blocking attempt failed, or a wait was abandoned (an async lock future dropped
    /// before it got the lock).
    pub(crate) fn try_failed(&self, at: &'static Location<'static>, mode: LockMode) {
        local::with(|ctx| {
            let lock = self.id(ctx);
            let site = ctx.site(at);
            ctx.record(EventKind::LockTryFailed { lock, mode, site });
        });
    }

    /// The actor is about to release the lock; `seq` was taken while still holding it.
    #[inline]
    pub(crate) fn released(&self, mode: LockMode, seq: u64) {
        local::with(|ctx| {
            let lock = self.id(ctx);
            let poisoned = self.blocking && std::thread::panicking();
            ctx.record(EventKind::LockReleased { lock, mode, seq: Some(seq), poisoned });
        });
    }
}
