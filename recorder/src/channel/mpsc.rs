//! tokio's multi-producer, single-consumer channels ([`tokio::sync::mpsc`]), recording every
//! message sent and received (see the [module docs](super)).
//!
//! The same functions and methods as tokio's, with the same semantics (capacity, closing,
//! cancel safety of `recv` and `send`) and tokio's [`error`] types; channels can be given a
//! name (`channel_named("jobs", 16)`).

use super::{ends, End};
use crate::format::ChannelKind;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::task::{Context, Poll};

pub use ::tokio::sync::mpsc::error;
use error::{SendError, TryRecvError, TrySendError};

/// A bounded channel of `buffer` messages, created here, like
/// [`tokio::sync::mpsc::channel`].
///
/// # Panics
///
/// Like tokio's, when `buffer` is 0.
#[track_caller]
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    bounded(None, buffer, Location::caller())
}

/// A bounded channel named `name` (its identity in reports), created here.
///
/// # Panics
///
/// Like tokio's, when `buffer` is 0.
#[track_caller]
pub fn channel_named<T>(
    name: impl Into<Cow<'static, str>>,
    buffer: usize,
) -> (Sender<T>, Receiver<T>) {
    bounded(Some(name.into()), buffer, Location::caller())
}

fn bounded<T>(
    name: Option<Cow<'static, str>>,
    buffer: usize,
    site: &'static Location<'static>,
) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = ends(name, site, ChannelKind::Queue, ::tokio::sync::mpsc::channel(buffer));
    (Sender(tx), Receiver(rx))
}

/// An unbounded channel, created here, like [`tokio::sync::mpsc::unbounded_channel`].
#[track_caller]
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    unbounded(None, Location::caller())
}

/// An unbounded channel named `name` (its identity in reports), created here.
#[track_caller]
pub fn unbounded_channel_named<T>(
    name: impl Into<Cow<'static, str>>,
) -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    unbounded(Some(name.into()), Location::caller())
}

fn unbounded<T>(
    name: Option<Cow<'static, str>>,
    site: &'static Location<'static>,
) -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = ends(name, site, ChannelKind::Queue, ::tokio::sync::mpsc::unbounded_channel());
    (UnboundedSender(tx), UnboundedReceiver(rx))
}

// === impl Sender ===

/// The sending half of a bounded channel; cloned for more producers.
pub struct Sender<T>(End<::tokio::sync::mpsc::Sender<(u64, T)>>);

impl<T> Sender<T> {
    /// Sends `value`, waiting for capacity, like [`tokio::sync::mpsc::Sender::send`]; the
    /// send is recorded at this call's site once there is room.
    #[track_caller]
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        let at = Location::caller();
        async move {
            match self.0.inner.reserve().await {
                Ok(permit) => {
                    permit.send(self.0.meta.tag(at, value));
                    Ok(())
                }
                Err(SendError(())) => Err(SendError(value)),
            }
        }
    }

    /// Sends `value` if there is room now, like [`tokio::sync::mpsc::Sender::try_send`].
    #[track_caller]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let at = Location::caller();
        match self.0.inner.try_reserve() {
            Ok(permit) => {
                permit.send(self.0.meta.tag(at, value));
                Ok(())
            }
            Err(TrySendError::Full(())) => Err(TrySendError::Full(value)),
            Err(TrySendError::Closed(())) => Err(TrySendError::Closed(value)),
        }
    }

    /// Sends `value` from synchronous code, blocking the thread until there is room, like
    /// [`tokio::sync::mpsc::Sender::blocking_send`].
    ///
    /// # Panics
    ///
    /// Like tokio's, when called within an asynchronous execution context.
    #[track_caller]
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .inner
            .blocking_send(self.0.meta.tag(Location::caller(), value))
            .map_err(|SendError((_, value))| SendError(value))
    }

    /// Completes when the receiver is gone, like [`tokio::sync::mpsc::Sender::closed`].
    pub async fn closed(&self) {
        self.0.inner.closed().await;
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.inner.is_closed()
    }

    /// Room left for messages now.
    pub fn capacity(&self) -> usize {
        self.0.inner.capacity()
    }

    /// The channel's buffer size.
    pub fn max_capacity(&self) -> usize {
        self.0.inner.max_capacity()
    }

    /// Whether both senders send on one channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        self.0.inner.same_channel(&other.0.inner)
    }

    /// The name given to the channel, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.meta.name()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("Sender", f)
    }
}

// === impl Receiver ===

/// The receiving half of a bounded channel.
pub struct Receiver<T>(End<::tokio::sync::mpsc::Receiver<(u64, T)>>);

impl<T> Receiver<T> {
    /// Receives the next message, like [`tokio::sync::mpsc::Receiver::recv`] (cancel safe);
    /// `None` once every sender is gone and the channel is empty. The receipt is recorded at
    /// this call's site.
    #[track_caller]
    pub fn recv(&mut self) -> impl Future<Output = Option<T>> + '_ {
        self.0.recv_at(Location::caller())
    }

    /// Receives a message if one is there now, like
    /// [`tokio::sync::mpsc::Receiver::try_recv`].
    #[track_caller]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv_at(Location::caller())
    }

    /// Receives the next message from synchronous code, blocking the thread, like
    /// [`tokio::sync::mpsc::Receiver::blocking_recv`].
    ///
    /// # Panics
    ///
    /// Like tokio's, when called within an asynchronous execution context.
    #[track_caller]
    pub fn blocking_recv(&mut self) -> Option<T> {
        self.0.blocking_recv_at(Location::caller())
    }

    /// Closes the channel to new messages; those sent already can still be received.
    pub fn close(&mut self) {
        self.0.inner.close();
    }

    /// Whether the channel is closed (by [`close`](Self::close) or every sender gone).
    pub fn is_closed(&self) -> bool {
        self.0.inner.is_closed()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.inner.is_empty()
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.0.inner.len()
    }

    /// The name given to the channel, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.meta.name()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("Receiver", f)
    }
}

