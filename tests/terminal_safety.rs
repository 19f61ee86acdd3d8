//! Strings from a trace never reach the terminal raw (issue 23 item 4): a lock, thread or
//! program name, a site's file or a mark holding ESC and other control characters is printed
//! escaped by `analyze` and `info`, and `convert`'s error on a binary file prints no raw bytes.
//! JSON keeps the exact strings.

mod scenario_support;

use hindsight_recorder::format::TraceBuilder;
use scenario_support::hindsight;
use std::path::PathBuf;
use std::process::Output;

/// ESC, then a sequence that would turn the terminal red.
const EVIL: &str = "evil\u{1b}[31m";

/// A lock-order inversion between `EVIL`-named locks on `EVIL`-named threads, at `EVIL` sites,
/// with an `EVIL` mark, written to a temporary file for the test `name`.
///
/// ```text
/// t1: acq A ─ acq B ─ rel B ─ rel A
/// t2:                                 acq B ─ acq A ─ rel A ─ rel B
/// ```
fn hostile_trace(name: &str) -> PathBuf {
    let mut b = TraceBuilder::new(&format!("program-{EVIL}"));
    let (t1, t2) = (b.thread(&format!("t1-{EVIL}")), b.thread(&format!("t2-{EVIL}")));
    let (first, second) = (b.mutex(&format!("a-{EVIL}")), b.mutex(&format!("b-{EVIL}")));
    let site = b.site(&format!("src/{EVIL}.rs"), 3, 5);
    b.on(t1).mark(&format!("mark-{EVIL}\r\nforged line"));
    b.on(t1).acquire(first, site).acquire(second, site).release(second).release(first);
    b.on(t2).acquire(second, site).acquire(first, site).release(first).release(second);
    let path = std::env::temp_dir()
        .join(format!("hindsight-terminal-safety-{}-{name}.trace", std::process::id()));
    std::fs::write(&path, b.build()).expect("the trace is written");
    path
}

/// Asserts that `output` holds no control character but newlines (and ESC least of all).
fn assert_no_raw_control_characters(output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let raw: Vec<char> = text.chars().filter(|&c| c.is_control() && c != '\n').collect();
        assert!(raw.is_empty(), "{stream} has raw {raw:?}: {text}");
    }
}

#[test]
fn analyze_prints_escaped_names_sites_and_program() {
    let trace = hostile_trace("analyze");
    let output = hindsight(&["analyze", trace.to_str().expect("a UTF-8 temp path")]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert_no_raw_control_characters(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let escaped = r"evil\u{1b}[31m";
    assert!(text.contains(&format!("program-{escaped}")), "{text}");
    assert!(
        text.contains(&format!(
            "error[lock-order-cycle]: locks `a-{escaped}` and `b-{escaped}` are taken in opposite orders"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("src/{escaped}.rs:3:5")), "{text}");
    assert!(text.contains(&format!("`t1-{escaped}`")), "{text}");
}

#[test]
fn analyze_with_colour_escapes_the_trace_s_escape_sequences_too() {
    let trace = hostile_trace("colour");
    let output =
        hindsight(&["analyze", "--color", "always", trace.to_str().expect("a UTF-8 temp path")]);
    let text = String::from_utf8_lossy(&output.stdout);
    // Our own colours are there; the trace's `ESC[31m` is not.
    assert!(text.contains('\u{1b}'), "{text}");
    assert!(!text.contains("evil\u{1b}"), "{text}");
    assert!(text.contains(r"evil\u{1b}[31m"), "{text}");
}

#[test]
fn json_keeps_the_exact_names() {
    let trace = hostile_trace("json");
    let output =
        hindsight(&["analyze", "--format", "json", trace.to_str().expect("a UTF-8 temp path")]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let mut locks: Vec<&str> = report["findings"][0]["locks"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|lock| lock.as_str().expect("a name"))
        .collect();
    locks.sort();
    assert_eq!(locks, [format!("a-{EVIL}"), format!("b-{EVIL}")]);
}

#[test]
fn info_prints_escaped_program_and_marks() {
    let trace = hostile_trace("info");
    let output = hindsight(&["info", trace.to_str().expect("a UTF-8 temp path")]);
    assert_eq!(output.status.code(), Some(0));
    assert_no_raw_control_characters(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(r"program    program-evil\u{1b}[31m (pid 1) on builder"), "{text}");
    assert!(text.contains(r"mark-evil\u{1b}[31m\u{d}\u{a}forged line"), "{text}");
    assert!(!text.lines().any(|line| line.starts_with("forged line")), "{text}");
}

#[test]
fn convert_of_a_binary_file_prints_no_raw_bytes() {
    let binary =
        std::env::temp_dir().join(format!("hindsight-terminal-safety-{}.std", std::process::id()));
    let mut bytes = b"T0|acq(L)|1\n\x1b[2J\x07\x00\x01\x9b\xff binary".to_vec();
    bytes.extend(std::fs::read("traces/gate_lock.trace").expect("a committed trace"));
    std::fs::write(&binary, bytes).expect("written");
    let out = binary.with_extension("trace");
    let output = hindsight(&[
        "convert",
        binary.to_str().expect("a UTF-8 temp path"),
        out.to_str().expect("a UTF-8 temp path"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert_no_raw_control_characters(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r"malformed STD line `\u{1b}[2J\u{7}\u{0}\u{1}"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn std_thread_and_lock_names_are_escaped_too() {
    let path = std::env::temp_dir()
        .join(format!("hindsight-terminal-safety-{}-names.std", std::process::id()));
    std::fs::write(&path, "T\u{1b}[31m0|acq(L\u{1b}[1m)|1\n").expect("written");
    let output = hindsight(&["analyze", path.to_str().expect("a UTF-8 temp path")]);
    assert_no_raw_control_characters(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(r"lock `L\u{1b}[1m` was still held by thread `T\u{1b}[31m0`"), "{text}");
}
