//! Async locks with the API of tokio's [`Mutex`](::tokio::sync::Mutex) and
//! [`RwLock`](::tokio::sync::RwLock) that record themselves, with or without
//! `tokio_unstable`.
//!
//! [`Semaphore`] is tokio's counting semaphore, recorded: its capacity, each acquisition
//! (with its permit count), release, `forget`, `add_permits` and `close`, so that the analyzer
//! counts permits instead of treating them as a lock's holds.
//!
//! Each time one of these futures suspends, it records the `.await` it suspended at
//! ([`AwaitPending`](crate::format::EventKind::AwaitPending)): the call site of `lock()`,
//! `acquire()`, ..., which is the line of the `.await`.
//!
//! A wait that is abandoned — the `lock()` future dropped before it got the lock, as in a
//! `select!` or a timeout — is recorded as a failed attempt
//! ([`LockTryFailed`](crate::format::EventKind::LockTryFailed)), so that the request does not
//! look like a wait that never ended.

use super::meta::LockMeta;
use crate::format::{EventKind, LockKind, LockMode, PermitOp};
use crate::local;
use crate::session;
use crate::waits::Wait;
use ::tokio::sync::{AcquireError, TryAcquireError, TryLockError};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::Location;

/// Awaits `future`, recording that the task suspends at the `.await` at `at` each time the
/// future returns pending.
async fn awaited_at<F: Future>(future: F, at: &'static Location<'static>) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() && session::active_generation() != 0 {
            local::with(|ctx| {
                let site = ctx.site(at);
                ctx.record(EventKind::AwaitPending { site });
            });
        }
        poll
    })
    .await
}

/// A wait in progress: records an abandoned wait if dropped before [`done`](Self::done),
/// and keeps the wait on the watchdog's board until either.
struct Waiting<'a> {
    meta: &'a LockMeta,
    at: &'static Location<'static>,
    mode: LockMode,
    wait: Option<Wait>,
}

impl<'a> Waiting<'a> {
    /// Records the request and starts the wait.
    fn start(meta: &'a LockMeta, at: &'static Location<'static>, mode: LockMode) -> Self {
        let wait = meta.requested(at, mode);
        Waiting { meta, at, mode, wait }
    }

    /// The lock was acquired.
    fn done(mut self) {
        drop(self.wait.take());
        std::mem::forget(self);
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        drop(self.wait.take());
        self.meta.try_failed(self.at, self.mode);
    }
}

/// An async mutex like [`tokio::sync::Mutex`], recorded.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use hindsight_recorder::sync::tokio::Mutex;
///
/// let cache = Mutex::named("cache", 0);
/// *cache.lock().await += 1;
/// assert_eq!(cache.into_inner(), 1);
/// # }
/// ```
pub struct Mutex<T: ?Sized> {
    meta: LockMeta,
    inner: ::tokio::sync::Mutex<T>,
}

