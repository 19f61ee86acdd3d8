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
//! This version is frozen: it is only read now (its encoder remains for its tests). Its lock
//! definitions had no implementation or capacity; they read with the implementation inferred
//! from the kind and blocking-ness (see [`LockDefV1`]) and no capacity.

use super::defs::{
    ChannelDef, Definition, Header, LockDef, LockImplementation, LockKind, SiteDef, TaskDef,
    ThreadDef, VarDef,
};
use super::event::{Event, EventKind, LockMode};
use super::frame::{bincode_config, describe_decode_error};
use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use super::in_place::{decode_records, DecodeRecord, Records, Slots, WINDOW};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU64;

/// The payload of one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Payload {
    /// The trace header; always the first chunk.
    Header(Header),
    /// Definitions of ids used by later chunks.
    Definitions(Vec<DefinitionV1>),
    /// Events of one thread.
    Events(Batch),
    /// Every event recorded before `time_ns` has been written (see the ordering docs).
    Watermark {
        /// Trace time of the watermark.
        time_ns: u64,
    },
}

/// A definition as version 1 wrote it: today's, but for its lock definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum DefinitionV1 {
    String { id: StringId, text: String },
    Site(SiteDef),
    Thread(ThreadDef),
    Task(TaskDef),
    Lock(LockDefV1),
    Variable(VarDef),
    Channel(ChannelDef),
}

/// A lock definition as version 1 wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LockDefV1 {
    id: LockId,
    kind: LockKind,
    blocking: bool,
    name: Option<StringId>,
    site: Option<SiteId>,
}

impl From<DefinitionV1> for Definition {
    fn from(definition: DefinitionV1) -> Definition {
        match definition {
            DefinitionV1::String { id, text } => Definition::String { id, text },
            DefinitionV1::Site(site) => Definition::Site(site),
            DefinitionV1::Thread(thread) => Definition::Thread(thread),
            DefinitionV1::Task(task) => Definition::Task(task),
            DefinitionV1::Lock(lock) => Definition::Lock(lock.into()),
            DefinitionV1::Variable(var) => Definition::Variable(var),
            DefinitionV1::Channel(channel) => Definition::Channel(channel),
        }
    }
}

impl From<LockDefV1> for LockDef {
    fn from(lock: LockDefV1) -> LockDef {
        let implementation = LockImplementation::inferred(lock.kind, lock.blocking);
        let LockDefV1 { id, kind, blocking, name, site } = lock;
        LockDef { id, kind, blocking, name, site, implementation, capacity: None }
    }
}

