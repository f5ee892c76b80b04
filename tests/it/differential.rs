//! The kernel is the oracle: random call sequences on connected pairs give the same results on
//! the real kernel (loopback) and on the faithful simulator.

use crate::util;

use crate::util::{ALL_KINDS, PairKind, make_pair};
use proptest::prelude::*;
use selectlab::error::errno_name;
use selectlab::kernel::{Events, Fd, Kernel, PollFd, Shutdown, SockOpt};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

/// Largest single send or recv in a generated sequence. With at most `MAX_OPS` operations the
/// bytes in flight stay far below every buffer, so buffer sizing (which differs between kernels
/// by design) never shows.
const MAX_IO_BYTES: usize = 3_000;
const MAX_OPS: usize = 24;

#[derive(Debug, Clone, Copy)]
enum Op {
    Send(bool, usize),
    /// A vectored send of two buffers.
    SendV(bool, usize, usize),
    Recv(bool, usize),
    Shut(bool, Shutdown),
    Close(bool),
    Poll(bool),
    SoError(bool),
    PeerName(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let side = any::<bool>();
    let how = prop_oneof![
        Just(Shutdown::Read),
        Just(Shutdown::Write),
        Just(Shutdown::Both)
    ];
    prop_oneof![
        4 => (side, 0..MAX_IO_BYTES).prop_map(|(s, n)| Op::Send(s, n)),
        2 => (side, 0..MAX_IO_BYTES / 2, 0..MAX_IO_BYTES / 2).prop_map(|(s, n, m)| Op::SendV(s, n, m)),
        4 => (side, 0..MAX_IO_BYTES).prop_map(|(s, n)| Op::Recv(s, n)),
        1 => (side, how).prop_map(|(s, h)| Op::Shut(s, h)),
        1 => side.prop_map(Op::Close),
        3 => side.prop_map(Op::Poll),
        1 => side.prop_map(Op::SoError),
        1 => side.prop_map(Op::PeerName),
    ]
}

/// The byte at position `i` of what side `a` (or `b`) sends: distinct per side, so a byte that
/// arrives at the wrong place shows.
fn pattern(side_a: bool, i: usize) -> u8 {
    let base = if side_a { 0 } else { 101 };
    ((base + i) % 251) as u8
}

/// Runs the sequence and returns one normalised line per operation.
fn run(k: &mut dyn Kernel, kind: PairKind, ops: &[Op]) -> Vec<String> {
    let (a, b) = make_pair(k, kind);
    let fd = |side: bool| -> Fd { if side { a } else { b } };
    let mut sent = [0usize; 2];
    let mut received = [0usize; 2];
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let line = match *op {
            Op::Send(s, n) => {
                let start = sent[usize::from(s)];
                let data: Vec<u8> = (start..start + n).map(|i| pattern(s, i)).collect();
                match k.send(fd(s), &data) {
                    Ok(m) => {
                        if kind.is_stream() {
                            sent[usize::from(s)] += m;
                        }
                        format!("send {m}")
                    }
                    Err(e) => format!("send {}", errno_name(e)),
                }
            }
            Op::SendV(s, n, m) => {
                let start = sent[usize::from(s)];
                let data: Vec<u8> = (start..start + n + m).map(|i| pattern(s, i)).collect();
                match k.send_vectored(fd(s), &[&data[..n], &data[n..]]) {
                    Ok(got) => {
                        if kind.is_stream() {
                            sent[usize::from(s)] += got;
                        }
                        format!("sendv {got}")
                    }
                    Err(e) => format!("sendv {}", errno_name(e)),
                }
            }
            Op::Recv(s, n) => {
                let mut buf = vec![0; n];
                match k.recv(fd(s), &mut buf) {
                    Ok(m) => {
                        // Stream bytes must be the peer's pattern, in order.
                        let peer = !s;
                        let start = received[usize::from(s)];
                        let intact = !kind.is_stream()
                            || buf[..m]
                                .iter()
                                .enumerate()
                                .all(|(i, x)| *x == pattern(peer, start + i));
                        if kind.is_stream() {
                            received[usize::from(s)] += m;
                        }
                        format!("recv {m}{}", if intact { "" } else { " CORRUPT" })
                    }
                    Err(e) => format!("recv {}", errno_name(e)),
                }
            }
            Op::Shut(s, h) => format!(
                "shutdown {:?} {:?}",
                h,
                k.shutdown(fd(s), h).map_err(errno_name)
            ),
            Op::Close(s) => format!("close {:?}", k.close(fd(s)).map_err(errno_name)),
            Op::Poll(s) => {
                let mut p = [PollFd::new(fd(s), Events::IN | Events::OUT | Events::RDHUP)];
                match k.poll(&mut p, Some(std::time::Duration::ZERO)) {
                    Ok(_) => format!("poll {}", p[0].revents),
                    Err(e) => format!("poll {}", errno_name(e)),
                }
            }
            Op::SoError(s) => match k.getsockopt(fd(s), SockOpt::Error) {
                Ok(0) => "so_error 0".to_string(),
                Ok(e) => format!("so_error {}", errno_name(nix::errno::Errno::from_raw(e))),
                Err(e) => format!("so_error {}", errno_name(e)),
            },
            Op::PeerName(s) => format!(
                "getpeername {:?}",
                k.getpeername(fd(s)).map(|_| ()).map_err(errno_name)
            ),
        };
        out.push(format!("{} {line}", if op_side(op) { "a" } else { "b" }));
    }
    for f in [a, b] {
        selectlab::endpoints::close_abortively(k, f);
    }
    out
}

