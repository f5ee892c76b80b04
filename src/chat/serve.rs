//! The chat server's I/O: the sans-IO [`ChatServer`] driven by the [`Reactor`](crate::reactor::Reactor) on any kernel
//! and backend, level-triggered, edge-triggered or one-shot.
//!
//! Reads drain to EAGAIN (within a per-event budget; an exhausted budget re-arms with
//! EPOLL_CTL_MOD, which re-polls). Output is flushed once per reactor turn with one vectored
//! send per client (under edge triggering: until EAGAIN, and an exhausted send budget re-arms
//! too); a level-triggered or one-shot client with output left over is watched for OUT until
//! its queue is empty, and only then, so an idle server never spins. One-shot registrations
//! are re-armed after every event.
//!
//! The zoo's bugs (`crate::bugs`) are switched on here, each at the line where the original
//! project went wrong, and only when [`ServeConfig::bugs`] asks for it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;

use super::server::{Action, ChatServer, ClientId, Departure, Limits, SERVER_FULL_LINE};
use crate::addr::SockAddr;
use crate::bugs::{Bug, Bugs};
use crate::kernel::{Events, Fd, Kernel, Mode};
use crate::reactor::{App, Io};
use crate::readiness::Token;

mod write;

/// The listener's token; clients get tokens from 1 up, never reused.
pub const LISTENER: Token = Token(0);
/// The token of the timer that wakes the server when a slow consumer's time is up.
pub const SLOW_CONSUMER_TIMER: Token = Token(usize::MAX);
/// Size of the shared read buffer.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes read from one client per event, so one chatty client cannot starve the others.
pub const MAX_READ_BYTES_PER_EVENT: usize = 256 * 1024;
/// Most connections accepted per listener event.
pub const MAX_ACCEPTS_PER_EVENT: usize = 64;
/// Most recv calls per client per event (with the byte budget above, a bound on the loop
/// even when reads return little).
pub const MAX_RECVS_PER_EVENT: usize = 64;
/// How long the zoo's `bt_blocking_send_stalls_all` blocks in one send (a socket timeout).
pub const BLOCKING_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most sends per client per flush under edge triggering.
pub const MAX_SENDS_PER_FLUSH: usize = 64;
/// How long accepting pauses after EMFILE/ENFILE (the connection stays queued, so the
/// listener stays readable: a naive loop would spin).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's log lines not yet taken, with the kernel time each was written; shared by
/// the server and whoever copies them out.
#[derive(Debug, Clone, Default)]
pub struct ServerLog(Rc<RefCell<Vec<(Duration, String)>>>);

impl ServerLog {
    /// Takes the lines written since the last call.
    pub fn take(&self) -> Vec<(Duration, String)> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// How the server is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// The room's limits.
    pub limits: Limits,
    /// Level-triggered, edge-triggered or one-shot (the last two need epoll).
    pub mode: Mode,
    /// Switched-on bugs from the zoo; [`Bugs::NONE`] for the reference server.
    pub bugs: Bugs,
}

#[derive(Debug)]
struct Conn {
    fd: Fd,
    /// OUT is in the registered interest (level-triggered and one-shot; edge always has it).
    watching_out: bool,
    close_after_flush: bool,
}

/// Counters for the no-busy-loop property and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events dispatched to the server.
    pub events: u64,
    /// recv calls that returned EAGAIN (wasted wakeups).
    pub empty_reads: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// send calls made.
    pub sends: u64,
    /// Clients that ever joined.
    pub joined: u64,
    /// Times reading stopped because a queue passed the soft limit (back-pressure).
    pub read_pauses: u64,
}

/// The chat server as a reactor application.
pub struct ChatApp {
    core: ChatServer,
    listener: Option<Fd>,
    conns: BTreeMap<ClientId, Conn>,
    mode: Mode,
    bugs: Bugs,
    next_id: ClientId,
    read_buf: Vec<u8>,
    dirty: Vec<ClientId>,
    /// Log lines not yet taken, with the kernel time they were written.
    log: ServerLog,
    stats: Stats,
    /// What the tutorial's buggy loop remembers between iterations: the last client read from and
    /// the last chunk it sent (used only when a zoo bug is switched on).
    last_reader: Option<ClientId>,
    last_chunk: Vec<u8>,
    /// Back-pressure: input is not read while a queue is above the soft limit.
    reading_paused: bool,
    /// Since when (kernel time) each client's queue has been above the soft limit.
    over_soft_since: BTreeMap<ClientId, Duration>,
}

