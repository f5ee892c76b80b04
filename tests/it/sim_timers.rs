//! The simulator's clock and waits, pinned where the other suites leave them loose: timers
//! due at the same instant fire in the order they were armed, a wait ends at its deadline even
//! with a later timer set, TIME_WAIT ends, poll and epoll report errors whatever was asked, a
//! spurious wake-up is picked only among quiet descriptors and counted once, removing an
//! epoll item or closing a watched file leaves every other watcher and ready item in place,
//! select checks its descriptors and counts each set, and a wait's record names descriptors.

use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{
    CtlOp, Events, Fd, FdSets, Kernel, Mode, PollFd, TimerClock, TimerSetting, Timespec,
};
use selectlab::sim::decide::{Adversity, Decider};
use selectlab::sim::{Sim, SimConfig};

/// A one-shot timerfd armed to expire `secs` seconds from now.
fn timer_in(sim: &mut Sim, secs: i64) -> Fd {
    let fd = sim.timerfd(TimerClock::Monotonic).expect("a timerfd");
    arm(sim, fd, secs);
    fd
}

fn arm(sim: &mut Sim, fd: Fd, secs: i64) {
    let once = TimerSetting {
        value: Timespec { secs, nanos: 0 },
        interval: Timespec { secs: 0, nanos: 0 },
    };
    sim.timerfd_settime(fd, false, once).expect("armed");
}

fn readable(sim: &Sim, fd: Fd) -> bool {
    sim.ready_now(fd).contains(Events::IN)
}

#[test]
fn idling_runs_only_the_timers_due_by_the_next_ones_time() {
    let mut sim = Sim::faithful();
    let (first, later) = (timer_in(&mut sim, 1), timer_in(&mut sim, 3));
    sim.idle(Some(Duration::from_secs(2)));
    assert_eq!(
        sim.now(),
        Duration::from_secs(1),
        "the first timer ends the idling"
    );
    assert!(readable(&sim, first) && !readable(&sim, later));
    assert_eq!(sim.next_timer(), Some(Duration::from_secs(3)));
    // A timer is recorded as the machine's own, on no descriptor.
    let text = sim.transcript().to_string();
    let last = text.lines().last().expect("a record");
    assert!(last.ends_with("] timer() = 0"), "{last}");
}

#[test]
fn timers_due_at_one_instant_fire_in_the_order_they_were_armed() {
    let mut sim = Sim::faithful();
    // Made in one order, armed in the other: the epoll ready list follows the firing.
    let made_first = sim.timerfd(TimerClock::Monotonic).expect("a timerfd");
    let made_second = sim.timerfd(TimerClock::Monotonic).expect("a timerfd");
    arm(&mut sim, made_second, 1);
    arm(&mut sim, made_first, 1);
    let ep = sim.epoll_create().expect("an epoll instance");
    for fd in [made_first, made_second] {
        let token = u64::try_from(fd.0).expect("a descriptor");
        sim.epoll_ctl(ep, CtlOp::Add, fd, Events::IN, Mode::default(), token)
            .expect("added");
    }
    sim.idle(Some(Duration::from_secs(1)));
    let mut out = Vec::new();
    sim.epoll_wait(ep, &mut out, 8, Some(Duration::ZERO))
        .expect("a wait");
    let order: Vec<u64> = out.iter().map(|(token, _)| *token).collect();
    let armed = [made_second, made_first].map(|fd| u64::try_from(fd.0).expect("a descriptor"));
    assert_eq!(order, armed);
}

#[test]
fn a_wait_ends_at_its_deadline_though_a_later_timer_is_set() {
    let mut sim = Sim::faithful();
    let timer = timer_in(&mut sim, 1);
    let (a, _b) = sim.socketpair(SockType::Stream).expect("a pair");
    let mut fds = [PollFd::new(a, Events::IN)];
    let waited = sim.poll(&mut fds, Some(Duration::from_millis(500)));
    assert_eq!(waited, Ok(0));
    assert_eq!(sim.now(), Duration::from_millis(500));
    assert!(!readable(&sim, timer), "the timer is not due yet");
}

