//! What each socket call does in the simulator. Every rule here mirrors a Linux code path
//! (named in the comments) and was checked against the kernel by the differential tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::errno::Errno;

use super::Id;
use super::decide::Choice;
use super::skb;
use super::state::*;
use super::{Proto, Sim, Timer};
use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, Fd, Shutdown, SockOpt};

type Chosen<T> = (Result<T, Errno>, Option<Choice>);

fn proto_of(s: &Sock) -> Proto {
    if s.ty == SockType::Stream {
        Proto::Tcp
    } else {
        Proto::Udp
    }
}

fn unspecified_ip(family: Family) -> IpAddr {
    match family {
        Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

impl Sim {
    pub(super) fn sim_socket(&mut self, family: Family, ty: SockType) -> Result<Fd, Errno> {
        match (family, ty) {
            (_, SockType::Raw) => return Err(Errno::ESOCKTNOSUPPORT),
            (Family::Inet | Family::Inet6, SockType::SeqPacket) => {
                return Err(Errno::EPROTONOSUPPORT);
            }
            _ => {}
        }
        self.check_fds_available(1)?;
        let id = self.socks.insert(Sock::new(family, ty));
        self.open_fd(Object::Sock(id))
    }

    pub(super) fn sim_socketpair(&mut self, ty: SockType) -> Result<(Fd, Fd), Errno> {
        if ty == SockType::Raw {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        self.check_fds_available(2)?;
        let a = self.socks.insert(Sock::new(Family::Unix, ty));
        let b = self.socks.insert(Sock::new(Family::Unix, ty));
        for (me, other) in [(a, b), (b, a)] {
            let s = self.sock_mut(me);
            s.peer = Some(other);
            s.state = State::Established;
            s.so_state = SoState::Connected;
            s.remote = Some(SockAddr::UnixUnnamed);
        }
        Ok((
            self.open_fd(Object::Sock(a))?,
            self.open_fd(Object::Sock(b))?,
        ))
    }

    pub(super) fn sim_pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        self.check_fds_available(2)?;
        let id = self.pipes.insert(Pipe {
            readers: 1,
            writers: 1,
            ..Pipe::default()
        });
        Ok((
            self.open_fd(Object::PipeRead(id))?,
            self.open_fd(Object::PipeWrite(id))?,
        ))
    }

    pub(super) fn sim_dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno> {
        let file = self.fds.get(fd.0).ok_or(Errno::EBADF)?;
        if min < 0 || usize::try_from(min).is_ok_and(|m| m >= self.config.fd_limit) {
            return Err(Errno::EINVAL);
        }
        self.check_fds_available(1)?;
        self.files.get_mut(file).expect("live file").refs += 1;
        Ok(Fd(self.fds.install_at_least(file, min)))
    }

    pub(super) fn sim_dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        let file = self.fds.get(fd.0).ok_or(Errno::EBADF)?;
        self.check_fds_available(1)?;
        self.files.get_mut(file).expect("live file").refs += 1;
        Ok(Fd(self.fds.install(file)))
    }

    // ----- addresses and ports -------------------------------------------------------------

    /// The sockets bound to a port whose address overlaps `ip` (same address, or a wildcard).
    /// A range lookup: the cost depends on the sockets bound to this one port, not on how many
    /// sockets the simulation holds.
    fn bound_overlapping(
        &self,
        proto: Proto,
        ip: IpAddr,
        port: u16,
    ) -> impl Iterator<Item = Id> + '_ {
        self.ports
            .range((proto, port, IpAddr::V4(Ipv4Addr::UNSPECIFIED))..)
            .take_while(move |((p, pt, _), _)| *p == proto && *pt == port)
            .filter(move |((_, _, bound), _)| {
                *bound == ip
                    || (bound.is_ipv6() == ip.is_ipv6()
                        && (bound.is_unspecified() || ip.is_unspecified()))
            })
            .flat_map(|(_, ids)| ids.iter().copied())
    }

    fn port_conflicts(&self, me: &Sock, ip: IpAddr, port: u16) -> bool {
        let proto = proto_of(me);
        self.bound_overlapping(proto, ip, port).any(|other| {
            let o = self.sock(other);
            let both_reuse = me.opts.reuse_addr && o.opts.reuse_addr;
            !both_reuse || (proto == Proto::Tcp && matches!(o.state, State::Listen { .. }))
        })
    }

    /// Whether a TIME_WAIT endpoint blocks binding `ip:port`. As for live sockets, SO_REUSEADDR
    /// lifts the conflict only when both sides set it (the closed socket's flag is remembered).
    fn time_wait_conflicts(&self, me: &Sock, ip: IpAddr, port: u16) -> bool {
        me.ty == SockType::Stream
            && self
                .time_wait
                .range((port, IpAddr::V4(Ipv4Addr::UNSPECIFIED))..)
                .take_while(|((tport, _), _)| *tport == port)
                .any(|((_, tip), (end, reuse))| {
                    let overlaps = *tip == ip || tip.is_unspecified() || ip.is_unspecified();
                    *end > self.now && overlaps && !(me.opts.reuse_addr && *reuse)
                })
    }

    /// Picks a free ephemeral port, as Linux's port allocator would (bounded by the range size).
    fn ephemeral_port(&mut self, me: &Sock, ip: IpAddr) -> Result<u16, Errno> {
        let (first, last) = (
            *self.config.ephemeral_ports.start(),
            *self.config.ephemeral_ports.end(),
        );
        let span = u32::from(last.saturating_sub(first)) + 1;
        for _ in 0..span {
            let port = self.next_port.clamp(first, last);
            self.next_port = if port >= last { first } else { port + 1 };
            if !self.port_conflicts(me, ip, port) && !self.time_wait_conflicts(me, ip, port) {
                return Ok(port);
            }
        }
        Err(Errno::EADDRNOTAVAIL)
    }

    fn register_port(&mut self, id: Id, ip: IpAddr, port: u16) {
        let proto = proto_of(self.sock(id));
        self.ports.entry((proto, port, ip)).or_default().push(id);
        self.sock_mut(id).local = Some(SockAddr::Inet(SocketAddr::new(ip, port)));
    }

    fn unregister_port(&mut self, id: Id) {
        let s = self.sock(id);
        let Some(SockAddr::Inet(a)) = s.local else {
            return;
        };
        let key = (proto_of(s), a.port(), a.ip());
        if let Some(ids) = self.ports.get_mut(&key) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.ports.remove(&key);
            }
        }
    }

    /// Binds an unbound IP socket to an ephemeral port on `ip` (Linux's autobind).
    fn autobind(&mut self, id: Id, ip: IpAddr) -> Result<(), Errno> {
        if self.sock(id).local.is_some() {
            return Ok(());
        }
        let me = self.sock(id).clone();
        let port = self.ephemeral_port(&me, ip)?;
        self.register_port(id, ip, port);
        Ok(())
    }

    pub(super) fn sim_bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
        let id = self.sock_id(fd)?;
        let me = self.sock(id).clone();
        if me.local.is_some() {
            return Err(Errno::EINVAL);
        }
        match addr {
            SockAddr::Unix(path) => {
                if me.family != Family::Unix {
                    return Err(Errno::EAFNOSUPPORT);
                }
                if self.paths.contains_key(path) {
                    return Err(Errno::EADDRINUSE);
                }
                self.paths.insert(path.clone(), Some(id));
                self.sock_mut(id).local = Some(addr.clone());
                Ok(())
            }
            SockAddr::UnixUnnamed => Err(Errno::EINVAL),
            SockAddr::Inet(sa) => {
                if addr.family() != me.family {
                    return Err(if me.family == Family::Unix {
                        Errno::EINVAL
                    } else {
                        Errno::EAFNOSUPPORT
                    });
                }
                if !self.is_local(sa.ip()) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                if sa.port() == 0 {
                    return self.autobind(id, sa.ip());
                }
                if sa.port() < 1024 && !self.config.privileged {
                    return Err(Errno::EACCES);
                }
                let tw = self.time_wait_conflicts(&me, sa.ip(), sa.port());
                if tw || self.port_conflicts(&me, sa.ip(), sa.port()) {
                    return Err(Errno::EADDRINUSE);
                }
                self.register_port(id, sa.ip(), sa.port());
                Ok(())
            }
        }
    }

    pub(super) fn sim_listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
        let id = self.sock_id(fd)?;
        let me = self.sock(id).clone();
        if !me.is_connection() {
            return Err(Errno::EOPNOTSUPP);
        }
        let backlog = backlog.min(SOMAXCONN);
        match me.state {
            State::Listen { .. } => {
                if let State::Listen { backlog: b, .. } = &mut self.sock_mut(id).state {
                    *b = backlog;
                }
                return Ok(());
            }
            State::Closed if me.so_state == SoState::Unconnected => {}
            _ => return Err(Errno::EINVAL),
        }
        if me.family == Family::Unix {
            if me.local.is_none() {
                return Err(Errno::EINVAL);
            }
        } else {
            match me.local.as_ref().and_then(SockAddr::inet) {
                None => self.autobind(id, unspecified_ip(me.family))?,
                Some(a) => {
                    let listening_elsewhere = self
                        .bound_overlapping(Proto::Tcp, a.ip(), a.port())
                        .into_iter()
                        .any(|o| o != id && matches!(self.sock(o).state, State::Listen { .. }));
                    if listening_elsewhere {
                        return Err(Errno::EADDRINUSE);
                    }
                }
            }
        }
        self.sock_mut(id).state = State::Listen {
            backlog,
            queue: Default::default(),
        };
        Ok(())
    }

    pub(super) fn sim_accept(&mut self, fd: Fd) -> Chosen<(Fd, SockAddr)> {
        let id = match self.sock_id(fd) {
            Ok(id) => id,
            Err(e) => return (Err(e), None),
        };
        let s = self.sock(id);
        if !s.is_connection() {
            return (Err(Errno::EOPNOTSUPP), None);
        }
        let State::Listen { queue, .. } = &s.state else {
            return (Err(Errno::EINVAL), None);
        };
        let Some(&child) = queue.front() else {
            return (Err(Errno::EAGAIN), None);
        };
        if self.decide.emfile() {
            return (Err(Errno::EMFILE), Some(Choice::Emfile));
        }
        if let Err(e) = self.check_fds_available(1) {
            return (Err(e), None);
        }
        if let State::Listen { queue, .. } = &mut self.sock_mut(id).state {
            queue.pop_front();
        }
        let peer = self
            .sock(child)
            .remote
            .clone()
            .unwrap_or(SockAddr::UnixUnnamed);
        (self.open_fd(Object::Sock(child)).map(|fd| (fd, peer)), None)
    }

    // ----- connecting ------------------------------------------------------------------------

    pub(super) fn sim_connect(&mut self, fd: Fd, addr: &SockAddr) -> Chosen<()> {
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
        match listener {
            _ if lost => {}
            None => {
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

    pub(super) fn syn_retry(&mut self, id: Id, of_attempt: u64) {
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

    pub(super) fn syn_timeout(&mut self, id: Id, of_attempt: u64) {
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

    fn accept_queue_full(&self, listener: Id) -> bool {
        match &self.sock(listener).state {
            // Linux admits backlog + 1 connections (sk_acceptq_is_full uses '>').
            State::Listen { backlog, queue } => queue.len() > *backlog as usize,
            _ => true,
        }
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

    fn unix_target(&self, addr: &SockAddr) -> Result<Id, Errno> {
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

    // ----- receiving -------------------------------------------------------------------------

    pub(super) fn sim_recv(
        &mut self,
        fd: Fd,
        buf: &mut [u8],
        from: Option<&mut Option<SockAddr>>,
    ) -> Chosen<usize> {
        let obj = match self.file(fd) {
            Ok(o) => o,
            Err(e) => return (Err(e), None),
        };
        match obj {
            // recvfrom is a socket call: on anything else, ENOTSOCK (read(2) differs).
            Object::PipeRead(_) | Object::PipeWrite(_) | Object::Epoll(_) if from.is_some() => {
                (Err(Errno::ENOTSOCK), None)
            }
            Object::PipeRead(p) => self.pipe_read(p, buf),
            Object::PipeWrite(_) => (Err(Errno::EBADF), None),
            Object::Epoll(_) => (Err(Errno::EINVAL), None),
            Object::Sock(id) => {
                let s = self.sock(id);
                if s.ty == SockType::Stream {
                    self.stream_recv(id, buf)
                } else {
                    (self.message_recv(id, buf, from), None)
                }
            }
        }
    }

    fn stream_recv(&mut self, id: Id, buf: &mut [u8]) -> Chosen<usize> {
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

    /// Datagrams and records: one message per call, truncated to the buffer.
    fn message_recv(
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
    fn uncharge(&mut self, writer: Option<Id>, truesize: usize) {
        let Some(w) = writer.filter(|w| self.socks.get(*w).is_some()) else {
            return;
        };
        let s = self.sock_mut(w);
        s.wmem_bytes = s.wmem_bytes.saturating_sub(truesize);
        self.wake_writer_if_room(Some(w), false);
    }

    /// Reading made room: wake the writer, but only when it could not write before (Linux's
    /// SOCK_NOSPACE and pipe `was_full` rules), so an edge-triggered writer hears of the change
    /// and not of every read.
    fn wake_writer_if_room(&mut self, writer: Option<Id>, was_writable: bool) {
        let live = |w: &Id| self.socks.get(*w).is_some() && self.stream_writable(*w);
        if let Some(w) = writer.filter(|w| !was_writable && live(w)) {
            self.wake_sock(w, Events::OUT);
        }
    }

    fn pipe_read(&mut self, p: Id, buf: &mut [u8]) -> Chosen<usize> {
        let pipe = self.pipes.get_mut(p).expect("live pipe");
        if buf.is_empty() {
            return (Ok(0), None);
        }
        if pipe.buf.is_empty() {
            return (
                if pipe.writers == 0 {
                    Ok(0)
                } else {
                    Err(Errno::EAGAIN)
                },
                None,
            );
        }
        let avail = pipe.buf.len().min(buf.len());
        let (n, c) = self.decide.recv_len(avail);
        let pipe = self.pipes.get_mut(p).expect("live pipe");
        let was_full = pipe.buf.len() >= PIPE_CAPACITY_BYTES;
        copy_out(&mut pipe.buf, &mut buf[..n]);
        if was_full {
            self.wake(Object::PipeWrite(p), Events::OUT);
        }
        (Ok(n), c)
    }

    // ----- sending ---------------------------------------------------------------------------

    pub(super) fn sim_send(&mut self, fd: Fd, buf: &[u8], to: Option<&SockAddr>) -> Chosen<usize> {
        let obj = match self.file(fd) {
            Ok(o) => o,
            Err(e) => return (Err(e), None),
        };
        match obj {
            // sendto is a socket call: on anything else, ENOTSOCK (write(2) differs).
            Object::PipeRead(_) | Object::PipeWrite(_) | Object::Epoll(_) if to.is_some() => {
                (Err(Errno::ENOTSOCK), None)
            }
            Object::PipeWrite(p) => self.pipe_write(p, buf),
            Object::PipeRead(_) => (Err(Errno::EBADF), None),
            Object::Epoll(_) => (Err(Errno::EINVAL), None),
            Object::Sock(id) => {
                let s = self.sock(id);
                match (s.ty, s.family) {
                    (SockType::Stream, Family::Unix) if to.is_some() => {
                        let connected = s.so_state == SoState::Connected;
                        (
                            Err(if connected {
                                Errno::EISCONN
                            } else {
                                Errno::EOPNOTSUPP
                            }),
                            None,
                        )
                    }
                    (SockType::Stream, _) => self.stream_send(id, &[buf]),
                    (SockType::SeqPacket, _) => (self.seqpacket_send(id, buf), None),
                    (_, Family::Unix) => (self.unix_dgram_send(id, buf, to), None),
                    _ => (self.udp_send(id, buf, to), None),
                }
            }
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
    fn stream_send(&mut self, id: Id, bufs: &[&[u8]]) -> Chosen<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let tcp = self.sock(id).is_tcp();
        let choice = (tcp && self.adversary_resets(id)).then_some(Choice::Reset);
        let s = self.sock_mut(id);
        if !tcp && s.so_state != SoState::Connected {
            return (Err(Errno::ENOTCONN), choice);
        }
        // tcp_sendmsg → sk_stream_wait_connect / do_error: the pending error first, else EPIPE.
        if tcp && !matches!(s.state, State::Established) {
            let r = match s.take_error() {
                Some(e) => Err(e),
                None if matches!(s.state, State::SynSent { .. }) => Err(Errno::EAGAIN),
                None => Err(Errno::EPIPE),
            };
            return (r, choice);
        }
        if s.shut_wr || (tcp && s.error.is_some()) {
            let e = if tcp {
                s.take_error().unwrap_or(Errno::EPIPE)
            } else {
                Errno::EPIPE
            };
            return (Err(e), choice);
        }
        let peer = s
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
            self.tcp_reset(peer);
            self.tcp_reset(id);
            return (Ok(n), c.or(choice));
        }
        if tcp {
            // Our data segment carries the ACK we owed, if any.
            self.send_owed_ack(id);
        }
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
        self.wake_sock(peer, Events::IN);
        (Ok(n), c.or(choice))
    }

    pub(super) fn sim_send_vectored(&mut self, fd: Fd, bufs: &[&[u8]]) -> Chosen<usize> {
        if bufs.len() > IOV_MAX {
            return (Err(Errno::EINVAL), None);
        }
        match self.file(fd) {
            Ok(Object::Sock(id)) if self.sock(id).ty == SockType::Stream => {
                self.stream_send(id, bufs)
            }
            // Other files take the gathered bytes as one write (rare here; one copy is fine).
            Ok(_) => self.sim_send(fd, &bufs.concat(), None),
            Err(e) => (Err(e), None),
        }
    }

    fn seqpacket_send(&mut self, id: Id, buf: &[u8]) -> Result<usize, Errno> {
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

    fn unix_dgram_send(
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

    fn udp_send(&mut self, id: Id, buf: &[u8], to: Option<&SockAddr>) -> Result<usize, Errno> {
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
        self.autobind(id, unspecified_ip(family))?;
        let src = self
            .sock(id)
            .local
            .clone()
            .and_then(|l| l.inet())
            .expect("autobound");
        let src = SocketAddr::new(
            if src.ip().is_unspecified() {
                dst.ip()
            } else {
                src.ip()
            },
            src.port(),
        );
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

    fn pipe_write(&mut self, p: Id, buf: &[u8]) -> Chosen<usize> {
        let pipe = self.pipes.get(p).expect("live pipe");
        if pipe.readers == 0 {
            return (Err(Errno::EPIPE), None);
        }
        if buf.is_empty() {
            return (Ok(0), None);
        }
        let room = PIPE_CAPACITY_BYTES - pipe.buf.len();
        // Writes of at most PIPE_BUF bytes are atomic: all or nothing.
        if room == 0 || (buf.len() <= PIPE_BUF_BYTES && room < buf.len()) {
            return (Err(Errno::EAGAIN), None);
        }
        let (n, c) = if buf.len() <= PIPE_BUF_BYTES {
            (buf.len(), None)
        } else {
            self.decide.send_len(buf.len().min(room))
        };
        self.pipes
            .get_mut(p)
            .expect("live pipe")
            .buf
            .extend(&buf[..n]);
        self.wake(Object::PipeRead(p), Events::IN);
        (Ok(n), c)
    }

    // ----- shutdown and close ----------------------------------------------------------------

    pub(super) fn sim_shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
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
    pub(super) fn send_owed_ack(&mut self, id: Id) {
        let Some(s) = self.socks.get_mut(id) else {
            return;
        };
        if !std::mem::take(&mut s.ack_owed) {
            return;
        }
        if let Some(p) = s.peer.filter(|p| self.socks.get(*p).is_some()) {
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

    /// Resets every connection waiting in a listener's accept queue, as closing it does.
    fn stop_listening(&mut self, id: Id) {
        if !matches!(self.sock(id).state, State::Listen { .. }) {
            return;
        }
        let State::Listen { queue, .. } =
            std::mem::replace(&mut self.sock_mut(id).state, State::Closed)
        else {
            unreachable!("checked above");
        };
        for child in queue {
            self.release_sock(child, true);
        }
    }

    pub(super) fn sim_close(&mut self, fd: Fd) -> Result<(), Errno> {
        let file_id = self.fds.remove(fd.0).ok_or(Errno::EBADF)?;
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
    fn release_sock(&mut self, id: Id, force_reset: bool) {
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
            // the differential test; tests/it/differential.proptest-regressions keeps the case).
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

    // ----- names and options -----------------------------------------------------------------

    pub(super) fn sim_getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let s = self.sock(self.sock_id(fd)?);
        Ok(s.local
            .clone()
            .unwrap_or_else(|| SockAddr::unspecified(s.family)))
    }

    pub(super) fn sim_getpeername(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let s = self.sock(self.sock_id(fd)?);
        let connected = match s.family {
            Family::Unix => s.so_state == SoState::Connected,
            _ => matches!(s.state, State::Established),
        };
        if connected {
            s.remote.clone().ok_or(Errno::ENOTCONN)
        } else {
            Err(Errno::ENOTCONN)
        }
    }

    pub(super) fn sim_setsockopt(&mut self, fd: Fd, opt: SockOpt, value: i32) -> Result<(), Errno> {
        let id = self.sock_id(fd)?;
        let s = self.sock_mut(id);
        let on = value != 0;
        // Linux doubles buffer sizes (to allow for bookkeeping) within [min, 2 × rmem_max].
        let doubled = |min: i32| {
            if value < 0 {
                SOCKBUF_MAX_BYTES
            } else {
                value.min(SOCKBUF_MAX_BYTES / 2).saturating_mul(2).max(min)
            }
        };
        match opt {
            SockOpt::ReuseAddr => s.opts.reuse_addr = on,
            SockOpt::KeepAlive => s.opts.keep_alive = on,
            SockOpt::Broadcast => s.opts.broadcast = on,
            SockOpt::RcvBuf => s.opts.rcvbuf_bytes = doubled(RCVBUF_MIN_BYTES),
            SockOpt::SndBuf => s.opts.sndbuf_bytes = doubled(SNDBUF_MIN_BYTES),
            SockOpt::Linger => s.opts.linger_secs = value.max(-1),
            SockOpt::TcpNoDelay if s.is_tcp() => s.opts.no_delay = on,
            SockOpt::TcpNoDelay if s.family == Family::Unix => return Err(Errno::EOPNOTSUPP),
            SockOpt::TcpNoDelay | SockOpt::Error | SockOpt::Type => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }

    pub(super) fn sim_getsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<i32, Errno> {
        let id = self.sock_id(fd)?;
        let s = self.sock_mut(id);
        Ok(match opt {
            SockOpt::ReuseAddr => i32::from(s.opts.reuse_addr),
            SockOpt::KeepAlive => i32::from(s.opts.keep_alive),
            SockOpt::Broadcast => i32::from(s.opts.broadcast),
            SockOpt::RcvBuf => s.opts.rcvbuf_bytes,
            SockOpt::SndBuf => s.opts.sndbuf_bytes,
            SockOpt::Linger => s.opts.linger_secs,
            SockOpt::TcpNoDelay if s.is_tcp() => i32::from(s.opts.no_delay),
            SockOpt::TcpNoDelay if s.family == Family::Unix => return Err(Errno::EOPNOTSUPP),
            SockOpt::TcpNoDelay => return Err(Errno::ENOPROTOOPT),
            SockOpt::Error => s.take_error().map_or(0, |e| e as i32),
            SockOpt::Type => match s.ty {
                SockType::Stream => 1,
                SockType::Dgram => 2,
                SockType::Raw => 3,
                SockType::SeqPacket => 5,
            },
        })
    }
}

/// Consumes `n` bytes from a queue of write sizes; returns whether a write was consumed whole.
/// Moves the first `out.len()` bytes of `rx` into `out`, two slice copies at most.
fn copy_out(rx: &mut std::collections::VecDeque<u8>, out: &mut [u8]) {
    let n = out.len();
    let (front, back) = rx.as_slices();
    let first = n.min(front.len());
    out[..first].copy_from_slice(&front[..first]);
    out[first..].copy_from_slice(&back[..n - first]);
    rx.drain(..n);
}

fn consume_chunks(chunks: &mut std::collections::VecDeque<Chunk>, mut n: usize) -> usize {
    let mut freed = 0;
    while n > 0 {
        let Some(front) = chunks.front_mut() else {
            break;
        };
        if front.bytes <= n {
            n -= front.bytes;
            freed += front.truesize;
            chunks.pop_front();
        } else {
            front.bytes -= n;
            n = 0;
        }
    }
    freed
}
