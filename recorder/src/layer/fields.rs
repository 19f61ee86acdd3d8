//! Reading the fields of tokio's spans and events, and of the lock convention's events.

use std::fmt;
use tracing::field::{Field, Visit};

/// A change announced by a `*.op` field of a tokio state update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `"add"`
    Add,
    /// `"sub"`
    Sub,
    /// `"override"`
    Override,
}

impl Change {
    fn parse(value: &str) -> Option<Change> {
        match value {
            "add" => Some(Change::Add),
            "sub" => Some(Change::Sub),
            "override" => Some(Change::Override),
            _ => None,
        }
    }
}

/// Every field the recorder reads, from whichever span or event.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// `task.name` of a task span.
    pub(crate) task_name: Option<String>,
    /// `kind` of a task span.
    pub(crate) kind: Option<String>,
    /// `task.id` of a task span (tokio's task id) or of a waker event (the span's id).
    pub(crate) task_id: Option<u64>,
    /// `loc.file`.
    pub(crate) file: Option<String>,
    /// `loc.line`.
    pub(crate) line: Option<u32>,
    /// `loc.col`.
    pub(crate) col: Option<u32>,
    /// `concrete_type` of a resource span.
    pub(crate) concrete_type: Option<String>,
    /// `is_internal` of a resource span.
    pub(crate) is_internal: bool,
    /// `source` of an async op span.
    pub(crate) source: Option<String>,
    /// `locked` of a mutex state update.
    pub(crate) locked: Option<bool>,
    /// `write_locked` of a rwlock state update.
    pub(crate) write_locked: Option<bool>,
    /// `current_readers.op` of a rwlock state update.
    pub(crate) readers_op: Option<Change>,
    /// `permits` of a semaphore state update.
    pub(crate) permits: Option<u64>,
    /// `permits_obtained` of an async op state update.
    pub(crate) permits_obtained: Option<u64>,
    /// `permits.op`.
    pub(crate) permits_op: Option<Change>,
    /// `is_ready` of a poll op event.
    pub(crate) is_ready: Option<bool>,
    /// `op` of a waker event or of a lock convention event.
    pub(crate) op: Option<String>,
    /// `lock.name` of a lock convention event.
    pub(crate) lock_name: Option<String>,
    /// `mode` of a lock convention event.
    pub(crate) mode: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "task.name" => self.task_name = Some(format!("{value:?}")),
            "kind" => self.kind = Some(format!("{value:?}")),
            "concrete_type" => self.concrete_type = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "task.name" => self.task_name = Some(value.to_owned()),
            "kind" => self.kind = Some(value.to_owned()),
            "loc.file" => self.file = Some(value.to_owned()),
            "concrete_type" => self.concrete_type = Some(value.to_owned()),
            "source" => self.source = Some(value.to_owned()),
            "current_readers.op" => self.readers_op = Change::parse(value),
            "permits.op" => self.permits_op = Change::parse(value),
            "op" => self.op = Some(value.to_owned()),
            "lock.name" => self.lock_name = Some(value.to_owned()),
            "mode" => self.mode = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "task.id" => self.task_id = Some(value),
            "loc.line" => self.line = u32::try_from(value).ok(),
            "loc.col" => self.col = u32::try_from(value).ok(),
            "permits" => self.permits = Some(value),
            "permits_obtained" => self.permits_obtained = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "is_internal" => self.is_internal = value,
            "locked" => self.locked = Some(value),
            "write_locked" => self.write_locked = Some(value),
            "is_ready" => self.is_ready = Some(value),
            _ => {}
        }
    }
}
