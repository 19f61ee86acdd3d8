//! `hindsight export` on the committed scenario traces (`traces/`): the Chrome trace-event JSON
//! (lanes, holds, waits, polls, findings, nesting) and the lock-order graph in DOT, exactly;
//! and its errors (exit 2, one line, no file left behind).
//!
//! The sites are lines of the scenario programs in `traces/src/bin/`: if you edit one,
//! re-record (`traces/record-all.sh`) and update the lines here.

mod scenario_support;

use scenario_support::{analyze_json, hindsight, site};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The first `tid` of task lanes (`chrome::TASK_TID_BASE`).
const TASK_TID_BASE: u64 = (1 << 32) + 1;

/// A path for an output of the test `name`, in a fresh directory of this run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hindsight-export-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs `hindsight export TRACES --FLAG OUT`; returns the output and OUT.
fn export(traces: &[&str], flag: &str, out: &str) -> (Output, PathBuf) {
    let path = scratch(out);
    let mut args = vec!["export"];
    args.extend_from_slice(traces);
    args.extend_from_slice(&[flag, path.to_str().expect("a UTF-8 temp path")]);
    (hindsight(&args), path)
}

/// Asserts that the export succeeded and said so in one line; returns that line without the
/// path.
fn succeeded(output: &Output, path: &Path) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(output.stdout.is_empty());
    let suffix = format!(" to {}\n", path.display());
    stderr
        .strip_suffix(&suffix)
        .unwrap_or_else(|| panic!("one line naming {suffix}: {stderr}"))
        .to_owned()
}

/// Asserts exit 2 with one line on stderr; returns it.
fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `hindsight info --format json` of `trace`: the facts of a recording (pid, counts) that
/// re-recording a scenario changes.
fn info(trace: &str) -> Value {
    let output = hindsight(&["info", trace, "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("info is JSON")
}

/// A trace's process as the export names it: `program (pid N)`.
fn process_name(trace: &str) -> String {
    let info = info(trace);
    format!("{} (pid {})", info["program"].as_str().expect("a program"), info["pid"])
}

/// A complete event as `(start ns, end ns, name)`.
type Span = (i64, i64, String);

/// A Chrome export, read back.
struct Chrome {
    events: Vec<Value>,
}

/// A complete event, with the name of its lane.
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    lane: String,
    on_task_lane: bool,
    name: String,
    ts: f64,
    dur: f64,
    args: Value,
}

impl Chrome {
    fn read(path: &Path) -> Chrome {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(path).expect("the export was written"))
                .expect("the export is one JSON document");
        assert_eq!(doc["displayTimeUnit"], "ns");
        let events = doc["traceEvents"].as_array().expect("a traceEvents array").clone();
        Chrome { events }
    }

    /// The names given by metadata events called `what`, sorted.
    fn names(&self, what: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == what)
            .map(|e| e["args"]["name"].as_str().expect("a name").to_owned())
            .collect();
        names.sort();
        names
    }

    fn lane_name(&self, pid: &Value, tid: &Value) -> String {
        let named = self.events.iter().find(|e| {
            e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == *pid && e["tid"] == *tid
        });
        named.expect("every lane is named")["args"]["name"].as_str().expect("a name").to_owned()
    }

    /// The complete events, in the order of their start.
    fn slices(&self) -> Vec<Slice> {
        let mut slices: Vec<Slice> = self
            .events
            .iter()
            .filter(|e| e["ph"] == "X")
            .map(|e| Slice {
                lane: self.lane_name(&e["pid"], &e["tid"]),
                on_task_lane: e["tid"].as_u64().expect("a tid") >= TASK_TID_BASE,
                name: e["name"].as_str().expect("a name").to_owned(),
                ts: e["ts"].as_f64().expect("ts in µs"),
                dur: e["dur"].as_f64().expect("dur in µs"),
                args: e["args"].clone(),
            })
            .collect();
        slices.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        slices
    }

    /// The instant events of findings: `(title, kind, severity, ts)`.
    fn findings(&self) -> Vec<(String, String, String, f64)> {
        self.events
            .iter()
            .filter(|e| e["ph"] == "i" && e["cat"] == "finding")
            .map(|e| {
                (
                    e["name"].as_str().expect("a title").to_owned(),
                    e["args"]["kind"].as_str().expect("a kind").to_owned(),
                    e["args"]["severity"].as_str().expect("a severity").to_owned(),
                    e["ts"].as_f64().expect("ts"),
                )
            })
            .collect()
    }

    /// Asserts that every duration is at least 0 and that the complete events of each lane
    /// nest: one that starts inside another ends inside it.
    fn assert_lanes_nest(&self) {
        let ns = |us: f64| (us * 1e3).round() as i64;
        let mut by_lane: std::collections::BTreeMap<(u64, u64), Vec<Span>> = Default::default();
        for e in self.events.iter().filter(|e| e["ph"] == "X") {
            let (ts, dur) = (e["ts"].as_f64().expect("ts"), e["dur"].as_f64().expect("dur"));
            assert!(dur >= 0.0, "negative duration: {e}");
            let lane = (e["pid"].as_u64().expect("pid"), e["tid"].as_u64().expect("tid"));
            let name = e["name"].as_str().expect("a name").to_owned();
            by_lane.entry(lane).or_default().push((ns(ts), ns(ts) + ns(dur), name));
        }
        for (lane, mut slices) in by_lane {
            // Outer slices first where two start together.
            slices.sort_by_key(|&(start, end, _)| (start, -end));
            let mut open: Vec<Span> = Vec::new();
            for slice in slices {
                while open.last().is_some_and(|outer| outer.1 <= slice.0) {
                    open.pop();
                }
                if let Some(outer) = open.last() {
                    assert!(slice.1 <= outer.1, "lane {lane:?}: {slice:?} sticks out of {outer:?}");
                }
                open.push(slice);
            }
        }
    }
}

