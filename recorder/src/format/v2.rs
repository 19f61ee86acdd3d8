//! Versions 2, 3 and 4 of the chunk payload encoding: at most about four bytes per event.
//!
//! Version 3 is version 2 with five more [`Ext`] records (a panic, the site of a pending
//! `.await`, semaphore permits, a long poll's CPU time, the recorder's clean end), and version
//! 4 is version 3 with two more (a channel's creation, a wait for a message). A reader reads
//! the older versions' files as they are, and an older file holding a newer record is damaged.
//!
//! A payload starts with one byte that says what it holds: 0 the [`Header`], 1 definitions,
//! 2 an event batch, 3 a watermark. Headers, definitions and watermarks follow as bincode
//! (standard configuration); an event batch has an encoding of its own, read and written here
//! without bincode:
//!
//! ```text
//! batch  := thread:u32  base_time:u64  events:u64  record*      (integers as LEB128)
//! record := tag  [dt bytes]  [ext op]  operands
//! tag    := op:4 bits (low)  dt:4 bits (high)
//! ```
//!
//! What v1 spent its bytes on, and how v2 saves them:
//!
//! - **Time** (v1: 2.3 bytes per event, a varint's marker byte and two more for most deltas of
//!   250 ns to 65 µs). The tag's high nibble holds the delta's two low bits and how many bytes
//!   follow: none (below 4 ns), one (below 1 µs), two (below 262 µs), or an LEB128 of the rest.
//! - **The record kind** (v1: a byte, with the mode folded in). The tag's low nibble names the
//!   hot kinds; [`OP_EXT`] and a second byte name the rare ones.
//! - **Lock sequence numbers** (v1: a byte each). The usual number is the lock's previous
//!   one + 1: a flag bit in the lock operand says so, and only other deltas are written.
//! - **Sites** (v1: a byte each). An acquisition is usually made where the same lock was
//!   last asked for (a request and its acquisition; a loop): a flag bit in the lock operand
//!   says so.
//! - **Task switches** (v1: a 3-byte record before every poll). A poll start carries its task,
//!   and a poll's end returns the thread to no task; a `SetTask` record is written only where
//!   the events disagree with that.
//! - **Mode, readiness, `by_ref`**: folded into the op or into an operand's low bit.
//!
//! Deltas wrap, so any input round-trips. Bump [`FORMAT_VERSION`](super::FORMAT_VERSION) if you
//! change anything here.

use super::defs::{Definition, Header};
use super::event::{ChannelKind, Event, EventKind, LockMode, PermitOp};
use super::frame::{bincode_config, describe_decode_error};
use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use super::in_place::{decode_records, DecodeRecord, Records, Slots, WINDOW};
use super::payload::Payload;
use rustc_hash::FxHashMap;
use std::num::NonZeroU64;

/// Payload kinds: the first byte of every payload.
const HEADER: u8 = 0;
const DEFINITIONS: u8 = 1;
const EVENTS: u8 = 2;
const WATERMARK: u8 = 3;

// Record ops: the low nibble of a record's tag.
/// Sets the current task (no time): an LEB128 of 0 for none, else the task id + 1.
const OP_SET_TASK: u8 = 0;
/// An ordered, blocking-attempt acquisition, exclusive (+1 for shared): the lock operand,
/// then the site unless it is the lock's last, then the sequence delta unless it is 1.
const OP_ACQUIRED: u8 = 1;
/// An ordered, unpoisoned release, exclusive (+1 for shared): the lock operand without the
/// site flag, then the sequence delta unless it is 1.
const OP_RELEASED: u8 = 3;
/// A request, exclusive (+1 for shared): the lock operand without the sequence flag, then the
/// site unless it is the lock's last.
const OP_REQUESTED: u8 = 5;
/// A poll start: an LEB128 of 0 if the current task is the one polled, else its id + 1.
const OP_POLL_STARTED: u8 = 7;
/// A poll end, pending (+1 for ready); the thread is then in no task.
const OP_POLL_ENDED: u8 = 8;
/// A wake: an LEB128 of the task id << 1 | by_ref.
const OP_WAKE: u8 = 10;
/// A spawn: the task id, then an optional site.
const OP_TASK_SPAWNED: u8 = 11;
/// A task's end, not cancelled.
const OP_TASK_FINISHED: u8 = 12;
/// A read of an annotated variable: the variable, then the site.
const OP_READ: u8 = 13;
/// A write of an annotated variable: the variable, then the site.
const OP_WRITE: u8 = 14;
/// Any other event: an [`Ext`] op byte follows the time.
const OP_EXT: u8 = 15;

/// The rare kinds, named by the byte after an [`OP_EXT`] tag, with their operands in the
/// order the decoder reads them.
#[repr(u8)]
enum Ext {
    /// lock, flags ([`SHARED`], [`VIA_TRY`], [`HAS_SEQ`]), site, [sequence delta].
    Acquired,
    /// lock, flags ([`SHARED`]), site.
    TryFailed,
    /// lock, flags ([`SHARED`], [`POISONED`], [`HAS_SEQ`]), [sequence delta].
    Released,
    /// None.
    TaskCancelled,
    /// task, optional site.
    TaskJoinRequested,
    /// task, optional site.
    TaskJoined,
    /// thread, optional site.
    ThreadSpawned,
    /// None.
    ThreadStarted,
    /// flags ([`PANICKED`]).
    ThreadFinished,
    /// thread, optional site.
    ThreadJoinRequested,
    /// thread, optional site.
    ThreadJoined,
    /// channel, message, site.
    Send,
    /// channel, message, site.
    Receive,
    /// variable, site.
    SyncRelease,
    /// variable, site.
    SyncAcquire,
    /// label, optional site.
    Mark,
    /// dropped events.
    Gap,
    /// Version 3: optional site.
    Panicked,
    /// Version 3: site.
    AwaitPending,
    /// Version 3: lock, op ([`PermitOp`] as a byte), count.
    Permits,
    /// Version 3: CPU time, run-queue time.
    PollCpu,
    /// Version 3: none.
    RecordingEnded,
    /// Version 4: channel, kind ([`ChannelKind`] as a byte).
    ChannelCreated,
    /// Version 4: channel, site.
    ReceiveWaiting,
}

