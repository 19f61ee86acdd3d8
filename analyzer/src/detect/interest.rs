//! Which events a detector looks at, so that replay shows each event only to the detectors
//! that want its kind (most detectors ignore most events, and a call per detector per event
//! is a large part of the cost of replaying a long trace).

use hindsight_recorder::format::EventKind;

/// A set of kinds of events; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u32);

/// How many kinds of events there are.
pub(crate) const KINDS: usize = 31;

impl Interest {
    /// Every event.
    pub const ALL: Interest = Interest((1 << KINDS) - 1);
    /// No event: the detector reads only the state at the end.
    pub const NONE: Interest = Interest(0);
    /// [`EventKind::LockRequested`].
    pub const LOCK_REQUESTED: Interest = Interest(1 << 0);
    /// [`EventKind::LockAcquired`].
    pub const LOCK_ACQUIRED: Interest = Interest(1 << 1);
    /// [`EventKind::LockTryFailed`].
    pub const LOCK_TRY_FAILED: Interest = Interest(1 << 2);
    /// [`EventKind::LockReleased`].
    pub const LOCK_RELEASED: Interest = Interest(1 << 3);
    /// [`EventKind::TaskSpawned`].
    pub const TASK_SPAWNED: Interest = Interest(1 << 4);
    /// [`EventKind::PollStarted`].
    pub const POLL_STARTED: Interest = Interest(1 << 5);
    /// [`EventKind::PollEnded`].
    pub const POLL_ENDED: Interest = Interest(1 << 6);
    /// [`EventKind::TaskFinished`].
    pub const TASK_FINISHED: Interest = Interest(1 << 7);
    /// [`EventKind::TaskJoined`].
    pub const TASK_JOINED: Interest = Interest(1 << 8);
    /// [`EventKind::TaskJoinRequested`].
    pub const TASK_JOIN_REQUESTED: Interest = Interest(1 << 9);
    /// [`EventKind::Wake`].
    pub const WAKE: Interest = Interest(1 << 10);
    /// [`EventKind::ThreadSpawned`].
    pub const THREAD_SPAWNED: Interest = Interest(1 << 11);
    /// [`EventKind::ThreadStarted`].
    pub const THREAD_STARTED: Interest = Interest(1 << 12);
    /// [`EventKind::ThreadFinished`].
    pub const THREAD_FINISHED: Interest = Interest(1 << 13);
    /// [`EventKind::ThreadJoinRequested`].
    pub const THREAD_JOIN_REQUESTED: Interest = Interest(1 << 14);
    /// [`EventKind::ThreadJoined`].
    pub const THREAD_JOINED: Interest = Interest(1 << 15);
    /// [`EventKind::Send`].
    pub const SEND: Interest = Interest(1 << 16);
    /// [`EventKind::Receive`].
    pub const RECEIVE: Interest = Interest(1 << 17);
    /// [`EventKind::Read`].
    pub const READ: Interest = Interest(1 << 18);
    /// [`EventKind::Write`].
    pub const WRITE: Interest = Interest(1 << 19);
    /// [`EventKind::SyncRelease`].
    pub const SYNC_RELEASE: Interest = Interest(1 << 20);
    /// [`EventKind::SyncAcquire`].
    pub const SYNC_ACQUIRE: Interest = Interest(1 << 21);
    /// [`EventKind::Mark`].
    pub const MARK: Interest = Interest(1 << 22);
    /// [`EventKind::Gap`].
    pub const GAP: Interest = Interest(1 << 23);
    /// [`EventKind::Panicked`].
    pub const PANICKED: Interest = Interest(1 << 24);
    /// [`EventKind::AwaitPending`].
    pub const AWAIT_PENDING: Interest = Interest(1 << 25);
    /// [`EventKind::Permits`].
    pub const PERMITS: Interest = Interest(1 << 26);
    /// [`EventKind::PollCpu`].
    pub const POLL_CPU: Interest = Interest(1 << 27);
    /// [`EventKind::RecordingEnded`].
    pub const RECORDING_ENDED: Interest = Interest(1 << 28);
    /// [`EventKind::ChannelCreated`].
    pub const CHANNEL_CREATED: Interest = Interest(1 << 29);
    /// [`EventKind::ReceiveWaiting`].
    pub const RECEIVE_WAITING: Interest = Interest(1 << 30);

    /// The position of `kind` in the set (below [`KINDS`]).
    #[inline]
    pub(crate) fn index(kind: &EventKind) -> usize {
        use EventKind as K;
        match kind {
            K::LockRequested { .. } => 0,
            K::LockAcquired { .. } => 1,
            K::LockTryFailed { .. } => 2,
            K::LockReleased { .. } => 3,
            K::TaskSpawned { .. } => 4,
            K::PollStarted => 5,
            K::PollEnded { .. } => 6,
            K::TaskFinished { .. } => 7,
            K::TaskJoined { .. } => 8,
            K::TaskJoinRequested { .. } => 9,
            K::Wake { .. } => 10,
            K::ThreadSpawned { .. } => 11,
            K::ThreadStarted => 12,
            K::ThreadFinished { .. } => 13,
            K::ThreadJoinRequested { .. } => 14,
            K::ThreadJoined { .. } => 15,
            K::Send { .. } => 16,
            K::Receive { .. } => 17,
            K::Read { .. } => 18,
            K::Write { .. } => 19,
            K::SyncRelease { .. } => 20,
            K::SyncAcquire { .. } => 21,
            K::Mark { .. } => 22,
            K::Gap { .. } => 23,
            K::Panicked { .. } => 24,
            K::AwaitPending { .. } => 25,
            K::Permits { .. } => 26,
            K::PollCpu { .. } => 27,
            K::RecordingEnded => 28,
            K::ChannelCreated { .. } => 29,
            K::ReceiveWaiting { .. } => 30,
        }
    }

    /// Whether the kind at `index` (see [`index`](Self::index)) is in the set.
    pub(crate) fn contains_index(self, index: usize) -> bool {
        index < KINDS && self.0 & (1 << index) != 0
    }

    /// Whether events of `kind` are in the set.
    #[inline]
    pub fn wants(self, kind: &EventKind) -> bool {
        self.contains(Interest::of(kind))
    }

    /// The set of `kind` alone.
    #[inline]
    pub fn of(kind: &EventKind) -> Interest {
        Interest(1 << Interest::index(kind))
    }

    /// Whether the two sets share a kind: with `other` the set of one kind (see
    /// [`of`](Self::of)), whether that kind is in this set.
    #[inline(always)]
    pub fn contains(self, other: Interest) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}
