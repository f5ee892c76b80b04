//! The checker's clients: real TCP connections to the server under test, each with a line
//! reader, and a room of them that talks concurrently (a reader and a writer thread per
//! client), so a server that blocks on one client shows it instead of hiding it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{self as nixsock, SockaddrStorage, sockopt};

/// Longest wait for a connection: long enough for two SYN retransmissions (1 s, then 2 s
/// more), which a crowd overflowing a server's listen backlog relies on.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one blocking read waits before the reader looks at its deadline again.
const READ_SLICE: Duration = Duration::from_millis(20);
/// Most bytes one client keeps of what it heard (a runaway server cannot exhaust memory).
pub const MAX_HEARD_BYTES: usize = 64 << 20;
/// What a heard line costs in memory besides its bytes (its vector), for `MAX_HEARD_BYTES`.
const LINE_OVERHEAD_BYTES: usize = 32;
/// How often a client repeats its hello while the room gathers.
const HELLO_EVERY: Duration = Duration::from_millis(100);

/// One client of the server under test.
pub struct Peer {
    /// `c1`, `c2`, … in evidence.
    pub name: String,
    /// Its own address.
    pub local: SocketAddr,
    /// The address the server named it by in the room's first relayed lines (its own address
    /// unless a proxy stands between).
    pub seen_as: SocketAddr,
    stream: TcpStream,
    /// Bytes after the last `\n`.
    partial: Vec<u8>,
    /// Every complete line heard, without its `\n`.
    pub heard: Vec<Vec<u8>>,
    heard_bytes: usize,
    /// Why it stopped hearing (end of stream, a reset, too much), once it has.
    pub ended: Option<String>,
}

impl Peer {
    /// Connects to `server`; `rcvbuf_bytes` sets SO_RCVBUF before the handshake (so the
    /// advertised window is small from the start).
    pub fn connect(
        name: String,
        server: SocketAddr,
        rcvbuf_bytes: Option<usize>,
    ) -> io::Result<Peer> {
        let stream = match rcvbuf_bytes {
            None => TcpStream::connect_timeout(&server, CONNECT_TIMEOUT)?,
            Some(bytes) => connect_small_window(server, bytes)?,
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_SLICE))?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        let local = stream.local_addr()?;
        Ok(Peer {
            name,
            local,
            seen_as: local,
            stream,
            partial: Vec::new(),
            heard: Vec::new(),
            heard_bytes: 0,
            ended: None,
        })
    }

    /// Writes all of `bytes`, giving up when `until` passes or one write stalls for
    /// [`CONNECT_TIMEOUT`].
    pub fn send(&self, bytes: &[u8], until: Instant) -> io::Result<()> {
        write_all_by(&self.stream, bytes, until)
    }

    /// A clean exit: FIN, after everything written.
    pub fn exit(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// An abortive close: SO_LINGER 0, so the kernel sends RST.
    pub fn reset(self) {
        let off = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let _ = nixsock::setsockopt(&self.stream, sockopt::Linger, &off);
    }

    /// Reads until `enough` says so for the lines heard, the deadline, or the end of the
    /// stream. Returns whether `enough` was met.
    pub fn listen_until(
        &mut self,
        until: Instant,
        mut enough: impl FnMut(&[Vec<u8>]) -> bool,
    ) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        while !enough(&self.heard) {
            if self.ended.is_some() || Instant::now() >= until {
                return false;
            }
            match (&self.stream).read(&mut buf) {
                Ok(0) => self.ended = Some("the server closed the connection".into()),
                Ok(n) => self.take(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.ended = Some(format!("the connection failed: {e}")),
            }
        }
        true
    }

    /// Hears for `quiet` more (to catch what should not come: replays, echoes).
    pub fn listen_for(&mut self, quiet: Duration) {
        self.listen_until(Instant::now() + quiet, |_| false);
    }

    fn take(&mut self, bytes: &[u8]) {
        self.heard_bytes += bytes.len();
        if self.heard_bytes > MAX_HEARD_BYTES {
            self.ended = Some(format!(
                "heard more than {MAX_HEARD_BYTES} bytes; stopped listening"
            ));
            return;
        }
        self.partial.extend_from_slice(bytes);
        if let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') {
            let rest = self.partial.split_off(last + 1);
            let done = std::mem::replace(&mut self.partial, rest);
            let before = self.heard.len();
            self.heard
                .extend(done[..last].split(|&b| b == b'\n').map(<[u8]>::to_vec));
            // A line costs its bytes and a vector: count the vector too, so a server that
            // sends empty lines without end is stopped as surely as one that sends bytes.
            self.heard_bytes += (self.heard.len() - before) * LINE_OVERHEAD_BYTES;
        }
    }

    /// The bytes after the last complete line.
    pub fn unfinished(&self) -> &[u8] {
        &self.partial
    }
}

