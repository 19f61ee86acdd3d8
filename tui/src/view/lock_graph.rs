//! Lock graph: the lock-order cycles as a navigable list, and each edge of the selected cycle
//! with its witness (who held what where since when, and took what where); Enter shows the
//! cycle's first acquisition in the timeline. Below them, every order in which lock classes
//! were taken: the whole lock-order graph, cycles or not.

use super::{block, heading, line, raw, severity_label, styled, Outcome, TableNav, TableView};
use crate::data::{is_cycle, moment_of, Data};
use hindsight_analyzer::report::{format_ns, CycleDetail, Detail, Finding, LockOrderEdge};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};
use std::rc::Rc;

const HEADER: [&str; 3] = ["Sev", "Cycle", "Edges"];

/// The Lock graph view; see the module docs.
#[derive(Debug)]
pub struct LockGraphView {
    data: Rc<Data>,
    nav: TableNav,
}

impl LockGraphView {
    /// The view over the lock-order cycles of `data`, in report order.
    pub fn new(data: Rc<Data>) -> Self {
        let mut view = LockGraphView { data, nav: TableNav::new(0, 0, false) };
        view.refresh();
        view
    }

    fn selected(&self) -> Option<&Finding> {
        self.nav.selected_item().and_then(|i| self.data.report.findings.get(i))
    }
}

fn cycle_of(finding: &Finding) -> Option<&CycleDetail> {
    match &finding.detail {
        Detail::LockOrderCycle(cycle) => Some(cycle),
        _ => None,
    }
}

/// `a → b → a`.
fn path(cycle: &CycleDetail) -> String {
    let mut names: Vec<&str> = cycle.edges.iter().map(|e| e.from.as_str()).collect();
    if let Some(first) = cycle.edges.first() {
        names.push(first.from.as_str());
    }
    names.join(" → ")
}

fn haystack(finding: &Finding) -> String {
    let mut text =
        format!("{} {} {}", finding.severity, finding.locks.join(" "), finding.threads.join(" "));
    if let Some(cycle) = cycle_of(finding) {
        for edge in &cycle.edges {
            text.push_str(&format!(
                " {} {} {}",
                edge.from_lock,
                edge.to_lock,
                edge.task.as_deref().unwrap_or("")
            ));
        }
    }
    text
}

impl TableView for LockGraphView {
    fn nav(&self) -> &TableNav {
        &self.nav
    }

    fn nav_mut(&mut self) -> &mut TableNav {
        &mut self.nav
    }

    fn refresh(&mut self) {
        let findings = &self.data.report.findings;
        let rows = (0..findings.len())
            .filter(|&i| is_cycle(&findings[i]))
            .filter(|&i| super::matches(&self.nav.filter, &haystack(&findings[i])))
            .collect();
        self.nav.set_rows(rows);
    }

    fn enter(&self) -> Outcome {
        self.selected().map_or(Outcome::Handled, |finding| Outcome::Jump(moment_of(finding)))
    }
}

/// `site` (`file:line:col`) as `line L:C` when it is in the file of `other`, else whole.
fn site_near(site: &str, other: &str) -> String {
    match (split_site(site), split_site(other)) {
        (Some((file, line, col)), Some((other_file, ..))) if file == other_file => {
            format!("line {line}:{col}")
        }
        _ => site.to_owned(),
    }
}

/// `file:line:col` as its three parts.
fn split_site(site: &str) -> Option<(&str, &str, &str)> {
    let (rest, col) = site.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some((file, line, col))
}

/// Lists the orders in which lock classes were taken (the whole lock-order graph), most
/// frequent first, as many as fit in `area`.
fn render_orders(orders: &[LockOrderEdge], total: usize, area: Rect, buf: &mut Buffer) {
    let room = usize::from(area.height.saturating_sub(2));
    let shown = if total > room { room.saturating_sub(1).min(orders.len()) } else { orders.len() };
    let mut lines: Vec<Line<'_>> = orders[..shown]
        .iter()
        .map(|order| {
            line(format!(
                "{:>9}×  {} → {}   at {} (holding {} from {})",
                order.count,
                order.from,
                order.to,
                order.taken_at,
                order.from,
                site_near(&order.held_at, &order.taken_at)
            ))
        })
        .collect();
    if shown < total {
        lines.push(line(format!("  … and {} more", total - shown)));
    }
    let title = format!(" Lock orders: {total} (A → B: B taken while holding A; first sites) ");
    Paragraph::new(lines).block(block(title)).render(area, buf);
}

impl Widget for &LockGraphView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let orders = &self.data.report.lock_orders;
        let orders_height = if orders.is_empty() {
            0
        } else {
            u16::try_from(orders.len() + 2).unwrap_or(u16::MAX).min(area.height / 3)
        };
        let [area, orders_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(orders_height)]).areas(area);
        if orders_height > 0 {
            render_orders(orders, self.data.report.lock_orders_total, orders_area, buf);
        }
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(area);
        let findings = &self.data.report.findings;
        let rows: Vec<Vec<_>> = self
            .nav
            .rows
            .iter()
            .filter_map(|&i| {
                let finding = &findings[i];
                let cycle = cycle_of(finding)?;
                let (label, style) = severity_label(finding.severity);
                Some(vec![
                    styled(label, style),
                    raw(path(cycle)),
                    raw(cycle.edges.len().to_string()),
                ])
            })
            .collect();
        let widths = [Constraint::Length(5), Constraint::Fill(1), Constraint::Length(5)];
        let title = format!(" Lock-order cycles: {} ", self.nav.rows.len());
        self.nav.render(left, buf, block(title), &HEADER, &widths, rows);

        let Some((finding, cycle)) = self.selected().and_then(|f| Some((f, cycle_of(f)?))) else {
            let text = if findings.iter().any(is_cycle) {
                "No cycle matches the filter."
            } else {
                "No lock-order cycle: every thread and task took its locks in one order."
            };
            Paragraph::new(text)
                .block(block(" Edges ".to_owned()))
                .wrap(Wrap { trim: false })
                .render(right, buf);
            return;
        };
        let (label, style) = severity_label(finding.severity);
        let mut lines =
            vec![Line::from(vec![styled(format!("{label} "), style), raw(finding.title.clone())])];
        if let Some(reason) = &cycle.reason {
            lines.push(Line::from(styled(
                format!("not an error: {reason}"),
                Style::new().fg(Color::Blue),
            )));
        }
        for edge in &cycle.edges {
            lines.push(Line::default());
            lines.push(heading(&format!("{} → {}  (seen {}×)", edge.from, edge.to, edge.count)));
            let who = match &edge.task {
                Some(task) => format!("task `{task}` on thread `{}`", edge.thread),
                None => format!("thread `{}`", edge.thread),
            };
            lines.push(line(format!("  {who}")));
            lines.push(line(format!(
                "  held `{}` ({}) since {} at {}",
                edge.from_lock,
                edge.held_mode,
                format_ns(edge.held_since_ns),
                edge.held_at
            )));
            lines.push(line(format!(
                "  took `{}` ({}) at {} at {}",
                edge.to_lock,
                edge.mode,
                format_ns(edge.time_ns),
                edge.acquired_at
            )));
        }
        let title = " Edges and witnesses (Enter: show in the timeline) ";
        self.nav.render_detail(right, buf, title, lines);
    }
}
