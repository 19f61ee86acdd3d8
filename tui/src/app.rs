//! The state of the screen and what each key does to it. Pure: no terminal, no ratatui type;
//! [`App::handle_key`] changes the state and says whether to quit, and drawing (in
//! [`view`](crate::view)) reads the state.

use crate::data::Data;
use crate::help::Help;
use crate::view::findings::FindingsView;
use crate::view::lock_graph::LockGraphView;
use crate::view::locks::LocksView;
use crate::view::tasks::TasksView;
use crate::view::timeline::TimelineView;
use crate::view::{Outcome, View};
use std::rc::Rc;

/// A key press, as the app sees it (the terminal module translates crossterm's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character (with shift already applied: `G`, `?`).
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Tab.
    Tab,
    /// Shift-Tab.
    BackTab,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Backspace.
    Backspace,
    /// Ctrl-C.
    CtrlC,
}

/// What the caller should do after a key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Draw the next frame and wait for the next key.
    Continue,
    /// Leave the UI.
    Quit,
}

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Findings grouped by severity.
    Findings,
    /// Locks and their contention.
    Locks,
    /// Tasks and threads.
    Tasks,
    /// One lane per thread or task over time.
    Timeline,
    /// Lock-order cycles.
    LockGraph,
}

impl Tab {
    /// Every tab, in order (the number keys 1 to 5).
    pub const ALL: [Tab; 5] =
        [Tab::Findings, Tab::Locks, Tab::Tasks, Tab::Timeline, Tab::LockGraph];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Findings => "Findings",
            Tab::Locks => "Locks",
            Tab::Tasks => "Tasks & threads",
            Tab::Timeline => "Timeline",
            Tab::LockGraph => "Lock graph",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    fn offset(self, by: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[((self.index() as isize + by).rem_euclid(n)) as usize]
    }
}

/// The whole UI state; see the module docs.
#[derive(Debug)]
pub struct App {
    data: Rc<Data>,
    tab: Tab,
    /// The Findings view.
    pub findings: FindingsView,
    /// The Locks view.
    pub locks: LocksView,
    /// The Tasks & threads view.
    pub tasks: TasksView,
    /// The Timeline view.
    pub timeline: TimelineView,
    /// The Lock graph view.
    pub graph: LockGraphView,
    /// The help overlay.
    pub help: Help,
    search: Option<String>,
}

impl App {
    /// The UI over analysed data, on the Findings tab.
    pub fn new(data: Data) -> App {
        let data = Rc::new(data);
        App {
            findings: FindingsView::new(Rc::clone(&data)),
            locks: LocksView::new(Rc::clone(&data)),
            tasks: TasksView::new(Rc::clone(&data)),
            timeline: TimelineView::new(Rc::clone(&data)),
            graph: LockGraphView::new(Rc::clone(&data)),
            data,
            tab: Tab::Findings,
            help: Help::default(),
            search: None,
        }
    }

    /// The analysed data.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The tab shown.
    pub fn tab(&self) -> Tab {
        self.tab
    }

    /// Whether the help overlay is shown.
    pub fn help_shown(&self) -> bool {
        self.help.shown()
    }

    /// The search text being typed, while `/` is active.
    pub fn search_input(&self) -> Option<&str> {
        self.search.as_deref()
    }

    /// The filter of the tab shown (empty when none).
    pub fn filter(&self) -> &str {
        match self.tab {
            Tab::Findings => self.findings.filter(),
            Tab::Locks => self.locks.filter(),
            Tab::Tasks => self.tasks.filter(),
            Tab::Timeline => self.timeline.filter(),
            Tab::LockGraph => self.graph.filter(),
        }
    }

    fn view_mut(&mut self) -> &mut dyn View {
        match self.tab {
            Tab::Findings => &mut self.findings,
            Tab::Locks => &mut self.locks,
            Tab::Tasks => &mut self.tasks,
            Tab::Timeline => &mut self.timeline,
            Tab::LockGraph => &mut self.graph,
        }
    }

