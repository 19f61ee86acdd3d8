//! Version 1 of the chunk payload encoding. One module per format version, so that an old
//! trace keeps a decoder when the format moves on; `current` re-exports the newest.
//!
//! A chunk payload is one [`Payload`] encoded with bincode's standard configuration (varint
//! integers). Event batches are kept compact on top of that:
//!
//! - a batch holds events of one thread, so the thread is written once per batch;
//! - the current task is a context switched by a `SetTask` record only when it changes;
//! - times are deltas from the previous record (bincode writes values below 251 in one byte);
//! - lock sequence numbers are deltas from the same lock's previous number in the batch;
//! - mode and try-ness are folded into the record variant, so a lock-heavy trace costs about
//!   five bytes per event.
//!
//! Bump [`FORMAT_VERSION`](super::FORMAT_VERSION) if you change anything here.

use super::defs::{Definition, Header};
use super::event::{Event, EventKind, LockMode};
use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The payload of one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Payload {
    /// The trace header; always the first chunk.
    Header(Header),
    /// Definitions of ids used by later chunks.
    Definitions(Vec<Definition>),
    /// Events of one thread.
    Events(Batch),
    /// Every event recorded before `time_ns` has been written (see the ordering docs).
    Watermark {
        /// Trace time of the watermark.
        time_ns: u64,
    },
}

/// Events of one thread, compactly encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Batch {
    thread: ThreadId,
    base_time_ns: u64,
    records: Vec<Record>,
}

/// One encoded event, or a change of the current task. `dt` is the time since the previous
/// record of the batch; `seq` fields are deltas from the lock's previous number in the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Record {
    SetTask(Option<TaskId>),
    Requested { dt: u64, lock: LockId, site: SiteId },
    RequestedShared { dt: u64, lock: LockId, site: SiteId },
    Acquired { dt: u64, lock: LockId, site: SiteId, seq: u64 },
    AcquiredShared { dt: u64, lock: LockId, site: SiteId, seq: u64 },
    TryAcquired { dt: u64, lock: LockId, site: SiteId, seq: u64 },
    TryAcquiredShared { dt: u64, lock: LockId, site: SiteId, seq: u64 },
    AcquiredUnordered { dt: u64, lock: LockId, mode: LockMode, site: SiteId, via_try: bool },
    TryFailed { dt: u64, lock: LockId, mode: LockMode, site: SiteId },
    Released { dt: u64, lock: LockId, seq: u64 },
    ReleasedShared { dt: u64, lock: LockId, seq: u64 },
    ReleasedOther { dt: u64, lock: LockId, mode: LockMode, seq: Option<u64>, poisoned: bool },
    TaskSpawned { dt: u64, task: TaskId, site: Option<SiteId> },
    PollStarted { dt: u64 },
    PollEnded { dt: u64, ready: bool },
    TaskFinished { dt: u64, cancelled: bool },
    TaskJoinRequested { dt: u64, task: TaskId, site: Option<SiteId> },
    TaskJoined { dt: u64, task: TaskId, site: Option<SiteId> },
    Wake { dt: u64, task: TaskId, by_ref: bool },
    ThreadSpawned { dt: u64, thread: ThreadId, site: Option<SiteId> },
    ThreadStarted { dt: u64 },
    ThreadFinished { dt: u64, panicked: bool },
    ThreadJoinRequested { dt: u64, thread: ThreadId, site: Option<SiteId> },
    ThreadJoined { dt: u64, thread: ThreadId, site: Option<SiteId> },
    Send { dt: u64, channel: ChannelId, message: u64, site: SiteId },
    Receive { dt: u64, channel: ChannelId, message: u64, site: SiteId },
    Read { dt: u64, var: VarId, site: SiteId },
    Write { dt: u64, var: VarId, site: SiteId },
    SyncRelease { dt: u64, var: VarId, site: SiteId },
    SyncAcquire { dt: u64, var: VarId, site: SiteId },
    Mark { dt: u64, label: StringId, site: Option<SiteId> },
    Gap { dt: u64, dropped: u64 },
}

/// Per-batch state shared by encoding and decoding: the previous time and each lock's
/// previous sequence number. Deltas wrap, so any input round-trips. The map is looked up for
/// every lock event, so it uses a fast non-cryptographic hash; a hostile file can degrade it
/// only within one bounded chunk.
#[derive(Default)]
struct DeltaState {
    time: u64,
    seqs: FxHashMap<LockId, u64>,
}

impl DeltaState {
    fn encode_seq(&mut self, lock: LockId, seq: u64) -> u64 {
        let previous = self.seqs.insert(lock, seq).unwrap_or(0);
        seq.wrapping_sub(previous)
    }

