//! The kernel is the oracle for readiness too: random sequences of I/O, shutdown, close, dup,
//! register, modify, deregister and wait over a socketpair, a pipe, a TCP connection and a
//! listener give the same wait results on the kernel and in the faithful simulator, for every
//! backend and mode (the sequences and their runner live in `selectlab::differential`, shared with the
//! `readiness_diff` fuzz target).
//!
//! One #[test] runs every backend-mode in turn: tests in one binary run on parallel threads,
//! and another thread reusing a just-closed descriptor number would make the kernel's answer
//! about a closed descriptor depend on timing.

use crate::util;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::differential::{How, Op, READINESS_MAX_OPS, compare_readiness};
use selectlab::readiness::BACKEND_MODES;
use std::time::Duration;

use nix::errno::Errno;

use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{CtlOp, Events, Fd, Kernel, Mode, SockOpt};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

fn op() -> impl Strategy<Value = Op> {
    let e = any::<u8>();
    let how = prop_oneof![Just(How::Read), Just(How::Write), Just(How::Both)];
    prop_oneof![
        4 => (e, any::<u16>()).prop_map(|(e, n)| Op::Send(e, n)),
        4 => (e, any::<u16>()).prop_map(|(e, n)| Op::Recv(e, n)),
        1 => (e, how).prop_map(|(e, h)| Op::Shut(e, h)),
        1 => e.prop_map(Op::Close),
        1 => e.prop_map(Op::Dup),
        4 => (e, any::<u8>()).prop_map(|(e, i)| Op::Register(e, i)),
        2 => (e, any::<u8>()).prop_map(|(e, i)| Op::Modify(e, i)),
        1 => e.prop_map(Op::Deregister),
        5 => any::<u8>().prop_map(Op::Wait),
        1 => Just(Op::Connect),
        1 => Just(Op::Accept),
    ]
}

#[test]
fn readiness_matches_the_kernel_for_every_backend_and_mode() {
    let cases = util::cases(256);
    for (backend, mode) in BACKEND_MODES {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let strategy = proptest::collection::vec(op(), 1..READINESS_MAX_OPS);
        let outcome = runner.run(&strategy, |ops| {
            if let Err((real, sim)) = compare_readiness(backend, mode, &ops) {
                prop_assert_eq!(real, sim);
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{backend} {mode:?}: {e}");
        }
    }
}

/// Three clients of a listener, the server side watched by one epoll instance: the events
/// on c1's and c2's connections and on the listener, in the order one epoll_wait reports
/// them after `begin` starts the wait, c1 having sent a line, c3 connected and c2 reset.
fn batch_order<K: Kernel>(k: &mut K, begin: impl FnOnce(&mut K, Fd)) -> Vec<&'static str> {
    let any = SockAddr::Inet("127.0.0.1:0".parse().expect("an address"));
    let listener = k.socket(Family::Inet, SockType::Stream).expect("socket");
    k.bind(listener, &any).expect("bind");
    k.listen(listener, 128).expect("listen");
    let addr = k.getsockname(listener).expect("its address");
    let ep = k.epoll_create().expect("epoll");
    let mut events = Vec::new();
    let add = |k: &mut K, fd: Fd, token: u64| {
        (k.epoll_ctl(ep, CtlOp::Add, fd, Events::IN, Mode::LEVEL, token)).expect("epoll_ctl")
    };
    let client = |k: &mut K| {
        let c = k.socket(Family::Inet, SockType::Stream).expect("socket");
        // Non-blocking: loopback's handshake is over before connect returns all the same.
        let connected = k.connect(c, &addr);
        assert!(
            matches!(connected, Ok(()) | Err(Errno::EINPROGRESS)),
            "{connected:?}"
        );
        c
    };
    add(k, listener, 0);
    let c1 = client(k);
    let (s1, _) = k.accept(listener).expect("accept");
    add(k, s1, 1);
    let c2 = client(k);
    let reported = k.epoll_wait(ep, &mut events, 8, Some(Duration::ZERO));
    assert_eq!(reported, Ok(1), "the listener, reported and queued again");
    let (s2, _) = k.accept(listener).expect("accept");
    add(k, s2, 2);
    begin(k, ep);
    k.send(c1, b"first in the batch\n").expect("send");
    let _c3 = client(k);
    k.setsockopt(c2, SockOpt::Linger, 0).expect("linger 0");
    k.close(c2).expect("close: a reset");
    events.clear();
    k.epoll_wait(ep, &mut events, 8, Some(Duration::ZERO))
        .expect("epoll_wait");
    let names = ["listener", "c1", "c2"];
    events
        .iter()
        .map(|(token, _)| names[*token as usize])
        .collect()
}

/// A wait's first pass, with nothing ready: it reports nothing.
fn wait_finds_nothing<K: Kernel>(k: &mut K, ep: Fd) {
    let mut none = Vec::new();
    assert_eq!(k.epoll_wait(ep, &mut none, 8, Some(Duration::ZERO)), Ok(0));
}

#[test]
fn a_wait_that_begins_with_nothing_ready_reports_events_in_the_order_they_came() {
    // Linux's ready list is first come, first served; a level-triggered item stays on it
    // after a report until a wait finds it not ready (seen on Linux 6.18 with Python too).
    let in_order = ["c1", "listener", "c2"];
    let listener_first = ["listener", "c1", "c2"];
    assert_eq!(
        batch_order(&mut RealKernel::new(), wait_finds_nothing),
        in_order
    );
    assert_eq!(
        batch_order(&mut RealKernel::new(), |_, _| {}),
        listener_first
    );
    assert_eq!(
        batch_order(&mut Sim::faithful(), wait_finds_nothing),
        in_order
    );
    assert_eq!(batch_order(&mut Sim::faithful(), |_, _| {}), listener_first);
    // A program inside the simulator, whose wait is answered only once something wakes it.
    let begins = |sim: &mut Sim, ep: Fd| sim.epoll_wait_begins(ep);
    assert_eq!(batch_order(&mut Sim::faithful(), begins), in_order);
}
