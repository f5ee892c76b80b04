//! The simulator's objects: sockets, pipes, open files, and the descriptor table.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use nix::errno::Errno;

use super::Id;
use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::TimerClock;

/// Linux's default SO_RCVBUF for TCP (net.ipv4.tcp_rmem\[1\]).
pub const TCP_RCVBUF_DEFAULT_BYTES: i32 = 131_072;
/// Linux's default SO_SNDBUF for TCP (net.ipv4.tcp_wmem\[1\]).
pub const TCP_SNDBUF_DEFAULT_BYTES: i32 = 16_384;
/// Linux's default SO_RCVBUF/SO_SNDBUF for other sockets (net.core.rmem_default).
pub const SOCK_BUF_DEFAULT_BYTES: i32 = 212_992;
/// Smallest SO_RCVBUF Linux keeps after doubling (2 × SOCK_MIN_RCVBUF's payload, as measured).
pub const RCVBUF_MIN_BYTES: i32 = 2_304;
/// Smallest SO_SNDBUF Linux keeps after doubling.
pub const SNDBUF_MIN_BYTES: i32 = 4_608;
/// Largest SO_RCVBUF/SO_SNDBUF an unprivileged set reaches (2 × net.core.rmem_max).
pub const SOCKBUF_MAX_BYTES: i32 = 425_984;
/// Kernel bookkeeping charged per queued datagram, on top of its payload. Measured on the oracle:
/// 278 one-byte datagrams fill a 212 992-byte receive buffer.
pub const DGRAM_OVERHEAD_BYTES: usize = 767;
pub use crate::kernel::IOV_MAX;
/// Pipe capacity (Linux's default 16 pages of 4 KiB).
pub const PIPE_CAPACITY_BYTES: usize = 65_536;
/// Pipe writes up to this size are atomic (PIPE_BUF).
pub const PIPE_BUF_BYTES: usize = 4_096;
/// Largest IPv4 UDP payload: 65 535 − 20 (IP header) − 8 (UDP header).
pub const UDP4_MAX_PAYLOAD_BYTES: usize = 65_507;
/// Largest IPv6 UDP payload: 65 535 − 8 (UDP header).
pub const UDP6_MAX_PAYLOAD_BYTES: usize = 65_527;
/// SOMAXCONN: listen backlogs are clamped to it.
pub const SOMAXCONN: u32 = 4_096;
/// First ephemeral port (net.ipv4.ip_local_port_range).
pub const EPHEMERAL_FIRST_PORT: u16 = 32_768;
/// Last ephemeral port.
pub const EPHEMERAL_LAST_PORT: u16 = 60_999;
/// SYN retransmissions before a connect fails with ETIMEDOUT (net.ipv4.tcp_syn_retries).
pub const TCP_SYN_RETRIES: u8 = 6;
/// The first SYN retransmission timeout; it doubles after each retry (1, 2, 4, … s).
pub const TCP_SYN_RTO_INITIAL: Duration = Duration::from_secs(1);
/// How long a FIN's ACK may be delayed when no data goes back (the delayed-ACK timer; this
/// project's kernel acknowledges a FIN within 50 ms, or with the next data segment).
pub const TCP_DELAYED_ACK: Duration = Duration::from_millis(40);
/// How long an actively closed TCP endpoint keeps its address in TIME_WAIT.
pub const TCP_TIME_WAIT: Duration = Duration::from_secs(60);

/// A socket's protocol state, reduced to what the calls can observe.
#[derive(Debug, Clone)]
pub enum State {
    /// TCP_CLOSE: never connected, refused, or torn down by an RST.
    Closed,
    /// Listening, with the queue of established connections not yet accepted.
    Listen {
        /// Most connections that may wait (Linux admits backlog + 1).
        backlog: u32,
        /// Accepted-by-the-kernel sockets, oldest first.
        queue: VecDeque<Id>,
    },
    /// A TCP connect whose SYN was lost; it retries on a timer.
    SynSent {
        /// Where it is connecting.
        to: SockAddr,
        /// Retransmissions so far.
        retries: u8,
        /// Which connect attempt this is: its timers fire only for it (shutdown disconnects,
        /// and Linux's tcp_disconnect clears the retransmission timer with it).
        attempt: u64,
    },
    /// Connected: a stream, a seqpacket, or a connected datagram socket.
    Established,
}

/// The socket layer's connect state, separate from the protocol state as in Linux: it decides
/// what a second connect call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoState {
    /// SS_UNCONNECTED.
    Unconnected,
    /// SS_CONNECTING: a non-blocking connect returned EINPROGRESS.
    Connecting,
    /// SS_CONNECTED.
    Connected,
}

