//! The message format between a guest program's preloaded shim (`selectlab-shim`) and the
//! simulator in the selectlab process.
//!
//! The guest makes a call; the shim sends one [`Request`] and waits for one [`Reply`], and
//! the guest only runs between a reply and its next request: the simulator decides everything
//! that happens in between (that is what makes a foreign program deterministic). The shim
//! connects on an AF_UNIX SOCK_SEQPACKET socket, where a message is never torn or merged. Its
//! first call crosses there, and the reply brings a shared-memory slot (as an `SCM_RIGHTS`
//! descriptor) in which the later calls and replies cross; the socket then carries only
//! [`BELL`]s, the fork server's orders, and what a process without the slot says.
//!
//! Addresses travel as Linux lays out `struct sockaddr_*` (the shim copies the caller's bytes;
//! selectlab parses them). Numbers are little-endian. This crate does no I/O and has no
//! `unsafe`: it is shared by the shim (which sends requests) and selectlab (which answers).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

/// The environment variable that names the AF_UNIX SOCK_SEQPACKET socket the shim connects
/// to when the program starts.
pub const CHANNEL_PATH_ENV: &str = "SELECTLAB_SHIM_SOCKET";

/// The file, beside the channel's socket, in which a process that lost its channel (a
/// descendant whose parent closed every descriptor) writes why it was refused, once: selectlab
/// reads it, so the refusal ends the run as any other does.
pub const REFUSAL_FILE: &str = "refused";

/// The file, beside the channel's socket, that a program started as a fork of a parked one
/// (see [`PARK_ERRNO`]) writes its standard error to.
pub const STDERR_FILE: &str = "stderr";

/// The errno of selectlab's reply that *parks* the program at a call instead of answering it:
/// the process becomes a fork server. On the channel it then reads fork orders, each a reply
/// with this errno whose data is the path of a fresh channel socket. For each it connects,
/// forks, and tells selectlab the child's pid ([`Op::Forked`]); the child takes the new
/// channel in place of the old, its standard error to [`STDERR_FILE`] beside it, and reads
/// there the reply to the parked call. When the child has gone, the fork server sends its exit
/// code on the child's channel ([`Op::Exited`]) and waits for the next order. No call's errno
/// is negative.
pub const PARK_ERRNO: i32 = -0x5e1e;

/// The environment variable in which the shim notes its channel's descriptor, so that a
/// program that execs another (a shell script starting Python) keeps its channel.
pub const CHANNEL_FD_ENV: &str = "SELECTLAB_SHIM_FD";

/// The shim puts its channel at the lowest free descriptor at or above this, so that the program's own descriptors get the numbers Linux would
/// give them without selectlab (the lowest free, from 3).
pub const CHANNEL_FD_MIN: i32 = 900;

/// Most payload bytes one message carries: a whole UDP datagram (65 507 bytes) fits. A longer
/// stream send goes in pieces, a longer receive is short (as a stream receive may be); a
/// larger AF_UNIX datagram is cut (a documented limit).
pub const MAX_DATA_BYTES: usize = 128 * 1024;

/// How many times a side waiting for the other looks for its message before it gives the
/// core away between looks (see [`SPIN_YIELDS`]). While both sides run, the answer is usually
/// a microsecond or two away.
pub const SPIN_LOOKS: u32 = 200;

/// How many more times a waiting side looks, yielding the core between looks, before it
/// sleeps. A sleeping process is woken by the scheduler, which costs tens of microseconds on
/// some machines (85 µs per wake-up on the 2-core VM where this was measured); on a busy
/// machine the other side may be waiting for this very core.
pub const SPIN_YIELDS: u32 = 2_000;

/// A message of this one byte on the channel's socket is a *bell*: the calls and replies
/// themselves cross in shared memory (see the `selectlab-slot` crate), and a side that found
/// the other asleep there wakes it with this. A bell carries nothing; a stale one is skipped.
pub const BELL: [u8; 1] = [0xb1];

/// selectlab's answer to `Hello` when the program's standard input is simulated: descriptor
/// 0 is then the read end of a simulated pipe nobody writes to (a terminal where nobody
/// types), which the shim marks as simulated. Any other answer leaves descriptor 0 real.
pub const HELLO_STDIN_SIMULATED: i64 = 1;

