//! The simulator transport: an in-memory Linux, deterministic from a seed.
//!
//! - `state`: sockets, pipes, open files and the descriptor table, with Linux's limits.
//! - `calls`: the [`Kernel`](crate::kernel::Kernel) trait on [`Sim`], every call recorded.
//! - `net`: what each socket call does (TCP, UDP, AF_UNIX), mirroring Linux's behaviour.
//! - `poll_mask`: what poll reports for each object (Linux's `->poll` methods).
//! - `epoll`: epoll's interest and ready lists, wake-ups, and select.
//! - [`decide`]: the one decision source (faithful, seeded adversary, fuzzer bytes).
//! - [`interleave`]: peers (chat clients) making syscalls between any two of the program's.
//! - [`transcript`]: the structured record of every call.
//! - [`capture`]: the segments the calls put on the wire (for `--pcap`).
//!
//! Time is virtual: it only moves when a wait would block, and then it jumps straight to the next
//! timer or the wait's deadline. No call scans all sockets; each costs the same with ten sockets
//! or ten thousand.

mod calls;
pub mod capture;
pub mod decide;
mod epoll;
pub mod interleave;
mod net;
mod poll_mask;
mod skb;
mod state;
pub mod transcript;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{Family, SockType};
use crate::kernel::{Events, Fd, PollFd};
use decide::{Choice, Decider};
use slotmap::SlotMap;
use state::{FdTable, File, Object, Pipe, Sock};
use transcript::{Arg, Call, Host, Ready, Record, Transcript};

slotmap::new_key_type! {
    /// A simulated object's id (an open file, socket, pipe or epoll instance): generation
    /// checked, so a stale id (say, a timer for a socket since closed) finds nothing instead of
    /// aliasing a new object. Keys order by slot, and freed slots are reused last-freed first,
    /// so everything keyed by them is iterated in a deterministic order.
    struct Id;
}

/// Most timer events one wait may process before giving up with EDEADLK (a bound on the loop;
/// each connecting socket schedules at most `TCP_SYN_RETRIES + 1` timers).
pub const MAX_TIMERS_PER_WAIT: usize = 1 << 16;

/// The simulator's wall-clock origin: 2026-01-01 00:00:00 UTC, as seconds since the Unix epoch
/// (what [`Kernel::unix_time`](crate::kernel::Kernel::unix_time) reports at virtual time zero).
pub const SIM_EPOCH_UNIX_SECS: u64 = 1_767_225_600;

/// A call that may wait for readiness, as a harness asks about it ([`Sim::waits_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingCall {
    /// A receive of up to `len` bytes (`from`: recvfrom, asking for the sender's address).
    Recv {
        /// Bytes asked for.
        len: usize,
        /// Whether it asks for the sender's address (a socket call only).
        from: bool,
    },
    /// A send of `len` bytes (`to`: sendto, with an address).
    Send {
        /// Bytes offered.
        len: usize,
        /// Whether it gives an address (a socket call only).
        to: bool,
    },
    /// accept.
    Accept,
    /// epoll_wait for at most `max` events.
    EpollWait {
        /// The most events asked for.
        max: usize,
    },
}

/// How a simulated machine is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Host names and their addresses; every address listed is local to the simulated machine.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Addresses that exist but never answer (connects to them time out).
    pub blackholes: BTreeSet<IpAddr>,
    /// Addresses a router reports unreachable (ICMP host unreachable: EHOSTUNREACH).
    pub unreachable: BTreeSet<IpAddr>,
    /// The ephemeral port range (net.ipv4.ip_local_port_range); all taken: EADDRNOTAVAIL.
    pub ephemeral_ports: std::ops::RangeInclusive<u16>,
    /// Whether binding ports below 1024 is allowed (root, or CAP_NET_BIND_SERVICE).
    pub privileged: bool,
    /// Most open descriptors (RLIMIT_NOFILE); one more gives EMFILE.
    pub fd_limit: usize,
    /// Whether calls are recorded in the transcript.
    pub transcript: bool,
    /// Whether the segments the calls put on the wire are kept ([`Sim::capture`]).
    pub capture: bool,
    /// Whether each host has a descriptor table of its own, as separate processes do (a guest
    /// program and its peers, see `src/guest`). Off, every host shares the program's table,
    /// as threads of one process do (the reference sessions, whose transcripts say so).
    pub fd_table_per_host: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "localhost".to_string(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        );
        SimConfig {
            hosts,
            blackholes: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            ephemeral_ports: state::EPHEMERAL_FIRST_PORT..=state::EPHEMERAL_LAST_PORT,
            privileged: false,
            fd_limit: 65_536,
            transcript: true,
            capture: false,
            fd_table_per_host: false,
        }
    }
}

