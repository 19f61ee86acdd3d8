//! The views, one module per tab, and what they share: a sortable, filterable table, the
//! colours, and the frame around the tab (title bar, tabs, footer).
//!
//! Each view keeps its own state (selection, sort, filter, scroll: no ratatui types) and is
//! drawn by `impl Widget for &View`.

pub mod findings;
pub mod lock_graph;
pub mod locks;
pub mod tasks;
pub mod timeline;

use crate::app::{App, Key, Tab};
use crate::data::{sanitize, Moment};
use hindsight_analyzer::report::{format_ns, Severity};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell as TableCell, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap,
};
use std::borrow::Cow;
use std::cell::Cell;

/// What a view did with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key did something (or nothing) in the view.
    Handled,
    /// Show this moment in the timeline.
    Jump(Moment),
}

/// What every view offers the app.
pub trait View {
    /// Handles a key that is not global.
    fn handle_key(&mut self, key: Key) -> Outcome;
    /// The view's filter (empty when none).
    fn filter(&self) -> &str;
    /// Sets the view's filter: only rows whose text contains it (ignoring case) are shown.
    fn set_filter(&mut self, filter: &str);
}

/// A view over a [`TableNav`]: the table owns its keys, filter and detail scroll, so the view
/// gives only its rows and what Enter does, and is a [`View`] by that.
pub trait TableView {
    /// The table's selection, sort, filter and scroll.
    fn nav(&self) -> &TableNav;
    /// The table's selection, sort, filter and scroll, to change.
    fn nav_mut(&mut self) -> &mut TableNav;
    /// Recomputes the rows shown from the filter and the sort.
    fn refresh(&mut self);
    /// What Enter does: nothing, unless the view shows the selection somewhere.
    fn enter(&self) -> Outcome {
        Outcome::Handled
    }
}

impl<V: TableView> View for V {
    fn handle_key(&mut self, key: Key) -> Outcome {
        if key == Key::Enter {
            return self.enter();
        }
        if self.nav_mut().handle_key(key) {
            self.refresh();
        }
        Outcome::Handled
    }

    fn filter(&self) -> &str {
        &self.nav().filter
    }

    fn set_filter(&mut self, filter: &str) {
        self.nav_mut().set_filter(filter);
        self.refresh();
    }
}

/// Whether `text` contains `filter`, ignoring case (`filter` is lowercase already).
pub(crate) fn matches(filter: &str, text: &str) -> bool {
    filter.is_empty() || text.to_lowercase().contains(filter)
}

// === the sortable, filterable table ===

/// Selection, sort and scroll of a table view.
#[derive(Debug, Default)]
pub struct TableNav {
    /// The selected row, among those shown.
    pub selected: usize,
    /// The column sorted by.
    pub sort: usize,
    /// Sorted in descending order.
    pub descending: bool,
    /// The rows shown (indices into the view's items), in order.
    pub rows: Vec<usize>,
    /// The filter, lowercase.
    pub filter: String,
    /// Lines the detail pane is scrolled by.
    pub detail_scroll: u16,
    columns: usize,
    offset: Cell<usize>,
}

impl TableNav {
    /// A table of `columns` columns sorted by `sort`.
    pub fn new(columns: usize, sort: usize, descending: bool) -> Self {
        TableNav { sort, descending, columns, ..TableNav::default() }
    }

    /// The item of the selected row.
    pub fn selected_item(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }

    /// Handles the keys every table shares: moving (j/k, arrows, g/G, Home/End), sorting
    /// (h/l, arrows, i) and scrolling the detail pane (J/K, PageDown/PageUp). Returns whether
    /// the rows must be sorted again.
    pub fn handle_key(&mut self, key: Key) -> bool {
        let last = self.rows.len().saturating_sub(1);
        let before = self.selected;
        match key {
            Key::Char('j') | Key::Down => self.selected = (self.selected + 1).min(last),
            Key::Char('k') | Key::Up => self.selected = self.selected.saturating_sub(1),
            Key::Char('g') | Key::Home => self.selected = 0,
            Key::Char('G') | Key::End => self.selected = last,
            Key::Char('J') | Key::PageDown => {
                self.detail_scroll = self.detail_scroll.saturating_add(5);
            }
            Key::Char('K') | Key::PageUp => {
                self.detail_scroll = self.detail_scroll.saturating_sub(5);
            }
            Key::Char('h') | Key::Left if self.columns > 0 => {
                self.sort = (self.sort + self.columns - 1) % self.columns;
                return true;
            }
            Key::Char('l') | Key::Right if self.columns > 0 => {
                self.sort = (self.sort + 1) % self.columns;
                return true;
            }
            Key::Char('i') => {
                self.descending = !self.descending;
                return true;
            }
            _ => {}
        }
        if self.selected != before {
            self.detail_scroll = 0;
        }
        false
    }

