//! Loading traces: the merged tables of definitions that give replayed ids their meaning.
//!
//! A trace file numbers its threads, tasks, locks, sites and strings itself, and an analysis
//! may read several files at once (one incident seen from several processes). The [`Trace`]
//! therefore *remaps* every id it reads to a dense index of its own tables, per file:
//!
//! - ids from a file are never used to index anything directly: each file has an `IdMap`
//!   per kind of id, a bounds-checked table for small ids and a hash map for the rest, so a
//!   hostile id such as `u32::MAX` costs one map entry, not four billion table slots;
//! - an id used before its definition (which a well-formed trace never does) gets a
//!   placeholder entry that a later definition fills in;
//! - user-defined locks (recorded through the tracing convention: a file lock, a database
//!   lock) with the same name in different files are one lock, shared by the processes; any
//!   locks with the same name are one lock class;
//! - event times are shifted so that all files share one time axis, aligned by each header's
//!   [`start_unix_ns`](hindsight_recorder::format::Header::start_unix_ns).
//!
//! After remapping, the typed ids of the events that [`Replay`](crate::replay::Replay) hands out
//! (`LockId`, `ThreadId`, ...) are dense indices into these tables, valid for every accessor
//! here.

use hindsight_recorder::format::{
    ChannelId, Damage, Definition, Event, EventKind, Header, LockId, LockImplementation, LockKind,
    SiteId, StringId, Tail, TaskId, ThreadId, VarId,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Ids below this are remapped through a plain table; larger ones through a hash map.
const DENSE_ID_LIMIT: u32 = 1 << 20;

/// Marks an unused slot of an [`IdMap`]'s table.
const UNMAPPED: u32 = u32::MAX;

/// Maps the ids of one file to dense indices, bounds-checked and safe for hostile ids.
#[derive(Debug, Default, Clone)]
pub(crate) struct IdMap {
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
}

impl IdMap {
    /// The dense index of `raw`, if it has one.
    #[inline]
    pub(crate) fn get(&self, raw: u32) -> Option<u32> {
        match self.dense.get(raw as usize) {
            Some(&ix) if ix != UNMAPPED => Some(ix),
            Some(_) => None,
            None if raw < DENSE_ID_LIMIT => None,
            None => self.sparse.get(&raw).copied(),
        }
    }

    /// Records that `raw` means `ix`.
    pub(crate) fn insert(&mut self, raw: u32, ix: u32) {
        if raw < DENSE_ID_LIMIT {
            let slot = raw as usize;
            if self.dense.len() <= slot {
                self.dense.resize(slot + 1, UNMAPPED);
            }
            self.dense[slot] = ix;
        } else {
            self.sparse.insert(raw, ix);
        }
    }
}

/// A source location, as defined by a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The source file.
    pub file: StringId,
    /// 1-based line (0 if unknown).
    pub line: u32,
    /// 1-based column (0 if unknown).
    pub col: u32,
    /// The enclosing function or span, where known.
    pub function: Option<StringId>,
}

/// An OS thread of one of the traced processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Its name, if it has one.
    pub name: Option<StringId>,
    /// The operating system's id for it.
    pub os_id: u64,
    /// The file (process) it belongs to: an index into [`Trace::processes`].
    pub process: usize,
    /// The id the file gave it.
    pub raw_id: u32,
}

/// An async task of one of the traced processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its name, if it has one.
    pub name: Option<StringId>,
    /// Its kind (`task`, `blocking`, `local`, `hindsight`), if known.
    pub kind: Option<StringId>,
    /// Where it was spawned.
    pub spawn_site: Option<SiteId>,
    /// tokio's own id for it.
    pub runtime_id: Option<u64>,
    /// The file (process) it belongs to.
    pub process: usize,
    /// The id the file gave it.
    pub raw_id: u32,
}

/// A lock instance; named locks of several files are one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// What sort of lock it is.
    pub kind: LockKind,
    /// Whether waiting for it blocks the OS thread, as recorded; ask
    /// [`waiting_blocks_thread`](Self::waiting_blocks_thread), which prefers what its
    /// implementation is known to do.
    pub blocking: bool,
    /// The code that implements it.
    pub implementation: LockImplementation,
    /// A semaphore's initial permits, where recorded.
    pub capacity: Option<u32>,
    /// Its explicit name.
    pub name: Option<StringId>,
    /// Where it was created.
    pub site: Option<SiteId>,
    /// Its lock class (explicit name, else creation site, else the instance itself).
    pub class: ClassId,
    /// The file that defined it first.
    pub process: usize,
    /// The id that file gave it.
    pub raw_id: u32,
}