/// The first [`Ext`] op that version 2 does not have.
const FIRST_V3_EXT: u8 = Ext::Panicked as u8;
/// The first [`Ext`] op that version 3 does not have.
const FIRST_V4_EXT: u8 = Ext::ChannelCreated as u8;

// Bits of the flags byte of ext records.
const SHARED: u8 = 1;
const VIA_TRY: u8 = 2;
const HAS_SEQ: u8 = 4;
const POISONED: u8 = 8;
const PANICKED: u8 = 1;

// Bits of a lock operand (an LEB128 of the lock id shifted left by the flags it has).
/// The sequence number is the lock's previous one + 1.
const SEQ_NEXT: u64 = 1;
/// The site is the one of the lock's previous event that had a site, in this batch.
const SITE_SAME: u64 = 2;

/// Appends the encoding of `payload` (a header, definitions or a watermark) to `out`.
pub(crate) fn encode_payload(payload: &Payload, out: &mut Vec<u8>) -> Result<(), String> {
    let encoded = match payload {
        Payload::Header(header) => {
            (HEADER, bincode::serde::encode_to_vec(header, bincode_config()))
        }
        Payload::Definitions(definitions) => {
            (DEFINITIONS, bincode::serde::encode_to_vec(definitions, bincode_config()))
        }
        Payload::Watermark { time_ns } => {
            (WATERMARK, bincode::serde::encode_to_vec(time_ns, bincode_config()))
        }
        Payload::Events => return Err("event batches are encoded by `encode_events`".into()),
    };
    let bytes = encoded.1.map_err(|e| e.to_string())?;
    out.push(encoded.0);
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Decodes a payload other than an event batch (see [`decode_events`] for those).
pub(crate) fn decode_payload(bytes: &[u8]) -> Result<Payload, String> {
    fn whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        match bincode::serde::decode_from_slice::<T, _>(bytes, bincode_config()) {
            Ok((value, used)) if used == bytes.len() => Ok(value),
            Ok(_) => Err("chunk has trailing bytes".into()),
            Err(e) => Err(format!("undecodable chunk: {}", describe_decode_error(&e))),
        }
    }
    match bytes.split_first() {
        Some((&HEADER, rest)) => whole::<Header>(rest).map(Payload::Header),
        Some((&DEFINITIONS, rest)) => whole::<Vec<Definition>>(rest).map(Payload::Definitions),
        Some((&WATERMARK, rest)) => {
            whole::<u64>(rest).map(|time_ns| Payload::Watermark { time_ns })
        }
        Some((&EVENTS, _)) => Err("undecodable event batch".into()),
        Some((kind, _)) => Err(format!("undecodable chunk: unknown payload kind {kind}")),
        None => Err("undecodable chunk: empty payload".into()),
    }
}

// === encoding ===

