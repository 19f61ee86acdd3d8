//! Building traces in code, so that analyzer tests need no live program.
//!
//! Events are appended in the order they happened (the interleaving); each takes the builder's
//! clock, which then moves on by [`TraceBuilder::step`] nanoseconds. Lock sequence numbers are
//! assigned in that order, exactly as the recorder would have taken them.
//!
//! ```
//! use hindsight_recorder::format::{LockMode, TraceBuilder};
//!
//! // thread main:   lock(a) ── lock(b) ── unlock(b) ── unlock(a)
//! // thread worker:                                               lock(b) ── lock(a) ...
//! let mut b = TraceBuilder::new("inversion");
//! let main = b.thread("main");
//! let worker = b.thread("worker");
//! let (a, b_lock) = (b.mutex("a"), b.mutex("b"));
//! let s1 = b.site("src/db.rs", 10, 5);
//! let s2 = b.site("src/db.rs", 11, 5);
//! b.on(main).acquire(a, s1).acquire(b_lock, s2).release(b_lock).release(a);
//! b.on(worker).acquire(b_lock, s2).acquire(a, s1).release(a).release(b_lock);
//! let bytes = b.build();
//! assert!(bytes.starts_with(b"HSTR"));
//! ```

use super::defs::{
    ChannelDef, Definition, Header, LockDef, LockImplementation, LockKind, SiteDef, TaskDef,
    ThreadDef, VarDef,
};
use super::event::{ChannelKind, Event, EventKind, LockMode, PermitOp};
use super::ids::{ChannelId, LockId, SiteId, StringId, TaskId, ThreadId, VarId};
use super::writer::TraceWriter;
use std::collections::HashMap;
use std::num::NonZeroU64;

/// Builds a trace in memory; see the module docs.
#[derive(Debug, Clone)]
pub struct TraceBuilder {
    header: Header,
    definitions: Vec<Definition>,
    strings: HashMap<String, StringId>,
    events: Vec<Event>,
    now: u64,
    step: u64,
    lock_seqs: HashMap<LockId, u64>,
    counts: [u32; 6],
    /// The trace ends without the recorder's clean end (see [`end_mid_flight`](Self::end_mid_flight)).
    mid_flight: bool,
}

const THREADS: usize = 0;
const TASKS: usize = 1;
const LOCKS: usize = 2;
const VARS: usize = 3;
const CHANNELS: usize = 4;
const SITES: usize = 5;

impl TraceBuilder {
    /// A new, empty trace of `program`.
    pub fn new(program: &str) -> Self {
        TraceBuilder {
            header: Header {
                program: program.to_owned(),
                pid: 1,
                host: "builder".to_owned(),
                start_unix_ns: 1_700_000_000_000_000_000,
                recorder_version: concat!("hindsight-recorder ", env!("CARGO_PKG_VERSION"))
                    .to_owned(),
                clock: "builder".to_owned(),
            },
            definitions: Vec::new(),
            strings: HashMap::new(),
            events: Vec::new(),
            now: 0,
            step: 10,
            lock_seqs: HashMap::new(),
            counts: [0; 6],
            mid_flight: false,
        }
    }

    /// The header that will be written, to adjust (pid, start time, ...).
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// Sets how far the clock moves after each event (default 10 ns).
    pub fn step(&mut self, nanos: u64) -> &mut Self {
        self.step = nanos;
        self
    }

    /// Moves the clock forward by `nanos`.
    pub fn advance(&mut self, nanos: u64) -> &mut Self {
        self.now += nanos;
        self
    }

    /// The clock: the time the next event will get.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Interns a string.
    pub fn string(&mut self, text: &str) -> StringId {
        if let Some(id) = self.strings.get(text) {
            return *id;
        }
        let id = StringId(self.strings.len() as u32);
        self.strings.insert(text.to_owned(), id);
        self.definitions.push(Definition::String { id, text: text.to_owned() });
        id
    }

    /// Defines a source site.
    pub fn site(&mut self, file: &str, line: u32, col: u32) -> SiteId {
        let id = SiteId(self.next(SITES));
        let file = self.string(file);
        self.definitions.push(Definition::Site(SiteDef { id, file, line, col, function: None }));
        id
    }

    /// Defines an OS thread.
    pub fn thread(&mut self, name: &str) -> ThreadId {
        let id = ThreadId(self.next(THREADS));
        let name = Some(self.string(name));
        self.definitions.push(Definition::Thread(ThreadDef { id, name, os_id: id.0 as u64 + 1 }));
        id
    }

