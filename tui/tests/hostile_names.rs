//! Names from a trace never drive the terminal: a lock, thread, task, site or file name with
//! an escape sequence, a bell, a carriage return or a right-to-left override shows, in every
//! view and in the help, as visible escapes (`\u{1b}`), never as the raw characters.

use hindsight_recorder::format::TraceBuilder;
use hindsight_tui::{App, Data, Key};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

/// Two threads taking two locks in opposite orders (a lock-order cycle), one of them in a
/// task, every name hostile.
fn hostile_app() -> App {
    let mut b = TraceBuilder::new("evil\u{1b}]0;pwned\u{7}");
    let main = b.thread("main\u{1b}[2J");
    let other = b.thread("other\r\u{202e}txt.exe");
    let site = b.site("src/\u{1b}[31mred.rs", 1, 1);
    let task = b.task("task\u{9b}6n", Some(site));
    let (a, z) = (b.mutex("lock\u{1b}[31ma"), b.mutex("lock\u{7}z"));
    b.advance(1_000);
    b.on(main).acquire(a, site).acquire(z, site).release(z).release(a);
    b.advance(1_000);
    b.in_task(other, task).poll_start().acquire(z, site).acquire(a, site).release(a).release(z);
    let bytes = b.build();
    let data = Data::from_bytes(vec![("evil\u{1b}[5m.trace".to_owned(), bytes)]).expect("loads");
    App::new(data)
}

fn frame(app: &App) -> Buffer {
    let area = Rect::new(0, 0, 160, 50);
    let mut buf = Buffer::empty(area);
    app.render(area, &mut buf);
    buf
}

/// Whether a cell symbol holds something that must not reach a terminal.
fn unsafe_symbol(symbol: &str) -> bool {
    symbol.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))
}

#[test]
fn hostile_names_show_escaped_in_every_view() {
    let mut app = hostile_app();
    assert!(
        app.data().report.locks.iter().any(|l| l.name.contains('\u{1b}')),
        "the report keeps the raw name; the UI escapes it"
    );
    let mut seen = String::new();
    for keys in [
        &[][..],
        &[Key::Char('2')],
        &[Key::Char('3')],
        &[Key::Char('4')],
        &[Key::Char('5')],
        &[Key::Char('1'), Key::Enter],
        &[Key::Char('?')],
    ] {
        for &key in keys {
            app.handle_key(key);
        }
        let buf = frame(&app);
        let text: String = buf.content().iter().map(|c| c.symbol()).collect();
        let bad: Vec<&str> =
            buf.content().iter().map(|c| c.symbol()).filter(|s| unsafe_symbol(s)).collect();
        assert!(bad.is_empty(), "raw control characters after {keys:?}: {bad:?}\n{text}");
        seen.push_str(&text);
    }
    for escaped in [
        "lock\\u{1b}[31ma",
        "lock\\u{7}z",
        "main\\u{1b}[2J",
        "other\\u{d}\\u{202e}txt.exe",
        "task\\u{9b}6n",
        "evil\\u{1b}[5m.trace",
    ] {
        assert!(seen.contains(escaped), "`{escaped}` shows somewhere");
    }
}
