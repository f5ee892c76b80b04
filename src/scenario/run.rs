//! Runs a [`Script`] on one kernel and backend: one result per command, as text.
//!
//! `Runner::step` is one match with an arm per command, longer than this crate's functions
//! usually are: each arm is a line or two that hands off to the kernel or a helper, and the
//! whole table of commands reads better in one place than split by family.

use std::time::Duration;

use nix::errno::Errno;

use super::*;
use crate::addr::{Family, SockAddr};
use crate::endpoints;
use crate::error::errno_name;
use crate::kernel::{Fd, Kernel, SockOpt, TimerClock, TimerSetting, Timespec};
use crate::readiness::{Event, Selector, Token};

/// Size of one `fill` write and one `drain` read.
const CHUNK_BYTES: usize = 64 * 1024;

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The command's line number.
    pub line: usize,
    /// The command as written.
    pub text: String,
    /// What it returned, in the format's words.
    pub result: String,
    /// Whether the expectation held (`None` when there was none).
    pub held: Option<bool>,
    /// The expectation as written, for the report.
    pub expected: Option<String>,
}

/// Runs every command of `script` on `kernel`; the backend is the script's header, else
/// `default_backend`.
pub fn run(script: &Script, kernel: &mut dyn Kernel, default_backend: Backend) -> Vec<Step> {
    let backend = script.backend.unwrap_or(default_backend);
    let mut r = Runner {
        k: kernel,
        fds: vec![None; script.names.len()],
        sel: None,
        backend,
        names: &script.names,
        clocks: vec![None; script.names.len()],
    };
    let steps = script
        .commands
        .iter()
        .map(|c| {
            let result = r.step(&c.op);
            let held = c.expect.as_ref().map(|e| match e {
                Expect::Any => true,
                Expect::Exactly(want) => *want == result,
            });
            let expected = c.expect.as_ref().map(|e| match e {
                Expect::Any => "*".to_string(),
                Expect::Exactly(t) => t.clone(),
            });
            Step {
                line: c.line,
                text: c.text.clone(),
                result,
                held,
                expected,
            }
        })
        .collect();
    r.cleanup();
    steps
}

struct Runner<'a> {
    k: &'a mut dyn Kernel,
    /// Each name's descriptor; `None` before it exists and after `close`.
    fds: Vec<Option<Fd>>,
    sel: Option<Selector>,
    backend: Backend,
    names: &'a [String],
    /// Each timer's clock (what `arm ... abs` counts from).
    clocks: Vec<Option<TimerClock>>,
}

fn errno(e: Errno) -> String {
    errno_name(e).to_string()
}

fn ok_or_errno(r: Result<(), Errno>) -> String {
    r.map_or_else(errno, |()| "ok".into())
}

fn count_or_errno(r: Result<usize, Errno>) -> String {
    r.map_or_else(errno, |n| n.to_string())
}

fn family(ip: Ip) -> Family {
    match ip {
        Ip::V4 => Family::Inet,
        Ip::V6 => Family::Inet6,
    }
}

