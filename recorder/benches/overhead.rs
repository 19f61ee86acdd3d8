//! The recorder's overhead, as ratios measured in one run. Run with
//! `cargo bench -p hindsight-recorder --bench overhead` (add `-- uncontended` for (a) only).
//!
//! (a) added cost of one uncontended lock+unlock of the blocking wrapper over
//!     `std::sync::Mutex`, recording on (and off), next to its floor: the std mutex with the
//!     two clock reads of a timestamped acquire and release and nothing else (and what one
//!     read costs as `rdtsc`, the recorder's, and ordered, as `lfence; rdtsc` or `rdtscp`);
//! (b) one tokio program (8 shared tokio mutexes, 2 worker threads, a lock/unlock loop) run
//!     plain, with console-subscriber, with hindsight through tokio's instrumentation (its
//!     Layer in a `Registry`, and its own `Subscriber`), and with hindsight's async wrappers
//!     (the `tracing_path` bench runs the same loop in alternated rounds);
//! (c) bytes per event of the traces written by (a) and (b).
//!
//! Each figure is the median of several rounds. Events of (a) are written between timed
//! batches, so that the figure is the cost on the recording thread, not the writer's.

mod support;

use hindsight_recorder::{OverflowPolicy, Recorder, RecordingSummary};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

const LOCK_ROUNDS: usize = 15;
const LOCKS_PER_ROUND: usize = 2_000_000;
const BATCH: usize = 8 * 1024;
const PROGRAM_ROUNDS: usize = 7;

use support::median;

fn trace_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("hindsight-bench");
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir.join(format!("{name}.trace"))
}

/// Nanoseconds per lock+unlock of `lock_unlock`, timed in batches with `between` untimed.
fn per_lock(mut lock_unlock: impl FnMut(), mut between: impl FnMut()) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..LOCK_ROUNDS {
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < LOCKS_PER_ROUND {
            let start = Instant::now();
            for _ in 0..BATCH {
                lock_unlock();
            }
            elapsed += start.elapsed();
            done += BATCH;
            between();
        }
        rounds.push(elapsed.as_nanos() as f64 / done as f64);
    }
    median(rounds)
}

