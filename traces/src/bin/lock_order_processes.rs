//! Scenario `lock_order_processes` (bug: a lock-order cycle between two processes).
//!
//! Two processes share a repository directory guarded by lock files, the way git guards its
//! index with `index.lock`: a lock is held while its file exists, created with
//! `create_new` (`O_EXCL`) and removed on release. They are recorded through the tracing
//! convention for user-defined locks (`target: "hindsight::lock"`), each process into its own
//! trace. The `indexer` process takes `db.lock`, then `index.lock`; the `compactor` process
//! takes `index.lock`, then `db.lock`. This run starts the compactor after the indexer is done,
//! so it does not deadlock, but two concurrent runs could.
//!
//! Analysed together (`hindsight analyze traces/lock_order_processes/*.trace`), the locks of
//! the same name are one lock, and the two orders form one cycle.
//!
//! Expected: exactly one `lock-order-cycle` error naming `db.lock` and `index.lock`.
//!
//! Usage: `lock_order_processes OUT_DIR` writes `OUT_DIR/lock_order_processes/indexer.trace`
//! and `OUT_DIR/lock_order_processes/compactor.trace` (it runs itself once per role).

use anyhow::{bail, Context, Result};
use hindsight_recorder::Recorder;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tracing_subscriber::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: lock_order_processes OUT_DIR")?);
    match args.next().as_deref() {
        None => orchestrate(&dir),
        Some(role) => run_role(&dir, role),
    }
}

/// Runs the two processes one after the other.
fn orchestrate(dir: &Path) -> Result<()> {
    let traces = dir.join("lock_order_processes");
    std::fs::create_dir_all(&traces).with_context(|| format!("creating {}", traces.display()))?;
    let repo = std::env::temp_dir().join(format!("hindsight-repo-{}", std::process::id()));
    std::fs::create_dir_all(&repo)?;
    let me = std::env::current_exe()?;
    for role in ["indexer", "compactor"] {
        let status = Command::new(&me).arg(dir).arg(role).arg(&repo).status()?;
        if !status.success() {
            bail!("{role} failed: {status}");
        }
    }
    std::fs::remove_dir_all(&repo)?;
    Ok(())
}

/// Takes the lock file `$name` in `$repo`, recording the request (if it has to wait) and the
/// acquisition through the tracing convention. A macro, so that the recorded site is the line
/// that takes the lock.
macro_rules! lock_file {
    ($repo:expr, $name:literal) => {{
        let mut requested = false;
        loop {
            match LockFile::try_create($repo, $name)? {
                Some(lock) => {
                    tracing::trace!(target: "hindsight::lock", op = "acquired",
                        lock.name = $name, lock.kind = "file", mode = "exclusive");
                    break lock;
                }
                None if !requested => {
                    tracing::trace!(target: "hindsight::lock", op = "requested",
                        lock.name = $name, lock.kind = "file", mode = "exclusive");
                    requested = true;
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }};
}

/// One process: records into `<dir>/lock_order_processes/<role>.trace`.
fn run_role(dir: &Path, role: &str) -> Result<()> {
    let repo = PathBuf::from(std::env::args().nth(3).context("missing repository directory")?);
    let path = dir.join("lock_order_processes").join(format!("{role}.trace"));
    let (recorder, guard) = Recorder::builder().path(&path).program(role).build()?;
    tracing_subscriber::registry().with(recorder).init();
    match role {
        "indexer" => {
            let db = lock_file!(&repo, "db.lock");
            let index = lock_file!(&repo, "index.lock");
            std::fs::write(repo.join("index"), "entries: 3\n")?;
            index.release()?;
            db.release()?;
        }
        "compactor" => {
            let index = lock_file!(&repo, "index.lock");
            let db = lock_file!(&repo, "db.lock");
            std::fs::write(repo.join("db"), "compacted\n")?;
            db.release()?;
            index.release()?;
        }
        other => bail!("unknown role {other}"),
    }
    let summary = guard.finish()?;
    println!("{role}: {} events, {} bytes -> {}", summary.events, summary.bytes, path.display());
    Ok(())
}

/// A lock file held while it exists.
struct LockFile {
    path: PathBuf,
    lock_name: &'static str,
}

impl LockFile {
    /// Creates `dir/name` exclusively; `None` while another process holds it.
    fn try_create(dir: &Path, lock_name: &'static str) -> Result<Option<LockFile>> {
        let path = dir.join(lock_name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                writeln!(file, "{}", std::process::id())?;
                Ok(Some(LockFile { path, lock_name }))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Removes the lock file.
    fn release(self) -> Result<()> {
        let lock_name = self.lock_name;
        tracing::trace!(target: "hindsight::lock", op = "released", lock.name = lock_name);
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing {}", self.path.display()))
    }
}
