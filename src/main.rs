//! `hindsight`: the command line. Argument parsing and glue only; the libraries do the work.

mod progress;

use anyhow::Result;
use clap::{ArgGroup, ColorChoice, Parser, Subcommand, ValueEnum};
use hindsight_analyzer::causality::Relation;
use hindsight_analyzer::export;
use hindsight_analyzer::report::text::terminal_safe;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Record-and-replay concurrency analyzer: explains data races, lock-order cycles, deadlocks,
/// guards held across `.await` and contention from recorded traces.
#[derive(Debug, Parser)]
#[command(name = "hindsight", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarize a trace: header, duration, counts of events, threads, tasks, locks.
    Info {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = InfoFormat::Text)]
        format: InfoFormat,
        /// Colour the text: `auto` (when stdout is a terminal and `NO_COLOR` is not set),
        /// `always` or `never`.
        #[arg(long, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Analyse traces (several are one incident seen from several processes) and report
    /// deadlocks, lock-order cycles, stale locks, data races, guards held across `.await`,
    /// blocking in async tasks and contention hotspots. Exit status: 0 no finding at or above
    /// --fail-on, 1 findings, 2 unreadable trace or bad arguments.
    Analyze {
        /// The trace files.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = AnalyzeFormat::Text)]
        format: AnalyzeFormat,
        /// Colour the text report: `auto` (when stdout is a terminal and `NO_COLOR` is not
        /// set), `always` or `never`.
        #[arg(long, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
        /// Exit with 1 if a finding of this severity or worse is reported.
        #[arg(long, default_value = "error", value_parser = parse_severity)]
        fail_on: hindsight_analyzer::Severity,
        /// Report only these finding kinds (for example `lock-order-cycle deadlock`).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = parse_kind)]
        only: Vec<hindsight_analyzer::FindingKind>,
        /// A poll this long or longer is `blocking-in-async` (e.g. `10ms`, `500us`, `1s`).
        #[arg(long, default_value = "10ms", value_parser = parse_duration_ns)]
        poll_threshold: u64,
        /// A lock wait this long or longer makes a `contention-hotspot`.
        #[arg(long, default_value = "100ms", value_parser = parse_duration_ns)]
        wait_threshold: u64,
        #[command(flatten)]
        races: RacesArg,
    },
    /// Browse the analysis of traces in a terminal UI: findings, locks, tasks and threads, a
    /// timeline and the lock-order graph (press `?` in it for the keys).
    Tui {
        /// The trace files (several are one incident, as for `analyze`).
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        #[command(flatten)]
        races: RacesArg,
    },
    /// Export traces (several are one incident, as for `analyze`) for other tools: the
    /// timeline as Chrome trace-event JSON (Perfetto, chrome://tracing, speedscope), or the
    /// lock-order graph as Graphviz DOT. Exit status: 0 written, 2 unreadable trace, unwritable
    /// output or bad arguments.
    #[command(group(ArgGroup::new("output").required(true).args(["chrome", "dot"])))]
    Export {
        /// The trace files.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// Write the timeline here (`-` for standard output): a lane per thread and per task,
        /// with lock holds, lock waits, polls, marks and the findings of the analysis.
        #[arg(long, value_name = "OUT.json")]
        chrome: Option<PathBuf>,
        /// Write the lock-order graph here (`-` for standard output): lock classes, and an
        /// edge A -> B for each B taken while holding A; edges of lock-order-cycle errors red.
        #[arg(long, value_name = "OUT.dot")]
        dot: Option<PathBuf>,
        #[command(flatten)]
        races: RacesArg,
    },
    /// Convert a RAPID STD text trace (THREAD|OP(ARG)|LOC) into a hindsight trace.
    Convert {
        /// The STD trace to read.
        input: PathBuf,
        /// The hindsight trace to write (`-` for standard output).
        output: PathBuf,
    },
}

/// `--races`, shared by the commands that analyse.
#[derive(Debug, Clone, Copy, clap::Args)]
struct RacesArg {
    /// Which accesses race: `hb` (happens-before, as observed), `shb` (every race reported is
    /// real) or `wcp` (also races that another schedule would expose).
    #[arg(long = "races", default_value = "shb", value_parser = parse_relation)]
    relation: Relation,
}

impl RacesArg {
    /// The analysis options with this relation and every other option at its default.
    fn options(self) -> hindsight_analyzer::AnalyzeOptions {
        hindsight_analyzer::AnalyzeOptions {
            races: self.relation,
            ..hindsight_analyzer::AnalyzeOptions::default()
        }
    }
}

fn parse_relation(s: &str) -> Result<Relation, String> {
    s.parse().map_err(|e: hindsight_analyzer::causality::UnknownRelation| e.to_string())
}

/// Output formats of `info`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum InfoFormat {
    Text,
    Json,
}

