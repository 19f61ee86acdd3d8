//! Scenario `double_checked_session` (bug: a check without the lock, then an update under
//! it).
//!
//! From a Python MCP server's thread-safety analysis: `get_session(id)` checks whether the
//! `sessions` map has the id *without* the lock, and only if not takes the lock and creates
//! the session — without checking again. Ten request threads ask for one id at once: several
//! see no session, and each creates one, replacing the one created just before (the program
//! counts them). The Rust map is behind a lock (a blocking `Mutex`, the recorder's wrapper)
//! as Rust demands; the unlocked check reads a lock-free index of the map (a relaxed atomic
//! bit per id), which is the same logical state: both are annotated as the variable
//! `sessions` (`hindsight_recorder::annotate::Variable`).
//!
//! Expected: exactly one finding, a `data-race` (error) on `sessions` between the unlocked
//! read at the `// site: unlocked-read` line and the locked write at the
//! `// site: locked-write` line, by two of the `request-N` threads.
//!
//! Usage: `double_checked_session OUT_DIR` writes `OUT_DIR/double_checked_session.trace`.

use anyhow::{anyhow, Context, Result};
use hindsight_recorder::annotate::Variable;
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tracing_subscriber::prelude::*;

const REQUESTS: usize = 10;

/// A client session.
#[derive(Debug)]
struct Session {
    id: u32,
    created_by: usize,
}

impl Session {
    /// Opens a session: sets up its context with the backend (a few hundred microseconds).
    fn open(id: u32, created_by: usize) -> Arc<Session> {
        std::thread::sleep(Duration::from_micros(300));
        Arc::new(Session { id, created_by })
    }
}

/// The server's sessions.
struct SessionManager {
    /// A bit per session id present in `map`: the unlocked fast path reads it.
    present: AtomicU64,
    map: Mutex<HashMap<u32, Arc<Session>>>,
    /// `present` and `map` together, as the race detector knows them.
    sessions: Variable,
    created: AtomicU64,
}

impl SessionManager {
    /// The session `id`, created on first use: the double-checked lookup without the second
    /// check.
    fn get_session(&self, id: u32, request: usize) -> Arc<Session> {
        self.sessions.read(); // site: unlocked-read
        if self.present.load(Ordering::Relaxed) & (1 << id) == 0 {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            self.sessions.write(); // site: locked-write
            map.insert(id, Session::open(id, request));
            self.present.fetch_or(1 << id, Ordering::Relaxed);
            self.created.fetch_add(1, Ordering::Relaxed);
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.sessions.read(); // site: locked-read
        map[&id].clone()
    }
}

fn main() -> Result<()> {
    let dir =
        PathBuf::from(std::env::args().nth(1).context("usage: double_checked_session OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("double_checked_session.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("double_checked_session").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let manager = Arc::new(SessionManager {
        present: AtomicU64::new(0),
        map: Mutex::named("sessions_lock", HashMap::new()),
        sessions: Variable::named("sessions"),
        created: AtomicU64::new(0),
    });
    // The requests arrive together.
    let arrive = Arc::new(Barrier::new(REQUESTS));
    let requests: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let (manager, arrive) = (manager.clone(), arrive.clone());
            hindsight_recorder::thread::spawn(&format!("request-{n}"), move || {
                arrive.wait();
                manager.get_session(7, n)
            })
        })
        .collect::<Result<_, _>>()?;
    let mut creators = Vec::new();
    for request in requests {
        let session = request.join().map_err(|_| anyhow!("a request panicked"))?;
        creators.push((session.id, session.created_by));
    }
    let created = manager.created.load(Ordering::Relaxed);

    let summary = guard.finish()?;
    println!(
        "double_checked_session: {created} sessions created for one id, sessions seen \
         {creators:?}; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
