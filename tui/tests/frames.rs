//! Frame snapshots of every view on the committed scenario traces, also after key sequences
//! (sort, filter, jump from a finding to the timeline). Each frame is drawn into a 120×40
//! `TestBackend`, as a terminal of that size shows it.
//!
//! The traces are committed files, so times and names are stable; only the file name (not
//! its directory) is shown. After the scenarios are re-recorded, review the new frames with
//! `cargo insta review`.

use hindsight_analyzer::report::{Detail, FindingKind};
use hindsight_tui::help::keys_markdown;
use hindsight_tui::view::TableView;
use hindsight_tui::{App, Data, Key, Tab};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::PathBuf;

fn trace(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../traces").join(name)
}

fn app(name: &str) -> App {
    App::new(
        Data::load(&[trace(name)], &hindsight_analyzer::AnalyzeOptions::default())
            .expect("a committed trace loads"),
    )
}

/// The frame `app` draws on a 120×40 terminal.
fn frame(app: &App) -> String {
    frame_of_size(app, 120, 40)
}

/// The frame `app` draws on a terminal `width`×`height`.
fn frame_of_size(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test backend");
    terminal.draw(|f| f.render_widget(app, f.area())).expect("a test backend draws");
    terminal.backend().to_string()
}

/// Presses each character of `typed` as a key.
fn type_keys(app: &mut App, typed: &str) {
    for c in typed.chars() {
        app.handle_key(Key::Char(c));
    }
}

#[test]
fn findings_show_the_sqlite_git_cycle() {
    let app = app("lock_order_inversion.trace");
    let frame = frame(&app);
    assert!(frame.contains("locks `sqlite` and `git` are taken in opposite"), "{frame}");
    insta::assert_snapshot!(frame);
}

#[test]
fn enter_on_the_cycle_puts_the_timeline_cursor_on_its_first_acquisition() {
    let mut app = app("lock_order_inversion.trace");
    let finding = app.findings.selected().expect("the cycle is selected").clone();
    assert_eq!(finding.kind, FindingKind::LockOrderCycle);
    let Detail::LockOrderCycle(cycle) = &finding.detail else { panic!("{:?}", finding.detail) };
    let first = cycle.edges.iter().min_by_key(|e| e.held_since_ns).expect("edges");

    app.handle_key(Key::Enter);
    assert_eq!(app.tab(), Tab::Timeline);
    assert_eq!(app.timeline.cursor_ns(), first.held_since_ns);
    let lane = app.timeline.selected_lane().expect("a lane is selected");
    assert_eq!(app.data().timeline.lanes()[lane].name, first.thread);
    let frame = frame(&app);
    let at_cursor = format!("acquired `{}` at {}", first.from_lock, first.held_at);
    assert!(frame.lines().any(|l| l.contains('▶') && l.contains(&at_cursor)), "{frame}");
    insta::assert_snapshot!(frame);
}

#[test]
fn findings_of_a_captured_deadlock_and_its_moment() {
    let mut app = app("deadlock_captured.trace");
    insta::assert_snapshot!("deadlock_findings", frame(&app));
    app.handle_key(Key::Enter);
    insta::assert_snapshot!("deadlock_timeline", frame(&app));
}

#[test]
fn findings_of_an_incident_with_tasks_and_the_deadlock_moment() {
    let mut app = app("incident_hang.trace");
    insta::assert_snapshot!("incident_findings", frame(&app));
    type_keys(&mut app, "j");
    app.handle_key(Key::Enter);
    insta::assert_snapshot!("incident_second_finding_in_the_timeline", frame(&app));
}

