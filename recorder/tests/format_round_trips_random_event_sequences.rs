//! Any sequence of events written in any split reads back exactly.

mod support;

use hindsight_recorder::format::{
    ChannelId, Definition, Event, EventKind, Header, Item, LockId, LockMode, SiteId, StringId,
    Tail, TaskId, ThreadId, TraceWriter, VarId,
};
use proptest::prelude::*;
use support::read_all;

fn mode(shared: bool) -> LockMode {
    if shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

/// Every event kind, with field values spanning every varint width.
fn event_kind() -> impl Strategy<Value = EventKind> {
    let id = prop_oneof![0u32..4, 0u32..300, any::<u32>()];
    let big = prop_oneof![0u64..300, any::<u64>()];
    (0u8..24, id.clone(), id, big.clone(), big, any::<bool>(), any::<bool>()).prop_map(
        |(variant, a, b, x, y, flag, other)| {
            let (lock, site, var) = (LockId(a), SiteId(b), VarId(a));
            let opt_site = flag.then_some(site);
            let seq = other.then_some(x);
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
                _ => EventKind::Gap { dropped: y },
            }
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    (0u32..3, prop::option::of(0u32..3), any::<u64>(), event_kind()).prop_map(
        |(thread, task, time_ns, kind)| Event {
            time_ns,
            thread: ThreadId(thread),
            task: task.map(TaskId),
            kind,
        },
    )
}

fn definitions() -> impl Strategy<Value = Vec<Definition>> {
    prop::collection::vec((any::<u32>(), ".{0,40}"), 0..20).prop_map(|strings| {
        strings
            .into_iter()
            .map(|(id, text)| Definition::String { id: StringId(id), text })
            .collect()
    })
}

proptest! {
    #[test]
    fn events_and_definitions_read_back_exactly(
        definitions in definitions(),
        events in prop::collection::vec(event(), 0..300),
        splits in prop::collection::vec(0usize..300, 0..5),
    ) {
        let header = Header { program: "prop".into(), pid: 7, ..Header::default() };
        let mut writer = TraceWriter::new(Vec::new(), &header).unwrap();
        writer.write_definitions(&definitions).unwrap();
        let mut cuts: Vec<usize> = splits.into_iter().map(|s| s.min(events.len())).collect();
        cuts.push(0);
        cuts.push(events.len());
        cuts.sort_unstable();
        for window in cuts.windows(2) {
            writer.write_events(&events[window[0]..window[1]]).unwrap();
        }
        let bytes = writer.into_inner();

        let read = read_all(&bytes).unwrap();
        prop_assert_eq!(&read.tail, &Tail::Complete);
        let mut read_definitions = Vec::new();
        let mut read_events = Vec::new();
        for item in read.items {
            match item {
                Item::Definitions(d) => read_definitions.extend(d),
                Item::Events(e) => read_events.extend(e),
                Item::Watermark { .. } => {}
            }
        }
        prop_assert_eq!(read_definitions, definitions);
        prop_assert_eq!(read_events, events);
    }
}
