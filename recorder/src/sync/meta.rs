//! What every wrapper lock carries to record itself: its identity in the current session,
//! its sequence counter, and its creation site and name.

use crate::clock;
use crate::format::{EventKind, LockId, LockImplementation, LockKind, LockMode, PermitOp};
use crate::local::{self, Ctx};
use crate::registry::Entity;
use crate::session;
use crate::waits::Wait;
use std::borrow::Cow;
use std::num::NonZeroU64;
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
    /// A semaphore's initial permits.
    capacity: Option<u32>,
}

impl std::fmt::Debug for LockMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockMeta")
            .field("name", &self.name)
            .field("site", &format_args!("{}", self.site))
            .finish_non_exhaustive()
    }
}

impl Drop for LockMeta {
    /// The lock is gone: the session that defined it may forget it.
    fn drop(&mut self) {
        let packed = *self.id.get_mut();
        if packed != 0 {
            local::retire_entity(packed >> 32, Entity::Lock(LockId(packed as u32)));
        }
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
        LockMeta {
            id: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            site,
            name,
            kind,
            blocking,
            capacity: None,
        }
    }

    /// An async semaphore of `permits` permits created at `site`.
    pub(crate) fn semaphore(
        permits: usize,
        name: Option<Cow<'static, str>>,
        site: &'static Location<'static>,
    ) -> LockMeta {
        let capacity = Some(u32::try_from(permits).unwrap_or(u32::MAX));
        let mut meta = LockMeta::new(LockKind::Semaphore, false, name, site);
        meta.capacity = capacity;
        meta
    }

    /// The lock's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The next sequence number of a hold in `mode`; call only while holding the lock.
    ///
    /// Numbers are taken only while recording: outside a recording nobody reads them, and a
    /// recording's replay starts from the first number it sees.
    #[inline]
    fn next_seq(&self, mode: LockMode) -> NonZeroU64 {
        // A semaphore's permits, like a rwlock's read holds, are held by several at once.
        if mode == LockMode::Exclusive
            && !matches!(self.kind, LockKind::RwLock | LockKind::Semaphore)
        {
            // The lock orders these accesses, so a plain load and store suffice.
            let seq = NonZeroU64::MIN.saturating_add(self.seq.load(Ordering::Relaxed));
            self.seq.store(seq.get(), Ordering::Relaxed);
            return seq;
        }
        // Concurrent readers take numbers at once.
        NonZeroU64::MIN.saturating_add(self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// The lock's id in the current session, defined on first use.
    #[inline]
    fn id(&self, ctx: &mut Ctx<'_>) -> LockId {
        let generation = ctx.generation() & u32::MAX as u64;
        let packed = self.id.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return LockId(packed as u32);
        }
        self.define(ctx, generation)
    }

    #[cold]
    #[inline(never)]
    fn define(&self, ctx: &mut Ctx<'_>, generation: u64) -> LockId {
        let site = ctx.site(self.site);
        let mut registry = session::lock(&ctx.session().registry);
        // Another thread may have defined it while this one waited for the registry.
        let packed = self.id.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return LockId(packed as u32);
        }
        // The blocking wrappers wrap `std::sync`'s locks, the others `tokio::sync`'s.
        let implementation = match self.blocking {
            true => LockImplementation::HindsightStd,
            false => LockImplementation::HindsightTokio,
        };
        let name = self.name.as_deref();
        let id = registry.lock(self.kind, implementation, self.blocking, name, Some(site));
        if let Some(permits) = self.capacity {
            registry.set_lock_capacity(id, permits);
        }
        self.id.store(generation << 32 | id.0 as u64, Ordering::Release);
        id
    }

    /// The actor starts waiting for the lock; the wait is watched until the result is
    /// dropped (see [`crate::waits`]).
    pub(crate) fn requested(&self, at: &'static Location<'static>, mode: LockMode) -> Option<Wait> {
        local::with(|ctx| {
            let lock = self.id(ctx);
            let site = ctx.site(at);
            let ticks = clock::ticks();
            ctx.record_at(ticks, EventKind::LockRequested { lock, mode, site });
            ctx.begin_wait(ticks, lock, mode)
        })
        .flatten()
    }

    /// The actor got the lock (and holds it now).
    #[inline]
    pub(crate) fn acquired(&self, at: &'static Location<'static>, mode: LockMode, via_try: bool) {
        // Only this check is inlined into the caller: not recording costs one load.
        if session::active_generation() != 0 {
            self.record_acquired(at, mode, via_try);
        }
    }

    #[inline(never)]
    fn record_acquired(&self, at: &'static Location<'static>, mode: LockMode, via_try: bool) {
        local::with(|ctx| {
            let seq = Some(self.next_seq(mode));
            let lock = self.id(ctx);
            let site = ctx.site(at);
            ctx.record(EventKind::LockAcquired { lock, mode, site, seq, via_try });
        });
    }

    /// `count` of the semaphore's permits had `op` done to them (see [`PermitOp`]).
    pub(crate) fn permits(&self, op: PermitOp, count: u32) {
        if session::active_generation() != 0 {
            local::with(|ctx| {
                let lock = self.id(ctx);
                ctx.record(EventKind::Permits { lock, op, count });
            });
        }
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

    /// The actor is about to release the lock (and still holds it).
    #[inline]
    pub(crate) fn released(&self, mode: LockMode) {
        if session::active_generation() != 0 {
            self.record_released(mode);
        }
    }

    #[inline(never)]
    fn record_released(&self, mode: LockMode) {
        local::with(|ctx| {
            let seq = Some(self.next_seq(mode));
            let lock = self.id(ctx);
            let poisoned = self.blocking && std::thread::panicking();
            ctx.record(EventKind::LockReleased { lock, mode, seq, poisoned });
        });
    }
}
