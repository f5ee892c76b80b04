//! AF_UNIX socketpairs turn short and fail with EAGAIN at the same write on the simulator as
//! on Linux, for stream, seqpacket and datagram pairs and any write size; and the writer is
//! writable again after the same bytes are read (Linux's skb accounting, `src/sim/skb.rs`).
//!
//! Where the kernel under the test is gVisor (CI machines may be), its numbers differ (its
//! netstack accounts differently); the test then checks the simulator against Linux's numbers
//! (`sim::skb`'s unit test pins them) and prints gVisor's, as `docs/src/simulator.md` says.

use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::SockType;
use selectlab::kernel::{Events, Fd, Kernel, PollFd};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

/// Write sizes: around each boundary of the accounting (head, fragments, skb and page sizes).
const SIZES: [usize; 10] = [
    1, 100, 3776, 3777, 4096, 8192, 16_065, 36_544, 65_536, 100_000,
];
const KINDS: [SockType; 3] = [SockType::Stream, SockType::SeqPacket, SockType::Dgram];

/// What a run saw: bytes and calls until EAGAIN, whether the last call was short, and the
/// bytes read back until the writer polled writable again.
type Seen = (usize, usize, bool, usize);

fn writable(k: &mut dyn Kernel, fd: Fd) -> bool {
    let mut p = [PollFd::new(fd, Events::OUT)];
    k.poll(&mut p, Some(Duration::ZERO)).unwrap();
    p[0].revents.contains(Events::OUT)
}

fn run(k: &mut dyn Kernel, ty: SockType, size: usize) -> Seen {
    let (w, r) = k.socketpair(ty).unwrap();
    let chunk = vec![b'x'; size];
    let (mut total, mut calls, mut short) = (0, 0, false);
    loop {
        match k.send(w, &chunk) {
            Ok(n) => {
                total += n;
                calls += 1;
                short = n < size;
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("{ty:?} {size}: {e}"),
        }
        assert!(calls < 100_000, "no end");
    }
    assert!(!writable(k, w), "{ty:?} {size}: writable when full");
    let mut buf = vec![0u8; size.min(65_536)];
    let mut read_back = 0;
    while !writable(k, w) {
        read_back += k.recv(r, &mut buf).unwrap();
    }
    k.close(w).unwrap();
    k.close(r).unwrap();
    (total, calls, short, read_back)
}

#[test]
fn short_writes_and_eagain_come_where_linux_puts_them() {
    let gvisor = crate::util::kernel_is_gvisor();
    for ty in KINDS {
        for size in SIZES {
            let sim = run(&mut Sim::faithful(), ty, size);
            let real = run(&mut RealKernel::new(), ty, size);
            if gvisor {
                if sim != real {
                    eprintln!(
                        "gVisor differs from Linux: {ty:?} writes of {size}: gVisor {real:?}, Linux (simulated) {sim:?}"
                    );
                }
            } else {
                assert_eq!(sim, real, "{ty:?} writes of {size}: simulator vs kernel");
            }
        }
    }
}

/// A datagram socket connected to a receiver whose queue is full of another sender's
/// messages waits for room; when the receiver reads one, Linux wakes it (unix_dgram_recvmsg
/// wakes the receiver's peer_wait), so edge-triggered epoll reports it writable again.
/// Found by review: the simulator woke only the sender of the message read.
#[test]
fn a_connected_sender_is_woken_when_a_full_receiver_reads() {
    use selectlab::addr::{Family, SockAddr};
    use selectlab::kernel::{CtlOp, Mode};
    let run = |k: &mut dyn Kernel, dir: &std::path::Path| -> (bool, bool) {
        let path = dir.join("r.sock");
        let r = k.socket(Family::Unix, SockType::Dgram).unwrap();
        k.bind(r, &SockAddr::Unix(path.clone())).unwrap();
        let connected = k.socket(Family::Unix, SockType::Dgram).unwrap();
        k.connect(connected, &SockAddr::Unix(path.clone())).unwrap();
        let other = k.socket(Family::Unix, SockType::Dgram).unwrap();
        // Fill the receiver's queue from the other sender, to its limit.
        while k.sendto(other, b"x", &SockAddr::Unix(path.clone())).is_ok() {}
        let ep = k.epoll_create().unwrap();
        k.epoll_ctl(ep, CtlOp::Add, connected, Events::OUT, Mode::EDGE, 1)
            .unwrap();
        let mut out = Vec::new();
        k.epoll_wait(ep, &mut out, 8, Some(Duration::ZERO)).unwrap();
        let writable_when_full = !out.is_empty();
        let mut buf = [0u8; 8];
        k.recv(r, &mut buf).unwrap();
        out.clear();
        k.epoll_wait(ep, &mut out, 8, Some(Duration::ZERO)).unwrap();
        let woken = !out.is_empty();
        for fd in [ep, other, connected, r] {
            k.close(fd).unwrap();
        }
        let _ = std::fs::remove_file(&path);
        (writable_when_full, woken)
    };
    let dir = std::env::temp_dir().join(format!("selectlab-peer-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = run(&mut Sim::faithful(), &dir);
    assert_eq!(sim, (false, true), "simulator");
    if !crate::util::kernel_is_gvisor() {
        let real = run(&mut RealKernel::new(), &dir);
        assert_eq!(real, sim, "kernel vs simulator");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
