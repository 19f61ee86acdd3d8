//! Every view and every overlay draws at every terminal size, after the key sequences people
//! use (switching tabs, scrolling, sorting, filtering, opening the help and scrolling it,
//! selecting a finding and jumping to its moment in the timeline), on committed traces with
//! findings, tasks and many lanes.
//!
//! By default every state is drawn at a few sizes, and the sweep covers every width from 1 to
//! 300 at a spread of heights and every height from 1 to 100 at a spread of widths, each size
//! with the next state in turn: seconds, where a debug build solves a few layouts per frame.
//! `HINDSIGHT_TUI_SIZES=all` draws every state at every size from 1×1 to 300×100 (a release
//! build takes minutes: `cargo test --release -p hindsight-tui --test sizes`).

use hindsight_analyzer::AnalyzeOptions;
use hindsight_tui::{App, Data, Key};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::path::PathBuf;

/// Heights tried at every width, and widths tried at every height.
const SPREAD_HEIGHTS: [u16; 3] = [2, 10, 24];
const SPREAD_WIDTHS: [u16; 4] = [1, 40, 80, 300];

/// Sizes at which every state is drawn, whatever the sweep.
const EVERY_STATE_AT: [(u16, u16); 6] = [(1, 1), (3, 3), (300, 2), (40, 10), (80, 24), (200, 70)];

/// The key sequences, each pressed from a fresh app, after which every size is drawn.
const SEQUENCES: [&[Key]; 9] = [
    // The Findings tab as it opens, and with its help shown and scrolled to the end.
    &[],
    &[Key::Char('?'), Key::End],
    // A finding selected, and its moment in the timeline.
    &[Key::Down, Key::Enter],
    // Locks sorted, the last row selected, the detail scrolled.
    &[Key::Char('2'), Key::Char('h'), Key::Char('G'), Key::Char('J'), Key::Char('J')],
    // Tasks with a filter being typed.
    &[Key::Char('3'), Key::Char('/'), Key::Char('w')],
    // The timeline zoomed in, panned, a lane further down, the help half scrolled.
    &[
        Key::Char('4'),
        Key::Char('n'),
        Key::Char('+'),
        Key::Char('+'),
        Key::Char('L'),
        Key::Char('G'),
        Key::Char('?'),
        Key::Char('j'),
        Key::Char('j'),
    ],
    // The lock graph, its cycle's moment, and back with Shift-Tab.
    &[Key::Char('5'), Key::Enter, Key::BackTab],
    // A filter that matches nothing, on the Locks tab.
    &[Key::Char('2'), Key::Char('/'), Key::Char('z'), Key::Char('z'), Key::Enter],
    // The help scrolled past its end and back up one page.
    &[Key::Char('?'), Key::PageDown, Key::PageDown, Key::PageDown, Key::PageUp],
];

const TRACES: [&str; 4] =
    ["incident_hang.trace", "gate_lock.trace", "lock_order_inversion.trace", "tokio_mixed.trace"];

/// Every state: each trace after each key sequence.
fn states() -> Vec<App> {
    let mut states = Vec::new();
    for name in TRACES {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../traces").join(name);
        let data =
            Data::load(&[path], &AnalyzeOptions::default()).expect("a committed trace loads");
        for keys in SEQUENCES {
            let mut app = App::new(data.clone());
            for &key in keys {
                app.handle_key(key);
            }
            states.push(app);
        }
    }
    states
}

/// Draws `app` on a terminal `width`×`height`.
fn draw(app: &App, width: u16, height: u16) {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    app.render(area, &mut buf);
}

#[test]
fn every_view_and_overlay_draws_at_every_size() {
    let states = states();
    let started = std::time::Instant::now();
    let mut frames = 0usize;
    for &(width, height) in &EVERY_STATE_AT {
        for app in &states {
            draw(app, width, height);
            frames += 1;
        }
    }
    let sizes: Vec<(u16, u16)> = if std::env::var("HINDSIGHT_TUI_SIZES").is_ok_and(|v| v == "all") {
        (1..=300).flat_map(|w| (1..=100).map(move |h| (w, h))).collect()
    } else {
        let mut sizes: Vec<(u16, u16)> =
            (1..=300).flat_map(|w| SPREAD_HEIGHTS.iter().map(move |&h| (w, h))).collect();
        sizes.extend((1..=100).flat_map(|h| SPREAD_WIDTHS.iter().map(move |&w| (w, h))));
        sizes
    };
    let every_state = sizes.len() > 10_000;
    for (i, &(width, height)) in sizes.iter().enumerate() {
        if every_state {
            for app in &states {
                draw(app, width, height);
                frames += 1;
            }
        } else {
            // Each size draws the next state in turn, so that each state meets many widths
            // and heights.
            draw(&states[i % states.len()], width, height);
            frames += 1;
        }
    }
    eprintln!("{frames} frames drawn in {:?}", started.elapsed());
}