/// Decodes a version-1 chunk payload, appending a batch's events to `out`; on failure says
/// what is wrong and leaves `out` as it was.
pub(crate) fn decode_payload(
    bytes: &[u8],
    seqs: &mut SeqScratch,
    out: &mut Vec<Event>,
) -> Result<super::payload::Payload, String> {
    use super::payload::Payload as Decoded;
    // Event batches, nearly every chunk, are decoded straight from their bytes.
    if decode_events(bytes, seqs, out).is_some() {
        return Ok(Decoded::Events);
    }
    match bincode::serde::decode_from_slice::<Payload, _>(bytes, bincode_config()) {
        Ok((payload, used)) if used == bytes.len() => Ok(match payload {
            Payload::Header(header) => Decoded::Header(header),
            Payload::Definitions(definitions) => {
                Decoded::Definitions(definitions.into_iter().map(Definition::from).collect())
            }
            Payload::Events(batch) => {
                batch.decode_into(out);
                Decoded::Events
            }
            Payload::Watermark { time_ns } => Decoded::Watermark { time_ns },
        }),
        Ok(_) => Err("chunk has trailing bytes".into()),
        Err(e) => Err(format!("undecodable chunk: {}", describe_decode_error(&e))),
    }
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
/// [`decode_events`] reads these by variant index and field order without bincode: keep it in
/// step (its test compares the two on random and damaged batches).
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
    #[cfg(test)]
    fn encode_seq(&mut self, lock: LockId, seq: NonZeroU64) -> u64 {
        let previous = self.seqs.insert(lock, seq.get()).unwrap_or(0);
        seq.get().wrapping_sub(previous)
    }

    /// `lock`'s number from its delta, as [`SeqScratch::decode`] computes it.
    fn decode_seq(&mut self, lock: LockId, delta: u64) -> Option<NonZeroU64> {
        let seq = self.seqs.get(&lock).copied().unwrap_or(0).wrapping_add(delta);
        self.seqs.insert(lock, seq);
        NonZeroU64::new(seq)
    }

    #[cfg(test)]
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
    #[cfg(test)]
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

// === direct decoding of event batches ===

/// Lock ids below this keep their previous sequence number in a table; larger (hostile) ids in
/// a map, so that one id such as `u32::MAX` costs one map entry.
const DENSE_LOCKS: u32 = 1 << 16;

/// The previous sequence number of each lock in the batch being decoded, kept by a reader
/// across batches so that decoding a batch allocates nothing. Table entries carry the number
/// of the batch that wrote them instead of being cleared between batches.
#[derive(Debug, Default)]
pub(crate) struct SeqScratch {
    dense: Vec<(u32, u64)>,
    sparse: FxHashMap<u32, u64>,
    batch: u32,
}

impl SeqScratch {
    /// Forgets every lock's number: a new batch starts.
    fn start_batch(&mut self) {
        self.sparse.clear();
        self.batch = self.batch.wrapping_add(1);
        if self.batch == 0 {
            // After 2³² batches the stamps wrap: clear them for real once.
            self.dense.iter_mut().for_each(|entry| *entry = (0, 0));
            self.batch = 1;
        }
    }

    /// `lock`'s number from its delta. None if that is 0, which no lock operation has: a
    /// damaged file's 0 reads as no number, which orders the event by time alone. (That costs
    /// nothing: an optional `NonZeroU64` is a `u64` with 0 for none.)
    #[inline(always)]
    fn decode(&mut self, lock: LockId, delta: u64) -> Option<NonZeroU64> {
        // The table never holds more than `DENSE_LOCKS` entries, so a hit is a dense id.
        let Some(entry) = self.dense.get_mut(lock.index()) else {
            return self.decode_cold(lock, delta);
        };
        // Without a branch: whether the entry is of this batch is not predictable.
        let previous = entry.1 & u64::from(entry.0 == self.batch).wrapping_neg();
        let seq = previous.wrapping_add(delta);
        *entry = (self.batch, seq);
        NonZeroU64::new(seq)
    }

    /// [`decode`](Self::decode) for a lock beyond the table: grows it, or uses the map.
    #[cold]
    #[inline(never)]
    fn decode_cold(&mut self, lock: LockId, delta: u64) -> Option<NonZeroU64> {
        if lock.0 >= DENSE_LOCKS {
            let entry = self.sparse.entry(lock.0).or_insert(0);
            *entry = entry.wrapping_add(delta);
            return NonZeroU64::new(*entry);
        }
        self.dense.resize(lock.index() + 1, (0, 0));
        self.decode(lock, delta)
    }
}

/// Bytes of the longest record: `ReleasedOther` with every integer in its widest form (a
/// 5-byte variant, time, lock, mode, option tag, sequence number, bool: 5 + 9 + 5 + 5 + 1 +
/// 9 + 1). The batch header is shorter (5 + 5 + 9 + 9).
const LONGEST_RECORD: usize = 35;

// A record is decoded from a window of `WINDOW` bytes: the longest record fits, with room for
// the 8-byte read that a wide integer starting in it does.
const _: () = assert!(LONGEST_RECORD + 8 <= WINDOW);

/// Why a read stays in its window (the compiler proves it: the checks cost nothing).
const IN_WINDOW: &str = "a record's reads stay within the longest record and 8 bytes";

/// Reads bincode's standard encoding (varint integers, as `frame::bincode_config` sets it)
/// from the start of a fixed window of bytes, which holds at least one whole record, so that
/// no read looks past its end. Every method returns `None` where bincode would fail on the
/// window's bytes; the caller then checks that the record did not run past the payload.
struct Window<'a> {
    bytes: &'a [u8; WINDOW],
    /// Bytes read so far: at most [`LONGEST_RECORD`].
    at: usize,
}

