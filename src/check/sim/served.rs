//! A guest program serving a session's room: another person's chat server, unmodified, as
//! the [`Server`] of a [`Session`](crate::session::Session), so the session's steps, the
//! lawful adversary and the chat properties reach it as they reach selectlab's own.
//!
//! The program runs one request at a time ([`Stepped`]); its turn answers requests, the
//! clients making calls between any two, until it waits for something that has not happened.
//! When the session lets time pass, virtual time moves to the program's own deadline, the
//! next timer, or the session's, whichever is first. What it cannot do is its trouble, and
//! the session's verdict: it exits, it spins ([`SpinWatch`]), it is refused, or it is found
//! blocked in a call (a blocking send, say, or a sleep) when the room has settled: everyone
//! else then waits for it.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use selectlab_wire::{Op, Request};

use crate::addr::SockAddr;
use crate::chat::serve::{ServerLog, Stats};
use crate::chat::server::Limits;
use crate::guest::answer::Answerer;
use crate::guest::channel::Channel;
use crate::guest::replay::{Recording, ReplayWatch, StartSink};
use crate::guest::snapshot::Snapshot;
use crate::guest::spawn::{self, Launch, Listener, Process, SpawnError};
use crate::guest::spin::SpinWatch;
use crate::guest::stepped::{Stepped, blocked_call, is_wait};
use crate::guest::wait::Halt;
use crate::kernel::{Fd, Kernel};
use crate::session::{Failure, Server, Symptom};
use crate::sim::Sim;
use crate::sim::interleave::{Interleaved, Peers};
use crate::sim::transcript::Host;

/// Most calls (requests, and the clock reads the shim answered itself) one turn answers without
/// the program waiting: a flood (a program that sends without end and never waits, or only
/// reads clocks) is stopped here. A check's biggest step asks a few
/// tens of thousands of calls of a server that sends each line alone (`burst`: 20 000 lines).
pub const MAX_CALLS_PER_TURN: usize = 1 << 17;

/// A guest program as a session's server.
pub struct GuestServer {
    guest: Stepped,
    /// The shim's listening socket, kept while the program runs.
    listener: Listener,
    address: Option<SockAddr>,
    spin: SpinWatch,
    trouble: Option<Failure>,
    calls: u64,
}

impl GuestServer {
    /// Starts `command` afresh with the shim (recording its start into `record`, if given),
    /// its first request (its hello) pending.
    pub fn start(
        sim: &mut Sim,
        command: &[OsString],
        launch: &Launch,
        record: Option<StartSink>,
    ) -> Result<GuestServer, SpawnError> {
        let shim = spawn::shim_path()?;
        let listener = Listener::new()?;
        let process = listener.spawn(command, launch.env, &shim, None, true)?;
        let mut channel = listener.accept()?;
        if let Some(sink) = record {
            channel.record(Recording::new(sink));
        }
        let hello = channel.hello()?;
        Ok(GuestServer::serving(
            sim, command, launch, listener, process, channel, hello,
        ))
    }

    /// Starts the program as a fork of `snapshot`: its recorded start replayed to `sim` (told
    /// to `watch`), then its listen pending.
    pub fn fork(
        sim: &mut Sim,
        command: &[OsString],
        launch: &Launch,
        snapshot: &mut Snapshot,
        watch: Arc<ReplayWatch>,
    ) -> Result<GuestServer, SpawnError> {
        let listener = Listener::new()?;
        let (process, channel, hello) = snapshot.fork(&listener, watch)?;
        Ok(GuestServer::serving(
            sim, command, launch, listener, process, channel, hello,
        ))
    }

    /// The program, started, as a server whose first request is `hello`.
    fn serving(
        sim: &Sim,
        command: &[OsString],
        launch: &Launch,
        listener: Listener,
        process: Process,
        channel: Channel,
        hello: Request,
    ) -> GuestServer {
        GuestServer {
            guest: Stepped::new(
                crate::guest::label(command),
                process,
                channel,
                // A server may watch its console beside its sockets (`ncat --chat` does).
                Answerer::with_console(launch.stdin.clone()),
                hello,
                sim.now(),
            ),
            listener,
            address: None,
            spin: SpinWatch::default(),
            trouble: None,
            calls: 0,
        }
    }

    /// Requests the program made.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Answers the pending request and notes what it tells: where the program listens, its
    /// exit, a spin, a refusal.
    fn proceed(&mut self, sim: &mut Sim, peers: &mut dyn Peers) {
        // A wait is timed from when the program made it: the session may have let virtual time
        // run to its deadline before this turn answers it (a wait that timed out is no spin).
        let before = self.guest.pending_since().unwrap_or(sim.now());
        let answered = self.guest.proceed(&mut Interleaved { sim, peers });
        self.calls += 1;
        match answered {
            Ok(Some((req, reply))) => {
                self.calls += spawn::clock_reads_in(&req);
                if self.address.is_none() && req.op == Op::Listen && reply.ret == 0 {
                    self.address = listening_address(sim, Fd(req.args[0] as i32));
                }
                if let Some(spin) = self.spin.note(&req, &reply, before, sim.now()) {
                    self.trouble = Some(Failure::new(Symptom::Spin, spin));
                }
                if is_wait(req.op) {
                    self.note_descendant_refusal();
                }
            }
            Ok(None) => {}
            Err(halt) => self.trouble = Some(halted(halt)),
        }
        if let Some(code) = self.guest.exit {
            self.note_descendant_refusal();
            let words = self.listener.stderr_tail(STDERR_TAIL_LINES);
            self.trouble.get_or_insert_with(|| {
                let symptom = match spawn::end_signal(code) {
                    Some(_) => Symptom::Signalled,
                    None => Symptom::Exited,
                };
                Failure::new(symptom, spawn::describe_end(code, &words))
            });
        }
    }
}

