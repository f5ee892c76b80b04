//! Connecting: TCP's handshake against a listener's backlog (with SYN retries and timeouts),
//! and the connect of UDP and Unix sockets, which only names a peer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, Fd};
use crate::sim::Id;
use crate::sim::decide::Choice;
use crate::sim::state::*;
use crate::sim::{Proto, Sim, Timer};

use super::{Chosen, unspecified_ip};

impl Sim {
    pub(in crate::sim) fn sim_connect(&mut self, fd: Fd, addr: &SockAddr) -> Chosen<()> {
        let id = match self.sock_id(fd) {
            Ok(id) => id,
            Err(e) => return (Err(e), None),
        };
        let me = self.sock(id).clone();
        let family_ok = addr.family() == me.family;
        match (me.family, me.ty) {
            (Family::Unix, _) if !family_ok => (Err(Errno::EINVAL), None),
            // A sockaddr_in is shorter than an IPv6 socket's address: EINVAL, as Linux checks
            // the length before the family.
            (Family::Inet6, SockType::Stream) if addr.family() == Family::Inet => {
                (Err(Errno::EINVAL), None)
            }
            (_, _) if !family_ok => (Err(Errno::EAFNOSUPPORT), None),
            (Family::Unix, SockType::Dgram) => (self.connect_unix_dgram(id, addr), None),
            (Family::Unix, _) => (self.connect_unix_stream(id, addr), None),
            (_, SockType::Dgram) => (self.connect_udp(id, addr), None),
            _ => self.connect_tcp(id, addr),
        }
    }

    /// Linux's `inet_stream_connect`, loopback edition: the handshake completes (or is refused)
    /// before the call returns, yet a non-blocking connect still answers EINPROGRESS.
    fn connect_tcp(&mut self, id: Id, addr: &SockAddr) -> Chosen<()> {
        let me = self.sock(id);
        match (me.so_state, &me.state) {
            (SoState::Connected, _) => return (Err(Errno::EISCONN), None),
            (SoState::Connecting, State::SynSent { .. }) => return (Err(Errno::EALREADY), None),
            (SoState::Connecting, State::Established) => {
                self.sock_mut(id).so_state = SoState::Connected;
                return (Ok(()), None);
            }
            (SoState::Connecting, _) => {
                let s = self.sock_mut(id);
                s.so_state = SoState::Unconnected;
                return (Err(s.take_error().unwrap_or(Errno::ECONNABORTED)), None);
            }
            (SoState::Unconnected, State::Closed) => {}
            (SoState::Unconnected, _) => return (Err(Errno::EISCONN), None),
        }
        let Some(dst) = addr.inet() else {
            return (Err(Errno::EINVAL), None);
        };
        let reachable = self.is_local(dst.ip()) && !dst.ip().is_unspecified();
        let blackhole = self.config.blackholes.contains(&dst.ip());
        let host_unreachable = self.config.unreachable.contains(&dst.ip());
        if !reachable && !blackhole && !host_unreachable {
            return (Err(Errno::ENETUNREACH), None);
        }
        if host_unreachable {
            // The SYN goes out; a router answers ICMP host unreachable.
            if let Err(e) = self.autobind(id, unspecified_ip(self.sock(id).family)) {
                return (Err(e), None);
            }
            let s = self.sock_mut(id);
            s.so_state = SoState::Connecting;
            s.state = State::SynSent {
                to: addr.clone(),
                retries: 0,
                attempt: 0,
            };
            self.connect_failed(id, Errno::EHOSTUNREACH);
            return (Err(Errno::EINPROGRESS), None);
        }
        let src_ip = if blackhole {
            unspecified_ip(self.sock(id).family)
        } else {
            dst.ip()
        };
        if let Err(e) = self.autobind(id, src_ip) {
            return (Err(e), None);
        }
        self.fix_local_ip(id, dst.ip());
        self.timer_seq += 1;
        let attempt = self.timer_seq;
        {
            let s = self.sock_mut(id);
            s.remote = Some(addr.clone());
            s.so_state = SoState::Connecting;
            s.state = State::SynSent {
                to: addr.clone(),
                retries: 0,
                attempt,
            };
        }
        let choice = self.try_handshake(id, blackhole);
        (Err(Errno::EINPROGRESS), choice)
    }

    /// A socket bound to a wildcard address takes the address it connected from.
    fn fix_local_ip(&mut self, id: Id, ip: IpAddr) {
        let Some(SockAddr::Inet(local)) = self.sock(id).local.clone() else {
            return;
        };
        if local.ip().is_unspecified() && self.is_local(ip) {
            self.unregister_port(id);
            self.register_port(id, ip, local.port());
        }
    }

    /// Sends the SYN of a SynSent socket: established, refused, or lost (then retried later).
    fn try_handshake(&mut self, id: Id, blackhole: bool) -> Option<Choice> {
        let State::SynSent {
            to,
            retries,
            attempt,
        } = self.sock(id).state.clone()
        else {
            return None;
        };
        let dst = to.inet().expect("TCP destinations are IP addresses");
        let listener = self
            .bound_overlapping(Proto::Tcp, dst.ip(), dst.port())
            .into_iter()
            .find(|l| matches!(self.sock(*l).state, State::Listen { .. }));
        let lost = blackhole || self.decide.syn_drop();
        self.wire_syn(id);
        match listener {
            _ if lost => {}
            None => {
                self.wire_refused(id);
                self.connect_failed(id, Errno::ECONNREFUSED);
                return None;
            }
            Some(l) if !self.accept_queue_full(l) => {
                self.establish(id, l, dst);
                return None;
            }
            // Linux drops a SYN when the accept queue is full; the client retransmits.
            Some(_) => {}
        }
        // Each retransmission waits twice as long; after the last one, one more wait and give up.
        let rto = TCP_SYN_RTO_INITIAL * (1u32 << retries.min(TCP_SYN_RETRIES));
        let next = if retries >= TCP_SYN_RETRIES {
            Timer::SynTimeout(id, attempt)
        } else {
            Timer::SynRetry(id, attempt)
        };
        self.schedule(rto, next);
        lost.then_some(Choice::SynDrop).filter(|_| !blackhole)
    }

