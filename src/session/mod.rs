//! The harness: a chat server (the reference room, or any program behind the [`Server`]
//! boundary) in scripted sessions in the simulator, and the properties that judge them.
//!
//! - This file: a session. The server runs in a reactor; clients are driven step by step and
//!   run between any two of the server's syscalls (see [`interleave`](crate::sim::interleave));
//!   the transcript is written for people (one event per line, virtual time, who did what, the
//!   bytes, and every choice of the lawful adversary).
//! - `server`: the [`Server`] boundary and the reference room behind it; `crowd`: the clients.
//! - [`schedules`]: the sessions the checks and the zoo's detectors run.
//! - [`script`]: a scripted session from arbitrary bytes (the `chat_adversary` fuzz target's
//!   decoding, drawn by the zoo's adversary and `check --sim`'s random cases too).
//! - [`properties`]: the chat properties, as a checker over a finished session.
//! - [`case`]: what every detector that runs sessions shares: the settle check, smaller
//!   cases, and the shrink that keeps a failure's symptom.
//! - [`symptom`]: the kinds of fault a failed session shows, and the failure that carries one.
//! - [`dialect`]: another server's wording, learned from a calm run or read from a file, and
//!   the lines its clients heard read back into who said what.
//!
//! The snapshot tests, the fuzz target, `selectlab demo`, `check --sim` and the zoo all run
//! sessions through here.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::bugs::Bugs;
use crate::chat::serve::ServeConfig;
use crate::chat::server::Limits;
use crate::kernel::{Kernel, Mode, Shutdown, SockOpt};
use crate::readiness::Backend;
use crate::sim::capture::Capture;
use crate::sim::decide::Decider;
use crate::sim::interleave::Peers;
use crate::sim::transcript::Host;
use crate::sim::{Sim, SimConfig};
use crowd::{Crowd, Notes};
pub use server::{Reference, Server};
pub use symptom::{Failure, Symptom};

pub mod case;
mod crowd;
pub mod dialect;
pub mod properties;
pub mod schedules;
pub mod script;
mod server;
pub mod symptom;

/// The server's address inside the simulator.
pub const SESSION_SERVER_ADDR: &str = "127.0.0.1:33333";
/// Most clients one session may have.
pub const MAX_SESSION_CLIENTS: usize = 1000;
/// Most reactor turns in a row without any client call that one step may take to settle: a
/// server that needs more is spinning (a well-behaved one needs a few).
pub const MAX_SETTLE_TURNS: usize = 10_000;
/// Most rounds (client calls, then a server turn) one step may take in all: a bound on the
/// loop, far above what any session's steps need.
pub const MAX_SETTLE_ROUNDS: usize = 1_000_000;
/// Most times the server may wake while a `Sleep` step's time passes.
const MAX_TURNS_PER_SLEEP: usize = 10_000;
/// Most slow-consumer timeouts a finished session waits out for a held room (each drops the
/// readers that held it; more only if new ones keep it held).
const MAX_HELD_ROOM_WAITS: usize = 4;
/// Most bytes the clients of one session may receive in all: a server that sends more (one
/// that resends without end, say) fails the session with ENOBUFS instead of exhausting memory.
pub const MAX_SESSION_RECEIVED_BYTES: u64 = 128 << 20;
/// Most bytes a client reads per call.
const CLIENT_READ_BYTES: usize = 64 * 1024;

/// One step of a session. Clients are numbered from 0 and named c1, c2, ... in transcripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Client `n` connects (each client joins at most once).
    Join(usize),
    /// Clients `0..n` connect at once (those that have not joined yet, in order), and only
    /// then does the server look.
    Crowd(usize),
    /// Client `n` sends `text` and a newline.
    Say(usize, Vec<u8>),
    /// Client `n` sends raw bytes (no newline added).
    Raw(usize, Vec<u8>),
    /// Client `n` sends raw bytes one line per syscall (as an interactive client does), so
    /// the server reads them in as many small chunks as the schedule allows.
    Drip(usize, Vec<u8>),
    /// Client `n` types `exit`: it closes its connection.
    Exit(usize),
    /// Client `n`'s connection is reset (SO_LINGER 0, then close).
    Reset(usize),
    /// Client `n` stops reading (a slow consumer from now on).
    StopReading(usize),
    /// Client `n` is paused (a stopped process): it neither reads nor sends; what it types
    /// meanwhile waits in its outbox.
    Pause(usize),
    /// Client `n` carries on: it sends what it typed and reads what piled up.
    Resume(usize),
    /// Virtual time passes.
    Sleep(Duration),
    /// The server goes away.
    StopServer,
}