impl GuestServer {
    /// A refusal a descendant that had lost its channel left (see `Listener`) is the
    /// program's trouble, unless it already has one.
    fn note_descendant_refusal(&mut self) {
        if self.trouble.is_none()
            && let Some(why) = self.listener.descendant_refusal()
        {
            self.trouble = Some(refused(&why));
        }
    }
}

/// The trouble of a program that cannot go on.
fn halted(halt: Halt) -> Failure {
    match halt {
        Halt::Refuse(why) => refused(&why),
        Halt::Stop(why) => Failure::new(Symptom::Blocked, why),
    }
}

/// How the trouble of a program the simulator refused begins.
const REFUSED: &str = "refused: ";

/// The trouble of a program the simulator refused, and why.
fn refused(why: &str) -> Failure {
    Failure::new(Symptom::Refused, format!("{REFUSED}{why}"))
}

/// What the simulator refused, if `failure` is a refusal: its headline's words after
/// `refused: `.
pub fn refusal(failure: &Failure) -> Option<&str> {
    let first = failure.headline();
    let at = first
        .find(REFUSED)
        .filter(|_| failure.symptom == Symptom::Refused)?;
    Some(&first[at + REFUSED.len()..])
}

/// Lines of the program's standard error a report shows when it ends.
pub const STDERR_TAIL_LINES: usize = 20;

/// Where clients reach a socket listening at `fd` (a wildcard address is reached on
/// loopback).
fn listening_address(sim: &Sim, fd: Fd) -> Option<SockAddr> {
    let SockAddr::Inet(mut at) = sim.local_addr(fd)? else {
        return None;
    };
    if at.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if at.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        at.set_ip(loopback);
    }
    Some(SockAddr::Inet(at))
}

impl Server for GuestServer {
    fn address(&self) -> Option<SockAddr> {
        self.address.clone()
    }

    fn turn(
        &mut self,
        sim: &mut Sim,
        peers: &mut dyn Peers,
        timeout: Duration,
    ) -> Result<bool, Errno> {
        let until = sim.now().saturating_add(timeout);
        let mut moved = false;
        // Calls, the clock reads the shim answered itself included: each request answered
        // counts one at least, so the loop ends.
        let first = self.calls;
        while self.calls - first < MAX_CALLS_PER_TURN as u64 {
            if self.trouble.is_some() {
                return Ok(moved);
            }
            if let Some(flood) = peers.overwhelmed() {
                self.trouble = Some(Failure::new(Symptom::Extra, flood));
                return Ok(moved);
            }
            if self.guest.can_proceed(sim, Host::MAIN) {
                self.proceed(sim, peers);
                moved = true;
                continue;
            }
            // It waits: time may pass, to its own deadline, the next timer or the session's
            // (or a signal interrupts its wait, answered on its next turn).
            if sim.now() < until {
                self.guest.wait(sim, Some(until));
            }
            return Ok(moved);
        }
        self.trouble = Some(Failure::new(
            Symptom::Spin,
            format!(
                "it made {MAX_CALLS_PER_TURN} calls in a row without blocking once \
                 (MAX_CALLS_PER_TURN): it floods or spins while time stands still"
            ),
        ));
        Ok(moved)
    }

    fn stop(&mut self, sim: &mut Sim, peers: &mut dyn Peers) {
        // The process goes away (as on a signal): the kernel closes its descriptors.
        self.guest.pending = None;
        self.guest.exit.get_or_insert(128 + nix::libc::SIGTERM);
        self.guest
            .answerer
            .close_all(&mut Interleaved { sim, peers });
    }

    fn stopped(&self) -> bool {
        self.guest.exit.is_some()
    }

    /// A program's own policies cannot be seen from outside; the session judges it as a
    /// room that never holds everyone back for one reader.
    fn holding_room(&self) -> Option<Duration> {
        None
    }

    fn stats(&self) -> Stats {
        Stats::default()
    }

    fn peak_queue_bytes(&self) -> usize {
        0
    }

    fn peak_resident_bytes(&self) -> Option<u64> {
        spawn::peak_resident_bytes(self.guest.process.pid())
    }

    fn log(&self) -> ServerLog {
        ServerLog::default()
    }

    fn trouble(&self, sim: &Sim) -> Option<Failure> {
        if let Some(trouble) = &self.trouble {
            return Some(trouble.clone());
        }
        let req = self.guest.pending()?;
        if self.guest.can_proceed(sim, Host::MAIN) || (is_wait(req.op) && req.op != Op::Sleep) {
            return None;
        }
        let what = format!(
            "it is blocked in {} while the room waits for it",
            blocked_call(req.op, req.args[0])
        );
        Some(Failure::new(Symptom::Blocked, what))
    }
}

/// The model's limits for a server whose own are unknown: no line sent is over-long, no queue
/// is judged.
pub(super) fn limits() -> Limits {
    Limits {
        max_line_bytes: usize::MAX / 2,
        outbound_soft_bytes: usize::MAX / 2,
        outbound_cap_bytes: usize::MAX / 2,
        ..Limits::default()
    }
}
