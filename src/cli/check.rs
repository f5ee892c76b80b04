//! `selectlab check ADDR`: named conformance checks against any running chat server; `check
//! --sim -- CMD`: the simulator's checks on a program run inside it.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};
use crate::check::{self, Finding, Verdict};
use crate::guest::spawn::{Console, Launch};
use crate::session::dialect::Dialect;

#[derive(clap::Args)]
pub(super) struct CheckArgs {
    /// The server, host:port (`localhost:9034`, `127.0.0.1:9034`, `[::1]:9034`; required
    /// unless --list or --sim).
    #[arg(required_unless_present_any = ["list", "sim"], conflicts_with = "sim")]
    addr: Option<String>,
    /// Run the program after `--` inside the simulator and judge it with the suite's own
    /// detectors: schedules with clients between any two of its syscalls, the seeded lawful
    /// adversary, the chat properties, and the idle-server property.
    #[arg(long)]
    sim: bool,
    /// With --sim: the run's seed, of every random choice it makes (the adversary's schedules,
    /// the program's random bytes).
    #[arg(long, default_value_t = super::DEFAULT_SEED, requires = "sim")]
    seed: u64,
    /// With --sim: random schedules in the `adversary` check.
    #[arg(long, default_value_t = 8, requires = "sim")]
    cases: u32,
    /// With --sim: how to read what the clients hear. `auto` learns the server's dialect
    /// from a calm calibration run first; `tutorial` (or `seed`) judges strictly in the
    /// tutorial's own protocol; anything else is a dialect file (`relay: <{who}> {text}`, …).
    #[arg(long, default_value = "auto", requires = "sim")]
    dialect: String,
    /// The server program and its arguments: with --sim, run inside the simulator; with ADDR,
    /// started afresh for each check (it must listen at ADDR), so that a death is pinned to the
    /// check that caused it.
    #[arg(last = true)]
    command: Vec<OsString>,
    /// Clients in the `delivery` check.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Run only this check (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// One JSON object per check.
    #[arg(long)]
    json: bool,
    /// With --sim: start the program with PATH and HOME alone, not selectlab's own
    /// environment.
    #[arg(long, requires = "sim")]
    clean_env: bool,
    /// With --sim: the program reads this file on its standard input, then end of file (by
    /// default, a pipe where nobody types).
    #[arg(long, value_name = "FILE", requires = "sim")]
    stdin: Option<String>,
    /// A WARN (a portability hazard: what only the man pages allow) fails the run too.
    #[arg(long)]
    strict: bool,
    /// Print each check's name and what it does, and exit.
    #[arg(long)]
    list: bool,
    /// With --sim: draw the report and its shrunk counterexample's transcript as an HTML page
    /// (as `selectlab view` does) in this file.
    #[arg(long, value_name = "FILE", requires = "sim")]
    html: Option<PathBuf>,
    /// With --sim: write the shrunk counterexample's traffic (TCP over IP, virtual time) to
    /// this pcap file; with `--only` and a failure's replay line, that failure's.
    #[arg(long, value_name = "FILE", requires = "sim")]
    pcap: Option<PathBuf>,
    /// Without --sim: the longest any one check may run, in seconds; a check still waiting
    /// then gives up (a write to a server that reads at a crawl, say).
    #[arg(long, default_value_t = check::CHECK_DEADLINE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600), conflicts_with = "sim")]
    deadline_s: u64,
    /// With --sim: start the program afresh for every session, rather than forking it parked
    /// at its first listen (the transcripts are the same; this is slower).
    #[arg(long, requires = "sim")]
    fresh_starts: bool,
    /// A proxy (`selectlab proxy`) stands between: judge the addresses in notices by
    /// those the server gives each client's lines.
    #[arg(long)]
    via_proxy: bool,
}

impl CheckArgs {
    /// The checks' findings as they come, then a summary line.
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        if self.list {
            let checks: Vec<(&str, &str)> = if self.sim {
                sim_check::SIM_CHECKS
                    .iter()
                    .map(|c| (c.name, c.about))
                    .collect()
            } else {
                check::CHECKS.iter().map(|c| (c.name, c.about)).collect()
            };
            for (name, about) in checks {
                let _ = writeln!(out, "{name:<24} {about}");
            }
            return ExitCode::SUCCESS;
        }
        if self.sim {
            return self.run_sim(out);
        }
        let Some(addr) = self.addr else {
            return super::cannot_run("check", "an address is required");
        };
        let server = match resolve(&addr) {
            Ok(server) => server,
            Err(why) => return super::cannot_run("check", why),
        };
        let config = check::Config {
            server,
            clients: self.clients,
            only: self.only,
            via_proxy: self.via_proxy,
            restart: self.command,
            deadline: Duration::from_secs(self.deadline_s),
        };
        // The bar names the check under way: the one after the last reported.
        let names: Vec<&str> = check::selected(&config)
            .map(|checks| checks.iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let printed = report(out, self.json, &names, |report| {
            check::run(&config, report).map_err(|e| e.to_string())
        });
        finish(out, self.json, self.strict, printed)
    }

