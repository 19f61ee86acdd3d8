//! A blocking mutex with the API of [`std::sync::Mutex`] that records itself.

use super::meta::LockMeta;
use crate::format::{LockKind, LockMode};
use std::borrow::Cow;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A mutual-exclusion lock like [`std::sync::Mutex`] (same methods, same poisoning), whose
/// acquisitions and releases are recorded while a [`Recorder`](crate::Recorder) records.
///
/// The lock's creation site and each acquisition's site are the callers' (`#[track_caller]`).
/// An uncontended acquisition records one event; a contended one records the request, then
/// the acquisition once the thread gets the lock.
///
/// ```
/// use hindsight_recorder::sync::Mutex;
///
/// let db = Mutex::named("sqlite", Vec::new());
/// db.lock().unwrap().push(1);
/// assert_eq!(db.into_inner().unwrap(), [1]);
/// ```
pub struct Mutex<T: ?Sized> {
    meta: LockMeta,
    inner: std::sync::Mutex<T>,
}

/// Holds a [`Mutex`] until dropped; dereferences to the protected value.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    inner: ManuallyDrop<std::sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex, created here.
    #[track_caller]
    pub fn new(value: T) -> Self {
        Mutex::with_name(None, value, Location::caller())
    }

    /// A new mutex with a name: the lock's identity in reports (`Mutex::named("sqlite", db)`).
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
            meta: LockMeta::new(LockKind::Mutex, true, name, site),
            inner: std::sync::Mutex::new(value),
        }
    }

    /// Consumes the mutex and returns the value (an error if it is poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is acquired, like [`std::sync::Mutex::lock`].
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let at = Location::caller();
        let (guard, poisoned) = match self.inner.try_lock() {
            Ok(guard) => (guard, false),
            Err(TryLockError::Poisoned(e)) => (e.into_inner(), true),
            Err(TryLockError::WouldBlock) => {
                let _wait = self.meta.requested(at, LockMode::Exclusive);
                match self.inner.lock() {
                    Ok(guard) => (guard, false),
                    Err(e) => (e.into_inner(), true),
                }
            }
        };
        let guard = self.acquired(guard, at, false);
        if poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Takes the lock if it is free, like [`std::sync::Mutex::try_lock`]. A failed attempt
    /// is recorded too.
    #[track_caller]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let at = Location::caller();
        match self.inner.try_lock() {
            Ok(guard) => Ok(self.acquired(guard, at, true)),
            Err(TryLockError::Poisoned(e)) => Err(TryLockError::Poisoned(PoisonError::new(
                self.acquired(e.into_inner(), at, true),
            ))),
            Err(TryLockError::WouldBlock) => {
                self.meta.try_failed(at, LockMode::Exclusive);
                Err(TryLockError::WouldBlock)
            }
        }
    }

    #[inline]
    fn acquired<'a>(
        &'a self,
        guard: std::sync::MutexGuard<'a, T>,
        at: &'static Location<'static>,
        via_try: bool,
    ) -> MutexGuard<'a, T> {
        self.meta.acquired(at, LockMode::Exclusive, via_try);
        MutexGuard { lock: self, inner: ManuallyDrop::new(guard) }
    }

    /// Whether the mutex is poisoned, like [`std::sync::Mutex::is_poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state, like [`std::sync::Mutex::clear_poison`].
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// A mutable reference to the value; no locking needed (nothing is recorded).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
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

impl<T> From<T> for Mutex<T> {
    #[track_caller]
    fn from(value: T) -> Self {
        Mutex::new(value)
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
    #[inline]
    fn drop(&mut self) {
        // Recorded (with its sequence number) while the lock is still held; then released.
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

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
