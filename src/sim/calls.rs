//! The [`Kernel`] trait on the simulator: each call runs the model (`net/`, `epoll.rs`,
//! `readiness.rs`) and is recorded in the transcript with its argument and result.

use std::net::IpAddr;
use std::time::Duration;

use nix::errno::Errno;

use super::decide::Choice;
use super::transcript::{Arg, Call, Ready};
use super::{SIM_EPOCH_UNIX_SECS, Sim};
use crate::addr::{Family, SockAddr, SockType};
use crate::error::{Gai, HERROR_HOST_NOT_FOUND, SockError};
use crate::kernel::{
    CtlOp, Events, Fd, FdSets, Kernel, Mode, PollFd, Shutdown, SockOpt, TimerClock, TimerSetting,
};

fn len_arg(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn num(n: usize) -> Arg {
    Arg::Num(len_arg(n))
}

fn count<T>(r: &Result<T, Errno>, f: impl Fn(&T) -> i64) -> Result<i64, Errno> {
    r.as_ref().map(f).map_err(|e| *e)
}

impl Kernel for Sim {
    fn transport(&self) -> &'static str {
        "sim"
    }

    fn socket(&mut self, family: Family, ty: SockType) -> Result<Fd, Errno> {
        let r = self.sim_socket(family, ty);
        self.record(
            Call::Socket,
            -1,
            Arg::Kind(family, ty),
            count(&r, |fd| i64::from(fd.0)),
            None,
        );
        r
    }

    fn socketpair(&mut self, ty: SockType) -> Result<(Fd, Fd), Errno> {
        let r = self.sim_socketpair(ty);
        self.record(
            Call::Socketpair,
            -1,
            Arg::Kind(Family::Unix, ty),
            count(&r, |p| i64::from(p.0.0)),
            None,
        );
        r
    }

    fn eventfd(&mut self, initval: u32, semaphore: bool) -> Result<Fd, Errno> {
        let r = self.sim_eventfd(initval, semaphore);
        let arg = Arg::EventFd(initval, semaphore);
        self.record(Call::EventFd, -1, arg, count(&r, |fd| fd.0.into()), None);
        r
    }

    fn timerfd(&mut self, clock: TimerClock) -> Result<Fd, Errno> {
        let r = self.sim_timerfd(clock);
        let made = count(&r, |fd| fd.0.into());
        self.record(Call::TimerFdCreate, -1, Arg::Clock(clock), made, None);
        r
    }

    fn timerfd_settime(
        &mut self,
        fd: Fd,
        absolute: bool,
        new: TimerSetting,
    ) -> Result<TimerSetting, Errno> {
        let r = self.sim_timerfd_settime(fd, absolute, new);
        let arg = Arg::TimerSet(new, absolute);
        self.record(Call::TimerFdSettime, fd.0, arg, count(&r, |_| 0), None);
        r
    }

    fn timerfd_gettime(&mut self, fd: Fd) -> Result<TimerSetting, Errno> {
        let r = self.sim_timerfd_gettime(fd);
        let arg = r
            .as_ref()
            .map_or(Arg::None, |set| Arg::TimerSet(*set, false));
        self.record(Call::TimerFdGettime, fd.0, arg, count(&r, |_| 0), None);
        r
    }

    fn pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        let r = self.sim_pipe();
        self.record(
            Call::Pipe,
            -1,
            Arg::None,
            count(&r, |p| i64::from(p.0.0)),
            None,
        );
        r
    }

    fn dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        let r = self.sim_dup(fd);
        self.record(
            Call::Dup,
            fd.0,
            Arg::None,
            count(&r, |n| i64::from(n.0)),
            None,
        );
        r
    }

    fn bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
        let r = self.sim_bind(fd, addr);
        self.record(Call::Bind, fd.0, Arg::addr(addr), count(&r, |_| 0), None);
        r
    }

    fn listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
        let r = self.sim_listen(fd, backlog);
        self.record(
            Call::Listen,
            fd.0,
            Arg::Num(i64::from(backlog)),
            count(&r, |_| 0),
            None,
        );
        r
    }

    fn accept(&mut self, fd: Fd) -> Result<(Fd, SockAddr), Errno> {
        let (r, choice) = self.sim_accept(fd);
        // The peer's address, as strace shows it: what ties this end to its connect.
        let peer = match &r {
            Ok((_, SockAddr::Inet(a))) => Arg::Inet(*a),
            _ => Arg::None,
        };
        self.record(
            Call::Accept,
            fd.0,
            peer,
            count(&r, |(n, _)| i64::from(n.0)),
            choice,
        );
        r
    }

    fn connect(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno> {
        let (r, choice) = self.sim_connect(fd, addr);
        // The address it connects from, once bound: what ties this end to the accept.
        let arg = match (addr, self.local_addr(fd)) {
            (SockAddr::Inet(to), Some(SockAddr::Inet(from))) => Arg::Connect(*to, from),
            _ => Arg::addr(addr),
        };
        self.record(Call::Connect, fd.0, arg, count(&r, |_| 0), choice);
        r
    }

    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        let (r, choice) = self.sim_recv(fd, buf, None);
        self.record(
            Call::Recv,
            fd.0,
            num(buf.len()),
            count(&r, |n| len_arg(*n)),
            choice,
        );
        r
    }

    fn send(&mut self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        let (r, choice) = self.sim_send(fd, buf, None);
        self.record(
            Call::Send,
            fd.0,
            num(buf.len()),
            count(&r, |n| len_arg(*n)),
            choice,
        );
        r
    }

    fn send_vectored(&mut self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno> {
        let (r, choice) = self.sim_send_vectored(fd, bufs);
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.record(
            Call::Send,
            fd.0,
            num(total),
            count(&r, |n| len_arg(*n)),
            choice,
        );
        r
    }

    fn recvfrom(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, Option<SockAddr>), Errno> {
        let mut from = None;
        let (r, choice) = self.sim_recv(fd, buf, Some(&mut from));
        self.record(
            Call::Recvfrom,
            fd.0,
            num(buf.len()),
            count(&r, |n| len_arg(*n)),
            choice,
        );
        r.map(|n| (n, from))
    }

    fn sendto(&mut self, fd: Fd, buf: &[u8], addr: &SockAddr) -> Result<usize, Errno> {
        let (r, choice) = self.sim_send(fd, buf, Some(addr));
        self.record(
            Call::Sendto,
            fd.0,
            num(buf.len()),
            count(&r, |n| len_arg(*n)),
            choice,
        );
        r
    }

    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        let r = self.sim_shutdown(fd, how);
        self.record(Call::Shutdown, fd.0, Arg::How(how), count(&r, |_| 0), None);
        r
    }

    fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        let r = self.sim_close(fd);
        self.record(Call::Close, fd.0, Arg::None, count(&r, |_| 0), None);
        r
    }

    fn getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let r = self.sim_getsockname(fd);
        self.record(Call::Getsockname, fd.0, Arg::None, count(&r, |_| 0), None);
        r
    }

    fn bytes_waiting(&mut self, fd: Fd) -> Result<usize, Errno> {
        let r = self.sim_bytes_waiting(fd);
        self.record(
            Call::BytesWaiting,
            fd.0,
            Arg::None,
            count(&r, |&n| n as i64),
            None,
        );
        r
    }

    fn getpeername(&mut self, fd: Fd) -> Result<SockAddr, Errno> {
        let r = self.sim_getpeername(fd);
        self.record(Call::Getpeername, fd.0, Arg::None, count(&r, |_| 0), None);
        r
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: i32) -> Result<(), Errno> {
        let r = self.sim_setsockopt(fd, opt, value);
        self.record(
            Call::Setsockopt,
            fd.0,
            Arg::Opt(opt, value),
            count(&r, |_| 0),
            None,
        );
        r
    }

    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<i32, Errno> {
        let r = self.sim_getsockopt(fd, opt);
        self.record(
            Call::Getsockopt,
            fd.0,
            Arg::Opt(opt, 0),
            count(&r, |v| i64::from(*v)),
            None,
        );
        r
    }

    fn poll(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
        let r = self.poll_inner(fds, timeout);
        self.wait_done();
        let choice = (r == Err(Errno::EINTR)).then_some(Choice::Eintr);
        let ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let ready = self.transcript_on().then(|| {
            let fds = fds.iter().filter(|p| !p.revents.is_empty());
            Ready::Fds(fds.map(|p| (p.fd.0, p.revents)).collect())
        });
        self.record_wait(
            Call::Poll,
            -1,
            Arg::Wait(ms, fds.len()),
            count(&r, |n| len_arg(*n)),
            choice,
            ready.unwrap_or_default(),
        );
        r
    }

    fn dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno> {
        let r = self.sim_dup_min(fd, min);
        self.record(
            Call::Dup,
            fd.0,
            Arg::Num(i64::from(min)),
            count(&r, |n| i64::from(n.0)),
            None,
        );
        r
    }

    fn epoll_create(&mut self) -> Result<Fd, Errno> {
        let r = self.sim_epoll_create();
        self.record(
            Call::EpollCreate,
            -1,
            Arg::None,
            count(&r, |n| i64::from(n.0)),
            None,
        );
        r
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
        let r = self.sim_epoll_ctl(epfd, op, fd, interest, mode, data);
        self.record(
            Call::EpollCtl,
            epfd.0,
            Arg::Ctl(op, fd.0, interest, mode),
            count(&r, |_| 0),
            None,
        );
        r
    }

    fn epoll_wait(
        &mut self,
        epfd: Fd,
        out: &mut Vec<(u64, Events)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let r = self.sim_epoll_wait(epfd, out, max, timeout);
        self.wait_done();
        let choice = (r == Err(Errno::EINTR)).then_some(Choice::Eintr);
        let ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let ready = (self.transcript_on() && r.is_ok()).then(|| self.epoll_report(epfd, out));
        self.record_wait(
            Call::EpollWait,
            epfd.0,
            Arg::EpollWait(ms, max),
            count(&r, |n| len_arg(*n)),
            choice,
            ready.unwrap_or_default(),
        );
        r
    }

    fn select(&mut self, sets: &mut FdSets, timeout: Option<Duration>) -> Result<usize, Errno> {
        let n = sets.read.len() + sets.write.len() + sets.except.len();
        let r = self.sim_select(sets, timeout);
        self.wait_done();
        let choice = (r == Err(Errno::EINTR)).then_some(Choice::Eintr);
        let ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let ready = (self.transcript_on() && r.is_ok()).then(|| Ready::Fds(selected(sets)));
        self.record_wait(
            Call::Select,
            -1,
            Arg::Wait(ms, n),
            count(&r, |n| len_arg(*n)),
            choice,
            ready.unwrap_or_default(),
        );
        r
    }

    fn resolve(&mut self, host: &str, family: Family) -> Result<Vec<IpAddr>, Gai> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return match (ip, family) {
                (IpAddr::V4(_), Family::Inet) | (IpAddr::V6(_), Family::Inet6) => Ok(vec![ip]),
                _ => Err(Gai::AddrFamily),
            };
        }
        let want_v6 = family == Family::Inet6;
        let ips: Vec<IpAddr> = self
            .config
            .hosts
            .get(host)
            .ok_or(Gai::NoName)?
            .iter()
            .copied()
            .filter(|ip| ip.is_ipv6() == want_v6)
            .collect();
        // glibc answers EAI_NONAME when /etc/hosts knows the name only in the other family.
        if ips.is_empty() {
            Err(Gai::NoName)
        } else {
            Ok(ips)
        }
    }

    fn host_by_addr(&mut self, ip: IpAddr) -> Result<String, SockError> {
        self.config
            .hosts
            .iter()
            .find(|(_, ips)| ips.contains(&ip))
            .map(|(name, _)| name.clone())
            .ok_or(SockError::Herror {
                code: HERROR_HOST_NOT_FOUND,
                message: "Unknown host",
            })
    }

    fn now(&self) -> Duration {
        self.now
    }

    fn clock(&self, clock: TimerClock) -> Duration {
        match clock {
            TimerClock::Realtime => self.unix_time(),
            TimerClock::Monotonic | TimerClock::Boottime => self.now,
        }
    }

    fn unix_time(&self) -> Duration {
        Duration::from_secs(SIM_EPOCH_UNIX_SECS).saturating_add(self.now)
    }

    fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }
}

/// select's ready sets as one list: each descriptor with `in` (readable), `out` (writable) and
/// `pri` (an exceptional condition), in descriptor order.
fn selected(sets: &FdSets) -> Box<[(i32, Events)]> {
    let mut ready: std::collections::BTreeMap<i32, Events> = std::collections::BTreeMap::new();
    for (set, ev) in [
        (&sets.read, Events::IN),
        (&sets.write, Events::OUT),
        (&sets.except, Events::PRI),
    ] {
        for fd in set {
            *ready.entry(fd.0).or_default() |= ev;
        }
    }
    ready.into_iter().collect()
}
