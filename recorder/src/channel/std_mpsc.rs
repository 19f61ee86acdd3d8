//! std's multi-producer, single-consumer channels ([`std::sync::mpsc`]), recording every
//! message sent and received (see the [module docs](super)).
//!
//! The same functions and methods as std's, with std's error types.

use super::ChannelMeta;
use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};
use std::sync::Arc;
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
    let meta = Arc::new(ChannelMeta::new(name, site));
    let (tx, rx) = std::sync::mpsc::channel();
    (Sender { meta: meta.clone(), inner: tx }, Receiver { meta, inner: rx })
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
    let meta = Arc::new(ChannelMeta::new(name, site));
    let (tx, rx) = std::sync::mpsc::sync_channel(bound);
    (SyncSender { meta: meta.clone(), inner: tx }, Receiver { meta, inner: rx })
}

// === impl Sender ===

/// The sending half of an unbounded channel; cloned for more producers.
pub struct Sender<T> {
    meta: Arc<ChannelMeta>,
    inner: std::sync::mpsc::Sender<(u64, T)>,
}

impl<T> Sender<T> {
    /// Sends `value`, like [`std::sync::mpsc::Sender::send`]; recorded at this call's site.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let message = self.meta.sending(Location::caller());
        self.inner.send((message, value)).map_err(|SendError((_, value))| SendError(value))
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender { meta: self.meta.clone(), inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("meta", &self.meta).finish_non_exhaustive()
    }
}

// === impl SyncSender ===

/// The sending half of a bounded channel; cloned for more producers.
pub struct SyncSender<T> {
    meta: Arc<ChannelMeta>,
    inner: std::sync::mpsc::SyncSender<(u64, T)>,
}

impl<T> SyncSender<T> {
    /// Sends `value`, blocking while the channel is full, like
    /// [`std::sync::mpsc::SyncSender::send`]; recorded at this call's site.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let message = self.meta.sending(Location::caller());
        self.inner.send((message, value)).map_err(|SendError((_, value))| SendError(value))
    }

    /// Sends `value` if there is room now, like [`std::sync::mpsc::SyncSender::try_send`].
    /// A failed attempt records a send that nothing receives.
    #[track_caller]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let message = self.meta.sending(Location::caller());
        self.inner.try_send((message, value)).map_err(|e| match e {
            TrySendError::Full((_, value)) => TrySendError::Full(value),
            TrySendError::Disconnected((_, value)) => TrySendError::Disconnected(value),
        })
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        SyncSender { meta: self.meta.clone(), inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSender").field("meta", &self.meta).finish_non_exhaustive()
    }
}

// === impl Receiver ===

/// The receiving half of a channel.
pub struct Receiver<T> {
    meta: Arc<ChannelMeta>,
    inner: std::sync::mpsc::Receiver<(u64, T)>,
}

impl<T> Receiver<T> {
    /// Blocks until a message arrives, like [`std::sync::mpsc::Receiver::recv`]; the receipt
    /// is recorded at this call's site.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        let at = Location::caller();
        let (message, value) = self.inner.recv()?;
        self.meta.received(at, message);
        Ok(value)
    }

    /// Takes a message if one is there now, like [`std::sync::mpsc::Receiver::try_recv`].
    #[track_caller]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let (message, value) = self.inner.try_recv()?;
        self.meta.received(Location::caller(), message);
        Ok(value)
    }

    /// Waits at most `timeout` for a message, like
    /// [`std::sync::mpsc::Receiver::recv_timeout`].
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let at = Location::caller();
        let (message, value) = self.inner.recv_timeout(timeout)?;
        self.meta.received(at, message);
        Ok(value)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("meta", &self.meta).finish_non_exhaustive()
    }
}
