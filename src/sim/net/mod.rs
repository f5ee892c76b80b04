//! What each socket call does in the simulator. Every rule here mirrors a Linux code path
//! (named in the comments) and was checked against the kernel by the differential tests.
//!
//! This file holds the calls every kind of descriptor shares (socket creation, dup, receive and
//! send dispatch, names and options); each submodule models one thing: [`ports`] (bind, listen,
//! accept), [`connect`], [`stream`], [`datagram`], [`pipe`] and [`close`].

mod close;
mod connect;
mod datagram;
mod eventfd;
mod pipe;
mod ports;
mod stream;
mod timerfd;
mod wire;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::errno::Errno;

use super::decide::Choice;
use super::state::*;
use super::{Proto, Sim};
use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Fd, SockOpt};

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

    pub(super) fn sim_dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno> {
        let file = self.fds().get(fd.0).ok_or(Errno::EBADF)?;
        if min < 0 || usize::try_from(min).is_ok_and(|m| m >= self.config.fd_limit) {
            return Err(Errno::EINVAL);
        }
        self.check_fds_available(1)?;
        self.files.get_mut(file).expect("live file").refs += 1;
        self.install_dup(file, Some(min))
    }

    pub(super) fn sim_dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        let file = self.fds().get(fd.0).ok_or(Errno::EBADF)?;
        self.check_fds_available(1)?;
        self.files.get_mut(file).expect("live file").refs += 1;
        self.install_dup(file, None)
    }

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
            Object::PipeRead(_)
            | Object::PipeWrite(_)
            | Object::Epoll(_)
            | Object::EventFd(_)
            | Object::TimerFd(_)
                if from.is_some() =>
            {
                (Err(Errno::ENOTSOCK), None)
            }
            Object::PipeRead(p) => self.pipe_read(p, buf),
            Object::EventFd(c) => self.eventfd_read(c, buf),
            Object::TimerFd(t) => self.timerfd_read(t, buf),
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

    pub(super) fn sim_send(&mut self, fd: Fd, buf: &[u8], to: Option<&SockAddr>) -> Chosen<usize> {
        let obj = match self.file(fd) {
            Ok(o) => o,
            Err(e) => return (Err(e), None),
        };
        match obj {
            // sendto is a socket call: on anything else, ENOTSOCK (write(2) differs).
            Object::PipeRead(_)
            | Object::PipeWrite(_)
            | Object::Epoll(_)
            | Object::EventFd(_)
            | Object::TimerFd(_)
                if to.is_some() =>
            {
                (Err(Errno::ENOTSOCK), None)
            }
            Object::PipeWrite(p) => self.pipe_write(p, buf),
            Object::EventFd(c) => self.eventfd_write(c, buf),
            Object::PipeRead(_) => (Err(Errno::EBADF), None),
            // Neither has a write operation.
            Object::Epoll(_) | Object::TimerFd(_) => (Err(Errno::EINVAL), None),
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

    pub(super) fn sim_getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let s = self.sock(self.sock_id(fd)?);
        Ok(s.local
            .clone()
            .unwrap_or_else(|| SockAddr::unspecified(s.family)))
    }

    /// FIONREAD as Linux answers it: tcp_inq for TCP, the first datagram's length for UDP
    /// (first_packet_length), unix_inq_len for AF_UNIX (the whole queue of a stream or a
    /// seqpacket socket, the first skb of a datagram one), EINVAL for a listening socket of either, the pipe's contents.
    pub(super) fn sim_bytes_waiting(&mut self, fd: Fd) -> Result<usize, Errno> {
        let id = match self.file(fd)? {
            Object::Sock(id) => id,
            Object::PipeRead(p) => return Ok(self.pipes.get(p).expect("live pipe").buf.len()),
            Object::PipeWrite(_) => return Ok(0),
            // FIONREAD is for sockets, pipes and regular files.
            Object::Epoll(_) | Object::EventFd(_) | Object::TimerFd(_) => {
                return Err(Errno::ENOTTY);
            }
        };
        let s = self.sock(id);
        if matches!(s.state, State::Listen { .. }) {
            return Err(Errno::EINVAL);
        }
        Ok(match s.ty {
            SockType::Stream => s.rx.len(),
            // unix_inq_len sums a seqpacket socket's queue too, as it does a stream's.
            SockType::SeqPacket => s.msgs_bytes,
            _ => s.msgs.front().map_or(0, |m| m.data.len()),
        })
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
            // sk_setsockopt refuses it for sockets that are not inet ones (Linux 6.5 on).
            SockOpt::ReusePort if s.family == Family::Unix => return Err(Errno::EOPNOTSUPP),
            SockOpt::ReusePort => s.opts.reuse_port = on,
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
            SockOpt::ReusePort => i32::from(s.opts.reuse_port),
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
