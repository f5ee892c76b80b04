//! A guest program run one request at a time, by whoever schedules it: its next request
//! waits in `pending` until it can be answered without blocking. A blocking receive waits
//! for data (or an end), a wait for something it watches or for its timeout in virtual time,
//! a sleep for its time. So the program never blocks the machine, and its calls interleave
//! with everyone else's deterministically. Every guest runs this way: the program of
//! `selectlab sim` ([`run`](super::run)), a peer guest ([`peers`](super::peers)), and a guest
//! serving a session's room (`check::sim::served`).
//!
//! While it waits, whoever schedules it lets virtual time pass with [`Stepped::wait`]: to the
//! wait's deadline or the next timer. The lawful adversary may instead send a signal to a
//! program about to block in poll, select or epoll_wait, which then return EINTR (Linux gives
//! them EINTR whatever the handler's SA_RESTART). It sends none during a blocking socket call
//! or a sleep, though Linux may interrupt those too.

use std::time::Duration;

use nix::libc;
use selectlab_wire::{Op, Reply, Request};

use super::answer::{Answerer, RECV_FLAGS, SEND_FLAGS};
use super::channel::Channel;
use super::ready::{self, poll_entries, poll_ready, select_ready, select_sets};
use super::spawn::Process;
use super::wait::{Halt, timeout_of_ns};
use crate::kernel::{Events, Fd, Kernel};
use crate::sim::interleave::Interleaved;
use crate::sim::transcript::Host;
use crate::sim::{Sim, WaitingCall};
use selectlab_wire::take_addr;

/// A guest program and its next request.
pub struct Stepped {
    /// The command line, for reports.
    pub label: String,
    pub(crate) process: Process,
    pub(crate) channel: Channel,
    pub(crate) answerer: Answerer,
    /// Its next request, and the virtual time it was made.
    pub(crate) pending: Option<(Request, Duration)>,
    /// Whether a signal interrupted its pending wait (it returns EINTR when it proceeds).
    interrupted: bool,
    /// Its exit code, once it has exited.
    pub exit: Option<i32>,
}

/// What a call on one descriptor waits for when its descriptor blocks: the readiness (input
/// for a receive or an accept, room for a send), and the call as the simulator judges whether
/// it would wait at all (`None`: it does not wait, or is no such call). A call with flags the
/// simulator does not model, or a send whose address block is malformed, does not wait: it is
/// refused at once.
fn waits_on(req: &Request) -> Option<(Events, WaitingCall)> {
    let a = &req.args;
    let waits = |flags: i64, known: i32| {
        let flags = flags as i32;
        flags & !known == 0 && flags & libc::MSG_DONTWAIT == 0
    };
    match req.op {
        Op::Recv if waits(a[2], RECV_FLAGS) => {
            let len = usize::try_from(a[1]).unwrap_or(0);
            Some((
                Events::IN,
                WaitingCall::Recv {
                    len,
                    from: a[3] != 0,
                },
            ))
        }
        Op::Accept => Some((Events::IN, WaitingCall::Accept)),
        Op::Send if waits(a[1], SEND_FLAGS) => {
            let (to, bytes) = take_addr(&req.data).ok()?;
            let call = WaitingCall::Send {
                len: bytes.len(),
                to: !to.is_empty(),
            };
            Some((Events::OUT, call))
        }
        _ => None,
    }
}

/// Whether a request waits for readiness or time (a wait or a sleep), rather than being a
/// call on one descriptor.
pub fn is_wait(op: Op) -> bool {
    matches!(op, Op::Poll | Op::Select | Op::EpollWait | Op::Sleep)
}

/// Whether a request is a wait the adversary may interrupt with a signal (EINTR: Linux never
/// restarts it).
fn interruptible(op: Op) -> bool {
    matches!(op, Op::Poll | Op::Select | Op::EpollWait)
}