    /// Defines an async task (of tokio's kind `task`).
    pub fn task(&mut self, name: &str, spawn_site: Option<SiteId>) -> TaskId {
        self.task_of_kind(name, "task", spawn_site)
    }

    /// Defines an async task of a kind: tokio's `task`, `local`, `blocking` (the blocking
    /// pool) or `block_on`, or `hindsight` for the recorder's spawn helper.
    pub fn task_of_kind(&mut self, name: &str, kind: &str, spawn_site: Option<SiteId>) -> TaskId {
        let id = TaskId(self.next(TASKS));
        let name = Some(self.string(name));
        let kind = Some(self.string(kind));
        self.definitions.push(Definition::Task(TaskDef {
            id,
            name,
            kind,
            spawn_site,
            runtime_id: Some(id.0 as u64 + 1),
        }));
        id
    }

    /// Defines a lock of any kind, of the implementation its kind and blocking-ness suggest
    /// (see [`LockImplementation::inferred`]) and no capacity.
    pub fn lock(
        &mut self,
        kind: LockKind,
        blocking: bool,
        name: Option<&str>,
        site: Option<SiteId>,
    ) -> LockId {
        let id = LockId(self.next(LOCKS));
        let name = name.map(|name| self.string(name));
        let implementation = LockImplementation::inferred(kind, blocking);
        let capacity = None;
        let lock = LockDef { id, kind, blocking, name, site, implementation, capacity };
        self.definitions.push(Definition::Lock(lock));
        id
    }

    /// Defines a named tokio semaphore of `permits` permits.
    pub fn semaphore(&mut self, name: &str, permits: u32) -> LockId {
        let id = self.lock(LockKind::Semaphore, false, Some(name), None);
        if let Some(Definition::Lock(lock)) = self.definitions.last_mut() {
            lock.capacity = Some(permits);
        }
        id
    }

    /// Defines a named blocking mutex.
    pub fn mutex(&mut self, name: &str) -> LockId {
        self.lock(LockKind::Mutex, true, Some(name), None)
    }

    /// Defines a named blocking rwlock.
    pub fn rwlock(&mut self, name: &str) -> LockId {
        self.lock(LockKind::RwLock, true, Some(name), None)
    }

    /// Defines a named async (tokio-like) mutex.
    pub fn async_mutex(&mut self, name: &str) -> LockId {
        self.lock(LockKind::Mutex, false, Some(name), None)
    }

    /// Defines a named async (tokio-like) rwlock.
    pub fn async_rwlock(&mut self, name: &str) -> LockId {
        self.lock(LockKind::RwLock, false, Some(name), None)
    }

    /// Defines an annotated variable.
    pub fn variable(&mut self, name: &str) -> VarId {
        let id = VarId(self.next(VARS));
        let name = self.string(name);
        self.definitions.push(Definition::Variable(VarDef { id, name, site: None }));
        id
    }

    /// Defines a channel.
    pub fn channel(&mut self, name: &str) -> ChannelId {
        let id = ChannelId(self.next(CHANNELS));
        let name = Some(self.string(name));
        self.definitions.push(Definition::Channel(ChannelDef { id, name, site: None }));
        id
    }

