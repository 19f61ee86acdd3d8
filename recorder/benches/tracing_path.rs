//! The cost of recording an unmodified tokio program through tokio's own instrumentation,
//! as ratios measured in one run: `cargo bench -p hindsight-recorder --bench tracing_path`
//! (name workloads and modes after `--` to run only those; `plain` always runs;
//! `rounds=N` for another number of rounds than [`ROUNDS`]; `stable=PATH` adds the mode
//! `plain-stable`: `plain` run by `PATH`, this bench built without `--cfg tokio_unstable`,
//! e.g. by `CARGO_TARGET_DIR=target/stable RUSTFLAGS="--cfg hindsight_stable_build" cargo
//! bench -p hindsight-recorder --bench tracing_path --no-run`).
//!
//! Workloads, each run in a fresh process per round and mode (so that each mode installs its
//! global subscriber as a program would):
//!
//! - `mini-redis`: the `mini-redis` 0.4 server (crates.io, unmodified), on a tokio runtime of
//!   two workers, driven over loopback by [`CLIENTS`] concurrent clients (in this process)
//!   sending [`REQUESTS`] `SET`/`GET` requests each, one at a time: throughput, and the
//!   server's CPU time per request (user + system, all its threads);
//! - `churn`: task churn, as connection pools make it: [`CHURN_OPS`] operations, each a short
//!   task spawned for it that acquires and releases a permit of a tokio `Semaphore`
//!   ([`CHURN_PERMITS`] permits, at most [`CHURN_IN_FLIGHT`] tasks in flight), two workers:
//!   time and CPU time (`getrusage`) of the whole load;
//! - `lockloop`: 8 tasks × 2000 lock/unlock of 8 shared tokio `Mutex`es, two workers (the
//!   lock loop of the `overhead` bench), [`LOOP_REPEATS`] times: time and CPU time.
//!
//! Modes: `plain` (no subscriber), `streaming+tokio` (recording, the recorder's own
//! `Subscriber`, what `init()` installs), `ring+tokio` (the same as a flight recorder: a
//! final dump is written after the measurement), `streaming+layer` (`Recorder::layer()` in a
//! `Registry`), `console` (console-subscriber), and `floor`: a subscriber that enables
//! tokio's instrumentation and does nothing with it, what any subscriber of it pays (tokio's
//! spans and events, tracing's dispatch), to tell that apart from the recorder's own work. Everything is built with
//! `--cfg tokio_unstable` (the workspace's `.cargo/config.toml`): `plain` is the program
//! built the same way. Rounds alternate the modes; figures are medians over the rounds with
//! their ranges, ratios are medians of the per-round ratios with their quartiles, and the
//! machine's load averages are printed before and after (and, per workload, the 1-minute
//! load at each round's start).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const WORKLOADS: [&str; 3] = ["mini-redis", "churn", "lockloop"];
const MODES: [&str; 6] =
    ["plain", "floor", "streaming+tokio", "ring+tokio", "streaming+layer", "console"];
const ROUNDS: usize = 10;
/// Concurrent mini-redis clients.
const CLIENTS: usize = 16;
/// Requests of each mini-redis client per run (after [`WARMUP`]).
const REQUESTS: usize = 4_000;
/// Warm-up requests of each client.
const WARMUP: usize = 50;
/// Operations of the churn load.
const CHURN_OPS: usize = 40_000;
/// Permits of the churn load's semaphore.
const CHURN_PERMITS: usize = 8;
/// Churn tasks in flight at most.
const CHURN_IN_FLIGHT: usize = 64;
/// Runs of the lock loop per measurement (one is a few milliseconds).
const LOOP_REPEATS: usize = 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// === the children ===

/// Serves mini-redis in `mode` until standard input closes.
fn serve_mini_redis(mode: &str) {
    let installed = support::install(mode);
    let runtime = runtime();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    println!("address={}", listener.local_addr().expect("address"));
    let _ = std::io::stdout().flush();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stop.send(());
    });
    runtime.block_on(mini_redis::server::run(listener, stopped)).expect("the server runs");
    drop(runtime);
    println!("done {}", installed.finish());
}

