//! Scenario `ordered_hierarchy` (clean): many tasks, three async locks, always in one order.
//!
//! An agent orchestrator keeps its `agents`, their `context_files` and `metrics` behind three
//! tokio-style `RwLock`s (the recorder's async wrappers). 100 tasks run 1000 operations each
//! on a two-worker runtime: some read an agent and update its context files and metrics,
//! some read context files, some only bump metrics. Whatever an operation needs, it takes
//! the locks in the order `agents` → `context_files` → `metrics`, with awaits between the
//! operations (never while holding a guard).
//!
//! Expected: no `lock-order-cycle`, no `deadlock`, no error-level finding at all.
//!
//! Usage: `ordered_hierarchy OUT_DIR` writes `OUT_DIR/ordered_hierarchy.trace`.

use anyhow::{Context, Result};
use hindsight_recorder::sync::tokio::RwLock;
use hindsight_recorder::{OverflowPolicy, Recorder};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::prelude::*;

const TASKS: u64 = 100;
const OPS: u64 = 1000;

struct Orchestrator {
    agents: RwLock<HashMap<u64, String>>,
    context_files: RwLock<HashMap<u64, Vec<String>>>,
    metrics: RwLock<HashMap<&'static str, u64>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: ordered_hierarchy OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("ordered_hierarchy.trace");
    let (recorder, guard) = Recorder::builder()
        .path(&path)
        .program("ordered_hierarchy")
        .overflow(OverflowPolicy::Block)
        .build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
    let ops = runtime.block_on(async {
        let orchestrator = Arc::new(Orchestrator {
            agents: RwLock::named(
                "agents",
                (0..TASKS).map(|a| (a, format!("agent-{a}"))).collect(),
            ),
            context_files: RwLock::named("context_files", HashMap::new()),
            metrics: RwLock::named("metrics", HashMap::new()),
        });
        let tasks: Vec<_> = (0..TASKS)
            .map(|agent| {
                let o = orchestrator.clone();
                hindsight_recorder::task::spawn(&format!("agent-{agent}"), run_agent(o, agent))
            })
            .collect();
        let mut ops = 0;
        for task in tasks {
            ops += task.await.unwrap_or(0);
        }
        ops
    });
    drop(runtime);

    let summary = guard.finish()?;
    println!(
        "ordered_hierarchy: {ops} operations; {} events ({} dropped), {} bytes -> {}",
        summary.events,
        summary.dropped,
        summary.bytes,
        path.display()
    );
    Ok(())
}

async fn run_agent(o: Arc<Orchestrator>, agent: u64) -> u64 {
    for op in 0..OPS {
        match (agent + op) % 3 {
            0 => {
                // Read the agent, attach a context file, count it.
                let agents = o.agents.read().await;
                let name = agents.get(&agent).cloned().unwrap_or_default();
                let mut files = o.context_files.write().await;
                files.entry(agent).or_default().push(format!("{name}/notes-{op}.md"));
                let mut metrics = o.metrics.write().await;
                *metrics.entry("files").or_default() += 1;
            }
            1 => {
                // Read the agent's context files.
                let _agents = o.agents.read().await;
                let files = o.context_files.read().await;
                let _count = files.get(&agent).map_or(0, Vec::len);
            }
            _ => {
                // Count an operation.
                let mut metrics = o.metrics.write().await;
                *metrics.entry("ops").or_default() += 1;
            }
        }
        if op % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    OPS
}
