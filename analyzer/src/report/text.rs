//! The text form of a report, for a person at a terminal: what was analysed, then the
//! findings grouped by severity, each with its evidence and a hint how to fix it, then a
//! count.
//!
//! Every line goes through [`terminal_safe`]: names, paths and marks come from the trace, and
//! a trace may hold anything, escape sequences included. [`render_coloured`] adds colour to
//! severities, lock names and sites after that, so only our own escape codes are printed.

use super::{counted, format_ns, Finding, LockEntry, Report, Severity, TaskEntry};
use anstyle::{AnsiColor, Style};
use std::borrow::Cow;
use std::fmt::Write;

/// The style of a severity: its heading and its findings' `error[kind]`.
fn severity_style(severity: Severity) -> Style {
    let colour = match severity {
        Severity::Error => AnsiColor::Red,
        Severity::Warning => AnsiColor::Yellow,
        Severity::Info => AnsiColor::Blue,
    };
    Style::new().fg_color(Some(colour.into())).bold()
}

/// The style of a lock's name in a finding.
const LOCK_STYLE: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Magenta)));

/// The style of a site (`file:line:col`) in a finding.
const SITE_STYLE: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));

/// `text` made safe to print on a terminal: control characters (ESC, newlines, carriage
/// returns, C1 controls) and the invisible bidirectional-text controls are shown escaped as
/// `\u{1b}`, so that a string from a trace cannot move the cursor, recolour the terminal or
/// disguise what is printed. Everything else is kept as it is.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(safe, "{}", c.escape_unicode());
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// Whether printing `c` raw could change what a terminal shows beyond the character itself.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The report as text, with a final newline.
pub fn render(report: &Report) -> String {
    render_text(report, false)
}

/// The report as text in colour (ANSI escape codes), for a terminal: severities, lock names
/// and sites stand out. The same text as [`render`] without the escape codes.
pub fn render_coloured(report: &Report) -> String {
    render_text(report, true)
}

fn render_text(report: &Report, colour: bool) -> String {
    let mut out = Lines { text: String::new(), colour };
    header(&mut out, report);
    for severity in [Severity::Error, Severity::Warning, Severity::Info] {
        let group: Vec<&Finding> =
            report.findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        let heading = match severity {
            Severity::Error => "Errors",
            Severity::Warning => "Warnings",
            Severity::Info => "Info",
        };
        out.blank();
        let heading = format!("{heading} ({}):", group.len());
        out.styled_line(&heading, &[(&heading, severity_style(severity))]);
        for finding in group {
            out.blank();
            finding_text(&mut out, finding, &report.tasks);
        }
    }
    lock_table(&mut out, report);
    let (errors, warnings, infos) = report.counts();
    out.blank();
    out.line(&format!(
        "{}, {}, {infos} info",
        counted(errors as u64, "error", "errors"),
        counted(warnings as u64, "warning", "warnings"),
    ));
    out.text
}

/// Locks listed in the text report's table, at most.
const TABLE_LOCKS: usize = 5;

