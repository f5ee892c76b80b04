//! `selectlab check --sim -- CMD`: the suite's own detectors on someone else's unmodified chat
//! server. The program serves a session's room inside the simulator ([`served::GuestServer`]); the
//! session's clients run between any two of its syscalls; the chat properties
//! ([`session::properties`](crate::session::properties)) judge what every client heard, and the server's own
//! trouble (an exit, a spin, a blocking call, a refusal) fails the check that met it.
//!
//! Each named check is one schedule, run faithfully (what Linux loopback does), except
//! `adversary`: `--cases` random schedules under the seeded lawful adversary. A failure is
//! shrunk (steps removed, payloads halved, whole kinds of adversary choice turned off, while
//! the same check still fails) and shown with its transcript, the program's calls and the
//! clients' interleaved, and the command line that replays it. Same seed, same transcript.
//!
//! - [`served`]: a guest program as a session's server; `calibrate`: the calm run that learns
//!   its dialect; [`distinct`]: each client's lines made to name their sender; `schedules`:
//!   the checks' sessions; `descheduled`: the `fd-reuse` check's run.

use std::ffi::OsString;
use std::path::PathBuf;

use std::collections::{BTreeMap, BTreeSet};

use crate::addr::SockAddr;
use crate::chat::server::Limits;
use crate::check::{Finding, Judged, Verdict};
use crate::session::case::{self, Shrink};
use crate::session::dialect::{Cast, Dialect, succession};
use crate::session::properties::{self, LongLine, Policy};
use crate::session::script::CHAT_FUZZ_CLIENTS;
use crate::session::{Failure, Outcome, SessionConfig, Step, Symptom};
use crate::sim::capture::Capture;
use crate::sim::decide::{Adversity, Decider};

use calibrate::Unlearned;
pub use schedules::{
    CHECK_ADVERSITY, LONG_LINE_BYTES, MAX_SENT_LINE_BYTES, PORTABILITY_CHECK, SIM_CHECKS, SimCheck,
};
use schedules::{PORTABLE_ADVERSITY, RESETS_ONLY, RESETS_RUNS, case_seed, random_case, schedule};

mod calibrate;
mod descheduled;
pub mod distinct;
mod schedules;
pub mod served;
mod starts;
use crate::guest::spawn::{Console, Environment, Launch};
use served::limits;
pub use starts::Starts;

/// Most cases `--cases` may ask for.
pub const MAX_CASES: u32 = 10_000;
/// Most transcript lines a failure shows: the first and the last (the replay shows all).
pub const SHOWN_TRANSCRIPT_LINES: usize = 400;

/// What to run.
#[derive(Debug, Clone)]
pub struct SimCheckConfig {
    /// The server program and its arguments.
    pub command: Vec<OsString>,
    /// The adversary's seed.
    pub seed: u64,
    /// Random schedules in `adversary`.
    pub cases: u32,
    /// Only these checks (all when empty).
    pub only: Vec<String>,
    /// Whether to shrink the first failure and show its transcript (else a failure gives its
    /// symptom and replay line alone).
    pub shrink: bool,
    /// How to read what the clients heard.
    pub dialect: DialectChoice,
    /// The program's environment and standard input.
    pub launch: Launch,
    /// Where to write the shown (shrunk) failure's traffic as a pcap file, if anywhere.
    pub pcap: Option<PathBuf>,
    /// Whether every session starts the program afresh (`--fresh-starts`), rather than as a
    /// fork of it parked at its first listen (see [`Starts`]).
    pub fresh_starts: bool,
}

/// How `check --sim` reads what the clients heard (`--dialect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialectChoice {
    /// Learn the server's dialect from a calm calibration run first (the default).
    Auto,
    /// The tutorial's own protocol, judged strictly: any other line is a fault.
    Tutorial,
    /// This dialect, read from this file.
    Given(String, Dialect),
}

/// How a case's lines are read: strictly in the tutorial's protocol, or in a dialect.
#[derive(Debug, Clone)]
enum Reading {
    Tutorial,
    Dialect(Dialect),
}

impl Reading {
    /// The case as this reading runs it: in a dialect, each line several clients say names
    /// its sender ([`distinct_senders`](distinct::distinct_senders)), since the frame
    /// may not.
    fn prepare(&self, mut case: Case) -> Case {
        if let Reading::Dialect(_) = self {
            case.steps = distinct::distinct_senders(&case.steps);
        }
        case
    }
}