/// One received datagram or record.
#[derive(Debug, Clone)]
pub struct Message {
    /// Who sent it (datagram sockets), as recvfrom reports it.
    pub from: Option<SockAddr>,
    /// Its bytes (possibly none: a zero-length datagram is a message too).
    pub data: Vec<u8>,
    /// AF_UNIX: the skb's truesize, charged to `sender` until the message is read.
    pub truesize: usize,
    /// AF_UNIX: the sending socket (its send buffer pays for the message).
    pub sender: Option<Id>,
}

/// One skb of an AF_UNIX stream's receive queue.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    /// Bytes of it not yet read.
    pub bytes: usize,
    /// Its truesize, charged to the sender until it is read whole.
    pub truesize: usize,
}

/// net.unix.max_dgram_qlen's default: a datagram socket's queue length past which a sender
/// that is not its peer waits (unix_recvq_full).
pub const UNIX_MAX_DGRAM_QLEN: usize = 10;

/// Socket options as getsockopt reports them.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub reuse_addr: bool,
    pub reuse_port: bool,
    pub keep_alive: bool,
    pub broadcast: bool,
    pub no_delay: bool,
    pub rcvbuf_bytes: i32,
    pub sndbuf_bytes: i32,
    /// SO_LINGER seconds, or -1 for off.
    pub linger_secs: i32,
}

/// A simulated socket.
#[derive(Debug, Clone)]
pub struct Sock {
    pub family: Family,
    pub ty: SockType,
    pub state: State,
    /// The bound address, if any.
    pub local: Option<SockAddr>,
    /// The connected peer's address, if any.
    pub remote: Option<SockAddr>,
    /// The live peer socket (streams, seqpackets and connected AF_UNIX datagram sockets).
    pub peer: Option<Id>,
    /// Received stream bytes.
    pub rx: VecDeque<u8>,
    /// AF_UNIX streams: the skbs `rx` holds (see [`super::skb`]); reading one whole frees its
    /// truesize from the writer's charge and wakes the writer.
    pub rx_chunks: VecDeque<Chunk>,
    /// Received datagrams or records.
    pub msgs: VecDeque<Message>,
    /// Bytes held in `msgs`.
    pub msgs_bytes: usize,
    /// AF_UNIX: the truesize of this socket's sent skbs not yet read (sk_wmem_alloc_get).
    pub wmem_bytes: usize,
    /// RCV_SHUTDOWN: own SHUT_RD, a FIN received, or a reset.
    pub shut_rd: bool,
    /// SEND_SHUTDOWN: own SHUT_WR, or a reset.
    pub shut_wr: bool,
    /// SOCK_DONE: the peer's FIN arrived (TCP).
    pub fin_received: bool,
    /// Our FIN went out (TCP SHUT_WR).
    pub fin_sent: bool,
    /// We owe the peer the ACK of its FIN (delayed; it rides on our next segment).
    pub ack_owed: bool,
    /// The pending error (SO_ERROR).
    pub error: Option<Errno>,
    /// The adversary reset this connection (a fault of the network, not of either program).
    pub reset_by_adversary: bool,
    /// The socket layer's view of a connect (Linux's `struct socket` state).
    pub so_state: SoState,
    pub opts: Options,
}

impl Sock {
    /// A fresh socket with Linux's defaults for its family and type.
    pub fn new(family: Family, ty: SockType) -> Sock {
        let tcp = family != Family::Unix && ty == SockType::Stream;
        let (rcv, snd) = if tcp {
            (TCP_RCVBUF_DEFAULT_BYTES, TCP_SNDBUF_DEFAULT_BYTES)
        } else {
            (SOCK_BUF_DEFAULT_BYTES, SOCK_BUF_DEFAULT_BYTES)
        };
        Sock {
            family,
            ty,
            state: State::Closed,
            local: None,
            remote: None,
            peer: None,
            rx: VecDeque::new(),
            rx_chunks: VecDeque::new(),
            msgs: VecDeque::new(),
            msgs_bytes: 0,
            wmem_bytes: 0,
            shut_rd: false,
            shut_wr: false,
            fin_received: false,
            reset_by_adversary: false,
            fin_sent: false,
            ack_owed: false,
            error: None,
            so_state: SoState::Unconnected,
            opts: Options {
                reuse_addr: false,
                reuse_port: false,
                keep_alive: false,
                broadcast: false,
                no_delay: false,
                rcvbuf_bytes: rcv,
                sndbuf_bytes: snd,
                linger_secs: -1,
            },
        }
    }

    /// Whether this is a TCP socket.
    pub fn is_tcp(&self) -> bool {
        self.family != Family::Unix && self.ty == SockType::Stream
    }

    /// Whether this socket is connection-oriented (stream or seqpacket).
    pub fn is_connection(&self) -> bool {
        matches!(self.ty, SockType::Stream | SockType::SeqPacket)
    }

    /// Bytes waiting to be read.
    pub fn queued_bytes(&self) -> usize {
        self.rx.len() + self.msgs_bytes
    }

    /// Takes the pending error (SO_ERROR and the calls that report it clear it).
    pub fn take_error(&mut self) -> Option<Errno> {
        self.error.take()
    }
}

