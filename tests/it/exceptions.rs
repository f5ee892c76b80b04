//! The tutorial's exception table, row by row (`docs/src/simulator.md`): each test reproduces the
//! trigger on both transports and checks the same error class, errno and text. Rows this machine
//! cannot produce on loopback are simulator-only, and the test says why.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType, Target};
use selectlab::error::{Gai, SockError};
use selectlab::kernel::{Kernel, Shutdown, SockOpt};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::decide::Decider;
use selectlab::sim::{Sim, SimConfig};
use selectlab::socket::{Net, Socket, gethostbyaddr, share};

const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";

fn err(e: Errno) -> SockError {
    SockError::Error(e)
}

/// Runs a check on the real kernel and on the faithful simulator.
fn on_both(check: impl Fn(&Net, &str)) {
    let real: Net = share(RealKernel::new());
    check(&real, "real");
    let sim: Net = share(Sim::faithful());
    check(&sim, "sim");
}

fn tcp(net: &Net) -> Socket {
    Socket::new(net, Family::Inet, SockType::Stream).expect("socket")
}

fn udp(net: &Net) -> Socket {
    Socket::new(net, Family::Inet, SockType::Dgram).expect("socket")
}

fn target_of(addr: &SockAddr) -> Target {
    match addr {
        SockAddr::Inet(a) => Target::Host(a.ip().to_string(), a.port()),
        SockAddr::Unix(p) => Target::Path(p.clone()),
        SockAddr::UnixUnnamed => panic!("unnamed address has no target"),
    }
}

fn listener(net: &Net, backlog: u32) -> (Socket, Target) {
    let l = tcp(net);
    l.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap())
        .expect("bind");
    l.listen(backlog).expect("listen");
    let t = target_of(&l.getsockname().unwrap());
    (l, t)
}

/// A connected, blocking TCP pair: (client, server end).
fn connected(net: &Net) -> (Socket, Socket) {
    let (l, t) = listener(net, 16);
    let c = tcp(net);
    c.connect(&t).expect("connect");
    let (s, _) = l.accept().expect("accept");
    (c, s)
}

/// A port with nothing listening on it (bound and closed at once).
fn closed_port(net: &Net) -> Target {
    let mut s = tcp(net);
    s.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap()).unwrap();
    let t = target_of(&s.getsockname().unwrap());
    s.close().unwrap();
    t
}

// ----- the four classes and their texts --------------------------------------------------------

#[test]
fn error_texts_match_python() {
    assert_eq!(
        err(Errno::ECONNREFUSED).to_string(),
        "[Errno 111] Connection refused"
    );
    assert_eq!(
        SockError::Gaierror(Gai::NoName).to_string(),
        "[Errno -2] Name or service not known"
    );
    assert_eq!(SockError::Timeout.to_string(), "timed out");
    assert_eq!(err(Errno::ECONNREFUSED).errno(), Some(111));
    assert_eq!(SockError::Gaierror(Gai::AddrFamily).errno(), Some(-9));
    assert_eq!(SockError::Timeout.errno(), None);
}

#[test]
fn gaierror_for_an_unknown_host_name() {
    on_both(|net, t| {
        let s = tcp(net);
        let bad = Target::host("no-such-host.invalid", 80);
        assert_eq!(
            s.connect(&bad),
            Err(SockError::Gaierror(Gai::NoName)),
            "{t}"
        );
        // connect_ex returns errnos, but a bad name still raises.
        assert_eq!(
            s.connect_ex(&bad),
            Err(SockError::Gaierror(Gai::NoName)),
            "{t}"
        );
        assert_eq!(
            udp(net).sendto(b"x", &bad),
            Err(SockError::Gaierror(Gai::NoName)),
            "{t}"
        );
        assert_eq!(s.bind(&bad), Err(SockError::Gaierror(Gai::NoName)), "{t}");
    });
}

#[test]
fn herror_for_an_unknown_address() {
    on_both(|net, t| {
        let unknown = IpAddr::V4(Ipv4Addr::new(10, 255, 255, 254));
        let e = gethostbyaddr(net, unknown).unwrap_err();
        assert_eq!(e.to_string(), "[Errno 1] Unknown host", "{t}");
        assert_eq!(e.class(), "herror");
    });
}

#[test]
fn timeout_on_a_silent_peer() {
    on_both(|net, t| {
        let (mut c, _s) = connected(net);
        c.settimeout(Some(0.05)).unwrap();
        assert_eq!(c.recv(10), Err(SockError::Timeout), "{t}");
        assert_eq!(c.gettimeout(), Some(0.05));
    });
}

// ----- bind ----------------------------------------------------------------------------------