/// A lock class: the locks that lock-order analysis treats as one (Linux lockdep's notion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClassId(pub u32);

impl ClassId {
    /// The class as an index into the trace's class table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An annotated variable or synchronisation object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// Its name.
    pub name: StringId,
    /// Where it was created.
    pub site: Option<SiteId>,
}

/// A recorded channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Its name.
    pub name: Option<StringId>,
    /// Where it was created.
    pub site: Option<SiteId>,
}

/// One trace file of the analysis (one process).
#[derive(Debug, Clone)]
pub struct Process {
    /// The path the file was opened with.
    pub path: String,
    /// Its header.
    pub header: Header,
    /// Its format version.
    pub format_version: u32,
    /// What this file's times are shifted by to reach the merged time axis.
    pub time_offset_ns: u64,
    /// How reading ended, once it has.
    pub tail: Option<Tail>,
    /// Events read from it.
    pub events: u64,
    /// Events the recorder said it lost (the sum of its gap markers).
    pub dropped_events: u64,
    /// Regions of the file that were damaged and skipped, once reading has ended.
    pub damage: Vec<Damage>,
    /// Threads (merged ids) whose events were partly lost in a damaged region: what replay
    /// believes about them is uncertain.
    pub lost_threads: Vec<ThreadId>,
}

impl Process {
    /// Whether a damaged region was skipped (a truncated tail alone is not damage).
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
    }
}

/// Per-file id maps.
#[derive(Debug, Default, Clone)]
pub(crate) struct SourceMaps {
    strings: IdMap,
    sites: IdMap,
    threads: IdMap,
    tasks: IdMap,
    /// Raw lock id → sequence slot (see [`Trace::slot_lock`]).
    slots: IdMap,
    vars: IdMap,
    channels: IdMap,
}

/// The merged definitions of every file of an analysis; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    strings: Vec<String>,
    sites: Vec<Site>,
    threads: Vec<Thread>,
    tasks: Vec<Task>,
    locks: Vec<Lock>,
    /// Each lock's class, apart: detectors look it up for every acquisition.
    lock_classes: Vec<ClassId>,
    classes: Vec<String>,
    vars: Vec<Var>,
    channels: Vec<Channel>,
    processes: Vec<Process>,
    maps: Vec<SourceMaps>,
    /// Each sequence slot's lock. A slot is one file's lock: sequence numbers are per file
    /// even where a name makes two files' locks one.
    slot_lock: Vec<LockId>,
    class_index: HashMap<String, ClassId>,
    named_locks: HashMap<String, Vec<LockId>>,
    /// Named locks of each file that took an existing lock of that name (so that one file's
    /// two locks of one name stay two locks).
    claimed: HashSet<(usize, LockId)>,
}