/// A timer inside the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Retransmit the SYN of a connecting socket.
    SynRetry(Id, u64),
    /// The last SYN retransmission went unanswered: the connect fails with ETIMEDOUT.
    SynTimeout(Id, u64),
    /// Forget a TIME_WAIT address.
    TimeWaitEnd(IpAddr, u16),
    /// The delayed ACK of a received FIN goes out on its own.
    DelayedAck(Id),
    /// A timerfd expires (for the arming it was queued by).
    FdTimerExpiry(Id, u64),
}

/// The binding namespace a port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

/// The simulated kernel. Implements [`Kernel`](crate::kernel::Kernel) (in `calls.rs`).
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    /// Sockets a harness tagged with its peer's number (see [`Sim::tag_peer`]).
    peer_tags: BTreeMap<Id, usize>,
    /// Tagged peers whose socket was woken since the harness last asked.
    woken_peers: BTreeSet<usize>,
    /// Calls made so far (the simulator's own timers not counted).
    syscalls: u64,
    now: Duration,
    /// The descriptor tables: one, or one per host (indexed by host number).
    fd_tables: Vec<FdTable>,
    files: SlotMap<Id, File>,
    socks: SlotMap<Id, Sock>,
    pipes: SlotMap<Id, Pipe>,
    counters: SlotMap<Id, state::Counter>,
    timerfds: SlotMap<Id, state::TimerFd>,
    epolls: SlotMap<Id, epoll::EpollInstance>,
    /// Which epoll items watch each object (so a wake costs the watchers, not the world).
    watchers: BTreeMap<Object, Vec<epoll::Watch>>,
    ports: BTreeMap<(Proto, u16, IpAddr), Vec<Id>>,
    /// Addresses in TIME_WAIT: when it ends, and whether the closed socket had SO_REUSEADDR.
    time_wait: BTreeMap<(u16, IpAddr), (Duration, bool)>,
    paths: BTreeMap<PathBuf, Option<Id>>,
    local_ips: BTreeSet<IpAddr>,
    next_port: u16,
    timers: BinaryHeap<Reverse<(Duration, u64, Timer)>>,
    timer_seq: u64,
    decide: Decider,
    /// A choice made inside a call (a spurious readiness) waiting to be written to the
    /// transcript with the call.
    pending_choice: Option<Choice>,
    /// Who is making calls now (records carry it).
    host: Host,
    /// A host whose next wait that finds nothing ready is interrupted: the adversary sent it a
    /// signal as it was about to block outside the simulator's wait calls
    /// ([`Sim::interrupt_next_wait`]).
    signalled: Option<Host>,
    /// Numbers the next new descriptors must take ([`Sim::place_next_fds`]).
    placed_fds: Vec<i32>,
    transcript: Transcript,
    capture: capture::Capture,
}

impl Sim {
    /// A simulated machine with the given set-up and decision source.
    pub fn new(config: SimConfig, decide: Decider) -> Sim {
        let mut local_ips: BTreeSet<IpAddr> = config.hosts.values().flatten().copied().collect();
        local_ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
        local_ips.insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let transcript = Transcript::new(config.transcript);
        let capture = capture::Capture::new(config.capture);
        let first_port = *config.ephemeral_ports.start();
        Sim {
            config,
            now: Duration::ZERO,
            fd_tables: vec![FdTable::default()],
            files: SlotMap::with_key(),
            socks: SlotMap::with_key(),
            pipes: SlotMap::with_key(),
            counters: SlotMap::with_key(),
            timerfds: SlotMap::with_key(),
            epolls: SlotMap::with_key(),
            watchers: BTreeMap::new(),
            ports: BTreeMap::new(),
            time_wait: BTreeMap::new(),
            paths: BTreeMap::new(),
            local_ips,
            next_port: first_port,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            syscalls: 0,
            peer_tags: BTreeMap::new(),
            woken_peers: BTreeSet::new(),
            decide,
            pending_choice: None,
            host: Host::MAIN,
            signalled: None,
            placed_fds: Vec::new(),
            transcript,
            capture,
        }
    }

