//! Timeline: one lane per thread or task, showing over time the locks it holds (a colour per
//! lock) and waits for, and its polls; a cursor with its time and the recorded events near it;
//! the findings marked where they happen. Zoom and pan with the keyboard.
//!
//! Drawing reads, per lane shown, a few pre-aggregated buckets per screen column from the
//! timeline level that fits the zoom ([`Timeline::columns`]): the cost of a frame depends on
//! the screen, not on the trace.
//!
//! [`Timeline::columns`]: hindsight_analyzer::timeline::Timeline::columns

use super::{block, lock_color, put, raw, styled, Outcome, View};
use crate::app::Key;
use crate::data::{moment_of, Data, Moment};
use hindsight_analyzer::report::{format_ns, Severity};
use hindsight_analyzer::timeline::{Column, LaneKind};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use std::cell::Cell;
use std::rc::Rc;

/// Width of the lane names.
const NAME_WIDTH: u16 = 22;

/// Columns assumed before the first frame tells the real width.
const DEFAULT_PLOT_WIDTH: u16 = 80;

/// Lines of the "events near the cursor" pane, borders included.
const EVENTS_HEIGHT: u16 = 9;

/// Lanes kept on screen before the events pane is shown.
const MIN_LANES: u16 = 3;

/// The Timeline view; see the module docs.
#[derive(Debug)]
pub struct TimelineView {
    data: Rc<Data>,
    from_ns: u64,
    to_ns: u64,
    cursor_ns: u64,
    /// Lanes shown (indices into the timeline's lanes).
    rows: Vec<usize>,
    selected: usize,
    filter: String,
    /// Finding moments, by time: where the markers go and what n/N visit.
    marks: Vec<(u64, Severity)>,
    lane_offset: Cell<usize>,
    plot_width: Cell<u16>,
}

impl TimelineView {
    /// The whole trace, the cursor at its start.
    pub fn new(data: Rc<Data>) -> Self {
        let timeline = &data.timeline;
        let mut marks: Vec<(u64, Severity)> =
            data.report.findings.iter().map(|f| (moment_of(f).time_ns, f.severity)).collect();
        marks.sort();
        let (from_ns, to_ns) = (timeline.start_ns(), timeline.end_ns());
        let mut view = TimelineView {
            rows: Vec::new(),
            from_ns,
            to_ns,
            cursor_ns: from_ns,
            selected: 0,
            filter: String::new(),
            marks,
            lane_offset: Cell::new(0),
            plot_width: Cell::new(DEFAULT_PLOT_WIDTH),
            data,
        };
        view.refresh();
        view
    }

    /// The cursor's time.
    pub fn cursor_ns(&self) -> u64 {
        self.cursor_ns
    }

    /// The time range shown, `[from, to)`.
    pub fn range_ns(&self) -> (u64, u64) {
        (self.from_ns, self.to_ns)
    }

    /// The selected lane's index in the timeline, if any lane is shown.
    pub fn selected_lane(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }

    /// Puts the cursor on `moment`, zoomed in around it, and selects its lane.
    pub fn jump(&mut self, moment: &Moment) {
        let (start, end) = (self.data.timeline.start_ns(), self.data.timeline.end_ns());
        self.cursor_ns = moment.time_ns.clamp(start, end);
        let total = end - start;
        let span = (self.to_ns - self.from_ns).min(total / 8).max(self.min_span());
        self.from_ns = self.cursor_ns.saturating_sub(span / 2);
        self.to_ns = self.from_ns.saturating_add(span);
        self.clamp_view();
        if let Some((kind, name)) = &moment.lane {
            if let Some(lane) = self.data.lane_named(*kind, name) {
                if !self.rows.contains(&lane) {
                    self.filter.clear();
                    self.refresh();
                }
                if let Some(row) = self.rows.iter().position(|&r| r == lane) {
                    self.selected = row;
                }
            }
        }
    }

    fn refresh(&mut self) {
        let keep = self.selected_lane();
        let lanes = self.data.timeline.lanes();
        self.rows = (0..lanes.len())
            .filter(|&i| {
                let lane = &lanes[i];
                let locks: Vec<&str> = lane.locks_taken.iter().map(|l| l.lock.as_str()).collect();
                super::matches(
                    &self.filter,
                    &format!("{} {} {}", lane.kind.name(), lane.name, locks.join(" ")),
                )
            })
            .collect();
        self.selected = keep
            .and_then(|lane| self.rows.iter().position(|&r| r == lane))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
    }