#[test]
fn an_address_in_time_wait_is_free_again_when_it_ends() {
    let mut sim = Sim::faithful();
    let (listener, client, server) = crate::harness_views::tcp(&mut sim);
    let at = SockAddr::Inet("127.0.0.1:7000".parse().expect("an address"));
    // The server closes first: its address waits in TIME_WAIT.
    for fd in [server, client, listener] {
        sim.close(fd).expect("closed");
    }
    let again = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    assert_eq!(sim.bind(again, &at), Err(Errno::EADDRINUSE));
    for _ in 0..16 {
        sim.idle(None);
    }
    assert_eq!(sim.next_timer(), None);
    assert_eq!(sim.bind(again, &at), Ok(()), "TIME_WAIT ended");
}

#[test]
fn poll_reports_an_error_whether_or_not_it_was_asked_for() {
    let mut sim = Sim::faithful();
    let (r, w) = sim.pipe().expect("a pipe");
    sim.close(r).expect("closed");
    for asked in [Events::OUT, Events::OUT | Events::ERR] {
        let mut fds = [PollFd::new(w, asked)];
        assert_eq!(sim.poll(&mut fds, Some(Duration::ZERO)), Ok(1));
        assert!(fds[0].revents.contains(Events::ERR), "{asked:?}: {fds:?}");
    }
}

#[test]
fn a_spurious_wake_up_is_picked_only_among_quiet_descriptors() {
    let mut sim = spurious_always();
    let (a, _b) = sim.socketpair(SockType::Stream).expect("a pair");
    // Writable and watched for input too: not quiet, so nothing is made up for it.
    let mut fds = [PollFd::new(a, Events::IN | Events::OUT)];
    assert_eq!(sim.poll(&mut fds, Some(Duration::ZERO)), Ok(1));
    assert_eq!(fds[0].revents, Events::OUT);
    // Watched for input alone, it is quiet: the made-up readiness is reported and counted.
    let mut fds = [PollFd::new(a, Events::IN)];
    assert_eq!(sim.poll(&mut fds, Some(Duration::ZERO)), Ok(1));
    assert_eq!(fds[0].revents, Events::IN);
}

/// The write end of a full pipe whose reader has gone: an error, and no room.
pub(crate) fn broken_full_pipe(sim: &mut Sim) -> Fd {
    let (r, w) = sim.pipe().expect("a pipe");
    while sim.send(w, &[b'x'; 4096]).is_ok() {}
    sim.close(r).expect("closed");
    w
}

#[test]
fn epoll_reports_an_error_whether_or_not_it_was_asked_for() {
    let mut sim = Sim::faithful();
    let w = broken_full_pipe(&mut sim);
    for asked in [Events::OUT, Events::OUT | Events::ERR] {
        let ep = sim.epoll_create().expect("an epoll instance");
        sim.epoll_ctl(ep, CtlOp::Add, w, asked, Mode::default(), 7)
            .expect("added");
        let mut out = Vec::new();
        sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO))
            .expect("a wait");
        assert!(
            out.iter().any(|(_, e)| e.contains(Events::ERR)),
            "{asked:?}: {out:?}"
        );
    }
}

#[test]
fn removing_an_item_leaves_every_other_watcher_of_its_file() {
    let mut sim = Sim::faithful();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    let copy = sim.dup(a).expect("a dup");
    let edge = Mode::EDGE;
    let (one, other) = (
        sim.epoll_create().expect("epoll"),
        sim.epoll_create().expect("epoll"),
    );
    for (ep, fd, token) in [(one, a, 1), (one, copy, 2), (other, a, 3)] {
        sim.epoll_ctl(ep, CtlOp::Add, fd, Events::IN, edge, token)
            .expect("added");
    }
    sim.epoll_ctl(one, CtlOp::Delete, a, Events::IN, edge, 0)
        .expect("removed");
    // Only edges from now on: each instance hears the new data once, through what it still
    // watches.
    sim.send(b, b"x").expect("sent");
    for (ep, token) in [(one, 2), (other, 3)] {
        let mut out = Vec::new();
        sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO))
            .expect("a wait");
        assert_eq!(out, [(token, Events::IN)], "token {token}");
    }
}

