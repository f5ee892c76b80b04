//! Other people's unmodified programs inside the simulator.
//!
//! A *guest* is a dynamically linked program (Python, C, anything on libc) started with the
//! interposition shim (`shim/`; with `slot/`, the project's only `unsafe` code) preloaded.
//! Every socket, readiness and clock call it makes on a simulated descriptor travels to
//! selectlab as one request and waits for one reply (`selectlab-wire`); files, pipes and the
//! terminal stay real. The guest is the main host of a [`Sim`]; its peers (the workload's chat clients) run
//! between its calls, as they do for selectlab's own server ([`Interleaved`]). Nothing else
//! runs meanwhile, so the same seed gives the same transcript, byte for byte.
//!
//! - [`spawn`]: the embedded shim, the refusal of static programs, the process; [`channel`]:
//!   its calls and replies, in shared memory once the shim has said hello.
//! - [`answer`]: each request answered with the calls Linux would make, blocking sockets
//!   included; `ready`: poll, select, epoll, clocks and sleeps; `timerfd`: timerfd's
//!   arguments and replies; [`wait`]: what they share (why a run halts, letting the peers act
//!   while the program waits).
//! - [`stepped`]: every guest run one request at a time, answered once it can be without
//!   blocking (the program of [`run`], a peer guest, a `check --sim` server alike).
//! - [`sockaddr`]: Linux's `struct sockaddr_*` bytes.
//! - [`clients`]: the `--clients N --lines K` workload and its delivery count.
//! - [`spin`]: the idle-server property (a program that spins is stopped, with the symptom).
//! - [`peers`]: the hosts beside the program: the clients, and other guest programs (`--peer`).
//! - [`snapshot`]: the program parked at its first listen, forked for each of a check's
//!   sessions; [`replay`]: its start, recorded and replayed to each fork's simulator.
//!
//! `check --sim`, which judges a guest as a chat server, is [`crate::check::sim`].
//!
//! What cannot run faithfully is refused with the reason: a second thread or a forked child
//! touching the simulator, a statically linked program, a socket made without the shim, and
//! calls or options the simulator does not model (each named in the message).

pub mod answer;
pub mod channel;
pub mod clients;
pub mod peers;
mod ready;
pub mod replay;
pub mod snapshot;
pub mod sockaddr;
pub mod spawn;
pub mod spin;
pub mod stepped;
mod timerfd;
pub mod wait;

use std::ffi::OsString;
use std::time::Duration;

use selectlab_wire::{Op, Request};

use crate::kernel::Kernel;
use crate::sim::capture::Capture;
use crate::sim::decide::{Adversity, Decider};
use crate::sim::interleave::Interleaved;
use crate::sim::transcript::{Host, Transcript};
use crate::sim::{Sim, SimConfig};
use answer::Answerer;
use channel::Channel;
use clients::{Clients, Delivery};
use peers::Hosts;
use spawn::{Listener, Process, SpawnError};
use stepped::Stepped;
use wait::{Halt, any_runnable, settle};

/// Most times in a row the program's wait may end with virtual time standing still (its peers
/// ran, a timer fired at this instant, a signal came) before the run is stopped: each is up to
/// `MAX_SETTLE_ROUNDS` rounds of the peers' calls.
pub const MAX_STALLED_WAITS: usize = 64;

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
    /// Other programs run beside it as peers (a client for a server).
    pub peers: Vec<PeerCommand>,
    /// The environment the programs start with.
    pub env: spawn::Environment,
    /// Whether to keep the segments the run puts on the wire ([`GuestReport::capture`]).
    pub capture: bool,
    /// Whether the program's standard output goes nowhere, instead of to selectlab's (a
    /// benchmark's report is its only output).
    pub quiet: bool,
}

/// Another program to run beside the one under test.
#[derive(Debug, Clone)]
pub struct PeerCommand {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// A file for its standard input (else it has none).
    pub stdin: Option<std::path::PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The program exited by itself, with this code (or 128 + the signal that ended it).
    Exited(i32),
    /// The workload is done: every client heard every line.
    Delivered,
    /// selectlab stopped it at a limit (`--run-for`, or the most calls a run may make).
    Stopped(String),
    /// selectlab stopped it because it waits for what can never happen (the reason).
    Blocked(String),
    /// Something it did cannot be simulated faithfully (the reason).
    Refused(String),
    /// It spins instead of blocking (the symptom; see [`spin`]).
    Spinning(String),
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
    /// Each peer guest's command line and exit code (None: it had not exited).
    pub peers: Vec<(String, Option<i32>)>,
    /// Every simulated call (its text, one per line, is the transcript format).
    pub transcript: Transcript,
    /// The segments on the simulated wire (empty unless [`GuestConfig::capture`]).
    pub capture: Capture,
}

