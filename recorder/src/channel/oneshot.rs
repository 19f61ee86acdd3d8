//! tokio's one-shot channel ([`tokio::sync::oneshot`]), recording its one message (see the
//! [module docs](super)).
//!
//! The receiver is awaited like tokio's (`rx.await`); the receipt's site is the `.await`. To
//! poll it from a `select!` or keep it after a timeout, await [`Receiver::recv`] on a
//! `&mut` borrow instead.

use super::{ends, End};
use crate::format::ChannelKind;
use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use ::tokio::sync::oneshot::error;
use error::{RecvError, TryRecvError};

/// A one-shot channel, created here, like [`tokio::sync::oneshot::channel`].
#[track_caller]
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    make(None, Location::caller())
}

/// A one-shot channel named `name` (its identity in reports), created here.
#[track_caller]
pub fn channel_named<T>(name: impl Into<Cow<'static, str>>) -> (Sender<T>, Receiver<T>) {
    make(Some(name.into()), Location::caller())
}

fn make<T>(
    name: Option<Cow<'static, str>>,
    site: &'static Location<'static>,
) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = ends(name, site, ChannelKind::Oneshot, ::tokio::sync::oneshot::channel());
    (Sender(tx), Receiver(rx))
}

// === impl Sender ===

/// Sends the channel's one value.
pub struct Sender<T>(End<::tokio::sync::oneshot::Sender<(u64, T)>>);

impl<T> Sender<T> {
    /// Sends `value`, like [`tokio::sync::oneshot::Sender::send`]: `Err(value)` if the
    /// receiver is gone. The send is recorded at this call's site.
    #[track_caller]
    pub fn send(self, value: T) -> Result<(), T> {
        let message = self.0.meta.tag(Location::caller(), value);
        self.0.inner.send(message).map_err(|(_, value)| value)
    }

    /// Completes when the receiver is gone, like [`tokio::sync::oneshot::Sender::closed`].
    pub async fn closed(&mut self) {
        self.0.inner.closed().await;
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.inner.is_closed()
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("Sender", f)
    }
}

// === impl Receiver ===

/// Receives the channel's one value: await it (`rx.await`).
pub struct Receiver<T>(End<::tokio::sync::oneshot::Receiver<(u64, T)>>);

impl<T> Receiver<T> {
    /// Waits for the value through a borrow, so that the receiver can be polled again (in a
    /// `select!` loop, after a timeout); the receipt is recorded at this call's site.
    #[track_caller]
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { receiver: self, at: Location::caller() }
    }

    /// Takes the value if it was sent, like [`tokio::sync::oneshot::Receiver::try_recv`].
    #[track_caller]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let message = self.0.inner.try_recv()?;
        Ok(self.0.meta.untag(Location::caller(), message))
    }

    /// Waits for the value from synchronous code, blocking the thread, like
    /// [`tokio::sync::oneshot::Receiver::blocking_recv`].
    ///
    /// # Panics
    ///
    /// Like tokio's, when called within an asynchronous execution context.
    #[track_caller]
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        let at = Location::caller();
        self.0.meta.record_waiting(at);
        let message = self.0.inner.blocking_recv()?;
        Ok(self.0.meta.untag(at, message))
    }

    /// Closes the channel: the sender can no longer send.
    pub fn close(&mut self) {
        self.0.inner.close();
    }

    fn poll_at(
        &mut self,
        cx: &mut Context<'_>,
        at: &'static Location<'static>,
    ) -> Poll<Result<T, RecvError>> {
        let end = &mut self.0;
        let polled = Pin::new(&mut end.inner).poll(cx);
        if polled.is_pending() {
            end.meta.record_waiting(at);
        }
        polled.map_ok(|message| end.meta.untag(at, message))
    }
}

impl<T> IntoFuture for Receiver<T> {
    type Output = Result<T, RecvError>;
    type IntoFuture = Received<T>;

    /// Awaiting the receiver: the `.await` is the receipt's site.
    #[track_caller]
    fn into_future(self) -> Received<T> {
        Received { receiver: self, at: Location::caller() }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("Receiver", f)
    }
}

/// The future of awaiting a [`Receiver`]: the value, or an error if the sender was dropped
/// without sending.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Received<T> {
    receiver: Receiver<T>,
    at: &'static Location<'static>,
}

impl<T> Future for Received<T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let at = self.at;
        self.receiver.poll_at(cx, at)
    }
}

/// The future of [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Recv<'a, T> {
    receiver: &'a mut Receiver<T>,
    at: &'static Location<'static>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let at = self.at;
        self.receiver.poll_at(cx, at)
    }
}
