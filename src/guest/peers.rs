//! The hosts beside the program under test: the workload's chat clients and other guest
//! programs (a client for a server, say), each a peer that makes one call when the scheduler
//! lets it.
//!
//! A peer guest is a process like the program, behind its own shim and channel, run one
//! request at a time ([`Stepped`]): a peer never blocks the machine, and the program's calls
//! and the peers' interleave one call at a time, deterministically. Peer guests start once
//! the program listens (a client needs its server).

use std::time::Duration;

use super::clients::Clients;
use super::stepped::Stepped;
use super::wait::Halt;
use crate::sim::Sim;
use crate::sim::interleave::{Interleaved, NoPeers, Peers};
use crate::sim::transcript::Host;

/// The program's peers: the clients first (peers 0..C), then the peer guests.
pub struct Hosts {
    /// The chat clients of `--clients`.
    pub clients: Clients,
    /// The other guest programs.
    pub guests: Vec<Stepped>,
    /// Whether the program has listened (peer guests start then).
    pub started: bool,
    /// Why a peer guest cannot go on, if one cannot: the run ends with it.
    pub trouble: Option<Halt>,
}

impl Hosts {
    fn guest_of(&self, n: usize) -> Option<usize> {
        n.checked_sub(self.clients.count())
    }

    /// The earliest virtual time at which a peer guest's wait times out or its sleep ends.
    pub fn next_deadline(&self, sim: &Sim) -> Option<Duration> {
        self.guests.iter().filter_map(|g| g.deadline(sim)).min()
    }

    /// Peer guest `g` makes its pending call (alone: the others wait for their turn).
    fn run_guest(&mut self, sim: &mut Sim, g: usize) {
        let mut k = Interleaved {
            sim,
            peers: &mut NoPeers,
        };
        if let Err(halt) = self.guests[g].proceed(&mut k) {
            self.trouble = Some(halt);
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
            Some(g) => {
                self.started
                    && self.trouble.is_none()
                    && self.guests[g].can_proceed(sim, Host::peer(n))
            }
        }
    }

    fn run(&mut self, sim: &mut Sim, n: usize) {
        match self.guest_of(n) {
            None => self.clients.run(sim, n),
            Some(g) => self.run_guest(sim, g),
        }
    }
}