#[test]
fn bind_errors() {
    on_both(|net, t| {
        let (l, taken) = listener(net, 1);
        assert_eq!(
            tcp(net).bind(&taken),
            Err(err(Errno::EADDRINUSE)),
            "{t}: port taken"
        );
        assert_eq!(
            l.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap()),
            Err(err(Errno::EINVAL)),
            "{t}: bound twice"
        );
        let foreign = Target::host("10.9.9.9", 0);
        assert_eq!(
            tcp(net).bind(&foreign),
            Err(err(Errno::EADDRNOTAVAIL)),
            "{t}: not local"
        );
        let mut s = tcp(net);
        s.close().unwrap();
        assert_eq!(s.bind(&taken), Err(err(Errno::EBADF)), "{t}: after close");
    });
}

/// Serves one connection on a fresh listener (SO_REUSEADDR as asked), the server closing
/// first so that its end waits in TIME_WAIT on the listening port; returns that address.
fn leave_time_wait(net: &Net, reuse: bool) -> Target {
    let mut l = tcp(net);
    l.setsockopt(SockOpt::ReuseAddr, i32::from(reuse)).unwrap();
    l.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap()).unwrap();
    l.listen(1).unwrap();
    let addr = target_of(&l.getsockname().unwrap());
    let mut c = tcp(net);
    c.connect(&addr).unwrap();
    let (mut s, _) = l.accept().unwrap();
    s.close().unwrap();
    assert_eq!(c.recv(1), Ok(vec![]));
    c.close().unwrap();
    l.close().unwrap();
    addr
}

#[test]
fn bind_during_time_wait() {
    on_both(|net, t| {
        // Without SO_REUSEADDR on both the old and the new socket, TIME_WAIT holds the port.
        let addr = leave_time_wait(net, false);
        assert_eq!(
            tcp(net).bind(&addr),
            Err(err(Errno::EADDRINUSE)),
            "{t}: TIME_WAIT"
        );
        let reuse = tcp(net);
        reuse.setsockopt(SockOpt::ReuseAddr, 1).unwrap();
        assert_eq!(
            reuse.bind(&addr),
            Err(err(Errno::EADDRINUSE)),
            "{t}: old socket lacked it"
        );
        // The classic fix: the server sets SO_REUSEADDR before bind, then restarts at once.
        let addr = leave_time_wait(net, true);
        assert_eq!(
            tcp(net).bind(&addr),
            Err(err(Errno::EADDRINUSE)),
            "{t}: new socket lacks it"
        );
        let restart = tcp(net);
        restart.setsockopt(SockOpt::ReuseAddr, 1).unwrap();
        assert_eq!(restart.bind(&addr), Ok(()), "{t}: both have SO_REUSEADDR");
    });
}

#[test]
fn bind_below_1024_unprivileged_is_eacces_simulator_only() {
    // Simulator-only: tests never bind fixed ports on the machine, and CI runs as root, where
    // Linux allows it anyway.
    let net: Net = share(Sim::new(
        SimConfig {
            privileged: false,
            ..SimConfig::default()
        },
        Decider::faithful(),
    ));
    assert_eq!(
        tcp(&net).bind(&Target::host("127.0.0.1", 80)),
        Err(err(Errno::EACCES))
    );
    let root: Net = share(Sim::new(
        SimConfig {
            privileged: true,
            ..SimConfig::default()
        },
        Decider::faithful(),
    ));
    assert_eq!(tcp(&root).bind(&Target::host("127.0.0.1", 80)), Ok(()));
}

// ----- listen and accept -----------------------------------------------------------------------

#[test]
fn listen_errors() {
    on_both(|net, t| {
        let a = tcp(net);
        let b = tcp(net);
        for s in [&a, &b] {
            s.setsockopt(SockOpt::ReuseAddr, 1).unwrap();
        }
        a.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap()).unwrap();
        b.bind(&target_of(&a.getsockname().unwrap())).unwrap();
        a.listen(1).unwrap();
        assert_eq!(
            b.listen(1),
            Err(err(Errno::EADDRINUSE)),
            "{t}: second listener"
        );
        assert_eq!(udp(net).listen(1), Err(err(Errno::EOPNOTSUPP)), "{t}: UDP");
        let mut c = tcp(net);
        c.close().unwrap();
        assert_eq!(c.listen(1), Err(err(Errno::EBADF)), "{t}: after close");
        // An unbound socket auto-binds an ephemeral port.
        let d = tcp(net);
        d.listen(1).unwrap();
        assert!(
            matches!(d.getsockname(), Ok(SockAddr::Inet(a)) if a.port() != 0),
            "{t}"
        );
    });
}

#[test]
fn accept_errors() {
    on_both(|net, t| {
        let (mut l, _) = listener(net, 1);
        l.setblocking(false).unwrap();
        assert_eq!(
            l.accept().map(|_| ()),
            Err(err(Errno::EAGAIN)),
            "{t}: empty queue"
        );
        assert_eq!(
            tcp(net).accept().map(|_| ()),
            Err(err(Errno::EINVAL)),
            "{t}: not listening"
        );
        assert_eq!(
            udp(net).accept().map(|_| ()),
            Err(err(Errno::EOPNOTSUPP)),
            "{t}: UDP"
        );
    });
}

