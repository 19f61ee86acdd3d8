//! A trace file is untrusted input, and a well-framed one can still say anything: locks
//! released that were never taken, ids never defined, time running backwards, sequence
//! numbers out of order, tasks polled on two threads at once, joins of what never ran. The
//! analysis of any such trace ends with a report, never a panic, and every renderer, the
//! timeline and the exports take it too.

use hindsight_analyzer::export;
use hindsight_analyzer::replay::Replay;
use hindsight_analyzer::report::{json, sarif, text};
use hindsight_analyzer::timeline::Timeline;
use hindsight_analyzer::{analyze_bytes, AnalyzeOptions};
use hindsight_recorder::format::arbitrary::well_framed_trace;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn analysis_ends_with_a_report(bytes in well_framed_trace()) {
        let traces = vec![("arbitrary.trace".to_owned(), bytes)];
        let report = analyze_bytes(traces.clone(), &AnalyzeOptions::default())
            .expect("a well-framed trace is analysed");
        prop_assert!(report.trace.events <= 200);
        let _ = (text::render(&report), json::render(&report), sarif::render(&report));
        Timeline::from_bytes(traces.clone()).expect("a well-framed trace has a timeline");
        let chrome = export::chrome::write(
            Replay::from_bytes(traces.clone())?,
            Some(Replay::from_bytes(traces.clone())?),
            &AnalyzeOptions::default(),
            Vec::new(),
        );
        prop_assert!(chrome.is_ok(), "{chrome:?}");
        let again = Replay::from_bytes(traces.clone())?;
        let dot = export::dot::write(Replay::from_bytes(traces)?, Some(again), Vec::new());
        prop_assert!(dot.is_ok(), "{dot:?}");
    }
}
