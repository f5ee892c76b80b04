//! Differential checks shared by the tests and the fuzz targets: the same operations run on
//! the kernel and in the simulator, each result normalised to text, compared line by line.

use std::time::Duration;

use arbitrary::Arbitrary;
use nix::errno::Errno;

use crate::addr::{Family, SockType};
use crate::endpoints;
use crate::error::errno_name;
use crate::kernel::{Events, Fd, Kernel, Mode, Shutdown};
use crate::readiness::{Backend, Event, Selector, Token};

/// Largest send or recv in a readiness sequence: with at most [`READINESS_MAX_OPS`] of them,
/// bytes in flight stay far below every buffer (whose sizes differ between kernels by design).
pub const READINESS_MAX_IO_BYTES: usize = 2_000;
/// Most operations in one readiness sequence.
pub const READINESS_MAX_OPS: usize = 24;
/// Endpoints created by the set-up: a, b (AF_UNIX stream pair), r, w (pipe), c, s (TCP), l.
pub const SETUP_ENDPOINTS: usize = 7;
/// Most endpoints a sequence may add (dup, connect, accept): a bound on the table.
pub const MAX_EXTRA_ENDPOINTS: usize = 4;
const MAX_ENDPOINTS: usize = SETUP_ENDPOINTS + MAX_EXTRA_ENDPOINTS;
/// Index of the listener among the set-up endpoints.
const LISTENER: usize = 6;

/// shutdown's direction (an `Arbitrary` stand-in for [`Shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum How {
    Read,
    Write,
    Both,
}

impl From<How> for Shutdown {
    fn from(h: How) -> Shutdown {
        match h {
            How::Read => Shutdown::Read,
            How::Write => Shutdown::Write,
            How::Both => Shutdown::Both,
        }
    }
}

/// One operation of a readiness sequence. Endpoint numbers wrap around the table, sizes are
/// clamped to `1..=READINESS_MAX_IO_BYTES`, interests are bit sets of in, out and rdhup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum Op {
    Send(u8, u16),
    Recv(u8, u16),
    Shut(u8, How),
    Close(u8),
    Dup(u8),
    Register(u8, u8),
    Modify(u8, u8),
    Deregister(u8),
    Wait(u8),
    Connect,
    Accept,
}

/// The interest a byte stands for: bit 0 in, bit 1 out, bit 2 rdhup.
pub fn interest(bits: u8) -> Events {
    let mut e = Events::NONE;
    for (i, flag) in [Events::IN, Events::OUT, Events::RDHUP]
        .into_iter()
        .enumerate()
    {
        if bits & (1 << i) != 0 {
            e |= flag;
        }
    }
    e
}

fn end(e: u8) -> usize {
    usize::from(e) % MAX_ENDPOINTS
}

fn size(n: u16) -> usize {
    usize::from(n) % READINESS_MAX_IO_BYTES + 1
}

/// The endpoint table: descriptors by index, `None` once closed (later calls on a closed name
/// are EBADF without reaching the kernel, so a reused descriptor number is never touched).
struct Endpoints {
    fds: Vec<Option<Fd>>,
}

impl Endpoints {
    fn get(&self, e: usize) -> Option<Fd> {
        self.fds.get(e).copied().flatten()
    }

    fn has_room(&self) -> bool {
        self.fds.len() < MAX_ENDPOINTS
    }

    fn add(&mut self, fd: Fd) -> usize {
        self.fds.push(Some(fd));
        self.fds.len() - 1
    }
}

fn setup(k: &mut dyn Kernel) -> Result<Endpoints, Errno> {
    let (a, b) = k.socketpair(SockType::Stream)?;
    let (r, w) = k.pipe()?;
    let (c, s) = endpoints::tcp_pair(k, Family::Inet)?;
    let l = endpoints::tcp_listener(k, Family::Inet, 4)?;
    Ok(Endpoints {
        fds: [a, b, r, w, c, s, l].into_iter().map(Some).collect(),
    })
}

fn result<T>(r: Result<T, Errno>, ok: impl FnOnce(T) -> String) -> String {
    r.map_or_else(|e| errno_name(e).to_string(), ok)
}

