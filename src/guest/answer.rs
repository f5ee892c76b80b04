//! A guest's requests answered on the simulator: each [`Request`] the shim sends becomes the
//! calls Linux would make for it, on the [`Kernel`] of the program under test (the simulator
//! with its peers running between calls), and a [`Reply`].
//!
//! The simulator's sockets never block; a guest's may. A stepped guest's blocking call comes
//! here once its descriptor is ready ([`stepped`](super::stepped)); should it still find
//! nothing (a blocking send larger than the room left goes on until all is sent), it waits in
//! poll (virtual time passes, peers run) and tries again, the way CPython implements its own
//! timeouts; the transcript shows those polls. A wait that could never end stops the run
//! instead of hanging ([`Halt::Stop`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use selectlab_wire::{HELLO_STDIN_SIMULATED, Op, Reply, Request, put_addr, take_addr};

use super::ready;
use super::sockaddr;
use super::spawn::Console;
use super::timerfd;
use super::wait::{Answered, Halt, MAX_BLOCKING_RETRIES, settle};
use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, Fd, Kernel, PollFd, Shutdown, SockOpt, TimerSetting};
use crate::sim::interleave::Interleaved;

/// The receive flags the simulator models; a receive with any other is refused.
pub const RECV_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CMSG_CLOEXEC;

/// The send flags the simulator models; a send with any other is refused.
pub const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// Most bytes one receive returns: the reply's payload less room for the address block.
const MAX_RECV_BYTES: i64 = (selectlab_wire::MAX_DATA_BYTES - 256) as i64;

/// What selectlab knows of a guest descriptor besides what the simulator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GuestFd {
    /// O_NONBLOCK (the simulator's own descriptors never block).
    nonblocking: bool,
    /// A stream socket: a blocking send goes on until everything is sent.
    stream: bool,
    /// SO_RCVTIMEO: how long a blocking receive or accept waits (`None`: for ever).
    rcv_timeout: Option<Duration>,
    /// SO_SNDTIMEO: how long a blocking send or connect waits (`None`: for ever).
    snd_timeout: Option<Duration>,
}

impl GuestFd {
    fn new(nonblocking: bool, stream: bool) -> GuestFd {
        GuestFd {
            nonblocking,
            stream,
            rcv_timeout: None,
            snd_timeout: None,
        }
    }
}

/// How long a call may wait for its descriptor: not at all, for ever, or until a virtual time
/// (SO_RCVTIMEO, SO_SNDTIMEO), after which it fails with EAGAIN as Linux's does.
#[derive(Debug, Clone, Copy)]
enum Patience {
    None,
    Forever,
    Until(Duration),
}

/// The guest's descriptor flags, and the answers to its requests.
#[derive(Debug, Default)]
pub struct Answerer {
    fds: BTreeMap<i32, GuestFd>,
    /// The guest's standard input, when simulated ([`Sim::console_input`]), so that a program
    /// that watches its console beside its sockets runs inside.
    console: Option<Console>,
    /// Whether the console was placed at descriptor 0 (once: a program that closed it and then
    /// execs has no standard input, as under Linux).
    console_placed: bool,
}

impl Answerer {
    /// An answerer that gives the guest a simulated standard input.
    pub fn with_console(console: Console) -> Answerer {
        Answerer {
            console: Some(console),
            ..Answerer::default()
        }
    }
}

/// The C convention for a result: the value, or -1 with errno.
fn reply(r: Result<i64, Errno>) -> Reply {
    match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::err(e as i32),
    }
}

fn fd_arg(n: i64) -> Fd {
    Fd(i32::try_from(n).unwrap_or(-1))
}

/// Highest descriptor number a guest's new descriptor may take (the shim's own bound).
pub const MAX_GUEST_FD: i64 = 65_535;

/// A descriptor number the shim reserved for a new descriptor; out of range is the shim's
/// fault, refused rather than trusted (the simulator's table would grow to it).
fn new_fd(n: i64) -> Result<Fd, Halt> {
    if (0..=MAX_GUEST_FD).contains(&n) {
        Ok(Fd(n as i32))
    } else {
        refuse(format!(
            "the shim reserved descriptor {n}, outside 0..={MAX_GUEST_FD}"
        ))
    }
}

