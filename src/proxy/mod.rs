//! `selectlab proxy --listen A --to B`: a TCP proxy that puts the simulator's lawful adversary
//! on real traffic, in both directions — writes cut into pieces down to 1 byte, pauses after
//! which what arrived goes out together, and (with `--resets`) resets. Put it between
//! `selectlab load` or `selectlab check` and any server to test that server's partial-read
//! handling on the real kernel.
//!
//! - [`cutter`]: the decisions, sans I/O; a seed plans the same cuts whatever the timing.
//! - this module: the I/O — an accept loop and two pump threads per connection, each bounded
//!   (connections, buffered bytes per direction, the run's length), and the transcript: one
//!   record per write, pause, reset, accept and connect, in the simulator's format.

pub mod cutter;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use self::cutter::{Cutter, MAX_PIECE_BYTES, Piece, Profile};
use crate::sim::decide::Choice;
use crate::sim::transcript::{Arg, Call, Host, Record};

/// Default for `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Most connections `--max-connections` may allow (two threads each).
pub const MAX_CONNECTIONS: usize = 1000;
/// How long a pump's blocking read waits before it looks at the clock and the stop flag.
const READ_SLICE: Duration = Duration::from_millis(50);
/// How long the accept loop sleeps when nobody is connecting.
const ACCEPT_SLICE: Duration = Duration::from_millis(10);
/// Longest wait for the upstream server to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The server the proxy forwards to.
    pub to: SocketAddr,
    /// The decision source's seed.
    pub seed: u64,
    /// Faithful (a plain relay) or adversary.
    pub profile: Profile,
    /// Whether the adversary may reset connections.
    pub resets: bool,
    /// Most connections at once; one more is closed at once (and logged).
    pub max_connections: usize,
    /// Most bytes held per direction of a connection (at least one piece).
    pub max_buffered_bytes: usize,
    /// Stop after this long (`None`: run until killed).
    pub run_for: Option<Duration>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections proxied.
    pub connections: u64,
    /// Connections closed at once: over the limit, or the upstream refused.
    pub refused: u64,
    /// Bytes forwarded, both directions.
    pub bytes: u64,
    /// Writes made.
    pub writes: u64,
    /// Pauses taken.
    pub pauses: u64,
    /// Connections reset by the adversary.
    pub resets: u64,
}

/// Counters shared by the threads.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    bytes: AtomicU64,
    writes: AtomicU64,
    pauses: AtomicU64,
    resets: AtomicU64,
}

/// The transcript's sink and the run's clock.
struct Log {
    started: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Log {
    fn record(
        &self,
        host: Host,
        call: Call,
        fd: i32,
        arg: Arg,
        result: Result<i64, Errno>,
        choice: Option<Choice>,
    ) {
        let record = Record {
            at: self.started.elapsed(),
            host,
            call,
            fd,
            arg,
            result,
            ready: Default::default(),
            choice,
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{record}");
        }
    }
}

impl Counters {
    fn snapshot(&self) -> ProxyStats {
        ProxyStats {
            connections: self.connections.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            pauses: self.pauses.load(Ordering::SeqCst),
            resets: self.resets.load(Ordering::SeqCst),
        }
    }
}

/// Runs the proxy until `run_for` passes (or for ever); writes the transcript to `transcript`
/// and says where it listens through `ready` (the bound address: `--listen` may ask for port 0).
pub fn run(
    config: &ProxyConfig,
    transcript: Box<dyn Write + Send>,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<ProxyStats> {
    check_limits(config)?;
    // Two descriptors per connection: ask for what the hard limit allows.
    let _ = crate::real_kernel::raise_fd_limit();
    let listener = TcpListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    ready(listener.local_addr()?);
    let mut front = Front {
        config,
        listen_fd: listener.as_raw_fd(),
        log: Arc::new(Log {
            started: Instant::now(),
            out: Mutex::new(transcript),
        }),
        counters: Arc::new(Counters::default()),
        active: Arc::new(AtomicUsize::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        deadline: config.run_for.map(|d| Instant::now() + d),
        numbered: 0,
    };
    let mut conns = Vec::new();
    while front.deadline.is_none_or(|d| Instant::now() < d) {
        match listener.accept() {
            Ok((client, _)) => conns.extend(front.admit(client)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_SLICE);
                conns.retain(|h: &thread::JoinHandle<()>| !h.is_finished());
            }
            Err(e) => {
                let fd = front.listen_fd;
                let failed = Err(errno(&e));
                front
                    .log
                    .record(Host::MAIN, Call::Accept, fd, Arg::None, failed, None);
                thread::sleep(ACCEPT_SLICE);
            }
        }
    }
    front.stop.store(true, Ordering::SeqCst);
    for c in conns {
        let _ = c.join();
    }
    Ok(front.counters.snapshot())
}

/// The limits a configuration must keep.
fn check_limits(config: &ProxyConfig) -> io::Result<()> {
    if !(1..=MAX_CONNECTIONS).contains(&config.max_connections) {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--max-connections must be 1 to {MAX_CONNECTIONS}, not {}",
                config.max_connections
            ),
        ));
    }
    if config.max_buffered_bytes < MAX_PIECE_BYTES {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("--max-buffered-bytes must be at least one piece, {MAX_PIECE_BYTES}"),
        ));
    }
    Ok(())
}

