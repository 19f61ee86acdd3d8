//! The SARIF 2.1.0 form of a report, for code-scanning services and CI that annotate source:
//! one run, one rule per finding kind, one result per finding with every site as a location
//! (the first as the primary one) and the evidence in the message.

use super::{Finding, FindingKind, Report, Severity};
use serde_json::{json, Value};

/// The SARIF schema the output follows.
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// What each kind of finding means, as the rule's description.
fn rule_description(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Deadlock => "Threads or tasks were blocked on each other when the trace ended.",
        FindingKind::LockOrderCycle => {
            "Locks were taken in conflicting orders by different threads or tasks: a deadlock that can happen."
        }
        FindingKind::GuardAcrossAwait => "A task suspended at an .await while holding a lock guard.",
        FindingKind::DataRace => {
            "Two accesses to one variable, at least one a write, with no happens-before order between them."
        }
        FindingKind::ContentionHotspot => "A lock whose waits cross the contention threshold.",
        FindingKind::StaleLock => "A lock still held when its holder ended, panicked, or the trace ended.",
        FindingKind::BlockingInAsync => "A task kept its async worker thread from running other tasks.",
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn result(finding: &Finding) -> Value {
    let locations: Vec<Value> = finding
        .sites
        .iter()
        .map(|site| {
            json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": site.file },
                    "region": { "startLine": site.line.max(1), "startColumn": site.col.max(1) },
                },
                "message": { "text": site.role },
            })
        })
        .collect();
    let mut text = finding.title.clone();
    for line in &finding.evidence {
        text.push_str("\n- ");
        text.push_str(line);
    }
    if let Some(help) = &finding.help {
        text.push_str("\nhelp: ");
        text.push_str(help);
    }
    json!({
        "ruleId": finding.kind.name(),
        "level": level(finding.severity),
        "message": { "text": text },
        "locations": locations.first().cloned().into_iter().collect::<Vec<_>>(),
        "relatedLocations": locations.iter().skip(1).cloned().collect::<Vec<_>>(),
        "properties": {
            "locks": finding.locks,
            "threads": finding.threads,
            "tasks": finding.tasks,
            "variables": finding.variables,
            "time_ns": finding.time_ns,
        },
    })
}

/// The run's invocation: unsuccessful if a trace was damaged, with a notification per
/// damaged file (and per truncated tail, as a warning) saying what was lost.
fn invocation(report: &Report) -> Value {
    let mut notifications = Vec::new();
    for file in &report.trace.files {
        let location =
            json!([{ "physicalLocation": { "artifactLocation": { "uri": file.path } } }]);
        if !file.damaged_regions.is_empty() {
            let bytes: u64 = file.damaged_regions.iter().map(|r| r.bytes).sum();
            let events: u64 = file.damaged_regions.iter().map(|r| r.events_lost).sum();
            notifications.push(json!({
                "level": "error",
                "descriptor": { "id": "damaged-trace" },
                "message": { "text": format!(
                    "the trace is damaged: {} regions ({bytes} bytes, about {events} events) \
                     were skipped; findings may miss or misjudge what was lost",
                    file.damaged_regions.len()
                ) },
                "locations": location,
                "properties": { "damaged_regions": file.damaged_regions },
            }));
        }
        if file.truncated_bytes > 0 {
            notifications.push(json!({
                "level": "warning",
                "descriptor": { "id": "truncated-trace" },
                "message": { "text": format!(
                    "the trace ends inside a chunk; its last {} bytes were not read",
                    file.truncated_bytes
                ) },
                "locations": location,
            }));
        }
    }
    json!({
        "executionSuccessful": !report.trace.damaged,
        "toolExecutionNotifications": notifications,
    })
}

/// The report as SARIF 2.1.0 JSON, with a final newline.
pub fn render(report: &Report) -> String {
    let rules: Vec<Value> = FindingKind::ALL
        .into_iter()
        .map(|kind| {
            json!({
                "id": kind.name(),
                "shortDescription": { "text": rule_description(kind) },
            })
        })
        .collect();
    let artifacts: Vec<Value> =
        report.trace.files.iter().map(|file| json!({ "location": { "uri": file.path } })).collect();
    let sarif = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "hindsight",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "artifacts": artifacts,
            "invocations": [invocation(report)],
            "results": report.findings.iter().map(result).collect::<Vec<_>>(),
        }],
    });
    let mut out = serde_json::to_string_pretty(&sarif)
        .expect("a SARIF document always serializes; this is a bug");
    out.push('\n');
    out
}
