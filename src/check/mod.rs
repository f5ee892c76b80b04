//! `selectlab check ADDR`: named conformance and adversarial checks against any running chat
//! server that speaks the tutorial's protocol, over real sockets; and [`sim`], `check --sim`,
//! the same server judged inside the simulator.
//!
//! - [`peer`]: the checker's clients and rooms of them (a reader and a writer thread each).
//! - [`lines`]: what happens to one line: delivery, echo, prefix, split and merged writes,
//!   binary bytes, an over-long line.
//! - [`departures`]: joins and leaves, clean and by reset, resets during a broadcast, and
//!   connections closed at once.
//! - [`crowds`]: a reader that pauses while others talk (200 KB, and 8 MB), and 200 clients
//!   joining at once.
//! - [`sentinel`]: a quiet pair in the room that tells when the server went away.
//! - [`restart`]: `check ADDR -- CMD`, the server started afresh for each check.
//!
//! A line is judged by what the protocol fixes and nothing more: each line a client sends
//! reaches every other client once, in order, whole, behind a prefix (the exact prefix,
//! `<YYYY-mm-dd HH:MM:SS> ('<ip>', <port>) say: `, is the `prefix` check's business alone, so
//! a server with another prefix fails one check, not all). Where the protocol leaves a policy
//! open, every reasonable policy passes: an over-long line may be refused or delivered whole,
//! a slow reader may be queued, slowed or dropped (at a line's end), never at the others'
//! expense. Every check is bounded in time and reports PASS, FAIL or SKIP with its evidence.

pub mod crowds;
pub mod departures;
pub mod lines;
pub mod peer;
pub mod restart;
pub mod sentinel;
pub mod sim;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::session::Symptom;

/// Longest any one check may run, unless [`Config::deadline`] says otherwise (`--deadline-s`).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(15);
/// Most clients `--clients` may ask for.
pub const MAX_CHECK_CLIENTS: usize = 500;
/// How long a check listens for what must not come (a replay, an echo, a fragment).
pub const QUIET: Duration = Duration::from_millis(300);
/// Most characters of one line shown in evidence.
const SHOWN_CHARS: usize = 120;

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server did what the protocol asks.
    Pass,
    /// It did not.
    Fail,
    /// The check could not judge (it says why).
    Skip,
    /// A portability hazard, not a fault on Linux: the program fails where only the man
    /// pages allow (select(2) BUGS: readiness, then a read that blocks). Exit status 0 unless
    /// `--strict`.
    Warn,
}

impl Verdict {
    /// `pass`, `fail`, `skip` or `warn` (JSON's spelling; the text report uses capitals).
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Warn => "warn",
        }
    }
}

/// One check's result: the verdict and a few lines of evidence.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The check's name.
    pub name: &'static str,
    /// PASS, FAIL or SKIP.
    pub verdict: Verdict,
    /// What was seen: the expected line and what arrived, or why it skipped.
    pub evidence: Vec<String>,
    /// The kind of fault it showed, where the check knows one (`check --sim`'s do).
    pub kind: Option<Symptom>,
    /// How long the check took.
    pub elapsed: Duration,
}

/// A check's verdict and evidence, and the kind of fault it showed if it knows one.
#[derive(Debug, Clone)]
pub struct Judged {
    /// PASS, FAIL, SKIP or WARN.
    pub verdict: Verdict,
    /// What was seen.
    pub evidence: Vec<String>,
    /// The kind of fault, if known.
    pub kind: Option<Symptom>,
    /// How long the check itself took, where judging it goes on after it (a server checked
    /// on real sockets is waited for until it has caught up); `None`: the whole judging.
    pub took: Option<Duration>,
}

impl From<(Verdict, Vec<String>)> for Judged {
    fn from((verdict, evidence): (Verdict, Vec<String>)) -> Judged {
        Judged {
            verdict,
            evidence,
            kind: None,
            took: None,
        }
    }
}

/// A check's outcome before it is timed and named.
pub type Outcome = Result<String, Judgement>;