/// The accepting side: what every connection shares.
struct Front<'a> {
    config: &'a ProxyConfig,
    listen_fd: i32,
    log: Arc<Log>,
    counters: Arc<Counters>,
    /// Connections being served now.
    active: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    /// Connections accepted so far.
    numbered: u64,
}

impl Front<'_> {
    /// Takes an accepted client: over the limit or refused upstream, it is closed (and logged);
    /// else its connection is served on a thread of its own, returned.
    fn admit(&mut self, client: TcpStream) -> Option<thread::JoinHandle<()>> {
        self.numbered += 1;
        let host = Host::peer(usize::try_from(self.numbered - 1).unwrap_or(usize::MAX));
        let fd = client.as_raw_fd();
        let accepted = Ok(i64::from(fd));
        self.log.record(
            host,
            Call::Accept,
            self.listen_fd,
            Arg::None,
            accepted,
            None,
        );
        if self.active.load(Ordering::SeqCst) >= self.config.max_connections {
            eprintln!(
                "selectlab proxy: {host}: refused, at the limit of {} connections",
                self.config.max_connections
            );
            self.counters.refused.fetch_add(1, Ordering::SeqCst);
            self.log
                .record(host, Call::Close, fd, Arg::None, Ok(0), None);
            return None;
        }
        let to = self.config.to;
        let upstream = match TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) {
            Ok(up) => up,
            Err(e) => {
                eprintln!(
                    "selectlab proxy: {host}: the upstream {to} refused: {e}; closing the client"
                );
                self.counters.refused.fetch_add(1, Ordering::SeqCst);
                let failed = Err(errno(&e));
                self.log
                    .record(host, Call::Connect, -1, Arg::Inet(to), failed, None);
                return None;
            }
        };
        let up_fd = upstream.as_raw_fd();
        self.log
            .record(host, Call::Connect, up_fd, Arg::Inet(to), Ok(0), None);
        self.counters.connections.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        let conn = Connection {
            host,
            number: self.numbered,
            client,
            upstream,
            config: self.config.clone(),
            log: Arc::clone(&self.log),
            counters: Arc::clone(&self.counters),
            stop: Arc::clone(&self.stop),
            aborted: AtomicBool::new(false),
            deadline: self.deadline,
        };
        let active = Arc::clone(&self.active);
        Some(thread::spawn(move || {
            conn.serve();
            active.fetch_sub(1, Ordering::SeqCst);
        }))
    }
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// One proxied connection: a pump per direction.
struct Connection {
    host: Host,
    number: u64,
    client: TcpStream,
    upstream: TcpStream,
    config: ProxyConfig,
    log: Arc<Log>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Set by a reset: both pumps stop at once, with no FIN.
    aborted: AtomicBool,
    deadline: Option<Instant>,
}

