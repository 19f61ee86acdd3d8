//! The unmodified mini-redis 0.4 server under hindsight (issue 21): 16 clients for 2 s, with
//! two busy-loop threads competing for the CPUs, give no error and no warning; the same
//! server killed mid-run gives no error and no warning either (what it held then would be its
//! state at death, `info`; its connection permits are counted, not held like locks); clients
//! sharing one connection under a tokio `Mutex` held across each round trip (the pattern
//! tokio's tutorial warns against) give a `guard-across-await` warning (and, on a busy
//! machine, the `contention-hotspot` it causes).
//! (Before issue 21: a false `stale-lock` error on its connection semaphore, and
//! `blocking-in-async` warnings for polls the busy machine made long.)

use hindsight_analyzer::report::{Finding, Severity};
use hindsight_analyzer::{analyze_paths, AnalyzeOptions};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn trace_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hindsight-corpus-{name}-{}.trace", std::process::id()))
}

/// The findings at or above `warning`, as `kind: title` lines.
fn loud(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| format!("{}: {}", f.kind.name(), f.title))
        .collect()
}

/// Runs `f` with two threads spinning beside it.
fn beside_a_cpu_hog<R>(f: impl FnOnce() -> R) -> R {
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    let result = f();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|hog| hog.join().expect("a hog ends"));
    result
}

#[test]
fn sixteen_clients_beside_a_cpu_hog_give_no_error_or_warning() {
    let path = trace_path("load");
    let status = beside_a_cpu_hog(|| {
        Command::new(env!("CARGO_BIN_EXE_mini_redis_load"))
            .args([path.to_str().expect("a UTF-8 path"), "16", "2"])
            .status()
            .expect("the harness runs")
    });
    assert!(status.success());
    let report = analyze_paths(&[&path], &AnalyzeOptions::default()).expect("readable");
    assert_eq!(loud(&report.findings), Vec::<String>::new());
    let limit = report.locks.iter().find(|l| l.kind == "semaphore").expect("the connection limit");
    assert_eq!(limit.capacity, Some(250));
    assert!(limit.acquisitions >= 16, "{limit:?}");
    let _ = std::fs::remove_file(&path);
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
    let mutex = "corpus/src/bin/mini_redis_load.rs:45:39";
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
