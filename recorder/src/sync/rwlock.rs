//! A blocking reader-writer lock with the API of [`std::sync::RwLock`] that records itself.

use super::meta::LockMeta;
use crate::format::{LockKind, LockMode};
use std::borrow::Cow;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A reader-writer lock like [`std::sync::RwLock`] (same methods, same poisoning), whose
/// shared and exclusive holds are recorded while a [`Recorder`](crate::Recorder) records.
///
/// ```
/// use hindsight_recorder::sync::RwLock;
///
/// let config = RwLock::named("config", 1);
/// assert_eq!(*config.read().unwrap(), 1);
/// *config.write().unwrap() = 2;
/// ```
pub struct RwLock<T: ?Sized> {
    meta: LockMeta,
    inner: std::sync::RwLock<T>,
}

/// A shared hold of a [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    inner: ManuallyDrop<std::sync::RwLockReadGuard<'a, T>>,
}

/// An exclusive hold of a [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    inner: ManuallyDrop<std::sync::RwLockWriteGuard<'a, T>>,
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
            meta: LockMeta::new(LockKind::RwLock, true, name, site),
            inner: std::sync::RwLock::new(value),
        }
    }

    /// Consumes the lock and returns the value (an error if it is poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

/// Turns a std lock result into a wrapper's, recording the acquisition.
fn map_result<G, W>(result: LockResult<G>, wrap: impl FnOnce(G) -> W) -> LockResult<W> {
    match result {
        Ok(guard) => Ok(wrap(guard)),
        Err(e) => Err(PoisonError::new(wrap(e.into_inner()))),
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Blocks until a shared hold is acquired, like [`std::sync::RwLock::read`].
    #[track_caller]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let at = Location::caller();
        let result = match self.inner.try_read() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(e)) => Err(e),
            Err(TryLockError::WouldBlock) => {
                let _wait = self.meta.requested(at, LockMode::Shared);
                self.inner.read()
            }
        };
        map_result(result, |guard| self.read_acquired(guard, at, false))
    }

    /// Takes a shared hold if possible now, like [`std::sync::RwLock::try_read`].
    #[track_caller]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let at = Location::caller();
        match self.inner.try_read() {
            Ok(guard) => Ok(self.read_acquired(guard, at, true)),
            Err(TryLockError::Poisoned(e)) => Err(TryLockError::Poisoned(PoisonError::new(
                self.read_acquired(e.into_inner(), at, true),
            ))),
            Err(TryLockError::WouldBlock) => {
                self.meta.try_failed(at, LockMode::Shared);
                Err(TryLockError::WouldBlock)
            }
        }
    }

    /// Blocks until an exclusive hold is acquired, like [`std::sync::RwLock::write`].
    #[track_caller]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let at = Location::caller();
        let result = match self.inner.try_write() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(e)) => Err(e),
            Err(TryLockError::WouldBlock) => {
                let _wait = self.meta.requested(at, LockMode::Exclusive);
                self.inner.write()
            }
        };
        map_result(result, |guard| self.write_acquired(guard, at, false))
    }

    /// Takes an exclusive hold if possible now, like [`std::sync::RwLock::try_write`].
    #[track_caller]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let at = Location::caller();
        match self.inner.try_write() {
            Ok(guard) => Ok(self.write_acquired(guard, at, true)),
            Err(TryLockError::Poisoned(e)) => Err(TryLockError::Poisoned(PoisonError::new(
                self.write_acquired(e.into_inner(), at, true),
            ))),
            Err(TryLockError::WouldBlock) => {
                self.meta.try_failed(at, LockMode::Exclusive);
                Err(TryLockError::WouldBlock)
            }
        }
    }

    #[inline]
    fn read_acquired<'a>(
        &'a self,
        guard: std::sync::RwLockReadGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> RwLockReadGuard<'a, T> {
        self.meta.acquired(at, LockMode::Shared, via_try);
        RwLockReadGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    #[inline]
    fn write_acquired<'a>(
        &'a self,
        guard: std::sync::RwLockWriteGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> RwLockWriteGuard<'a, T> {
        self.meta.acquired(at, LockMode::Exclusive, via_try);
        RwLockWriteGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    /// Whether the lock is poisoned, like [`std::sync::RwLock::is_poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state, like [`std::sync::RwLock::clear_poison`].
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// A mutable reference to the value; no locking needed (nothing is recorded).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
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

impl<T> From<T> for RwLock<T> {
    #[track_caller]
    fn from(value: T) -> Self {
        RwLock::new(value)
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

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
