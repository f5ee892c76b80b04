//! The hosts beside the program under test: the workload's chat clients and other guest
//! programs (a client for a server, say), each a peer that makes one call when the scheduler
//! lets it.
//!
//! A peer guest is a process like the program, behind its own shim and channel. Its next
//! request waits in `pending` until it can be answered without blocking: a blocking receive
//! when data (or an end) is there, a wait when something it watches is ready or its timeout
//! has passed in virtual time. So a peer never blocks the machine, and the program's calls
//! and the peers' interleave one call at a time, deterministically. Peer guests start once
//! the program listens (a client needs its server).

use std::time::Duration;

use nix::libc;
use selectlab_wire::{Op, Reply, Request};

use super::answer::{Answerer, Halt, timeout_of_ns};
use super::clients::Clients;
use super::ready::{self, poll_entries, poll_ready, select_ready, select_sets};
use super::spawn::{Channel, Process};
use crate::kernel::{Events, Fd, Kernel};
use crate::sim::Sim;
use crate::sim::interleave::{Interleaved, NoPeers, Peers};
use crate::sim::transcript::Host;

/// Another guest program, run as a peer.
pub struct PeerGuest {
    /// The command line, for reports.
    pub label: String,
    pub(super) process: Process,
    pub(super) channel: Channel,
    pub(super) answerer: Answerer,
    /// Its next request, and the virtual time it was made.
    pub(super) pending: Option<(Request, Duration)>,
    /// Its exit code, once it has exited.
    pub exit: Option<i32>,
}

/// The program's peers: the clients first (peers 0..C), then the peer guests.
pub struct Hosts {
    /// The chat clients of `--clients`.
    pub clients: Clients,
    /// The other guest programs.
    pub guests: Vec<PeerGuest>,
    /// Whether the program has listened (peer guests start then).
    pub started: bool,
    /// Why a peer guest cannot go on, if one cannot: the run ends with it.
    pub trouble: Option<Halt>,
}

impl Hosts {
    fn guest_of(&self, n: usize) -> Option<usize> {
        n.checked_sub(self.clients.count())
    }

    /// Whether peer guest `g`'s pending request can be answered now without blocking.
    fn can_proceed(&self, sim: &Sim, n: usize, g: usize) -> bool {
        let guest = &self.guests[g];
        let Some((req, since)) = &guest.pending else {
            return false;
        };
        let host = Host::peer(n);
        let a = &req.args;
        let fd = Fd(a[0] as i32);
        let ready = |events: Events| {
            sim.ready_now_as(host, fd)
                .intersects(events | Events::ERR | Events::HUP)
        };
        let timed_out = |ns: i64| timeout_of_ns(ns).is_some_and(|t| sim.now() >= *since + t);
        let blocking = guest.answerer.blocking(fd);
        match req.op {
            Op::Recv => !blocking || a[2] as i32 & libc::MSG_DONTWAIT != 0 || ready(Events::IN),
            Op::Accept => !blocking || ready(Events::IN),
            Op::Send => !blocking || a[1] as i32 & libc::MSG_DONTWAIT != 0 || ready(Events::OUT),
            Op::Poll => timed_out(a[0]) || poll_ready(sim, host, &poll_entries(a, &req.data)),
            Op::Select => timed_out(a[1]) || select_ready(sim, host, &select_sets(a, &req.data)),
            Op::EpollWait => timed_out(a[2]) || sim.ready_now_as(host, fd).contains(Events::IN),
            Op::Sleep if a[1] != 0 => ready::clock_ns(sim, a[0]) >= a[2],
            Op::Sleep => timed_out(a[2]),
            _ => true,
        }
    }

    /// Answers peer guest `g`'s pending request (its waits with no time left: it can proceed)
    /// and reads its next one.
    fn run_guest(&mut self, sim: &mut Sim, g: usize) {
        let guest = &mut self.guests[g];
        let Some((mut req, _)) = guest.pending.take() else {
            return;
        };
        // It is ready, or its time is up: its wait returns now, never moving virtual time.
        match req.op {
            Op::Poll => req.args[0] = 0,
            Op::Select => req.args[1] = 0,
            Op::EpollWait => req.args[2] = 0,
            _ => {}
        }
        let answered = if req.op == Op::Sleep {
            Ok(Reply::ok(0))
        } else {
            let mut alone = NoPeers;
            let mut k = Interleaved {
                sim,
                peers: &mut alone,
            };
            guest.answerer.answer(&mut k, &req)
        };
        match answered {
            Ok(reply) => guest.channel.reply(&reply),
            Err(halt) => {
                self.trouble = Some(halt);
                return;
            }
        }
        match guest.channel.next_request(Some(&mut guest.process)) {
            Ok(Some(next)) => guest.pending = Some((next, sim.now())),
            Ok(None) => guest.exit = Some(guest.process.exit_code()),
            Err(e) => self.trouble = Some(Halt::Stop(format!("{}: {e}", guest.label))),
        }
    }
}

impl Peers for Hosts {
    fn count(&self) -> usize {
        self.clients.count() + self.guests.len()
    }

    fn runnable(&self, sim: &Sim, n: usize) -> bool {
        match self.guest_of(n) {
            None => self.clients.runnable(sim, n),
            Some(g) => self.started && self.trouble.is_none() && self.can_proceed(sim, n, g),
        }
    }

    fn run(&mut self, sim: &mut Sim, n: usize) {
        match self.guest_of(n) {
            None => self.clients.run(sim, n),
            Some(g) => self.run_guest(sim, g),
        }
    }
}
