//! Scenario `gate_lock` (clean): two locks taken in both orders, but always under one outer
//! lock.
//!
//! A cache keeps an `index` and a `blobs` store. The `writer` thread inserts (index, then
//! blobs); the `evictor` thread evicts (blobs, then index). Both orders exist, yet each thread
//! first takes the `cache` gate lock and keeps it until it has released both, so the two
//! orders never overlap and cannot deadlock.
//!
//! Expected: no error-level finding (the cycle is reported as `info`, naming the gate).
//!
//! Usage: `gate_lock OUT_DIR` writes `OUT_DIR/gate_lock.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::prelude::*;

struct Cache {
    gate: Mutex<()>,
    index: Mutex<HashMap<u32, usize>>,
    blobs: Mutex<VecDeque<Vec<u8>>>,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: gate_lock OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("gate_lock.trace");
    let (recorder, guard) = Recorder::builder().path(&path).program("gate_lock").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let cache = Arc::new(Cache {
        gate: Mutex::named("cache", ()),
        index: Mutex::named("index", HashMap::new()),
        blobs: Mutex::named("blobs", VecDeque::new()),
    });
    let c = cache.clone();
    let writer = hindsight_recorder::thread::spawn("writer", move || {
        for key in 0..200 {
            insert(&c, key);
        }
    })?;
    let c = cache.clone();
    let evictor = hindsight_recorder::thread::spawn("evictor", move || {
        for _ in 0..200 {
            evict(&c);
            std::thread::yield_now();
        }
    })?;
    writer.join().map_err(|_| anyhow!("writer panicked"))?;
    evictor.join().map_err(|_| anyhow!("evictor panicked"))?;

    let summary = guard.finish()?;
    println!("gate_lock: {} events, {} bytes -> {}", summary.events, summary.bytes, path.display());
    Ok(())
}

/// Index first, then blobs, under the gate.
fn insert(cache: &Cache, key: u32) {
    let _gate = cache.gate.lock().unwrap_or_else(|e| e.into_inner());
    let mut index = cache.index.lock().unwrap_or_else(|e| e.into_inner());
    let mut blobs = cache.blobs.lock().unwrap_or_else(|e| e.into_inner());
    blobs.push_back(key.to_le_bytes().to_vec());
    index.insert(key, blobs.len() - 1);
}

/// Blobs first, then index, under the gate.
fn evict(cache: &Cache) {
    let _gate = cache.gate.lock().unwrap_or_else(|e| e.into_inner());
    let mut blobs = cache.blobs.lock().unwrap_or_else(|e| e.into_inner());
    let mut index = cache.index.lock().unwrap_or_else(|e| e.into_inner());
    if blobs.len() > 16 {
        blobs.pop_front();
        index.retain(|_, position| {
            *position = position.wrapping_sub(1);
            *position < usize::MAX / 2
        });
    }
}
