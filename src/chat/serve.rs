//! The chat server's I/O: the sans-IO [`ChatServer`] driven by the [`Reactor`](crate::reactor::Reactor) on any kernel
//! and backend, level- or edge-triggered.
//!
//! Reads drain to EAGAIN (within a per-event budget; under edge triggering an exhausted budget
//! re-arms with EPOLL_CTL_MOD, which re-polls). Output is flushed once per reactor turn with one
//! vectored send per client (under edge triggering: until EAGAIN); a client with output left
//! over is watched for OUT until its queue is empty, and only then, so an idle server never
//! spins.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;

use super::server::{Action, ChatServer, ClientId, Departure, Limits, SERVER_FULL_LINE};
use crate::addr::SockAddr;
use crate::kernel::{Events, Fd, Kernel, Mode};
use crate::reactor::{App, Io};
use crate::readiness::Token;

/// The listener's token; clients get tokens from 1 up, never reused.
pub const LISTENER: Token = Token(0);
/// Size of the shared read buffer.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes read from one client per event, so one chatty client cannot starve the others.
pub const MAX_READ_BYTES_PER_EVENT: usize = 256 * 1024;
/// Most connections accepted per listener event.
pub const MAX_ACCEPTS_PER_EVENT: usize = 64;
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
    /// Level-triggered, or edge-triggered (epoll only).
    pub mode: Mode,
}

#[derive(Debug)]
struct Conn {
    fd: Fd,
    /// OUT is in the registered interest (level-triggered only; edge always has it).
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
}

/// The chat server as a reactor application.
pub struct ChatApp {
    core: ChatServer,
    listener: Option<Fd>,
    conns: BTreeMap<ClientId, Conn>,
    mode: Mode,
    next_id: ClientId,
    read_buf: Vec<u8>,
    dirty: Vec<ClientId>,
    /// Log lines not yet taken, with the kernel time they were written.
    log: ServerLog,
    stats: Stats,
}

impl ChatApp {
    /// A server on an already listening socket; registers it.
    pub fn new(io: &mut Io<'_>, listener: Fd, config: ServeConfig) -> Result<ChatApp, Errno> {
        io.register(listener, LISTENER, Events::IN, config.mode)?;
        Ok(ChatApp {
            core: ChatServer::new(config.limits),
            listener: Some(listener),
            conns: BTreeMap::new(),
            mode: config.mode,
            next_id: 1,
            read_buf: vec![0; READ_CHUNK_BYTES],
            dirty: Vec::new(),
            log: ServerLog::default(),
            stats: Stats::default(),
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

    /// Whether the server has stopped (its listener is closed).
    pub fn stopped(&self) -> bool {
        self.listener.is_none()
    }

    /// The client id of a connected peer, if any (for harnesses).
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.conns.keys().copied()
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

    fn interest(&self, out: bool) -> Events {
        if self.mode.edge || out {
            Events::IN | Events::OUT | Events::RDHUP
        } else {
            Events::IN | Events::RDHUP
        }
    }

    fn log(&mut self, io: &Io<'_>, line: String) {
        self.log.0.borrow_mut().push((io.now(), line));
    }

    fn accept_ready(&mut self, io: &mut Io<'_>) {
        let Some(listener) = self.listener else {
            return;
        };
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            match io.kernel.accept(listener) {
                Ok((fd, peer)) => self.admit(io, fd, peer),
                Err(Errno::EAGAIN) => return,
                Err(Errno::ECONNABORTED | Errno::EINTR) => {}
                Err(e @ (Errno::EMFILE | Errno::ENFILE)) => {
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
        // Budget spent with connections perhaps still queued: re-poll (edge-triggered needs it;
        // level-triggered would report again anyway).
        let _ = io.modify(LISTENER, Events::IN, self.mode);
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

    fn read_ready(&mut self, io: &mut Io<'_>, id: ClientId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let fd = conn.fd;
        let mut read = 0;
        while read < MAX_READ_BYTES_PER_EVENT {
            match io.kernel.recv(fd, &mut self.read_buf) {
                Ok(0) => return self.depart(io, id, Departure::Closed),
                Ok(n) => {
                    read += n;
                    self.stats.bytes_in += n as u64;
                    let now = unix_secs(io);
                    self.core.received(id, &self.read_buf[..n], now);
                    self.process_actions(io);
                    if !self.conns.contains_key(&id) {
                        return;
                    }
                }
                Err(Errno::EAGAIN) => {
                    if read == 0 {
                        self.stats.empty_reads += 1;
                    }
                    return;
                }
                Err(Errno::EINTR) => {}
                Err(_) => return self.depart(io, id, Departure::Failed),
            }
        }
        // Budget spent: let the others have a turn; re-poll so edge triggering reports again.
        let out = self.conns.get(&id).is_some_and(|c| c.watching_out);
        let _ = io.modify(Token(id), self.interest(out), self.mode);
    }

    /// Sends what is queued for `id`: one vectored send (level) or until EAGAIN (edge).
    fn flush(&mut self, io: &mut Io<'_>, id: ClientId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let fd = conn.fd;
        let sends = if self.mode.edge {
            MAX_SENDS_PER_FLUSH
        } else {
            1
        };
        let mut blocked = false;
        for _ in 0..sends {
            let Some(out) = self.core.outbound(id) else {
                return;
            };
            if out.is_empty() {
                break;
            }
            let slices = out.slices();
            self.stats.sends += 1;
            match io.kernel.send_vectored(fd, &slices) {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    self.core.sent(id, n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {
                    blocked = true;
                    break;
                }
                Err(_) => return self.depart(io, id, Departure::Failed),
            }
        }
        let empty = self.core.outbound(id).is_none_or(|o| o.is_empty());
        let conn = self.conns.get_mut(&id).expect("checked above");
        if empty && conn.close_after_flush {
            return self.close_conn(io, id);
        }
        // Edge-triggered, budget spent, output left and the socket never ran out of room: no
        // new edge will come (the reader may be draining as fast as we send). EPOLL_CTL_MOD
        // re-polls, so the next wait reports OUT again (netty/netty#7730).
        if self.mode.edge && !empty && !blocked {
            let interest = self.interest(true);
            let _ = io.modify(Token(id), interest, self.mode);
            return;
        }
        // Level-triggered: watch OUT exactly while something is left to send.
        if !self.mode.edge && conn.watching_out == empty {
            conn.watching_out = !empty;
            let interest = self.interest(!empty);
            let _ = io.modify(Token(id), interest, self.mode);
        }
    }

    fn depart(&mut self, io: &mut Io<'_>, id: ClientId, why: Departure) {
        let now = unix_secs(io);
        self.core.left(id, why, now);
        self.close_conn(io, id);
        self.process_actions(io);
    }

    fn close_conn(&mut self, io: &mut Io<'_>, id: ClientId) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = io.deregister(Token(id));
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
        if events.intersects(Events::IN | Events::ERR | Events::HUP | Events::RDHUP) {
            self.read_ready(io, id);
        }
        if events.contains(Events::OUT) {
            self.flush(io, id);
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_>, token: Token) {
        if token == LISTENER && self.listener.is_some() {
            let _ = io.modify(LISTENER, Events::IN, self.mode);
        }
    }

    fn after_turn(&mut self, io: &mut Io<'_>) {
        self.core.take_dirty(&mut self.dirty);
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            self.flush(io, id);
        }
        self.dirty = dirty;
        // Leaving clients whose queue is already empty close now.
        let closing: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                c.close_after_flush && self.core.outbound(**id).is_none_or(|o| o.is_empty())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in closing {
            self.close_conn(io, id);
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
