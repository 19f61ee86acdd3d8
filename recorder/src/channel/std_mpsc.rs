//! std's multi-producer, single-consumer channels ([`std::sync::mpsc`]), recording every
//! message sent and received (see the [module docs](super)).
//!
//! The same functions and methods as std's, with std's error types.

use super::{ends, End};
use crate::format::ChannelKind;
use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};
use std::time::Duration;

/// An unbounded channel, created here, like [`std::sync::mpsc::channel`].
#[track_caller]
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    unbounded(None, Location::caller())
}

/// An unbounded channel named `name` (its identity in reports), created here.
#[track_caller]
pub fn channel_named<T>(name: impl Into<Cow<'static, str>>) -> (Sender<T>, Receiver<T>) {
    unbounded(Some(name.into()), Location::caller())
}

fn unbounded<T>(
    name: Option<Cow<'static, str>>,
    site: &'static Location<'static>,
) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = ends(name, site, ChannelKind::Queue, std::sync::mpsc::channel());
    (Sender(tx), Receiver(rx))
}

/// A bounded channel of `bound` messages (0: a rendezvous), created here, like
/// [`std::sync::mpsc::sync_channel`].
#[track_caller]
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    bounded(None, bound, Location::caller())
}

/// A bounded channel named `name` (its identity in reports), created here.
#[track_caller]
pub fn sync_channel_named<T>(
    name: impl Into<Cow<'static, str>>,
    bound: usize,
) -> (SyncSender<T>, Receiver<T>) {
    bounded(Some(name.into()), bound, Location::caller())
}

fn bounded<T>(
    name: Option<Cow<'static, str>>,
    bound: usize,
    site: &'static Location<'static>,
) -> (SyncSender<T>, Receiver<T>) {
    let (tx, rx) = ends(name, site, ChannelKind::Queue, std::sync::mpsc::sync_channel(bound));
    (SyncSender(tx), Receiver(rx))
}

// === impl Sender ===

/// The sending half of an unbounded channel; cloned for more producers.
pub struct Sender<T>(End<std::sync::mpsc::Sender<(u64, T)>>);

impl<T> Sender<T> {
    /// Sends `value`, like [`std::sync::mpsc::Sender::send`]; recorded at this call's site.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .inner
            .send(self.0.meta.tag(Location::caller(), value))
            .map_err(|SendError((_, value))| SendError(value))
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

// === impl SyncSender ===

/// The sending half of a bounded channel; cloned for more producers.
pub struct SyncSender<T>(End<std::sync::mpsc::SyncSender<(u64, T)>>);

impl<T> SyncSender<T> {
    /// Sends `value`, blocking while the channel is full, like
    /// [`std::sync::mpsc::SyncSender::send`]; recorded at this call's site.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .inner
            .send(self.0.meta.tag(Location::caller(), value))
            .map_err(|SendError((_, value))| SendError(value))
    }

    /// Sends `value` if there is room now, like [`std::sync::mpsc::SyncSender::try_send`].
    /// A failed attempt records a send that nothing receives.
    #[track_caller]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.0.inner.try_send(self.0.meta.tag(Location::caller(), value)).map_err(|e| match e {
            TrySendError::Full((_, value)) => TrySendError::Full(value),
            TrySendError::Disconnected((_, value)) => TrySendError::Disconnected(value),
        })
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        SyncSender(self.0.clone())
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("SyncSender", f)
    }
}

// === impl Receiver ===

/// The receiving half of a channel.
pub struct Receiver<T>(End<std::sync::mpsc::Receiver<(u64, T)>>);

impl<T> Receiver<T> {
    /// Blocks until a message arrives, like [`std::sync::mpsc::Receiver::recv`]; the receipt
    /// is recorded at this call's site.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        let at = Location::caller();
        let message = match self.0.inner.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {
                self.0.meta.record_waiting(at);
                self.0.inner.recv()?
            }
        };
        Ok(self.0.meta.untag(at, message))
    }

    /// Takes a message if one is there now, like [`std::sync::mpsc::Receiver::try_recv`].
    #[track_caller]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let message = self.0.inner.try_recv()?;
        Ok(self.0.meta.untag(Location::caller(), message))
    }

    /// Waits at most `timeout` for a message, like
    /// [`std::sync::mpsc::Receiver::recv_timeout`].
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let at = Location::caller();
        let message = self.0.inner.recv_timeout(timeout)?;
        Ok(self.0.meta.untag(at, message))
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_as("Receiver", f)
    }
}
