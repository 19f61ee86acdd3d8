//! Annotations: telling the recorder about shared state and synchronisation it cannot see.
//!
//! The race detector (`data-race`) checks the accesses it is told about: two accesses to one
//! variable, at least one a write, by different threads or tasks, with nothing ordering them
//! (a lock, a spawn or join, a channel message, a wake, a release/acquire pair). Locks, spawns,
//! joins and channels are recorded by the [wrappers](crate::sync), the [spawn
//! helpers](crate::task) and the [channel wrappers](crate::channel); *accesses* are recorded
//! by annotations, in one of two styles:
//!
//! - [`Shared<T>`](crate::shared::Shared) keeps the value and records each access made
//!   through it — the value cannot be reached without recording;
//! - a [`Variable`] is only a name: call [`Variable::read`] or [`Variable::write`] (or the
//!   free functions [`read`], [`write`](fn@write)) next to the real access, for state that
//!   cannot be wrapped (fields spread over a struct, memory owned by C code, a `static`).
//!
//! Annotations synchronise nothing: the program keeps its own locks, atomics and channels,
//! and stays exactly as sound (or as racy) as it was. An annotation records an event with the
//! calling thread, the task being polled, and the caller's site (`#[track_caller]`: the line
//! of the `read()`/`write()` call). While no recorder records, it costs one relaxed atomic load.
//!
//! # Release and acquire
//!
//! Synchronisation through atomics is invisible to the recorder: a flag set with
//! `Ordering::Release` and read with `Ordering::Acquire` orders what came before the store
//! before what comes after the load, but only the program knows which load saw which store.
//! Say so with a synchronisation object, a [`Variable`] used with [`release`] right *before*
//! the releasing store and [`acquire`] right *after* the acquiring load that saw it:
//!
//! ```
//! use hindsight_recorder::annotate::{self, Variable};
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! static READY: Variable = Variable::named("config_ready");
//! static CONFIG: Variable = Variable::named("config");
//! static FLAG: AtomicBool = AtomicBool::new(false);
//!
//! // Publisher:
//! annotate::write(&CONFIG); // ... and write the configuration
//! annotate::release(&READY);
//! FLAG.store(true, Ordering::Release);
//!
//! // Consumer:
//! if FLAG.load(Ordering::Acquire) {
//!     annotate::acquire(&READY);
//!     annotate::read(&CONFIG); // ordered after the write: not a race
//! }
//! ```
//!
//! An acquire orders after *every* release of the object recorded before it, so annotate an
//! acquire only where the load really saw a releasing store; an acquire too many can hide a
//! race, never invent one.
//!
//! # Annotating a program
//!
//! A session cache shared by request threads, checked without its lock on a fast path — the
//! classic double-checked lookup. The map itself is behind a lock (Rust leaves no other
//! choice); the fast path reads a lock-free summary of it, which is the same logical state,
//! so both are annotated as the variable `sessions`:
//!
//! ```
//! use hindsight_recorder::annotate::Variable;
//! use hindsight_recorder::sync::Mutex;
//! use std::collections::HashMap;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! struct Sessions {
//!     /// Which ids have a session: a bit per id, read without the lock.
//!     known: AtomicU64,
//!     map: Mutex<HashMap<u32, String>>,
//!     var: Variable,
//! }
//!
//! impl Sessions {
//!     fn get(&self, id: u32) -> String {
//!         self.var.read(); // the unlocked check
//!         if self.known.load(Ordering::Relaxed) & (1 << id) == 0 {
//!             let mut map = self.map.lock().unwrap();
//!             self.var.write(); // the insertion, under the lock
//!             map.insert(id, format!("session {id}"));
//!             self.known.fetch_or(1 << id, Ordering::Relaxed);
//!         }
//!         self.map.lock().unwrap()[&id].clone()
//!     }
//! }
//!
//! let sessions = Sessions {
//!     known: AtomicU64::new(0),
//!     map: Mutex::named("sessions_lock", HashMap::new()),
//!     var: Variable::named("sessions"),
//! };
//! assert_eq!(sessions.get(3), "session 3");
//! ```
//!
//! Recorded with two threads calling `get(3)`, the unlocked `read()` of one and the locked
//! `write()` of the other are not ordered by anything: `hindsight analyze` reports a
//! `data-race` on `sessions` with both sites. Moving the check under the lock orders them.
//! [`Shared`](crate::shared::Shared) and [`channel`](crate::channel) show the other styles.