/// Holds a [`Mutex`](struct@Mutex) until dropped.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    inner: ManuallyDrop<::tokio::sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex, created here.
    #[track_caller]
    pub fn new(value: T) -> Self {
        Mutex::with_name(None, value, Location::caller())
    }

    /// A new mutex with a name: the lock's identity in reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        Mutex::with_name(Some(name.into()), value, Location::caller())
    }

    fn with_name(
        name: Option<Cow<'static, str>>,
        value: T,
        site: &'static Location<'static>,
    ) -> Self {
        Mutex {
            meta: LockMeta::new(LockKind::Mutex, false, name, site),
            inner: local::wrapping(|| ::tokio::sync::Mutex::new(value)),
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock, like [`tokio::sync::Mutex::lock`](::tokio::sync::Mutex::lock).
    #[track_caller]
    pub fn lock(&self) -> impl Future<Output = MutexGuard<'_, T>> + '_ {
        let at = Location::caller();
        async move {
            let guard = match self.inner.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    let waiting = Waiting::start(&self.meta, at, LockMode::Exclusive);
                    let guard = awaited_at(self.inner.lock(), at).await;
                    waiting.done();
                    guard
                }
            };
            self.acquired(guard, at, false)
        }
    }

    /// Blocks the thread until the lock is acquired, like
    /// [`tokio::sync::Mutex::blocking_lock`](::tokio::sync::Mutex::blocking_lock) (not from
    /// async code).
    #[track_caller]
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        let at = Location::caller();
        let guard = match self.inner.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                let _wait = self.meta.requested(at, LockMode::Exclusive);
                self.inner.blocking_lock()
            }
        };
        self.acquired(guard, at, false)
    }

    /// Takes the lock if it is free, like
    /// [`tokio::sync::Mutex::try_lock`](::tokio::sync::Mutex::try_lock).
    #[track_caller]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let at = Location::caller();
        match self.inner.try_lock() {
            Ok(guard) => Ok(self.acquired(guard, at, true)),
            Err(e) => {
                self.meta.try_failed(at, LockMode::Exclusive);
                Err(e)
            }
        }
    }

    #[inline]
    fn acquired<'a>(
        &'a self,
        guard: ::tokio::sync::MutexGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> MutexGuard<'a, T> {
        self.meta.acquired(at, LockMode::Exclusive, via_try);
        MutexGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    /// A mutable reference to the value; no locking needed (nothing is recorded).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The name given to the mutex, if any.
    pub fn name(&self) -> Option<&str> {
        self.meta.name()
    }
}

impl<T: Default> Default for Mutex<T> {
    #[track_caller]
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex").field("meta", &self.meta).field("inner", &&self.inner).finish()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.meta.released(LockMode::Exclusive);
        // SAFETY: `inner` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An async reader-writer lock like [`tokio::sync::RwLock`],
/// recorded.
pub struct RwLock<T: ?Sized> {
    meta: LockMeta,
    inner: ::tokio::sync::RwLock<T>,
}

/// A shared hold of a [`RwLock`](struct@RwLock).
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    inner: ManuallyDrop<::tokio::sync::RwLockReadGuard<'a, T>>,
}

/// An exclusive hold of a [`RwLock`](struct@RwLock).
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    inner: ManuallyDrop<::tokio::sync::RwLockWriteGuard<'a, T>>,
}

impl<T> RwLock<T> {
    /// A new, unlocked rwlock, created here.
    #[track_caller]
    pub fn new(value: T) -> Self {
        RwLock::with_name(None, value, Location::caller())
    }

