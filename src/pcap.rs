//! A simulator's [`Capture`] as a pcap file that Wireshark and tshark read: Ethernet frames
//! (all-zero addresses, as Linux's loopback shows them) around IPv4 or IPv6 and TCP or UDP,
//! checksums computed, timestamps in virtual time from the Unix epoch.

use std::io::Write;
use std::net::SocketAddr;

use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::sim::capture::{
    Capture, LOOPBACK_MSS_BYTES, Segment, TcpFlags, Transport, WINDOW_SCALE_SHIFT,
};

/// The capture length per frame: the largest segment and its headers fit whole.
const SNAPLEN_BYTES: u32 = 262_144;
/// IP time to live, as Linux sets it by default (net.ipv4.ip_default_ttl).
const TTL: u8 = 64;

/// Writes every segment of `capture` to `out` as a pcap file. Segments the capture could not
/// keep (past its bounds) are missing; the caller names how many ([`Capture::dropped`]).
pub fn write(capture: &Capture, out: impl Write) -> Result<(), String> {
    let header = PcapHeader {
        snaplen: SNAPLEN_BYTES,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(out, header).map_err(|e| e.to_string())?;
    let mut frame = Vec::new();
    for segment in capture.segments() {
        frame.clear();
        encode(segment, &mut frame)?;
        let len = u32::try_from(frame.len()).map_err(|_| "a frame over 4 GiB".to_string())?;
        let packet = PcapPacket::new(segment.at, len, &frame);
        writer.write_packet(&packet).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes `capture` to a new pcap file at `path` ([`write()`]); an error names the file.
pub fn write_file(capture: &Capture, path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    write(capture, std::io::BufWriter::new(file))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// One segment as an Ethernet frame.
fn encode(s: &Segment, frame: &mut Vec<u8>) -> Result<(), String> {
    let link = PacketBuilder::ethernet2([0; 6], [0; 6]);
    let ip = match (s.src, s.dst) {
        (SocketAddr::V4(a), SocketAddr::V4(b)) => link.ipv4(a.ip().octets(), b.ip().octets(), TTL),
        (SocketAddr::V6(a), SocketAddr::V6(b)) => link.ipv6(a.ip().octets(), b.ip().octets(), TTL),
        _ => return Err(format!("{} to {}: one family per segment", s.src, s.dst)),
    };
    let written = match s.transport {
        Transport::Udp => ip.udp(s.src.port(), s.dst.port()).write(frame, &s.payload),
        Transport::Tcp {
            flags,
            seq,
            ack,
            window,
        } => ip
            .tcp_header(tcp_header(s, flags, seq, ack, window)?)
            .write(frame, &s.payload),
    };
    written.map_err(|e| format!("{} to {}: {e}", s.src, s.dst))
}

fn tcp_header(
    s: &Segment,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    window: u16,
) -> Result<TcpHeader, String> {
    let mut h = TcpHeader::new(s.src.port(), s.dst.port(), seq, window);
    h.syn = flags.contains(TcpFlags::SYN);
    h.fin = flags.contains(TcpFlags::FIN);
    h.rst = flags.contains(TcpFlags::RST);
    h.psh = flags.contains(TcpFlags::PSH);
    h.ack = flags.contains(TcpFlags::ACK);
    h.acknowledgment_number = ack;
    if h.syn {
        // What Linux's SYN announces on loopback: the MSS and a window scale.
        let mss = u16::try_from(LOOPBACK_MSS_BYTES).expect("the MSS fits a u16");
        h.set_options(&[
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(WINDOW_SCALE_SHIFT),
        ])
        .map_err(|e| e.to_string())?;
    }
    Ok(h)
}