/// Why a check did not pass.
#[derive(Debug, Clone)]
pub enum Judgement {
    /// The server broke the protocol: what was expected, what arrived.
    Fail(Vec<String>),
    /// The check could not judge: why.
    Skip(String),
}

impl Judgement {
    /// A failure with a single line of evidence.
    pub fn fail(why: impl Into<String>) -> Judgement {
        Judgement::Fail(vec![why.into()])
    }
}

impl From<String> for Judgement {
    fn from(why: String) -> Judgement {
        Judgement::fail(why)
    }
}

/// What every check knows.
pub struct Ctx {
    /// The server under test.
    pub server: SocketAddr,
    /// Clients for the checks that take `--clients`.
    pub clients: usize,
    /// This run's tag: it is in every line the checks send, so nothing from an earlier run
    /// (or another user of the server) is taken for this run's.
    pub tag: String,
    /// When the running check must be done.
    pub until: Instant,
    /// A proxy stands between: the server names clients by the proxy's addresses.
    pub via_proxy: bool,
}

impl Ctx {
    /// The address the server should name `peer` by: its own, or through a proxy, the one the
    /// server named it by when the room gathered.
    pub fn named(&self, peer: &peer::Peer) -> SocketAddr {
        if self.via_proxy {
            peer.seen_as
        } else {
            peer.local
        }
    }

    /// The `seq`th line of client `sender` (1-based, as in `c1`), in check `check`, with
    /// `filler` bytes after its marker. Unique in the run.
    pub fn line(&self, check: &str, sender: usize, seq: usize, filler: &[u8]) -> Vec<u8> {
        [
            format!("{} {check} c{sender}#{seq} ", self.tag).as_bytes(),
            filler,
        ]
        .concat()
    }

    /// The marker prefix shared by all lines of `sender` in `check`.
    pub fn mark(&self, check: &str, sender: usize) -> Vec<u8> {
        format!("{} {check} c{sender}#", self.tag).into_bytes()
    }
}

/// A named check.
pub struct Check {
    /// Its name, for `--only`.
    pub name: &'static str,
    /// What it does, one line.
    pub about: &'static str,
    /// It, returning a one-line summary when it passes.
    pub run: fn(&Ctx) -> Outcome,
}

/// Every check, in the order they run.
pub const CHECKS: &[Check] = &[
    lines::PREFIX,
    lines::DELIVERY,
    lines::NO_ECHO,
    lines::SPLIT_WRITES,
    lines::MERGED_WRITES,
    lines::BINARY,
    lines::LONG_LINE,
    departures::JOIN,
    departures::EXIT,
    departures::RESET_AFTER_LINES,
    departures::RESET_MID_LINE,
    departures::RESETS_DURING_BROADCAST,
    crowds::PAUSED_READER,
    crowds::SLOW_READER,
    crowds::MANY_JOINS,
    departures::QUICK_CLOSE,
];

/// What to run.
pub struct Config {
    /// The server.
    pub server: SocketAddr,
    /// Clients for `delivery`.
    pub clients: usize,
    /// Only these checks (all when empty).
    pub only: Vec<String>,
    /// A proxy stands between (`selectlab proxy`): compare the addresses in notices with those
    /// the server gave each client's own lines, not with the client's own.
    pub via_proxy: bool,
    /// The server's command line, to start it afresh for each check (`check ADDR -- CMD`);
    /// empty: it is already running.
    pub restart: Vec<OsString>,
    /// Longest any one check may run (`--deadline-s`; [`CHECK_DEADLINE`] by default).
    pub deadline: Duration,
}

/// Why nothing could run (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Bad arguments.
    BadArgs(String),
    /// Nothing accepts connections at the address.
    NothingListens(String),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::BadArgs(why) => write!(f, "bad arguments: {why}"),
            CheckError::NothingListens(why) => write!(f, "nothing to check: {why}"),
        }
    }
}

