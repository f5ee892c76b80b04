//! timerfd against the kernel, and its counting against fs/timerfd.c.
//!
//! The random sequences arm, disarm, read and wait on a timer on both transports. Real time and
//! virtual time run apart, so a sequence never looks at a timer while it may be about to fire:
//! a timer is armed far away (an hour or more, never reached), or a few milliseconds away and
//! then waited for until it fires. Time left is compared as zero or not; periods, counts,
//! errors and readiness exactly. How many periods a wait lets pass is exact only in virtual
//! time; those counts are checked in the simulator against Linux's rules.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::kernel::{
    CtlOp, Events, Fd, Kernel, Mode, PollFd, TimerClock, TimerSetting, Timespec,
};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

use crate::util;

/// A timespec the sequence passes: zero, a time an hour or more away, or an invalid one.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Zero,
    /// An hour and this many milliseconds.
    Far(u16),
    /// Nanoseconds of a whole second.
    BadNanos,
    NegativeSecs,
}

#[derive(Debug, Clone)]
enum Op {
    /// timerfd_settime, relative or absolute, with a value and a period.
    Set(bool, Spec, Spec),
    /// A one-shot this many milliseconds away (0: an absolute time already reached), then
    /// a wait until it fires.
    FireOnce(u8),
    /// A period of this many milliseconds, waited for, read (one or more) and disarmed.
    Periodic(u8),
    Get,
    /// A read into a buffer of this many bytes.
    Read(usize),
    Write,
    RecvFrom,
    /// timerfd_settime and gettime on a descriptor that is not a timer.
    NotATimer(Spec),
    Poll,
    /// epoll_wait on the level-triggered (false) or edge-triggered (true) instance.
    Wait(bool),
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => Just(Spec::Zero),
        3 => any::<u16>().prop_map(Spec::Far),
        1 => Just(Spec::BadNanos),
        1 => Just(Spec::NegativeSecs),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), spec(), spec()).prop_map(|(abs, v, i)| Op::Set(abs, v, i)),
        2 => (0u8..8).prop_map(Op::FireOnce),
        1 => (1u8..4).prop_map(Op::Periodic),
        2 => Just(Op::Get),
        2 => prop_oneof![Just(8usize), Just(4), Just(16)].prop_map(Op::Read),
        1 => Just(Op::Write),
        1 => Just(Op::RecvFrom),
        1 => spec().prop_map(Op::NotATimer),
        2 => Just(Op::Poll),
        2 => any::<bool>().prop_map(Op::Wait),
    ]
}

fn clock() -> impl Strategy<Value = TimerClock> {
    prop_oneof![
        Just(TimerClock::Realtime),
        Just(TimerClock::Monotonic),
        Just(TimerClock::Boottime),
    ]
}

/// The timespec for `spec`; a far absolute time is counted from the clock's present.
fn timespec(k: &dyn Kernel, clock: TimerClock, absolute: bool, spec: Spec) -> Timespec {
    match spec {
        Spec::Zero => Timespec::default(),
        Spec::Far(ms) => {
            let far = Duration::from_secs(3600) + Duration::from_millis(ms.into());
            let base = if absolute {
                k.clock(clock)
            } else {
                Duration::ZERO
            };
            Timespec::of(base + far)
        }
        Spec::BadNanos => Timespec {
            secs: 1,
            nanos: Timespec::NANOS_PER_SEC,
        },
        Spec::NegativeSecs => Timespec { secs: -1, nanos: 0 },
    }
}

/// A setting as the sequence compares it: whether time is left, and the exact period.
fn shown(r: Result<TimerSetting, nix::errno::Errno>) -> String {
    match r {
        Ok(set) => {
            let left = if set.value == Timespec::default() {
                "none"
            } else {
                "some"
            };
            format!("left {left}, every {}", set.interval)
        }
        Err(e) => format!("{e:?}"),
    }
}

fn ms(n: u8) -> Timespec {
    Timespec::of(Duration::from_millis(n.into()))
}

/// Waits (up to 10 s, which only a broken timer takes) until `fd` is readable.
fn wait_readable(k: &mut dyn Kernel, fd: Fd) -> String {
    let mut p = [PollFd::new(fd, Events::IN)];
    let r = k.poll(&mut p, Some(Duration::from_secs(10)));
    format!("{r:?} {}", p[0].revents)
}

