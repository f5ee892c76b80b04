//! Byte streams (TCP and Unix stream sockets): receive, send within the peer's buffer room,
//! and resets.

use nix::errno::Errno;

use crate::kernel::Events;
use crate::sim::Id;
use crate::sim::Sim;
use crate::sim::capture::TcpFlags;
use crate::sim::decide::Choice;
use crate::sim::skb;
use crate::sim::state::*;

use super::{Chosen, consume_chunks, copy_out};

impl Sim {
    pub(super) fn stream_recv(&mut self, id: Id, buf: &mut [u8]) -> Chosen<usize> {
        let tcp = self.sock(id).is_tcp();
        let mut choice = None;
        if tcp && matches!(self.sock(id).state, State::Listen { .. }) {
            return (Err(Errno::ENOTCONN), None);
        }
        if !tcp && self.sock(id).so_state != SoState::Connected {
            return (Err(Errno::EINVAL), None);
        }
        if tcp && self.adversary_resets(id) {
            choice = Some(Choice::Reset);
        }
        let s = self.sock_mut(id);
        // A zero-length recv is not an end-of-stream probe: with data queued it returns 0,
        // without it takes the same path as any other recv (tcp_recvmsg's target is at least 1).
        if !s.rx.is_empty() && buf.is_empty() {
            return (Ok(0), choice);
        }
        if !s.rx.is_empty() {
            let avail = s.rx.len().min(buf.len());
            let peer = s.peer;
            let (n, c) = self.decide.recv_len(avail);
            let was_writable = peer.is_none_or(|p| self.stream_writable(p));
            let s = self.sock_mut(id);
            copy_out(&mut s.rx, &mut buf[..n]);
            let freed = consume_chunks(&mut s.rx_chunks, n);
            if tcp {
                self.wake_writer_if_room(peer, was_writable);
            } else if freed > 0 {
                // unix_stream_read_generic frees each skb read whole; sock_wfree uncharges the
                // writer and wakes it (unix_write_space) whenever it is writable.
                self.uncharge(peer, freed);
            }
            return (Ok(n), c.or(choice));
        }
        // tcp_recvmsg's order: end of stream, then the pending error, then shutdown, then state.
        let r = if tcp && s.fin_received {
            Ok(0)
        } else if let Some(e) = s.take_error() {
            Err(e)
        } else if s.shut_rd {
            Ok(0)
        } else if tcp && matches!(s.state, State::Closed) {
            Err(Errno::ENOTCONN)
        } else {
            Err(Errno::EAGAIN)
        };
        (r, choice)
    }

    /// Reading made room: wake the writer, but only when it could not write before (Linux's
    /// SOCK_NOSPACE and pipe `was_full` rules), so an edge-triggered writer hears of the change
    /// and not of every read.
    pub(super) fn wake_writer_if_room(&mut self, writer: Option<Id>, was_writable: bool) {
        let live = |w: &Id| self.socks.get(*w).is_some() && self.stream_writable(*w);
        if let Some(w) = writer.filter(|w| !was_writable && live(w)) {
            self.wake_sock(w, Events::OUT);
        }
    }

    /// Whether the adversary resets this established TCP connection now (both ends get RSTs).
    fn adversary_resets(&mut self, id: Id) -> bool {
        let s = self.sock(id);
        let peer = s.peer;
        if !matches!(s.state, State::Established) || peer.is_none() || !self.decide.reset() {
            return false;
        }
        for end in std::iter::once(id).chain(peer) {
            self.wire_reset_to(end);
            self.tcp_reset(end);
            self.sock_mut(end).reset_by_adversary = true;
        }
        true
    }

    /// Linux's `tcp_reset`: the error depends on the state, then the socket is done.
    pub(super) fn tcp_reset(&mut self, id: Id) {
        let Some(s) = self.socks.get_mut(id) else {
            return;
        };
        let err = match s.state {
            State::SynSent { .. } => Errno::ECONNREFUSED,
            State::Closed => return,
            _ if s.fin_received => Errno::EPIPE,
            _ => Errno::ECONNRESET,
        };
        s.error = Some(err);
        s.state = State::Closed;
        s.shut_rd = true;
        s.shut_wr = true;
        s.peer = None;
        self.wake_sock(id, Events::NONE);
    }

    /// Room left in the stream from `id` to its peer: the peer's receive buffer plus our own
    /// send buffer, as on loopback where acknowledgements are immediate.
    fn stream_room(&self, id: Id) -> usize {
        let s = self.sock(id);
        let Some(peer) = s.peer.and_then(|p| self.socks.get(p)) else {
            return usize::MAX;
        };
        let cap = peer.opts.rcvbuf_bytes.max(0) as usize + s.opts.sndbuf_bytes.max(0) as usize;
        cap.saturating_sub(peer.queued_bytes())
    }

