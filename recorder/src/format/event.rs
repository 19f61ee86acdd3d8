//! The event vocabulary: what happened, when, on which thread and in which task.
//!
//! This is the in-memory form readers hand out and writers take. Its encoding on disk is the
//! private concern of the version module (`v2`, and `v1` for older files); changing a variant
//! here means changing the encoding there and bumping [`FORMAT_VERSION`](super::FORMAT_VERSION).

use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU64;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// A mutex, a write lock, or a semaphore permit.
    Exclusive,
    /// A read lock of a rwlock.
    Shared,
}

/// One recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Monotonic nanoseconds since the trace's start (see [`Header::start_unix_ns`](super::Header)).
    pub time_ns: u64,
    /// The OS thread the event happened on.
    pub thread: ThreadId,
    /// The task that was being polled on that thread, if any.
    pub task: Option<TaskId>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. The acting thread and task are those of the [`Event`].
///
/// The variant is a byte of its own (`repr(u8)`), which makes a `match` on it one byte load
/// and one jump: the analyzer matches every replayed event's kind several times, and a tag
/// hidden in another field's unused values (as Rust lays enums out by default) costs three
/// more instructions each time. Such an enum lays each variant's fields out in the order
/// written, so the small fields come before `seq`, which keeps the kind at 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    /// The actor started waiting for `lock`. Not recorded when the lock was free at once: an
    /// acquisition with no request before it was uncontended.
    LockRequested {
        /// The lock waited for.
        lock: LockId,
        /// The mode asked for.
        mode: LockMode,
        /// Where the lock was asked for.
        site: SiteId,
    },
    /// The actor got `lock`.
    LockAcquired {
        /// The lock acquired.
        lock: LockId,
        /// The mode it is held in.
        mode: LockMode,
        /// Acquired by a non-blocking attempt (`try_lock`), which cannot deadlock.
        via_try: bool,
        /// Where it was acquired.
        site: SiteId,
        /// The lock's operation sequence number, taken while it was held: acquisitions and
        /// releases of one lock are totally ordered by it (see the module docs on ordering).
        /// Numbers start at 1. `None` for locks whose order the recorder cannot observe (a lock
        /// between processes).
        seq: Option<NonZeroU64>,
    },
    /// A non-blocking attempt to take `lock` failed.
    LockTryFailed {
        /// The lock that was busy.
        lock: LockId,
        /// The mode asked for.
        mode: LockMode,
        /// Where the attempt was made.
        site: SiteId,
    },
    /// The actor released `lock` (its guard was dropped).
    LockReleased {
        /// The lock released.
        lock: LockId,
        /// The mode it had been held in.
        mode: LockMode,
        /// Released while the holder was panicking: the lock is poisoned.
        poisoned: bool,
        /// The lock's operation sequence number, taken before the lock was really released.
        seq: Option<NonZeroU64>,
    },
    /// The actor spawned `task`.
    TaskSpawned {
        /// The new task.
        task: TaskId,
        /// Where it was spawned.
        site: Option<SiteId>,
    },
    /// The event's task started being polled on the event's thread.
    PollStarted,
    /// The event's task returned from a poll: `ready` if it completed, else it is suspended at
    /// an `.await`.
    PollEnded {
        /// The poll returned `Poll::Ready`.
        ready: bool,
    },
    /// The event's task finished (its future completed, was cancelled, or panicked).
    TaskFinished {
        /// The task was aborted or its future panicked.
        cancelled: bool,
    },
    /// The actor observed the end of `task` by awaiting its join handle.
    TaskJoined {
        /// The task joined.
        task: TaskId,
        /// Where it was awaited.
        site: Option<SiteId>,
    },
    /// The actor started waiting for `task` to finish (awaiting its handle).
    TaskJoinRequested {
        /// The task awaited.
        task: TaskId,
        /// Where it was awaited.
        site: Option<SiteId>,
    },
    /// The actor woke `task`.
    Wake {
        /// The task woken.
        task: TaskId,
        /// `wake_by_ref` rather than `wake`.
        by_ref: bool,
    },
    /// The actor spawned the OS thread `thread`.
    ThreadSpawned {
        /// The new thread.
        thread: ThreadId,
        /// Where it was spawned.
        site: Option<SiteId>,
    },
    /// The event's thread started running.
    ThreadStarted,
    /// The event's thread finished.
    ThreadFinished {
        /// The thread's closure panicked.
        panicked: bool,
    },
    /// The actor started waiting for `thread` to finish.
    ThreadJoinRequested {
        /// The thread joined.
        thread: ThreadId,
        /// Where `join` was called.
        site: Option<SiteId>,
    },
    /// The actor observed the end of `thread` through `join`.
    ThreadJoined {
        /// The thread joined.
        thread: ThreadId,
        /// Where `join` was called.
        site: Option<SiteId>,
    },
    /// The actor sent message `message` on `channel`.
    Send {
        /// The channel.
        channel: ChannelId,
        /// The message id, unique within the trace.
        message: u64,
        /// Where it was sent.
        site: SiteId,
    },
    /// The actor received message `message` from `channel`.
    Receive {
        /// The channel.
        channel: ChannelId,
        /// The message id, as sent.
        message: u64,
        /// Where it was received.
        site: SiteId,
    },
    /// The actor read the annotated variable `var`.
    Read {
        /// The variable.
        var: VarId,
        /// Where it was read.
        site: SiteId,
    },
    /// The actor wrote the annotated variable `var`.
    Write {
        /// The variable.
        var: VarId,
        /// Where it was written.
        site: SiteId,
    },
    /// A release annotation on a synchronisation object (an atomic store with release order).
    SyncRelease {
        /// The synchronisation object.
        var: VarId,
        /// Where.
        site: SiteId,
    },
    /// An acquire annotation on a synchronisation object (an atomic load with acquire order).
    SyncAcquire {
        /// The synchronisation object.
        var: VarId,
        /// Where.
        site: SiteId,
    },
    /// A user annotation: an incident marker, a phase name, a dump trigger.
    Mark {
        /// The label.
        label: StringId,
        /// Where it was made, if known.
        site: Option<SiteId>,
    },
    /// The recorder lost `dropped` events of this thread here (its buffer was full).
    Gap {
        /// How many events were lost.
        dropped: u64,
    },
    /// The actor panicked at `site` (where known). Its stack unwinds from here and drops the
    /// guards it holds: a std lock is poisoned, but an async lock (tokio's do not poison) is
    /// handed to the next holder with its data as the panic left it.
    Panicked {
        /// Where the panic was raised.
        site: Option<SiteId>,
    },
    /// The event's task is about to suspend at the `.await` at `site`: the leaf future that
    /// returned pending (a hindsight lock future, tokio's `Sleep`, an annotated await) said
    /// where it was awaited. Comes before the pending poll end it explains.
    AwaitPending {
        /// The `.await`'s site.
        site: SiteId,
    },
    /// A semaphore's permits changed other than by a one-permit acquisition or release
    /// (see [`PermitOp`]).
    Permits {
        /// The semaphore.
        lock: LockId,
        /// What happened to its permits.
        op: PermitOp,
        /// How many permits.
        count: u32,
    },
    /// The thread spent `cpu_ns` on a CPU, and `runnable_ns` runnable but waiting for one,
    /// during the poll that its next poll end ends. Recorded only for polls that ran long;
    /// the rest of the poll's time it waited off the CPU (a blocking call, a sleep).
    PollCpu {
        /// CPU time used during the poll.
        cpu_ns: u64,
        /// Time spent runnable, waiting for a CPU (the scheduler's run-queue delay).
        runnable_ns: u64,
    },
    /// The recorder stopped cleanly (the program ended or stopped recording). A trace of
    /// version 3 or later without this event ended mid-flight: the process was killed, or
    /// the trace is a flight recorder's dump, and what was held then is the state at the end.
    RecordingEnded,
    /// The actor created `channel`, a channel of `kind`. Its sending end starts with the
    /// creator: where it goes from there (with messages, into spawned tasks) tells who could
    /// still send on it. Version 4.
    ChannelCreated {
        /// The channel.
        channel: ChannelId,
        /// What sort of channel it is.
        kind: ChannelKind,
    },
    /// The actor is about to wait for a message on `channel`: a task's receive returned
    /// pending (the record comes before the poll end it explains, and is written again by
    /// every poll that stays pending there), or a thread is about to block in a receive. The
    /// wait ends with the actor's [`Receive`](EventKind::Receive) on the channel, or, for a
    /// task, with a later poll that does not wait there again. Version 4.
    ReceiveWaiting {
        /// The channel.
        channel: ChannelId,
        /// Where the receive is awaited or called.
        site: SiteId,
    },
}

