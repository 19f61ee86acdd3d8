//! A trace file is untrusted input, and a well-framed one can still say anything: locks
//! released that were never taken, ids never defined, time running backwards, sequence
//! numbers out of order, tasks polled on two threads at once, joins of what never ran. The
//! analysis of any such trace ends with a report, never a panic, and every renderer and the
//! timeline take that report too.

use hindsight_analyzer::report::{json, sarif, text};
use hindsight_analyzer::timeline::Timeline;
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions};
use hindsight_recorder::format::{
    ChannelDef, ChannelId, Definition, Event, EventKind, Header, LockDef, LockId, LockKind,
    LockMode, SiteDef, SiteId, StringId, TaskDef, TaskId, ThreadDef, ThreadId, TraceWriter, VarDef,
    VarId,
};
use proptest::prelude::*;

/// Ids are drawn from a few values, so that events meet on the same locks, tasks and
/// variables; the last value of each is never defined.
const IDS: u32 = 5;

fn mode(shared: bool) -> LockMode {
    if shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    (0u8..24, 0..IDS, 0..IDS, 0u64..8, any::<bool>(), any::<bool>()).prop_map(
        |(variant, a, b, x, flag, other)| {
            let (lock, site, var) = (LockId(a), SiteId(b), VarId(a));
            let opt_site = flag.then_some(site);
            let seq = other.then_some(x);
            match variant {
                0 => EventKind::LockRequested { lock, mode: mode(flag), site },
                1 | 2 => {
                    EventKind::LockAcquired { lock, mode: mode(flag), site, seq, via_try: x == 0 }
                }
                3 => EventKind::LockTryFailed { lock, mode: mode(flag), site },
                4 | 5 => EventKind::LockReleased { lock, mode: mode(flag), seq, poisoned: x == 7 },
                6 => EventKind::TaskSpawned { task: TaskId(b), site: opt_site },
                7 => EventKind::PollStarted,
                8 => EventKind::PollEnded { ready: flag },
                9 => EventKind::TaskFinished { cancelled: flag },
                10 => EventKind::TaskJoined { task: TaskId(b), site: opt_site },
                11 => EventKind::TaskJoinRequested { task: TaskId(b), site: opt_site },
                12 => EventKind::Wake { task: TaskId(a), by_ref: flag },
                13 => EventKind::ThreadSpawned { thread: ThreadId(a), site: opt_site },
                14 => EventKind::ThreadFinished { panicked: flag },
                15 => EventKind::ThreadJoinRequested { thread: ThreadId(a), site: opt_site },
                16 => EventKind::ThreadJoined { thread: ThreadId(a), site: opt_site },
                17 => EventKind::Send { channel: ChannelId(a), message: x, site },
                18 => EventKind::Receive { channel: ChannelId(a), message: x, site },
                19 => EventKind::Read { var, site },
                20 => EventKind::Write { var, site },
                21 => EventKind::SyncRelease { var, site },
                22 => EventKind::SyncAcquire { var, site },
                _ => EventKind::Gap { dropped: x },
            }
        },
    )
}

/// An event, and whether a watermark follows it.
fn event() -> impl Strategy<Value = (Event, bool)> {
    let time = prop_oneof![8 => 0u64..1_000_000_000, 1 => any::<u64>()];
    (0..IDS, prop::option::of(0..IDS), time, event_kind(), any::<u8>()).prop_map(
        |(thread, task, time_ns, kind, watermark)| {
            let event = Event { time_ns, thread: ThreadId(thread), task: task.map(TaskId), kind };
            (event, watermark < 8)
        },
    )
}

/// Definitions of every id but the last, with lock kinds, blocking and names varying.
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
        defs.push(Definition::Site(SiteDef {
            id: site,
            file: StringId(0),
            line: i,
            col: 1,
            function: None,
        }));
        defs.push(Definition::Thread(ThreadDef {
            id: ThreadId(i),
            name: Some(StringId(1)),
            os_id: 7,
        }));
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
        }));
        defs.push(Definition::Variable(VarDef { id: VarId(i), name: StringId(1), site: None }));
        defs.push(Definition::Channel(ChannelDef { id: ChannelId(i), name: None, site: None }));
    }
    defs
}

fn write(kinds: &[u8], events: &[(Event, bool)], batch: usize) -> Vec<u8> {
    let header = Header {
        program: "arbitrary".into(),
        pid: 1,
        host: "test".into(),
        start_unix_ns: 0,
        recorder_version: "test".into(),
        clock: "monotonic".into(),
    };
    let mut writer = TraceWriter::new(Vec::new(), &header).expect("in memory");
    writer.write_definitions(&definitions(kinds)).expect("in memory");
    for chunk in events.chunks(batch.max(1)) {
        let batch: Vec<Event> = chunk.iter().map(|(event, _)| *event).collect();
        writer.write_events(&batch).expect("in memory");
        if let Some((event, true)) = chunk.last() {
            writer.write_watermark(event.time_ns).expect("in memory");
        }
    }
    writer.into_inner()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn analysis_ends_with_a_report(
        kinds in prop::collection::vec(any::<u8>(), IDS as usize),
        events in prop::collection::vec(event(), 0..200),
        batch in 1usize..40,
    ) {
        let bytes = write(&kinds, &events, batch);
        let traces = vec![("arbitrary.trace".to_owned(), bytes.clone())];
        let report = analyze_bytes(traces.clone(), &AnalyzeOptions::default())
            .expect("a well-framed trace is analysed");
        prop_assert!(report.trace.events <= events.len() as u64);
        let _ = (text::render(&report), json::render(&report), sarif::render(&report));
        Timeline::from_bytes(traces).expect("a well-framed trace has a timeline");
    }
}