// === impl UnboundedSender ===

/// The sending half of an unbounded channel; cloned for more producers.
pub struct UnboundedSender<T>(End<::tokio::sync::mpsc::UnboundedSender<(u64, T)>>);

impl<T> UnboundedSender<T> {
    /// Sends `value` without waiting, like [`tokio::sync::mpsc::UnboundedSender::send`]; the
    /// send is recorded at this call's site.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .inner
            .send(self.0.meta.tag(Location::caller(), value))
            .map_err(|SendError((_, value))| SendError(value))
    }

    /// Completes when the receiver is gone.
    pub async fn closed(&self) {
        self.0.inner.closed().await;
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.inner.is_closed()
    }

    /// Whether both senders send on one channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        self.0.inner.same_channel(&other.0.inner)
    }

    /// The name given to the channel, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.meta.name()
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        UnboundedSender(self.0.clone())
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("UnboundedSender", f)
    }
}

// === impl UnboundedReceiver ===

/// The receiving half of an unbounded channel.
pub struct UnboundedReceiver<T>(End<::tokio::sync::mpsc::UnboundedReceiver<(u64, T)>>);

impl<T> UnboundedReceiver<T> {
    /// Receives the next message, like [`tokio::sync::mpsc::UnboundedReceiver::recv`]
    /// (cancel safe); `None` once every sender is gone and the channel is empty. The receipt
    /// is recorded at this call's site.
    #[track_caller]
    pub fn recv(&mut self) -> impl Future<Output = Option<T>> + '_ {
        self.0.recv_at(Location::caller())
    }

    /// Receives a message if one is there now.
    #[track_caller]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv_at(Location::caller())
    }

    /// Receives the next message from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called within an asynchronous execution context.
    #[track_caller]
    pub fn blocking_recv(&mut self) -> Option<T> {
        self.0.blocking_recv_at(Location::caller())
    }

    /// Closes the channel to new messages; those sent already can still be received.
    pub fn close(&mut self) {
        self.0.inner.close();
    }

    /// Whether the channel is closed (by [`close`](Self::close) or every sender gone).
    pub fn is_closed(&self) -> bool {
        self.0.inner.is_closed()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.inner.is_empty()
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.0.inner.len()
    }

    /// The name given to the channel, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.meta.name()
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("UnboundedReceiver", f)
    }
}

// === the receivers' recorded receives, written once for both ===

/// What both of tokio's receivers offer, so that their recorded receives are written once.
trait Inbox<T> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, T)>>;
    fn try_recv(&mut self) -> Result<(u64, T), TryRecvError>;
    fn blocking_recv(&mut self) -> Option<(u64, T)>;
}

impl<T> Inbox<T> for ::tokio::sync::mpsc::Receiver<(u64, T)> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, T)>> {
        ::tokio::sync::mpsc::Receiver::poll_recv(self, cx)
    }

    fn try_recv(&mut self) -> Result<(u64, T), TryRecvError> {
        ::tokio::sync::mpsc::Receiver::try_recv(self)
    }

    fn blocking_recv(&mut self) -> Option<(u64, T)> {
        ::tokio::sync::mpsc::Receiver::blocking_recv(self)
    }
}

impl<T> Inbox<T> for ::tokio::sync::mpsc::UnboundedReceiver<(u64, T)> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, T)>> {
        ::tokio::sync::mpsc::UnboundedReceiver::poll_recv(self, cx)
    }

    fn try_recv(&mut self) -> Result<(u64, T), TryRecvError> {
        ::tokio::sync::mpsc::UnboundedReceiver::try_recv(self)
    }

    fn blocking_recv(&mut self) -> Option<(u64, T)> {
        ::tokio::sync::mpsc::UnboundedReceiver::blocking_recv(self)
    }
}

impl<R> End<R> {
    /// Receives the next message at `at`, recording each poll that waits and the receipt.
    fn recv_at<T>(&mut self, at: &'static Location<'static>) -> impl Future<Output = Option<T>> + '_
    where
        R: Inbox<T>,
    {
        std::future::poll_fn(move |cx| {
            let polled = self.inner.poll_recv(cx);
            if polled.is_pending() {
                self.meta.record_waiting(at);
            }
            polled.map(|message| Some(self.meta.untag(at, message?)))
        })
    }

    /// Receives a message if one is there now, recording the receipt at `at`.
    fn try_recv_at<T>(&mut self, at: &'static Location<'static>) -> Result<T, TryRecvError>
    where
        R: Inbox<T>,
    {
        let message = self.inner.try_recv()?;
        Ok(self.meta.untag(at, message))
    }

    /// Receives the next message at `at`, blocking the thread; records the wait (if it has
    /// to) and the receipt.
    fn blocking_recv_at<T>(&mut self, at: &'static Location<'static>) -> Option<T>
    where
        R: Inbox<T>,
    {
        let message = match self.inner.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                self.meta.record_waiting(at);
                self.inner.blocking_recv()?
            }
        };
        Some(self.meta.untag(at, message))
    }
}
