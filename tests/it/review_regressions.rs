//! Defects found in review, each pinned: on both transports where the kernel can answer, in the
//! simulator alone where the point is that it must not panic or spin.

use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{
    CtlOp, EP_MAX_EVENTS, Events, Fd, Kernel, Mode, PollFd, Shutdown, SockOpt,
};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

fn both(check: impl Fn(&mut dyn Kernel, &str)) {
    check(&mut RealKernel::new(), "real");
    check(&mut Sim::faithful(), "sim");
}

fn path(tag: &str, t: &str) -> SockAddr {
    let dir = std::env::temp_dir().join(format!("selectlab-review-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{tag}-{t}"));
    let _ = std::fs::remove_file(&p);
    SockAddr::Unix(p)
}

fn unix_listener(k: &mut dyn Kernel, at: &SockAddr) -> Fd {
    let l = k.socket(Family::Unix, SockType::Stream).unwrap();
    k.bind(l, at).unwrap();
    k.listen(l, 4).unwrap();
    l
}

fn wait(k: &mut dyn Kernel, ep: Fd) -> Vec<(u64, Events)> {
    let mut out = Vec::new();
    k.epoll_wait(ep, &mut out, 8, Some(Duration::ZERO)).unwrap();
    out
}

/// A socket pair `(a, b)`, an epoll instance watching `a` (token 1) and an outer one watching
/// that instance (token 2): `(a, b, inner, outer)`.
fn nested(k: &mut dyn Kernel) -> (Fd, Fd, Fd, Fd) {
    let (a, b) = k.socketpair(SockType::Stream).unwrap();
    let inner = k.epoll_create().unwrap();
    let outer = k.epoll_create().unwrap();
    k.epoll_ctl(inner, CtlOp::Add, a, Events::IN, Mode::LEVEL, 1)
        .unwrap();
    k.epoll_ctl(outer, CtlOp::Add, inner, Events::IN, Mode::LEVEL, 2)
        .unwrap();
    (a, b, inner, outer)
}

#[test]
fn nested_epoll_instances_wake_and_poll_through() {
    both(|k, t| {
        let (_, b, inner, outer) = nested(k);
        assert_eq!(wait(k, outer), [], "{t}");
        k.send(b, b"x").unwrap();
        assert_eq!(wait(k, outer), [(2, Events::IN)], "{t}");
        let mut p = [PollFd::new(outer, Events::IN)];
        k.poll(&mut p, Some(Duration::ZERO)).unwrap();
        assert_eq!(p[0].revents, Events::IN, "{t}");
        // A loop is refused.
        assert_eq!(
            k.epoll_ctl(inner, CtlOp::Add, outer, Events::IN, Mode::LEVEL, 3),
            Err(Errno::ELOOP),
            "{t}"
        );
    });
}

/// What a chain of `links` epoll instances does, each watching the next and the last a
/// socket, built from the bottom up or from the top down: each link's epoll_ctl (Linux refuses
/// a chain past its nesting depth with ELOOP), then, once the socket has data, what the top
/// instance reports to epoll_wait and to poll.
fn epoll_chain(k: &mut dyn Kernel, links: usize, top_down: bool) -> Vec<String> {
    let (a, b) = k.socketpair(SockType::Stream).unwrap();
    let eps: Vec<Fd> = (0..links).map(|_| k.epoll_create().unwrap()).collect();
    let mut steps: Vec<(Fd, Fd, u64)> = (0..links)
        .map(|i| {
            let below = eps.get(i + 1).copied().unwrap_or(a);
            (eps[i], below, i as u64)
        })
        .collect();
    if !top_down {
        steps.reverse();
    }
    let mut seen: Vec<String> = steps
        .iter()
        .map(|&(ep, below, token)| {
            let r = k.epoll_ctl(ep, CtlOp::Add, below, Events::IN, Mode::LEVEL, token);
            format!("link {token}: {r:?}")
        })
        .collect();
    k.send(b, b"x").unwrap();
    seen.push(format!("top waits: {:?}", wait(k, eps[0])));
    let mut p = [PollFd::new(eps[0], Events::IN)];
    k.poll(&mut p, Some(Duration::ZERO)).unwrap();
    seen.push(format!("top polls: {:?}", p[0].revents));
    for fd in eps.into_iter().chain([a, b]) {
        k.close(fd).unwrap();
    }
    seen
}

