//! The simulator's transcript: one structured record per call, formatted only when printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;

use super::decide::Choice;
use crate::addr::{Family, SockAddr, SockType};
use crate::error::errno_name;
use crate::kernel::{CtlOp, Events, Mode, Shutdown, SockOpt, TimerClock, TimerSetting, Timespec};

/// Most records a transcript keeps; later calls are counted in [`Transcript::dropped`] instead.
pub const TRANSCRIPT_MAX_RECORDS: usize = 1 << 20;

/// Which call a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Socket,
    Socketpair,
    Pipe,
    EventFd,
    TimerFdCreate,
    TimerFdSettime,
    TimerFdGettime,
    Dup,
    Bind,
    Listen,
    Accept,
    Connect,
    Recv,
    Send,
    Recvfrom,
    Sendto,
    Shutdown,
    Close,
    Getsockname,
    Getpeername,
    Setsockopt,
    Getsockopt,
    /// ioctl(FIONREAD).
    BytesWaiting,
    Poll,
    Select,
    EpollCreate,
    EpollCtl,
    EpollWait,
    /// Not a call: a timer fired inside the simulator (a SYN retransmission, say).
    Timer,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Socket => "socket",
            Call::Socketpair => "socketpair",
            Call::Pipe => "pipe",
            Call::EventFd => "eventfd",
            Call::TimerFdCreate => "timerfd_create",
            Call::TimerFdSettime => "timerfd_settime",
            Call::TimerFdGettime => "timerfd_gettime",
            Call::Dup => "dup",
            Call::Bind => "bind",
            Call::Listen => "listen",
            Call::Accept => "accept",
            Call::Connect => "connect",
            Call::Recv => "recv",
            Call::Send => "send",
            Call::Recvfrom => "recvfrom",
            Call::Sendto => "sendto",
            Call::Shutdown => "shutdown",
            Call::Close => "close",
            Call::Getsockname => "getsockname",
            Call::BytesWaiting => "ioctl_fionread",
            Call::Getpeername => "getpeername",
            Call::Setsockopt => "setsockopt",
            Call::Getsockopt => "getsockopt",
            Call::Poll => "poll",
            Call::Select => "select",
            Call::EpollCreate => "epoll_create",
            Call::EpollCtl => "epoll_ctl",
            Call::EpollWait => "epoll_wait",
            Call::Timer => "timer",
        }
    }
}

/// A call's main argument, kept structured (and cheap to copy) until the record is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// No argument worth printing.
    None,
    /// A byte count or a backlog.
    Num(i64),
    /// An IP endpoint.
    Inet(SocketAddr),
    /// eventfd's initial value, and whether it counts as a semaphore.
    EventFd(u32, bool),
    /// timerfd_create's clock.
    Clock(TimerClock),
    /// timerfd_settime's setting, and whether it is absolute (TFD_TIMER_ABSTIME).
    TimerSet(TimerSetting, bool),
    /// connect's destination and the address it connects from.
    Connect(SocketAddr, SocketAddr),
    /// An AF_UNIX path (shared, so a record does not copy it).
    Path(Rc<Path>),
    /// An unnamed AF_UNIX address.
    Unnamed,
    /// socket(2)'s family and type.
    Kind(Family, SockType),
    /// setsockopt's option and value, or getsockopt's option (value 0).
    Opt(SockOpt, i32),
    /// shutdown's direction.
    How(Shutdown),
    /// poll's timeout in milliseconds (`None`: for ever) and its descriptor count.
    Wait(Option<u64>, usize),
    /// epoll_wait's timeout in milliseconds (`None`: for ever) and its `maxevents`.
    EpollWait(Option<u64>, usize),
    /// epoll_ctl's operation, descriptor, interest and mode.
    Ctl(CtlOp, i32, Events, Mode),
}