/// The adversity `--adversary` applies to a guest: everything Linux may do that keeps every
/// byte of a connection (short reads and writes, EINTR, lost SYNs, EMFILE and ENFILE from
/// accept, EAGAIN from a UDP sendto, spurious and partial wake-ups, held-back peers). Resets are left out: a reset
/// client legitimately misses lines, and the delivery count could no longer judge the program.
pub const GUEST_ADVERSITY: Adversity = Adversity {
    reset_per_mille: 0,
    enfile_per_mille: 20,
    udp_send_full_per_mille: 20,
    ..Adversity::HOSTILE
};

/// Runs a program in the simulator until it exits, the workload is delivered, a limit is
/// reached, or it does something that is refused. The program is stepped ([`Stepped`]), as
/// every guest is: its call is answered once it can proceed; while it waits, its peers act,
/// and when none can, virtual time passes (or a signal interrupts its wait).
pub fn run(config: &GuestConfig) -> Result<GuestReport, SpawnError> {
    let shim = spawn::shim_path()?;
    let listener = Listener::new()?;
    let main = listener.spawn(&config.command, config.env, &shim, None, config.quiet)?;
    let mut peers = Vec::new();
    for peer in &config.peers {
        let process = listener.spawn(
            &peer.command,
            config.env,
            &shim,
            peer.stdin.as_deref(),
            false,
        )?;
        peers.push((label(&peer.command), process));
    }
    let (mut program, guests) = connect_all(&listener, (label(&config.command), main), peers)?;
    let mut sim = machine(config);
    let mut hosts = Hosts {
        clients: Clients::new(config.clients, config.lines),
        guests,
        started: false,
        trouble: None,
    };
    let mut spin = spin::SpinWatch::default();
    let mut calls = 0u64;
    // Rounds of waiting in a row in which virtual time stood still.
    let mut stalled = 0;
    let end = loop {
        if let Some(code) = program.exit {
            break End::Exited(code);
        }
        if program.can_proceed(&sim, Host::MAIN) {
            stalled = 0;
            let before = program.pending_since().unwrap_or(sim.now());
            let mut kernel = Interleaved {
                sim: &mut sim,
                peers: &mut hosts,
            };
            calls += 1;
            let (req, reply) = match program.proceed(&mut kernel) {
                Ok(Some(answered)) => answered,
                Ok(None) => continue,
                Err(halt) => break ended(halt),
            };
            calls += spawn::clock_reads_in(&req);
            hosts.started |= req.op == Op::Listen && reply.ret == 0;
            hosts.clients.after_call(&mut sim, &req, &reply);
            if let Some(symptom) = spin.note(&req, &reply, before, sim.now()) {
                break End::Spinning(symptom);
            }
            // A descendant refused without its channel has left word by now, or will while
            // the program waits (or when it ends, below).
            if stepped::is_wait(req.op)
                && let Some(why) = listener.descendant_refusal()
            {
                break End::Refused(why);
            }
        } else {
            // It waits: its peers act first, and may finish the run's work or meet trouble
            // (the limits below say so).
            settle(
                &mut Interleaved {
                    sim: &mut sim,
                    peers: &mut hosts,
                },
                |sim| program.can_proceed(sim, Host::MAIN),
            );
            let settled = hosts.clients.done() || hosts.trouble.is_some();
            if !settled && !program.can_proceed(&sim, Host::MAIN) {
                let stuck = stuck(&program, &mut sim, &mut hosts);
                if stuck || sim.now() < config.run_for {
                    // Time passes, or a signal interrupts the wait (even one nothing else
                    // can end); the next round says whether the wait ended or outlasted the
                    // run. A wait with no deadline runs the timers past the run's end: only
                    // then can it be known to wait for ever.
                    let before = sim.now();
                    let end = program.deadline(&sim).map(|_| config.run_for);
                    let until = [hosts.next_deadline(&sim), end].into_iter().flatten().min();
                    program.wait(&mut sim, until);
                    if stuck && !program.can_proceed(&sim, Host::MAIN) {
                        break End::Blocked(program.forever());
                    }
                    stalled = if sim.now() == before { stalled + 1 } else { 0 };
                    if stalled > MAX_STALLED_WAITS {
                        break End::Blocked(format!(
                            "the program waited {MAX_STALLED_WAITS} times in a row while its \
                             peers ran and virtual time stood still"
                        ));
                    }
                    continue;
                }
            }
        }
        if let Some(end) = limits(config, &sim, &mut hosts, calls) {
            break end;
        }
    };
    // The program is done; its peers finish what they can (a client reads the last reply).
    settle(
        &mut Interleaved {
            sim: &mut sim,
            peers: &mut hosts,
        },
        |_| false,
    );
    let end = match (end, hosts.trouble.take()) {
        (_, Some(Halt::Refuse(why))) => End::Refused(why),
        // A program stopped because its wait could never end, once every client heard
        // everything, has done its work.
        (End::Blocked(_), _) if hosts.clients.done() => End::Delivered,
        (end, _) => end,
    };
    let end = match (end, listener.descendant_refusal()) {
        (End::Refused(why), _) | (_, Some(why)) => End::Refused(why),
        (end, None) => end,
    };
    Ok(report(config, end, calls, sim, &hosts))
}

