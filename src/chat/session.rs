//! A scripted chat session in the simulator: the server in a reactor, clients driven step by
//! step, and a transcript written for people (one event per line, virtual time, who did what,
//! the bytes, and every choice of the lawful adversary).
//!
//! The snapshot tests, the chat properties, the fuzz target and `selectlab demo` all run
//! sessions through here.

use std::fmt::Write as _;
use std::time::Duration;

use nix::errno::Errno;

use super::framing::LineReader;
use super::serve::{ChatApp, ServeConfig};
use super::server::Limits;
use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Fd, Kernel, Mode, Shutdown, SockOpt};
use crate::reactor::Reactor;
use crate::readiness::Backend;
use crate::sim::decide::Decider;
use crate::sim::{Sim, SimConfig};

/// The server's address inside the simulator.
pub const SESSION_SERVER_ADDR: &str = "127.0.0.1:33333";
/// Most clients one session may have.
pub const MAX_SESSION_CLIENTS: usize = 64;
/// Most reactor turns one step may take to settle (a bound; a well-behaved server needs few).
pub const MAX_SETTLE_TURNS: usize = 10_000;
/// Most bytes a client reads per call.
const CLIENT_READ_BYTES: usize = 64 * 1024;

/// One step of a session. Clients are numbered from 0 and named c1, c2, ... in transcripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Client `n` connects (each client joins at most once).
    Join(usize),
    /// Client `n` sends `text` and a newline.
    Say(usize, Vec<u8>),
    /// Client `n` sends raw bytes (no newline added).
    Raw(usize, Vec<u8>),
    /// Client `n` types `exit`: it closes its connection.
    Exit(usize),
    /// Client `n`'s connection is reset (SO_LINGER 0, then close).
    Reset(usize),
    /// Client `n` stops reading (a slow consumer from now on).
    StopReading(usize),
    /// Virtual time passes.
    Sleep(Duration),
    /// The server goes away.
    StopServer,
}

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The server's backend.
    pub backend: Backend,
    /// The server's mode (edge-triggered needs epoll).
    pub mode: Mode,
    /// The room's limits.
    pub limits: Limits,
    /// The simulator's decision source.
    pub decide: Decider,
    /// Whether the transcript lists every kernel call (else only the adversary's choices).
    pub kernel_calls: bool,
    /// Whether to write a transcript at all (a fuzzer runs without one, and re-runs the same
    /// input with one when it has something to show: the session is deterministic).
    pub transcript: bool,
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
        }
    }
}

/// What a client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientView {
    /// Its address, once it joined.
    pub addr: Option<SockAddr>,
    /// Whole lines it received, in order.
    pub lines: Vec<Vec<u8>>,
    /// Whether it saw the server close (end of stream or an error).
    pub server_gone: bool,
}

struct SimClient {
    fd: Option<Fd>,
    reader: LineReader,
    /// Bytes it still has to send (it keeps the unsent tail of a short send).
    outbox: Vec<u8>,
    /// Its last send was short.
    short: bool,
    reading: bool,
    view: ClientView,
}

