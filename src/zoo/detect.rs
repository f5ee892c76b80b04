//! The suite's detectors, as the zoo runs them: each searches, within a budget, for a session
//! in which the chat properties fail, and returns the first counterexample it finds.
//!
//! Five classes, cheapest first:
//! - [`Class::Generic`]: schedules in the faithful simulator (exactly what Linux loopback
//!   does; clients interleaved at syscall granularity in the fixed fair order), on every
//!   backend and mode, written for no one bug: conversations, bursts, long lines, slow and
//!   paused readers, a crowd;
//! - [`Class::Targeted`]: faithful schedules written after a specific bug was missed (each
//!   names it), plus the chat client's own property: regression coverage, not blind detection;
//! - [`Class::Adversary`]: random schedules under the seeded lawful adversary (short I/O,
//!   EINTR, spurious wakeups, partial waits, network resets, peers held back), in rooms whose
//!   limits, and sometimes the server's descriptor limit, are drawn from the same seed
//!   (`drawn_limits`, `drawn_fd_limit`);
//! - [`Class::Fuzzer`]: random inputs to the `chat_adversary` fuzz target's logic, whose bytes
//!   choose the script and every decision (what `cargo fuzz run chat_adversary` explores, less
//!   the coverage guidance);
//! - [`Class::RealLoad`]: the server on real loopback sockets with a small real load (clients
//!   in threads, running truly concurrently).

use std::fmt;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{Bug, Bugs};
use crate::addr::{Family, SockAddr, SockType};
use crate::chat::client::{ChatClientApp, Ending};
use crate::chat::serve::listen;
use crate::chat::server::Limits;
use crate::fuzzing::chat_session;
use crate::kernel::{Kernel, Mode};
use crate::load::{self, LoadConfig, LoadReport};
use crate::programs::chat_room::{ServeOptions, serve_in_thread};
use crate::reactor::Reactor;
use crate::readiness::{BACKEND_MODES, Backend};
use crate::session::case::{self, Shrink};
use crate::session::properties;
use crate::session::schedules::{self, say};
use crate::session::script::{CHAT_FUZZ_CLIENTS, ChatScript};
use crate::session::{Failure, Session, SessionConfig, Step, Symptom};
use crate::sim::Sim;
use crate::sim::decide::{Adversity, Decider, SplitMix64};

/// A class of detector (the columns of the table in `docs/src/zoo.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Faithful schedules written for no one bug.
    Generic,
    /// Faithful schedules written after a specific bug was missed.
    Targeted,
    /// Random schedules under the seeded lawful adversary.
    Adversary,
    /// Random inputs to the `chat_adversary` fuzz target's logic.
    Fuzzer,
    /// A small load on real sockets.
    RealLoad,
}

impl Class {
    /// Every class, cheapest first.
    pub const ALL: [Class; 5] = [
        Class::Generic,
        Class::Targeted,
        Class::Adversary,
        Class::Fuzzer,
        Class::RealLoad,
    ];

    /// The class's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Generic => "generic",
            Class::Targeted => "targeted",
            Class::Adversary => "adversary",
            Class::Fuzzer => "fuzzer",
            Class::RealLoad => "real-load",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much searching each detector may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Random cases for the adversary and the fuzzer.
    pub cases: u32,
    /// Wall time for one detector, whatever the cases.
    pub time: Duration,
    /// Whether to shrink a counterexample (re-running it up to
    /// [`MAX_SHRINK_RUNS`](crate::session::case::MAX_SHRINK_RUNS) times)
    /// before writing its transcript; without, the evidence is the failure message alone.
    pub shrink: bool,
}

/// A counterexample.
#[derive(Debug, Clone)]
pub struct Caught {
    /// Who found it.
    pub class: Class,
    /// Cases run, this one included.
    pub cases: u32,
    /// The kind of fault it showed.
    pub symptom: Symptom,
    /// What failed, in one line (the failure's headline).
    pub headline: String,
    /// What failed, and the (shrunk, for simulated sessions) transcript.
    pub evidence: String,
}

/// Most characters of a headline a report shows (the counterexample file has it all).
pub const HEADLINE_SHOWN_CHARS: usize = 110;

