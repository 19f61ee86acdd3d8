//! The trace header and the definitions that give ids their meaning.
//!
//! Bump [`FORMAT_VERSION`](super::FORMAT_VERSION) if you change any type here: bincode is not
//! self-describing, so reordering a field or a variant silently breaks old traces.

use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use serde::{Deserialize, Serialize};

/// Metadata about the recording, the first chunk of every trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The recorded program (usually its executable name).
    pub program: String,
    /// Its process id.
    pub pid: u32,
    /// The host it ran on.
    pub host: String,
    /// Wall-clock time of the trace's time zero, in nanoseconds since the Unix epoch. Event
    /// times are monotonic offsets from it; traces of several processes are merged through it.
    pub start_unix_ns: u64,
    /// Version of the recorder that wrote the trace.
    pub recorder_version: String,
    /// The clock event times were read from (for example `"monotonic"` or `"tsc"`).
    pub clock: String,
}

/// What an id means. A definition appears in the trace before any event that uses its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Definition {
    /// An interned string.
    String {
        /// Its id.
        id: StringId,
        /// Its text.
        text: String,
    },
    /// A source location.
    Site(SiteDef),
    /// An OS thread.
    Thread(ThreadDef),
    /// An async task.
    Task(TaskDef),
    /// A lock instance.
    Lock(LockDef),
    /// An annotated variable or synchronisation object.
    Variable(VarDef),
    /// A recorded channel.
    Channel(ChannelDef),
}

/// A source location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteDef {
    /// Its id.
    pub id: SiteId,
    /// The source file.
    pub file: StringId,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// The enclosing function or span name, where known.
    pub function: Option<StringId>,
}

/// An OS thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadDef {
    /// Its id in the trace.
    pub id: ThreadId,
    /// Its name, if it has one.
    pub name: Option<StringId>,
    /// The operating system's id for it.
    pub os_id: u64,
}

/// An async task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDef {
    /// Its id in the trace.
    pub id: TaskId,
    /// Its name, if it has one.
    pub name: Option<StringId>,
    /// The kind of task (tokio's `task`, `blocking`, `local`, or `"hindsight"` for the helper).
    pub kind: Option<StringId>,
    /// Where it was spawned.
    pub spawn_site: Option<SiteId>,
    /// tokio's own task id, when it came from tokio's instrumentation.
    pub runtime_id: Option<u64>,
}

/// What sort of lock a lock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockKind {
    /// A mutual-exclusion lock.
    Mutex,
    /// A reader-writer lock.
    RwLock,
    /// A counting semaphore (each permit is an exclusive hold).
    Semaphore,
    /// A user-defined lock (a file lock, a database lock) recorded through the tracing
    /// convention.
    Custom,
}

/// Which code implements a lock: what its waiters, readers and poisoning do depends on it
/// (the analyzer keeps each one's semantics in one table, `lock_semantics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockImplementation {
    /// Not recorded (a trace of an older format whose lock could not be told apart, or a
    /// writer that did not say). No semantics are assumed for it.
    Unknown,
    /// `std::sync`, observed directly.
    Std,
    /// `tokio::sync`, recorded through tokio's own instrumentation.
    Tokio,
    /// `parking_lot`.
    ParkingLot,
    /// hindsight's recording wrapper of a `std::sync` lock (`hindsight::sync::Mutex`,
    /// `RwLock`): the std lock's semantics.
    HindsightStd,
    /// hindsight's recording wrapper of a `tokio::sync` lock (`hindsight::sync::tokio`): the
    /// tokio lock's semantics.
    HindsightTokio,
    /// A user-defined lock (a file lock, a database lock) recorded through the tracing
    /// convention.
    UserDefined,
}

impl LockImplementation {
    /// The implementation a lock of `kind` most likely has when only its kind and
    /// blocking-ness are known, as in version-1 traces: that version's recorder made
    /// user-defined locks through the tracing convention only, blocking mutexes and rwlocks
    /// through its std wrappers only, and async locks and semaphores through tokio (its
    /// wrappers or its instrumentation, of one semantics).
    pub fn inferred(kind: LockKind, blocking: bool) -> Self {
        match (kind, blocking) {
            (LockKind::Custom, _) => LockImplementation::UserDefined,
            (LockKind::Mutex | LockKind::RwLock, true) => LockImplementation::HindsightStd,
            (_, false) => LockImplementation::Tokio,
            (LockKind::Semaphore, true) => LockImplementation::Unknown,
        }
    }

    /// A short stable name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            LockImplementation::Unknown => "unknown",
            LockImplementation::Std => "std",
            LockImplementation::Tokio => "tokio",
            LockImplementation::ParkingLot => "parking_lot",
            LockImplementation::HindsightStd => "hindsight-std",
            LockImplementation::HindsightTokio => "hindsight-tokio",
            LockImplementation::UserDefined => "user-defined",
        }
    }
}

/// A lock instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDef {
    /// Its id.
    pub id: LockId,
    /// What sort of lock it is.
    pub kind: LockKind,
    /// Whether waiting for it blocks the OS thread (std-like) rather than suspending a task.
    pub blocking: bool,
    /// Its explicit name, if it was given one. Locks of one name are one lock class, and one
    /// lock across the processes of a merged analysis.
    pub name: Option<StringId>,
    /// Where it was created.
    pub site: Option<SiteId>,
    /// The code that implements it.
    pub implementation: LockImplementation,
    /// A semaphore's initial permits, where known.
    pub capacity: Option<u32>,
}

/// An annotated variable or synchronisation object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarDef {
    /// Its id.
    pub id: VarId,
    /// Its name.
    pub name: StringId,
    /// Where it was created.
    pub site: Option<SiteId>,
}

/// A recorded channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDef {
    /// Its id.
    pub id: ChannelId,
    /// Its name, if it has one.
    pub name: Option<StringId>,
    /// Where it was created.
    pub site: Option<SiteId>,
}
