//! Messages (UDP, Unix datagram and seqpacket sockets): per-message receive, the sender's
//! buffer charged until the receiver takes the message, and sends to a named or connected peer.

use std::net::{IpAddr, SocketAddr};

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::Events;
use crate::sim::Id;
use crate::sim::skb;
use crate::sim::state::*;
use crate::sim::{Proto, Sim};

use super::unspecified_ip;

impl Sim {
    /// Datagrams and records: one message per call, truncated to the buffer.
    pub(super) fn message_recv(
        &mut self,
        id: Id,
        buf: &mut [u8],
        from: Option<&mut Option<SockAddr>>,
    ) -> Result<usize, Errno> {
        let s = self.sock_mut(id);
        if s.ty == SockType::SeqPacket && s.so_state != SoState::Connected {
            return Err(Errno::ENOTCONN);
        }
        // __skb_try_recv_datagram reports the pending error before any queued message.
        if let Some(e) = s.take_error() {
            return Err(e);
        }
        let Some(msg) = s.msgs.pop_front() else {
            // Only a seqpacket signals end of stream; a datagram socket has none (EAGAIN).
            let eof = s.shut_rd && s.ty == SockType::SeqPacket;
            return if eof { Ok(0) } else { Err(Errno::EAGAIN) };
        };
        s.msgs_bytes -= msg.data.len();
        let peer = s.peer;
        let n = msg.data.len().min(buf.len());
        buf[..n].copy_from_slice(&msg.data[..n]);
        if let Some(f) = from {
            *f = msg.from;
        }
        // An AF_UNIX message is an skb charged to its sender: reading it frees the charge.
        if self.sock(id).family == Family::Unix {
            self.uncharge(msg.sender.or(peer), msg.truesize);
            // unix_dgram_recvmsg wakes everyone on the receiver's peer_wait: datagram sockets
            // connected to it that waited for room in its queue (unix_dgram_peer_wake_me).
            if self.sock(id).msgs.len() == UNIX_MAX_DGRAM_QLEN {
                self.wake_connected_senders(id);
            }
        }
        Ok(n)
    }

    /// Wakes the datagram sockets connected to `receiver` (not connected back) whose queue
    /// limit held them, now that it has room.
    fn wake_connected_senders(&mut self, receiver: Id) {
        let waiting: Vec<Id> = self
            .socks
            .iter()
            .filter(|(w, s)| *w != receiver && s.ty == SockType::Dgram && s.peer == Some(receiver))
            .map(|(w, _)| w)
            .collect();
        for w in waiting {
            self.wake_writer_if_room(Some(w), false);
        }
    }

    /// A reader freed `truesize` of `writer`'s AF_UNIX skbs (sock_wfree): its charge drops and,
    /// if it is writable now, it is woken (unix_write_space).
    pub(super) fn uncharge(&mut self, writer: Option<Id>, truesize: usize) {
        let Some(w) = writer.filter(|w| self.socks.get(*w).is_some()) else {
            return;
        };
        let s = self.sock_mut(w);
        s.wmem_bytes = s.wmem_bytes.saturating_sub(truesize);
        self.wake_writer_if_room(Some(w), false);
    }

    pub(super) fn seqpacket_send(&mut self, id: Id, buf: &[u8]) -> Result<usize, Errno> {
        // unix_seqpacket_sendmsg reports the pending error before anything else.
        if let Some(e) = self.sock_mut(id).take_error() {
            return Err(e);
        }
        let s = self.sock(id);
        if s.so_state != SoState::Connected {
            return Err(Errno::ENOTCONN);
        }
        if s.shut_wr {
            return Err(Errno::EPIPE);
        }
        self.unix_charge_check(id, buf.len())?;
        let s = self.sock(id);
        let from = s.local.clone();
        let peer = s
            .peer
            .filter(|p| self.socks.get(*p).is_some_and(|ps| !ps.shut_rd))
            .ok_or(Errno::EPIPE)?;
        self.unix_enqueue(id, peer, from, buf)
    }

    /// unix_dgram_sendmsg's first checks: EMSGSIZE past the send buffer (less 32 bytes), then
    /// EAGAIN while the sender's charge has reached it (sock_alloc_send_pskb).
    fn unix_charge_check(&self, id: Id, len: usize) -> Result<(), Errno> {
        let s = self.sock(id);
        let sndbuf = s.opts.sndbuf_bytes.max(0) as usize;
        if len > sndbuf.saturating_sub(skb::DGRAM_SNDBUF_SLACK_BYTES) {
            return Err(Errno::EMSGSIZE);
        }
        if s.wmem_bytes >= sndbuf {
            return Err(Errno::EAGAIN);
        }
        Ok(())
    }

    /// Queues an AF_UNIX datagram or record from `id` at `to`, charged to `id`. A receiver that
    /// is not connected back to the sender takes at most `UNIX_MAX_DGRAM_QLEN` queued messages
    /// (unix_recvq_full); more is EAGAIN.
    fn unix_enqueue(
        &mut self,
        id: Id,
        to: Id,
        from: Option<SockAddr>,
        buf: &[u8],
    ) -> Result<usize, Errno> {
        let t = self.sock(to);
        if t.peer != Some(id) && t.msgs.len() > UNIX_MAX_DGRAM_QLEN {
            return Err(Errno::EAGAIN);
        }
        let truesize = skb::unix_dgram_truesize(buf.len());
        self.sock_mut(id).wmem_bytes += truesize;
        let t = self.sock_mut(to);
        t.msgs_bytes += buf.len();
        t.msgs.push_back(Message {
            from,
            data: buf.to_vec(),
            truesize,
            sender: Some(id),
        });
        self.wake_sock(to, Events::IN);
        Ok(buf.len())
    }