    fn decode_seq(&mut self, lock: LockId, delta: u64) -> u64 {
        let seq = self.seqs.get(&lock).copied().unwrap_or(0).wrapping_add(delta);
        self.seqs.insert(lock, seq);
        seq
    }

    fn encode_time(&mut self, time: u64) -> u64 {
        let dt = time.wrapping_sub(self.time);
        self.time = time;
        dt
    }

    fn decode_time(&mut self, dt: u64) -> u64 {
        self.time = self.time.wrapping_add(dt);
        self.time
    }
}

impl Batch {
    /// Encodes events of one thread. Every event's `thread` must be `thread`.
    pub(crate) fn encode(thread: ThreadId, events: &[Event]) -> Batch {
        let base_time_ns = events.first().map_or(0, |e| e.time_ns);
        let mut state = DeltaState { time: base_time_ns, ..DeltaState::default() };
        let mut task = None;
        let mut records = Vec::with_capacity(events.len() + 8);
        for event in events {
            debug_assert_eq!(event.thread, thread, "a batch holds the events of one thread");
            if event.task != task {
                task = event.task;
                records.push(Record::SetTask(task));
            }
            let dt = state.encode_time(event.time_ns);
            records.push(encode_kind(&mut state, dt, event.kind));
        }
        Batch { thread, base_time_ns, records }
    }

    /// Decodes the batch's events, appending them to `out`.
    pub(crate) fn decode_into(&self, out: &mut Vec<Event>) {
        let mut state = DeltaState { time: self.base_time_ns, ..DeltaState::default() };
        let mut task = None;
        out.reserve(self.records.len());
        for record in &self.records {
            if let Record::SetTask(next) = record {
                task = *next;
                continue;
            }
            let (dt, kind) = decode_kind(&mut state, record);
            let time_ns = state.decode_time(dt);
            out.push(Event { time_ns, thread: self.thread, task, kind });
        }
    }
}

fn encode_kind(state: &mut DeltaState, dt: u64, kind: EventKind) -> Record {
    use EventKind as K;
    use LockMode::{Exclusive, Shared};
    match kind {
        K::LockRequested { lock, mode: Exclusive, site } => Record::Requested { dt, lock, site },
        K::LockRequested { lock, mode: Shared, site } => Record::RequestedShared { dt, lock, site },
        K::LockAcquired { lock, mode, site, seq: Some(seq), via_try } => {
            let seq = state.encode_seq(lock, seq);
            match (mode, via_try) {
                (Exclusive, false) => Record::Acquired { dt, lock, site, seq },
                (Shared, false) => Record::AcquiredShared { dt, lock, site, seq },
                (Exclusive, true) => Record::TryAcquired { dt, lock, site, seq },
                (Shared, true) => Record::TryAcquiredShared { dt, lock, site, seq },
            }
        }
        K::LockAcquired { lock, mode, site, seq: None, via_try } => {
            Record::AcquiredUnordered { dt, lock, mode, site, via_try }
        }
        K::LockTryFailed { lock, mode, site } => Record::TryFailed { dt, lock, mode, site },
        K::LockReleased { lock, mode, seq: Some(seq), poisoned: false } => {
            let seq = state.encode_seq(lock, seq);
            match mode {
                Exclusive => Record::Released { dt, lock, seq },
                Shared => Record::ReleasedShared { dt, lock, seq },
            }
        }
        K::LockReleased { lock, mode, seq, poisoned } => {
            let seq = seq.map(|seq| state.encode_seq(lock, seq));
            Record::ReleasedOther { dt, lock, mode, seq, poisoned }
        }
        K::TaskSpawned { task, site } => Record::TaskSpawned { dt, task, site },
        K::PollStarted => Record::PollStarted { dt },
        K::PollEnded { ready } => Record::PollEnded { dt, ready },
        K::TaskFinished { cancelled } => Record::TaskFinished { dt, cancelled },
        K::TaskJoinRequested { task, site } => Record::TaskJoinRequested { dt, task, site },
        K::TaskJoined { task, site } => Record::TaskJoined { dt, task, site },
        K::Wake { task, by_ref } => Record::Wake { dt, task, by_ref },
        K::ThreadSpawned { thread, site } => Record::ThreadSpawned { dt, thread, site },
        K::ThreadStarted => Record::ThreadStarted { dt },
        K::ThreadFinished { panicked } => Record::ThreadFinished { dt, panicked },
        K::ThreadJoinRequested { thread, site } => Record::ThreadJoinRequested { dt, thread, site },
        K::ThreadJoined { thread, site } => Record::ThreadJoined { dt, thread, site },
        K::Send { channel, message, site } => Record::Send { dt, channel, message, site },
        K::Receive { channel, message, site } => Record::Receive { dt, channel, message, site },
        K::Read { var, site } => Record::Read { dt, var, site },
        K::Write { var, site } => Record::Write { dt, var, site },
        K::SyncRelease { var, site } => Record::SyncRelease { dt, var, site },
        K::SyncAcquire { var, site } => Record::SyncAcquire { dt, var, site },
        K::Mark { label, site } => Record::Mark { dt, label, site },
        K::Gap { dropped } => Record::Gap { dt, dropped },
    }
}