    fn plot_width(&self) -> u64 {
        u64::from(self.plot_width.get().max(1))
    }

    /// The narrowest view: one nanosecond per column.
    fn min_span(&self) -> u64 {
        self.plot_width()
    }

    fn column_ns(&self) -> u64 {
        ((self.to_ns - self.from_ns) / self.plot_width()).max(1)
    }

    /// Keeps the view inside the trace and at least [`min_span`](Self::min_span) wide.
    fn clamp_view(&mut self) {
        let (start, end) = (self.data.timeline.start_ns(), self.data.timeline.end_ns());
        let span = (self.to_ns.saturating_sub(self.from_ns)).max(self.min_span());
        if span >= end - start {
            self.from_ns = start;
            self.to_ns = end.max(start + span);
            return;
        }
        self.from_ns = self.from_ns.clamp(start, end - span);
        self.to_ns = self.from_ns + span;
    }

    /// Moves the cursor, panning the view to keep it in sight.
    fn move_cursor(&mut self, to: u64) {
        let (start, end) = (self.data.timeline.start_ns(), self.data.timeline.end_ns());
        self.cursor_ns = to.clamp(start, end);
        let span = self.to_ns - self.from_ns;
        if self.cursor_ns < self.from_ns {
            self.from_ns = self.cursor_ns;
            self.to_ns = self.from_ns + span;
        } else if self.cursor_ns >= self.to_ns {
            self.to_ns = self.cursor_ns.saturating_add(self.column_ns());
            self.from_ns = self.to_ns.saturating_sub(span);
        }
        self.clamp_view();
    }

    fn pan(&mut self, right: bool) {
        let half = (self.to_ns - self.from_ns) / 2;
        let before = self.from_ns;
        if right {
            self.from_ns = self.from_ns.saturating_add(half);
            self.to_ns = self.to_ns.saturating_add(half);
        } else {
            self.from_ns = self.from_ns.saturating_sub(half);
            self.to_ns = self.to_ns.saturating_sub(half);
        }
        self.clamp_view();
        let moved = self.from_ns.abs_diff(before);
        self.cursor_ns = if right {
            self.cursor_ns.saturating_add(moved)
        } else {
            self.cursor_ns.saturating_sub(moved)
        };
        self.cursor_ns =
            self.cursor_ns.clamp(self.from_ns, self.to_ns.saturating_sub(1).max(self.from_ns));
    }

    /// Zooms by `factor` (below 1 zooms in) around the cursor.
    fn zoom(&mut self, zoom_in: bool) {
        let span = self.to_ns - self.from_ns;
        let new_span = if zoom_in { span / 2 } else { span.saturating_mul(2) }.max(self.min_span());
        // Keep the cursor at the same place on the screen.
        let left = u128::from(self.cursor_ns.saturating_sub(self.from_ns)) * u128::from(new_span)
            / u128::from(span.max(1));
        self.from_ns = self.cursor_ns.saturating_sub(left as u64);
        self.to_ns = self.from_ns.saturating_add(new_span);
        self.clamp_view();
    }
}

impl View for TimelineView {
    fn handle_key(&mut self, key: Key) -> Outcome {
        let timeline = &self.data.timeline;
        match key {
            Key::Char('h') | Key::Left => {
                self.move_cursor(self.cursor_ns.saturating_sub(self.column_ns()));
            }
            Key::Char('l') | Key::Right => {
                self.move_cursor(self.cursor_ns.saturating_add(self.column_ns()));
            }
            Key::Char('H') => self.pan(false),
            Key::Char('L') => self.pan(true),
            Key::Char('+') | Key::Char('=') => self.zoom(true),
            Key::Char('-') | Key::Char('_') => self.zoom(false),
            Key::Char('z') => {
                self.from_ns = timeline.start_ns();
                self.to_ns = timeline.end_ns();
                self.clamp_view();
            }
            Key::Home => self.move_cursor(timeline.start_ns()),
            Key::End => self.move_cursor(timeline.end_ns()),
            Key::Char(']') => {
                if let Some(sample) = timeline.next_sample(self.cursor_ns.saturating_add(1)) {
                    self.move_cursor(sample.time_ns);
                }
            }
            Key::Char('[') => {
                if let Some(sample) = timeline.previous_sample(self.cursor_ns) {
                    self.move_cursor(sample.time_ns);
                }
            }
            Key::Char('n') => {
                let at = self.marks.partition_point(|&(t, _)| t <= self.cursor_ns);
                if let Some(&(t, _)) = self.marks.get(at) {
                    self.move_cursor(t);
                }
            }
            Key::Char('N') => {
                let at = self.marks.partition_point(|&(t, _)| t < self.cursor_ns);
                if let Some(&(t, _)) = at.checked_sub(1).and_then(|i| self.marks.get(i)) {
                    self.move_cursor(t);
                }
            }
            Key::Char('j') | Key::Down => {
                self.selected = (self.selected + 1).min(self.rows.len().saturating_sub(1));
            }
            Key::Char('k') | Key::Up => self.selected = self.selected.saturating_sub(1),
            Key::Char('g') => self.selected = 0,
            Key::Char('G') => self.selected = self.rows.len().saturating_sub(1),
            _ => {}
        }
        Outcome::Handled
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_lowercase();
        self.refresh();
    }
}

