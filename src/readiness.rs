//! One readiness interface over select, poll and epoll, chosen at run time, on any [`Kernel`].
//!
//! Registrations are made by token (the caller's name for a descriptor). [`Selector::wait`]
//! returns events in a fixed order: by token for select and poll (which report everything at
//! once; when there are more than `max`, a cursor rotates so none starves), and in the kernel's
//! ready-list order for epoll (which rotates by itself).
//!
//! select and poll are level-triggered only; asking them for edge or one-shot is EINVAL. select
//! refuses descriptors ≥ FD_SETSIZE at registration with EINVAL and keeps serving the others.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use nix::errno::Errno;

use crate::kernel::{CtlOp, Events, FD_SETSIZE, Fd, FdSets, Kernel, Mode, PollFd};

/// Which readiness call a [`Selector`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// select(2): three bit sets, FD_SETSIZE descriptors at most.
    Select,
    /// poll(2): an array of descriptors.
    Poll,
    /// epoll(7): a kernel-side interest list; level, edge and one-shot.
    Epoll,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Select, Backend::Poll, Backend::Epoll];

    /// Parses `select`, `poll` or `epoll`.
    pub fn parse(name: &str) -> Option<Backend> {
        match name {
            "select" => Some(Backend::Select),
            "poll" => Some(Backend::Poll),
            "epoll" => Some(Backend::Epoll),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
        })
    }
}

/// Every backend with every mode it has: select, poll, epoll level-triggered, edge-triggered
/// and one-shot.
pub const BACKEND_MODES: [(Backend, Mode); 5] = [
    (Backend::Select, Mode::LEVEL),
    (Backend::Poll, Mode::LEVEL),
    (Backend::Epoll, Mode::LEVEL),
    (Backend::Epoll, Mode::EDGE),
    (Backend::Epoll, Mode::ONESHOT),
];

/// The caller's name for a registration, returned with its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Which registration.
    pub token: Token,
    /// What is ready (select maps its sets to IN, OUT and PRI).
    pub events: Events,
}

#[derive(Debug, Clone, Copy)]
struct Registration {
    fd: Fd,
    interest: Events,
}

/// Most events one wait reports, when the caller gives no smaller bound.
pub const MAX_EVENTS_PER_WAIT: usize = 1024;

/// A readiness selector over one backend.
#[derive(Debug)]
pub struct Selector {
    backend: Backend,
    epfd: Option<Fd>,
    regs: BTreeMap<Token, Registration>,
    /// Where the next select/poll report starts when more than `max` are ready.
    cursor: usize,
    scratch: Vec<(u64, Events)>,
}