#[test]
fn a_spurious_epoll_report_is_one_event_more_and_never_past_max() {
    let mut sim = spurious_always();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    let (c, _d) = sim.socketpair(SockType::Stream).expect("a pair");
    let ep = sim.epoll_create().expect("an epoll instance");
    sim.epoll_ctl(ep, CtlOp::Add, c, Events::IN, Mode::default(), 2)
        .expect("added");
    // Nothing ready: the made-up readiness is the one event, and counted.
    let mut out = Vec::new();
    let n = sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO));
    assert_eq!((n, out.len()), (Ok(1), 1), "{out:?}");
    // One ready event and a wait for one: nothing is made up past it.
    sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::default(), 1)
        .expect("added");
    sim.send(b, b"x").expect("sent");
    let mut out = Vec::new();
    let n = sim.epoll_wait(ep, &mut out, 1, Some(Duration::ZERO));
    assert_eq!((n, out.len()), (Ok(1), 1), "{out:?}");
}

/// A seeded machine whose adversary always does what `adversity` allows.
fn always(seed: u64, adversity: Adversity) -> Sim {
    Sim::new(SimConfig::default(), Decider::seeded(seed, adversity))
}

/// A machine whose every wait may report a descriptor that is not ready, and does.
fn spurious_always() -> Sim {
    let spurious = Adversity {
        spurious_per_mille: 1000,
        ..Adversity::NONE
    };
    always(1, spurious)
}

#[test]
fn a_spurious_epoll_report_skips_disarmed_items_outputs_and_what_was_just_reported() {
    let mut sim = spurious_always();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    let (r, _w) = sim.pipe().expect("a pipe");
    sim.send(b, b"x").expect("sent");
    let ep = sim.epoll_create().expect("an epoll instance");
    sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::LEVEL, 1)
        .expect("added");
    // Watched for output only, and never writable: no input can be made up for it.
    sim.epoll_ctl(ep, CtlOp::Add, r, Events::OUT, Mode::LEVEL, 2)
        .expect("added");
    let mut out = Vec::new();
    sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(out, [(1, Events::IN)]);

    let mut sim = spurious_always();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    sim.send(b, b"x").expect("sent");
    let ep = sim.epoll_create().expect("an epoll instance");
    let once = Mode::ONESHOT;
    sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, once, 3)
        .expect("added");
    let mut first = Vec::new();
    sim.epoll_wait(ep, &mut first, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(first, [(3, Events::IN)]);
    let mut then = Vec::new();
    sim.epoll_wait(ep, &mut then, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(then, [], "a one-shot item is disarmed once reported");
}

#[test]
fn an_epoll_wait_returning_early_reports_at_least_one_and_fewer_than_all() {
    let defer = Adversity {
        defer_per_mille: 1000,
        ..Adversity::NONE
    };
    for seed in 1..=20 {
        for (ready, max) in [(2, 4), (3, 2), (3, 3), (4, 8), (3, 1)] {
            let mut sim = always(seed, defer);
            let ep = sim.epoll_create().expect("an epoll instance");
            for token in 0..ready {
                let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
                sim.send(b, b"x").expect("sent");
                sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::LEVEL, token)
                    .expect("added");
            }
            let mut out = Vec::new();
            let n = sim
                .epoll_wait(ep, &mut out, max, Some(Duration::ZERO))
                .expect("a wait");
            let all = max.min(ready as usize);
            let expected = if all < 2 { all..=all } else { 1..=all - 1 };
            assert!(
                expected.contains(&n),
                "seed {seed}, {ready} ready, max {max}: {n}"
            );
            assert_eq!(n, out.len());
        }
    }
}

