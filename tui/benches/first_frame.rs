//! Time to the first frame, and the cost of key presses, on a large trace.
//!
//! Generates a trace of N events (default 10 million; `cargo bench -p hindsight-tui --bench
//! first_frame -- 20000000` for more) from 16 threads over 64 locks, written the way the
//! recorder writes: per-thread batches, a watermark after each flush cycle, lock sequence
//! numbers, requests where a lock is busy. Threads take an outer lock and, nested, a higher
//! one; two spare locks are taken in one order at the start and in the other half-way, so
//! that there is a lock-order cycle to jump to. Then it measures:
//!
//! - loading (the analysis and the timeline, two passes on two threads), building the app and
//!   drawing the first frame into a 120×40 `TestBackend`: the time to the first frame;
//! - each key press plus the frame after it (zoom, pan, cursor, jump from a finding to the
//!   timeline, sort, filter), as the mean and the worst of many presses.

use hindsight_recorder::format::{
    Definition, Event, EventKind, Header, LockDef, LockId, LockImplementation, LockKind, LockMode,
    SiteDef, SiteId, StringId, ThreadDef, ThreadId, TraceWriter,
};
use hindsight_tui::{App, Data, Key};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::fs::File;
use std::io::BufWriter;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::{Duration, Instant};

const THREADS: usize = 16;
const LOCKS: u32 = 64;
const BATCH: usize = 4096;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A simulated thread: which of its four steps comes next, its two locks, whether it waits.
struct Sim {
    step: u8,
    locks: [LockId; 2],
    waiting: bool,
    buffer: Vec<Event>,
}

fn generate(path: &Path, events: u64) -> std::io::Result<()> {
    let header = Header {
        program: "first_frame".into(),
        pid: 1,
        host: "bench".into(),
        start_unix_ns: 1_700_000_000_000_000_000,
        recorder_version: "bench".into(),
        clock: "monotonic".into(),
    };
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut writer = TraceWriter::new(file, &header)?;
    let mut defs = vec![Definition::String { id: StringId(0), text: "src/bench.rs".into() }];
    for i in 0..8 {
        let site =
            SiteDef { id: SiteId(i), file: StringId(0), line: 10 + i, col: 5, function: None };
        defs.push(Definition::Site(site));
    }
    for t in 0..THREADS as u32 {
        defs.push(Definition::String { id: StringId(1 + t), text: format!("worker-{t}") });
        let name = Some(StringId(1 + t));
        defs.push(Definition::Thread(ThreadDef { id: ThreadId(t), name, os_id: u64::from(t) }));
    }
    for l in 0..LOCKS {
        let name = StringId(100 + l);
        defs.push(Definition::String { id: name, text: format!("lock-{l}") });
        let kind = LockKind::Mutex;
        let def = LockDef {
            id: LockId(l),
            kind,
            blocking: true,
            name: Some(name),
            site: None,
            implementation: LockImplementation::HindsightStd,
            capacity: None,
        };
        defs.push(Definition::Lock(def));
    }
    writer.write_definitions(&defs)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seqs = vec![0u64; LOCKS as usize];
    let mut holder = vec![usize::MAX; LOCKS as usize];
    let mut sims: Vec<Sim> = (0..THREADS)
        .map(|_| Sim { step: 0, locks: [LockId(0); 2], waiting: false, buffer: Vec::new() })
        .collect();
    let (mut time, mut written, mut cycle) = (0u64, 0u64, 0u64);
    let (mut ordered, mut inverted) = (false, false);
    while written < events {
        let t = rng.below(THREADS as u64) as usize;
        time += 1 + rng.below(200);
        let sim = &mut sims[t];
        let site = SiteId(rng.below(8) as u32);
        let kind = if sim.step < 2 {
            let which = usize::from(sim.step);
            if !sim.waiting && which == 0 {
                // The two last locks are taken only twice: in one order by worker-0 at the
                // start, in the other by worker-1 half-way (the one lock-order cycle).
                let outer = rng.below(u64::from(LOCKS) - 10) as u32;
                let inner = outer + 1 + rng.below(7) as u32;
                sim.locks = [LockId(outer), LockId(inner)];
                if t == 0 && !ordered {
                    sim.locks = [LockId(LOCKS - 2), LockId(LOCKS - 1)];
                    ordered = true;
                } else if t == 1 && !inverted && written >= events / 2 {
                    sim.locks = [LockId(LOCKS - 1), LockId(LOCKS - 2)];
                    inverted = true;
                }
            }
            let lock = sim.locks[which];
            if holder[lock.index()] == usize::MAX {
                holder[lock.index()] = t;
                seqs[lock.index()] += 1;
                sim.waiting = false;
                sim.step += 1;
                let seq = NonZeroU64::new(seqs[lock.index()]);
                EventKind::LockAcquired {
                    lock,
                    mode: LockMode::Exclusive,
                    site,
                    seq,
                    via_try: false,
                }
            } else if !sim.waiting {
                sim.waiting = true;
                EventKind::LockRequested { lock, mode: LockMode::Exclusive, site }
            } else {
                continue;
            }
        } else {
            let lock = sim.locks[usize::from(3 - sim.step)];
            holder[lock.index()] = usize::MAX;
            seqs[lock.index()] += 1;
            sim.step = (sim.step + 1) % 4;
            let seq = NonZeroU64::new(seqs[lock.index()]);
            EventKind::LockReleased { lock, mode: LockMode::Exclusive, seq, poisoned: false }
        };
        sim.buffer.push(Event { time_ns: time, thread: ThreadId(t as u32), task: None, kind });
        if sim.buffer.len() == BATCH {
            writer.write_events(&sim.buffer)?;
            sim.buffer.clear();
        }
        written += 1;
        cycle += 1;
        if cycle == (THREADS * BATCH) as u64 {
            for sim in &mut sims {
                writer.write_events(&sim.buffer)?;
                sim.buffer.clear();
            }
            writer.write_watermark(time + 1)?;
            cycle = 0;
        }
    }
    for sim in &mut sims {
        writer.write_events(&sim.buffer)?;
    }
    writer.flush()
}

