//! Replay shows each detector only the kinds of events it declares (`Detector::interest`).
//! A detector that handles a kind it does not declare would silently miss it: over every
//! sample trace, each detector must find the same with its declared interest as when it is
//! shown every event.

use hindsight_analyzer::detect::{self, Context, Detector, Interest};
use hindsight_analyzer::replay::Replay;
use hindsight_analyzer::report::Finding;
use hindsight_analyzer::{AnalyzeOptions, FindingKind};
use hindsight_recorder::format::Event;
use std::path::{Path, PathBuf};

/// A detector shown every event, whatever it declares.
struct Everything(Box<dyn Detector>);

impl Detector for Everything {
    fn kind(&self) -> FindingKind {
        self.0.kind()
    }

    fn interest(&self) -> Interest {
        Interest::ALL
    }

    fn on_event(&mut self, cx: &Context<'_>, event: &Event) {
        self.0.on_event(cx, event);
    }

    fn finish(&mut self, cx: &Context<'_>, findings: &mut Vec<Finding>) {
        self.0.finish(cx, findings);
    }
}

fn detectors() -> Vec<Box<dyn Detector>> {
    detect::for_findings(&AnalyzeOptions { wait_threshold_ns: 1_000_000, ..Default::default() })
}

fn findings(paths: &[PathBuf], detector: &mut dyn Detector) -> Vec<Finding> {
    let mut replay = Replay::open(paths).expect("a sample trace opens");
    replay.run(&mut [detector]);
    let mut findings = Vec::new();
    detector.finish(&Context { trace: replay.trace(), state: replay.state() }, &mut findings);
    findings
}

#[test]
fn declared_interests_change_no_finding() {
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces");
    let mut inputs: Vec<Vec<PathBuf>> = std::fs::read_dir(&traces)
        .expect("the sample traces are there")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "trace"))
        .map(|path| vec![path])
        .collect();
    let processes = traces.join("lock_order_processes");
    inputs.push(vec![processes.join("compactor.trace"), processes.join("indexer.trace")]);
    assert!(inputs.len() > 10, "found the sample traces");
    for paths in &inputs {
        for (declared, everything) in detectors().into_iter().zip(detectors()) {
            let mut declared = declared;
            let mut everything = Everything(everything);
            let kind = declared.kind();
            assert_eq!(
                findings(paths, &mut *declared),
                findings(paths, &mut everything),
                "{kind:?} on {paths:?}"
            );
        }
    }
}
