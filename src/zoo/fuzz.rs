//! `selectlab zoo --fuzz`: time-to-bug with the real fuzzer, as Magma measures fuzzers. Each
//! bug is switched on inside `chat_adversary` ([`crate::fuzzing::ZOO_BUG_ENV`]) and libFuzzer
//! runs from an empty corpus, several times with different seeds, each run up to a budget. A
//! bug counts as found when at least two thirds of its runs (rounded up) found it; the
//! smallest failing input is kept, and `cargo test` replays the kept ones
//! (`tests/it/fuzz_corpus.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::{Bug, CATALOGUE};
use crate::fuzz_campaign::{self, RunSpec, Workspace};
use crate::fuzzing::ZOO_BUG_ENV;

/// The target every chat-server bug of the zoo lives in.
pub const TARGET: &str = "chat_adversary";
/// Most seconds libFuzzer may spend minimising a bug's failing input.
pub const MINIMISE_S: u64 = 20;
/// Most runs per bug (each is a process and up to a budget of wall time).
pub const MAX_RUNS: u32 = 20;

/// How a campaign goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bugs (empty: every bug of the zoo).
    pub bugs: Vec<Bug>,
    /// Runs per bug, seeds 1 to `runs`.
    pub runs: u32,
    /// Seconds per run.
    pub budget_s: u64,
    /// Where the smallest failing input of each bug is kept, as `<dir>/<bug>`.
    pub keep: PathBuf,
    /// The checkout whose `fuzz/` crate runs.
    pub repo: PathBuf,
    /// One JSON object per bug instead of the table.
    pub json: bool,
    /// Where to show progress.
    pub progress: ProgressBar,
}

/// One bug's result, as `--json` prints it (`docs/src/commands.md` lists the fields).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuzzRecord {
    /// The bug's catalogue name.
    pub name: String,
    /// Runs made.
    pub runs: u32,
    /// Runs that found it.
    pub found: u32,
    /// Seconds to the first failure in each run that found it, in run order.
    pub seconds_to_bug: Vec<f64>,
    /// The median over all runs (the lower one for an even count), a run that did not find
    /// it counting as never; `None` when that median falls on a run that did not.
    pub median_s: Option<f64>,
    /// Whether at least two thirds of the runs (rounded up) found it.
    pub verdict_found: bool,
    /// Where its smallest failing input was kept, if a run found it.
    pub kept: Option<String>,
}

/// Runs the campaign, prints the results, and says whether every bug was found often enough.
pub fn run(options: &Options, out: &mut dyn Write) -> Result<bool, String> {
    if options.runs == 0 || options.runs > MAX_RUNS {
        return Err(format!("--runs must be 1 to {MAX_RUNS}"));
    }
    if options.budget_s == 0 || options.budget_s > fuzz_campaign::MAX_RUN_S {
        return Err(format!(
            "--budget-s must be 1 to {} with --fuzz",
            fuzz_campaign::MAX_RUN_S
        ));
    }
    let workspace = Workspace::find(&options.repo)?;
    let binary = workspace.build(TARGET)?;
    std::fs::create_dir_all(&options.keep)
        .map_err(|e| format!("{}: {e}", options.keep.display()))?;
    let bugs: Vec<Bug> = if options.bugs.is_empty() {
        CATALOGUE.iter().map(|info| info.bug).collect()
    } else {
        options.bugs.clone()
    };
    options.progress.set_length(bugs.len() as u64);
    if !options.json {
        let _ = writeln!(out, "| bug | runs that found it | median seconds |");
        let _ = writeln!(out, "|---|---|---|");
    }
    let mut all_found = true;
    for bug in bugs {
        let record = campaign_for(&workspace, &binary, bug, options)?;
        all_found &= record.verdict_found;
        let line = if options.json {
            crate::json::line(&record)
        } else {
            table_row(&record, options.budget_s)
        };
        let _ = writeln!(out, "{line}");
        options.progress.inc(1);
    }
    options.progress.finish_and_clear();
    Ok(all_found)
}

