//! What the simulated network carried: each TCP segment and UDP datagram between IP sockets,
//! taken from the simulator's own state as the calls happen (for `--pcap`; see
//! [`crate::pcap`]).
//!
//! Loopback as Linux runs it: the handshake's three segments when a connect reaches a listener,
//! a data segment (and the receiver's ACK) for each send, FIN and RST when the simulator sends
//! them. Sequence numbers count each direction's bytes from a per-connection initial number;
//! windows are the sender's free receive-buffer room. AF_UNIX traffic never touches an IP
//! stack, so it has no frames here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Most segments a capture keeps; later ones are counted in [`Capture::dropped`].
pub const CAPTURE_MAX_SEGMENTS: usize = 1 << 18;
/// Most payload bytes a capture keeps in all; past it, segments are counted as dropped.
pub const CAPTURE_MAX_PAYLOAD_BYTES: usize = 64 << 20;
/// The largest TCP payload per segment: loopback's MTU (65 536) less the IPv4 and TCP headers
/// with timestamps, as Linux advertises in its SYN.
pub const LOOPBACK_MSS_BYTES: usize = 65_483;
/// The window scale both ends announce (Linux's for a loopback-sized receive buffer).
pub const WINDOW_SCALE_SHIFT: u8 = 7;

bitflags::bitflags! {
    /// A TCP segment's control bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct TcpFlags: u8 {
        /// Synchronise sequence numbers (opens a connection).
        const SYN = 1;
        /// The acknowledgement number is valid.
        const ACK = 1 << 1;
        /// No more data from the sender.
        const FIN = 1 << 2;
        /// Reset the connection.
        const RST = 1 << 3;
        /// Push: the segment carries data for the reader.
        const PSH = 1 << 4;
    }
}

/// A segment's transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment.
    Tcp {
        /// Control bits.
        flags: TcpFlags,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number (0 without ACK).
        ack: u32,
        /// The window field as sent (scaled by [`WINDOW_SCALE_SHIFT`] except on a SYN).
        window: u16,
    },
    /// A UDP datagram.
    Udp,
}

/// One segment or datagram on the simulated wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Virtual time it was sent.
    pub at: Duration,
    /// Sender's address.
    pub src: SocketAddr,
    /// Receiver's address.
    pub dst: SocketAddr,
    /// TCP or UDP, with TCP's header fields.
    pub transport: Transport,
    /// The bytes it carried.
    pub payload: Vec<u8>,
}

/// The segments so far, bounded by [`CAPTURE_MAX_SEGMENTS`] and [`CAPTURE_MAX_PAYLOAD_BYTES`].
#[derive(Debug, Clone, Default)]
pub struct Capture {
    enabled: bool,
    segments: Vec<Segment>,
    payload_bytes: usize,
    dropped: u64,
    /// Each direction's next sequence number, keyed by (sender, receiver).
    next_seq: BTreeMap<(SocketAddr, SocketAddr), u32>,
}

impl Capture {
    /// A capture that keeps segments (`enabled`) or ignores them all.
    pub fn new(enabled: bool) -> Capture {
        Capture {
            enabled,
            ..Capture::default()
        }
    }

    /// Whether segments are kept.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The segments kept.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Segments not kept because a bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A SYN (`answer` false) or SYN-ACK (`answer` true) from `src`: that direction's sequence
    /// starts again at its initial number, so a retransmitted SYN repeats it.
    pub(crate) fn syn(
        &mut self,
        at: Duration,
        (src, dst): (SocketAddr, SocketAddr),
        answer: bool,
        window_bytes: usize,
    ) {
        if !self.enabled {
            return;
        }
        let isn = initial_seq(src, dst);
        self.next_seq.insert((src, dst), isn.wrapping_add(1));
        let (flags, ack) = if answer {
            (TcpFlags::SYN | TcpFlags::ACK, self.seq_of(dst, src))
        } else {
            (TcpFlags::SYN, 0)
        };
        let window = u16::try_from(window_bytes).unwrap_or(u16::MAX);
        let transport = Transport::Tcp {
            flags,
            seq: isn,
            ack,
            window,
        };
        self.keep(at, src, dst, transport, &[]);
    }