/// A running session.
pub struct Session {
    sim: Sim,
    reactor: Reactor,
    app: ChatApp,
    clients: Vec<SimClient>,
    server_addr: SockAddr,
    transcript: String,
    read_buf: Vec<u8>,
    writes_transcript: bool,
    kernel_calls: bool,
    records_seen: usize,
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

impl Session {
    /// Starts the server.
    pub fn new(config: SessionConfig) -> Result<Session, Errno> {
        let sim_config = SimConfig {
            transcript: config.transcript,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(sim_config, config.decide);
        let server_addr = SockAddr::Inet(SESSION_SERVER_ADDR.parse().expect("a valid address"));
        let listener = super::serve::listen(&mut sim, &server_addr, 128)?;
        let mut reactor = Reactor::new(&mut sim, config.backend)?;
        let serve = ServeConfig {
            limits: config.limits,
            mode: config.mode,
        };
        let app = ChatApp::new(&mut reactor.io(&mut sim), listener, serve)?;
        let mut s = Session {
            sim,
            reactor,
            app,
            clients: Vec::new(),
            server_addr,
            transcript: String::new(),
            read_buf: vec![0; CLIENT_READ_BYTES],
            writes_transcript: config.transcript,
            kernel_calls: config.kernel_calls,
            records_seen: 0,
        };
        s.note(format_args!("server listens on {SESSION_SERVER_ADDR}"));
        s.settle()?;
        Ok(s)
    }

    fn stamp(&self) -> String {
        let t = self.sim.now();
        format!("[{:>3}.{:03}]", t.as_secs(), t.subsec_millis())
    }

    fn note(&mut self, line: std::fmt::Arguments<'_>) {
        if !self.writes_transcript {
            return;
        }
        let stamp = self.stamp();
        let _ = writeln!(self.transcript, "{stamp} {line}");
    }

    fn client(&mut self, n: usize) -> &mut SimClient {
        while self.clients.len() <= n {
            self.clients.push(SimClient {
                fd: None,
                // Clients accept any line length: they must see what the server sends.
                reader: LineReader::new(usize::MAX),
                outbox: Vec::new(),
                short: false,
                reading: true,
                view: ClientView::default(),
            });
        }
        &mut self.clients[n]
    }

    /// Runs one step, then lets everything settle.
    pub fn step(&mut self, step: &Step) -> Result<(), Errno> {
        match step {
            Step::Join(n) => self.join(*n)?,
            Step::Say(n, text) => {
                let mut bytes = text.clone();
                bytes.push(b'\n');
                self.queue(*n, &bytes);
            }
            Step::Raw(n, bytes) => self.queue(*n, bytes),
            Step::Exit(n) => self.hang_up(*n, false),
            Step::Reset(n) => self.hang_up(*n, true),
            Step::StopReading(n) => {
                if let Some(fd) = self.clients.get(*n).and_then(|c| c.fd) {
                    // The smallest receive buffer, so the server's queue fills soon.
                    self.sim.setsockopt(fd, SockOpt::RcvBuf, 1)?;
                    self.client(*n).reading = false;
                    self.note(format_args!("c{} stops reading", n + 1));
                }
            }
            Step::Sleep(d) => {
                self.note(format_args!("{} ms pass", d.as_millis()));
                self.reactor.turn(&mut self.sim, &mut self.app, Some(*d))?;
            }
            Step::StopServer => {
                if !self.app.stopped() {
                    self.note(format_args!("the server goes away"));
                    self.app.stop(&mut self.reactor.io(&mut self.sim));
                }
            }
        }
        self.settle()
    }

    fn join(&mut self, n: usize) -> Result<(), Errno> {
        if n >= MAX_SESSION_CLIENTS
            || self
                .clients
                .get(n)
                .is_some_and(|c| c.fd.is_some() || c.view.addr.is_some())
        {
            return Ok(());
        }
        let fd = self.sim.socket(Family::Inet, SockType::Stream)?;
        match self.sim.connect(fd, &self.server_addr) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(e) => {
                self.note(format_args!("c{} cannot connect: {e}", n + 1));
                self.sim.close(fd)?;
                return Ok(());
            }
        }
        let addr = self.sim.getsockname(fd)?;
        self.note(format_args!("c{} connects from {addr}", n + 1));
        let c = self.client(n);
        c.fd = Some(fd);
        c.view.addr = Some(addr);
        Ok(())
    }

    fn queue(&mut self, n: usize, bytes: &[u8]) {
        let Some(c) = self.clients.get_mut(n).filter(|c| c.fd.is_some()) else {
            return;
        };
        c.outbox.extend_from_slice(bytes);
        self.note(format_args!(
            "c{} types {} ({} bytes)",
            n + 1,
            Shown(bytes),
            bytes.len()
        ));
    }

    fn hang_up(&mut self, n: usize, reset: bool) {
        let Some(fd) = self.clients.get_mut(n).and_then(|c| c.fd.take()) else {
            return;
        };
        if reset {
            let _ = self.sim.setsockopt(fd, SockOpt::Linger, 0);
            self.note(format_args!("c{}'s connection is reset", n + 1));
        } else {
            let _ = self.sim.shutdown(fd, Shutdown::Write);
            self.note(format_args!("c{} types exit: ByeBye~~", n + 1));
        }
        let unsent = std::mem::take(&mut self.clients[n].outbox);
        if !unsent.is_empty() {
            self.note(format_args!("c{} never sent {}", n + 1, Shown(&unsent)));
        }
        let _ = self.sim.close(fd);
    }

