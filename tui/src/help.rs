//! The help overlay (`?`): every key, from one table that the README's list is made from too.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

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
];

/// The help overlay, drawn over the middle of the screen.
#[derive(Debug, Clone, Copy)]
pub struct HelpOverlay;

impl Widget for HelpOverlay {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = area.width.saturating_sub(4).min(96);
        let height = (KEYS.len() as u16 + 8).min(area.height.saturating_sub(2));
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
        Clear.render(popup, buf);
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let mut lines = Vec::new();
        let mut section = "";
        for &(place, keys, what) in KEYS {
            if place != section {
                if !section.is_empty() {
                    lines.push(Line::default());
                }
                lines.push(Line::from(Span::styled(place.to_owned(), bold)));
                section = place;
            }
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), bold),
                Span::raw(what.to_owned()),
            ]));
        }
        Paragraph::new(lines)
            .block(Block::bordered().title(" Keys (? or Esc to close) "))
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
