//! The event model and the trace file format, shared by the recorder (which writes traces) and
//! the analyzer (which reads them). This module depends on nothing of the recorder's runtime
//! side: build the crate with `default-features = false` to get only this.
//!
//! # File layout
//!
//! ```text
//! "HSTR"  version:u32le                          preamble, outside bincode
//! [SYNC len:u32le crc:u32le kind payload] ...    self-delimiting chunks (see `frame`)
//! ```
//!
//! The first chunk holds the [`Header`]; then come chunks of [`Definition`]s, event batches
//! (events of one thread) and watermarks, in any interleaving with one rule: an id is defined in
//! an earlier chunk than any event that uses it. Every chunk is checked by a CRC-32, and a
//! reader holds about one chunk at a time ([`TraceReader`]), so a file cut anywhere reads back
//! every complete chunk and says how many bytes it lost ([`Tail`]); a damaged chunk is skipped
//! and reading goes on at the next chunk marker ([`Damage`]), the header and definitions being
//! written twice.
//!
//! Headers and definitions are bincode (standard configuration: little endian, varint
//! integers). Event batches have an encoding of their own (see `v2`): the thread once per
//! batch, a tag byte holding the kind and the time delta's low bits, lock sequence numbers and
//! sites implied by a flag bit when they are the usual ones, task switches implied by polls.
//! A lock-heavy trace costs about three to four bytes per event.
//!
//! # Ordering
//!
//! Replay must see each lock's acquisitions and releases in the order they really happened,
//! even when many threads contend for one lock and their buffers reach the file at different
//! times. Timestamps cannot promise that (two threads can read the same nanosecond, and a
//! timestamp is read a little before or after the operation it stamps). So every lock carries a
//! **sequence counter**, and every acquisition and release takes the next number from it
//! *while the lock is held*: right after acquiring, and right before releasing. Because the lock
//! itself serialises those moments, the numbers of one lock form a total order that is exactly
//! the order of its holds: a release by A gets a smaller number than the acquisition by B that
//! it enabled. (Shared holds of a rwlock take their numbers with an atomic increment, so
//! concurrent readers interleave in some order, but every writer's numbers come after the
//! releases of the readers before it and before the acquisitions of the readers after it.)
//!
//! The recorder takes the numbers in three places. Its wrapper locks keep the counter in the
//! lock and take numbers inside `lock()` and the guard's `drop`. For tokio's own locks, which
//! report their state through tracing events, the recorder's Layer keeps the counter per lock
//! and numbers the reports; because tokio's guards let go of a lock *before* reporting it, an
//! acquisition reported while the Layer still sees another holder first gives that holder's
//! release the next number, and the holder's late report is recorded with it (on the
//! holder's own thread). User-defined locks recorded through the tracing convention have no
//! number.
//!
//! The numbers travel in [`EventKind::LockAcquired`] and [`EventKind::LockReleased`] (`seq`).
//! They start at 1; a number that decodes to 0, which only a damaged or foreign writer can
//! produce, reads as none, so that event is ordered by time alone.
//! Replay merges the threads' event streams by time, but holds back a lock event until every
//! smaller number of that lock has been replayed. Locks whose order the recorder cannot observe
//! (a lock shared between processes, recorded through the tracing convention) carry no number
//! and are ordered by time alone.
//!
//! Writers may also write [`Item::Watermark`]s: all events recorded before that time have been
//! written, so replay need not look further ahead for them.
//!
//! # Compatibility
//!
//! [`FORMAT_VERSION`] is bumped whenever any serialized type changes; each version keeps its
//! decoder module (`v1`, `v2`, ...; `payload` picks one by the file's version), and `current`
//! names the newest. A reader meeting a newer or older version says so in one line that names
//! the file.

#[cfg(feature = "arbitrary")]
pub mod arbitrary;
mod builder;
mod defs;
mod event;
mod frame;
mod ids;
mod in_place;
mod payload;
mod reader;
mod v1;
mod v2;
mod writer;

/// The newest payload encoding (versions 3 and 4 are version 2's with more records).
use v2 as current;

pub use builder::{Actor, TraceBuilder};
pub use defs::{
    ChannelDef, Definition, Header, LockDef, LockImplementation, LockKind, SiteDef, TaskDef,
    ThreadDef, VarDef,
};
pub use event::{ChannelKind, Event, EventKind, LockMode, PermitOp};
pub use frame::{
    CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN, OLDEST_READABLE_VERSION, SYNC,
};
pub use ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
pub use reader::{Damage, Item, ReadError, Tail, TraceReader, Unit};
pub use writer::{TraceWriter, MAX_EVENTS_PER_CHUNK, MAX_STRING_LEN};