#[test]
fn an_epoll_instance_whose_inner_instance_was_drained_is_not_readable() {
    both(|k, t| {
        let (a, b, _, outer) = nested(k);
        k.send(b, b"x").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(k.recv(a, &mut buf), Ok(1), "{t}");
        assert_eq!(wait(k, outer), [], "{t}: nothing inside is ready");
        let mut p = [PollFd::new(outer, Events::IN)];
        k.poll(&mut p, Some(Duration::ZERO)).unwrap();
        assert_eq!(p[0].revents, Events::NONE, "{t}");
    });
}

/// `links` epoll instances, each watching the next (for EPOLLIN) and the last watching
/// `bottom` for `interest`, added from the bottom up: the instances, top first.
fn stack(k: &mut dyn Kernel, bottom: Fd, interest: Events, links: usize) -> Vec<Fd> {
    let mut eps: Vec<Fd> = Vec::with_capacity(links);
    for level in (0..links).rev() {
        let ep = k.epoll_create().unwrap();
        let (below, asked) = eps.first().map_or((bottom, interest), |&b| (b, Events::IN));
        k.epoll_ctl(ep, CtlOp::Add, below, asked, Mode::LEVEL, level as u64)
            .unwrap();
        eps.insert(0, ep);
    }
    eps
}

/// What the top of a stack tells epoll_wait and poll.
fn top_reports(k: &mut dyn Kernel, top: Fd) -> (Vec<(u64, Events)>, Events) {
    let mut p = [PollFd::new(top, Events::IN)];
    k.poll(&mut p, Some(Duration::ZERO)).unwrap();
    (wait(k, top), p[0].revents)
}

// Found by cargo-mutants: an instance two levels up asks the one below it in turn.
#[test]
fn a_stack_whose_socket_was_drained_is_readable_at_no_level() {
    for links in 1..=3 {
        both(|k, t| {
            let (a, b) = k.socketpair(SockType::Stream).unwrap();
            let eps = stack(k, a, Events::IN, links);
            k.send(b, b"x").unwrap();
            let ready = (vec![(0, Events::IN)], Events::IN);
            assert_eq!(top_reports(k, eps[0]), ready, "{t}, {links}");
            let mut buf = [0u8; 4];
            assert_eq!(k.recv(a, &mut buf), Ok(1), "{t}");
            assert_eq!(
                top_reports(k, eps[0]),
                (vec![], Events::NONE),
                "{t}, {links}"
            );
        });
    }
}

// Found by cargo-mutants: an item that asks for EPOLLERR alone still hears the error, and so
// does every instance above it.
#[test]
fn an_error_asked_for_alone_wakes_every_level_above() {
    for links in 1..=3 {
        both(|k, t| {
            let (r, w) = k.pipe().unwrap();
            let eps = stack(k, w, Events::ERR, links);
            assert_eq!(
                top_reports(k, eps[0]),
                (vec![], Events::NONE),
                "{t}, {links}"
            );
            k.close(r).unwrap();
            let bottom = if links == 1 { Events::ERR } else { Events::IN };
            assert_eq!(
                top_reports(k, eps[0]),
                (vec![(0, bottom)], Events::IN),
                "{t}, {links}"
            );
        });
    }
}

// Found by cargo-mutants: closing an epoll instance forgets only its own watches.
#[test]
fn closing_an_epoll_instance_leaves_the_others_watching_its_files() {
    both(|k, t| {
        let (a, b) = k.socketpair(SockType::Stream).unwrap();
        let closed = k.epoll_create().unwrap();
        let kept = k.epoll_create().unwrap();
        for ep in [kept, closed] {
            k.epoll_ctl(ep, CtlOp::Add, a, Events::IN, Mode::LEVEL, 1)
                .unwrap();
        }
        k.close(closed).unwrap();
        k.send(b, b"x").unwrap();
        assert_eq!(wait(k, kept), [(1, Events::IN)], "{t}");
    });
}