/// A failure, before it is shown.
struct Failed {
    failure: Failure,
    case: Case,
    /// The seed that replays it (`adversary`: the failing case's own).
    seed: u64,
    /// It fails only with spurious wake-ups (`portability`): a hazard, not a fault on Linux.
    hazard: bool,
}

/// One session to run: the steps and how the machine decides.
#[derive(Debug, Clone)]
struct Case {
    steps: Vec<Step>,
    adversity: Option<(u64, Adversity)>,
    rcvbuf: Option<i32>,
    /// A line over [`MAX_SENT_LINE_BYTES`] is sent: the server may refuse it (cutting its
    /// sender off) or deliver it whole.
    long_line: bool,
    /// The crowd may be past the server's capacity (`many-joins`): a server that turns its
    /// end away is told so in those words.
    crowded: bool,
    /// The server's memory is watched while a stopped reader is sent far more than any bound
    /// (`memory`).
    memory: bool,
    /// The server is descheduled through some steps, and the case judged by what must be
    /// heard (`fd-reuse`).
    descheduled: Option<descheduled::Descheduled>,
}

/// The clients that never got in: a full accept queue dropped their SYNs through every
/// retry (the server's backlog is its own choice), so they are not judged.
fn never_connected(o: &Outcome) -> BTreeSet<usize> {
    (o.clients.iter().enumerate())
        .filter(|(_, c)| c.never_connected)
        .map(|(n, _)| n)
        .collect()
}

/// The clients the server closed at once, before a byte went either way, when they are the
/// crowd's end (every client after the first of them too, bar those never in): how many got
/// in, and how many were turned away. A capacity, which `many-joins` names as such; a server
/// that went away closed them all, and that is its symptom instead.
fn turned_away_at_capacity(o: &Outcome) -> Option<(usize, usize)> {
    if o.server_trouble.is_some() {
        return None;
    }
    let away = |c: &crate::session::ClientView| c.turned_away && c.lines_heard == 0;
    let first = o.clients.iter().position(away)?;
    let rest = &o.clients[first..];
    rest.iter()
        .all(|c| c.never_connected || away(c))
        .then(|| (first, rest.iter().filter(|c| away(c)).count()))
}

impl Case {
    /// The case of a named check.
    fn named(name: &str) -> Case {
        Case {
            steps: schedule(name),
            adversity: (name == "resets-during-broadcast").then_some((0, RESETS_ONLY)),
            rcvbuf: None,
            long_line: name == "long-line",
            crowded: name == "many-joins",
            descheduled: schedules::descheduled(name),
            memory: name == "memory",
        }
    }

    /// Runs the session with the program as its server: how many clients never got in (a
    /// full accept queue through every SYN retry), or the symptom and transcript if a
    /// property failed.
    fn judge(
        &self,
        starts: &Starts,
        transcript: bool,
        reading: &Reading,
        keep: Option<&mut Kept>,
    ) -> Result<usize, Failure> {
        // The program's random bytes are the same in every session, only the adversary's
        // choices vary: its start is then the same, and sessions may fork it (see `Starts`).
        let decide = match self.adversity {
            Some((seed, adversity)) => Decider::seeded(seed, adversity).with_unseeded_entropy(),
            None => Decider::faithful(),
        };
        let config = SessionConfig {
            decide,
            limits: limits(),
            transcript,
            kernel_calls: transcript,
            client_rcvbuf_bytes: self.rcvbuf,
            fd_table_per_host: true,
            watch_server_memory: self.memory,
            capture: keep.is_some(),
            ..SessionConfig::default()
        };
        let session = starts.session(config)?;
        let off = self.descheduled.as_ref().map_or(0..0, |d| d.steps.clone());
        let (mut outcome, settled) = session.run_descheduled(&self.steps, off);
        if let Some(keep) = keep {
            keep.capture = std::mem::take(&mut outcome.capture);
            keep.transcript.clone_from(&outcome.transcript);
        }
        case::settled(&self.steps, settled, &outcome)?;
        if let Some(d) = &self.descheduled {
            return d.judge(self.steps.len(), &outcome).map(|()| 0);
        }
        let clients = CHAT_FUZZ_CLIENTS.max(outcome.clients.len());
        if let Some((kept, away)) = turned_away_at_capacity(&outcome).filter(|_| self.crowded) {
            let what = format!(
                "the server turned away the last {away} clients of the crowd: it closed each \
                 at once, before a byte either way, having let {kept} in"
            );
            return Err(
                Failure::new(Symptom::TurnedAway, what).with_transcript(&outcome.transcript)
            );
        }
        let outside = never_connected(&outcome);
        let connected = connected_only(&self.steps, &outside);
        let steps = connected.as_deref().unwrap_or(&self.steps);
        self.verdict(steps, &outcome, clients, reading)?;
        if self.memory {
            schedules::memory_held(&outcome)?;
        }
        Ok(outside.len())
    }

