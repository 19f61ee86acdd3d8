//! What the end-to-end tests of the scenario traces share: running the `hindsight` binary,
//! reducing its JSON findings to what the tests compare, and finding the expected sites in
//! the scenario sources by their marker comments (`// site: NAME`), so that editing a
//! scenario moves the expectations with it.
#![allow(dead_code)] // each test binary uses a different part

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository's root (the CLI package's directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `hindsight` with `args` in the repository's root.
pub fn hindsight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the hindsight binary runs")
}

/// Runs `analyze --format json` with `args` (traces and options); returns the exit status and
/// the report. Nothing may be written to stderr.
pub fn analyze_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["analyze", "--format", "json"];
    all.extend_from_slice(args);
    let out = hindsight(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    let report = serde_json::from_slice(&out.stdout).expect("analyze prints one JSON object");
    (out.status.code().expect("an exit status"), report)
}

/// A finding reduced to what the tests compare, every list sorted (the run's timing decides
/// their order): kind, severity, lock, thread, task and variable names, and sites as
/// `role file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub kind: String,
    pub severity: String,
    pub locks: Vec<String>,
    pub threads: Vec<String>,
    pub tasks: Vec<String>,
    pub variables: Vec<String>,
    pub sites: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    let mut all: Vec<String> = value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect();
    all.sort();
    all
}

/// The report's findings, reduced and sorted.
pub fn seen(report: &Value) -> Vec<Seen> {
    let mut all: Vec<Seen> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let mut sites: Vec<String> = f["sites"]
                .as_array()
                .expect("sites")
                .iter()
                .map(|s| {
                    format!(
                        "{} {}:{}:{}",
                        s["role"].as_str().expect("a role"),
                        s["file"].as_str().expect("a file"),
                        s["line"],
                        s["col"]
                    )
                })
                .collect();
            sites.sort();
            Seen {
                kind: f["kind"].as_str().expect("kind").to_owned(),
                severity: f["severity"].as_str().expect("severity").to_owned(),
                locks: strings(&f["locks"]),
                threads: strings(&f["threads"]),
                tasks: strings(&f["tasks"]),
                variables: strings(&f["variables"]),
                sites,
            }
        })
        .collect();
    all.sort();
    all
}

/// `seen` with the numbers of numbered threads (`worker-3`) replaced by `N` (`worker-N`):
/// which two of ten identical threads raced is the run's choice, not the program's.
pub fn seen_unnumbered(report: &Value) -> Vec<Seen> {
    let mut all = seen(report);
    for finding in &mut all {
        for thread in &mut finding.threads {
            if let Some((stem, number)) = thread.rsplit_once('-') {
                if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
                    *thread = format!("{stem}-N");
                }
            }
        }
        finding.threads.sort();
    }
    all.sort();
    all
}

/// Owned strings, sorted.
pub fn sorted(items: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    all.sort();
    all
}

/// The site `role file:line:col` of the call marked `// site: MARKER` in
/// `traces/src/bin/SCENARIO.rs`: the marked line, and the column where `token` (the called
/// method or function, as `#[track_caller]` reports it) starts on it.
pub fn site(scenario: &str, marker: &str, token: &str, role: &str) -> String {
    let file = format!("traces/src/bin/{scenario}.rs");
    let source = std::fs::read_to_string(root().join(&file)).expect("the scenario's source");
    let comment = format!("// site: {marker}");
    let marked: Vec<(usize, &str)> = source
        .lines()
        .map(str::trim_end)
        .enumerate()
        .filter(|(_, line)| line.ends_with(&comment) && !line.trim_start().starts_with("//"))
        .collect();
    assert_eq!(marked.len(), 1, "one line of {file} is marked `{comment}`");
    let (index, line) = marked[0];
    let code = &line[..line.len() - comment.len()];
    assert_eq!(code.matches(token).count(), 1, "`{token}` once in {file}:{}", index + 1);
    let col = code.find(token).expect("the token is on the line") + 1;
    format!("{role} {file}:{}:{col}", index + 1)
}
