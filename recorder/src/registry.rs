//! Definitions: the meaning of every id a session hands out, kept only as long as an output
//! can still need them.
//!
//! Ids are assigned here, by the recorder (never tokio's span ids, which are reused), and are
//! never reused within a session: the analyzer takes one id for one entity. A definition is
//! always made before its id is handed to anyone, so an event can only carry ids that are
//! defined already; the writer takes the definitions *after* draining events, which puts
//! every definition in the file before the events that use it.
//!
//! # Forgetting
//!
//! A service that spawns a task, creates a lock or a channel per request would otherwise grow
//! the registry by a few definitions per request, forever. So the end of every entity's life
//! is reported ([`Registry::retire`]): a thread or a task finishing (together with its join
//! handle, for the spawn helpers: both are *parties* to its life, see [`Registry::hold`]), a
//! wrapper lock, channel or annotated variable dropped, a tokio resource's span closing.
//! Retiring takes this registry's lock, as defining did; nothing is done per event.
//!
//! A retired entity's definition is then forgotten once no output can need it any more:
//!
//! - streaming to a file: as soon as it has been written (the file has it, and every event
//!   that uses it comes after it);
//! - a flight recorder, whose dumps rewrite every definition kept ([`Registry::all`]): once the
//!   memory has let go of every round that may hold an event using it. Each retirement waits
//!   until a writer round begins after it, with a margin, while no older event is held in a
//!   thread's buffer (see [`Registry::drained`]): the next round is the last that may hold
//!   an event using it, and the definition goes when the flight recorder's oldest round kept
//!   is newer ([`Registry::forget_retired`]).
//!
//! Interned strings count their uses (by kept definitions, and by mark events until their
//! round is let go); one no longer used waits among the [`IDLE_STRINGS`] most recently unused
//! ones, so that a recurring name (a task kind, a lock name used per request) is not defined
//! again and again, and is then forgotten; if it comes back later it is defined again, under a
//! new id. Sites are keyed by the program's `'static` locations and bounded by its code: they
//! stay. User-defined locks of the tracing convention are identified by their name, which may
//! be made at run time; past [`NAMED_LOCKS`] of them, those neither held, waited for nor used
//! lately are retired (a later use of the name defines a new lock of that name).
//!
//! The registry's lock is taken when something new is defined (a thread, a task, a lock, the
//! first sight of a source site), when something retires, and twice per writer round; never
//! per event, except for the user-defined locks of the tracing convention, which are looked up
//! by name.

use crate::format::{
    ChannelDef, ChannelId, Definition, LockDef, LockId, LockImplementation, LockKind, SiteDef,
    SiteId, StringId, TaskDef, TaskId, ThreadDef, ThreadId, VarDef, VarId,
};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;

/// Interned strings kept after their last use, in case they come back.
pub(crate) const IDLE_STRINGS: usize = 64;

/// User-defined locks kept before idle ones are retired.
pub(crate) const NAMED_LOCKS: usize = 256;

/// Where a site comes from: a `#[track_caller]` location or tracing callsite metadata,
/// identified by the address of the `'static` value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteSource {
    /// The address of the `'static` location or metadata: the site's identity.
    pub(crate) key: usize,
    /// Source file.
    pub(crate) file: &'static str,
    /// 1-based line.
    pub(crate) line: u32,
    /// 1-based column; 0 when unknown (tracing metadata has none).
    pub(crate) col: u32,
    /// The function or operation, where known.
    pub(crate) function: Option<&'static str>,
}

impl SiteSource {
    /// The site of a `#[track_caller]` location.
    pub(crate) fn location(location: &'static std::panic::Location<'static>) -> SiteSource {
        SiteSource {
            key: location as *const _ as usize,
            file: location.file(),
            line: location.line(),
            col: location.column(),
            function: None,
        }
    }
}

/// Something whose life ends, as [`Registry::retire`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Entity {
    /// A thread.
    Thread(ThreadId),
    /// A task.
    Task(TaskId),
    /// A lock.
    Lock(LockId),
    /// An annotated variable.
    Variable(VarId),
    /// A channel.
    Channel(ChannelId),
    /// One use of an interned string by an event: a mark's label.
    Label(StringId),
}

/// What a kept definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    String(StringId),
    Site(SiteId),
    Thread(ThreadId),
    Task(TaskId),
    Lock(LockId),
    Variable(VarId),
    Channel(ChannelId),
}

/// What one event of the tracing convention does to a user-defined lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedUse {
    /// Someone starts waiting for it.
    Request,
    /// Someone got it (after waiting or not).
    Acquire,
    /// A wait or an attempt failed.
    Fail,
    /// Someone let go of it.
    Release,
}