/// The table lists ECONNABORTED for accept, but Linux's TCP never returns it for a connection
/// reset while it waited in the queue: net/socket.c's do_accept answers ECONNABORTED only when
/// the peer's name cannot be read, and inet_getname (peer = 2, accept's case) reads it even
/// for a closed socket. The connection is accepted, and its first recv reports the reset.
#[test]
fn a_connection_reset_before_accept_is_accepted_not_econnaborted() {
    on_both(|net, t| {
        let (l, addr) = listener(net, 4);
        let mut c = tcp(net);
        c.connect(&addr).expect("connect");
        c.setsockopt(SockOpt::Linger, 0).expect("linger 0");
        c.close().expect("close: an RST");
        let (s, _) = l.accept().expect("accepted, not ECONNABORTED");
        assert_eq!(s.recv(10), Err(err(Errno::ECONNRESET)), "{t}");
        assert_eq!(s.recv(10), Ok(Vec::new()), "{t}: then end of stream");
    });
}

#[test]
fn accept_emfile_keeps_the_connection_queued_simulator_only() {
    // Simulator-only here: lowering RLIMIT_NOFILE would starve every other test in this process.
    let sim = share(Sim::new(
        SimConfig {
            fd_limit: 2,
            ..SimConfig::default()
        },
        Decider::faithful(),
    ));
    let net: Net = sim.clone();
    let (l, addr) = listener(&net, 4);
    let c = tcp(&net);
    c.connect(&addr).unwrap();
    assert_eq!(l.accept().map(|_| ()), Err(err(Errno::EMFILE)));
    // The connection stays queued: the listener is still readable, and a freed slot accepts it.
    drop(c);
    assert!(l.accept().is_ok());
}

/// ENFILE (the system's file table full) cannot be produced on this machine without starving
/// it; the adversary may choose it, as Linux may return it, and the connection stays queued.
#[test]
fn accept_enfile_from_the_adversary_keeps_the_connection_queued_simulator_only() {
    use selectlab::sim::decide::Adversity;
    let always = Adversity {
        enfile_per_mille: 1000,
        ..Adversity::NONE
    };
    let sim = share(Sim::new(SimConfig::default(), Decider::seeded(1, always)));
    let net: Net = sim.clone();
    let (mut l, addr) = listener(&net, 4);
    l.setblocking(false).unwrap();
    let c = tcp(&net);
    c.connect(&addr).unwrap();
    assert_eq!(l.accept().map(|_| ()), Err(err(Errno::ENFILE)));
    // The connection stays queued: the listener is still readable.
    let listening = selectlab::kernel::Fd(l.fileno());
    assert!(
        sim.borrow()
            .ready_now(listening)
            .contains(selectlab::kernel::Events::IN)
    );
}

/// A UDP sendto's EAGAIN (the send buffer full) cannot happen on loopback, which frees each
/// datagram as it queues it; on a real device it can, so the adversary may choose it, and
/// nothing is sent.
#[test]
fn udp_sendto_eagain_from_the_adversary_sends_nothing_simulator_only() {
    use selectlab::sim::decide::Adversity;
    let always = Adversity {
        udp_send_full_per_mille: 1000,
        ..Adversity::NONE
    };
    let mut k = Sim::new(SimConfig::default(), Decider::seeded(1, always));
    let (a, b) = selectlab::endpoints::udp_pair(&mut k, Family::Inet).expect("udp pair");
    assert_eq!(k.send(a, b"lost?"), Err(Errno::EAGAIN));
    assert_eq!(k.bytes_waiting(b), Ok(0), "nothing was sent");
}

// ----- connect ---------------------------------------------------------------------------------

#[test]
fn connect_refused_in_progress_already_isconn() {
    on_both(|net, t| {
        let refused = closed_port(net);
        assert_eq!(
            tcp(net).connect(&refused),
            Err(err(Errno::ECONNREFUSED)),
            "{t}"
        );
        assert_eq!(tcp(net).connect_ex(&refused), Ok(111), "{t}");

        let (_l, addr) = listener(net, 0);
        let mut first = tcp(net);
        first.setblocking(false).unwrap();
        assert_eq!(first.connect(&addr), Err(err(Errno::EINPROGRESS)), "{t}");
        // The second connect completes the first; a third finds the socket connected.
        assert_eq!(first.connect(&addr), Ok(()), "{t}");
        assert_eq!(first.connect(&addr), Err(err(Errno::EISCONN)), "{t}");
        // backlog 0 admits one connection; the next SYN is dropped and its connect stays pending.
        let mut pending = tcp(net);
        pending.setblocking(false).unwrap();
        assert_eq!(pending.connect(&addr), Err(err(Errno::EINPROGRESS)), "{t}");
        assert_eq!(pending.connect(&addr), Err(err(Errno::EALREADY)), "{t}");
        assert_eq!(pending.send(b"x"), Err(err(Errno::EAGAIN)), "{t}");
    });
}