impl Connection {
    fn serve(self) {
        let both = [&self.client, &self.upstream];
        for s in both {
            // Each piece leaves as its own segment.
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(READ_SLICE));
            let _ = s.set_write_timeout(Some(READ_SLICE));
        }
        thread::scope(|s| {
            s.spawn(|| self.pump(&self.client, &self.upstream, 0));
            s.spawn(|| self.pump(&self.upstream, &self.client, 1));
        });
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
            && !self.aborted.load(Ordering::SeqCst)
            && self.deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Moves bytes from `from` to `to` in the cutter's pieces until `from` ends, then passes
    /// the end on (a half-close stays a half-close).
    fn pump(&self, from: &TcpStream, to: &TcpStream, direction: u64) {
        let c = &self.config;
        let mut cutter = Cutter::new(c.profile, c.resets, c.seed, self.number, direction);
        let mut held: Vec<u8> = Vec::with_capacity(MAX_PIECE_BYTES);
        let mut buf = vec![0u8; c.max_buffered_bytes.min(256 * 1024)];
        let mut open = true;
        while self.running() && (open || !held.is_empty()) {
            if open && held.len() < c.max_buffered_bytes {
                let room = (c.max_buffered_bytes - held.len()).min(buf.len());
                // With bytes in hand, take only what is there already (it coalesces).
                match read_some(from, &mut buf[..room], held.is_empty()) {
                    Ok(0) => open = false,
                    Ok(n) => held.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return self.abort(),
                }
            }
            if held.is_empty() {
                continue;
            }
            let piece = cutter.next_piece();
            if !self.forward(&piece, &mut held, to) {
                return;
            }
        }
        if self.aborted.load(Ordering::SeqCst) {
            return;
        }
        if !held.is_empty() {
            // The run ended with bytes in hand: a reset, not a FIN that would pass a cut-off
            // stream for a complete one.
            return self.abort();
        }
        let _ = to.shutdown(Shutdown::Write);
        self.log.record(
            self.host,
            Call::Shutdown,
            to.as_raw_fd(),
            Arg::How(crate::kernel::Shutdown::Write),
            Ok(0),
            None,
        );
    }

    /// Carries out one piece's plan; false when the connection is over.
    fn forward(&self, piece: &Piece, held: &mut Vec<u8>, to: &TcpStream) -> bool {
        if piece.reset {
            self.counters.resets.fetch_add(1, Ordering::SeqCst);
            self.log.record(
                self.host,
                Call::Close,
                to.as_raw_fd(),
                Arg::None,
                Ok(0),
                Some(Choice::Reset),
            );
            self.abort();
            return false;
        }
        if piece.pause_ms > 0 {
            self.counters.pauses.fetch_add(1, Ordering::SeqCst);
            self.log.record(
                self.host,
                Call::Timer,
                to.as_raw_fd(),
                Arg::Num(i64::from(piece.pause_ms)),
                Ok(0),
                piece.choice,
            );
            thread::sleep(Duration::from_millis(u64::from(piece.pause_ms)));
            return true;
        }
        let n = piece.planned.min(held.len());
        // A plan longer than what is waiting is no cut: only a write shorter than the bytes
        // in hand is a short write.
        let choice = match piece.choice {
            Some(Choice::ShortWrite { .. }) if n < held.len() => Some(Choice::ShortWrite {
                taken: u32::try_from(n).unwrap_or(u32::MAX),
                offered: u32::try_from(held.len()).unwrap_or(u32::MAX),
            }),
            Some(Choice::ShortWrite { .. }) => None,
            other => other,
        };
        match self.write_all(to, &held[..n]) {
            Ok(()) => {
                self.log.record(
                    self.host,
                    Call::Send,
                    to.as_raw_fd(),
                    Arg::Num(piece.planned as i64),
                    Ok(n as i64),
                    choice,
                );
                self.counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
                self.counters.writes.fetch_add(1, Ordering::SeqCst);
                held.drain(..n);
                true
            }
            Err(e) => {
                self.log.record(
                    self.host,
                    Call::Send,
                    to.as_raw_fd(),
                    Arg::Num(n as i64),
                    Err(errno(&e)),
                    None,
                );
                self.abort();
                false
            }
        }
    }

    /// Writes all of `bytes`, waiting for a slow reader as long as the proxy runs.
    fn write_all(&self, to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match (&*to).write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if !self.running() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Resets the connection: SO_LINGER 0 on both sockets, and both pumps stop; when the
    /// connection is dropped, each peer gets an RST.
    fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        let off = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        for s in [&self.client, &self.upstream] {
            let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &off);
        }
    }
}

/// Reads what `from` has: waiting up to its read timeout when `wait`, else only what is
/// already there (MSG_DONTWAIT: the socket stays blocking for the other pump's writes).
fn read_some(from: &TcpStream, buf: &mut [u8], wait: bool) -> io::Result<usize> {
    if wait {
        return (&*from).read(buf);
    }
    nix::sys::socket::recv(
        from.as_raw_fd(),
        buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)
}
