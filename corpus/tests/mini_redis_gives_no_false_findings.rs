//! The unmodified mini-redis 0.4 server under hindsight (issue 21): 16 clients for 6 s, with
//! two busy-loop processes competing for the machine's two cores, give no error and no warning; the same
//! server killed mid-run gives no error and no warning either (what it held then would be its
//! state at death, `info`; its connection permits are counted, not held like locks); clients
//! sharing one connection under a tokio `Mutex` held across each round trip (the pattern
//! tokio's tutorial warns against) give a `guard-across-await` warning (and, on a busy
//! machine, the `contention-hotspot` it causes).
//! (Before issue 21: a false `stale-lock` error on its connection semaphore, and
//! `blocking-in-async` warnings for polls the busy machine made long.)

mod common;

use common::trace_path;
use hindsight_analyzer::report::{Finding, Severity};
use hindsight_analyzer::{analyze_paths, AnalyzeOptions};
use std::process::{Child, Command};
use std::time::Duration;

/// The findings at or above `warning`, as `kind: title` lines.
fn loud(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| format!("{}: {}", f.kind.name(), f.title))
        .collect()
}

/// Two busy-loop processes competing for the CPUs (the machine's two cores), killed when
/// dropped — also when the test fails.
struct CpuHogs(Vec<Child>);

impl CpuHogs {
    fn start() -> CpuHogs {
        let spin = || Command::new("sh").args(["-c", "while :; do :; done"]).spawn();
        CpuHogs((0..2).map(|_| spin().expect("a busy loop starts")).collect())
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

#[test]
fn sixteen_clients_for_six_seconds_beside_two_busy_processes_give_no_error_or_warning() {
    let path = trace_path("load");
    let hogs = CpuHogs::start();
    let status = Command::new(env!("CARGO_BIN_EXE_mini_redis_load"))
        .args([path.to_str().expect("a UTF-8 path"), "16", "6"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the harness runs");
    drop(hogs);
    assert!(status.success());
    let report = analyze_paths(&[&path], &AnalyzeOptions::default()).expect("readable");
    let _ = std::fs::remove_file(&path);
    assert_eq!(loud(&report.findings), Vec::<String>::new());
    let limit = report.locks.iter().find(|l| l.kind == "semaphore").expect("the connection limit");
    assert_eq!(limit.capacity, Some(250));
    assert!(limit.acquisitions >= 16, "{limit:?}");
}

#[test]
fn a_server_killed_mid_run_gives_no_error_or_warning() {
    let path = trace_path("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mini_redis_load"))
        .args([path.to_str().expect("a UTF-8 path"), "16", "30"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the harness runs");
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("killed");
    child.wait().expect("reaped");
    let report = analyze_paths(&[&path], &AnalyzeOptions::default()).expect("readable");
    assert!(report.trace.events > 0);
    assert_eq!(loud(&report.findings), Vec::<String>::new());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn clients_sharing_one_connection_under_a_mutex_across_its_round_trips_are_a_guard_across_await() {
    let path = trace_path("shared");
    let status = Command::new(env!("CARGO_BIN_EXE_mini_redis_load"))
        .args([path.to_str().expect("a UTF-8 path"), "8", "1", "shared"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the harness runs");
    assert!(status.success());
    let report = analyze_paths(&[&path], &AnalyzeOptions::default()).expect("readable");
    let mutex = "corpus/src/bin/mini_redis_load.rs:39:39";
    let found: Vec<(String, Severity, Vec<String>)> = report
        .findings
        .iter()
        .map(|f| (f.kind.name().to_owned(), f.severity, f.locks.clone()))
        .collect();
    let guard = ("guard-across-await".to_owned(), Severity::Warning, vec![mutex.to_owned()]);
    assert!(found.contains(&guard), "{found:#?}");
    // Every client queues on the mutex: on a busy machine its waits make a hotspot too, the
    // same bug seen from the lock. Nothing else.
    let hotspot = ("contention-hotspot".to_owned(), Severity::Warning, vec![mutex.to_owned()]);
    // (A poll that waited for a CPU on a loaded machine is `info`, and says it was starved.)
    let starved = |f: &&hindsight_analyzer::Finding| {
        f.kind.name() == "blocking-in-async"
            && f.severity == Severity::Info
            && f.title.contains("starved of CPU")
    };
    let rest: Vec<_> = report.findings.iter().filter(|f| !starved(f)).collect();
    assert!(
        rest.iter().all(|f| {
            let seen = (f.kind.name().to_owned(), f.severity, f.locks.clone());
            seen == guard || seen == hotspot
        }),
        "{found:#?}"
    );
    let _ = std::fs::remove_file(&path);
}