    /// Replaces the rows, keeping the selected item selected if it is still shown.
    pub fn set_rows(&mut self, rows: Vec<usize>) {
        let keep = self.selected_item();
        self.rows = rows;
        self.selected = keep
            .and_then(|item| self.rows.iter().position(|&r| r == item))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
    }

    /// The items among the first `count` whose text (`haystack` of the item) contains the
    /// filter, in order.
    pub fn matching(&self, count: usize, haystack: impl Fn(usize) -> String) -> Vec<usize> {
        (0..count).filter(|&i| matches(&self.filter, &haystack(i))).collect()
    }

    /// Sets the filter (lowercased); the caller recomputes the rows.
    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_lowercase();
    }

    /// Splits `area` into the table (its rows, about `share` lines high) and the detail pane
    /// under it. On a short screen the table keeps a few rows and the detail pane gives way.
    pub fn split(&self, area: Rect, share: u16) -> [Rect; 2] {
        let height = table_height(self.rows.len(), share, area.height);
        Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).areas(area)
    }

    /// Draws the detail pane of the selection: `lines` in a block titled `title`, wrapped and
    /// scrolled as J/K left it.
    pub fn render_detail(&self, area: Rect, buf: &mut Buffer, title: &str, lines: Vec<Line<'_>>) {
        Paragraph::new(lines)
            .block(block(title.to_owned()))
            .wrap(Wrap { trim: false })
            .scroll((self.detail_scroll, 0))
            .render(area, buf);
    }

    /// Draws `rows` under `header` with the selection highlighted and the sort column marked,
    /// scrolled so that the selection shows. Columns that do not fit are dropped from the
    /// right, so the first (what names the row) always shows.
    pub fn render<'a>(
        &self,
        area: Rect,
        buf: &mut Buffer,
        block: Block<'_>,
        header: &[&str],
        widths: &[Constraint],
        rows: Vec<Vec<Span<'a>>>,
    ) {
        let room = block.inner(area).width.saturating_sub(HIGHLIGHT_SYMBOL_WIDTH);
        let shown = columns_that_fit(widths, room, COLUMN_SPACING);
        let header = Row::new(header.iter().take(shown).enumerate().map(|(i, title)| {
            if self.columns > 0 && i == self.sort {
                let arrow = if self.descending { "▼" } else { "▲" };
                format!("{title}{arrow}")
            } else {
                (*title).to_owned()
            }
        }))
        .style(Style::new().add_modifier(Modifier::BOLD));
        let rows = rows
            .into_iter()
            .map(|cells| Row::new(cells.into_iter().take(shown).map(TableCell::from)));
        let table = Table::new(rows, widths[..shown].to_vec())
            .header(header)
            .block(block)
            .column_spacing(COLUMN_SPACING)
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol(HIGHLIGHT_SYMBOL);
        let mut state = TableState::default()
            .with_offset(self.offset.get())
            .with_selected((!self.rows.is_empty()).then_some(self.selected));
        StatefulWidget::render(table, area, buf, &mut state);
        self.offset.set(state.offset());
    }
}

/// Marks the selected row of a table.
const HIGHLIGHT_SYMBOL: &str = "▶ ";
/// The width of [`HIGHLIGHT_SYMBOL`], which the table keeps free left of its columns.
const HIGHLIGHT_SYMBOL_WIDTH: u16 = 2;
/// Cells between the columns of a table.
const COLUMN_SPACING: u16 = 1;

// === shared looks ===

/// The colour of a lock (by its index), the same in every view.
pub fn lock_color(lock: usize) -> Color {
    const PALETTE: [Color; 10] = [
        Color::Cyan,
        Color::Yellow,
        Color::Magenta,
        Color::Green,
        Color::LightRed,
        Color::LightBlue,
        Color::LightYellow,
        Color::LightMagenta,
        Color::LightGreen,
        Color::Blue,
    ];
    PALETTE[lock % PALETTE.len()]
}