/// How many integer arguments a request carries.
pub const ARGS: usize = 6;

/// A request's fixed part: the operation, the arguments, the payload's length.
pub const REQUEST_HEADER_BYTES: usize = 4 + ARGS * 8 + 4;

/// A reply's fixed part: the result, the errno, the payload's length.
pub const REPLY_HEADER_BYTES: usize = 8 + 4 + 8 + 4;

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = REQUEST_HEADER_BYTES + MAX_DATA_BYTES;

/// Declares [`Op`] with its numbers, and its decoding.
macro_rules! ops {
    ($( $(#[$doc:meta])* $name:ident = $n:literal, )*) => {
        /// What the guest asks for. The comment of each says what `args` and `data` hold and
        /// what the reply carries; `fd` arguments are the guest's descriptor numbers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub enum Op {
            $( $(#[$doc])* $name = $n, )*
        }

        impl Op {
            /// The operation numbered `n`, if there is one.
            pub fn from_u32(n: u32) -> Option<Op> {
                match n {
                    $( $n => Some(Op::$name), )*
                    _ => None,
                }
            }
        }
    };
}

ops! {
    /// The shim's first message: args `[pid, tid]`. Reply: 0.
    Hello = 1,
    /// The shim refuses to go on (data: the reason, UTF-8); no reply, the guest exits.
    Refuse = 2,
    /// socket: `[domain, type, protocol, new_fd]`. Reply: the descriptor.
    Socket = 3,
    /// socketpair: `[domain, type, protocol, new_fd0, new_fd1]`. Reply: 0.
    SocketPair = 4,
    /// bind: `[fd]`, data: the address.
    Bind = 5,
    /// listen: `[fd, backlog]`.
    Listen = 6,
    /// accept4: `[fd, flags, new_fd]`. Reply: the descriptor; data: the peer's address.
    Accept = 7,
    /// connect: `[fd]`, data: the address.
    Connect = 8,
    /// shutdown: `[fd, how]`.
    Shutdown = 9,
    /// close: `[fd]`.
    Close = 10,
    /// getsockname: `[fd]`. Reply data: the address.
    SockName = 11,
    /// getpeername: `[fd]`. Reply data: the address.
    PeerName = 12,
    /// getsockopt: `[fd, level, name]`. Reply data: the value's bytes.
    GetSockOpt = 13,
    /// setsockopt: `[fd, level, name]`, data: the value's bytes.
    SetSockOpt = 14,
    /// fcntl F_GETFL: `[fd]`. Reply: the flags.
    GetFlags = 15,
    /// fcntl F_SETFL, or ioctl FIONBIO as `O_NONBLOCK` or 0: `[fd, flags]`.
    SetFlags = 16,
    /// ioctl FIONREAD: `[fd]`. Reply: the bytes waiting.
    BytesWaiting = 17,
    /// dup, dup2, dup3, fcntl F_DUPFD: `[fd, new_fd]` (`new_fd` already reserved by the shim;
    /// a simulated descriptor there is closed first, as dup2 does).
    Dup = 18,
    /// recv, recvfrom, read, recvmsg: `[fd, len, flags, want_addr]`. Reply: the byte count;
    /// data: an address block (see [`put_addr`]) then the bytes.
    Recv = 19,
    /// send, sendto, write, sendmsg: `[fd, flags]`, data: an address block then the bytes.
    /// Reply: the byte count.
    Send = 20,
    /// poll, ppoll: `[timeout_ns (negative: none), count]`, data: `count` × (fd i32, events i16).
    /// Reply: the count ready; data: `count` × revents i16.
    Poll = 21,
    /// select: `[nfds, timeout_ns (negative: none), which sets are present (bits 0..3)]`,
    /// data: three `fd_set`s of [`FD_SET_BYTES`]. Reply: the count; data: the three sets, then
    /// the time left (i64 ns), which Linux writes back to select's timeout.
    Select = 22,
    /// epoll_create1: `[flags, new_fd]`. Reply: the descriptor.
    EpollCreate = 23,
    /// epoll_ctl: `[epfd, op, fd, events, data]`.
    EpollCtl = 24,
    /// epoll_wait, epoll_pwait: `[epfd, max_events, timeout_ns (negative: none)]`. Reply: the count; data:
    /// count × (events u32, data u64).
    EpollWait = 25,
    /// clock_gettime: `[clock_id, reads]`, `reads` the clock reads the shim answered itself
    /// since its last request (counted as calls). Reply: nanoseconds on that clock.
    Clock = 26,
    /// nanosleep, clock_nanosleep: `[clock_id, absolute (0 or 1), ns]`. Reply: 0.
    Sleep = 27,
    /// getaddrinfo's lookup: `[family (0: any)]`, data: the host name. Reply data: addresses,
    /// each as 1 byte of version (4 or 6) and 16 bytes.
    Resolve = 28,
    /// getnameinfo's reverse lookup: data: the address. Reply data: the host name.
    HostName = 29,
    /// getrandom, getentropy: `[len]`. Reply: how many bytes; data: the bytes (from the run's
    /// seed, so that the same seed gives the same run).
    Random = 30,
    /// eventfd: `[initval, flags, new_fd]`. Reply: the descriptor.
    EventFd = 31,
    /// timerfd_create: `[clock_id, flags, new_fd]`. Reply: the descriptor.
    TimerFdCreate = 32,
    /// timerfd_settime: `[fd, flags, value s, value ns, interval s, interval ns]`. Reply: 0;
    /// data: the old setting as [`ITIMERSPEC_BYTES`].
    TimerFdSettime = 33,
    /// timerfd_gettime: `[fd]`. Reply: 0; data: the setting as [`ITIMERSPEC_BYTES`].
    TimerFdGettime = 34,
    /// From a parked program (see [`PARK_ERRNO`]), on its first channel: `[pid]` of the child
    /// it forked for the last order, or `[-errno]` when the fork failed.
    Forked = 35,
    /// From a parked program, on a child's channel once the child has gone: `[code]`, its exit
    /// code (128 + the signal that killed it, as a shell gives it).
    Exited = 36,
}

/// Bytes of a timer setting in a reply: value seconds, value nanoseconds, interval seconds,
/// interval nanoseconds, each an i64, little-endian.
pub const ITIMERSPEC_BYTES: usize = 4 * 8;

/// Bytes of one `fd_set` (Linux's FD_SETSIZE bits).
pub const FD_SET_BYTES: usize = 1024 / 8;

/// A request the guest's shim sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub op: Op,
    /// Integer arguments (unused ones are 0).
    pub args: [i64; ARGS],
    /// Bytes that go with it.
    pub data: Vec<u8>,
}

/// selectlab's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The call's result (≥ 0), or -1 with `errno` set.
    pub ret: i64,
    /// The errno when `ret` is -1, else 0.
    pub errno: i32,
    /// Virtual time (the monotonic clock, in ns) when it was answered. Time moves only while
    /// the program waits, so until its next call every simulated clock reads this plus the
    /// clock's own offset, and the shim answers clock reads itself.
    pub now_ns: i64,
    /// Bytes that go with it.
    pub data: Vec<u8>,
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its header, or than the length it claims.
    Truncated,
    /// Longer than [`MAX_MESSAGE_BYTES`] says one may be.
    TooLong,
    /// An operation number no version of this format has.
    UnknownOp(u32),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("a truncated message"),
            WireError::TooLong => write!(f, "a message over {MAX_MESSAGE_BYTES} bytes"),
            WireError::UnknownOp(n) => write!(f, "unknown operation {n}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads little-endian numbers off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        self.take().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        self.take().map(i32::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, WireError> {
        self.take().map(i64::from_le_bytes)
    }
    /// The payload: exactly `len` bytes must remain.
    fn rest(self, len: u32) -> Result<Vec<u8>, WireError> {
        if self.0.len() != len as usize {
            return Err(WireError::Truncated);
        }
        Ok(self.0.to_vec())
    }
}

fn data_len(data: &[u8]) -> u32 {
    assert!(
        data.len() <= MAX_DATA_BYTES,
        "payloads are capped by the sender"
    );
    data.len() as u32
}

impl Request {
    /// A request with the given arguments (missing ones are 0) and no data.
    pub fn new(op: Op, args: &[i64]) -> Request {
        let mut all = [0; ARGS];
        all[..args.len()].copy_from_slice(args);
        Request {
            op,
            args: all,
            data: Vec::new(),
        }
    }

    /// The same request with a payload.
    pub fn with_data(mut self, data: Vec<u8>) -> Request {
        self.data = data;
        self
    }

    /// Appends the message's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.op as u32).to_le_bytes());
        for a in self.args {
            out.extend_from_slice(&a.to_le_bytes());
        }
        out.extend_from_slice(&data_len(&self.data).to_le_bytes());
        out.extend_from_slice(&self.data);
    }

    /// Decodes one message.
    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::TooLong);
        }
        let mut c = Cursor(bytes);
        let n = c.u32()?;
        let op = Op::from_u32(n).ok_or(WireError::UnknownOp(n))?;
        let mut args = [0; ARGS];
        for a in &mut args {
            *a = c.i64()?;
        }
        let len = c.u32()?;
        Ok(Request {
            op,
            args,
            data: c.rest(len)?,
        })
    }
}