#[test]
fn connect_ex_returns_eagain_when_its_timeout_expires() {
    on_both(|net, t| {
        let (_l, addr) = listener(net, 0);
        let _admitted = tcp(net);
        _admitted.connect(&addr).unwrap();
        let mut late = tcp(net);
        late.settimeout(Some(0.2)).unwrap();
        assert_eq!(late.connect_ex(&addr), Ok(11), "{t}: SYN dropped, timeout");
    });
}

#[test]
fn connect_timeout_and_unreachable_are_simulator_only() {
    // ETIMEDOUT (SYN retries exhausted) and ENETUNREACH (no route) cannot happen on loopback.
    let mut config = SimConfig::default();
    config
        .blackholes
        .insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let sim = share(Sim::new(config, Decider::faithful()));
    let net: Net = sim.clone();
    let before = sim.borrow().now();
    assert_eq!(
        tcp(&net).connect(&Target::host("192.0.2.1", 80)),
        Err(err(Errno::ETIMEDOUT))
    );
    // Linux's schedule: SYN at 0, retries at 1, 3, 7, 15, 31, 63 s, give up at 127 s.
    assert_eq!(sim.borrow().now() - before, Duration::from_secs(127));
    assert_eq!(
        tcp(&net).connect(&Target::host("198.51.100.7", 80)),
        Err(err(Errno::ENETUNREACH))
    );
}

// ----- recv, send, sendall ---------------------------------------------------------------------

#[test]
fn recv_errors_and_end_of_stream() {
    on_both(|net, t| {
        let (mut c, mut s) = connected(net);
        c.setblocking(false).unwrap();
        assert_eq!(c.recv(10), Err(err(Errno::EAGAIN)), "{t}: no data");
        assert_eq!(
            tcp(net).recv(10),
            Err(err(Errno::ENOTCONN)),
            "{t}: never connected"
        );
        s.sendall(b"bye").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.recv(0), Ok(vec![]), "{t}: recv(0) with data queued");
        assert_eq!(c.recv(10), Ok(b"bye".to_vec()), "{t}");
        assert_eq!(c.recv(10), Ok(vec![]), "{t}: orderly shutdown");
        s.close().unwrap();
        c.close().unwrap();
        assert_eq!(c.recv(10), Err(err(Errno::EBADF)), "{t}: after close");
    });
}

#[test]
fn reset_is_reported_once_then_end_of_stream() {
    on_both(|net, t| {
        let (c, mut s) = connected(net);
        c.sendall(b"unread").unwrap();
        s.close().unwrap(); // closing with unread data sends an RST
        assert_eq!(c.recv(10), Err(err(Errno::ECONNRESET)), "{t}");
        assert_eq!(c.recv(10), Ok(vec![]), "{t}");
        assert_eq!(c.getpeername(), Err(err(Errno::ENOTCONN)), "{t}: after RST");
        assert_eq!(c.send(b"x"), Err(err(Errno::EPIPE)), "{t}");
    });
    on_both(|net, t| {
        let (c, mut s) = connected(net);
        s.setsockopt(SockOpt::Linger, 0).unwrap(); // SO_LINGER 0: close sends an RST
        s.close().unwrap();
        assert_eq!(c.send(b"x"), Err(err(Errno::ECONNRESET)), "{t}");
    });
}

#[test]
fn send_errors() {
    on_both(|net, t| {
        let (c, mut s) = connected(net);
        s.close().unwrap();
        assert!(
            c.getpeername().is_ok(),
            "{t}: getpeername works after a FIN"
        );
        assert_eq!(
            c.send(b"x"),
            Ok(1),
            "{t}: the first send after the peer's FIN succeeds"
        );
        assert_eq!(
            c.send(b"x"),
            Err(err(Errno::EPIPE)),
            "{t}: a later one gets EPIPE"
        );

        let (c2, _s2) = connected(net);
        c2.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            c2.send(b"x"),
            Err(err(Errno::EPIPE)),
            "{t}: after own SHUT_WR"
        );
        assert_eq!(
            tcp(net).send(b"x"),
            Err(err(Errno::EPIPE)),
            "{t}: never connected"
        );
        assert_eq!(
            udp(net).send(b"x"),
            Err(err(Errno::EDESTADDRREQ)),
            "{t}: unconnected UDP"
        );
        let unix = Socket::new(net, Family::Unix, SockType::Stream).unwrap();
        assert_eq!(
            unix.send(b"x"),
            Err(err(Errno::ENOTCONN)),
            "{t}: unconnected AF_UNIX"
        );
    });
}