/// A user-defined lock, by name.
#[derive(Debug)]
struct NamedLock {
    id: LockId,
    /// Holds not yet released.
    holds: u32,
    /// Waits not yet ended.
    waits: u32,
    /// The registry's count of named lock uses at its latest use.
    last_use: u64,
}

impl NamedLock {
    fn apply(&mut self, used: NamedUse) {
        match used {
            NamedUse::Request => self.waits = self.waits.saturating_add(1),
            NamedUse::Acquire => {
                self.waits = self.waits.saturating_sub(1);
                self.holds = self.holds.saturating_add(1);
            }
            NamedUse::Fail => self.waits = self.waits.saturating_sub(1),
            NamedUse::Release => self.holds = self.holds.saturating_sub(1),
        }
    }
}

/// The uses of an interned string.
#[derive(Debug, Default)]
struct Uses {
    /// Kept definitions and pending labels that use it.
    count: u32,
    /// While it is queued among the idle strings: when its uses last fell to 0.
    idle_since: Option<u64>,
}

/// A definition that cannot be forgotten yet: the writer has not taken it.
#[derive(Debug)]
struct Unwritten;

/// The definitions kept, by their number (the order they were made in): a vector sorted by
/// number, with a hole where one was forgotten, closed up once holes are half of it.
///
/// A service that spawns a short task per request defines and forgets one definition per
/// request; here that is a push, a binary search and a take (and, amortized, a move), where
/// a tree map would rebalance its nodes and allocate.
#[derive(Debug, Default)]
struct Kept {
    entries: Vec<(u64, Option<Definition>)>,
    holes: usize,
}

impl Kept {
    /// Holes never worth closing up.
    const FEW_HOLES: usize = 16;

    /// Keeps `definition` under `number`, higher than any kept so far.
    fn push(&mut self, number: u64, definition: Definition) {
        let in_order = self.entries.last().is_none_or(|(last, _)| *last < number);
        debug_assert!(in_order, "definitions are kept in the order they are numbered; a bug");
        self.entries.push((number, Some(definition)));
    }

    fn position(&self, number: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&number, |(n, _)| *n).ok()
    }

    fn get(&self, number: u64) -> Option<&Definition> {
        self.entries[self.position(number)?].1.as_ref()
    }

    fn get_mut(&mut self, number: u64) -> Option<&mut Definition> {
        let position = self.position(number)?;
        self.entries[position].1.as_mut()
    }

    /// Forgets the definition `number`, handing it to `last_look` first (in place: moving a
    /// definition out costs more than all the rest).
    fn remove<R>(
        &mut self,
        number: u64,
        last_look: impl FnOnce(&mut Definition) -> R,
    ) -> Option<R> {
        let position = self.position(number)?;
        let slot = &mut self.entries[position].1;
        let looked = last_look(slot.as_mut()?);
        *slot = None;
        self.holes += 1;
        if self.holes > Self::FEW_HOLES && 2 * self.holes > self.entries.len() {
            self.entries.retain(|(_, d)| d.is_some());
            self.holes = 0;
        }
        Some(looked)
    }

    /// The definitions numbered `from` or higher, in order.
    fn since(&self, from: u64) -> impl Iterator<Item = &Definition> {
        let start = self.entries.partition_point(|(n, _)| *n < from);
        self.entries[start..].iter().filter_map(|(_, d)| d.as_ref())
    }

    fn len(&self) -> usize {
        self.entries.len() - self.holes
    }
}

/// The definitions of one session.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// The definitions kept, by their number: the order they were made in.
    definitions: Kept,
    /// The number of each kept definition.
    index: HashMap<Key, u64>,
    /// The number of the next definition.
    next: u64,
    /// Definitions numbered below this were handed to the writer.
    written: u64,
    /// Interned strings kept, by text.
    strings: HashMap<String, StringId>,
    /// The uses of each kept string.
    uses: HashMap<StringId, Uses>,
    /// Strings whose uses fell to 0, by when they first did since they were last here (some
    /// may be in use again, or idle since later, by now), with that moment.
    idle: VecDeque<(StringId, u64)>,
    /// Times a string's uses fell to 0 so far: the moments of `idle`.
    idle_count: u64,
    sites: HashMap<usize, SiteId>,
    /// Sites made from (file, line, col, function) rather than a `'static` address.
    sites_by_value: HashMap<(StringId, u32, u32, Option<StringId>), SiteId>,
    /// User-defined locks, identified by name.
    named_locks: HashMap<String, NamedLock>,
    /// Uses of user-defined locks so far.
    named_uses: u64,
    /// Idle user-defined locks are swept when there are more than this (and [`NAMED_LOCKS`]).
    sweep_at: usize,
    /// Entities with more parties to their life than the one that retires last, and how many.
    parties: HashMap<Entity, u32>,
    /// Retired, with the clock ticks of their retirement; events that use them may still be
    /// in the threads' buffers.
    retiring: VecDeque<(Entity, u64)>,
    /// Retired, with the number of the last writer round that may hold an event using them.
    drained: VecDeque<(Entity, u64)>,
    // The next id of each kind. They wrap after 2^32 ids of one kind (a service spawning
    // 50,000 tasks a second gets there in a day): an id is then used again, which a reader
    // takes for a redefinition, rather than the recorder panicking in its host.
    string_count: u32,
    threads: u32,
    tasks: u32,
    locks: u32,
    site_count: u32,
    variables: u32,
    channels: u32,
}