/// Runs the churn load or the lock loop in `mode`; prints its time and CPU time.
fn run_load(workload: &str, mode: &str) {
    let installed = support::install(mode);
    let runtime = runtime();
    let (start, cpu) = (Instant::now(), support::own_cpu_seconds());
    match workload {
        "churn" => runtime.block_on(churn()),
        _ => {
            for _ in 0..LOOP_REPEATS {
                let locks = Arc::new((0..8).map(|_| tokio::sync::Mutex::new(0)).collect());
                runtime.block_on(support::lock_loop(locks, support::tokio_lock));
            }
        }
    }
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), support::own_cpu_seconds() - cpu);
    drop(runtime);
    println!("elapsed={elapsed} cpu={cpu}");
    println!("done {}", installed.finish());
}

/// The churn load: a task per operation, each taking and giving back a permit.
async fn churn() {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CHURN_PERMITS));
    let done = Arc::new(AtomicU64::new(0));
    let mut in_flight = tokio::task::JoinSet::new();
    for _ in 0..CHURN_OPS {
        if in_flight.len() >= CHURN_IN_FLIGHT {
            in_flight.join_next().await.expect("a task").expect("it completes");
        }
        let (semaphore, done) = (semaphore.clone(), done.clone());
        in_flight.spawn(async move {
            let _permit = semaphore.acquire().await.expect("open");
            done.fetch_add(1, Ordering::Relaxed);
        });
    }
    while let Some(task) = in_flight.join_next().await {
        task.expect("it completes");
    }
    assert_eq!(done.load(Ordering::Relaxed), CHURN_OPS as u64);
}

// === the driver ===

/// One client's run: `count` requests, alternately `SET` and `GET` of its own keys.
async fn client(address: SocketAddr, id: usize, count: usize) {
    let mut client = mini_redis::client::connect(address).await.expect("connect");
    let value = bytes::Bytes::from(vec![b'x'; 64]);
    for i in 0..count {
        let key = format!("client{id}-key{}", i % 100);
        if i % 2 == 0 {
            client.set(&key, value.clone()).await.expect("SET");
        } else {
            client.get(&key).await.expect("GET");
        }
    }
}

/// The child process of `args` for a run in `mode`: `plain-stable` runs `plain` in the
/// stable build at `stable`.
fn spawn(
    stable: Option<&std::path::Path>,
    mode: &str,
    args: &[&str],
) -> (std::process::Child, std::io::BufReader<std::process::ChildStdout>) {
    match (mode, stable) {
        ("plain-stable", Some(exe)) => {
            let args: Vec<&str> =
                args.iter().map(|a| if *a == mode { "plain" } else { a }).collect();
            support::child_of(exe, &args)
        }
        _ => support::child(args),
    }
}

