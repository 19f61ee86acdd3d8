//! The recorder's overhead on a realistic service, as ratios measured in one run:
//! `cargo bench -p hindsight-recorder --bench service_overhead`.
//!
//! The service: a tokio runtime with two workers serving a line protocol over loopback, one
//! task per connection. `GET k` reads a cache behind an async `RwLock`; a miss (about one in
//! six) fetches the value from a backend server over a second loopback connection (an await
//! on I/O) and writes it into the cache; `PUT a n` updates an account map behind a blocking
//! `Mutex`. The load generator (in this process, on a runtime of its own) opens 32
//! connections and sends a fixed number of requests on each, one at a time, and stops by
//! itself; it measures every request's latency, and the service process's CPU time (all its
//! threads, the recorder's included) per request.
//!
//! Each mode runs the same service in a fresh process (this binary, `--serve MODE`):
//!
//! - `plain`: `std::sync::Mutex`, `tokio::sync::RwLock` and `tokio::spawn`, no subscriber;
//! - `streaming`: hindsight's wrapper locks and `task::spawn` helper, recording (streaming to
//!   a file in the temporary directory) without tokio's instrumentation: no subscriber;
//! - `ring`: the same as a flight recorder (`ring`, 64 MiB; nothing is written);
//! - `streaming+tokio`, `ring+tokio`: the same, with the recorder's `Subscriber` as the global
//!   subscriber (what `init()` sets up), so that tokio's own instrumentation (every task's
//!   polls and wakes) is recorded too;
//! - `console`: the plain program with console-subscriber as the global subscriber;
//! - `wrappers`: hindsight's wrapper locks and spawn helper, not recording (their own cost).
//!
//! Name modes after `--` to run only those (`plain` always runs: the ratios need it).
//! Rounds alternate the modes; the figures are medians over the rounds. On a machine shared
//! with other work, throughput and p99 move with the neighbours; CPU time per request is the
//! steadiest of the three.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MODES: [&str; 7] =
    ["plain", "streaming", "ring", "streaming+tokio", "ring+tokio", "console", "wrappers"];
const ROUNDS: usize = 9;
const CONNECTIONS: usize = 32;
const WARMUP_REQUESTS: usize = 100;
const REQUESTS: usize = 2_500;
const KEYS: u32 = 3_000;
const CACHE_CAPACITY: usize = 2_500;
const ACCOUNTS: u32 = 256;

// === the service ===

/// A blocking mutex: std's, or hindsight's wrapper.
enum Blocking<T> {
    Std(std::sync::Mutex<T>),
    Hindsight(hindsight_recorder::sync::Mutex<T>),
}

