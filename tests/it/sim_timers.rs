//! The simulator's clock and waits, pinned where the other suites leave them loose: timers
//! due at the same instant fire in the order they were armed, a wait ends at its deadline even
//! with a later timer set, TIME_WAIT ends, poll reports errors whatever was asked, and a
//! spurious wake-up is picked only among quiet descriptors.

use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{
    CtlOp, Events, Fd, Kernel, Mode, PollFd, TimerClock, TimerSetting, Timespec,
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
    let at = SockAddr::Inet("127.0.0.1:7000".parse().expect("an address"));
    let listener = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    sim.bind(listener, &at).expect("bound");
    sim.listen(listener, 1).expect("listening");
    let client = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    let _ = sim.connect(client, &at);
    let (server, _) = sim.accept(listener).expect("accepted");
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
    let always = Adversity {
        spurious_per_mille: 1000,
        ..Adversity::NONE
    };
    let mut sim = Sim::new(SimConfig::default(), Decider::seeded(1, always));
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