    /// Judges a finished session of this case's `steps` (those of clients that got in), read
    /// as `reading` says: the over-long line of `long-line` may be refused or delivered whole.
    fn verdict(
        &self,
        steps: &[Step],
        o: &Outcome,
        clients: usize,
        reading: &Reading,
    ) -> Result<(), Failure> {
        let refusing = Limits {
            max_line_bytes: MAX_SENT_LINE_BYTES,
            ..limits()
        };
        match reading {
            Reading::Tutorial => {
                let whole = properties::check(steps, o, clients, &limits());
                if !self.long_line {
                    return whole;
                }
                whole.or_else(|why| {
                    properties::check(steps, o, clients, &refusing).map_err(|_| {
                        why.after("the long line was neither refused nor delivered whole: ")
                    })
                })
            }
            Reading::Dialect(d) => {
                let policy = Policy {
                    entered: d.joined.is_some(),
                    left: d.left.is_some(),
                    empty_lines: d.empty_lines && d.relay.names_someone(),
                    long_line: LongLine::CutOff,
                    late_departures: true,
                };
                let judge = |limits: &Limits, policy: Policy| {
                    properties::check_heard(steps, o, clients, limits, policy, |want| {
                        read_in(d, steps, o, clients, &want())
                    })
                };
                let whole = judge(&limits(), policy);
                if !self.long_line {
                    return whole;
                }
                let dropped = Policy {
                    long_line: LongLine::Dropped,
                    ..policy
                };
                whole.or_else(|why| {
                    judge(&refusing, policy)
                        .or_else(|_| judge(&refusing, dropped))
                        .map_err(|_| {
                            why.after(
                                "the long line was neither refused (its sender cut off, or the line dropped) nor delivered whole: ",
                            )
                        })
                })
            }
        }
    }

    /// Whether the case, with the same seed but no spurious wake-ups, passes (so that what
    /// failed was only a wake-up Linux never gives).
    fn without_spurious_passes(&self, starts: &Starts, reading: &Reading) -> bool {
        let mut linux = self.clone();
        if let Some((seed, adversity)) = linux.adversity {
            linux.adversity = Some((
                seed,
                Adversity {
                    spurious_per_mille: 0,
                    ..adversity
                },
            ));
        }
        linux.judge(starts, false, reading, None).is_ok()
    }
}

impl Shrink for Case {
    /// The smaller cases of [`case::smaller_steps`], then each kind of adversary choice
    /// turned off.
    fn smaller(&self) -> Vec<Case> {
        if self.descheduled.is_some() || self.memory {
            // Its steps are numbered by the stretch the server is descheduled for, or the
            // memory it watches; a smaller case would prove nothing smaller.
            return Vec::new();
        }
        let fewer = case::smaller_steps(&self.steps)
            .into_iter()
            .map(|steps| Case {
                steps,
                ..self.clone()
            });
        let calmer = self.adversity.into_iter().flat_map(|(seed, adversity)| {
            adversity_without_each(adversity)
                .into_iter()
                .map(move |off| (seed, off))
        });
        fewer
            .chain(calmer.map(|adversity| Case {
                adversity: Some(adversity),
                ..self.clone()
            }))
            .collect()
    }
}

/// The steps, without the clients `outside` (see [`never_connected`]), or `None` when every
/// client that was to join did.
fn connected_only(steps: &[Step], outside: &BTreeSet<usize>) -> Option<Vec<Step>> {
    let outside = |n: usize| outside.contains(&n);
    let crowds = steps
        .iter()
        .any(|s| matches!(s, Step::Crowd(k) if (0..*k).any(outside)));
    let joins = steps
        .iter()
        .any(|s| matches!(s, Step::Join(n) if outside(*n)));
    if !crowds && !joins {
        return None;
    }
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Crowd(k) => out.extend((0..*k).filter(|&n| !outside(n)).map(Step::Join)),
            Step::Join(n) if outside(*n) => {}
            other => out.push(other.clone()),
        }
    }
    Some(out)
}