/// Appends an LEB128 integer: seven bits a byte, low first, the high bit set on all but the
/// last.
fn put_leb(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An optional id as an LEB128: 0 for none, else the id + 1.
fn put_opt(out: &mut Vec<u8>, id: Option<u32>) {
    put_leb(out, id.map_or(0, |id| u64::from(id) + 1));
}

/// Appends a record's tag and time delta.
fn put_tag(out: &mut Vec<u8>, op: u8, dt: u64) {
    let low = (dt & 3) as u8;
    let high = dt >> 2;
    match high {
        0 => out.push(op | low << 4),
        1..=0xff => out.extend_from_slice(&[op | (4 | low) << 4, high as u8]),
        0x100..=0xffff => {
            let [a, b, ..] = high.to_le_bytes();
            out.extend_from_slice(&[op | (8 | low) << 4, a, b]);
        }
        _ => {
            out.push(op | (12 | low) << 4);
            put_leb(out, high);
        }
    }
}

/// What the encoder knows of a lock within the batch: its last site and sequence number.
#[derive(Default, Clone, Copy)]
struct LockMemory {
    site: Option<SiteId>,
    seq: u64,
}

/// Per-batch encoder state.
#[derive(Default)]
struct Encoder {
    time: u64,
    task: Option<TaskId>,
    locks: FxHashMap<LockId, LockMemory>,
}

impl Encoder {
    /// Notes a lock event's site and sequence number; returns what to write for them: the
    /// site unless it is the lock's last, the sequence delta unless it is 1 (`None` where a
    /// flag covers them), and the flags.
    fn lock_event(
        &mut self,
        lock: LockId,
        site: Option<SiteId>,
        seq: Option<NonZeroU64>,
    ) -> LockFields {
        let memory = self.locks.entry(lock).or_default();
        let mut fields = LockFields { flags: 0, site: None, delta: None };
        if let Some(site) = site {
            if memory.site == Some(site) {
                fields.flags |= SITE_SAME;
            } else {
                fields.site = Some(site);
            }
            memory.site = Some(site);
        }
        if let Some(seq) = seq {
            let delta = seq.get().wrapping_sub(memory.seq);
            memory.seq = seq.get();
            if delta == 1 {
                fields.flags |= SEQ_NEXT;
            } else {
                fields.delta = Some(delta);
            }
        }
        fields
    }
}

/// What a lock event writes after its tag: see [`Encoder::lock_event`].
struct LockFields {
    /// [`SITE_SAME`] and [`SEQ_NEXT`].
    flags: u64,
    site: Option<SiteId>,
    delta: Option<u64>,
}

/// Appends the payload of an event batch of one thread. Every event's `thread` must be
/// `thread`.
pub(crate) fn encode_events(thread: ThreadId, events: &[Event], out: &mut Vec<u8>) {
    use EventKind as K;
    let base = events.first().map_or(0, |e| e.time_ns);
    out.push(EVENTS);
    put_leb(out, u64::from(thread.0));
    put_leb(out, base);
    put_leb(out, events.len() as u64);
    let mut state = Encoder { time: base, ..Encoder::default() };
    for event in events {
        debug_assert_eq!(event.thread, thread, "a batch holds the events of one thread");
        // The task the decoder will assume, unless a poll start names another.
        let polled = match event.kind {
            K::PollStarted => event.task.filter(|&task| Some(task) != state.task),
            _ => None,
        };
        if polled.is_none() && event.task != state.task {
            out.push(OP_SET_TASK);
            put_opt(out, event.task.map(|task| task.0));
        }
        state.task = event.task;
        let dt = event.time_ns.wrapping_sub(state.time);
        state.time = event.time_ns;
        encode_kind(&mut state, dt, event.kind, polled, out);
        if let K::PollEnded { .. } = event.kind {
            state.task = None;
        }
    }
}

/// Appends one event's record.
fn encode_kind(
    state: &mut Encoder,
    dt: u64,
    kind: EventKind,
    polled: Option<TaskId>,
    out: &mut Vec<u8>,
) {
    use EventKind as K;
    let shared = |mode| u8::from(mode == LockMode::Shared);
    let ext = |out: &mut Vec<u8>, op: Ext| {
        put_tag(out, OP_EXT, dt);
        out.push(op as u8);
    };
    match kind {
        K::LockAcquired { lock, mode, site, seq: Some(seq), via_try: false } => {
            let fields = state.lock_event(lock, Some(site), Some(seq));
            put_tag(out, OP_ACQUIRED + shared(mode), dt);
            put_leb(out, u64::from(lock.0) << 2 | fields.flags);
            fields.site.inspect(|site| put_leb(out, u64::from(site.0)));
            fields.delta.inspect(|&delta| put_leb(out, delta));
        }
        K::LockReleased { lock, mode, seq: Some(seq), poisoned: false } => {
            let fields = state.lock_event(lock, None, Some(seq));
            put_tag(out, OP_RELEASED + shared(mode), dt);
            put_leb(out, u64::from(lock.0) << 1 | fields.flags);
            fields.delta.inspect(|&delta| put_leb(out, delta));
        }
        K::LockRequested { lock, mode, site } => {
            let fields = state.lock_event(lock, Some(site), None);
            put_tag(out, OP_REQUESTED + shared(mode), dt);
            put_leb(out, u64::from(lock.0) << 1 | fields.flags >> 1);
            fields.site.inspect(|site| put_leb(out, u64::from(site.0)));
        }
        K::LockAcquired { lock, mode, site, seq, via_try } => {
            let delta = state.lock_event(lock, Some(site), seq).delta;
            ext(out, Ext::Acquired);
            put_leb(out, u64::from(lock.0));
            let has_seq = if seq.is_some() { HAS_SEQ } else { 0 };
            out.push(shared(mode) | if via_try { VIA_TRY } else { 0 } | has_seq);
            put_leb(out, u64::from(site.0));
            // A delta of 1 has no flag here: write it too.
            if seq.is_some() {
                put_leb(out, delta.unwrap_or(1));
            }
        }
        K::LockTryFailed { lock, mode, site } => {
            state.lock_event(lock, Some(site), None);
            ext(out, Ext::TryFailed);
            put_leb(out, u64::from(lock.0));
            out.push(shared(mode));
            put_leb(out, u64::from(site.0));
        }
        K::LockReleased { lock, mode, seq, poisoned } => {
            let delta = state.lock_event(lock, None, seq).delta;
            ext(out, Ext::Released);
            put_leb(out, u64::from(lock.0));
            let has_seq = if seq.is_some() { HAS_SEQ } else { 0 };
            out.push(shared(mode) | if poisoned { POISONED } else { 0 } | has_seq);
            if seq.is_some() {
                put_leb(out, delta.unwrap_or(1));
            }
        }
        K::PollStarted => {
            put_tag(out, OP_POLL_STARTED, dt);
            put_opt(out, polled.map(|task| task.0));
        }
        K::PollEnded { ready } => put_tag(out, OP_POLL_ENDED + u8::from(ready), dt),
        K::Wake { task, by_ref } => {
            put_tag(out, OP_WAKE, dt);
            put_leb(out, u64::from(task.0) << 1 | u64::from(by_ref));
        }
        K::TaskSpawned { task, site } => {
            put_tag(out, OP_TASK_SPAWNED, dt);
            put_leb(out, u64::from(task.0));
            put_opt(out, site.map(|site| site.0));
        }
        K::TaskFinished { cancelled: false } => put_tag(out, OP_TASK_FINISHED, dt),
        K::TaskFinished { cancelled: true } => ext(out, Ext::TaskCancelled),
        K::Read { var, site } | K::Write { var, site } => {
            put_tag(out, if matches!(kind, K::Read { .. }) { OP_READ } else { OP_WRITE }, dt);
            put_leb(out, u64::from(var.0));
            put_leb(out, u64::from(site.0));
        }
        K::TaskJoinRequested { task, site } | K::TaskJoined { task, site } => {
            let joined = matches!(kind, K::TaskJoined { .. });
            ext(out, if joined { Ext::TaskJoined } else { Ext::TaskJoinRequested });
            put_leb(out, u64::from(task.0));
            put_opt(out, site.map(|site| site.0));
        }
        K::ThreadSpawned { thread, site }
        | K::ThreadJoinRequested { thread, site }
        | K::ThreadJoined { thread, site } => {
            let op = match kind {
                K::ThreadSpawned { .. } => Ext::ThreadSpawned,
                K::ThreadJoinRequested { .. } => Ext::ThreadJoinRequested,
                _ => Ext::ThreadJoined,
            };
            ext(out, op);
            put_leb(out, u64::from(thread.0));
            put_opt(out, site.map(|site| site.0));
        }
        K::ThreadStarted => ext(out, Ext::ThreadStarted),
        K::ThreadFinished { panicked } => {
            ext(out, Ext::ThreadFinished);
            out.push(if panicked { PANICKED } else { 0 });
        }
        K::Send { channel, message, site } | K::Receive { channel, message, site } => {
            ext(out, if matches!(kind, K::Send { .. }) { Ext::Send } else { Ext::Receive });
            put_leb(out, u64::from(channel.0));
            put_leb(out, message);
            put_leb(out, u64::from(site.0));
        }
        K::SyncRelease { var, site } | K::SyncAcquire { var, site } => {
            let release = matches!(kind, K::SyncRelease { .. });
            ext(out, if release { Ext::SyncRelease } else { Ext::SyncAcquire });
            put_leb(out, u64::from(var.0));
            put_leb(out, u64::from(site.0));
        }
        K::Mark { label, site } => {
            ext(out, Ext::Mark);
            put_leb(out, u64::from(label.0));
            put_opt(out, site.map(|site| site.0));
        }
        K::Gap { dropped } => {
            ext(out, Ext::Gap);
            put_leb(out, dropped);
        }
        K::Panicked { site } => {
            ext(out, Ext::Panicked);
            put_opt(out, site.map(|site| site.0));
        }
        K::AwaitPending { site } => {
            ext(out, Ext::AwaitPending);
            put_leb(out, u64::from(site.0));
        }
        K::Permits { lock, op, count } => {
            ext(out, Ext::Permits);
            put_leb(out, u64::from(lock.0));
            out.push(op as u8);
            put_leb(out, u64::from(count));
        }
        K::PollCpu { cpu_ns, runnable_ns } => {
            ext(out, Ext::PollCpu);
            put_leb(out, cpu_ns);
            put_leb(out, runnable_ns);
        }
        K::RecordingEnded => ext(out, Ext::RecordingEnded),
        K::ChannelCreated { channel, kind } => {
            ext(out, Ext::ChannelCreated);
            put_leb(out, u64::from(channel.0));
            out.push(kind as u8);
        }
        K::ReceiveWaiting { channel, site } => {
            ext(out, Ext::ReceiveWaiting);
            put_leb(out, u64::from(channel.0));
            put_leb(out, u64::from(site.0));
        }
    }
}

// === decoding ===

/// Lock ids below this keep their memory in a table; larger (hostile) ids in a map, so that
/// one id such as `u32::MAX` costs one map entry.
const DENSE_LOCKS: u32 = 1 << 16;

/// What the decoder knows of a lock within the batch, as [`LockMemory`] for the encoder.
#[derive(Debug, Default, Clone, Copy)]
struct Remembered {
    /// The batch this was written in; older entries read as empty.
    batch: u32,
    memory: LockMemoryOut,
}

/// A lock's last site and sequence number in the batch being decoded.
#[derive(Debug, Default, Clone, Copy)]
struct LockMemoryOut {
    site: Option<SiteId>,
    seq: u64,
}

/// Each lock's last site and sequence number in the batch being decoded, kept by a reader
/// across batches so that decoding a batch allocates nothing. Table entries carry the number
/// of the batch that wrote them instead of being cleared between batches.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    dense: Vec<Remembered>,
    sparse: FxHashMap<u32, LockMemoryOut>,
    batch: u32,
    /// The first [`Ext`] op that the file's version does not have (`None`: the newest).
    first_unknown_ext: Option<u8>,
}

