//! Fuzzing campaigns with cargo-fuzz, for `selectlab bench fuzz` and `selectlab zoo --fuzz`:
//! build a target of `fuzz/` with its flags ([`crate::fuzzing::traces_compares`]), run its
//! binary for a bounded time, and read libFuzzer's output (executions per second, edges covered
//! over time, the first failure and its input). Measurement only: the callers judge.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A run that has not stopped this long after its time was up is killed (libFuzzer stops at
/// `-max_total_time` itself; the grace covers loading a corpus and writing a crash).
pub const RUN_GRACE: Duration = Duration::from_secs(60);
/// A single input running this long is a failure (libFuzzer's `-timeout`).
pub const INPUT_TIMEOUT_S: u64 = 10;
/// Lines of a failed run's output kept to show why.
const LOG_TAIL_LINES: usize = 40;
/// Lines read from a fuzzer but not yet handled, at most.
const LINES_IN_FLIGHT: usize = 1024;
/// The longest run the campaigns accept, in seconds (a day); `--seconds` and `--budget-s` are
/// held to it.
pub const MAX_RUN_S: u64 = 86_400;

/// The `fuzz/` crate of a selectlab checkout.
#[derive(Debug, Clone)]
pub struct Workspace {
    fuzz_dir: PathBuf,
}

impl Workspace {
    /// The fuzz crate under `repo`, or why there is none.
    pub fn find(repo: &Path) -> Result<Workspace, String> {
        let fuzz_dir = repo.join("fuzz");
        if !fuzz_dir.join("Cargo.toml").is_file() {
            return Err(format!(
                "no fuzz/Cargo.toml under {}: run this in a selectlab checkout (or pass --repo)",
                repo.display()
            ));
        }
        Ok(Workspace { fuzz_dir })
    }

    /// The committed seed inputs of `target`.
    pub fn seed_corpus(&self, target: &str) -> PathBuf {
        self.fuzz_dir.join("corpus").join(target)
    }

