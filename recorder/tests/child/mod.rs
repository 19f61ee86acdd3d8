//! Running a part of a test binary as a child process: the test re-runs its own executable
//! with one test selected and a role in the environment, so that a recording can be killed,
//! starved of disk or measured without touching the test harness's process.
#![allow(dead_code)] // each test binary uses a different part

use std::process::{Command, Stdio};

/// The variable that tells a child which role to play.
pub const ROLE_VAR: &str = "HINDSIGHT_TEST_CHILD";

/// Runs the long versions of the crash-safety tests when set to `1`.
pub const LONG_VAR: &str = "HINDSIGHT_LONG_TESTS";

/// Whether the long versions were asked for.
pub fn long() -> bool {
    std::env::var(LONG_VAR).is_ok_and(|v| v == "1")
}

/// The role this process plays, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A command that runs the test `entry` of this binary in a child process playing `role`,
/// with its standard output and error piped.
pub fn command(entry: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut command = Command::new(exe);
    command
        .args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .env_remove(hindsight_recorder::TRACE_VAR)
        .env_remove(hindsight_recorder::MODE_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `key=value` fields of the lines a child printed, by key.
pub fn field(output: &str, key: &str) -> Option<u64> {
    output
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Kibibytes of a `/proc/self/status` field (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A small deterministic pseudo-random sequence (no dependency needed).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock, printed so that a failure can be replayed.
    pub fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }

    /// The next number in `range`.
    pub fn below(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        range.start + self.0 % (range.end - range.start).max(1)
    }
}

/// Runs the test `entry` of this binary as a child playing `role` that records into a FIFO in
/// `dir` (named by `HINDSIGHT_TRACE`), which this process reads slowly: nothing for `stall`
/// (the pipe fills and the recorder's writer blocks, however fast the machine runs the child),
/// then `block` bytes at a time, with a `pause` after each. Returns the trace read and the
/// child's standard output, once the child has exited successfully.
#[cfg(unix)]
pub fn record_through_a_slow_pipe(
    dir: &std::path::Path,
    entry: &str,
    role: &str,
    stall: std::time::Duration,
    block: usize,
    pause: std::time::Duration,
) -> (Vec<u8>, String) {
    use std::io::Read;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let fifo = dir.join("slow.fifo");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; creates a FIFO in the test's own directory.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let process = command(entry, role).env(hindsight_recorder::TRACE_VAR, &fifo).spawn().unwrap();
    let mut pipe = std::fs::File::open(&fifo).unwrap();
    std::thread::sleep(stall);
    let (mut trace, mut chunk) = (Vec::new(), vec![0u8; block]);
    loop {
        let n = pipe.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        trace.extend_from_slice(&chunk[..n]);
        std::thread::sleep(pause);
    }
    let output = process.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(dir);
    (trace, stdout)
}