/// `file:line:col` of a marked scenario site (see `scenario_support::site`).
fn site_of(scenario: &str, marker: &str, token: &str) -> String {
    site(scenario, marker, token, "-").trim_start_matches("- ").to_owned()
}

#[test]
fn lock_order_inversion_in_chrome_json_has_its_threads_holds_and_cycle() {
    let (output, path) = export(&["traces/lock_order_inversion.trace"], "--chrome", "inv.json");
    assert_eq!(succeeded(&output, &path), "wrote 11 events on 3 lanes");
    let chrome = Chrome::read(&path);
    let trace = "traces/lock_order_inversion.trace";
    assert_eq!(chrome.names("process_name"), vec![process_name(trace)]);
    assert_eq!(chrome.names("thread_name"), vec!["failure-recorder", "main", "sync"]);

    let file = "traces/src/bin/lock_order_inversion.rs";
    let holds: Vec<(String, String, String, String)> = chrome
        .slices()
        .into_iter()
        .filter(|s| s.name.starts_with("hold "))
        .map(|s| {
            assert_eq!(s.args["mode"], "exclusive");
            assert_eq!(s.args["outcome"], "released");
            assert!(!s.on_task_lane);
            let lock = s.args["lock"].as_str().expect("a lock").to_owned();
            let site = s.args["site"].as_str().expect("a site").to_owned();
            (s.lane, s.name, lock, site)
        })
        .collect();
    let hold = |lane: &str, lock: &str, at: &str| {
        (lane.to_owned(), format!("hold {lock}"), lock.to_owned(), format!("{file}:{at}"))
    };
    assert_eq!(
        holds,
        vec![
            hold("failure-recorder", "sqlite", "74:36"),
            hold("failure-recorder", "git", "76:29"),
            hold("sync", "git", "82:25"),
            hold("sync", "sqlite", "83:36"),
        ]
    );
    // `main` joins both threads, each join ending when the thread has finished.
    let all = chrome.slices();
    let joins: Vec<(&str, &str, &str)> = all
        .iter()
        .filter(|s| s.name.starts_with("join "))
        .map(|s| (s.lane.as_str(), s.name.as_str(), s.args["outcome"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        joins,
        vec![
            ("main", "join thread failure-recorder", "joined"),
            ("main", "join thread sync", "joined"),
        ]
    );
    // The inner hold of each thread ends before the outer one.
    let slices: Vec<Slice> = all.into_iter().filter(|s| s.name.starts_with("hold ")).collect();
    for pair in slices.chunks(2) {
        let (outer, inner) = (&pair[0], &pair[1]);
        assert!(inner.ts >= outer.ts && inner.ts + inner.dur <= outer.ts + outer.dur, "{pair:?}");
    }
    chrome.assert_lanes_nest();
    // The cycle is complete, and reported, when `sync` takes `sqlite`.
    let completed = slices.iter().find(|s| s.lane == "sync" && s.name == "hold sqlite");
    assert_eq!(
        chrome.findings(),
        vec![(
            "locks `sqlite` and `git` are taken in opposite orders".to_owned(),
            "lock-order-cycle".to_owned(),
            "error".to_owned(),
            completed.expect("sync holds sqlite").ts,
        )]
    );
}

#[test]
fn lock_order_inversion_in_dot_has_both_locks_and_both_edges_red() {
    let (output, path) = export(&["traces/lock_order_inversion.trace"], "--dot", "inv.dot");
    assert_eq!(
        succeeded(&output, &path),
        "wrote 2 lock classes and 2 lock-order edges (2 in lock-order-cycle errors)"
    );
    let dot = std::fs::read_to_string(&path).expect("the export was written");
    assert!(dot.starts_with("digraph lock_order {\n") && dot.ends_with("}\n"), "{dot}");
    let file = "traces/src/bin/lock_order_inversion.rs";
    let red = "color=red, fontcolor=red, style=bold, penwidth=2";
    let body: Vec<&str> = dot.lines().filter(|l| l.starts_with("  c")).collect();
    assert_eq!(
        body,
        vec![
            r#"  c0 [label="sqlite"];"#.to_owned(),
            r#"  c1 [label="git"];"#.to_owned(),
            format!(
                r#"  c0 -> c1 [label="1×\nheld at {file}:74:36\ntaken at {file}:76:29", {red}];"#
            ),
            format!(
                r#"  c1 -> c0 [label="1×\nheld at {file}:82:25\ntaken at {file}:83:36", {red}];"#
            ),
        ]
    );
}

#[test]
fn a_gated_cycle_in_dot_is_dashed_and_the_gate_edges_plain() {
    let (output, path) = export(&["traces/gate_lock.trace"], "--dot", "gate.dot");
    assert_eq!(
        succeeded(&output, &path),
        "wrote 3 lock classes and 4 lock-order edges (0 in lock-order-cycle errors)"
    );
    let dot = std::fs::read_to_string(&path).expect("the export was written");
    let edges: Vec<(&str, &str)> = dot
        .lines()
        .filter(|l| l.starts_with("  c") && l.contains(" -> "))
        .map(|l| {
            let (nodes, attributes) = l.trim().split_once(" [").expect("attributes");
            let style = attributes.rsplit_once("\", ").map_or("plain", |(_, style)| style);
            (nodes, style)
        })
        .collect();
    assert_eq!(
        edges,
        vec![
            ("c0 -> c1", "plain"),
            ("c0 -> c2", "plain"),
            ("c1 -> c2", "style=dashed];"),
            ("c2 -> c1", "style=dashed];"),
        ]
    );
    assert!(dot.contains(r#"c0 [label="cache"]"#) && dot.contains(r#"c1 [label="index"]"#));
}

#[test]
fn tokio_mixed_has_a_lane_per_task_and_its_polls_on_the_thread_lanes() {
    let trace = "traces/tokio_mixed.trace";
    let (output, path) = export(&[trace], "--chrome", "tokio.json");
    let chrome = Chrome::read(&path);
    let (info, (_, report)) = (info(trace), analyze_json(&[trace]));
    let lanes = info["threads"].as_u64().expect("threads") + info["tasks"].as_u64().expect("tasks");
    let written = chrome.events.len();
    assert_eq!(succeeded(&output, &path), format!("wrote {written} events on {lanes} lanes"));
    let mut expected = vec!["main".to_owned(), "tokio-rt-worker".into(), "tokio-rt-worker".into()];
    let tasks = report["tasks"].as_array().expect("tasks");
    expected.extend(tasks.iter().map(|t| format!("task {}", t["name"].as_str().expect("a name"))));
    expected.sort();
    assert_eq!(chrome.names("thread_name"), expected);
    chrome.assert_lanes_nest();

    let slices = chrome.slices();
    let polls: Vec<&Slice> = slices.iter().filter(|s| s.name.starts_with("poll ")).collect();
    // As many as `info` counts poll_started events, all on thread lanes.
    let counts = &info["event_counts"];
    assert_eq!(Some(polls.len() as u64), counts["poll_started"].as_u64());
    for poll in &polls {
        let task = poll.args["task"].as_str().expect("the polled task");
        assert!(!poll.on_task_lane && poll.name == format!("poll {task}"), "{poll:?}");
    }
    assert!(polls.iter().all(|p| p.args["outcome"] == "ready" || p.args["outcome"] == "pending"));
    for worker in 0..4 {
        let task = format!("worker-{worker}");
        let polled_on: std::collections::BTreeSet<&str> = polls
            .iter()
            .filter(|p| p.args["task"] == task.as_str())
            .map(|p| p.lane.as_str())
            .collect();
        assert_eq!(polled_on.into_iter().collect::<Vec<_>>(), vec!["tokio-rt-worker"]);
    }
    // Every lock is taken inside a task: holds and waits are on task lanes.
    let holds = slices.iter().filter(|s| s.name.starts_with("hold ")).count();
    let waits = slices.iter().filter(|s| s.name.starts_with("wait ")).count();
    let counted = (counts["lock_acquired"].as_u64(), counts["lock_requested"].as_u64());
    assert_eq!((Some(holds as u64), Some(waits as u64)), counted);
    assert!(slices.iter().filter(|s| !s.name.starts_with("poll ")).all(|s| s.on_task_lane));
    assert!(slices
        .iter()
        .filter(|s| s.name.starts_with("wait "))
        .all(|s| s.args["outcome"] == "acquired"));
    assert_eq!(chrome.findings(), vec![]);
}

#[test]
fn await_holding_std_lock_shows_the_guard_held_across_polls_and_the_wait_it_caused() {
    let scenario = "await_holding_std_lock";
    let trace = format!("traces/{scenario}.trace");
    let (output, path) = export(&[&trace], "--chrome", "await.json");
    assert_eq!(succeeded(&output, &path), "wrote 29 events on 10 lanes");
    let chrome = Chrome::read(&path);
    chrome.assert_lanes_nest();
    let slices = chrome.slices();
    let find = |lane: &str, name: &str| {
        slices
            .iter()
            .find(|s| s.lane == lane && s.name == name)
            .unwrap_or_else(|| panic!("{name} on {lane}"))
    };
    let hold = find("task update-context", "hold contexts");
    assert!(hold.on_task_lane);
    assert_eq!(hold.args["site"], site_of(scenario, "write-guard", "write"));
    // Held across the await: longer than either of the task's polls, and about the 10 ms
    // sleep (tokio's timer wheel has 1 ms ticks, so the sleep may end up to 1 ms early).
    assert!(hold.dur > 9_000.0, "{hold:?}");
    let polls: Vec<&Slice> = slices.iter().filter(|s| s.name == "poll update-context").collect();
    assert_eq!(polls.len(), 2);
    assert!(polls.iter().all(|p| !p.on_task_lane && p.dur < hold.dur), "{polls:?}");
    let wait = find("task list-contexts", "wait contexts");
    assert_eq!(wait.args["site"], site_of(scenario, "blocked-read", "read"));
    assert_eq!(wait.args["mode"], "shared");
    assert_eq!(wait.args["outcome"], "acquired");
    // It waited for the guard held across the await, and got the lock once it was released.
    assert!(wait.ts > hold.ts && wait.ts + wait.dur >= hold.ts + hold.dur, "{wait:?} {hold:?}");
    let kinds: Vec<(String, String)> =
        chrome.findings().into_iter().map(|(_, kind, severity, _)| (kind, severity)).collect();
    assert_eq!(
        kinds,
        vec![
            ("guard-across-await".to_owned(), "error".to_owned()),
            ("blocking-in-async".to_owned(), "warning".to_owned()),
        ]
    );
}

#[test]
fn holds_and_waits_open_when_the_trace_ends_are_closed_at_its_end() {
    let (output, path) = export(&["traces/deadlock_captured.trace"], "--chrome", "dead.json");
    assert_eq!(succeeded(&output, &path), "wrote 9 events on 3 lanes");
    let chrome = Chrome::read(&path);
    chrome.assert_lanes_nest();
    let file = "traces/src/bin/deadlock_captured.rs";
    let slices = chrome.slices();
    let end = slices.iter().map(|s| s.ts + s.dur).fold(0.0, f64::max);
    let open: Vec<(&str, &str, &str)> = slices
        .iter()
        .map(|s| {
            assert_eq!(s.args["open_at_end"], true, "{s:?}");
            // They all end where the trace does, 1 s after the threads started waiting for
            // each other (when the program gave up on them).
            assert_eq!(((s.ts + s.dur) * 1e3).round(), (end * 1e3).round(), "{s:?}");
            assert!(s.name.starts_with("hold ") || end - s.ts >= 1e6, "{s:?}");
            (s.lane.as_str(), s.name.as_str(), s.args["site"].as_str().expect("a site"))
        })
        .collect();
    let (sqlite_held, git_held) = (format!("{file}:44:36"), format!("{file}:53:25"));
    let (git_wanted, sqlite_wanted) = (format!("{file}:47:29"), format!("{file}:55:36"));
    assert_eq!(
        open,
        vec![
            ("failure-recorder", "hold sqlite", sqlite_held.as_str()),
            ("sync", "hold git", git_held.as_str()),
            ("sync", "wait sqlite", sqlite_wanted.as_str()),
            ("failure-recorder", "wait git", git_wanted.as_str()),
        ]
    );
    let findings = chrome.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!((findings[0].1.as_str(), findings[0].2.as_str()), ("deadlock", "error"));
}

#[test]
fn several_traces_are_one_timeline_with_a_process_each() {
    let dir = "traces/lock_order_processes";
    let traces = [&format!("{dir}/compactor.trace"), &format!("{dir}/indexer.trace")];
    let traces: Vec<&str> = traces.iter().map(|t| t.as_str()).collect();
    let (output, path) = export(&traces, "--chrome", "processes.json");
    assert_eq!(succeeded(&output, &path), "wrote 9 events on 2 lanes");
    let chrome = Chrome::read(&path);
    let processes: Vec<String> = traces.iter().map(|t| process_name(t)).collect();
    assert_eq!(chrome.names("process_name"), processes);
    let mut threads: Vec<String> =
        traces.iter().map(|t| format!("main (pid {})", info(t)["pid"])).collect();
    threads.sort();
    assert_eq!(chrome.names("thread_name"), threads);
    let kinds: Vec<String> = chrome.findings().into_iter().map(|f| f.1).collect();
    assert_eq!(kinds, vec!["lock-order-cycle"]);
}

#[test]
fn a_missing_trace_exits_2_naming_it_and_writes_nothing() {
    let (output, path) = export(&["no/such/file.trace"], "--chrome", "missing.json");
    assert!(failed(&output).contains("no/such/file.trace"));
    assert!(!path.exists());
}

#[test]
fn an_output_in_a_missing_directory_exits_2_naming_it() {
    let path = scratch("no-such-dir").join("out.dot");
    let output = hindsight(&[
        "export",
        "traces/lock_order_inversion.trace",
        "--dot",
        path.to_str().expect("a UTF-8 temp path"),
    ]);
    let stderr = failed(&output);
    assert!(stderr.contains(&format!("cannot write {}", path.display())), "{stderr}");
}

#[test]
fn exactly_one_of_chrome_and_dot_is_required() {
    let output = hindsight(&["export", "traces/lock_order_inversion.trace"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error:") && stderr.contains("--chrome") && stderr.contains("--dot"),
        "{stderr}"
    );

    let (json, dot) = (scratch("both.json"), scratch("both.dot"));
    let output = hindsight(&[
        "export",
        "traces/lock_order_inversion.trace",
        "--chrome",
        json.to_str().expect("a UTF-8 temp path"),
        "--dot",
        dot.to_str().expect("a UTF-8 temp path"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!json.exists() && !dot.exists());
}