    /// A scratch directory under `fuzz/target/` (made empty).
    pub fn scratch(&self, parts: &[&str]) -> Result<PathBuf, String> {
        let dir = parts
            .iter()
            .fold(self.fuzz_dir.join("target").join("campaigns"), |d, p| {
                d.join(p)
            });
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Builds `target` as CI does (stable, optimised with debug assertions, no sanitizer, its
    /// own compare tracing) and returns
    /// its binary. Targets with and without compare tracing build in separate directories, so
    /// switching between them does not rebuild everything.
    pub fn build(&self, target: &str) -> Result<PathBuf, String> {
        let traced = crate::fuzzing::traces_compares(target);
        // The directories `.clusterfuzzlite/build.sh` uses for the same flags.
        let target_dir = self.fuzz_dir.join("target").join(if traced {
            "traced-none"
        } else {
            "untraced-none"
        });
        let mut cargo = Command::new("cargo");
        cargo.args(["fuzz", "build", "-O", "--debug-assertions", "-s", "none"]);
        if !traced {
            cargo.arg("--no-trace-compares");
        }
        cargo
            .arg("--target-dir")
            .arg(&target_dir)
            .arg(target)
            .current_dir(self.fuzz_dir.parent().unwrap_or(Path::new(".")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cargo
            .output()
            .map_err(|e| format!("cargo fuzz build {target}: {e}"))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            if why.contains("no such command") {
                return Err("cargo-fuzz is not installed: cargo install cargo-fuzz".into());
            }
            return Err(format!("cargo fuzz build {target} failed:\n{why}"));
        }
        find_binary(&target_dir, target)
    }
}

/// `<target_dir>/<triple>/release/<target>`, whatever the triple.
fn find_binary(target_dir: &Path, target: &str) -> Result<PathBuf, String> {
    let entries =
        std::fs::read_dir(target_dir).map_err(|e| format!("{}: {e}", target_dir.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("release").join(target))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no {target} binary under {}", target_dir.display()))
}

/// One bounded run of a fuzz binary.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The binary ([`Workspace::build`]).
    pub binary: PathBuf,
    /// Corpus directories: new inputs go to the first, the others are read only.
    pub corpora: Vec<PathBuf>,
    /// libFuzzer's `-max_total_time`.
    pub seconds: u64,
    /// libFuzzer's `-seed`.
    pub seed: u64,
    /// Where a failing input is written.
    pub artifacts: PathBuf,
    /// Extra environment (the zoo's bug switch).
    pub env: Vec<(String, String)>,
}

/// What a run showed.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// libFuzzer's average executions per second.
    pub exec_per_s: u64,
    /// Executions in all.
    pub executions: u64,
    /// Edges covered at the end (libFuzzer's `cov:`).
    pub edges: u64,
    /// Inputs in the corpus at the end (libFuzzer's `corp:`).
    pub corpus_inputs: u64,
    /// Edges covered against seconds since the start, one point per status line.
    pub coverage: Vec<(f64, u64)>,
    /// The first failure, if the run found one.
    pub failure: Option<Failure>,
}

/// A failing input found by a run.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Seconds from the start of the run until libFuzzer reported it.
    pub after_s: f64,
    /// The input, as libFuzzer wrote it.
    pub input: Option<PathBuf>,
    /// The end of the run's output (the panic message and libFuzzer's report).
    pub log_tail: String,
}

/// Runs `spec` to its end (its time, or its first failure) and reads what libFuzzer said. A
/// run that ends badly without reporting a failing input (a missing directory, a bad flag, a
/// kill) is an error with the end of its output, never a clean run.
pub fn run(spec: &RunSpec) -> Result<RunReport, String> {
    let mut fuzzer = Command::new(&spec.binary);
    fuzzer
        .args(&spec.corpora)
        .arg(format!("-max_total_time={}", spec.seconds))
        .arg(format!("-seed={}", spec.seed))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", spec.artifacts.display()))
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    let mut reading = Reading::default();
    let status = read_lines(fuzzer, limit(spec.seconds), &mut |at, line| {
        reading.line(at, line);
    })?;
    let report = reading.finish();
    if !status.success() && report.run.failure.is_none() {
        return Err(format!(
            "{} ended with {status} and no failing input:\n{}",
            spec.binary.display(),
            report.log_tail
        ));
    }
    Ok(report.run)
}

/// How long a run of `seconds` may take before it is killed (overflow-proof).
fn limit(seconds: u64) -> Duration {
    Duration::from_secs(seconds.min(MAX_RUN_S)) + RUN_GRACE
}

/// Minimises the failing `input` (libFuzzer's `-minimize_crash`, which retries smaller inputs
/// that still fail, whatever the failure) into `out`. libFuzzer bounds each step by `seconds`,
/// not the whole; a minimisation that overruns is killed, and `out` is then the input itself,
/// as it is when nothing smaller fails. Never an error for the campaign: the input is kept.
pub fn minimise(
    binary: &Path,
    input: &Path,
    out: &Path,
    seconds: u64,
    env: &[(String, String)],
) -> Result<(), String> {
    // A file kept by an earlier campaign must not pass for this one's result.
    let _ = std::fs::remove_file(out);
    let mut tmin = Command::new(binary);
    tmin.arg("-minimize_crash=1")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-exact_artifact_path={}", out.display()))
        .arg(input)
        .envs(env.iter().map(|(k, v)| (k, v)));
    let finished = read_lines(tmin, limit(seconds), &mut |_, _| {});
    if finished.is_err() || !out.is_file() {
        std::fs::copy(input, out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

/// Runs `command`, handing each line of its standard error (lossily decoded) to `each` with
/// the seconds since the start at which it arrived; kills it past `limit`.
fn read_lines(
    mut command: Command,
    limit: Duration,
    each: &mut dyn FnMut(f64, &str),
) -> Result<ExitStatus, String> {
    let started = Instant::now();
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let stderr = child.stderr.take().expect("stderr was piped");
    // Bounded: the reader waits when the consumer is behind.
    let (tx, rx) = mpsc::sync_channel(LINES_IN_FLIGHT);
    let reader = std::thread::spawn(move || {
        let mut stderr = BufReader::new(stderr);
        let mut bytes = Vec::new();
        // A line may hold any bytes (a panic message quotes the input).
        while matches!(stderr.read_until(b'\n', &mut bytes), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&bytes).trim_end().to_string();
            if tx.send((started.elapsed().as_secs_f64(), line)).is_err() {
                break;
            }
            bytes.clear();
        }
    });
    let deadline = started.checked_add(limit);
    loop {
        let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(left) {
            Ok((at, line)) => each(at, &line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not stop within {} s; killed",
                    limit.as_secs()
                ));
            }
        }
    }
    let _ = reader.join();
    child.wait().map_err(|e| format!("{program}: {e}"))
}

/// What libFuzzer's output says, read a line at a time (memory stays bounded however long the
/// run: coverage points only where coverage changed, and the last lines for a failure).
#[derive(Default)]
struct Reading {
    run: RunReport,
    last_at: f64,
    tail: std::collections::VecDeque<String>,
}

/// A run as read, and the end of its output.
struct Read {
    run: RunReport,
    log_tail: String,
}

impl Reading {
    fn line(&mut self, at: f64, line: &str) {
        let r = &mut self.run;
        self.last_at = at;
        // A point where coverage changed (libFuzzer prints a line per new input, most of
        // them at the same coverage): a ten-minute run stays a few hundred points.
        if let Some(cov) = field(line, "cov:") {
            if cov != r.edges {
                r.coverage.push((at, cov));
            }
            r.edges = cov;
        }
        if let Some(corp) = field(line, "corp:") {
            r.corpus_inputs = corp;
        }
        if let Some(v) = stat(line, "stat::average_exec_per_sec:") {
            r.exec_per_s = v;
        }
        if let Some(v) = stat(line, "stat::number_of_executed_units:") {
            r.executions = v;
        }
        if r.failure.is_none() && is_failure(line) {
            r.failure = Some(Failure {
                after_s: at,
                input: None,
                log_tail: String::new(),
            });
        }
        if let (Some(f), Some(path)) = (&mut r.failure, line.split("Test unit written to ").nth(1))
        {
            f.input = Some(PathBuf::from(path.trim()));
        }
        if self.tail.len() == LOG_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
    }