impl Stepped {
    /// A started guest whose first request, `hello`, was made at `since`.
    pub fn new(
        label: String,
        process: Process,
        channel: Channel,
        answerer: Answerer,
        hello: Request,
        since: Duration,
    ) -> Stepped {
        Stepped {
            label,
            process,
            channel,
            answerer,
            pending: Some((hello, since)),
            interrupted: false,
            exit: None,
        }
    }

    /// Whether its pending request can be answered now, as `host`, without blocking.
    pub fn can_proceed(&self, sim: &Sim, host: Host) -> bool {
        let Some((req, _)) = &self.pending else {
            return false;
        };
        if self.interrupted {
            return true;
        }
        let a = &req.args;
        let fd = Fd(a[0] as i32);
        let ready = |events: Events| {
            sim.ready_now_as(host, fd)
                .intersects(events | Events::ERR | Events::HUP)
        };
        let timed_out = self.deadline(sim).is_some_and(|d| sim.now() >= d);
        let blocking = self.answerer.blocking(fd);
        match req.op {
            Op::Recv | Op::Accept | Op::Send => match waits_on(req) {
                Some((events, call)) => {
                    // A call that fails or returns at once on Linux does not wait.
                    let woken = match req.op {
                        Op::Send => sim.send_ready_as(host, fd),
                        _ => ready(events),
                    };
                    !blocking || !sim.waits_as(host, fd, call) || timed_out || woken
                }
                None => true,
            },
            Op::Poll => timed_out || poll_ready(sim, host, &poll_entries(a, &req.data)),
            Op::Select => timed_out || select_ready(sim, host, &select_sets(a, &req.data)),
            Op::EpollWait => {
                let max = usize::try_from(a[1]).unwrap_or(0);
                // A wait on what is no epoll instance, or for no events, fails at once.
                let fails = !sim.waits_as(host, fd, WaitingCall::EpollWait { max });
                fails || timed_out || sim.ready_now_as(host, fd).contains(Events::IN)
            }
            // A sleep of a negative length has no deadline: it fails at once.
            Op::Sleep => self.deadline(sim).is_none_or(|d| sim.now() >= d),
            _ => true,
        }
    }

    /// The virtual time at which its pending wait times out or its sleep ends (`None`: it
    /// waits for ever, or is not waiting).
    pub fn deadline(&self, sim: &Sim) -> Option<Duration> {
        let (req, since) = self.pending.as_ref()?;
        let a = &req.args;
        let after = |ns: i64| timeout_of_ns(ns).map(|t| since.saturating_add(t));
        match req.op {
            Op::Poll => after(a[0]),
            Op::Select => after(a[1]),
            Op::EpollWait => after(a[2]),
            // An absolute sleep names a time on its clock.
            Op::Sleep if a[1] != 0 => {
                let left = a[2].saturating_sub(ready::clock_ns(sim, a[0]));
                Some(sim.now().saturating_add(timeout_of_ns(left.max(0))?))
            }
            Op::Sleep => after(a[2]),
            // SO_RCVTIMEO or SO_SNDTIMEO bounds a blocking call.
            Op::Recv | Op::Accept | Op::Send if self.answerer.blocking(Fd(a[0] as i32)) => {
                let t = self.answerer.timeout(Fd(a[0] as i32), waits_on(req)?.0)?;
                Some(since.saturating_add(t))
            }
            _ => None,
        }
    }

