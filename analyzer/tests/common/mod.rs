//! Helpers shared by the analyzer's tests.
#![allow(dead_code)]

use hindsight_analyzer::report::{Finding, Report};
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions, FindingKind};
use hindsight_recorder::format::TraceBuilder;

/// Analyses one built trace with default options.
pub fn analyze(builder: &TraceBuilder) -> Report {
    analyze_bytes(vec![("test.trace".to_owned(), builder.build())], &AnalyzeOptions::default())
        .expect("a built trace is readable")
}

/// Analyses one built trace, written thread by thread (the hardest order for replay).
pub fn analyze_grouped(builder: &TraceBuilder) -> Report {
    let bytes = builder.build_grouped_by_thread();
    analyze_bytes(vec![("test.trace".to_owned(), bytes)], &AnalyzeOptions::default())
        .expect("a built trace is readable")
}

/// The findings of one kind.
pub fn of_kind(report: &Report, kind: FindingKind) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.kind == kind).collect()
}

/// A finding's sites as `(role, "file:line:col")`.
pub fn sites(finding: &Finding) -> Vec<(String, String)> {
    finding.sites.iter().map(|s| (s.role.clone(), s.to_string())).collect()
}

/// `["a", "b"]` as owned strings.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A small deterministic random number generator (xorshift), for generated test programs.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}