    fn finish(mut self) -> Read {
        let r = &mut self.run;
        r.seconds = self.last_at;
        if r.coverage.last().is_some_and(|&(at, _)| at < self.last_at) {
            r.coverage.push((self.last_at, r.edges));
        }
        let log_tail = Vec::from(self.tail).join("\n");
        if let Some(f) = &mut r.failure {
            f.log_tail.clone_from(&log_tail);
        }
        Read {
            run: self.run,
            log_tail,
        }
    }
}

/// Whether a line of libFuzzer's output reports a failing input: a panic (the targets'
/// assertions), a crash, a timeout or running out of memory.
fn is_failure(line: &str) -> bool {
    line.contains("panicked at") || line.starts_with("==") && line.contains("ERROR: libFuzzer")
}

/// The number after `name` in a status line (`cov: 2592 ft: ...`).
fn field(line: &str, name: &str) -> Option<u64> {
    if !line.starts_with('#') {
        return None;
    }
    let after = line.split(name).nth(1)?;
    let digits = after
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    digits.parse().ok()
}

/// The number of a final statistics line (`stat::average_exec_per_sec:     4912`).
fn stat(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?.trim().parse().ok()
}

/// What `selectlab bench fuzz` runs.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// Target names ([`crate::fuzzing::TARGETS`]).
    pub targets: Vec<String>,
    /// Seconds per target.
    pub seconds: u64,
    /// libFuzzer's seed.
    pub seed: u64,
    /// Whether the committed seed inputs join the (otherwise empty) corpus.
    pub seeded: bool,
}

