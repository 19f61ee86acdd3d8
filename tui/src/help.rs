//! The help overlay (`?`): every key, from one table that the README's list is made from too.

use crate::app::Key;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};
use std::cell::Cell;

/// Every key, as `(where, keys, what it does)`, in the order the help lists them.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("everywhere", "Tab / Shift-Tab", "next / previous view"),
    ("everywhere", "1 2 3 4 5", "Findings, Locks, Tasks & threads, Timeline, Lock graph"),
    ("everywhere", "/", "search: filter the rows of the view (by lock, task, thread, kind, ...)"),
    ("everywhere", "Esc", "clear the filter; close the help"),
    ("everywhere", "?", "show / hide this help"),
    ("everywhere", "q, Ctrl-C", "quit"),
    ("while searching", "Enter / Esc", "keep the filter / clear it"),
    ("tables", "j k, ↓ ↑", "move the selection"),
    ("tables", "g G, Home End", "first / last row"),
    ("tables", "h l, ← →", "pick the sort column"),
    ("tables", "i", "invert the sort"),
    ("tables", "J K, PgDn PgUp", "scroll the detail pane"),
    ("findings, lock graph", "Enter", "show the finding's moment in the timeline"),
    ("timeline", "h l, ← →", "move the cursor one column"),
    ("timeline", "H L", "pan half a screen"),
    ("timeline", "+ -", "zoom in / out around the cursor"),
    ("timeline", "z", "zoom out to the whole trace"),
    ("timeline", "n N", "cursor to the next / previous finding"),
    ("timeline", "] [", "cursor to the next / previous recorded event"),
    ("timeline", "Home End", "cursor to the start / end of the trace"),
    ("timeline", "j k, ↓ ↑, g G", "select a lane"),
    ("help", "j k, ↓ ↑", "scroll a line"),
    ("help", "J K, PgDn PgUp", "scroll a page"),
    ("help", "g G, Home End", "first / last line"),
];

/// The help overlay's state: whether it is shown and how far it is scrolled. Drawn over the
/// middle of the screen by `impl Widget for &Help`.
#[derive(Debug, Default)]
pub struct Help {
    shown: bool,
    /// The first line shown; drawing clamps it so that the last page is full.
    scroll: Cell<u16>,
    /// Lines the last frame showed: what a page key scrolls by.
    page: Cell<u16>,
}

impl Help {
    /// Whether the help is shown.
    pub fn shown(&self) -> bool {
        self.shown
    }

    /// Shows the help, from its first line.
    pub fn open(&mut self) {
        self.shown = true;
        self.scroll.set(0);
    }

    /// Hides the help.
    pub fn close(&mut self) {
        self.shown = false;
    }

    /// The first line shown.
    pub fn scroll(&self) -> u16 {
        self.scroll.get()
    }

    /// Scrolls for the keys the help takes (j/k, J/K and the page keys, g/G and Home/End);
    /// returns whether `key` was one of them.
    pub fn handle_key(&mut self, key: Key) -> bool {
        let (scroll, page) = (self.scroll.get(), self.page.get().max(1));
        let to = match key {
            Key::Char('j') | Key::Down => scroll.saturating_add(1),
            Key::Char('k') | Key::Up => scroll.saturating_sub(1),
            Key::Char('J') | Key::Char(' ') | Key::PageDown => scroll.saturating_add(page),
            Key::Char('K') | Key::PageUp => scroll.saturating_sub(page),
            Key::Char('g') | Key::Home => 0,
            // Drawing clamps it to the last full page.
            Key::Char('G') | Key::End => u16::MAX,
            _ => return false,
        };
        self.scroll.set(to);
        true
    }
}

/// The help's lines: each section's title, then its keys.
fn lines() -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    let mut section = "";
    for &(place, keys, what) in KEYS {
        if place != section {
            if !section.is_empty() {
                lines.push(Line::default());
            }
            lines.push(Line::from(Span::styled(place, bold)));
            section = place;
        }
        lines.push(Line::from(vec![Span::styled(format!("  {keys:<16}"), bold), Span::raw(what)]));
    }
    lines
}

impl Widget for &Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = lines();
        let total = u16::try_from(lines.len()).unwrap_or(u16::MAX);
        let width = area.width.saturating_sub(4).min(96);
        let height = total.saturating_add(2).min(area.height.saturating_sub(2));
        let [_, middle, _] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(height),
            Constraint::Fill(1),
        ])
        .areas(area);
        let [_, popup, _] = Layout::horizontal([
            Constraint::Fill(1),
            Constraint::Length(width),
            Constraint::Fill(1),
        ])
        .areas(middle);
        let page = height.saturating_sub(2);
        let scroll = self.scroll.get().min(total.saturating_sub(page));
        self.scroll.set(scroll);
        self.page.set(page);
        let title = if page >= total {
            " Keys (? or Esc to close) ".to_owned()
        } else {
            format!(
                " Keys: lines {}-{} of {total}, j/k scroll (? or Esc to close) ",
                scroll + 1,
                (scroll + page).min(total)
            )
        };
        Clear.render(popup, buf);
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .scroll((scroll, 0))
            .render(popup, buf);
    }
}

/// The keys as a Markdown table, for the README.
pub fn keys_markdown() -> String {
    let mut out = String::from("| where | keys | what |\n| --- | --- | --- |\n");
    for &(place, keys, what) in KEYS {
        out.push_str(&format!("| {place} | `{keys}` | {what} |\n"));
    }
    out
}
