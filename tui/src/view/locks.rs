//! Locks: a sortable table of every lock with its contention (acquisitions, contended, wait
//! p50/p99/max, hold p99/max, owner changes, from the report); a detail pane with the sites
//! that wait for it and hold it most, and a sparkline of the time spent waiting for it over
//! the trace (from the timeline).

use super::{
    block, field, heading, line, lock_color, ns_or_dash, raw, styled, TableNav, TableView,
};
use crate::data::Data;
use hindsight_analyzer::report::{format_ns, DurationStats, LockEntry, SiteTime};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Sparkline, Widget};
use std::cmp::Ordering;
use std::rc::Rc;

const HEADER: [&str; 10] = [
    "Lock",
    "Kind",
    "Acq",
    "Contended",
    "Wait p50",
    "Wait p99",
    "Wait max",
    "Hold p99",
    "Hold max",
    "Owner chg",
];
const WAIT_MAX: usize = 6;

/// Sites listed per kind in the detail pane.
const TOP_SITES: usize = 5;

/// The Locks view; see the module docs.
#[derive(Debug)]
pub struct LocksView {
    data: Rc<Data>,
    nav: TableNav,
}

impl LocksView {
    /// The view over `data`, the longest waits first.
    pub fn new(data: Rc<Data>) -> Self {
        let mut view = LocksView { data, nav: TableNav::new(HEADER.len(), WAIT_MAX, true) };
        view.refresh();
        view
    }
}

fn compare(a: &LockEntry, b: &LockEntry, column: usize) -> Ordering {
    match column {
        0 => a.name.cmp(&b.name),
        1 => a.kind.cmp(&b.kind),
        2 => a.acquisitions.cmp(&b.acquisitions),
        3 => a.contended.cmp(&b.contended),
        4 => a.wait.p50_ns.cmp(&b.wait.p50_ns),
        5 => a.wait.p99_ns.cmp(&b.wait.p99_ns),
        WAIT_MAX => a.wait.max_ns.cmp(&b.wait.max_ns),
        7 => a.hold.p99_ns.cmp(&b.hold.p99_ns),
        8 => a.hold.max_ns.cmp(&b.hold.max_ns),
        _ => a.owner_changes.cmp(&b.owner_changes),
    }
}

impl TableView for LocksView {
    fn nav(&self) -> &TableNav {
        &self.nav
    }

    fn nav_mut(&mut self) -> &mut TableNav {
        &mut self.nav
    }

    fn refresh(&mut self) {
        let locks = &self.data.report.locks;
        let mut rows = self.nav.matching(locks.len(), |i| {
            let l = &locks[i];
            format!("{} {} {}", l.name, l.kind, l.class)
        });
        let (column, descending) = (self.nav.sort, self.nav.descending);
        rows.sort_by(|&a, &b| {
            let (la, lb) = (&locks[a], &locks[b]);
            let order = compare(la, lb, column);
            let order = if descending { order.reverse() } else { order };
            order.then(la.name.cmp(&lb.name)).then(a.cmp(&b))
        });
        self.nav.set_rows(rows);
    }
}