    /// A stream write of the concatenation of `bufs` (one buffer for send, several for
    /// send_vectored: the kernel takes them as one byte sequence).
    pub(super) fn stream_send(&mut self, id: Id, bufs: &[&[u8]]) -> Chosen<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let tcp = self.sock(id).is_tcp();
        let choice = (tcp && self.adversary_resets(id)).then_some(Choice::Reset);
        if let Err(e) = self.may_send(id, tcp) {
            return (Err(e), choice);
        }
        let peer = self
            .sock(id)
            .peer
            .filter(|p| self.socks.get(*p).is_some_and(|ps| tcp || !ps.shut_rd));
        if total == 0 {
            return (Ok(0), choice);
        }
        let Some(peer) = peer else {
            if !tcp {
                return (Err(Errno::EPIPE), choice);
            }
            // The peer is gone: its kernel answers our data with an RST.
            let n = total.min(self.sock(id).opts.sndbuf_bytes.max(1) as usize);
            self.wire_data(id, bufs, n);
            self.wire_reset_to(id);
            self.tcp_reset(id);
            return (Ok(n), choice);
        };
        // TCP on loopback: the peer's receive buffer plus ours. AF_UNIX: skbs charged to our
        // send buffer, as unix_stream_sendmsg cuts them (see `skb`).
        let room = if tcp {
            self.stream_room(id)
        } else {
            let me = self.sock(id);
            skb::unix_stream_take(total, me.wmem_bytes, me.opts.sndbuf_bytes.max(0) as usize).0
        };
        if room == 0 {
            return (Err(Errno::EAGAIN), choice);
        }
        let (n, c) = self.decide.send_len(total.min(room));
        let p = self.sock(peer);
        if tcp && p.shut_rd && p.fin_sent {
            // tcp_rcv_state_process: data for a socket shut in both directions (FIN_WAIT with
            // RCV_SHUTDOWN) is answered by an RST, as RFC 1122 requires.
            self.wire_data(id, bufs, n);
            self.wire_reset_to(id);
            self.tcp_reset(peer);
            self.tcp_reset(id);
            return (Ok(n), c.or(choice));
        }
        if tcp {
            // Our data segment carries the ACK we owed, if any.
            self.send_owed_ack(id);
        }
        self.enqueue_stream(id, peer, bufs, n, tcp);
        if tcp {
            // On loopback the receiver acknowledges at once, advertising the room left.
            self.wire_data(id, bufs, n);
            self.wire_from(peer, TcpFlags::empty(), &[]);
        }
        self.wake_sock(peer, Events::IN);
        (Ok(n), c.or(choice))
    }

    /// The first `n` bytes of `bufs` leave `id` as data segments (when capturing).
    fn wire_data(&mut self, id: Id, bufs: &[&[u8]], n: usize) {
        if self.capture.enabled() {
            let bytes: Vec<u8> = bufs
                .iter()
                .flat_map(|b| b.iter())
                .copied()
                .take(n)
                .collect();
            self.wire_from(id, TcpFlags::empty(), &bytes);
        }
    }

    /// Why a stream socket may not send now, if it may not: not connected, a pending error,
    /// or shut for writing.
    fn may_send(&mut self, id: Id, tcp: bool) -> Result<(), Errno> {
        let s = self.sock_mut(id);
        if !tcp && s.so_state != SoState::Connected {
            return Err(Errno::ENOTCONN);
        }
        // tcp_sendmsg → sk_stream_wait_connect / do_error: the pending error first, else EPIPE.
        if tcp && !matches!(s.state, State::Established) {
            return Err(match s.take_error() {
                Some(e) => e,
                None if matches!(s.state, State::SynSent { .. }) => Errno::EAGAIN,
                None => Errno::EPIPE,
            });
        }
        if s.shut_wr || (tcp && s.error.is_some()) {
            return Err(if tcp {
                s.take_error().unwrap_or(Errno::EPIPE)
            } else {
                Errno::EPIPE
            });
        }
        Ok(())
    }

    /// Puts the first `n` bytes of `bufs` in the peer's receive queue; on AF_UNIX, as skbs
    /// charged to the sender's buffer.
    fn enqueue_stream(&mut self, id: Id, peer: Id, bufs: &[&[u8]], n: usize, tcp: bool) {
        let p = self.sock_mut(peer);
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            p.rx.extend(&b[..take]);
            left -= take;
        }
        if !tcp {
            let sndbuf = self.sock(id).opts.sndbuf_bytes.max(0) as usize;
            let mut charged = 0;
            let mut left = n;
            let p = self.sock_mut(peer);
            while left > 0 {
                let (bytes, truesize) = skb::unix_stream_skb(left, sndbuf);
                p.rx_chunks.push_back(Chunk { bytes, truesize });
                charged += truesize;
                left -= bytes;
            }
            self.sock_mut(id).wmem_bytes += charged;
        }
    }
}
