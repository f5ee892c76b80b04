//! The reactor: events in token order, timers on the kernel's clock (virtual in the simulator),
//! bounded runs; and the adversary's spurious wakeups are visible and harmless.

use std::time::Duration;

use selectlab::addr::SockType;
use selectlab::kernel::{Events, Kernel, Mode};
use selectlab::programs::lt_vs_et::{MAX_TURNS, Reader, Writer, exchange};
use selectlab::reactor::{App, Io, Reactor};
use selectlab::readiness::{Backend, Token};
use selectlab::sim::decide::{Adversity, Choice, Decider};
use selectlab::sim::{Sim, SimConfig};

#[derive(Default)]
struct Recorder {
    seen: Vec<(Duration, Token, String)>,
}

impl App for Recorder {
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, events: Events) {
        self.seen.push((io.now(), token, format!("event {events}")));
        let _ = io.deregister(token);
    }

    fn on_timer(&mut self, io: &mut Io<'_>, token: Token) {
        self.seen.push((io.now(), token, "timer".into()));
    }
}

#[test]
fn events_come_in_token_order_and_timers_on_the_virtual_clock() {
    for backend in Backend::ALL {
        let mut sim = Sim::faithful();
        let mut reactor = Reactor::new(&mut sim, backend).unwrap();
        let mut app = Recorder::default();
        // Register in reverse order; data arrives in yet another order.
        let pairs: Vec<_> = (0..3)
            .map(|_| sim.socketpair(SockType::Stream).unwrap())
            .collect();
        for (i, (a, _)) in pairs.iter().enumerate().rev() {
            reactor
                .io(&mut sim)
                .register(*a, Token(10 + i), Events::IN, Mode::LEVEL)
                .unwrap();
        }
        for i in [1, 2, 0] {
            assert_eq!(sim.send(pairs[i].1, b"x"), Ok(1));
        }
        {
            let mut io = reactor.io(&mut sim);
            io.set_timer(Token(99), Duration::from_secs(30));
            io.set_timer(Token(98), Duration::from_secs(10));
            io.set_timer(Token(97), Duration::from_secs(20));
            io.cancel_timer(Token(97));
        }
        let turns = reactor.run_until(&mut sim, &mut app, Some(Duration::from_secs(60)), 10, |a| {
            a.seen.len() == 5
        });
        assert!(turns.is_ok(), "{backend}");
        let got: Vec<(u64, usize, &str)> = app
            .seen
            .iter()
            .map(|(t, k, w)| (t.as_secs(), k.0, w.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 10, "event in"),
                (0, 11, "event in"),
                (0, 12, "event in"),
                (10, 98, "timer"),
                (30, 99, "timer")
            ],
            "{backend}"
        );
    }
}

#[test]
fn a_run_that_cannot_finish_stops_at_its_bound() {
    let mut sim = Sim::faithful();
    let mut reactor = Reactor::new(&mut sim, Backend::Epoll).unwrap();
    let mut app = Recorder::default();
    let r = reactor.run_until(
        &mut sim,
        &mut app,
        Some(Duration::from_millis(1)),
        5,
        |_| false,
    );
    assert_eq!(r, Err(nix::errno::Errno::ETIMEDOUT));
    assert_eq!(
        sim.now(),
        Duration::from_millis(5),
        "five waits of 1 ms, in virtual time"
    );
}

#[test]
fn spurious_wakeups_happen_are_recorded_and_a_correct_reader_shrugs_them_off() {
    let adversity = Adversity {
        spurious_per_mille: 500,
        ..Adversity::NONE
    };
    for backend in Backend::ALL {
        let mut sim = Sim::new(SimConfig::default(), Decider::seeded(3, adversity));
        let o = exchange(
            &mut sim,
            backend,
            Mode::LEVEL,
            Reader::Drain,
            Writer::KeepTail,
            MAX_TURNS,
        )
        .unwrap();
        assert!(o.finished, "{backend}");
        let spurious = sim
            .transcript()
            .records()
            .iter()
            .filter(|r| r.choice == Some(Choice::Spurious))
            .count();
        assert!(
            spurious > 0,
            "{backend}: the adversary never woke anyone spuriously"
        );
        assert!(
            sim.transcript()
                .to_string()
                .contains("adversary: spurious wakeup")
        );
    }
}