/// A simulated pipe.
#[derive(Debug, Clone, Default)]
pub struct Pipe {
    pub buf: VecDeque<u8>,
    pub readers: u32,
    pub writers: u32,
}

/// An eventfd's counter.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    pub count: u64,
    /// EFD_SEMAPHORE: a read takes 1, not the whole count.
    pub semaphore: bool,
}

/// A timerfd, as fs/timerfd.c keeps it: an hrtimer that counts its expirations.
#[derive(Debug, Clone)]
pub struct TimerFd {
    pub clock: TimerClock,
    /// The hrtimer's expiry in virtual time: None when disarmed. A fired one-shot keeps its
    /// past expiry (time left: zero), as the hrtimer does.
    pub expires: Option<Duration>,
    /// The period (zero: one-shot).
    pub interval: Duration,
    /// Expirations not read yet.
    pub ticks: u64,
    /// Fired and not forwarded since (Linux's `expired`): a periodic timer does not run again
    /// until a read, gettime or settime counts the periods it missed and restarts it.
    pub expired: bool,
    /// Which arming the queued firing belongs to: a settime or a restart takes a new number, so
    /// an older firing still in the queue does nothing.
    pub arming: u64,
}

/// What an open file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    Sock(Id),
    PipeRead(Id),
    PipeWrite(Id),
    Epoll(Id),
    EventFd(Id),
    TimerFd(Id),
}

/// An open file description: what it is and how many descriptors refer to it.
#[derive(Debug, Clone)]
pub struct File {
    pub object: Object,
    pub refs: u32,
}

/// The descriptor table: lowest free number first, as POSIX requires.
#[derive(Debug, Clone, Default)]
pub struct FdTable {
    entries: Vec<Option<Id>>,
    free_below_len: BTreeSet<i32>,
    open: usize,
}

/// First descriptor the simulator hands out (0, 1 and 2 are the standard streams).
pub const FIRST_FD: i32 = 3;

impl FdTable {
    /// A table with nothing open.
    pub const EMPTY: FdTable = FdTable {
        entries: Vec::new(),
        free_below_len: BTreeSet::new(),
        open: 0,
    };

    /// The open file behind a descriptor.
    pub fn get(&self, fd: i32) -> Option<Id> {
        let i = usize::try_from(fd).ok()?;
        self.entries.get(i).copied().flatten()
    }

    /// How many descriptors are open.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Installs a file at the lowest free descriptor ≥ `FIRST_FD`.
    pub fn install(&mut self, file: Id) -> i32 {
        if self.entries.len() < FIRST_FD as usize {
            self.entries.resize(FIRST_FD as usize, None);
        }
        let fd = match self.free_below_len.pop_first() {
            Some(fd) => fd,
            None => {
                self.entries.push(None);
                i32::try_from(self.entries.len() - 1).expect("descriptor numbers fit in i32")
            }
        };
        self.entries[fd as usize] = Some(file);
        self.open += 1;
        fd
    }

    /// Installs a file at the lowest free descriptor ≥ `min` (fcntl's F_DUPFD).
    pub fn install_at_least(&mut self, file: Id, min: i32) -> i32 {
        let min = min.max(FIRST_FD);
        if self.entries.len() < FIRST_FD as usize {
            self.entries.resize(FIRST_FD as usize, None);
        }
        while self.entries.len() <= min as usize {
            let fd = i32::try_from(self.entries.len()).expect("descriptor numbers fit in i32");
            self.entries.push(None);
            self.free_below_len.insert(fd);
        }
        let fd = match self.free_below_len.range(min..).next() {
            Some(&fd) => fd,
            None => {
                self.entries.push(None);
                i32::try_from(self.entries.len() - 1).expect("descriptor numbers fit in i32")
            }
        };
        self.free_below_len.remove(&fd);
        self.entries[fd as usize] = Some(file);
        self.open += 1;
        fd
    }

    /// Installs a file at exactly `fd` (a number a guest program's real descriptor table
    /// reserved for it); None if the number is taken here.
    pub fn install_exact(&mut self, file: Id, fd: i32) -> Option<i32> {
        let i = usize::try_from(fd).ok()?;
        if self.entries.get(i).is_some_and(Option::is_some) {
            return None;
        }
        while self.entries.len() <= i {
            let n = i32::try_from(self.entries.len()).expect("descriptor numbers fit in i32");
            self.entries.push(None);
            self.free_below_len.insert(n);
        }
        self.free_below_len.remove(&fd);
        self.entries[i] = Some(file);
        self.open += 1;
        Some(fd)
    }

    /// Frees a descriptor, returning the file it referred to.
    pub fn remove(&mut self, fd: i32) -> Option<Id> {
        let i = usize::try_from(fd).ok()?;
        let file = self.entries.get_mut(i)?.take()?;
        self.free_below_len.insert(fd);
        self.open -= 1;
        Some(file)
    }
}