/// What each client heard, read in dialect `d` (`want`: what each should have heard).
fn read_in(
    d: &Dialect,
    steps: &[Step],
    o: &Outcome,
    clients: usize,
    want: &properties::Heard,
) -> Result<properties::Heard, Failure> {
    let said_by = said_by(steps);
    let ports = (0..clients)
        .map(|n| match o.clients.get(n).and_then(|c| c.addr.as_ref()) {
            Some(SockAddr::Inet(a)) => Some(a.port()),
            _ => None,
        })
        .collect();
    let lines: Vec<&[Vec<u8>]> = (0..clients)
        .map(|n| o.clients.get(n).map_or(&[][..], |c| c.lines.as_slice()))
        .collect();
    // The sender of an over-long line may be told so in the server's own words.
    let long_senders: BTreeSet<usize> = (said_by.iter())
        .filter(|(text, _)| text.len() > MAX_SENT_LINE_BYTES)
        .flat_map(|(_, by)| by.iter().copied())
        .collect();
    let cast = Cast {
        ports,
        said_by: &said_by,
        // Whose departure the model does not foresee (reset by the network, or one the server
        // may drop as a slow reader).
        unjudged_departures: !properties::loose_clients(steps, o, limits().slow_consumer_timeout)
            .is_empty(),
        succession: succession(steps),
    };
    d.heard(&lines, &cast, want, |m| long_senders.contains(&m))
}

/// Each whole line the steps say while their client is in the room, and who said it.
fn said_by(steps: &[Step]) -> BTreeMap<Vec<u8>, BTreeSet<usize>> {
    let mut out: BTreeMap<Vec<u8>, BTreeSet<usize>> = BTreeMap::new();
    for (n, lines) in distinct::lines_by_client(steps) {
        for (_, text) in lines {
            out.entry(text).or_default().insert(n);
        }
    }
    out
}

/// `a` with each of its non-zero rates turned off in turn.
fn adversity_without_each(a: Adversity) -> Vec<Adversity> {
    let fields: [fn(&mut Adversity) -> &mut u16; 8] = [
        |a| &mut a.short_io_per_mille,
        |a| &mut a.eintr_per_mille,
        |a| &mut a.reset_per_mille,
        |a| &mut a.emfile_per_mille,
        |a| &mut a.enfile_per_mille,
        |a| &mut a.spurious_per_mille,
        |a| &mut a.defer_per_mille,
        |a| &mut a.hold_back_per_mille,
    ];
    let mut out = Vec::new();
    for field in fields {
        let mut off = a;
        if *field(&mut off) != 0 {
            *field(&mut off) = 0;
            out.push(off);
        }
    }
    out
}

/// Shrinks a failing case (see [`case::shrink`]).
fn shrink(case: Case, symptom: Symptom, starts: &Starts, reading: &Reading) -> Case {
    case::shrink(case, symptom, |c: &Case| {
        c.judge(starts, false, reading, None).map(|_| ())
    })
}

/// The checks `only` selects, or why not.
pub fn selected(only: &[String]) -> Result<Vec<&'static SimCheck>, String> {
    crate::check::pick(SIM_CHECKS, |c| c.name, only)
}

/// The adversity of a check whose cases are random schedules (`adversary`, `portability`).
fn random_adversity(check: &SimCheck) -> Option<Adversity> {
    match check.name {
        "adversary" => Some(CHECK_ADVERSITY),
        PORTABILITY_CHECK => Some(PORTABLE_ADVERSITY),
        _ => None,
    }
}

/// A check's cases in turn, each with its seed: the random schedules of `adversary`, the runs
/// of a schedule under the adversary's resets, or one faithful run of its schedule.
fn cases<'a>(
    check: &SimCheck,
    config: &'a SimCheckConfig,
    reading: &'a Reading,
) -> Box<dyn Iterator<Item = (u64, Case)> + 'a> {
    if let Some(adversity) = random_adversity(check) {
        return Box::new((0..config.cases).map(move |i| {
            let seed = case_seed(config.seed, i);
            (seed, reading.prepare(random_case(seed, adversity)))
        }));
    }
    let case = reading.prepare(Case::named(check.name));
    let Some((_, adversity)) = case.adversity else {
        return Box::new(std::iter::once((config.seed, case)));
    };
    Box::new((0..RESETS_RUNS).map(move |i| {
        let seed = case_seed(config.seed, i);
        let mut case = case.clone();
        case.adversity = Some((seed, adversity));
        (seed, case)
    }))
}

