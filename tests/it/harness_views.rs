//! What a harness asks the simulator without a call being made or recorded: whether a stepped
//! program's call would wait at all (`Sim::waits_as`), whether a send would go on
//! (`Sim::send_ready_as`), when the next timer runs, letting time pass (`Sim::idle`), the
//! adversary's signal for a wait about to block, and the views a session's verdicts rest on
//! (who is calling, a connection still trying, a reset the network made, calls counted, the
//! wire, what a wait reported); and what a guest's harness sets (the numbers new descriptors
//! take, the program's random bytes) within the machine's descriptor limit.

use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{Events, Fd, FdSets, Kernel, PollFd, TimerClock, TimerSetting, Timespec};
use selectlab::sim::decide::{Adversity, Decider};
use selectlab::sim::transcript::Host;
use selectlab::sim::{Sim, SimConfig, WaitingCall};

use WaitingCall::{Accept, EpollWait, Recv, Send};

const RECV: WaitingCall = Recv {
    len: 1,
    from: false,
};
const SEND: WaitingCall = Send { len: 1, to: false };

/// A TCP listener at 127.0.0.1:7000 and one accepted connection: (listener, client, server
/// end).
pub(crate) fn tcp(sim: &mut Sim) -> (Fd, Fd, Fd) {
    let listener = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    let at = SockAddr::Inet("127.0.0.1:7000".parse().expect("an address"));
    sim.bind(listener, &at).expect("bound");
    sim.listen(listener, 8).expect("listening");
    let client = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    let _ = sim.connect(client, &at);
    let (server, _) = sim.accept(listener).expect("accepted");
    (listener, client, server)
}

fn waits(sim: &Sim, fd: Fd, call: WaitingCall) -> bool {
    sim.waits_as(Host::MAIN, fd, call)
}

#[test]
fn only_calls_that_would_give_eagain_wait() {
    let mut sim = Sim::faithful();
    let (listener, client, _) = tcp(&mut sim);
    // Only accept waits on a listener; a receive or a send there fails at once.
    assert!(waits(&sim, listener, Accept));
    assert!(!waits(&sim, listener, RECV) && !waits(&sim, listener, SEND));
    // A connection's receive waits, even for no bytes; its send waits unless it sends none.
    assert!(!waits(&sim, client, Accept));
    assert!(waits(&sim, client, RECV) && waits(&sim, client, Recv { len: 0, from: true }));
    assert!(waits(&sim, client, SEND) && waits(&sim, client, Send { len: 1, to: true }));
    assert!(!waits(&sim, client, Send { len: 0, to: false }));
    assert!(!waits(&sim, client, EpollWait { max: 1 }));

    let udp = sim.socket(Family::Inet, SockType::Dgram).expect("a socket");
    assert!(
        waits(&sim, udp, Send { len: 0, to: true }),
        "a datagram of no bytes is one"
    );
    let (a, _) = sim.socketpair(SockType::Stream).expect("a pair");
    assert!(
        !waits(&sim, a, Send { len: 1, to: true }),
        "AF_UNIX stream: EISCONN at once"
    );
    assert!(waits(&sim, a, SEND));
    let (d, _) = sim.socketpair(SockType::Dgram).expect("a pair");
    assert!(waits(&sim, d, Send { len: 1, to: true }));

    // A pipe end waits only in its own direction, and only for some bytes.
    let (r, w) = sim.pipe().expect("a pipe");
    assert!(waits(&sim, r, RECV) && !waits(&sim, r, SEND));
    assert!(waits(&sim, w, SEND) && !waits(&sim, w, RECV));
    assert!(!waits(
        &sim,
        r,
        Recv {
            len: 0,
            from: false
        }
    ));
    assert!(!waits(&sim, w, Send { len: 0, to: false }));
    assert!(
        !waits(&sim, r, Recv { len: 1, from: true }),
        "recvfrom: ENOTSOCK"
    );
    // Counters are 8 bytes: less is EINVAL at once; a timerfd cannot be written.
    let counter = sim.eventfd(0, false).expect("an eventfd");
    let eight = Recv {
        len: 8,
        from: false,
    };
    assert!(waits(&sim, counter, eight) && waits(&sim, counter, Send { len: 8, to: false }));
    assert!(!waits(
        &sim,
        counter,
        Recv {
            len: 7,
            from: false
        }
    ));
    assert!(!waits(&sim, counter, Send { len: 7, to: false }));
    let timer = sim.timerfd(TimerClock::Monotonic).expect("a timerfd");
    assert!(
        waits(&sim, timer, eight)
            && !waits(
                &sim,
                timer,
                Recv {
                    len: 7,
                    from: false
                }
            )
    );
    assert!(!waits(&sim, timer, Send { len: 8, to: false }));
    // epoll_wait waits on an epoll instance for at least one event.
    let ep = sim.epoll_create().expect("an epoll instance");
    assert!(waits(&sim, ep, EpollWait { max: 1 }));
    assert!(!waits(&sim, ep, EpollWait { max: 0 }) && !waits(&sim, ep, RECV));
    // Nothing waits on a descriptor that is not open.
    assert!(!waits(&sim, Fd(99), RECV) && !waits(&sim, Fd(99), EpollWait { max: 1 }));
}