impl Caught {
    /// A counterexample `class` found after `cases` cases, failing as `failure`, with
    /// `evidence`.
    fn new(class: Class, cases: u32, failure: &Failure, evidence: String) -> Caught {
        Caught {
            class,
            cases,
            symptom: failure.symptom,
            headline: failure.headline().to_string(),
            evidence,
        }
    }

    /// The kind and the headline, cut to [`HEADLINE_SHOWN_CHARS`] characters.
    pub fn shown_symptom(&self) -> String {
        let mut shown: String = self.headline.chars().take(HEADLINE_SHOWN_CHARS).collect();
        if shown.len() < self.headline.len() {
            shown.push_str("...");
        }
        format!("{}: {shown}", self.symptom)
    }
}

/// A simulated case: a session and the steps its clients take.
#[derive(Debug, Clone)]
struct Case {
    config: SessionConfig,
    steps: Vec<Step>,
    /// Whether every property applies, or only "settles, no busy loop, never blocks" (a
    /// machine out of descriptors cannot let every client in, so delivery is not judged).
    full: bool,
}

impl Case {
    fn new(
        backend: Backend,
        mode: Mode,
        decide: Decider,
        limits: Limits,
        steps: Vec<Step>,
    ) -> Case {
        Case {
            config: SessionConfig {
                backend,
                mode,
                limits,
                decide,
                transcript: false,
                ..SessionConfig::default()
            },
            steps,
            full: true,
        }
    }

    /// Runs the case with `bugs`; the error says what failed.
    fn judge(&self, bugs: Bugs, transcript: bool) -> Result<(), Failure> {
        let config = SessionConfig {
            bugs,
            transcript,
            ..self.config.clone()
        };
        let limits = config.limits;
        let session = Session::new(config).map_err(|e| {
            Failure::new(
                Symptom::CannotStart,
                format!("the server failed to start: {e}"),
            )
        })?;
        let (o, settled) = session.run_all(&self.steps);
        // A busy loop's transcript repeats itself: its tail is shown.
        case::settled(&self.steps, settled, &o).map_err(|f| {
            let shown = tail(&f.transcript);
            f.with_transcript(&shown)
        })?;
        if self.full {
            let clients = CHAT_FUZZ_CLIENTS.max(o.clients.len());
            properties::check(&self.steps, &o, clients, &limits)
        } else {
            properties::check_liveness(self.steps.len(), &o)
        }
    }

    /// The evidence of a failing case: shrunk and with its transcript if the budget allows,
    /// else the failure alone.
    fn evidence(self, bugs: Bugs, budget: Budget, why: &Failure) -> String {
        if budget.shrink {
            self.shrunk(bugs, why.symptom)
        } else {
            why.to_string()
        }
    }

    /// Shrinks the case while it fails as `symptom` ([`case::shrink`]), then writes the
    /// transcript of what is left.
    fn shrunk(self, bugs: Bugs, symptom: Symptom) -> String {
        let small = case::shrink(self, symptom, |c: &Case| c.judge(bugs, false));
        let why = small
            .judge(bugs, true)
            .expect_err("sessions are deterministic: the shrunk case still fails");
        let steps: Vec<String> = small.steps.iter().map(ToString::to_string).collect();
        format!(
            "{} {:?}, {} steps: {}\n{why}",
            small.config.backend,
            small.config.mode,
            small.steps.len(),
            steps.join("; ")
        )
    }
}

impl Shrink for Case {
    fn smaller(&self) -> Vec<Case> {
        (case::smaller_steps(&self.steps).into_iter())
            .map(|steps| Case {
                steps,
                ..self.clone()
            })
            .collect()
    }
}

/// Lines of a busy loop's transcript worth showing (the loop repeats itself).
const TAIL_LINES: usize = 60;

