//! Scenario scripts, format v1 (described in `docs/src/simulator.md`): plain-text socket
//! and readiness operations that run unchanged on the kernel and in the simulator.
//!
//! - [`parse`]: text to [`Script`]; every error names its file and line, before anything runs.
//! - [`run`]: a script on one kernel and backend, giving one result per command.
//! - [`judge`]: `selectlab scenario`'s verdict: every command's result against its expectation
//!   on one or both transports, and, on both, whether the two agree.
//!
//! Extensions to v1 (compatible: a v1 script keeps its meaning): timers (`timer`, `arm`,
//! `ticks`, `armed`: a timerfd, see `docs/src/simulator.md`). Two behaviours are fixed where v1 is silent: an operation on a name that was closed is `EBADF`
//! without reaching the kernel (so a recycled descriptor number is never touched), and `tcp`
//! pairs have TCP_NODELAY (so small writes are not held back by Nagle's algorithm).

pub mod judge;
pub mod parse;
pub mod run;

use crate::addr::SockType;
use crate::kernel::{Events, Mode, Shutdown, TimerClock};
use crate::readiness::Backend;

/// Largest byte count one `send`, `recv`, `sendto` or `recvfrom` may name.
pub const MAX_IO_BYTES: usize = 16 << 20;
/// Most bytes `fill` sends or `drain` reads before giving up (a bound on the loop).
pub const MAX_FILL_BYTES: usize = 256 << 20;
/// Longest `wait` timeout, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Longest time `arm` may name, in milliseconds (a day).
pub const MAX_ARM_MS: u64 = 86_400_000;
/// Largest `max K` of a wait.
pub const MAX_WAIT_EVENTS: usize = 1024;
/// Highest descriptor `dup ... at N` may ask for.
pub const MAX_DUP_AT: i32 = 60_000;
/// Most names one script may define.
pub const MAX_NAMES: usize = 4096;
/// Longest script line, in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most command lines in one script.
pub const MAX_COMMANDS: usize = 100_000;

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The file it came from (for messages).
    pub file: String,
    /// The `backend` header, if any.
    pub backend: Option<Backend>,
    /// Endpoint names, indexed by [`Name`].
    pub names: Vec<String>,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

/// An endpoint name, as an index into [`Script::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(pub usize);

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1-based line number in the file.
    pub line: usize,
    /// The command as written (without comment and expectation).
    pub text: String,
    /// What it does.
    pub op: Op,
    /// The expectation after `=>`, if any.
    pub expect: Option<Expect>,
}

/// An expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `=> *`: anything.
    Any,
    /// `=> TEXT`: exactly this result.
    Exactly(String),
}

/// IP version of a TCP or UDP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    /// IPv4 loopback.
    V4,
    /// IPv6 loopback.
    V6,
}

/// What `send` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// N pattern bytes.
    Count(usize),
    /// The given text.
    Text(Vec<u8>),
}

/// The operations of format v1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    Pair {
        a: Name,
        b: Name,
        ty: SockType,
    },
    Tcp {
        a: Name,
        b: Name,
        ip: Ip,
    },
    Listen {
        l: Name,
        ip: Ip,
    },
    Connect {
        a: Name,
        l: Name,
    },
    Accept {
        b: Name,
        l: Name,
    },
    Refused {
        a: Name,
        ip: Ip,
    },
    Udp {
        a: Name,
        ip: Ip,
    },
    Pipe {
        r: Name,
        w: Name,
    },
    Dup {
        d: Name,
        a: Name,
        at: Option<i32>,
    },
    Send {
        a: Name,
        payload: Payload,
    },
    Fill {
        a: Name,
    },
    Recv {
        a: Name,
        n: usize,
    },
    Drain {
        a: Name,
    },
    Sendto {
        a: Name,
        b: Name,
        n: usize,
    },
    Recvfrom {
        a: Name,
        n: usize,
    },
    Shutdown {
        a: Name,
        how: Shutdown,
    },
    Close {
        a: Name,
    },
    SoError {
        a: Name,
    },
    Register {
        a: Name,
        flags: Events,
        mode: Mode,
    },
    Modify {
        a: Name,
        flags: Events,
        mode: Mode,
    },
    Deregister {
        a: Name,
    },
    Wait {
        ms: u64,
        max: Option<usize>,
    },
    Timer {
        t: Name,
        clock: TimerClock,
    },
    Arm {
        t: Name,
        ms: u64,
        every: u64,
        absolute: bool,
    },
    Ticks {
        t: Name,
    },
    Armed {
        t: Name,
    },
}