/// The locks that made their users wait longest, as a small table (every lock's full
/// statistics are in the JSON report and the TUI's Locks view).
fn lock_table(out: &mut Lines, report: &Report) {
    let mut locks: Vec<&LockEntry> = report.locks.iter().filter(|l| l.acquisitions > 0).collect();
    if locks.is_empty() {
        return;
    }
    locks.sort_by(|a, b| {
        (b.wait.total_ns, b.acquisitions)
            .cmp(&(a.wait.total_ns, a.acquisitions))
            .then_with(|| a.name.cmp(&b.name))
    });
    locks.truncate(TABLE_LOCKS);
    let names: Vec<String> = locks.iter().map(|l| format!("`{}`", l.name)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(4);
    out.blank();
    let shown = if locks.len() < report.locks.len() {
        format!("the {} of {} that waited longest", locks.len(), report.locks.len())
    } else {
        "by total wait".to_owned()
    };
    out.line(&format!("Locks ({shown}):"));
    out.line(&format!(
        "  {:<width$}  {:>8}  {:>9}  {:>10}  {:>10}  {:>10}  {:>10}",
        "lock", "acquired", "contended", "wait total", "wait p99", "wait max", "hold max"
    ));
    for (lock, name) in locks.iter().zip(&names) {
        let padding = width - name.chars().count();
        out.styled_line(
            &format!(
                "  {name}{:padding$}  {:>8}  {:>9}  {:>10}  {:>10}  {:>10}  {:>10}",
                "",
                lock.acquisitions,
                lock.contended,
                format_ns(lock.wait.total_ns),
                format_ns(lock.wait.p99_ns),
                format_ns(lock.wait.max_ns),
                format_ns(lock.hold.max_ns),
            ),
            &[(name.as_str(), LOCK_STYLE)],
        );
    }
}

/// The text being rendered, a line at a time, each made [`terminal_safe`].
struct Lines {
    text: String,
    /// Whether [`styled_line`](Self::styled_line) colours.
    colour: bool,
}

impl Lines {
    /// Appends `line` and a newline; a newline inside `line` is shown escaped.
    fn line(&mut self, line: &str) {
        self.styled_line(line, &[]);
    }

    /// Appends `line` and a newline, with each occurrence of a `needle` in its style when
    /// colouring. A site needle matches only where no digit follows (`a.rs:1:2` is not part
    /// of `a.rs:1:23`).
    fn styled_line(&mut self, line: &str, needles: &[(&str, Style)]) {
        let safe = terminal_safe(line);
        if !self.colour || needles.is_empty() {
            self.text.push_str(&safe);
            self.text.push('\n');
            return;
        }
        let mut spans: Vec<(usize, usize, Style)> = Vec::new();
        for &(needle, style) in needles {
            let needle = terminal_safe(needle);
            if needle.is_empty() {
                continue;
            }
            for (start, _) in safe.match_indices(needle.as_ref()) {
                let end = start + needle.len();
                if !safe[end..].starts_with(|c: char| c.is_ascii_digit()) {
                    spans.push((start, end, style));
                }
            }
        }
        spans.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut at = 0;
        for (start, end, style) in spans {
            if start < at {
                continue; // overlaps a span already styled
            }
            let _ = write!(
                self.text,
                "{}{}{}{}",
                &safe[at..start],
                style.render(),
                &safe[start..end],
                style.render_reset()
            );
            at = end;
        }
        self.text.push_str(&safe[at..]);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }
}

fn header(out: &mut Lines, report: &Report) {
    let trace = &report.trace;
    damage_note(out, report);
    for file in &trace.files {
        let pid = if file.pid == 0 { String::new() } else { format!(" (pid {})", file.pid) };
        let host = if file.host.is_empty() { String::new() } else { format!(" on {}", file.host) };
        out.line(&format!("{}: {}{pid}{host}, {} events", file.path, file.program, file.events));
        if let Some(reason) = &file.corrupt {
            out.line(&format!(
                "  note: reading stopped at a corrupt chunk ({reason}); {} bytes were not read",
                file.truncated_bytes
            ));
        } else if file.truncated_bytes > 0 {
            out.line(&format!(
                "  note: the file ends inside a chunk; its last {} bytes were not read",
                file.truncated_bytes
            ));
        }
        if file.dropped_events > 0 {
            out.line(&format!(
                "  note: the recorder lost {} events; findings may miss what they did",
                file.dropped_events
            ));
        }
    }
    out.line(&format!(
        "analysed {} over {} (t={} to {}): {}, {}, {}",
        counted(trace.events, "event", "events"),
        format_ns(trace.duration_ns),
        format_ns(trace.start_ns),
        format_ns(trace.start_ns + trace.duration_ns),
        counted(trace.threads.len() as u64, "thread", "threads"),
        tasks_text(&report.tasks),
        counted(report.locks.len() as u64, "lock", "locks"),
    ));
    if trace.forced_reorders > 0 || trace.replay_conflicts > 0 {
        out.line(&format!(
            "  note: {} lock events had to be replayed without their predecessors and {} \
             acquisitions overlapped another holder: the trace is incomplete",
            trace.forced_reorders, trace.replay_conflicts
        ));
    }
}

/// How many tasks the program had, and how many more the runtime had of its own.
fn tasks_text(tasks: &[TaskEntry]) -> String {
    let internal = tasks.iter().filter(|task| task.runtime).count() as u64;
    let program = counted(tasks.len() as u64 - internal, "task", "tasks");
    match internal {
        0 => program,
        n => format!("{program} (and {n} of the runtime's own)"),
    }
}

fn finding_text(out: &mut Lines, finding: &Finding, tasks: &[TaskEntry]) {
    let tag = format!("{}[{}]", finding.severity, finding.kind);
    let locks: Vec<String> = finding.locks.iter().map(|lock| format!("`{lock}`")).collect();
    let sites: Vec<String> = finding.sites.iter().map(|site| site.to_string()).collect();
    let mut needles: Vec<(&str, Style)> = vec![(&tag, severity_style(finding.severity))];
    needles.extend(locks.iter().map(|lock| (lock.as_str(), LOCK_STYLE)));
    needles.extend(sites.iter().map(|site| (site.as_str(), SITE_STYLE)));
    out.styled_line(&format!("{tag}: {}", finding.title), &needles);
    let mut actors: Vec<String> = finding.threads.iter().map(|t| format!("`{t}`")).collect();
    let label = if finding.tasks.is_empty() { "threads" } else { "threads/tasks" };
    actors.extend(finding.tasks.iter().map(|t| task_text(t, tasks)));
    if !actors.is_empty() {
        out.line(&format!("  at t={}; {label}: {}", format_ns(finding.time_ns), actors.join(", ")));
    }
    for line in &finding.evidence {
        out.styled_line(&format!("  - {line}"), &needles[1..]);
    }
    if let Some(help) = &finding.help {
        out.styled_line(&format!("  help: {help}"), &needles[1..]);
    }
}

/// Says first, before anything else, which files are damaged and what was lost.
fn damage_note(out: &mut Lines, report: &Report) {
    for file in report.trace.files.iter().filter(|f| !f.damaged_regions.is_empty()) {
        let regions = &file.damaged_regions;
        let bytes: u64 = regions.iter().map(|r| r.bytes).sum();
        let events: u64 = regions.iter().map(|r| r.events_lost).sum();
        out.line(&format!(
            "DAMAGED TRACE: {}: {} skipped ({}, about {} lost); findings may miss or misjudge \
             what was lost",
            file.path,
            counted(regions.len() as u64, "damaged region", "damaged regions"),
            counted(bytes, "byte", "bytes"),
            counted(events, "event", "events"),
        ));
        for region in regions {
            let threads = if region.threads.is_empty() {
                String::new()
            } else {
                format!("; events of {} lost", region.threads.join(", "))
            };
            let recovered = if region.recovered_bytes == region.bytes {
                "; its content was read again from its copy"
            } else {
                ""
            };
            out.line(&format!(
                "  at offset {}: {} bytes ({}){threads}{recovered}",
                region.offset, region.bytes, region.reason
            ));
        }
    }
}

/// A task of a finding: `task `name``, and where it was spawned if it has no name of its own
/// (`task#N` alone tells a reader nothing).
fn task_text(name: &str, tasks: &[TaskEntry]) -> String {
    let unnamed_spawn = name
        .starts_with("task#")
        .then(|| tasks.iter().find(|task| task.name == name))
        .flatten()
        .and_then(|task| task.spawn_site.as_deref());
    match unnamed_spawn {
        Some(site) => format!("task `{name}` (spawned at {site})"),
        None => format!("task `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(terminal_safe("plain `lock` µs → ok"), "plain `lock` µs → ok");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(terminal_safe("two\nlines\r\t"), "two\\u{a}lines\\u{d}\\u{9}");
        assert_eq!(terminal_safe("\u{9b}2J\u{7f}"), "\\u{9b}2J\\u{7f}");
        assert_eq!(terminal_safe("abc\u{202e}fed"), "abc\\u{202e}fed");
    }
}