impl Selector {
    /// A selector; for epoll this creates the epoll instance.
    pub fn new(kernel: &mut dyn Kernel, backend: Backend) -> Result<Selector, Errno> {
        let epfd = match backend {
            Backend::Epoll => Some(kernel.epoll_create()?),
            _ => None,
        };
        Ok(Selector {
            backend,
            epfd,
            regs: BTreeMap::new(),
            cursor: 0,
            scratch: Vec::new(),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The epoll instance's descriptor, if any.
    pub fn epoll_fd(&self) -> Option<Fd> {
        self.epfd
    }

    fn check_mode(&self, mode: Mode) -> Result<(), Errno> {
        if self.backend != Backend::Epoll && mode != Mode::LEVEL {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Starts watching `fd` for `interest` under `token` (EEXIST if the token is taken).
    pub fn register(
        &mut self,
        kernel: &mut dyn Kernel,
        fd: Fd,
        token: Token,
        interest: Events,
        mode: Mode,
    ) -> Result<(), Errno> {
        self.check_mode(mode)?;
        if self.regs.contains_key(&token) {
            return Err(Errno::EEXIST);
        }
        match self.epfd {
            Some(ep) => kernel.epoll_ctl(ep, CtlOp::Add, fd, interest, mode, token.0 as u64)?,
            None => {
                if self.backend == Backend::Select && (fd.0 < 0 || fd.0 >= FD_SETSIZE) {
                    return Err(Errno::EINVAL);
                }
                // Like epoll_ctl, refuse a descriptor that is not open.
                let mut probe = [PollFd::new(fd, Events::NONE)];
                kernel.poll(&mut probe, Some(Duration::ZERO))?;
                if probe[0].revents.contains(Events::NVAL) {
                    return Err(Errno::EBADF);
                }
            }
        }
        self.regs.insert(token, Registration { fd, interest });
        Ok(())
    }

    /// Changes what `token` watches (ENOENT if it is not registered).
    pub fn modify(
        &mut self,
        kernel: &mut dyn Kernel,
        token: Token,
        interest: Events,
        mode: Mode,
    ) -> Result<(), Errno> {
        self.check_mode(mode)?;
        let reg = self.regs.get_mut(&token).ok_or(Errno::ENOENT)?;
        if let Some(ep) = self.epfd {
            kernel.epoll_ctl(ep, CtlOp::Modify, reg.fd, interest, mode, token.0 as u64)?;
        }
        reg.interest = interest;
        Ok(())
    }

    /// Stops watching `token` (ENOENT if it is not registered).
    pub fn deregister(&mut self, kernel: &mut dyn Kernel, token: Token) -> Result<(), Errno> {
        let reg = *self.regs.get(&token).ok_or(Errno::ENOENT)?;
        if let Some(ep) = self.epfd {
            kernel.epoll_ctl(ep, CtlOp::Delete, reg.fd, Events::NONE, Mode::LEVEL, 0)?;
        }
        self.regs.remove(&token);
        Ok(())
    }

    /// Waits for events (`None`: for ever) and appends at most `max` of them to `out`.
    pub fn wait(
        &mut self,
        kernel: &mut dyn Kernel,
        out: &mut Vec<Event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let max = max.clamp(1, MAX_EVENTS_PER_WAIT);
        match self.backend {
            Backend::Epoll => self.wait_epoll(kernel, out, max, timeout),
            Backend::Poll => self.wait_poll(kernel, out, max, timeout),
            Backend::Select => self.wait_select(kernel, out, max, timeout),
        }
    }

    fn wait_epoll(
        &mut self,
        kernel: &mut dyn Kernel,
        out: &mut Vec<Event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let ep = self.epfd.expect("epoll selectors have an epoll fd");
        self.scratch.clear();
        let n = kernel.epoll_wait(ep, &mut self.scratch, max, timeout)?;
        out.extend(self.scratch.iter().map(|&(data, events)| Event {
            token: Token(data as usize),
            events,
        }));
        Ok(n)
    }

    fn wait_poll(
        &mut self,
        kernel: &mut dyn Kernel,
        out: &mut Vec<Event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let mut fds: Vec<PollFd> = self
            .regs
            .values()
            .map(|r| PollFd::new(r.fd, r.interest))
            .collect();
        kernel.poll(&mut fds, timeout)?;
        let ready: Vec<Event> = self
            .regs
            .keys()
            .zip(&fds)
            .filter(|(_, p)| !p.revents.is_empty())
            .map(|(t, p)| Event {
                token: *t,
                events: p.revents,
            })
            .collect();
        Ok(self.take_rotating(ready, out, max))
    }

    fn wait_select(
        &mut self,
        kernel: &mut dyn Kernel,
        out: &mut Vec<Event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let mut sets = FdSets::default();
        for r in self.regs.values() {
            if r.interest.intersects(Events::IN | Events::RDHUP) {
                sets.read.push(r.fd);
            }
            if r.interest.contains(Events::OUT) {
                sets.write.push(r.fd);
            }
            if r.interest.contains(Events::PRI) {
                sets.except.push(r.fd);
            }
        }
        kernel.select(&mut sets, timeout)?;
        let ready: Vec<Event> = self
            .regs
            .iter()
            .filter_map(|(t, r)| {
                let mut events = Events::NONE;
                for (set, flag) in [
                    (&sets.read, Events::IN),
                    (&sets.write, Events::OUT),
                    (&sets.except, Events::PRI),
                ] {
                    let asked = flag == Events::IN
                        && r.interest.intersects(Events::IN | Events::RDHUP)
                        || r.interest.contains(flag);
                    if asked && set.contains(&r.fd) {
                        events |= flag;
                    }
                }
                (!events.is_empty()).then_some(Event { token: *t, events })
            })
            .collect();
        Ok(self.take_rotating(ready, out, max))
    }

    /// Reports at most `max` of `ready` (in token order), starting after where the last
    /// truncated report stopped.
    fn take_rotating(&mut self, ready: Vec<Event>, out: &mut Vec<Event>, max: usize) -> usize {
        if ready.len() <= max {
            let n = ready.len();
            out.extend(ready);
            return n;
        }
        let start = self.cursor % ready.len();
        let mut picked: Vec<Event> = ready
            .iter()
            .cycle()
            .skip(start)
            .take(max)
            .copied()
            .collect();
        picked.sort_by_key(|e| e.token);
        self.cursor = start + max;
        out.extend(picked);
        max
    }
}
