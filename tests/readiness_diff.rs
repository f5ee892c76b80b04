//! The kernel is the oracle for readiness too: random sequences of I/O, shutdown, close, dup,
//! register, modify, deregister and wait over a socketpair, a pipe, a TCP connection and a
//! listener give the same wait results on the kernel and in the faithful simulator, for every
//! backend and mode.
//!
//! One #[test] runs every backend-mode in turn: tests in one binary run on parallel threads,
//! and another thread reusing a just-closed descriptor number would make the kernel's answer
//! about a closed descriptor depend on timing.

mod util;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::addr::SockType;
use selectlab::error::errno_name;
use selectlab::kernel::{Events, Fd, Kernel, Mode, Shutdown};
use selectlab::readiness::{Backend, Event, Selector, Token};
use selectlab::real::RealKernel;
use selectlab::sim::Sim;

const MAX_IO_BYTES: usize = 2_000;
const MAX_OPS: usize = 24;
/// Endpoints created by the set-up: a, b (AF_UNIX stream pair), r, w (pipe), c, s (TCP), l.
const SETUP_ENDPOINTS: usize = 7;
/// Most endpoints a sequence may add (dup, connect, accept), a bound on the table.
const MAX_EXTRA_ENDPOINTS: usize = 4;

#[derive(Debug, Clone, Copy)]
enum Op {
    Send(usize, usize),
    Recv(usize, usize),
    Shut(usize, Shutdown),
    Close(usize),
    Dup(usize),
    Register(usize, Events),
    Modify(usize, Events),
    Deregister(usize),
    Wait(usize),
    Connect,
    Accept,
}

fn interest() -> impl Strategy<Value = Events> {
    (0u16..8).prop_map(|bits| {
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
    })
}

fn op() -> impl Strategy<Value = Op> {
    let end = 0..SETUP_ENDPOINTS + MAX_EXTRA_ENDPOINTS;
    let how = prop_oneof![
        Just(Shutdown::Read),
        Just(Shutdown::Write),
        Just(Shutdown::Both)
    ];
    prop_oneof![
        4 => (end.clone(), 1..MAX_IO_BYTES).prop_map(|(e, n)| Op::Send(e, n)),
        4 => (end.clone(), 1..MAX_IO_BYTES).prop_map(|(e, n)| Op::Recv(e, n)),
        1 => (end.clone(), how).prop_map(|(e, h)| Op::Shut(e, h)),
        1 => end.clone().prop_map(Op::Close),
        1 => end.clone().prop_map(Op::Dup),
        4 => (end.clone(), interest()).prop_map(|(e, i)| Op::Register(e, i)),
        2 => (end.clone(), interest()).prop_map(|(e, i)| Op::Modify(e, i)),
        1 => end.prop_map(Op::Deregister),
        5 => (1usize..4).prop_map(Op::Wait),
        1 => Just(Op::Connect),
        1 => Just(Op::Accept),
    ]
}

/// The endpoint table: descriptors by index, `None` once closed (later calls on a closed name
/// are EBADF without reaching the kernel, so a reused descriptor number is never touched).
struct Endpoints {
    fds: Vec<Option<Fd>>,
    listener: usize,
}

fn setup(k: &mut dyn Kernel) -> Endpoints {
    let (a, b) = k.socketpair(SockType::Stream).expect("socketpair");
    let (r, w) = k.pipe().expect("pipe");
    let (c, s) = util::tcp_pair(k, selectlab::addr::Family::Inet);
    let l = k
        .socket(selectlab::addr::Family::Inet, SockType::Stream)
        .expect("socket");
    k.bind(
        l,
        &selectlab::pairs::loopback(selectlab::addr::Family::Inet),
    )
    .expect("bind");
    k.listen(l, 4).expect("listen");
    Endpoints {
        fds: [a, b, r, w, c, s, l].into_iter().map(Some).collect(),
        listener: 6,
    }
}

fn result<T>(r: Result<T, nix::errno::Errno>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => errno_name(e).to_string(),
    }
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