impl ChatApp {
    /// A server on an already listening socket; registers it.
    pub fn new(io: &mut Io<'_>, listener: Fd, config: ServeConfig) -> Result<ChatApp, Errno> {
        io.register(listener, LISTENER, Events::IN, config.mode)?;
        Ok(ChatApp {
            core: ChatServer::with_bugs(config.limits, config.bugs)
                .in_time_zone(io.kernel.time_zone()),
            listener: Some(listener),
            conns: BTreeMap::new(),
            mode: config.mode,
            bugs: config.bugs,
            next_id: 1,
            read_buf: vec![0; READ_CHUNK_BYTES],
            dirty: Vec::new(),
            log: ServerLog::default(),
            stats: Stats::default(),
            last_reader: None,
            last_chunk: Vec::new(),
            reading_paused: false,
            over_soft_since: BTreeMap::new(),
        })
    }

    /// The room (for properties: its size, its peak queue).
    pub fn core(&self) -> &ChatServer {
        &self.core
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Takes the log lines written since the last call.
    pub fn take_log(&mut self) -> Vec<(Duration, String)> {
        self.log.take()
    }

    /// A handle on the log, for a harness that copies lines out while the server runs (a
    /// simulated session writes them into its transcript the moment they happen).
    pub fn log_handle(&self) -> ServerLog {
        self.log.clone()
    }

    /// Whether input is paused because a queue is over the soft limit (back-pressure).
    pub fn reading_paused(&self) -> bool {
        self.reading_paused
    }

    /// Whether the server has stopped (its listener is closed).
    pub fn stopped(&self) -> bool {
        self.listener.is_none()
    }

    /// Stops: closes every client (dropping queues) and the listener.
    pub fn stop(&mut self, io: &mut Io<'_>) {
        self.core.stop(unix_secs(io));
        self.process_actions(io);
        if let Some(l) = self.listener.take() {
            let _ = io.deregister(LISTENER);
            let _ = io.kernel.close(l);
        }
        self.log(io, "server stopped".into());
    }

    /// What a zoo bug makes of the server when the original would have died (an uncaught
    /// exception, a hang): it stops, and says why.
    fn crash(&mut self, io: &mut Io<'_>, why: &str) {
        self.log(io, format!("server crashed: {why}"));
        self.stop(io);
    }

    fn bug(&self, bug: Bug) -> bool {
        self.bugs.has(bug)
    }

    fn interest(&self, out: bool) -> Events {
        let input = if self.reading_paused {
            Events::NONE
        } else {
            Events::IN | Events::RDHUP
        };
        // Edge triggering watches OUT always (an edge comes only when room frees), but for the
        // zoo's Netty bug, whose transport asks for OUT only while a write is incomplete.
        let edge_out = self.mode.edge && !self.bug(Bug::EtPartialWriteNoEpollout);
        if edge_out || out {
            input | Events::OUT
        } else {
            input
        }
    }

    fn log(&mut self, io: &Io<'_>, line: String) {
        self.log.0.borrow_mut().push((io.now(), line));
    }

    /// Accepts what is queued (within a budget).
    fn accept_ready(&mut self, io: &mut Io<'_>) {
        let Some(listener) = self.listener else {
            return;
        };
        let budget = if self.mode.edge && self.bug(Bug::EtSingleAccept) {
            1
        } else {
            MAX_ACCEPTS_PER_EVENT
        };
        for _ in 0..budget {
            match io.kernel.accept(listener) {
                Ok((fd, peer)) => self.admit(io, fd, peer),
                Err(Errno::EAGAIN) => {
                    if self.mode.oneshot {
                        let _ = io.modify(LISTENER, Events::IN, self.mode);
                    }
                    return;
                }
                Err(Errno::ECONNABORTED | Errno::EINTR) => {}
                Err(e @ (Errno::EMFILE | Errno::ENFILE)) => {
                    if self.bug(Bug::AcceptEmfileNoBackoff) {
                        self.log(io, format!("accept: {e}"));
                        continue;
                    }
                    if self.bug(Bug::AcceptEmfileSpinRedis) {
                        self.log(io, format!("accept: {e}"));
                        return;
                    }
                    self.log(
                        io,
                        format!("accept: {e}: pausing for {} ms", ACCEPT_BACKOFF.as_millis()),
                    );
                    let _ = io.modify(LISTENER, Events::NONE, self.mode);
                    io.set_timer(LISTENER, ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    self.log(io, format!("accept: {e}"));
                    return;
                }
            }
        }
        if budget > 1 {
            // Budget spent with connections perhaps still queued: re-poll (edge-triggered
            // needs it; level-triggered would report again anyway). mio#845 did not.
            let _ = io.modify(LISTENER, Events::IN, self.mode);
        }
    }

    fn admit(&mut self, io: &mut Io<'_>, fd: Fd, peer: SockAddr) {
        let id = self.next_id;
        self.next_id += 1;
        let registered = io.register(fd, Token(id), self.interest(false), self.mode);
        let joined = registered.is_ok() && self.core.join(id, peer.clone(), unix_secs(io));
        if !joined {
            if let Err(e) = registered {
                self.log(io, format!("{peer} refused: cannot watch it ({e})"));
            } else {
                let _ = io.deregister(Token(id));
            }
            // One try: a new connection's buffer has room for this line.
            let _ = io.kernel.send(fd, SERVER_FULL_LINE);
            let _ = io.kernel.close(fd);
        } else {
            self.stats.joined += 1;
            self.conns.insert(
                id,
                Conn {
                    fd,
                    watching_out: false,
                    close_after_flush: false,
                },
            );
        }
        self.process_actions(io);
    }

    /// Reads what `id` sent, to EAGAIN (within a budget); returns the bytes read. While
    /// reading is paused it reads only a connection that hung up or failed (`gone`), to find
    /// its end: those conditions cannot be masked, and would report for ever.
    fn read_ready(&mut self, io: &mut Io<'_>, id: ClientId, gone: bool) -> usize {
        let Some(conn) = self.conns.get(&id) else {
            return 0;
        };
        let fd = conn.fd;
        let mut read = 0;
        for _ in 0..MAX_RECVS_PER_EVENT {
            if read >= MAX_READ_BYTES_PER_EVENT {
                break;
            }
            if self.reading_paused && !gone {
                // Resuming re-arms every connection, so nothing is left unreported.
                return read;
            }
            match io.kernel.recv(fd, &mut self.read_buf) {
                Ok(0) if self.bug(Bug::BtEofNotHandled) => {
                    // No branch for b'': an empty message, and on to the next recv.
                    self.core.received(id, &[], unix_secs(io));
                }
                Ok(0) => {
                    self.end_of_stream(io, id);
                    return read;
                }
                Ok(n) => {
                    read += n;
                    self.stats.bytes_in += n as u64;
                    self.remember_chunk(id, n);
                    let now = unix_secs(io);
                    self.core.received(id, &self.read_buf[..n], now);
                    self.process_actions(io);
                    if !self.conns.contains_key(&id) {
                        return read;
                    }
                    self.pause_if_congested(io);
                    let drained_guess = (self.mode.edge && self.bug(Bug::EtReadNotDrained))
                        || (self.bug(Bug::EtShortReadHeuristic) && n < self.read_buf.len());
                    if drained_guess {
                        return read;
                    }
                }
                Err(Errno::EAGAIN) => {
                    if read == 0 && self.bug(Bug::EagainAsFailure) {
                        // OpenPMIx: a wakeup whose recv finds nothing is taken for a failure.
                        self.depart(io, id, Departure::Failed);
                        return read;
                    }
                    if read == 0 {
                        self.stats.empty_reads += 1;
                    }
                    if self.mode.edge && self.bug(Bug::EtOutInterestClobbered) {
                        // Another path re-arms the descriptor for input only.
                        let _ = io.modify(Token(id), Events::IN | Events::RDHUP, self.mode);
                    }
                    return read;
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    self.read_failed(io, id, e);
                    return read;
                }
            }
        }
        // Budget spent: let the others have a turn; re-poll so edge triggering reports again.
        let out = self.conns.get(&id).is_some_and(|c| c.watching_out);
        let _ = io.modify(Token(id), self.interest(out), self.mode);
        read
    }

    /// The tutorial's loop variables, kept only for the bugs that misuse them.
    fn remember_chunk(&mut self, id: ClientId, n: usize) {
        if self.bug(Bug::TutorialWrongSocketRemoved) {
            self.last_reader = Some(id);
        }
        if self.bug(Bug::TutorialRecvErrorReplays) {
            self.last_chunk.clear();
            self.last_chunk.extend_from_slice(&self.read_buf[..n]);
        }
    }

    /// `id` closed its end.
    fn end_of_stream(&mut self, io: &mut Io<'_>, id: ClientId) {
        if self.bug(Bug::EofMisclassifiedStaleErrno) {
            // errno still says EAGAIN from an earlier call: "nothing to read".
            self.stats.empty_reads += 1;
        } else if self.bug(Bug::BtEvictedOnlyByBroadcast) {
            self.ignore_dead(io, id);
        } else {
            self.depart(io, id, Departure::Closed);
        }
    }

    /// A recv on `id` failed with `e`.
    fn read_failed(&mut self, io: &mut Io<'_>, id: ClientId, e: Errno) {
        if self.bug(Bug::EconnresetUncaught) && e == Errno::ECONNRESET {
            self.crash(io, "uncaught ECONNRESET");
        } else if self.bug(Bug::TutorialRecvErrorReplays) {
            // The error is swallowed; the previous loop's data goes out again, the socket stays.
            let replay = std::mem::take(&mut self.last_chunk);
            self.core.received(id, &replay, unix_secs(io));
            self.process_actions(io);
        } else if self.bug(Bug::BtEvictedOnlyByBroadcast) {
            self.ignore_dead(io, id);
        } else {
            self.depart(io, id, Departure::Failed);
            if self.bug(Bug::WrongClientSpliced) {
                // The close handler fires after the error handler, for the same client.
                self.core.left(id, Departure::Closed, unix_secs(io));
                self.process_actions(io);
            }
        }
    }

    /// binarytides: a dead client is not noticed by reading; it stays until a send fails.
    fn ignore_dead(&mut self, io: &mut Io<'_>, id: ClientId) {
        let out = self.conns.get(&id).is_some_and(|c| c.watching_out);
        let interest = if out { Events::OUT } else { Events::NONE };
        let _ = io.modify(Token(id), interest, self.mode);
    }

    fn depart(&mut self, io: &mut Io<'_>, id: ClientId, why: Departure) {
        let now = unix_secs(io);
        self.core.left(id, why, now);
        self.close_conn(io, id);
        self.process_actions(io);
    }

    fn close_conn(&mut self, io: &mut Io<'_>, id: ClientId) {
        self.over_soft_since.remove(&id);
        if let Some(conn) = self.conns.remove(&id) {
            if !self.bug(Bug::HupErrFdNotRemoved) {
                let _ = io.deregister(Token(id));
            }
            let _ = io.kernel.close(conn.fd);
        }
    }

    fn process_actions(&mut self, io: &mut Io<'_>) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Log(line) => self.log(io, line),
                Action::Close(id) => self.close_conn(io, id),
                Action::CloseAfterFlush(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.close_after_flush = true;
                    }
                }
            }
        }
    }

    /// One-shot: after an event the registration is disarmed until re-armed here.
    fn rearm(&mut self, io: &mut Io<'_>, id: ClientId, progressed: bool) {
        if self.bug(Bug::OneshotNotRearmed) && !progressed {
            return;
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let out = conn.watching_out && !self.bug(Bug::OneshotRearmLosesOut);
        let _ = io.modify(Token(id), self.interest(out), self.mode);
    }
}