// === impl Trace: reading ===

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    /// Adds a file; returns its process index. Call [`align_times`](Self::align_times) once
    /// all files are added.
    pub fn add_process(&mut self, path: String, header: Header, format_version: u32) -> usize {
        self.processes.push(Process {
            path,
            header,
            format_version,
            time_offset_ns: 0,
            tail: None,
            events: 0,
            dropped_events: 0,
            damage: Vec::new(),
            lost_threads: Vec::new(),
        });
        self.maps.push(SourceMaps::default());
        self.processes.len() - 1
    }

    /// Shifts each file's times so that all share the earliest start as time zero.
    pub fn align_times(&mut self) {
        let start = self.processes.iter().map(|p| p.header.start_unix_ns).min().unwrap_or(0);
        for process in &mut self.processes {
            process.time_offset_ns = process.header.start_unix_ns - start;
        }
    }

    /// Records how reading `process` ended.
    pub(crate) fn set_tail(&mut self, process: usize, tail: Tail, damage: Vec<Damage>) {
        self.processes[process].tail = Some(tail);
        self.processes[process].damage = damage;
    }

    /// Records that events of thread `raw` of `process` were lost in a damaged region.
    pub(crate) fn note_lost(&mut self, process: usize, raw: ThreadId) {
        let thread = self.thread_ix(process, raw);
        let lost = &mut self.processes[process].lost_threads;
        if !lost.contains(&thread) {
            lost.push(thread);
        }
    }

    /// Takes in definitions read from `process`.
    pub fn define(&mut self, process: usize, definitions: &[Definition]) {
        for definition in definitions {
            match definition {
                Definition::String { id, text } => {
                    let ix = self.string_ix(process, *id);
                    let text = hindsight_recorder::paths::readable(text);
                    let string = &mut self.strings[ix.index()];
                    string.clear();
                    string.push_str(text);
                }
                Definition::Site(def) => {
                    let ix = self.site_ix(process, def.id);
                    let file = self.string_ix(process, def.file);
                    let function = def.function.map(|f| self.string_ix(process, f));
                    self.sites[ix.index()] = Site { file, line: def.line, col: def.col, function };
                }
                Definition::Thread(def) => {
                    let ix = self.thread_ix(process, def.id);
                    let name = def.name.map(|n| self.string_ix(process, n));
                    let thread = &mut self.threads[ix.index()];
                    thread.name = name;
                    thread.os_id = def.os_id;
                }
                Definition::Task(def) => {
                    let ix = self.task_ix(process, def.id);
                    let name = def.name.map(|n| self.string_ix(process, n));
                    let kind = def.kind.map(|n| self.string_ix(process, n));
                    let spawn_site = def.spawn_site.map(|s| self.site_ix(process, s));
                    let task = &mut self.tasks[ix.index()];
                    task.name = name;
                    task.kind = kind;
                    task.spawn_site = spawn_site;
                    task.runtime_id = def.runtime_id;
                }
                Definition::Lock(def) => self.define_lock(process, def),
                Definition::Variable(def) => {
                    let ix = self.var_ix(process, def.id);
                    let name = self.string_ix(process, def.name);
                    let site = def.site.map(|s| self.site_ix(process, s));
                    self.vars[ix.index()] = Var { name, site };
                }
                Definition::Channel(def) => {
                    let ix = self.channel_ix(process, def.id);
                    let name = def.name.map(|n| self.string_ix(process, n));
                    let site = def.site.map(|s| self.site_ix(process, s));
                    self.channels[ix.index()] = Channel { name, site };
                }
            }
        }
    }

    fn define_lock(&mut self, process: usize, def: &hindsight_recorder::format::LockDef) {
        let name = def.name.map(|n| self.string_ix(process, n));
        let site = def.site.map(|s| self.site_ix(process, s));
        let name_text = name.map(|n| self.strings[n.index()].clone()).filter(|n| !n.is_empty());
        let existing_slot = self.maps[process].slots.get(def.id.0);
        // A user-defined lock (a file or database lock, recorded through the tracing
        // convention) is known by its name: one this file defined already under that name
        // (the recorder forgets an idle one and defines it again when it is next used) or
        // one another file defined is that lock too. Other locks live inside one process:
        // two processes' `Mutex::named("cache")` are two instances of one class, not one lock.
        let shared = match (&name_text, existing_slot) {
            (Some(text), None) if def.kind == LockKind::Custom => {
                self.named_locks.get(text).and_then(|locks| {
                    let custom = |l: &LockId| self.locks[l.index()].kind == LockKind::Custom;
                    let mine = |l: &LockId| {
                        self.locks[l.index()].process == process
                            || self.claimed.contains(&(process, *l))
                    };
                    let known = locks.iter().copied().filter(custom).find(mine);
                    known.or_else(|| locks.iter().copied().filter(custom).find(|l| !mine(l)))
                })
            }
            _ => None,
        };
        let lock = match shared {
            Some(lock) => {
                self.claimed.insert((process, lock));
                let slot = self.slot_lock.len() as u32;
                self.slot_lock.push(lock);
                self.maps[process].slots.insert(def.id.0, slot);
                return;
            }
            None => self.lock_slot_ix(process, def.id).1,
        };
        let class_key = match (&name_text, site) {
            (Some(text), _) => text.clone(),
            (None, Some(site)) => self.site_text(site),
            (None, None) => format!("lock#{}", lock.0),
        };
        let class = self.class_ix(class_key);
        if let Some(text) = name_text {
            let locks = self.named_locks.entry(text).or_default();
            if !locks.contains(&lock) {
                locks.push(lock);
            }
        }
        let entry = &mut self.locks[lock.index()];
        entry.kind = def.kind;
        entry.blocking = def.blocking;
        entry.implementation = def.implementation;
        entry.capacity = def.capacity;
        entry.name = name;
        entry.site = site;
        entry.class = class;
        self.lock_classes[lock.index()] = class;
    }

    fn class_ix(&mut self, key: String) -> ClassId {
        if let Some(class) = self.class_index.get(&key) {
            return *class;
        }
        let class = ClassId(self.classes.len() as u32);
        self.classes.push(key.clone());
        self.class_index.insert(key, class);
        class
    }

    /// Remaps, in place, events read from `process` (all of `thread`) to the merged tables
    /// and time axis, in order, and gives each one to `each`. A lock event is left holding
    /// its lock's *sequence slot* in place of the lock, for replay to order it by; replay
    /// then puts the lock there ([`slot_lock`](Self::slot_lock)). Events whose ids are all
    /// known take a fast path that defines nothing; the others go through
    /// [`remap`](Self::remap), which defines placeholders for unknown ids.
    #[inline(always)]
    pub(crate) fn remap_events(
        &mut self,
        process: usize,
        thread: ThreadId,
        events: &mut [Event],
        mut each: impl FnMut(&mut Event),
    ) {
        let mut i = 0;
        while i < events.len() {
            if let (Some(maps), Some(p)) = (self.maps.get(process), self.processes.get(process)) {
                let known = Known { maps, offset: p.time_offset_ns };
                while let Some(event) = events.get_mut(i) {
                    if known.remap_in_place(thread, event).is_none() {
                        break;
                    }
                    each(event);
                    i += 1;
                }
            }
            if let Some(event) = events.get_mut(i) {
                *event = self.remap(process, thread, event);
                each(event);
                i += 1;
            }
        }
    }

    /// The lock of sequence slot `slot` (see [`remap_events`](Self::remap_events)).
    #[inline(always)]
    pub(crate) fn slot_lock(&self, slot: u32) -> Option<LockId> {
        self.slot_lock.get(slot as usize).copied()
    }

    /// Asks the CPU for the entry that [`slot_lock`](Self::slot_lock) reads for `slot` (a
    /// prefetch hint, for traces whose locks outgrow the caches); changes nothing.
    #[inline(always)]
    pub(crate) fn prefetch_slot_lock(&self, slot: u32) {
        crate::prefetch::prefetch_entry(&self.slot_lock, slot as usize);
    }

    /// Remaps an event read from `process` to the merged tables and time axis, a lock event
    /// to its lock's sequence slot (see [`remap_events`](Self::remap_events)).
    #[inline]
    pub(crate) fn remap(&mut self, process: usize, thread: ThreadId, event: &Event) -> Event {
        use EventKind as K;
        let kind = match event.kind {
            K::LockRequested { lock, mode, site } => K::LockRequested {
                lock: self.lock_slot(process, lock),
                mode,
                site: self.site_ix(process, site),
            },
            K::LockAcquired { lock, mode, site, seq, via_try } => K::LockAcquired {
                lock: self.lock_slot(process, lock),
                mode,
                site: self.site_ix(process, site),
                seq,
                via_try,
            },
            K::LockTryFailed { lock, mode, site } => K::LockTryFailed {
                lock: self.lock_slot(process, lock),
                mode,
                site: self.site_ix(process, site),
            },
            K::LockReleased { lock, mode, seq, poisoned } => {
                K::LockReleased { lock: self.lock_slot(process, lock), mode, seq, poisoned }
            }
            K::TaskSpawned { task, site } => K::TaskSpawned {
                task: self.task_ix(process, task),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::PollStarted => K::PollStarted,
            K::PollEnded { ready } => K::PollEnded { ready },
            K::TaskFinished { cancelled } => K::TaskFinished { cancelled },
            K::TaskJoined { task, site } => K::TaskJoined {
                task: self.task_ix(process, task),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::TaskJoinRequested { task, site } => K::TaskJoinRequested {
                task: self.task_ix(process, task),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::Wake { task, by_ref } => K::Wake { task: self.task_ix(process, task), by_ref },
            K::ThreadSpawned { thread, site } => K::ThreadSpawned {
                thread: self.thread_ix(process, thread),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::ThreadStarted => K::ThreadStarted,
            K::ThreadFinished { panicked } => K::ThreadFinished { panicked },
            K::ThreadJoinRequested { thread, site } => K::ThreadJoinRequested {
                thread: self.thread_ix(process, thread),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::ThreadJoined { thread, site } => K::ThreadJoined {
                thread: self.thread_ix(process, thread),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::Send { channel, message, site } => K::Send {
                channel: self.channel_ix(process, channel),
                message,
                site: self.site_ix(process, site),
            },
            K::Receive { channel, message, site } => K::Receive {
                channel: self.channel_ix(process, channel),
                message,
                site: self.site_ix(process, site),
            },
            K::Read { var, site } => {
                K::Read { var: self.var_ix(process, var), site: self.site_ix(process, site) }
            }
            K::Write { var, site } => {
                K::Write { var: self.var_ix(process, var), site: self.site_ix(process, site) }
            }
            K::SyncRelease { var, site } => {
                K::SyncRelease { var: self.var_ix(process, var), site: self.site_ix(process, site) }
            }
            K::SyncAcquire { var, site } => {
                K::SyncAcquire { var: self.var_ix(process, var), site: self.site_ix(process, site) }
            }
            K::Mark { label, site } => K::Mark {
                label: self.string_ix(process, label),
                site: site.map(|s| self.site_ix(process, s)),
            },
            K::Gap { dropped } => {
                let p = &mut self.processes[process];
                p.dropped_events = p.dropped_events.saturating_add(dropped);
                K::Gap { dropped }
            }
            K::Panicked { site } => K::Panicked { site: site.map(|s| self.site_ix(process, s)) },
            K::AwaitPending { site } => K::AwaitPending { site: self.site_ix(process, site) },
            // Not ordered by sequence numbers: the merged lock itself, not its slot.
            K::Permits { lock, op, count } => {
                K::Permits { lock: self.lock_slot_ix(process, lock).1, op, count }
            }
            K::PollCpu { cpu_ns, runnable_ns } => K::PollCpu { cpu_ns, runnable_ns },
            K::RecordingEnded => K::RecordingEnded,
            K::ChannelCreated { channel, kind } => {
                K::ChannelCreated { channel: self.channel_ix(process, channel), kind }
            }
            K::ReceiveWaiting { channel, site } => K::ReceiveWaiting {
                channel: self.channel_ix(process, channel),
                site: self.site_ix(process, site),
            },
        };
        let offset = self.processes[process].time_offset_ns;
        Event {
            time_ns: event.time_ns.saturating_add(offset),
            thread,
            task: event.task.map(|t| self.task_ix(process, t)),
            kind,
        }
    }

    /// The sequence slot of lock `raw` of `process`, as a lock id (see
    /// [`remap_events`](Self::remap_events)).
    fn lock_slot(&mut self, process: usize, raw: LockId) -> LockId {
        LockId(self.lock_slot_ix(process, raw).0)
    }

    /// The merged lock of lock `raw` of `process`, if it was defined or seen.
    pub(crate) fn lock_of(&self, process: usize, raw: LockId) -> Option<LockId> {
        let slot = self.maps.get(process)?.slots.get(raw.0)?;
        self.slot_lock.get(slot as usize).copied()
    }

    /// One line saying which files were damaged and what was lost, if any was; for outputs
    /// that must say so before anything else (see README.md, "Commands").
    pub fn damage_note(&self) -> Option<String> {
        let damaged: Vec<String> = self
            .processes
            .iter()
            .filter(|p| p.is_damaged())
            .map(|p| {
                let bytes: u64 = p.damage.iter().map(|d| d.bytes).sum();
                let events: u64 = p.damage.iter().map(|d| d.events).sum();
                format!(
                    "{}: {} damaged region(s) skipped ({bytes} bytes, about {events} events lost)",
                    p.path,
                    p.damage.len()
                )
            })
            .collect();
        (!damaged.is_empty()).then(|| format!("DAMAGED TRACE: {}", damaged.join("; ")))
    }

    /// The merged id of thread `raw` of `process`, if the file used it.
    pub(crate) fn thread_of(&self, process: usize, raw: ThreadId) -> Option<ThreadId> {
        self.maps.get(process)?.threads.get(raw.0).map(ThreadId)
    }

    /// Counts events read from `process`.
    pub(crate) fn count_events(&mut self, process: usize, n: usize) {
        self.processes[process].events += n as u64;
    }

    /// The merged id of thread `raw` of `process`.
    #[inline]
    pub(crate) fn thread_ix(&mut self, process: usize, raw: ThreadId) -> ThreadId {
        if let Some(ix) = self.maps[process].threads.get(raw.0) {
            return ThreadId(ix);
        }
        let ix = self.threads.len() as u32;
        self.threads.push(Thread { name: None, os_id: 0, process, raw_id: raw.0 });
        self.maps[process].threads.insert(raw.0, ix);
        ThreadId(ix)
    }

    #[inline]
    fn task_ix(&mut self, process: usize, raw: TaskId) -> TaskId {
        if let Some(ix) = self.maps[process].tasks.get(raw.0) {
            return TaskId(ix);
        }
        let ix = self.tasks.len() as u32;
        self.tasks.push(Task {
            name: None,
            kind: None,
            spawn_site: None,
            runtime_id: None,
            process,
            raw_id: raw.0,
        });
        self.maps[process].tasks.insert(raw.0, ix);
        TaskId(ix)
    }

    /// The sequence slot and merged lock of lock `raw` of `process`.
    #[inline]
    fn lock_slot_ix(&mut self, process: usize, raw: LockId) -> (u32, LockId) {
        if let Some(slot) = self.maps[process].slots.get(raw.0) {
            return (slot, self.slot_lock[slot as usize]);
        }
        let lock = LockId(self.locks.len() as u32);
        let class_key = format!("lock#{}", lock.0);
        let class = self.class_ix(class_key);
        self.lock_classes.push(class);
        self.locks.push(Lock {
            kind: LockKind::Mutex,
            blocking: true,
            implementation: LockImplementation::Unknown,
            capacity: None,
            name: None,
            site: None,
            class,
            process,
            raw_id: raw.0,
        });
        let slot = self.slot_lock.len() as u32;
        self.slot_lock.push(lock);
        self.maps[process].slots.insert(raw.0, slot);
        (slot, lock)
    }

    #[inline]
    fn site_ix(&mut self, process: usize, raw: SiteId) -> SiteId {
        if let Some(ix) = self.maps[process].sites.get(raw.0) {
            return SiteId(ix);
        }
        let file = self.placeholder_string();
        let ix = self.sites.len() as u32;
        self.sites.push(Site { file, line: 0, col: 0, function: None });
        self.maps[process].sites.insert(raw.0, ix);
        SiteId(ix)
    }

    fn string_ix(&mut self, process: usize, raw: StringId) -> StringId {
        if let Some(ix) = self.maps[process].strings.get(raw.0) {
            return StringId(ix);
        }
        let ix = self.strings.len() as u32;
        self.strings.push(String::new());
        self.maps[process].strings.insert(raw.0, ix);
        StringId(ix)
    }

    fn placeholder_string(&mut self) -> StringId {
        let ix = self.strings.len() as u32;
        self.strings.push(String::new());
        StringId(ix)
    }

    fn var_ix(&mut self, process: usize, raw: VarId) -> VarId {
        if let Some(ix) = self.maps[process].vars.get(raw.0) {
            return VarId(ix);
        }
        let name = self.placeholder_string();
        let ix = self.vars.len() as u32;
        self.vars.push(Var { name, site: None });
        self.maps[process].vars.insert(raw.0, ix);
        VarId(ix)
    }

    fn channel_ix(&mut self, process: usize, raw: ChannelId) -> ChannelId {
        if let Some(ix) = self.maps[process].channels.get(raw.0) {
            return ChannelId(ix);
        }
        let ix = self.channels.len() as u32;
        self.channels.push(Channel { name: None, site: None });
        self.maps[process].channels.insert(raw.0, ix);
        ChannelId(ix)
    }
}

// === impl Trace: looking things up ===

impl Trace {
    /// The files of the analysis, in the order given.
    pub fn processes(&self) -> &[Process] {
        &self.processes
    }

    /// An interned string.
    pub fn string(&self, id: StringId) -> &str {
        self.strings.get(id.index()).map_or("", String::as_str)
    }

    /// A site. Ids handed out by replay are always valid here.
    pub fn site(&self, id: SiteId) -> &Site {
        &self.sites[id.index()]
    }

    /// All threads, indexed by their merged id.
    pub fn threads(&self) -> &[Thread] {
        &self.threads
    }

    /// All tasks, indexed by their merged id.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Whether `task` is one of the async runtime's containers, inside which other tasks are
    /// polled: a `block_on` future, or a worker's launch on the blocking pool (tokio's kinds
    /// `block_on` and `blocking`).
    pub fn is_runtime_container(&self, task: TaskId) -> bool {
        let kind = self.tasks.get(task.index()).and_then(|t| t.kind);
        kind.is_some_and(|k| matches!(self.string(k), "block_on" | "blocking"))
    }

    /// All locks, indexed by their merged id.
    pub fn locks(&self) -> &[Lock] {
        &self.locks
    }

    /// A lock.
    pub fn lock(&self, id: LockId) -> &Lock {
        &self.locks[id.index()]
    }

    /// A lock's class: [`lock(id).class`](Lock::class), from a compact table.
    #[inline]
    pub fn lock_class(&self, id: LockId) -> ClassId {
        self.lock_classes[id.index()]
    }

    /// Asks the CPU for the entry of `id` that [`lock_class`](Self::lock_class) reads (a
    /// prefetch hint, for traces whose locks outgrow the caches); changes nothing.
    #[inline(always)]
    pub(crate) fn prefetch_lock_class(&self, id: LockId) {
        crate::prefetch::prefetch_entry(&self.lock_classes, id.index());
    }

    /// All variables, indexed by their merged id.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// All channels, indexed by their merged id.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// How many lock classes there are.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// How many sites there are.
    pub fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// The name of a lock class: the locks' explicit name, else their creation site.
    pub fn class_name(&self, class: ClassId) -> &str {
        self.classes.get(class.index()).map_or("", String::as_str)
    }

    /// A site as `file:line:col` (`LOC n` for a location with no file, such as an STD
    /// trace's).
    pub fn site_text(&self, id: SiteId) -> String {
        SiteText(self, id).to_string()
    }

    /// A lock's display name: its explicit name, else its creation site (with the instance
    /// number when several instances share the site), else `lock#N`.
    pub fn lock_name(&self, id: LockId) -> String {
        let lock = self.lock(id);
        match (lock.name, lock.site) {
            (Some(name), _) if !self.string(name).is_empty() => self.string(name).to_owned(),
            (_, Some(site)) => format!("{}", SiteText(self, site)),
            _ => format!("lock#{}", id.0),
        }
    }

    /// A thread's display name: its name (or `thread#OSID`), with its process when the
    /// analysis merges several files.
    pub fn thread_name(&self, id: ThreadId) -> String {
        let Some(thread) = self.threads.get(id.index()) else {
            return format!("thread#{}", id.0);
        };
        let base = match thread.name {
            Some(name) if !self.string(name).is_empty() => self.string(name).to_owned(),
            _ => format!("thread#{}", thread.os_id),
        };
        self.qualify(base, thread.process)
    }

    /// A task's display name: its name (or `task#N`), with its process when the analysis
    /// merges several files.
    pub fn task_name(&self, id: TaskId) -> String {
        let Some(task) = self.tasks.get(id.index()) else {
            return format!("task#{}", id.0);
        };
        let base = match task.name {
            Some(name) if !self.string(name).is_empty() => self.string(name).to_owned(),
            _ => match task.runtime_id {
                Some(rid) => format!("task#{rid}"),
                None => format!("task#{}", task.raw_id),
            },
        };
        self.qualify(base, task.process)
    }

    /// A channel's display name: its name, else where it was created, else `channel#N`.
    pub fn channel_name(&self, id: ChannelId) -> String {
        let Some(channel) = self.channels.get(id.index()) else {
            return format!("channel#{}", id.0);
        };
        match (channel.name, channel.site) {
            (Some(name), _) if !self.string(name).is_empty() => self.string(name).to_owned(),
            (_, Some(site)) => format!("{}", SiteText(self, site)),
            _ => format!("channel#{}", id.0),
        }
    }

    /// A variable's name.
    pub fn var_name(&self, id: VarId) -> String {
        match self.vars.get(id.index()) {
            Some(var) if !self.string(var.name).is_empty() => self.string(var.name).to_owned(),
            _ => format!("var#{}", id.0),
        }
    }

    /// The lowercase name of a lock kind, as reports show it.
    pub fn lock_kind_name(kind: LockKind) -> &'static str {
        match kind {
            LockKind::Mutex => "mutex",
            LockKind::RwLock => "rwlock",
            LockKind::Semaphore => "semaphore",
            LockKind::Custom => "custom",
        }
    }

    fn qualify(&self, base: String, process: usize) -> String {
        if self.processes.len() <= 1 {
            return base;
        }
        match self.processes.get(process) {
            Some(p) => format!("{base} (pid {})", p.header.pid),
            None => base,
        }
    }
}

/// The id maps of one file, for remapping the ids of events without defining anything.
pub(crate) struct Known<'a> {
    maps: &'a SourceMaps,
    offset: u64,
}

impl Known<'_> {
    /// Remaps `event` of `thread` in place (a lock event to its lock's sequence slot) if it
    /// is of the kinds that dominate traces (lock events, polls, accesses) and every id it
    /// carries is known; else leaves it as it is and returns `None`.
    #[inline(always)]
    fn remap_in_place(&self, thread: ThreadId, event: &mut Event) -> Option<()> {
        use EventKind as K;
        let task = self.task(event.task)?;
        // Every id is looked up before any is written, so that giving up leaves the event
        // as it was read.
        match &mut event.kind {
            K::LockAcquired { lock, site, .. } | K::LockRequested { lock, site, .. } => {
                (*lock, *site) = (self.lock_slot(*lock)?, self.site(*site)?);
            }
            K::LockReleased { lock, .. } => *lock = self.lock_slot(*lock)?,
            K::PollStarted | K::PollEnded { .. } => {}
            K::Read { var, site } | K::Write { var, site } => {
                (*var, *site) = (self.var(*var)?, self.site(*site)?);
            }
            _ => return None,
        }
        event.time_ns = event.time_ns.saturating_add(self.offset);
        event.thread = thread;
        event.task = task;
        Some(())
    }

    /// The sequence slot of lock `raw`, as a lock id, if the lock is known.
    #[inline]
    fn lock_slot(&self, raw: LockId) -> Option<LockId> {
        self.maps.slots.get(raw.0).map(LockId)
    }

    /// The merged id of variable `raw`, if it is known.
    #[inline]
    fn var(&self, raw: VarId) -> Option<VarId> {
        self.maps.vars.get(raw.0).map(VarId)
    }

    /// The merged id of site `raw`, if it is known.
    #[inline]
    fn site(&self, raw: SiteId) -> Option<SiteId> {
        self.maps.sites.get(raw.0).map(SiteId)
    }

    /// The merged id of the task of an event (none for none), if it is known.
    #[inline]
    fn task(&self, raw: Option<TaskId>) -> Option<Option<TaskId>> {
        match raw {
            Some(task) => Some(Some(TaskId(self.maps.tasks.get(task.0)?))),
            None => Some(None),
        }
    }
}

/// Displays a site as `file:line:col`, or as `LOC n` if it has no file but a line (a program
/// location known by its number only, as an STD trace's `LOC`s are); `?` if neither.
pub(crate) fn write_site(
    f: &mut fmt::Formatter<'_>,
    file: &str,
    line: u32,
    col: u32,
) -> fmt::Result {
    match (file.is_empty(), line) {
        (false, _) => write!(f, "{file}:{line}:{col}"),
        (true, 0) => write!(f, "?"),
        (true, line) => write!(f, "LOC {line}"),
    }
}

/// Displays a site (see [`write_site`]).
struct SiteText<'a>(&'a Trace, SiteId);

impl fmt::Display for SiteText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.sites.get(self.1.index()) {
            Some(site) => write_site(f, self.0.string(site.file), site.line, site.col),
            None => write!(f, "?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_take_hostile_ids_without_huge_tables() {
        let mut map = IdMap::default();
        map.insert(u32::MAX - 1, 7);
        map.insert(3, 1);
        assert_eq!(map.get(u32::MAX - 1), Some(7));
        assert_eq!(map.get(3), Some(1));
        assert_eq!(map.get(2), None);
        assert_eq!(map.get(5_000_000), None);
        assert!(map.dense.len() <= 4);
    }
}
