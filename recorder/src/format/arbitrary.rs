//! [proptest] strategies for events and whole traces, for the tests of the recorder and of
//! the tools that read its traces (feature `arbitrary`).
//!
//! A trace file is untrusted input: [`well_framed_trace`] makes traces that frame and
//! checksum correctly and can still say anything — ids never defined, time running backwards
//! or spanning all of `u64`, locks released that were never taken, sequence numbers out of
//! order, tasks polled on two threads at once.

use super::{
    ChannelDef, ChannelId, ChannelKind, Definition, Event, EventKind, Header, LockDef, LockId,
    LockImplementation, LockKind, LockMode, PermitOp, SiteDef, SiteId, StringId, TaskDef, TaskId,
    ThreadDef, ThreadId, TraceWriter, VarDef, VarId,
};
use proptest::prelude::*;
use std::num::NonZeroU64;

/// Ids in [`well_framed_trace`] are below this, so that its events meet on the same locks,
/// tasks and variables; the last id of each kind is never defined.
pub const IDS: u32 = 5;

fn mode(shared: bool) -> LockMode {
    if shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

/// Every kind of event, its ids drawn from `ids` and its numbers (sequence numbers, message
/// ids, counts) from `numbers`.
pub fn event_kind(
    ids: impl Strategy<Value = u32> + Clone,
    numbers: impl Strategy<Value = u64> + Clone,
) -> impl Strategy<Value = EventKind> {
    (0u8..31, ids.clone(), ids, numbers.clone(), numbers, any::<bool>(), any::<bool>()).prop_map(
        |(variant, a, b, x, y, flag, other)| {
            let (lock, site, var) = (LockId(a), SiteId(b), VarId(a));
            let opt_site = flag.then_some(site);
            let seq = other.then_some(x).and_then(NonZeroU64::new);
            match variant {
                0 => EventKind::LockRequested { lock, mode: mode(flag), site },
                1 => EventKind::LockAcquired {
                    lock,
                    mode: mode(flag),
                    site,
                    seq,
                    via_try: y % 2 == 0,
                },
                2 => EventKind::LockTryFailed { lock, mode: mode(flag), site },
                3 => EventKind::LockReleased { lock, mode: mode(flag), seq, poisoned: y % 3 == 0 },
                4 => EventKind::TaskSpawned { task: TaskId(b), site: opt_site },
                5 => EventKind::PollStarted,
                6 => EventKind::PollEnded { ready: flag },
                7 => EventKind::TaskFinished { cancelled: flag },
                8 => EventKind::TaskJoined { task: TaskId(b), site: opt_site },
                9 => EventKind::TaskJoinRequested { task: TaskId(b), site: opt_site },
                10 => EventKind::Wake { task: TaskId(a), by_ref: flag },
                11 => EventKind::ThreadSpawned { thread: ThreadId(a), site: opt_site },
                12 => EventKind::ThreadStarted,
                13 => EventKind::ThreadFinished { panicked: flag },
                14 => EventKind::ThreadJoinRequested { thread: ThreadId(a), site: opt_site },
                15 => EventKind::ThreadJoined { thread: ThreadId(a), site: opt_site },
                16 => EventKind::Send { channel: ChannelId(a), message: x, site },
                17 => EventKind::Receive { channel: ChannelId(a), message: x, site },
                18 => EventKind::Read { var, site },
                19 => EventKind::Write { var, site },
                20 => EventKind::SyncRelease { var, site },
                21 => EventKind::SyncAcquire { var, site },
                22 => EventKind::Mark { label: StringId(b), site: opt_site },
                23 => EventKind::Gap { dropped: y },
                24 => EventKind::Panicked { site: opt_site },
                25 => EventKind::AwaitPending { site },
                26 => EventKind::Permits {
                    lock,
                    op: PermitOp::ALL[(y % 4) as usize],
                    count: x as u32,
                },
                27 => EventKind::PollCpu { cpu_ns: x, runnable_ns: y },
                28 => EventKind::ChannelCreated {
                    channel: ChannelId(a),
                    kind: ChannelKind::ALL[(y % 3) as usize],
                },
                29 => EventKind::ReceiveWaiting { channel: ChannelId(a), site },
                _ => EventKind::RecordingEnded,
            }
        },
    )
}

/// An event with small ids (below [`IDS`]), and a time and numbers that are mostly small but
/// sometimes anywhere in `u64`, and whether a watermark at its time follows it.
fn event() -> impl Strategy<Value = (Event, bool)> {
    let time = prop_oneof![8 => 0u64..1_000_000_000, 1 => any::<u64>()];
    let kind = event_kind(0..IDS, prop_oneof![8 => 0u64..8, 1 => any::<u64>()]);
    (0..IDS, prop::option::of(0..IDS), time, kind, any::<u8>()).prop_map(
        |(thread, task, time_ns, kind, watermark)| {
            let event = Event { time_ns, thread: ThreadId(thread), task: task.map(TaskId), kind };
            (event, watermark < 8)
        },
    )
}

/// Definitions of every id below [`IDS`] but the last, lock kinds, blocking, names and task
/// kinds varying with `kinds`.
fn definitions(kinds: &[u8]) -> Vec<Definition> {
    let mut defs = vec![
        Definition::String { id: StringId(0), text: "src/lib.rs".into() },
        Definition::String { id: StringId(1), text: "name".into() },
        Definition::String { id: StringId(2), text: "block_on".into() },
        Definition::String { id: StringId(3), text: "blocking".into() },
    ];
    for i in 0..IDS - 1 {
        let site = SiteId(i);
        let kind = kinds.get(i as usize).copied().unwrap_or(0);
        let file = StringId(0);
        defs.push(Definition::Site(SiteDef { id: site, file, line: i, col: 1, function: None }));
        let thread = ThreadDef { id: ThreadId(i), name: Some(StringId(1)), os_id: 7 };
        defs.push(Definition::Thread(thread));
        defs.push(Definition::Task(TaskDef {
            id: TaskId(i),
            name: (kind % 2 == 0).then_some(StringId(1)),
            kind: [None, Some(StringId(2)), Some(StringId(3))][usize::from(kind % 3)],
            spawn_site: Some(site),
            runtime_id: None,
        }));
        defs.push(Definition::Lock(LockDef {
            id: LockId(i),
            kind: [LockKind::Mutex, LockKind::RwLock, LockKind::Semaphore, LockKind::Custom]
                [usize::from(kind % 4)],
            blocking: kind % 5 < 2,
            name: (kind % 3 == 0).then_some(StringId(1)),
            site: Some(site),
            implementation: [
                LockImplementation::Unknown,
                LockImplementation::Std,
                LockImplementation::Tokio,
                LockImplementation::ParkingLot,
                LockImplementation::HindsightStd,
                LockImplementation::HindsightTokio,
                LockImplementation::UserDefined,
            ][usize::from(kind % 7)],
            capacity: (kind % 4 == 2).then_some(u32::from(kind)),
        }));
        defs.push(Definition::Variable(VarDef { id: VarId(i), name: StringId(1), site: None }));
        defs.push(Definition::Channel(ChannelDef { id: ChannelId(i), name: None, site: None }));
    }
    defs
}

/// The bytes of a trace that frames and checksums correctly and whose up to 200 events say
/// anything (see the module docs), written in batches of random size, some followed by a
/// watermark.
pub fn well_framed_trace() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop::collection::vec(any::<u8>(), IDS as usize);
    let events = prop::collection::vec(event(), 0..200);
    (kinds, events, 1usize..40).prop_map(|(kinds, events, batch)| {
        let header = Header { program: "arbitrary".into(), pid: 1, ..Header::default() };
        let mut writer = TraceWriter::new(Vec::new(), &header).expect("writes to memory");
        writer.write_definitions(&definitions(&kinds)).expect("writes to memory");
        for chunk in events.chunks(batch) {
            let batch: Vec<Event> = chunk.iter().map(|(event, _)| *event).collect();
            writer.write_events(&batch).expect("writes to memory");
            if let Some((event, true)) = chunk.last() {
                writer.write_watermark(event.time_ns).expect("writes to memory");
            }
        }
        writer.into_inner()
    })
}
