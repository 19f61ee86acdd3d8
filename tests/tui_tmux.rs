//! The real `hindsight tui` binary under tmux: start it in a detached session of a fixed size,
//! send keys, and read the screen with `capture-pane`, as a person at a terminal would.
//!
//! Needs tmux (`.ci/run` installs it; README's install steps say how). Without it the test
//! fails, saying so, unless `HINDSIGHT_SKIP_TMUX_TEST=1` asks to skip it knowingly.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session that is killed when dropped, whatever the test did.
struct Session {
    name: String,
}

impl Session {
    fn start(command: &str) -> Session {
        let name = format!("hindsight-tui-test-{}-{}", std::process::id(), unique());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-x", "120", "-y", "40", "-s", &name, command])
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        Session { name }
    }

    fn send(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux send-keys failed");
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts`, or fails after a timeout.
    fn wait_for(&self, texts: &[&str]) -> String {
        self.wait_until(&format!("{texts:?}"), |screen| texts.iter().all(|t| screen.contains(t)))
    }

    /// Waits until the screen no longer shows `text`, or fails after a timeout.
    fn wait_until_gone(&self, text: &str) -> String {
        self.wait_until(&format!("{text:?} to go"), |screen| !screen.contains(text))
    }

    /// Waits until the screen passes `test`, or fails after a timeout naming `what`.
    fn wait_until(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn is_alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    nanos ^ NEXT.fetch_add(1, Ordering::Relaxed) << 32
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn the_tui_shows_the_cycle_and_enter_jumps_to_its_first_acquisition() {
    if !tmux_available() {
        if std::env::var_os("HINDSIGHT_SKIP_TMUX_TEST").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED (HINDSIGHT_SKIP_TMUX_TEST=1): tmux is not installed");
            return;
        }
        panic!(
            "this test drives the TUI under tmux, which is not installed: install it \
             (`apt-get install tmux`, `brew install tmux`), or set HINDSIGHT_SKIP_TMUX_TEST=1 \
             to skip this test knowingly"
        );
    }
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces/lock_order_inversion.trace");
    let binary = env!("CARGO_BIN_EXE_hindsight");
    // `; sleep` keeps the pane after the program exits, to read how it left the terminal.
    let command = format!(
        "{} tui {}; echo EXITED=$?; sleep 30",
        shell_quote(binary),
        shell_quote(&trace.display().to_string())
    );
    let session = Session::start(&command);

    let screen = session.wait_for(&["[1 Findings]", "lock-order-cycle"]);
    assert!(screen.contains("locks `sqlite` and `git` are taken in opposite"), "{screen}");

    session.send(&["Enter"]);
    let screen = session.wait_for(&["[4 Timeline]", "Events near"]);
    let cursor_line = screen
        .lines()
        .find(|l| l.contains('▶'))
        .unwrap_or_else(|| panic!("no event at the cursor:\n{screen}"));
    assert!(cursor_line.contains("acquired `sqlite`"), "{screen}");

    session.send(&["?"]);
    session.wait_for(&["Keys (? or Esc to close)"]);
    session.send(&["Escape"]);
    // Keys sent before the help closes could reach the program with the Escape, as one
    // Alt-key sequence.
    session.wait_until_gone("Keys (? or Esc to close)");
    session.send(&["2"]);
    session.wait_for(&["[2 Locks]", "Owner chg"]);
    session.send(&["q"]);
    let screen = session.wait_for(&["EXITED=0"]);
    // The alternate screen is gone: the shell's line is all that is left.
    assert!(!screen.contains("Owner chg"), "the terminal was not restored:\n{screen}");
    assert!(session.is_alive());
}

#[test]
fn an_unreadable_trace_is_one_line_and_exit_status_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(["tui", "/nonexistent/no.trace"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/no.trace"), "{stderr}");
}
