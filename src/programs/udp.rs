//! The tutorial's UDP programs (§二.2): a server that receives datagrams and echoes each back to
//! its sender, and a client that sends lines and prints the echoes.

use std::io::Write;

use crate::addr::{SockAddr, SockType, Target};
use crate::error::SockError;
use crate::programs::goodbye::family_of;
use crate::socket::{Net, Socket};

/// Largest datagram the server reads whole (the IPv4 UDP payload limit); longer ones cannot
/// arrive over IPv4, and over AF_UNIX they are truncated as recvfrom does.
pub const UDP_ECHO_MAX_BYTES: usize = 65_507;
/// How long the client waits for each echo before reporting `timed out`, in seconds.
pub const UDP_ECHO_TIMEOUT_SECS: f64 = 2.0;

/// Opens the server's socket.
pub fn bind(net: &Net, target: &Target) -> Result<Socket, SockError> {
    let s = Socket::new(net, family_of(net, target)?, SockType::Dgram)?;
    s.bind(target)?;
    Ok(s)
}

/// Receives one datagram and echoes it to its sender; returns its size. The echo is sent once,
/// without waiting (MSG_DONTWAIT): a sender that cannot take it (gone, or not reading) loses
/// its echo, logged, and the server goes on — UDP promises nothing more.
pub fn echo_one(sock: &Socket, log: &mut dyn Write) -> Result<usize, SockError> {
    let (data, from) = sock.recvfrom(UDP_ECHO_MAX_BYTES)?;
    let back = match &from {
        Some(SockAddr::Inet(a)) => Target::Host(a.ip().to_string(), a.port()),
        Some(SockAddr::Unix(p)) => Target::Path(p.clone()),
        // Unnamed (or abstract) AF_UNIX senders have no address to answer.
        Some(SockAddr::UnixUnnamed) | None => {
            let _ = writeln!(log, "datagram from a sender without an address: not echoed");
            return Ok(data.len());
        }
    };
    let from = from.expect("matched above");
    let _ = writeln!(
        log,
        "receive from {from}:{}",
        String::from_utf8_lossy(&data)
    );
    if let Err(e) = sock.sendto_dontwait(&data, &back) {
        let _ = writeln!(log, "echo to {from} lost: {e}");
    }
    Ok(data.len())
}

/// The client: one datagram per line, each echo printed (or `timed out`).
pub fn client(
    net: &Net,
    target: &Target,
    lines: &mut dyn Iterator<Item = Vec<u8>>,
    out: &mut dyn Write,
) -> Result<(), SockError> {
    let mut sock = Socket::new(net, family_of(net, target)?, SockType::Dgram)?;
    sock.settimeout(Some(UDP_ECHO_TIMEOUT_SECS))?;
    for line in lines {
        sock.sendto(&line, target)?;
        match sock.recvfrom(UDP_ECHO_MAX_BYTES) {
            Ok((data, _)) => {
                let _ = writeln!(out, "{}", String::from_utf8_lossy(&data));
            }
            Err(SockError::Timeout) => {
                let _ = writeln!(out, "timed out");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
