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
    /// Wall-time budget per random detector per bug, in seconds [default: 10]; with --fuzz,
    /// per run [default: 60].
    #[arg(long = "budget-s", value_parser = super::parse_secs)]
    budget: Option<Duration>,
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
    /// Draw each counterexample too, as an HTML page beside its transcript (OUT/<bug>.html).
    #[arg(long, conflicts_with_all = ["fuzz", "foreign", "list"])]
    html: bool,
    /// The run's seed, of every random choice it makes (the random detectors' inputs).
    #[arg(long, default_value_t = super::DEFAULT_SEED)]
    seed: u64,
    /// One JSON object per bug (name, verdict, detector, cases, seconds, symptom, ...)
    /// instead of the text report.
    #[arg(long)]
    json: bool,
    /// Time-to-bug with the real fuzzer: each bug switched on inside `cargo fuzz run
    /// chat_adversary`, from an empty corpus, --runs times with seeds 1 to R; exit 0 only when
    /// every bug was found in two thirds of its runs (rounded up).
    #[arg(long, conflicts_with_all = ["matrix", "no_real", "cases", "seed", "out"])]
    fuzz: bool,
    /// The catalogue's entries that cannot be switches here, each where it lives in someone
    /// else's program: a fault of a foreign fixture (run through `check --sim`, which must
    /// catch it), ruled out by Linux, a design choice, or held by no fixture yet.
    #[arg(long, conflicts_with_all = ["matrix", "fuzz", "list"])]
    foreign: bool,
    /// With --fuzz: runs per bug.
    #[arg(long, default_value_t = 3, requires = "fuzz")]
    runs: u32,
    /// With --fuzz: where each bug's smallest failing input is kept (as DIR/<bug>, which
    /// `cargo test` replays).
    #[arg(long, default_value = "fuzz/regressions/zoo", requires = "fuzz")]
    keep: PathBuf,
    /// With --fuzz: the selectlab checkout whose fuzz/ crate runs.
    #[arg(long, default_value = ".", requires = "fuzz")]
    repo: PathBuf,
}

/// `zoo --foreign`: a line per absent entry; exit 0 when every fixture's fault was caught.
fn foreign(out: &mut dyn Write) -> ExitCode {
    let rows = zoo::foreign::run(|row| {
        let _ = writeln!(out, "{}", zoo::foreign::line(row));
    });
    let held: Vec<bool> = (rows.iter())
        .filter_map(|r| r.caught.as_ref().map(|(caught, _)| *caught))
        .collect();
    let caught = held.iter().filter(|c| **c).count();
    let _ = writeln!(
        out,
        "zoo --foreign: {caught} of {} foreign fixtures' faults caught; the other {} of {} are ruled out by Linux or are design choices",
        held.len(),
        rows.len() - held.len(),
        rows.len()
    );
    super::status(Ok(caught == held.len()))
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
        if self.fuzz {
            return self.fuzz_campaign(out);
        }
        if self.foreign {
            return foreign(out);
        }
        let options = Options {
            bugs: self.bugs,
            budget: Budget {
                cases: self.cases,
                time: self.budget.unwrap_or(Duration::from_secs(10)),
                shrink: true,
            },
            matrix: self.matrix,
            real: !self.no_real,
            out_dir: Some(self.out),
            html: self.html,
            seed: self.seed,
            json: self.json,
            progress: super::progress_bar(0, "zoo"),
        };
        super::status(Ok(zoo::run::run(&options, out)))
    }
}

impl ZooArgs {
    fn fuzz_campaign(self, out: &mut dyn Write) -> ExitCode {
        let options = zoo::fuzz::Options {
            bugs: self.bugs,
            runs: self.runs,
            // Fractions round down; under a second is refused with the range.
            budget_s: self.budget.map_or(60, |d| d.as_secs()),
            keep: self.keep,
            repo: self.repo,
            json: self.json,
            progress: super::progress_bar(0, "zoo --fuzz"),
        };
        match zoo::fuzz::run(&options, out) {
            Ok(all_found) => super::status(Ok(all_found)),
            Err(why) => super::cannot_run("zoo --fuzz", why),
        }
    }
}