    /// `check --sim`: the same reports and exit codes, from the simulator's checks.
    fn run_sim(self, out: &mut dyn Write) -> ExitCode {
        let dialect = match dialect_choice(&self.dialect) {
            Ok(dialect) => dialect,
            Err(why) => return super::cannot_run("check", why),
        };
        let stdin = match self.stdin.as_deref().map(Console::file).transpose() {
            Ok(stdin) => stdin.unwrap_or_default(),
            Err(why) => return super::cannot_run("check", why),
        };
        let mut names: Vec<&str> = sim_check::selected(&self.only)
            .map(|checks| checks.iter().map(|c| c.name).collect())
            .unwrap_or_default();
        if dialect == DialectChoice::Auto {
            names.insert(0, sim_check::DIALECT_FINDING);
        }
        let config = SimCheckConfig {
            command: self.command,
            seed: self.seed,
            cases: self.cases,
            only: self.only,
            shrink: true,
            dialect,
            launch: Launch {
                env: super::environment(self.clean_env),
                stdin,
            },
            pcap: self.pcap,
            fresh_starts: self.fresh_starts,
        };
        let mut starts = String::new();
        let printed = report(out, self.json, &names, |report| {
            sim_check::run(&config, report).map(|checked| {
                starts = checked.starts;
                checked.findings
            })
        });
        if !self.json && printed.is_ok() {
            let _ = writeln!(out, "{starts}");
        }
        if let (Some(path), Ok(findings)) = (&self.html, &printed) {
            let text: String = findings.iter().map(|f| format!("{f}\n")).collect();
            let title = "selectlab check --sim";
            let empty = crate::sim::capture::Capture::default();
            if let Err(why) = super::write_pictures(Some(path), None, title, &text, &empty) {
                return super::cannot_run("check", why);
            }
        }
        finish(out, self.json, self.strict, printed)
    }
}

/// The address `host:port` names: of several (`localhost` is often `::1` and `127.0.0.1`), the
/// first IPv4 one, since most servers listen there; no connection is tried (a connection
/// closed at once is `quick-close`'s business, and brings some servers down).
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let found: Vec<SocketAddr> = (addr.to_socket_addrs())
        .map_err(|e| format!("{addr}: not an address as host:port ({e})"))?
        .collect();
    (found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied())
    .ok_or_else(|| format!("{addr}: the name has no address"))
}

/// `--dialect`'s word: `auto`, `tutorial`, or a dialect file's path.
fn dialect_choice(word: &str) -> Result<DialectChoice, String> {
    match word {
        "auto" => Ok(DialectChoice::Auto),
        "tutorial" => Ok(DialectChoice::Tutorial),
        path => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("--dialect {path}: {e}"))?;
            let dialect = Dialect::parse(&text).map_err(|e| format!("--dialect {path}: {e}"))?;
            Ok(DialectChoice::Given(path.to_string(), dialect))
        }
    }
}

/// Runs checks with a progress bar naming the one under way, printing each finding as it
/// comes (text or one JSON object).
fn report(
    out: &mut dyn Write,
    json: bool,
    names: &[&str],
    run: impl FnOnce(&mut dyn FnMut(&Finding)) -> Result<Vec<Finding>, String>,
) -> Result<Vec<Finding>, String> {
    let progress = super::progress_bar(names.len() as u64, "check");
    progress.set_message(names.first().copied().unwrap_or_default().to_string());
    let printed = run(&mut |finding: &Finding| {
        let _ = progress.suspend(|| {
            if json {
                writeln!(out, "{}", finding.json())
            } else {
                writeln!(out, "{finding}")
            }
            .and_then(|()| out.flush())
        });
        progress.inc(1);
        let next = usize::try_from(progress.position()).unwrap_or(usize::MAX);
        progress.set_message(names.get(next).copied().unwrap_or_default().to_string());
    });
    progress.finish_and_clear();
    printed
}

/// The summary line (text only) and the exit status of a run's findings.
fn finish(
    out: &mut dyn Write,
    json: bool,
    strict: bool,
    printed: Result<Vec<Finding>, String>,
) -> ExitCode {
    let findings = match printed {
        Ok(findings) => findings,
        Err(e) => return super::cannot_run("check", e),
    };
    if !json {
        let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
        let warned = match count(Verdict::Warn) {
            0 => String::new(),
            n => format!(", {n} warned"),
        };
        let _ = writeln!(
            out,
            "check: {} passed, {} failed, {} skipped{warned}",
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Skip)
        );
    }
    ExitCode::from(check::exit_status(&findings, strict))
}
