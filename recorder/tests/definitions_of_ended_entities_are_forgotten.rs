//! A long-running service spawns a task per request, and each request makes its own lock,
//! channel, tokio lock and annotated variable: the recorder must not keep the definitions of
//! all of them forever. Once what they defined has ended, a stream forgets them as soon as
//! they are in the file, and a flight recorder as soon as its memory holds no event that uses
//! them — while every trace still defines each id before any event uses it.
#![cfg(feature = "record")]

mod common;

use common::{flight, scratch_dir, serial, trace_path};
use hindsight_recorder::annotate::Variable;
use hindsight_recorder::channel::oneshot;
use hindsight_recorder::format::{Definition, Event, EventKind, Item, TraceReader};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::{FlightRecorder, Recorder, RecorderGuard};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Requests served with the recorder's wrappers and helpers only.
const REQUESTS: usize = 20_000;
/// Requests served with tokio's own instrumentation recorded too (slower in debug builds).
const TOKIO_REQUESTS: usize = 2_000;
/// Requests in flight at once.
const WAVE: usize = 100;

/// User-defined locks of the tracing convention that the recorder keeps, at most, however many
/// names the program makes at run time (the registry's `NAMED_LOCKS`).
const NAMED_LOCKS: usize = 256;

/// One request: a helper task with a name of its own, which makes a lock, a channel and a
/// variable and hands work to a plain tokio task. `tokio`: also a tokio lock, and a
/// user-defined lock of the tracing convention, by a name made at run time every fourth time.
async fn request(n: usize, tokio: bool) -> usize {
    let state = Mutex::new(n);
    let (tx, rx) = oneshot::channel();
    let seen = Variable::named("seen");
    tokio::spawn(async move {
        seen.write();
        let value = *state.lock().unwrap();
        let _ = tx.send(value);
    });
    if tokio {
        let connection = tokio::sync::Mutex::new(0u8);
        *connection.lock().await += 1;
        let name =
            if n.is_multiple_of(4) { format!("file-{n}.lock") } else { "db.lock".to_owned() };
        tracing::trace!(target: "hindsight::lock", op = "acquired", lock.name = name.as_str());
        tracing::trace!(target: "hindsight::lock", op = "released", lock.name = name.as_str());
    }
    rx.await.unwrap()
}

/// The service: `requests` requests, [`WAVE`] at a time, on two workers; now and then a
/// helper thread with a name of its own. `tokio`: with the recorder's Layer as the
/// subscriber of the runtime's threads, so that tokio's instrumentation is recorded too.
fn serve(requests: usize, tokio: bool) {
    let dispatch = tokio
        .then(|| tracing::Dispatch::new(tracing_subscriber::registry().with(Recorder::layer())));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if let Some(dispatch) = dispatch.clone() {
        // For the whole life of each of the runtime's threads.
        builder
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)));
    }
    let runtime = builder.build().unwrap();
    let serve = || {
        runtime.block_on(async {
            for wave in 0..requests / WAVE {
                let handles: Vec<_> = (0..WAVE)
                    .map(|i| {
                        let n = wave * WAVE + i;
                        hindsight_recorder::task::spawn(&format!("request-{n}"), request(n, tokio))
                    })
                    .collect();
                for (i, handle) in handles.into_iter().enumerate() {
                    assert_eq!(handle.await.unwrap(), wave * WAVE + i);
                }
                if wave.is_multiple_of(20) {
                    let name = format!("worker-{wave}");
                    let worker = hindsight_recorder::thread::spawn(&name, || {
                        *Mutex::new(1).lock().unwrap() + 1
                    });
                    assert_eq!(worker.unwrap().join().unwrap(), 2);
                }
            }
        })
    };
    match &dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, serve),
        None => serve(),
    }
}

/// What one trace file holds, and whether each id is defined before its first use.
#[derive(Debug, Default)]
struct Checked {
    definitions: usize,
    events: usize,
    tasks: usize,
    locks: usize,
    marks: usize,
}

