//! The text form of a report, for a person at a terminal: what was analysed, then the
//! findings grouped by severity, each with its evidence and a hint how to fix it, then a
//! count.

use super::{counted, format_ns, Finding, Report, Severity, TaskEntry};
use std::fmt::Write;

/// The report as text, with a final newline.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
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
        let _ = writeln!(out, "\n{heading} ({}):", group.len());
        for finding in group {
            out.push('\n');
            finding_text(&mut out, finding, &report.tasks);
        }
    }
    let (errors, warnings, infos) = report.counts();
    let _ = writeln!(
        out,
        "\n{}, {}, {infos} info",
        counted(errors as u64, "error", "errors"),
        counted(warnings as u64, "warning", "warnings"),
    );
    out
}

fn header(out: &mut String, report: &Report) {
    let trace = &report.trace;
    damage_note(out, report);
    for file in &trace.files {
        let pid = if file.pid == 0 { String::new() } else { format!(" (pid {})", file.pid) };
        let host = if file.host.is_empty() { String::new() } else { format!(" on {}", file.host) };
        let _ = writeln!(out, "{}: {}{pid}{host}, {} events", file.path, file.program, file.events);
        if let Some(reason) = &file.corrupt {
            let _ = writeln!(
                out,
                "  note: reading stopped at a corrupt chunk ({reason}); {} bytes were not read",
                file.truncated_bytes
            );
        } else if file.truncated_bytes > 0 {
            let _ = writeln!(
                out,
                "  note: the file ends inside a chunk; its last {} bytes were not read",
                file.truncated_bytes
            );
        }
        if file.dropped_events > 0 {
            let _ = writeln!(
                out,
                "  note: the recorder lost {} events; findings may miss what they did",
                file.dropped_events
            );
        }
    }
    let _ = writeln!(
        out,
        "analysed {} over {} (t={} to {}): {}, {}, {}",
        counted(trace.events, "event", "events"),
        format_ns(trace.duration_ns),
        format_ns(trace.start_ns),
        format_ns(trace.start_ns + trace.duration_ns),
        counted(trace.threads.len() as u64, "thread", "threads"),
        counted(report.tasks.len() as u64, "task", "tasks"),
        counted(report.locks.len() as u64, "lock", "locks"),
    );
    if trace.forced_reorders > 0 || trace.replay_conflicts > 0 {
        let _ = writeln!(
            out,
            "  note: {} lock events had to be replayed without their predecessors and {} \
             acquisitions overlapped another holder: the trace is incomplete",
            trace.forced_reorders, trace.replay_conflicts
        );
    }
}

fn finding_text(out: &mut String, finding: &Finding, tasks: &[TaskEntry]) {
    let _ = writeln!(out, "{}[{}]: {}", finding.severity, finding.kind, finding.title);
    let mut actors: Vec<String> = finding.threads.iter().map(|t| format!("`{t}`")).collect();
    let label = if finding.tasks.is_empty() { "threads" } else { "threads/tasks" };
    actors.extend(finding.tasks.iter().map(|t| task_text(t, tasks)));
    if !actors.is_empty() {
        let _ =
            writeln!(out, "  at t={}; {label}: {}", format_ns(finding.time_ns), actors.join(", "));
    }
    for line in &finding.evidence {
        let _ = writeln!(out, "  - {line}");
    }
    if let Some(help) = &finding.help {
        let _ = writeln!(out, "  help: {help}");
    }
}

/// Says first, before anything else, which files are damaged and what was lost.
fn damage_note(out: &mut String, report: &Report) {
    for file in report.trace.files.iter().filter(|f| !f.damaged_regions.is_empty()) {
        let regions = &file.damaged_regions;
        let bytes: u64 = regions.iter().map(|r| r.bytes).sum();
        let events: u64 = regions.iter().map(|r| r.events_lost).sum();
        let _ = writeln!(
            out,
            "DAMAGED TRACE: {}: {} skipped ({}, about {} lost); findings may miss or misjudge \
             what was lost",
            file.path,
            counted(regions.len() as u64, "damaged region", "damaged regions"),
            counted(bytes, "byte", "bytes"),
            counted(events, "event", "events"),
        );
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
            let _ = writeln!(
                out,
                "  at offset {}: {} bytes ({}){threads}{recovered}",
                region.offset, region.bytes, region.reason
            );
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
