//! Scenario `ready_flag_publish` (bug: a configuration published through a flag with no
//! synchronisation the race detector can see; one race is real, the one after it is not).
//!
//! The `publisher` thread fills `config`, then sets `ready`; the `reader` thread, started
//! later in this run, checks `ready` and, seeing it set, reads `config`. Both are plain
//! (relaxed) atomics annotated as variables, with no lock, no channel and no join between the
//! two threads: the write and the read of `ready` race, a real race. Happens-before also
//! reports `config`: nothing it knows orders the write of `config` before its read. But the
//! reader read `config` only because it saw `ready` set, and `ready` was set after `config`
//! was written: no schedule in which the reader sees what it saw runs the two `config`
//! accesses back to back. SHB, which keeps each read seeing the write it saw, reports the
//! `ready` race only.
//!
//! Expected: with `--races hb`, exactly two `data-race` errors: on `ready`, the write at the
//! `// site: ready-write` line (thread `publisher`) before the read at the
//! `// site: ready-read` line (thread `reader`), and on `config`, the write at
//! `// site: config-write` before the read at `// site: config-read`; with `--races shb`
//! (the default) only the `ready` race.
//!
//! Usage: `ready_flag_publish OUT_DIR` writes `OUT_DIR/ready_flag_publish.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::shared::Shared;
use hindsight_recorder::Recorder;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: ready_flag_publish OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("ready_flag_publish.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("ready_flag_publish").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let config = Arc::new(Shared::named("config", AtomicU64::new(0)));
    let ready = Arc::new(Shared::named("ready", AtomicBool::new(false)));

    let publisher = {
        let (config, ready) = (config.clone(), ready.clone());
        hindsight_recorder::thread::spawn("publisher", move || {
            config.write(|c| c.store(8080, Ordering::Relaxed)); // site: config-write
            ready.write(|r| r.store(true, Ordering::Relaxed)); // site: ready-write
        })?
    };
    let reader = {
        let (config, ready) = (config.clone(), ready.clone());
        hindsight_recorder::thread::spawn("reader", move || {
            // The reader starts later in this run; nothing in the program makes it so.
            std::thread::sleep(Duration::from_millis(20));
            let is_ready = ready.read(|r| r.load(Ordering::Relaxed)); // site: ready-read
            if !is_ready {
                return None;
            }
            let port = config.read(|c| c.load(Ordering::Relaxed)); // site: config-read
            Some(port)
        })?
    };
    publisher.join().map_err(|_| anyhow!("the publisher panicked"))?;
    let port = reader.join().map_err(|_| anyhow!("the reader panicked"))?;

    let summary = guard.finish()?;
    println!(
        "ready_flag_publish: the reader saw {port:?}; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