/// The ids defined so far in a file, by kind.
#[derive(Debug, Default)]
struct Defined {
    strings: HashSet<u32>,
    sites: HashSet<u32>,
    threads: HashSet<u32>,
    tasks: HashSet<u32>,
    locks: HashSet<u32>,
    variables: HashSet<u32>,
    channels: HashSet<u32>,
}

impl Defined {
    /// Takes in `definition`, after checking the ids it refers to; panics if its own id was
    /// defined already (an id is one entity for the whole session).
    fn define(&mut self, definition: &Definition) {
        let string = |defined: &Self, id: Option<hindsight_recorder::format::StringId>| {
            if let Some(id) = id {
                assert!(defined.strings.contains(&id.0), "{id} used by {definition:?} undefined");
            }
        };
        let site = |defined: &Self, id: Option<hindsight_recorder::format::SiteId>| {
            if let Some(id) = id {
                assert!(defined.sites.contains(&id.0), "{id} used by {definition:?} undefined");
            }
        };
        let new = match definition {
            Definition::String { id, .. } => self.strings.insert(id.0),
            Definition::Site(s) => {
                string(self, Some(s.file));
                string(self, s.function);
                self.sites.insert(s.id.0)
            }
            Definition::Thread(t) => {
                string(self, t.name);
                self.threads.insert(t.id.0)
            }
            Definition::Task(t) => {
                string(self, t.name);
                string(self, t.kind);
                site(self, t.spawn_site);
                self.tasks.insert(t.id.0)
            }
            Definition::Lock(l) => {
                string(self, l.name);
                site(self, l.site);
                self.locks.insert(l.id.0)
            }
            Definition::Variable(v) => {
                string(self, Some(v.name));
                site(self, v.site);
                self.variables.insert(v.id.0)
            }
            Definition::Channel(c) => {
                string(self, c.name);
                site(self, c.site);
                self.channels.insert(c.id.0)
            }
        };
        assert!(new, "{definition:?}: its id was defined before");
    }

    /// Panics unless every id `event` carries is defined.
    fn check(&self, event: &Event) {
        let has = |set: &HashSet<u32>, id: u32, what: &str| {
            assert!(set.contains(&id), "{what} #{id} used by {event:?} before its definition");
        };
        has(&self.threads, event.thread.0, "thread");
        if let Some(task) = event.task {
            has(&self.tasks, task.0, "task");
        }
        let site = |id: Option<hindsight_recorder::format::SiteId>| {
            if let Some(id) = id {
                has(&self.sites, id.0, "site");
            }
        };
        match event.kind {
            EventKind::LockRequested { lock, site: s, .. }
            | EventKind::LockAcquired { lock, site: s, .. }
            | EventKind::LockTryFailed { lock, site: s, .. } => {
                has(&self.locks, lock.0, "lock");
                site(Some(s));
            }
            EventKind::LockReleased { lock, .. } => has(&self.locks, lock.0, "lock"),
            EventKind::TaskSpawned { task, site: s }
            | EventKind::TaskJoined { task, site: s }
            | EventKind::TaskJoinRequested { task, site: s } => {
                has(&self.tasks, task.0, "task");
                site(s);
            }
            EventKind::Wake { task, .. } => has(&self.tasks, task.0, "task"),
            EventKind::ThreadSpawned { thread, site: s }
            | EventKind::ThreadJoinRequested { thread, site: s }
            | EventKind::ThreadJoined { thread, site: s } => {
                has(&self.threads, thread.0, "thread");
                site(s);
            }
            EventKind::Send { channel, site: s, .. }
            | EventKind::Receive { channel, site: s, .. }
            | EventKind::ReceiveWaiting { channel, site: s } => {
                has(&self.channels, channel.0, "channel");
                site(Some(s));
            }
            EventKind::ChannelCreated { channel, .. } => has(&self.channels, channel.0, "channel"),
            EventKind::Read { var, site: s }
            | EventKind::Write { var, site: s }
            | EventKind::SyncRelease { var, site: s }
            | EventKind::SyncAcquire { var, site: s } => {
                has(&self.variables, var.0, "variable");
                site(Some(s));
            }
            EventKind::Mark { label, site: s } => {
                has(&self.strings, label.0, "string");
                site(s);
            }
            EventKind::Panicked { site: s } => site(s),
            EventKind::AwaitPending { site: s } => site(Some(s)),
            EventKind::Permits { lock, .. } => has(&self.locks, lock.0, "lock"),
            EventKind::PollCpu { .. } | EventKind::RecordingEnded => {}
            EventKind::PollStarted
            | EventKind::PollEnded { .. }
            | EventKind::TaskFinished { .. }
            | EventKind::ThreadStarted
            | EventKind::ThreadFinished { .. }
            | EventKind::Gap { .. } => {}
        }
    }
}