/// One target's measurement, as `bench fuzz --json` prints it (`docs/src/commands.md` lists
/// the fields).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchRecord {
    /// The target.
    pub target: String,
    /// Whether it was built with compare tracing ([`crate::fuzzing::traces_compares`]).
    pub trace_compares: bool,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// libFuzzer's average executions per second.
    pub exec_per_s: u64,
    /// Executions in all.
    pub executions: u64,
    /// Edges covered at the end.
    pub edges: u64,
    /// Inputs in the corpus at the end.
    pub corpus_inputs: u64,
    /// Whether the run found a failing input (written to `fuzz/artifacts/<target>/`).
    pub failed: bool,
}

impl BenchRecord {
    /// The table's head (and its rule), for [`BenchRecord::table_row`].
    pub const TABLE_HEAD: &str =
        "| target | exec/s | edges | corpus | seconds | result |\n|---|---|---|---|---|---|";

    /// The record as a row of the table.
    pub fn table_row(&self) -> String {
        format!(
            "| `{}` | {} | {} | {} | {:.0} | {} |",
            self.target,
            self.exec_per_s,
            self.edges,
            self.corpus_inputs,
            self.seconds,
            if self.failed { "FAILED" } else { "clean" }
        )
    }
}

/// Builds and runs one target as `plan` says, from a scratch corpus.
pub fn bench(
    workspace: &Workspace,
    target: &str,
    plan: &BenchPlan,
) -> Result<(BenchRecord, RunReport), String> {
    let binary = workspace.build(target)?;
    let scratch = workspace.scratch(&["bench", target])?;
    let artifacts = workspace.fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    let mut corpora = vec![scratch];
    if plan.seeded {
        corpora.push(workspace.seed_corpus(target));
    }
    let report = run(&RunSpec {
        binary,
        corpora,
        seconds: plan.seconds,
        seed: plan.seed,
        artifacts,
        env: Vec::new(),
    })?;
    let record = BenchRecord {
        target: target.to_string(),
        trace_compares: crate::fuzzing::traces_compares(target),
        seconds: crate::json::round(report.seconds, 1),
        exec_per_s: report.exec_per_s,
        executions: report.executions,
        edges: report.edges,
        corpus_inputs: report.corpus_inputs,
        failed: report.failure.is_some(),
    };
    Ok((record, report))
}

