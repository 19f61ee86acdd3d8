//! `hindsight analyze` on the deadlock-prediction scenarios of issue 19 (`traces/`): each
//! `lock-order-cycle` at the severity its reason deserves — an error only with a witness
//! schedule, a warning naming the spawn that orders it, info naming the gate that refutes it —
//! and captured `deadlock`s of readers queued behind writers; exact kinds, severities, locks,
//! actors and sites, and nothing else.
//!
//! The sites are found in the scenario sources by their `// site: NAME` markers, so editing a
//! scenario moves the expectations with it (re-record with `traces/record-all.sh`).

mod scenario_support;

use scenario_support::{analyze_json, hindsight, seen, seen_unnumbered, site, sorted, Seen};
use serde_json::Value;

/// `file:line:col` of the call marked `// site: MARKER` (see [`site`]).
fn at(scenario: &str, marker: &str, token: &str) -> String {
    site(scenario, marker, token, "at").trim_start_matches("at ").to_owned()
}

/// The one finding of `kind` in the report.
fn only<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let all: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect();
    assert_eq!(all.len(), 1, "one {kind} in {report:#}");
    all[0]
}

/// Three string fields of each object in `list`.
fn fields<'a>(list: &'a Value, keys: [&str; 3]) -> Vec<[&'a str; 3]> {
    let list = list.as_array().expect("a list");
    list.iter().map(|item| keys.map(|key| item[key].as_str().unwrap_or(""))).collect()
}

/// A witness step as `(actor, event, site)`.
type Step = (String, String, String);

