//! Scenario `double_checked_session_fixed` (clean): `double_checked_session` with the check
//! made under the lock.
//!
//! `get_session(id)` takes the `sessions_lock` first, then checks the `sessions` map and
//! creates the session only if it is still missing; every access to the map (annotated as
//! the variable `sessions`) is made holding the lock. Ten request threads ask for one id at
//! once: exactly one session is created, and all ten get it.
//!
//! Expected: no finding at all (in particular no `data-race`).
//!
//! Usage: `double_checked_session_fixed OUT_DIR` writes
//! `OUT_DIR/double_checked_session_fixed.trace`.

use anyhow::{anyhow, ensure, Context, Result};
use hindsight_recorder::annotate::Variable;
use hindsight_recorder::sync::Mutex;
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
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
    map: Mutex<HashMap<u32, Arc<Session>>>,
    /// The map, as the race detector knows it.
    sessions: Variable,
}

impl SessionManager {
    /// The session `id`, created on first use: checked and created under one lock.
    fn get_session(&self, id: u32, request: usize) -> Arc<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.sessions.read();
        if let Some(session) = map.get(&id) {
            return session.clone();
        }
        self.sessions.write();
        let session = Session::open(id, request);
        map.insert(id, session.clone());
        session
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args().nth(1).context("usage: double_checked_session_fixed OUT_DIR")?,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("double_checked_session_fixed.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("double_checked_session_fixed").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let manager = Arc::new(SessionManager {
        map: Mutex::named("sessions_lock", HashMap::new()),
        sessions: Variable::named("sessions"),
    });
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
    creators.dedup();
    ensure!(creators.len() == 1, "one session for one id, not {creators:?}");

    let summary = guard.finish()?;
    println!(
        "double_checked_session_fixed: one session {:?}; {} events, {} bytes -> {}",
        creators[0],
        summary.events,
        summary.bytes,
        path.display()
    );
    Ok(())
}
