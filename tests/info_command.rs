//! `hindsight info` on the committed sample trace, on a cut copy of it, and on garbage.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hindsight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the hindsight binary runs")
}

fn sample_trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/tokio_mixed.trace")
}

fn info_json(path: &Path) -> Value {
    let output = hindsight(&["info", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("info --format json prints one JSON object")
}

fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hindsight-info-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn info_json_has_the_designed_fields() {
    let info = info_json(&sample_trace());
    for field in [
        "format_version",
        "program",
        "events",
        "threads",
        "tasks",
        "locks",
        "variables",
        "sites",
        "duration_ns",
        "truncated_bytes",
        "dropped_events",
    ] {
        assert!(info.get(field).is_some(), "missing field {field} in {info}");
    }
    assert!(info["events"].as_u64().unwrap() > 0);
    assert_eq!(info["truncated_bytes"], 0);
    assert_eq!(info["format_version"], hindsight_recorder::format::FORMAT_VERSION);
    let frozen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1/incident_hang.trace");
    assert_eq!(info_json(&frozen)["format_version"], 1, "the frozen version 1 trace still reads");
    let frozen =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2/await_holding_std_lock.trace");
    assert_eq!(info_json(&frozen)["format_version"], 2, "the frozen version 2 trace still reads");
}

#[test]
fn tokio_mixed_has_threads_tasks_locks_and_lock_and_poll_events() {
    let info = info_json(&sample_trace());
    assert!(info["threads"].as_u64().unwrap() >= 2, "{info}");
    assert!(info["tasks"].as_u64().unwrap() >= 4, "{info}");
    assert!(info["locks"].as_u64().unwrap() >= 3, "{info}");
    let counts = &info["event_counts"];
    for kind in ["lock_acquired", "lock_released", "poll_started", "poll_ended"] {
        assert!(counts[kind].as_u64().unwrap_or(0) > 0, "no {kind} events: {counts}");
    }
}

#[test]
fn info_counts_the_runtimes_own_tasks_as_analyze_does() {
    let info = info_json(&sample_trace());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(["analyze", "--format", "json"])
        .arg(sample_trace())
        .output()
        .expect("hindsight runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let tasks = report["tasks"].as_array().expect("tasks");
    let runtime = tasks.iter().filter(|t| t["runtime"] == true).count() as u64;
    assert!(runtime > 0, "tokio_mixed has block_on: {report}");
    assert_eq!(info["runtime_tasks"].as_u64(), Some(runtime), "{info}");
    assert_eq!(info["tasks"].as_u64(), Some(tasks.len() as u64), "{info}");
}

#[test]
fn a_trace_cut_at_60_percent_still_reads_with_truncated_bytes() {
    let bytes = std::fs::read(sample_trace()).unwrap();
    let cut = scratch_file("cut.trace", &bytes[..bytes.len() * 6 / 10]);
    let info = info_json(&cut);
    assert!(info["truncated_bytes"].as_u64().unwrap() > 0, "{info}");
    assert!(info["events"].as_u64().unwrap() > 0, "{info}");
}

#[test]
fn random_bytes_exit_2_with_one_line_and_no_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = scratch_file("random.trace", &garbage);
    let output = hindsight(&["info", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("random.trace") && stderr.contains("not a hindsight trace"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_file_and_bad_arguments_exit_2() {
    let output = hindsight(&["info", "no/such/file.trace"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no/such/file.trace"), "{stderr}");

    let output = hindsight(&["info", "--format", "yaml", "x.trace"]);
    assert_eq!(output.status.code(), Some(2));
}
