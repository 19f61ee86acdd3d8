//! Findings: every finding grouped by severity (errors first), sortable within its group by
//! kind, title, locks, actors or time; a detail pane with the whole evidence; Enter shows the
//! finding's moment in the timeline.

use super::{
    block, count, field, heading, line, raw, severity_label, styled, Outcome, TableNav, TableView,
};
use crate::data::{moment_of, Data};
use hindsight_analyzer::report::{format_ns, Detail, Finding};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::Widget;
use std::cmp::Ordering;
use std::rc::Rc;

const HEADER: [&str; 6] = ["Sev", "Kind", "Title", "Locks", "Threads / tasks", "Time"];
const TIME: usize = 5;

/// The Findings view; see the module docs.
#[derive(Debug)]
pub struct FindingsView {
    data: Rc<Data>,
    nav: TableNav,
}

impl FindingsView {
    /// The view over `data`, in report order (severity, then time).
    pub fn new(data: Rc<Data>) -> Self {
        let mut view = FindingsView { data, nav: TableNav::new(HEADER.len(), TIME, false) };
        view.refresh();
        view
    }

    /// The finding selected, if any.
    pub fn selected(&self) -> Option<&Finding> {
        self.nav.selected_item().and_then(|i| self.data.report.findings.get(i))
    }
}

fn compare(a: &Finding, b: &Finding, column: usize) -> Ordering {
    match column {
        1 => a.kind.cmp(&b.kind),
        2 => a.title.cmp(&b.title),
        3 => a.locks.cmp(&b.locks),
        4 => actors(a).cmp(&actors(b)),
        TIME => a.time_ns.cmp(&b.time_ns),
        _ => Ordering::Equal,
    }
}

/// The threads and tasks of a finding, as one cell.
fn actors(finding: &Finding) -> String {
    let tasks = finding.tasks.iter().map(|t| format!("task {t}"));
    finding.threads.iter().cloned().chain(tasks).collect::<Vec<_>>().join(", ")
}

/// What the filter looks in.
fn haystack(f: &Finding) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        f.severity,
        f.kind,
        f.title,
        f.locks.join(" "),
        f.threads.join(" "),
        f.tasks.join(" "),
        f.variables.join(" ")
    )
}

impl TableView for FindingsView {
    fn nav(&self) -> &TableNav {
        &self.nav
    }

    fn nav_mut(&mut self) -> &mut TableNav {
        &mut self.nav
    }

    fn refresh(&mut self) {
        let findings = &self.data.report.findings;
        let mut rows = self.nav.matching(findings.len(), |i| haystack(&findings[i]));
        let (column, descending) = (self.nav.sort, self.nav.descending);
        rows.sort_by(|&a, &b| {
            let (fa, fb) = (&findings[a], &findings[b]);
            let within = compare(fa, fb, column).then(fa.time_ns.cmp(&fb.time_ns)).then(a.cmp(&b));
            fb.severity.cmp(&fa.severity).then(if descending { within.reverse() } else { within })
        });
        self.nav.set_rows(rows);
    }

    fn enter(&self) -> Outcome {
        self.selected().map_or(Outcome::Handled, |finding| Outcome::Jump(moment_of(finding)))
    }
}

impl Widget for &FindingsView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let findings = &self.data.report.findings;
        let [top, bottom] = self.nav.split(area, area.height / 2);
        let rows: Vec<Vec<_>> = self
            .nav
            .rows
            .iter()
            .map(|&i| {
                let f = &findings[i];
                let (label, style) = severity_label(f.severity);
                vec![
                    styled(label, style),
                    raw(f.kind.name()),
                    raw(f.title.clone()),
                    raw(f.locks.join(", ")),
                    raw(actors(f)),
                    raw(format_ns(f.time_ns)),
                ]
            })
            .collect();
        let (errors, warnings, infos) = self.data.report.counts();
        let title = format!(
            " Findings: {}, {}, {infos} info ({} shown) ",
            count(errors, "error", "errors"),
            count(warnings, "warning", "warnings"),
            self.nav.rows.len()
        );
        let widths = [
            Constraint::Length(5),
            Constraint::Length(18),
            Constraint::Fill(3),
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(9),
        ];
        self.nav.render(top, buf, block(title), &HEADER, &widths, rows);

        let lines = match self.selected() {
            Some(finding) => detail(finding),
            None if findings.is_empty() => vec![Line::from("No findings: nothing to report.")],
            None => vec![Line::from("No finding matches the filter.")],
        };
        self.nav.render_detail(bottom, buf, " Evidence (Enter: show in the timeline) ", lines);
    }
}

