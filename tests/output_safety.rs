//! `convert` and `export` write where a user points them without destroying what is there
//! (issue 23): a symlink stays a symlink and its target is written, a device or FIFO is written
//! into, `-` is standard output, and a failed run removes only what it created.
#![cfg(unix)]

mod scenario_support;

use scenario_support::hindsight;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TRACE: &str = "traces/lock_order_inversion.trace";

/// A fresh, empty directory for the test `name`.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hindsight-output-safety-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("a readable directory")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).expect("exists").file_type().is_symlink()
}

/// A small STD trace in `dir`.
fn std_trace(dir: &Path) -> PathBuf {
    let path = dir.join("two_events.std");
    fs::write(&path, "T0|acq(L)|1\nT0|rel(L)|2\n").expect("written");
    path
}

#[test]
fn export_to_a_symlink_writes_its_target_and_keeps_the_link() {
    let dir = scratch("export-symlink");
    fs::write(dir.join("real.dot"), "old").expect("written");
    symlink("real.dot", dir.join("link.dot")).expect("a symlink");
    let output = hindsight(&["export", TRACE, "--dot", text(&dir.join("link.dot"))]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(is_symlink(&dir.join("link.dot")));
    let dot = fs::read_to_string(dir.join("real.dot")).expect("the target");
    assert!(dot.starts_with("digraph"), "{dot}");
    assert_eq!(entries(&dir), ["link.dot", "real.dot"]);
}

#[test]
fn convert_to_a_symlink_writes_its_target_and_keeps_the_link() {
    let dir = scratch("convert-symlink");
    let input = std_trace(&dir);
    fs::write(dir.join("real.trace"), "old").expect("written");
    symlink(dir.join("real.trace"), dir.join("link.trace")).expect("a symlink");
    let output = hindsight(&["convert", text(&input), text(&dir.join("link.trace"))]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(is_symlink(&dir.join("link.trace")));
    let info = hindsight(&["info", "--format", "json", text(&dir.join("real.trace"))]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info's JSON");
    assert_eq!(info["events"], 2);
    assert_eq!(entries(&dir), ["link.trace", "real.trace", "two_events.std"]);
}

#[cfg(target_os = "linux")]
#[test]
fn export_to_a_symlink_to_dev_full_fails_in_one_line_and_removes_nothing() {
    let dir = scratch("dev-full");
    let link = dir.join("full.json");
    symlink("/dev/full", &link).expect("a symlink");
    let output = hindsight(&["export", TRACE, "--chrome", text(&link)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "hindsight: cannot write {}: No space left on device (os error 28)\n",
            link.display()
        )
    );
    assert!(is_symlink(&link));
    assert!(fs::metadata("/dev/full").expect("still there").file_type().is_char_device());
    assert_eq!(entries(&dir), ["full.json"]);
}

#[test]
fn export_to_a_fifo_writes_into_it() {
    let dir = scratch("fifo");
    let fifo = dir.join("graph.dot");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).expect("the FIFO is readable"))
    };
    let output = hindsight(&["export", TRACE, "--dot", text(&fifo)]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let dot = reader.join().expect("the reader thread");
    assert!(dot.starts_with("digraph") && dot.trim_end().ends_with('}'), "{dot}");
    assert!(fs::metadata(&fifo).expect("still there").file_type().is_fifo());
    assert_eq!(entries(&dir), ["graph.dot"]);
}

#[test]
fn a_dash_is_standard_output_for_export_and_convert() {
    let output = hindsight(&["export", TRACE, "--dot", "-"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("digraph"));
    assert!(String::from_utf8_lossy(&output.stderr).ends_with(" to -\n"));

    let dir = scratch("dash");
    let input = std_trace(&dir);
    let output = hindsight(&["convert", text(&input), "-"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.starts_with(b"HSTR"), "a binary trace on stdout");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "wrote 2 events to -\n");
    assert_eq!(entries(&dir), ["two_events.std"]);
}

/// Runs `hindsight export` of the large `ordered_hierarchy.trace` to `--chrome OUT` with stdout
/// a pipe whose reader reads `read` bytes and goes away, as `| head -c N` does; asserts that
/// hindsight exits 0 and prints nothing on stderr.
fn export_to_a_pipe_closed_after(out: &str, read: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(["export", "traces/ordered_hierarchy.trace", "--chrome", out])
        .current_dir(scenario_support::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hindsight runs");
    let mut first = vec![0u8; read];
    std::io::Read::read_exact(child.stdout.as_mut().expect("piped"), &mut first).expect("output");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("hindsight ends");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    export_to_a_pipe_closed_after("-", 10);
}

#[cfg(target_os = "linux")]
#[test]
fn export_to_dev_stdout_writes_into_the_pipe_and_a_closed_one_is_no_error() {
    let output = hindsight(&["export", TRACE, "--dot", "/dev/stdout"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("digraph"));

    export_to_a_pipe_closed_after("/dev/stdout", 10);
    assert!(fs::symlink_metadata("/dev/stdout").expect("still there").file_type().is_symlink());
}

#[cfg(target_os = "linux")]
#[test]
fn export_to_dev_stdout_redirected_to_a_file_appends_as_the_shell_asked() {
    let dir = scratch("dev-stdout-file");
    let file = dir.join("out.txt");
    fs::write(&file, "kept\n").expect("written");
    let appending = fs::OpenOptions::new().append(true).open(&file).expect("opened");
    let status = Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(["export", TRACE, "--dot", "/dev/stdout"])
        .current_dir(scenario_support::root())
        .stdout(appending)
        .stderr(Stdio::null())
        .status()
        .expect("hindsight runs");
    assert_eq!(status.code(), Some(0));
    let text = fs::read_to_string(&file).expect("readable");
    assert!(text.starts_with("kept\ndigraph"), "{text}");
    assert_eq!(entries(&dir), ["out.txt"]);
}

#[test]
fn a_failed_convert_leaves_the_old_file_and_nothing_else() {
    let dir = scratch("failed-convert");
    let input = dir.join("bad.std");
    fs::write(&input, "T0|acq(L)|1\nnot a line\n").expect("written");
    fs::write(dir.join("out.trace"), "old").expect("written");
    let output = hindsight(&["convert", text(&input), text(&dir.join("out.trace"))]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(fs::read_to_string(dir.join("out.trace")).expect("kept"), "old");
    assert_eq!(entries(&dir), ["bad.std", "out.trace"]);
}

#[test]
fn convert_of_an_empty_file_exits_2_in_one_line_and_writes_nothing() {
    let dir = scratch("empty-convert");
    let input = dir.join("empty.std");
    fs::write(&input, "").expect("written");
    let output = hindsight(&["convert", text(&input), text(&dir.join("out.trace"))]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("hindsight: {}: empty file, not an STD trace\n", input.display())
    );
    assert_eq!(entries(&dir), ["empty.std"]);
}
