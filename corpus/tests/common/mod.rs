//! What the corpus tests share: running a harness into a trace and reading its findings.

#![allow(dead_code)] // Each test binary uses its own share of these.

use hindsight_analyzer::report::Finding;
use hindsight_analyzer::{analyze_paths, AnalyzeOptions, Report};
use std::path::PathBuf;
use std::process::Command;

/// A trace path of this test process, in the temporary directory.
pub fn trace_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hindsight-corpus-{name}-{}.trace", std::process::id()))
}

/// Runs the harness `binary` with the trace path named `name` first and then `args`, checks
/// that it succeeds, and analyses (then removes) its trace.
pub fn run_harness(binary: &str, name: &str, args: &[&str]) -> Report {
    let path = trace_path(name);
    let status = Command::new(binary)
        .arg(&path)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the harness runs");
    assert!(status.success(), "{binary} {args:?}: {status}");
    let report = analyze_paths(&[&path], &AnalyzeOptions::default()).expect("readable");
    let _ = std::fs::remove_file(&path);
    report
}

/// `kind severity [locks]` of each finding, sorted.
pub fn summary(findings: &[Finding]) -> Vec<String> {
    let mut all: Vec<String> = findings
        .iter()
        .map(|f| format!("{} {:?} {:?}", f.kind.name(), f.severity, f.locks))
        .collect();
    all.sort();
    all
}