fn sets(read: &[Fd], write: &[Fd]) -> FdSets {
    FdSets {
        read: read.to_vec(),
        write: write.to_vec(),
        except: Vec::new(),
    }
}

#[test]
fn select_checks_its_descriptors_and_counts_every_set() {
    let mut sim = Sim::faithful();
    let now = Some(Duration::ZERO);
    assert_eq!(
        sim.select(&mut sets(&[Fd(-1)], &[]), now),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        sim.select(&mut sets(&[Fd(1024)], &[]), now),
        Err(Errno::EINVAL)
    );
    assert_eq!(sim.select(&mut sets(&[Fd(0)], &[]), now), Err(Errno::EBADF));
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    sim.send(b, b"x").expect("sent");
    let mut both = sets(&[a], &[a]);
    assert_eq!(
        sim.select(&mut both, now),
        Ok(2),
        "readable and writable: two"
    );
}

#[test]
fn a_spurious_select_report_is_a_quiet_descriptor_never_a_ready_one_twice() {
    let mut sim = spurious_always();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    let (c, _d) = sim.socketpair(SockType::Stream).expect("a pair");
    sim.send(b, b"x").expect("sent");
    let mut asked = sets(&[a, c], &[]);
    assert_eq!(sim.select(&mut asked, Some(Duration::ZERO)), Ok(2));
    assert_eq!(asked.read, [a, c]);
}

#[test]
fn closing_a_watched_file_leaves_the_other_ready_items() {
    let mut sim = Sim::faithful();
    let ep = sim.epoll_create().expect("an epoll instance");
    let mut ends = Vec::new();
    for token in [1, 2] {
        let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
        sim.send(b, b"x").expect("sent");
        sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::LEVEL, token)
            .expect("added");
        ends.push(a);
    }
    sim.close(ends[0]).expect("closed");
    let mut out = Vec::new();
    sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(out, [(2, Events::IN)]);
}

#[test]
fn an_epoll_waits_record_names_the_descriptors_it_reported() {
    let mut sim = Sim::faithful();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    sim.send(b, b"x").expect("sent");
    let ep = sim.epoll_create().expect("an epoll instance");
    sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::LEVEL, 99)
        .expect("added");
    let mut out = Vec::new();
    sim.epoll_wait(ep, &mut out, 4, Some(Duration::ZERO))
        .expect("a wait");
    let text = sim.transcript().to_string();
    let last = text.lines().last().expect("a record");
    assert!(last.ends_with(&format!("(fd{} in)", a.0)), "{last}");
}

#[test]
fn a_spurious_report_disarms_a_one_shot_item_as_a_true_one_does() {
    let mut sim = spurious_always();
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    let ep = sim.epoll_create().expect("an epoll instance");
    let once = Mode::ONESHOT;
    sim.epoll_ctl(ep, CtlOp::Add, a, Events::IN, once, 5)
        .expect("added");
    let mut made_up = Vec::new();
    sim.epoll_wait(ep, &mut made_up, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(made_up, [(5, Events::IN)]);
    sim.send(b, b"x").expect("sent");
    let mut then = Vec::new();
    sim.epoll_wait(ep, &mut then, 4, Some(Duration::ZERO))
        .expect("a wait");
    assert_eq!(then, [], "disarmed by the made-up report");
}

#[test]
fn epoll_wait_takes_from_one_to_linuxs_most_events() {
    use selectlab::kernel::EP_MAX_EVENTS;
    let mut sim = Sim::faithful();
    let ep = sim.epoll_create().expect("an epoll instance");
    let mut out = Vec::new();
    for (max, answer) in [
        (0, Err(Errno::EINVAL)),
        (EP_MAX_EVENTS, Ok(0)),
        (EP_MAX_EVENTS + 1, Err(Errno::EINVAL)),
    ] {
        assert_eq!(
            sim.epoll_wait(ep, &mut out, max, Some(Duration::ZERO)),
            answer,
            "{max}"
        );
    }
}
