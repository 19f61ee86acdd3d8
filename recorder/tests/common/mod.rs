//! Helpers shared by the recorder's integration tests: reading a trace back, checking lock
//! order, running one recording at a time, and flight recorders dumping into a directory.
#![allow(dead_code)] // each test binary uses a different part

use hindsight_recorder::format::{
    Definition, Event, EventKind, Header, Item, LockId, LockMode, SiteDef, Tail, TraceReader,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Only one recording can be active in a process: tests of one binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Waits for this test's turn to record.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh trace path in the target's temporary directory.
pub fn trace_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("hindsight-recorder-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}.trace", std::process::id()))
}

/// A trace, read back whole.
#[derive(Debug)]
pub struct Trace {
    pub header: Header,
    pub definitions: Vec<Definition>,
    /// Events in file order (each thread's in its program order).
    pub events: Vec<Event>,
    pub tail: Tail,
}

impl Trace {
    pub fn read(path: &Path) -> Trace {
        let mut reader = TraceReader::open(path).expect("the trace opens");
        let header = reader.header().clone();
        let mut definitions = Vec::new();
        let mut events = Vec::new();
        let mut defined_locks = std::collections::HashSet::new();
        for item in &mut reader {
            match item {
                Item::Definitions(defs) => {
                    for def in &defs {
                        if let Definition::Lock(lock) = def {
                            defined_locks.insert(lock.id);
                        }
                    }
                    definitions.extend(defs);
                }
                Item::Events(batch) => {
                    for event in &batch {
                        if let Some(lock) = event.kind.lock() {
                            assert!(
                                defined_locks.contains(&lock),
                                "{lock} used before its definition"
                            );
                        }
                    }
                    events.extend(batch);
                }
                Item::Watermark { .. } => {}
            }
        }
        let tail = reader.tail().cloned().expect("reading ended");
        Trace { header, definitions, events, tail }
    }

    pub fn count(&self, name: &str) -> usize {
        self.events.iter().filter(|e| e.kind.name() == name).count()
    }

    pub fn dropped(&self) -> u64 {
        self.events
            .iter()
            .map(|e| match e.kind {
                EventKind::Gap { dropped } => dropped,
                _ => 0,
            })
            .sum()
    }

    pub fn site(&self, id: hindsight_recorder::format::SiteId) -> Option<(String, u32, u32)> {
        let def = self.definitions.iter().find_map(|d| match d {
            Definition::Site(site @ SiteDef { .. }) if site.id == id => Some(site.clone()),
            _ => None,
        })?;
        Some((self.string(def.file)?, def.line, def.col))
    }

    pub fn string(&self, id: hindsight_recorder::format::StringId) -> Option<String> {
        self.definitions.iter().find_map(|d| match d {
            Definition::String { id: i, text } if *i == id => Some(text.clone()),
            _ => None,
        })
    }

