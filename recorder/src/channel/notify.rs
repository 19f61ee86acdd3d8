//! tokio's [`Notify`](tokio::sync::Notify), recording who waits for a notification, so that
//! a task that waits for one nobody can send any more is a captured `deadlock`.
//!
//! A notification carries no data, so it is no happens-before edge here (the notified task
//! reads what it needs under a lock, or through a channel, which order it). What is recorded
//! is the notifier's creation and every pending wait (see the [module docs](super)): whoever
//! may hold the notifier (its creator, and tasks and threads it reached through spawns and
//! messages) could notify.

use super::ChannelMeta;
use crate::format::ChannelKind;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Notifies a task, like [`tokio::sync::Notify`], recording waits for notifications.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use hindsight_recorder::sync::Notify;
/// use std::sync::Arc;
///
/// let ready = Arc::new(Notify::named("ready"));
/// let waiter = tokio::spawn({
///     let ready = ready.clone();
///     async move { ready.notified().await }
/// });
/// tokio::task::yield_now().await;
/// ready.notify_one();
/// waiter.await.expect("the waiter was notified");
/// # }
/// ```
pub struct Notify {
    meta: ChannelMeta,
    inner: ::tokio::sync::Notify,
}

impl Notify {
    /// A notifier created here, like [`tokio::sync::Notify::new`].
    #[track_caller]
    #[allow(clippy::new_without_default)] // `Default` could not say where it was created
    pub fn new() -> Notify {
        Notify::make(None, Location::caller())
    }

    /// A notifier named `name` (its identity in reports), created here.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>) -> Notify {
        Notify::make(Some(name.into()), Location::caller())
    }

    fn make(name: Option<Cow<'static, str>>, site: &'static Location<'static>) -> Notify {
        let meta = ChannelMeta::new(name, site);
        meta.record_creation(ChannelKind::Notify);
        Notify { meta, inner: ::tokio::sync::Notify::new() }
    }

    /// Wakes one waiting task, or lets the next wait end at once, like
    /// [`tokio::sync::Notify::notify_one`].
    pub fn notify_one(&self) {
        self.inner.notify_one();
    }

    /// Wakes every task waiting now, like [`tokio::sync::Notify::notify_waiters`].
    pub fn notify_waiters(&self) {
        self.inner.notify_waiters();
    }

    /// Waits for a notification, like [`tokio::sync::Notify::notified`]; a poll that has to
    /// wait is recorded at this call's site.
    #[track_caller]
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            meta: &self.meta,
            at: Location::caller(),
            inner: Box::pin(self.inner.notified()),
        }
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// The future of [`Notify::notified`].
#[must_use = "futures do nothing unless awaited"]
pub struct Notified<'a> {
    meta: &'a ChannelMeta,
    at: &'static Location<'static>,
    // Boxed: tokio's future is not `Unpin`, and a wait for a notification is no hot path.
    inner: Pin<Box<::tokio::sync::futures::Notified<'a>>>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polled = self.inner.as_mut().poll(cx);
        if polled.is_pending() {
            self.meta.record_waiting(self.at);
        }
        polled
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified").field("meta", self.meta).finish_non_exhaustive()
    }
}