impl Reply {
    /// A successful result.
    pub fn ok(ret: i64) -> Reply {
        Reply {
            ret,
            errno: 0,
            now_ns: 0,
            data: Vec::new(),
        }
    }

    /// A failure with `errno`.
    pub fn err(errno: i32) -> Reply {
        Reply {
            ret: -1,
            errno,
            now_ns: 0,
            data: Vec::new(),
        }
    }

    /// The same reply, stamped with the virtual time it is answered at.
    pub fn at(mut self, now_ns: i64) -> Reply {
        self.now_ns = now_ns;
        self
    }

    /// The same reply with a payload.
    pub fn with_data(mut self, data: Vec<u8>) -> Reply {
        self.data = data;
        self
    }

    /// Appends the message's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ret.to_le_bytes());
        out.extend_from_slice(&self.errno.to_le_bytes());
        out.extend_from_slice(&self.now_ns.to_le_bytes());
        out.extend_from_slice(&data_len(&self.data).to_le_bytes());
        out.extend_from_slice(&self.data);
    }

    /// Decodes one message.
    pub fn decode(bytes: &[u8]) -> Result<Reply, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::TooLong);
        }
        let mut c = Cursor(bytes);
        let ret = c.i64()?;
        let errno = c.i32()?;
        let now_ns = c.i64()?;
        let len = c.u32()?;
        Ok(Reply {
            ret,
            errno,
            now_ns,
            data: c.rest(len)?,
        })
    }
}

