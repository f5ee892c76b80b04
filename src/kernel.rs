//! The boundary: one trait for "the kernel", implemented by the real Linux kernel
//! ([`crate::real_kernel::RealKernel`]) and by the simulator ([`crate::sim::Sim`]).
//!
//! Everything above this trait (the Python-style [`crate::socket::Socket`], the programs, the
//! scenario runner, the tests) is written once and runs unchanged on either transport.
//!
//! Calls are at the file-descriptor level and never block: every socket and pipe is created
//! non-blocking and close-on-exec, and the only call that waits is [`Kernel::poll`]. Blocking
//! behaviour (Python's `settimeout`) is built on top, the way CPython itself does it.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::error::{Gai, SockError};

/// A file descriptor number, as the kernel hands it out (lowest free number first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fd(pub i32);

impl fmt::Display for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fd{}", self.0)
    }
}

/// Which direction `shutdown` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shutdown {
    /// SHUT_RD.
    Read,
    /// SHUT_WR: sends FIN; the peer reads end of stream.
    Write,
    /// SHUT_RDWR.
    Both,
}

/// The socket options selectlab supports (level and name folded into one enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SockOpt {
    /// SOL_SOCKET/SO_REUSEADDR (0 or 1).
    ReuseAddr,
    /// SOL_SOCKET/SO_KEEPALIVE (0 or 1).
    KeepAlive,
    /// SOL_SOCKET/SO_RCVBUF in bytes; Linux doubles the value set and reports the double.
    RcvBuf,
    /// SOL_SOCKET/SO_SNDBUF in bytes; doubled like SO_RCVBUF.
    SndBuf,
    /// SOL_SOCKET/SO_ERROR (read-only): returns and clears the pending error.
    Error,
    /// SOL_SOCKET/SO_BROADCAST (0 or 1).
    Broadcast,
    /// SOL_SOCKET/SO_LINGER: seconds, or -1 for "off". Linger 0 makes close send an RST.
    Linger,
    /// SOL_SOCKET/SO_TYPE (read-only).
    Type,
    /// IPPROTO_TCP/TCP_NODELAY (0 or 1); ENOPROTOOPT on non-TCP sockets.
    TcpNoDelay,
    /// SOL_SOCKET/SO_REUSEPORT (0 or 1); EOPNOTSUPP to set on an AF_UNIX socket (Linux 6.x).
    /// In the simulator a port may not be shared by it: see [`crate::sim::Sim::shares_port`].
    ReusePort,
}

bitflags::bitflags! {
    /// Readiness flags, as poll(2) names them (and as epoll reports them). The bit values are
    /// selectlab's own; each transport maps them to its kernel's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct Events: u16 {
        /// POLLIN: data to read, end of stream, or a connection to accept.
        const IN = 1;
        /// POLLOUT: room to write.
        const OUT = 1 << 1;
        /// POLLERR: a pending error (always reported, never requested).
        const ERR = 1 << 2;
        /// POLLHUP: both directions shut (always reported, never requested).
        const HUP = 1 << 3;
        /// POLLRDHUP: the peer shut its writing half.
        const RDHUP = 1 << 4;
        /// POLLPRI: urgent data.
        const PRI = 1 << 5;
        /// POLLNVAL: the descriptor is not open (poll only).
        const NVAL = 1 << 6;
    }
}

impl Events {
    /// No flags.
    pub const NONE: Events = Events::empty();
}

impl fmt::Display for Events {
    /// `in,out,hup` in the order the flags are declared (the scenario format's), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, (name, _)) in self.iter_names().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&name.to_ascii_lowercase())?;
        }
        Ok(())
    }
}

/// One entry of a poll(2) call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor to watch.
    pub fd: Fd,
    /// What the caller asks for (ERR, HUP and NVAL are reported regardless).
    pub events: Events,
    /// What the kernel reported.
    pub revents: Events,
}

