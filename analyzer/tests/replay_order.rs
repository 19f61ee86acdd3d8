//! Replay sees each lock's acquisitions and releases in their real order, whatever order the
//! threads' buffers reached the file in and whatever the timestamps say.

use hindsight_analyzer::detect::{Context, Detector, Interest};
use hindsight_analyzer::replay::{Actor, Replay};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, Finding, FindingKind};
use hindsight_recorder::format::{
    Event, EventKind, Header, LockId, LockKind, LockMode, ThreadId, TraceBuilder, TraceWriter,
};
use std::collections::HashMap;
use std::num::NonZeroU64;

/// Replays `bytes` and checks, event by event, that no lock is acquired while replay still
/// thinks another actor holds it in a conflicting mode. Returns the replayed events.
fn replay_checked(bytes: Vec<u8>) -> (Vec<Event>, Replay) {
    let mut replay = Replay::from_bytes(vec![("t".to_owned(), bytes)]).expect("readable");
    let mut events = Vec::new();
    while let Some(event) = replay.next_event() {
        if let EventKind::LockAcquired { lock, mode, .. } = event.kind {
            let actor = Actor::of(&event);
            if let Some(state) = replay.state().lock(lock) {
                for holder in &state.holders {
                    assert!(
                        holder.actor == actor
                            || (mode == LockMode::Shared && holder.hold.mode == LockMode::Shared),
                        "{event:?} replayed while {holder:?} holds the lock"
                    );
                }
            }
        }
        replay.apply(&event);
        events.push(event);
    }
    assert_eq!(replay.state().conflicts(), 0);
    (events, replay)
}

/// Four threads take turns on one mutex and two of them on a rwlock too. Every event has the
/// same timestamp, so only the sequence numbers can order them.
///
/// ```text
/// t0: lock(m) unlock(m)                      lock(m) ...
/// t1:                   lock(m) unlock(m)                ...
/// t2:                                  ...  (round robin, 50 rounds)
/// ```
fn contended(step: u64) -> TraceBuilder {
    let mut b = TraceBuilder::new("contended");
    // Ordering is all these traces are about: they end as they are, with no clean end.
    b.end_mid_flight();
    b.step(step);
    let threads: Vec<ThreadId> = (0..4).map(|i| b.thread(&format!("worker-{i}"))).collect();
    let m = b.mutex("m");
    let rw = b.rwlock("rw");
    let site = b.site("src/lib.rs", 1, 1);
    for round in 0..50 {
        for (i, &t) in threads.iter().enumerate() {
            b.on(t).request(m, site).acquire(m, site).release(m);
            if i < 2 && round % 2 == 0 {
                // Two overlapping readers, then a writer.
                b.on(t).acquire_shared(rw, site);
            }
        }
        b.on(threads[0]).release_shared(rw);
        b.on(threads[1]).release_shared(rw);
        b.on(threads[3]).acquire(rw, site).release(rw);
    }
    b
}

#[test]
fn events_written_thread_by_thread_replay_in_lock_order() {
    let builder = contended(0);
    let (events, replay) = replay_checked(builder.build_grouped_by_thread());
    assert_eq!(events.len(), builder.events().len());
    assert_eq!(replay.stats().forced, 0);
    // Each lock's events come out in exactly the order they happened.
    let per_lock = |events: &[Event]| {
        let mut seqs: HashMap<LockId, Vec<u64>> = HashMap::new();
        for e in events {
            if let Some((lock, seq)) = e.kind.lock_seq() {
                seqs.entry(lock).or_default().push(seq.get());
            }
        }
        seqs
    };
    for (lock, seqs) in per_lock(&events) {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "lock {lock}");
    }
}

#[test]
fn events_written_in_order_replay_unchanged() {
    let builder = contended(10);
    let (events, _) = replay_checked(builder.build());
    let times: Vec<u64> = events.iter().map(|e| e.time_ns).collect();
    let expected: Vec<u64> = builder.events().iter().map(|e| e.time_ns).collect();
    assert_eq!(times, expected);
}

#[test]
fn a_trace_cut_in_the_middle_of_a_locks_history_starts_at_its_first_number() {
    // The flight recorder kept only the tail: lock numbers start at 1000.
    let mut b = TraceBuilder::new("cut");
    b.end_mid_flight();
    b.step(0);
    let (t0, t1) = (b.thread("a"), b.thread("b"));
    let m = b.mutex("m");
    let site = b.site("src/lib.rs", 1, 1);
    let mut seq = 1000;
    let mut op = |b: &mut TraceBuilder, t, acquire: bool| {
        seq += 1;
        let kind = if acquire {
            EventKind::LockAcquired {
                lock: m,
                mode: LockMode::Exclusive,
                site,
                seq: NonZeroU64::new(seq),
                via_try: false,
            }
        } else {
            EventKind::LockReleased {
                lock: m,
                mode: LockMode::Exclusive,
                seq: NonZeroU64::new(seq),
                poisoned: false,
            }
        };
        b.event(t, None, kind);
    };
    for _ in 0..3 {
        op(&mut b, t1, true);
        op(&mut b, t1, false);
        op(&mut b, t0, true);
        op(&mut b, t0, false);
    }
    let (events, replay) = replay_checked(b.build_grouped_by_thread());
    assert_eq!(events.len(), 12);
    assert_eq!(replay.stats().forced, 0);
    assert_eq!(events[0].thread, ThreadId(1), "the holder of number 1001 comes first");
}