impl<'a> Window<'a> {
    /// A window on the start of `rest`; near the end of the payload, on a copy of `rest`
    /// padded with zeros in `padded`.
    #[inline(always)]
    fn over(rest: &'a [u8], padded: &'a mut [u8; WINDOW]) -> Self {
        let bytes = match rest.first_chunk() {
            Some(bytes) => bytes,
            None => Self::pad(rest, padded),
        };
        Window { bytes, at: 0 }
    }

    #[cold]
    fn pad(rest: &[u8], padded: &'a mut [u8; WINDOW]) -> &'a [u8; WINDOW] {
        *padded = [0; WINDOW];
        padded[..rest.len()].copy_from_slice(rest);
        padded
    }

    #[inline(always)]
    fn byte(&mut self) -> u8 {
        let byte = self.bytes[self.at];
        self.at += 1;
        byte
    }

    /// The next 2 bytes, little-endian.
    #[inline(always)]
    fn u16(&mut self) -> u16 {
        let value = u16::from_le_bytes(*self.bytes[self.at..].first_chunk().expect(IN_WINDOW));
        self.at += 2;
        value
    }

    /// The integer after a varint's marker 252 (4 bytes) or, if `u64`, 253 (8 bytes).
    #[inline(always)]
    fn wider(&mut self, marker: u8, u64: bool) -> Option<u64> {
        let word = u64::from_le_bytes(*self.bytes[self.at..].first_chunk().expect(IN_WINDOW));
        match marker {
            252 => {
                self.at += 4;
                Some(word & u64::from(u32::MAX))
            }
            253 if u64 => {
                self.at += 8;
                Some(word)
            }
            _ => None,
        }
    }

    /// A varint `u64`: one byte below 251, else a marker (251, 252, 253) and 2, 4 or 8 bytes.
    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        match self.byte() {
            small @ 0..=250 => Some(u64::from(small)),
            251 => Some(u64::from(self.u16())),
            marker => self.wider(marker, true),
        }
    }

    /// A varint `u32`: as a `u64`, without the 8-byte form.
    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        match self.byte() {
            small @ 0..=250 => Some(u32::from(small)),
            marker => self.wide_u32(marker),
        }
    }

    /// The rest of a varint `u32` that starts with `marker`, 251 or more.
    #[inline(always)]
    fn wide_u32(&mut self, marker: u8) -> Option<u32> {
        match marker {
            251 => Some(u32::from(self.u16())),
            marker => self.wider(marker, false).map(|v| v as u32),
        }
    }

    /// A [`Record`] variant index: a varint `u32` below 32. The match on it needs no range
    /// check when it is one byte.
    #[inline(always)]
    fn variant(&mut self) -> Option<u8> {
        match self.byte() {
            small @ 0..=31 => Some(small),
            32..=250 => None,
            marker => self.wide_u32(marker).filter(|&v| v < 32).map(|v| v as u8),
        }
    }

    /// A `bool`: the byte 0 or 1.
    #[inline(always)]
    fn bool(&mut self) -> Option<bool> {
        match self.byte() {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// An `Option`'s tag: the byte 0 (`None`) or 1 (`Some`, and the value follows), as a
    /// `bool` is.
    #[inline(always)]
    fn some(&mut self) -> Option<bool> {
        self.bool()
    }

    /// A [`LockMode`]: its variant index.
    #[inline(always)]
    fn mode(&mut self) -> Option<LockMode> {
        match self.u32()? {
            0 => Some(LockMode::Exclusive),
            1 => Some(LockMode::Shared),
            _ => None,
        }
    }

    #[inline(always)]
    fn lock(&mut self) -> Option<LockId> {
        self.u32().map(LockId)
    }

    #[inline(always)]
    fn site(&mut self) -> Option<SiteId> {
        self.u32().map(SiteId)
    }

    #[inline(always)]
    fn opt_site(&mut self) -> Option<Option<SiteId>> {
        Some(if self.some()? { Some(self.site()?) } else { None })
    }
}

/// Decodes a chunk payload straight from its bytes if it is an event batch, appending its
/// events to `out`: the events that decoding the [`Payload`] with bincode and then
/// [`Batch::decode_into`] give, without building the records in between. Returns the batch's
/// thread, or `None` (and leaves `out` as it was) if the payload is not an event batch or
/// bincode would not decode it; the caller then decodes it the general way, which also
/// says what is wrong. (A batch payload cannot reach bincode's memory limit: its claims are
/// at most 8 bytes per payload byte, and a chunk is at most `MAX_CHUNK_LEN`.)
pub(crate) fn decode_events(
    payload: &[u8],
    seqs: &mut SeqScratch,
    out: &mut Vec<Event>,
) -> Option<ThreadId> {
    let mut short = [0; WINDOW];
    let mut c = Window::over(payload, &mut short);
    // `Payload::Events` is variant 2.
    if c.u32()? != 2 {
        return None;
    }
    let thread = ThreadId(c.u32()?);
    let time = c.u64()?;
    let left = c.u64()?;
    let rest = payload.get(c.at..)?;
    // Every record takes at least two bytes: reserve no more than the payload can hold.
    let reserve = left.min(rest.len() as u64 / 2) as usize;
    seqs.start_batch();
    let mut records = Records { thread, time, task: None, locks: seqs };
    // Like bincode's caller, this refuses trailing bytes.
    decode_records(rest, left, reserve, out, &mut records)?;
    Some(thread)
}

impl DecodeRecord for Records<'_, SeqScratch> {
    /// A batch counts its records.
    #[inline(always)]
    fn decode_record(
        &mut self,
        window: &[u8; WINDOW],
        slots: &mut Slots<'_>,
    ) -> Option<(usize, u64)> {
        let mut c = Window { bytes: window, at: 0 };
        self.decode(&mut c, slots)?;
        Some((c.at, 1))
    }
}

