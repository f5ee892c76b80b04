//! The tutorial's TCP client/server (§二.3): the server answers a connection's first message with
//! [`GOODBYE_REPLY`] and closes it.
//!
//! Fixed against the original: a connection that closes before saying anything gets no reply
//! (the original wrote to it anyway), and one that says nothing times out instead of stalling
//! the server; the reply is sent whole (`sendall`) and the socket closed only after; the client
//! gathers the reply across reads until the server closes (a reply may arrive split, and the
//! original looked for "good bye" in a single 1024-byte chunk), skips empty lines (sending
//! nothing, then waiting, hangs both sides), and notices when the server hangs up without
//! answering instead of printing an empty line for ever.

use std::io::Write;

use crate::addr::{Family, SockAddr, SockType, Target};
use crate::error::SockError;
use crate::socket::{Net, Socket};

/// What the server answers (the tutorial's text, byte for byte).
pub const GOODBYE_REPLY: &[u8] = b"server receive your messages, good bye.";
/// How much the server reads as "the first message" (the tutorial's `recv(1024)`).
pub const GOODBYE_RECV_BYTES: usize = 1024;
/// The words the client watches for.
pub const GOODBYE_MARKER: &[u8] = b"good bye";
/// Most bytes the client gathers while waiting for the marker; a larger reply is an error, not
/// an unbounded buffer.
pub const GOODBYE_REPLY_MAX_BYTES: usize = 64 * 1024;
/// The server's listen backlog (the tutorial's `listen(5)`).
pub const GOODBYE_BACKLOG: u32 = 5;
/// Most bytes the server reads and discards after its reply while waiting for the client to
/// close; past it the server closes anyway.
pub const GOODBYE_DRAIN_MAX_BYTES: usize = 64 * 1024;
/// How long the server waits for a connection's first message, in seconds: a client that
/// connects and says nothing must not stall the (one-at-a-time) server for ever.
pub const GOODBYE_FIRST_MESSAGE_TIMEOUT_SECS: f64 = 30.0;

/// The family a target needs.
pub fn family_of(net: &Net, target: &Target) -> Result<Family, SockError> {
    match target {
        Target::Path(_) => Ok(Family::Unix),
        Target::Host(h, _) if h.parse::<std::net::Ipv6Addr>().is_ok() => Ok(Family::Inet6),
        Target::Host(h, p) => {
            // A name resolves in the family it has; IPv4 first, as getaddrinfo orders loopback.
            crate::socket::resolve(net, Family::Inet, &Target::Host(h.clone(), *p))
                .map(|a| a.family())
        }
    }
}

/// Opens the server's listening socket.
pub fn listen(net: &Net, target: &Target) -> Result<Socket, SockError> {
    let s = Socket::new(net, family_of(net, target)?, SockType::Stream)?;
    s.setsockopt(crate::kernel::SockOpt::ReuseAddr, 1)?;
    s.bind(target)?;
    s.listen(GOODBYE_BACKLOG)?;
    Ok(s)
}

/// What happened on one served connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The peer said something and got the reply.
    Answered {
        /// Who.
        peer: SockAddr,
        /// What it said (at most [`GOODBYE_RECV_BYTES`]).
        message: Vec<u8>,
    },
    /// The peer closed without a word; no reply was sent.
    Silent {
        /// Who.
        peer: SockAddr,
    },
}

/// Accepts one connection and serves it; the log gets the tutorial's lines.
pub fn serve_one(listener: &Socket, log: &mut dyn Write) -> Result<Served, SockError> {
    let (mut conn, peer) = listener.accept()?;
    let _ = writeln!(log, "connected by {peer}");
    conn.settimeout(Some(GOODBYE_FIRST_MESSAGE_TIMEOUT_SECS))?;
    let message = conn.recv(GOODBYE_RECV_BYTES);
    let served = match message {
        Ok(m) if m.is_empty() => {
            let _ = writeln!(log, "{peer} closed without a message");
            Served::Silent { peer }
        }
        Ok(m) => {
            let _ = writeln!(log, "receive from {peer}:{}", String::from_utf8_lossy(&m));
            conn.sendall(GOODBYE_REPLY)?;
            drain(&conn);
            Served::Answered { peer, message: m }
        }
        Err(e) => {
            let _ = writeln!(log, "{peer}: {e}");
            conn.close()?;
            return Err(e);
        }
    };
    conn.close()?;
    Ok(served)
}