fn run(k: &mut dyn Kernel, backend: Backend, mode: Mode, ops: &[Op]) -> Vec<String> {
    let mut ends = setup(k);
    let mut sel = Selector::new(k, backend).expect("selector");
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let fd_of = |ends: &Endpoints, e: usize| ends.fds.get(e).copied().flatten();
        let line = match *op {
            Op::Send(e, n) => match fd_of(&ends, e) {
                Some(fd) => result(k.send(fd, &vec![7; n]), |m| format!("send {m}")),
                None => "EBADF".into(),
            },
            Op::Recv(e, n) => match fd_of(&ends, e) {
                Some(fd) => result(k.recv(fd, &mut vec![0; n]), |m| format!("recv {m}")),
                None => "EBADF".into(),
            },
            Op::Shut(e, h) => match fd_of(&ends, e) {
                Some(fd) => result(k.shutdown(fd, h), |()| format!("shutdown {h:?}")),
                None => "EBADF".into(),
            },
            Op::Close(e) => match fd_of(&ends, e) {
                Some(fd) => {
                    ends.fds[e] = None;
                    result(k.close(fd), |()| "closed".into())
                }
                None => "EBADF".into(),
            },
            Op::Dup(e) => match fd_of(&ends, e) {
                Some(fd) if ends.fds.len() < SETUP_ENDPOINTS + MAX_EXTRA_ENDPOINTS => {
                    result(k.dup(fd), |d| {
                        ends.fds.push(Some(d));
                        format!("dup e{}", ends.fds.len() - 1)
                    })
                }
                _ => "skip".into(),
            },
            Op::Register(e, i) => match fd_of(&ends, e) {
                Some(fd) => result(sel.register(k, fd, Token(e), i, mode), |()| {
                    "registered".into()
                }),
                None => "EBADF".into(),
            },
            Op::Modify(e, i) => result(sel.modify(k, Token(e), i, mode), |()| "modified".into()),
            Op::Deregister(e) => result(sel.deregister(k, Token(e)), |()| "deregistered".into()),
            Op::Wait(max) => {
                let mut events = Vec::new();
                result(sel.wait(k, &mut events, max, Some(Duration::ZERO)), |_| {
                    format!("wait {}", format_events(&mut events))
                })
            }
            Op::Connect => match fd_of(&ends, ends.listener) {
                Some(l) if ends.fds.len() < SETUP_ENDPOINTS + MAX_EXTRA_ENDPOINTS => {
                    let addr = k.getsockname(l).expect("listener name");
                    let c = k
                        .socket(selectlab::addr::Family::Inet, SockType::Stream)
                        .expect("socket");
                    ends.fds.push(Some(c));
                    result(k.connect(c, &addr), |()| "connected".into())
                }
                _ => "skip".into(),
            },
            Op::Accept => match fd_of(&ends, ends.listener) {
                Some(l) if ends.fds.len() < SETUP_ENDPOINTS + MAX_EXTRA_ENDPOINTS => {
                    result(k.accept(l), |(fd, _)| {
                        ends.fds.push(Some(fd));
                        format!("accepted e{}", ends.fds.len() - 1)
                    })
                }
                _ => "skip".into(),
            },
        };
        out.push(format!("{op:?} -> {line}"));
    }
    for fd in ends.fds.into_iter().flatten() {
        let _ = k.close(fd);
    }
    if let Some(ep) = sel.epoll_fd() {
        let _ = k.close(ep);
    }
    out
}

const MODES: [(Backend, Mode); 5] = [
    (Backend::Select, Mode::LEVEL),
    (Backend::Poll, Mode::LEVEL),
    (Backend::Epoll, Mode::LEVEL),
    (Backend::Epoll, Mode::EDGE),
    (Backend::Epoll, Mode::ONESHOT),
];

#[test]
fn readiness_matches_the_kernel_for_every_backend_and_mode() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    for (backend, mode) in MODES {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let strategy = proptest::collection::vec(op(), 1..MAX_OPS);
        let outcome = runner.run(&strategy, |ops| {
            let real = run(&mut RealKernel::new(), backend, mode, &ops);
            let sim = run(&mut Sim::faithful(), backend, mode, &ops);
            prop_assert_eq!(real, sim);
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{backend} {mode:?}: {e}");
        }
    }
}