/// A read of the clock the recorder stamps events with where the CPU has an invariant
/// time-stamp counter (`rdtsc`); elsewhere a monotonic clock read.
fn hindsight_clock() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rdtsc` has no preconditions on x86_64.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    return std::time::Instant::now().elapsed().as_nanos() as u64;
}

/// A named way to read the clock.
type ClockRead = (&'static str, fn() -> u64);

/// The other ways to read the time-stamp counter (ordered against earlier instructions),
/// to compare with the plain `rdtsc` the recorder uses.
fn ordered_clock_reads() -> Vec<ClockRead> {
    #[cfg(target_arch = "x86_64")]
    {
        fn rdtscp() -> u64 {
            let mut aux = 0;
            // SAFETY: called only where CPUID says the CPU has `rdtscp` (below).
            unsafe { core::arch::x86_64::__rdtscp(&mut aux) }
        }
        fn lfence_rdtsc() -> u64 {
            // SAFETY: `lfence` and `rdtsc` have no preconditions on x86_64.
            unsafe {
                core::arch::x86_64::_mm_lfence();
                core::arch::x86_64::_rdtsc()
            }
        }
        let mut reads: Vec<ClockRead> = vec![("lfence + rdtsc", lfence_rdtsc)];
        // Leaf 0x8000_0001, EDX bit 27: RDTSCP.
        let extended = core::arch::x86_64::__cpuid(0x8000_0001);
        if extended.edx & (1 << 27) != 0 {
            reads.push(("rdtscp", rdtscp));
        }
        reads
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

fn bench_uncontended() -> (f64, f64, f64, RecordingSummary) {
    let std_mutex = std::sync::Mutex::new(0u64);
    let plain = per_lock(|| *black_box(&std_mutex).lock().unwrap() += 1, || {});
    let wrapper = hindsight_recorder::sync::Mutex::new(0u64);
    let off = per_lock(|| *black_box(&wrapper).lock().unwrap() += 1, || {});
    let (_layer, guard) = Recorder::builder()
        .path(trace_path("uncontended"))
        .overflow(OverflowPolicy::Block)
        .build()
        .expect("recording starts");
    let on = per_lock(
        || *black_box(&wrapper).lock().unwrap() += 1,
        || {
            hindsight_recorder::flush();
        },
    );
    let summary = guard.finish().expect("the trace is written");
    (plain, off, on, summary)
}

fn wrapper_lock(
    m: &hindsight_recorder::sync::tokio::Mutex<u64>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(async move { *m.lock().await += 1 })
}

/// Milliseconds per run of the program, with `dispatch` (if any) as every thread's subscriber.
fn run_program(dispatch: Option<tracing::Dispatch>, wrappers: bool) -> f64 {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    if let Some(dispatch) = dispatch.clone() {
        builder.on_thread_start(move || {
            // The runtime's threads keep the subscriber for their whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        });
    }
    let runtime = builder.build().expect("runtime");
    let _default = dispatch.as_ref().map(tracing::dispatcher::set_default);
    let mut rounds = Vec::new();
    for _ in 0..PROGRAM_ROUNDS {
        let start = Instant::now();
        if wrappers {
            let locks =
                Arc::new((0..8).map(|_| hindsight_recorder::sync::tokio::Mutex::new(0)).collect());
            runtime.block_on(support::lock_loop(locks, wrapper_lock));
        } else {
            let locks = Arc::new((0..8).map(|_| tokio::sync::Mutex::new(0)).collect());
            runtime.block_on(support::lock_loop(locks, support::tokio_lock));
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e3);
    }
    median(rounds)
}

fn recorded(name: &str, run: impl FnOnce() -> f64) -> (f64, RecordingSummary) {
    let (_layer, guard) = Recorder::builder()
        .path(trace_path(name))
        .overflow(OverflowPolicy::Block)
        .build()
        .expect("recording starts");
    let ms = run();
    (ms, guard.finish().expect("the trace is written"))
}

fn bytes_per_event(summary: &RecordingSummary) -> f64 {
    summary.bytes as f64 / summary.events.max(1) as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!(
        "hindsight recorder overhead ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (plain, off, on, uncontended) = bench_uncontended();
    println!("\n(a) uncontended lock+unlock, median of {LOCK_ROUNDS} x {LOCKS_PER_ROUND}");
    println!("    std::sync::Mutex                      {plain:7.1} ns");
    println!("    hindsight Mutex, not recording        {off:7.1} ns  (+{:.1} ns)", off - plain);
    println!(
        "    hindsight Mutex, recording            {on:7.1} ns  (+{:.1} ns, {:.2}x)",
        on - plain,
        on / plain
    );
    let clock = per_lock(
        || {
            black_box(hindsight_clock());
        },
        || {},
    );
    println!(
        "    one read of the recorder's clock      {clock:7.1} ns  (two per recorded lock+unlock)"
    );
    let std_mutex = std::sync::Mutex::new(0u64);
    let floor = per_lock(
        || {
            let mut guard = black_box(&std_mutex).lock().unwrap();
            black_box(hindsight_clock());
            *guard += 1;
            black_box(hindsight_clock());
        },
        || {},
    );
    println!(
        "    std::sync::Mutex + two clock reads    {floor:7.1} ns  (+{:.1} ns: the floor of a \
         timestamped acquire and release)",
        floor - plain
    );
    for (name, read) in ordered_clock_reads() {
        let ns = per_lock(
            || {
                black_box(read());
            },
            || {},
        );
        println!("    one read, {name:<27} {ns:7.1} ns");
    }
    if std::env::args().any(|a| a == "uncontended") {
        return;
    }

    // The order matters: runs without a subscriber come before any subscriber exists.
    let tokio_plain = run_program(None, false);
    let (wrappers, wrapper_summary) = recorded("wrappers", || run_program(None, true));
    let (instrumented, tokio_summary) = recorded("tokio", || {
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(Recorder::layer()));
        run_program(Some(dispatch), false)
    });
    let (subscriber, subscriber_summary) = recorded("subscriber", || {
        run_program(Some(tracing::Dispatch::new(Recorder::subscriber())), false)
    });
    let console = {
        let layer = console_subscriber::ConsoleLayer::builder()
            .server_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .spawn();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        run_program(Some(dispatch), false)
    };
    let ops = support::LOOP_TASKS * support::LOOP_ITERATIONS;
    println!("\n(b) tokio program: {} tasks x {} lock/unlock over 8 tokio Mutexes, 2 workers; median of {PROGRAM_ROUNDS}", support::LOOP_TASKS, support::LOOP_ITERATIONS);
    println!(
        "    plain                                 {tokio_plain:7.2} ms  1.00x  ({:.0} ns/op)",
        tokio_plain * 1e6 / ops as f64
    );
    println!(
        "    console-subscriber                    {console:7.2} ms  {:.2}x",
        console / tokio_plain
    );
    println!(
        "    hindsight, Recorder::layer()          {instrumented:7.2} ms  {:.2}x",
        instrumented / tokio_plain
    );
    println!(
        "    hindsight, its own Subscriber         {subscriber:7.2} ms  {:.2}x",
        subscriber / tokio_plain
    );
    println!(
        "    hindsight, async wrappers             {wrappers:7.2} ms  {:.2}x",
        wrappers / tokio_plain
    );

    println!("\n(c) bytes per event of the traces written");
    for (name, summary) in [
        ("(a) wrapper Mutex", &uncontended),
        ("(b) async wrappers", &wrapper_summary),
        ("(b) tokio instrumentation", &tokio_summary),
        ("(b) its own Subscriber", &subscriber_summary),
    ] {
        println!(
            "    {name:<30} {:5.2} B/event  ({} events, {} bytes, {} dropped)",
            bytes_per_event(summary),
            summary.events,
            summary.bytes,
            summary.dropped
        );
    }
}