/// A socket with SO_RCVBUF set before connecting, as a std stream; the connect is bounded by
/// [`CONNECT_TIMEOUT`], like `TcpStream::connect_timeout`.
fn connect_small_window(server: SocketAddr, rcvbuf_bytes: usize) -> io::Result<TcpStream> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::{AsFd, AsRawFd};
    let family = match server {
        SocketAddr::V4(_) => nixsock::AddressFamily::Inet,
        SocketAddr::V6(_) => nixsock::AddressFamily::Inet6,
    };
    let flags = nixsock::SockFlag::SOCK_CLOEXEC | nixsock::SockFlag::SOCK_NONBLOCK;
    let fd: OwnedFd = nixsock::socket(family, nixsock::SockType::Stream, flags, None)?;
    nixsock::setsockopt(&fd, sockopt::RcvBuf, &rcvbuf_bytes)?;
    match nixsock::connect(fd.as_raw_fd(), &SockaddrStorage::from(server)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let millis = u16::try_from(CONNECT_TIMEOUT.as_millis()).unwrap_or(u16::MAX);
    let mut wait = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    if poll(&mut wait, PollTimeout::from(millis))? == 0 {
        return Err(io::Error::new(ErrorKind::TimedOut, "connect timed out"));
    }
    match nixsock::getsockopt(&fd, sockopt::SocketError)? {
        0 => {}
        e => return Err(io::Error::from_raw_os_error(e)),
    }
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Clients that joined the same room.
pub struct Room {
    /// The clients, in joining order.
    pub peers: Vec<Peer>,
}

impl Room {
    /// `n` clients join one after another (`name` numbers them from `first`), then each says
    /// `hello <tag>` every 100 ms until every client has heard every other's hello: after that,
    /// a line any of them sends reaches all the others on any server that relays at all.
    pub fn gather(server: SocketAddr, n: usize, tag: &str, until: Instant) -> Result<Room, String> {
        Room::gather_windows(server, &vec![None; n], tag, until)
    }

    /// As [`Room::gather`], with a client for each of `windows`: its SO_RCVBUF, if any.
    pub fn gather_windows(
        server: SocketAddr,
        windows: &[Option<usize>],
        tag: &str,
        until: Instant,
    ) -> Result<Room, String> {
        let mut peers = Vec::with_capacity(windows.len());
        for (i, window) in windows.iter().enumerate() {
            if Instant::now() >= until {
                return Err(format!(
                    "the check's time ran out while c{} was connecting",
                    i + 1
                ));
            }
            let peer = Peer::connect(format!("c{}", i + 1), server, *window)
                .map_err(|e| format!("c{} could not connect: {e}", i + 1))?;
            peers.push(peer);
        }
        let mut room = Room { peers };
        room.hello(tag, until)?;
        Ok(room)
    }

    /// Every client says hello (again and again) until each has heard every other's: then the
    /// room is gathered, and each client knows the others' names as the server shows them.
    fn hello(&mut self, tag: &str, until: Instant) -> Result<(), String> {
        let n = self.peers.len();
        if n < 2 {
            return Ok(());
        }
        let hellos: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("hello {tag} c{}", i + 1).into_bytes())
            .collect();
        self.exchange_hellos(&hellos, until);
        let deaf: Vec<String> = self
            .peers
            .iter()
            .filter(|p| {
                (0..n).any(|j| {
                    !p.heard.iter().any(|l| l.ends_with(&hellos[j]))
                        && format!("c{}", j + 1) != p.name
                })
            })
            .map(|p| p.name.clone())
            .collect();
        if deaf.is_empty() {
            self.learn_names(&hellos);
            return Ok(());
        }
        if let Some(gone) = self
            .peers
            .iter()
            .find_map(|p| p.ended.as_ref().map(|why| (&p.name, why)))
        {
            return Err(format!(
                "the room never gathered: {} of {n} clients did not hear every other's hello; {} ended: {}",
                deaf.len(),
                gone.0,
                gone.1
            ));
        }
        Err(format!(
            "the room never gathered: {} of {n} clients had not heard every other's hello (lines like {:?}) \
             when the check's time ran out; the server did not relay lines between them in time",
            deaf.len(),
            String::from_utf8_lossy(&hellos[0])
        ))
    }

    /// Each client repeats its hello while listening, until every client has heard every
    /// other's, one client's connection ended (the room can no longer gather), or `until`.
    fn exchange_hellos(&mut self, hellos: &[Vec<u8>], until: Instant) {
        let n = self.peers.len();
        let ready = AtomicUsize::new(0);
        let one_ended = AtomicBool::new(false);
        let going_on = || {
            ready.load(Ordering::SeqCst) < n
                && !one_ended.load(Ordering::SeqCst)
                && Instant::now() < until
        };
        thread::scope(|s| {
            for (me, peer) in self.peers.iter_mut().enumerate() {
                let (ready, one_ended, going_on) = (&ready, &one_ended, &going_on);
                let (reader, writer) = peer.split();
                s.spawn(move || {
                    let heard_all = |heard: &[Vec<u8>]| {
                        (0..n)
                            .filter(|&j| j != me)
                            .all(|j| heard.iter().any(|l| l.ends_with(&hellos[j])))
                    };
                    reader.listen_until(until, |heard| {
                        heard_all(heard) || one_ended.load(Ordering::SeqCst)
                    });
                    if heard_all(&reader.heard) {
                        ready.fetch_add(1, Ordering::SeqCst);
                    }
                    // Keep taking the others' hellos until everyone is ready, so no socket
                    // fills up behind a reader that has had enough. A reader whose connection
                    // ended hears nothing more, and nobody will hear it.
                    while reader.ended.is_none() && going_on() {
                        reader.listen_for(HELLO_EVERY);
                    }
                    if reader.ended.is_some() {
                        one_ended.store(true, Ordering::SeqCst);
                    }
                });
                s.spawn(move || {
                    let line = [&hellos[me][..], b"\n"].concat();
                    while going_on() {
                        if writer.send(&line, until).is_err() {
                            return;
                        }
                        thread::sleep(HELLO_EVERY);
                    }
                });
            }
        });
    }

    /// Every client writes its `writes` (one write each, in order, `gap` apart) while every
    /// client listens until `enough` says so for it (or the deadline); then all listen for
    /// `quiet` more. Returns the writes that failed, with the writer's name.
    pub fn talk(
        &mut self,
        writes: &[Vec<Vec<u8>>],
        gap: Duration,
        until: Instant,
        quiet: Duration,
        enough: impl Fn(usize, &[Vec<u8>]) -> bool + Sync,
    ) -> Vec<SendFailure> {
        let enough = &enough;
        let failed = std::sync::Mutex::new(Vec::new());
        thread::scope(|s| {
            for (me, peer) in self.peers.iter_mut().enumerate() {
                let name = peer.name.clone();
                let (reader, writer) = peer.split();
                let mine = writes.get(me).map(Vec::as_slice).unwrap_or_default();
                let failed = &failed;
                s.spawn(move || {
                    for w in mine {
                        if let Err(error) = writer.send(w, until) {
                            if let Ok(mut f) = failed.lock() {
                                f.push(SendFailure { who: name, error });
                            }
                            return;
                        }
                        thread::sleep(gap);
                    }
                });
                s.spawn(move || {
                    reader.listen_until(until, |heard| enough(me, heard));
                    reader.listen_for(quiet);
                });
            }
        });
        failed.into_inner().unwrap_or_default()
    }

    /// Learns each client's name in the server's prefixes from its hello as another heard it.
    fn learn_names(&mut self, hellos: &[Vec<u8>]) {
        let n = self.peers.len();
        for (j, hello) in hellos.iter().enumerate() {
            let listener = &self.peers[(j + 1) % n];
            let named = listener
                .heard
                .iter()
                .find(|l| l.ends_with(hello))
                .and_then(|l| {
                    crate::chat::protocol::parse(l)
                        .and_then(|notice| crate::chat::protocol::parse_who(notice.who))
                });
            if let Some(addr) = named {
                self.peers[j].seen_as = addr;
            }
        }
    }

    /// Forgets what was heard so far (the gathering's hellos and notices).
    pub fn forget(&mut self) {
        for p in &mut self.peers {
            p.heard.clear();
        }
    }
}