/// Runs one check: its schedule, or for `adversary` the random cases in turn.
fn run_check(
    check: &SimCheck,
    config: &SimCheckConfig,
    starts: &Starts,
    reading: &Reading,
) -> Result<String, Box<Failed>> {
    let mut outside = 0;
    let mut last = None;
    for (seed, case) in cases(check, config, reading) {
        match case.judge(starts, false, reading, None) {
            Ok(n) => outside = n,
            Err(failure) => {
                let hazard = case
                    .adversity
                    .is_some_and(|(_, a)| a.spurious_per_mille > 0)
                    && case.without_spurious_passes(starts, reading);
                return Err(Box::new(Failed {
                    failure,
                    case,
                    seed,
                    hazard,
                }));
            }
        }
        last = Some(case);
    }
    if let Some(adversity) = random_adversity(check) {
        let spurious = match adversity.spurious_per_mille {
            0 => "",
            _ => ", spurious wake-ups included",
        };
        return Ok(format!(
            "{} random schedules under the adversary{spurious} (seed {})",
            config.cases, config.seed
        ));
    }
    let Some(case) = last else {
        return Ok("no cases".to_string());
    };
    if let Some((_, adversity)) = case.adversity {
        return Ok(format!(
            "{} steps, {RESETS_RUNS} runs under the adversary's {} (seed {})",
            case.steps.len(),
            adversity_names(adversity),
            config.seed
        ));
    }
    let mut summary = format!("{} steps, faithful", case.steps.len());
    if outside > 0 {
        summary.push_str(&format!(
            "; {outside} clients never got in (the accept queue stayed full through Linux's \
             SYN retries) and are not judged"
        ));
    }
    Ok(summary)
}

/// The transcript of each selected check's first session (for a check of many, its first
/// case), the program started as `config` says, and how the sessions started: the same
/// transcripts whether sessions fork the program or start it afresh (what a test compares).
pub fn transcripts(config: &SimCheckConfig) -> Result<Transcripts, String> {
    let starts = Starts::new(&config.command, &config.launch, config.fresh_starts);
    let reading = match &config.dialect {
        DialectChoice::Tutorial => Reading::Tutorial,
        DialectChoice::Given(_, d) => Reading::Dialect(d.clone()),
        DialectChoice::Auto => {
            Reading::Dialect(calibrate::learn(&starts).map_err(|e| match e {
                Unlearned::Fault(kind, evidence) => format!("{kind}: {}", evidence.join("; ")),
                Unlearned::CannotJudge(why) => format!("{CANNOT_JUDGE}: {why}"),
            })?)
        }
    };
    let mut all = Vec::new();
    for check in selected(&config.only)? {
        if let Some((_, case)) = cases(check, config, &reading).next() {
            let mut kept = Kept::default();
            // Pass or fail, the transcript is what is compared.
            let _ = case.judge(&starts, true, &reading, Some(&mut kept));
            all.push((check.name, kept.transcript));
        }
    }
    Ok(Transcripts {
        checks: all,
        starts: starts.summary(),
    })
}

/// Each check's name and the transcript of its first session, and how the sessions started.
#[derive(Debug)]
pub struct Transcripts {
    /// Check by check.
    pub checks: Vec<(&'static str, String)>,
    /// How the sessions started (see [`Starts::summary`]).
    pub starts: String,
}

/// What a judged session leaves for a report: its traffic and its transcript.
#[derive(Default)]
struct Kept {
    capture: Capture,
    transcript: String,
}

/// The replay line of a failure in `check`: the same seed (under an adversary, the failing
/// run's own, and for `adversary` one case), the same check, the same program.
fn replay_line(check: &SimCheck, config: &SimCheckConfig, case: &Case) -> String {
    let mut line = String::from("selectlab check --sim");
    if case.adversity.is_some() {
        line.push_str(&format!(" --seed {}", config.seed));
    }
    if matches!(check.name, "adversary" | PORTABILITY_CHECK) {
        line.push_str(" --cases 1");
    }
    if config.launch.env == Environment::Clean {
        line.push_str(" --clean-env");
    }
    if let Console::File { path, .. } = &config.launch.stdin {
        line.push_str(&format!(" --stdin {}", quoted(path)));
    }
    match &config.dialect {
        DialectChoice::Auto => {}
        DialectChoice::Tutorial => line.push_str(" --dialect tutorial"),
        DialectChoice::Given(path, _) => line.push_str(&format!(" --dialect {}", quoted(path))),
    }
    line.push_str(&format!(" --only {} --", check.name));
    for word in &config.command {
        line.push(' ');
        line.push_str(&quoted(&word.to_string_lossy()));
    }
    line
}

/// A word as a POSIX shell reads it back whole.
fn quoted(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| format!("'{word}'"), |q| q.into_owned())
}