fn read_ticks(k: &mut dyn Kernel, fd: Fd, len: usize) -> (Result<usize, nix::errno::Errno>, u64) {
    let mut buf = vec![0u8; len];
    let r = k.recv(fd, &mut buf);
    let ticks = buf
        .get(..8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")));
    (r, ticks)
}

/// Runs `ops` on a fresh timer; one line per result.
fn run(k: &mut dyn Kernel, clock: TimerClock, ops: &[Op]) -> Vec<String> {
    // Virtual time starts at zero: let it move, so that "now" as an absolute time is not
    // the zero that disarms.
    k.poll(&mut [], Some(Duration::from_millis(5)))
        .expect("a pause");
    let fd = k.timerfd(clock).expect("a timerfd");
    let watched = util::Watched::new(k, fd, Events::IN);
    let disarm = TimerSetting::default();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let line = match *op {
            Op::Set(absolute, value, interval) => {
                let new = TimerSetting {
                    value: timespec(k, clock, absolute, value),
                    interval: timespec(k, clock, false, interval),
                };
                format!("set: {}", shown(k.timerfd_settime(fd, absolute, new)))
            }
            Op::FireOnce(after) => {
                let (absolute, value) = match after {
                    0 => (true, Timespec::of(k.clock(clock))),
                    n => (false, ms(n)),
                };
                let new = TimerSetting {
                    value,
                    interval: Timespec::default(),
                };
                let old = shown(k.timerfd_settime(fd, absolute, new));
                format!("fire once: {old}; {}", wait_readable(k, fd))
            }
            Op::Periodic(period) => {
                let new = TimerSetting {
                    value: ms(period),
                    interval: ms(period),
                };
                let old = shown(k.timerfd_settime(fd, false, new));
                let woke = wait_readable(k, fd);
                let (r, ticks) = read_ticks(k, fd, 8);
                let off = shown(k.timerfd_settime(fd, false, disarm));
                format!(
                    "periodic: {old}; {woke}; {r:?} ticks>0 {}; {off}",
                    ticks > 0
                )
            }
            Op::Get => format!("get: {}", shown(k.timerfd_gettime(fd))),
            Op::Read(len) => format!("read {len}: {:?}", read_ticks(k, fd, len)),
            Op::Write => format!("write: {:?}", k.send(fd, &1u64.to_ne_bytes())),
            Op::RecvFrom => format!("recvfrom: {:?}", k.recvfrom(fd, &mut [0u8; 8])),
            Op::NotATimer(value) => {
                let new = TimerSetting {
                    value: timespec(k, clock, false, value),
                    interval: Timespec::default(),
                };
                let set = shown(k.timerfd_settime(watched.instances[0], false, new));
                let get = shown(k.timerfd_gettime(watched.instances[0]));
                format!("not a timer: {set}; {get}")
            }
            Op::Poll => watched.poll(k),
            Op::Wait(edge) => watched.wait(k, edge),
        };
        out.push(line);
    }
    watched.close(k);
    out
}

