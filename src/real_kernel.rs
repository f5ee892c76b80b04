//! The real transport: Linux sockets through `nix`.
//!
//! The kernel here is the oracle the simulator is tested against. This file only translates:
//! selectlab's types to `nix`'s and back. It owns every descriptor it opens (as `OwnedFd`), so a
//! descriptor it did not open, or already closed, is `EBADF` without reaching the kernel.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::select::FdSet;
use nix::sys::socket::{
    self as ns, AddressFamily, Backlog, MsgFlags, SockFlag, SockProtocol, SockaddrIn, SockaddrIn6,
    SockaddrLike, SockaddrStorage, UnixAddr, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use rustix::event::PollFlags;

use crate::addr::{Family, SockAddr, SockType};
use crate::error::{Gai, HERROR_HOST_NOT_FOUND, SockError};
use crate::kernel::{
    CtlOp, EP_MAX_EVENTS, Events, FD_SETSIZE, Fd, FdSets, IOV_MAX, Kernel, Mode, PollFd, Shutdown,
    SockOpt, TimerClock, TimerSetting, Timespec,
};

/// The Linux kernel, reached through `nix`.
#[derive(Debug)]
pub struct RealKernel {
    fds: BTreeMap<i32, OwnedFd>,
    started: Instant,
}

impl Default for RealKernel {
    fn default() -> Self {
        RealKernel::new()
    }
}

impl RealKernel {
    /// A descriptor for this process's standard input (a dup of fd 0, left in its blocking
    /// mode: read it only when poll says it is readable, and a read never blocks).
    pub fn stdin(&mut self) -> Result<Fd, Errno> {
        let owned = nix::unistd::dup(std::io::stdin().as_fd())?;
        Ok(self.adopt(owned))
    }

    /// A kernel handle with no descriptors open yet.
    ///
    /// It blocks SIGPIPE in the calling thread, so that a write to a pipe whose reader is gone
    /// returns EPIPE instead of killing the process (sockets use MSG_NOSIGNAL; pipes have no
    /// such flag). Rust's runtime ignores SIGPIPE before `main`, but a fuzzer's C++ `main` does
    /// not; blocking is the signal-safe way that needs no `unsafe`.
    pub fn new() -> RealKernel {
        let mut pipe = nix::sys::signal::SigSet::empty();
        pipe.add(nix::sys::signal::Signal::SIGPIPE);
        // Cannot fail for a valid `how` and set.
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&pipe),
            None,
        );
        RealKernel {
            fds: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    fn owned(&self, fd: Fd) -> Result<&OwnedFd, Errno> {
        self.fds.get(&fd.0).ok_or(Errno::EBADF)
    }

    fn adopt(&mut self, owned: OwnedFd) -> Fd {
        let raw = owned.as_raw_fd();
        self.fds.insert(raw, owned);
        Fd(raw)
    }

    fn raw(&self, fd: Fd) -> Result<i32, Errno> {
        self.owned(fd).map(|o| o.as_raw_fd())
    }

    fn is_socket(&self, fd: Fd) -> Result<bool, Errno> {
        Ok(ns::getsockopt(self.owned(fd)?, sockopt::SockType).is_ok())
    }
}

const NONBLOCK_CLOEXEC: SockFlag = SockFlag::SOCK_NONBLOCK.union(SockFlag::SOCK_CLOEXEC);

fn nix_family(f: Family) -> AddressFamily {
    match f {
        Family::Inet => AddressFamily::Inet,
        Family::Inet6 => AddressFamily::Inet6,
        Family::Unix => AddressFamily::Unix,
    }
}

fn nix_type(t: SockType) -> ns::SockType {
    match t {
        SockType::Stream => ns::SockType::Stream,
        SockType::Dgram => ns::SockType::Datagram,
        SockType::SeqPacket => ns::SockType::SeqPacket,
        SockType::Raw => ns::SockType::Raw,
    }
}

/// An address in the form a syscall takes.
enum NixAddr {
    V4(SockaddrIn),
    V6(SockaddrIn6),
    Unix(UnixAddr),
}

impl NixAddr {
    fn new(addr: &SockAddr) -> Result<NixAddr, Errno> {
        Ok(match addr {
            SockAddr::Inet(SocketAddr::V4(a)) => NixAddr::V4(SockaddrIn::from(*a)),
            SockAddr::Inet(SocketAddr::V6(a)) => NixAddr::V6(SockaddrIn6::from(*a)),
            SockAddr::Unix(p) => NixAddr::Unix(UnixAddr::new(p.as_path())?),
            SockAddr::UnixUnnamed => return Err(Errno::EINVAL),
        })
    }

    fn as_like(&self) -> &dyn SockaddrLike {
        match self {
            NixAddr::V4(a) => a,
            NixAddr::V6(a) => a,
            NixAddr::Unix(a) => a,
        }
    }
}

/// Converts an address the kernel returned.
fn from_storage(s: &SockaddrStorage) -> SockAddr {
    if let Some(a) = s.as_sockaddr_in() {
        return SockAddr::Inet(SocketAddr::V4(SocketAddrV4::from(*a)));
    }
    if let Some(a) = s.as_sockaddr_in6() {
        return SockAddr::Inet(SocketAddr::V6(SocketAddrV6::from(*a)));
    }
    match s.as_unix_addr().and_then(|u| u.path()) {
        Some(p) => SockAddr::Unix(p.to_path_buf()),
        None => SockAddr::UnixUnnamed,
    }
}

/// Linux's poll bits for selectlab's events (epoll's share their values).
pub(crate) fn to_poll_flags(e: Events) -> PollFlags {
    let mut f = PollFlags::empty();
    for (ours, theirs) in POLL_FLAG_PAIRS {
        if e.contains(ours) {
            f |= theirs;
        }
    }
    f
}

/// selectlab's events for Linux's poll bits.
pub(crate) fn from_poll_flags(f: PollFlags) -> Events {
    let mut e = Events::NONE;
    for (ours, theirs) in POLL_FLAG_PAIRS {
        if f.contains(theirs) {
            e |= ours;
        }
    }
    e
}

const POLL_FLAG_PAIRS: [(Events, PollFlags); 7] = [
    (Events::IN, PollFlags::IN),
    (Events::OUT, PollFlags::OUT),
    (Events::ERR, PollFlags::ERR),
    (Events::HUP, PollFlags::HUP),
    (Events::RDHUP, PollFlags::RDHUP),
    (Events::PRI, PollFlags::PRI),
    (Events::NVAL, PollFlags::NVAL),
];

/// Most events one real epoll_wait collects (the buffer handed to the kernel).
const EPOLL_WAIT_BATCH: usize = 4096;

const EPOLL_FLAG_PAIRS: [(Events, EpollFlags); 6] = [
    (Events::IN, EpollFlags::EPOLLIN),
    (Events::OUT, EpollFlags::EPOLLOUT),
    (Events::ERR, EpollFlags::EPOLLERR),
    (Events::HUP, EpollFlags::EPOLLHUP),
    (Events::RDHUP, EpollFlags::EPOLLRDHUP),
    (Events::PRI, EpollFlags::EPOLLPRI),
];

fn to_epoll_flags(e: Events, mode: Mode) -> EpollFlags {
    let mut f = EpollFlags::empty();
    for (ours, theirs) in EPOLL_FLAG_PAIRS {
        if e.contains(ours) {
            f |= theirs;
        }
    }
    if mode.edge {
        f |= EpollFlags::EPOLLET;
    }
    if mode.oneshot {
        f |= EpollFlags::EPOLLONESHOT;
    }
    f
}

fn from_epoll_flags(f: EpollFlags) -> Events {
    let mut e = Events::NONE;
    for (ours, theirs) in EPOLL_FLAG_PAIRS {
        if f.contains(theirs) {
            e |= ours;
        }
    }
    e
}

impl Kernel for RealKernel {
    fn transport(&self) -> &'static str {
        "real"
    }

    fn socket(&mut self, family: Family, ty: SockType) -> Result<Fd, Errno> {
        let protocol = match (family, ty) {
            (Family::Inet, SockType::Raw) => Some(SockProtocol::Icmp),
            (Family::Inet6, SockType::Raw) => Some(SockProtocol::IcmpV6),
            _ => None,
        };
        let owned = ns::socket(nix_family(family), nix_type(ty), NONBLOCK_CLOEXEC, protocol)?;
        Ok(self.adopt(owned))
    }

    fn socketpair(&mut self, ty: SockType) -> Result<(Fd, Fd), Errno> {
        let (a, b) = ns::socketpair(AddressFamily::Unix, nix_type(ty), None, NONBLOCK_CLOEXEC)?;
        Ok((self.adopt(a), self.adopt(b)))
    }

    fn pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
        let (r, w) = nix::unistd::pipe2(flags)?;
        Ok((self.adopt(r), self.adopt(w)))
    }

    fn eventfd(&mut self, initval: u32, semaphore: bool) -> Result<Fd, Errno> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let mut flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        if semaphore {
            flags |= EfdFlags::EFD_SEMAPHORE;
        }
        let counter = EventFd::from_value_and_flags(initval, flags)?;
        Ok(self.adopt(counter.into()))
    }

    fn timerfd(&mut self, clock: TimerClock) -> Result<Fd, Errno> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let id = match clock {
            TimerClock::Realtime => TimerfdClockId::Realtime,
            TimerClock::Monotonic => TimerfdClockId::Monotonic,
            TimerClock::Boottime => TimerfdClockId::Boottime,
        };
        let owned = timerfd_create(id, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)
            .map_err(nix_errno)?;
        Ok(self.adopt(owned))
    }

    fn timerfd_settime(
        &mut self,
        fd: Fd,
        absolute: bool,
        new: TimerSetting,
    ) -> Result<TimerSetting, Errno> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, timerfd_settime};
        let flags = if absolute {
            TimerfdTimerFlags::ABSTIME
        } else {
            TimerfdTimerFlags::empty()
        };
        let spec = Itimerspec {
            it_value: to_rustix_timespec(new.value),
            it_interval: to_rustix_timespec(new.interval),
        };
        let old = timerfd_settime(self.owned(fd)?, flags, &spec).map_err(nix_errno)?;
        Ok(from_itimerspec(&old))
    }

    fn timerfd_gettime(&mut self, fd: Fd) -> Result<TimerSetting, Errno> {
        let now = rustix::time::timerfd_gettime(self.owned(fd)?).map_err(nix_errno)?;
        Ok(from_itimerspec(&now))
    }

    fn dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        let owned = nix::unistd::dup(self.owned(fd)?)?;
        // dup(2) clears FD_CLOEXEC; keep every descriptor close-on-exec.
        nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(self.adopt(owned))
    }

    fn bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
        let raw = self.raw(fd)?;
        ns::bind(raw, NixAddr::new(addr)?.as_like())
    }

    fn listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
        let clamped = backlog.min(nix::libc::SOMAXCONN.unsigned_abs()) as i32;
        ns::listen(self.owned(fd)?, Backlog::new(clamped)?)
    }

    fn accept(&mut self, fd: Fd) -> Result<(Fd, SockAddr), Errno> {
        let listener = self.fds.remove(&fd.0).ok_or(Errno::EBADF)?;
        let (listener, accepted) = accept_owned(listener);
        self.fds.insert(fd.0, listener);
        let accepted = accepted?;
        nix::fcntl::fcntl(
            &accepted,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        let peer = ns::getpeername::<SockaddrStorage>(accepted.as_raw_fd())
            .map(|s| from_storage(&s))
            .unwrap_or(SockAddr::UnixUnnamed);
        Ok((self.adopt(accepted), peer))
    }

    fn connect(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
        let raw = self.raw(fd)?;
        ns::connect(raw, NixAddr::new(addr)?.as_like())
    }

    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.is_socket(fd)? {
            ns::recv(self.raw(fd)?, buf, MsgFlags::empty())
        } else {
            nix::unistd::read(self.owned(fd)?, buf)
        }
    }

    fn send(&mut self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        if self.is_socket(fd)? {
            ns::send(self.raw(fd)?, buf, MsgFlags::MSG_NOSIGNAL)
        } else {
            // A pipe write to a closed reader raises SIGPIPE, blocked in this thread by `new`, so
            // the write returns EPIPE.
            nix::unistd::write(self.owned(fd)?, buf)
        }
    }

    fn send_vectored(&mut self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno> {
        if bufs.len() > IOV_MAX {
            return Err(Errno::EINVAL);
        }
        let iov: Vec<std::io::IoSlice<'_>> =
            bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
        if self.is_socket(fd)? {
            ns::sendmsg::<()>(self.raw(fd)?, &iov, &[], MsgFlags::MSG_NOSIGNAL, None)
        } else {
            nix::sys::uio::writev(self.owned(fd)?, &iov)
        }
    }

    fn recvfrom(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, Option<SockAddr>), Errno> {
        let (n, from) = ns::recvfrom::<SockaddrStorage>(self.raw(fd)?, buf)?;
        let from = from.filter(|s| s.len() > 0 && s.family().is_some());
        Ok((n, from.map(|s| from_storage(&s))))
    }

    fn sendto(&mut self, fd: Fd, buf: &[u8], addr: &SockAddr) -> Result<usize, Errno> {
        let raw = self.raw(fd)?;
        ns::sendto(
            raw,
            buf,
            NixAddr::new(addr)?.as_like(),
            MsgFlags::MSG_NOSIGNAL,
        )
    }

    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        let how = match how {
            Shutdown::Read => ns::Shutdown::Read,
            Shutdown::Write => ns::Shutdown::Write,
            Shutdown::Both => ns::Shutdown::Both,
        };
        ns::shutdown(self.raw(fd)?, how)
    }

    fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        let owned = self.fds.remove(&fd.0).ok_or(Errno::EBADF)?;
        nix::unistd::close(owned)
    }

    fn getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let s = ns::getsockname::<SockaddrStorage>(self.raw(fd)?)?;
        Ok(from_storage(&s))
    }

    fn bytes_waiting(&mut self, fd: Fd) -> Result<usize, Errno> {
        let n = rustix::io::ioctl_fionread(self.owned(fd)?).map_err(nix_errno)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn getpeername(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let s = ns::getpeername::<SockaddrStorage>(self.raw(fd)?)?;
        Ok(from_storage(&s))
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: i32) -> Result<(), Errno> {
        let f = self.owned(fd)?;
        let on = value != 0;
        // The kernel reads an int: a negative value goes through as such (Linux clamps it).
        let bytes = value as u32 as usize;
        match opt {
            SockOpt::ReuseAddr => ns::setsockopt(f, sockopt::ReuseAddr, &on),
            SockOpt::KeepAlive => ns::setsockopt(f, sockopt::KeepAlive, &on),
            SockOpt::Broadcast => ns::setsockopt(f, sockopt::Broadcast, &on),
            SockOpt::TcpNoDelay => ns::setsockopt(f, sockopt::TcpNoDelay, &on),
            SockOpt::ReusePort => ns::setsockopt(f, sockopt::ReusePort, &on),
            SockOpt::RcvBuf => ns::setsockopt(f, sockopt::RcvBuf, &bytes),
            SockOpt::SndBuf => ns::setsockopt(f, sockopt::SndBuf, &bytes),
            SockOpt::Linger => {
                let linger = nix::libc::linger {
                    l_onoff: i32::from(value >= 0),
                    l_linger: value.max(0),
                };
                ns::setsockopt(f, sockopt::Linger, &linger)
            }
            SockOpt::Error | SockOpt::Type => Err(Errno::ENOPROTOOPT),
        }
    }

    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<i32, Errno> {
        let f = self.owned(fd)?;
        let size = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        match opt {
            SockOpt::ReuseAddr => ns::getsockopt(f, sockopt::ReuseAddr).map(i32::from),
            SockOpt::KeepAlive => ns::getsockopt(f, sockopt::KeepAlive).map(i32::from),
            SockOpt::Broadcast => ns::getsockopt(f, sockopt::Broadcast).map(i32::from),
            SockOpt::TcpNoDelay => ns::getsockopt(f, sockopt::TcpNoDelay).map(i32::from),
            SockOpt::ReusePort => ns::getsockopt(f, sockopt::ReusePort).map(i32::from),
            SockOpt::RcvBuf => ns::getsockopt(f, sockopt::RcvBuf).map(size),
            SockOpt::SndBuf => ns::getsockopt(f, sockopt::SndBuf).map(size),
            SockOpt::Error => ns::getsockopt(f, sockopt::SocketError),
            SockOpt::Linger => ns::getsockopt(f, sockopt::Linger)
                .map(|l| if l.l_onoff == 0 { -1 } else { l.l_linger }),
            SockOpt::Type => ns::getsockopt(f, sockopt::SockType).map(|t| t as i32),
        }
    }

    /// poll(2) through rustix: nix's poll cannot express POLLRDHUP (it rejects the flag in
    /// `revents`), and RDHUP is half of what the readiness tests compare.
    fn poll(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
        // A descriptor we do not hold is not open: poll(2) reports POLLNVAL for it. It cannot be
        // borrowed safely, so it is answered here and the others are asked without waiting.
        let mut nval = 0;
        let mut entries = Vec::with_capacity(fds.len());
        let mut index = Vec::with_capacity(fds.len());
        for (i, p) in fds.iter_mut().enumerate() {
            p.revents = Events::NONE;
            match self.fds.get(&p.fd.0) {
                Some(owned) => {
                    entries.push(rustix::event::PollFd::new(owned, to_poll_flags(p.events)));
                    index.push(i);
                }
                None => {
                    p.revents = Events::NVAL;
                    nval += 1;
                }
            }
        }
        let wait = if nval > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let ts = wait.map(|d| to_rustix_timespec(Timespec::of(d)));
        let n = rustix::event::poll(&mut entries, ts.as_ref()).map_err(nix_errno)?;
        for (entry, &i) in entries.iter().zip(&index) {
            fds[i].revents = from_poll_flags(entry.revents());
        }
        Ok(n + nval)
    }

    fn dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno> {
        let owned = rustix::io::fcntl_dupfd_cloexec(self.owned(fd)?, min).map_err(nix_errno)?;
        Ok(self.adopt(owned))
    }

    fn epoll_create(&mut self) -> Result<Fd, Errno> {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        Ok(self.adopt(ep.0))
    }

    fn epoll_ctl(
        &mut self,
        epfd: Fd,
        op: CtlOp,
        fd: Fd,
        interest: Events,
        mode: Mode,
        data: u64,
    ) -> Result<(), Errno> {
        if epfd == fd {
            // An epoll instance cannot watch itself (epoll_ctl(2): EINVAL).
            self.owned(fd)?;
            return Err(Errno::EINVAL);
        }
        let ep = Epoll(self.fds.remove(&epfd.0).ok_or(Errno::EBADF)?);
        let mut event = EpollEvent::new(to_epoll_flags(interest, mode), data);
        // The registration is keyed by (open file, descriptor number): use the caller's own
        // descriptor, never a duplicate.
        let r = match self.fds.get(&fd.0) {
            None => Err(Errno::EBADF),
            Some(target) => match op {
                CtlOp::Add => ep.add(target, event),
                CtlOp::Modify => ep.modify(target, &mut event),
                CtlOp::Delete => ep.delete(target),
            },
        };
        self.fds.insert(epfd.0, ep.0);
        r
    }

    fn epoll_wait(
        &mut self,
        epfd: Fd,
        out: &mut Vec<(u64, Events)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        if max == 0 || max > EP_MAX_EVENTS {
            self.owned(epfd)?;
            return Err(Errno::EINVAL);
        }
        let ep = Epoll(self.fds.remove(&epfd.0).ok_or(Errno::EBADF)?);
        // The kernel fills at most what we give it; a bounded buffer returns fewer events,
        // which epoll_wait may always do.
        let mut events = vec![EpollEvent::empty(); max.min(EPOLL_WAIT_BATCH)];
        let ms = timeout.map_or(-1, |d| {
            d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
        });
        let r = ep.wait(
            &mut events,
            EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE),
        );
        self.fds.insert(epfd.0, ep.0);
        let n = r?;
        out.extend(
            events[..n]
                .iter()
                .map(|e| (e.data(), from_epoll_flags(e.events()))),
        );
        Ok(n)
    }

    fn select(&mut self, sets: &mut FdSets, timeout: Option<Duration>) -> Result<usize, Errno> {
        let all = sets.read.iter().chain(&sets.write).chain(&sets.except);
        // An fd_set has FD_SETSIZE bits: a larger descriptor is refused here, never written
        // past the end of the set (nix would panic; C would corrupt memory).
        if all.clone().any(|fd| fd.0 < 0 || fd.0 >= FD_SETSIZE) {
            return Err(Errno::EINVAL);
        }
        let fill = |fds: &[Fd]| -> Result<FdSet<'_>, Errno> {
            let mut set = FdSet::new();
            for fd in fds {
                set.insert(self.fds.get(&fd.0).ok_or(Errno::EBADF)?.as_fd());
            }
            Ok(set)
        };
        let (mut r, mut w, mut e) = (fill(&sets.read)?, fill(&sets.write)?, fill(&sets.except)?);
        let mut tv = timeout
            .map(|d| TimeVal::microseconds(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
        let n = nix::sys::select::select(None, &mut r, &mut w, &mut e, tv.as_mut())?;
        let keep = |fds: &mut Vec<Fd>, set: &FdSet<'_>, owned: &BTreeMap<i32, OwnedFd>| {
            fds.retain(|fd| owned.get(&fd.0).is_some_and(|o| set.contains(o.as_fd())));
        };
        keep(&mut sets.read, &r, &self.fds);
        keep(&mut sets.write, &w, &self.fds);
        keep(&mut sets.except, &e, &self.fds);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn resolve(&mut self, host: &str, family: Family) -> Result<Vec<IpAddr>, Gai> {
        let hints = dns_lookup::AddrInfoHints {
            flags: 0,
            address: match family {
                Family::Inet6 => nix::libc::AF_INET6,
                _ => nix::libc::AF_INET,
            },
            socktype: nix::libc::SOCK_STREAM,
            protocol: 0,
        };
        let iter = dns_lookup::getaddrinfo(Some(host), None, Some(hints))
            .map_err(|e| Gai::from_code(e.error_num()))?;
        let mut ips: Vec<IpAddr> = iter
            .filter_map(|r| r.ok())
            .map(|ai| ai.sockaddr.ip())
            .collect();
        ips.dedup();
        if ips.is_empty() {
            return Err(Gai::NoData);
        }
        Ok(ips)
    }

    fn host_by_addr(&mut self, ip: IpAddr) -> Result<String, SockError> {
        dns_lookup::lookup_addr(&ip).map_err(|_| SockError::Herror {
            code: HERROR_HOST_NOT_FOUND,
            message: "Unknown host",
        })
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn clock(&self, clock: TimerClock) -> Duration {
        use rustix::time::{ClockId, clock_gettime};
        let id = match clock {
            TimerClock::Realtime => ClockId::Realtime,
            TimerClock::Monotonic => ClockId::Monotonic,
            TimerClock::Boottime => ClockId::Boottime,
        };
        let t = clock_gettime(id);
        Timespec {
            secs: t.tv_sec,
            nanos: t.tv_nsec,
        }
        .duration()
        .unwrap_or_default()
    }

    fn unix_time(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::system()
    }
}

/// accept4(2) through std, the one safe wrapper that returns an owned descriptor (nix's returns
/// a bare number, which cannot be owned without `unsafe`). std picks the listener type by family;
/// the listener's descriptor is handed back unchanged either way.
fn accept_owned(listener: OwnedFd) -> (OwnedFd, Result<OwnedFd, Errno>) {
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32));
    let is_unix = matches!(
        ns::getsockname::<SockaddrStorage>(listener.as_raw_fd()).map(|s| s.family()),
        Ok(Some(AddressFamily::Unix))
    );
    if is_unix {
        let l = std::os::unix::net::UnixListener::from(listener);
        let r = l.accept().map(|(s, _)| OwnedFd::from(s)).map_err(errno);
        (OwnedFd::from(l), r)
    } else {
        let l = std::net::TcpListener::from(listener);
        let r = l.accept().map(|(s, _)| OwnedFd::from(s)).map_err(errno);
        (OwnedFd::from(l), r)
    }
}

/// Raises this process's soft limit on open descriptors (RLIMIT_NOFILE) to its hard limit, as
/// a server or a load generator must before it opens thousands; returns the limit now in force.
pub fn raise_fd_limit() -> Result<u64, Errno> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

fn nix_errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn to_rustix_timespec(t: Timespec) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos,
    }
}

fn from_itimerspec(spec: &rustix::time::Itimerspec) -> TimerSetting {
    let of = |t: &rustix::time::Timespec| Timespec {
        secs: t.tv_sec,
        nanos: t.tv_nsec,
    };
    TimerSetting {
        value: of(&spec.it_value),
        interval: of(&spec.it_interval),
    }
}