/// A UDP socket connected to a loopback port where nothing listens.
fn udp_to_a_closed_port(k: &mut dyn Kernel) -> Fd {
    let gone = k.socket(Family::Inet, SockType::Dgram).unwrap();
    let loopback = SockAddr::Inet(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    k.bind(gone, &loopback).unwrap();
    let to = k.getsockname(gone).unwrap();
    k.close(gone).unwrap();
    let u = k.socket(Family::Inet, SockType::Dgram).unwrap();
    k.connect(u, &to).unwrap();
    u
}

// Found by cargo-mutants: the wake of an error (the port unreachable that a send to a closed
// port brings back) reaches an item that asked for EPOLLERR alone, and every level above it.
#[test]
fn a_refusal_wakes_an_item_that_asked_for_errors_alone_and_every_level_above() {
    for links in 1..=3 {
        both(|k, t| {
            let u = udp_to_a_closed_port(k);
            let eps = stack(k, u, Events::ERR, links);
            assert_eq!(k.send(u, b"x"), Ok(1), "{t}");
            // The refusal comes back from the loopback device: wait for it.
            let mut p = [PollFd::new(eps[0], Events::IN)];
            let woken = k.poll(&mut p, Some(Duration::from_secs(5)));
            assert_eq!(woken, Ok(1), "{t}, {links}");
            let bottom = if links == 1 { Events::ERR } else { Events::IN };
            assert_eq!(wait(k, eps[0]), [(0, bottom)], "{t}, {links}");
        });
    }
}

#[test]
fn a_chain_of_epoll_instances_nests_and_wakes_through_as_deep_as_linuxs() {
    let gvisor = crate::util::kernel_is_gvisor();
    for links in 1..=7 {
        for top_down in [false, true] {
            let sim = epoll_chain(&mut Sim::faithful(), links, top_down);
            let real = epoll_chain(&mut RealKernel::new(), links, top_down);
            if gvisor && sim != real {
                eprintln!("gVisor differs from Linux, {links} instances: {real:?} / {sim:?}");
            } else {
                assert_eq!(sim, real, "{links} instances, top down: {top_down}");
            }
        }
    }
}

#[test]
fn unix_connect_checks_type_listening_state_and_shutdown() {
    both(|k, t| {
        let at = path("stream", t);
        let l = unix_listener(k, &at);
        let sp = k.socket(Family::Unix, SockType::SeqPacket).unwrap();
        assert_eq!(
            k.connect(sp, &at),
            Err(Errno::EPROTOTYPE),
            "{t}: seqpacket to a stream"
        );
        let other = path("other", t);
        let l2 = unix_listener(k, &other);
        assert_eq!(
            k.connect(l2, &at),
            Err(Errno::EINVAL),
            "{t}: a listener cannot connect"
        );
        k.shutdown(l, Shutdown::Read).unwrap();
        let c = k.socket(Family::Unix, SockType::Stream).unwrap();
        assert_eq!(
            k.connect(c, &at),
            Err(Errno::ECONNREFUSED),
            "{t}: listener shut for reading"
        );
    });
}

#[test]
fn closing_a_unix_listener_resets_connections_never_accepted() {
    both(|k, t| {
        let at = path("embryo", t);
        let l = unix_listener(k, &at);
        let c = k.socket(Family::Unix, SockType::Stream).unwrap();
        k.connect(c, &at).unwrap();
        k.close(l).unwrap();
        assert_eq!(
            k.getsockopt(c, SockOpt::Error),
            Ok(Errno::ECONNRESET as i32),
            "{t}"
        );
    });
}

#[test]
fn a_full_seqpacket_pair_is_not_writable() {
    both(|k, t| {
        let (a, _b) = k.socketpair(SockType::SeqPacket).unwrap();
        let record = vec![7u8; 1000];
        let mut sent = 0;
        while k.send(a, &record).is_ok() {
            sent += 1;
            assert!(sent < 100_000, "{t}: never filled");
        }
        let mut p = [PollFd::new(a, Events::OUT)];
        k.poll(&mut p, Some(Duration::ZERO)).unwrap();
        assert_eq!(
            p[0].revents,
            Events::NONE,
            "{t}: send says EAGAIN, so poll must not say OUT"
        );
    });
}

#[test]
fn socket_only_calls_on_other_files_are_enotsock() {
    both(|k, t| {
        let (r, w) = k.pipe().unwrap();
        let to = SockAddr::Inet("127.0.0.1:9".parse().unwrap());
        assert_eq!(k.sendto(w, b"x", &to), Err(Errno::ENOTSOCK), "{t}");
        assert_eq!(
            k.recvfrom(r, &mut [0; 4]).map(|_| ()),
            Err(Errno::ENOTSOCK),
            "{t}"
        );
        let ep = k.epoll_create().unwrap();
        assert_eq!(
            k.recvfrom(ep, &mut [0; 4]).map(|_| ()),
            Err(Errno::ENOTSOCK),
            "{t}"
        );
    });
}

#[test]
fn epoll_wait_maxevents_out_of_range_is_einval() {
    both(|k, t| {
        let ep = k.epoll_create().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            k.epoll_wait(ep, &mut out, 0, Some(Duration::ZERO)),
            Err(Errno::EINVAL),
            "{t}"
        );
        assert_eq!(
            k.epoll_wait(ep, &mut out, usize::MAX, Some(Duration::ZERO)),
            Err(Errno::EINVAL),
            "{t}"
        );
        assert_eq!(
            k.epoll_wait(ep, &mut out, EP_MAX_EVENTS, Some(Duration::ZERO)),
            Ok(0),
            "{t}"
        );
    });
}