/// Reads `path`, checking that every id is defined once, before anything uses it.
fn check(path: &Path) -> Checked {
    let mut reader = TraceReader::open(path).expect("the trace opens");
    let mut defined = Defined::default();
    let mut checked = Checked::default();
    for item in &mut reader {
        match item {
            Item::Definitions(definitions) => {
                for definition in &definitions {
                    defined.define(definition);
                }
                checked.definitions += definitions.len();
            }
            Item::Events(events) => {
                for event in &events {
                    defined.check(event);
                    checked.marks += usize::from(matches!(event.kind, EventKind::Mark { .. }));
                }
                checked.events += events.len();
            }
            Item::Watermark { .. } => {}
        }
    }
    assert_eq!(reader.tail(), Some(&hindsight_recorder::format::Tail::Complete));
    checked.tasks = defined.tasks.len();
    checked.locks = defined.locks.len();
    checked
}

/// Serves the requests, without and then with tokio's instrumentation; returns how many
/// definitions the recorder kept after each, once the writer had a round to forget.
fn retained_after_serving(guard: &RecorderGuard) -> (usize, usize) {
    serve(REQUESTS, false);
    assert!(guard.flush());
    let plain = guard.retained_definitions();
    serve(TOKIO_REQUESTS, true);
    assert!(guard.flush());
    (plain, guard.retained_definitions())
}

#[test]
fn a_stream_forgets_what_ended_once_it_is_written() {
    let _turn = serial();
    let path = trace_path("forgotten-stream");
    let (_layer, guard) =
        Recorder::builder().path(&path).flush_interval(Duration::from_millis(10)).build().unwrap();
    let (plain, tokio) = retained_after_serving(&guard);
    let summary = guard.finish().unwrap();
    assert_eq!(summary.dropped, 0, "nothing lost, so every use is checked");

    let checked = check(&path);
    eprintln!(
        "stream: {plain} definitions kept after the plain requests, {tokio} after those with \
         tokio's instrumentation; {} written, {} events",
        checked.definitions, checked.events
    );
    let requests = REQUESTS + TOKIO_REQUESTS;
    assert!(checked.tasks >= requests + TOKIO_REQUESTS, "tasks: {}", checked.tasks);
    assert!(checked.locks >= requests + TOKIO_REQUESTS, "locks: {}", checked.locks);
    assert!(plain < 200, "{plain} definitions kept after {REQUESTS} requests");
    // Also a user-defined lock and its name for each of the latest names made at run time.
    assert!(tokio < 200 + 2 * NAMED_LOCKS, "{tokio} kept after {TOKIO_REQUESTS} more");
    let _ = std::fs::remove_file(&path);
}

/// A flight recorder of `max_bytes`, with no watchdog or signal handler to dump on its own.
fn quiet_flight(max_bytes: u64) -> FlightRecorder {
    FlightRecorder::new().max_bytes(max_bytes).watchdog(None).on_signal(false)
}

/// Lets the flight recorder's memory (128 KiB) go round, after a pause longer than a flush
/// interval: rounds of 10,000 events (some 50 KiB) of one long-lived lock.
fn wrap_memory(guard: &RecorderGuard) {
    std::thread::sleep(Duration::from_millis(50));
    let filler = Mutex::new(0u64);
    for _ in 0..8 {
        for _ in 0..5_000 {
            *filler.lock().unwrap() += 1;
        }
        assert!(guard.flush());
    }
}