impl Arg {
    /// The argument form of an address.
    pub fn addr(a: &SockAddr) -> Arg {
        match a {
            SockAddr::Inet(sa) => Arg::Inet(*sa),
            SockAddr::Unix(p) => Arg::Path(Rc::from(p.as_path())),
            SockAddr::UnixUnnamed => Arg::Unnamed,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::None => Ok(()),
            Arg::Num(n) => write!(f, "{n}"),
            Arg::Inet(a) => write!(f, "{a}"),
            Arg::Connect(to, from) => write!(f, "{to} from {from}"),
            Arg::EventFd(initval, false) => write!(f, "{initval}"),
            Arg::EventFd(initval, true) => write!(f, "{initval}, semaphore"),
            Arg::Clock(c) => write!(f, "{c:?}"),
            Arg::TimerSet(set, absolute) => {
                write!(f, "{}", set.value)?;
                if set.interval != Timespec::default() {
                    write!(f, " every {}", set.interval)?;
                }
                if *absolute {
                    f.write_str(", absolute")?;
                }
                Ok(())
            }
            Arg::Path(p) => write!(f, "{}", p.display()),
            Arg::Unnamed => f.write_str("unnamed"),
            Arg::Kind(fam, ty) => write!(f, "{fam:?}, {ty:?}"),
            Arg::Opt(o, v) => write!(f, "{o:?}, {v}"),
            Arg::How(h) => write!(f, "{h:?}"),
            Arg::Wait(None, n) => write!(f, "{n} fds, for ever"),
            Arg::Wait(Some(ms), n) => write!(f, "{n} fds, {ms} ms"),
            Arg::EpollWait(None, max) => write!(f, "max {max}, for ever"),
            Arg::EpollWait(Some(ms), max) => write!(f, "max {max}, {ms} ms"),
            Arg::Ctl(op, fd, ev, mode) => {
                write!(f, "{op:?}, fd{fd}, {ev}")?;
                if mode.edge {
                    f.write_str(", et")?;
                }
                if mode.oneshot {
                    f.write_str(", oneshot")?;
                }
                Ok(())
            }
        }
    }
}

/// One call: when, on what, with which argument, what came back, and the adversary's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Virtual time of the call.
    pub at: Duration,
    /// Who made it: [`Host::MAIN`], the program under test, or a peer.
    pub host: Host,
    /// The call.
    pub call: Call,
    /// The descriptor it was made on (-1 when none).
    pub fd: i32,
    /// The call's main argument.
    pub arg: Arg,
    /// The result: a count or new descriptor, or the errno.
    pub result: Result<i64, Errno>,
    /// What a readiness wait reported (nothing for other calls).
    pub ready: Ready,
    /// What the decision source chose differently from faithful Linux, if anything.
    pub choice: Option<Choice>,
}

/// What a readiness wait returned, printed after its count: each descriptor (poll, select)
/// or each epoll item's data, with its events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ready {
    /// Not a wait, or nothing ready.
    #[default]
    Nothing,
    /// poll's and select's ready descriptors.
    Fds(Box<[(i32, Events)]>),
    /// epoll_wait's items by their data, when the data does not name one registered
    /// descriptor (else they are [`Ready::Fds`]).
    Data(Box<[(u64, Events)]>),
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut item = |i: usize, prefix: &str, id: &dyn fmt::Display, ev: Events| {
            let sep = if i == 0 { " (" } else { ", " };
            write!(f, "{sep}{prefix}{id} {ev}")
        };
        match self {
            Ready::Nothing => return Ok(()),
            Ready::Fds(fds) if fds.is_empty() => return Ok(()),
            Ready::Data(items) if items.is_empty() => return Ok(()),
            Ready::Fds(fds) => {
                for (i, (fd, ev)) in fds.iter().enumerate() {
                    item(i, "fd", fd, *ev)?;
                }
            }
            Ready::Data(items) => {
                for (i, (data, ev)) in items.iter().enumerate() {
                    item(i, "data ", data, *ev)?;
                }
            }
        }
        f.write_str(")")
    }
}

/// A host making calls on the simulated machine: the program under test, or one of the peers
/// an interleaving schedule runs between its calls (see [`super::interleave`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Host(pub u16);

impl Host {
    /// The program under test (a server, a scenario): its calls carry no label.
    pub const MAIN: Host = Host(0);