    /// Appends events done by `thread` outside any task.
    pub fn on(&mut self, thread: ThreadId) -> Actor<'_> {
        Actor { builder: self, thread, task: None }
    }

    /// Appends events done by `task` while polled on `thread`.
    pub fn in_task(&mut self, thread: ThreadId, task: TaskId) -> Actor<'_> {
        Actor { builder: self, thread, task: Some(task) }
    }

    /// Appends one event as given, at the current time (no sequence numbers are filled in).
    pub fn event(&mut self, thread: ThreadId, task: Option<TaskId>, kind: EventKind) -> &mut Self {
        self.events.push(Event { time_ns: self.now, thread, task, kind });
        self.now += self.step;
        self
    }

    /// The events appended so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The definitions made so far.
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// Makes the trace end as a killed process's (or a flight recorder's dump) does: without
    /// the [`RecordingEnded`](EventKind::RecordingEnded) event that a built trace otherwise
    /// ends with, at the time and on the thread of its last event.
    pub fn end_mid_flight(&mut self) -> &mut Self {
        self.mid_flight = true;
        self
    }

    /// Writes the trace: all definitions, then the events in their order (one chunk per run of
    /// events of one thread), then the clean end unless [`end_mid_flight`](Self::end_mid_flight)
    /// was called.
    pub fn build(&self) -> Vec<u8> {
        self.write(|writer, events| writer.write_events(events))
    }

    /// Writes the trace with each thread's events together, thread after thread: the order a
    /// recorder with large per-thread buffers may produce, and the hardest one for replay.
    pub fn build_grouped_by_thread(&self) -> Vec<u8> {
        self.write(|writer, events| {
            let mut by_thread: Vec<Event> = events.to_vec();
            by_thread.sort_by_key(|e| e.thread);
            writer.write_events(&by_thread)
        })
    }

    fn write(
        &self,
        write_events: impl FnOnce(&mut TraceWriter<Vec<u8>>, &[Event]) -> std::io::Result<()>,
    ) -> Vec<u8> {
        let mut writer =
            TraceWriter::new(Vec::new(), &self.header).expect("writing to memory cannot fail");
        writer.write_definitions(&self.definitions).expect("writing to memory cannot fail");
        write_events(&mut writer, &self.events).expect("writing to memory cannot fail");
        if let (false, Some(last)) = (self.mid_flight, self.events.last()) {
            let end = Event {
                time_ns: last.time_ns,
                task: None,
                kind: EventKind::RecordingEnded,
                ..*last
            };
            writer.write_events(&[end]).expect("writing to memory cannot fail");
        }
        writer.into_inner()
    }

    fn next(&mut self, table: usize) -> u32 {
        let id = self.counts[table];
        self.counts[table] += 1;
        id
    }

    fn next_seq(&mut self, lock: LockId) -> NonZeroU64 {
        let last = self.lock_seqs.entry(lock).or_insert(0);
        let seq = NonZeroU64::MIN.saturating_add(*last);
        *last = seq.get();
        seq
    }
}

/// Appends events of one thread or task; every method returns the actor for chaining.
#[derive(Debug)]
pub struct Actor<'a> {
    builder: &'a mut TraceBuilder,
    thread: ThreadId,
    task: Option<TaskId>,
}