// === drawing ===

/// The character and style of one column of a lane.
fn glyph(column: &Column) -> (char, Style) {
    if !column.alive {
        return (' ', Style::new());
    }
    if column.hold_ns == 0 && column.wait_ns == 0 {
        return if column.busy_ns > 0 {
            ('▒', Style::new().fg(Color::Gray))
        } else {
            ('─', Style::new().fg(Color::DarkGray))
        };
    }
    if column.wait_ns > column.hold_ns {
        let lock = column.waits.top().map_or(0, |(l, _)| l as usize);
        return ('░', Style::new().fg(lock_color(lock)));
    }
    let lock = column.holds.top().map_or(0, |(l, _)| l as usize);
    let full = column.hold_ns.saturating_mul(2) >= column.span_ns;
    (if full { '█' } else { '▄' }, Style::new().fg(lock_color(lock)))
}

fn marker(severity: Severity) -> (char, Style) {
    match severity {
        Severity::Error => ('E', Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        Severity::Warning => ('W', Style::new().fg(Color::Yellow)),
        Severity::Info => ('I', Style::new().fg(Color::Blue)),
    }
}

/// `text` cut to `width` characters, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        format!("{text:<width$}")
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

impl Widget for &TimelineView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let outer = block(format!(
            " Timeline: {} lanes ({} shown) ",
            self.data.timeline.lanes().len(),
            self.rows.len()
        ));
        let inner = outer.inner(area);
        outer.render(area, buf);
        // The events pane goes first when the screen is short: the lanes are the view.
        let events_height =
            if inner.height >= 3 + MIN_LANES + 1 + EVENTS_HEIGHT { EVENTS_HEIGHT } else { 0 };
        let [info, axis, marks, lanes_area, legend, events] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(events_height),
        ])
        .areas(inner);
        let name_w = NAME_WIDTH.min(inner.width);
        let plot_x = inner.x.saturating_add(name_w + 1);
        let plot_w = inner.width.saturating_sub(name_w + 1);
        self.plot_width.set(plot_w.max(1));
        let timeline = &self.data.timeline;
        let span = (self.to_ns - self.from_ns).max(1);
        let x_of = |t: u64| -> Option<u16> {
            if t < self.from_ns || t >= self.to_ns || plot_w == 0 {
                return None;
            }
            Some((u128::from(t - self.from_ns) * u128::from(plot_w) / u128::from(span)) as u16)
        };
        let cursor_x = x_of(self.cursor_ns);
        let column_ns = span / u64::from(plot_w.max(1));

        let lane_name = self
            .selected_lane()
            .and_then(|l| timeline.lanes().get(l))
            .map_or_else(String::new, |l| format!(" │ lane: {} `{}`", l.kind.name(), l.name));
        Paragraph::new(Line::from(vec![
            styled(
                format!("cursor {}", format_ns(self.cursor_ns)),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            raw(format!(
                " │ view {} … {} │ column {}{lane_name}",
                format_ns(self.from_ns),
                format_ns(self.to_ns),
                format_ns(column_ns.max(1)),
            )),
        ]))
        .render(info, buf);

        // The axis: the view's bounds and the cursor.
        let dim = Style::new().fg(Color::DarkGray);
        put(buf, axis, axis.x, fit("time", name_w.into()), dim);
        let left = format_ns(self.from_ns);
        let right = format_ns(self.to_ns);
        let (left_len, right_len) = (left.chars().count() as u16, right.chars().count() as u16);
        // The left bound goes after the cursor's mark when the mark would cover it.
        let left_x = match cursor_x {
            Some(x) if x <= left_len => x + 2,
            _ => 0,
        };
        if plot_w > left_x + left_len + right_len + 2 {
            put(buf, axis, plot_x + left_x, &left, dim);
            put(buf, axis, plot_x + plot_w - right_len, &right, dim);
        }
        if let Some(x) = cursor_x {
            put(buf, axis, plot_x + x, "▼", Style::new().fg(Color::Yellow));
        }

        // Finding markers.
        put(buf, marks, marks.x, fit("findings", name_w.into()), dim);
        let mut best: Vec<Option<Severity>> = vec![None; plot_w as usize];
        let first = self.marks.partition_point(|&(t, _)| t < self.from_ns);
        for &(t, severity) in self.marks[first..].iter().take_while(|&&(t, _)| t < self.to_ns) {
            if let Some(slot) = x_of(t).and_then(|x| best.get_mut(x as usize)) {
                *slot = (*slot).max(Some(severity));
            }
        }
        for (x, severity) in best.iter().enumerate() {
            if let Some(severity) = severity {
                let (c, style) = marker(*severity);
                put(buf, marks, plot_x + x as u16, c.to_string(), style);
            }
        }

        // Lanes.
        let height = lanes_area.height as usize;
        let mut offset = self.lane_offset.get();
        if self.selected < offset {
            offset = self.selected;
        } else if height > 0 && self.selected >= offset + height {
            offset = self.selected + 1 - height;
        }
        self.lane_offset.set(offset);
        let mut seen_locks: Vec<u32> = Vec::new();
        for (row, &lane_ix) in self.rows.iter().enumerate().skip(offset).take(height) {
            let y = lanes_area.y + (row - offset) as u16;
            let line = Rect { y, height: 1, ..lanes_area };
            let lane = &timeline.lanes()[lane_ix];
            let name = match lane.kind {
                LaneKind::Thread => lane.name.clone(),
                LaneKind::Task => format!("◦ {}", lane.name),
            };
            let style = if row == self.selected {
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else {
                Style::new()
            };
            put(buf, line, line.x, fit(&name, name_w.into()), style);
            put(buf, line, line.x + name_w, "│", dim);
            let columns = timeline.columns(lane_ix, self.from_ns, self.to_ns, plot_w as usize);
            for (x, column) in columns.iter().enumerate() {
                let (mut c, mut style) = glyph(column);
                for (lock, _) in column.holds.iter().chain(column.waits.iter()) {
                    if !seen_locks.contains(&lock) {
                        seen_locks.push(lock);
                    }
                }
                if cursor_x == Some(x as u16) {
                    if c == ' ' || c == '─' {
                        c = '┃';
                        style = Style::new().fg(Color::Yellow);
                    } else {
                        style = style.add_modifier(Modifier::REVERSED);
                    }
                }
                put(buf, line, plot_x + x as u16, c.to_string(), style);
            }
        }
        if self.rows.is_empty() {
            put(buf, lanes_area, lanes_area.x, "No lane matches the filter.", Style::new());
        }

        // Legend: the glyphs, then the locks drawn, in their colours.
        seen_locks.sort_unstable();
        let mut spans = vec![styled("█ held  ▄ held part  ░ waiting  ▒ polling  ─ idle │ ", dim)];
        for lock in seen_locks {
            if let Some(stats) = timeline.locks().get(lock as usize) {
                spans.push(styled(
                    format!("■ {} ", stats.name),
                    Style::new().fg(lock_color(lock as usize)),
                ));
            }
        }
        Paragraph::new(Line::from(spans)).render(legend, buf);

        // Events near the cursor.
        let rows = EVENTS_HEIGHT.saturating_sub(2) as usize;
        let lines: Vec<Line<'_>> = timeline
            .events_near(self.cursor_ns, rows)
            .into_iter()
            .map(|sample| {
                let lane = timeline.lanes().get(sample.lane);
                let who =
                    lane.map_or_else(String::new, |l| format!("{} `{}`", l.kind.name(), l.name));
                let at_cursor = sample.time_ns == self.cursor_ns;
                let style = if at_cursor {
                    Style::new().add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                };
                Line::from(styled(
                    format!(
                        "{} {:>10}  {:<28} {}",
                        if at_cursor { "▶" } else { " " },
                        format_ns(sample.time_ns),
                        fit(&who, 28),
                        sample.text
                    ),
                    style,
                ))
            })
            .collect();
        Paragraph::new(lines)
            .block(block(format!(" Events near {} ", format_ns(self.cursor_ns))))
            .render(events, buf);
    }
}