    pub(in crate::sim) fn syn_retry(&mut self, id: Id, of_attempt: u64) {
        let Some(s) = self.socks.get_mut(id) else {
            return;
        };
        let State::SynSent {
            to,
            retries,
            attempt,
        } = &mut s.state
        else {
            return;
        };
        if *attempt != of_attempt {
            return;
        }
        *retries += 1;
        let blackhole = to
            .inet()
            .is_some_and(|a| self.config.blackholes.contains(&a.ip()));
        self.try_handshake(id, blackhole);
    }

    pub(in crate::sim) fn syn_timeout(&mut self, id: Id, of_attempt: u64) {
        let Some(s) = self.socks.get_mut(id) else {
            return;
        };
        if matches!(s.state, State::SynSent { attempt, .. } if attempt == of_attempt) {
            self.connect_failed(id, Errno::ETIMEDOUT);
        }
    }

    /// A connect failed (RST or SYN timeout): tcp_done leaves the socket closed both ways.
    fn connect_failed(&mut self, id: Id, err: Errno) {
        let s = self.sock_mut(id);
        s.error = Some(err);
        s.state = State::Closed;
        s.remote = None;
        s.shut_rd = true;
        s.shut_wr = true;
        self.wake_sock(id, Events::NONE);
    }

    /// Completes a handshake: a new server-side socket joins the listener's accept queue.
    fn establish(&mut self, client: Id, listener: Id, dst: SocketAddr) {
        let l = self.sock(listener).clone();
        let mut server = Sock::new(l.family, l.ty);
        server.opts = l.opts;
        server.state = State::Established;
        server.so_state = SoState::Connected;
        server.remote = self.sock(client).local.clone();
        server.local = Some(match l.local {
            Some(SockAddr::Inet(a)) if !a.ip().is_unspecified() => SockAddr::Inet(a),
            Some(SockAddr::Unix(p)) => SockAddr::Unix(p),
            _ => SockAddr::Inet(dst),
        });
        server.peer = Some(client);
        let server_id = self.socks.insert(server);
        let c = self.sock_mut(client);
        c.state = State::Established;
        c.peer = Some(server_id);
        self.wire_handshake(client, server_id);
        if let State::Listen { queue, .. } = &mut self.sock_mut(listener).state {
            queue.push_back(server_id);
        }
        self.wake_sock(client, Events::NONE);
        self.wake_sock(listener, Events::IN);
    }

    fn connect_udp(&mut self, id: Id, addr: &SockAddr) -> Result<(), Errno> {
        let dst = addr.inet().ok_or(Errno::EINVAL)?;
        if !self.is_local(dst.ip()) && !self.config.blackholes.contains(&dst.ip()) {
            return Err(Errno::ENETUNREACH);
        }
        self.autobind(id, dst.ip())?;
        self.fix_local_ip(id, dst.ip());
        let s = self.sock_mut(id);
        s.remote = Some(addr.clone());
        s.state = State::Established;
        s.so_state = SoState::Connected;
        Ok(())
    }

    pub(super) fn unix_target(&self, addr: &SockAddr) -> Result<Id, Errno> {
        let SockAddr::Unix(path) = addr else {
            return Err(Errno::EINVAL);
        };
        match self.paths.get(path) {
            None => Err(Errno::ENOENT),
            Some(None) => Err(Errno::ECONNREFUSED),
            Some(Some(id)) => Ok(*id),
        }
    }

    fn connect_unix_stream(&mut self, id: Id, addr: &SockAddr) -> Result<(), Errno> {
        let me = self.sock(id);
        if me.so_state == SoState::Connected {
            return Err(Errno::EISCONN);
        }
        // unix_stream_connect: a listening socket cannot connect.
        if matches!(me.state, State::Listen { .. }) {
            return Err(Errno::EINVAL);
        }
        let target = self.unix_target(addr)?;
        let t = self.sock(target);
        // unix_find_bsd: a socket of another type at that path.
        if t.ty != me.ty {
            return Err(Errno::EPROTOTYPE);
        }
        if !matches!(t.state, State::Listen { .. }) || t.shut_rd {
            return Err(Errno::ECONNREFUSED);
        }
        if self.accept_queue_full(target) {
            return Err(Errno::EAGAIN);
        }
        self.sock_mut(id).so_state = SoState::Connected;
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        self.establish(id, target, dst);
        self.sock_mut(id).remote = Some(addr.clone());
        Ok(())
    }

    fn connect_unix_dgram(&mut self, id: Id, addr: &SockAddr) -> Result<(), Errno> {
        let target = self.unix_target(addr)?;
        if self.sock(target).ty != SockType::Dgram {
            return Err(Errno::EPROTOTYPE);
        }
        let s = self.sock_mut(id);
        s.peer = Some(target);
        s.remote = Some(addr.clone());
        s.state = State::Established;
        s.so_state = SoState::Connected;
        Ok(())
    }
}