impl Scratch {
    /// The scratch of a reader of a file of format `version` (2, 3 or 4).
    pub(crate) fn for_version(version: u32) -> Self {
        let first_unknown_ext = match version {
            2 => Some(FIRST_V3_EXT),
            3 => Some(FIRST_V4_EXT),
            _ => None,
        };
        Scratch { first_unknown_ext, ..Scratch::default() }
    }

    /// Forgets every lock: a new batch starts.
    fn start_batch(&mut self) {
        self.sparse.clear();
        self.batch = self.batch.wrapping_add(1);
        if self.batch == 0 {
            // After 2³² batches the stamps wrap: clear them for real once.
            self.dense.iter_mut().for_each(|entry| *entry = Remembered::default());
            self.batch = 1;
        }
    }

    /// `lock`'s memory in this batch.
    #[inline(always)]
    fn lock(&mut self, lock: LockId) -> &mut LockMemoryOut {
        let batch = self.batch;
        if lock.index() >= self.dense.len() {
            return self.lock_cold(lock);
        }
        let entry = &mut self.dense[lock.index()];
        if entry.batch != batch {
            *entry = Remembered { batch, memory: LockMemoryOut::default() };
        }
        &mut entry.memory
    }

    /// [`lock`](Self::lock) for a lock beyond the table: grows it, or uses the map.
    #[cold]
    #[inline(never)]
    fn lock_cold(&mut self, lock: LockId) -> &mut LockMemoryOut {
        if lock.0 >= DENSE_LOCKS {
            return self.sparse.entry(lock.0).or_default();
        }
        self.dense.resize(lock.index() + 1, Remembered::default());
        let batch = self.batch;
        let entry = &mut self.dense[lock.index()];
        *entry = Remembered { batch, memory: LockMemoryOut::default() };
        &mut entry.memory
    }
}

