//! The seed's UDP programs (§二.2): a server that receives datagrams and echoes each back to
//! its sender, and a client that sends lines and prints the echoes.

use std::io::Write;

use crate::addr::{SockType, Target};
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

/// Receives one datagram and echoes it to its sender; returns its size.
pub fn echo_one(sock: &Socket, log: &mut dyn Write) -> Result<usize, SockError> {
    let (data, from) = sock.recvfrom(UDP_ECHO_MAX_BYTES)?;
    let Some(from) = from else {
        let _ = writeln!(log, "datagram from an unnamed sender: not echoed");
        return Ok(data.len());
    };
    let _ = writeln!(
        log,
        "receive from {from}:{}",
        String::from_utf8_lossy(&data)
    );
    let back = match &from {
        crate::addr::SockAddr::Inet(a) => Target::Host(a.ip().to_string(), a.port()),
        crate::addr::SockAddr::Unix(p) => Target::Path(p.clone()),
        crate::addr::SockAddr::UnixUnnamed => unreachable!("handled above"),
    };
    sock.sendto(&data, &back)?;
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
