//! Scenario `channel_handoff` (clean): state handed from owner to owner, never shared at once.
//!
//! A report pipeline. On a two-worker tokio runtime, task `collector` builds each report (a
//! `Shared` annotated as the variable `report`, written as it is filled) and sends it over a
//! recorded tokio channel (`hindsight_recorder::channel::mpsc`) to task `enricher`, which
//! receives it and writes to it again (adds totals). The enricher then hands each report over
//! a recorded std channel (`channel::std_mpsc`) to the `archiver` thread, which compresses it
//! (another write) and, when the pipeline is done, hands every report back to the main thread
//! through `join`; the main thread reads them. Every report is written by three owners in
//! turn, and each handover — a message, a join — orders the previous owner's writes before
//! the next owner's accesses.
//!
//! Expected: no finding at all (in particular no `data-race`).
//!
//! Usage: `channel_handoff OUT_DIR` writes `OUT_DIR/channel_handoff.trace`.

use anyhow::{anyhow, ensure, Context, Result};
use hindsight_recorder::channel::{mpsc, std_mpsc};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

const REPORTS: u32 = 5;

/// A report as it goes down the pipeline.
#[derive(Debug, Default)]
struct Report {
    id: u32,
    lines: Vec<String>,
    total: usize,
    compressed: Option<Vec<u8>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: channel_handoff OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("channel_handoff.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("channel_handoff").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let (to_archive, archive_inbox) = std_mpsc::channel_named::<Shared<Report>>("archive");
    let archiver = hindsight_recorder::thread::spawn("archiver", move || {
        let mut archived = Vec::new();
        while let Ok(mut report) = archive_inbox.recv() {
            report.write_mut(|r| {
                r.compressed = Some(r.lines.join("\n").into_bytes());
                r.lines.clear();
            });
            archived.push(report);
        }
        archived
    })?;

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    runtime.block_on(async move {
        let (to_enrich, mut enrich_inbox) = mpsc::channel_named::<Shared<Report>>("enrich", 2);
        let collector = hindsight_recorder::task::spawn("collector", async move {
            for id in 0..REPORTS {
                let mut report = Shared::named("report", Report { id, ..Report::default() });
                for line in 0..3 {
                    tokio::time::sleep(Duration::from_millis(1)).await; // a measurement
                    report.write_mut(|r| r.lines.push(format!("report {id} line {line}")));
                }
                to_enrich.send(report).await.map_err(|_| anyhow!("the enricher is gone"))?;
            }
            Ok::<_, anyhow::Error>(())
        });
        let enricher = hindsight_recorder::task::spawn("enricher", async move {
            while let Some(mut report) = enrich_inbox.recv().await {
                report.write_mut(|r| r.total = r.lines.iter().map(String::len).sum());
                to_archive.send(report).map_err(|_| anyhow!("the archiver is gone"))?;
            }
            Ok::<_, anyhow::Error>(())
        });
        collector.await.map_err(|e| anyhow!("collector: {e}"))??;
        enricher.await.map_err(|e| anyhow!("enricher: {e}"))??;
        Ok::<_, anyhow::Error>(())
    })?;
    drop(runtime);

    let archived = archiver.join().map_err(|_| anyhow!("the archiver panicked"))?;
    let mut bytes = 0;
    for report in &archived {
        let (id, total, size) =
            report.read(|r| (r.id, r.total, r.compressed.as_ref().map_or(0, Vec::len)));
        ensure!(size >= total, "report {id}: {size} bytes archived for {total}");
        bytes += size;
    }

    let summary = guard.finish()?;
    println!(
        "channel_handoff: {} reports, {bytes} bytes archived; {} events, {} bytes -> {}",
        archived.len(),
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