/// Output formats of `analyze`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AnalyzeFormat {
    Text,
    Json,
    /// SARIF 2.1.0, for code-scanning services.
    Sarif,
}

fn parse_severity(s: &str) -> Result<hindsight_analyzer::Severity, String> {
    s.parse()
}

/// A duration with a unit (`ns`, `us`, `ms`, `s`), in nanoseconds.
fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err(format!("`{text}` needs a unit: ns, us, ms or s (e.g. 10ms)")),
    };
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration"))?;
    Ok((value * scale).round() as u64)
}

fn parse_kind(s: &str) -> Result<hindsight_analyzer::FindingKind, String> {
    s.parse().map_err(|e: hindsight_analyzer::AnalyzeError| e.to_string())
}

/// Exit code for "the trace could not be read or the arguments are wrong".
const EXIT_UNREADABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_UNREADABLE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Our errors already name their cause; the alternate form would repeat it. They
            // may quote a trace (names, a malformed line), so they are made terminal-safe.
            eprintln!("hindsight: {}", terminal_safe(&e.to_string()));
            ExitCode::from(EXIT_UNREADABLE)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Info { trace, format, color } => {
            let progress = progress::Progress::start(std::slice::from_ref(&trace));
            let info = hindsight_analyzer::info::TraceInfo::read(&trace)?;
            progress.finish();
            match format {
                InfoFormat::Text if use_colour(color) => {
                    write!(out, "{}", info.render_text_coloured())?
                }
                InfoFormat::Text => write!(out, "{}", info.render_text())?,
                InfoFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&info.to_json())?)?
                }
            }
        }
        Command::Analyze {
            traces,
            format,
            color,
            fail_on,
            only,
            poll_threshold,
            wait_threshold,
            races,
        } => {
            let options = hindsight_analyzer::AnalyzeOptions {
                fail_on,
                only,
                poll_threshold_ns: poll_threshold,
                wait_threshold_ns: wait_threshold,
                ..races.options()
            };
            let progress = progress::Progress::start(&traces);
            let report = hindsight_analyzer::analyze_paths(&traces, &options)?;
            progress.finish();
            match format {
                AnalyzeFormat::Text if use_colour(color) => {
                    write!(out, "{}", hindsight_analyzer::report::text::render_coloured(&report))?
                }
                AnalyzeFormat::Text => {
                    write!(out, "{}", hindsight_analyzer::report::text::render(&report))?
                }
                AnalyzeFormat::Json => {
                    write!(out, "{}", hindsight_analyzer::report::json::render(&report))?
                }
                AnalyzeFormat::Sarif => {
                    write!(out, "{}", hindsight_analyzer::report::sarif::render(&report))?
                }
            }
            out.flush()?;
            return Ok(ExitCode::from(options.exit_code(&report)));
        }
        Command::Tui { traces, races } => {
            drop(out);
            hindsight_tui::run(&traces, &races.options())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Export { traces, chrome, dot, races } => {
            drop(out);
            let to_terminal = [&chrome, &dot].into_iter().flatten().any(|path| path == "-")
                && io::stdout().is_terminal();
            let progress = if to_terminal {
                progress::Progress::none()
            } else {
                progress::Progress::start(&traces)
            };
            let options = races.options();
            let replay = hindsight_analyzer::replay::Replay::open(&traces)?;
            let (damage, written, path) = match (chrome, dot) {
                (Some(path), _) => {
                    let again = hindsight_analyzer::replay::Replay::open(&traces)?;
                    let summary = export::to_file(&path, |out| {
                        export::chrome::write(replay, Some(again), &options, out)
                    })?;
                    (summary.damage.clone(), summary.to_string(), path)
                }
                (None, Some(path)) => {
                    let again = hindsight_analyzer::replay::Replay::open(&traces)?;
                    let summary =
                        export::to_file(&path, |out| export::dot::write(replay, Some(again), out))?;
                    (summary.damage.clone(), summary.to_string(), path)
                }
                (None, None) => anyhow::bail!("give --chrome OUT.json or --dot OUT.dot"),
            };
            progress.finish();
            if let Some(damage) = damage {
                eprintln!("{}", terminal_safe(&damage));
            }
            eprintln!("wrote {written} to {}", terminal_safe(&path.display().to_string()));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Convert { input, output } => {
            let events = hindsight_analyzer::rapid::convert_to_trace(&input, &output)?;
            let message = format!(
                "wrote {events} events to {}",
                terminal_safe(&output.display().to_string())
            );
            if output.as_os_str() == "-" {
                // Standard output holds the trace itself.
                eprintln!("{message}");
            } else {
                writeln!(out, "{message}")?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Whether text on stdout is coloured: as `choice` says, and for `auto` when stdout is a
/// terminal and `NO_COLOR` is unset or empty (no-color.org).
fn use_colour(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    }
}

/// Whether `error` comes from a reader of our output going away (`hindsight ... | head`),
/// which is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