    /// A new rwlock with a name: the lock's identity in reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        RwLock::with_name(Some(name.into()), value, Location::caller())
    }

    fn with_name(
        name: Option<Cow<'static, str>>,
        value: T,
        site: &'static Location<'static>,
    ) -> Self {
        RwLock {
            meta: LockMeta::new(LockKind::RwLock, false, name, site),
            inner: local::wrapping(|| ::tokio::sync::RwLock::new(value)),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Waits for a shared hold, like [`tokio::sync::RwLock::read`](::tokio::sync::RwLock::read).
    #[track_caller]
    pub fn read(&self) -> impl Future<Output = RwLockReadGuard<'_, T>> + '_ {
        let at = Location::caller();
        async move {
            let guard = match self.inner.try_read() {
                Ok(guard) => guard,
                Err(_) => {
                    let waiting = Waiting::start(&self.meta, at, LockMode::Shared);
                    let guard = awaited_at(self.inner.read(), at).await;
                    waiting.done();
                    guard
                }
            };
            self.read_acquired(guard, at, false)
        }
    }

    /// Waits for an exclusive hold, like
    /// [`tokio::sync::RwLock::write`](::tokio::sync::RwLock::write).
    #[track_caller]
    pub fn write(&self) -> impl Future<Output = RwLockWriteGuard<'_, T>> + '_ {
        let at = Location::caller();
        async move {
            let guard = match self.inner.try_write() {
                Ok(guard) => guard,
                Err(_) => {
                    let waiting = Waiting::start(&self.meta, at, LockMode::Exclusive);
                    let guard = awaited_at(self.inner.write(), at).await;
                    waiting.done();
                    guard
                }
            };
            self.write_acquired(guard, at, false)
        }
    }

    /// Takes a shared hold if possible now, like
    /// [`tokio::sync::RwLock::try_read`](::tokio::sync::RwLock::try_read).
    #[track_caller]
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        let at = Location::caller();
        match self.inner.try_read() {
            Ok(guard) => Ok(self.read_acquired(guard, at, true)),
            Err(e) => {
                self.meta.try_failed(at, LockMode::Shared);
                Err(e)
            }
        }
    }

    /// Takes an exclusive hold if possible now, like
    /// [`tokio::sync::RwLock::try_write`](::tokio::sync::RwLock::try_write).
    #[track_caller]
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        let at = Location::caller();
        match self.inner.try_write() {
            Ok(guard) => Ok(self.write_acquired(guard, at, true)),
            Err(e) => {
                self.meta.try_failed(at, LockMode::Exclusive);
                Err(e)
            }
        }
    }

    #[inline]
    fn read_acquired<'a>(
        &'a self,
        guard: ::tokio::sync::RwLockReadGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> RwLockReadGuard<'a, T> {
        self.meta.acquired(at, LockMode::Shared, via_try);
        RwLockReadGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    #[inline]
    fn write_acquired<'a>(
        &'a self,
        guard: ::tokio::sync::RwLockWriteGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> RwLockWriteGuard<'a, T> {
        self.meta.acquired(at, LockMode::Exclusive, via_try);
        RwLockWriteGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    /// A mutable reference to the value; no locking needed (nothing is recorded).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The name given to the lock, if any.
    pub fn name(&self) -> Option<&str> {
        self.meta.name()
    }
}

impl<T: Default> Default for RwLock<T> {
    #[track_caller]
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").field("meta", &self.meta).field("inner", &&self.inner).finish()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.meta.released(LockMode::Shared);
        // SAFETY: `inner` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.meta.released(LockMode::Exclusive);
        // SAFETY: `inner` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

/// A counting semaphore like [`tokio::sync::Semaphore`], recorded.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use hindsight_recorder::sync::tokio::Semaphore;
///
/// let pool = Semaphore::named("connections", 2);
/// let permit = pool.acquire().await.expect("open");
/// assert_eq!(pool.available_permits(), 1);
/// permit.forget();
/// pool.add_permits(1);
/// assert_eq!(pool.available_permits(), 2);
/// # }
/// ```
pub struct Semaphore {
    meta: LockMeta,
    inner: ::tokio::sync::Semaphore,
}

/// Permits of a [`Semaphore`], given back when dropped (unless [`forget`](Self::forget)ten).
#[must_use = "if unused the permits are given back at once"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
    inner: ManuallyDrop<::tokio::sync::SemaphorePermit<'a>>,
}

impl Semaphore {
    /// A semaphore of `permits` permits, created here.
    #[track_caller]
    pub fn new(permits: usize) -> Self {
        Semaphore::with_name(None, permits, Location::caller())
    }