impl LockMemoryOut {
    /// The site of a lock event: the written one, or (`same`) the lock's last.
    #[inline(always)]
    fn site(&mut self, same: bool, c: &mut Window) -> Option<SiteId> {
        let site = if same { self.site? } else { c.site()? };
        self.site = Some(site);
        Some(site)
    }

    /// The sequence number of a lock event: the lock's last + 1 (`next`), or + the written
    /// delta. None if that is 0, which no lock operation has: a damaged file's 0 reads as no
    /// number, which orders the event by time alone.
    #[inline(always)]
    fn seq(&mut self, next: bool, c: &mut Window) -> Option<Option<NonZeroU64>> {
        let delta = if next { 1 } else { c.leb()? };
        self.seq = self.seq.wrapping_add(delta);
        Some(NonZeroU64::new(self.seq))
    }
}

// The longest record (a tag, a 10-byte time, an ext op, and three 10-byte integers, as a
// hostile writer may pad any LEB128 to 10 bytes) fits in a window; as the window's length is a
// power of two, an index into it is masked rather than checked.
const _: () = assert!(1 + 10 + 1 + 3 * 10 <= WINDOW && WINDOW.is_power_of_two());

/// LEB128 reading from the start of a fixed window of bytes, which holds at least one whole
/// record, so that no read looks past its end. Every method returns `None` on bytes no writer
/// makes; the caller then checks that the record did not run past the payload.
struct Window<'a> {
    bytes: &'a [u8; WINDOW],
    /// Bytes read so far.
    at: usize,
}

impl Window<'_> {
    /// The next byte. A record never reads past its window (see [`WINDOW`]); if one did,
    /// the mask would make it read the window again instead of panicking, and the caller
    /// would find the record longer than the bytes left.
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let byte = self.bytes[self.at % WINDOW];
        self.at += 1;
        Some(byte)
    }

    /// An LEB128 `u64` of at most 10 bytes.
    #[inline(always)]
    fn leb(&mut self) -> Option<u64> {
        let first = self.byte()?;
        if first < 0x80 {
            return Some(u64::from(first));
        }
        let (value, at) = Self::leb_rest(self.bytes, self.at, first)?;
        self.at = at;
        Some(value)
    }

    /// The rest of an LEB128 that starts with `first`, which has its high bit set, from
    /// `at`: its value and where it ends. (A function of values rather than of the window,
    /// so that the window's position stays in a register in the hot loop.)
    #[inline(never)]
    fn leb_rest(bytes: &[u8; WINDOW], mut at: usize, first: u8) -> Option<(u64, usize)> {
        let mut value = u64::from(first & 0x7f);
        for shift in (7..64).step_by(7) {
            let byte = bytes[at % WINDOW];
            at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some((value, at));
            }
        }
        None
    }

    /// An LEB128 `u32`.
    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.leb()?).ok()
    }

    /// An optional id: 0 for none, else the id + 1.
    #[inline(always)]
    fn opt(&mut self) -> Option<Option<u32>> {
        match self.leb()? {
            0 => Some(None),
            id => u32::try_from(id - 1).ok().map(Some),
        }
    }

    #[inline(always)]
    fn site(&mut self) -> Option<SiteId> {
        self.u32().map(SiteId)
    }

    #[inline(always)]
    fn opt_site(&mut self) -> Option<Option<SiteId>> {
        Some(self.opt()?.map(SiteId))
    }

    /// A flags byte with no bits beyond `allowed`.
    #[inline(always)]
    fn flags(&mut self, allowed: u8) -> Option<u8> {
        Some(self.byte()?).filter(|flags| flags & !allowed == 0)
    }

    /// The record's tag and time delta, which start every record (the caller reads no other
    /// field first). A `SetTask` record's tag, 0, reads as a delta of 0.
    #[inline(always)]
    fn tag_and_dt(&mut self) -> Option<(u8, u64)> {
        /// The bits of the two bytes after the tag that a delta of each length takes.
        const MASKS: [u64; 4] = [0, 0xff, 0xffff, 0];
        let tag = self.bytes[0];
        let length = usize::from(tag >> 6);
        // Without a branch for the usual lengths (0, 1 or 2 bytes): which one comes next is
        // not predictable.
        let word = u64::from(u16::from_le_bytes([self.bytes[1], self.bytes[2]]));
        self.at = 1 + length;
        let mut high = word & MASKS[length];
        if length == 3 {
            self.at = 1;
            high = self.leb()?;
        }
        Some((tag, high << 2 | u64::from(tag >> 4 & 3)))
    }
}