impl Actor<'_> {
    /// Any event.
    pub fn event(self, kind: EventKind) -> Self {
        self.builder.event(self.thread, self.task, kind);
        self
    }

    /// Moves the clock forward by `nanos`.
    pub fn advance(self, nanos: u64) -> Self {
        self.builder.advance(nanos);
        self
    }

    /// Starts waiting for an exclusive hold of `lock`.
    pub fn request(self, lock: LockId, site: SiteId) -> Self {
        self.event(EventKind::LockRequested { lock, mode: LockMode::Exclusive, site })
    }

    /// Starts waiting for a shared hold of `lock`.
    pub fn request_shared(self, lock: LockId, site: SiteId) -> Self {
        self.event(EventKind::LockRequested { lock, mode: LockMode::Shared, site })
    }

    /// Acquires `lock` exclusively.
    pub fn acquire(self, lock: LockId, site: SiteId) -> Self {
        self.acquire_with(lock, LockMode::Exclusive, site, false)
    }

    /// Acquires `lock` in shared mode.
    pub fn acquire_shared(self, lock: LockId, site: SiteId) -> Self {
        self.acquire_with(lock, LockMode::Shared, site, false)
    }

    /// Acquires `lock` exclusively through `try_lock`.
    pub fn try_acquire(self, lock: LockId, site: SiteId) -> Self {
        self.acquire_with(lock, LockMode::Exclusive, site, true)
    }

    /// A `try_lock` of `lock` that failed.
    pub fn try_fail(self, lock: LockId, site: SiteId) -> Self {
        self.event(EventKind::LockTryFailed { lock, mode: LockMode::Exclusive, site })
    }

    /// Releases an exclusive hold of `lock`.
    pub fn release(self, lock: LockId) -> Self {
        self.release_with(lock, LockMode::Exclusive, false)
    }

    /// Releases a shared hold of `lock`.
    pub fn release_shared(self, lock: LockId) -> Self {
        self.release_with(lock, LockMode::Shared, false)
    }

    /// Releases an exclusive hold of `lock` while panicking (poisoning it).
    pub fn release_poisoned(self, lock: LockId) -> Self {
        self.release_with(lock, LockMode::Exclusive, true)
    }

    /// Spawns `task`.
    pub fn spawn_task(self, task: TaskId, site: Option<SiteId>) -> Self {
        self.event(EventKind::TaskSpawned { task, site })
    }

    /// The actor's task starts a poll (the actor must be a task).
    pub fn poll_start(self) -> Self {
        self.event(EventKind::PollStarted)
    }

    /// The actor's task ends a poll, `ready` or suspended.
    pub fn poll_end(self, ready: bool) -> Self {
        self.event(EventKind::PollEnded { ready })
    }

    /// The actor's task finished.
    pub fn finish_task(self) -> Self {
        self.event(EventKind::TaskFinished { cancelled: false })
    }

    /// Starts awaiting `task`'s handle.
    pub fn request_join_task(self, task: TaskId, site: Option<SiteId>) -> Self {
        self.event(EventKind::TaskJoinRequested { task, site })
    }

    /// Observes `task`'s end through its handle.
    pub fn join_task(self, task: TaskId, site: Option<SiteId>) -> Self {
        self.event(EventKind::TaskJoined { task, site })
    }

    /// Wakes `task`.
    pub fn wake(self, task: TaskId) -> Self {
        self.event(EventKind::Wake { task, by_ref: false })
    }

    /// Spawns `thread`.
    pub fn spawn_thread(self, thread: ThreadId, site: Option<SiteId>) -> Self {
        self.event(EventKind::ThreadSpawned { thread, site })
    }

    /// The actor's thread starts.
    pub fn start(self) -> Self {
        self.event(EventKind::ThreadStarted)
    }

    /// The actor's thread finishes.
    pub fn finish(self) -> Self {
        self.event(EventKind::ThreadFinished { panicked: false })
    }

    /// Starts waiting for `thread` to finish.
    pub fn request_join_thread(self, thread: ThreadId, site: Option<SiteId>) -> Self {
        self.event(EventKind::ThreadJoinRequested { thread, site })
    }

    /// Joins `thread`.
    pub fn join_thread(self, thread: ThreadId, site: Option<SiteId>) -> Self {
        self.event(EventKind::ThreadJoined { thread, site })
    }

    /// Sends `message` on `channel`.
    pub fn send(self, channel: ChannelId, message: u64, site: SiteId) -> Self {
        self.event(EventKind::Send { channel, message, site })
    }

    /// Receives `message` from `channel`.
    pub fn receive(self, channel: ChannelId, message: u64, site: SiteId) -> Self {
        self.event(EventKind::Receive { channel, message, site })
    }

    /// Creates `channel`, of `kind` (define it first with [`TraceBuilder::channel`]).
    pub fn create_channel(self, channel: ChannelId, kind: ChannelKind) -> Self {
        self.event(EventKind::ChannelCreated { channel, kind })
    }

    /// Waits for a message on `channel` at `site` (a task: before a pending poll end).
    pub fn receive_waiting(self, channel: ChannelId, site: SiteId) -> Self {
        self.event(EventKind::ReceiveWaiting { channel, site })
    }

    /// Reads `var`.
    pub fn read(self, var: VarId, site: SiteId) -> Self {
        self.event(EventKind::Read { var, site })
    }

    /// Writes `var`.
    pub fn write(self, var: VarId, site: SiteId) -> Self {
        self.event(EventKind::Write { var, site })
    }

    /// A mark labelled `label`.
    pub fn mark(self, label: &str) -> Self {
        let label = self.builder.string(label);
        self.event(EventKind::Mark { label, site: None })
    }

    /// Panics at `site`: the unwinding that follows drops its guards.
    pub fn panic(self, site: Option<SiteId>) -> Self {
        self.event(EventKind::Panicked { site })
    }

    /// Suspends at the `.await` at `site` (before a pending poll end).
    pub fn await_pending(self, site: SiteId) -> Self {
        self.event(EventKind::AwaitPending { site })
    }

    /// Does `op` to `count` permits of the semaphore `lock`.
    pub fn permits(self, lock: LockId, op: PermitOp, count: u32) -> Self {
        self.event(EventKind::Permits { lock, op, count })
    }

    fn acquire_with(self, lock: LockId, mode: LockMode, site: SiteId, via_try: bool) -> Self {
        let seq = Some(self.builder.next_seq(lock));
        self.event(EventKind::LockAcquired { lock, mode, site, seq, via_try })
    }

    fn release_with(self, lock: LockId, mode: LockMode, poisoned: bool) -> Self {
        let seq = Some(self.builder.next_seq(lock));
        self.event(EventKind::LockReleased { lock, mode, seq, poisoned })
    }
}