/// Random bytes for getrandom or getentropy: at most a reply's worth (a getrandom of more than
/// 256 bytes may return fewer, as Linux's may).
fn random(k: &mut Interleaved<'_>, len: i64) -> Reply {
    let len = usize::try_from(len)
        .unwrap_or(0)
        .min(selectlab_wire::MAX_DATA_BYTES);
    let mut bytes = vec![0; len];
    k.sim.entropy(&mut bytes);
    Reply::ok(len as i64).with_data(bytes)
}

/// A timer setting, or the errno.
fn timer_reply(r: Result<TimerSetting, Errno>) -> Reply {
    match r {
        Ok(set) => Reply::ok(0).with_data(timerfd::encode(set)),
        Err(e) => Reply::err(e as i32),
    }
}

fn refuse<T>(why: String) -> Result<T, Halt> {
    Err(Halt::Refuse(why))
}

impl Answerer {
    /// Answers one request of the guest.
    pub fn answer(&mut self, k: &mut Interleaved<'_>, req: &Request) -> Answered {
        let a = &req.args;
        match req.op {
            Op::Hello => Ok(self.hello(k)),
            Op::Refuse => refuse(String::from_utf8_lossy(&req.data).into_owned()),
            Op::Socket => self.socket(k, a),
            Op::SocketPair => self.socketpair(k, a),
            Op::Bind | Op::Connect => self.addressed(k, req),
            Op::Listen => Ok(reply(k.listen(fd_arg(a[0]), backlog(a[1])).map(|()| 0))),
            Op::Accept => self.accept(k, a),
            Op::Shutdown => Ok(reply(shutdown(k, a))),
            Op::Close => {
                self.fds.remove(&fd_arg(a[0]).0);
                Ok(reply(k.close(fd_arg(a[0])).map(|()| 0)))
            }
            Op::SockName | Op::PeerName => Ok(name(k, req.op, fd_arg(a[0]))),
            Op::GetSockOpt => match self.timeout_option(a) {
                Some(slot) => Ok(self.get_timeout(slot, fd_arg(a[0]))),
                None => get_option(k, a),
            },
            Op::SetSockOpt => match self.timeout_option(a) {
                Some(slot) => Ok(self.set_timeout(slot, fd_arg(a[0]), &req.data)),
                None => set_option(k, a, &req.data),
            },
            Op::GetFlags => Ok(self.get_flags(a)),
            Op::SetFlags => Ok(self.set_flags(a)),
            Op::BytesWaiting => Ok(reply(k.bytes_waiting(fd_arg(a[0])).map(|n| n as i64))),
            Op::Dup => self.dup(k, a),
            Op::Recv => self.recv(k, a),
            Op::Send => self.send(k, a, &req.data),
            Op::Poll => ready::poll(k, a, &req.data),
            Op::Select => ready::select(k, a, &req.data),
            Op::EpollCreate => self.epoll_create(k, a),
            Op::EventFd => self.eventfd(k, a),
            Op::TimerFdCreate => self.timerfd(k, a),
            Op::TimerFdSettime => Ok(match timerfd::settime(a) {
                Ok((absolute, new)) => timer_reply(k.timerfd_settime(fd_arg(a[0]), absolute, new)),
                Err(e) => Reply::err(e as i32),
            }),
            Op::TimerFdGettime => Ok(timer_reply(k.timerfd_gettime(fd_arg(a[0])))),
            Op::EpollCtl => ready::epoll_ctl(k, a),
            Op::EpollWait => ready::epoll_wait(k, a),
            Op::Clock => Ok(Reply::ok(ready::clock_ns(k, a[0]))),
            Op::Sleep => Ok(ready::sleep(a)),
            Op::Resolve => Ok(resolve(k, a[0], &req.data)),
            Op::HostName => Ok(host_name(k, &req.data)),
            Op::Random => Ok(random(k, a[0])),
            // A parked program's words to selectlab, never a call (the channel reads them).
            Op::Forked | Op::Exited => Err(Halt::Refuse(format!(
                "the shim sent {:?} in place of a call",
                req.op
            ))),
        }
    }