fn draw(terminal: &mut Terminal<TestBackend>, app: &App) {
    terminal.draw(|frame| frame.render_widget(app, frame.area())).expect("a test backend draws");
}

/// Presses `keys` in turn, each followed by a frame, and returns the mean and the worst time
/// of a press of the last key (the others only set things up).
fn press(
    terminal: &mut Terminal<TestBackend>,
    app: &mut App,
    setup: &[Key],
    key: Key,
    n: usize,
) -> (Duration, Duration) {
    for &k in setup {
        app.handle_key(k);
        draw(terminal, app);
    }
    let (mut total, mut worst) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let started = Instant::now();
        app.handle_key(key);
        draw(terminal, app);
        let elapsed = started.elapsed();
        total += elapsed;
        worst = worst.max(elapsed);
    }
    (total / n as u32, worst)
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    kib / 1024
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let path =
        std::env::temp_dir().join(format!("hindsight-tui-bench-{}.trace", std::process::id()));
    let started = Instant::now();
    generate(&path, events)?;
    let bytes = std::fs::metadata(&path)?.len();
    println!("generated {events} events ({bytes} bytes) in {:.2?}", started.elapsed());

    let started = Instant::now();
    let data = Data::load(&[&path], &hindsight_analyzer::AnalyzeOptions::default())?;
    let loaded = started.elapsed();
    let mut app = App::new(data);
    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    draw(&mut terminal, &app);
    let first_frame = started.elapsed();
    println!(
        "first frame after {first_frame:.2?} (loading: analysis ∥ timeline {loaded:.2?}); \
         {} findings, {} lanes, {} locks; peak RSS {} MiB",
        app.data().report.findings.len(),
        app.data().timeline.lanes().len(),
        app.data().timeline.locks().len(),
        peak_rss_mib()
    );
    if std::env::var_os("KEEP_TRACE").is_none() {
        std::fs::remove_file(&path)?;
    } else {
        println!("kept {}", path.display());
    }

    let timeline = [Key::Char('4')];
    let rows: [(&str, &[Key], Key); 9] = [
        ("timeline: zoom in (+)", &timeline, Key::Char('+')),
        ("timeline: zoom out (-)", &[], Key::Char('-')),
        (
            "timeline: pan right (L)",
            &[Key::Char('+'), Key::Char('+'), Key::Char('+')],
            Key::Char('L'),
        ),
        ("timeline: pan left (H)", &[], Key::Char('H')),
        ("timeline: cursor (l)", &[], Key::Char('l')),
        ("timeline: next event (])", &[], Key::Char(']')),
        ("timeline: lane (j)", &[], Key::Char('j')),
        ("locks: sort column (l)", &[Key::Char('2')], Key::Char('l')),
        ("tasks: invert sort (i)", &[Key::Char('3')], Key::Char('i')),
    ];
    for (name, setup, key) in rows {
        let (mean, worst) = press(&mut terminal, &mut app, setup, key, 50);
        println!("{name:<28} mean {mean:>10.2?}  worst {worst:>10.2?}");
    }
    // Enter on a finding: jump to the timeline, then back to the findings, many times.
    let (mut total, mut worst) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..50 {
        app.handle_key(Key::Char('1'));
        draw(&mut terminal, &app);
        let started = Instant::now();
        app.handle_key(Key::Enter);
        draw(&mut terminal, &app);
        total += started.elapsed();
        worst = worst.max(started.elapsed());
    }
    println!("{:<28} mean {:>10.2?}  worst {worst:>10.2?}", "findings: Enter (jump)", total / 50);
    let (mean, worst) =
        press(&mut terminal, &mut app, &[Key::Char('3'), Key::Char('/')], Key::Char('w'), 20);
    println!("{:<28} mean {mean:>10.2?}  worst {worst:>10.2?}", "tasks: filter, per char");
    Ok(())
}