impl<T> Blocking<T> {
    fn new(hindsight: bool, name: &'static str, value: T) -> Self {
        if hindsight {
            Blocking::Hindsight(hindsight_recorder::sync::Mutex::named(name, value))
        } else {
            Blocking::Std(std::sync::Mutex::new(value))
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        match self {
            Blocking::Std(m) => f(&mut m.lock().unwrap_or_else(|e| e.into_inner())),
            Blocking::Hindsight(m) => f(&mut m.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

/// An async rwlock: tokio's, or hindsight's wrapper.
enum AsyncRw<T> {
    Tokio(tokio::sync::RwLock<T>),
    Hindsight(hindsight_recorder::sync::tokio::RwLock<T>),
}

impl<T: Send + Sync> AsyncRw<T> {
    fn new(hindsight: bool, name: &'static str, value: T) -> Self {
        if hindsight {
            AsyncRw::Hindsight(hindsight_recorder::sync::tokio::RwLock::named(name, value))
        } else {
            AsyncRw::Tokio(tokio::sync::RwLock::new(value))
        }
    }

    async fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        match self {
            AsyncRw::Tokio(l) => f(&*l.read().await),
            AsyncRw::Hindsight(l) => f(&*l.read().await),
        }
    }

    async fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        match self {
            AsyncRw::Tokio(l) => f(&mut *l.write().await),
            AsyncRw::Hindsight(l) => f(&mut *l.write().await),
        }
    }
}

struct State {
    cache: AsyncRw<HashMap<u32, Arc<str>>>,
    accounts: Blocking<HashMap<u32, i64>>,
    backend: SocketAddr,
}

async fn backend(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(key)) = lines.next_line().await {
                let value = format!("value-of-{key}-{}\n", "x".repeat(32));
                if write.write_all(value.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn connection(stream: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let mut backend: Option<(tokio::io::Lines<_>, tokio::net::tcp::OwnedWriteHalf)> = None;
    while let Some(request) = lines.next_line().await? {
        let mut words = request.split_whitespace();
        let response = match (words.next(), words.next(), words.next()) {
            (Some("GET"), Some(key), _) => {
                let key: u32 = key.parse().unwrap_or(0);
                match state.cache.read(|cache| cache.get(&key).cloned()).await {
                    Some(value) => value,
                    None => {
                        if backend.is_none() {
                            let (r, w) = TcpStream::connect(state.backend).await?.into_split();
                            backend = Some((tokio::io::BufReader::new(r).lines(), w));
                        }
                        let Some((replies, ask)) = backend.as_mut() else { continue };
                        ask.write_all(format!("{key}\n").as_bytes()).await?;
                        let value: Arc<str> = replies.next_line().await?.unwrap_or_default().into();
                        state
                            .cache
                            .write(|cache| {
                                if cache.len() >= CACHE_CAPACITY {
                                    let victim = cache.keys().next().copied();
                                    victim.map(|k| cache.remove(&k));
                                }
                                cache.insert(key, value.clone());
                            })
                            .await;
                        value
                    }
                }
            }
            (Some("PUT"), Some(account), Some(amount)) => {
                let account: u32 = account.parse().unwrap_or(0);
                let amount: i64 = amount.parse().unwrap_or(0);
                let balance = state.accounts.with(|accounts| {
                    let balance = accounts.entry(account).or_default();
                    *balance += amount;
                    *balance
                });
                balance.to_string().into()
            }
            _ => "error".into(),
        };
        write.write_all(response.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
    Ok(())
}

/// The child process: serves in `mode` until its standard input closes.
fn serve(mode: &str) {
    let installed = support::install(mode);
    let hindsight = mode != "plain" && mode != "console";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let address = runtime.block_on(async {
        let backend_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let state = Arc::new(State {
            cache: AsyncRw::new(hindsight, "cache", HashMap::new()),
            accounts: Blocking::new(hindsight, "accounts", HashMap::new()),
            backend: backend_listener.local_addr().expect("address"),
        });
        tokio::spawn(backend(backend_listener));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                if hindsight {
                    hindsight_recorder::task::spawn(
                        "connection",
                        connection(stream, state.clone()),
                    );
                } else {
                    tokio::spawn(connection(stream, state.clone()));
                }
            }
        });
        address
    });
    println!("address={address}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let summary = installed.finish();
    println!("done {summary}");
}

// === the load generator ===

/// One connection's requests, the same in every mode.
fn requests(connection: usize, count: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (connection as u64 * 0x2545_f491_4f6c_dd1d);
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pick = (state >> 16) as u32;
            if pick % 10 < 6 {
                format!("GET {}\n", pick % KEYS)
            } else {
                format!("PUT {} {}\n", pick % ACCOUNTS, pick % 100)
            }
        })
        .collect()
}

async fn drive(address: SocketAddr, requests: Vec<String>) -> Vec<u64> {
    let stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let mut latencies = Vec::with_capacity(requests.len());
    for request in requests {
        let start = Instant::now();
        write.write_all(request.as_bytes()).await.expect("send");
        lines.next_line().await.expect("receive").expect("a response");
        latencies.push(start.elapsed().as_nanos() as u64);
    }
    latencies
}

/// Requests per second, the p99 latency (µs) and the service's CPU time per request (µs) of
/// one run against the service `pid` at `address`.
fn load(address: SocketAddr, pid: u32) -> (f64, f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        let warmup: Vec<_> = (0..CONNECTIONS)
            .map(|c| tokio::spawn(drive(address, requests(c + 1000, WARMUP_REQUESTS))))
            .collect();
        for w in warmup {
            w.await.expect("warm-up");
        }
        let start = Instant::now();
        let cpu_start = support::cpu_seconds(pid);
        let runs: Vec<_> =
            (0..CONNECTIONS).map(|c| tokio::spawn(drive(address, requests(c, REQUESTS)))).collect();
        let mut latencies = Vec::with_capacity(CONNECTIONS * REQUESTS);
        for run in runs {
            latencies.extend(run.await.expect("a connection's run"));
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = support::cpu_seconds(pid) - cpu_start;
        latencies.sort_unstable();
        let p99 = latencies[latencies.len() * 99 / 100] as f64 / 1e3;
        let count = latencies.len() as f64;
        (count / elapsed, p99, cpu * 1e6 / count)
    })
}

/// One run of `mode` in a fresh process: (requests/s, p99 µs, CPU µs per request, the
/// child's summary).
fn run(mode: &str) -> (f64, f64, f64, String) {
    let (mut child, mut stdout) = support::child(&["--serve", mode]);
    let address: SocketAddr =
        support::read_value(&mut stdout, "address").parse().expect("an address");
    let (throughput, p99, cpu) = load(address, child.id());
    drop(child.stdin.take());
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    let _ = child.wait();
    (throughput, p99, cpu, rest.trim().trim_start_matches("done").trim().to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        return serve(args.get(i + 1).map_or("plain", String::as_str));
    }
    // `cargo test --benches` runs this too: keep that quick.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!(
        "hindsight service overhead ({} cores): {CONNECTIONS} connections x {REQUESTS} \
         requests per run, {ROUNDS} rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let chosen: Vec<&str> = MODES
        .into_iter()
        .filter(|m| {
            *m == "plain"
                || !MODES.iter().any(|n| args.contains(&n.to_string()))
                || args.contains(&m.to_string())
        })
        .collect();
    let mut results: HashMap<&str, [Vec<f64>; 3]> = HashMap::new();
    let mut summaries: HashMap<&str, String> = HashMap::new();
    for round in 0..ROUNDS {
        for i in 0..chosen.len() {
            let mode = chosen[(i + round) % chosen.len()];
            let (throughput, p99, cpu, summary) = run(mode);
            eprintln!(
                "round {round} {mode:<16} {throughput:9.0} req/s  p99 {p99:7.1} us  \
                 {cpu:5.1} us CPU/request  {summary}"
            );
            let entry = results.entry(mode).or_default();
            entry[0].push(throughput);
            entry[1].push(p99);
            entry[2].push(cpu);
            summaries.insert(mode, summary);
        }
    }
    let medians = |mode: &str| results[mode].clone().map(support::median);
    let [plain_throughput, plain_p99, plain_cpu] = medians("plain");
    println!("\nmedians         req/s   ratio  p99 (us)  ratio  CPU/req (us)  ratio  last run");
    for mode in chosen {
        let [throughput, p99, cpu] = medians(mode);
        println!(
            "{mode:<16} {throughput:6.0}  {:5.3}  {p99:8.1}  {:5.3}  {cpu:12.2}  {:5.3}  {}",
            throughput / plain_throughput,
            p99 / plain_p99,
            cpu / plain_cpu,
            summaries[mode]
        );
    }
}