    /// A hello: the program starting, or the same process after an exec. Its simulated
    /// descriptors do not survive an exec (their placeholders are close-on-exec), so they are
    /// closed here, as the kernel closes close-on-exec descriptors.
    fn hello(&mut self, k: &mut Interleaved<'_>) -> Reply {
        // Standard input outlives an exec (only the shim's placeholder for it is closed, and
        // the new image's shim places it again): a launcher that execs its interpreter leaves
        // no trace of it in the transcript.
        let stdin = self.fds.remove(&0).filter(|_| self.console.is_some());
        self.close_all(k);
        if let Some(stdin) = stdin {
            self.fds.insert(0, stdin);
            return Reply::ok(HELLO_STDIN_SIMULATED);
        }
        let Some(console) = self.console.as_ref().filter(|_| !self.console_placed) else {
            return Reply::ok(0);
        };
        self.console_placed = true;
        k.sim.place_next_fds(&[Fd(0)]);
        let stdin = k.sim.console_input(console.contents());
        k.sim.clear_placed_fds();
        match stdin {
            Ok(fd) => {
                let terminal = GuestFd::new(false, false);
                self.fds.insert(fd.0, terminal);
                Reply::ok(HELLO_STDIN_SIMULATED)
            }
            Err(e) => Reply::err(e as i32),
        }
    }

    /// Closes every simulated descriptor of the guest, as the kernel does when a process
    /// exits (or, for close-on-exec ones, execs).
    pub fn close_all(&mut self, k: &mut Interleaved<'_>) {
        for fd in std::mem::take(&mut self.fds).into_keys() {
            let _ = k.close(Fd(fd));
        }
    }

    /// Whether `fd` is a blocking descriptor of this guest.
    pub fn blocking(&self, fd: Fd) -> bool {
        self.fds.get(&fd.0).is_some_and(|f| !f.nonblocking)
    }

    /// How long a blocking call on `fd` waiting for `events` may wait (SO_RCVTIMEO for input,
    /// SO_SNDTIMEO for output), if it is bounded.
    pub fn timeout(&self, fd: Fd, events: Events) -> Option<Duration> {
        let f = self.fds.get(&fd.0)?;
        if events.contains(Events::IN) {
            f.rcv_timeout
        } else {
            f.snd_timeout
        }
    }

    /// Which timeout a getsockopt or setsockopt names (SO_RCVTIMEO: input, SO_SNDTIMEO:
    /// output), if one: selectlab keeps them, as the simulator has no blocking calls.
    fn timeout_option(&self, a: &[i64; 6]) -> Option<Events> {
        match (a[1] as i32, a[2] as i32) {
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => Some(Events::IN),
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => Some(Events::OUT),
            _ => None,
        }
    }

    /// getsockopt of SO_RCVTIMEO or SO_SNDTIMEO: a struct timeval, zero for "for ever".
    fn get_timeout(&self, slot: Events, fd: Fd) -> Reply {
        if !self.fds.contains_key(&fd.0) {
            return Reply::err(Errno::EBADF as i32);
        }
        let t = self.timeout(fd, slot).unwrap_or_default();
        let timeval = [
            (t.as_secs() as i64).to_le_bytes(),
            i64::from(t.subsec_micros()).to_le_bytes(),
        ];
        Reply::ok(0).with_data(timeval.concat())
    }