#[test]
fn timerfd_matches_the_kernel() {
    let mut runner = TestRunner::new(Config {
        cases: util::cases(64),
        ..Config::default()
    });
    let strategy = (clock(), proptest::collection::vec(op(), 1..24));
    let outcome = runner.run(&strategy, |(clock, ops)| {
        let real = run(&mut RealKernel::new(), clock, &ops);
        let sim = run(&mut Sim::faithful(), clock, &ops);
        prop_assert_eq!(real, sim);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// A simulator with a timer armed `value` from now, repeating every `interval`.
fn armed(value: Duration, interval: Duration) -> (Sim, Fd) {
    let mut k = Sim::faithful();
    let fd = k.timerfd(TimerClock::Monotonic).expect("a timerfd");
    let set = TimerSetting {
        value: Timespec::of(value),
        interval: Timespec::of(interval),
    };
    k.timerfd_settime(fd, false, set).expect("armed");
    (k, fd)
}

fn pass(k: &mut Sim, time: Duration) {
    assert_eq!(k.poll(&mut [], Some(time)), Ok(0));
}

fn read(k: &mut Sim, fd: Fd) -> Result<u64, nix::errno::Errno> {
    let mut buf = [0u8; 8];
    k.recv(fd, &mut buf)?;
    Ok(u64::from_ne_bytes(buf))
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_read_counts_every_period_that_passed() {
    let (mut k, fd) = armed(10 * MS, 10 * MS);
    pass(&mut k, 35 * MS);
    // Expirations at 10, 20 and 30 ms; the next is at 40.
    assert_eq!(read(&mut k, fd), Ok(3));
    assert_eq!(read(&mut k, fd), Err(nix::errno::Errno::EAGAIN));
    let left = k.timerfd_gettime(fd).expect("gettime");
    assert_eq!(left.value, Timespec::of(5 * MS));
    assert_eq!(left.interval, Timespec::of(10 * MS));
    pass(&mut k, 5 * MS);
    assert_eq!(read(&mut k, fd), Ok(1));
}

#[test]
fn gettime_counts_the_missed_periods_for_the_next_read() {
    let (mut k, fd) = armed(10 * MS, 10 * MS);
    pass(&mut k, 25 * MS);
    assert_eq!(
        k.timerfd_gettime(fd).expect("gettime").value,
        Timespec::of(5 * MS)
    );
    pass(&mut k, 10 * MS);
    // 10 and 20 counted by gettime, 30 fired since.
    assert_eq!(read(&mut k, fd), Ok(3));
}

#[test]
fn an_edge_triggered_watcher_sees_one_edge_until_the_timer_is_read() {
    let (mut k, fd) = armed(10 * MS, 10 * MS);
    let ep = k.epoll_create().expect("epoll");
    k.epoll_ctl(ep, CtlOp::Add, fd, Events::IN, Mode::EDGE, 1)
        .expect("add");
    let mut got = Vec::new();
    assert_eq!(k.epoll_wait(ep, &mut got, 4, Some(100 * MS)), Ok(1));
    assert_eq!(k.now(), 10 * MS);
    // The periodic timer stopped at its first firing: no new edge however long we wait.
    assert_eq!(k.epoll_wait(ep, &mut got, 4, Some(100 * MS)), Ok(0));
    // Expirations at 10, 20, ... 110 ms.
    assert_eq!(read(&mut k, fd), Ok(11));
    // The read restarted it: the next period gives the next edge.
    assert_eq!(k.epoll_wait(ep, &mut got, 4, Some(100 * MS)), Ok(1));
    assert_eq!(k.now(), 120 * MS);
}

#[test]
fn settime_forgets_what_was_not_read_and_returns_the_old_setting() {
    let (mut k, fd) = armed(10 * MS, Duration::ZERO);
    pass(&mut k, 20 * MS);
    let far = TimerSetting {
        value: Timespec::of(Duration::from_secs(60)),
        interval: Timespec::of(MS),
    };
    let old = k.timerfd_settime(fd, false, far).expect("rearmed");
    assert_eq!(
        old,
        TimerSetting::default(),
        "a fired one-shot has no time left"
    );
    assert_eq!(read(&mut k, fd), Err(nix::errno::Errno::EAGAIN));
    let old = k
        .timerfd_settime(fd, false, TimerSetting::default())
        .expect("disarmed");
    assert_eq!(old, far);
    pass(&mut k, Duration::from_secs(120));
    assert_eq!(read(&mut k, fd), Err(nix::errno::Errno::EAGAIN));
}

#[test]
fn an_absolute_time_is_on_the_timers_own_clock() {
    let mut k = Sim::faithful();
    for clock in [TimerClock::Realtime, TimerClock::Monotonic] {
        let fd = k.timerfd(clock).expect("a timerfd");
        let at = TimerSetting {
            value: Timespec::of(k.clock(clock) + 20 * MS),
            interval: Timespec::default(),
        };
        k.timerfd_settime(fd, true, at).expect("armed");
        let start = k.now();
        assert_eq!(k.poll(&mut [PollFd::new(fd, Events::IN)], None), Ok(1));
        assert_eq!(k.now() - start, 20 * MS, "{clock:?}");
        assert_eq!(read(&mut k, fd), Ok(1));
    }
}