/// The label and style of a severity.
pub fn severity_label(severity: Severity) -> (&'static str, Style) {
    match severity {
        Severity::Error => ("error", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        Severity::Warning => ("warn", Style::new().fg(Color::Yellow)),
        Severity::Info => ("info", Style::new().fg(Color::Blue)),
    }
}

/// A duration or time, or `-` for zero.
pub(crate) fn ns_or_dash(ns: u64) -> String {
    if ns == 0 {
        "-".to_owned()
    } else {
        format_ns(ns)
    }
}

/// Lines a table needs besides its rows: two borders and the header.
const TABLE_CHROME: u16 = 3;

/// Rows a table keeps on a short screen before its detail pane gets any line.
const MIN_TABLE_ROWS: u16 = 3;

/// Lines under which a detail pane (two borders and a line) shows nothing.
const MIN_DETAIL_HEIGHT: u16 = 3;

/// The height of a table of `rows` rows (with its borders and header) over an area `height`
/// lines high, of which it is offered `share`: all its rows if they fit in `share`, else
/// `share`, but never fewer than [`MIN_TABLE_ROWS`] rows while the area has them, and the
/// whole area when what would be left is too small for a detail pane to show a line.
fn table_height(rows: usize, share: u16, height: u16) -> u16 {
    let wanted = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(TABLE_CHROME);
    let least = wanted.min(TABLE_CHROME + MIN_TABLE_ROWS);
    let table = wanted.min(share).max(least).min(height);
    if height - table < MIN_DETAIL_HEIGHT {
        height
    } else {
        table
    }
}

/// Cells of free width a `Fill` column keeps before the columns right of it are dropped.
const MIN_FILL_WIDTH: u16 = 12;

/// How many of the columns of `widths`, from the left, fit side by side in `width` cells with
/// `spacing` between them (at least the first: it names the row).
fn columns_that_fit(widths: &[Constraint], width: u16, spacing: u16) -> usize {
    let mut used = 0u16;
    let mut fit = 0;
    for (i, constraint) in widths.iter().enumerate() {
        let least = match *constraint {
            Constraint::Length(n) | Constraint::Min(n) | Constraint::Max(n) => n,
            Constraint::Fill(_) => MIN_FILL_WIDTH,
            Constraint::Percentage(_) | Constraint::Ratio(..) => 1,
        };
        let needed = used.saturating_add(least).saturating_add(if i > 0 { spacing } else { 0 });
        if i > 0 && needed > width {
            break;
        }
        used = needed;
        fit += 1;
    }
    fit.max(1).min(widths.len())
}

/// `1 error`, `2 errors`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A site for a narrow column: its last two path components, `dir/file.rs:line:col`.
pub(crate) fn short_site(site: &str) -> String {
    let mut parts = site.rsplitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(dir), Some(_)) => format!("…/{dir}/{file}"),
        _ => site.to_owned(),
    }
}

/// Writes `text` ([`sanitize`]d) on the first row of `area` from column `x`, clipped to
/// `area`: nothing outside it is touched, however small it is.
pub(crate) fn put(buf: &mut Buffer, area: Rect, x: u16, text: impl AsRef<str>, style: Style) {
    let area = area.intersection(buf.area);
    if area.height > 0 && x >= area.x && x < area.right() {
        let text = sanitize(text.as_ref());
        buf.set_stringn(x, area.y, text, usize::from(area.right() - x), style);
    }
}

/// A span of `text` in `style`, with what must not reach a terminal escaped
/// ([`sanitize`]): every string from a trace becomes a span through here.
pub(crate) fn styled<'a>(text: impl Into<Cow<'a, str>>, style: Style) -> Span<'a> {
    let text = text.into();
    let escaped = match sanitize(&text) {
        Cow::Owned(escaped) => Some(escaped),
        Cow::Borrowed(_) => None,
    };
    Span::styled(escaped.map_or(text, Cow::Owned), style)
}

/// A span of `text` in the default style; see [`styled`].
pub(crate) fn raw<'a>(text: impl Into<Cow<'a, str>>) -> Span<'a> {
    styled(text, Style::new())
}