#[test]
fn a_lost_lock_event_does_not_stop_replay() {
    // thread a's release (number 2) was dropped by the recorder: b's acquisition (3) waits
    // for it in vain, and is released at the end of input.
    let mut b = TraceBuilder::new("gap");
    b.end_mid_flight();
    b.step(0);
    let (ta, tb) = (b.thread("a"), b.thread("b"));
    let m = b.mutex("m");
    let site = b.site("src/lib.rs", 1, 1);
    let acquired = |seq| EventKind::LockAcquired {
        lock: m,
        mode: LockMode::Exclusive,
        site,
        seq: NonZeroU64::new(seq),
        via_try: false,
    };
    let released = |seq| EventKind::LockReleased {
        lock: m,
        mode: LockMode::Exclusive,
        seq: NonZeroU64::new(seq),
        poisoned: false,
    };
    b.event(ta, None, acquired(1));
    b.event(ta, None, EventKind::Gap { dropped: 1 });
    b.event(tb, None, acquired(3));
    b.event(tb, None, released(4));
    let mut replay =
        Replay::from_bytes(vec![("t".to_owned(), b.build_grouped_by_thread())]).expect("readable");
    let mut n = 0;
    while let Some(event) = replay.next_event() {
        replay.apply(&event);
        n += 1;
    }
    assert_eq!(n, 4);
    assert_eq!(replay.stats().forced, 1);
    assert_eq!(replay.trace().processes()[0].dropped_events, 1);
}

/// Writes `rounds` rounds of two threads taking turns on one lock, each thread's round in its
/// own batch, written in reverse thread order, with a watermark after each round.
fn watermarked(rounds: u64) -> Vec<u8> {
    let mut builder = TraceBuilder::new("watermarked");
    let (t0, t1) = (builder.thread("a"), builder.thread("b"));
    let m = builder.mutex("m");
    let site = builder.site("src/lib.rs", 1, 1);
    let mut writer = TraceWriter::new(Vec::new(), &Header::default()).expect("memory");
    writer.write_definitions(builder.definitions()).expect("memory");
    let mut seq = 0;
    let mut time = 0;
    for _ in 0..rounds {
        let mut batch = |thread: ThreadId| {
            let mut events = Vec::new();
            for acquire in [true, false] {
                seq += 1;
                time += 10;
                let kind = if acquire {
                    EventKind::LockAcquired {
                        lock: m,
                        mode: LockMode::Exclusive,
                        site,
                        seq: NonZeroU64::new(seq),
                        via_try: false,
                    }
                } else {
                    EventKind::LockReleased {
                        lock: m,
                        mode: LockMode::Exclusive,
                        seq: NonZeroU64::new(seq),
                        poisoned: false,
                    }
                };
                events.push(Event { time_ns: time, thread, task: None, kind });
            }
            events
        };
        let first = batch(t0);
        let second = batch(t1);
        writer.write_events(&second).expect("memory");
        writer.write_events(&first).expect("memory");
        writer.write_watermark(time + 1).expect("memory");
    }
    writer.into_inner()
}

#[test]
fn watermarks_bound_what_replay_holds_in_memory() {
    let (events, replay) = replay_checked(watermarked(10_000));
    assert_eq!(events.len(), 40_000);
    assert!(replay.stats().max_buffered <= 8, "held {}", replay.stats().max_buffered);
}

/// Sees every event, and every prefetch with how many events it had seen by then.
#[derive(Default)]
struct Recorder {
    prefetched: std::cell::RefCell<Vec<(Event, usize)>>,
    seen: Vec<Event>,
}

impl Detector for Recorder {
    fn kind(&self) -> FindingKind {
        FindingKind::DataRace
    }

    fn prefetch_interest(&self) -> Interest {
        Interest::ALL
    }

    fn prefetch(&self, event: &Event) {
        self.prefetched.borrow_mut().push((*event, self.seen.len()));
    }

    fn on_event(&mut self, _: &Context<'_>, event: &Event) {
        self.seen.push(*event);
    }