/// The evidence of a failure: the symptom and the replay line; when `full`, the shrunk case's
/// steps and its transcript too (the first and last lines of a long one).
fn evidence(
    check: &SimCheck,
    config: &SimCheckConfig,
    starts: &Starts,
    failed: Failed,
    full: bool,
    reading: &Reading,
) -> Vec<String> {
    let symptom = failed.failure.symptom;
    // The headline, then the program's last standard-error lines, if it ended.
    let mut out = vec![format!("{symptom}: {}", failed.failure.headline())];
    out.extend(failed.failure.what.lines().skip(1).map(str::to_string));
    let again = SimCheckConfig {
        seed: failed.seed,
        ..config.clone()
    };
    out.push(format!(
        "replay: {}",
        replay_line(check, &again, &failed.case)
    ));
    if !full {
        out.push("(not shrunk: its replay line shrinks it and shows the transcript)".into());
        return out;
    }
    let shrunk = shrink(failed.case.clone(), symptom, starts, reading);
    let steps: Vec<String> = shrunk.steps.iter().map(ToString::to_string).collect();
    out.push(format!(
        "shrunk to {} of {} steps: {}",
        shrunk.steps.len(),
        failed.case.steps.len(),
        steps.join("; ")
    ));
    if let Some((_, adversity)) = shrunk.adversity {
        out.push(format!("adversary left on: {}", adversity_names(adversity)));
    }
    let mut kept = Kept::default();
    let keep = config.pcap.as_ref().map(|_| &mut kept);
    let why = shrunk.judge(starts, true, reading, keep).err().map_or_else(
        || "the shrunk case passed when run again: the program is not deterministic".into(),
        |f| format!("{}: {f}", f.symptom),
    );
    let lines: Vec<&str> = why.lines().collect();
    out.push(format!(
        "symptom (shrunk): {}",
        lines.first().unwrap_or(&"")
    ));
    if let Some(path) = &config.pcap {
        out.push(match crate::pcap::write_file(&kept.capture, path) {
            Ok(()) => format!(
                "pcap: the shrunk case's traffic ({} segments) is in {}",
                kept.capture.segments().len(),
                path.display()
            ),
            Err(why) => format!("pcap: not written: {why}"),
        });
    }
    out.push("transcript:".into());
    let body = &lines[1.min(lines.len())..];
    if body.len() <= SHOWN_TRANSCRIPT_LINES {
        out.extend(body.iter().map(|l| (*l).to_string()));
    } else {
        let head = SHOWN_TRANSCRIPT_LINES / 4;
        let tail = SHOWN_TRANSCRIPT_LINES - head;
        out.extend(body[..head].iter().map(|l| (*l).to_string()));
        out.push(format!("… {} lines …", body.len() - head - tail));
        out.extend(body[body.len() - tail..].iter().map(|l| (*l).to_string()));
    }
    out
}

/// The kinds of choice an adversity makes, by name.
fn adversity_names(a: Adversity) -> String {
    let named = [
        ("short I/O", a.short_io_per_mille),
        ("EINTR", a.eintr_per_mille),
        ("resets", a.reset_per_mille),
        ("EMFILE", a.emfile_per_mille),
        ("ENFILE", a.enfile_per_mille),
        ("spurious wake-ups", a.spurious_per_mille),
        ("partial wake-ups", a.defer_per_mille),
        ("held-back clients", a.hold_back_per_mille),
    ];
    let on: Vec<&str> = (named.iter())
        .filter(|(_, rate)| *rate > 0)
        .map(|(name, _)| *name)
        .collect();
    if on.is_empty() {
        "nothing (the failure is faithful Linux)".into()
    } else {
        on.join(", ")
    }
}

/// How a run's report begins when nothing can be judged (exit status 2, no verdicts).
pub const CANNOT_JUDGE: &str = "cannot judge";