impl Registry {
    fn define(&mut self, key: Key, definition: Definition) {
        let number = self.next;
        self.next += 1;
        self.definitions.push(number, definition);
        self.index.insert(key, number);
    }

    fn definition(&self, key: Key) -> Option<&Definition> {
        self.index.get(&key).and_then(|number| self.definitions.get(*number))
    }

    /// Interns `text` and counts one more use of it, by a definition or a label; see
    /// [`release_string`](Self::release_string).
    pub(crate) fn string(&mut self, text: &str) -> StringId {
        if let Some(id) = self.strings.get(text) {
            let id = *id;
            self.uses.entry(id).or_default().count += 1;
            return id;
        }
        let id = StringId(self.string_count);
        self.string_count = self.string_count.wrapping_add(1);
        self.strings.insert(text.to_owned(), id);
        self.uses.insert(id, Uses { count: 1, idle_since: None });
        self.define(Key::String(id), Definition::String { id, text: text.to_owned() });
        id
    }

    /// One use of `id` ended. An unused string waits among the idle ones and is forgotten
    /// once [`IDLE_STRINGS`] others have been unused since more recently.
    fn release_string(&mut self, id: StringId) {
        let Some(uses) = self.uses.get_mut(&id) else { return };
        uses.count = uses.count.saturating_sub(1);
        if uses.count > 0 {
            return;
        }
        self.idle_count += 1;
        let now = self.idle_count;
        if uses.idle_since.replace(now).is_none() {
            self.idle.push_back((id, now));
        }
        while self.idle.len() > IDLE_STRINGS {
            let Some((oldest, since)) = self.idle.pop_front() else { break };
            let Some(uses) = self.uses.get_mut(&oldest) else { continue };
            match uses.idle_since {
                _ if uses.count > 0 => uses.idle_since = None,
                // Used again and unused again since it was queued: back in the queue.
                Some(later) if later != since => self.idle.push_back((oldest, later)),
                _ => {
                    let text = |d: &mut Definition| match d {
                        Definition::String { text, .. } => std::mem::take(text),
                        _ => String::new(),
                    };
                    if let Ok(text) = self.remove(Key::String(oldest), text) {
                        self.uses.remove(&oldest);
                        if let Some(text) = text {
                            self.strings.remove(&text);
                        }
                    }
                }
            }
        }
    }

    /// The id of a site, defined on first sight.
    pub(crate) fn site(&mut self, source: SiteSource) -> SiteId {
        if let Some(id) = self.sites.get(&source.key) {
            return *id;
        }
        let id = self.site_by_value(source.file, source.line, source.col, source.function);
        self.sites.insert(source.key, id);
        id
    }

    /// The id of a site given by value (a location read from tracing fields).
    pub(crate) fn site_by_value(
        &mut self,
        file: &str,
        line: u32,
        col: u32,
        function: Option<&str>,
    ) -> SiteId {
        // A known site's strings are interned already: look it up without counting uses.
        let known_file = self.strings.get(file).copied();
        let known_function = match function {
            None => Some(None),
            Some(f) => self.strings.get(f).copied().map(Some),
        };
        if let (Some(file), Some(function)) = (known_file, known_function) {
            if let Some(id) = self.sites_by_value.get(&(file, line, col, function)) {
                return *id;
            }
        }
        // Sites are never forgotten: their strings keep these uses for the session.
        let file = self.string(file);
        let function = function.map(|f| self.string(f));
        let key = (file, line, col, function);
        let id = SiteId(self.site_count);
        self.site_count = self.site_count.wrapping_add(1);
        self.sites_by_value.insert(key, id);
        self.define(Key::Site(id), Definition::Site(SiteDef { id, file, line, col, function }));
        id
    }

    /// Defines a thread.
    pub(crate) fn thread(&mut self, name: Option<&str>, os_id: u64) -> ThreadId {
        let id = ThreadId(self.threads);
        self.threads = self.threads.wrapping_add(1);
        let name = name.map(|n| self.string(n));
        self.define(Key::Thread(id), Definition::Thread(ThreadDef { id, name, os_id }));
        id
    }

