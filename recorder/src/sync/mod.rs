//! Instrumented locks: drop-in replacements that record their acquisitions and releases,
//! with no need for `tokio_unstable`.
//!
//! - [`Mutex`] and [`RwLock`]: blocking, with the API of `std::sync` (poisoning included);
//! - [`tokio::Mutex`] and [`tokio::RwLock`]: async,
//!   with the API of `tokio::sync`;
//! - [`Notify`]: tokio's, recording who waits for a notification.
//!
//! Every lock records where it was created and, for each acquisition, where it was asked for
//! (`#[track_caller]`). A lock may be given a name (`Mutex::named("sqlite", db)`), which is
//! its identity in reports; unnamed locks are known by their creation site, so that the locks
//! created at one site form one class. While no recorder records, a wrapper costs one relaxed
//! atomic load per operation over the lock it wraps.
//!
//! # Ordering
//!
//! Each lock keeps a sequence counter. An acquisition takes the next number right after it
//! got the lock, a release right before it lets go, so the numbers of one lock are the real
//! order of its holds (see [`crate::format`]'s ordering docs).

mod meta;
mod mutex;
mod rwlock;
pub mod tokio;

pub use crate::channel::notify::{Notified, Notify};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