    /// setsockopt of SO_RCVTIMEO or SO_SNDTIMEO, as sock_set_timeout reads its struct timeval:
    /// too short is EINVAL, microseconds outside a second EDOM, zero "for ever", a negative
    /// time "no wait at all". Linux keeps it in ticks (1/HZ s) and rounds up to one; this
    /// keeps it to the microsecond.
    fn set_timeout(&mut self, slot: Events, fd: Fd, value: &[u8]) -> Reply {
        let word = |i: usize| {
            value
                .get(i..i + 8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let (Some(secs), Some(micros)) = (word(0), word(8)) else {
            return Reply::err(Errno::EINVAL as i32);
        };
        if !(0..1_000_000).contains(&micros) {
            return Reply::err(Errno::EDOM as i32);
        }
        let timeout = match (secs, micros) {
            (0, 0) => None,
            (s, _) if s < 0 => Some(Duration::ZERO),
            (s, m) => Some(Duration::from_secs(s as u64) + Duration::from_micros(m as u64)),
        };
        let Some(f) = self.fds.get_mut(&fd.0) else {
            return Reply::err(Errno::EBADF as i32);
        };
        if slot == Events::IN {
            f.rcv_timeout = timeout;
        } else {
            f.snd_timeout = timeout;
        }
        Reply::ok(0)
    }

    /// How long a call on `fd` waiting for `events` may wait, from now.
    fn patience(&self, k: &Interleaved<'_>, fd: Fd, events: Events, dontwait: bool) -> Patience {
        if !self.blocking(fd) || dontwait {
            return Patience::None;
        }
        match self.timeout(fd, events) {
            Some(t) => Patience::Until(k.sim.now().saturating_add(t)),
            None => Patience::Forever,
        }
    }

    fn socket(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let family = match a[0] as i32 {
            libc::AF_INET => Family::Inet,
            libc::AF_INET6 => Family::Inet6,
            libc::AF_UNIX => Family::Unix,
            other => {
                return refuse(format!(
                    "socket family {other} is not simulated (AF_INET, AF_INET6 and AF_UNIX are)"
                ));
            }
        };
        let (ty, nonblocking) = match sock_type(a[1]) {
            Ok(t) => t,
            Err(e) => return Ok(Reply::err(e as i32)),
        };
        if let Err(e) = check_protocol(family, ty, a[2]) {
            return Ok(Reply::err(e as i32));
        }
        k.sim.place_next_fds(&[new_fd(a[3])?]);
        let made = k.socket(family, ty);
        k.sim.clear_placed_fds();
        self.note_new(
            made.as_ref().ok().copied(),
            nonblocking,
            ty == SockType::Stream,
        );
        Ok(reply(made.map(|fd| fd.0.into())))
    }

    fn socketpair(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        if a[0] as i32 != libc::AF_UNIX {
            return Ok(Reply::err(Errno::EOPNOTSUPP as i32));
        }
        let (ty, nonblocking) = match sock_type(a[1]) {
            Ok(t) => t,
            Err(e) => return Ok(Reply::err(e as i32)),
        };
        k.sim.place_next_fds(&[new_fd(a[3])?, new_fd(a[4])?]);
        let made = k.socketpair(ty);
        k.sim.clear_placed_fds();
        if let Ok((x, y)) = made {
            self.note_new(Some(x), nonblocking, ty == SockType::Stream);
            self.note_new(Some(y), nonblocking, ty == SockType::Stream);
        }
        Ok(reply(made.map(|_| 0)))
    }

    fn note_new(&mut self, fd: Option<Fd>, nonblocking: bool, stream: bool) {
        if let Some(fd) = fd {
            self.fds.insert(fd.0, GuestFd::new(nonblocking, stream));
        }
    }

    /// bind and connect; a blocking connect waits for the handshake and reports its outcome.
    fn addressed(&mut self, k: &mut Interleaved<'_>, req: &Request) -> Answered {
        let fd = fd_arg(req.args[0]);
        let addr = match guest_addr(&req.data) {
            Ok(addr) => addr,
            Err(answered) => return answered,
        };
        if req.op == Op::Bind {
            let bound = k.bind(fd, &addr);
            if bound == Err(Errno::EADDRINUSE) && k.sim.shares_port(fd, &addr) {
                return refuse(
                    "a port shared by SO_REUSEPORT sockets is not simulated (Linux spreads \
                     connections across the group)"
                        .to_string(),
                );
            }
            return Ok(reply(bound.map(|()| 0)));
        }
        match k.connect(fd, &addr) {
            Err(Errno::EINPROGRESS) if self.blocking(fd) => {
                let patience = self.patience(k, fd, Events::OUT, false);
                if !block(k, fd, Events::OUT, "connect", patience)? {
                    // SO_SNDTIMEO ran out with the handshake under way.
                    return Ok(Reply::err(Errno::EINPROGRESS as i32));
                }
                Ok(match k.getsockopt(fd, SockOpt::Error) {
                    Ok(0) => Reply::ok(0),
                    Ok(e) => Reply::err(e),
                    Err(e) => Reply::err(e as i32),
                })
            }
            r => Ok(reply(r.map(|()| 0))),
        }
    }

    fn accept(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let (fd, flags, new) = (fd_arg(a[0]), a[1] as i32, new_fd(a[2])?);
        if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
            return Ok(Reply::err(Errno::EINVAL as i32));
        }
        let patience = self.patience(k, fd, Events::IN, false);
        let got = retry_while_blocked(k, patience, fd, Events::IN, "accept", |k| {
            k.sim.place_next_fds(&[new]);
            let got = k.accept(fd);
            k.sim.clear_placed_fds();
            got
        })?;
        Ok(match got {
            Ok((child, peer)) => {
                let stream = self.fds.get(&fd.0).is_none_or(|f| f.stream);
                self.note_new(Some(child), flags & libc::SOCK_NONBLOCK != 0, stream);
                Reply::ok(child.0.into()).with_data(sockaddr::encode(&peer))
            }
            Err(e) => Reply::err(e as i32),
        })
    }

    fn get_flags(&self, a: &[i64; 6]) -> Reply {
        match self.fds.get(&fd_arg(a[0]).0) {
            Some(f) => Reply::ok(i64::from(
                libc::O_RDWR | if f.nonblocking { libc::O_NONBLOCK } else { 0 },
            )),
            None => Reply::err(Errno::EBADF as i32),
        }
    }

    fn set_flags(&mut self, a: &[i64; 6]) -> Reply {
        match self.fds.get_mut(&fd_arg(a[0]).0) {
            Some(f) => {
                f.nonblocking = a[1] as i32 & libc::O_NONBLOCK != 0;
                Reply::ok(0)
            }
            None => Reply::err(Errno::EBADF as i32),
        }
    }

    /// dup, dup2, dup3, F_DUPFD: the new number was reserved by the shim; a simulated
    /// descriptor there is closed first, as dup2 does.
    fn dup(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let (fd, new) = (fd_arg(a[0]), new_fd(a[1])?);
        let Some(&info) = self.fds.get(&fd.0) else {
            return Ok(Reply::err(Errno::EBADF as i32));
        };
        if self.fds.remove(&new.0).is_some() {
            let _ = k.close(new);
        }
        k.sim.place_next_fds(&[new]);
        let made = k.dup(fd);
        k.sim.clear_placed_fds();
        if let Ok(copy) = made {
            self.fds.insert(copy.0, info);
        }
        Ok(reply(made.map(|fd| fd.0.into())))
    }

    fn recv(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let (fd, len, flags, want_addr) = (
            fd_arg(a[0]),
            a[1].clamp(0, MAX_RECV_BYTES) as usize,
            a[2] as i32,
            a[3] != 0,
        );
        if flags & !RECV_FLAGS != 0 {
            return refuse(format!(
                "recv flags {:#x} are not simulated (MSG_PEEK, MSG_WAITALL, MSG_OOB, MSG_TRUNC)",
                flags & !RECV_FLAGS
            ));
        }
        let patience = self.patience(k, fd, Events::IN, flags & libc::MSG_DONTWAIT != 0);
        let mut buf = vec![0; len];
        let got = retry_while_blocked(k, patience, fd, Events::IN, "recv", |k| {
            if want_addr {
                k.recvfrom(fd, &mut buf)
            } else {
                k.recv(fd, &mut buf).map(|n| (n, None))
            }
        })?;
        Ok(match got {
            Ok((n, from)) => {
                let mut data = Vec::with_capacity(n + 32);
                put_addr(
                    &mut data,
                    &from.map(|a| sockaddr::encode(&a)).unwrap_or_default(),
                );
                data.extend_from_slice(&buf[..n]);
                Reply::ok(n as i64).with_data(data)
            }
            Err(e) => Reply::err(e as i32),
        })
    }

    /// send and sendto: a blocking stream send goes on (waiting for room) until all is sent.
    fn send(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6], data: &[u8]) -> Answered {
        let (fd, flags) = (fd_arg(a[0]), a[1] as i32);
        if flags & !SEND_FLAGS != 0 {
            return refuse(format!(
                "send flags {:#x} are not simulated (MSG_MORE, MSG_OOB, MSG_DONTROUTE)",
                flags & !SEND_FLAGS
            ));
        }
        let Ok((to, bytes)) = take_addr(data) else {
            return refuse("a send request without its address block".to_string());
        };
        let to = match to {
            [] => None,
            to => match guest_addr(to) {
                Ok(addr) => Some(addr),
                Err(answered) => return answered,
            },
        };
        let patience = self.patience(k, fd, Events::OUT, flags & libc::MSG_DONTWAIT != 0);
        let blocking = !matches!(patience, Patience::None);
        let stream = self.fds.get(&fd.0).is_some_and(|f| f.stream);
        let mut sent = 0;
        for _ in 0..MAX_BLOCKING_RETRIES {
            let rest = &bytes[sent..];
            let r = retry_while_blocked(k, patience, fd, Events::OUT, "send", |k| match &to {
                Some(addr) => k.sendto(fd, rest, addr),
                None => k.send(fd, rest),
            })?;
            match r {
                Ok(n) => sent += n,
                Err(e) if sent == 0 => return Ok(Reply::err(e as i32)),
                Err(_) => break,
            }
            if sent == bytes.len() || !blocking || !stream {
                break;
            }
        }
        Ok(Reply::ok(sent as i64))
    }