    /// Defines a task.
    pub(crate) fn task(
        &mut self,
        name: Option<&str>,
        kind: &str,
        spawn_site: Option<SiteId>,
        runtime_id: Option<u64>,
    ) -> TaskId {
        let id = TaskId(self.tasks);
        self.tasks = self.tasks.wrapping_add(1);
        let name = name.filter(|n| !n.is_empty()).map(|n| self.string(n));
        let kind = Some(self.string(kind));
        let task = TaskDef { id, name, kind, spawn_site, runtime_id };
        self.define(Key::Task(id), Definition::Task(task));
        id
    }

    /// Defines a lock instance, of no known capacity (see
    /// [`set_lock_capacity`](Self::set_lock_capacity)).
    pub(crate) fn lock(
        &mut self,
        kind: LockKind,
        implementation: LockImplementation,
        blocking: bool,
        name: Option<&str>,
        site: Option<SiteId>,
    ) -> LockId {
        let id = LockId(self.locks);
        self.locks = self.locks.wrapping_add(1);
        let name = name.map(|n| self.string(n));
        let lock = LockDef { id, kind, blocking, name, site, implementation, capacity: None };
        self.define(Key::Lock(id), Definition::Lock(lock));
        id
    }

    /// Records a semaphore's initial permits, learnt after its definition was made: amends
    /// the definition if the writer has not taken it yet, else defines the lock again (a
    /// reader takes the later definition).
    pub(crate) fn set_lock_capacity(&mut self, id: LockId, permits: u32) {
        let Some(&number) = self.index.get(&Key::Lock(id)) else { return };
        let Some(Definition::Lock(lock)) = self.definitions.get_mut(number) else { return };
        if lock.capacity == Some(permits) {
            return;
        }
        lock.capacity = Some(permits);
        if number < self.written {
            let amended = self.definitions.remove(number, |d| d.clone());
            self.define(Key::Lock(id), amended.expect("the definition was just amended"));
        }
    }

    /// Defines an annotated variable or synchronisation object (see [`crate::annotate`]).
    pub(crate) fn variable(&mut self, name: &str, site: Option<SiteId>) -> VarId {
        let id = VarId(self.variables);
        self.variables = self.variables.wrapping_add(1);
        let name = self.string(name);
        self.define(Key::Variable(id), Definition::Variable(VarDef { id, name, site }));
        id
    }

    /// Defines a recorded channel (see [`crate::channel`]).
    pub(crate) fn channel(&mut self, name: Option<&str>, site: Option<SiteId>) -> ChannelId {
        let id = ChannelId(self.channels);
        self.channels = self.channels.wrapping_add(1);
        let name = name.map(|n| self.string(n));
        self.define(Key::Channel(id), Definition::Channel(ChannelDef { id, name, site }));
        id
    }

    /// The lock named `name` (a user-defined lock of the tracing convention), defined on
    /// first sight (locks are identified by their name), and what the event does to it.
    /// Past [`NAMED_LOCKS`] names, the ones that are idle and were not used lately are
    /// retired `now` (clock ticks, read under this registry's lock).
    pub(crate) fn named_lock(
        &mut self,
        name: &str,
        site: Option<SiteId>,
        used: NamedUse,
        now: u64,
    ) -> LockId {
        self.named_uses += 1;
        if let Some(lock) = self.named_locks.get_mut(name) {
            lock.apply(used);
            lock.last_use = self.named_uses;
            return lock.id;
        }
        let id =
            self.lock(LockKind::Custom, LockImplementation::UserDefined, true, Some(name), site);
        let mut lock = NamedLock { id, holds: 0, waits: 0, last_use: self.named_uses };
        lock.apply(used);
        self.named_locks.insert(name.to_owned(), lock);
        if self.named_locks.len() > self.sweep_at.max(NAMED_LOCKS) {
            self.sweep_named_locks(now);
        }
        id
    }

    /// Retires the user-defined locks neither held nor waited for, and not among the latest
    /// [`NAMED_LOCKS`]` / 2` uses.
    fn sweep_named_locks(&mut self, now: u64) {
        let recent = self.named_uses.saturating_sub(NAMED_LOCKS as u64 / 2);
        let mut idle = Vec::new();
        self.named_locks.retain(|_, lock| {
            let keep = lock.holds > 0 || lock.waits > 0 || lock.last_use > recent;
            if !keep {
                idle.push(lock.id);
            }
            keep
        });
        for id in idle {
            self.retire(Entity::Lock(id), now);
        }
        self.sweep_at = 2 * self.named_locks.len();
    }

