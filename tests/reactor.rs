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