use crate::defined::Defined;
use crate::format::{EventKind, SiteId, VarId};
use crate::local;
use crate::registry::Entity;
use std::fmt;
use std::panic::Location;

/// An annotated variable or synchronisation object: a name the recorder knows accesses by.
///
/// One `Variable` value is one variable: share it (by reference, in an `Arc`, or as a
/// `static`) between the places that access the state it stands for. Two `Variable`s with
/// one name are two variables that are reported under the same name. Its creation site is
/// where [`named`](Variable::named) was called, also in a `static`.
pub struct Variable {
    id: Defined,
    name: &'static str,
    site: &'static Location<'static>,
}

impl Variable {
    /// A variable named `name`, created here; usable in a `static`.
    ///
    /// ```
    /// static WORKER_STATS: hindsight_recorder::annotate::Variable =
    ///     hindsight_recorder::annotate::Variable::named("worker_stats");
    /// WORKER_STATS.write();
    /// ```
    #[track_caller]
    pub const fn named(name: &'static str) -> Variable {
        Variable { id: Defined::new(), name, site: Location::caller() }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records a read of the variable here: call it next to the real read.
    #[track_caller]
    #[inline]
    pub fn read(&self) {
        let at = Location::caller();
        self.record(at, |var, site| EventKind::Read { var, site });
    }

    /// Records a write of the variable here: call it next to the real write.
    #[track_caller]
    #[inline]
    pub fn write(&self) {
        let at = Location::caller();
        self.record(at, |var, site| EventKind::Write { var, site });
    }

    /// Records a release of the synchronisation object here: call it right *before* the
    /// releasing store (see the [module docs](self#release-and-acquire)).
    #[track_caller]
    #[inline]
    pub fn release(&self) {
        let at = Location::caller();
        self.record(at, |var, site| EventKind::SyncRelease { var, site });
    }

    /// Records an acquire of the synchronisation object here: call it right *after* the
    /// acquiring load that saw a release (see the [module docs](self#release-and-acquire)).
    #[track_caller]
    #[inline]
    pub fn acquire(&self) {
        let at = Location::caller();
        self.record(at, |var, site| EventKind::SyncAcquire { var, site });
    }

    #[inline]
    fn record(
        &self,
        at: &'static Location<'static>,
        kind: impl FnOnce(VarId, SiteId) -> EventKind,
    ) {
        local::with(|ctx| {
            let var =
                VarId(self.id.get(ctx, self.site, |registry, site| {
                    registry.variable(self.name, Some(site)).0
                }));
            let site = ctx.site(at);
            ctx.record(kind(var, site));
        });
    }
}

impl Drop for Variable {
    /// The variable is gone (never, for a `static`): the session may forget it.
    fn drop(&mut self) {
        self.id.retire(|id| Entity::Variable(VarId(id)));
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("site", &format_args!("{}", self.site))
            .finish()
    }
}

/// Records a read of `var` here, like [`Variable::read`] (the site is this call's: a
/// `#[track_caller]` chain).
#[track_caller]
#[inline]
pub fn read(var: &Variable) {
    var.read();
}

/// Records a write of `var` here, like [`Variable::write`].
#[track_caller]
#[inline]
pub fn write(var: &Variable) {
    var.write();
}

/// Records a release of the synchronisation object `object` here, like
/// [`Variable::release`]: right before the releasing store.
#[track_caller]
#[inline]
pub fn release(object: &Variable) {
    object.release();
}

/// Records an acquire of the synchronisation object `object` here, like
/// [`Variable::acquire`]: right after the acquiring load that saw a release.
#[track_caller]
#[inline]
pub fn acquire(object: &Variable) {
    object.acquire();
}