/// After the reply: shut our side and read what the client still sends until it closes (within
/// the connection's timeout and [`GOODBYE_DRAIN_MAX_BYTES`]). Closing with unread input makes
/// the kernel send an RST instead of a FIN, and an RST can reach the client before it has read
/// the reply: the tutorial's server (one `recv`, then `close`) loses replies that way whenever the
/// first message arrives in more than one piece.
fn drain(conn: &Socket) {
    if conn.shutdown(crate::kernel::Shutdown::Write).is_err() {
        return;
    }
    let mut drained = 0;
    while drained <= GOODBYE_DRAIN_MAX_BYTES {
        match conn.recv(GOODBYE_RECV_BYTES) {
            Ok(chunk) if !chunk.is_empty() => drained += chunk.len(),
            _ => return,
        }
    }
}

/// How a client's exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The reply contained the marker: the conversation is over.
    GoodBye(Vec<u8>),
    /// The server hung up without saying good bye; what it sent before that (possibly nothing).
    HungUp(Vec<u8>),
}

/// Sends one message, half-closes (the server then knows nothing more is coming, and can close
/// without discarding input), and gathers the reply.
pub fn exchange(sock: &Socket, message: &[u8]) -> Result<Reply, SockError> {
    sock.sendall(message)?;
    sock.shutdown(crate::kernel::Shutdown::Write)?;
    read_reply(sock)
}

/// Gathers the whole reply: the server answers and then closes, so the reply ends at end of
/// stream (not at the marker: under short reads the marker can arrive before the reply's last
/// bytes). Bounded by [`GOODBYE_REPLY_MAX_BYTES`].
pub fn read_reply(sock: &Socket) -> Result<Reply, SockError> {
    let mut reply = Vec::new();
    loop {
        let chunk = sock.recv(GOODBYE_RECV_BYTES)?;
        if chunk.is_empty() {
            let said_goodbye = reply
                .windows(GOODBYE_MARKER.len())
                .any(|w| w == GOODBYE_MARKER);
            return Ok(if said_goodbye {
                Reply::GoodBye(reply)
            } else {
                Reply::HungUp(reply)
            });
        }
        reply.extend_from_slice(&chunk);
        if reply.len() > GOODBYE_REPLY_MAX_BYTES {
            return Err(SockError::Value("reply exceeds GOODBYE_REPLY_MAX_BYTES"));
        }
    }
}

/// The client: connects, sends the first non-empty line (an empty one would send nothing and
/// leave both sides waiting for ever, as the tutorial's client does), and prints the whole reply.
/// Returns whether the server said good bye. The tutorial's loop over further lines never runs
/// against its own server, which answers once and closes; so this client sends one message.
pub fn client(
    net: &Net,
    target: &Target,
    lines: &mut dyn Iterator<Item = Vec<u8>>,
    out: &mut dyn Write,
) -> Result<bool, SockError> {
    let sock = Socket::new(net, family_of(net, target)?, SockType::Stream)?;
    sock.connect(target)?;
    let mut non_empty = lines.filter(|l| !l.is_empty());
    let Some(line) = non_empty.next() else {
        let _ = writeln!(out, "nothing to send, bye bye~");
        return Ok(false);
    };
    match exchange(&sock, &line)? {
        Reply::GoodBye(r) => {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(&r));
            Ok(true)
        }
        Reply::HungUp(r) => {
            if !r.is_empty() {
                let _ = writeln!(out, "{}", String::from_utf8_lossy(&r));
            }
            let _ = writeln!(out, "server closed the connection, bye bye~");
            Ok(false)
        }
    }
}