    /// One more party to `entity`'s life: it retires only when every party has
    /// [retired](Self::retire) it (a spawned task and its join handle, say).
    pub(crate) fn hold(&mut self, entity: Entity) {
        *self.parties.entry(entity).or_default() += 1;
    }

    /// A party to `entity`'s life is done with it, at `now` (clock ticks, read under this
    /// registry's lock, after every event of the party that uses it). When it was the last,
    /// the entity is retired: its definition is forgotten once no output needs it.
    pub(crate) fn retire(&mut self, entity: Entity, now: u64) {
        if let Some(others) = self.parties.get_mut(&entity) {
            *others -= 1;
            if *others == 0 {
                self.parties.remove(&entity);
            }
            return;
        }
        self.retiring.push_back((entity, now));
    }

    /// Definitions made since the last call.
    pub(crate) fn take_unwritten(&mut self) -> Vec<Definition> {
        let new = self.definitions.since(self.written).cloned().collect();
        self.written = self.next;
        new
    }

    /// The writer's round `round` began after `horizon` (clock ticks), and no event recorded
    /// before `horizon` was still held in a buffer: entities retired before `horizon` had all
    /// their events pushed by then, and those are drained by round `round + 1` at the latest
    /// (a held run published while round `round` drained waits for the next).
    pub(crate) fn drained(&mut self, round: u64, horizon: u64) {
        while let Some(&(entity, at)) = self.retiring.front() {
            if at >= horizon {
                break;
            }
            self.retiring.pop_front();
            self.drained.push_back((entity, round + 1));
        }
    }

    /// Forgets the definitions of retired entities that no output needs any more. `kept_from`:
    /// the oldest writer round whose events are still held for a dump (a flight recorder), or
    /// `None` when nothing is (streaming: whatever is written may go).
    pub(crate) fn forget_retired(&mut self, kept_from: Option<u64>) {
        match kept_from {
            None => {
                let drained = std::mem::take(&mut self.drained);
                let retiring = std::mem::take(&mut self.retiring);
                for (entity, at) in drained.into_iter().map(|(e, _)| (e, 0)).chain(retiring) {
                    if !self.forget_entity(entity) {
                        self.retiring.push_back((entity, at));
                    }
                }
            }
            Some(oldest) => {
                while let Some(&(entity, round)) = self.drained.front() {
                    if round >= oldest {
                        break;
                    }
                    self.drained.pop_front();
                    if !self.forget_entity(entity) {
                        // Not written yet (never so, by the order of rounds): wait again.
                        self.retiring.push_back((entity, 0));
                    }
                }
            }
        }
    }

    /// Forgets `entity`'s definition and the uses of the strings it names; `false` (and
    /// nothing forgotten) if its definition has not been written yet.
    fn forget_entity(&mut self, entity: Entity) -> bool {
        let key = match entity {
            Entity::Thread(id) => Key::Thread(id),
            Entity::Task(id) => Key::Task(id),
            Entity::Lock(id) => Key::Lock(id),
            Entity::Variable(id) => Key::Variable(id),
            Entity::Channel(id) => Key::Channel(id),
            Entity::Label(id) => {
                self.release_string(id);
                return true;
            }
        };
        let names = |definition: &mut Definition| match definition {
            Definition::Thread(t) => [t.name, None],
            Definition::Task(t) => [t.name, t.kind],
            Definition::Lock(l) => [l.name, None],
            Definition::Variable(v) => [Some(v.name), None],
            Definition::Channel(c) => [c.name, None],
            Definition::String { .. } | Definition::Site(_) => [None, None],
        };
        let Ok(names) = self.remove(key, names) else { return false };
        for id in names.into_iter().flatten().flatten() {
            self.release_string(id);
        }
        true
    }

    /// Removes the definition of `key` (if kept), unless it has not been written yet, and
    /// gives what `last_look` found in it.
    fn remove<R>(
        &mut self,
        key: Key,
        last_look: impl FnOnce(&mut Definition) -> R,
    ) -> Result<Option<R>, Unwritten> {
        let Some(&number) = self.index.get(&key) else { return Ok(None) };
        if number >= self.written {
            return Err(Unwritten);
        }
        self.index.remove(&key);
        Ok(self.definitions.remove(number, last_look))
    }

    /// Every definition kept, in the order they were made: what makes a dump self-contained.
    pub(crate) fn all(&self) -> Vec<Definition> {
        self.definitions.since(0).cloned().collect()
    }

    /// How many definitions are kept.
    pub(crate) fn len(&self) -> usize {
        self.definitions.len()
    }

    // === names for people (the watchdog's labels; rare) ===

