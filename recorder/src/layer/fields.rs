//! Reading the fields of tokio's spans and events, and of the lock convention's events,
//! without allocating for the usual (short) values: one visitor for each, so that an event
//! of tokio's fills in a few numbers and flags and nothing else.

use std::fmt::{self, Write};
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

/// A string field's value: kept inline up to `N` bytes, on the heap beyond.
#[derive(Clone)]
pub(crate) struct Text<const N: usize> {
    len: usize,
    inline: [u8; N],
    heap: Option<String>,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text { len: 0, inline: [0; N], heap: None }
    }
}

impl<const N: usize> Text<N> {
    /// The value.
    pub(crate) fn as_str(&self) -> &str {
        match &self.heap {
            Some(heap) => heap,
            // Only whole `&str`s are copied in, so the bytes are UTF-8.
            None => std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default(),
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.heap = None;
    }

    fn set(&mut self, value: &str) {
        self.clear();
        let _ = self.write_str(value);
    }

    fn set_debug(&mut self, value: &dyn fmt::Debug) {
        self.clear();
        let _ = write!(self, "{value:?}");
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(heap) = &mut self.heap {
            heap.push_str(s);
        } else if let Some(room) = self.inline.get_mut(self.len..self.len + s.len()) {
            room.copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut heap = String::with_capacity(self.len + s.len());
            heap.push_str(self.as_str());
            heap.push_str(s);
            self.heap = Some(heap);
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A short name (a kind, a type, an operation).
pub(crate) type Name = Text<32>;
/// A path or a user-given name.
pub(crate) type Long = Text<128>;

/// A waker event's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakerOp {
    /// `waker.wake`
    Wake,
    /// `waker.wake_by_ref`
    WakeByRef,
    /// `waker.clone` or `waker.drop`: nothing the recorder reads.
    CloneOrDrop,
}

/// The fields of tokio's events: numbers and flags only, nothing to allocate or drop.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EventFields {
    /// `task.id` of a waker event (the task span's id).
    pub(crate) task_id: Option<u64>,
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
    /// `permits_requested` of an async op state update (made as the op is created).
    pub(crate) permits_requested: Option<u64>,
    /// `permits.op`.
    pub(crate) permits_op: Option<Change>,
    /// `is_ready` of a poll op event.
    pub(crate) is_ready: Option<bool>,
    /// `op` of a waker event.
    pub(crate) waker_op: Option<WakerOp>,
}

impl Visit for EventFields {
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "current_readers.op" => self.readers_op = Change::parse(value),
            "permits.op" => self.permits_op = Change::parse(value),
            "op" => {
                self.waker_op = match value {
                    "waker.wake" => Some(WakerOp::Wake),
                    "waker.wake_by_ref" => Some(WakerOp::WakeByRef),
                    "waker.clone" | "waker.drop" => Some(WakerOp::CloneOrDrop),
                    _ => None,
                }
            }
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "task.id" => self.task_id = Some(value),
            "permits" => self.permits = Some(value),
            "permits_obtained" => self.permits_obtained = Some(value),
            "permits_requested" => self.permits_requested = Some(value),
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
            "locked" => self.locked = Some(value),
            "write_locked" => self.write_locked = Some(value),
            "is_ready" => self.is_ready = Some(value),
            _ => {}
        }
    }
}

/// The fields of tokio's task, resource and async op spans.
#[derive(Debug, Default)]
pub(crate) struct SpanFields {
    /// `task.name` of a task span.
    pub(crate) task_name: Option<Long>,
    /// `kind` of a task span.
    pub(crate) kind: Option<Name>,
    /// `task.id` of a task span (tokio's task id).
    pub(crate) task_id: Option<u64>,
    /// `loc.file`.
    pub(crate) file: Option<Long>,
    /// `loc.line`.
    pub(crate) line: Option<u32>,
    /// `loc.col`.
    pub(crate) col: Option<u32>,
    /// `concrete_type` of a resource span.
    pub(crate) concrete_type: Option<Name>,
    /// `is_internal` of a resource span.
    pub(crate) is_internal: bool,
    /// `source` of an async op span.
    pub(crate) source: Option<Name>,
}

fn set<const N: usize>(slot: &mut Option<Text<N>>, value: &str) {
    slot.get_or_insert_with(Text::default).set(value);
}

fn set_debug<const N: usize>(slot: &mut Option<Text<N>>, value: &dyn fmt::Debug) {
    slot.get_or_insert_with(Text::default).set_debug(value);
}

impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "task.name" => set_debug(&mut self.task_name, value),
            "kind" => set_debug(&mut self.kind, value),
            "concrete_type" => set_debug(&mut self.concrete_type, value),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "task.name" => set(&mut self.task_name, value),
            "kind" => set(&mut self.kind, value),
            "loc.file" => set(&mut self.file, value),
            "concrete_type" => set(&mut self.concrete_type, value),
            "source" => set(&mut self.source, value),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "task.id" => self.task_id = Some(value),
            "loc.line" => self.line = u32::try_from(value).ok(),
            "loc.col" => self.col = u32::try_from(value).ok(),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "is_internal" {
            self.is_internal = value;
        }
    }
}

/// The fields of a lock convention event.
#[derive(Debug, Default)]
pub(crate) struct ConventionFields {
    /// `op`.
    pub(crate) op: Option<Name>,
    /// `lock.name`.
    pub(crate) lock_name: Option<Long>,
    /// `mode`.
    pub(crate) mode: Option<Name>,
}

impl Visit for ConventionFields {
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "op" => set(&mut self.op, value),
            "lock.name" => set(&mut self.lock_name, value),
            "mode" => set(&mut self.mode, value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_short_values_inline_and_long_ones_whole() {
        let mut short = Name::default();
        short.set("Mutex::lock");
        assert_eq!(short.as_str(), "Mutex::lock");
        assert!(short.heap.is_none());
        let long = "é".repeat(40);
        let mut text = Name::default();
        text.set(&long);
        assert_eq!(text.as_str(), long);
        let mut debug = Name::default();
        debug.set_debug(&format_args!("{}", "block_on"));
        assert_eq!(debug.as_str(), "block_on");
    }
}