    /// A semaphore with a name: its identity in reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, permits: usize) -> Self {
        Semaphore::with_name(Some(name.into()), permits, Location::caller())
    }

    fn with_name(
        name: Option<Cow<'static, str>>,
        permits: usize,
        site: &'static Location<'static>,
    ) -> Self {
        Semaphore {
            meta: LockMeta::semaphore(permits, name, site),
            inner: local::wrapping(|| ::tokio::sync::Semaphore::new(permits)),
        }
    }

    /// Waits for a permit, like
    /// [`tokio::sync::Semaphore::acquire`](::tokio::sync::Semaphore::acquire).
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<SemaphorePermit<'_>, AcquireError>> + '_ {
        self.acquire_at(1, Location::caller())
    }

    /// Waits for `permits` permits at once, like
    /// [`tokio::sync::Semaphore::acquire_many`](::tokio::sync::Semaphore::acquire_many).
    #[track_caller]
    pub fn acquire_many(
        &self,
        permits: u32,
    ) -> impl Future<Output = Result<SemaphorePermit<'_>, AcquireError>> + '_ {
        self.acquire_at(permits, Location::caller())
    }

    async fn acquire_at(
        &self,
        permits: u32,
        at: &'static Location<'static>,
    ) -> Result<SemaphorePermit<'_>, AcquireError> {
        let permit = match self.inner.try_acquire_many(permits) {
            Ok(permit) => permit,
            // A closed semaphore fails at once, with the error only `acquire` makes.
            Err(TryAcquireError::Closed) => self.inner.acquire_many(permits).await?,
            Err(TryAcquireError::NoPermits) => {
                let waiting = Waiting::start(&self.meta, at, LockMode::Exclusive);
                // Closed while waiting: `waiting` records the wait as given up.
                let permit = awaited_at(self.inner.acquire_many(permits), at).await?;
                waiting.done();
                permit
            }
        };
        Ok(self.acquired(permit, permits, at, false))
    }

    /// Takes a permit if one is free, like
    /// [`tokio::sync::Semaphore::try_acquire`](::tokio::sync::Semaphore::try_acquire).
    #[track_caller]
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let at = Location::caller();
        match self.inner.try_acquire() {
            Ok(permit) => Ok(self.acquired(permit, 1, at, true)),
            Err(e) => {
                self.meta.try_failed(at, LockMode::Exclusive);
                Err(e)
            }
        }
    }

    fn acquired<'a>(
        &'a self,
        permit: ::tokio::sync::SemaphorePermit<'a>,
        permits: u32,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> SemaphorePermit<'a> {
        self.meta.acquired(at, LockMode::Exclusive, via_try);
        if permits != 1 {
            self.meta.permits(PermitOp::Acquired, permits);
        }
        SemaphorePermit { semaphore: self, inner: ManuallyDrop::new(permit) }
    }

    /// Adds `permits` permits, like
    /// [`tokio::sync::Semaphore::add_permits`](::tokio::sync::Semaphore::add_permits): gives
    /// back forgotten ones, or grows the pool.
    pub fn add_permits(&self, permits: usize) {
        self.meta.permits(PermitOp::Added, u32::try_from(permits).unwrap_or(u32::MAX));
        self.inner.add_permits(permits);
    }

    /// Closes the semaphore: waiters and later acquisitions fail, like
    /// [`tokio::sync::Semaphore::close`](::tokio::sync::Semaphore::close).
    pub fn close(&self) {
        self.meta.permits(PermitOp::Closed, 0);
        self.inner.close();
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The permits free now.
    pub fn available_permits(&self) -> usize {
        self.inner.available_permits()
    }

    /// The name given to the semaphore, if any.
    pub fn name(&self) -> Option<&str> {
        self.meta.name()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("meta", &self.meta).field("inner", &self.inner).finish()
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permits from going back to the semaphore, like
    /// [`tokio::sync::SemaphorePermit::forget`](::tokio::sync::SemaphorePermit::forget):
    /// they are gone until someone calls [`Semaphore::add_permits`].
    pub fn forget(self) {
        let mut this = ManuallyDrop::new(self);
        let permits = u32::try_from(this.inner.num_permits()).unwrap_or(u32::MAX);
        this.semaphore.meta.permits(PermitOp::Forgotten, permits);
        // SAFETY: `inner` is taken exactly once, here; `this` is never dropped.
        unsafe { ManuallyDrop::take(&mut this.inner) }.forget();
    }

    /// How many permits it holds.
    pub fn num_permits(&self) -> usize {
        self.inner.num_permits()
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.semaphore.meta.released(LockMode::Exclusive);
        // SAFETY: `inner` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").field("permits", &self.num_permits()).finish()
    }
}
