//! The text form of a report, for a person at a terminal: what was analysed, then the
//! findings grouped by severity, each with its evidence and a hint how to fix it, then a
//! count.
//!
//! Every line goes through [`terminal_safe`]: names, paths and marks come from the trace, and
//! a trace may hold anything, escape sequences included.

use super::{counted, format_ns, Finding, Report, Severity};
use std::borrow::Cow;
use std::fmt::Write;

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
    let mut out = Lines::default();
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
        out.line(&format!("{heading} ({}):", group.len()));
        for finding in group {
            out.blank();
            finding_text(&mut out, finding);
        }
    }
    let (errors, warnings, infos) = report.counts();
    out.blank();
    out.line(&format!(
        "{}, {}, {infos} info",
        counted(errors as u64, "error", "errors"),
        counted(warnings as u64, "warning", "warnings"),
    ));
    out.text
}

/// The text being rendered, a line at a time, each made [`terminal_safe`].
#[derive(Default)]
struct Lines {
    text: String,
}

impl Lines {
    /// Appends `line` and a newline; a newline inside `line` is shown escaped.
    fn line(&mut self, line: &str) {
        self.text.push_str(&terminal_safe(line));
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }
}

fn header(out: &mut Lines, report: &Report) {
    let trace = &report.trace;
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
        counted(report.tasks.len() as u64, "task", "tasks"),
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

fn finding_text(out: &mut Lines, finding: &Finding) {
    out.line(&format!("{}[{}]: {}", finding.severity, finding.kind, finding.title));
    let mut actors: Vec<String> = finding.threads.iter().map(|t| format!("`{t}`")).collect();
    let label = if finding.tasks.is_empty() { "threads" } else { "threads/tasks" };
    actors.extend(finding.tasks.iter().map(|t| format!("task `{t}`")));
    if !actors.is_empty() {
        out.line(&format!("  at t={}; {label}: {}", format_ns(finding.time_ns), actors.join(", ")));
    }
    for line in &finding.evidence {
        out.line(&format!("  - {line}"));
    }
    if let Some(help) = &finding.help {
        out.line(&format!("  help: {help}"));
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