/// Decodes an event batch payload straight from its bytes, appending its events to `out`.
/// Returns the batch's thread, or `None` (and leaves `out` as it was) if the payload is not
/// an event batch or is damaged.
pub(crate) fn decode_events(
    payload: &[u8],
    scratch: &mut Scratch,
    out: &mut Vec<Event>,
) -> Option<ThreadId> {
    let (&EVENTS, body) = payload.split_first()? else { return None };
    let mut head = [0; WINDOW];
    let prefix = body.len().min(WINDOW);
    head[..prefix].copy_from_slice(&body[..prefix]);
    let mut c = Window { bytes: &head, at: 0 };
    let thread = ThreadId(c.u32()?);
    let time = c.leb()?;
    let left = c.leb()?;
    let rest = body.get(c.at..)?;
    // Every event takes at least a byte: reserve no more than the payload can hold.
    let reserve = left.min(rest.len() as u64) as usize;
    scratch.start_batch();
    let mut records = Records { thread, time, task: None, locks: scratch };
    decode_records(rest, left, reserve, out, &mut records)?;
    Some(thread)
}

impl DecodeRecord for Records<'_, Scratch> {
    /// A batch counts its events.
    #[inline(always)]
    fn decode_record(
        &mut self,
        window: &[u8; WINDOW],
        slots: &mut Slots<'_>,
    ) -> Option<(usize, u64)> {
        let mut c = Window { bytes: window, at: 0 };
        let event = self.decode(&mut c, slots)?;
        Some((c.at, u64::from(event)))
    }
}