/// The checks `config` selects, or why not.
pub fn selected(config: &Config) -> Result<Vec<&'static Check>, CheckError> {
    if !(2..=MAX_CHECK_CLIENTS).contains(&config.clients) {
        return Err(CheckError::BadArgs(format!(
            "--clients must be 2 to {MAX_CHECK_CLIENTS}, not {}",
            config.clients
        )));
    }
    pick(CHECKS, |c| c.name, &config.only).map_err(CheckError::BadArgs)
}

/// The checks of `all` that `only` names, in their order (all of them when `only` is empty),
/// or which name is no check's.
pub fn pick<'a, C>(
    all: &'a [C],
    name: impl Fn(&C) -> &str,
    only: &[String],
) -> Result<Vec<&'a C>, String> {
    if let Some(unknown) = only
        .iter()
        .find(|n| !all.iter().any(|c| name(c) == n.as_str()))
    {
        let names: Vec<&str> = all.iter().map(&name).collect();
        return Err(format!(
            "no check is called {unknown:?}; the checks are {}",
            names.join(", ")
        ));
    }
    Ok(all
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| n == name(c)))
        .collect())
}

/// Runs `checks` one after another, timing each: `judge` gives its verdict and evidence
/// (it sees the findings so far), `report` gets each finding as it comes. An error from
/// `judge` ends the run.
pub fn run_each<C, E, J: Into<Judged>>(
    checks: &[&C],
    name: impl Fn(&C) -> &'static str,
    mut judge: impl FnMut(&C, &[Finding]) -> Result<J, E>,
    mut report: impl FnMut(&Finding),
) -> Result<Vec<Finding>, E> {
    let mut findings: Vec<Finding> = Vec::with_capacity(checks.len());
    for check in checks {
        let started = Instant::now();
        let Judged {
            verdict,
            evidence,
            kind,
            took,
        } = judge(check, &findings)?.into();
        let finding = Finding {
            name: name(check),
            verdict,
            evidence,
            kind,
            elapsed: took.unwrap_or_else(|| started.elapsed()),
        };
        report(&finding);
        findings.push(finding);
    }
    Ok(findings)
}

/// Runs the selected checks one after another (they share the server's one room, or, with
/// [`Config::restart`], each has a server of its own), calling `report` with each finding as
/// it comes.
pub fn run(config: &Config, report: impl FnMut(&Finding)) -> Result<Vec<Finding>, CheckError> {
    let checks = selected(config)?;
    // `many-joins` holds 200 connections; a failure here leaves that check to say so.
    let _ = crate::real_kernel::raise_fd_limit();
    let tag = format!("sl{:08x}", run_id());
    if !config.restart.is_empty() {
        return run_restarting(config, &checks, &tag, report);
    }
    // A quiet pair in the room, held from first to last: no quick close before the checks
    // (`quick-close` is a check of its own, and brings some servers down), and a server that
    // dies is named in the check during which it went away.
    let mut sentinel = sentinel::Sentinel::join(config.server, &tag)
        .map_err(|e| CheckError::NothingListens(format!("{}: {e}", config.server)))?;
    std::thread::sleep(QUIET);
    sentinel.settle();
    let mut gone_in: Option<&'static str> = None;
    let judge = |check: &Check, _: &[Finding]| {
        if let Some(during) = gone_in {
            let why = format!("the server went away during `{during}`");
            return Ok(Judged::from((Verdict::Skip, vec![why])));
        }
        let started = Instant::now();
        let (verdict, evidence) = one_check(config, check, &tag);
        let took = Some(started.elapsed());
        let (verdict, evidence) = if sentinel.server_gone() {
            gone_in = Some(check.name);
            let went = format!("the server went away during `{}`", check.name);
            went_away(verdict, evidence, went)
        } else {
            (verdict, evidence)
        };
        Ok(Judged {
            took,
            ..(verdict, evidence).into()
        })
    };
    let findings = run_each(&checks, |c| c.name, judge, report);
    sentinel.leave();
    findings
}