    /// A faithful simulator (exactly what Linux loopback does) with the default set-up.
    pub fn faithful() -> Sim {
        Sim::new(SimConfig::default(), Decider::faithful())
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The segments on the wire so far (empty unless [`SimConfig::capture`] is on).
    pub fn capture(&self) -> &capture::Capture {
        &self.capture
    }

    /// The transcript and the capture, kept when the run is over.
    pub fn into_records(self) -> (Transcript, capture::Capture) {
        (self.transcript, self.capture)
    }

    /// Tags `fd`'s socket as peer `n`'s: from now on a wake-up of it (data, an end, an error,
    /// room to write: whatever may make a waiting peer runnable) is noted for
    /// [`Sim::take_woken_peers`]. A scheduler then looks at the peers that may have something
    /// to do, not at every peer before every call.
    pub fn tag_peer(&mut self, fd: Fd, n: usize) {
        if let Ok(id) = self.sock_id(fd) {
            self.peer_tags.insert(id, n);
        }
    }

    /// The tagged peers woken since the last call, in peer order.
    pub fn take_woken_peers(&mut self) -> BTreeSet<usize> {
        std::mem::take(&mut self.woken_peers)
    }

    /// Calls made so far, by every host (the simulator's own timers not counted).
    pub fn syscalls(&self) -> u64 {
        self.syscalls
    }

    /// The host whose calls are being made.
    pub fn host(&self) -> Host {
        self.host
    }

    /// Makes `host` the one whose calls follow (they are recorded under its name).
    pub fn set_host(&mut self, host: Host) {
        self.host = host;
    }

    /// What poll would report for `fd` now (ERR and HUP included), without a call being made or
    /// recorded: the scheduler's view of whether a peer blocked in poll would be woken.
    pub fn ready_now(&self, fd: Fd) -> Events {
        self.ready_now_as(self.host, fd)
    }

    /// [`Sim::ready_now`] for `host`'s descriptor `fd` (with a table per host, numbers are
    /// per host).
    pub fn ready_now_as(&self, host: Host, fd: Fd) -> Events {
        self.file_as(host, fd)
            .map_or(Events::NVAL, |f| self.readiness(f.object))
    }

    /// Whether `call` on `host`'s descriptor `fd` waits for readiness when it finds none (on a
    /// non-blocking descriptor it would give EAGAIN), rather than failing or returning at once,
    /// without a call being made or recorded: a harness's view, like [`Sim::ready_now_as`]. A
    /// stepped program's blocking call waits only if it would.
    pub fn waits_as(&self, host: Host, fd: Fd, call: WaitingCall) -> bool {
        use WaitingCall::{Accept, EpollWait, Recv, Send};
        let Some(file) = self.file_as(host, fd) else {
            return false;
        };
        match (file.object, call) {
            (Object::Sock(id), call) => {
                let s = self.sock(id);
                let listening = matches!(s.state, state::State::Listen { .. });
                // A stream send of no bytes returns 0 at once (a receive of none waits for
                // data: its target is at least one byte).
                let empty_stream = |len: usize| len == 0 && s.ty == SockType::Stream;
                // An AF_UNIX stream socket refuses an address at once.
                let unix_stream = s.ty == SockType::Stream && s.family == Family::Unix;
                match call {
                    Accept => listening,
                    Recv { .. } => !listening,
                    Send { len, to } => !(listening || empty_stream(len) || (to && unix_stream)),
                    EpollWait { .. } => false,
                }
            }
            // A pipe's read of no bytes returns 0 at once, and so does its write.
            (Object::PipeRead(_), Recv { len, from: false })
            | (Object::PipeWrite(_), Send { len, to: false }) => len > 0,
            // An eventfd or timerfd counter is 8 bytes: less is EINVAL.
            (Object::EventFd(_), Recv { len, from: false } | Send { len, to: false })
            | (Object::TimerFd(_), Recv { len, from: false }) => len >= 8,
            (Object::Epoll(_), EpollWait { max }) => max > 0,
            _ => false,
        }
    }

    /// Whether a send on `host`'s descriptor `fd` would go on now (take something, or fail at
    /// once) rather than give EAGAIN, without a call being made or recorded. Poll's room,
    /// except on an AF_UNIX socket, whose sends go on past the point where poll stops
    /// reporting room (see `unix_send_takes`).
    pub fn send_ready_as(&self, host: Host, fd: Fd) -> bool {
        let ready = self.ready_now_as(host, fd);
        if ready.intersects(Events::OUT | Events::ERR | Events::HUP | Events::NVAL) {
            return true;
        }
        match self.file_as(host, fd).map(|f| f.object) {
            Some(Object::Sock(id)) => {
                self.sock(id).family == Family::Unix && self.unix_send_takes(id)
            }
            _ => false,
        }
    }

    /// The open file `host`'s descriptor `fd` refers to.
    fn file_as(&self, host: Host, fd: Fd) -> Option<&File> {
        let id = self
            .fd_tables
            .get(self.table_of(host))
            .and_then(|t| t.get(fd.0))?;
        self.files.get(id)
    }

    /// The address `fd`'s socket is bound to, without a call being made or recorded: a
    /// harness's view (where a guest program listens), like [`Sim::ready_now`].
    pub fn local_addr(&self, fd: Fd) -> Option<crate::addr::SockAddr> {
        self.sock(self.sock_id(fd).ok()?).local.clone()
    }

    /// Whether socket `fd` is still trying to connect (its SYN dropped, it retries on a
    /// timer): a harness's question, not a call of the program's, so not recorded.
    pub fn still_connecting(&self, fd: Fd) -> bool {
        self.sock_id(fd)
            .is_ok_and(|id| matches!(self.sock(id).state, state::State::SynSent { .. }))
    }

    /// Whether the adversary reset the connection of socket `fd` (a harness's way to tell a
    /// network fault from a program's doing; a real machine cannot tell them apart).
    pub fn reset_by_adversary(&self, fd: Fd) -> bool {
        self.sock_id(fd)
            .is_ok_and(|id| self.sock(id).reset_by_adversary)
    }

    /// Whether the decision source holds a runnable peer back before the main host's next call.
    pub fn hold_back(&mut self) -> bool {
        self.decide.hold_back()
    }

    /// Lets virtual time pass while every host waits: up to `until` (`None`: for as long as the
    /// next timer takes), or to the next timer if that comes first (it runs, and may wake
    /// someone). For a harness whose program waits outside the simulator's own wait calls (a
    /// guest between two of its requests). With no timer set and no end given, nothing happens.
    pub fn idle(&mut self, until: Option<Duration>) {
        match (self.next_timer(), until) {
            (Some(at), Some(until)) if at > until => self.now = self.now.max(until),
            (Some(at), _) => {
                self.run_timers(at);
            }
            (None, Some(until)) => self.now = self.now.max(until),
            (None, None) => {}
        }
    }

    /// When the next timer runs (a SYN retransmission, a delayed ACK, a timerfd's expiry, the
    /// end of a TIME_WAIT), if one is set.
    pub fn next_timer(&self) -> Option<Duration> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Whether the adversary sends a signal to a host about to block in a wait outside the
    /// simulator's wait calls (a guest's poll, select or epoll_wait that nothing has made
    /// ready). If it does, the harness says so with [`Sim::interrupt_next_wait`] when the wait
    /// is made.
    pub fn signal_arrives(&mut self) -> bool {
        self.decide.eintr()
    }

    /// The calling host's next wait returns EINTR unless it finds something ready, as a wait
    /// that blocks inside the simulator may (see [`Sim::signal_arrives`]).
    pub fn interrupt_next_wait(&mut self) {
        self.signalled = Some(self.host);
    }

    /// The calling host's wait is over: a signal sent for it has been taken, whether the wait
    /// blocked, found something ready or failed at once.
    fn wait_done(&mut self) {
        if self.signalled == Some(self.host) {
            self.signalled = None;
        }
    }

    /// Whether an address belongs to the simulated machine (all of 127.0.0.0/8 does, as on Linux).
    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_unspecified()
            || matches!(ip, IpAddr::V4(v4) if v4.is_loopback())
            || self.local_ips.contains(&ip)
    }

