//! `hindsight analyze` on the committed traces of the data-race scenarios
//! (`double_checked_session`, `double_checked_session_fixed`, `worker_stats_race`,
//! `channel_handoff`, `task_race_same_thread`, `reload_flag_race`, `ready_flag_publish`), under
//! the default `--races shb` and, where they differ, `hb` and `wcp`: exact findings — kind, severity, variable,
//! locks held, threads, tasks, the two sites of each racy pair — and nothing else.
//!
//! Expected sites are found in the scenario sources by their `// site: NAME` comments; if you
//! change a scenario, re-record its trace
//! (`cargo run --release -p hindsight-scenarios --bin NAME -- traces`).

mod scenario_support;

use scenario_support::{analyze_json, hindsight, seen, seen_unnumbered, site, sorted, Seen};
use serde_json::Value;

/// A data race between the sites `a` and `b` (each `role file:line:col`).
fn race(
    variable: &str,
    locks: &[&str],
    threads: &[&str],
    tasks: &[&str],
    a: String,
    b: String,
) -> Seen {
    let mut sites = vec![a, b];
    sites.sort();
    Seen {
        kind: "data-race".into(),
        severity: "error".into(),
        locks: sorted(locks),
        threads: sorted(threads),
        tasks: sorted(tasks),
        variables: sorted(&[variable]),
        sites,
    }
}

/// Each race's (earlier, later) accesses (`read`/`write`), sorted.
fn ordered_accesses(report: &Value) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            let detail = &finding["detail"];
            let access = |which: &str| detail[which]["access"].as_str().expect("an access");
            (access("first"), access("second"))
        })
        .collect();
    pairs.sort_unstable();
    pairs
}

/// A finding's witness schedule: each step's actor, event and site (`-` for none).
fn witness(finding: &Value) -> Vec<(String, String, String)> {
    let steps = finding["detail"]["witness"].as_array().expect("a witness schedule");
    steps
        .iter()
        .map(|step| {
            let text = |field: &str| step[field].as_str().unwrap_or("-").to_owned();
            (text("actor"), text("event"), text("site"))
        })
        .collect()
}

/// `(actor, event, site)` of a witness step; `site` is `role file:line:col` as [`site`] gives
/// it, or `-`.
fn step(actor: &str, event: &str, site: &str) -> (String, String, String) {
    let site = site.split_once(' ').map_or(site, |(_, place)| place);
    (actor.to_owned(), event.to_owned(), site.to_owned())
}