    /// eventfd: EFD_SEMAPHORE, EFD_NONBLOCK and EFD_CLOEXEC; any other flag is EINVAL.
    fn eventfd(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let flags = a[1] as i32;
        let known = libc::EFD_SEMAPHORE | libc::EFD_NONBLOCK | libc::EFD_CLOEXEC;
        if flags & !known != 0 {
            return Ok(Reply::err(Errno::EINVAL as i32));
        }
        k.sim.place_next_fds(&[new_fd(a[2])?]);
        let made = k.eventfd(a[0] as u32, flags & libc::EFD_SEMAPHORE != 0);
        k.sim.clear_placed_fds();
        let nonblocking = flags & libc::EFD_NONBLOCK != 0;
        self.note_new(made.as_ref().ok().copied(), nonblocking, false);
        Ok(reply(made.map(|fd| fd.0.into())))
    }

    /// timerfd_create: the three clocks Linux lets anyone use; an alarm clock is refused.
    fn timerfd(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        let (clock, nonblocking) = match timerfd::create(a[0], a[1]) {
            timerfd::Create::Timer { clock, nonblocking } => (clock, nonblocking),
            timerfd::Create::Alarm => {
                return refuse(
                    "timerfd_create on an alarm clock (CLOCK_REALTIME_ALARM, \
                     CLOCK_BOOTTIME_ALARM): the simulated machine never suspends"
                        .to_string(),
                );
            }
            timerfd::Create::Error(e) => return Ok(Reply::err(e as i32)),
        };
        k.sim.place_next_fds(&[new_fd(a[2])?]);
        let made = k.timerfd(clock);
        k.sim.clear_placed_fds();
        self.note_new(made.as_ref().ok().copied(), nonblocking, false);
        Ok(reply(made.map(|fd| fd.0.into())))
    }

