//! `hindsight info`: what a trace holds, read in one streaming pass without replaying it.

use crate::report::{format_ns, TaskEntry};
use crate::source::{SourceError, TraceSource};
use hindsight_recorder::format::{
    Damage, Definition, EventKind, Header, SiteId, StringId, Tail, Unit,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// At most this many marks are listed; the rest are only counted.
const MAX_LISTED_MARKS: usize = 100;

/// A summary of one trace file.
#[derive(Debug, Clone)]
pub struct TraceInfo {
    /// The file, as given.
    pub path: String,
    /// Its format version.
    pub format_version: u32,
    /// Its header.
    pub header: Header,
    /// Events read.
    pub events: u64,
    /// Events read, by kind (`EventKind::name`).
    pub event_counts: BTreeMap<&'static str, u64>,
    /// Threads defined.
    pub threads: u64,
    /// Tasks defined.
    pub tasks: u64,
    /// Of those, the runtime's own (`block_on`, blocking-pool launches; see
    /// [`TaskEntry::is_runtime_internal`](crate::report::TaskEntry::is_runtime_internal)).
    pub runtime_tasks: u64,
    /// Locks defined.
    pub locks: u64,
    /// Lock definitions, by implementation (`LockImplementation::name`).
    pub lock_implementations: BTreeMap<&'static str, u64>,
    /// Variables defined.
    pub variables: u64,
    /// Channels defined.
    pub channels: u64,
    /// Sites defined.
    pub sites: u64,
    /// Time from the first event to the last event or watermark (a hung program's recorder
    /// goes on writing watermarks after its last event), as `analyze` counts it.
    pub duration_ns: u64,
    /// Bytes of an incomplete or unreadable tail.
    pub truncated_bytes: u64,
    /// Why reading stopped early, if the tail was corrupt rather than cut.
    pub corruption: Option<String>,
    /// Events the recorder counted as lost (the sum of its gap markers).
    pub dropped_events: u64,
    /// Regions of the file that were damaged and skipped.
    pub damage: Vec<Damage>,
    /// The first marks, in file order: (time, label).
    pub marks: Vec<(u64, String)>,
}

impl TraceInfo {
    /// Reads the whole trace at `path`. A truncated or partly corrupt file still gives a
    /// summary of what could be read; only a file that is not a readable trace is an error.
    /// STD text traces are read too; a malformed line in one is an error.
    pub fn read(path: &Path) -> Result<TraceInfo, SourceError> {
        let mut reader = TraceSource::open(path)?;
        let mut info = TraceInfo {
            path: path.display().to_string(),
            format_version: reader.format_version(),
            header: reader.header().clone(),
            events: 0,
            event_counts: BTreeMap::new(),
            threads: 0,
            tasks: 0,
            runtime_tasks: 0,
            locks: 0,
            lock_implementations: BTreeMap::new(),
            variables: 0,
            channels: 0,
            sites: 0,
            duration_ns: 0,
            truncated_bytes: 0,
            corruption: None,
            dropped_events: 0,
            damage: Vec::new(),
            marks: Vec::new(),
        };
        let mut strings: HashMap<StringId, String> = HashMap::new();
        // Told apart at the end, once every name and file they use is known.
        let mut tasks = TaskKinds::default();
        let mut pending_marks: Vec<(u64, StringId)> = Vec::new();
        let mut first_time = u64::MAX;
        let mut last_time = 0;
        let mut events = Vec::new();
        while let Some(unit) = reader.next_into(&mut events) {
            match unit? {
                Unit::Definitions(definitions) => {
                    for definition in definitions {
                        tasks.note(&definition);
                        info.count_definition(definition, &mut strings);
                    }
                }
                Unit::Events => {
                    for event in events.drain(..) {
                        info.events += 1;
                        *info.event_counts.entry(event.kind.name()).or_default() += 1;
                        first_time = first_time.min(event.time_ns);
                        last_time = last_time.max(event.time_ns);
                        match event.kind {
                            EventKind::Gap { dropped } => {
                                info.dropped_events = info.dropped_events.saturating_add(dropped)
                            }
                            EventKind::Mark { label, .. }
                                if pending_marks.len() < MAX_LISTED_MARKS =>
                            {
                                pending_marks.push((event.time_ns, label))
                            }
                            _ => {}
                        }
                    }
                }
                // A hung program's last events come long before its end: the recorder's
                // watermarks keep moving (as they extend `analyze`'s span too).
                Unit::Watermark { time_ns } => last_time = last_time.max(time_ns),
                // Listed with the damaged regions that lost them.
                Unit::Lost { .. } => {}
            }
        }
        if info.events > 0 {
            info.duration_ns = last_time.saturating_sub(first_time);
        }
        let tail = reader.tail();
        info.truncated_bytes = tail.unread_bytes();
        info.damage = reader.damage().to_vec();
        if let Tail::Corrupt { offset, reason, .. } = tail {
            info.corruption = Some(format!("at byte {offset}: {reason}"));
        }
        info.runtime_tasks = tasks.runtime_internal(&strings);
        info.marks = pending_marks
            .into_iter()
            .map(|(time, label)| {
                let text = strings.get(&label).cloned().unwrap_or_else(|| format!("{label}"));
                (time, text)
            })
            .collect();
        Ok(info)
    }

    fn count_definition(
        &mut self,
        definition: Definition,
        strings: &mut HashMap<StringId, String>,
    ) {
        match definition {
            Definition::String { id, text } => {
                strings.insert(id, text);
            }
            Definition::Site(_) => self.sites += 1,
            Definition::Thread(_) => self.threads += 1,
            Definition::Task(_) => self.tasks += 1,
            Definition::Lock(lock) => {
                self.locks += 1;
                *self.lock_implementations.entry(lock.implementation.name()).or_default() += 1;
            }
            Definition::Variable(_) => self.variables += 1,
            Definition::Channel(_) => self.channels += 1,
        }
    }

    /// The summary as `info --format json`'s object (field names are a contract).
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "format_version": self.format_version,
            "program": self.header.program,
            "pid": self.header.pid,
            "host": self.header.host,
            "start_unix_ns": self.header.start_unix_ns,
            "recorder_version": self.header.recorder_version,
            "clock": self.header.clock,
            "events": self.events,
            "event_counts": self.event_counts,
            "threads": self.threads,
            "tasks": self.tasks,
            "runtime_tasks": self.runtime_tasks,
            "locks": self.locks,
            "lock_implementations": self.lock_implementations,
            "variables": self.variables,
            "channels": self.channels,
            "sites": self.sites,
            "duration_ns": self.duration_ns,
            "truncated_bytes": self.truncated_bytes,
            "corruption": self.corruption,
            "dropped_events": self.dropped_events,
            "damaged": !self.damage.is_empty(),
            "damaged_regions": self.damage.iter().map(|d| json!({
                "offset": d.offset,
                "bytes": d.bytes,
                "recovered_bytes": d.recovered_bytes,
                "events_lost": d.events,
                "threads": d.threads.iter().map(|t| t.0).collect::<Vec<_>>(),
                "reason": d.reason,
            })).collect::<Vec<_>>(),
            "marks": self.marks.iter().map(|(time_ns, label)| json!({"time_ns": time_ns, "label": label})).collect::<Vec<_>>(),
        })
    }

    /// [`render_text`](Self::render_text) with its labels in bold, for a terminal.
    pub fn render_text_coloured(&self) -> String {
        let bold = anstyle::Style::new().bold();
        let mut out = String::new();
        for line in self.render_text().lines() {
            // A label starts each line that is not indented; the rest has no escape codes of
            // ours, and the trace's were escaped by render_text.
            let (label, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
            if label.is_empty() {
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "{}{label}{}{rest}", bold.render(), bold.render_reset());
            }
        }
        out
    }

    /// The summary as text for people, with the trace's strings made
    /// [`terminal_safe`](crate::report::text::terminal_safe).
    pub fn render_text(&self) -> String {
        let safe = crate::report::text::terminal_safe;
        let mut out = String::new();
        if !self.damage.is_empty() {
            let bytes: u64 = self.damage.iter().map(|d| d.bytes).sum();
            let events: u64 = self.damage.iter().map(|d| d.events).sum();
            let _ = writeln!(
                out,
                "DAMAGED TRACE: {} damaged region(s) skipped ({bytes} bytes, about {events} events \
                 lost)",
                self.damage.len()
            );
            for d in &self.damage {
                let threads: Vec<String> = d.threads.iter().map(|t| format!("#{}", t.0)).collect();
                let threads = if threads.is_empty() {
                    String::new()
                } else {
                    format!("; events of threads {} lost", threads.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  at offset {}: {} bytes ({}){threads}",
                    d.offset, d.bytes, d.reason
                );
            }
        }
        let h = &self.header;
        let format = match self.format_version {
            0 => "RAPID STD text".to_owned(),
            version => format!("format v{version}"),
        };
        let _ = writeln!(out, "trace      {} ({format})", safe(&self.path));
        let _ =
            writeln!(out, "program    {} (pid {}) on {}", safe(&h.program), h.pid, safe(&h.host));
        let _ =
            writeln!(out, "recorded   by {}, clock {}", safe(&h.recorder_version), safe(&h.clock));
        let _ = writeln!(out, "started    {} ns since the Unix epoch", h.start_unix_ns);
        let _ = writeln!(out, "duration   {}", format_ns(self.duration_ns));
        let _ = writeln!(
            out,
            "entities   {} threads, {} tasks{}, {} locks, {} variables, {} channels, {} sites",
            self.threads,
            self.tasks,
            match self.runtime_tasks {
                0 => String::new(),
                n => format!(" ({n} of them the runtime's own)"),
            },
            self.locks,
            self.variables,
            self.channels,
            self.sites
        );
        if !self.lock_implementations.is_empty() {
            let by: Vec<_> =
                self.lock_implementations.iter().map(|(name, n)| format!("{n} {name}")).collect();
            let _ = writeln!(out, "locks      {}", by.join(", "));
        }
        let _ = writeln!(out, "events     {}", self.events);
        for (kind, count) in &self.event_counts {
            let _ = writeln!(out, "  {kind:<22} {count}");
        }
        let _ =
            writeln!(out, "dropped    {} events (recorder buffer overflow)", self.dropped_events);
        match &self.corruption {
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "unreadable {} bytes: corrupt {}",
                    self.truncated_bytes,
                    safe(reason)
                );
            }
            None if self.truncated_bytes > 0 => {
                let _ = writeln!(
                    out,
                    "truncated  {} bytes of an incomplete last chunk",
                    self.truncated_bytes
                );
            }
            None => {}
        }
        if !self.marks.is_empty() {
            let _ = writeln!(out, "marks");
            for (time, label) in &self.marks {
                let _ = writeln!(out, "  {:>12}  {}", format_ns(*time), safe(label));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::{
        Definition, Event, StringId, ThreadDef, ThreadId, TraceWriter,
    };

    /// A program that hangs after two events, while its recorder writes watermarks for 5 ms
    /// more: its duration runs to the last watermark.
    #[test]
    fn the_duration_of_a_hung_trace_runs_to_its_last_watermark() {
        let path =
            std::env::temp_dir().join(format!("hindsight-info-{}.trace", std::process::id()));
        let file = std::fs::File::create(&path).expect("a temporary file");
        let mut writer = TraceWriter::new(file, &Header::default()).expect("a header");
        let thread = ThreadDef { id: ThreadId(0), name: Some(StringId(0)), os_id: 1 };
        let definitions = [
            Definition::String { id: StringId(0), text: "main".into() },
            Definition::Thread(thread),
        ];
        writer.write_definitions(&definitions).expect("definitions");
        let event = |time_ns| Event {
            time_ns,
            thread: ThreadId(0),
            task: None,
            kind: EventKind::PollStarted,
        };
        writer.write_events(&[event(1_000), event(2_000)]).expect("events");
        writer.write_watermark(3_000).expect("a watermark");
        writer.write_watermark(5_001_000).expect("a watermark");
        writer.flush().expect("flushed");
        let info = TraceInfo::read(&path).expect("read");
        std::fs::remove_file(&path).expect("removed");
        assert_eq!(info.events, 2);
        assert_eq!(info.duration_ns, 5_000_000);
    }
}

/// What `info` keeps of task and site definitions to tell the runtime's own tasks apart.
#[derive(Debug, Default)]
struct TaskKinds {
    /// Each site's file.
    files: HashMap<SiteId, StringId>,
    /// Each task's kind and spawn site.
    tasks: Vec<(Option<StringId>, Option<SiteId>)>,
}

impl TaskKinds {
    fn note(&mut self, definition: &Definition) {
        match definition {
            Definition::Site(site) => {
                self.files.insert(site.id, site.file);
            }
            Definition::Task(task) => self.tasks.push((task.kind, task.spawn_site)),
            _ => {}
        }
    }

    /// How many of the tasks are the runtime's own.
    fn runtime_internal(&self, strings: &HashMap<StringId, String>) -> u64 {
        let text = |id: &StringId| strings.get(id).map(String::as_str);
        let count = self.tasks.iter().filter(|(kind, site)| {
            let file = site.and_then(|s| self.files.get(&s)).and_then(text);
            let file = file.map(hindsight_recorder::paths::readable);
            TaskEntry::is_runtime_internal(kind.as_ref().and_then(text), file)
        });
        count.count() as u64
    }
}
