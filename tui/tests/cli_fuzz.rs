//! Fuzzing at the command line's level: mutated binary traces and STD text files go, as files,
//! through what `hindsight analyze` (the text, JSON and SARIF reports), `info` (text and JSON),
//! `convert` (then `analyze` of what it wrote) and `tui` (its start-up, keys and a frame at
//! some terminal size) call. No input may panic, and memory stays flat over the run.
//!
//! The inputs are committed traces (the small ones, and the head of a large one) and generated
//! STD text, each changed by one to four mutations: bit flips, random bytes, truncations,
//! insertions, duplicated or dropped ranges, length-field edits; half of the binary mutations
//! then fix the checksums of the chunks they touched, so that the change reaches the decoder
//! instead of stopping at a checksum.
//!
//! One input in [`TUI_EVERY`] also goes through the TUI. CI runs a few hundred inputs, seeded. A campaign:
//! `HINDSIGHT_FUZZ_CASES=1000000 cargo test --release -p hindsight-tui --test cli_fuzz -- --nocapture`
//! (`HINDSIGHT_FUZZ_SEED` picks another sequence). An input that panics is written to
//! `target/cli-fuzz-failures/` and the run fails listing them.

use hindsight_analyzer::info::TraceInfo;
use hindsight_analyzer::report::{json, sarif, text};
use hindsight_analyzer::{analyze_paths, AnalyzeOptions};
use hindsight_tui::{App, Data, Key};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Inputs in a CI run.
const CI_CASES: u64 = 300;

/// One input in this many also starts the TUI (which builds the timeline, the costliest part
/// of a case by far); every input goes through `analyze`, `info` and `convert`.
const TUI_EVERY: u64 = 8;

/// Binary traces mutated (small, with findings, tasks, tokio locks, a captured deadlock).
const TRACES: [&str; 9] = [
    "incident_hang.trace",
    "gate_lock.trace",
    "lock_order_inversion.trace",
    "deadlock_captured.trace",
    "tokio_mixed.trace",
    "stale_lock.trace",
    "worker_stats_race.trace",
    "channel_handoff.trace",
    "blocking_poll.trace",
];

/// A large trace, of which only the head is mutated (so a case stays quick).
const LARGE_TRACE: (&str, usize) = ("ordered_hierarchy.trace", 16 * 1024);

/// The preamble before the first chunk: magic and version.
const PREAMBLE: usize = 8;

/// Where a chunk's length and checksum fields are, and where its body starts, in a trace of
/// the version its preamble names: version 1 `len crc body`, version 2 `SYNC len crc body`.
struct ChunkLayout {
    len_at: usize,
    crc_at: usize,
    header: usize,
}

impl ChunkLayout {
    fn of(bytes: &[u8]) -> ChunkLayout {
        match bytes.get(4..8).map(|v| u32::from_le_bytes(v.try_into().expect("4 bytes"))) {
            Some(1) => ChunkLayout { len_at: 0, crc_at: 4, header: 8 },
            _ => ChunkLayout { len_at: 4, crc_at: 8, header: 12 },
        }
    }
}

/// Keys pressed in the TUI before its frame is drawn, a few picked per input.
const KEYS: [Key; 16] = [
    Key::Char('2'),
    Key::Char('3'),
    Key::Char('4'),
    Key::Char('5'),
    Key::Char('?'),
    Key::Enter,
    Key::Down,
    Key::End,
    Key::Char('+'),
    Key::Char('L'),
    Key::Char('n'),
    Key::Char('J'),
    Key::Char('l'),
    Key::Char('/'),
    Key::Char('a'),
    Key::Esc,
];

/// splitmix64: small, seeded, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// The chunks of a binary trace as `(start, end)` byte ranges (header included), as far as
/// their length fields hold together.
fn chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let layout = ChunkLayout::of(bytes);
    let mut chunks = Vec::new();
    let mut at = PREAMBLE;
    while at + layout.header <= bytes.len() {
        let len_at = at + layout.len_at;
        let len = u32::from_le_bytes(bytes[len_at..len_at + 4].try_into().expect("4 bytes"));
        let end = at + layout.header + len as usize;
        if end > bytes.len() {
            break;
        }
        chunks.push((at, end));
        at = end;
    }
    chunks
}

/// Makes the checksum of every well-delimited chunk hold again (CRC-32 of the length field and
/// the body), so that a mutated payload reaches the decoder.
fn fix_checksums(bytes: &mut [u8]) {
    let layout = ChunkLayout::of(bytes);
    for (start, end) in chunks(bytes) {
        let (len_at, crc_at) = (start + layout.len_at, start + layout.crc_at);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[len_at..len_at + 4]);
        hasher.update(&bytes[start + layout.header..end]);
        bytes[crc_at..crc_at + 4].copy_from_slice(&hasher.finalize().to_le_bytes());
    }
}