/// Draws edges covered against time, one line per named run, as an SVG at `path`.
pub fn plot_coverage(runs: &[(&str, &RunReport)], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let points = runs.iter().flat_map(|(_, r)| r.coverage.iter());
    let max_s = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let max_edges = points.map(|p| p.1).max().unwrap_or(1) as f64;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("edges covered over a fuzzing run", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_s * 1.02, 0.0..max_edges * 1.1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("edges (libFuzzer cov)")
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, (name, r)) in runs.iter().enumerate() {
        let color = Palette99::pick(i).stroke_width(2);
        let line = r.coverage.iter().map(|&(s, cov)| (s, cov as f64));
        chart
            .draw_series(LineSeries::new(line, color))
            .map_err(|e| fail(&e))?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report of a run whose output is `text`, a line a second, lasting `seconds`.
    fn report(text: &str, seconds: f64) -> RunReport {
        let mut reading = Reading::default();
        for (i, line) in text.lines().enumerate() {
            reading.line(i as f64, line);
        }
        reading.last_at = seconds;
        reading.finish().run
    }

    #[test]
    fn reads_libfuzzer_status_and_final_stats() {
        let out = "INFO: Seed: 5\n\
             #2\tINITED cov: 100 ft: 120 corp: 1/1b exec/s: 0 rss: 40Mb\n\
             #512\tpulse  cov: 180 ft: 300 corp: 20/2Kb lim: 4 exec/s: 256 rss: 41Mb\n\
             #600\tNEW    cov: 180 ft: 301 corp: 21/2Kb lim: 4 exec/s: 256 rss: 41Mb\n\
             #9000\tDONE   cov: 2592 ft: 12272 corp: 964/271Kb lim: 472 exec/s: 4912 rss: 47Mb\n\
             stat::number_of_executed_units: 152282\n\
             stat::average_exec_per_sec:     4912\n";
        let r = report(out, 30.0);
        assert_eq!((r.edges, r.corpus_inputs, r.exec_per_s), (2592, 964, 4912));
        assert_eq!(r.executions, 152_282);
        // Points where coverage changed, and the end of the run.
        assert_eq!(
            r.coverage,
            vec![(1.0, 100), (2.0, 180), (4.0, 2592), (30.0, 2592)]
        );
        assert!(r.failure.is_none());
    }

    #[test]
    fn finds_the_first_failure_and_its_input() {
        let out = "#40\tNEW    cov: 50 ft: 60 corp: 3/9b exec/s: 0 rss: 40Mb\n\
             thread '<unnamed>' panicked at src/fuzzing.rs:9:9:\n\
             chat property failed: c2 heard nothing\n\
             ==77== ERROR: libFuzzer: deadly signal\n\
             artifact_prefix='/tmp/a/'; Test unit written to /tmp/a/crash-abc\n";
        let r = report(out, 4.0);
        let f = r.failure.expect("a failure");
        assert_eq!(f.after_s, 1.0);
        assert_eq!(f.input, Some(PathBuf::from("/tmp/a/crash-abc")));
        assert!(f.log_tail.contains("c2 heard nothing"));
    }

    #[test]
    fn a_fuzzer_that_fails_without_a_failing_input_is_an_error_not_a_clean_run() {
        // `false` stands for a fuzzer that exits non-zero having printed nothing of a failure.
        let spec = RunSpec {
            binary: PathBuf::from("false"),
            corpora: Vec::new(),
            seconds: 1,
            seed: 1,
            artifacts: PathBuf::from("/nonexistent"),
            env: Vec::new(),
        };
        let why = run(&spec).unwrap_err();
        assert!(why.contains("no failing input"), "{why}");
    }

    #[test]
    fn a_run_past_its_limit_is_killed() {
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        // Not killed, `sleep` would end well after the limit, and the run with it.
        let outcome = read_lines(sleeper, Duration::from_secs(1), &mut |_, _| {});
        assert!(outcome.unwrap_err().contains("killed"));
    }

    #[test]
    fn any_bytes_a_fuzzer_prints_are_read() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "printf 'a\\377b\\nc\\n' >&2"]);
        let mut seen = Vec::new();
        // A generous limit: the run ends by itself as soon as it has printed.
        let outcome = read_lines(sh, Duration::from_secs(60), &mut |_, l| {
            seen.push(l.to_string())
        });
        assert!(outcome.is_ok_and(|status| status.success()));
        assert_eq!(seen, ["a\u{fffd}b", "c"]);
    }

    #[test]
    fn a_bench_record_line_parses_back() {
        let r = BenchRecord {
            target: "chat_codec".into(),
            trace_compares: true,
            seconds: 60.1,
            exec_per_s: 120_000,
            executions: 7_200_000,
            edges: 140,
            corpus_inputs: 170,
            failed: false,
        };
        let back: BenchRecord = serde_json::from_str(&crate::json::line(&r)).expect("parses");
        assert_eq!(back, r);
        assert_eq!(
            r.table_row(),
            "| `chat_codec` | 120000 | 140 | 170 | 60 | clean |"
        );
    }

    #[test]
    fn clusterfuzzlite_builds_the_same_targets_untraced() {
        let build_sh = include_str!("../.clusterfuzzlite/build.sh");
        let listed = build_sh
            .lines()
            .find_map(|l| l.strip_prefix("untraced_targets="))
            .expect("build.sh names its untraced targets");
        let untraced: Vec<&str> = (crate::fuzzing::TARGETS.into_iter())
            .filter(|t| !crate::fuzzing::traces_compares(t))
            .collect();
        assert_eq!(
            listed.trim_matches('"').split(' ').collect::<Vec<_>>(),
            untraced
        );
    }

    #[test]
    fn a_checkout_without_fuzz_is_refused_with_the_reason() {
        let why = Workspace::find(Path::new("/nonexistent")).unwrap_err();
        assert!(why.contains("no fuzz/Cargo.toml"), "{why}");
    }
}