/// The `detail.witness` of a finding, as `(actor, event, site)` steps.
fn witness(finding: &Value) -> Vec<Step> {
    finding["detail"]["witness"]
        .as_array()
        .expect("detail.witness")
        .iter()
        .map(|step| {
            (
                step["actor"].as_str().expect("an actor").to_owned(),
                step["event"].as_str().expect("an event").to_owned(),
                step["site"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A step made of string slices.
fn step(actor: &str, event: &str, site: &str) -> Step {
    (actor.to_owned(), event.to_owned(), site.to_owned())
}

/// Where `wanted` is in `steps`.
fn position(steps: &[Step], wanted: &Step) -> usize {
    steps.iter().position(|s| s == wanted).unwrap_or_else(|| panic!("{wanted:?} in {steps:#?}"))
}

/// The text report of `trace` (its exit status is checked on the JSON report).
fn analyze_text(trace: &str) -> String {
    String::from_utf8_lossy(&hindsight(&["analyze", trace]).stdout).into_owned()
}

/// A `lock-order-cycle` finding with no sites yet.
fn lock_order_cycle(severity: &str, locks: &[&str], threads: &[&str], tasks: &[&str]) -> Seen {
    Seen {
        kind: "lock-order-cycle".into(),
        severity: severity.into(),
        locks: sorted(locks),
        threads: sorted(threads),
        tasks: sorted(tasks),
        variables: Vec::new(),
        sites: Vec::new(),
    }
}

#[test]
fn init_then_workers_is_a_warning_naming_the_spawn_and_no_error() {
    let (status, report) = analyze_json(&["traces/init_then_workers.trace"]);
    assert_eq!(status, 0, "a warning only");
    let s = "init_then_workers";
    let mut expected =
        lock_order_cycle("warning", &["cache", "config"], &["main", "worker-N"], &[]);
    expected.sites = sorted(&[
        &site(s, "init-config", "lock", "held"),
        &site(s, "init-cache", "lock", "acquired"),
        &site(s, "serve-cache", "lock", "held"),
        &site(s, "serve-config", "lock", "acquired"),
    ]);
    assert_eq!(seen_unnumbered(&report), vec![expected]);

    let finding = only(&report, "lock-order-cycle");
    let reason = finding["detail"]["reason"].as_str().expect("a reason");
    let spawn = at(s, "spawn-worker", "thread::spawn");
    assert!(reason.starts_with("ordered by the spawn of thread `worker-"), "{reason}");
    assert!(
        reason.contains(&format!("` at {spawn}: in this run the orders cannot overlap")),
        "{reason}"
    );
    assert_eq!(finding["detail"]["witness"], Value::Null, "a refuted cycle has no witness");

    let text = analyze_text("traces/init_then_workers.trace");
    for line in [
        "warning[lock-order-cycle]: locks `config` and `cache` are taken in opposite orders (not proved to deadlock)",
        "0 errors, 1 warning, 0 info",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn supervised_pool_is_info_only_naming_the_supervisors_gate() {
    let (status, report) = analyze_json(&["traces/supervised_pool.trace"]);
    assert_eq!(status, 0);
    let s = "supervised_pool";
    let mut expected = lock_order_cycle("info", &["jobs", "ledger"], &["auditor", "worker-N"], &[]);
    expected.sites = sorted(&[
        &site(s, "worker-jobs", "lock", "held"),
        &site(s, "worker-ledger", "lock", "acquired"),
        &site(s, "auditor-ledger", "lock", "held"),
        &site(s, "auditor-jobs", "lock", "acquired"),
    ]);
    assert_eq!(seen_unnumbered(&report), vec![expected]);

    let finding = only(&report, "lock-order-cycle");
    let reason = finding["detail"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("thread `worker-"), "{reason}");
    assert!(
        reason.contains(
            "` runs only inside its parent thread `supervisor`'s hold of `gate` (spawned and \
             joined while holding it), so the two cannot overlap"
        ),
        "{reason}"
    );
    assert_eq!(finding["detail"]["witness"], Value::Null);
}

#[test]
fn await_child_holding_lock_is_one_witnessed_error_and_no_deadlock() {
    let (status, report) = analyze_json(&["traces/await_child_holding_lock.trace"]);
    assert_eq!(status, 1);
    let s = "await_child_holding_lock";
    let mut expected =
        lock_order_cycle("error", &["cache"], &["tokio-rt-worker"], &["refresh", "reindex"]);
    expected.sites = sorted(&[
        &site(s, "refresh-cache", "lock", "held"),
        &site(s, "await-reindex", "await", "joined"),
        &site(s, "reindex-cache", "lock", "acquired"),
    ]);
    assert_eq!(seen(&report), vec![expected]);

    let finding = only(&report, "lock-order-cycle");
    assert_eq!(finding["detail"]["reason"], Value::Null);
    assert_eq!(
        finding["title"],
        "task `refresh` waits for task `reindex` to finish while holding `cache`, which task \
         `reindex` needs"
    );
    let steps = witness(finding);
    let takes =
        step("task `refresh`", "runs until it takes `cache`", &at(s, "refresh-cache", "lock"));
    let asks =
        step("task `reindex`", "asks for `cache` and waits", &at(s, "reindex-cache", "lock"));
    let joins = step(
        "task `refresh`",
        "waits for task `reindex` to finish, holding `cache`",
        &at(s, "await-reindex", "await"),
    );
    // The schedule ends with both blocked: `refresh` took `cache` before `reindex` asked.
    assert_eq!(steps[steps.len() - 2..], [asks.clone(), joins], "{steps:#?}");
    assert!(position(&steps, &takes) < position(&steps, &asks), "{steps:#?}");
    // `reindex` got as far as its first lock, `index`.
    let index =
        step("task `reindex`", "runs until it takes `index`", &at(s, "reindex-index", "lock"));
    assert!(position(&steps, &index) < position(&steps, &asks), "{steps:#?}");

    let text = analyze_text("traces/await_child_holding_lock.trace");
    let (cache_at, join_at) = (at(s, "refresh-cache", "lock"), at(s, "await-reindex", "await"));
    let child_at = at(s, "reindex-cache", "lock");
    for line in [
        format!(
            "  - task `refresh` holds `cache` (acquired at {cache_at}) and waits for task \
             `reindex` to finish at {join_at}, t="
        ),
        format!("  - task `reindex` takes `cache` at {child_at}, t="),
        "  - a schedule that deadlocks (each actor's deciding step):".to_owned(),
        format!(". task `reindex` asks for `cache` and waits at {child_at}\n"),
        format!(
            ". task `refresh` waits for task `reindex` to finish, holding `cache` at {join_at}\n"
        ),
        "1 error, 0 warnings, 0 info".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn rwlock_readers_hang_is_one_deadlock_of_the_four_tasks() {
    let (status, report) = analyze_json(&["traces/rwlock_readers_hang.trace"]);
    assert_eq!(status, 1);
    let s = "shared/readers_behind_writers";
    let workers = ["tokio-rt-worker"];
    let deadlock = Seen {
        kind: "deadlock".into(),
        severity: "error".into(),
        locks: sorted(&["routes", "stats"]),
        threads: sorted(&workers),
        tasks: sorted(&["flush", "lookup", "reload", "report"]),
        variables: Vec::new(),
        sites: sorted(&[
            &site(s, "lookup-routes", "read", "held"),
            &site(s, "report-stats", "read", "held"),
            &site(s, "lookup-stats", "read", "waiting"),
            &site(s, "report-routes", "read", "waiting"),
            &site(s, "reload-routes", "write", "waiting"),
            &site(s, "flush-stats", "write", "waiting"),
        ]),
    };
    // Each reader holds its first read guard across the await before its second read, while
    // a writer waits for that lock.
    let across_await = |lock: &str, holder: &str, writer: &str, reader: &str, at: [&str; 5]| Seen {
        kind: "guard-across-await".into(),
        severity: "warning".into(),
        locks: sorted(&[lock]),
        threads: sorted(&workers),
        tasks: sorted(&[holder, writer, reader]),
        variables: Vec::new(),
        sites: sorted(&[
            &site(s, at[0], "read", "acquired"),
            &site(s, at[1], "spawn", "spawned"),
            &site(s, at[2], "write", "waiting"),
            &site(s, at[3], "read", "waiting"),
            &site(s, at[4], "tokio", "await"),
        ]),
    };
    let mut expected = vec![
        deadlock,
        across_await(
            "routes",
            "lookup",
            "reload",
            "report",
            ["lookup-routes", "spawn-lookup", "reload-routes", "report-routes", "lookup-sleep"],
        ),
        across_await(
            "stats",
            "report",
            "flush",
            "lookup",
            ["report-stats", "spawn-report", "flush-stats", "lookup-stats", "report-sleep"],
        ),
    ];
    expected.sort();
    assert_eq!(seen(&report), expected);

    let text = analyze_text("traces/rwlock_readers_hang.trace");
    for line in [
        "error[deadlock]: ".to_owned(),
        format!(
            "  - task `lookup` holds `routes` (acquired at {}, t=",
            at(s, "lookup-routes", "read")
        ),
        format!(
            ") and waits to read `stats` at {}, queued behind task `flush`, which asked to write \
             it first (the lock lets no new reader pass a waiting writer), since t=",
            at(s, "lookup-stats", "read")
        ),
        format!(
            ") and waits to read `routes` at {}, queued behind task `reload`, which asked to \
             write it first (the lock lets no new reader pass a waiting writer), since t=",
            at(s, "report-routes", "read")
        ),
        format!(
            "  - task `flush` waits for `stats` at {}, held by task `report`",
            at(s, "flush-stats", "write")
        ),
        format!(
            "  - task `reload` waits for `routes` at {}, held by task `lookup`",
            at(s, "reload-routes", "write")
        ),
        "1 error, 2 warnings, 0 info".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn oneshot_actors_hang_is_one_deadlock_through_the_replies_and_nothing_else() {
    let (status, report) = analyze_json(&["traces/oneshot_actors_hang.trace"]);
    assert_eq!(status, 1);
    let s = "oneshot_actors_hang";
    let deadlock = Seen {
        kind: "deadlock".into(),
        severity: "error".into(),
        locks: Vec::new(),
        threads: sorted(&["tokio-rt-worker"]),
        tasks: sorted(&["client", "inventory", "pricing"]),
        variables: Vec::new(),
        sites: sorted(&[
            &site(s, "await-price", "await", "waiting"),
            &site(s, "await-stock", "await", "waiting"),
            &site(s, "ask-price", "send", "sent"),
            &site(s, "ask-stock", "send", "sent"),
        ]),
    };
    assert_eq!(seen(&report), [deadlock]);
    let cycle = &only(&report, "deadlock")["detail"]["cycle"];
    assert_eq!(
        fields(cycle, ["task", "wait_kind", "waits_for"]),
        [["inventory", "message", "price-reply"], ["pricing", "message", "stock-reply"]]
    );

    let text = analyze_text("traces/oneshot_actors_hang.trace");
    for line in [
        "error[deadlock]: task `inventory` and task `pricing` wait for each other's messages \
         forever"
            .to_owned(),
        format!(
            "  - task `inventory` waits for the reply on `price-reply` at {}; only task `pricing` \
             (it reads `pricing-mailbox`, where the message task `inventory` sent at {} may carry it, \
             still unread) may hold its sending end, and it is stuck too",
            at(s, "await-price", "await"),
            at(s, "ask-price", "send")
        ),
        format!(
            "  - task `pricing` waits for the reply on `stock-reply` at {}; only task `inventory` \
             (it reads `inventory-mailbox`, where the message task `pricing` sent at {} may carry it, \
             still unread) may hold its sending end, and it is stuck too",
            at(s, "await-stock", "await"),
            at(s, "ask-stock", "send")
        ),
        "  - task `client` is stuck behind it too: it waits for a message on `quote-reply`"
            .to_owned(),
        "1 error, 0 warnings, 0 info".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn rwlock_readers_near_miss_is_a_predicted_error_with_the_writers_asking_first() {
    let (status, report) = analyze_json(&["traces/rwlock_readers_near_miss.trace"]);
    assert_eq!(status, 1);
    let s = "shared/readers_behind_writers";
    let workers = ["tokio-rt-worker"];
    let mut cycle = lock_order_cycle(
        "error",
        &["routes", "stats"],
        &workers,
        &["flush", "lookup", "reload", "report"],
    );
    cycle.sites = sorted(&[
        &site(s, "lookup-routes", "read", "held"),
        &site(s, "lookup-stats", "read", "acquired"),
        &site(s, "report-stats", "read", "held"),
        &site(s, "report-routes", "read", "acquired"),
        &site(s, "flush-stats", "write", "acquired"),
        &site(s, "reload-routes", "write", "acquired"),
    ]);
    // Nobody waited this time: the guards held across an await are only info.
    let across_await = |lock: &str, holder: &str, at: [&str; 3]| Seen {
        kind: "guard-across-await".into(),
        severity: "info".into(),
        locks: sorted(&[lock]),
        threads: sorted(&workers),
        tasks: sorted(&[holder]),
        variables: Vec::new(),
        sites: sorted(&[
            &site(s, at[0], "read", "acquired"),
            &site(s, at[1], "spawn", "spawned"),
            &site(s, at[2], "tokio", "await"),
        ]),
    };
    let mut expected = vec![
        cycle,
        across_await("routes", "lookup", ["lookup-routes", "spawn-lookup", "lookup-sleep"]),
        across_await("stats", "report", ["report-stats", "spawn-report", "report-sleep"]),
    ];
    expected.sort();
    assert_eq!(seen(&report), expected);

    let steps = witness(only(&report, "lock-order-cycle"));
    let writers = [
        step("task `flush`", "asks for `stats` and waits", &at(s, "flush-stats", "write")),
        step("task `reload`", "asks for `routes` and waits", &at(s, "reload-routes", "write")),
    ];
    let readers = [
        step("task `lookup`", "asks for `stats` (read) and waits", &at(s, "lookup-stats", "read")),
        step(
            "task `report`",
            "asks for `routes` (read) and waits",
            &at(s, "report-routes", "read"),
        ),
    ];
    // The schedule ends with the four requests, each writer's before the reader it blocks.
    let mut last: Vec<Step> = steps[steps.len() - 4..].to_vec();
    last.sort();
    let mut asks: Vec<Step> = writers.iter().chain(&readers).cloned().collect();
    asks.sort();
    assert_eq!(last, asks, "{steps:#?}");
    for (writer, reader) in writers.iter().zip(&readers) {
        assert!(position(&steps, writer) < position(&steps, reader), "{steps:#?}");
    }
}

#[test]
fn pools_one_constructor_is_one_witnessed_error_between_two_instances_of_one_class() {
    let (status, report) = analyze_json(&["traces/pools_one_constructor.trace"]);
    assert_eq!(status, 1);
    let s = "pools_one_constructor";
    let mut expected = lock_order_cycle(
        "error",
        &["pool", "pool"],
        &["tokio-rt-worker"],
        &["backfill", "migrate"],
    );
    expected.sites = sorted(&[
        &site(s, "migrate-primary", "checkout", "held"),
        &site(s, "migrate-replica", "checkout", "acquired"),
        &site(s, "backfill-replica", "checkout", "held"),
        &site(s, "backfill-primary", "checkout", "acquired"),
    ]);
    assert_eq!(seen(&report), vec![expected]);

    // One class, two instances, told apart by their ids.
    let created = at(s, "pool-lock", "Mutex::named");
    let locks = fields(&report["locks"], ["name", "class", "created_at"]);
    assert_eq!(locks, vec![["pool", "pool", created.as_str()]; 2]);
    let finding = only(&report, "lock-order-cycle");
    let edges = fields(&finding["detail"]["edges"], ["task", "from_lock", "to_lock"]);
    assert_eq!(edges.len(), 2, "{edges:?}");
    let [migrate, primary, replica] = edges[0];
    assert_eq!(migrate, "migrate");
    assert!(primary.starts_with("pool #") && replica.starts_with("pool #"), "{edges:?}");
    assert_ne!(primary, replica);
    assert_eq!(edges[1], ["backfill", replica, primary]);
    assert_eq!(
        finding["title"],
        format!("locks `{primary}` and `{replica}` are taken in opposite orders").as_str()
    );

    // The witness names the instances as the finding does.
    let steps = witness(finding);
    let mut last: Vec<Step> = steps[steps.len() - 2..].to_vec();
    last.sort();
    let asks = |lock: &str| format!("asks for `{lock}` and waits");
    assert_eq!(
        last,
        vec![
            step("task `backfill`", &asks(primary), &at(s, "backfill-primary", "checkout")),
            step("task `migrate`", &asks(replica), &at(s, "migrate-replica", "checkout")),
        ],
        "{steps:#?}"
    );
    let takes = |lock: &str| format!("runs until it takes `{lock}`");
    let held = [
        step("task `migrate`", &takes(primary), &at(s, "migrate-primary", "checkout")),
        step("task `backfill`", &takes(replica), &at(s, "backfill-replica", "checkout")),
    ];
    for taken in &held {
        assert!(position(&steps, taken) < steps.len() - 2, "{steps:#?}");
    }
}

/// Every `lock-order-cycle` error of every committed trace comes with a witness schedule.
#[test]
fn every_committed_lock_order_error_has_a_witness() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let mut inputs: Vec<Vec<String>> = Vec::new();
    for entry in std::fs::read_dir(&root).expect("traces/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "trace") {
            inputs.push(vec![path.display().to_string()]);
        } else if path.is_dir() {
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .expect("a scenario's directory")
                .map(|e| e.expect("an entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "trace"))
                .map(|p| p.display().to_string())
                .collect();
            files.sort();
            if !files.is_empty() {
                inputs.push(files);
            }
        }
    }
    assert!(inputs.len() >= 20, "{inputs:?}");
    let mut errors = 0;
    for files in inputs {
        let args: Vec<&str> = files.iter().map(String::as_str).collect();
        let (_, report) = analyze_json(&args);
        for finding in report["findings"].as_array().expect("findings") {
            if finding["kind"] == "lock-order-cycle" && finding["severity"] == "error" {
                errors += 1;
                let steps = finding["detail"]["witness"].as_array().map_or(0, Vec::len);
                assert!(steps >= 2, "{files:?}: {} has no witness", finding["title"]);
            }
        }
    }
    assert!(errors >= 5, "the committed traces have lock-order errors to check ({errors})");
}
