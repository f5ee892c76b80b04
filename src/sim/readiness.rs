//! What poll reports for each simulated object, following Linux's `tcp_poll`, `unix_poll`,
//! `datagram_poll` and `pipe_poll`. ERR and HUP are computed here too; poll always reports them.

use super::Sim;
use super::slab::Id;
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
        // Streams poll writable on their own buffer; datagrams and records (unix_dgram_poll)
        // only while the peer can take one more, which is what send checks too.
        if s.ty == SockType::Stream || self.stream_writable(id) {
            e |= Events::OUT;
        }
        e
    }

    pub(super) fn stream_writable(&self, id: Id) -> bool {
        let s = self.sock(id);
        match s.peer.and_then(|p| self.socks.get(p)) {
            None => true,
            Some(peer) if s.ty == SockType::Stream => {
                let cap =
                    peer.opts.rcvbuf_bytes.max(0) as usize + s.opts.sndbuf_bytes.max(0) as usize;
                peer.queued_bytes() < cap
            }
            Some(peer) => {
                let charged =
                    peer.msgs_bytes + peer.msgs.len() * super::state::DGRAM_OVERHEAD_BYTES;
                charged < peer.opts.rcvbuf_bytes.max(0) as usize
            }
        }
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