fn format_events(events: &mut [Event]) -> String {
    if events.is_empty() {
        return "none".to_string();
    }
    events.sort_by_key(|e| e.token);
    events
        .iter()
        .map(|e| format!("e{}:{}", e.token.0, e.events))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many times the kernel may run a sequence before a difference counts. The kernel's own
/// timers (this machine's acknowledges a FIN after a delay, not at once) can wake a watcher in
/// the middle of a sequence when the process is descheduled for tens of milliseconds; a real
/// divergence repeats on every run, a timing accident does not.
pub const REAL_RUN_ATTEMPTS: usize = 3;

/// Runs a sequence in the faithful simulator and on the kernel (up to [`REAL_RUN_ATTEMPTS`]
/// times); `Err((kernel, simulator))` when they never agree. A set-up the kernel cannot make
/// (out of descriptors or ports) counts as agreement: it says nothing about the simulator.
pub fn compare_readiness(
    backend: Backend,
    mode: Mode,
    ops: &[Op],
) -> Result<(), (Vec<String>, Vec<String>)> {
    let sim = run_readiness(&mut crate::sim::Sim::faithful(), backend, mode, ops)
        .expect("the simulator's set-up cannot fail");
    let mut last = Vec::new();
    for _ in 0..REAL_RUN_ATTEMPTS {
        match run_readiness(
            &mut crate::real_kernel::RealKernel::new(),
            backend,
            mode,
            ops,
        ) {
            Ok(real) if real == sim => return Ok(()),
            Ok(real) => last = real,
            Err(_) => return Ok(()),
        }
    }
    Err((last, sim))
}

/// Runs a readiness sequence on one kernel: one normalised line per operation.
pub fn run_readiness(
    k: &mut dyn Kernel,
    backend: Backend,
    mode: Mode,
    ops: &[Op],
) -> Result<Vec<String>, Errno> {
    let mut ends = setup(k)?;
    let mut sel = Selector::new(k, backend)?;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops.iter().take(READINESS_MAX_OPS) {
        let line = step(k, &mut ends, &mut sel, mode, *op);
        out.push(format!("{op:?} -> {line}"));
    }
    for fd in ends.fds.into_iter().flatten() {
        endpoints::close_abortively(k, fd);
    }
    if let Some(ep) = sel.epoll_fd() {
        let _ = k.close(ep);
    }
    Ok(out)
}

fn step(
    k: &mut dyn Kernel,
    ends: &mut Endpoints,
    sel: &mut Selector,
    mode: Mode,
    op: Op,
) -> String {
    let closed = || "EBADF".to_string();
    match op {
        Op::Send(e, n) => ends.get(end(e)).map_or_else(closed, |fd| {
            result(k.send(fd, &vec![7; size(n)]), |m| format!("send {m}"))
        }),
        Op::Recv(e, n) => ends.get(end(e)).map_or_else(closed, |fd| {
            result(k.recv(fd, &mut vec![0; size(n)]), |m| format!("recv {m}"))
        }),
        Op::Shut(e, h) => ends.get(end(e)).map_or_else(closed, |fd| {
            result(k.shutdown(fd, h.into()), |()| format!("shutdown {h:?}"))
        }),
        Op::Close(e) => match ends.get(end(e)) {
            Some(fd) => {
                ends.fds[end(e)] = None;
                result(k.close(fd), |()| "closed".into())
            }
            None => closed(),
        },
        Op::Dup(e) => match ends.get(end(e)) {
            Some(fd) if ends.has_room() => result(k.dup(fd), |d| format!("dup e{}", ends.add(d))),
            _ => "skip".into(),
        },
        Op::Register(e, i) => ends.get(end(e)).map_or_else(closed, |fd| {
            result(
                sel.register(k, fd, Token(end(e)), interest(i), mode),
                |()| "registered".into(),
            )
        }),
        Op::Modify(e, i) => result(sel.modify(k, Token(end(e)), interest(i), mode), |()| {
            "modified".into()
        }),
        Op::Deregister(e) => result(sel.deregister(k, Token(end(e))), |()| "deregistered".into()),
        Op::Wait(max) => {
            let mut events = Vec::new();
            let max = usize::from(max % 3) + 1;
            result(sel.wait(k, &mut events, max, Some(Duration::ZERO)), |_| {
                format!("wait {}", format_events(&mut events))
            })
        }
        Op::Connect => match ends.get(LISTENER) {
            Some(l) if ends.has_room() => {
                let connected = k.getsockname(l).and_then(|addr| {
                    let c = k.socket(Family::Inet, SockType::Stream)?;
                    ends.add(c);
                    match k.connect(c, &addr) {
                        Ok(()) | Err(Errno::EINPROGRESS) => Ok(()),
                        Err(e) => Err(e),
                    }
                });
                result(connected, |()| "connecting".into())
            }
            _ => "skip".into(),
        },
        Op::Accept => match ends.get(LISTENER) {
            Some(l) if ends.has_room() => {
                result(k.accept(l), |(fd, _)| format!("accepted e{}", ends.add(fd)))
            }
            _ => "skip".into(),
        },
    }
}