#[test]
fn findings_of_stale_locks_with_the_second_selected() {
    let mut app = app("stale_lock.trace");
    app.handle_key(Key::Char('j'));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn search_filters_the_findings_by_lock() {
    let mut app = app("stale_lock.trace");
    app.handle_key(Key::Char('/'));
    type_keys(&mut app, "cache");
    insta::assert_snapshot!("search_typing", frame(&app));
    app.handle_key(Key::Enter);
    let frame = frame(&app);
    assert!(frame.contains("(1 shown)"), "{frame}");
    insta::assert_snapshot!("search_kept", frame);
    app.handle_key(Key::Esc);
    assert_eq!(app.filter(), "");
}

#[test]
fn locks_sorted_then_inverted() {
    let mut app = app("gate_lock.trace");
    app.handle_key(Key::Char('2'));
    insta::assert_snapshot!("locks_by_wait_max", frame(&app));
    type_keys(&mut app, "hh");
    insta::assert_snapshot!("locks_by_contended", frame(&app));
    type_keys(&mut app, "ij");
    insta::assert_snapshot!("locks_by_contended_ascending_second_selected", frame(&app));
}

#[test]
fn tasks_and_threads_of_a_tokio_program() {
    let mut app = app("tokio_mixed.trace");
    app.handle_key(Key::Char('3'));
    insta::assert_snapshot!("tasks", frame(&app));
    // Sort by busy time, longest first, and filter the workers.
    type_keys(&mut app, "lllli/worker");
    app.handle_key(Key::Enter);
    insta::assert_snapshot!("tasks_by_busy_filtered", frame(&app));
}

#[test]
fn timeline_whole_then_zoomed_and_panned() {
    let mut app = app("gate_lock.trace");
    app.handle_key(Key::Char('4'));
    insta::assert_snapshot!("timeline_whole", frame(&app));
    type_keys(&mut app, "nn++L");
    insta::assert_snapshot!("timeline_zoomed_panned", frame(&app));
    type_keys(&mut app, "z");
    let (from, to) = app.timeline.range_ns();
    assert_eq!((from, to), (app.data().timeline.start_ns(), app.data().timeline.end_ns()));
}

#[test]
fn timeline_of_tasks_and_their_locks() {
    let mut app = app("tokio_mixed.trace");
    type_keys(&mut app, "4jjjjjjj++++");
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn lock_graph_lists_the_cycle_with_its_witnesses() {
    let mut app = app("lock_order_inversion.trace");
    app.handle_key(Key::Char('5'));
    insta::assert_snapshot!("lock_graph_error", frame(&app));
    app.handle_key(Key::Enter);
    assert_eq!(app.tab(), Tab::Timeline);

    let mut app = self::app("gate_lock.trace");
    app.handle_key(Key::Char('5'));
    insta::assert_snapshot!("lock_graph_gated", frame(&app));
}

#[test]
fn lock_graph_of_a_clean_program_shows_its_hierarchy() {
    let mut app = app("ordered_hierarchy.trace");
    app.handle_key(Key::Char('5'));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn help_lists_every_key() {
    let mut app = app("lock_order_inversion.trace");
    app.handle_key(Key::Char('?'));
    let frame = frame(&app);
    insta::assert_snapshot!(frame);
    app.handle_key(Key::Esc);
    assert!(!app.help_shown());
}

#[test]
fn a_small_terminal_shows_rows_of_the_findings_and_locks() {
    let mut app = app("incident_hang.trace");
    let findings = frame_of_size(&app, 40, 10);
    let rows = findings.lines().filter(|l| l.starts_with("\"│") && l.contains("error ")).count();
    assert_eq!(rows, 2, "both findings show:\n{findings}");
    insta::assert_snapshot!("findings_40x10", findings);
    app.handle_key(Key::Char('2'));
    let locks = frame_of_size(&app, 40, 10);
    let first = &app.data().report.locks[app.locks.nav().selected_item().expect("a lock")].name;
    assert!(locks.contains(&format!("▶ {first}")), "the first lock's row shows:\n{locks}");
    insta::assert_snapshot!("locks_40x10", locks);
}

#[test]
fn eighty_columns_keep_the_lock_names_and_drop_columns_from_the_right() {
    let mut app = app("gate_lock.trace");
    app.handle_key(Key::Char('2'));
    let frame = frame_of_size(&app, 80, 24);
    let header = frame.lines().find(|l| l.contains("Kind")).expect("the header");
    assert!(header.contains("Lock "), "{header}");
    assert!(!header.contains("Owner"), "the last column gives way: {header}");
    for lock in &app.data().report.locks {
        assert!(frame.contains(lock.name.as_str()), "`{}` shows:\n{frame}", lock.name);
    }
    insta::assert_snapshot!("locks_80x24", frame);
}

#[test]
fn the_help_scrolls_to_its_last_key() {
    let mut app = app("lock_order_inversion.trace");
    app.handle_key(Key::Char('?'));
    let (_, _, last) = hindsight_tui::help::KEYS.last().expect("keys");
    let first_page = frame_of_size(&app, 80, 24);
    assert!(!first_page.contains(last), "the help is longer than 24 lines:\n{first_page}");
    app.handle_key(Key::End);
    let end = frame_of_size(&app, 80, 24);
    assert!(end.contains(last), "{end}");
    insta::assert_snapshot!("help_scrolled_to_its_end", end);
    app.handle_key(Key::Char('k'));
    assert_eq!(app.help.scroll() + 1, {
        app.handle_key(Key::Char('j'));
        app.help.scroll()
    });
    // Tall enough, the whole help shows at once, its last row too.
    app.handle_key(Key::Home);
    let tall = frame_of_size(&app, 200, 70);
    assert!(tall.contains(last), "{tall}");
}

#[test]
fn no_key_sequence_panics_on_any_view() {
    let keys = [
        Key::Char('j'),
        Key::Char('k'),
        Key::Char('g'),
        Key::Char('G'),
        Key::Char('h'),
        Key::Char('l'),
        Key::Char('i'),
        Key::Char('H'),
        Key::Char('L'),
        Key::Char('+'),
        Key::Char('-'),
        Key::Char('z'),
        Key::Char('n'),
        Key::Char('N'),
        Key::Char('['),
        Key::Char(']'),
        Key::Char('J'),
        Key::Char('K'),
        Key::Enter,
        Key::Esc,
        Key::Up,
        Key::Down,
        Key::Left,
        Key::Right,
        Key::Home,
        Key::End,
        Key::PageUp,
        Key::PageDown,
        Key::Tab,
        Key::BackTab,
        Key::Backspace,
    ];
    for name in ["lock_order_inversion.trace", "deadlock_captured.trace", "stale_lock.trace"] {
        let mut app = app(name);
        for tab in '1'..='5' {
            app.handle_key(Key::Char(tab));
            for (i, &key) in keys.iter().cycle().take(200).enumerate() {
                app.handle_key(key);
                if i % 17 == 0 {
                    // Filters that match nothing, then clear them.
                    app.handle_key(Key::Char('/'));
                    type_keys(&mut app, "zzz");
                    let _ = frame(&app);
                    app.handle_key(Key::Esc);
                }
                let _ = frame(&app);
            }
        }
    }
}

#[test]
fn tiny_terminals_draw_without_panicking() {
    let mut app = app("lock_order_inversion.trace");
    for tab in '1'..='5' {
        app.handle_key(Key::Char(tab));
        for (w, h) in [(1, 1), (10, 5), (40, 12), (300, 100)] {
            let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test backend");
            terminal.draw(|f| f.render_widget(&app, f.area())).expect("draws");
        }
    }
}

#[test]
fn the_readme_lists_every_key() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the workspace README exists");
    assert!(
        readme.contains(&keys_markdown()),
        "README.md's key table is stale:\n{}",
        keys_markdown()
    );
}

#[test]
fn a_tokio_lock_s_sites_say_they_are_its_creation_line() {
    // tokio records its own locks' operations without a call site, only the creation line.
    let mut app = app("tokio_mixed.trace");
    app.handle_key(Key::Char('2'));
    let frame = frame(&app);
    let created = "created at traces/src/bin/tokio_mixed.rs:65:22 (no call site)";
    assert_eq!(frame.matches(created).count(), 2, "{frame}");
    insta::assert_snapshot!("locks_of_a_tokio_program", frame);
}