/// `check ADDR -- CMD`: each check with a server started afresh, stopped after it.
fn run_restarting(
    config: &Config,
    checks: &[&Check],
    tag: &str,
    report: impl FnMut(&Finding),
) -> Result<Vec<Finding>, CheckError> {
    let judge = |check: &Check, so_far: &[Finding]| {
        let (mut started, mut sentinel) =
            match restart::Started::start(&config.restart, config.server, tag) {
                Ok(started) => started,
                Err(why) if so_far.is_empty() => return Err(CheckError::NothingListens(why)),
                Err(why) => {
                    let why = format!("the server did not start again: {why}");
                    return Ok(Judged::from((Verdict::Fail, vec![why])));
                }
            };
        std::thread::sleep(QUIET);
        sentinel.settle();
        let began = Instant::now();
        let (verdict, evidence) = one_check(config, check, tag);
        let took = Some(began.elapsed());
        let (verdict, evidence) = if sentinel.server_gone() {
            let end = (started.ended_within(sentinel::EXIT_WAIT))
                .unwrap_or_else(|| "it closed every connection".into());
            let went = format!("the server went away during `{}`: {end}", check.name);
            went_away(verdict, evidence, went)
        } else {
            (verdict, evidence)
        };
        sentinel.leave();
        started.stop();
        Ok(Judged {
            took,
            ..(verdict, evidence).into()
        })
    };
    run_each(checks, |c| c.name, judge, report)
}

/// Runs one check against the server.
fn one_check(config: &Config, check: &Check, tag: &str) -> (Verdict, Vec<String>) {
    let ctx = Ctx {
        server: config.server,
        clients: config.clients,
        tag: tag.to_string(),
        until: Instant::now() + config.deadline,
        via_proxy: config.via_proxy,
    };
    match (check.run)(&ctx) {
        Ok(summary) => (Verdict::Pass, vec![summary]),
        Err(Judgement::Fail(evidence)) => (Verdict::Fail, evidence),
        Err(Judgement::Skip(why)) => (Verdict::Skip, vec![why]),
    }
}

/// A check during which the server went away fails, saying so (`went`, one evidence line per
/// line of it) first if the check itself had passed, else after what the check saw.
fn went_away(verdict: Verdict, mut evidence: Vec<String>, went: String) -> (Verdict, Vec<String>) {
    let lines = went.lines().map(str::to_string);
    if verdict == Verdict::Pass {
        evidence.splice(0..0, lines);
    } else {
        evidence.extend(lines);
    }
    (Verdict::Fail, evidence)
}

/// A number that differs between runs (the clock's nanoseconds and the process id).
fn run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// The exit status for a run's findings: 0 when every check passed (or only warned, unless
/// `strict`), 1 otherwise (a skipped check is not a pass).
pub fn exit_status(findings: &[Finding], strict: bool) -> u8 {
    u8::from(findings.iter().any(|f| match f.verdict {
        Verdict::Pass => false,
        Verdict::Warn => strict,
        Verdict::Fail | Verdict::Skip => true,
    }))
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = self.verdict.name().to_ascii_uppercase();
        let secs = self.elapsed.as_secs_f64();
        let mut evidence = self.evidence.iter();
        let first = evidence.next().map_or("", String::as_str);
        write!(f, "{verdict} {:<24} {first} ({secs:.2} s)", self.name)?;
        for more in evidence {
            write!(f, "\n     {:<24} {more}", "")?;
        }
        Ok(())
    }
}

/// One finding as `selectlab check --json` prints it: one object per line. The field names are
/// an interface (the README lists them, a test parses them back).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingRecord {
    /// The check's name.
    pub check: String,
    /// `pass`, `fail`, `skip` or `warn`.
    pub verdict: String,
    /// Wall time the check took, in seconds (to the millisecond).
    pub seconds: f64,
    /// The kind of fault it showed, where the check knows one (`check --sim`; else null).
    pub kind: Option<String>,
    /// What the check saw, one line each.
    pub evidence: Vec<String>,
}

impl Finding {
    /// The finding as a record.
    pub fn record(&self) -> FindingRecord {
        FindingRecord {
            check: self.name.to_string(),
            verdict: self.verdict.name().to_string(),
            seconds: crate::json::round(self.elapsed.as_secs_f64(), 3),
            kind: self.kind.map(|k| k.name().to_string()),
            evidence: self.evidence.clone(),
        }
    }