#[test]
fn an_ipv6_socket_given_an_ipv4_address_is_einval() {
    both(|k, t| {
        let s = k.socket(Family::Inet6, SockType::Stream).unwrap();
        let v4 = SockAddr::Inet("127.0.0.1:9".parse().unwrap());
        assert_eq!(k.connect(s, &v4), Err(Errno::EINVAL), "{t}");
    });
}

#[test]
fn dup_above_a_number_does_not_leak_descriptor_numbers_simulator() {
    let mut k = Sim::faithful();
    let a = k.socket(Family::Inet, SockType::Stream).unwrap();
    for _ in 0..2000 {
        let d = k.dup_min(a, 0).unwrap();
        k.close(d).unwrap();
    }
    let x = k.socket(Family::Inet, SockType::Stream).unwrap();
    let y = k.socket(Family::Inet, SockType::Stream).unwrap();
    assert_eq!(
        (x.0, y.0),
        (a.0 + 1, a.0 + 2),
        "lowest free descriptors first"
    );
}

#[test]
fn reconnecting_after_shutdown_restarts_the_syn_schedule_simulator() {
    let mut k = Sim::faithful();
    let l = k.socket(Family::Inet, SockType::Stream).unwrap();
    k.bind(l, &SockAddr::Inet("127.0.0.1:40000".parse().unwrap()))
        .unwrap();
    k.listen(l, 0).unwrap();
    let to = k.getsockname(l).unwrap();
    let first = k.socket(Family::Inet, SockType::Stream).unwrap();
    let _ = k.connect(first, &to); // fills the queue (backlog 0 admits one)
    let c = k.socket(Family::Inet, SockType::Stream).unwrap();
    for _ in 0..40 {
        assert_eq!(k.connect(c, &to), Err(Errno::EINPROGRESS));
        k.shutdown(c, Shutdown::Both).unwrap();
    }
    assert_eq!(k.connect(c, &to), Err(Errno::EINPROGRESS));
    let started = k.now();
    let mut p = [PollFd::new(c, Events::OUT)];
    // Only the last attempt's timers count: it gives up 127 s after it began.
    while k.poll(&mut p, Some(Duration::from_secs(200))).unwrap() == 0 {}
    assert_eq!(k.getsockopt(c, SockOpt::Error), Ok(Errno::ETIMEDOUT as i32));
    assert_eq!(k.now() - started, Duration::from_secs(127));
}

#[test]
fn waits_at_the_end_of_time_do_not_overflow_simulator() {
    let mut k = Sim::faithful();
    let (r, _w) = k.pipe().unwrap();
    let mut p = [PollFd::new(r, Events::IN)];
    assert_eq!(k.poll(&mut p, Some(Duration::from_millis(1))), Ok(0));
    // Nothing can ever happen: the simulator says so instead of overflowing its clock.
    assert_eq!(k.poll(&mut p, Some(Duration::MAX)), Err(Errno::EDEADLK));
    let _ = k.unix_time();
}

#[test]
fn a_blocking_call_on_a_descriptor_that_polls_ready_but_refuses_does_not_spin_simulator() {
    use selectlab::socket::{Net, Socket, share};
    let net: Net = share(Sim::faithful());
    let (mut a, _b) = Socket::pair(&net, SockType::SeqPacket).unwrap();
    a.settimeout(Some(1.0)).unwrap();
    let record = vec![1u8; 1000];
    let outcome = (0..100_000)
        .map(|_| a.sendall(&record))
        .find(Result::is_err);
    assert!(
        outcome.is_some(),
        "the reader never reads: a send must eventually fail"
    );
}