#[test]
fn an_af_unix_send_goes_on_past_the_quarter_where_poll_stops_reporting_room() {
    let mut sim = Sim::faithful();
    let (a, _b) = sim.socketpair(SockType::Stream).expect("a pair");
    let mut sent = 0;
    while sim.ready_now(a).contains(Events::OUT) {
        sent += sim.send(a, &[b'x'; 4096]).expect("room");
    }
    assert!(
        sim.send_ready_as(Host::MAIN, a),
        "no POLLOUT after {sent} bytes, yet room"
    );
    assert!(sim.send(a, &[b'x'; 4096]).is_ok(), "a send goes on there");
    while sim.send(a, &[b'x'; 4096]).is_ok() {}
    assert!(
        !sim.send_ready_as(Host::MAIN, a),
        "a full buffer: the send would wait"
    );
    let (c, _) = sim.socketpair(SockType::Stream).expect("a pair");
    assert!(sim.send_ready_as(Host::MAIN, c));
    assert!(
        sim.send_ready_as(Host::MAIN, Fd(99)),
        "not open: EBADF at once"
    );
}

#[test]
fn idling_runs_the_next_timer_at_its_time_or_stops_at_the_end_given() {
    let mut sim = Sim::faithful();
    let timer = sim.timerfd(TimerClock::Monotonic).expect("a timerfd");
    let second = TimerSetting {
        value: Timespec { secs: 1, nanos: 0 },
        interval: Timespec { secs: 0, nanos: 0 },
    };
    sim.timerfd_settime(timer, false, second).expect("armed");
    assert_eq!(sim.next_timer(), Some(Duration::from_secs(1)));
    sim.idle(Some(Duration::from_millis(500)));
    assert_eq!(
        sim.now(),
        Duration::from_millis(500),
        "the end given comes first"
    );
    assert!(!sim.ready_now(timer).contains(Events::IN));
    sim.idle(Some(Duration::from_secs(1)));
    assert_eq!(sim.now(), Duration::from_secs(1));
    assert!(
        sim.ready_now(timer).contains(Events::IN),
        "a timer due at the end runs"
    );
    assert_eq!(sim.next_timer(), None);
    sim.idle(None);
    assert_eq!(
        sim.now(),
        Duration::from_secs(1),
        "no timer and no end: nothing happens"
    );
    sim.idle(Some(Duration::from_secs(3)));
    assert_eq!(sim.now(), Duration::from_secs(3));
}

/// A signal for a host about to block outside the simulator's waits (a stepped guest's) cuts
/// that host's next wait short with EINTR; another host's wait is untouched, and a wait that
/// fails at once takes the signal too.
#[test]
fn a_signalled_hosts_next_wait_returns_eintr_once() {
    let mut sim = Sim::faithful();
    let (a, _b) = sim.socketpair(SockType::Stream).expect("a socket pair");
    let quiet = |sim: &mut Sim| {
        let mut fds = [PollFd::new(a, Events::IN)];
        sim.poll(&mut fds, Some(Duration::from_millis(1)))
    };
    sim.interrupt_next_wait();
    sim.set_host(Host::peer(0));
    assert_eq!(quiet(&mut sim), Ok(0), "another host's wait times out");
    sim.set_host(Host::MAIN);
    assert_eq!(quiet(&mut sim), Err(Errno::EINTR));
    assert_eq!(quiet(&mut sim), Ok(0), "the signal interrupts one wait");

    sim.interrupt_next_wait();
    let mut closed = FdSets {
        read: vec![Fd(99)],
        write: Vec::new(),
        except: Vec::new(),
    };
    let failed = sim.select(&mut closed, Some(Duration::from_millis(1)));
    assert_eq!(failed, Err(Errno::EBADF));
    assert_eq!(quiet(&mut sim), Ok(0), "the failed select took the signal");
}

/// A simulator whose adversary always does what `adversity` allows.
fn always(adversity: Adversity) -> Sim {
    Sim::new(SimConfig::default(), Decider::seeded(1, adversity))
}