/// The event counts of `hindsight info --format json`.
fn event_counts(trace: &str) -> Value {
    let out = hindsight(&["info", trace, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let info: Value = serde_json::from_slice(&out.stdout).expect("info prints one JSON object");
    info["event_counts"].clone()
}

#[test]
fn double_checked_session_is_one_race_between_the_unlocked_read_and_the_locked_write() {
    let (status, report) = analyze_json(&["traces/double_checked_session.trace"]);
    assert_eq!(status, 1);
    let s = |marker, token, role| site("double_checked_session", marker, token, role);
    let unlocked_read = s("unlocked-read", "read()", "read");
    let locked_write = s("locked-write", "write()", "write");
    let one = race(
        "sessions",
        &["sessions_lock"],
        &["request-N", "request-N"],
        &[],
        unlocked_read,
        locked_write,
    );
    // Requests checked before the write and after it: one finding per order of the pair.
    assert_eq!(seen_unnumbered(&report), vec![one.clone(), one]);
    assert_eq!(ordered_accesses(&report), [("read", "write"), ("write", "read")]);
    // Two different request threads; the write held the lock, the read did not.
    let detail = &report["findings"][0]["detail"];
    assert_ne!(detail["first"]["thread"], detail["second"]["thread"]);
    let mut accesses: Vec<(String, Value)> = ["first", "second"]
        .iter()
        .map(|which| {
            let access = &detail[which];
            (access["access"].as_str().expect("an access").to_owned(), access["locks_held"].clone())
        })
        .collect();
    accesses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        accesses,
        vec![
            ("read".to_owned(), serde_json::json!([])),
            ("write".to_owned(), serde_json::json!(["sessions_lock"])),
        ]
    );
}

#[test]
fn double_checked_session_fixed_has_no_finding() {
    let (status, report) = analyze_json(&["traces/double_checked_session_fixed.trace"]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
    // Not vacuous: ten requests read the map, one wrote it.
    let counts = event_counts("traces/double_checked_session_fixed.trace");
    assert_eq!((counts["read"].as_u64(), counts["write"].as_u64()), (Some(10), Some(1)));
}

#[test]
fn worker_stats_race_is_read_against_write_and_write_against_write() {
    let (status, report) = analyze_json(&["traces/worker_stats_race.trace"]);
    assert_eq!(status, 1);
    let s = |marker, token, role| site("worker_stats_race", marker, token, role);
    let read = s("stats-read", "read(", "read");
    let write = s("stats-write", "write(", "write");
    let workers = ["worker-N", "worker-N"];
    let read_write = race("worker_stats", &[], &workers, &[], read, write.clone());
    let mut expected = vec![
        read_write.clone(),
        read_write,
        race("worker_stats", &[], &workers, &[], write.clone(), write),
    ];
    expected.sort();
    assert_eq!(seen_unnumbered(&report), expected);
    assert_eq!(
        ordered_accesses(&report),
        [("read", "write"), ("write", "read"), ("write", "write")]
    );
    for finding in report["findings"].as_array().expect("findings") {
        let detail = &finding["detail"];
        assert_ne!(detail["first"]["thread"], detail["second"]["thread"]);
    }
}

#[test]
fn channel_handoff_has_no_finding() {
    let (status, report) = analyze_json(&["traces/channel_handoff.trace"]);
    assert_eq!(status, 0);
    assert_eq!(seen(&report), vec![]);
    // Not vacuous: five reports, each written by three owners and read by the last, went
    // through ten recorded messages (tokio channel, then std channel) and a join.
    let counts = event_counts("traces/channel_handoff.trace");
    assert_eq!(counts["send"].as_u64(), Some(10));
    assert_eq!(counts["receive"].as_u64(), Some(10));
    assert_eq!(counts["write"].as_u64(), Some(25));
    assert_eq!(counts["read"].as_u64(), Some(5));
    assert_eq!(counts["thread_joined"].as_u64(), Some(1));
}

#[test]
fn task_race_same_thread_is_two_races_between_tasks_on_main() {
    let (status, report) = analyze_json(&["traces/task_race_same_thread.trace"]);
    assert_eq!(status, 1);
    let s = |marker, token, role| site("task_race_same_thread", marker, token, role);
    let read = s("stale-check", "read(", "read");
    let write = s("token-store", "write(", "write");
    let tasks = ["sync-calendar", "sync-contacts"];
    let mut expected = vec![
        race("token_cache", &[], &["main"], &tasks, read, write.clone()),
        race("token_cache", &[], &["main"], &tasks, write.clone(), write),
    ];
    expected.sort();
    assert_eq!(seen(&report), expected);
    // One thread: the racing actors are the two tasks, not threads.
    for finding in report["findings"].as_array().expect("findings") {
        let detail = &finding["detail"];
        assert_eq!(detail["first"]["thread"], "main");
        assert_eq!(detail["second"]["thread"], "main");
        assert_ne!(detail["first"]["task"], detail["second"]["task"]);
    }
}

/// The races of `trace` with `--races relation`: exit status and findings.
fn races_with(trace: &str, relation: &str) -> (i32, Value) {
    analyze_json(&[trace, "--races", relation])
}

#[test]
fn reload_flag_race_is_predicted_by_wcp_only() {
    let trace = "traces/reload_flag_race.trace";
    for relation in ["hb", "shb"] {
        let (status, report) = races_with(trace, relation);
        assert_eq!((status, seen(&report)), (0, vec![]), "--races {relation}");
    }
    let (status, report) = races_with(trace, "wcp");
    assert_eq!(status, 1);
    let s = |marker, token, role| site("reload_flag_race", marker, token, role);
    let write = s("flag-write", "write(", "write");
    let read = s("flag-read", "read(", "read");
    let threads = ["handler", "reloader"];
    assert_eq!(
        seen(&report),
        vec![race("reload_pending", &[], &threads, &[], write.clone(), read.clone())]
    );
    let finding = &report["findings"][0];
    assert!(finding["title"].as_str().expect("a title").starts_with("predicted data race"));
    assert_eq!(finding["detail"]["relation"], "wcp");
    assert_eq!(
        finding["detail"]["reason"],
        "this run ordered them only through critical sections on `stats` that do not conflict: \
         another schedule may run those sections the other way round"
    );
    assert_eq!(ordered_accesses(&report), [("write", "read")]);
    // Proved by a schedule that runs the handler's `stats` section before the flag is set
    // (this recording spawned the handler after the flag's write: the spawn comes first).
    let stats = s("stats-section", "lock()", "acquire");
    let spawn = s("spawn-handler", "hindsight_recorder", "spawn");
    assert_eq!(
        witness(finding),
        [
            step("thread `main`", "spawns thread `handler`", &spawn),
            step("thread `handler`", "acquires `stats`", &stats),
            step("thread `handler`", "releases `stats`", "-"),
            step("thread `reloader`", "writes `reload_pending`", &write),
            step("thread `handler`", "reads `reload_pending`", &read),
        ]
    );
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("a schedule runs them back to back"), "{evidence}");
}

#[test]
fn ready_flag_publish_has_a_second_race_in_hb_that_shb_rules_out() {
    let trace = "traces/ready_flag_publish.trace";
    let s = |marker, token, role| site("ready_flag_publish", marker, token, role);
    let ready = race(
        "ready",
        &[],
        &["publisher", "reader"],
        &[],
        s("ready-write", "write(", "write"),
        s("ready-read", "read(", "read"),
    );
    let config = race(
        "config",
        &[],
        &["publisher", "reader"],
        &[],
        s("config-write", "write(", "write"),
        s("config-read", "read(", "read"),
    );
    let (status, report) = races_with(trace, "hb");
    assert_eq!(status, 1);
    let mut both = vec![ready.clone(), config];
    both.sort();
    assert_eq!(seen(&report), both);
    assert_eq!(ordered_accesses(&report), [("write", "read"), ("write", "read")]);
    // The default is SHB: the reader read `config` because it saw `ready` set after it.
    let (status, report) = analyze_json(&[trace]);
    assert_eq!((status, seen(&report)), (1, vec![ready]));
    assert_eq!(report["findings"][0]["detail"]["relation"], "shb");
    // SHB proves it with a schedule: once the reader is spawned, the write and the read.
    let file = "traces/src/bin/ready_flag_publish.rs";
    let source = std::fs::read_to_string(file).expect("the scenario's source");
    let (line, code) = (1..)
        .zip(source.lines())
        .find(|(_, code)| code.contains("spawn(\"reader\""))
        .expect("the reader is spawned");
    let col = code.find("hindsight_recorder").expect("a spawn") + 1;
    let spawn_reader = format!("{file}:{line}:{col}");
    assert_eq!(
        witness(&report["findings"][0]),
        [
            step("thread `main`", "spawns thread `reader`", &spawn_reader),
            step("thread `publisher`", "writes `ready`", &s("ready-write", "write(", "write")),
            step("thread `reader`", "reads `ready`", &s("ready-read", "read(", "read")),
        ]
    );
    // WCP finds the `config` race too, but no schedule that keeps what the reader saw runs
    // it: it stays a warning, "predicted, unverified".
    let (_, report) = races_with(trace, "wcp");
    let config = &report["findings"][1];
    assert_eq!(
        (&config["severity"], &config["variables"][0]),
        (&"warning".into(), &"config".into())
    );
    assert!(config["detail"]["witness"].is_null());
    assert!(config["detail"]["witness_missing"]
        .as_str()
        .expect("why no schedule")
        .starts_with("no schedule of the recorded events found"));
}

/// Issue 20's minimal STD case, read by `hindsight analyze` as a user gives it: both races,
/// 10 → 20 and 10 → 30, in every relation.
#[test]
fn the_minimal_std_case_reports_both_races_in_every_relation() {
    let path = std::env::temp_dir().join(format!("hindsight-race-{}.std", std::process::id()));
    let text = "T0|fork(T1)|1\nT0|fork(T2)|2\nT1|w(x)|10\nT2|w(x)|20\nT0|join(T2)|3\nT0|r(x)|30\n";
    std::fs::write(&path, text).expect("a temporary file");
    let trace = path.to_str().expect("a UTF-8 temporary path");
    for relation in ["hb", "shb", "wcp"] {
        let (status, report) = races_with(trace, relation);
        assert_eq!(status, 1, "--races {relation}");
        let lines: Vec<Vec<(String, u64)>> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|finding| {
                assert_eq!(finding["kind"], "data-race");
                finding["sites"]
                    .as_array()
                    .expect("sites")
                    .iter()
                    .map(|site| {
                        let role = site["role"].as_str().expect("a role").to_owned();
                        (role, site["line"].as_u64().expect("a line"))
                    })
                    .collect()
            })
            .collect();
        let (write, read) = ("write".to_owned(), "read".to_owned());
        assert_eq!(
            lines,
            vec![vec![(write.clone(), 10), (write.clone(), 20)], vec![(write, 10), (read, 30)]],
            "--races {relation}"
        );
        // SHB and WCP prove both with a schedule (T0 joins T2 before T1 writes, for the
        // second); HB builds none.
        for finding in report["findings"].as_array().expect("findings") {
            let steps = finding["detail"]["witness"].as_array().map_or(0, Vec::len);
            let expected = match (relation, finding["sites"][1]["line"].as_u64()) {
                ("hb", _) => 0,
                (_, Some(20)) => 2,
                _ => 4,
            };
            assert_eq!(steps, expected, "--races {relation}: {finding}");
        }
    }
    std::fs::remove_file(&path).expect("the temporary file is removed");
}

