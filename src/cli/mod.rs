//! The `selectlab` command line: one module per subcommand, each with its arguments (clap) and
//! its run. `src/main.rs` only calls [`main`]. `docs/src/commands.md` describes each command.
//!
//! Exit statuses, for every command: 0 when it did what was asked and found nothing wrong, 1
//! when it ran and something failed (a check, a bug missed, a scenario, a lost line), 2 when it
//! could not run (bad arguments, nothing listening, an unreadable file).

pub mod bench;
mod chat;
mod check;
mod demo;
mod load;
mod proxy;
mod roles;
mod scenario;
mod sim;
mod view;
mod zoo;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::bugs::Bug;
use crate::error::SockError;
use crate::sim::capture::Capture;

/// The tutorial's default port, on loopback (never the wildcard address unless asked).
const DEFAULT_ADDR: &str = "127.0.0.1:33333";

#[derive(Parser)]
#[command(
    name = "selectlab",
    version,
    about = "Socket and select programming, tested against the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a simulated session as a transcript (deterministic for a given seed).
    Demo(demo::DemoArgs),
    /// The tutorial's TCP "good bye" server and client (real sockets).
    Goodbye {
        #[command(subcommand)]
        role: roles::Role,
    },
    /// The tutorial's UDP echo server and client (real sockets).
    Udp {
        #[command(subcommand)]
        role: roles::Role,
    },
    /// The tutorial's select chat room: server and client (real sockets).
    Chat {
        #[command(subcommand)]
        role: chat::ChatRole,
    },
    /// Measure the simulator on the chat workload (prints numbers; asserts nothing).
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
    /// Switch each bug of the zoo on in turn and run the suite's detectors on it; exit 0
    /// only when every bug was caught (and the detectors pass the bug-free programs).
    Zoo(zoo::ZooArgs),
    /// Load any chat server that speaks the tutorial's protocol (selectlab's, `ncat --chat`, yours)
    /// with real clients; count deliveries, losses, duplicates, reordering and latency.
    Load(load::LoadArgs),
    /// Run named conformance checks against any running chat server that speaks the tutorial's
    /// protocol; exit 0 when every check passed, 1 when any failed or skipped, 2 when nothing
    /// could run.
    Check(check::CheckArgs),
    /// A TCP proxy that applies the lawful adversary to real traffic in both directions:
    /// writes cut down to 1 byte, pauses that coalesce, and (with --resets) resets. Logs each
    /// decision in the transcript format to standard error (or --transcript).
    Proxy(proxy::ProxyArgs),
    /// Run scenario scripts (format v1) on the kernel, the simulator, or both.
    Scenario(scenario::ScenarioArgs),
    /// Run someone else's unmodified program (Python, C, anything dynamically linked) inside
    /// the simulator: its socket, readiness and clock calls go to the simulator through a
    /// preloaded shim; exit 0 when it exited with 0 or its clients heard everything.
    Sim(sim::SimArgs),
    /// Draw a transcript (a `--transcript` file, an insta snapshot, a saved report) as a
    /// self-contained HTML page: one lane per host, an arrow per delivery, the adversary's
    /// choices flagged, filters and search.
    View(view::ViewArgs),
}

/// Parses the command line and runs the subcommand; its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let status = match cli.command {
        Command::Demo(args) => args.run(&mut out),
        Command::Goodbye { role } => roles::run(role, roles::Proto::Tcp, &mut out),
        Command::Udp { role } => roles::run(role, roles::Proto::Udp, &mut out),
        Command::Chat { role } => role.run(&mut out),
        Command::Bench { what } => what.run(&mut out),
        Command::Zoo(args) => args.run(&mut out),
        Command::Load(args) => args.run(&mut out),
        Command::Check(args) => args.run(&mut out),
        Command::Proxy(args) => args.run(&mut out),
        Command::Scenario(args) => args.run(&mut out),
        Command::Sim(args) => args.run(&mut out),
        Command::View(args) => args.run(&mut out),
    };
    let _ = out.flush();
    status
}

/// The exit status of a program that ran (`Ok(true)`: all well; `Ok(false)`: it ran and found
/// something wrong) or failed with a socket error, which is printed as the tutorial's exception.
fn status(result: Result<bool, SockError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("selectlab: {}: {e}", e.class());
            ExitCode::from(1)
        }
    }
}

/// Prints `why` as the command's error and returns status 2 (it could not run).
fn cannot_run(command: &str, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("selectlab: {command}: {why}");
    ExitCode::from(2)
}

/// Writes what a run showed as pictures: its transcript as an HTML page (`--html`) and what
/// its calls put on the wire as a pcap file (`--pcap`). An error names the file.
fn write_pictures(
    html: Option<&Path>,
    pcap: Option<&Path>,
    title: &str,
    transcript: &str,
    capture: &Capture,
) -> Result<(), String> {
    if let Some(path) = html {
        let page = crate::view::page(&crate::view::parse::parse(transcript), title);
        std::fs::write(path, page).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = pcap {
        crate::pcap::write_file(capture, path)?;
        if capture.dropped() > 0 {
            eprintln!(
                "selectlab: {}: the last {} segments are missing (a capture keeps at most {} segments and {} MiB)",
                path.display(),
                capture.dropped(),
                crate::sim::capture::CAPTURE_MAX_SEGMENTS,
                crate::sim::capture::CAPTURE_MAX_PAYLOAD_BYTES >> 20
            );
        }
    }
    Ok(())
}

/// The environment a guest program starts with, from `--clean-env`.
/// Every command's `--seed` default: the seed of every random choice a run makes.
const DEFAULT_SEED: u64 = 1;

fn environment(clean: bool) -> crate::guest::spawn::Environment {
    if clean {
        crate::guest::spawn::Environment::Clean
    } else {
        crate::guest::spawn::Environment::Inherited
    }
}

/// A duration in seconds (fractions allowed), as flags ending in `-s` take it.
fn parse_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds (0 or more)"))
}

/// A zoo bug by its catalogue name.
fn parse_bug(name: &str) -> Result<Bug, String> {
    Bug::from_name(name).ok_or_else(
        || match crate::zoo::ABSENT.iter().find(|a| a.name == name) {
            Some(absent) => format!(
                "{name:?} is in the catalogue but not in the zoo ({})",
                absent.reason
            ),
            None => format!("no bug named {name:?} (selectlab zoo --list names them)"),
        },
    )
}

/// A progress line on standard error for a run of `len` steps, drawn only when standard error
/// is a terminal (hidden otherwise, so logs and CI output stay clean).
fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    indicatif::ProgressBar::new(len)
        .with_style(style)
        .with_prefix(what)
}