#[test]
fn the_views_a_sessions_verdicts_rest_on() {
    let mut sim = Sim::faithful();
    sim.set_host(Host::peer(2));
    assert_eq!(sim.host(), Host::peer(2));
    sim.set_host(Host::MAIN);
    let (_, client, server) = tcp(&mut sim);
    assert!(!sim.still_connecting(client) && !sim.reset_by_adversary(client));
    assert!(!sim.hold_back(), "the faithful machine holds no one back");
    // Every call counts; the timers' own records do not.
    let before = sim.syscalls();
    sim.send(client, b"hi\n").expect("sent");
    let mut fds = [PollFd::new(server, Events::IN)];
    sim.poll(&mut fds, Some(Duration::ZERO)).expect("a poll");
    assert_eq!(sim.syscalls(), before + 2);
    // A wait's record lists what it reported.
    let text = sim.transcript().to_string();
    let last = text.lines().last().expect("a record");
    assert!(last.contains("poll(") && last.contains(" in)"), "{last}");

    let mut lost = always(Adversity {
        syn_drop_per_mille: 1000,
        ..Adversity::NONE
    });
    let listener = lost
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    let at = SockAddr::Inet("127.0.0.1:7001".parse().expect("an address"));
    lost.bind(listener, &at).expect("bound");
    lost.listen(listener, 1).expect("listening");
    let c = lost
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    assert_eq!(lost.connect(c, &at), Err(Errno::EINPROGRESS));
    assert!(lost.still_connecting(c), "its SYN was lost: it retries");

    let mut held = always(Adversity {
        hold_back_per_mille: 1000,
        ..Adversity::NONE
    });
    assert!(held.hold_back());

    let mut reset = always(Adversity {
        reset_per_mille: 1000,
        ..Adversity::NONE
    });
    let (_, client, _) = tcp(&mut reset);
    let _ = reset.send(client, b"hi\n");
    assert!(reset.reset_by_adversary(client), "the network reset it");
}

#[test]
fn each_host_numbers_its_own_descriptors_when_it_has_a_table() {
    let config = SimConfig {
        fd_table_per_host: true,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config, Decider::faithful());
    let mine = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    sim.set_host(Host::peer(0));
    let theirs = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    assert_eq!(mine, theirs, "separate tables, the same lowest number");
    assert!(sim.ready_now_as(Host::peer(0), theirs) != Events::NVAL);
    assert_eq!(sim.ready_now_as(Host::peer(1), theirs), Events::NVAL);
}

#[test]
fn only_the_machines_own_addresses_can_be_bound() {
    let mut sim = Sim::faithful();
    for (ip, bound) in [("0.0.0.0", true), ("127.0.0.5", true), ("10.1.2.3", false)] {
        let fd = sim
            .socket(Family::Inet, SockType::Stream)
            .expect("a socket");
        let at = SockAddr::Inet(format!("{ip}:0").parse().expect("an address"));
        let r = sim.bind(fd, &at);
        assert_eq!(r.is_ok(), bound, "{ip}: {r:?}");
    }
}

#[test]
fn the_wire_is_kept_when_asked() {
    let config = SimConfig {
        capture: true,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config, Decider::faithful());
    let (_, client, _) = tcp(&mut sim);
    sim.send(client, b"hi\n").expect("sent");
    assert!(!sim.capture().segments().is_empty());
}

#[test]
fn a_send_goes_on_where_poll_reports_only_an_error() {
    // No room, but the write fails at once (EPIPE).
    let mut sim = Sim::faithful();
    let w = crate::sim_timers::broken_full_pipe(&mut sim);
    assert!(!sim.ready_now(w).contains(Events::OUT));
    assert!(sim.send_ready_as(Host::MAIN, w));
}

#[test]
fn new_descriptors_take_the_numbers_placed_for_them_until_cleared() {
    let mut sim = Sim::faithful();
    sim.place_next_fds(&[Fd(50), Fd(51)]);
    let placed = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    assert_eq!(placed, Fd(50));
    sim.clear_placed_fds();
    let lowest = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    assert!(
        lowest.0 < 50,
        "{lowest:?}: the unused placed number was forgotten"
    );
    // A placed number already in use: the two tables disagree (EBADF), and the failed dup
    // holds no reference: closing the original closes the socket.
    let (a, b) = sim.socketpair(SockType::Stream).expect("a pair");
    sim.place_next_fds(&[b]);
    assert_eq!(sim.dup(a), Err(Errno::EBADF));
    sim.clear_placed_fds();
    sim.close(a).expect("closed");
    assert!(sim.ready_now(b).contains(Events::HUP), "its peer saw it go");
}

#[test]
fn a_programs_random_bytes_come_from_the_seed() {
    let bytes = |seed: u64| {
        let mut sim = Sim::new(
            SimConfig::default(),
            Decider::faithful().with_entropy_seed(seed),
        );
        let mut buf = [0u8; 16];
        sim.entropy(&mut buf);
        buf
    };
    assert_eq!(bytes(7), bytes(7));
    assert_ne!(bytes(7), bytes(8));
    assert_ne!(bytes(7), [0; 16]);
}

#[test]
fn a_dup_past_the_descriptor_limit_is_emfile() {
    let config = SimConfig {
        fd_limit: 3,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config, Decider::faithful());
    let (a, _b) = sim.socketpair(SockType::Stream).expect("a pair");
    assert!(sim.dup(a).is_ok(), "the third descriptor fits the limit");
    assert_eq!(sim.dup(a), Err(Errno::EMFILE));
    assert_eq!(
        sim.socket(Family::Inet, SockType::Stream),
        Err(Errno::EMFILE)
    );
}
