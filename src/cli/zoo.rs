//! `selectlab zoo`: each bug switched on in turn, and the detectors that must catch it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::bugs::Bug;
use crate::zoo::{self, detect::Budget, run::Options};

#[derive(clap::Args)]
pub(super) struct ZooArgs {
    /// Only these bugs (repeatable); default: all of them.
    #[arg(long = "bug", value_parser = super::parse_bug)]
    bugs: Vec<Bug>,
    /// Wall-time budget per random detector per bug, in seconds.
    #[arg(long = "budget-s", default_value = "10", value_parser = super::parse_secs)]
    budget: Duration,
    /// Random cases per random detector per bug (whichever budget runs out first).
    #[arg(long, default_value_t = 2000)]
    cases: u32,
    /// Print the bug names, one per line, and nothing else.
    #[arg(long)]
    list: bool,
    /// Run every detector class on every bug and print the table of who catches what.
    #[arg(long)]
    matrix: bool,
    /// Skip the real-socket load (simulator only).
    #[arg(long)]
    no_real: bool,
    /// Where to write each counterexample's transcript.
    #[arg(long, default_value = "target/zoo")]
    out: PathBuf,
    /// Seed of the random detectors' inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON object per bug (name, verdict, detector, cases, seconds, symptom, ...)
    /// instead of the text report.
    #[arg(long)]
    json: bool,
}

impl ZooArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        if self.list {
            for info in zoo::CATALOGUE {
                let _ = writeln!(out, "{}", info.name);
            }
            for absent in zoo::ABSENT {
                let _ = writeln!(out, "{} (not in the zoo: {})", absent.name, absent.reason);
            }
            return ExitCode::SUCCESS;
        }
        let options = Options {
            bugs: self.bugs,
            budget: Budget {
                cases: self.cases,
                time: self.budget,
                shrink: true,
            },
            matrix: self.matrix,
            real: !self.no_real,
            out_dir: Some(self.out),
            seed: self.seed,
            json: self.json,
            progress: super::progress_bar(0, "zoo"),
        };
        super::status(Ok(zoo::run::run(&options, out)))
    }
}
