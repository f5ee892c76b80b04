//! Addresses and ports, and the listening side: bind (with Linux's port-conflict and TIME_WAIT
//! rules), autobind to an ephemeral port, listen and accept.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::Fd;
use crate::sim::Id;
use crate::sim::decide::Choice;
use crate::sim::state::*;
use crate::sim::{Proto, Sim};

use super::{Chosen, proto_of, unspecified_ip};

impl Sim {
    /// The sockets bound to a port whose address overlaps `ip` (same address, or a wildcard).
    /// A range lookup: the cost depends on the sockets bound to this one port, not on how many
    /// sockets the simulation holds.
    pub(super) fn bound_overlapping(
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

    /// Whether binding `fd` to `addr` meets only sockets that set SO_REUSEPORT as `fd` did:
    /// Linux would let them share the port and spread connections across the group, which the
    /// simulator does not (its bind says EADDRINUSE). A harness's question, not a call.
    pub fn shares_port(&self, fd: Fd, addr: &SockAddr) -> bool {
        let (Ok(id), Some(sa)) = (self.sock_id(fd), addr.inet()) else {
            return false;
        };
        let me = self.sock(id);
        let mut holders = self
            .bound_overlapping(proto_of(me), sa.ip(), sa.port())
            .peekable();
        me.opts.reuse_port
            && holders.peek().is_some()
            && holders.all(|other| self.sock(other).opts.reuse_port)
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

    pub(super) fn register_port(&mut self, id: Id, ip: IpAddr, port: u16) {
        let proto = proto_of(self.sock(id));
        self.ports.entry((proto, port, ip)).or_default().push(id);
        self.sock_mut(id).local = Some(SockAddr::Inet(SocketAddr::new(ip, port)));
    }

    pub(super) fn unregister_port(&mut self, id: Id) {
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
    pub(super) fn autobind(&mut self, id: Id, ip: IpAddr) -> Result<(), Errno> {
        if self.sock(id).local.is_some() {
            return Ok(());
        }
        let me = self.sock(id).clone();
        let port = self.ephemeral_port(&me, ip)?;
        self.register_port(id, ip, port);
        Ok(())
    }

    pub(in crate::sim) fn sim_bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
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

    pub(in crate::sim) fn sim_listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
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

    pub(in crate::sim) fn sim_accept(&mut self, fd: Fd) -> Chosen<(Fd, SockAddr)> {
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
        if self.decide.enfile() {
            return (Err(Errno::ENFILE), Some(Choice::Enfile));
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

    pub(super) fn accept_queue_full(&self, listener: Id) -> bool {
        match &self.sock(listener).state {
            // Linux admits backlog + 1 connections (sk_acceptq_is_full uses '>').
            State::Listen { backlog, queue } => queue.len() > *backlog as usize,
            _ => true,
        }
    }

    /// Resets every connection waiting in a listener's accept queue, as closing it does.
    pub(super) fn stop_listening(&mut self, id: Id) {
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
}