    fn epoll_create(&mut self, k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
        if a[0] as i32 & !libc::EPOLL_CLOEXEC != 0 {
            return Ok(Reply::err(Errno::EINVAL as i32));
        }
        k.sim.place_next_fds(&[new_fd(a[1])?]);
        let made = k.epoll_create();
        k.sim.clear_placed_fds();
        self.note_new(made.as_ref().ok().copied(), false, false);
        Ok(reply(made.map(|fd| fd.0.into())))
    }
}

/// Makes a call; while it would block on a blocking descriptor, waits for `events` and makes it
/// again. Returns the call's last result.
fn retry_while_blocked<T>(
    k: &mut Interleaved<'_>,
    patience: Patience,
    fd: Fd,
    events: Events,
    what: &str,
    mut call: impl FnMut(&mut Interleaved<'_>) -> Result<T, Errno>,
) -> Result<Result<T, Errno>, Halt> {
    for _ in 0..MAX_BLOCKING_RETRIES {
        match call(k) {
            Err(Errno::EAGAIN) if !matches!(patience, Patience::None) => {
                if !block(k, fd, events, what, patience)? {
                    return Ok(Err(Errno::EAGAIN));
                }
            }
            r => return Ok(r),
        }
    }
    Err(Halt::Stop(format!(
        "{what} on descriptor {} stayed blocked after {MAX_BLOCKING_RETRIES} wake-ups",
        fd.0
    )))
}

/// Waits, in virtual time with the peers running, until `fd` reports `events` (or an error):
/// whether it does before `patience` runs out.
fn block(
    k: &mut Interleaved<'_>,
    fd: Fd,
    events: Events,
    what: &str,
    patience: Patience,
) -> Result<bool, Halt> {
    let wanted = events | Events::ERR | Events::HUP;
    for _ in 0..MAX_BLOCKING_RETRIES {
        settle(k, |sim| sim.ready_now(fd).intersects(wanted));
        let timeout = match patience {
            Patience::None => Some(Duration::ZERO),
            Patience::Forever => None,
            Patience::Until(t) => Some(t.saturating_sub(k.sim.now())),
        };
        match k.sim.poll(&mut [PollFd::new(fd, events)], timeout) {
            Ok(0) if timeout.is_some() => return Ok(false),
            Ok(_) => return Ok(true),
            // A blocking socket call is restarted after a signal handler ran (SA_RESTART, and
            // CPython retries by itself): the program never sees this EINTR.
            Err(Errno::EINTR) => {}
            Err(Errno::EDEADLK) => {
                return Err(Halt::Stop(format!(
                    "the program blocks for ever in {what} on descriptor {}: nothing can wake it",
                    fd.0
                )));
            }
            Err(e) => return Err(Halt::Stop(format!("waiting in {what}: {e}"))),
        }
    }
    Err(Halt::Stop(format!(
        "{what} was interrupted {MAX_BLOCKING_RETRIES} times"
    )))
}

fn backlog(n: i64) -> u32 {
    // Linux reads the backlog as unsigned and clamps it to somaxconn: a negative one is large.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A socket type argument: the type and whether SOCK_NONBLOCK was given.
fn sock_type(n: i64) -> Result<(SockType, bool), Errno> {
    let n = n as i32;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let ty = match n & !flags {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM => SockType::Dgram,
        libc::SOCK_SEQPACKET => SockType::SeqPacket,
        libc::SOCK_RAW => SockType::Raw,
        _ => return Err(Errno::EINVAL),
    };
    Ok((ty, n & libc::SOCK_NONBLOCK != 0))
}

fn check_protocol(family: Family, ty: SockType, protocol: i64) -> Result<(), Errno> {
    let fits = matches!(
        (family, ty, protocol as i32),
        (_, _, 0)
            | (Family::Unix, _, 1)
            | (
                Family::Inet | Family::Inet6,
                SockType::Stream,
                libc::IPPROTO_TCP
            )
            | (
                Family::Inet | Family::Inet6,
                SockType::Dgram,
                libc::IPPROTO_UDP
            )
            | (Family::Inet | Family::Inet6, SockType::Raw, _)
    );
    if fits {
        Ok(())
    } else {
        Err(Errno::EPROTONOSUPPORT)
    }
}

fn shutdown(k: &mut Interleaved<'_>, a: &[i64; 6]) -> Result<i64, Errno> {
    let how = match a[1] as i32 {
        libc::SHUT_RD => Shutdown::Read,
        libc::SHUT_WR => Shutdown::Write,
        libc::SHUT_RDWR => Shutdown::Both,
        _ => return Err(Errno::EINVAL),
    };
    k.shutdown(fd_arg(a[0]), how).map(|()| 0)
}

fn name(k: &mut Interleaved<'_>, op: Op, fd: Fd) -> Reply {
    let got = if op == Op::SockName {
        k.getsockname(fd)
    } else {
        k.getpeername(fd)
    };
    match got {
        Ok(addr) => Reply::ok(0).with_data(sockaddr::encode(&addr)),
        Err(e) => Reply::err(e as i32),
    }
}

/// The options selectlab simulates, by (level, name).
fn option(level: i64, name: i64) -> Result<SockOpt, Halt> {
    Ok(match (level as i32, name as i32) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOpt::ReuseAddr,
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => SockOpt::ReusePort,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOpt::KeepAlive,
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOpt::RcvBuf,
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOpt::SndBuf,
        (libc::SOL_SOCKET, libc::SO_ERROR) => SockOpt::Error,
        (libc::SOL_SOCKET, libc::SO_BROADCAST) => SockOpt::Broadcast,
        (libc::SOL_SOCKET, libc::SO_LINGER) => SockOpt::Linger,
        (libc::SOL_SOCKET, libc::SO_TYPE) => SockOpt::Type,
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOpt::TcpNoDelay,
        (level, name) => {
            return refuse(format!(
                "socket option level {level} name {name} is not simulated"
            ));
        }
    })
}

fn get_option(k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
    let opt = option(a[1], a[2])?;
    Ok(match k.getsockopt(fd_arg(a[0]), opt) {
        // struct linger { int l_onoff; int l_linger; }; the simulator says -1 for off.
        Ok(v) if opt == SockOpt::Linger => {
            let (on, secs) = if v < 0 { (0i32, 0i32) } else { (1, v) };
            Reply::ok(0).with_data([on.to_le_bytes(), secs.to_le_bytes()].concat())
        }
        Ok(v) => Reply::ok(0).with_data(v.to_le_bytes().to_vec()),
        Err(e) => Reply::err(e as i32),
    })
}

fn set_option(k: &mut Interleaved<'_>, a: &[i64; 6], value: &[u8]) -> Answered {
    let opt = option(a[1], a[2])?;
    let int_at = |i: usize| {
        value
            .get(i..i + 4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let v = if opt == SockOpt::Linger {
        match (int_at(0), int_at(4)) {
            (Some(0), Some(_)) => Some(-1),
            (Some(_), Some(secs)) => Some(secs),
            _ => None,
        }
    } else {
        int_at(0)
    };
    let Some(v) = v else {
        return Ok(Reply::err(Errno::EINVAL as i32));
    };
    Ok(reply(k.setsockopt(fd_arg(a[0]), opt, v).map(|()| 0)))
}

/// getaddrinfo's lookup on the simulator's host table: ret 0 and the addresses, or the
/// negative EAI code.
fn resolve(k: &mut Interleaved<'_>, family: i64, name: &[u8]) -> Reply {
    let name = String::from_utf8_lossy(name);
    let families: &[Family] = match family as i32 {
        libc::AF_UNSPEC => &[Family::Inet, Family::Inet6],
        libc::AF_INET => &[Family::Inet],
        libc::AF_INET6 => &[Family::Inet6],
        _ => return Reply::ok(i64::from(crate::error::Gai::Family.code())),
    };
    let mut found = Vec::new();
    let mut first_error = None;
    for &f in families {
        match k.resolve(&name, f) {
            Ok(ips) => found.extend(ips),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if found.is_empty() {
        let code = first_error.map_or(crate::error::Gai::NoName.code(), |e| e.code());
        return Reply::ok(i64::from(code));
    }
    let mut data = Vec::with_capacity(found.len() * 17);
    for ip in found {
        // One byte of version, then 16 bytes (an IPv4 address in the first four).
        let mut octets = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                data.push(4);
                octets[..4].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                data.push(6);
                octets = v6.octets();
            }
        }
        data.extend_from_slice(&octets);
    }
    Reply::ok(0).with_data(data)
}

/// An address the program passed (bind, connect, sendto): an abstract AF_UNIX name is refused,
/// a malformed one answered with Linux's errno.
fn guest_addr(data: &[u8]) -> Result<SockAddr, Answered> {
    match sockaddr::parse(data) {
        Ok(addr) => Ok(addr),
        Err(Errno::EOPNOTSUPP) => Err(refuse(
            "abstract AF_UNIX names are not simulated".to_string(),
        )),
        Err(e) => Err(Ok(Reply::err(e as i32))),
    }
}

/// getnameinfo's reverse lookup: the name, or -1.
fn host_name(k: &mut Interleaved<'_>, addr: &[u8]) -> Reply {
    match sockaddr::parse(addr) {
        Ok(SockAddr::Inet(sa)) => match k.host_by_addr(sa.ip()) {
            Ok(name) => Reply::ok(0).with_data(name.into_bytes()),
            Err(_) => Reply::err(Errno::ENOENT as i32),
        },
        _ => Reply::err(Errno::EAFNOSUPPORT as i32),
    }
}
