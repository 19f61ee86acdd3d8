//! Channels that record their messages: tokio's [`mpsc`] and [`oneshot`], and std's
//! [`std_mpsc`], with the APIs of the channels they wrap.
//!
//! A message is a happens-before edge: everything the sender did before sending is ordered
//! before everything the receiver does after receiving it. The race detector needs that edge
//! to know that state handed over through a channel is not raced on. Each message carries a
//! unique id through the channel (the wrapped channel carries `(id, T)`); sending records a
//! [`Send`](crate::format::EventKind::Send) event and receiving a
//! [`Receive`](crate::format::EventKind::Receive) event, each with the channel, the message
//! id, the acting thread and task, and the caller's site (`#[track_caller]`: the line of the
//! `send` or `recv` call, or of the `.await` of a oneshot receiver).
//!
//! Creating a channel records a [`ChannelCreated`](crate::format::EventKind::ChannelCreated)
//! event, and a receive that has to wait records a
//! [`ReceiveWaiting`](crate::format::EventKind::ReceiveWaiting) event (a task: each poll that
//! returns pending there; a thread: before it blocks). From those the analyzer tells a task
//! that awaits a reply nobody can send any more: a captured `deadlock` through channels.
//!
//! The send is recorded right before the message enters the channel, so it always comes
//! before its receipt in the trace. A send that then fails (the receiver is gone) leaves a
//! recorded send that nothing receives, which orders nothing. While no recorder records, a
//! message carries id 0 and nothing is recorded; a message sent so is received unrecorded.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use hindsight_recorder::channel::mpsc;
//!
//! let (tx, mut rx) = mpsc::channel_named("jobs", 8);
//! let producer = hindsight_recorder::task::spawn("producer", async move {
//!     let job = vec![1, 2, 3]; // built here...
//!     tx.send(job).await.expect("the receiver is alive");
//! });
//! let mut job = rx.recv().await.expect("one job"); // ...and owned here: no race
//! job.push(4);
//! producer.await.expect("the producer finished");
//! assert_eq!(job, [1, 2, 3, 4]);
//! # }
//! ```

pub mod mpsc;
pub(crate) mod notify;
pub mod oneshot;
pub mod std_mpsc;

use crate::defined::Defined;
use crate::format::{ChannelId, ChannelKind, EventKind};
use crate::local::{self, Ctx};
use crate::registry::Entity;
use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The next message id; ids are unique in the process, so within every trace.
static NEXT_MESSAGE: AtomicU64 = AtomicU64::new(1);

/// What both halves of a recorded channel share: its identity in the session.
pub(crate) struct ChannelMeta {
    id: Defined,
    name: Option<Cow<'static, str>>,
    site: &'static Location<'static>,
}

impl fmt::Debug for ChannelMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelMeta")
            .field("name", &self.name)
            .field("site", &format_args!("{}", self.site))
            .finish_non_exhaustive()
    }
}

impl Drop for ChannelMeta {
    /// Both ends of the channel are gone: the session may forget it.
    fn drop(&mut self) {
        self.id.retire(|id| Entity::Channel(ChannelId(id)));
    }
}

impl ChannelMeta {
    /// A channel created at `site`.
    fn new(name: Option<Cow<'static, str>>, site: &'static Location<'static>) -> ChannelMeta {
        ChannelMeta { id: Defined::new(), name, site }
    }

    /// The channel's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The channel's id in the session, defined on first use.
    #[inline]
    fn id(&self, ctx: &mut Ctx<'_>) -> ChannelId {
        ChannelId(self.id.get(ctx, self.site, |registry, site| {
            registry.channel(self.name.as_deref(), Some(site)).0
        }))
    }

    /// `value` is about to be sent at `at`: records the send and returns the message that
    /// carries it through the wrapped channel, with its id (0 when nothing records).
    #[inline]
    pub(crate) fn tag<T>(&self, at: &'static Location<'static>, value: T) -> (u64, T) {
        let message = local::with(|ctx| {
            let channel = self.id(ctx);
            let site = ctx.site(at);
            let message = NEXT_MESSAGE.fetch_add(1, Ordering::Relaxed);
            ctx.record(EventKind::Send { channel, message, site });
            message
        })
        .unwrap_or(0);
        (message, value)
    }

    /// The channel, of `kind`, was created here: records its creation by the current actor.
    fn record_creation(&self, kind: ChannelKind) {
        local::with(|ctx| {
            let channel = self.id(ctx);
            ctx.record(EventKind::ChannelCreated { channel, kind });
        });
    }

    /// The actor waits for a message at `at`: a task's receive returned pending, or a thread
    /// is about to block in one.
    #[inline]
    pub(crate) fn record_waiting(&self, at: &'static Location<'static>) {
        local::with(|ctx| {
            let channel = self.id(ctx);
            let site = ctx.site(at);
            ctx.record(EventKind::ReceiveWaiting { channel, site });
        });
    }

    /// `message` came out of the wrapped channel at `at`: records the receipt (unless it was
    /// sent while nothing recorded) and returns the value it carried.
    #[inline]
    pub(crate) fn untag<T>(&self, at: &'static Location<'static>, (message, value): (u64, T)) -> T {
        if message != 0 {
            local::with(|ctx| {
                let channel = self.id(ctx);
                let site = ctx.site(at);
                ctx.record(EventKind::Receive { channel, message, site });
            });
        }
        value
    }
}

// === impl End ===

/// One end of a recorded channel, what every public sender and receiver wraps: the wrapped
/// end (which carries `(message id, value)`) and the channel's identity, shared by both ends.
pub(crate) struct End<I> {
    meta: Arc<ChannelMeta>,
    inner: I,
}

/// Both ends of a channel of `kind` named `name` created at `site`, around the wrapped ends
/// `tx`, `rx`; records the creation.
pub(crate) fn ends<S, R>(
    name: Option<Cow<'static, str>>,
    site: &'static Location<'static>,
    kind: ChannelKind,
    (tx, rx): (S, R),
) -> (End<S>, End<R>) {
    let meta = Arc::new(ChannelMeta::new(name, site));
    meta.record_creation(kind);
    (End { meta: meta.clone(), inner: tx }, End { meta, inner: rx })
}

impl<I> End<I> {
    /// Formats the end as the public type `name` shows it.
    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name).field("meta", &self.meta).finish_non_exhaustive()
    }
}

impl<I: Clone> Clone for End<I> {
    fn clone(&self) -> Self {
        End { meta: self.meta.clone(), inner: self.inner.clone() }
    }
}
