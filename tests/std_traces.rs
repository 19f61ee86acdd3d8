//! RAPID STD text traces (`THREAD|OP(ARG)|LOC`) through the command line: `analyze` reads
//! them by content and reports the racy location pairs as `data-race` findings whose sites
//! are the LOC numbers (`LOC n` in text; in JSON a `line` with no file); a malformed line is
//! exit 2 naming the line; `convert` writes a hindsight trace whose analysis is the same.

mod scenario_support;

use scenario_support::{analyze_json, hindsight, seen, sorted, Seen};
use std::path::PathBuf;

/// Writes `text` to a fresh `name` in a directory of this test process; returns its path.
fn std_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("hindsight-std-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).expect("the STD trace is written");
    path.display().to_string()
}

/// Two workers forked by `T0`, each writing `x`: `T1` with no lock (LOC 10), `T2` holding `m`
/// (LOC 20). `y` is written and read under the common lock `l`, and `T0` reads `x` only after
/// joining both: neither is a race.
///
/// ```text
/// T0  fork(T1) fork(T2) ......................... join(T1) join(T2) r(x)@14
/// T1            acq(l) w(y)@4 rel(l) w(x)@10
/// T2                                   acq(m) w(x)@20 rel(m) acq(l) r(y)@9 rel(l)
/// ```
fn workers(x_under_l: bool) -> String {
    let (t1_lock, t1_unlock) =
        if x_under_l { ("T1|acq(l)|21\n", "T1|rel(l)|22\n") } else { ("", "") };
    let t2_lock = if x_under_l { "l" } else { "m" };
    format!(
        "T0|fork(T1)|1\n\
         T0|fork(T2)|2\n\
         T1|acq(l)|3\n\
         T1|w(y)|4\n\
         T1|rel(l)|5\n\
         {t1_lock}T1|w(x)|10\n\
         {t1_unlock}T2|acq({t2_lock})|6\n\
         T2|w(x)|20\n\
         T2|rel({t2_lock})|7\n\
         T2|acq(l)|8\n\
         T2|r(y)|9\n\
         T2|rel(l)|11\n\
         T0|join(T1)|12\n\
         T0|join(T2)|13\n\
         T0|r(x)|14\n"
    )
}

/// The one finding expected of `workers(false)`: its sites are program locations, with no
/// file.
fn the_race() -> Seen {
    Seen {
        kind: "data-race".into(),
        severity: "error".into(),
        locks: sorted(&["m"]),
        threads: sorted(&["T1", "T2"]),
        tasks: vec![],
        variables: sorted(&["x"]),
        sites: vec!["write :10:0".into(), "write :20:0".into()],
    }
}

#[test]
fn two_threads_writing_without_a_common_lock_are_one_racy_pair() {
    let path = std_file("racy.std", &workers(false));
    let (status, report) = analyze_json(&[&path]);
    assert_eq!(status, 1);
    assert_eq!(seen(&report), vec![the_race()]);
    let detail = &report["findings"][0]["detail"];
    let held: Vec<&serde_json::Value> =
        ["first", "second"].iter().map(|which| &detail[which]["locks_held"]).collect();
    assert!(held.contains(&&serde_json::json!([])) && held.contains(&&serde_json::json!(["m"])));
}