fn decode_kind(state: &mut DeltaState, record: &Record) -> (u64, EventKind) {
    use EventKind as K;
    use LockMode::{Exclusive, Shared};
    let acquired = |state: &mut DeltaState, lock, site, seq, mode, via_try| K::LockAcquired {
        lock,
        mode,
        site,
        seq: Some(state.decode_seq(lock, seq)),
        via_try,
    };
    match *record {
        Record::SetTask(_) => unreachable!("task switches are handled by the caller"),
        Record::Requested { dt, lock, site } => {
            (dt, K::LockRequested { lock, mode: Exclusive, site })
        }
        Record::RequestedShared { dt, lock, site } => {
            (dt, K::LockRequested { lock, mode: Shared, site })
        }
        Record::Acquired { dt, lock, site, seq } => {
            (dt, acquired(state, lock, site, seq, Exclusive, false))
        }
        Record::AcquiredShared { dt, lock, site, seq } => {
            (dt, acquired(state, lock, site, seq, Shared, false))
        }
        Record::TryAcquired { dt, lock, site, seq } => {
            (dt, acquired(state, lock, site, seq, Exclusive, true))
        }
        Record::TryAcquiredShared { dt, lock, site, seq } => {
            (dt, acquired(state, lock, site, seq, Shared, true))
        }
        Record::AcquiredUnordered { dt, lock, mode, site, via_try } => {
            (dt, K::LockAcquired { lock, mode, site, seq: None, via_try })
        }
        Record::TryFailed { dt, lock, mode, site } => (dt, K::LockTryFailed { lock, mode, site }),
        Record::Released { dt, lock, seq } => {
            let seq = Some(state.decode_seq(lock, seq));
            (dt, K::LockReleased { lock, mode: Exclusive, seq, poisoned: false })
        }
        Record::ReleasedShared { dt, lock, seq } => {
            let seq = Some(state.decode_seq(lock, seq));
            (dt, K::LockReleased { lock, mode: Shared, seq, poisoned: false })
        }
        Record::ReleasedOther { dt, lock, mode, seq, poisoned } => {
            let seq = seq.map(|seq| state.decode_seq(lock, seq));
            (dt, K::LockReleased { lock, mode, seq, poisoned })
        }
        Record::TaskSpawned { dt, task, site } => (dt, K::TaskSpawned { task, site }),
        Record::PollStarted { dt } => (dt, K::PollStarted),
        Record::PollEnded { dt, ready } => (dt, K::PollEnded { ready }),
        Record::TaskFinished { dt, cancelled } => (dt, K::TaskFinished { cancelled }),
        Record::TaskJoinRequested { dt, task, site } => (dt, K::TaskJoinRequested { task, site }),
        Record::TaskJoined { dt, task, site } => (dt, K::TaskJoined { task, site }),
        Record::Wake { dt, task, by_ref } => (dt, K::Wake { task, by_ref }),
        Record::ThreadSpawned { dt, thread, site } => (dt, K::ThreadSpawned { thread, site }),
        Record::ThreadStarted { dt } => (dt, K::ThreadStarted),
        Record::ThreadFinished { dt, panicked } => (dt, K::ThreadFinished { panicked }),
        Record::ThreadJoinRequested { dt, thread, site } => {
            (dt, K::ThreadJoinRequested { thread, site })
        }
        Record::ThreadJoined { dt, thread, site } => (dt, K::ThreadJoined { thread, site }),
        Record::Send { dt, channel, message, site } => (dt, K::Send { channel, message, site }),
        Record::Receive { dt, channel, message, site } => {
            (dt, K::Receive { channel, message, site })
        }
        Record::Read { dt, var, site } => (dt, K::Read { var, site }),
        Record::Write { dt, var, site } => (dt, K::Write { var, site }),
        Record::SyncRelease { dt, var, site } => (dt, K::SyncRelease { var, site }),
        Record::SyncAcquire { dt, var, site } => (dt, K::SyncAcquire { var, site }),
        Record::Mark { dt, label, site } => (dt, K::Mark { label, site }),
        Record::Gap { dt, dropped } => (dt, K::Gap { dropped }),
    }
}