#[test]
fn send_fills_to_eagain_and_sendall_fails_after_partial_progress() {
    on_both(|net, t| {
        let (mut c, _s) = connected(net);
        c.setblocking(false).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0usize;
        let result = loop {
            match c.send(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "{t}: send never filled");
        };
        assert_eq!(result, err(Errno::EAGAIN), "{t}");
        assert!(total > 0, "{t}");
        assert_eq!(c.sendall(&chunk), Err(err(Errno::EAGAIN)), "{t}");
    });
}

// ----- datagrams ---------------------------------------------------------------------------------

#[test]
fn datagram_rules() {
    on_both(|net, t| {
        let a = udp(net);
        let mut b = udp(net);
        b.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap()).unwrap();
        let to = target_of(&b.getsockname().unwrap());
        assert_eq!(
            a.sendto(&vec![0; 65_508], &to),
            Err(err(Errno::EMSGSIZE)),
            "{t}: > 65 507"
        );
        assert_eq!(a.sendto(&vec![1; 65_507], &to), Ok(65_507), "{t}");
        assert_eq!(a.sendto(b"", &to), Ok(0), "{t}");
        let (big, from) = b.recvfrom(100).unwrap();
        assert_eq!(big.len(), 100, "{t}: truncated to the buffer");
        // The sender was auto-bound to the wildcard address; the datagram carries loopback.
        let a_port = a.getsockname().unwrap().inet().unwrap().port();
        assert_eq!(
            from.and_then(|f| f.inet()),
            Some(([127, 0, 0, 1], a_port).into()),
            "{t}"
        );
        let (empty, from) = b.recvfrom(100).unwrap();
        assert!(
            empty.is_empty() && from.is_some(),
            "{t}: a zero-length datagram is not EOF"
        );
        b.setblocking(false).unwrap();
        assert_eq!(b.recvfrom(1).map(|_| ()), Err(err(Errno::EAGAIN)), "{t}");
    });
}

/// A UDP socket connected to a loopback port where nothing listens any more.
/// Waits (at most five seconds) until `a` has an error pending: on a real kernel the port's
/// ICMP refusal may be handled after the send that caused it returns (in a softirq, or later
/// under load; gVisor's stack always later), so a test that looks at once can look too soon.
fn wait_for_the_refusal(net: &Net, a: &Socket) {
    use selectlab::kernel::{Events, Fd, PollFd};
    let mut fds = [PollFd::new(Fd(a.fileno()), Events::NONE)];
    let ready = net
        .borrow_mut()
        .poll(&mut fds, Some(Duration::from_secs(5)));
    assert_eq!(ready, Ok(1), "the refusal arrived");
    assert!(fds[0].revents.contains(Events::ERR), "{:?}", fds[0].revents);
}

fn udp_to_a_closed_port(net: &Net) -> Socket {
    let mut gone = udp(net);
    gone.bind(&Target::parse(ANY_LOOPBACK_PORT).unwrap())
        .unwrap();
    let to = target_of(&gone.getsockname().unwrap());
    gone.close().unwrap();
    let a = udp(net);
    a.connect(&to).unwrap();
    a
}

#[test]
fn connected_udp_hears_port_unreachable() {
    on_both(|net, t| {
        let mut a = udp_to_a_closed_port(net);
        a.setblocking(false).unwrap();
        assert_eq!(a.send(b"x"), Ok(1), "{t}");
        wait_for_the_refusal(net, &a);
        assert_eq!(a.recv(1), Err(err(Errno::ECONNREFUSED)), "{t}");
        assert_eq!(a.recv(1), Err(err(Errno::EAGAIN)), "{t}: reported once");
    });
}

#[test]
fn broadcast_without_so_broadcast_is_eacces() {
    on_both(|net, t| {
        let a = udp(net);
        assert_eq!(
            a.sendto(b"x", &Target::host("255.255.255.255", 9)),
            Err(err(Errno::EACCES)),
            "{t}"
        );
    });
}

// ----- close, names, options, timeouts, fileno, makefile ----------------------------------------

#[test]
fn close_twice_at_the_descriptor_level_is_ebadf() {
    let mut kernels: Vec<Box<dyn Kernel>> =
        vec![Box::new(RealKernel::new()), Box::new(Sim::faithful())];
    for k in &mut kernels {
        let fd = k.socket(Family::Inet, SockType::Stream).unwrap();
        assert_eq!(k.close(fd), Ok(()));
        assert_eq!(k.close(fd), Err(Errno::EBADF), "{}", k.transport());
    }
    on_both(|net, t| {
        // Python's close is idempotent; every later call is EBADF, and fileno is -1.
        let mut s = tcp(net);
        s.close().unwrap();
        assert_eq!(s.close(), Ok(()), "{t}");
        assert_eq!(s.fileno(), -1, "{t}");
        assert_eq!(s.getsockname(), Err(err(Errno::EBADF)), "{t}");
        assert_eq!(s.getsockopt(SockOpt::Error), Err(err(Errno::EBADF)), "{t}");
        assert_eq!(s.settimeout(Some(1.0)), Err(err(Errno::EBADF)), "{t}");
    });
}