/// Values that break length and count fields.
const INTERESTING: [u64; 10] =
    [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, u64::MAX];

/// Applies one random mutation to `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, binary: bool) {
    let len = bytes.len();
    match rng.below(9) {
        // Flip one to eight bits.
        0 => {
            for _ in 0..=rng.below(8) {
                if let Some(byte) = bytes.get_mut(rng.below(len)) {
                    *byte ^= 1 << rng.below(8);
                }
            }
        }
        // Overwrite a few bytes at random.
        1 => {
            for _ in 0..=rng.below(4) {
                if let Some(byte) = bytes.get_mut(rng.below(len)) {
                    *byte = rng.next() as u8;
                }
            }
        }
        // Cut the file.
        2 => bytes.truncate(rng.below(len + 1)),
        // Insert random bytes.
        3 => {
            let at = rng.below(len + 1);
            let new: Vec<u8> = (0..=rng.below(16)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, new);
        }
        // Duplicate a range somewhere (a chunk or a line, for the formats' own units).
        4 => {
            let (from, to) = unit(rng, bytes, binary);
            let copy = bytes[from..to].to_vec();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, copy);
        }
        // Drop a range (a chunk or a line).
        5 => {
            let (from, to) = unit(rng, bytes, binary);
            bytes.drain(from..to);
        }
        // Edit a length field: a chunk's, or a varint inside a payload.
        6 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let whole = chunks(bytes);
            let at = match whole.get(rng.below(whole.len())) {
                Some(&(start, _)) if binary && rng.chance(2) => {
                    start + ChunkLayout::of(bytes).len_at
                }
                _ => rng.below(len),
            };
            let width = [1, 2, 4, 8][rng.below(4)];
            for (i, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *byte;
                }
            }
        }
        // Text-shaped damage: separators, newlines, long runs, non-UTF-8.
        7 => {
            let at = rng.below(len + 1);
            let new: Vec<u8> = match rng.below(6) {
                0 => b"|".to_vec(),
                1 => b"\n".to_vec(),
                2 => b"(".to_vec(),
                3 => vec![b'9'; 1 + rng.below(40)],
                4 => vec![0xFF, 0xFE, 0x1B, 0x00],
                _ => vec![b'x'; rng.below(9000)],
            };
            bytes.splice(at..at, new);
        }
        // Swap two ranges' order (chunks or lines).
        _ => {
            let (from, to) = unit(rng, bytes, binary);
            let moved: Vec<u8> = bytes.drain(from..to).collect();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, moved);
        }
    }
}

/// A chunk (binary) or a line (text) of `bytes`, or a random range when there is none.
fn unit(rng: &mut Rng, bytes: &[u8], binary: bool) -> (usize, usize) {
    if binary {
        let whole = chunks(bytes);
        if let Some(&range) = whole.get(rng.below(whole.len())) {
            return range;
        }
    } else {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1))
            .filter(|&i| i < bytes.len())
            .collect();
        if let Some(&start) = starts.get(rng.below(starts.len())) {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| start + n + 1);
            return (start, end);
        }
    }
    let from = rng.below(bytes.len() + 1);
    (from, (from + rng.below(64)).min(bytes.len()))
}