/// Whether nothing can ever end the program's wait: it has no deadline, no peer can run or
/// waits for a time, and no timer is set.
fn stuck(program: &Stepped, sim: &mut Sim, hosts: &mut Hosts) -> bool {
    program.deadline(sim).is_none()
        && hosts.next_deadline(sim).is_none()
        && sim.next_timer().is_none()
        && !any_runnable(sim, hosts)
}

/// How a run that cannot go on ends.
fn ended(halt: Halt) -> End {
    match halt {
        Halt::Refuse(why) => End::Refused(why),
        Halt::Stop(why) => End::Blocked(why),
    }
}

/// The simulated machine a run uses: faithful, or the seeded adversary.
fn machine(config: &GuestConfig) -> Sim {
    let decider = if config.adversary {
        Decider::seeded(config.seed, GUEST_ADVERSITY)
    } else {
        Decider::faithful()
    };
    // The program's random bytes come from the seed, adversary or not.
    let decider = decider.with_entropy_seed(config.seed);
    let sim_config = SimConfig {
        // The program and each peer are processes: each has its own descriptor numbers.
        fd_table_per_host: true,
        capture: config.capture,
        ..SimConfig::default()
    };
    Sim::new(sim_config, decider)
}

/// What a finished run did.
fn report(config: &GuestConfig, end: End, calls: u64, sim: Sim, hosts: &Hosts) -> GuestReport {
    let virtual_time = sim.now();
    let (transcript, capture) = sim.into_records();
    GuestReport {
        end,
        calls,
        virtual_time,
        delivery: (config.clients > 0).then(|| hosts.clients.delivery()),
        peers: hosts
            .guests
            .iter()
            .map(|g| (g.label.clone(), g.exit))
            .collect(),
        transcript,
        capture,
    }
}

/// Whether the run is over after a call: the workload delivered, a peer in trouble, or a
/// limit reached.
fn limits(config: &GuestConfig, sim: &Sim, hosts: &mut Hosts, calls: u64) -> Option<End> {
    if hosts.clients.done() {
        return Some(End::Delivered);
    }
    match hosts.trouble.take() {
        Some(Halt::Refuse(why)) => return Some(End::Refused(why)),
        Some(Halt::Stop(why)) => return Some(End::Blocked(why)),
        None => {}
    }
    if sim.now() >= config.run_for {
        let secs = config.run_for.as_secs_f64();
        return Some(End::Stopped(format!("{secs} s of virtual time passed")));
    }
    (calls >= MAX_GUEST_CALLS).then(|| End::Stopped(format!("{MAX_GUEST_CALLS} calls made")))
}

/// A command line as one string, for reports.
pub(crate) fn label(command: &[OsString]) -> String {
    let words: Vec<_> = command.iter().map(|w| w.to_string_lossy()).collect();
    words.join(" ")
}

/// Accepts every guest's channel and tells them apart by the pid in their hello: the
/// program and its peer guests, each stepped with its hello pending.
pub(crate) fn connect_all(
    listener: &Listener,
    main: (String, Process),
    peers: Vec<(String, Process)>,
) -> Result<(Stepped, Vec<Stepped>), SpawnError> {
    let mut everyone = vec![main];
    everyone.extend(peers);
    let mut found: Vec<Option<(Channel, Request)>> = everyone.iter().map(|_| None).collect();
    for _ in 0..everyone.len() {
        let mut channel = listener.accept()?;
        let hello = channel.hello()?;
        let pid = u32::try_from(hello.args[0]).unwrap_or(0);
        let Some(i) = everyone.iter().position(|(_, p)| p.pid() == pid) else {
            return Err(SpawnError::Unfit(format!(
                "an unknown process (pid {pid}) connected"
            )));
        };
        found[i] = Some((channel, hello));
    }
    let mut stepped = Vec::new();
    for ((label, process), slot) in everyone.into_iter().zip(found) {
        let (channel, hello) =
            slot.ok_or_else(|| SpawnError::Unfit(format!("{label} never connected")))?;
        let answerer = Answerer::default();
        stepped.push(Stepped::new(
            label,
            process,
            channel,
            answerer,
            hello,
            Duration::ZERO,
        ));
    }
    let program = stepped.remove(0);
    Ok((program, stepped))
}
