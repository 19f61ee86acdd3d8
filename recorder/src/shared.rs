//! [`Shared<T>`]: a value whose every access is recorded for the race detector.
//!
//! `Shared<T>` is an annotation, not a lock: it owns a `T` and a [`Variable`], and hands the
//! value out only through methods that record the access first — [`read`](Shared::read),
//! [`write`](Shared::write) (for values that change through `&T`: atomics, `Cell`, `RefCell`,
//! concurrent maps) and [`write_mut`](Shared::write_mut) (through `&mut T`, for values behind
//! the program's own lock). It adds no synchronisation and removes none: `Shared<T>` is `Send`
//! and `Sync` exactly when `T` is, and the borrow rules are those of `&T` and `&mut T`, so a
//! program that compiles with it is as sound as the same program without it. There is no
//! `Deref`: an access that is not recorded should be visible in the code.
//!
//! ```
//! use hindsight_recorder::shared::Shared;
//! use hindsight_recorder::sync::Mutex;
//! use std::collections::HashMap;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! // Behind the program's own lock: writes through the guard.
//! let sessions = Shared::named("sessions", HashMap::new());
//! let sessions = Arc::new(Mutex::named("sessions_lock", sessions));
//! sessions.lock().unwrap().write_mut(|map| map.insert(7, "alice"));
//! let name = sessions.lock().unwrap().read(|map| map[&7]);
//! assert_eq!(name, "alice");
//!
//! // Lock-free: an atomic counter updated by a read-modify-write that is *not* atomic — the
//! // race the annotations let the detector see (ThreadSanitizer cannot: atomics do not race).
//! let hits = Arc::new(Shared::named("hits", AtomicU64::new(0)));
//! let seen = hits.read(|h| h.load(Ordering::Relaxed));
//! hits.write(|h| h.store(seen + 1, Ordering::Relaxed));
//! assert_eq!(hits.read(|h| h.load(Ordering::Relaxed)), 1);
//! ```
//!
//! Release/acquire pairs through an atomic inside a `Shared` are annotated with
//! [`release`](Shared::release) and [`acquire`](Shared::acquire): the release is recorded
//! before the store, the acquire after the load, as the
//! [annotation rules](crate::annotate#release-and-acquire) ask.

use crate::annotate::Variable;
use std::fmt;

/// A value whose accesses are recorded as those of a named variable; see the
/// [module docs](self).
pub struct Shared<T: ?Sized> {
    var: Variable,
    value: T,
}

impl<T> Shared<T> {
    /// `value`, known to the recorder as the variable `name`, created here; usable in a
    /// `static`.
    #[track_caller]
    pub const fn named(name: &'static str, value: T) -> Shared<T> {
        Shared { var: Variable::named(name), value }
    }

    /// Takes the value out (not recorded: nothing else can access it any more).
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: ?Sized> Shared<T> {
    /// Records a read here, then runs `f` on the value.
    #[track_caller]
    #[inline]
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.var.read();
        f(&self.value)
    }

    /// Records a write here, then runs `f` on the value, which it changes through `&T`
    /// (an atomic, a `Cell`, a `RefCell`, a concurrent map).
    #[track_caller]
    #[inline]
    pub fn write<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.var.write();
        f(&self.value)
    }

    /// Records a write here, then runs `f` on the value, mutably: for a `Shared` that the
    /// program's own lock (or ownership) gives exclusive access to.
    #[track_caller]
    #[inline]
    pub fn write_mut<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        self.var.write();
        f(&mut self.value)
    }

    /// Records a release of the variable as a synchronisation object here, then runs `f`,
    /// which makes the releasing store.
    #[track_caller]
    #[inline]
    pub fn release<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.var.release();
        f(&self.value)
    }

    /// Runs `f`, which makes the acquiring load, then records an acquire of the variable as
    /// a synchronisation object here. Record it only when the load saw a release: `f`
    /// returns whether it did, with its result.
    #[track_caller]
    #[inline]
    pub fn acquire<R>(&self, f: impl FnOnce(&T) -> (bool, R)) -> R {
        let (synchronized, result) = f(&self.value);
        if synchronized {
            self.var.acquire();
        }
        result
    }

    /// The variable the accesses are recorded as, for [free annotations](crate::annotate).
    pub fn variable(&self) -> &Variable {
        &self.var
    }
}

impl<T: ?Sized> fmt::Debug for Shared<T> {
    /// Shows the variable, not the value: formatting it would be an access not recorded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("var", &self.var).finish_non_exhaustive()
    }
}