/// The last lines of a transcript.
fn tail(transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// A targeted schedule that matters on every backend and mode.
const ANY_MODE: bool = false;
/// A targeted schedule that only edge triggering can get wrong.
const EDGE_ONLY: bool = true;
/// Lines in the burst schedule (more than one flush's send budget times its slices).
const BURST_LINES: usize = 20_000;
/// Lines queued for one paused reader in the big-queue schedule, one chunk each: more than
/// one edge-triggered flush sends (`MAX_SENDS_PER_FLUSH` sends of `MAX_SLICES_PER_SEND`).
const BIG_QUEUE_LINES: usize = 30_000;
/// Lines sent while a reader is paused: more than its socket holds, less than the cap.
const PAUSE_LINES: usize = 5_000;
/// The adversary's rates in the zoo: everything lawful that loses no data the model cannot
/// account for (a network reset is accounted for: that client's share becomes a prefix).
pub const ZOO_ADVERSITY: Adversity = Adversity {
    spurious_per_mille: 150,
    defer_per_mille: 150,
    reset_per_mille: 10,
    ..Adversity::PARTIAL_IO
};

/// A faithful schedule: the room's limits, the steps, whether it needs edge triggering to
/// matter (it is run on that mode only: it is long), and the bug it was written after, if it
/// was written for one.
type Schedule = (Limits, Vec<Step>, bool, Option<Bug>);

/// The faithful detectors' schedules, in the order they run.
fn schedules() -> Vec<Schedule> {
    vec![
        big_queue(),
        twice_slow(),
        reset_while_held(),
        (
            Limits::default(),
            schedules::paused(PAUSE_LINES),
            ANY_MODE,
            None,
        ),
        paused_twice(),
        (Limits::default(), schedules::conversation(), ANY_MODE, None),
        (
            Limits::default(),
            schedules::burst(BURST_LINES),
            ANY_MODE,
            None,
        ),
        over_long(),
        slow_reader(),
        (Limits::default(), schedules::crowd(), ANY_MODE, None),
    ]
}

/// A line over the limit, and the others carrying on.
fn over_long() -> Schedule {
    let long = Limits {
        max_line_bytes: 64,
        ..Limits::default()
    };
    (long, schedules::long_line(100), ANY_MODE, None)
}

/// A reader that stops for good while the others talk past a small cap.
fn slow_reader() -> Schedule {
    let small_cap = Limits {
        outbound_cap_bytes: 4096,
        ..Limits::default()
    };
    (small_cap, schedules::slow_reader(), ANY_MODE, None)
}

/// [`schedules::paused`] twice: what the first round did to the registration shows in the second.
fn paused_twice() -> Schedule {
    let mut steps = schedules::paused(PAUSE_LINES);
    steps.extend([
        Step::Pause(1),
        Step::Raw(2, b"cc\n".repeat(PAUSE_LINES)),
        Step::Resume(1),
    ]);
    (Limits::default(), steps, ANY_MODE, None)
}

/// Briefly slow twice, the timeout apart: the soft limit's clock must restart in between.
fn twice_slow() -> Schedule {
    let soft = Limits {
        outbound_soft_bytes: 8 * 1024,
        ..Limits::default()
    };
    let mut steps = vec![Step::Join(0), Step::Join(1)];
    for _ in 0..2 {
        steps.extend([
            Step::Pause(1),
            Step::Raw(0, b"dd\n".repeat(PAUSE_LINES)),
            Step::Resume(1),
            Step::Sleep(soft.slow_consumer_timeout + Duration::from_secs(1)),
        ]);
    }
    (soft, steps, ANY_MODE, Some(Bug::SoftLimitTimerNotReset))
}

/// A client resets while the room is held for a paused reader: its descriptor, parked with no
/// interest, still reports ERR and HUP, and the server must read it to its end.
fn reset_while_held() -> Schedule {
    let soft = Limits {
        outbound_soft_bytes: 8 * 1024,
        ..Limits::default()
    };
    let steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Pause(1),
        Step::Raw(0, b"ee\n".repeat(PAUSE_LINES)),
        Step::Reset(2),
        Step::Resume(1),
    ];
    (soft, steps, ANY_MODE, Some(Bug::ZeroMaskAssumedSilent))
}

/// More lines queued for one reader than a flush's send budget moves while the reader drains
/// as fast as the server sends: an interactive client's lines, each read alone.
fn big_queue() -> Schedule {
    // No hold: the paused reader's queue (about 1.5 MB) stays under this soft limit, and the
    // default cap is above both; under the default soft limit the room would hold, and the
    // flush would never meet its budget.
    let roomy = Limits {
        outbound_soft_bytes: 4 << 20,
        ..Limits::default()
    };
    let steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Pause(1),
        Step::Drip(0, b"a\n".repeat(BIG_QUEUE_LINES)),
        Step::Resume(1),
    ];
    (roomy, steps, EDGE_ONLY, Some(Bug::EtWriteQuantumNoRearm))
}

