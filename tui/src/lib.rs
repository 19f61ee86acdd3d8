//! hindsight's terminal UI: the findings, locks, tasks and threads, timeline and lock-order
//! graph of an analysed trace, browsed with the keyboard (tokio-console's keys).
//!
//! The shape follows the usual split:
//!
//! - [`data`]: what is shown, computed once at start-up ([`Data::load`]): the analyzer's
//!   [`Report`](hindsight_analyzer::Report) and its [`Timeline`](hindsight_analyzer::timeline::Timeline);
//! - [`app`]: the state of the screen and pure key handling ([`App::handle_key`]), with no
//!   ratatui type in it;
//! - [`view`]: one module per tab, each drawn by `impl Widget for &View`, plus [`help`];
//! - [`terminal`]: raw mode and the alternate screen behind a guard that restores the terminal
//!   on exit and after a panic.
//!
//! Nothing that a key press does reads the trace again: the timeline is aggregated per zoom
//! level when it is built, and every view works on the report's rows.
#![warn(missing_docs)]

pub mod app;
pub mod data;
pub mod help;
pub mod terminal;
pub mod view;

pub use app::{Action, App, Key, Tab};
pub use data::{Data, Error};

use hindsight_analyzer::AnalyzeOptions;
use std::path::Path;

/// Analyses the traces at `paths` (several are one incident, as for `hindsight analyze`) and
/// runs the terminal UI over them, with the analysis run with `options`, until the user quits.
pub fn run<P: AsRef<Path>>(paths: &[P], options: &AnalyzeOptions) -> Result<(), Error> {
    let data = Data::load(paths, options)?;
    let mut app = App::new(data);
    let mut terminal = terminal::TerminalGuard::enter()?;
    loop {
        terminal.draw(&app)?;
        if let Some(key) = terminal::next_key()? {
            if app.handle_key(key) == Action::Quit {
                break;
            }
        }
    }
    terminal.restore()?;
    Ok(())
}