/// The whole evidence of a finding, as lines.
fn detail(f: &Finding) -> Vec<Line<'static>> {
    let (label, style) = severity_label(f.severity);
    let mut lines = vec![Line::from(vec![
        styled(format!("{label}[{}]", f.kind), style),
        raw(format!(" {}", f.title)),
    ])];
    lines.push(field("time", format_ns(f.time_ns)));
    let list = |items: &[String]| if items.is_empty() { "-".to_owned() } else { items.join(", ") };
    lines.push(field("locks", list(&f.locks)));
    lines.push(field("threads", list(&f.threads)));
    if !f.tasks.is_empty() {
        lines.push(field("tasks", list(&f.tasks)));
    }
    if !f.variables.is_empty() {
        lines.push(field("variables", list(&f.variables)));
    }
    if !f.sites.is_empty() {
        lines.push(heading("sites"));
        for site in &f.sites {
            lines.push(line(format!("  {:<9} {site}", site.role)));
        }
    }
    match &f.detail {
        Detail::LockOrderCycle(cycle) => {
            lines.push(heading("cycle"));
            for edge in &cycle.edges {
                let who = match &edge.task {
                    Some(task) => format!("task `{task}` on thread `{}`", edge.thread),
                    None => format!("thread `{}`", edge.thread),
                };
                lines.push(line(format!(
                    "  {} → {}  by {who}, seen {}×",
                    edge.from, edge.to, edge.count
                )));
                lines.push(line(format!(
                    "    held `{}` ({}) since {}, acquired at {}",
                    edge.from_lock,
                    edge.held_mode,
                    format_ns(edge.held_since_ns),
                    edge.held_at
                )));
                lines.push(line(format!(
                    "    took `{}` ({}) at {}, t={}",
                    edge.to_lock,
                    edge.mode,
                    edge.acquired_at,
                    format_ns(edge.time_ns)
                )));
            }
        }
        Detail::Deadlock(deadlock) => {
            lines.push(heading("blocked"));
            for actor in &deadlock.cycle {
                let who = match &actor.task {
                    Some(task) => format!("task `{task}` on thread `{}`", actor.thread),
                    None => format!("thread `{}`", actor.thread),
                };
                lines.push(line(format!("  {who}")));
                if let Some(held) = &actor.holds {
                    lines.push(line(format!(
                        "    holds `{}` since {}, acquired at {}",
                        held.lock,
                        format_ns(held.since_ns),
                        held.site
                    )));
                }
                lines.push(line(format!(
                    "    waits for {} `{}` since {}{}",
                    actor.wait_kind,
                    actor.waits_for,
                    format_ns(actor.waiting_since_ns),
                    actor.wait_site.as_ref().map(|s| format!(" at {s}")).unwrap_or_default()
                )));
            }
        }
        Detail::StaleLock(stale) => {
            lines.push(heading("hold"));
            lines.push(field("lock", format!("`{}`", stale.lock)));
            lines.push(field("holder", stale.holder.clone()));
            lines.push(field(
                "acquired",
                format!("{} at t={}", stale.acquired_at, format_ns(stale.held_since_ns)),
            ));
            lines.push(field("held for", format_ns(stale.held_ns)));
            lines.push(field("reason", stale.reason.clone()));
        }
        _ => {}
    }
    if !f.evidence.is_empty() {
        lines.push(heading("evidence"));
        for evidence in &f.evidence {
            lines.push(line(format!("  - {evidence}")));
        }
    }
    if let Some(help) = &f.help {
        lines.push(Line::from(vec![
            styled("help: ", Style::new().fg(Color::Green)),
            raw(help.clone()),
        ]));
    }
    lines
}