    /// Peer `n` (from 0), printed `c1`, `c2`, ...
    pub fn peer(n: usize) -> Host {
        Host(u16::try_from(n + 1).unwrap_or(u16::MAX))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Host::MAIN {
            f.write_str("main")
        } else {
            write!(f, "c{}", self.0)
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.at.as_secs();
        let micros = self.at.subsec_micros();
        write!(f, "[{secs:>4}.{micros:06}] ")?;
        if self.host != Host::MAIN {
            write!(f, "{} ", self.host)?;
        }
        if self.fd >= 0 {
            write!(f, "fd{} ", self.fd)?;
        }
        write!(f, "{}({})", self.call.name(), self.arg)?;
        match self.result {
            Ok(v) => write!(f, " = {v}{}", self.ready)?,
            Err(e) => write!(f, " = {}", errno_name(e))?,
        }
        if let Some(c) = self.choice {
            write!(f, "  ~ {}", ChoiceText(c))?;
        }
        Ok(())
    }
}

struct ChoiceText(Choice);

impl fmt::Display for ChoiceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Choice::ShortWrite { taken, offered } => {
                write!(f, "adversary: short write {taken} of {offered}")
            }
            Choice::ShortRead { taken, offered } => {
                write!(f, "adversary: short read {taken} of {offered}")
            }
            Choice::Eintr => f.write_str("adversary: interrupted (EINTR)"),
            Choice::Reset => f.write_str("adversary: connection reset"),
            Choice::SynDrop => f.write_str("adversary: SYN lost"),
            Choice::Emfile => f.write_str("adversary: out of descriptors (EMFILE)"),
            Choice::SendBufferFull => f.write_str("adversary: the send buffer is full (EAGAIN)"),
            Choice::Enfile => f.write_str("adversary: the system's file table is full (ENFILE)"),
            Choice::Spurious => f.write_str("adversary: spurious wakeup"),
            Choice::Pause { millis } => {
                write!(
                    f,
                    "adversary: held back {millis} ms; what arrives meanwhile goes out together"
                )
            }
            Choice::Deferred { reported, ready } => {
                write!(
                    f,
                    "adversary: returned {reported} of {ready} queued events; the rest come next time"
                )
            }
        }
    }
}

/// The list of records, bounded by [`TRANSCRIPT_MAX_RECORDS`].
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    records: Vec<Record>,
    enabled: bool,
    dropped: u64,
}

impl Transcript {
    /// A transcript that records (`enabled`) or only counts nothing (for benchmarks).
    pub fn new(enabled: bool) -> Transcript {
        Transcript {
            records: Vec::new(),
            enabled,
            dropped: 0,
        }
    }

    /// Appends a record (or counts it as dropped once the cap is reached).
    pub fn push(&mut self, record: Record) {
        if !self.enabled {
            return;
        }
        if self.records.len() < TRANSCRIPT_MAX_RECORDS {
            self.records.push(record);
        } else {
            self.dropped += 1;
        }
    }

    /// Whether calls are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// How many records were not kept because of the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.records {
            writeln!(f, "{r}")?;
        }
        if self.dropped > 0 {
            writeln!(f, "... {} more records not kept", self.dropped)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(call: Call, ready: Ready) -> String {
        let record = Record {
            at: Duration::from_millis(1500),
            host: Host::peer(1),
            call,
            fd: 4,
            arg: Arg::EpollWait(None, 8),
            result: Ok(2),
            ready,
            choice: None,
        };
        record.to_string()
    }

    #[test]
    fn a_wait_shows_what_it_reported_after_its_count() {
        let items = Ready::Data(Box::new([(5, Events::IN), (9, Events::IN | Events::OUT)]));
        assert_eq!(
            wait(Call::EpollWait, items),
            "[   1.500000] c2 fd4 epoll_wait(max 8, for ever) = 2 (data 5 in, data 9 in,out)"
        );
        let fds = Ready::Fds(Box::new([(3, Events::HUP)]));
        assert!(wait(Call::Poll, fds).ends_with("= 2 (fd3 hup)"));
        assert!(wait(Call::Select, Ready::Nothing).ends_with("= 2"));
        assert!(wait(Call::Poll, Ready::Fds(Box::new([]))).ends_with("= 2"));
    }
}