    /// Handles one key press; see [`help`](crate::help) for what each key does.
    pub fn handle_key(&mut self, key: Key) -> Action {
        if key == Key::CtrlC {
            return Action::Quit;
        }
        if let Some(input) = &mut self.search {
            match key {
                Key::Enter => self.search = None,
                Key::Esc => {
                    self.search = None;
                    self.view_mut().set_filter("");
                }
                Key::Backspace => {
                    input.pop();
                    let filter = input.clone();
                    self.view_mut().set_filter(&filter);
                }
                Key::Char(c) => {
                    input.push(c);
                    let filter = input.clone();
                    self.view_mut().set_filter(&filter);
                }
                _ => {}
            }
            return Action::Continue;
        }
        if self.help.shown() {
            match key {
                Key::Char('q') => return Action::Quit,
                Key::Char('?') | Key::Esc | Key::Enter => self.help.close(),
                _ => {
                    self.help.handle_key(key);
                }
            }
            return Action::Continue;
        }
        match key {
            Key::Char('q') => return Action::Quit,
            Key::Char('?') => self.help.open(),
            Key::Tab => self.tab = self.tab.offset(1),
            Key::BackTab => self.tab = self.tab.offset(-1),
            Key::Char(c @ '1'..='5') => {
                self.tab = Tab::ALL[(c as u8 - b'1') as usize];
            }
            Key::Char('/') => self.search = Some(self.filter().to_owned()),
            Key::Esc if !self.filter().is_empty() => self.view_mut().set_filter(""),
            _ => {
                if let Outcome::Jump(moment) = self.view_mut().handle_key(key) {
                    self.timeline.jump(&moment);
                    self.tab = Tab::Timeline;
                }
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::TraceBuilder;

    fn app() -> App {
        let mut b = TraceBuilder::new("t");
        let main = b.thread("main");
        let a = b.mutex("a");
        let site = b.site("src/a.rs", 1, 1);
        b.on(main).acquire(a, site);
        let data = Data::from_bytes(vec![("t.trace".to_owned(), b.build())]).expect("loads");
        App::new(data)
    }

    #[test]
    fn tabs_switch_by_number_and_by_tab() {
        let mut app = app();
        assert_eq!(app.tab(), Tab::Findings);
        app.handle_key(Key::Char('4'));
        assert_eq!(app.tab(), Tab::Timeline);
        app.handle_key(Key::Tab);
        assert_eq!(app.tab(), Tab::LockGraph);
        app.handle_key(Key::Tab);
        assert_eq!(app.tab(), Tab::Findings);
        app.handle_key(Key::BackTab);
        assert_eq!(app.tab(), Tab::LockGraph);
    }

    #[test]
    fn search_types_into_the_filter_of_the_view_shown() {
        let mut app = app();
        app.handle_key(Key::Char('2'));
        for key in [Key::Char('/'), Key::Char('x'), Key::Char('q'), Key::Backspace] {
            assert_eq!(app.handle_key(key), Action::Continue, "q is text while searching");
        }
        assert_eq!(app.search_input(), Some("x"));
        assert_eq!(app.filter(), "x");
        app.handle_key(Key::Enter);
        assert_eq!((app.search_input(), app.filter()), (None, "x"));
        app.handle_key(Key::Char('1'));
        assert_eq!(app.filter(), "", "each view has its own filter");
        app.handle_key(Key::Char('2'));
        app.handle_key(Key::Esc);
        assert_eq!(app.filter(), "");
    }

    #[test]
    fn help_opens_and_closes_and_q_quits() {
        let mut app = app();
        app.handle_key(Key::Char('?'));
        assert!(app.help_shown());
        app.handle_key(Key::Char('j'));
        app.handle_key(Key::Char('x'));
        assert!(app.help_shown(), "keys other than ?, Esc, Enter, q leave the help open");
        app.handle_key(Key::Esc);
        assert!(!app.help_shown());
        assert_eq!(app.handle_key(Key::Char('q')), Action::Quit);
        assert_eq!(app.handle_key(Key::CtrlC), Action::Quit);
    }
}