/// A client's write that failed: who wrote, and the error.
#[derive(Debug)]
pub struct SendFailure {
    /// The client's name (`c1`, ...).
    pub who: String,
    /// What the write returned.
    pub error: io::Error,
}

impl SendFailure {
    /// Whether the server caused it: it reset or closed the connection (ECONNRESET, EPIPE),
    /// read nothing while a write waited [`CONNECT_TIMEOUT`], or read too slowly for the
    /// write to end before the check's deadline.
    pub fn server_caused(&self) -> bool {
        use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut, WouldBlock};
        matches!(
            self.error.kind(),
            BrokenPipe | ConnectionReset | ConnectionAborted | TimedOut | WouldBlock
        )
    }
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error.kind() {
            io::ErrorKind::WouldBlock => write!(
                f,
                "{} could not send: the server read nothing for {} s ({})",
                self.who,
                CONNECT_TIMEOUT.as_secs(),
                self.error
            ),
            _ if self.server_caused() => write!(
                f,
                "{} could not send: the server ended the connection ({})",
                self.who, self.error
            ),
            _ => write!(f, "{} could not send: {}", self.who, self.error),
        }
    }
}

impl Peer {
    /// The peer as a reader (all of it) and a writer (its socket), for two threads.
    pub fn split(&mut self) -> (&mut Peer, Writer) {
        let writer = Writer(self.stream.try_clone().ok());
        (self, writer)
    }
}

/// The writing half of a peer, for its own thread.
pub struct Writer(Option<TcpStream>);

impl Writer {
    /// Writes all of `bytes`, giving up when `until` passes or one write stalls for
    /// [`CONNECT_TIMEOUT`].
    pub fn send(&self, bytes: &[u8], until: Instant) -> io::Result<()> {
        match &self.0 {
            Some(s) => write_all_by(s, bytes, until),
            None => Err(io::Error::other(
                "the socket could not be shared with a writer",
            )),
        }
    }
}

/// Writes all of `bytes` to `stream`, giving up when `until` passes (TimedOut) or when one
/// write makes no progress for [`CONNECT_TIMEOUT`] (WouldBlock): a server that reads slowly,
/// but reads, cannot hold a check past its deadline.
fn write_all_by(mut stream: &TcpStream, mut bytes: &[u8], until: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let unsent = bytes.len();
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("the check's time ran out with {unsent} bytes still unsent"),
            ));
        }
        stream.set_write_timeout(Some(left.min(CONNECT_TIMEOUT)))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