/// The name of the calibration's finding, reported before the checks.
pub const DIALECT_FINDING: &str = "dialect";

/// Runs the selected checks, calling `report` with each finding as it comes: first, unless a
/// dialect was given, the calibration's (the dialect learned, or the server's fault in a calm
/// run, after which every check is skipped). A program that cannot be judged (it cannot
/// start, never listens, or the simulator refuses what it does) is an error: no verdicts.
pub fn run(config: &SimCheckConfig, mut report: impl FnMut(&Finding)) -> Result<Checked, String> {
    if config.cases > MAX_CASES {
        return Err(format!("--cases must be at most {MAX_CASES}"));
    }
    if config.command.is_empty() {
        return Err("a command to run is required after --".into());
    }
    let checks = selected(&config.only)?;
    let starts = Starts::new(&config.command, &config.launch, config.fresh_starts);
    let started = std::time::Instant::now();
    let mut head = Vec::new();
    let reading = match &config.dialect {
        DialectChoice::Tutorial => Some(Reading::Tutorial),
        DialectChoice::Given(_, d) => Some(Reading::Dialect(d.clone())),
        DialectChoice::Auto => {
            let (reading, verdict, evidence, kind) = match calibrate::learn(&starts) {
                Ok(d) => {
                    let lines = d.to_string().lines().map(str::to_string).collect();
                    (Some(Reading::Dialect(d)), Verdict::Pass, lines, None)
                }
                Err(Unlearned::CannotJudge(why)) => {
                    return Err(format!("{CANNOT_JUDGE}: {why}"));
                }
                Err(Unlearned::Fault(kind, evidence)) => {
                    (None, Verdict::Fail, evidence, Some(kind))
                }
            };
            let finding = Finding {
                name: DIALECT_FINDING,
                verdict,
                evidence,
                kind,
                elapsed: started.elapsed(),
            };
            report(&finding);
            head.push(finding);
            reading
        }
    };
    let judge = |check: &SimCheck, so_far: &[Finding]| {
        let Some(reading) = &reading else {
            let why = "no dialect to judge by: the server failed the calm calibration run";
            return Ok((Verdict::Skip, vec![why.to_string()]).into());
        };
        match run_check(check, config, &starts, reading) {
            Ok(summary) => Ok((Verdict::Pass, vec![summary]).into()),
            Err(failed) if failed.failure.symptom == Symptom::CannotStart => {
                Err(format!("{CANNOT_JUDGE}: {}", failed.failure.headline()))
            }
            Err(failed) if failed.failure.symptom == Symptom::Refused => Err(format!(
                "{CANNOT_JUDGE}: the simulator cannot run it faithfully ({}): {}",
                check.name,
                served::refusal(&failed.failure).unwrap_or_default()
            )),
            Err(failed) => {
                // Shrinking re-runs the program many times: the first failure is worth it.
                let first = config.shrink && so_far.iter().all(|f| f.verdict == Verdict::Pass);
                // A portability failure that Linux's own schedule shows too is a fault.
                let verdict = if failed.hazard {
                    Verdict::Warn
                } else {
                    Verdict::Fail
                };
                let kind = Some(failed.failure.symptom);
                let evidence = evidence(check, config, &starts, *failed, first, reading);
                Ok(Judged {
                    verdict,
                    evidence,
                    kind,
                    took: None,
                })
            }
        }
    };
    let findings = crate::check::run_each(&checks, |c| c.name, judge, report)?;
    head.extend(findings);
    Ok(Checked {
        findings: head,
        starts: starts.summary(),
    })
}

/// What [`run`] found, and how the program's sessions started.
#[derive(Debug)]
pub struct Checked {
    /// The findings, the calibration's first.
    pub findings: Vec<Finding>,
    /// How the sessions started (see [`Starts::summary`]).
    pub starts: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ClientView;
    use crate::session::schedules::say;

    /// A session whose clients `outside` never got their connections established.
    fn outcome_with_outside(clients: usize, outside: &[usize]) -> Outcome {
        Outcome::of_clients(
            (0..clients)
                .map(|n| ClientView {
                    never_connected: outside.contains(&n),
                    ..ClientView::default()
                })
                .collect(),
        )
    }