    /// The id of the thread named `name`.
    pub fn thread_named(&self, name: &str) -> hindsight_recorder::format::ThreadId {
        self.definitions
            .iter()
            .find_map(|d| match d {
                Definition::Thread(t) if self.name_is(t.name, name) => Some(t.id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no thread named {name}"))
    }

    /// The id of the task named `name`.
    pub fn task_named(&self, name: &str) -> hindsight_recorder::format::TaskId {
        self.definitions
            .iter()
            .find_map(|d| match d {
                Definition::Task(t) if self.name_is(t.name, name) => Some(t.id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no task named {name}"))
    }

    fn name_is(&self, id: Option<hindsight_recorder::format::StringId>, name: &str) -> bool {
        id.and_then(|n| self.string(n)).as_deref() == Some(name)
    }

    pub fn lock_named(&self, name: &str) -> Option<LockId> {
        self.definitions.iter().find_map(|d| match d {
            Definition::Lock(lock)
                if lock.name.and_then(|n| self.string(n)).as_deref() == Some(name) =>
            {
                Some(lock.id)
            }
            _ => None,
        })
    }

    pub fn tasks(&self) -> usize {
        self.definitions.iter().filter(|d| matches!(d, Definition::Task(_))).count()
    }

    pub fn locks(&self) -> usize {
        self.definitions.iter().filter(|d| matches!(d, Definition::Lock(_))).count()
    }

    pub fn threads(&self) -> usize {
        self.definitions.iter().filter(|d| matches!(d, Definition::Thread(_))).count()
    }
}

/// What the order check found for one lock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LockOrder {
    pub acquisitions: usize,
    pub releases: usize,
}

/// Replays each lock's acquisitions and releases in the order of their sequence numbers and
/// panics if a lock is ever acquired while another holder has it (exclusive against any
/// hold, shared against an exclusive hold), released when not held, or if a number is missing
/// or repeated.
pub fn check_lock_order(events: &[Event]) -> HashMap<LockId, LockOrder> {
    let mut by_lock: HashMap<LockId, Vec<(u64, &Event)>> = HashMap::new();
    for event in events {
        if let Some((lock, seq)) = event.kind.lock_seq() {
            by_lock.entry(lock).or_default().push((seq.get(), event));
        }
    }
    let mut result = HashMap::new();
    for (lock, mut ops) in by_lock {
        ops.sort_by_key(|(seq, _)| *seq);
        let (mut exclusive, mut shared) = (0usize, 0usize);
        let mut order = LockOrder::default();
        for (i, (seq, event)) in ops.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "{lock}: sequence numbers must be 1, 2, 3, ... ");
            match event.kind {
                EventKind::LockAcquired { mode: LockMode::Exclusive, .. } => {
                    assert!(
                        exclusive == 0 && shared == 0,
                        "{lock} acquired exclusively while held (seq {seq}): {event:?}"
                    );
                    exclusive += 1;
                    order.acquisitions += 1;
                }
                EventKind::LockAcquired { mode: LockMode::Shared, .. } => {
                    assert!(
                        exclusive == 0,
                        "{lock} acquired shared while held exclusively (seq {seq})"
                    );
                    shared += 1;
                    order.acquisitions += 1;
                }
                EventKind::LockReleased { mode: LockMode::Exclusive, .. } => {
                    assert!(exclusive == 1, "{lock} released while not held (seq {seq})");
                    exclusive -= 1;
                    order.releases += 1;
                }
                EventKind::LockReleased { mode: LockMode::Shared, .. } => {
                    assert!(shared > 0, "{lock} released shared while not held (seq {seq})");
                    shared -= 1;
                    order.releases += 1;
                }
                _ => unreachable!("only acquisitions and releases carry numbers"),
            }
        }
        result.insert(lock, order);
    }
    result
}

/// A fresh, empty directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("hindsight-recorder-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a flight recorder of `config` that dumps into `dir` as `svc.<n>.trace`, flushing
/// every 10 ms.
pub fn flight(
    dir: &Path,
    config: hindsight_recorder::FlightRecorder,
) -> hindsight_recorder::RecorderGuard {
    let (_layer, guard) = hindsight_recorder::Recorder::builder()
        .path(dir.join("svc.trace"))
        .mode(hindsight_recorder::Mode::Ring(config))
        .flush_interval(std::time::Duration::from_millis(10))
        .build()
        .unwrap();
    guard
}

/// Runs `tasks` tokio tasks on a runtime of two workers, each locking one shared tokio `Mutex`
/// `rounds` times and yielding every `yield_every` rounds; returns the final count, read under
/// the lock once more.
pub fn contend_a_tokio_mutex(tasks: u64, rounds: u64, yield_every: u64) -> u64 {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let total = runtime.block_on(async {
        let counter = std::sync::Arc::new(tokio::sync::Mutex::new(0u64));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let counter = counter.clone();
                tokio::spawn(async move {
                    for i in 0..rounds {
                        *counter.lock().await += 1;
                        if i % yield_every == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let total = *counter.lock().await;
        total
    });
    drop(runtime);
    total
}
