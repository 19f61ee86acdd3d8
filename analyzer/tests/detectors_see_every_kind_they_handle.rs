//! Replay shows each detector only the kinds of events it declares (`Detector::interest`).
//! A detector that handles a kind it does not declare would silently miss it: over every
//! sample trace, each detector must find the same with its declared interest as when it is
//! shown every event.

use hindsight_analyzer::detect::{Context, Detector, Interest, Suite};
use hindsight_analyzer::replay::Replay;
use hindsight_analyzer::report::Finding;
use hindsight_analyzer::{AnalyzeOptions, FindingKind};
use hindsight_recorder::format::Event;
use std::path::{Path, PathBuf};

/// A detector shown every event, whatever it declares.
struct Everything<'a>(&'a mut dyn Detector);

impl Detector for Everything<'_> {
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

fn suite() -> Suite {
    Suite::new(&AnalyzeOptions { wait_threshold_ns: 1_000_000, ..Default::default() })
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
        let (mut declared, mut shown_everything) = (suite(), suite());
        let pairs = declared.detectors_mut().into_iter().zip(shown_everything.detectors_mut());
        for (declared, everything) in pairs {
            let mut everything = Everything(everything);
            let kind = declared.kind();
            assert_eq!(
                findings(paths, declared),
                findings(paths, &mut everything),
                "{kind:?} on {paths:?}"
            );
        }
    }
}