#[test]
fn the_text_report_names_locs_not_lines_of_the_file() {
    let path = std_file("text.std", &workers(false));
    let out = hindsight(&["analyze", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let title = "error[data-race]: data race on `x`: write at LOC 10 and write at LOC 20 are not \
                 ordered\n";
    assert!(text.contains(title), "{text}");
    assert!(text.contains("  - thread `T1` wrote `x` at LOC 10 (t="), "{text}");
    assert!(text.contains("  - thread `T2` wrote `x` at LOC 20 (t="), "{text}");
    assert!(!text.contains(":10:0") && !text.contains(":20:0"), "{text}");
}

#[test]
fn both_writes_under_one_lock_are_no_race() {
    let path = std_file("locked.std", &workers(true));
    let (status, report) = analyze_json(&[&path]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
}

#[test]
fn a_malformed_line_is_exit_2_naming_its_line() {
    let path = std_file("x.std", "T1|w(x)|1\nT2|w(x)|2\nT1|wr(x)|3\nT2|r(x)|4\n");
    for command in ["analyze", "info"] {
        let out = hindsight(&[command, &path]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        let expected = format!("hindsight: {path}:3: malformed STD line `T1|wr(x)|3`: ");
        assert!(stderr.starts_with(&expected), "{command}: {stderr}");
    }
    let converted = format!("{path}.trace");
    let out = hindsight(&["convert", &path, &converted]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&format!("hindsight: {path}:3: ")));
}

#[test]
fn a_converted_trace_has_the_same_finding() {
    let path = std_file("converted.std", &workers(false));
    let converted = format!("{path}.trace");
    let out = hindsight(&["convert", &path, &converted]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("wrote 15 events to {converted}\n"));
    let (status, report) = analyze_json(&[&converted]);
    assert_eq!(status, 1);
    assert_eq!(seen(&report), vec![the_race()], "the sites stay those of the STD file");
}

/// `T0` holds `A` and asks for `B` while `T1` holds `B` and asks for `A`; neither request is
/// granted before the trace ends: a captured deadlock, its waits at the `req` lines.
#[test]
fn requests_that_are_never_granted_are_a_captured_deadlock() {
    let path =
        std_file("hang.std", "T0|fork(T1)|1\nT0|acq(A)|2\nT1|acq(B)|3\nT0|req(B)|4\nT1|req(A)|5\n");
    let (status, report) = analyze_json(&[&path]);
    assert_eq!(status, 1);
    let sites = ["held :2:0", "held :3:0", "waiting :4:0", "waiting :5:0"];
    let found = seen(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].kind.as_str(), found[0].severity.as_str()), ("deadlock", "error"));
    assert_eq!(found[0].locks, sorted(&["A", "B"]));
    assert_eq!(found[0].threads, sorted(&["T0", "T1"]));
    assert_eq!(found[0].sites, sorted(&sites));
    // The same requests, each granted once the other thread lets go: no finding.
    let path = std_file(
        "granted.std",
        "T0|fork(T1)|1\nT0|acq(A)|2\nT1|req(A)|3\nT0|rel(A)|4\nT1|acq(A)|5\nT1|rel(A)|6\n\
         T0|join(T1)|7\n",
    );
    let (status, report) = analyze_json(&[&path]);
    assert_eq!((status, seen(&report)), (0, vec![]));
}

/// A million-line STD trace is replayed one batch of lines at a time: the replay never holds
/// more than a batch (4096 lines) and the event at its watermark, however long the file.
#[test]
fn a_long_std_trace_is_replayed_with_a_bounded_queue() {
    use std::fmt::Write;
    const EVENTS: usize = 1_000_000;
    let mut text = String::with_capacity(EVENTS * 16);
    for t in 1..=4 {
        let _ = writeln!(text, "T0|fork(T{t})|1");
    }
    // Four workers take turns, each operation under the lock of its variable.
    for i in 0..(EVENTS - 8) / 4 {
        let (t, v) = (i % 4 + 1, i * 7919 % 10_000);
        let _ = write!(text, "T{t}|acq(l{})|2\nT{t}|r(v{v})|3\nT{t}|w(v{v})|4\n", v % 16);
        let _ = writeln!(text, "T{t}|rel(l{})|5", v % 16);
    }
    for t in 1..=4 {
        let _ = writeln!(text, "T0|join(T{t})|6");
    }
    let path = std_file("long.std", &text);
    let mut replay = hindsight_analyzer::replay::Replay::open(&[&path]).expect("opens");
    replay.run_to_end();
    assert!(replay.error().is_none());
    let stats = replay.stats();
    assert_eq!(stats.events, EVENTS as u64);
    assert_eq!(stats.forced, 0, "the file's order is the lock order");
    assert!(stats.max_buffered <= 4097, "{} events held at once", stats.max_buffered);
}