/// One run of mini-redis in `mode`: (requests/s, server CPU µs per request), the summary.
fn run_mini_redis(stable: Option<&std::path::Path>, mode: &str) -> ([f64; 2], String) {
    let (mut child, mut out) = spawn(stable, mode, &["--serve-mini-redis", mode]);
    let address: SocketAddr = support::read_value(&mut out, "address").parse().expect("address");
    let load = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let figures = load.block_on(async {
        let warmup: Vec<_> =
            (0..CLIENTS).map(|c| tokio::spawn(client(address, c, WARMUP))).collect();
        for w in warmup {
            w.await.expect("warm-up");
        }
        let (start, cpu) = (Instant::now(), support::cpu_seconds(child.id()));
        let runs: Vec<_> =
            (0..CLIENTS).map(|c| tokio::spawn(client(address, c, REQUESTS))).collect();
        for run in runs {
            run.await.expect("a client's run");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = support::cpu_seconds(child.id()) - cpu;
        let requests = (CLIENTS * REQUESTS) as f64;
        [requests / elapsed, cpu * 1e6 / requests]
    });
    drop(child.stdin.take());
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    (figures, rest.trim().trim_start_matches("done").trim().to_owned())
}

/// One run of the churn load or the lock loop in `mode`: (ms, CPU ms), the summary.
fn run_in_child(
    stable: Option<&std::path::Path>,
    workload: &str,
    mode: &str,
) -> ([f64; 2], String) {
    let (mut child, mut out) = spawn(stable, mode, &["--run", workload, mode]);
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut out, &mut line);
    let value = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{key}= in {line:?}"))
    };
    let figures = [value("elapsed") * 1e3, value("cpu") * 1e3];
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    (figures, rest.trim().trim_start_matches("done").trim().to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map_or("plain", String::as_str);
    if let Some(i) = args.iter().position(|a| a == "--serve-mini-redis") {
        return serve_mini_redis(arg(i + 1));
    }
    if let Some(i) = args.iter().position(|a| a == "--run") {
        return run_load(arg(i + 1), arg(i + 2));
    }
    // `cargo test --benches` runs this too: keep that quick.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let named = |all: &[&'static str]| -> Vec<&'static str> {
        let any = all.iter().any(|n| args.iter().any(|a| a == n));
        all.iter().copied().filter(|n| !any || args.iter().any(|a| a == n)).collect()
    };
    let rounds =
        args.iter().find_map(|a| a.strip_prefix("rounds=")?.parse().ok()).unwrap_or(ROUNDS).max(1);
    let stable: Option<std::path::PathBuf> =
        args.iter().find_map(|a| a.strip_prefix("stable=")).map(Into::into);
    let workloads = named(&WORKLOADS);
    let mut modes = named(&MODES);
    if !modes.contains(&"plain") {
        modes.insert(0, "plain");
    }
    if stable.is_some() {
        modes.insert(1, "plain-stable");
    }
    println!(
        "hindsight through tokio's instrumentation ({} cores), {rounds} alternated rounds; \
         load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        support::load_average()
    );
    for workload in workloads {
        let mut figures: BTreeMap<&str, [Vec<f64>; 2]> = BTreeMap::new();
        let mut summaries: BTreeMap<&str, String> = BTreeMap::new();
        let mut loads = Vec::new();
        for round in 0..rounds {
            loads.push(support::load_now());
            for i in 0..modes.len() {
                let mode = modes[(i + round) % modes.len()];
                let (run, summary) = match workload {
                    "mini-redis" => run_mini_redis(stable.as_deref(), mode),
                    _ => run_in_child(stable.as_deref(), workload, mode),
                };
                eprintln!(
                    "{workload} round {round} {mode:<16} {:10.1} {:8.2}  {summary}",
                    run[0], run[1]
                );
                let entry = figures.entry(mode).or_default();
                entry[0].push(run[0]);
                entry[1].push(run[1]);
                summaries.insert(mode, summary);
            }
        }
        report(workload, &modes, &figures, &summaries);
        let (lo, hi) = support::range(&loads);
        println!(
            "load average (1 min) at the rounds' starts: median {:.2} [{lo:.2}-{hi:.2}]",
            support::median(loads.clone())
        );
    }
    println!("\nload average after: {}", support::load_average());
}

/// Prints medians, ranges and ratios to `plain` of one workload.
fn report(
    workload: &str,
    modes: &[&str],
    figures: &BTreeMap<&str, [Vec<f64>; 2]>,
    summaries: &BTreeMap<&str, String>,
) {
    let (first, second) = match workload {
        "mini-redis" => ("req/s", "CPU us/req"),
        _ => ("ms", "CPU ms"),
    };
    println!(
        "\n{workload}: median [range], and ratio to plain: the median of the per-round ratios \
         [their quartiles]"
    );
    println!("{:<16} {first:>22} {:>21}  {second:>20} {:>21}  last run", "mode", "ratio", "ratio");
    let plain = &figures["plain"];
    for mode in modes {
        let [a, b] = &figures[mode];
        // Ratios within each round (the modes of one round ran back to back).
        let ratio = |values: &[f64], base: &[f64]| {
            let ratios: Vec<f64> = values.iter().zip(base).map(|(v, p)| v / p).collect();
            let (q1, q3) = support::quartiles(&ratios);
            format!("{:.3} [{q1:.3}-{q3:.3}]", support::median(ratios))
        };
        let (a_lo, a_hi) = support::range(a);
        let (b_lo, b_hi) = support::range(b);
        println!(
            "{mode:<16} {:8.1} [{a_lo:.0}-{a_hi:.0}] {:>21}  {:7.2} [{b_lo:.2}-{b_hi:.2}] {:>21}  {}",
            support::median(a.clone()),
            ratio(a, &plain[0]),
            support::median(b.clone()),
            ratio(b, &plain[1]),
            summaries[mode]
        );
    }
}