    /// Queues a message at `to`; a full queue is EAGAIN (`block`) or a silent drop (UDP).
    fn enqueue_message(
        &mut self,
        to: Id,
        from: Option<SockAddr>,
        buf: &[u8],
        block: bool,
    ) -> Result<(), Errno> {
        let t = self.sock_mut(to);
        let charged = t.msgs_bytes + t.msgs.len() * DGRAM_OVERHEAD_BYTES;
        if charged >= t.opts.rcvbuf_bytes.max(0) as usize {
            return if block { Err(Errno::EAGAIN) } else { Ok(()) };
        }
        t.msgs_bytes += buf.len();
        t.msgs.push_back(Message {
            from,
            data: buf.to_vec(),
            truesize: 0,
            sender: None,
        });
        self.wake_sock(to, Events::IN);
        Ok(())
    }

    pub(super) fn unix_dgram_send(
        &mut self,
        id: Id,
        buf: &[u8],
        to: Option<&SockAddr>,
    ) -> Result<usize, Errno> {
        let s = self.sock(id);
        if s.shut_wr {
            return Err(Errno::EPIPE);
        }
        self.unix_charge_check(id, buf.len())?;
        let s = self.sock(id);
        // An unnamed sender has no address to report: recvfrom gives none (as this project's
        // kernel does; Linux itself reports an empty name).
        let from = s.local.clone();
        let target = match to {
            Some(addr) => self.unix_target(addr)?,
            None => {
                let peer = s.peer.ok_or(Errno::ENOTCONN)?;
                if self.socks.get(peer).is_none() {
                    // unix_dgram_sendmsg: the peer died; forget it, drop what it sent us
                    // (unix_dgram_disconnected purges the queue) and report the refusal once.
                    let s = self.sock_mut(id);
                    s.msgs.clear();
                    s.msgs_bytes = 0;
                    s.peer = None;
                    s.remote = None;
                    s.state = State::Closed;
                    s.so_state = SoState::Unconnected;
                    return Err(Errno::ECONNREFUSED);
                }
                peer
            }
        };
        let t = self.sock(target);
        if t.ty != SockType::Dgram {
            return Err(Errno::EPROTOTYPE);
        }
        if t.shut_rd {
            return Err(Errno::EPIPE);
        }
        self.unix_enqueue(id, target, from, buf)
    }

    /// The source address of a datagram from `id` to `dst`: its bound address, bound to an
    /// ephemeral port first if it was not; an unspecified IP becomes the destination's (on
    /// loopback, the route's source is the destination itself).
    fn udp_source(&mut self, id: Id, family: Family, dst: SocketAddr) -> Result<SocketAddr, Errno> {
        self.autobind(id, unspecified_ip(family))?;
        let src = self
            .sock(id)
            .local
            .clone()
            .and_then(|l| l.inet())
            .expect("autobound");
        let ip = if src.ip().is_unspecified() {
            dst.ip()
        } else {
            src.ip()
        };
        Ok(SocketAddr::new(ip, src.port()))
    }

    pub(super) fn udp_send(
        &mut self,
        id: Id,
        buf: &[u8],
        to: Option<&SockAddr>,
    ) -> Result<usize, Errno> {
        let s = self.sock_mut(id);
        if let Some(e) = s.take_error() {
            return Err(e);
        }
        if s.shut_wr {
            return Err(Errno::EPIPE);
        }
        let family = s.family;
        let dst = match to {
            Some(addr) if addr.family() != family => return Err(Errno::EAFNOSUPPORT),
            Some(addr) => addr.inet().ok_or(Errno::EINVAL)?,
            None => s
                .remote
                .as_ref()
                .and_then(SockAddr::inet)
                .ok_or(Errno::EDESTADDRREQ)?,
        };
        let max = if family == Family::Inet6 {
            UDP6_MAX_PAYLOAD_BYTES
        } else {
            UDP4_MAX_PAYLOAD_BYTES
        };
        if buf.len() > max {
            return Err(Errno::EMSGSIZE);
        }
        let broadcast = matches!(dst.ip(), IpAddr::V4(v4) if v4.is_broadcast());
        if broadcast && !self.sock(id).opts.broadcast {
            return Err(Errno::EACCES);
        }
        if !self.is_local(dst.ip()) && !self.config.blackholes.contains(&dst.ip()) && !broadcast {
            return Err(Errno::ENETUNREACH);
        }
        let src = self.udp_source(id, family, dst)?;
        // sock_alloc_send_skb finds the send buffer full (datagrams still queued on a real
        // device; loopback frees them at once): EAGAIN on a non-blocking socket.
        if self.decide.udp_send_full() {
            self.pending_choice = Some(crate::sim::decide::Choice::SendBufferFull);
            return Err(Errno::EAGAIN);
        }
        self.wire_datagram(src, dst, buf);
        let target = self
            .bound_overlapping(Proto::Udp, dst.ip(), dst.port())
            .into_iter()
            .find(|t| {
                self.sock(*t)
                    .remote
                    .as_ref()
                    .is_none_or(|r| r.inet() == Some(src))
            });
        match target {
            Some(t) => self.enqueue_message(t, Some(SockAddr::Inet(src)), buf, false)?,
            // An ICMP port-unreachable comes back; only a connected socket hears of it.
            None if to.is_none() => {
                self.sock_mut(id).error = Some(Errno::ECONNREFUSED);
                self.wake_sock(id, Events::ERR);
            }
            None => {}
        }
        Ok(buf.len())
    }
}