/// What sort of channel a [`EventKind::ChannelCreated`] event created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ChannelKind {
    /// A one-shot channel: one value, usually a reply that someone awaits.
    Oneshot,
    /// A queue of messages from any number of senders (tokio's or std's `mpsc`): a receiver
    /// waiting on it is often just idle.
    Queue,
    /// A notifier (tokio's `Notify`): no messages, only wake-ups; a task waiting on it is
    /// often just idle, like a queue's receiver.
    Notify,
}

impl ChannelKind {
    /// Every kind, in the order of their encoding.
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Oneshot, ChannelKind::Queue, ChannelKind::Notify];

    /// A short stable name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Oneshot => "oneshot",
            ChannelKind::Queue => "queue",
            ChannelKind::Notify => "notify",
        }
    }
}

/// What happened to a semaphore's permits, in an [`EventKind::Permits`] event. Acquisitions
/// and releases are lock events; these say what a lock event cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum PermitOp {
    /// The actor's latest acquisition of the semaphore took `count` permits (written right
    /// after that acquisition, only when `count` is not 1). Its release gives them all back.
    Acquired,
    /// The actor forgot its hold (`SemaphorePermit::forget`): the hold ends here, and its
    /// `count` permits are gone until someone adds permits.
    Forgotten,
    /// `count` permits were added (`add_permits`): forgotten permits come back, or the pool
    /// grows.
    Added,
    /// The semaphore was closed: waiters fail, and nobody acquires it any more.
    Closed,
}