    /// Turns the reactor and moves client bytes until nothing changes (bounded).
    fn settle(&mut self) -> Result<(), Errno> {
        for _ in 0..MAX_SETTLE_TURNS {
            let mut progress = self.clients_act()?;
            let turn = self
                .reactor
                .turn(&mut self.sim, &mut self.app, Some(Duration::ZERO))?;
            progress |= turn.events > 0 || turn.timers > 0;
            self.copy_server_log();
            self.copy_kernel_choices();
            if !progress {
                return Ok(());
            }
        }
        Err(Errno::EDEADLK)
    }

    /// Each client sends what it has and reads what is there; returns whether anything moved.
    fn clients_act(&mut self) -> Result<bool, Errno> {
        let mut progress = false;
        for n in 0..self.clients.len() {
            let Some(fd) = self.clients[n].fd else {
                continue;
            };
            if !self.clients[n].outbox.is_empty() {
                match self.sim.send(fd, &self.clients[n].outbox) {
                    Ok(k) => {
                        let waiting = self.clients[n].outbox.len();
                        self.clients[n].outbox.drain(..k);
                        // A whole send says nothing new; a short one is worth a line.
                        if k < waiting {
                            self.note(format_args!(
                                "c{}'s send took {k} of {waiting} bytes; it keeps the rest",
                                n + 1
                            ));
                        } else if self.clients[n].short {
                            self.note(format_args!("c{} sends the remaining {k} bytes", n + 1));
                        }
                        self.clients[n].short = k < waiting;
                        progress = true;
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(e) => {
                        self.note(format_args!("c{} send fails: {e}", n + 1));
                        self.clients[n].outbox.clear();
                    }
                }
            }
            if self.clients[n].reading {
                progress |= self.client_reads(n, fd)?;
            }
        }
        Ok(progress)
    }

    fn client_reads(&mut self, n: usize, fd: Fd) -> Result<bool, Errno> {
        // One buffer for every client read (taken and put back around the call).
        let mut buf = std::mem::take(&mut self.read_buf);
        let result = self.client_reads_into(n, fd, &mut buf);
        self.read_buf = buf;
        result
    }

    fn client_reads_into(&mut self, n: usize, fd: Fd, buf: &mut [u8]) -> Result<bool, Errno> {
        match self.sim.recv(fd, buf) {
            Ok(0) => {
                self.note(format_args!("c{}: the server went away", n + 1));
                self.lose_server(n, fd)
            }
            Ok(k) => {
                self.note(format_args!(
                    "c{} receives {} ({k} bytes)",
                    n + 1,
                    Shown(&buf[..k])
                ));
                let c = &mut self.clients[n];
                let lines = &mut c.view.lines;
                c.reader
                    .push(&buf[..k], |l| lines.push(l.to_vec()))
                    .expect("clients take any length");
                Ok(true)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(false),
            Err(e) => {
                self.note(format_args!("c{}: connection failed: {e}", n + 1));
                self.lose_server(n, fd)
            }
        }
    }

    /// Client `n` saw its connection end: it notes the server gone and closes its end.
    fn lose_server(&mut self, n: usize, fd: Fd) -> Result<bool, Errno> {
        let c = &mut self.clients[n];
        c.view.server_gone = true;
        c.fd = None;
        self.sim.close(fd)?;
        Ok(true)
    }

    fn copy_server_log(&mut self) {
        for (_, line) in self.app.take_log() {
            self.note(format_args!("server: {line}"));
        }
    }

    fn copy_kernel_choices(&mut self) {
        let records = self.sim.transcript().records();
        let fresh: Vec<String> = records[self.records_seen..]
            .iter()
            .filter(|r| self.kernel_calls || r.choice.is_some())
            .map(|r| format!("kernel: {r}"))
            .collect();
        self.records_seen = records.len();
        for line in fresh {
            let _ = writeln!(self.transcript, "{line}");
        }
    }

    /// Runs every step, then ends the session (clients that are still connected leave).
    pub fn run(mut self, steps: &[Step]) -> Result<Outcome, Errno> {
        for s in steps {
            self.step(s)?;
        }
        Ok(self.finish())
    }

    /// What every client saw, and the transcript.
    pub fn finish(self) -> Outcome {
        Outcome {
            clients: self.clients.into_iter().map(|c| c.view).collect(),
            transcript: self.transcript,
            stats: self.app.stats(),
            peak_queue_bytes: self.app.core().peak_queue_bytes(),
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
    pub stats: super::serve::Stats,
    /// The largest queue the server held for one client.
    pub peak_queue_bytes: usize,
}
