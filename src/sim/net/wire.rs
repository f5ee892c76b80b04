//! What the simulator puts on the wire for `--pcap`: each TCP event turned into segments
//! between the connection's two IP addresses (see [`crate::sim::capture`]).

use std::net::SocketAddr;

use crate::addr::SockAddr;
use crate::sim::capture::TcpFlags;
use crate::sim::{Id, Sim};

impl Sim {
    /// A TCP socket's (local, remote) IP addresses, when it has both.
    fn tcp_ends(&self, id: Id) -> Option<(SocketAddr, SocketAddr)> {
        let s = self.socks.get(id).filter(|s| s.is_tcp())?;
        match (&s.local, &s.remote) {
            (Some(SockAddr::Inet(l)), Some(SockAddr::Inet(r))) => Some((*l, *r)),
            _ => None,
        }
    }

    /// The room left in a socket's receive buffer: the window it advertises.
    fn window_bytes(&self, id: Id) -> usize {
        self.socks.get(id).map_or(0, |s| {
            (s.opts.rcvbuf_bytes.max(0) as usize).saturating_sub(s.queued_bytes())
        })
    }

    /// `id` sends a segment to its peer: `flags` (with ACK) and `payload`.
    pub(super) fn wire_from(&mut self, id: Id, flags: TcpFlags, payload: &[u8]) {
        if !self.capture.enabled() {
            return;
        }
        if let Some(ends) = self.tcp_ends(id) {
            let window = self.window_bytes(id);
            self.capture.tcp(self.now, ends, flags, payload, window);
        }
    }

    /// An RST reaches `id` from the other end of its connection.
    pub(super) fn wire_reset_to(&mut self, id: Id) {
        if let Some((local, remote)) = self.tcp_ends(id).filter(|_| self.capture.enabled()) {
            (self.capture).tcp(self.now, (remote, local), TcpFlags::RST, &[], 0);
        }
    }

    /// The SYN of a connecting socket (sent, perhaps to be lost).
    pub(super) fn wire_syn(&mut self, id: Id) {
        if let Some(ends) = self.tcp_ends(id).filter(|_| self.capture.enabled()) {
            let window = self.window_bytes(id);
            self.capture.syn(self.now, ends, false, window);
        }
    }

    /// The rest of a handshake: `server`'s SYN-ACK and `client`'s ACK.
    pub(super) fn wire_handshake(&mut self, client: Id, server: Id) {
        if let Some(ends) = self.tcp_ends(server).filter(|_| self.capture.enabled()) {
            let window = self.window_bytes(server);
            self.capture.syn(self.now, ends, true, window);
            self.wire_from(client, TcpFlags::empty(), &[]);
        }
    }

    /// Nobody listens where `client`'s SYN went: an RST-ACK comes back.
    pub(super) fn wire_refused(&mut self, client: Id) {
        if let Some((local, remote)) = self.tcp_ends(client).filter(|_| self.capture.enabled()) {
            self.capture.refuse(self.now, (remote, local));
        }
    }

    /// A UDP datagram from `src` to `dst`.
    pub(super) fn wire_datagram(&mut self, src: SocketAddr, dst: SocketAddr, bytes: &[u8]) {
        self.capture.udp(self.now, (src, dst), bytes);
    }
}
