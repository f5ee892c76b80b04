//! `selectlab bench guest -- CMD`: how fast a foreign program runs inside the simulator, beside
//! the same program on real loopback.
//!
//! Inside: the chat workload of `selectlab sim --clients N --lines K`, timed on the wall clock;
//! the figure is the program's calls answered per second (each one a round trip through the
//! shim). Outside: the same program started plainly, loaded by `selectlab load` with the same
//! clients and lines; the figure is deliveries per second. The program must print its port on
//! its first line of output for the second half (the test fixtures do); otherwise that half
//! says it was skipped. Beside them, the case rate: sessions a second of `check --sim --only
//! adversary` (each case starts the program afresh), for a chat server the check can judge.
//! Measurements only: nothing is asserted.

use std::ffi::OsString;
use std::fmt;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::check::Verdict;
use crate::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};
use crate::guest::spawn::Launch;
use crate::guest::{self, GuestConfig};
use crate::load::{self, LoadConfig};

/// Bytes per line of the real-loopback half (as `selectlab load` defaults).
const REAL_LINE_BYTES: usize = 64;

/// How long the real-loopback half may take.
const REAL_DEADLINE: Duration = Duration::from_secs(60);

/// Random cases of `check --sim`'s adversary check the case rate is timed over.
pub const RATE_CASES: u32 = 20;

/// One measurement of a program, inside the simulator and on real loopback.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GuestBench {
    /// Clients.
    pub clients: usize,
    /// Lines each client says.
    pub lines: usize,
    /// Calls the program made inside the simulator.
    pub sim_calls: u64,
    /// Wall-clock seconds of the simulated run (the program's start included).
    pub sim_wall_s: f64,
    /// Calls answered per wall-clock second.
    pub sim_calls_per_s: f64,
    /// Lines delivered inside the simulator, per wall-clock second.
    pub sim_deliveries_per_s: f64,
    /// Deliveries per second on real loopback (None: the half was skipped).
    pub real_deliveries_per_s: Option<f64>,
    /// Why the real half was skipped, if it was.
    pub real_skipped: Option<String>,
    /// Sessions a second of `check --sim --only adversary --cases` [`RATE_CASES`], the
    /// calibration run counted as one (None: the check could not pass the program).
    pub check_sessions_per_s: Option<f64>,
    /// The same with `--fresh-starts`: each session a fresh start of the program.
    pub fresh_sessions_per_s: Option<f64>,
    /// How the first rate's sessions started (forks of the parked program, or why not).
    pub check_starts: Option<String>,
    /// Why the case rate was not measured, if it was not.
    pub check_skipped: Option<String>,
}

/// Measures `command` both ways.
pub fn run(command: &[OsString], clients: usize, lines: usize) -> Result<GuestBench, String> {
    let config = GuestConfig {
        capture: false,
        quiet: true,
        command: command.to_vec(),
        seed: 0,
        adversary: false,
        clients,
        lines,
        run_for: Duration::from_secs(3600),
        peers: Vec::new(),
        env: Default::default(),
    };
    let started = Instant::now();
    let report = guest::run(&config).map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let delivered: usize = report.delivery.map_or(0, |d| d.heard.iter().sum());
    let real = real_loopback(command, clients, lines);
    let rate = case_rate(command, false);
    let fresh = rate
        .as_ref()
        .ok()
        .and_then(|_| case_rate(command, true).ok());
    Ok(GuestBench {
        clients,
        lines,
        sim_calls: report.calls,
        sim_wall_s: crate::json::round(wall, 3),
        sim_calls_per_s: crate::json::round(report.calls as f64 / wall, 0),
        sim_deliveries_per_s: crate::json::round(delivered as f64 / wall, 0),
        real_deliveries_per_s: real.as_ref().ok().copied(),
        real_skipped: real.err(),
        check_sessions_per_s: rate.as_ref().ok().map(|(rate, _)| *rate),
        fresh_sessions_per_s: fresh.map(|(rate, _)| rate),
        check_starts: rate.as_ref().ok().map(|(_, starts)| starts.clone()),
        check_skipped: rate.err(),
    })
}

/// Times `check --sim --only adversary --cases` [`RATE_CASES`] on the program (no shrink),
/// forking it parked at its first listen, or with `fresh`, starting it for each session: its
/// sessions per second, and how they started.
fn case_rate(command: &[OsString], fresh: bool) -> Result<(f64, String), String> {
    let config = SimCheckConfig {
        command: command.to_vec(),
        seed: crate::cli::DEFAULT_SEED,
        cases: RATE_CASES,
        only: vec!["adversary".to_string()],
        shrink: false,
        dialect: DialectChoice::Auto,
        launch: Launch::default(),
        pcap: None,
        fresh_starts: fresh,
    };
    let started = Instant::now();
    let checked = sim_check::run(&config, |_| {})?;
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    match checked.findings.iter().find(|f| f.name == "adversary") {
        Some(f) if f.verdict == Verdict::Pass => Ok((
            crate::json::round(f64::from(RATE_CASES + 1) / wall, 1),
            checked.starts,
        )),
        Some(f) => Err(format!("its adversary check did not pass: {f}")),
        None => Err("it failed the calm calibration run".to_string()),
    }
}

/// Starts the program plainly, reads its port from its first line, and loads it.
fn real_loopback(command: &[OsString], clients: usize, lines: usize) -> Result<f64, String> {
    let (program, args) = command.split_first().ok_or("no program")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let mut first = String::new();
    let read = child
        .stdout
        .take()
        .map(|out| std::io::BufReader::new(out).read_line(&mut first));
    let result = match (read, first.trim().parse::<u16>()) {
        (Some(Ok(_)), Ok(port)) => {
            let config = LoadConfig {
                addr: ([127, 0, 0, 1], port).into(),
                clients,
                lines,
                bytes: REAL_LINE_BYTES,
                deadline: REAL_DEADLINE,
                progress: indicatif::ProgressBar::hidden(),
            };
            load::run(&config)
                .map(|r| {
                    crate::json::round(r.delivered as f64 / r.elapsed.as_secs_f64().max(1e-9), 0)
                })
                .map_err(|e| e.to_string())
        }
        _ => Err("the program did not print its port on its first line".to_string()),
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

impl fmt::Display for GuestBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} clients x {} lines", self.clients, self.lines)?;
        writeln!(
            f,
            "inside the simulator: {} calls in {:.3} s: {:.0} calls/s, {:.0} deliveries/s",
            self.sim_calls, self.sim_wall_s, self.sim_calls_per_s, self.sim_deliveries_per_s
        )?;
        match (&self.real_deliveries_per_s, &self.real_skipped) {
            (Some(rate), _) => writeln!(f, "on real loopback: {rate:.0} deliveries/s")?,
            (None, Some(why)) => writeln!(f, "on real loopback: skipped ({why})")?,
            (None, None) => {}
        }
        match (&self.check_sessions_per_s, &self.check_skipped) {
            (Some(rate), _) => {
                write!(
                    f,
                    "check --sim --only adversary --cases {RATE_CASES}: {rate:.1} sessions/s"
                )?;
                if let Some(fresh) = self.fresh_sessions_per_s {
                    let speedup = rate / fresh.max(1e-9);
                    write!(f, ", {fresh:.1} with --fresh-starts ({speedup:.1}x)")?;
                }
                match &self.check_starts {
                    Some(starts) => write!(f, "\n  {starts}"),
                    None => Ok(()),
                }
            }
            (None, Some(why)) => write!(f, "check --sim case rate: skipped ({why})"),
            (None, None) => Ok(()),
        }
    }
}