impl Step {
    /// The client a step is about, if one.
    pub fn client(&self) -> Option<usize> {
        match self {
            Step::Join(n)
            | Step::Say(n, _)
            | Step::Raw(n, _)
            | Step::Drip(n, _)
            | Step::Exit(n)
            | Step::Reset(n)
            | Step::StopReading(n)
            | Step::Pause(n)
            | Step::Resume(n) => Some(*n),
            Step::Crowd(_) | Step::Sleep(_) | Step::StopServer => None,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Join(n) => write!(f, "c{} joins", n + 1),
            Step::Crowd(n) => write!(f, "c1..c{n} join at once"),
            Step::Say(n, text) => write!(f, "c{} says {}", n + 1, Shown(text)),
            Step::Raw(n, bytes) => write!(
                f,
                "c{} sends {} ({} bytes)",
                n + 1,
                Shown(bytes),
                bytes.len()
            ),
            Step::Drip(n, bytes) => write!(
                f,
                "c{} sends {} line by line ({} bytes)",
                n + 1,
                Shown(bytes),
                bytes.len()
            ),
            Step::Exit(n) => write!(f, "c{} exits", n + 1),
            Step::Reset(n) => write!(f, "c{} resets", n + 1),
            Step::StopReading(n) => write!(f, "c{} stops reading", n + 1),
            Step::Pause(n) => write!(f, "c{} pauses", n + 1),
            Step::Resume(n) => write!(f, "c{} carries on", n + 1),
            Step::Sleep(d) => write!(f, "{} ms pass", d.as_millis()),
            Step::StopServer => f.write_str("the server stops"),
        }
    }
}

/// How a session is set up. The backend, mode, limits and bugs are selectlab's own server's
/// ([`Session::new`]); another server ([`Session::with_server`]) has its own.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The server's backend.
    pub backend: Backend,
    /// The server's mode (edge-triggered needs epoll).
    pub mode: Mode,
    /// The room's limits (the checker's model follows them for any server).
    pub limits: Limits,
    /// The simulator's decision source.
    pub decide: Decider,
    /// Whether the transcript lists every kernel call (else only the adversary's choices).
    pub kernel_calls: bool,
    /// Whether to write a transcript at all (a fuzzer runs without one, and re-runs the same
    /// input with one when it has something to show: the session is deterministic).
    pub transcript: bool,
    /// Zoo bugs switched on in the server and its reactor ([`Bugs::NONE`]: the reference).
    pub bugs: Bugs,
    /// The simulated machine's RLIMIT_NOFILE (shared by the server and the clients).
    pub fd_limit: usize,
    /// Whether clients keep every line they hear (for the checker), or only count them (for
    /// benchmarks at scale: memory stays flat, and `MAX_SESSION_RECEIVED_BYTES` does not apply;
    /// the round bounds still do).
    pub keep_lines: bool,
    /// SO_RCVBUF each client sets before it connects (`None`: the kernel's default): a small
    /// window makes the server's sends short and EAGAIN with little traffic, as a client on a
    /// slow link would.
    pub client_rcvbuf_bytes: Option<i32>,
    /// A descriptor table per host, as separate processes have (a server that is another
    /// program needs it; selectlab's own server and its clients share one, which is what
    /// every existing transcript shows).
    pub fd_table_per_host: bool,
    /// Read the server's peak memory after every step ([`Outcome::server_peak_resident`]).
    pub watch_server_memory: bool,
    /// Keep the segments the session puts on the simulated wire ([`Outcome::capture`]).
    pub capture: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            backend: Backend::Epoll,
            mode: Mode::LEVEL,
            limits: Limits::default(),
            decide: Decider::faithful(),
            kernel_calls: false,
            transcript: true,
            bugs: Bugs::NONE,
            fd_limit: SimConfig::default().fd_limit,
            keep_lines: true,
            client_rcvbuf_bytes: None,
            fd_table_per_host: false,
            watch_server_memory: false,
            capture: false,
        }
    }
}

