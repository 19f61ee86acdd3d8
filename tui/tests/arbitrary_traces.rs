//! Whatever a well-framed trace says (ids never defined, time running backwards or spanning
//! all of `u64`, locks released that were never taken), every view of it draws, and keys move
//! through it, without a panic.

use hindsight_recorder::format::arbitrary::well_framed_trace;
use hindsight_tui::{App, Data, Key};
use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The keys pressed on each view: moves, zooms, pans, jumps and a filter.
const KEYS: [Key; 14] = [
    Key::Down,
    Key::Enter,
    Key::Char('G'),
    Key::Char('+'),
    Key::Char('+'),
    Key::Char('l'),
    Key::Char('L'),
    Key::Char('-'),
    Key::Char('n'),
    Key::Char('s'),
    Key::Char('/'),
    Key::Char('a'),
    Key::Esc,
    Key::End,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn every_view_of_any_trace_draws(bytes in well_framed_trace()) {
        let data = Data::from_bytes(vec![("arbitrary.trace".to_owned(), bytes)])
            .expect("a well-framed trace loads");
        let mut app = App::new(data);
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("a test backend");
        for tab in '1'..='5' {
            app.handle_key(Key::Char(tab));
            for key in KEYS {
                app.handle_key(key);
                terminal.draw(|f| f.render_widget(&app, f.area())).expect("draws");
            }
        }
    }
}
