//! The seed's TCP client/server (§二.3): the server answers a connection's first message with
//! [`GOODBYE_REPLY`] and closes it.
//!
//! Fixed against the original: a connection that closes before saying anything gets no reply
//! (the original wrote to it anyway); the reply is sent whole (`sendall`) and the socket closed
//! only after; the client gathers the reply across several reads (a reply may arrive split, and
//! the original looked for "good bye" in a single 1024-byte chunk) and notices when the server
//! hangs up without answering, instead of printing an empty line for ever.

use std::io::Write;

use crate::addr::{Family, SockAddr, SockType, Target};
use crate::error::SockError;
use crate::socket::{Net, Socket};

/// What the server answers (the seed's text, byte for byte).
pub const GOODBYE_REPLY: &[u8] = b"server receive your messages, good bye.";
/// How much the server reads as "the first message" (the seed's `recv(1024)`).
pub const GOODBYE_RECV_BYTES: usize = 1024;
/// The words the client watches for.
pub const GOODBYE_MARKER: &[u8] = b"good bye";
/// Most bytes the client gathers while waiting for the marker; a larger reply is an error, not
/// an unbounded buffer.
pub const GOODBYE_REPLY_MAX_BYTES: usize = 64 * 1024;
/// The server's listen backlog (the seed's `listen(5)`).
pub const GOODBYE_BACKLOG: u32 = 5;

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

/// Accepts one connection and serves it; the log gets the seed's lines.
pub fn serve_one(listener: &Socket, log: &mut dyn Write) -> Result<Served, SockError> {
    let (mut conn, peer) = listener.accept()?;
    let _ = writeln!(log, "connected by {peer}");
    let message = conn.recv(GOODBYE_RECV_BYTES);
    let served = match message {
        Ok(m) if m.is_empty() => {
            let _ = writeln!(log, "{peer} closed without a message");
            Served::Silent { peer }
        }
        Ok(m) => {
            let _ = writeln!(log, "receive from {peer}:{}", String::from_utf8_lossy(&m));
            conn.sendall(GOODBYE_REPLY)?;
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

/// How a client's exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The reply contained the marker: the conversation is over.
    GoodBye(Vec<u8>),
    /// The server hung up; what it sent before that (possibly nothing).
    HungUp(Vec<u8>),
}

/// Sends one message and gathers the reply.
pub fn exchange(sock: &Socket, message: &[u8]) -> Result<Reply, SockError> {
    sock.sendall(message)?;
    read_reply(sock)
}

/// Gathers the reply until the marker, end of stream, or the size cap.
pub fn read_reply(sock: &Socket) -> Result<Reply, SockError> {
    let mut reply = Vec::new();
    loop {
        let chunk = sock.recv(GOODBYE_RECV_BYTES)?;
        if chunk.is_empty() {
            return Ok(Reply::HungUp(reply));
        }
        reply.extend_from_slice(&chunk);
        if reply
            .windows(GOODBYE_MARKER.len())
            .any(|w| w == GOODBYE_MARKER)
        {
            return Ok(Reply::GoodBye(reply));
        }
        if reply.len() > GOODBYE_REPLY_MAX_BYTES {
            return Err(SockError::Value(
                "reply exceeds GOODBYE_REPLY_MAX_BYTES without 'good bye'",
            ));
        }
    }
}

/// The client: connects, then sends each line and prints what comes back, until the server says
/// good bye or hangs up. Like the seed it reads once per line (so it also works against a server
/// that echoes), but it finds the marker even when it arrives split across two reads. Returns
/// whether the conversation ended with "good bye".
pub fn client(
    net: &Net,
    target: &Target,
    lines: &mut dyn Iterator<Item = Vec<u8>>,
    out: &mut dyn Write,
) -> Result<bool, SockError> {
    let sock = Socket::new(net, family_of(net, target)?, SockType::Stream)?;
    sock.connect(target)?;
    let mut tail: Vec<u8> = Vec::new();
    for line in lines {
        sock.sendall(&line)?;
        let chunk = sock.recv(GOODBYE_RECV_BYTES)?;
        if chunk.is_empty() {
            let _ = writeln!(out, "server closed the connection, bye bye~");
            return Ok(false);
        }
        let _ = writeln!(out, "{}", String::from_utf8_lossy(&chunk));
        tail.extend_from_slice(&chunk);
        if tail
            .windows(GOODBYE_MARKER.len())
            .any(|w| w == GOODBYE_MARKER)
        {
            return Ok(true);
        }
        // Keep only what could still be the start of a split marker.
        let keep = tail.len().min(GOODBYE_MARKER.len() - 1);
        tail.drain(..tail.len() - keep);
    }
    Ok(false)
}