/// More clients than descriptors: only "no busy loop, never blocks" is judged.
fn fd_exhaustion(backend: Backend, mode: Mode) -> Case {
    let steps = vec![
        Step::Crowd(4),
        say(0, "hi"),
        Step::Sleep(Duration::from_millis(250)),
        Step::Exit(0),
        Step::Sleep(Duration::from_millis(250)),
        say(1, "anyone new?"),
    ];
    let mut case = Case::new(backend, mode, Decider::faithful(), Limits::default(), steps);
    // Descriptors 3..: listener, epoll, then each client's socket and its accepted twin.
    case.config.fd_limit = 9;
    case.full = false;
    case
}

/// The faithful simulator: the schedules of `class` ([`Class::Generic`] or
/// [`Class::Targeted`]) on every backend and mode; the targeted ones end with the chat
/// client's own property.
pub fn faithful(bugs: Bugs, budget: Budget, class: Class) -> Option<Caught> {
    let targeted = class == Class::Targeted;
    let mut cases = 0;
    for (backend, mode) in BACKEND_MODES {
        let mut all: Vec<Case> = schedules()
            .into_iter()
            .filter(|(_, _, edge_only, written_for)| {
                (mode.edge || !edge_only) && written_for.is_some() == targeted
            })
            .map(|(limits, steps, ..)| Case::new(backend, mode, Decider::faithful(), limits, steps))
            .collect();
        if targeted {
            // Written after the EMFILE loops (accept_emfile_spin_redis and its kin).
            all.push(fd_exhaustion(backend, mode));
        }
        for case in all {
            cases += 1;
            if let Err(why) = case.judge(bugs, false) {
                return Some(Caught::new(
                    class,
                    cases,
                    &why,
                    case.evidence(bugs, budget, &why),
                ));
            }
        }
    }
    if !targeted {
        return None;
    }
    // Written after tutorial_client_misses_server_exit.
    cases += 1;
    client_notices_server_exit(bugs)
        .err()
        .map(|why| Caught::new(class, cases, &why, why.to_string()))
}

/// The chat client, in the simulator: when its server goes away it must say so and end.
fn client_notices_server_exit(bugs: Bugs) -> Result<(), Failure> {
    let fail = |e: Errno| {
        let what = format!("the client's set-up failed: {e}");
        Failure::new(Symptom::CannotStart, what)
    };
    let mut sim = Sim::faithful();
    let addr = SockAddr::Inet("127.0.0.1:33333".parse().expect("an address"));
    let listener = listen(&mut sim, &addr, 8).map_err(fail)?;
    let sock = sim.socket(Family::Inet, SockType::Stream).map_err(fail)?;
    match sim.connect(sock, &addr) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(fail(e)),
    }
    let (server_side, _) = sim.accept(listener).map_err(fail)?;
    let (stdin, _typist) = sim.pipe().map_err(fail)?;
    let mut printed = Vec::new();
    let mut reactor = Reactor::new(&mut sim, Backend::Poll).map_err(fail)?;
    let mut app =
        ChatClientApp::new(&mut reactor.io(&mut sim), stdin, sock, &mut printed).map_err(fail)?;
    app.set_bugs(bugs);
    sim.close(server_side).map_err(fail)?;
    for _ in 0..CLIENT_TURNS {
        if app.ending().is_some() {
            break;
        }
        reactor
            .turn(&mut sim, &mut app, Some(Duration::ZERO))
            .map_err(|e| Failure::new(Symptom::Exited, format!("the client's loop failed: {e}")))?;
    }
    match app.ending() {
        Some(Ending::ServerGone) => Ok(()),
        other => Err(Failure::new(
            Symptom::Hang,
            format!(
                "the server closed the connection; after {CLIENT_TURNS} turns the client's ending is {other:?}"
            ),
        )),
    }
}

/// Turns the client gets to notice its server's end of stream (it needs one).
const CLIENT_TURNS: usize = 100;

