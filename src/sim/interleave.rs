//! Syscall-granularity interleaving: the program under test and its peers as concurrent hosts.
//!
//! On a real multi-core machine a chat client reads while the server is still flushing: between
//! any two of the server's syscalls, any peer may make one of its own. [`Interleaved`] is a
//! [`Kernel`] for the program under test that, before each of its calls, lets the [`Peers`]
//! run: each peer that is runnable (a thread blocked in poll that the kernel would wake) makes
//! one syscall unless the decision source holds it back. Faithful mode holds nobody back (the
//! fixed fair order: every runnable peer once between two calls of the program); the seeded
//! adversary and the fuzzer's bytes decide each time. Every peer call is recorded under the
//! peer's [`Host`], so a transcript shows who ran what, and write readiness follows each of the
//! peers' reads as it happens, as Linux's does.

use std::net::IpAddr;
use std::time::Duration;

use nix::errno::Errno;

use super::Sim;
use super::transcript::Host;
use crate::addr::{Family, SockAddr, SockType};
use crate::error::{Gai, SockError};
use crate::kernel::{
    CtlOp, Events, Fd, FdSets, Kernel, Mode, PollFd, Shutdown, SockOpt, TimerClock, TimerSetting,
};

/// The hosts that run beside the program under test.
pub trait Peers {
    /// How many peers there are (numbered from 0).
    fn count(&self) -> usize;
    /// Whether peer `n` has a syscall to make now (it would be woken from its wait).
    fn runnable(&self, sim: &Sim, n: usize) -> bool;
    /// Peer `n` makes one syscall (or a few that belong together, such as a reset's
    /// setsockopt and close).
    fn run(&mut self, sim: &mut Sim, n: usize);
    /// The peers that may be runnable, in peer order: every runnable one must be among them.
    /// The default is all of them; a harness that tags its peers' sockets
    /// ([`Sim::tag_peer`]) can offer only those woken or still busy, so that a scheduler's cost
    /// follows the work, not the number of hosts.
    fn candidates(&mut self, sim: &mut Sim) -> Vec<usize> {
        let _ = sim;
        (0..self.count()).collect()
    }
    /// Why the peers cannot go on taking what the host sends them, if they cannot: they have
    /// heard more than anything they said could have made (the host floods). A host that runs
    /// a long stretch of calls asks between them, to stop a flood as soon as it is one.
    fn overwhelmed(&self) -> Option<String> {
        None
    }
}

/// No peers at all: a host running alone.
pub struct NoPeers;

impl Peers for NoPeers {
    fn count(&self) -> usize {
        0
    }

    fn runnable(&self, _: &Sim, _: usize) -> bool {
        false
    }

    fn run(&mut self, _: &mut Sim, _: usize) {}
}

/// Lets every runnable peer that the decision source does not hold back make one call, in peer
/// order, as [`Host::peer`]; then hands the machine back to the host that called. Bounded: each peer
/// runs at most once per call of the program.
pub fn run_peers(sim: &mut Sim, peers: &mut dyn Peers) {
    let caller = sim.host();
    for n in peers.candidates(sim) {
        if peers.runnable(sim, n) && !sim.hold_back() {
            sim.set_host(Host::peer(n));
            peers.run(sim, n);
        }
    }
    sim.set_host(caller);
}

/// The program under test's kernel: the simulator, with the peers running between its calls.
pub struct Interleaved<'a> {
    /// The machine.
    pub sim: &'a mut Sim,
    /// Who else runs on it.
    pub peers: &'a mut dyn Peers,
}

/// Each call: the peers' turn first, then the program's call on the simulator.
macro_rules! interleaved {
    ($( fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        $(
            fn $name(&mut self $(, $arg: $ty)*) -> $ret {
                run_peers(self.sim, self.peers);
                self.sim.$name($($arg),*)
            }
        )*
    };
}

impl Kernel for Interleaved<'_> {
    fn transport(&self) -> &'static str {
        self.sim.transport()
    }

    fn now(&self) -> Duration {
        self.sim.now()
    }

    fn unix_time(&self) -> Duration {
        self.sim.unix_time()
    }

    fn time_zone(&self) -> jiff::tz::TimeZone {
        self.sim.time_zone()
    }

    fn clock(&self, clock: TimerClock) -> Duration {
        self.sim.clock(clock)
    }

    interleaved! {
        fn socket(&mut self, family: Family, ty: SockType) -> Result<Fd, Errno>;
        fn socketpair(&mut self, ty: SockType) -> Result<(Fd, Fd), Errno>;
        fn pipe(&mut self) -> Result<(Fd, Fd), Errno>;
        fn eventfd(&mut self, initval: u32, semaphore: bool) -> Result<Fd, Errno>;
        fn timerfd(&mut self, clock: TimerClock) -> Result<Fd, Errno>;
        fn timerfd_settime(&mut self, fd: Fd, absolute: bool, new: TimerSetting) -> Result<TimerSetting, Errno>;
        fn timerfd_gettime(&mut self, fd: Fd) -> Result<TimerSetting, Errno>;
        fn dup(&mut self, fd: Fd) -> Result<Fd, Errno>;
        fn bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno>;
        fn listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno>;
        fn accept(&mut self, fd: Fd) -> Result<(Fd, SockAddr), Errno>;
        fn connect(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno>;
        fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno>;
        fn send(&mut self, fd: Fd, buf: &[u8]) -> Result<usize, Errno>;
        fn send_vectored(&mut self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno>;
        fn recvfrom(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, Option<SockAddr>), Errno>;
        fn sendto(&mut self, fd: Fd, buf: &[u8], addr: &SockAddr) -> Result<usize, Errno>;
        fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno>;
        fn close(&mut self, fd: Fd) -> Result<(), Errno>;
        fn getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno>;
        fn getpeername(&mut self, fd: Fd) -> Result<SockAddr, Errno>;
        fn bytes_waiting(&mut self, fd: Fd) -> Result<usize, Errno>;
        fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: i32) -> Result<(), Errno>;
        fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<i32, Errno>;
        fn poll(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno>;
        fn dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno>;
        fn epoll_create(&mut self) -> Result<Fd, Errno>;
        fn epoll_ctl(&mut self, epfd: Fd, op: CtlOp, fd: Fd, interest: Events, mode: Mode, data: u64) -> Result<(), Errno>;
        fn epoll_wait(&mut self, epfd: Fd, out: &mut Vec<(u64, Events)>, max: usize, timeout: Option<Duration>) -> Result<usize, Errno>;
        fn select(&mut self, sets: &mut FdSets, timeout: Option<Duration>) -> Result<usize, Errno>;
        fn resolve(&mut self, host: &str, family: Family) -> Result<Vec<IpAddr>, Gai>;
        fn host_by_addr(&mut self, ip: IpAddr) -> Result<String, SockError>;
    }
}
