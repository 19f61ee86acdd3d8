//! A progress bar on stderr while `analyze`, `export` or `info` reads its traces, for runs that
//! take more than a moment (a 1 G-event trace takes a minute).
//!
//! The bar is drawn by a thread of its own from the analyzer's count of bytes read
//! ([`hindsight_analyzer::progress::bytes_read`]) against the files' sizes, ten times a second,
//! so the replay loop does nothing for it. It appears only on a terminal, only after
//! [`DELAY`], and is cleared before the command prints its result.

use hindsight_analyzer::progress::bytes_read;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a run goes without a bar: quick runs print nothing extra.
const DELAY: Duration = Duration::from_millis(500);

/// How often the bar is updated.
const TICK: Duration = Duration::from_millis(100);

/// A running progress display; [`finish`](Self::finish) (or dropping it) clears it.
pub struct Progress {
    /// Closing it tells the drawing thread to stop.
    stop: Option<Sender<()>>,
    drawer: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing how much of `traces` has been read, if stderr is a terminal.
    pub fn start(traces: &[PathBuf]) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::none();
        }
        let total: u64 =
            traces.iter().filter_map(|path| std::fs::metadata(path).ok()).map(|m| m.len()).sum();
        Progress::drawing(total, DELAY, ProgressDrawTarget::stderr)
    }

    /// No progress display: for output that goes to the terminal the bar would be drawn on.
    pub fn none() -> Progress {
        Progress { stop: None, drawer: None }
    }

    /// Starts a thread that shows the bytes read from now on, out of `total`, on the target
    /// that `target` makes, once `delay` has passed.
    fn drawing(
        total: u64,
        delay: Duration,
        target: impl FnOnce() -> ProgressDrawTarget + Send + 'static,
    ) -> Progress {
        let (stop, stopped) = mpsc::channel::<()>();
        let baseline = bytes_read();
        let started = Instant::now();
        let drawer = std::thread::Builder::new()
            .name("hindsight-progress".into())
            .spawn(move || draw(&stopped, total, baseline, (started, delay), target));
        // Without its thread there is no bar; the command runs as well without it.
        Progress { stop: Some(stop), drawer: drawer.ok() }
    }

    /// Stops and clears the bar; waits until it is cleared, so that what the command prints
    /// next is not mixed with it.
    pub fn finish(mut self) {
        self.stop_drawing();
    }

    fn stop_drawing(&mut self) {
        drop(self.stop.take());
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_drawing();
    }
}

/// Draws the bar, on the target `target` makes once `delay` has passed since `started`, until
/// `stopped` says so (or its sender is gone); then clears it.
fn draw(
    stopped: &Receiver<()>,
    total: u64,
    baseline: u64,
    (started, delay): (Instant, Duration),
    target: impl FnOnce() -> ProgressDrawTarget,
) {
    let mut target = Some(target);
    let mut bar: Option<ProgressBar> = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
        if started.elapsed() < delay {
            continue;
        }
        let bar = bar.get_or_insert_with(|| {
            let target = target.take().expect("the bar is made once; this is a bug");
            new_bar(total, target())
        });
        let read = (bytes_read() - baseline).min(total);
        bar.set_position(read);
        if read == total {
            bar.set_message("finishing");
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// A bar for `total` bytes on `target`, as wide as the terminal.
fn new_bar(total: u64, target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes}, {eta} left",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message("reading traces");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_analyzer::progress::CountedFile;
    use indicatif::TermLike;
    use std::io::{self, Read};
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        fn text(&self) -> String {
            self.0.lock().expect("not poisoned").clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> io::Result<()> {
            self.write_str(&format!("{line}\n"))
        }
        fn write_str(&self, text: &str) -> io::Result<()> {
            self.0.lock().expect("not poisoned").push_str(text);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            self.write_str("<clear>")
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn on(screen: &Screen) -> impl FnOnce() -> ProgressDrawTarget + Send + 'static {
        let screen = screen.clone();
        move || ProgressDrawTarget::term_like(Box::new(screen))
    }

    #[test]
    fn the_bar_follows_the_bytes_read_and_is_cleared_at_the_end() {
        let path = std::env::temp_dir().join(format!("hindsight-bar-{}", std::process::id()));
        std::fs::write(&path, vec![b'x'; 4096]).expect("written");
        let screen = Screen::default();
        let progress = Progress::drawing(4096, Duration::ZERO, on(&screen));
        let mut all = Vec::new();
        let mut file = CountedFile::new(std::fs::File::open(&path).expect("opened"));
        file.read_to_end(&mut all).expect("read");
        let started = Instant::now();
        while !screen.text().contains("finishing") && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(TICK);
        }
        progress.finish();
        let text = screen.text();
        assert!(text.contains("] 4.00 KiB/4.00 KiB"), "{text}");
        assert!(text.ends_with("<clear>"), "{text}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_run_quicker_than_the_delay_draws_nothing() {
        let screen = Screen::default();
        let progress = Progress::drawing(4096, Duration::from_secs(3600), on(&screen));
        std::thread::sleep(3 * TICK);
        progress.finish();
        assert_eq!(screen.text(), "");
    }
}