    fn text(&self, id: StringId) -> Option<&str> {
        match self.definition(Key::String(id))? {
            Definition::String { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The thread in words: its name in backquotes, or `thread #3` if it has none (or is
    /// forgotten).
    pub(crate) fn describe_thread(&self, id: ThreadId) -> String {
        let name = match self.definition(Key::Thread(id)) {
            Some(Definition::Thread(t)) => t.name.and_then(|n| self.text(n)),
            _ => None,
        };
        name.map_or_else(|| format!("thread #{}", id.0), |name| format!("thread `{name}`"))
    }

    /// The task in words: its name in backquotes, or `task #3` if it has none (or is
    /// forgotten).
    pub(crate) fn describe_task(&self, id: TaskId) -> String {
        let name = match self.definition(Key::Task(id)) {
            Some(Definition::Task(t)) => t.name.and_then(|n| self.text(n)),
            _ => None,
        };
        name.map_or_else(|| format!("task #{}", id.0), |name| format!("task `{name}`"))
    }

    /// Who is running, in words, to name what it makes: the task by its name (`task
    /// `serve``), else by its spawn site (`the task spawned at FILE:LINE:COL`, a dependency's
    /// file from its crate's folder on), else as `task #3`; outside any task, the thread.
    pub(crate) fn describe_actor(&self, task: Option<TaskId>, thread: ThreadId) -> String {
        let Some(task) = task else { return self.describe_thread(thread) };
        let Some(Definition::Task(def)) = self.definition(Key::Task(task)) else {
            return self.describe_task(task);
        };
        if def.name.is_some() {
            return self.describe_task(task);
        }
        let site = def.spawn_site.and_then(|site| match self.definition(Key::Site(site))? {
            Definition::Site(s) => {
                let file = crate::paths::readable(self.text(s.file)?);
                Some(format!("{file}:{}:{}", s.line, s.col))
            }
            _ => None,
        });
        site.map_or_else(|| self.describe_task(task), |at| format!("the task spawned at {at}"))
    }

    /// The lock in words: its name in backquotes, or `the lock created at FILE:LINE:COL`, or
    /// `lock #3` (also once forgotten).
    pub(crate) fn describe_lock(&self, id: LockId) -> String {
        let Some(Definition::Lock(lock)) = self.definition(Key::Lock(id)) else {
            return format!("lock #{}", id.0);
        };
        if let Some(name) = lock.name.and_then(|n| self.text(n)) {
            return format!("lock `{name}`");
        }
        let site = lock.site.and_then(|site| match self.definition(Key::Site(site))? {
            Definition::Site(s) => Some(format!("{}:{}:{}", self.text(s.file)?, s.line, s.col)),
            _ => None,
        });
        site.map_or_else(|| format!("lock #{}", id.0), |at| format!("the lock created at {at}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_named(registry: &mut Registry, name: &str) -> LockId {
        registry.lock(LockKind::Mutex, LockImplementation::HindsightStd, true, Some(name), None)
    }

    fn defines(registry: &Registry, wanted: impl Fn(&Definition) -> bool) -> bool {
        registry.all().iter().any(wanted)
    }

    #[test]
    fn a_capacity_amends_an_unwritten_lock_and_redefines_a_written_one() {
        let mut registry = Registry::default();
        let capacity_of = |definitions: &[Definition], id: LockId| -> Vec<Option<u32>> {
            let locks = definitions.iter().filter_map(|d| match d {
                Definition::Lock(lock) if lock.id == id => Some(lock.capacity),
                _ => None,
            });
            locks.collect()
        };
        let semaphore = |registry: &mut Registry| {
            registry.lock(LockKind::Semaphore, LockImplementation::Tokio, false, None, None)
        };
        let early = semaphore(&mut registry);
        registry.set_lock_capacity(early, 3);
        assert_eq!(capacity_of(&registry.take_unwritten(), early), [Some(3)]);

        let late = semaphore(&mut registry);
        assert_eq!(capacity_of(&registry.take_unwritten(), late), [None]);
        registry.set_lock_capacity(late, 5);
        registry.set_lock_capacity(late, 5);
        assert_eq!(capacity_of(&registry.take_unwritten(), late), [Some(5)]);
    }

    fn defines_text(registry: &Registry, text: &str) -> bool {
        defines(registry, |d| matches!(d, Definition::String { text: t, .. } if t == text))
    }

    #[test]
    fn streaming_forgets_a_retired_definition_once_it_is_written() {
        let mut registry = Registry::default();
        let thread = registry.thread(Some("main"), 1);
        let task = registry.task(Some("request-1"), "hindsight", None, None);
        let lock = lock_named(&mut registry, "cache");
        registry.retire(Entity::Task(task), 10);
        registry.retire(Entity::Lock(lock), 10);
        // Not written yet: the writer must still find them.
        registry.forget_retired(None);
        let written = registry.take_unwritten();
        assert!(written.iter().any(|d| matches!(d, Definition::Task(t) if t.id == task)));
        assert!(written.iter().any(|d| matches!(d, Definition::Lock(l) if l.id == lock)));
        assert_eq!(registry.describe_task(task), "task `request-1`");
        // Written: they go, the live thread stays.
        registry.forget_retired(None);
        assert!(!defines(&registry, |d| matches!(d, Definition::Task(_) | Definition::Lock(_))));
        assert_eq!(registry.describe_task(task), format!("task #{}", task.0));
        assert_eq!(registry.describe_lock(lock), format!("lock #{}", lock.0));
        assert_eq!(registry.describe_thread(thread), "thread `main`");
        // Ids are never reused.
        let next = registry.task(Some("request-2"), "hindsight", None, None);
        assert!(next.0 > task.0);
        assert!(lock_named(&mut registry, "cache").0 > lock.0);
    }

    #[test]
    fn a_flight_recorder_keeps_a_retired_definition_while_a_kept_round_may_use_it() {
        let mut registry = Registry::default();
        let lock = lock_named(&mut registry, "per-connection");
        registry.take_unwritten();
        registry.retire(Entity::Lock(lock), 100);
        // Round 1 drained what was stamped before 50: the lock's events may come later.
        registry.drained(1, 50);
        registry.forget_retired(Some(u64::MAX));
        assert!(defines(&registry, |d| matches!(d, Definition::Lock(_))), "not drained yet");
        // Round 2 drained everything before 150: the lock's events are in rounds 1 to 3.
        registry.drained(2, 150);
        registry.forget_retired(Some(1));
        registry.forget_retired(Some(3));
        assert!(defines(&registry, |d| matches!(d, Definition::Lock(_))), "round 3 is kept");
        assert_eq!(registry.describe_lock(lock), "lock `per-connection`");
        registry.forget_retired(Some(4));
        assert!(!defines(&registry, |d| matches!(d, Definition::Lock(_))), "round 3 is gone");
        assert_eq!(registry.describe_lock(lock), format!("lock #{}", lock.0));
    }

    #[test]
    fn an_entity_retires_when_its_last_party_does() {
        let mut registry = Registry::default();
        let task = registry.task(Some("child"), "hindsight", None, None);
        registry.hold(Entity::Task(task));
        registry.take_unwritten();
        registry.retire(Entity::Task(task), 1);
        registry.forget_retired(None);
        assert_eq!(registry.describe_task(task), "task `child`", "its join handle lives");
        registry.retire(Entity::Task(task), 2);
        registry.forget_retired(None);
        assert_eq!(registry.describe_task(task), format!("task #{}", task.0));
    }

    #[test]
    fn unused_strings_are_forgotten_beyond_the_idle_ones_and_come_back_under_new_ids() {
        let mut registry = Registry::default();
        let kind = registry.string("hindsight"); // a use of its own: stays
        for i in 0..1000 {
            let task = registry.task(Some(&format!("request-{i}")), "hindsight", None, None);
            registry.take_unwritten();
            registry.retire(Entity::Task(task), i);
            registry.forget_retired(None);
            assert!(registry.len() <= IDLE_STRINGS + 1, "{} kept", registry.len());
        }
        assert!(defines_text(&registry, "hindsight"));
        assert!(defines_text(&registry, "request-999"), "recent names wait among the idle");
        assert!(!defines_text(&registry, "request-0"));
        assert_eq!(registry.string("hindsight"), kind, "a string in use keeps its id");
        let again = registry.string("request-0");
        let written = registry.take_unwritten();
        assert_eq!(written, [Definition::String { id: again, text: "request-0".into() }]);
        assert!(again.0 > kind.0 + 1000, "a new id, never a forgotten one");
    }

    #[test]
    fn forgotten_definitions_leave_no_lasting_holes_behind_a_long_lived_one() {
        let mut registry = Registry::default();
        let main = registry.thread(Some("main"), 1);
        for i in 0..10_000 {
            let task = registry.task(None, "task", None, None);
            let written = registry.take_unwritten();
            let first = i == 0;
            assert_eq!(written.len(), if first { 4 } else { 1 }, "the thread and the strings once");
            registry.retire(Entity::Task(task), i);
            registry.forget_retired(None);
            let slots = registry.definitions.entries.len();
            let bound = 2 * registry.len() + Kept::FEW_HOLES + 1;
            assert!(slots <= bound, "{slots} slots for {}", registry.len());
        }
        let kept = registry.all();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(matches!(kept[0], Definition::String { .. }), "in the order they were made");
        assert!(matches!(&kept[1], Definition::Thread(t) if t.id == main));
        assert!(matches!(kept[2], Definition::String { .. }));
    }

    #[test]
    fn a_recurring_name_is_not_defined_again_while_idle() {
        let mut registry = Registry::default();
        let mut ids = Vec::new();
        for i in 0..100 {
            let lock = lock_named(&mut registry, "cache");
            let written = registry.take_unwritten();
            assert_eq!(written.len(), if i == 0 { 2 } else { 1 }, "only the lock, after the first");
            registry.retire(Entity::Lock(lock), i);
            registry.forget_retired(None);
            ids.push(lock);
        }
        ids.dedup();
        assert_eq!(ids.len(), 100, "every lock has an id of its own");
    }

    #[test]
    fn a_label_stays_until_its_round_is_let_go() {
        let mut registry = Registry::default();
        let label = registry.string("hindsight: dump triggered by request: slow");
        registry.take_unwritten();
        registry.retire(Entity::Label(label), 5);
        registry.drained(1, 10);
        registry.forget_retired(Some(2));
        assert!(defines_text(&registry, "hindsight: dump triggered by request: slow"));
        registry.forget_retired(Some(3));
        // Unused now: idle, then forgotten once enough newer strings are.
        for i in 0..IDLE_STRINGS as u64 {
            let id = registry.string(&format!("other-{i}"));
            registry.take_unwritten();
            registry.retire(Entity::Label(id), 20 + i);
        }
        registry.drained(4, u64::MAX);
        registry.forget_retired(Some(6));
        assert!(!defines_text(&registry, "hindsight: dump triggered by request: slow"));
    }

    #[test]
    fn sites_stay_and_keep_their_strings() {
        let mut registry = Registry::default();
        let site = registry.site_by_value("src/main.rs", 3, 4, Some("Mutex::lock"));
        assert_eq!(registry.site_by_value("src/main.rs", 3, 4, Some("Mutex::lock")), site);
        // A task named like the site's file shares its string, which the site keeps.
        let task = registry.task(Some("src/main.rs"), "hindsight", Some(site), None);
        registry.take_unwritten();
        registry.retire(Entity::Task(task), 1);
        registry.forget_retired(None);
        for i in 0..2 * IDLE_STRINGS {
            let id = registry.string(&format!("s{i}"));
            registry.take_unwritten();
            registry.retire(Entity::Label(id), 2);
        }
        registry.forget_retired(None);
        assert!(defines_text(&registry, "src/main.rs"));
        assert!(defines_text(&registry, "Mutex::lock"));
        assert_eq!(registry.site_by_value("src/main.rs", 3, 4, Some("Mutex::lock")), site);
        let lock = registry.lock(
            LockKind::Mutex,
            LockImplementation::HindsightStd,
            true,
            None,
            Some(site),
        );
        assert_eq!(registry.describe_lock(lock), "the lock created at src/main.rs:3:4");
    }

    #[test]
    fn user_defined_locks_with_names_made_at_run_time_are_bounded() {
        let mut registry = Registry::default();
        let held = registry.named_lock("held-forever", None, NamedUse::Acquire, 0);
        let repo = registry.named_lock("repo.lock", None, NamedUse::Acquire, 0);
        registry.named_lock("repo.lock", None, NamedUse::Release, 0);
        for i in 0..20 * NAMED_LOCKS as u64 {
            let name = format!("file-{i}");
            let lock = registry.named_lock(&name, None, NamedUse::Request, i);
            assert_eq!(registry.named_lock(&name, None, NamedUse::Acquire, i), lock);
            assert_eq!(registry.named_lock(&name, None, NamedUse::Release, i), lock);
            if i % 16 == 0 {
                // Used all along: keeps its id.
                let again = registry.named_lock("repo.lock", None, NamedUse::Acquire, i);
                registry.named_lock("repo.lock", None, NamedUse::Release, i);
                assert_eq!(again, repo);
            }
            registry.take_unwritten();
            registry.forget_retired(None);
            assert!(registry.named_locks.len() <= 2 * NAMED_LOCKS);
        }
        assert!(registry.len() < 3 * NAMED_LOCKS + IDLE_STRINGS, "{} kept", registry.len());
        assert_eq!(registry.named_lock("held-forever", None, NamedUse::Release, 0), held);
        // A forgotten name comes back as a new lock of that name.
        let back = registry.named_lock("file-0", None, NamedUse::Acquire, 0);
        assert!(back.0 > held.0 + 2);
        assert_eq!(registry.describe_lock(back), "lock `file-0`");
    }
}
