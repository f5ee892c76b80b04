//! Building connected endpoints on any kernel: what the scenario runner's `tcp`, `udp` and
//! `refused` commands do, and what the differential tests start from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, Fd, Kernel, PollFd, SockOpt};

/// How long set-up waits for a loopback handshake (virtual time in the simulator).
pub const SETUP_WAIT: Duration = Duration::from_secs(1);

/// The loopback address of a family, port 0 (the kernel picks an ephemeral port).
pub fn loopback(family: Family) -> SockAddr {
    let ip = match family {
        Family::Inet6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SockAddr::Inet(SocketAddr::new(ip, 0))
}

/// Waits (bounded by [`SETUP_WAIT`]) until `fd` reports one of `events`; returns what it reported.
pub fn wait_for(k: &mut dyn Kernel, fd: Fd, events: Events) -> Result<Events, Errno> {
    let mut p = [PollFd::new(fd, events)];
    k.poll(&mut p, Some(SETUP_WAIT))?;
    Ok(p[0].revents)
}

/// A TCP listener on loopback with an ephemeral port.
pub fn tcp_listener(k: &mut dyn Kernel, family: Family, backlog: u32) -> Result<Fd, Errno> {
    let l = k.socket(family, SockType::Stream)?;
    k.bind(l, &loopback(family))?;
    k.listen(l, backlog)?;
    Ok(l)
}

/// A connected TCP pair over loopback: (client, accepted server end); the listener is closed.
///
/// Both ends get TCP_NODELAY: Nagle's algorithm holds back small segments while an ACK is
/// outstanding, and delayed ACKs make that depend on timing. The simulator delivers every write
/// at once, which is what the kernel does with TCP_NODELAY; Nagle-style coalescing is left to the
/// adversary (a coalesced read is a lawful short read).
pub fn tcp_pair(k: &mut dyn Kernel, family: Family) -> Result<(Fd, Fd), Errno> {
    let l = tcp_listener(k, family, 16)?;
    let addr = k.getsockname(l)?;
    let c = k.socket(family, SockType::Stream)?;
    match k.connect(c, &addr) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    wait_for(k, c, Events::OUT)?;
    wait_for(k, l, Events::IN)?;
    let (s, _) = k.accept(l)?;
    k.close(l)?;
    for fd in [c, s] {
        k.setsockopt(fd, SockOpt::TcpNoDelay, 1)?;
    }
    Ok((c, s))
}

/// A UDP socket bound to loopback, ephemeral port.
pub fn udp_socket(k: &mut dyn Kernel, family: Family) -> Result<Fd, Errno> {
    let s = k.socket(family, SockType::Dgram)?;
    k.bind(s, &loopback(family))?;
    Ok(s)
}

/// Two UDP sockets on loopback, each connected to the other.
pub fn udp_pair(k: &mut dyn Kernel, family: Family) -> Result<(Fd, Fd), Errno> {
    let a = udp_socket(k, family)?;
    let b = udp_socket(k, family)?;
    let (aa, ba) = (k.getsockname(a)?, k.getsockname(b)?);
    k.connect(a, &ba)?;
    k.connect(b, &aa)?;
    Ok((a, b))
}

/// A loopback address with nothing listening on it (a port bound and released at once).
pub fn closed_port(k: &mut dyn Kernel, family: Family) -> Result<SockAddr, Errno> {
    let s = k.socket(family, SockType::Stream)?;
    k.bind(s, &loopback(family))?;
    let addr = k.getsockname(s)?;
    k.close(s)?;
    Ok(addr)
}

/// Closes a descriptor without leaving a TIME_WAIT behind (SO_LINGER 0: a TCP connection ends
/// with an RST). Test harnesses that open thousands of connections a minute use it, so as not to
/// exhaust the ephemeral ports; errors are ignored (a pipe has no SO_LINGER; a closed name is
/// already gone).
pub fn close_abortively(k: &mut dyn Kernel, fd: Fd) {
    let _ = k.setsockopt(fd, SockOpt::Linger, 0);
    let _ = k.close(fd);
}