#[test]
fn names_of_unbound_and_unconnected_sockets() {
    on_both(|net, t| {
        assert_eq!(
            tcp(net).getsockname().unwrap().to_string(),
            "('0.0.0.0', 0)",
            "{t}"
        );
        assert_eq!(tcp(net).getpeername(), Err(err(Errno::ENOTCONN)), "{t}");
        assert_eq!(udp(net).getpeername(), Err(err(Errno::ENOTCONN)), "{t}");
    });
}

#[test]
fn socket_options() {
    on_both(|net, t| {
        let u = udp(net);
        assert_eq!(
            u.setsockopt(SockOpt::TcpNoDelay, 1),
            Err(err(Errno::ENOPROTOOPT)),
            "{t}"
        );
        let s = tcp(net);
        for opt in [SockOpt::ReuseAddr, SockOpt::KeepAlive, SockOpt::TcpNoDelay] {
            assert_eq!(s.getsockopt(opt), Ok(0), "{t} {opt:?}");
            s.setsockopt(opt, 1).unwrap();
            assert_eq!(s.getsockopt(opt), Ok(1), "{t} {opt:?}");
        }
        s.setsockopt(SockOpt::RcvBuf, 100_000).unwrap();
        assert_eq!(
            s.getsockopt(SockOpt::RcvBuf),
            Ok(200_000),
            "{t}: Linux doubles SO_RCVBUF"
        );
        s.setsockopt(SockOpt::SndBuf, 1_000).unwrap();
        assert_eq!(
            s.getsockopt(SockOpt::SndBuf),
            Ok(4_608),
            "{t}: SO_SNDBUF minimum"
        );
        assert_eq!(s.getsockopt(SockOpt::Type), Ok(1), "{t}");
        // SO_ERROR returns the pending error and clears it.
        let mut r = tcp(net);
        r.setblocking(false).unwrap();
        assert_eq!(
            r.connect(&closed_port(net)),
            Err(err(Errno::EINPROGRESS)),
            "{t}"
        );
        assert_eq!(r.getsockopt(SockOpt::Error), Ok(111), "{t}");
        assert_eq!(r.getsockopt(SockOpt::Error), Ok(0), "{t}");
    });
}

#[test]
fn timeouts_and_blocking_modes() {
    on_both(|net, t| {
        let mut s = tcp(net);
        assert_eq!(s.gettimeout(), None, "{t}: blocking by default");
        assert_eq!(
            s.settimeout(Some(-1.0)),
            Err(SockError::Value("Timeout value out of range")),
            "{t}"
        );
        assert!(
            matches!(s.settimeout(Some(f64::NAN)), Err(SockError::Value(_))),
            "{t}"
        );
        s.setblocking(false).unwrap();
        assert_eq!(
            s.gettimeout(),
            Some(0.0),
            "{t}: setblocking(False) is settimeout(0)"
        );
        s.setblocking(true).unwrap();
        assert_eq!(
            s.gettimeout(),
            None,
            "{t}: setblocking(True) is settimeout(None)"
        );
        assert!(s.fileno() >= 0, "{t}");
    });
}

#[test]
fn makefile_reads_lines_and_writes_whole() {
    use std::io::{BufRead, Write};
    on_both(|net, t| {
        let (c, s) = connected(net);
        let mut f = c.makefile().unwrap();
        f.write_all(b"first line\nsecond").unwrap();
        s.sendall(b"reply one\nreply two\n").unwrap();
        let mut line = String::new();
        f.read_line(&mut line).unwrap();
        assert_eq!(line, "reply one\n", "{t}");
        assert_eq!(s.recv(100).unwrap(), b"first line\nsecond", "{t}");
        let mut nb = tcp(net);
        nb.setblocking(false).unwrap();
        assert!(
            matches!(nb.makefile(), Err(SockError::Value(_))),
            "{t}: needs blocking mode"
        );
    });
}

#[test]
fn raw_sockets_need_the_kernel() {
    let sim: Net = share(Sim::faithful());
    assert_eq!(
        Socket::new(&sim, Family::Inet, SockType::Raw).map(|_| ()),
        Err(err(Errno::ESOCKTNOSUPPORT)),
        "the simulator refuses SOCK_RAW"
    );
    let real: Net = share(RealKernel::new());
    match Socket::new(&real, Family::Inet, SockType::Raw) {
        Ok(mut s) => {
            s.settimeout(Some(2.0)).unwrap(); // bounded: a missing reply fails, never hangs
            ping_loopback(&s)
        }
        Err(e) => assert_eq!(e, err(Errno::EPERM), "unprivileged: EPERM"),
    }
}

