//! Any sequence of events written in any split reads back exactly.

mod support;

use hindsight_recorder::format::{
    arbitrary, Definition, Event, EventKind, Header, Item, StringId, Tail, TaskId, ThreadId,
    TraceWriter,
};
use proptest::prelude::*;
use support::read_all;

/// Every event kind, with field values spanning every varint width.
fn event_kind() -> impl Strategy<Value = EventKind> {
    let id = prop_oneof![0u32..4, 0u32..300, any::<u32>()];
    arbitrary::event_kind(id, prop_oneof![0u64..300, any::<u64>()])
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
