//! Shutdown and close: FINs, the owed ACK, TIME_WAIT, and what closing a socket does to its
//! peer and its listener's queue.

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, Fd, Shutdown};
use crate::sim::Id;
use crate::sim::capture::TcpFlags;
use crate::sim::state::*;
use crate::sim::{Sim, Timer};

impl Sim {
    pub(in crate::sim) fn sim_shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        let id = self.sock_id(fd)?;
        let rd = matches!(how, Shutdown::Read | Shutdown::Both);
        let wr = matches!(how, Shutdown::Write | Shutdown::Both);
        let s = self.sock(id);
        if s.family == Family::Unix {
            let peer = s
                .peer
                .filter(|p| s.is_connection() && self.socks.get(*p).is_some());
            self.set_shutdown(id, rd, wr);
            if let Some(peer) = peer {
                self.set_shutdown(peer, wr, rd);
            }
            return Ok(());
        }
        // The state alone (cloning the whole socket would copy its receive queue).
        match s.state.clone() {
            // inet_shutdown sets the flags even when it answers ENOTCONN (to wake pollers).
            State::Closed => {
                self.set_shutdown(id, rd, wr);
                Err(Errno::ENOTCONN)
            }
            // inet_shutdown: a listener shut for reading, or a pending connect, is disconnected
            // (tcp_disconnect), which leaves no shutdown flags behind.
            State::Listen { .. } if rd => {
                self.stop_listening(id);
                self.wake_sock(id, Events::NONE);
                Ok(())
            }
            // Nothing to shut, but inet_shutdown still ends with sk_state_change: a wake-up
            // (found by the readiness_diff fuzzer: an edge-triggered listener reports again).
            State::Listen { .. } => {
                self.wake_sock(id, Events::NONE);
                Ok(())
            }
            State::SynSent { .. } => {
                let sm = self.sock_mut(id);
                sm.state = State::Closed;
                sm.so_state = SoState::Unconnected;
                sm.remote = None;
                self.wake_sock(id, Events::NONE);
                Ok(())
            }
            // tcp_shutdown sends the FIN (the peer wakes on it) before inet_shutdown wakes us.
            State::Established => {
                let s = self.sock_mut(id);
                s.shut_rd |= rd;
                s.shut_wr |= wr;
                if wr && !s.fin_sent && s.ty == SockType::Stream {
                    self.send_fin(id);
                }
                self.wake_sock(id, Events::NONE);
                Ok(())
            }
        }
    }

    fn set_shutdown(&mut self, id: Id, rd: bool, wr: bool) {
        let s = self.sock_mut(id);
        s.shut_rd |= rd;
        s.shut_wr |= wr;
        self.wake_sock(id, Events::NONE);
    }

    /// Our FIN reaches the peer: it reads end of stream after the queued data. Once FINs went
    /// both ways (and, on loopback, were acknowledged at once) a held socket is TCP_CLOSE.
    fn send_fin(&mut self, id: Id) {
        // The FIN carries any ACK we owed.
        self.send_owed_ack(id);
        let peer = self.sock(id).peer;
        let tcp = self.sock(id).is_tcp();
        if tcp {
            self.wire_from(id, TcpFlags::FIN, &[]);
        }
        self.sock_mut(id).fin_sent = true;
        if let Some(p) = peer.and_then(|p| self.socks.get_mut(p)) {
            p.fin_received = true;
            p.shut_rd = true;
            // The FIN's ACK is delayed: it comes with the peer's next segment, or on its own
            // after the delayed-ACK timer. Until it arrives our FIN is unacknowledged, and its
            // arrival is a state change (FIN_WAIT1 -> FIN_WAIT2) that wakes our watchers.
            if tcp {
                p.ack_owed = true;
            }
        }
        if let Some(p) = peer.filter(|_| tcp) {
            self.schedule(TCP_DELAYED_ACK, Timer::DelayedAck(p));
        }
        self.close_if_fins_exchanged(id);
        if let Some(p) = peer.filter(|p| self.socks.get(*p).is_some()) {
            self.close_if_fins_exchanged(p);
            self.wake_sock(p, Events::NONE);
        }
    }

    /// `id` sends the ACK it owed for its peer's FIN (with data, its own FIN, or on the
    /// delayed-ACK timer): the peer's FIN is acknowledged, which wakes the peer's watchers.
    pub(in crate::sim) fn send_owed_ack(&mut self, id: Id) {
        let Some(s) = self.socks.get_mut(id) else {
            return;
        };
        if !std::mem::take(&mut s.ack_owed) {
            return;
        }
        let peer = s.peer;
        self.wire_from(id, TcpFlags::empty(), &[]);
        if let Some(p) = peer.filter(|p| self.socks.get(*p).is_some()) {
            self.wake_sock(p, Events::NONE);
        }
    }

    fn close_if_fins_exchanged(&mut self, id: Id) {
        let s = self.sock_mut(id);
        if s.fin_sent && s.fin_received && matches!(s.state, State::Established) {
            s.state = State::Closed;
            s.shut_rd = true;
            s.shut_wr = true;
            s.peer = None;
        }
    }

    pub(in crate::sim) fn sim_close(&mut self, fd: Fd) -> Result<(), Errno> {
        let file_id = self.fds_mut().remove(fd.0).ok_or(Errno::EBADF)?;
        let file = self.files.get_mut(file_id).expect("live file");
        file.refs -= 1;
        if file.refs > 0 {
            return Ok(());
        }
        let object = file.object;
        // The last descriptor of an open file is gone: it leaves every interest list (closing
        // one of several dup'd descriptors, above, does not).
        self.forget_watches(object);
        self.files.remove(file_id);
        match object {
            Object::Epoll(_) => {}
            Object::EventFd(c) => {
                self.counters.remove(c);
            }
            Object::TimerFd(t) => {
                self.timerfds.remove(t);
            }
            Object::Sock(id) => self.release_sock(id, false),
            Object::PipeRead(p) | Object::PipeWrite(p) => {
                let pipe = self.pipes.get_mut(p).expect("live pipe");
                if matches!(object, Object::PipeRead(_)) {
                    pipe.readers -= 1;
                } else {
                    pipe.writers -= 1;
                }
                if pipe.readers == 0 && pipe.writers == 0 {
                    self.pipes.remove(p);
                } else {
                    let other = match object {
                        Object::PipeRead(_) => Object::PipeWrite(p),
                        _ => Object::PipeRead(p),
                    };
                    self.wake(other, Events::NONE);
                }
            }
        }
        Ok(())
    }

    /// The last reference to a socket is gone: tell the peer (FIN or RST) and free it.
    pub(super) fn release_sock(&mut self, id: Id, force_reset: bool) {
        self.stop_listening(id);
        let me = self.sock(id);
        let peer = me.peer.filter(|p| self.socks.get(*p).is_some());
        let tcp_established = me.is_tcp() && matches!(me.state, State::Established);
        let unread = !me.rx.is_empty() || me.opts.linger_secs == 0 || force_reset;
        // The FIN goes out while the socket is still in the table (send_fin follows its links).
        if tcp_established && !unread && !me.fin_sent && peer.is_some() {
            self.send_fin(id);
        }
        if self.sock(id).family != Family::Unix {
            self.unregister_port(id);
        }
        let s = self.socks.remove(id).expect("live socket id");
        // The slab reuses ids: a tag must not outlive its socket.
        self.peer_tags.remove(&id);
        if s.family == Family::Unix {
            // unix_release_sock purges the receive queue: each skb's sender is uncharged.
            let stream_skbs: usize = s.rx_chunks.iter().map(|c| c.truesize).sum();
            self.uncharge(peer, stream_skbs);
            for m in &s.msgs {
                self.uncharge(m.sender, m.truesize);
            }
        }
        if tcp_established {
            if let Some(p) = peer {
                if unread {
                    self.wire_reset_to(p);
                    self.tcp_reset(p);
                } else {
                    // The peer's next segment to us will be answered by an RST.
                    self.sock_mut(p).peer = None;
                }
            }
            if !unread && !s.fin_received {
                self.enter_time_wait(&s);
            }
        } else if let Some(p) = peer.filter(|_| s.family == Family::Unix && s.is_connection()) {
            let ps = self.sock_mut(p);
            ps.shut_rd = true;
            ps.shut_wr = true;
            ps.peer = None;
            // unix_release_sock: unread data, or an embryo never accepted, resets the peer.
            // Unread *bytes*: a zero-length record left unread does not (Linux 6.18, found by
            // the differential test; tests/proptest-regressions/differential.txt keeps the case).
            let unread = s.msgs.iter().any(|m| !m.data.is_empty()) || !s.rx.is_empty();
            if unread || force_reset {
                ps.error = Some(Errno::ECONNRESET);
            }
            self.wake_sock(p, Events::NONE);
        }
        if let Some(SockAddr::Unix(path)) = &s.local
            && self.paths.get(path) == Some(&Some(id))
        {
            self.paths.insert(path.clone(), None);
        }
    }

    fn enter_time_wait(&mut self, s: &Sock) {
        if let Some(SockAddr::Inet(a)) = &s.local {
            self.time_wait.insert(
                (a.port(), a.ip()),
                (self.now.saturating_add(TCP_TIME_WAIT), s.opts.reuse_addr),
            );
            self.schedule(TCP_TIME_WAIT, Timer::TimeWaitEnd(a.ip(), a.port()));
        }
    }
}