/// Random scripts under the seeded adversary.
pub fn adversary(bugs: Bugs, budget: Budget, seed: u64) -> Option<Caught> {
    let started = Instant::now();
    let mut rng = SplitMix64(seed);
    for case_no in 1..=budget.cases {
        if started.elapsed() > budget.time {
            return None;
        }
        let script = ChatScript::decode(&rng.bytes(crate::session::script::CHAT_FUZZ_SCRIPT_BYTES));
        let decide = Decider::seeded(rng.next(), ZOO_ADVERSITY);
        let limits = drawn_limits(&mut rng, script.limits);
        let mut case = Case::new(script.backend, script.mode, decide, limits, script.steps);
        // The script's bursts are sized for the fuzz target's small client windows.
        case.config.client_rcvbuf_bytes =
            Some(crate::session::script::CHAT_FUZZ_CLIENT_RCVBUF_BYTES);
        if let Some(fd_limit) = drawn_fd_limit(&mut rng) {
            // The server's own table (as a separate process has), so its clients still connect;
            // who gets in is then the schedule's, and only liveness is judged.
            case.config.fd_table_per_host = true;
            case.config.fd_limit = fd_limit;
            case.full = false;
        }
        if let Err(why) = case.judge(bugs, false) {
            let evidence = case.shrunk(bugs, why.symptom);
            return Some(Caught::new(Class::Adversary, case_no, &why, evidence));
        }
    }
    None
}

/// The room's limits for one adversary case: every other case keeps the script's (the
/// defaults), the rest draw the soft limit, the cap and the slow-consumer timeout over their
/// range, log-uniformly: 256 B to 32 KiB soft, a cap of 64 to 256 KiB, 100 ms to 1.6 s. A
/// random script queues a few hundred lines at most, so with the defaults (1 MiB, 16 MiB,
/// 10 s) no hold, cap or timeout would ever happen; drawn for every bug alike, they stay blind.
/// The cap stays above what a script's bursts can queue at once for a reader that keeps up
/// (`CHAT_FUZZ_MAX_BURST_LINES` lines of about 50 bytes, some 50 KB): below it, the server
/// would rightly drop clients that read, which the checker takes for a fault.
fn drawn_limits(rng: &mut SplitMix64, limits: Limits) -> Limits {
    if rng.next().is_multiple_of(2) {
        return limits;
    }
    Limits {
        outbound_soft_bytes: 256 << (rng.next() % 8),
        outbound_cap_bytes: (64 << 10) << (rng.next() % 3),
        slow_consumer_timeout: Duration::from_millis(100 << (rng.next() % 5)),
        ..limits
    }
}

/// The server's descriptor limit for one adversary case in four: its listener and epoll
/// descriptor and a few connections (3 to 5 descriptors in all), so that accept meets EMFILE
/// while clients wait in the backlog. Drawn for every bug alike.
fn drawn_fd_limit(rng: &mut SplitMix64) -> Option<usize> {
    if !rng.next().is_multiple_of(4) {
        return None;
    }
    Some(3 + (rng.next() % 3) as usize)
}

/// Random inputs to the `chat_adversary` target's logic (script and decisions from bytes).
pub fn fuzzer(bugs: Bugs, budget: Budget, seed: u64) -> Option<Caught> {
    let started = Instant::now();
    let mut rng = SplitMix64(seed ^ 0xF022);
    for case_no in 1..=budget.cases {
        if started.elapsed() > budget.time {
            return None;
        }
        let len = crate::session::script::CHAT_FUZZ_SCRIPT_BYTES + (rng.next() % 2048) as usize;
        let data = rng.bytes(len);
        if let Err(why) = chat_session(&data, bugs) {
            let evidence = format!("input ({} bytes): {data:02x?}\n{why}", data.len());
            return Some(Caught::new(Class::Fuzzer, case_no, &why, evidence));
        }
    }
    None
}

/// Clients in the real-load detector.
pub const REAL_CLIENTS: usize = 12;
/// Lines each real client sends.
pub const REAL_LINES: usize = 200;
/// How long one real-load run may take in all (the server stops by itself after it).
pub const REAL_DEADLINE: Duration = Duration::from_secs(10);

/// The server on real loopback sockets, on every backend and mode, with a small load: every
/// client connects at once, sends its lines while reading everything, then leaves.
pub fn real_load(bugs: Bugs) -> Option<Caught> {
    for (i, (backend, mode)) in BACKEND_MODES.into_iter().enumerate() {
        if let Err(why) = real_run(bugs, backend, mode, REAL_CLIENTS, REAL_LINES) {
            let evidence = format!("{backend} {mode:?}: {why}");
            return Some(Caught::new(Class::RealLoad, i as u32 + 1, &why, evidence));
        }
    }
    None
}