impl Runner<'_> {
    fn fd(&self, n: Name) -> Result<Fd, Errno> {
        self.fds[n.0].ok_or(Errno::EBADF)
    }

    fn set(&mut self, n: Name, fd: Fd) {
        self.fds[n.0] = Some(fd);
    }

    fn step(&mut self, op: &Op) -> String {
        match *op {
            Op::Pair { a, b, ty } => self.create2(a, b, |k| k.socketpair(ty)),
            Op::Tcp { a, b, ip } => self.create2(a, b, |k| endpoints::tcp_pair(k, family(ip))),
            Op::Pipe { r, w } => self.create2(r, w, |k| k.pipe()),
            Op::Listen { l, ip } => self.create(l, |k| endpoints::tcp_listener(k, family(ip), 16)),
            Op::Udp { a, ip } => self.create(a, |k| endpoints::udp_socket(k, family(ip))),
            Op::Connect { a, l } => self.connect(a, l),
            Op::Accept { b, l } => {
                let listener = self.fd(l);
                self.create(b, |k| Ok(k.accept(listener?)?.0))
            }
            Op::Refused { a, ip } => self.refused(a, family(ip)),
            Op::Dup { d, a, at } => {
                let fd = self.fd(a);
                self.create(d, |k| match at {
                    Some(min) => k.dup_min(fd?, min),
                    None => k.dup(fd?),
                })
            }
            Op::Send { a, ref payload } => {
                let data = match payload {
                    Payload::Count(n) => (0..*n).map(|i| (i % 251) as u8).collect(),
                    Payload::Text(t) => t.clone(),
                };
                count_or_errno(self.fd(a).and_then(|fd| self.k.send(fd, &data)))
            }
            Op::Fill { a } => self.fill(a),
            Op::Recv { a, n } => {
                count_or_errno(self.fd(a).and_then(|fd| self.k.recv(fd, &mut vec![0; n])))
            }
            Op::Drain { a } => self.drain(a),
            Op::Sendto { a, b, n } => {
                let data = vec![0x5a; n];
                let to = self.fd(b).and_then(|b| self.k.getsockname(b));
                count_or_errno(
                    to.and_then(|to| self.fd(a).and_then(|fd| self.k.sendto(fd, &data, &to))),
                )
            }
            Op::Recvfrom { a, n } => self.recvfrom(a, n),
            Op::Shutdown { a, how } => {
                ok_or_errno(self.fd(a).and_then(|fd| self.k.shutdown(fd, how)))
            }
            Op::Close { a } => {
                let r = self.fd(a).and_then(|fd| self.k.close(fd));
                self.fds[a.0] = None;
                ok_or_errno(r)
            }
            Op::SoError { a } => {
                let pending = self
                    .fd(a)
                    .and_then(|fd| self.k.getsockopt(fd, SockOpt::Error));
                match pending {
                    Ok(0) => "0".into(),
                    Ok(e) => errno(Errno::from_raw(e)),
                    Err(e) => errno(e),
                }
            }
            Op::Register { a, flags, mode } => ok_or_errno(self.fd(a).and_then(|fd| {
                self.on_selector(|sel, k| sel.register(k, fd, Token(a.0), flags, mode))
            })),
            Op::Modify { a, flags, mode } => {
                ok_or_errno(self.fd(a).and_then(|_| {
                    self.on_selector(|sel, k| sel.modify(k, Token(a.0), flags, mode))
                }))
            }
            Op::Deregister { a } => ok_or_errno(
                self.fd(a)
                    .and_then(|_| self.on_selector(|sel, k| sel.deregister(k, Token(a.0)))),
            ),
            Op::Wait { ms, max } => self.wait(ms, max),
            Op::Timer { t, clock } => {
                self.clocks[t.0] = Some(clock);
                self.create(t, |k| k.timerfd(clock))
            }
            Op::Arm {
                t,
                ms,
                every,
                absolute,
            } => self.arm(t, ms, every, absolute),
            Op::Ticks { t } => {
                let mut count = [0u8; 8];
                match self.fd(t).and_then(|fd| self.k.recv(fd, &mut count)) {
                    Ok(_) => u64::from_ne_bytes(count).to_string(),
                    Err(e) => errno(e),
                }
            }
            Op::Armed { t } => match self.fd(t).and_then(|fd| self.k.timerfd_gettime(fd)) {
                Ok(now) => u8::from(now.value != Timespec::default()).to_string(),
                Err(e) => errno(e),
            },
        }
    }

    /// Runs `f` on the selector (created on first use) and the kernel.
    fn on_selector<T>(
        &mut self,
        f: impl FnOnce(&mut Selector, &mut dyn Kernel) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        if self.sel.is_none() {
            self.sel = Some(Selector::new(self.k, self.backend)?);
        }
        let sel = self.sel.as_mut().expect("created above");
        f(sel, self.k)
    }

    fn create(
        &mut self,
        n: Name,
        make: impl FnOnce(&mut dyn Kernel) -> Result<Fd, Errno>,
    ) -> String {
        match make(self.k) {
            Ok(fd) => {
                self.set(n, fd);
                "ok".into()
            }
            Err(e) => errno(e),
        }
    }

    fn create2(
        &mut self,
        a: Name,
        b: Name,
        make: impl FnOnce(&mut dyn Kernel) -> Result<(Fd, Fd), Errno>,
    ) -> String {
        match make(self.k) {
            Ok((x, y)) => {
                self.set(a, x);
                self.set(b, y);
                "ok".into()
            }
            Err(e) => errno(e),
        }
    }

    fn connect(&mut self, a: Name, l: Name) -> String {
        let addr = match self.fd(l).and_then(|l| self.k.getsockname(l)) {
            Ok(addr) => addr,
            Err(e) => return errno(e),
        };
        let family = addr.family();
        self.connect_to(a, family, &addr)
    }

    fn refused(&mut self, a: Name, family: Family) -> String {
        match endpoints::closed_port(self.k, family) {
            Ok(addr) => self.connect_to(a, family, &addr),
            Err(e) => errno(e),
        }
    }

    fn connect_to(&mut self, a: Name, family: Family, addr: &SockAddr) -> String {
        let fd = match self.k.socket(family, crate::addr::SockType::Stream) {
            Ok(fd) => fd,
            Err(e) => return errno(e),
        };
        self.set(a, fd);
        ok_or_errno(self.k.connect(fd, addr))
    }

    fn fill(&mut self, a: Name) -> String {
        let Ok(fd) = self.fd(a) else {
            return errno(Errno::EBADF);
        };
        let chunk = vec![0xf1; CHUNK_BYTES];
        let mut sent = 0;
        while sent < MAX_FILL_BYTES {
            match self.k.send(fd, &chunk) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => return "ok".into(),
                Err(e) => return errno(e),
            }
        }
        "ok".into()
    }

    fn drain(&mut self, a: Name) -> String {
        let Ok(fd) = self.fd(a) else {
            return errno(Errno::EBADF);
        };
        let mut buf = vec![0; CHUNK_BYTES];
        let mut total = 0;
        while total < MAX_FILL_BYTES {
            match self.k.recv(fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => total += n,
                Err(e) if total == 0 => return errno(e),
                Err(_) => break,
            }
        }
        total.to_string()
    }

    /// recvfrom: the byte count, and a check that the source is one of the script's endpoints.
    fn recvfrom(&mut self, a: Name, n: usize) -> String {
        let Ok(fd) = self.fd(a) else {
            return errno(Errno::EBADF);
        };
        match self.k.recvfrom(fd, &mut vec![0; n]) {
            Ok((got, from)) => {
                let known = from.is_none_or(|f| {
                    self.fds.iter().flatten().any(|&e| {
                        self.k
                            .getsockname(e)
                            .is_ok_and(|name| same_endpoint(&name, &f))
                    })
                });
                if known {
                    got.to_string()
                } else {
                    format!("{got} from an unknown source")
                }
            }
            Err(e) => errno(e),
        }
    }

    /// `arm`: `ms` from now (on the timer's clock with `abs`), repeating every `every` ms; 0
    /// disarms. EINVAL on anything but a timer, as timerfd_settime answers.
    fn arm(&mut self, t: Name, ms: u64, every: u64, absolute: bool) -> String {
        let value = Duration::from_millis(ms);
        let value = match self.clocks[t.0] {
            Some(clock) if absolute && ms > 0 => self.k.clock(clock) + value,
            _ => value,
        };
        let new = TimerSetting {
            value: Timespec::of(value),
            interval: Timespec::of(Duration::from_millis(every)),
        };
        let r = self
            .fd(t)
            .and_then(|fd| self.k.timerfd_settime(fd, absolute, new));
        ok_or_errno(r.map(drop))
    }

    fn wait(&mut self, ms: u64, max: Option<usize>) -> String {
        let mut events: Vec<Event> = Vec::new();
        let max = max.unwrap_or(MAX_WAIT_EVENTS);
        match self
            .on_selector(|sel, k| sel.wait(k, &mut events, max, Some(Duration::from_millis(ms))))
        {
            Ok(_) if events.is_empty() => "none".into(),
            Ok(_) => {
                let mut named: Vec<(String, String)> = events
                    .iter()
                    .map(|e| (self.names[e.token.0].clone(), e.events.to_string()))
                    .collect();
                named.sort();
                named
                    .iter()
                    .map(|(n, e)| format!("{n}:{e}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Err(e) => errno(e),
        }
    }

    /// Closes everything the script left open.
    fn cleanup(&mut self) {
        for fd in self.fds.iter_mut().filter_map(Option::take) {
            let _ = self.k.close(fd);
        }
        if let Some(ep) = self.sel.as_ref().and_then(Selector::epoll_fd) {
            let _ = self.k.close(ep);
        }
    }
}

/// Whether a datagram's source is this endpoint (a socket bound to the wildcard address sends
/// from loopback).
fn same_endpoint(bound: &SockAddr, source: &SockAddr) -> bool {
    match (bound, source) {
        (SockAddr::Inet(b), SockAddr::Inet(s)) => {
            b.port() == s.port() && (b.ip() == s.ip() || b.ip().is_unspecified())
        }
        (b, s) => b == s,
    }
}