/// `export` takes `--races` too: the Chrome timeline carries the findings of that relation.
#[test]
fn export_chrome_shows_the_races_of_the_chosen_relation() {
    let dir = std::env::temp_dir();
    let exported = |relation: &str| {
        let out = dir.join(format!("hindsight-races-{relation}-{}.json", std::process::id()));
        let path = out.to_str().expect("a UTF-8 temporary path").to_owned();
        let run = hindsight(&[
            "export",
            "traces/reload_flag_race.trace",
            "--races",
            relation,
            "--chrome",
            &path,
        ]);
        assert_eq!(run.status.code(), Some(0), "--races {relation}");
        let json = std::fs::read_to_string(&out).expect("the export was written");
        std::fs::remove_file(&out).expect("the export is removed");
        json
    };
    let predicted = "predicted data race on `reload_pending`";
    assert!(exported("wcp").contains(predicted));
    assert!(!exported("shb").contains(predicted));
}

/// SHB proves every race it reports: on every committed trace, each SHB race comes with a
/// schedule, or says it was not built for a bound (and WCP's schedules are checked the same
/// way as SHB's by the analyzer's random-program tests).
#[test]
fn every_shb_race_of_the_committed_traces_has_a_schedule() {
    let mut races = 0;
    for entry in std::fs::read_dir("traces").expect("the committed traces") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "trace") {
            continue;
        }
        let (_, report) = races_with(path.to_str().expect("a UTF-8 path"), "shb");
        for finding in report["findings"].as_array().expect("findings") {
            if finding["kind"] != "data-race" {
                continue;
            }
            races += 1;
            let detail = &finding["detail"];
            let built = detail["witness"].as_array().is_some_and(|steps| steps.len() >= 2);
            let bounded = detail["witness_missing"]
                .as_str()
                .is_some_and(|why| why.starts_with("schedule not built:"));
            assert!(built || bounded, "{path:?}: {finding}");
        }
    }
    assert!(races >= 5, "the committed traces have SHB races ({races})");
}