#[test]
fn a_flight_recorder_forgets_what_ended_once_its_memory_lets_go_of_it() {
    let _turn = serial();
    let dir = scratch_dir("forgotten-ring");
    let guard = flight(&dir, quiet_flight(128 << 10));
    let mut kept = Vec::new();
    for (requests, tokio) in [(REQUESTS, false), (TOKIO_REQUESTS, true)] {
        serve(requests, tokio);
        // Many requests ended while their events are still in memory: a dump defines them.
        let dump = guard.dump("after the requests").unwrap();
        let checked = check(&dump);
        assert_eq!(checked.marks, 1);
        assert!(checked.tasks > 100, "the dump holds requests: {checked:?}");
        assert!(checked.events < 5 * REQUESTS, "and not all: {checked:?}");
        let served = guard.retained_definitions();
        // Once the memory holds none of their events, they go.
        wrap_memory(&guard);
        let wrapped = guard.retained_definitions();
        eprintln!(
            "ring ({requests} requests{}): {served} definitions kept after serving ({} in the \
             dump with {} events), {wrapped} once the memory went round",
            if tokio { ", tokio" } else { "" },
            checked.definitions,
            checked.events
        );
        kept.push(wrapped);
    }
    let summary = guard.finish().unwrap();
    assert_eq!(summary.dropped, 0, "nothing lost, so every use is checked");
    assert!(kept[0] < 200, "{} definitions kept after {REQUESTS} requests", kept[0]);
    assert!(kept[1] < 200 + 2 * NAMED_LOCKS, "{} kept after {TOKIO_REQUESTS} more", kept[1]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The events of a tokio task's poll are held in the thread's buffer until the poll ends (or
/// the thread stays quiet for a flush interval): a lock made and dropped at the start of a long
/// poll is retired long before its events reach the writer. While the memory wraps, its
/// definition must stay until those events have left the memory, not only the rounds that
/// followed its end.
#[test]
fn a_flight_recorder_keeps_what_ended_while_its_events_are_held_in_a_poll() {
    let _turn = serial();
    let dir = scratch_dir("forgotten-held");
    let guard = flight(&dir, quiet_flight(64 << 10));
    let stop = Arc::new(AtomicBool::new(false));
    // Some 15 KiB of events every 10 ms round on another thread: the memory keeps only the
    // last few rounds.
    let flood = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let lock = Mutex::new(0u64);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..150 {
                    *lock.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(Recorder::layer()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            tokio::spawn(async {
                let short = Mutex::named("short-lived", 0);
                *short.lock().unwrap() += 1;
                drop(short);
                // One poll of some 150 ms: an event every 3 ms keeps the run held (the
                // writer claims a run only once it is a flush interval old).
                let busy = Variable::named("busy");
                for _ in 0..50 {
                    busy.write();
                    std::thread::sleep(Duration::from_millis(3));
                }
            })
            .await
            .unwrap();
        })
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let dump = guard.dump("after the long poll").unwrap();
    guard.finish().unwrap();

    check(&dump);
    let mut reader = TraceReader::open(&dump).unwrap();
    let mut short = None;
    let mut used = false;
    for item in &mut reader {
        match item {
            Item::Definitions(definitions) => {
                let texts: Vec<_> = definitions
                    .iter()
                    .filter_map(|d| match d {
                        Definition::String { id, text } if text == "short-lived" => Some(*id),
                        _ => None,
                    })
                    .collect();
                short = short.or(definitions.iter().find_map(|d| match d {
                    Definition::Lock(l) if l.name.is_some_and(|n| texts.contains(&n)) => Some(l.id),
                    _ => None,
                }));
            }
            Item::Events(events) => {
                used |= events.iter().any(|e| short.is_some() && e.kind.lock() == short);
            }
            Item::Watermark { .. } => {}
        }
    }
    assert!(used, "the dump holds the short-lived lock's events, with its definition");
    let _ = std::fs::remove_dir_all(&dir);
}