/// One real run of `clients` x `lines` lines of 64 bytes against the server with `bugs`;
/// the error says what went wrong (a lost, duplicated or reordered line, a dropped client, a
/// stall past the deadline, a busy server).
pub fn real_run(
    bugs: Bugs,
    backend: Backend,
    mode: Mode,
    clients: usize,
    lines: usize,
) -> Result<(), Failure> {
    let options = ServeOptions {
        backend,
        mode,
        limits: Limits::default(),
        stop_after: Some(clients as u64),
        run_for: Some(REAL_DEADLINE + Duration::from_secs(1)),
        bugs,
    };
    let cannot_start = |what: String| Failure::new(Symptom::CannotStart, what);
    let (addr, server) = serve_in_thread(options).map_err(|e| cannot_start(e.to_string()))?;
    let load = LoadConfig {
        addr,
        clients,
        lines,
        bytes: 64,
        deadline: REAL_DEADLINE,
        progress: indicatif::ProgressBar::hidden(),
    };
    let report = load::run(&load);
    let (stats, log) = (server.join())
        .map_err(|_| Failure::new(Symptom::Exited, "the server thread panicked"))?
        .map_err(|e| Failure::new(Symptom::Exited, e))?;
    let log_tail: Vec<&str> = log.lines().rev().take(3).collect();
    let report = report.map_err(|e| {
        let what = format!("{e} (server log: {})", log_tail.join(" | "));
        Failure::new(Symptom::Lost, what)
    })?;
    if !report.perfect() {
        let what = format!(
            "{report}\n(server log, last lines: {})",
            log_tail.join(" | ")
        );
        return Err(Failure::new(load_symptom(&report), what));
    }
    let bound = report.expected + stats.bytes_in + stats.bytes_out;
    if stats.events > bound {
        let what = format!(
            "{} server events for {bound} units of work: a busy loop",
            stats.events
        );
        return Err(Failure::new(Symptom::Spin, what));
    }
    Ok(())
}

/// The kind of a real load's imperfection, the most particular first: an echo, a torn
/// line, a reordering, a duplicate, else lines or clients lost.
fn load_symptom(r: &LoadReport) -> Symptom {
    if r.echoes > 0 {
        Symptom::Echoed
    } else if r.garbled > 0 {
        Symptom::Torn
    } else if r.reordered > 0 {
        Symptom::Reordered
    } else if r.duplicates > 0 {
        Symptom::Extra
    } else {
        Symptom::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by cargo-mutants (a cap drawn below its floor went unnoticed): the adversary's
    /// limits keep the ranges `docs/src/zoo.md` gives, reach both ends of each, and leave about
    /// half of the scripts in the default room.
    #[test]
    fn drawn_limits_keep_their_ranges_and_reach_both_ends() {
        let mut rng = SplitMix64(7);
        let draws: Vec<Limits> = (0..2000)
            .map(|_| drawn_limits(&mut rng, Limits::default()))
            .collect();
        let drawn: Vec<&Limits> = draws.iter().filter(|l| **l != Limits::default()).collect();
        assert!((900..1100).contains(&drawn.len()), "{} drawn", drawn.len());
        let span = |f: fn(&Limits) -> u128| {
            let values = drawn.iter().map(|l| f(l));
            (values.clone().min(), values.max())
        };
        let soft = span(|l| l.outbound_soft_bytes as u128);
        assert_eq!(soft, (Some(256), Some(32 << 10)));
        let cap = span(|l| l.outbound_cap_bytes as u128);
        assert_eq!(cap, (Some(64 << 10), Some(256 << 10)));
        let timeout = span(|l| l.slow_consumer_timeout.as_millis());
        assert_eq!(timeout, (Some(100), Some(1600)));
    }

    /// The adversary's descriptor limit: one case in four, from 3 to 5 descriptors.
    #[test]
    fn drawn_fd_limits_keep_their_range_and_rate() {
        let mut rng = SplitMix64(7);
        let limits: Vec<usize> = (0..2000).filter_map(|_| drawn_fd_limit(&mut rng)).collect();
        assert!((400..600).contains(&limits.len()), "{} drawn", limits.len());
        assert_eq!(limits.iter().min(), Some(&3));
        assert_eq!(limits.iter().max(), Some(&5));
    }
}
