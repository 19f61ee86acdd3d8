//! `--format sarif`: one SARIF 2.1.0 run whose results are the findings, with their sites as
//! locations.

mod common;

use common::analyze;
use hindsight_analyzer::report::sarif;
use hindsight_recorder::format::TraceBuilder;
use serde_json::Value;

#[test]
fn a_lock_order_cycle_is_one_sarif_result_with_its_four_sites() {
    let mut b = TraceBuilder::new("sarif");
    let (t1, t2) = (b.thread("recorder"), b.thread("sync"));
    let (sqlite, git) = (b.mutex("sqlite"), b.mutex("git"));
    let sites: Vec<_> = (1..=4).map(|line| b.site("src/audit.rs", line, 5)).collect();
    b.on(t1).acquire(sqlite, sites[0]).acquire(git, sites[1]).release(git).release(sqlite);
    b.on(t2).acquire(git, sites[2]).acquire(sqlite, sites[3]).release(sqlite).release(git);
    let sarif: Value = serde_json::from_str(&sarif::render(&analyze(&b))).unwrap();

    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "hindsight");
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 7);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let result = &results[0];
    assert_eq!(result["ruleId"], "lock-order-cycle");
    assert_eq!(result["level"], "error");
    assert_eq!(result["properties"]["locks"], serde_json::json!(["sqlite", "git"]));
    let primary = &result["locations"][0]["physicalLocation"];
    assert_eq!(primary["artifactLocation"]["uri"], "src/audit.rs");
    assert_eq!(
        (primary["region"]["startLine"].as_u64(), primary["region"]["startColumn"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(result["relatedLocations"].as_array().unwrap().len(), 3);
}
