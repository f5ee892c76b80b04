//! What poll reports for each simulated object, following Linux's `tcp_poll`, `unix_poll`,
//! `datagram_poll` and `pipe_poll`. ERR and HUP are computed here too; poll always reports them.

use super::Id;
use super::Sim;
use super::state::{Object, PIPE_CAPACITY_BYTES, SoState, Sock, State};
use crate::addr::{Family, SockType};
use crate::kernel::Events;

impl Sim {
    /// The readiness of an open file right now.
    pub(super) fn readiness(&self, obj: Object) -> Events {
        match obj {
            Object::Sock(id) => {
                let s = self.sock(id);
                match (s.family, s.ty) {
                    (Family::Unix, _) => self.unix_readiness(id, s),
                    (_, SockType::Stream) => self.tcp_readiness(id, s),
                    _ => datagram_readiness(s),
                }
            }
            Object::Epoll(ep) => {
                if self.epoll_has_ready(ep) {
                    Events::IN
                } else {
                    Events::NONE
                }
            }
            Object::EventFd(c) => self.eventfd_readiness(c),
            Object::TimerFd(t) => self.timerfd_readiness(t),
            Object::PipeRead(p) => {
                let pipe = self.pipes.get(p).expect("live pipe");
                let mut e = Events::NONE;
                if !pipe.buf.is_empty() {
                    e |= Events::IN;
                }
                if pipe.writers == 0 {
                    e |= Events::HUP;
                }
                e
            }
            Object::PipeWrite(p) => {
                let pipe = self.pipes.get(p).expect("live pipe");
                let mut e = Events::NONE;
                if pipe.buf.len() < PIPE_CAPACITY_BYTES {
                    e |= Events::OUT;
                }
                if pipe.readers == 0 {
                    e |= Events::ERR;
                }
                e
            }
        }
    }

    /// `tcp_poll`.
    fn tcp_readiness(&self, id: Id, s: &Sock) -> Events {
        if let State::Listen { queue, .. } = &s.state {
            return if queue.is_empty() {
                Events::NONE
            } else {
                Events::IN
            };
        }
        let mut e = Events::NONE;
        if (s.shut_rd && s.shut_wr) || matches!(s.state, State::Closed) {
            e |= Events::HUP;
        }
        if s.shut_rd {
            e |= Events::IN | Events::RDHUP;
        }
        if !matches!(s.state, State::SynSent { .. }) {
            if !s.rx.is_empty() {
                e |= Events::IN;
            }
            if s.shut_wr || self.stream_writable(id) {
                e |= Events::OUT;
            }
        }
        if s.error.is_some() {
            e |= Events::ERR;
        }
        e
    }

    /// `unix_poll` (streams and seqpackets) and `unix_dgram_poll`.
    fn unix_readiness(&self, id: Id, s: &Sock) -> Events {
        let mut e = Events::NONE;
        if s.error.is_some() {
            e |= Events::ERR;
        }
        if s.shut_rd && s.shut_wr {
            e |= Events::HUP;
        }
        if s.shut_rd {
            e |= Events::IN | Events::RDHUP;
        }
        if s.queued_bytes() > 0 || !s.msgs.is_empty() {
            e |= Events::IN;
        }
        if let State::Listen { queue, .. } = &s.state {
            return if queue.is_empty() { e } else { e | Events::IN };
        }
        if s.is_connection() && s.so_state != SoState::Connected {
            e |= Events::HUP;
        }
        // unix_poll and unix_dgram_poll: writable while the send buffer's charge is under a
        // quarter of it (unix_writable); a datagram socket's peer must also take one more.
        if self.stream_writable(id) {
            e |= Events::OUT;
        }
        e
    }

    /// Whether a write could go on now: TCP while the loopback path has room; AF_UNIX by
    /// `unix_writable` (see `skb`), and for a datagram socket also while its peer's queue takes
    /// one more (unix_dgram_poll's unix_recvq_full, for a peer not connected back).
    pub(super) fn stream_writable(&self, id: Id) -> bool {
        let s = self.sock(id);
        let peer = s.peer.and_then(|p| self.socks.get(p));
        if s.is_tcp() {
            return peer.is_none_or(|peer| {
                let cap =
                    peer.opts.rcvbuf_bytes.max(0) as usize + s.opts.sndbuf_bytes.max(0) as usize;
                peer.queued_bytes() < cap
            });
        }
        super::skb::unix_writable(s.wmem_bytes, s.opts.sndbuf_bytes.max(0) as usize)
            && !self.unix_peer_queue_full(id)
    }

    /// Whether an AF_UNIX send from `id` takes something now rather than EAGAIN: while its
    /// charge is under the whole send buffer (sock_alloc_send_pskb; `skb::unix_stream_take`)
    /// and a datagram's peer takes one more. Poll reports room only under a quarter
    /// (`unix_writable`): a blocking send goes on where poll would not wake a writer.
    pub(super) fn unix_send_takes(&self, id: Id) -> bool {
        let s = self.sock(id);
        s.wmem_bytes < s.opts.sndbuf_bytes.max(0) as usize && !self.unix_peer_queue_full(id)
    }

    /// unix_recvq_full for a datagram socket's peer that is not connected back to it.
    fn unix_peer_queue_full(&self, id: Id) -> bool {
        let s = self.sock(id);
        let peer = s.peer.and_then(|p| self.socks.get(p));
        peer.is_some_and(|peer| {
            s.ty == SockType::Dgram
                && peer.peer != Some(id)
                && peer.msgs.len() > super::state::UNIX_MAX_DGRAM_QLEN
        })
    }
}

/// `udp_poll` / `datagram_poll`.
fn datagram_readiness(s: &Sock) -> Events {
    let mut e = Events::NONE;
    if s.error.is_some() {
        e |= Events::ERR;
    }
    if s.shut_rd {
        e |= Events::IN | Events::RDHUP;
    }
    if s.shut_rd && s.shut_wr {
        e |= Events::HUP;
    }
    if !s.msgs.is_empty() {
        e |= Events::IN;
    }
    e | Events::OUT
}