    /// Lets virtual time pass while it waits (it cannot proceed, and nobody else can run): to
    /// its wait's deadline, the next timer, or `until`, whichever comes first. Or the
    /// adversary's signal interrupts its wait, which can proceed then.
    pub fn wait(&mut self, sim: &mut Sim, until: Option<Duration>) {
        let Some((req, _)) = &self.pending else {
            return;
        };
        if interruptible(req.op) && sim.signal_arrives() {
            self.interrupted = true;
            return;
        }
        let end = match (self.deadline(sim), until) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        };
        sim.idle(end);
    }

    /// Why its pending call can never end, said when nothing is left that could end it.
    pub fn forever(&self) -> String {
        let what = self.pending().map_or("nothing".to_string(), |req| {
            blocked_call(req.op, req.args[0])
        });
        format!("the program blocks for ever in {what}: nothing can wake it")
    }

    /// Whether its pending call on one descriptor ran out of the time SO_RCVTIMEO or
    /// SO_SNDTIMEO gave it, with its descriptor still not ready.
    fn timed_out_blocked(&self, sim: &Sim) -> bool {
        let Some((req, _)) = &self.pending else {
            return false;
        };
        let Some((events, _)) =
            waits_on(req).filter(|_| self.answerer.blocking(Fd(req.args[0] as i32)))
        else {
            return false;
        };
        let ready = sim.ready_now(Fd(req.args[0] as i32));
        self.deadline(sim).is_some_and(|d| sim.now() >= d)
            && !ready.intersects(events | Events::ERR | Events::HUP)
    }

    /// The virtual time its pending request was made.
    pub fn pending_since(&self) -> Option<Duration> {
        self.pending.as_ref().map(|(_, since)| *since)
    }

    /// Its pending request, if it has one.
    pub fn pending(&self) -> Option<&Request> {
        self.pending.as_ref().map(|(req, _)| req)
    }

    /// Answers its pending request (which can proceed) on `k` and reads its next one; the
    /// request and its reply. A wait that can proceed is ready or out of time: it returns
    /// now, never moving virtual time (its transcript line shows the time it had left). When
    /// the program exits, the kernel closes its descriptors.
    pub fn proceed(&mut self, k: &mut Interleaved<'_>) -> Result<Option<(Request, Reply)>, Halt> {
        // What is left of its wait's time (nothing, if it proceeds because its time is up).
        let left_ns =
            (self.deadline(k.sim)).map(|d| super::spawn::nanos(d.saturating_sub(k.sim.now())));
        let timed_out = self.timed_out_blocked(k.sim);
        let interrupted = std::mem::take(&mut self.interrupted);
        let Some((mut req, _)) = self.pending.take() else {
            return Ok(None);
        };
        let timeout_arg = match req.op {
            Op::Poll => Some(0),
            Op::Select => Some(1),
            Op::EpollWait => Some(2),
            _ => None,
        };
        if let (Some(i), Some(ns)) = (timeout_arg, left_ns) {
            req.args[i] = ns;
        }
        if interrupted {
            // The wait finds what it watches ready, or returns EINTR (see `wait`).
            k.sim.interrupt_next_wait();
        }
        let reply = if timed_out {
            Reply::err(libc::EAGAIN)
        } else {
            self.answerer.answer(k, &req)?
        };
        let reply = reply.at(super::spawn::nanos(k.sim.now()));
        self.channel.reply(&reply);
        match self.channel.next_request(Some(&mut self.process)) {
            Ok(Some(next)) => {
                // Its wait begins now, though it is answered only once something wakes it.
                if next.op == Op::EpollWait {
                    k.sim.epoll_wait_begins(Fd(next.args[0] as i32));
                }
                self.pending = Some((next, k.sim.now()));
            }
            Ok(None) => {
                self.exit = Some(self.process.exit_code());
                self.answerer.close_all(k);
            }
            Err(e) => return Err(Halt::Stop(format!("{}: {e}", self.label))),
        }
        Ok(Some((req, reply)))
    }
}

/// A blocked call, as people name it.
pub fn blocked_call(op: Op, fd: i64) -> String {
    match op {
        Op::Sleep => "a sleep".to_string(),
        Op::Recv => format!("a receive on blocking descriptor {fd}"),
        Op::Send => format!("a send on blocking descriptor {fd}"),
        Op::Accept => format!("accept on blocking descriptor {fd}"),
        Op::Poll => "poll".to_string(),
        Op::Select => "select".to_string(),
        Op::EpollWait => format!("epoll_wait on descriptor {fd}"),
        other => format!("{other:?} on descriptor {fd}"),
    }
}