impl Records<'_, SeqScratch> {
    /// Decodes the record at the start of `c`, pushing its event if it has one.
    #[inline(always)]
    fn decode(&mut self, c: &mut Window, slots: &mut Slots<'_>) -> Option<()> {
        use EventKind as K;
        use LockMode::{Exclusive, Shared};
        // Pushes an event of the kind built by `$kind` after reading the record's time: each
        // arm pushes the whole event, as building the kind first and the event after costs a
        // copy of it.
        macro_rules! put {
            ($kind:expr) => {{
                self.time = self.time.wrapping_add(c.u64()?);
                // There is a slot for every event (see the reservation); if there were not,
                // the caller would decode the batch the general way.
                let slot = slots.next()?;
                slot.write(Event {
                    time_ns: self.time,
                    thread: self.thread,
                    task: self.task,
                    kind: $kind,
                });
            }};
        }
        match c.variant()? {
            0 => self.task = if c.some()? { Some(TaskId(c.u32()?)) } else { None },
            1 => put!(K::LockRequested { lock: c.lock()?, mode: Exclusive, site: c.site()? }),
            2 => put!(K::LockRequested { lock: c.lock()?, mode: Shared, site: c.site()? }),
            variant @ 3..=6 => put!({
                let (lock, site, delta) = (c.lock()?, c.site()?, c.u64()?);
                let seq = self.locks.decode(lock, delta);
                let mode = if variant % 2 == 0 { Shared } else { Exclusive };
                K::LockAcquired { lock, mode, site, seq, via_try: variant >= 5 }
            }),
            7 => put!(K::LockAcquired {
                lock: c.lock()?,
                mode: c.mode()?,
                site: c.site()?,
                seq: None,
                via_try: c.bool()?,
            }),
            8 => put!(K::LockTryFailed { lock: c.lock()?, mode: c.mode()?, site: c.site()? }),
            variant @ (9 | 10) => put!({
                let (lock, delta) = (c.lock()?, c.u64()?);
                let seq = self.locks.decode(lock, delta);
                let mode = if variant == 9 { Exclusive } else { Shared };
                K::LockReleased { lock, mode, seq, poisoned: false }
            }),
            11 => put!({
                let (lock, mode) = (c.lock()?, c.mode()?);
                let seq = if c.some()? { self.locks.decode(lock, c.u64()?) } else { None };
                K::LockReleased { lock, mode, seq, poisoned: c.bool()? }
            }),
            12 => put!(K::TaskSpawned { task: TaskId(c.u32()?), site: c.opt_site()? }),
            13 => put!(K::PollStarted),
            14 => put!(K::PollEnded { ready: c.bool()? }),
            15 => put!(K::TaskFinished { cancelled: c.bool()? }),
            16 => put!(K::TaskJoinRequested { task: TaskId(c.u32()?), site: c.opt_site()? }),
            17 => put!(K::TaskJoined { task: TaskId(c.u32()?), site: c.opt_site()? }),
            18 => put!(K::Wake { task: TaskId(c.u32()?), by_ref: c.bool()? }),
            19 => put!(K::ThreadSpawned { thread: ThreadId(c.u32()?), site: c.opt_site()? }),
            20 => put!(K::ThreadStarted),
            21 => put!(K::ThreadFinished { panicked: c.bool()? }),
            22 => put!(K::ThreadJoinRequested { thread: ThreadId(c.u32()?), site: c.opt_site()? }),
            23 => put!(K::ThreadJoined { thread: ThreadId(c.u32()?), site: c.opt_site()? }),
            24 => {
                put!(K::Send { channel: ChannelId(c.u32()?), message: c.u64()?, site: c.site()? })
            }
            25 => {
                put!(K::Receive {
                    channel: ChannelId(c.u32()?),
                    message: c.u64()?,
                    site: c.site()?
                })
            }
            26 => put!(K::Read { var: VarId(c.u32()?), site: c.site()? }),
            27 => put!(K::Write { var: VarId(c.u32()?), site: c.site()? }),
            28 => put!(K::SyncRelease { var: VarId(c.u32()?), site: c.site()? }),
            29 => put!(K::SyncAcquire { var: VarId(c.u32()?), site: c.site()? }),
            30 => put!(K::Mark { label: StringId(c.u32()?), site: c.opt_site()? }),
            31 => put!(K::Gap { dropped: c.u64()? }),
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
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
        K::Panicked { .. }
        | K::AwaitPending { .. }
        | K::Permits { .. }
        | K::PollCpu { .. }
        | K::RecordingEnded
        | K::ChannelCreated { .. }
        | K::ReceiveWaiting { .. } => unreachable!("version 1 has no record of {kind:?}"),
    }
}