/// What a client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientView {
    /// Its address, once it joined.
    pub addr: Option<SockAddr>,
    /// Whole lines it received, in order (none kept when the session only counts them).
    pub lines: Vec<Vec<u8>>,
    /// Whole lines it received, counted.
    pub lines_heard: u64,
    /// Whether it saw the server close (end of stream or an error).
    pub server_gone: bool,
    /// Whether that was the network's doing (the adversary reset the connection), not the
    /// server's.
    pub reset_by_network: bool,
    /// It joined while the server held the room for a slow reader (lines typed before could
    /// still reach it: they were waiting in the senders' sockets).
    pub joined_while_held: bool,
    /// It left while the server held the room (lines typed before it left could not reach
    /// it: they were still waiting in the senders' sockets).
    pub left_while_held: bool,
    /// Its connection was never established: the server's accept queue was full through
    /// every SYN retransmission so far (it is still connecting when the session ends).
    pub never_connected: bool,
    /// The server closed its connection before a byte went either way: a server at its
    /// capacity turning a newcomer away.
    pub turned_away: bool,
}

/// A running session.
pub struct Session {
    sim: Sim,
    server: Box<dyn Server>,
    crowd: Crowd,
    /// Virtual time that passed while steps settled (a server that blocks makes it pass).
    stalled: Duration,
    /// Steps run so far.
    steps_run: usize,
    /// The first step during which the server held the room (paused reading) for a slow reader.
    first_held_step: Option<usize>,
    /// SO_RCVBUF for each new client ([`SessionConfig::client_rcvbuf_bytes`]).
    client_rcvbuf_bytes: Option<i32>,
    /// Why the server could not go on, the first time it could not.
    trouble: Option<Failure>,
    /// The server is descheduled: it makes no call while steps run, and sees them all at
    /// once when it runs again (see [`Session::run_descheduled`]).
    descheduled: bool,
    /// The server's peak memory after each step so far, when watched.
    peak_resident: Option<Vec<Option<u64>>>,
}

/// Longest payload a transcript line shows in full; longer ones show their start and length.
pub const SHOW_MAX_BYTES: usize = 96;

