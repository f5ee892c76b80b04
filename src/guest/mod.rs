//! Other people's unmodified programs inside the simulator.
//!
//! A *guest* is a dynamically linked program (Python, C, anything on libc) started with the
//! interposition shim (`shim/`, the project's only `unsafe` code) preloaded. Every socket,
//! readiness and clock call it makes on a simulated descriptor travels to selectlab as one
//! request and waits for one reply (`selectlab-wire`); files, pipes and the terminal stay
//! real. The guest is the main host of a [`Sim`]; its peers (the workload's chat clients) run
//! between its calls, as they do for selectlab's own server ([`Interleaved`]). Nothing else
//! runs meanwhile, so the same seed gives the same transcript, byte for byte.
//!
//! - [`spawn`]: the embedded shim, the refusal of static programs, the channel, the process.
//! - [`answer`]: each request answered with the calls Linux would make, blocking sockets
//!   included; `ready`: poll, select, epoll, clocks and sleeps.
//! - [`sockaddr`]: Linux's `struct sockaddr_*` bytes.
//! - [`clients`]: the `--clients N --lines K` workload and its delivery count.
//!
//! What cannot run faithfully is refused with the reason: a second thread or a forked child
//! touching the simulator, a statically linked program, a socket made without the shim, and
//! calls or options the simulator does not model (each named in the message).

pub mod answer;
pub mod clients;
mod ready;
pub mod sockaddr;
pub mod spawn;

use std::ffi::OsString;
use std::time::Duration;

use crate::kernel::Kernel;
use crate::sim::decide::{Adversity, Decider};
use crate::sim::interleave::Interleaved;
use crate::sim::{Sim, SimConfig};
use answer::{Answerer, Halt};
use clients::{Clients, Delivery};
use spawn::{Listener, SpawnError};

/// Most calls one run answers before it is stopped.
pub const MAX_GUEST_CALLS: u64 = 50_000_000;

/// A run of a program in the simulator.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// The seed of the lawful adversary (with `adversary`), else unused.
    pub seed: u64,
    /// Whether the seeded lawful adversary acts on the program's calls.
    pub adversary: bool,
    /// Simulated chat clients that connect to the program once it listens.
    pub clients: usize,
    /// Lines each client says.
    pub lines: usize,
    /// Virtual time after which the run stops.
    pub run_for: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The program exited by itself, with this code (or 128 + the signal that ended it).
    Exited(i32),
    /// The workload is done: every client heard every line.
    Delivered,
    /// selectlab stopped it (the reason: the time limit, or a wait that can never end).
    Stopped(String),
    /// Something it did cannot be simulated faithfully (the reason).
    Refused(String),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// How it ended.
    pub end: End,
    /// Requests the program made (simulated calls, clocks included).
    pub calls: u64,
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// The workload's delivery (with clients).
    pub delivery: Option<Delivery>,
    /// Every simulated call, one per line, in the transcript format.
    pub transcript: String,
}

/// The adversity `--adversary` applies to a guest: everything Linux may do that keeps every
/// byte of a connection (short reads and writes, EINTR, lost SYNs, EMFILE from accept,
/// spurious and partial wake-ups, held-back peers). Resets are left out: a reset client
/// legitimately misses lines, and the delivery count could no longer judge the program.
pub const GUEST_ADVERSITY: Adversity = Adversity {
    reset_per_mille: 0,
    ..Adversity::HOSTILE
};

/// Runs a program in the simulator until it exits, the workload is delivered, a limit is
/// reached, or it does something that is refused.
pub fn run(config: &GuestConfig) -> Result<GuestReport, SpawnError> {
    let shim = spawn::shim_path()?;
    let listener = Listener::new()?;
    let mut child = listener.spawn(&config.command, &shim)?;
    let channel = listener.accept();
    let mut channel = match channel {
        Ok(c) => c,
        Err(e) => {
            stop(&mut child);
            return Err(e);
        }
    };
    let decider = if config.adversary {
        Decider::seeded(config.seed, GUEST_ADVERSITY)
    } else {
        Decider::faithful()
    };
    let sim_config = SimConfig {
        // The program and each peer are processes: each has its own descriptor numbers.
        fd_table_per_host: true,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(sim_config, decider);
    let mut clients = Clients::new(config.clients, config.lines);
    let mut answerer = Answerer::default();
    let mut calls = 0u64;
    let end = loop {
        let req = match channel.next_request() {
            Ok(Some(req)) => req,
            Ok(None) => break End::Exited(exit_code(&mut child)),
            Err(e) => {
                stop(&mut child);
                return Err(e);
            }
        };
        calls += 1;
        let mut kernel = Interleaved {
            sim: &mut sim,
            peers: &mut clients,
        };
        match answerer.answer(&mut kernel, &req) {
            Ok(reply) => {
                channel.reply(&reply);
                clients.after_call(&mut sim, &req, &reply);
            }
            Err(Halt::Refuse(why)) => break End::Refused(why),
            Err(Halt::Stop(why)) => break End::Stopped(why),
        }
        if clients.done() {
            break End::Delivered;
        }
        if sim.now() >= config.run_for {
            break End::Stopped(format!(
                "{} s of virtual time passed",
                config.run_for.as_secs_f64()
            ));
        }
        if calls >= MAX_GUEST_CALLS {
            break End::Stopped(format!("{MAX_GUEST_CALLS} calls made"));
        }
    };
    let end = match end {
        // A program stopped because its wait could never end, once every client heard
        // everything, has done its work.
        End::Stopped(_) if clients.done() => End::Delivered,
        end => end,
    };
    stop(&mut child);
    let transcript = sim
        .transcript()
        .records()
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    Ok(GuestReport {
        end,
        calls,
        virtual_time: sim.now(),
        delivery: (config.clients > 0).then(|| clients.delivery()),
        transcript,
    })
}

/// Ends the program and everything it started (its process group), and reaps it.
fn stop(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
}

/// The program's exit code once it has gone (128 + signal, as a shell reports it).
fn exit_code(child: &mut std::process::Child) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match child.wait() {
        Ok(status) => status
            .code()
            .or(status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}