/// Seconds since the Unix epoch on the transport's clock.
fn unix_secs(io: &Io<'_>) -> u64 {
    io.kernel.unix_time().as_secs()
}

impl App for ChatApp {
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, events: Events) {
        self.stats.events += 1;
        if token == LISTENER {
            return self.accept_ready(io);
        }
        let id = token.0;
        let readable = events.intersects(Events::IN | Events::ERR | Events::HUP | Events::RDHUP);
        let sent_before = self.stats.bytes_out;
        let mut read = 0;
        if readable {
            // H2O#603 (zero_mask_assumed_silent): a descriptor parked with no interest was
            // taken to be silent, but epoll reports ERR and HUP whatever the mask.
            let gone = events.intersects(Events::ERR | Events::HUP)
                && !self.bug(Bug::ZeroMaskAssumedSilent);
            read = self.read_ready(io, id, gone);
        }
        // handy#74: `if IN ... else if OUT` drops the OUT half of a combined wakeup.
        let else_if = readable && self.bug(Bug::EtElseIfDropsOut);
        if events.contains(Events::OUT) && !else_if {
            self.flush(io, id);
        }
        if self.mode.oneshot {
            let progressed = read > 0 || self.stats.bytes_out > sent_before;
            self.rearm(io, id, progressed);
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_>, token: Token) {
        if token == LISTENER && self.listener.is_some() {
            let _ = io.modify(LISTENER, Events::IN, self.mode);
        }
    }

    fn after_turn(&mut self, io: &mut Io<'_>) {
        if self.stopped() {
            return;
        }
        self.flush_dirty(io);
        // Leaving clients whose queue is already empty close now.
        let closing: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(id, c)| c.close_after_flush && self.queued(**id) == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in closing {
            self.close_conn(io, id);
        }
        // A drop queues "left room" notices: they go out now, and may change who holds the
        // room, so look again (each round drops at least one client: bounded by the room).
        for _ in 0..=self.conns.len() {
            if !self.police_queues(io) {
                break;
            }
            self.flush_dirty(io);
        }
    }
}

/// Convenience for callers holding a kernel: the listening socket for the chat server.
pub fn listen(kernel: &mut dyn Kernel, addr: &SockAddr, backlog: u32) -> Result<Fd, Errno> {
    let fd = kernel.socket(addr.family(), crate::addr::SockType::Stream)?;
    kernel.setsockopt(fd, crate::kernel::SockOpt::ReuseAddr, 1)?;
    kernel.bind(fd, addr)?;
    kernel.listen(fd, backlog)?;
    Ok(fd)
}