/// Appends an address block: its length (u32) and the `struct sockaddr` bytes (none: 0).
pub fn put_addr(out: &mut Vec<u8>, addr: &[u8]) {
    out.extend_from_slice(&(addr.len() as u32).to_le_bytes());
    out.extend_from_slice(addr);
}

/// Splits an address block off the front of `data`: (address bytes, the rest).
pub fn take_addr(data: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (len, rest) = data.split_first_chunk::<4>().ok_or(WireError::Truncated)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(WireError::Truncated);
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let req = Request::new(Op::Send, &[7, 0x4000]).with_data(b"hi".to_vec());
        let mut bytes = Vec::new();
        req.encode(&mut bytes);
        assert_eq!(Request::decode(&bytes), Ok(req));
        let reply = Reply::err(11).with_data(vec![1, 2, 3]).at(1_500_000_000);
        bytes.clear();
        reply.encode(&mut bytes);
        assert_eq!(Reply::decode(&bytes), Ok(reply));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let mut bytes = Vec::new();
        Request::new(Op::Close, &[3]).encode(&mut bytes);
        assert_eq!(Request::decode(&bytes[..10]), Err(WireError::Truncated));
        bytes[0] = 200;
        assert_eq!(Request::decode(&bytes), Err(WireError::UnknownOp(200)));
        let mut long = Vec::new();
        Reply::ok(0).encode(&mut long);
        long.push(0);
        assert_eq!(Reply::decode(&long), Err(WireError::Truncated));
        assert_eq!(take_addr(&[9, 0, 0, 0, 1]), Err(WireError::Truncated));
    }
}