fn decode_kind(state: &mut DeltaState, record: &Record) -> (u64, EventKind) {
    use EventKind as K;
    use LockMode::{Exclusive, Shared};
    let acquired = |state: &mut DeltaState, lock, site, seq, mode, via_try| K::LockAcquired {
        lock,
        mode,
        site,
        seq: state.decode_seq(lock, seq),
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
            let seq = state.decode_seq(lock, seq);
            (dt, K::LockReleased { lock, mode: Exclusive, seq, poisoned: false })
        }
        Record::ReleasedShared { dt, lock, seq } => {
            let seq = state.decode_seq(lock, seq);
            (dt, K::LockReleased { lock, mode: Shared, seq, poisoned: false })
        }
        Record::ReleasedOther { dt, lock, mode, seq, poisoned } => {
            let seq = seq.and_then(|seq| state.decode_seq(lock, seq));
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Events of one thread covering every record (and every event kind), with values of
    /// every varint width; `v2`'s tests use them too.
    pub(in crate::format) fn events() -> impl Strategy<Value = Vec<Event>> {
        let id = prop_oneof![0u32..4, 0u32..300, any::<u32>()];
        let big = prop_oneof![0u64..300, any::<u64>()];
        let one = (0u8..32, id.clone(), id, big.clone(), big, any::<bool>(), any::<bool>());
        let kind = one.prop_map(|(variant, a, b, x, y, flag, other)| {
            use EventKind as K;
            let mode = if flag { LockMode::Shared } else { LockMode::Exclusive };
            let (lock, site, opt_site) = (LockId(a % 8), SiteId(b), flag.then_some(SiteId(b)));
            let seq = other.then_some(x).and_then(NonZeroU64::new);
            match variant {
                0 => K::LockRequested { lock, mode, site },
                1..=4 => K::LockAcquired { lock, mode, site, seq, via_try: y % 2 == 0 },
                5 => K::LockAcquired { lock: LockId(a), mode, site, seq, via_try: other },
                6 => K::LockTryFailed { lock, mode, site },
                7..=10 => K::LockReleased { lock, mode, seq, poisoned: y % 5 == 0 },
                11 => K::LockReleased { lock: LockId(a), mode, seq, poisoned: other },
                12 => K::TaskSpawned { task: TaskId(b), site: opt_site },
                13 => K::PollStarted,
                14 => K::PollEnded { ready: flag },
                15 => K::TaskFinished { cancelled: flag },
                16 => K::TaskJoined { task: TaskId(b), site: opt_site },
                17 => K::TaskJoinRequested { task: TaskId(b), site: opt_site },
                18 => K::Wake { task: TaskId(a), by_ref: flag },
                19 => K::ThreadSpawned { thread: ThreadId(a), site: opt_site },
                20 => K::ThreadStarted,
                21 => K::ThreadFinished { panicked: flag },
                22 => K::ThreadJoinRequested { thread: ThreadId(a), site: opt_site },
                23 => K::ThreadJoined { thread: ThreadId(a), site: opt_site },
                24 => K::Send { channel: ChannelId(a), message: x, site },
                25 => K::Receive { channel: ChannelId(a), message: x, site },
                26 => K::Read { var: VarId(a), site },
                27 => K::Write { var: VarId(a), site },
                28 => K::SyncRelease { var: VarId(a), site },
                29 => K::SyncAcquire { var: VarId(a), site },
                30 => K::Mark { label: StringId(b), site: opt_site },
                _ => K::Gap { dropped: y },
            }
        });
        let event =
            (prop::option::of(0u32..3), any::<u64>(), kind).prop_map(|(task, time_ns, kind)| {
                Event { time_ns, thread: ThreadId(7), task: task.map(TaskId), kind }
            });
        prop::collection::vec(event, 0..40)
    }

    fn encode(events: &[Event]) -> Vec<u8> {
        let payload = Payload::Events(Batch::encode(ThreadId(7), events));
        bincode::serde::encode_to_vec(&payload, bincode_config()).expect("encodes")
    }

    /// What the general path (bincode, then `decode_into`) makes of `bytes`.
    fn general(bytes: &[u8]) -> Option<Vec<Event>> {
        match bincode::serde::decode_from_slice::<Payload, _>(bytes, bincode_config()) {
            Ok((Payload::Events(batch), used)) if used == bytes.len() => {
                let mut out = Vec::new();
                batch.decode_into(&mut out);
                Some(out)
            }
            _ => None,
        }
    }

    /// What the direct path makes of `bytes`, into a buffer that already holds an event.
    fn direct(bytes: &[u8], seqs: &mut SeqScratch) -> Option<Vec<Event>> {
        let marker =
            Event { time_ns: 1, thread: ThreadId(0), task: None, kind: EventKind::ThreadStarted };
        let mut out = vec![marker];
        let decoded = decode_events(bytes, seqs, &mut out).map(|_| out[1..].to_vec());
        if decoded.is_none() {
            assert_eq!(out, [marker], "a failed decode leaves the buffer as it was");
        }
        decoded
    }

    proptest! {
        #[test]
        fn direct_decoding_agrees_with_bincode(
            batches in prop::collection::vec(events(), 1..4),
            edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            trailing in any::<u8>(),
        ) {
            // One scratch for every batch, as a reader keeps it.
            let mut seqs = SeqScratch::default();
            for events in &batches {
                let mut bytes = encode(events);
                prop_assert_eq!(direct(&bytes, &mut seqs), Some(events.clone()));
                // A trailing byte, and a cut anywhere (records are read from windows of
                // the payload, or from a padded copy of its end).
                let mut longer = bytes.clone();
                longer.push(trailing);
                prop_assert_eq!(direct(&longer, &mut seqs), None);
                let cut = &bytes[..cut % bytes.len()];
                prop_assert_eq!(direct(cut, &mut seqs), general(cut));
                for (at, byte) in &edits {
                    let at = at % bytes.len();
                    bytes[at] = *byte;
                }
                prop_assert_eq!(direct(&bytes, &mut seqs), general(&bytes));
                bytes.pop();
                prop_assert_eq!(direct(&bytes, &mut seqs), general(&bytes));
            }
        }
    }

    /// `value` as bincode writes it, and in the wider forms it also reads, and two markers it
    /// refuses.
    fn forms(value: u8) -> Vec<Vec<u8>> {
        let wide = |marker: u8, len: usize| {
            let mut form = vec![marker, value];
            form.resize(1 + len, 0);
            form
        };
        vec![vec![value], wide(251, 2), wide(252, 4), wide(253, 8), vec![254], vec![255]]
    }

    #[test]
    fn every_varint_form_agrees_with_bincode() {
        // The header (variant, thread, base time, record count) and an `Acquired` record
        // (variant, time, lock, site, sequence number), with one field at a time in each
        // form; the record alone, or between 40 `PollStarted` records on either side (so that
        // it is read from the payload, not from a padded copy of its end).
        let u32_fields = [0, 1, 4, 6, 7];
        for around in [0u8, 40] {
            let fields = [2, 7, 100, 2 * around + 1, 3, 1, 5, 2, 9];
            for (field, &value) in fields.iter().enumerate() {
                for (form_index, form) in forms(value).into_iter().enumerate() {
                    let mut bytes = Vec::new();
                    for (other, &value) in fields.iter().enumerate() {
                        if other == 4 {
                            (0..around).for_each(|_| bytes.extend([13, 1]));
                        }
                        if other == field {
                            bytes.extend(&form);
                        } else {
                            bytes.push(value);
                        }
                    }
                    (0..around).for_each(|_| bytes.extend([13, 1]));
                    let valid = form_index < 3 || form_index == 3 && !u32_fields.contains(&field);
                    let expected = general(&bytes);
                    assert_eq!(expected.is_some(), valid, "field {field}, form {form:?}");
                    assert_eq!(direct(&bytes, &mut SeqScratch::default()), expected);
                }
            }
        }
    }

    #[test]
    fn a_lock_sequence_number_of_0_reads_as_none_on_both_paths() {
        // An events payload of thread 7 at time 100 with one `Acquired` record (time delta 1,
        // lock 5, site 2), whose sequence number is its delta.
        let acquired = |seq: u8| vec![2, 7, 100, 1, 3, 1, 5, 2, seq];
        let seq_of = |bytes: &[u8]| match general(bytes).as_deref() {
            Some([Event { kind: EventKind::LockAcquired { seq, .. }, .. }]) => *seq,
            other => panic!("one acquisition expected, got {other:?}"),
        };
        assert_eq!(seq_of(&acquired(9)), NonZeroU64::new(9));
        assert_eq!(seq_of(&acquired(0)), None);
        for seq in [0, 9] {
            let bytes = acquired(seq);
            assert_eq!(direct(&bytes, &mut SeqScratch::default()), general(&bytes));
        }
    }

    #[test]
    fn lock_definitions_read_with_an_inferred_implementation_and_no_capacity() {
        let lock = |id, kind, blocking| {
            DefinitionV1::Lock(LockDefV1 { id: LockId(id), kind, blocking, name: None, site: None })
        };
        let payload = Payload::Definitions(vec![
            lock(0, LockKind::Mutex, true),
            lock(1, LockKind::RwLock, false),
            lock(2, LockKind::Semaphore, false),
            lock(3, LockKind::Custom, true),
        ]);
        let bytes = bincode::serde::encode_to_vec(&payload, bincode_config()).expect("encodes");
        let decoded = decode_payload(&bytes, &mut SeqScratch::default(), &mut Vec::new());
        let Ok(super::super::payload::Payload::Definitions(definitions)) = decoded else {
            panic!("definitions expected, got {decoded:?}");
        };
        let read: Vec<_> = definitions
            .iter()
            .map(|d| match d {
                Definition::Lock(lock) => (lock.implementation, lock.capacity),
                other => panic!("a lock expected, got {other:?}"),
            })
            .collect();
        use LockImplementation as I;
        let expected = [I::HindsightStd, I::Tokio, I::Tokio, I::UserDefined].map(|i| (i, None));
        assert_eq!(read, expected);
    }

    #[test]
    fn other_payloads_are_left_to_bincode() {
        let watermark = Payload::Watermark { time_ns: 5 };
        let bytes = bincode::serde::encode_to_vec(&watermark, bincode_config()).expect("encodes");
        assert_eq!(direct(&bytes, &mut SeqScratch::default()), None);
    }
}
