//! Scenario `incident_hang` (bug: a deadlock in a running service, captured by the flight
//! recorder's watchdog).
//!
//! A small bank service over loopback: a tokio runtime with two workers, one task per
//! connection (`connection-N`, recorded with `hindsight_recorder::task::spawn`), requests in
//! a line protocol.
//! Its shared state is two async mutexes, `accounts` and `ledger`:
//!
//! - `BALANCE a` reads `accounts`;
//! - `TRANSFER a b n` takes `accounts`, validates and moves the money, then takes `ledger` to
//!   append the entry — `accounts` then `ledger`;
//! - `AUDIT` takes `ledger`, totals it, then takes `accounts` to compare — `ledger` then
//!   `accounts`: the opposite order.
//!
//! Six clients (plain threads, not recorded) send a mix of requests. Under that load a
//! transfer holding `accounts` and an audit holding `ledger` soon wait for each other
//! forever; every later request queues behind them and the service hangs. The recorder runs
//! as a flight recorder (`ring:size=512KiB`, watchdog at its default 5 s): nothing is written
//! until the watchdog sees a wait older than 5 s and dumps the last events, with a mark
//! naming the trigger. The program then renames the dump to `incident_hang.trace` and exits.
//!
//! Expected: one `deadlock` error between two connection tasks — one holds `accounts` and
//! waits for `ledger`, the other holds `ledger` and waits for `accounts` — and `info` lists
//! the mark `hindsight: dump triggered by watchdog: ...`. The same inversion usually also
//! happened earlier in the run without hanging (the two acquisitions did not overlap), which
//! is the one `lock-order-cycle` error.
//!
//! Usage: `incident_hang OUT_DIR` writes `OUT_DIR/incident_hang.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::sync::tokio::Mutex;
use hindsight_recorder::{FlightRecorder, Mode, Recorder};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::prelude::*;

const ACCOUNTS: u32 = 64;
const CLIENTS: usize = 6;
/// How long the program waits for the watchdog before it gives up.
const GIVE_UP: Duration = Duration::from_secs(60);

/// The service's shared state.
struct Bank {
    accounts: Mutex<HashMap<u32, i64>>,
    ledger: Mutex<Vec<(u32, u32, i64)>>,
}

impl Bank {
    async fn balance(&self, account: u32) -> String {
        let accounts = self.accounts.lock().await;
        format!("{}", accounts.get(&account).copied().unwrap_or(0))
    }

    async fn transfer(&self, from: u32, to: u32, amount: i64) -> String {
        let mut accounts = self.accounts.lock().await; // site: transfer-accounts
        let available = accounts.get(&from).copied().unwrap_or(0);
        if available < amount || from == to {
            return "refused".into();
        }
        *accounts.entry(from).or_default() -= amount;
        *accounts.entry(to).or_default() += amount;
        let mut ledger = self.ledger.lock().await; // site: transfer-ledger
        ledger.push((from, to, amount));
        "ok".into()
    }

    async fn audit(&self) -> String {
        let ledger = self.ledger.lock().await; // site: audit-ledger
        let moved: i64 = ledger.iter().map(|(_, _, amount)| amount).sum();
        let accounts = self.accounts.lock().await; // site: audit-accounts
        let total: i64 = accounts.values().sum();
        format!("{} entries, {moved} moved, {total} held", ledger.len())
    }

    async fn handle(&self, request: &str) -> String {
        let words: Vec<&str> = request.split_whitespace().collect();
        let number = |i: usize| words.get(i).and_then(|w| w.parse::<u32>().ok()).unwrap_or(0);
        match words.first().copied() {
            Some("BALANCE") => self.balance(number(1)).await,
            Some("TRANSFER") => self.transfer(number(1), number(2), i64::from(number(3))).await,
            Some("AUDIT") => self.audit().await,
            _ => "error".into(),
        }
    }
}

async fn serve(listener: TcpListener, bank: Arc<Bank>) {
    let mut accepted = 0;
    while let Ok((stream, _)) = listener.accept().await {
        accepted += 1;
        let bank = bank.clone();
        hindsight_recorder::task::spawn(&format!("connection-{accepted}"), async move {
            let _ = connection(stream, &bank).await;
        });
    }
}

async fn connection(stream: TcpStream, bank: &Bank) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Some(request) = lines.next_line().await? {
        let mut response = bank.handle(&request).await;
        response.push('\n');
        write.write_all(response.as_bytes()).await?;
    }
    Ok(())
}

/// One client: a fixed pseudo-random mix of requests, until the service stops answering.
fn client(address: std::net::SocketAddr, seed: u64) -> std::io::Result<()> {
    let stream = std::net::TcpStream::connect(address)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut state = seed;
    let mut response = String::new();
    for _ in 0..100_000 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let pick = (state >> 33) as u32;
        let (a, b) = (pick % ACCOUNTS, (pick / ACCOUNTS) % ACCOUNTS);
        let request = match pick % 20 {
            0 => "AUDIT\n".to_owned(),
            1..=6 => format!("TRANSFER {a} {b} {}\n", pick % 50 + 1),
            _ => format!("BALANCE {a}\n"),
        };
        writer.write_all(request.as_bytes())?;
        response.clear();
        if reader.read_line(&mut response)? == 0 {
            break;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: incident_hang OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("incident_hang.trace");
    // What `HINDSIGHT_MODE=ring:size=512KiB` gives: a flight recorder, watchdog at 5 s.
    let mode = Mode::Ring(FlightRecorder::new().max_bytes(512 << 10));
    let (recorder, guard) =
        Recorder::builder().path(&path).program("incident_hang").mode(mode).build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let bank = Arc::new(Bank {
        accounts: Mutex::named("accounts", (0..ACCOUNTS).map(|a| (a, 1_000)).collect()),
        ledger: Mutex::named("ledger", Vec::new()),
    });
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    runtime.spawn(serve(listener, bank));
    for seed in 0..CLIENTS as u64 {
        std::thread::Builder::new()
            .name(format!("client-{seed}"))
            .spawn(move || client(address, seed + 1))?;
    }

    // The service hangs; the flight recorder's watchdog notices and dumps.
    let started = Instant::now();
    let dump = loop {
        if let Some(dump) = guard.dumps().into_iter().next() {
            break dump;
        }
        if started.elapsed() > GIVE_UP {
            bail!("no dump after {GIVE_UP:?}: the service did not hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::rename(&dump, &path)
        .with_context(|| format!("renaming {} to {}", dump.display(), path.display()))?;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "incident_hang: the watchdog dumped after {:.1}s; {bytes} bytes -> {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    // The service is stuck for good: leave without waiting for it.
    std::process::exit(0);
}