/// Bytes as a quoted string: printable ASCII as is, `\n` and other bytes escaped; formatted
/// only when the transcript is written.
struct Shown<'a>(&'a [u8]);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"")?;
        for &b in self.0.iter().take(SHOW_MAX_BYTES) {
            match b {
                b'\n' => f.write_str("\\n")?,
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")?;
        if self.0.len() > SHOW_MAX_BYTES {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// An address as people write it (`127.0.0.1:33333`), not as Python prints it.
struct Plain<'a>(&'a SockAddr);

impl std::fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.inet() {
            Some(a) => write!(f, "{a}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Session {
    /// Starts selectlab's own server ([`Reference`]) as the config says.
    pub fn new(config: SessionConfig) -> Result<Session, Errno> {
        let serve = ServeConfig {
            limits: config.limits,
            mode: config.mode,
            bugs: config.bugs,
        };
        Session::with_server(config.clone(), |sim| {
            let server = Reference::start(sim, config.backend, serve)?;
            Ok(Box::new(server))
        })
    }

    /// Starts a session whose room `start` serves (it is given the simulated machine).
    pub fn with_server(
        config: SessionConfig,
        start: impl FnOnce(&mut Sim) -> Result<Box<dyn Server>, Errno>,
    ) -> Result<Session, Errno> {
        let sim_config = SimConfig {
            transcript: config.transcript,
            fd_limit: config.fd_limit,
            fd_table_per_host: config.fd_table_per_host,
            capture: config.capture,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(sim_config, config.decide);
        let server = start(&mut sim)?;
        let server_log = server.log();
        let mut s = Session {
            sim,
            server,
            crowd: Crowd {
                clients: Vec::new(),
                read_buf: vec![0; CLIENT_READ_BYTES],
                notes: Notes {
                    text: String::new(),
                    enabled: config.transcript,
                    kernel_calls: config.kernel_calls,
                    records_seen: 0,
                    server_log,
                },
                calls: 0,
                received_bytes: 0,
                given: crowd::Given::default(),
                keep_lines: config.keep_lines,
                busy: BTreeSet::new(),
            },
            stalled: Duration::ZERO,
            steps_run: 0,
            first_held_step: None,
            client_rcvbuf_bytes: config.client_rcvbuf_bytes,
            trouble: None,
            descheduled: false,
            peak_resident: config.watch_server_memory.then(Vec::new),
        };
        // Another program starts listening only once it runs.
        let listening = s.server.address();
        if let Some(addr) = &listening {
            s.note(format_args!("server listens on {}", Plain(addr)));
        }
        s.settle()?;
        match (&listening, s.server.address()) {
            (None, Some(addr)) => s.note(format_args!("server listens on {}", Plain(&addr))),
            (None, None) => s.note(format_args!("the server does not listen")),
            (Some(_), _) => {}
        }
        Ok(s)
    }

    fn note(&mut self, line: std::fmt::Arguments<'_>) {
        self.crowd.notes.add(&self.sim, line);
    }

    /// The server's counters so far.
    pub fn stats(&self) -> crate::chat::serve::Stats {
        self.server.stats()
    }

    /// Every client `n` of `lines` types its line at once (a line and a newline each, one write
    /// each when it sends), and only then does everything settle: many clients talking
    /// concurrently, as on a real machine, for benchmarks. Not a [`Step`]: the checker's model
    /// orders lines one step at a time, and a chorus's order is the schedule's.
    pub fn chorus(&mut self, lines: &[(usize, &[u8])]) -> Result<(), Errno> {
        for &(n, text) in lines {
            self.queue(n, &[text, b"\n"].concat());
        }
        self.settle()
    }

    /// Runs one step, then lets everything settle.
    pub fn step(&mut self, step: &Step) -> Result<(), Errno> {
        // What the step does to its client (something to send, a pause, a resume) may make it
        // runnable without any wake-up from the simulator.
        if let Some(n) = step.client() {
            self.crowd.busy.insert(n);
        }
        match step {
            Step::Join(n) => self.join(*n)?,
            Step::Crowd(n) => {
                for c in 0..*n {
                    self.join(c)?;
                }
            }
            Step::Say(n, text) => {
                let mut bytes = text.clone();
                bytes.push(b'\n');
                self.queue(*n, &bytes);
            }
            Step::Raw(n, bytes) => self.queue(*n, bytes),
            Step::Drip(n, bytes) => {
                self.queue(*n, bytes);
                if let Some(c) = self.crowd.clients.get_mut(*n) {
                    c.drip = true;
                }
            }
            Step::Exit(n) => self.hang_up(*n, false),
            Step::Reset(n) => self.hang_up(*n, true),
            Step::StopReading(n) => {
                if let Some(fd) = self.crowd.clients.get(*n).and_then(|c| c.fd) {
                    // The smallest receive buffer, so the server's queue fills soon.
                    self.sim.set_host(Host::peer(*n));
                    let set = self.sim.setsockopt(fd, SockOpt::RcvBuf, 1);
                    self.sim.set_host(Host::MAIN);
                    set?;
                    self.crowd.clients[*n].reading = false;
                    self.note(format_args!("c{} stops reading", n + 1));
                }
            }
            Step::Pause(n) | Step::Resume(n) => {
                let pause = matches!(step, Step::Pause(_));
                if let Some(c) = self.crowd.clients.get_mut(*n).filter(|c| c.fd.is_some()) {
                    c.paused = pause;
                    let what = if pause { "is paused" } else { "carries on" };
                    self.note(format_args!("c{} {what}", n + 1));
                }
            }
            Step::Sleep(d) => {
                self.note(format_args!("{} ms pass", d.as_millis()));
                self.pass(*d)?;
            }
            Step::StopServer => {
                if !self.server.stopped() {
                    self.note(format_args!("the server goes away"));
                    self.server.stop(&mut self.sim, &mut self.crowd);
                }
            }
        }
        let settled = self.settle();
        if let Some(peaks) = &mut self.peak_resident {
            peaks.push(self.server.peak_resident_bytes());
        }
        if self.first_held_step.is_none() && self.server.stats().read_pauses > 0 {
            self.first_held_step = Some(self.steps_run);
        }
        self.steps_run += 1;
        settled
    }

    /// The server's turn, the clients running between its syscalls; whether it did anything.
    fn turn(&mut self, timeout: Duration) -> Result<bool, Errno> {
        self.server.turn(&mut self.sim, &mut self.crowd, timeout)
    }

    fn join(&mut self, n: usize) -> Result<(), Errno> {
        if n >= MAX_SESSION_CLIENTS
            || self
                .crowd
                .clients
                .get(n)
                .is_some_and(|c| c.fd.is_some() || c.view.addr.is_some())
        {
            return Ok(());
        }
        self.sim.set_host(Host::peer(n));
        let joined = self.connect_client(n);
        self.sim.set_host(Host::MAIN);
        joined
    }

    fn connect_client(&mut self, n: usize) -> Result<(), Errno> {
        let held = self.server.holding_room().is_some();
        let Some(server_addr) = self.server.address() else {
            self.note(format_args!(
                "c{} cannot connect: the server does not listen",
                n + 1
            ));
            return Ok(());
        };
        let fd = self.sim.socket(Family::Inet, SockType::Stream)?;
        if let Some(bytes) = self.client_rcvbuf_bytes {
            self.sim.setsockopt(fd, SockOpt::RcvBuf, bytes)?;
        }
        self.sim.tag_peer(fd, n);
        self.crowd.busy.insert(n);
        match self.sim.connect(fd, &server_addr) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(e) => {
                self.note(format_args!("c{} cannot connect: {e}", n + 1));
                self.sim.close(fd)?;
                return Ok(());
            }
        }
        let addr = self.sim.getsockname(fd)?;
        self.note(format_args!("c{} connects from {addr}", n + 1));
        self.crowd.given.comings_and_goings += 1;
        let c = self.crowd.client(n);
        c.fd = Some(fd);
        c.view.addr = Some(addr);
        c.view.joined_while_held = held;
        Ok(())
    }

    fn queue(&mut self, n: usize, bytes: &[u8]) {
        let Some(c) = self.crowd.clients.get_mut(n).filter(|c| c.fd.is_some()) else {
            return;
        };
        c.outbox.push(bytes);
        self.crowd.busy.insert(n);
        let given = &mut self.crowd.given;
        given.bytes += bytes.len() as u64;
        given.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        self.note(format_args!(
            "c{} types {} ({} bytes)",
            n + 1,
            Shown(bytes),
            bytes.len()
        ));
    }

    fn hang_up(&mut self, n: usize, reset: bool) {
        let held = self.server.holding_room().is_some();
        let Some(c) = self.crowd.clients.get_mut(n) else {
            return;
        };
        let Some(fd) = c.fd.take() else {
            return;
        };
        c.view.left_while_held = held;
        self.crowd.given.comings_and_goings += 1;
        self.sim.set_host(Host::peer(n));
        if reset {
            let _ = self.sim.setsockopt(fd, SockOpt::Linger, 0);
            self.note(format_args!("c{}'s connection is reset", n + 1));
        } else {
            let _ = self.sim.shutdown(fd, Shutdown::Write);
            self.note(format_args!("c{} types exit: ByeBye~~", n + 1));
        }
        let unsent = self.crowd.clients[n].outbox.take();
        if !unsent.is_empty() {
            self.note(format_args!("c{} never sent {}", n + 1, Shown(&unsent)));
        }
        let _ = self.sim.close(fd);
        self.sim.set_host(Host::MAIN);
    }

    /// Turns the reactor and lets the clients run until nothing changes (bounded).
    fn settle(&mut self) -> Result<(), Errno> {
        let mut idle = 0;
        for _ in 0..MAX_SETTLE_ROUNDS {
            let calls_before = self.crowd.calls;
            // The server waits in its wait call: every client that would wake makes a call.
            self.crowd.act_once(&mut self.sim);
            let before = self.sim.now();
            let busy = !self.descheduled && self.turn(Duration::ZERO)?;
            self.stalled += self.sim.now().saturating_sub(before);
            self.crowd.notes.sync(&self.sim);
            if let Some(flood) = self.crowd.overwhelmed() {
                self.trouble
                    .get_or_insert(Failure::new(Symptom::Extra, flood));
                return Err(Errno::ENOBUFS);
            }
            if self.crowd.keep_lines && self.crowd.received_bytes > MAX_SESSION_RECEIVED_BYTES {
                return Err(Errno::ENOBUFS);
            }
            let clients_moved = self.crowd.calls != calls_before;
            if !clients_moved && !busy {
                if self.trouble.is_none() {
                    self.trouble = self.server.trouble(&self.sim);
                }
                return Ok(());
            }
            // A server that keeps turning while no client has anything to do is spinning.
            idle = if clients_moved { 0 } else { idle + 1 };
            if idle > MAX_SETTLE_TURNS {
                break;
            }
        }
        Err(Errno::EDEADLK)
    }

    /// Runs every step, then ends the session (clients that are still connected leave).
    pub fn run(self, steps: &[Step]) -> Result<Outcome, Errno> {
        let (outcome, result) = self.run_all(steps);
        result.map(|()| outcome).map_err(|(_, e)| e)
    }

    /// Runs the steps until one fails to settle; what happened either way (the transcript of
    /// a busy loop is evidence too), and which step failed, with the error.
    pub fn run_all(self, steps: &[Step]) -> (Outcome, Result<(), (usize, Errno)>) {
        self.run_descheduled(steps, 0..0)
    }

    /// As [`Session::run_all`], with the server descheduled through the steps `off`: the
    /// clients act, and the server makes no call until the step after them, so that its next
    /// wait sees everything they did at once. A step that lets time pass cannot run then
    /// (EBUSY): time passes in the server's waits.
    pub fn run_descheduled(
        mut self,
        steps: &[Step],
        off: std::ops::Range<usize>,
    ) -> (Outcome, Result<(), (usize, Errno)>) {
        let result = (steps.iter().enumerate())
            .try_for_each(|(i, s)| {
                self.deschedule(off.contains(&i)).map_err(|e| (i, e))?;
                self.step(s).map_err(|e| (i, e))
            })
            .and_then(|()| self.deschedule(false).map_err(|e| (steps.len(), e)))
            .and_then(|()| self.let_held_room_go().map_err(|e| (steps.len(), e)));
        (self.finish(), result)
    }

    /// Deschedules the server, or lets it run again (and the room settle, now that it looks).
    fn deschedule(&mut self, off: bool) -> Result<(), Errno> {
        if off == self.descheduled {
            return Ok(());
        }
        self.descheduled = off;
        if off {
            self.note(format_args!("the server is descheduled: it makes no call"));
            Ok(())
        } else {
            self.note(format_args!("the server runs again"));
            self.settle()
        }
    }

    /// The session's steps are over but the server holds the room for a slow reader
    /// (back-pressure): time passes, as it would, until the slow-consumer rule has done its
    /// work, so that what the others hear is judged after the bound the rule promises.
    fn let_held_room_go(&mut self) -> Result<(), Errno> {
        for _ in 0..MAX_HELD_ROOM_WAITS {
            let Some(wait) = self
                .server
                .holding_room()
                .filter(|_| !self.server.stopped())
            else {
                break;
            };
            self.note(format_args!(
                "the room waits for a slow reader: {} ms pass",
                wait.as_millis()
            ));
            self.pass(wait)?;
        }
        Ok(())
    }

    /// Lets `d` of virtual time pass. The server may wake meanwhile (a timer, an event, a
    /// spurious wakeup): it turns and the room settles, and the rest of the time passes all
    /// the same (bounded in turns).
    fn pass(&mut self, d: Duration) -> Result<(), Errno> {
        if self.descheduled {
            // Time passes in the server's waits, and a descheduled server makes none.
            return Err(Errno::EBUSY);
        }
        let until = self.sim.now().saturating_add(d);
        for _ in 0..MAX_TURNS_PER_SLEEP {
            let left = until.saturating_sub(self.sim.now());
            if left.is_zero() {
                break;
            }
            self.turn(left)?;
            self.settle()?;
        }
        Ok(())
    }

    /// Whether the server listens (another program may never).
    pub fn server_listens(&self) -> bool {
        self.server.address().is_some()
    }

    /// Why the server cannot go on, if it cannot (asked once the room has settled).
    pub fn server_trouble(&self) -> Option<Failure> {
        (self.trouble.clone()).or_else(|| self.server.trouble(&self.sim))
    }

    /// The whole lines each client has received so far, by number.
    pub fn lines_so_far(&self) -> Vec<&[Vec<u8>]> {
        (self.crowd.clients.iter())
            .map(|c| c.view.lines.as_slice())
            .collect()
    }

    /// What every client saw, and the transcript.
    pub fn finish(mut self) -> Outcome {
        self.crowd.notes.sync(&self.sim);
        for (n, c) in self.crowd.clients.iter_mut().enumerate() {
            self.sim.set_host(Host::peer(n));
            c.view.never_connected = c.fd.is_some_and(|fd| self.sim.still_connecting(fd));
        }
        self.sim.set_host(Host::MAIN);
        Outcome {
            clients: self.crowd.clients.into_iter().map(|c| c.view).collect(),
            transcript: self.crowd.notes.text,
            stats: self.server.stats(),
            peak_queue_bytes: self.server.peak_queue_bytes(),
            stalled: self.stalled,
            syscalls: self.sim.syscalls(),
            first_held_step: self.first_held_step,
            server_trouble: self.trouble.or_else(|| self.server.trouble(&self.sim)),
            server_peak_resident: self.peak_resident.unwrap_or_default(),
            capture: self.sim.capture().clone(),
        }
    }
}

/// The end of a session.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Each client's view, by number.
    pub clients: Vec<ClientView>,
    /// The transcript.
    pub transcript: String,
    /// The server's counters.
    pub stats: crate::chat::serve::Stats,
    /// The largest queue the server held for one client.
    pub peak_queue_bytes: usize,
    /// Virtual time that passed while steps settled, which only a server that blocks causes.
    pub stalled: Duration,
    /// Simulated calls made, by the server and the clients.
    pub syscalls: u64,
    /// The first step during which the server held the room for a slow reader: from then on,
    /// lines wait in their senders' sockets and reach the server in an order the schedule
    /// picks, not the steps'.
    pub first_held_step: Option<usize>,
    /// Why the server could not go on, if it could not (another program: it exited, spun,
    /// blocked, or was refused).
    pub server_trouble: Option<Failure>,
    /// The server's peak memory (bytes) after each step, when watched
    /// ([`SessionConfig::watch_server_memory`]) and where it can be seen.
    pub server_peak_resident: Vec<Option<u64>>,
    /// The segments on the simulated wire (empty unless [`SessionConfig::capture`]).
    pub capture: Capture,
}

#[cfg(test)]
impl Outcome {
    /// A quiet session's end with these clients' views, for the judges' tests.
    pub(crate) fn of_clients(clients: Vec<ClientView>) -> Outcome {
        Outcome {
            clients,
            transcript: String::new(),
            stats: Default::default(),
            peak_queue_bytes: 0,
            stalled: Duration::ZERO,
            syscalls: 0,
            first_held_step: None,
            server_trouble: None,
            capture: Capture::default(),
            server_peak_resident: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by cargo-mutants: a session asked for no transcript makes the simulator record
    /// no calls either (the fuzz target and the zoo run thousands of sessions without one).
    #[test]
    fn a_session_without_a_transcript_records_no_calls() {
        for transcript in [false, true] {
            let config = SessionConfig {
                transcript,
                ..SessionConfig::default()
            };
            let mut session = Session::new(config).expect("server starts");
            session.step(&Step::Join(0)).expect("settles");
            let recorded = session.sim.transcript().records().len();
            assert_eq!(recorded > 0, transcript, "{recorded} calls recorded");
        }
    }
}