/// A line of `text` in the default style; see [`styled`].
pub(crate) fn line<'a>(text: impl Into<Cow<'a, str>>) -> Line<'a> {
    Line::from(raw(text))
}

/// A bordered block with a title.
pub(crate) fn block(title: String) -> Block<'static> {
    Block::bordered().title(raw(title))
}

/// A heading line in a detail pane.
pub(crate) fn heading(text: &str) -> Line<'static> {
    Line::from(styled(text.to_owned(), Style::new().add_modifier(Modifier::BOLD)))
}

/// A `label: value` line in a detail pane.
pub(crate) fn field(label: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<10} "), Style::new().fg(Color::DarkGray)),
        raw(value),
    ])
}

// === the frame around the views ===

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [title, tabs, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
        render_title(self, title, buf);
        render_tabs(self, tabs, buf);
        match self.tab() {
            Tab::Findings => self.findings.render(body, buf),
            Tab::Locks => self.locks.render(body, buf),
            Tab::Tasks => self.tasks.render(body, buf),
            Tab::Timeline => self.timeline.render(body, buf),
            Tab::LockGraph => self.graph.render(body, buf),
        }
        render_footer(self, footer, buf);
        if self.help_shown() {
            self.help.render(area, buf);
        }
    }
}

fn render_title(app: &App, area: Rect, buf: &mut Buffer) {
    let report = &app.data().report;
    let (errors, warnings, infos) = report.counts();
    let trace = &report.trace;
    let mut spans = Vec::new();
    if trace.damaged {
        // Said first: events were lost in the middle of the trace.
        spans.push(Span::styled(
            " DAMAGED TRACE: events lost, see `hindsight info` ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ));
    }
    spans.extend([
        Span::styled(" hindsight ", Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)),
        raw(format!(
            " {} │ {} events over {} │ ",
            app.data().files.join(", "),
            trace.events,
            format_ns(trace.duration_ns)
        )),
        Span::styled(count(errors, "error", "errors"), severity_label(Severity::Error).1),
        Span::raw(" · "),
        Span::styled(count(warnings, "warning", "warnings"), severity_label(Severity::Warning).1),
        Span::raw(" · "),
        Span::styled(format!("{infos} info"), severity_label(Severity::Info).1),
    ]);
    if trace.truncated_bytes > 0 || trace.dropped_events > 0 {
        spans.push(Span::styled(
            format!(
                " │ incomplete: {} bytes unread, {} events lost",
                trace.truncated_bytes, trace.dropped_events
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = Vec::new();
    for (i, tab) in Tab::ALL.into_iter().enumerate() {
        let label = format!("{} {}", i + 1, tab.title());
        if tab == app.tab() {
            spans.push(Span::styled(
                format!("[{label}]"),
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ));
        } else {
            spans.push(Span::raw(format!(" {label} ")));
        }
        spans.push(Span::raw(" "));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let dim = Style::new().fg(Color::DarkGray);
    let line = match app.search_input() {
        Some(input) => Line::from(vec![
            Span::styled("/", Style::new().add_modifier(Modifier::BOLD)),
            raw(input.to_owned()),
            Span::styled("█", dim),
            Span::styled("  Enter keep the filter · Esc clear it", dim),
        ]),
        None if !app.filter().is_empty() => Line::from(vec![
            styled(format!("filter: {} ", app.filter()), Style::new().fg(Color::Yellow)),
            Span::styled(" / change · Esc clear · ? help · q quit", dim),
        ]),
        None => Line::from(Span::styled(footer_hint(app.tab()), dim)),
    };
    Paragraph::new(line).render(area, buf);
}

fn footer_hint(tab: Tab) -> &'static str {
    match tab {
        Tab::Findings => {
            "Tab/1-5 views · j/k move · Enter show in timeline · h/l sort · i invert · / search · ? help · q quit"
        }
        Tab::Locks | Tab::Tasks => {
            "Tab/1-5 views · j/k move · h/l sort · i invert · J/K scroll detail · / search · ? help · q quit"
        }
        Tab::Timeline => {
            "h/l cursor · H/L pan · +/- zoom · z whole trace · n/N findings · [/] events · j/k lanes · ? help"
        }
        Tab::LockGraph => {
            "Tab/1-5 views · j/k cycle · Enter show in timeline · J/K scroll · / search · ? help · q quit"
        }
    }
}