impl Widget for &LocksView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [top, bottom] = self.nav.split(area, area.height / 2);
        let locks = &self.data.report.locks;
        let rows: Vec<Vec<_>> = self
            .nav
            .rows
            .iter()
            .map(|&i| {
                let l = &locks[i];
                vec![
                    styled(l.name.clone(), Style::new().fg(lock_color(i))),
                    raw(l.kind.clone()),
                    raw(l.acquisitions.to_string()),
                    raw(l.contended.to_string()),
                    raw(ns_or_dash(l.wait.p50_ns)),
                    raw(ns_or_dash(l.wait.p99_ns)),
                    raw(ns_or_dash(l.wait.max_ns)),
                    raw(ns_or_dash(l.hold.p99_ns)),
                    raw(ns_or_dash(l.hold.max_ns)),
                    raw(l.owner_changes.to_string()),
                ]
            })
            .collect();
        let widths = [
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
        ];
        let title =
            format!(" Locks: {} ({} shown) ", self.data.report.locks.len(), self.nav.rows.len());
        self.nav.render(top, buf, block(title), &HEADER, &widths, rows);

        let Some(i) = self.nav.selected_item() else {
            Paragraph::new("No lock matches.")
                .block(block(" Lock ".to_owned()))
                .render(bottom, buf);
            return;
        };
        let entry = &locks[i];
        let [text_area, spark_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(5)]).areas(bottom);
        let stats = |s: &DurationStats| {
            format!(
                "p50 {} · p95 {} · p99 {} · max {} · total {}",
                ns_or_dash(s.p50_ns),
                ns_or_dash(s.p95_ns),
                ns_or_dash(s.p99_ns),
                ns_or_dash(s.max_ns),
                ns_or_dash(s.total_ns)
            )
        };
        let mut lines = vec![
            Line::from(styled(entry.name.clone(), Style::new().fg(lock_color(i)))),
            field(
                "kind",
                format!(
                    "{}{}",
                    entry.kind,
                    if entry.blocking { " (blocking)" } else { " (async)" }
                ),
            ),
            field("class", entry.class.clone()),
            field("created", entry.created_at.clone().unwrap_or_else(|| "-".to_owned())),
            field(
                "acquired",
                format!(
                    "{} times, {} contended, {} try_lock failed, {} owner changes{}",
                    entry.acquisitions,
                    entry.contended,
                    entry.try_failed,
                    entry.owner_changes,
                    if entry.poisoned { ", poisoned" } else { "" }
                ),
            ),
            field("waits", stats(&entry.wait)),
            field("holds", stats(&entry.hold)),
        ];
        if let Some(class) = &entry.class_totals {
            lines.push(field(
                "class all",
                format!(
                    "{} locks, {} acquisitions, {} contended, wait max {}",
                    class.locks,
                    class.statistics.acquisitions,
                    class.statistics.contended,
                    ns_or_dash(class.statistics.wait.max_ns)
                ),
            ));
        }
        // tokio's own locks carry only their creation site: say so rather than "waited at" it.
        let created = entry.created_at.as_deref().filter(|_| entry.implementation == "tokio");
        sites(&mut lines, "top waiting sites", &entry.top_waiting_sites, "waited", created);
        sites(&mut lines, "top holding sites", &entry.top_holding_sites, "held", created);
        self.nav.render_detail(text_area, buf, " Lock ", lines);

        let timeline = &self.data.timeline;
        let width = spark_area.width.saturating_sub(2) as usize;
        // The timeline's locks are in the trace's order, as the report's are.
        let series = if timeline.locks().get(i).is_some_and(|l| l.name == entry.name) {
            timeline.wait_series(i, timeline.start_ns(), timeline.end_ns(), width)
        } else {
            vec![0; width]
        };
        let title = format!(
            " Waiting over time ({} … {}) ",
            format_ns(timeline.start_ns()),
            format_ns(timeline.end_ns())
        );
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(&series)
            .style(Style::new().fg(lock_color(i)))
            .render(spark_area, buf);
    }
}

/// A lock's top sites under `title`; a site that is the lock's creation line (`created`, given
/// for tokio's own locks, whose operations tokio records without a call site) says so.
fn sites(
    lines: &mut Vec<Line<'static>>,
    title: &str,
    sites: &[SiteTime],
    verb: &str,
    created: Option<&str>,
) {
    lines.push(heading(title));
    if sites.is_empty() {
        lines.push(Line::from("  -"));
    }
    for site in sites.iter().take(TOP_SITES) {
        let label = if created == Some(site.site.as_str()) {
            format!("created at {} (no call site)", site.site)
        } else {
            site.site.clone()
        };
        lines.push(line(format!(
            "  {label:<40} {verb} {} in {} times",
            format_ns(site.total_ns),
            site.count
        )));
    }
}