impl PollFd {
    /// An entry asking for `events` on `fd`.
    pub fn new(fd: Fd, events: Events) -> PollFd {
        PollFd {
            fd,
            events,
            revents: Events::NONE,
        }
    }
}

/// Most buffers one vectored send may gather (Linux's IOV_MAX).
pub const IOV_MAX: usize = 1024;

/// epoll_wait's largest `maxevents` (Linux's EP_MAX_EVENTS: INT_MAX / sizeof(struct epoll_event)).
pub const EP_MAX_EVENTS: usize = (i32::MAX as usize) / 12;

/// Select's limit: descriptors at or above it do not fit in an `fd_set` (Linux's FD_SETSIZE).
pub const FD_SETSIZE: i32 = 1024;

/// epoll's notification modes (EPOLLET, EPOLLONESHOT); both off is level-triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mode {
    /// EPOLLET: report a change once, not the state on every wait.
    pub edge: bool,
    /// EPOLLONESHOT: after one report, disable until EPOLL_CTL_MOD.
    pub oneshot: bool,
}

impl Mode {
    /// Level-triggered, the default.
    pub const LEVEL: Mode = Mode {
        edge: false,
        oneshot: false,
    };
    /// Edge-triggered.
    pub const EDGE: Mode = Mode {
        edge: true,
        oneshot: false,
    };
    /// Level-triggered, one report per arming.
    pub const ONESHOT: Mode = Mode {
        edge: false,
        oneshot: true,
    };
}

/// epoll_ctl's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CtlOp {
    /// EPOLL_CTL_ADD.
    Add,
    /// EPOLL_CTL_MOD.
    Modify,
    /// EPOLL_CTL_DEL.
    Delete,
}

/// select(2)'s three sets: on return each keeps only its ready descriptors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdSets {
    /// readfds: readable, at end of stream, or in error.
    pub read: Vec<Fd>,
    /// writefds: writable or in error.
    pub write: Vec<Fd>,
    /// exceptfds: urgent data.
    pub except: Vec<Fd>,
}

/// The clocks a timerfd counts on. The alarm clocks, which need CAP_WAKE_ALARM and wake a
/// suspended machine, are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerClock {
    /// CLOCK_REALTIME: the wall clock.
    Realtime,
    /// CLOCK_MONOTONIC.
    Monotonic,
    /// CLOCK_BOOTTIME: monotonic, counting suspend (none in the simulator).
    Boottime,
}

/// A timespec as a caller passes it, unchecked: a bad one (a negative second, or nanoseconds of
/// a whole second or more) reaches the kernel, which answers EINVAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timespec {
    /// tv_sec.
    pub secs: i64,
    /// tv_nsec.
    pub nanos: i64,
}

/// Seconds with nine decimals (`1.500000000 s`); an invalid one as its two fields.
impl fmt::Display for Timespec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.duration() {
            Some(d) => write!(f, "{}.{:09} s", d.as_secs(), d.subsec_nanos()),
            None => write!(f, "{{{} s, {} ns}}", self.secs, self.nanos),
        }
    }
}

impl Timespec {
    /// Nanoseconds in a second.
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    /// The timespec of a duration (seconds past i64::MAX saturate).
    pub fn of(d: Duration) -> Timespec {
        Timespec {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i64::from(d.subsec_nanos()),
        }
    }

    /// The duration, or None for a timespec the kernel calls invalid (timespec64_valid).
    pub fn duration(self) -> Option<Duration> {
        let secs = u64::try_from(self.secs).ok()?;
        let nanos = u32::try_from(self.nanos).ok()?;
        (i64::from(nanos) < Self::NANOS_PER_SEC).then(|| Duration::new(secs, nanos))
    }
}

/// An itimerspec: when the timer next fires (zero: disarmed) and then how often (zero: once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerSetting {
    /// it_value: the first expiration (time left, or with TFD_TIMER_ABSTIME a time on the
    /// timer's clock).
    pub value: Timespec,
    /// it_interval: the period after it.
    pub interval: Timespec,
}

