//! Tasks & threads: every thread and task with its spawn site, polls, busy time, longest poll,
//! the locks it held at the end and its state at the end; a detail pane with the locks it took.
//! The async runtime's own tasks (`block_on` futures, blocking-pool launches) are of kind
//! `runtime` and counted apart from the program's.

use super::{
    block, field, heading, line, ns_or_dash, raw, short_site, styled, TableNav, TableView,
};
use crate::data::Data;
use hindsight_analyzer::report::format_ns;
use hindsight_analyzer::timeline::{Lane, LaneKind};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use std::cmp::Ordering;
use std::rc::Rc;

const HEADER: [&str; 8] =
    ["Name", "Kind", "Spawned at", "Polls", "Busy", "Longest poll", "Held at end", "State at end"];
const KIND: usize = 1;

/// Locks listed in the detail pane.
const TOP_LOCKS: usize = 12;

/// The Tasks & threads view; see the module docs.
#[derive(Debug)]
pub struct TasksView {
    data: Rc<Data>,
    /// Per lane, whether it is one of the runtime's own tasks.
    runtime: Vec<bool>,
    nav: TableNav,
}

impl TasksView {
    /// The view over `data`: threads first, then tasks, in trace order.
    pub fn new(data: Rc<Data>) -> Self {
        let tasks = &data.report.tasks;
        let runtime = (data.timeline.lanes().iter())
            .map(|lane| {
                lane.kind == LaneKind::Task
                    && tasks.iter().any(|task| task.runtime && task.name == lane.name)
            })
            .collect();
        let nav = TableNav::new(HEADER.len(), KIND, false);
        let mut view = TasksView { data, runtime, nav };
        view.refresh();
        view
    }

    /// The kind of lane `index`, in words: `thread`, `task` or `runtime`.
    fn kind(&self, index: usize, lane: &Lane) -> &'static str {
        if self.runtime.get(index).copied().unwrap_or(false) {
            "runtime"
        } else {
            lane.kind.name()
        }
    }
}

fn haystack(kind: &str, lane: &Lane) -> String {
    let locks: Vec<&str> = lane.locks_taken.iter().map(|l| l.lock.as_str()).collect();
    format!(
        "{} {} {} {} {}",
        kind,
        lane.name,
        lane.spawn_site.as_deref().unwrap_or(""),
        lane.state_at_end,
        locks.join(" ")
    )
}

fn compare((a_kind, a): (&str, &Lane), (b_kind, b): (&str, &Lane), column: usize) -> Ordering {
    match column {
        0 => a.name.cmp(&b.name),
        KIND => a.kind.cmp(&b.kind).then(a_kind.cmp(b_kind)),
        2 => a.spawn_site.cmp(&b.spawn_site),
        3 => a.polls.cmp(&b.polls),
        4 => a.busy_ns.cmp(&b.busy_ns),
        5 => a.longest_poll_ns.cmp(&b.longest_poll_ns),
        6 => a.held_at_end.len().cmp(&b.held_at_end.len()),
        _ => a.state_at_end.cmp(&b.state_at_end),
    }
}

impl TableView for TasksView {
    fn nav(&self) -> &TableNav {
        &self.nav
    }

    fn nav_mut(&mut self) -> &mut TableNav {
        &mut self.nav
    }

    fn refresh(&mut self) {
        let lanes = self.data.timeline.lanes();
        let mut rows =
            self.nav.matching(lanes.len(), |i| haystack(self.kind(i, &lanes[i]), &lanes[i]));
        let (column, descending) = (self.nav.sort, self.nav.descending);
        rows.sort_by(|&a, &b| {
            let lane = |i: usize| (self.kind(i, &lanes[i]), &lanes[i]);
            let order = compare(lane(a), lane(b), column);
            let order = if descending { order.reverse() } else { order };
            order.then(a.cmp(&b))
        });
        self.nav.set_rows(rows);
    }
}

impl Widget for &TasksView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lanes = self.data.timeline.lanes();
        let [top, bottom] = self.nav.split(area, area.height * 3 / 5);
        let rows: Vec<Vec<_>> = self
            .nav
            .rows
            .iter()
            .map(|&i| {
                let lane = &lanes[i];
                vec![
                    lane.name.clone(),
                    self.kind(i, lane).to_owned(),
                    lane.spawn_site.as_deref().map_or_else(|| "-".to_owned(), short_site),
                    lane.polls.to_string(),
                    ns_or_dash(lane.busy_ns),
                    ns_or_dash(lane.longest_poll_ns),
                    if lane.held_at_end.is_empty() {
                        "-".to_owned()
                    } else {
                        lane.held_at_end.join(", ")
                    },
                    lane.state_at_end.clone(),
                ]
                .into_iter()
                .map(raw)
                .collect()
            })
            .collect();
        let widths = [
            Constraint::Fill(2),
            Constraint::Length(7),
            Constraint::Fill(2),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Fill(2),
        ];
        let threads = lanes.iter().filter(|l| l.kind == LaneKind::Thread).count();
        let runtime = self.runtime.iter().filter(|&&r| r).count();
        let own = match runtime {
            0 => String::new(),
            n => format!(" (and {n} of the runtime's own)"),
        };
        let title = format!(
            " Threads: {threads}, tasks: {}{own} ({} shown) ",
            lanes.len() - threads - runtime,
            self.nav.rows.len()
        );
        self.nav.render(top, buf, block(title), &HEADER, &widths, rows);

        let selected = self.nav.selected_item().and_then(|i| Some((i, lanes.get(i)?)));
        let Some((index, lane)) = selected else {
            Paragraph::new("Nothing matches.")
                .block(block(" Detail ".to_owned()))
                .render(bottom, buf);
            return;
        };
        let mut lines = vec![
            Line::from(styled(
                match self.kind(index, lane) {
                    "runtime" => format!("task `{}` (the runtime's own)", lane.name),
                    kind => format!("{kind} `{}`", lane.name),
                },
                Style::new().add_modifier(Modifier::BOLD),
            )),
            field("spawned", lane.spawn_site.clone().unwrap_or_else(|| "-".to_owned())),
            field("first seen", format_ns(lane.first_ns)),
            field("ended", lane.end_ns.map_or_else(|| "-".to_owned(), format_ns)),
            field("events", lane.events.to_string()),
            field(
                "polls",
                format!(
                    "{} · busy {} · longest {}",
                    lane.polls,
                    ns_or_dash(lane.busy_ns),
                    ns_or_dash(lane.longest_poll_ns)
                ),
            ),
            field(
                "held",
                if lane.held_at_end.is_empty() {
                    "nothing at the end".to_owned()
                } else {
                    format!("{} at the end", lane.held_at_end.join(", "))
                },
            ),
            field("state", lane.state_at_end.clone()),
            heading("locks taken"),
        ];
        if lane.locks_taken.is_empty() {
            lines.push(Line::from("  -"));
        }
        for lock in lane.locks_taken.iter().take(TOP_LOCKS) {
            lines.push(line(format!(
                "  {:<32} {} times, held {} in all",
                lock.lock,
                lock.count,
                format_ns(lock.hold_ns)
            )));
        }
        self.nav.render_detail(bottom, buf, " Detail ", lines);
    }
}