impl Records<'_, Scratch> {
    /// Decodes the record at the start of `c`, writing its event if it has one; says whether
    /// it had.
    #[inline(always)]
    fn decode(&mut self, c: &mut Window, slots: &mut Slots<'_>) -> Option<bool> {
        use EventKind as K;
        use LockMode::{Exclusive, Shared};
        let (tag, dt) = c.tag_and_dt()?;
        let op = tag & 15;
        self.time = self.time.wrapping_add(dt);
        // Writes the event of the kind `$kind` into the next slot: each arm writes the whole
        // event, as building the kind first and the event after costs a copy of it.
        macro_rules! put {
            ($kind:expr) => {{
                let kind = $kind;
                // There is a slot for every event: `left` counts at most the reserved number.
                let slot = slots.next()?;
                slot.write(Event {
                    time_ns: self.time,
                    thread: self.thread,
                    task: self.task,
                    kind,
                });
            }};
        }
        let mode = |shared: bool| if shared { Shared } else { Exclusive };
        match op {
            OP_SET_TASK => {
                // Its high nibble is unused (so its time delta is 0): anything there is damage.
                if tag != OP_SET_TASK {
                    return None;
                }
                self.task = c.opt()?.map(TaskId);
                return Some(false);
            }
            OP_ACQUIRED | 2 => {
                let operand = c.leb()?;
                let lock = LockId(u32::try_from(operand >> 2).ok()?);
                let memory = self.locks.lock(lock);
                let site = memory.site(operand & SITE_SAME != 0, c)?;
                let seq = memory.seq(operand & SEQ_NEXT != 0, c)?;
                put!(K::LockAcquired { lock, mode: mode(op == 2), site, seq, via_try: false })
            }
            OP_RELEASED | 4 => {
                let operand = c.leb()?;
                let lock = LockId(u32::try_from(operand >> 1).ok()?);
                let seq = self.locks.lock(lock).seq(operand & SEQ_NEXT != 0, c)?;
                put!(K::LockReleased { lock, mode: mode(op == 4), seq, poisoned: false })
            }
            OP_REQUESTED | 6 => {
                let operand = c.leb()?;
                let lock = LockId(u32::try_from(operand >> 1).ok()?);
                let site = self.locks.lock(lock).site(operand & (SITE_SAME >> 1) != 0, c)?;
                put!(K::LockRequested { lock, mode: mode(op == 6), site })
            }
            OP_POLL_STARTED => {
                if let Some(task) = c.opt()? {
                    self.task = Some(TaskId(task));
                }
                put!(K::PollStarted)
            }
            OP_POLL_ENDED | 9 => {
                put!(K::PollEnded { ready: op == 9 });
                self.task = None;
            }
            OP_WAKE => {
                let operand = c.leb()?;
                let task = TaskId(u32::try_from(operand >> 1).ok()?);
                put!(K::Wake { task, by_ref: operand & 1 != 0 })
            }
            OP_TASK_SPAWNED => put!(K::TaskSpawned { task: TaskId(c.u32()?), site: c.opt_site()? }),
            OP_TASK_FINISHED => put!(K::TaskFinished { cancelled: false }),
            OP_READ => put!(K::Read { var: VarId(c.u32()?), site: c.site()? }),
            OP_WRITE => put!(K::Write { var: VarId(c.u32()?), site: c.site()? }),
            _ => c.at = self.decode_ext(Window { ..*c }, slots)?,
        }
        Some(true)
    }

    /// Decodes the rest of an [`OP_EXT`] record.
    #[inline(never)]
    /// Returns where the record ends. (It takes the window by value, so that the window's
    /// position stays in a register in the hot loop.)
    fn decode_ext(&mut self, mut window: Window, slots: &mut Slots<'_>) -> Option<usize> {
        let c = &mut window;
        use EventKind as K;
        let op = c.byte()?;
        if self.locks.first_unknown_ext.is_some_and(|first| op >= first) {
            return None;
        }
        let mode =
            |flags: u8| if flags & SHARED != 0 { LockMode::Shared } else { LockMode::Exclusive };
        let kind = match op {
            op if op == Ext::Acquired as u8 => {
                let (lock, flags) = (LockId(c.u32()?), c.flags(SHARED | VIA_TRY | HAS_SEQ)?);
                let memory = self.locks.lock(lock);
                let site = memory.site(false, c)?;
                let seq = match flags & HAS_SEQ {
                    0 => None,
                    _ => memory.seq(false, c)?,
                };
                K::LockAcquired {
                    lock,
                    mode: mode(flags),
                    site,
                    seq,
                    via_try: flags & VIA_TRY != 0,
                }
            }
            op if op == Ext::TryFailed as u8 => {
                let (lock, flags) = (LockId(c.u32()?), c.flags(SHARED)?);
                let site = self.locks.lock(lock).site(false, c)?;
                K::LockTryFailed { lock, mode: mode(flags), site }
            }
            op if op == Ext::Released as u8 => {
                let (lock, flags) = (LockId(c.u32()?), c.flags(SHARED | POISONED | HAS_SEQ)?);
                let seq = match flags & HAS_SEQ {
                    0 => None,
                    _ => self.locks.lock(lock).seq(false, c)?,
                };
                K::LockReleased { lock, mode: mode(flags), seq, poisoned: flags & POISONED != 0 }
            }
            op if op == Ext::TaskCancelled as u8 => K::TaskFinished { cancelled: true },
            op if op == Ext::TaskJoinRequested as u8 => {
                K::TaskJoinRequested { task: TaskId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::TaskJoined as u8 => {
                K::TaskJoined { task: TaskId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::ThreadSpawned as u8 => {
                K::ThreadSpawned { thread: ThreadId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::ThreadStarted as u8 => K::ThreadStarted,
            op if op == Ext::ThreadFinished as u8 => {
                K::ThreadFinished { panicked: c.flags(PANICKED)? != 0 }
            }
            op if op == Ext::ThreadJoinRequested as u8 => {
                K::ThreadJoinRequested { thread: ThreadId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::ThreadJoined as u8 => {
                K::ThreadJoined { thread: ThreadId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::Send as u8 => {
                K::Send { channel: ChannelId(c.u32()?), message: c.leb()?, site: c.site()? }
            }
            op if op == Ext::Receive as u8 => {
                K::Receive { channel: ChannelId(c.u32()?), message: c.leb()?, site: c.site()? }
            }
            op if op == Ext::SyncRelease as u8 => {
                K::SyncRelease { var: VarId(c.u32()?), site: c.site()? }
            }
            op if op == Ext::SyncAcquire as u8 => {
                K::SyncAcquire { var: VarId(c.u32()?), site: c.site()? }
            }
            op if op == Ext::Mark as u8 => {
                K::Mark { label: StringId(c.u32()?), site: c.opt_site()? }
            }
            op if op == Ext::Gap as u8 => K::Gap { dropped: c.leb()? },
            op if op == Ext::Panicked as u8 => K::Panicked { site: c.opt_site()? },
            op if op == Ext::AwaitPending as u8 => K::AwaitPending { site: c.site()? },
            op if op == Ext::Permits as u8 => {
                let lock = LockId(c.u32()?);
                let op = *PermitOp::ALL.get(usize::from(c.byte()?))?;
                K::Permits { lock, op, count: c.u32()? }
            }
            op if op == Ext::PollCpu as u8 => {
                K::PollCpu { cpu_ns: c.leb()?, runnable_ns: c.leb()? }
            }
            op if op == Ext::RecordingEnded as u8 => K::RecordingEnded,
            op if op == Ext::ChannelCreated as u8 => {
                let channel = ChannelId(c.u32()?);
                K::ChannelCreated { channel, kind: *ChannelKind::ALL.get(usize::from(c.byte()?))? }
            }
            op if op == Ext::ReceiveWaiting as u8 => {
                K::ReceiveWaiting { channel: ChannelId(c.u32()?), site: c.site()? }
            }
            _ => return None,
        };
        let slot = slots.next()?;
        slot.write(Event { time_ns: self.time, thread: self.thread, task: self.task, kind });
        Some(window.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Events of one thread covering every event kind: version 1's, with the records of
    /// versions 3 and 4 put in among them.
    fn events() -> impl Strategy<Value = Vec<Event>> {
        let id = prop_oneof![0u32..4, any::<u32>()];
        let big = prop_oneof![0u64..300, any::<u64>()];
        let v3 = (0u8..7, id.clone(), id, big.clone(), big, any::<bool>()).prop_map(
            |(variant, a, b, x, y, flag)| match variant {
                0 => EventKind::Panicked { site: flag.then_some(SiteId(b)) },
                1 => EventKind::AwaitPending { site: SiteId(b) },
                2 => EventKind::Permits {
                    lock: LockId(a),
                    op: PermitOp::ALL[(y % 4) as usize],
                    count: x as u32,
                },
                3 => EventKind::PollCpu { cpu_ns: x, runnable_ns: y },
                4 => EventKind::ChannelCreated {
                    channel: ChannelId(a),
                    kind: ChannelKind::ALL[(y % 3) as usize],
                },
                5 => EventKind::ReceiveWaiting { channel: ChannelId(a), site: SiteId(b) },
                _ => EventKind::RecordingEnded,
            },
        );
        let inserts = prop::collection::vec((any::<usize>(), any::<u64>(), v3), 0..6);
        (crate::format::v1::tests::events(), inserts).prop_map(|(mut events, inserts)| {
            for (at, time_ns, kind) in inserts {
                let at = at % (events.len() + 1);
                let task = events.get(at).and_then(|e| e.task);
                events.insert(at, Event { time_ns, thread: ThreadId(7), task, kind });
            }
            events
        })
    }

    fn encode(events: &[Event]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_events(ThreadId(7), events, &mut bytes);
        bytes
    }

    /// What decoding `bytes` gives, into a buffer that already holds an event.
    fn decode(bytes: &[u8], scratch: &mut Scratch) -> Option<Vec<Event>> {
        let marker =
            Event { time_ns: 1, thread: ThreadId(0), task: None, kind: EventKind::ThreadStarted };
        let mut out = vec![marker];
        // Damage may change the thread: only a clean batch's is checked.
        let decoded = decode_events(bytes, scratch, &mut out)
            .map(|thread| out[1..].iter().map(|e| Event { thread, ..*e }).collect());
        if decoded.is_none() {
            assert_eq!(out, [marker], "a failed decode leaves the buffer as it was");
        }
        decoded
    }

    proptest! {
        #[test]
        fn every_event_kind_round_trips_and_damage_never_panics(
            batches in prop::collection::vec(events(), 1..4),
            edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
            trailing in any::<u8>(),
        ) {
            // One scratch for every batch, as a reader keeps it.
            let mut scratch = Scratch::default();
            for events in &batches {
                let mut bytes = encode(events);
                prop_assert_eq!(decode(&bytes, &mut scratch), Some(events.clone()));
                let mut longer = bytes.clone();
                longer.push(trailing);
                prop_assert_eq!(decode(&longer, &mut scratch), None);
                if !events.is_empty() {
                    let cut = 1 + cut % (bytes.len() - 1);
                    prop_assert_eq!(decode(&bytes[..cut], &mut scratch), None);
                }
                for (at, byte) in &edits {
                    let at = at % bytes.len();
                    bytes[at] = *byte;
                }
                // Damage decodes to something or nothing, without a panic.
                decode(&bytes, &mut scratch);
            }
        }
    }

    #[test]
    fn a_version_2_file_has_no_version_3_records() {
        let at = |kind| Event { time_ns: 5, thread: ThreadId(7), task: None, kind };
        let old = [at(EventKind::Gap { dropped: 3 })];
        let new = [at(EventKind::Panicked { site: None })];
        let mut version_2 = Scratch::for_version(2);
        assert_eq!(decode(&encode(&old), &mut version_2), Some(old.to_vec()));
        assert_eq!(decode(&encode(&new), &mut version_2), None, "damage in a version 2 file");
        assert_eq!(decode(&encode(&new), &mut Scratch::for_version(3)), Some(new.to_vec()));
    }

    #[test]
    fn a_version_3_file_has_no_version_4_records() {
        let at = |kind| Event { time_ns: 5, thread: ThreadId(7), task: None, kind };
        let old = [at(EventKind::Panicked { site: None })];
        let new = [at(EventKind::ReceiveWaiting { channel: ChannelId(1), site: SiteId(2) })];
        let mut version_3 = Scratch::for_version(3);
        assert_eq!(decode(&encode(&old), &mut version_3), Some(old.to_vec()));
        assert_eq!(decode(&encode(&new), &mut version_3), None, "damage in a version 3 file");
        assert_eq!(decode(&encode(&new), &mut Scratch::for_version(4)), Some(new.to_vec()));
    }

    #[test]
    fn other_payloads_round_trip_and_are_not_event_batches() {
        let payloads = [
            Payload::Header(Header { program: "p".into(), ..Header::default() }),
            Payload::Definitions(vec![Definition::String { id: StringId(3), text: "s".into() }]),
            Payload::Watermark { time_ns: 5 },
        ];
        for payload in payloads {
            let mut bytes = Vec::new();
            encode_payload(&payload, &mut bytes).expect("encodes");
            assert_eq!(decode(&bytes, &mut Scratch::default()), None);
            assert_eq!(decode_payload(&bytes), Ok(payload));
        }
        assert!(decode_payload(&[9]).is_err());
        assert!(decode_payload(&[]).is_err());
    }

    #[test]
    fn usual_lock_events_take_a_tag_a_time_byte_and_a_lock_byte() {
        use EventKind as K;
        let (lock, site) = (LockId(3), SiteId(5));
        let seq = |n| NonZeroU64::new(n);
        let at = |time_ns, kind| Event { time_ns, thread: ThreadId(7), task: None, kind };
        let mode = LockMode::Exclusive;
        let events = [
            at(100, K::LockRequested { lock, mode, site }),
            at(600, K::LockAcquired { lock, mode, site, seq: seq(1), via_try: false }),
            at(1100, K::LockReleased { lock, mode, seq: seq(2), poisoned: false }),
        ];
        // The batch header: kind, thread, base time, event count.
        let header = 4;
        // The request (at the base time, so no time byte) writes its site; the acquisition
        // and the release imply theirs and their sequence numbers.
        assert_eq!(encode(&events).len() - header, 3 + 3 + 3);
        assert_eq!(decode(&encode(&events), &mut Scratch::default()), Some(events.to_vec()));
    }
}