/// A random STD trace: threads forking and joining, taking and releasing locks (mostly
/// well nested), reading and writing variables, atomic blocks and requests.
fn std_text(rng: &mut Rng) -> Vec<u8> {
    let threads = 1 + rng.below(4);
    let mut text = String::new();
    for t in 1..threads {
        text.push_str(&format!("T0|fork(T{t})|{}\n", rng.below(100)));
    }
    let mut held: Vec<Vec<usize>> = vec![Vec::new(); threads];
    for _ in 0..rng.below(60) {
        let t = rng.below(threads);
        let loc = rng.below(1000);
        let line = match rng.below(8) {
            0 | 1 => {
                let lock = rng.below(4);
                held[t].push(lock);
                if rng.chance(3) {
                    text.push_str(&format!("T{t}|req(L{lock})|{loc}\n"));
                }
                format!("T{t}|acq(L{lock})|{loc}")
            }
            2 | 3 => match held[t].pop() {
                Some(lock) => format!("T{t}|rel(L{lock})|{loc}"),
                None => format!("T{t}|rel(L{})|{loc}", rng.below(4)),
            },
            4 => format!("T{t}|r(x{})|{loc}", rng.below(3)),
            5 => format!("T{t}|w(x{})|{loc}", rng.below(3)),
            6 => format!("T{t}|begin()|{loc}"),
            _ => format!("T{t}|end()|{loc}"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    for t in 1..threads {
        text.push_str(&format!("T0|join(T{t})|{}\n", rng.below(100)));
    }
    text.into_bytes()
}

/// The resident and peak resident memory of this process, in KiB (Linux; 0 elsewhere).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Which commands accepted an input (the others refused it with an error).
#[derive(Debug, Default, Clone, Copy)]
struct Accepted {
    analyze: u64,
    info: u64,
    convert: u64,
    tui: u64,
}

/// Runs one input file through what each command calls, and the TUI's if `tui`; counts in
/// `accepted` the commands that read it.
fn run_commands(rng: &mut Rng, input: &Path, converted: &Path, tui: bool, accepted: &mut Accepted) {
    let options = AnalyzeOptions::default();
    if let Ok(report) = analyze_paths(&[input], &options) {
        accepted.analyze += 1;
        std::hint::black_box((text::render(&report), json::render(&report)));
        std::hint::black_box(sarif::render(&report));
    }
    if let Ok(info) = TraceInfo::read(input) {
        accepted.info += 1;
        std::hint::black_box((info.render_text(), info.to_json()));
    }
    if hindsight_analyzer::rapid::convert_to_trace(input, converted).is_ok() {
        accepted.convert += 1;
        if let Ok(report) = analyze_paths(&[converted], &options) {
            std::hint::black_box(text::render(&report));
        }
    }
    if !tui {
        return;
    }
    if let Ok(data) = Data::load(&[input], &options) {
        accepted.tui += 1;
        let mut app = App::new(data);
        for _ in 0..rng.below(5) {
            app.handle_key(KEYS[rng.below(KEYS.len())]);
        }
        let area = Rect::new(0, 0, 1 + rng.below(200) as u16, 1 + rng.below(60) as u16);
        let mut buf = Buffer::empty(area);
        (&app).render(area, &mut buf);
    }
}

#[test]
fn mutated_traces_and_std_files_never_panic_any_command() {
    let cases: u64 =
        std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CI_CASES);
    let seed: u64 =
        std::env::var("HINDSIGHT_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(23);
    let traces_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../traces");
    let mut seeds: Vec<Vec<u8>> = TRACES
        .iter()
        .map(|name| std::fs::read(traces_dir.join(name)).expect("a committed trace"))
        .collect();
    let mut large = std::fs::read(traces_dir.join(LARGE_TRACE.0)).expect("a committed trace");
    large.truncate(LARGE_TRACE.1);
    seeds.push(large);

    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let work = target.join(format!("cli-fuzz-{}", std::process::id()));
    let failures_dir = target.join("cli-fuzz-failures");
    std::fs::create_dir_all(&work).expect("a scratch directory");
    let (input, converted) = (work.join("input"), work.join("converted.trace"));

    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let mut accepted = Accepted::default();
    let started = std::time::Instant::now();
    let mut settled_rss = 0;
    let checkpoints = 10;
    for case in 0..cases {
        let binary = rng.below(3) > 0;
        let mut bytes =
            if binary { seeds[rng.below(seeds.len())].clone() } else { std_text(&mut rng) };
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut bytes, binary);
        }
        if binary && rng.chance(2) {
            fix_checksums(&mut bytes);
        }
        std::fs::write(&input, &bytes).expect("the scratch input is written");
        let mut case_rng = Rng(rng.next());
        let tui = case % TUI_EVERY == 0;
        let run = || run_commands(&mut case_rng, &input, &converted, tui, &mut accepted);
        if catch_unwind(AssertUnwindSafe(run)).is_err() {
            std::fs::create_dir_all(&failures_dir).expect("the failures directory");
            let kept = failures_dir.join(format!("seed{seed}-case{case}.bin"));
            std::fs::write(&kept, &bytes).expect("the failing input is kept");
            failures.push(kept);
        }
        if (case + 1) % (cases / checkpoints).max(1) == 0 {
            let (rss, peak) = memory_kib();
            eprintln!(
                "{} inputs in {:.1?}: RSS {} MiB, peak {} MiB",
                case + 1,
                started.elapsed(),
                rss / 1024,
                peak / 1024
            );
            if case + 1 == cases / checkpoints {
                settled_rss = rss;
            }
        }
    }
    let (rss, peak) = memory_kib();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "{cases} inputs (seed {seed}) in {:.1?}: {} panics; RSS {} MiB, peak {} MiB",
        started.elapsed(),
        failures.len(),
        rss / 1024,
        peak / 1024
    );
    eprintln!("read without error: {accepted:?} (the TUI started on one input in {TUI_EVERY})");
    assert!(failures.is_empty(), "inputs that panicked: {failures:#?}");
    if cases >= 10_000 {
        // After the first tenth (allocator pools, caches), a run holds no more memory.
        assert!(
            rss <= settled_rss + 64 * 1024,
            "RSS grew from {} MiB to {} MiB over the run",
            settled_rss / 1024,
            rss / 1024
        );
    }
}