impl PermitOp {
    /// Every op, in the order of their encoding.
    pub const ALL: [PermitOp; 4] =
        [PermitOp::Acquired, PermitOp::Forgotten, PermitOp::Added, PermitOp::Closed];

    /// A short stable name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            PermitOp::Acquired => "acquired",
            PermitOp::Forgotten => "forgotten",
            PermitOp::Added => "added",
            PermitOp::Closed => "closed",
        }
    }
}

impl EventKind {
    /// A short stable name of the event's kind, as `hindsight info` counts them.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::LockRequested { .. } => "lock_requested",
            EventKind::LockAcquired { .. } => "lock_acquired",
            EventKind::LockTryFailed { .. } => "lock_try_failed",
            EventKind::LockReleased { .. } => "lock_released",
            EventKind::TaskSpawned { .. } => "task_spawned",
            EventKind::PollStarted => "poll_started",
            EventKind::PollEnded { .. } => "poll_ended",
            EventKind::TaskFinished { .. } => "task_finished",
            EventKind::TaskJoined { .. } => "task_joined",
            EventKind::TaskJoinRequested { .. } => "task_join_requested",
            EventKind::Wake { .. } => "wake",
            EventKind::ThreadSpawned { .. } => "thread_spawned",
            EventKind::ThreadStarted => "thread_started",
            EventKind::ThreadFinished { .. } => "thread_finished",
            EventKind::ThreadJoinRequested { .. } => "thread_join_requested",
            EventKind::ThreadJoined { .. } => "thread_joined",
            EventKind::Send { .. } => "send",
            EventKind::Receive { .. } => "receive",
            EventKind::Read { .. } => "read",
            EventKind::Write { .. } => "write",
            EventKind::SyncRelease { .. } => "sync_release",
            EventKind::SyncAcquire { .. } => "sync_acquire",
            EventKind::Mark { .. } => "mark",
            EventKind::Gap { .. } => "gap",
            EventKind::Panicked { .. } => "panicked",
            EventKind::AwaitPending { .. } => "await_pending",
            EventKind::Permits { .. } => "permits",
            EventKind::PollCpu { .. } => "poll_cpu",
            EventKind::RecordingEnded => "recording_ended",
            EventKind::ChannelCreated { .. } => "channel_created",
            EventKind::ReceiveWaiting { .. } => "receive_waiting",
        }
    }

    /// The lock this event is about, if it is a lock event.
    pub fn lock(&self) -> Option<LockId> {
        match *self {
            EventKind::LockRequested { lock, .. }
            | EventKind::LockAcquired { lock, .. }
            | EventKind::LockTryFailed { lock, .. }
            | EventKind::LockReleased { lock, .. } => Some(lock),
            _ => None,
        }
    }

    /// The lock sequence number of an acquisition or release, if recorded.
    #[inline]
    pub fn lock_seq(&self) -> Option<(LockId, NonZeroU64)> {
        match *self {
            EventKind::LockAcquired { lock, seq: Some(seq), .. }
            | EventKind::LockReleased { lock, seq: Some(seq), .. } => Some((lock, seq)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_kind_is_24_bytes_and_an_event_48() {
        assert_eq!(std::mem::size_of::<EventKind>(), 24);
        assert_eq!(std::mem::size_of::<Event>(), 48);
    }
}