    /// The finding as one JSON object.
    pub fn json(&self) -> String {
        crate::json::line(&self.record())
    }
}

/// A line for evidence: printable ASCII as is, other bytes escaped, long lines cut.
pub fn show(line: &[u8]) -> String {
    let mut shown = String::from("\"");
    for &b in line {
        if shown.len() > SHOWN_CHARS {
            shown.push_str(&format!("\"… ({} bytes)", line.len()));
            return shown;
        }
        match b {
            b'"' => shown.push_str("\\\""),
            b'\\' => shown.push_str("\\\\"),
            0x20..=0x7e => shown.push(char::from(b)),
            _ => shown.push_str(&format!("\\x{b:02x}")),
        }
    }
    shown.push('"');
    shown
}

/// Whether `heard` carries `sent` whole behind a prefix (any prefix: the `prefix` check
/// judges its form).
pub fn delivers(heard: &[u8], sent: &[u8]) -> bool {
    heard.len() > sent.len() && heard.ends_with(sent)
}

/// Judges what one client heard of one sender: the lines carrying `mark` must be exactly
/// `sent`, each whole, once, in order. `Err` holds the evidence.
pub fn judge_stream(
    listener: &str,
    sender: &str,
    heard: &[Vec<u8>],
    mark: &[u8],
    sent: &[Vec<u8>],
) -> Result<(), Vec<String>> {
    let got: Vec<&Vec<u8>> = heard.iter().filter(|l| contains(l, mark)).collect();
    for (i, want) in sent.iter().enumerate() {
        match got.get(i) {
            Some(line) if delivers(line, want) => {}
            Some(line) => {
                let what = if line.as_slice() == want.as_slice() {
                    "it bare, with no prefix naming its sender (were lines framed?)"
                } else if contains(line, want) {
                    "it with bytes after it"
                } else {
                    "another line in its place"
                };
                return Err(vec![
                    format!(
                        "{listener} expected {sender}'s line #{i} next, whole, behind a prefix; it heard {what}"
                    ),
                    format!("expected …{}", show(want)),
                    format!("arrived  {}", show(line)),
                ]);
            }
            None => {
                return Err(vec![
                    format!(
                        "{listener} heard {} of {sender}'s {} lines; line #{i} never came",
                        got.len(),
                        sent.len()
                    ),
                    format!("expected …{}", show(want)),
                    format!(
                        "last heard {}",
                        heard.last().map_or("nothing".into(), |l| show(l))
                    ),
                ]);
            }
        }
    }
    if let Some(extra) = got.get(sent.len()) {
        return Err(vec![
            format!(
                "{listener} heard {} lines of {sender}'s, but {sender} sent {}: a duplicate or a replay",
                got.len(),
                sent.len()
            ),
            format!("extra {}", show(extra)),
        ]);
    }
    Ok(())
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// Two new clients can still join and chat after `what` happened: the server survived it.
pub fn room_goes_on(ctx: &Ctx, what: &str) -> Result<(), Judgement> {
    peer::Room::gather(ctx.server, 2, &ctx.tag, ctx.until)
        .map(drop)
        .map_err(|e| Judgement::fail(format!("after {what}: {e}")))
}

/// The checker's own writes went out. A write the server refused (it reset or closed the
/// connection, or stopped reading for [`peer::CONNECT_TIMEOUT`]) is the server's failure; any
/// other is the checker's own trouble, and the check cannot judge (SKIP, with why).
pub fn all_sent(failed: Vec<peer::SendFailure>) -> Result<(), Judgement> {
    if failed.is_empty() {
        return Ok(());
    }
    let said: Vec<String> = failed.iter().map(ToString::to_string).collect();
    if failed.iter().any(peer::SendFailure::server_caused) {
        Err(Judgement::Fail(said))
    } else {
        Err(Judgement::Skip(said.join("; ")))
    }
}
