//! Definitions: the meaning of every id a session hands out.
//!
//! The registry keeps *all* definitions of the session in memory, in the order they were
//! made, and remembers how many the writer has already written. Ids are assigned here, by the
//! recorder (never tokio's span ids, which are reused). A definition is always made before
//! its id is handed to anyone, so an event can only carry ids that are already here; the
//! writer takes the definitions *after* draining events, which puts every definition in the
//! file before the events that use it. Keeping everything (rather than what is unwritten)
//! lets a later flight-recorder dump rewrite all definitions into a self-contained file.
//!
//! The registry's lock is taken only when something new is defined (a thread, a task, a lock,
//! the first sight of a source site), never per event.

use crate::format::{
    ChannelDef, ChannelId, Definition, LockDef, LockId, LockKind, SiteDef, SiteId, StringId,
    TaskDef, TaskId, ThreadDef, ThreadId, VarDef, VarId,
};
use std::collections::HashMap;

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

/// The definitions of one session.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    definitions: Vec<Definition>,
    written: usize,
    strings: HashMap<String, StringId>,
    sites: HashMap<usize, SiteId>,
    /// Sites made from (file, line, col, function) rather than a `'static` address.
    sites_by_value: HashMap<(StringId, u32, u32, Option<StringId>), SiteId>,
    /// User-defined locks, identified by name.
    named_locks: HashMap<String, LockId>,
    threads: u32,
    tasks: u32,
    locks: u32,
    site_count: u32,
    variables: u32,
    channels: u32,
}

impl Registry {
    /// Interns `text`.
    pub(crate) fn string(&mut self, text: &str) -> StringId {
        if let Some(id) = self.strings.get(text) {
            return *id;
        }
        let id = StringId(self.strings.len() as u32);
        self.strings.insert(text.to_owned(), id);
        self.definitions.push(Definition::String { id, text: text.to_owned() });
        id
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
        let file = self.string(file);
        let function = function.map(|f| self.string(f));
        let key = (file, line, col, function);
        if let Some(id) = self.sites_by_value.get(&key) {
            return *id;
        }
        let id = SiteId(self.site_count);
        self.site_count += 1;
        self.sites_by_value.insert(key, id);
        self.definitions.push(Definition::Site(SiteDef { id, file, line, col, function }));
        id
    }

    /// Defines a thread.
    pub(crate) fn thread(&mut self, name: Option<&str>, os_id: u64) -> ThreadId {
        let id = ThreadId(self.threads);
        self.threads += 1;
        let name = name.map(|n| self.string(n));
        self.definitions.push(Definition::Thread(ThreadDef { id, name, os_id }));
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
        self.tasks += 1;
        let name = name.filter(|n| !n.is_empty()).map(|n| self.string(n));
        let kind = Some(self.string(kind));
        self.definitions.push(Definition::Task(TaskDef { id, name, kind, spawn_site, runtime_id }));
        id
    }

    /// Defines a lock instance.
    pub(crate) fn lock(
        &mut self,
        kind: LockKind,
        blocking: bool,
        name: Option<&str>,
        site: Option<SiteId>,
    ) -> LockId {
        let id = LockId(self.locks);
        self.locks += 1;
        let name = name.map(|n| self.string(n));
        self.definitions.push(Definition::Lock(LockDef { id, kind, blocking, name, site }));
        id
    }

    /// Defines an annotated variable or synchronisation object (see [`crate::annotate`]).
    pub(crate) fn variable(&mut self, name: &str, site: Option<SiteId>) -> VarId {
        let id = VarId(self.variables);
        self.variables += 1;
        let name = self.string(name);
        self.definitions.push(Definition::Variable(VarDef { id, name, site }));
        id
    }

    /// Defines a recorded channel (see [`crate::channel`]).
    pub(crate) fn channel(&mut self, name: Option<&str>, site: Option<SiteId>) -> ChannelId {
        let id = ChannelId(self.channels);
        self.channels += 1;
        let name = name.map(|n| self.string(n));
        self.definitions.push(Definition::Channel(ChannelDef { id, name, site }));
        id
    }

    /// The lock named `name` (a user-defined lock of the tracing convention), defined on
    /// first sight: locks are identified by their name.
    pub(crate) fn named_lock(&mut self, name: &str, site: Option<SiteId>) -> LockId {
        if let Some(id) = self.named_locks.get(name) {
            return *id;
        }
        let id = self.lock(LockKind::Custom, true, Some(name), site);
        self.named_locks.insert(name.to_owned(), id);
        id
    }

    /// Definitions made since the last call.
    pub(crate) fn take_unwritten(&mut self) -> Vec<Definition> {
        let new = self.definitions[self.written..].to_vec();
        self.written = self.definitions.len();
        new
    }

    /// Every definition made so far, in order: what makes a dump self-contained.
    pub(crate) fn all(&self) -> Vec<Definition> {
        self.definitions.clone()
    }

    // === names for people (the watchdog's labels; slow, rare) ===

    fn text(&self, id: StringId) -> Option<&str> {
        self.definitions.iter().find_map(|d| match d {
            Definition::String { id: i, text } if *i == id => Some(text.as_str()),
            _ => None,
        })
    }

    /// The thread in words: its name in backquotes, or `thread #3` if it has none.
    pub(crate) fn describe_thread(&self, id: ThreadId) -> String {
        let name = self.definitions.iter().find_map(|d| match d {
            Definition::Thread(t) if t.id == id => t.name.and_then(|n| self.text(n)),
            _ => None,
        });
        name.map_or_else(|| format!("thread #{}", id.0), |name| format!("thread `{name}`"))
    }

    /// The task in words: its name in backquotes, or `task #3` if it has none.
    pub(crate) fn describe_task(&self, id: TaskId) -> String {
        let name = self.definitions.iter().find_map(|d| match d {
            Definition::Task(t) if t.id == id => t.name.and_then(|n| self.text(n)),
            _ => None,
        });
        name.map_or_else(|| format!("task #{}", id.0), |name| format!("task `{name}`"))
    }

    /// The lock in words: its name in backquotes, or `the lock created at FILE:LINE:COL`.
    pub(crate) fn describe_lock(&self, id: LockId) -> String {
        let Some(lock) = self.definitions.iter().find_map(|d| match d {
            Definition::Lock(l) if l.id == id => Some(l),
            _ => None,
        }) else {
            return format!("lock #{}", id.0);
        };
        if let Some(name) = lock.name.and_then(|n| self.text(n)) {
            return format!("lock `{name}`");
        }
        let site = lock.site.and_then(|site| {
            self.definitions.iter().find_map(|d| match d {
                Definition::Site(s) if s.id == site => {
                    Some(format!("{}:{}:{}", self.text(s.file)?, s.line, s.col))
                }
                _ => None,
            })
        });
        site.map_or_else(|| format!("lock #{}", id.0), |at| format!("the lock created at {at}"))
    }
}