/// `options.runs` runs against one bug, and its smallest failing input kept.
fn campaign_for(
    workspace: &Workspace,
    binary: &Path,
    bug: Bug,
    options: &Options,
) -> Result<FuzzRecord, String> {
    let env = vec![(ZOO_BUG_ENV.to_string(), bug.name().to_string())];
    let mut times = Vec::new();
    let mut smallest: Option<(u64, PathBuf)> = None;
    for seed in 1..=u64::from(options.runs) {
        let run_dir = workspace.scratch(&["zoo", bug.name(), &format!("run-{seed}")])?;
        let corpus = run_dir.join("corpus");
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let report = fuzz_campaign::run(&RunSpec {
            binary: binary.to_path_buf(),
            corpora: vec![corpus],
            seconds: options.budget_s,
            seed,
            artifacts: run_dir.clone(),
            env: env.clone(),
        })?;
        let Some(failure) = report.failure else {
            continue;
        };
        times.push(failure.after_s);
        if let Some(input) = failure.input {
            let len = std::fs::metadata(&input).map_or(u64::MAX, |m| m.len());
            if smallest.as_ref().is_none_or(|(l, _)| len < *l) {
                smallest = Some((len, input));
            }
        }
    }
    let kept = match smallest {
        Some((_, input)) => {
            let to = options.keep.join(bug.name());
            fuzz_campaign::minimise(binary, &input, &to, MINIMISE_S, &env)?;
            Some(to.display().to_string())
        }
        None => None,
    };
    let found = times.len() as u32;
    Ok(FuzzRecord {
        name: bug.name().to_string(),
        runs: options.runs,
        found,
        median_s: median_with_misses(&times, options.runs).map(|s| crate::json::round(s, 1)),
        seconds_to_bug: times.iter().map(|&s| crate::json::round(s, 2)).collect(),
        verdict_found: found >= runs_needed(options.runs),
        kept,
    })
}

/// Runs out of `runs` that must find a bug: two thirds, rounded up.
fn runs_needed(runs: u32) -> u32 {
    (2 * runs).div_ceil(3)
}

/// The median of `runs` times, of which `found` are known and the rest are misses (later than
/// any); `None` when the median falls on a miss.
fn median_with_misses(found: &[f64], runs: u32) -> Option<f64> {
    let mut sorted = found.to_vec();
    sorted.sort_by(f64::total_cmp);
    let runs = runs as usize;
    // The lower median for an even count (the runs are few; no averaging with a miss).
    sorted.get((runs - 1) / 2).copied()
}

fn table_row(r: &FuzzRecord, budget_s: u64) -> String {
    let median = r
        .median_s
        .map_or(format!("> {budget_s}"), |s| format!("{s:.1}"));
    let mark = if r.verdict_found { "" } else { " (not found)" };
    format!(
        "| `{}` | {} of {}{mark} | {median} |",
        r.name, r.found, r.runs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_that_falls_on_a_miss_is_none() {
        assert_eq!(median_with_misses(&[3.0, 1.0, 2.0], 3), Some(2.0));
        assert_eq!(median_with_misses(&[5.0, 1.0], 3), Some(5.0));
        assert_eq!(median_with_misses(&[1.0], 3), None);
        assert_eq!(median_with_misses(&[], 3), None);
        assert_eq!(median_with_misses(&[4.0, 2.0], 4), Some(4.0));
    }

    #[test]
    fn a_record_line_parses_back_and_its_row_says_a_miss() {
        let r = FuzzRecord {
            name: "torn_line_frame".into(),
            runs: 3,
            found: 1,
            seconds_to_bug: vec![12.5],
            median_s: None,
            verdict_found: false,
            kept: Some("fuzz/regressions/zoo/torn_line_frame".into()),
        };
        let back: FuzzRecord = serde_json::from_str(&crate::json::line(&r)).expect("parses");
        assert_eq!(back, r);
        assert_eq!(
            table_row(&r, 60),
            "| `torn_line_frame` | 1 of 3 (not found) | > 60 |"
        );
    }

    #[test]
    fn two_thirds_rounded_up() {
        let need: Vec<u32> = (1..=6).map(runs_needed).collect();
        assert_eq!(need, [1, 2, 2, 3, 4, 4]);
    }
}