    fn record(
        &mut self,
        call: Call,
        fd: i32,
        arg: Arg,
        result: Result<i64, Errno>,
        choice: Option<Choice>,
    ) {
        self.record_wait(call, fd, arg, result, choice, Ready::Nothing);
    }

    /// Whether calls are recorded (what only the transcript needs is not worked out otherwise).
    fn transcript_on(&self) -> bool {
        self.transcript.enabled()
    }

    /// [`Sim::record`] for a readiness wait, with what it reported.
    fn record_wait(
        &mut self,
        call: Call,
        fd: i32,
        arg: Arg,
        result: Result<i64, Errno>,
        choice: Option<Choice>,
        ready: Ready,
    ) {
        let choice = choice.or(self.pending_choice.take());
        self.syscalls += u64::from(call != Call::Timer);
        self.transcript.push(Record {
            at: self.now,
            host: self.host,
            call,
            fd,
            arg,
            result,
            ready,
            choice,
        });
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((
            self.now.saturating_add(after),
            self.timer_seq,
            timer,
        )));
    }

    /// Which descriptor table `host`'s calls use.
    fn table_of(&self, host: Host) -> usize {
        if self.config.fd_table_per_host {
            usize::from(host.0)
        } else {
            0
        }
    }

    /// The calling host's descriptor table.
    fn fds(&self) -> &FdTable {
        static EMPTY: FdTable = FdTable::EMPTY;
        self.fd_tables
            .get(self.table_of(self.host))
            .unwrap_or(&EMPTY)
    }

    /// The calling host's descriptor table, made if it is its first descriptor.
    fn fds_mut(&mut self) -> &mut FdTable {
        let i = self.table_of(self.host);
        if self.fd_tables.len() <= i {
            self.fd_tables.resize_with(i + 1, FdTable::default);
        }
        &mut self.fd_tables[i]
    }

    /// The open file behind a descriptor.
    fn file(&self, fd: Fd) -> Result<Object, Errno> {
        let id = self.fds().get(fd.0).ok_or(Errno::EBADF)?;
        Ok(self
            .files
            .get(id)
            .expect("descriptor table points at live files")
            .object)
    }

    /// The socket behind a descriptor (ENOTSOCK for a pipe).
    fn sock_id(&self, fd: Fd) -> Result<Id, Errno> {
        match self.file(fd)? {
            Object::Sock(id) => Ok(id),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    fn sock(&self, id: Id) -> &Sock {
        self.socks.get(id).expect("live socket id")
    }

    fn sock_mut(&mut self, id: Id) -> &mut Sock {
        self.socks.get_mut(id).expect("live socket id")
    }

    /// The numbers the calling host's next new descriptors take, in order, instead of the
    /// lowest free: a guest program's real descriptor table has reserved them (see
    /// `src/guest`).
    /// Numbers left over when its call creates fewer are dropped by [`Sim::clear_placed_fds`].
    pub fn place_next_fds(&mut self, fds: &[Fd]) {
        self.placed_fds = fds.iter().rev().map(|fd| fd.0).collect();
    }

    /// Random bytes for a program that asks for them (getrandom): from the run's decision
    /// source, so the same seed gives the same bytes. Not a socket call: not recorded.
    pub fn entropy(&mut self, buf: &mut [u8]) {
        self.decide.entropy(buf);
    }

    /// Forgets placed numbers the last call did not use (it failed, or made fewer).
    pub fn clear_placed_fds(&mut self) {
        self.placed_fds.clear();
    }

    /// Opens a new descriptor for an object (EMFILE past the limit).
    fn open_fd(&mut self, object: Object) -> Result<Fd, Errno> {
        if self.fds().open() >= self.config.fd_limit {
            return Err(Errno::EMFILE);
        }
        let file = self.files.insert(File { object, refs: 1 });
        let fd = self.install(file, None);
        if fd.is_err() {
            self.files.remove(file);
        }
        fd
    }

    /// Gives a descriptor to a file that gained a reference (dup), dropping the reference
    /// again if there is no number for it.
    fn install_dup(&mut self, file: Id, min: Option<i32>) -> Result<Fd, Errno> {
        let fd = self.install(file, min);
        if fd.is_err() {
            self.files.get_mut(file).expect("live file").refs -= 1;
        }
        fd
    }

    /// Gives `file` a descriptor: a placed number if there is one, else the lowest free one
    /// (at or above `min`). A placed number already in use here is EBADF: the guest's two
    /// tables disagree (see `src/guest`).
    fn install(&mut self, file: Id, min: Option<i32>) -> Result<Fd, Errno> {
        if let Some(fd) = self.placed_fds.pop() {
            return self
                .fds_mut()
                .install_exact(file, fd)
                .map(Fd)
                .ok_or(Errno::EBADF);
        }
        Ok(Fd(match min {
            Some(min) => self.fds_mut().install_at_least(file, min),
            None => self.fds_mut().install(file),
        }))
    }

    fn check_fds_available(&self, n: usize) -> Result<(), Errno> {
        if self.fds().open() + n > self.config.fd_limit {
            Err(Errno::EMFILE)
        } else {
            Ok(())
        }
    }

    /// Runs timers due at or before `until`; returns how many ran.
    fn run_timers(&mut self, until: Duration) -> usize {
        let mut ran = 0;
        while ran < MAX_TIMERS_PER_WAIT {
            match self.timers.peek() {
                Some(Reverse((at, _, _))) if *at <= until => {}
                _ => break,
            }
            let Reverse((at, _, timer)) = self.timers.pop().expect("peeked");
            self.now = self.now.max(at);
            self.fire(timer);
            ran += 1;
        }
        ran
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::SynRetry(id, attempt) => self.syn_retry(id, attempt),
            Timer::SynTimeout(id, attempt) => self.syn_timeout(id, attempt),
            Timer::DelayedAck(id) => self.send_owed_ack(id),
            Timer::FdTimerExpiry(id, arming) => self.fire_timerfd(id, arming),
            Timer::TimeWaitEnd(ip, port) => {
                if self
                    .time_wait
                    .get(&(port, ip))
                    .is_some_and(|(end, _)| *end <= self.now)
                {
                    self.time_wait.remove(&(port, ip));
                }
            }
        }
        self.record(Call::Timer, -1, Arg::None, Ok(0), None);
    }

    /// Runs `ready` until it finds something, the timeout passes, or nothing can ever change:
    /// the common loop of poll, select and epoll_wait. Waiting moves virtual time to the next
    /// timer; a blocking wait may be interrupted by the adversary (EINTR, never restarted).
    fn block_until(
        &mut self,
        timeout: Option<Duration>,
        mut ready: impl FnMut(&mut Sim) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        // A deadline past the end of time is no deadline at all.
        let deadline = timeout.and_then(|t| self.now.checked_add(t));
        let signalled = self.signalled == Some(self.host);
        loop {
            let n = ready(self)?;
            if n > 0 || timeout == Some(Duration::ZERO) {
                return Ok(n);
            }
            if signalled || self.decide.eintr() {
                return Err(Errno::EINTR);
            }
            match (self.next_timer(), deadline) {
                (Some(t), Some(d)) if t > d => {
                    self.now = d;
                    return Ok(0);
                }
                (Some(t), _) => {
                    if self.run_timers(t) == 0 {
                        return Err(Errno::EDEADLK);
                    }
                }
                (None, Some(d)) => {
                    self.now = self.now.max(d);
                    return Ok(0);
                }
                // Nothing can ever become ready: a real kernel would hang for ever. Say so.
                (None, None) => return Err(Errno::EDEADLK),
            }
        }
    }

    fn poll_inner(
        &mut self,
        fds: &mut [PollFd],
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        self.block_until(timeout, |sim| Ok(sim.poll_once(fds)))
    }

    fn poll_once(&mut self, fds: &mut [PollFd]) -> usize {
        let mut ready = 0;
        for p in fds.iter_mut() {
            p.revents = match self.file(p.fd) {
                Err(_) => Events::NVAL,
                Ok(obj) => {
                    let always = Events::ERR | Events::HUP;
                    self.readiness(obj).intersection(p.events | always)
                }
            };
            if !p.revents.is_empty() {
                ready += 1;
            }
        }
        let quiet = |p: &PollFd| p.revents.is_empty() && p.events.contains(Events::IN);
        let any = fds.iter().any(quiet);
        if let Some(i) = self.spurious_pick(any, || fds.iter().filter(|p| quiet(p)).count()) {
            let p = fds
                .iter_mut()
                .filter(|p| quiet(p))
                .nth(i)
                .expect("picked among them");
            p.revents = Events::IN;
            ready += 1;
        }
        ready
    }

    /// The lawful adversary's spurious wakeup (select(2), BUGS: readiness may be reported and the
    /// read then block): among the quiet descriptors watched for input, which one (if any) is
    /// reported readable anyway. `any` says whether there is one; `candidates` counts them,
    /// and is called only when the decision source chose a spurious wakeup, so a faithful wait
    /// never pays a scan for it (epoll's cost stays independent of the idle registrations).
    fn spurious_pick(&mut self, any: bool, candidates: impl FnOnce() -> usize) -> Option<usize> {
        if !any || !self.decide.spurious() {
            return None;
        }
        self.pending_choice = Some(Choice::Spurious);
        Some(self.decide.pick(candidates()))
    }
}