/// Found by cargo-mutants: two timers due at the same moment must both fire (their order
/// breaks ties), and a turn reports how many fired, never more than its bound.
#[test]
fn timers_with_the_same_deadline_all_fire_and_a_turn_fires_at_most_its_bound() {
    use selectlab::reactor::MAX_TIMERS_PER_TURN;
    let mut sim = Sim::faithful();
    let mut reactor = Reactor::new(&mut sim, Backend::Poll).unwrap();
    let mut app = Recorder::default();
    let timers = MAX_TIMERS_PER_TURN + 3;
    {
        let mut io = reactor.io(&mut sim);
        for t in 0..timers {
            io.set_timer(Token(t), Duration::from_secs(1));
        }
    }
    let first = reactor
        .turn(&mut sim, &mut app, Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(first.timers, MAX_TIMERS_PER_TURN);
    let second = reactor
        .turn(&mut sim, &mut app, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(second.timers, 3);
    let mut fired: Vec<usize> = app.seen.iter().map(|(_, t, _)| t.0).collect();
    assert_eq!(fired.len(), timers);
    fired.sort_unstable();
    fired.dedup();
    assert_eq!(fired.len(), timers, "every token fired once");
}

/// Found by cargo-mutants: closing the reactor closes its epoll instance (the descriptor
/// number is free again), on the simulator as on Linux.
#[test]
fn closing_the_reactor_closes_its_epoll_descriptor() {
    let mut sim = Sim::faithful();
    let reactor = Reactor::new(&mut sim, Backend::Epoll).unwrap();
    let probe = sim
        .socket(selectlab::addr::Family::Inet, SockType::Stream)
        .unwrap();
    sim.close(probe).unwrap();
    let epfd_plus_one = probe;
    reactor.close(&mut sim);
    let reused = sim
        .socket(selectlab::addr::Family::Inet, SockType::Stream)
        .unwrap();
    assert!(
        reused.0 < epfd_plus_one.0,
        "the lowest free descriptor is the epoll instance's ({reused:?} vs {epfd_plus_one:?})"
    );
}

/// Found by cargo-mutants: select takes descriptors up to FD_SETSIZE - 1 and refuses
/// FD_SETSIZE itself.
#[test]
fn select_registers_fd_setsize_minus_one_and_refuses_fd_setsize() {
    use selectlab::kernel::FD_SETSIZE;
    use selectlab::readiness::Selector;
    let mut sim = Sim::faithful();
    let mut sel = Selector::new(&mut sim, Backend::Select).unwrap();
    let (a, _b) = sim.socketpair(SockType::Stream).unwrap();
    let last = sim.dup_min(a, FD_SETSIZE - 1).unwrap();
    assert_eq!(last.0, FD_SETSIZE - 1);
    let over = sim.dup_min(a, FD_SETSIZE).unwrap();
    assert_eq!(over.0, FD_SETSIZE);
    assert_eq!(
        sel.register(&mut sim, last, Token(1), Events::IN, Mode::LEVEL),
        Ok(())
    );
    assert_eq!(
        sel.register(&mut sim, over, Token(2), Events::IN, Mode::LEVEL),
        Err(nix::errno::Errno::EINVAL)
    );
}

/// Found by cargo-mutants: one descriptor under two tokens with different interests; each
/// token hears only what it asked for (select reports by set, not by descriptor).
#[test]
fn one_descriptor_under_two_tokens_reports_each_its_own_interest() {
    use selectlab::readiness::{Event, Selector};
    for backend in Backend::ALL {
        let mut sim = Sim::faithful();
        let mut sel = Selector::new(&mut sim, backend).unwrap();
        let (a, b) = sim.socketpair(SockType::Stream).unwrap();
        // Epoll refuses the same descriptor twice (EEXIST); a dup is another descriptor.
        let a2 = sim.dup(a).unwrap();
        let second = if backend == Backend::Epoll { a2 } else { a };
        sel.register(&mut sim, a, Token(1), Events::RDHUP, Mode::LEVEL)
            .unwrap();
        sel.register(&mut sim, second, Token(2), Events::OUT, Mode::LEVEL)
            .unwrap();
        let mut out: Vec<Event> = Vec::new();
        sel.wait(&mut sim, &mut out, 16, Some(Duration::ZERO))
            .unwrap();
        assert_eq!(
            out,
            [Event {
                token: Token(2),
                events: Events::OUT
            }],
            "{backend}: writable, nothing to read"
        );
        sim.send(b, b"x").unwrap();
        out.clear();
        sel.wait(&mut sim, &mut out, 16, Some(Duration::ZERO))
            .unwrap();
        let tokens: Vec<(usize, bool)> = out
            .iter()
            .map(|e| (e.token.0, e.events.contains(Events::OUT)))
            .collect();
        // select puts an RDHUP interest in the read set (input or end of stream); poll and
        // epoll report RDHUP only for an end of stream, so the data leaves token 1 quiet.
        let want: &[(usize, bool)] = match backend {
            Backend::Select => &[(1, false), (2, true)],
            _ => &[(2, true)],
        };
        assert_eq!(tokens, want, "{backend}");
    }
}

/// Found by cargo-mutants: with more descriptors ready than a wait may report, select and
/// poll rotate, so every one is reported within ceil(ready / max) waits.
#[test]
fn select_and_poll_rotate_when_more_are_ready_than_max() {
    use selectlab::readiness::{Event, Selector};
    for backend in [Backend::Select, Backend::Poll] {
        let mut sim = Sim::faithful();
        let mut sel = Selector::new(&mut sim, backend).unwrap();
        let ready = 5;
        let mut keep = Vec::new();
        for t in 0..ready {
            let (a, b) = sim.socketpair(SockType::Stream).unwrap();
            sim.send(b, b"x").unwrap();
            sel.register(&mut sim, a, Token(t), Events::IN, Mode::LEVEL)
                .unwrap();
            keep.push(b);
        }
        let mut seen = std::collections::BTreeMap::new();
        for round in 0..3 {
            let mut out: Vec<Event> = Vec::new();
            assert_eq!(sel.wait(&mut sim, &mut out, 2, Some(Duration::ZERO)), Ok(2));
            for e in out {
                seen.entry(e.token.0).or_insert(round);
            }
        }
        assert_eq!(seen.len(), ready, "{backend}: {seen:?}");
        // And it goes on: the next three waits start where the last one stopped.
        let mut again = Vec::new();
        for _ in 0..3 {
            let mut out: Vec<Event> = Vec::new();
            sel.wait(&mut sim, &mut out, 2, Some(Duration::ZERO))
                .unwrap();
            again.extend(out.iter().map(|e| e.token.0));
        }
        let mut distinct = again.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ready, "{backend}: {again:?}");
    }
}

/// Found by cargo-mutants: backends print as their `--backend` names.
#[test]
fn backends_print_as_they_parse() {
    for backend in Backend::ALL {
        assert_eq!(Backend::parse(&backend.to_string()), Some(backend));
    }
}

/// Found by cargo-mutants: select refuses a negative descriptor as out of range (EINVAL) but
/// judges descriptor 0 like any other (here not open: EBADF).
#[test]
fn select_refuses_negative_descriptors_and_judges_zero_like_any_other() {
    use selectlab::kernel::Fd;
    use selectlab::readiness::Selector;
    let mut sim = Sim::faithful();
    let mut sel = Selector::new(&mut sim, Backend::Select).unwrap();
    let register = |sel: &mut Selector, sim: &mut Sim, fd| {
        sel.register(sim, Fd(fd), Token(1), Events::IN, Mode::LEVEL)
    };
    assert_eq!(
        register(&mut sel, &mut sim, -1),
        Err(nix::errno::Errno::EINVAL)
    );
    assert_eq!(
        register(&mut sel, &mut sim, 0),
        Err(nix::errno::Errno::EBADF)
    );
}

#[derive(Default)]
struct TurnCounter {
    after_turns: usize,
}

impl App for TurnCounter {
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, _events: Events) {
        let _ = io.deregister(token);
    }

    fn after_turn(&mut self, _io: &mut Io<'_>) {
        self.after_turns += 1;
    }
}

/// Found by cargo-mutants: a wait that found nothing gives the application no turn (a real
/// loop blocked in its wait would not have woken); an event or a timer does.
#[test]
fn a_wait_that_finds_nothing_is_no_turn() {
    let mut sim = Sim::faithful();
    let mut reactor = Reactor::new(&mut sim, Backend::Poll).unwrap();
    let mut app = TurnCounter::default();
    reactor
        .turn(&mut sim, &mut app, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(app.after_turns, 0, "nothing ready, no timer");
    let (a, b) = sim.socketpair(SockType::Stream).unwrap();
    reactor
        .io(&mut sim)
        .register(a, Token(1), Events::IN, Mode::LEVEL)
        .unwrap();
    sim.send(b, b"x").unwrap();
    reactor
        .turn(&mut sim, &mut app, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(app.after_turns, 1, "an event");
    reactor
        .io(&mut sim)
        .set_timer(Token(2), Duration::from_millis(5));
    reactor
        .turn(&mut sim, &mut app, Some(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(app.after_turns, 2, "a timer");
}
