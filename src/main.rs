//! `hindsight`: the command line. Argument parsing and glue only; the libraries do the work.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, Write};
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
    },
    /// Convert a RAPID STD text trace (THREAD|OP(ARG)|LOC) into a hindsight trace.
    Convert {
        /// The STD trace to read.
        input: PathBuf,
        /// The hindsight trace to write.
        output: PathBuf,
    },
}

/// Output formats of `info`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum InfoFormat {
    Text,
    Json,
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
            eprintln!("hindsight: {e:#}");
            ExitCode::from(EXIT_UNREADABLE)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Info { trace, format } => {
            let info = hindsight_analyzer::info::TraceInfo::read(&trace)?;
            match format {
                InfoFormat::Text => write!(out, "{}", info.render_text())?,
                InfoFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&info.to_json())?)?
                }
            }
        }
        Command::Convert { input, output } => {
            let events = hindsight_analyzer::rapid::convert_to_trace(&input, &output)?;
            writeln!(out, "wrote {events} events to {}", output.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
