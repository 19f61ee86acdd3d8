//! Bad conditions: a trace path that cannot be created, a disk that is full from the start
//! (`/dev/full`) or fills up during the recording (a file size limit), a dump directory that
//! vanished, a malformed `HINDSIGHT_MODE`. Each time the host program goes on as if nothing
//! happened, the recorder says so in one line on standard error, and what could not be
//! written is counted as dropped.
#![cfg(feature = "record")]

mod child;
mod common;

use common::scratch_dir;
use hindsight_recorder::format::{Tail, TraceReader};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::RecorderError;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hammers a lock from two threads for `duration`; the host's own work, which must go on.
fn host_work(duration: Duration) -> u64 {
    let lock = Arc::new(Mutex::named("work", 0u64));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < duration {
                    for _ in 0..100 {
                        *lock.lock().unwrap() += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let done = *lock.lock().unwrap();
    done
}

/// The child: one bad condition, chosen by its role.
#[test]
fn child_under_bad_conditions() {
    let Some(role) = child::role() else { return };
    match role.as_str() {
        "file-size-limit" => {
            // SAFETY: plain libc calls on this process's own limits and signal disposition.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit { rlim_cur: 64 << 10, rlim_max: 64 << 10 };
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            }
        }
        "full-disk" | "unwritable" | "bad-mode" | "dump-directory-gone" => {}
        other => panic!("unknown role {other}"),
    }
    let guard = hindsight_recorder::init();
    println!("recording={}", u8::from(guard.is_some()));
    if role == "dump-directory-gone" {
        let guard = guard.as_ref().expect("the flight recorder started");
        std::fs::remove_dir_all(guard.path().parent().unwrap()).unwrap();
        for reason in ["first", "second"] {
            let failed =
                matches!(guard.dump(reason), Err(hindsight_recorder::DumpError::Write { .. }));
            println!("dump_failed={}", u8::from(failed));
        }
    }
    let done = host_work(Duration::from_millis(if role == "file-size-limit" { 1500 } else { 300 }));
    println!("host_work={done}");
    match guard.map(|guard| guard.finish()) {
        Some(Err(RecorderError::WriteFailed { summary, .. })) => {
            println!("write_failed=1 dropped={} events={}", summary.dropped, summary.events)
        }
        Some(Ok(summary)) => println!("write_failed=0 dropped={}", summary.dropped),
        Some(Err(e)) => panic!("{e}"),
        None => {}
    }
    println!("exited=1");
}

/// What a child printed on standard output and standard error.
struct Outcome {
    stdout: String,
    hindsight_lines: Vec<String>,
}

fn run(role: &str, trace: &Path, mode: Option<&str>) -> Outcome {
    let mut command = child::command("child_under_bad_conditions", role);
    command.env(hindsight_recorder::TRACE_VAR, trace);
    if let Some(mode) = mode {
        command.env(hindsight_recorder::MODE_VAR, mode);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{role}: the host ran to its end\n{stdout}\n{stderr}");
    assert_eq!(child::field(&stdout, "exited"), Some(1), "{role}:\n{stdout}\n{stderr}");
    assert!(child::field(&stdout, "host_work").is_some_and(|n| n > 0));
    let hindsight_lines =
        stderr.lines().filter(|l| l.starts_with("hindsight:")).map(str::to_owned).collect();
    Outcome { stdout, hindsight_lines }
}

#[test]
fn a_full_disk_is_said_once_and_every_event_is_counted_as_dropped() {
    if child::role().is_some() {
        return;
    }
    let outcome = run("full-disk", Path::new("/dev/full"), None);
    assert_eq!(
        outcome.hindsight_lines,
        ["hindsight: cannot write trace to /dev/full: No space left on device (os error 28); \
          recording stops, events are counted as dropped"]
    );
    assert_eq!(child::field(&outcome.stdout, "write_failed"), Some(1));
    let dropped = child::field(&outcome.stdout, "dropped").unwrap();
    let events = child::field(&outcome.stdout, "events").unwrap();
    assert!(dropped > 0 && dropped >= events, "all recorded events were dropped: {dropped}");
}

#[test]
fn a_disk_filling_up_mid_recording_leaves_a_readable_prefix() {
    if child::role().is_some() {
        return;
    }
    let dir = scratch_dir("file-size-limit");
    let trace = dir.join("limited.trace");
    let outcome = run("file-size-limit", &trace, None);
    assert_eq!(outcome.hindsight_lines.len(), 1, "said once: {:?}", outcome.hindsight_lines);
    let line = &outcome.hindsight_lines[0];
    assert!(line.starts_with(&format!("hindsight: cannot write trace to {}: ", trace.display())));
    assert!(line.ends_with("; recording stops, events are counted as dropped"), "{line}");
    assert!(child::field(&outcome.stdout, "dropped").unwrap() > 0);
    let mut reader = TraceReader::open(&trace).expect("the prefix is a trace");
    let items = reader.by_ref().count();
    assert!(items > 1);
    assert!(matches!(reader.tail(), Some(Tail::Complete | Tail::Truncated { .. })));
    assert!(std::fs::metadata(&trace).unwrap().len() <= 64 << 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_trace_path_is_said_once_and_the_host_runs_unrecorded() {
    if child::role().is_some() {
        return;
    }
    let dir = scratch_dir("unwritable");
    let not_a_directory = dir.join("file");
    std::fs::write(&not_a_directory, b"").unwrap();
    let trace = not_a_directory.join("x.trace");
    let outcome = run("unwritable", &trace, None);
    assert_eq!(child::field(&outcome.stdout, "recording"), Some(0));
    assert_eq!(
        outcome.hindsight_lines,
        [format!("hindsight: not recording: {}: Not a directory (os error 20)", trace.display())]
    );
    // The same for a flight recorder, whose dumps would go there.
    let outcome = run("unwritable", &trace, Some("ring"));
    assert_eq!(child::field(&outcome.stdout, "recording"), Some(0));
    assert_eq!(outcome.hindsight_lines.len(), 1, "{:?}", outcome.hindsight_lines);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dump_that_cannot_be_written_is_said_once_and_recording_goes_on() {
    if child::role().is_some() {
        return;
    }
    let dir = scratch_dir("dump-gone");
    let trace = dir.join("svc.trace");
    let outcome = run("dump-directory-gone", &trace, Some("ring"));
    assert_eq!(child::field(&outcome.stdout, "recording"), Some(1));
    assert_eq!(outcome.stdout.matches("dump_failed=1").count(), 2);
    assert_eq!(outcome.hindsight_lines.len(), 1, "said once: {:?}", outcome.hindsight_lines);
    let line = &outcome.hindsight_lines[0];
    let expected =
        format!("hindsight: cannot write trace to {}", dir.join("svc.1.trace").display());
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.ends_with("; this dump is lost, recording goes on"), "{line}");
}

#[test]
fn a_malformed_mode_is_said_in_one_line_and_nothing_is_recorded() {
    if child::role().is_some() {
        return;
    }
    let dir = scratch_dir("bad-mode");
    let trace = dir.join("never.trace");
    let outcome = run("bad-mode", &trace, Some("ring:size=lots"));
    assert_eq!(child::field(&outcome.stdout, "recording"), Some(0));
    assert_eq!(
        outcome.hindsight_lines,
        ["hindsight: not recording: HINDSIGHT_MODE=\"ring:size=lots\" is not a recording mode: \
          size `lots` is not DIGITS+UNIT (expected `streaming`, or `ring` with options such as \
          `ring:size=64MiB,age=30s`)"]
    );
    assert!(!trace.exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}