    #[test]
    fn clients_that_never_got_in_leave_the_crowd_and_their_steps_reach_nobody() {
        let steps = vec![Step::Crowd(4), say(0, "hello, all"), say(3, "hi")];
        let everyone = never_connected(&outcome_with_outside(4, &[]));
        assert_eq!(connected_only(&steps, &everyone), None);
        let two_outside = never_connected(&outcome_with_outside(4, &[1, 3]));
        assert_eq!(
            connected_only(&steps, &two_outside),
            Some(vec![
                Step::Join(0),
                Step::Join(2),
                say(0, "hello, all"),
                say(3, "hi")
            ])
        );
    }

    #[test]
    fn a_crowd_turned_away_to_its_end_is_named_as_a_capacity() {
        let away = |turned: &[usize]| {
            let mut o = outcome_with_outside(5, &[4]);
            for &n in turned {
                o.clients[n].turned_away = true;
            }
            o
        };
        // The last ones turned away, the very last never in: two let in, two turned away.
        assert_eq!(turned_away_at_capacity(&away(&[2, 3])), Some((2, 2)));
        // One turned away with a later client kept: no capacity explains it.
        assert_eq!(turned_away_at_capacity(&away(&[1])), None);
        assert_eq!(turned_away_at_capacity(&away(&[])), None);
        // A server that died closed every connection: that is what is said.
        let mut died = away(&[2, 3]);
        died.server_trouble = Some(Failure::new(Symptom::Signalled, "it was killed by SIGABRT"));
        assert_eq!(turned_away_at_capacity(&died), None);
    }

    #[test]
    fn memory_fails_a_server_that_holds_half_of_what_a_stopped_reader_was_sent() {
        let peaks = |before: u64, after: u64| {
            let mut o = outcome_with_outside(2, &[]);
            o.server_peak_resident =
                vec![Some(10 << 20), Some(10 << 20), Some(before), Some(after)];
            o
        };
        assert!(schedules::memory_held(&peaks(20 << 20, 27 << 20)).is_ok());
        let held = schedules::memory_held(&peaks(20 << 20, 29 << 20)).expect_err("9 MiB more");
        assert!(held.what.starts_with("its memory grew by 9 MiB"), "{held}");
        assert_eq!(held.symptom, Symptom::Memory);
        let mut unread = peaks(20 << 20, 21 << 20);
        unread.server_peak_resident[3] = None;
        assert!(schedules::memory_held(&unread).is_err());
    }

    #[test]
    fn the_stretches_named_by_index_hold_the_steps_they_mean() {
        let steps = schedule("fd-reuse");
        let off = schedules::descheduled("fd-reuse")
            .expect("fd-reuse deschedules")
            .steps;
        assert!(matches!(
            &steps[off],
            [Step::Say(0, _), Step::Join(2), Step::Reset(1)]
        ));
        let memory = schedule("memory");
        assert!(matches!(
            memory[schedules::MEMORY_BASELINE_STEP],
            Step::StopReading(1)
        ));
        assert_eq!(memory.len(), schedules::MEMORY_BASELINE_STEP + 2);
    }

    #[test]
    fn every_check_has_a_schedule_or_is_the_adversary() {
        for c in SIM_CHECKS {
            assert!(
                matches!(c.name, "adversary" | PORTABILITY_CHECK) || !schedule(c.name).is_empty(),
                "{} has no steps",
                c.name
            );
        }
    }

    #[test]
    fn a_random_case_sends_no_over_long_line_and_never_stops_the_server() {
        for seed in 0..200 {
            for s in random_case(seed, CHECK_ADVERSITY).steps {
                match s {
                    Step::StopServer => panic!("seed {seed} stops the server"),
                    Step::Say(_, b) | Step::Raw(_, b) | Step::Drip(_, b) => {
                        assert!(
                            b.split(|&c| c == b'\n')
                                .all(|l| l.len() <= MAX_SENT_LINE_BYTES)
                        )
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn the_replay_line_quotes_what_a_shell_would_split() {
        let config = SimCheckConfig {
            command: ["python3", "my server.py", "a;b", "x|y", "*", "<in"]
                .map(Into::into)
                .to_vec(),
            seed: 7,
            cases: 3,
            only: Vec::new(),
            shrink: true,
            dialect: DialectChoice::Tutorial,
            launch: Default::default(),
            pcap: None,
            fresh_starts: false,
        };
        let case = Case::named("conversation");
        assert_eq!(
            replay_line(&SIM_CHECKS[0], &config, &case),
            "selectlab check --sim --dialect tutorial --only conversation -- \
             python3 'my server.py' 'a;b' 'x|y' '*' '<in'"
        );
    }
}