fn op_side(op: &Op) -> bool {
    match *op {
        Op::Send(s, _) | Op::SendV(s, _, _) | Op::Recv(s, _) | Op::Shut(s, _) => s,
        Op::Close(s) | Op::Poll(s) | Op::SoError(s) | Op::PeerName(s) => s,
    }
}

fn compare(kind: PairKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let sim = run(&mut Sim::faithful(), kind, ops);
    // The kernel gets a few tries: its timers can act mid-sequence when this process is
    // descheduled (see selectlab::differential::REAL_RUN_ATTEMPTS); a real divergence repeats.
    let mut real = Vec::new();
    for _ in 0..selectlab::differential::REAL_RUN_ATTEMPTS {
        real = run(&mut RealKernel::new(), kind, ops);
        if real == sim {
            return Ok(());
        }
    }
    prop_assert_eq!(real, sim, "{:?} diverged", kind);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: util::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn simulator_matches_kernel(kind in proptest::sample::select(ALL_KINDS.to_vec()),
                                ops in proptest::collection::vec(op(), 1..MAX_OPS)) {
        compare(kind, &ops)?;
    }
}

/// Divergences the proptest found, each kept as a named case (kernel and simulator must agree).
mod regressions {
    use super::*;
    use Op::*;

    fn agree(kind: PairKind, ops: &[Op]) {
        let real = run(&mut RealKernel::new(), kind, ops);
        let sim = run(&mut Sim::faithful(), kind, ops);
        assert_eq!(real, sim, "{kind:?}");
    }

    #[test]
    fn closing_a_socket_does_not_reset_its_state_to_closed_first() {
        agree(PairKind::TcpV4, &[Close(false), Recv(true, 1)]);
    }

    #[test]
    fn tcp_shut_rd_keeps_the_socket_writable_and_readable_at_eof() {
        agree(PairKind::TcpV4, &[Shut(false, Shutdown::Read), Poll(false)]);
    }

    #[test]
    fn zero_length_recv_without_data_is_eagain_not_eof() {
        agree(PairKind::TcpV4, &[Recv(false, 0)]);
        agree(PairKind::UnixStream, &[Recv(false, 0)]);
    }

    #[test]
    fn a_datagram_socket_has_no_end_of_stream() {
        agree(
            PairKind::UdpV4,
            &[Shut(false, Shutdown::Both), Recv(false, 0)],
        );
    }

    #[test]
    fn fins_both_ways_close_the_socket() {
        agree(
            PairKind::TcpV4,
            &[
                Close(false),
                Shut(true, Shutdown::Write),
                Shut(true, Shutdown::Read),
                PeerName(true),
            ],
        );
    }

    #[test]
    fn data_for_a_fully_shut_socket_is_answered_by_a_reset() {
        agree(
            PairKind::TcpV4,
            &[
                Shut(true, Shutdown::Both),
                Send(false, 1),
                Poll(false),
                SoError(false),
            ],
        );
    }

    #[test]
    fn seqpacket_send_reports_the_pending_error_first() {
        agree(
            PairKind::UnixSeqPacket,
            &[Send(true, 1), Close(false), Send(true, 0)],
        );
    }

    #[test]
    fn udp_recv_reports_the_pending_error_before_queued_datagrams() {
        agree(
            PairKind::UdpV4,
            &[Send(false, 0), Close(false), Send(true, 0), Recv(true, 0)],
        );
    }

    #[test]
    fn unix_dgram_peer_death_purges_the_queue() {
        agree(
            PairKind::UnixDgram,
            &[Send(false, 0), Close(false), Send(true, 0), Recv(true, 0)],
        );
    }

    #[test]
    fn unix_dgram_to_a_peer_that_shut_reading_is_epipe() {
        agree(
            PairKind::UnixDgram,
            &[Shut(false, Shutdown::Read), Send(true, 0)],
        );
    }

    #[test]
    fn small_tcp_writes_are_not_coalesced_with_nodelay() {
        agree(
            PairKind::TcpV4,
            &[
                Send(true, 1),
                Send(false, 1),
                Send(true, 1),
                Send(true, 1),
                Recv(false, 100),
            ],
        );
    }
}