/// Sends an ICMP echo request to 127.0.0.1 on a raw socket and expects the echo reply.
fn ping_loopback(s: &Socket) {
    const ICMP_ECHO_REQUEST: u8 = 8;
    const ICMP_ECHO_REPLY: u8 = 0;
    let mut packet = vec![ICMP_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
    packet.extend_from_slice(b"selectlab");
    let sum = internet_checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        s.sendto(&packet, &Target::host("127.0.0.1", 0)),
        Ok(packet.len())
    );
    // A raw ICMP socket also sees our own request on loopback; look for the reply (bounded).
    for _ in 0..4 {
        let (data, _) = s.recvfrom(1500).expect("an ICMP packet comes back");
        let ihl = usize::from(data[0] & 0x0f) * 4;
        let icmp = &data[ihl..];
        if icmp[0] == ICMP_ECHO_REPLY {
            assert_eq!(&icmp[4..6], &[0x12, 0x34], "echo identifier");
            assert_eq!(&icmp[8..], b"selectlab", "echo payload");
            return;
        }
    }
    panic!("no ICMP echo reply from loopback");
}

/// RFC 1071 checksum.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ----- rows added: AF_UNIX paths, the rest of connect and sendto, EINTR ------------------------

/// A fresh directory for socket paths (removed by the caller's `cleanup`).
fn socket_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("selectlab-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn unix_paths_bind_listen_connect_accept_and_their_errors() {
    let dir = socket_dir("unix");
    on_both(|net, t| {
        let n = t; // a different file name per transport
        let path = Target::Path(dir.join(format!("srv{n}")));
        let missing = Target::Path(dir.join(format!("missing{n}")));
        let l = Socket::new(net, Family::Unix, SockType::Stream).unwrap();
        l.bind(&path).unwrap();
        assert_eq!(
            Socket::new(net, Family::Unix, SockType::Stream)
                .unwrap()
                .bind(&path),
            Err(err(Errno::EADDRINUSE)),
            "{t}: path exists"
        );
        l.listen(4).unwrap();
        let c = Socket::new(net, Family::Unix, SockType::Stream).unwrap();
        assert_eq!(
            c.connect(&missing),
            Err(err(Errno::ENOENT)),
            "{t}: no such path"
        );
        c.connect(&path).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(
            peer,
            SockAddr::UnixUnnamed,
            "{t}: an unbound client has no name"
        );
        c.sendall(b"over a path").unwrap();
        assert_eq!(s.recv(100).unwrap(), b"over a path", "{t}");
        assert_eq!(
            s.getsockname().unwrap().to_string(),
            format!("'{}'", dir.join(format!("srv{n}")).display()),
            "{t}"
        );
        // A connected stream refuses an address: EISCONN.
        assert_eq!(c.sendto(b"x", &path), Err(err(Errno::EISCONN)), "{t}");
        // The path outlives the socket: connecting to it is refused, binding it is EADDRINUSE.
        drop(l);
        let late = Socket::new(net, Family::Unix, SockType::Stream).unwrap();
        assert_eq!(
            late.connect(&path),
            Err(err(Errno::ECONNREFUSED)),
            "{t}: listener gone"
        );
        // Datagrams to a path.
        let dpath = Target::Path(dir.join(format!("dgram{n}")));
        let d = Socket::new(net, Family::Unix, SockType::Dgram).unwrap();
        d.bind(&dpath).unwrap();
        let sender = Socket::new(net, Family::Unix, SockType::Dgram).unwrap();
        assert_eq!(sender.sendto(b"to a path", &dpath), Ok(9), "{t}");
        // An unnamed sender has no address (this machine's kernel says none; Linux an empty name).
        assert_eq!(
            d.recvfrom(100).unwrap(),
            (b"to a path".to_vec(), None),
            "{t}"
        );
        assert_eq!(
            sender.sendto(b"x", &missing),
            Err(err(Errno::ENOENT)),
            "{t}"
        );
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connected_udp_send_reports_the_refusal_too() {
    on_both(|net, t| {
        let a = udp_to_a_closed_port(net);
        assert_eq!(a.send(b"x"), Ok(1), "{t}");
        wait_for_the_refusal(net, &a);
        assert_eq!(
            a.send(b"x"),
            Err(err(Errno::ECONNREFUSED)),
            "{t}: the ICMP error, on send"
        );
    });
}

#[test]
fn host_unreachable_and_no_route_are_simulator_only() {
    // EHOSTUNREACH needs a router's ICMP and ENETUNREACH a missing route: neither exists on
    // loopback.
    let mut config = SimConfig::default();
    config
        .unreachable
        .insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
    let net: Net = share(Sim::new(config, Decider::faithful()));
    assert_eq!(
        tcp(&net).connect(&Target::host("192.0.2.9", 80)),
        Err(err(Errno::EHOSTUNREACH))
    );
    assert_eq!(
        tcp(&net).connect_ex(&Target::host("192.0.2.9", 80)),
        Ok(113)
    );
    assert_eq!(
        udp(&net).sendto(b"x", &Target::host("198.51.100.7", 9)),
        Err(err(Errno::ENETUNREACH))
    );
}

#[test]
fn ephemeral_ports_run_out_with_eaddrnotavail_simulator_only() {
    // Simulator-only: exhausting the machine's 28 232 ephemeral ports would disturb everything
    // else on it. A three-port range (net.ipv4.ip_local_port_range) shows the rule.
    let config = SimConfig {
        ephemeral_ports: 40_000..=40_002,
        ..SimConfig::default()
    };
    let net: Net = share(Sim::new(config, Decider::faithful()));
    let (_l, addr) = listener(&net, 16);
    let mut keep = Vec::new();
    for _ in 0..2 {
        let c = tcp(&net);
        c.connect(&addr).unwrap();
        keep.push(c);
    }
    // The listener took one port of the three, the two clients the others.
    assert_eq!(tcp(&net).connect(&addr), Err(err(Errno::EADDRNOTAVAIL)));
}

#[test]
fn eintr_interrupts_waits_and_python_level_calls_retry_simulator_only() {
    // Simulator-only: a real EINTR needs a signal handler, which needs `unsafe`. Non-blocking
    // calls never see EINTR; only waits do (select/poll/epoll_wait are never restarted), and the
    // Python-style calls retry them as CPython does (PEP 475).
    use selectlab::kernel::{Events, PollFd};
    use selectlab::sim::decide::Adversity;
    let always = Adversity {
        eintr_per_mille: 1000,
        ..Adversity::NONE
    };
    let sim = share(Sim::new(SimConfig::default(), Decider::seeded(1, always)));
    let (a, _b) = sim.borrow_mut().socketpair(SockType::Stream).unwrap();
    let mut p = [PollFd::new(a, Events::IN)];
    assert_eq!(
        sim.borrow_mut().poll(&mut p, Some(Duration::from_secs(1))),
        Err(Errno::EINTR)
    );
    let half = Adversity {
        eintr_per_mille: 500,
        ..Adversity::NONE
    };
    let net: Net = share(Sim::new(SimConfig::default(), Decider::seeded(2, half)));
    let (mut x, y) = Socket::pair(&net, SockType::Stream).unwrap();
    x.settimeout(Some(5.0)).unwrap();
    assert_eq!(
        x.recv(10),
        Err(SockError::Timeout),
        "retried until the timeout, never EINTR"
    );
    y.sendall(b"late").unwrap();
    assert_eq!(x.recv(10), Ok(b"late".to_vec()));
}

/// ioctl(FIONREAD) on both transports: what a read would find, for each kind of pair, and EINVAL
/// on a listening socket.
#[test]
fn fionread_counts_what_a_read_would_find() {
    use crate::util::{PairKind, make_pair};
    use selectlab::kernel::{Events, PollFd};
    let kernels: [(&str, Box<dyn Kernel>); 2] = [
        ("real", Box::new(RealKernel::new())),
        ("sim", Box::new(Sim::faithful())),
    ];
    for (t, mut k) in kernels {
        let k = k.as_mut();
        for kind in [
            PairKind::TcpV4,
            PairKind::UdpV4,
            PairKind::UnixStream,
            PairKind::UnixSeqPacket,
            PairKind::UnixDgram,
        ] {
            let (a, b) = make_pair(k, kind);
            assert_eq!(k.bytes_waiting(b), Ok(0), "{t} {kind:?}: nothing yet");
            k.send(a, b"abc").expect("send");
            k.send(a, b"defghij").expect("send");
            // Wait for the second write to arrive (loopback is immediate, but say so).
            let mut fds = [PollFd::new(b, Events::IN)];
            k.poll(&mut fds, Some(Duration::from_secs(1)))
                .expect("poll");
            // Streams and AF_UNIX seqpacket count the whole queue; datagrams the first.
            let whole = kind.is_stream() || kind == PairKind::UnixSeqPacket;
            let want = if whole { 10 } else { 3 };
            assert_eq!(k.bytes_waiting(b), Ok(want), "{t} {kind:?}");
            for fd in [a, b] {
                k.close(fd).expect("close");
            }
        }
        let l = k.socket(Family::Inet, SockType::Stream).expect("socket");
        k.bind(l, &SockAddr::Inet("127.0.0.1:0".parse().unwrap()))
            .expect("bind");
        k.listen(l, 4).expect("listen");
        assert_eq!(k.bytes_waiting(l), Err(Errno::EINVAL), "{t}: listening");
        k.close(l).expect("close");
    }
}
