//! Helpers shared by the integration tests: building connected pairs on any kernel.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{Events, Fd, Kernel, PollFd};
use selectlab::real::RealKernel;
use selectlab::sim::Sim;

/// The kinds of connected pairs the differential tests exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    TcpV4,
    TcpV6,
    UnixStream,
    UnixSeqPacket,
    UdpV4,
    UdpV6,
    UnixDgram,
}

pub const ALL_KINDS: [PairKind; 7] = [
    PairKind::TcpV4,
    PairKind::TcpV6,
    PairKind::UnixStream,
    PairKind::UnixSeqPacket,
    PairKind::UdpV4,
    PairKind::UdpV6,
    PairKind::UnixDgram,
];

impl PairKind {
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            PairKind::TcpV4 | PairKind::TcpV6 | PairKind::UnixStream
        )
    }
}

pub fn loopback(family: Family) -> SockAddr {
    let ip = match family {
        Family::Inet6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SockAddr::Inet(SocketAddr::new(ip, 0))
}

/// Waits (up to a second; virtual in the simulator) until `fd` reports one of `events`.
pub fn wait_for(k: &mut dyn Kernel, fd: Fd, events: Events) -> Events {
    let mut p = [PollFd::new(fd, events)];
    k.poll(&mut p, Some(Duration::from_secs(1))).expect("poll");
    p[0].revents
}

/// A connected TCP pair over loopback: (client, accepted server end). The listener is closed.
pub fn tcp_pair(k: &mut dyn Kernel, family: Family) -> (Fd, Fd) {
    let l = k.socket(family, SockType::Stream).expect("socket");
    k.bind(l, &loopback(family)).expect("bind");
    k.listen(l, 16).expect("listen");
    let addr = k.getsockname(l).expect("getsockname");
    let c = k.socket(family, SockType::Stream).expect("socket");
    match k.connect(c, &addr) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => panic!("connect: {e}"),
    }
    assert!(wait_for(k, c, Events::OUT).contains(Events::OUT));
    wait_for(k, l, Events::IN);
    let (s, _) = k.accept(l).expect("accept");
    k.close(l).expect("close listener");
    // Nagle's algorithm holds back small segments while an ACK is outstanding, and delayed ACKs
    // make that depend on timing. The simulator delivers every write at once, which is what the
    // kernel does with TCP_NODELAY; Nagle-style coalescing is left to the adversary (short reads).
    for fd in [c, s] {
        k.setsockopt(fd, selectlab::kernel::SockOpt::TcpNoDelay, 1)
            .expect("TCP_NODELAY");
    }
    (c, s)
}

/// Two UDP sockets on loopback, each connected to the other.
pub fn udp_pair(k: &mut dyn Kernel, family: Family) -> (Fd, Fd) {
    let a = k.socket(family, SockType::Dgram).expect("socket");
    let b = k.socket(family, SockType::Dgram).expect("socket");
    k.bind(a, &loopback(family)).expect("bind");
    k.bind(b, &loopback(family)).expect("bind");
    let aa = k.getsockname(a).expect("name");
    let ba = k.getsockname(b).expect("name");
    k.connect(a, &ba).expect("connect");
    k.connect(b, &aa).expect("connect");
    (a, b)
}

/// A connected pair of the given kind.
pub fn make_pair(k: &mut dyn Kernel, kind: PairKind) -> (Fd, Fd) {
    match kind {
        PairKind::TcpV4 => tcp_pair(k, Family::Inet),
        PairKind::TcpV6 => tcp_pair(k, Family::Inet6),
        PairKind::UdpV4 => udp_pair(k, Family::Inet),
        PairKind::UdpV6 => udp_pair(k, Family::Inet6),
        PairKind::UnixStream => k.socketpair(SockType::Stream).expect("socketpair"),
        PairKind::UnixSeqPacket => k.socketpair(SockType::SeqPacket).expect("socketpair"),
        PairKind::UnixDgram => k.socketpair(SockType::Dgram).expect("socketpair"),
    }
}

/// Both transports, for tests that must hold on each.
pub fn both_kernels() -> Vec<Box<dyn Kernel>> {
    vec![Box::new(RealKernel::new()), Box::new(Sim::faithful())]
}

/// Whether this process may bind ports below 1024 (root on CI).
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}