    /// A segment after the handshake: `flags` (ACK is added), and `payload` cut at the
    /// loopback MSS. FIN counts as one sequence number.
    pub(crate) fn tcp(
        &mut self,
        at: Duration,
        (src, dst): (SocketAddr, SocketAddr),
        flags: TcpFlags,
        payload: &[u8],
        window_bytes: usize,
    ) {
        if !self.enabled {
            return;
        }
        let window = u16::try_from(window_bytes >> WINDOW_SCALE_SHIFT).unwrap_or(u16::MAX);
        let mut chunks: Vec<&[u8]> = payload.chunks(LOOPBACK_MSS_BYTES).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            // Only the last piece carries FIN (and, with data, PSH).
            let mut f = TcpFlags::ACK | (flags & !TcpFlags::FIN);
            if i == last {
                f |= flags & TcpFlags::FIN;
            }
            if !chunk.is_empty() {
                f |= TcpFlags::PSH;
            }
            let seq = self.seq_of(src, dst);
            let advance = chunk.len() as u32 + u32::from(f.contains(TcpFlags::FIN));
            self.next_seq.insert((src, dst), seq.wrapping_add(advance));
            let transport = Transport::Tcp {
                flags: f,
                seq,
                ack: self.seq_of(dst, src),
                window,
            };
            self.keep(at, src, dst, transport, chunk);
        }
    }

    /// A refused SYN's answer: RST-ACK from the address nobody listens on.
    pub(crate) fn refuse(&mut self, at: Duration, (src, dst): (SocketAddr, SocketAddr)) {
        if !self.enabled {
            return;
        }
        let transport = Transport::Tcp {
            flags: TcpFlags::RST | TcpFlags::ACK,
            seq: 0,
            ack: self.seq_of(dst, src),
            window: 0,
        };
        self.keep(at, src, dst, transport, &[]);
    }

    /// A UDP datagram.
    pub(crate) fn udp(&mut self, at: Duration, (src, dst): (SocketAddr, SocketAddr), bytes: &[u8]) {
        if self.enabled {
            self.keep(at, src, dst, Transport::Udp, bytes);
        }
    }

    fn seq_of(&self, src: SocketAddr, dst: SocketAddr) -> u32 {
        (self.next_seq.get(&(src, dst)).copied()).unwrap_or_else(|| initial_seq(src, dst))
    }

    fn keep(
        &mut self,
        at: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        transport: Transport,
        payload: &[u8],
    ) {
        let full = self.segments.len() >= CAPTURE_MAX_SEGMENTS
            || self.payload_bytes + payload.len() > CAPTURE_MAX_PAYLOAD_BYTES;
        if full {
            self.dropped += 1;
            return;
        }
        self.payload_bytes += payload.len();
        self.segments.push(Segment {
            at,
            src,
            dst,
            transport,
            payload: payload.to_vec(),
        });
    }
}

/// A direction's initial sequence number: a fixed function of its two addresses (FNV-1a), so
/// the same run gives the same numbers, and the two directions differ.
fn initial_seq(src: SocketAddr, dst: SocketAddr) -> u32 {
    let text = format!("{src}>{dst}");
    (text.bytes()).fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:8000".parse().unwrap(),
        )
    }

    fn seq_ack(s: &Segment) -> (u32, u32) {
        match s.transport {
            Transport::Tcp { seq, ack, .. } => (seq, ack),
            Transport::Udp => panic!("a TCP segment"),
        }
    }

    #[test]
    fn sequence_numbers_count_each_directions_bytes_and_fins() {
        let (c, s) = pair();
        let mut cap = Capture::new(true);
        cap.syn(Duration::ZERO, (c, s), false, 65_535);
        cap.syn(Duration::ZERO, (s, c), true, 65_535);
        cap.tcp(Duration::ZERO, (c, s), TcpFlags::empty(), &[], 1 << 20);
        cap.tcp(Duration::ZERO, (c, s), TcpFlags::empty(), b"hello", 1 << 20);
        cap.tcp(Duration::ZERO, (s, c), TcpFlags::FIN, &[], 1 << 20);
        let segs = cap.segments();
        let (c_isn, _) = seq_ack(&segs[0]);
        let (s_isn, s_ack) = seq_ack(&segs[1]);
        assert_eq!(
            s_ack,
            c_isn.wrapping_add(1),
            "the SYN-ACK acknowledges the SYN"
        );
        assert_eq!(
            seq_ack(&segs[2]),
            (c_isn.wrapping_add(1), s_isn.wrapping_add(1))
        );
        assert_eq!(
            seq_ack(&segs[3]),
            (c_isn.wrapping_add(1), s_isn.wrapping_add(1))
        );
        assert_eq!(
            seq_ack(&segs[4]),
            (s_isn.wrapping_add(1), c_isn.wrapping_add(6))
        );
        assert_ne!(c_isn, s_isn, "the two directions start apart");
    }

    #[test]
    fn payloads_are_cut_at_the_mss_and_only_the_last_piece_has_fin() {
        let (c, s) = pair();
        let mut cap = Capture::new(true);
        let big = vec![7u8; LOOPBACK_MSS_BYTES + 10];
        cap.tcp(Duration::ZERO, (c, s), TcpFlags::FIN, &big, 0);
        let segs = cap.segments();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].payload.len(), LOOPBACK_MSS_BYTES);
        let flags = |s: &Segment| match s.transport {
            Transport::Tcp { flags, .. } => flags,
            Transport::Udp => TcpFlags::empty(),
        };
        assert!(!flags(&segs[0]).contains(TcpFlags::FIN));
        assert!(flags(&segs[1]).contains(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK));
    }

    #[test]
    fn a_capture_is_bounded_and_counts_what_it_drops() {
        let (c, s) = pair();
        let mut cap = Capture::new(true);
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..(CAPTURE_MAX_PAYLOAD_BYTES >> 20) + 3 {
            cap.udp(Duration::ZERO, (c, s), &chunk);
        }
        assert_eq!(cap.segments().len(), CAPTURE_MAX_PAYLOAD_BYTES >> 20);
        assert_eq!(cap.dropped(), 3);
        let mut off = Capture::new(false);
        off.udp(Duration::ZERO, (c, s), b"x");
        assert!(off.segments().is_empty());
    }
}