    fn finish(&mut self, _: &Context<'_>, _: &mut Vec<Finding>) {}
}

#[test]
fn reading_ahead_for_prefetches_changes_nothing_a_detector_sees() {
    let mut b = contended(0);
    let var = b.variable("counter");
    let site = b.site("src/lib.rs", 2, 1);
    let t = b.thread("late");
    for _ in 0..20 {
        b.on(t).read(var, site).write(var, site);
    }
    let bytes = b.build_grouped_by_thread();
    let (plain, _) = replay_checked(bytes.clone());
    let mut replay = Replay::from_bytes(vec![("t".to_owned(), bytes)]).expect("readable");
    let mut recorder = Recorder::default();
    replay.run(&mut [&mut recorder as &mut dyn Detector]);
    assert_eq!(recorder.seen, plain, "the same events in the same order");
    // Once variables are defined (with the first events read), replay reads ahead to the
    // end: every later event is prefetched before it is seen, and at most 8 events before.
    let prefetched = recorder.prefetched.into_inner();
    let first = plain.len() - prefetched.len();
    assert!(first <= 1, "read ahead from the first events on, not from event {first}");
    for (i, (event, seen_before)) in prefetched.iter().enumerate() {
        assert_eq!(*event, plain[first + i]);
        assert!(*seen_before <= first + i, "{event:?} prefetched after it was seen");
        assert!(first + i - seen_before <= 8, "{event:?} prefetched too early");
    }
}

/// [`contended`] with two more threads taking two more locks in opposite orders, and
/// `unused` more locks that no event takes. (A trace's definitions come before its events.)
fn inverted_among(unused: usize) -> Vec<u8> {
    let mut b = contended(0);
    for i in 0..unused {
        b.mutex(&format!("spare-{i}"));
    }
    let (a, z) = (b.mutex("a"), b.mutex("z"));
    let site = b.site("src/lib.rs", 3, 1);
    let (t, u) = (b.thread("forward"), b.thread("backward"));
    for _ in 0..5 {
        b.on(t).acquire(a, site).acquire(z, site).release(z).release(a);
        b.on(u).acquire(z, site).acquire(a, site).release(a).release(z);
    }
    b.build_grouped_by_thread()
}

#[test]
fn past_16384_locks_replay_reads_ahead_and_every_detector_reports_the_same() {
    let few = inverted_among(10);
    let many = inverted_among(20_000);
    // Replay reads ahead from the first events on, though no variable is defined.
    let (plain, _) = replay_checked(many.clone());
    let mut replay = Replay::from_bytes(vec![("t".to_owned(), many.clone())]).expect("readable");
    let mut recorder = Recorder::default();
    replay.run(&mut [&mut recorder as &mut dyn Detector]);
    assert_eq!(recorder.seen, plain, "the same events in the same order");
    let prefetched = recorder.prefetched.into_inner();
    assert!(plain.len() - prefetched.len() <= 1, "read ahead from the first events on");
    // And every detector finds and counts the same as on the trace of few locks.
    let analyze = |bytes: Vec<u8>| {
        analyze_bytes(vec![("t".to_owned(), bytes)], &AnalyzeOptions::default()).expect("valid")
    };
    let (few, many) = (analyze(few), analyze(many));
    let kinds: Vec<FindingKind> = many.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::LockOrderCycle), "the inversion is found: {kinds:?}");
    assert_eq!(few.findings, many.findings);
    let used = |report: &hindsight_analyzer::Report| {
        let locks = report.locks.iter().filter(|l| !l.name.starts_with("spare-"));
        locks.cloned().collect::<Vec<_>>()
    };
    assert_eq!(used(&few).len(), 4, "m, rw, a and z");
    assert_eq!(used(&few), used(&many));
}

#[test]
fn permits_of_a_semaphore_held_at_once_are_not_conflicts() {
    // Three workers hold a permit each of a three-permit semaphore at once (a trace does not
    // say how many permits there are); a mutex taken by two of them at once is a conflict.
    let mut b = TraceBuilder::new("permits");
    let permits = b.lock(LockKind::Semaphore, false, Some("permits"), None);
    let m = b.mutex("m");
    let site = b.site("src/lib.rs", 1, 1);
    let workers: Vec<ThreadId> = (0..3).map(|i| b.thread(&format!("worker-{i}"))).collect();
    for &t in &workers {
        b.on(t).acquire(permits, site);
    }
    for &t in &workers {
        b.on(t).release(permits);
    }
    let report = analyze_bytes(vec![("permits".to_owned(), b.build())], &AnalyzeOptions::default())
        .expect("readable");
    assert_eq!(report.trace.replay_conflicts, 0);
    b.on(workers[0]).acquire(m, site);
    b.on(workers[1]).acquire(m, site);
    let report = analyze_bytes(vec![("overlap".to_owned(), b.build())], &AnalyzeOptions::default())
        .expect("readable");
    assert_eq!(report.trace.replay_conflicts, 1);
}