/// The socket calls of the tutorial's table, at the descriptor level, on one transport.
///
/// Every method returns Linux's errno on failure; the same call sequence gives the same results
/// on both implementations (that is what the differential tests check).
pub trait Kernel {
    /// Which transport this is: `real` or `sim`.
    fn transport(&self) -> &'static str;
    /// socket(2), non-blocking and close-on-exec.
    fn socket(&mut self, family: Family, ty: SockType) -> Result<Fd, Errno>;
    /// socketpair(2) for AF_UNIX.
    fn socketpair(&mut self, ty: SockType) -> Result<(Fd, Fd), Errno>;
    /// pipe2(2): (read end, write end).
    fn pipe(&mut self) -> Result<(Fd, Fd), Errno>;
    /// eventfd(2), non-blocking and close-on-exec: a counter that starts at `initval`;
    /// `semaphore` is EFD_SEMAPHORE (a read takes 1). Read and written with recv and send.
    fn eventfd(&mut self, initval: u32, semaphore: bool) -> Result<Fd, Errno>;
    /// timerfd_create(2), non-blocking and close-on-exec, disarmed. A read (recv, 8 bytes or
    /// more) takes the count of expirations since the last read; it is readable while there
    /// are some.
    fn timerfd(&mut self, clock: TimerClock) -> Result<Fd, Errno>;
    /// timerfd_settime(2): arms the timer, or disarms it with a zero value, and forgets the
    /// expirations not read yet. `absolute` is TFD_TIMER_ABSTIME: the value is a time on the
    /// timer's clock ([`Kernel::clock`]). Returns the setting it replaced, as
    /// [`Kernel::timerfd_gettime`] would have.
    fn timerfd_settime(
        &mut self,
        fd: Fd,
        absolute: bool,
        new: TimerSetting,
    ) -> Result<TimerSetting, Errno>;
    /// timerfd_gettime(2): the time left to the next expiration (zero: none) and the period.
    fn timerfd_gettime(&mut self, fd: Fd) -> Result<TimerSetting, Errno>;
    /// dup(2): a new descriptor for the same open file.
    fn dup(&mut self, fd: Fd) -> Result<Fd, Errno>;
    /// bind(2).
    fn bind(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno>;
    /// listen(2); the backlog is clamped to SOMAXCONN as Linux does.
    fn listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno>;
    /// accept4(2); the new socket is non-blocking too.
    fn accept(&mut self, fd: Fd) -> Result<(Fd, SockAddr), Errno>;
    /// connect(2); a TCP connect returns EINPROGRESS and completes in the background.
    fn connect(&mut self, fd: Fd, addr: &SockAddr) -> Result<(), Errno>;
    /// recv(2), or read(2) on a pipe; `Ok(0)` is end of stream (or an empty datagram).
    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno>;
    /// send(2) with MSG_NOSIGNAL, or write(2) on a pipe; may accept fewer bytes than given.
    fn send(&mut self, fd: Fd, buf: &[u8]) -> Result<usize, Errno>;
    /// sendmsg(2) with several buffers (at most [`IOV_MAX`]) and MSG_NOSIGNAL, or writev(2) on
    /// a pipe: the buffers go out as one byte sequence, in one call; may accept fewer bytes.
    fn send_vectored(&mut self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno>;
    /// recvfrom(2): the byte count and the sender's address (if the socket type has one).
    fn recvfrom(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, Option<SockAddr>), Errno>;
    /// sendto(2) with MSG_NOSIGNAL.
    fn sendto(&mut self, fd: Fd, buf: &[u8], addr: &SockAddr) -> Result<usize, Errno>;
    /// shutdown(2).
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno>;
    /// close(2).
    fn close(&mut self, fd: Fd) -> Result<(), Errno>;
    /// getsockname(2).
    fn getsockname(&mut self, fd: Fd) -> Result<SockAddr, Errno>;
    /// getpeername(2).
    fn getpeername(&mut self, fd: Fd) -> Result<SockAddr, Errno>;
    /// setsockopt(2).
    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: i32) -> Result<(), Errno>;
    /// getsockopt(2).
    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<i32, Errno>;
    /// ioctl(FIONREAD): the bytes a read would find — a stream's whole queue, the next
    /// datagram's or record's size (0 when there is none), a pipe's contents. EINVAL on a
    /// listening TCP socket, as Linux answers.
    fn bytes_waiting(&mut self, fd: Fd) -> Result<usize, Errno>;
    /// poll(2): fills each entry's `revents`; `None` waits for ever. Returns the count of ready
    /// entries. The simulator advances its virtual clock instead of sleeping.
    fn poll(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno>;
    /// fcntl(F_DUPFD_CLOEXEC): a new descriptor ≥ `min` for the same open file.
    fn dup_min(&mut self, fd: Fd, min: i32) -> Result<Fd, Errno>;
    /// epoll_create1(EPOLL_CLOEXEC).
    fn epoll_create(&mut self) -> Result<Fd, Errno>;
    /// epoll_ctl(2). ERR and HUP are always watched, whatever `interest` says; `data` comes back
    /// with each event (selectlab passes a token).
    fn epoll_ctl(
        &mut self,
        epfd: Fd,
        op: CtlOp,
        fd: Fd,
        interest: Events,
        mode: Mode,
        data: u64,
    ) -> Result<(), Errno>;
    /// epoll_wait(2): appends at most `max` (data, events) pairs to `out`; returns how many.
    /// `max` of 0 or above [`EP_MAX_EVENTS`] is EINVAL.
    fn epoll_wait(
        &mut self,
        epfd: Fd,
        out: &mut Vec<(u64, Events)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno>;
    /// select(2): keeps the ready descriptors in each set; returns how many in all. A
    /// descriptor ≥ [`FD_SETSIZE`] is EINVAL (never undefined behaviour), a closed one EBADF.
    fn select(&mut self, sets: &mut FdSets, timeout: Option<Duration>) -> Result<usize, Errno>;
    /// getaddrinfo for one family: the host's addresses, in resolver order.
    fn resolve(&mut self, host: &str, family: Family) -> Result<Vec<IpAddr>, Gai>;
    /// gethostbyaddr: the host name of an address, or `herror`.
    fn host_by_addr(&mut self, ip: IpAddr) -> Result<String, SockError>;
    /// Monotonic time since this kernel was created (virtual in the simulator).
    fn now(&self) -> Duration;
    /// clock_gettime(2) on a timer's clock, what an absolute timer is set against (in the
    /// simulator: virtual time, with the wall clock at [`Kernel::unix_time`]).
    fn clock(&self, clock: TimerClock) -> Duration;
    /// Wall-clock time since the Unix epoch (in the simulator: a fixed epoch plus virtual time,
    /// so that timestamps in transcripts are deterministic).
    fn unix_time(&self) -> Duration;
    /// The local time zone, for timestamps people read (the tutorial's `time.strftime`): the
    /// system's on the real kernel (`TZ` respected), UTC in the simulator (deterministic).
    fn time_zone(&self) -> jiff::tz::TimeZone;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_timespecs_print_as_transcripts_show_them() {
        assert_eq!(Fd(3).to_string(), "fd3");
        let valid = Timespec {
            secs: 1,
            nanos: 500_000_000,
        };
        assert_eq!(valid.to_string(), "1.500000000 s");
        let invalid = Timespec { secs: -1, nanos: 5 };
        assert_eq!(invalid.to_string(), "{-1 s, 5 ns}");
    }

    #[test]
    fn epoll_waits_for_at_most_linuxs_number_of_events() {
        // fs/eventpoll.c: INT_MAX / sizeof(struct epoll_event), a packed 12 bytes on x86-64.
        assert_eq!(EP_MAX_EVENTS, 178_956_970);
    }
}
