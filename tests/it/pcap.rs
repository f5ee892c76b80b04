//! `--pcap`: the simulator's traffic as frames tshark reads. Every frame parses, every
//! checksum is right, TCP analysis finds no segment lost that the simulator did not drop, and
//! each followed TCP stream carries exactly the bytes the sends put in it.
//!
//! These tests need tshark (Debian's package; CI installs it) and say so when it is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{Fd, Kernel};
use selectlab::sim::decide::{Adversity, Decider};
use selectlab::sim::{Sim, SimConfig};

use crate::util::selectlab;

fn tshark() -> bool {
    // Asked once: each run of tshark spends about a second of CPU time loading its dissectors.
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let found = *FOUND.get_or_init(|| Command::new("tshark").arg("--version").output().is_ok());
    if !found {
        eprintln!("skipped: tshark is not installed (CI installs the Debian package tshark)");
    }
    found
}

/// tshark's fields for each frame matching `filter`, one line per frame.
fn frames(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-o", "tcp.check_checksum:TRUE"]);
    cmd.args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ]);
    cmd.args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The frames no correct capture may hold: malformed, a bad checksum, or a lost segment.
const BROKEN: &str = "_ws.malformed || _ws.expert.severity >= error || tcp.checksum.status == 0 \
                      || ip.checksum.status == 0 || udp.checksum.status == 0 \
                      || tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment";

/// One frame as tshark dissects it: the fields the tests ask about, each empty where the frame
/// has none.
struct Frame {
    stream: String,
    src_port: String,
    /// `tcp.flags.str`: a letter per flag set (`S`, `A`, `F`, `R`, ...).
    flags: String,
    /// `tcp.payload`: hex bytes joined by colons.
    payload: String,
    udp_length: String,
}

impl Frame {
    fn has(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }
}

/// Every frame of `pcap`, from one run of tshark: a run spends about a second of CPU time
/// loading its dissectors, so a test reads its capture once and asks its questions here.
fn dissect(pcap: &Path) -> Vec<Frame> {
    let fields = [
        "tcp.stream",
        "tcp.srcport",
        "tcp.flags.str",
        "tcp.payload",
        "udp.length",
    ];
    frames(pcap, "frame", &fields)
        .iter()
        .map(|line| {
            let mut cols = line.split('\t').map(str::to_string);
            let mut next = || cols.next().unwrap_or_default();
            Frame {
                stream: next(),
                src_port: next(),
                flags: next(),
                payload: next(),
                udp_length: next(),
            }
        })
        .collect()
}

/// The flags of every TCP frame, in order.
fn tcp_flags(frames: &[Frame]) -> Vec<&str> {
    (frames.iter().filter(|f| !f.flags.is_empty()))
        .map(|f| f.flags.as_str())
        .collect()
}

/// How many frames open a connection (a SYN without an ACK).
fn syns(frames: &[Frame]) -> usize {
    frames.iter().filter(|f| f.has('S') && !f.has('A')).count()
}

/// Each direction's payload per TCP stream, as tshark reassembles them (by stream index and
/// sending port).
fn streams(frames: &[Frame]) -> BTreeMap<(u32, u16), Vec<u8>> {
    let mut out: BTreeMap<(u32, u16), Vec<u8>> = BTreeMap::new();
    for frame in frames.iter().filter(|f| !f.payload.is_empty()) {
        let stream: u32 = frame.stream.parse().unwrap();
        let port: u16 = frame.src_port.parse().unwrap();
        let hex = frame.payload.replace(':', "");
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
        out.entry((stream, port)).or_default().extend(bytes);
    }
    out
}

fn port(sim: &mut Sim, fd: Fd) -> u16 {
    match sim.getsockname(fd).expect("a name") {
        SockAddr::Inet(a) => a.port(),
        other => panic!("an IP socket, not {other:?}"),
    }
}

/// Connections over IPv4 and IPv6 under the adversary's short writes and resets: bytes both
/// ways, then a close (an unread close resets). Returns, per sending port, what its sends
/// accepted.
fn run(sim: &mut Sim, seed: u64) -> BTreeMap<u16, Vec<u8>> {
    let mut sent: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut pairs = Vec::new();
    for family in [Family::Inet, Family::Inet6, Family::Inet] {
        let (a, b) = selectlab::endpoints::tcp_pair(sim, family).expect("a pair");
        pairs.push((a, b, port(sim, a), port(sim, b)));
    }
    let mut buf = vec![0u8; 70_000];
    for round in 0..40u64 {
        for (i, &(a, b, pa, pb)) in pairs.iter().enumerate() {
            let (from, to, from_port) = if (round + i as u64).is_multiple_of(3) {
                (b, a, pb)
            } else {
                (a, b, pa)
            };
            // Sizes up to past the MSS, so a send is cut into several segments.
            let len = ((seed * 31 + round * 977 + i as u64 * 13) % 70_000) as usize + 1;
            let data: Vec<u8> = (0..len).map(|j| (j as u64 ^ round ^ seed) as u8).collect();
            if let Ok(n) = sim.send(from, &data) {
                sent.entry(from_port).or_default().extend(&data[..n]);
            }
            let _ = sim.recv(to, &mut buf);
        }
    }
    for (a, b, _, _) in pairs {
        let _ = sim.close(a);
        let _ = sim.close(b);
    }
    // A UDP exchange too.
    let (u, v) = selectlab::endpoints::udp_pair(sim, Family::Inet).expect("a udp pair");
    for text in [&b"one"[..], b"two", b""] {
        sim.send(u, text).expect("a datagram");
        let _ = sim.recv(v, &mut buf);
    }
    sent
}

#[test]
fn every_frame_parses_and_each_stream_carries_what_the_sends_accepted() {
    if !tshark() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    for seed in 1..=3 {
        let adversity = Adversity {
            short_io_per_mille: 400,
            reset_per_mille: 15,
            ..Adversity::NONE
        };
        let config = SimConfig {
            capture: true,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(config, Decider::seeded(seed, adversity));
        let sent = run(&mut sim, seed);
        let path = dir.path().join(format!("run{seed}.pcap"));
        let file = std::fs::File::create(&path).expect("a pcap file");
        selectlab::pcap::write(sim.capture(), file).expect("written");

        let broken = frames(&path, BROKEN, &["frame.number", "_ws.expert.message"]);
        assert!(
            broken.is_empty(),
            "seed {seed}: {} frames flagged, first: {:?}",
            broken.len(),
            broken.first()
        );
        let dissected = dissect(&path);
        let wire: BTreeMap<u16, Vec<u8>> = (streams(&dissected).into_iter())
            .map(|((_, port), bytes)| (port, bytes))
            .collect();
        let sent_nonempty: BTreeMap<u16, Vec<u8>> =
            sent.into_iter().filter(|(_, b)| !b.is_empty()).collect();
        assert_eq!(
            wire.keys().collect::<Vec<_>>(),
            sent_nonempty.keys().collect::<Vec<_>>()
        );
        for (port, bytes) in &sent_nonempty {
            assert!(
                wire[port] == *bytes,
                "seed {seed}: the stream from port {port} differs"
            );
        }
        let handshakes = (dissected.iter()).filter(|f| f.has('S') && f.has('A'));
        assert_eq!(handshakes.count(), 3, "one SYN-ACK per connection");
        let udp: Vec<&str> = (dissected.iter().map(|f| f.udp_length.as_str()))
            .filter(|length| !length.is_empty())
            .collect();
        assert_eq!(udp, ["11", "11", "8"], "three datagrams, the last empty");
        if seed == 1 {
            let resets = dissected.iter().filter(|f| f.has('R'));
            assert!(resets.count() > 0, "an unread close resets the connection");
        }
    }
}

#[test]
fn a_refused_connect_is_a_syn_answered_by_a_reset() {
    if !tshark() {
        return;
    }
    let config = SimConfig {
        capture: true,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config, Decider::faithful());
    let fd = sim
        .socket(Family::Inet, SockType::Stream)
        .expect("a socket");
    let nobody: SockAddr = SockAddr::Inet("127.0.0.1:9".parse().unwrap());
    let _ = sim.connect(fd, &nobody);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("refused.pcap");
    selectlab::pcap::write(sim.capture(), std::fs::File::create(&path).unwrap()).unwrap();
    let dissected = dissect(&path);
    let flags = tcp_flags(&dissected);
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        flags[0].contains('S') && flags[1].contains('R') && flags[1].contains('A'),
        "{flags:?}"
    );
}

#[test]
fn sim_pcap_writes_the_programs_traffic() {
    if !tshark() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let pcap = dir.path().join("sim.pcap");
    let html = dir.path().join("sim.html");
    let status = Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(["sim", "--clients", "3", "--lines", "2", "--pcap"])
        .arg(&pcap)
        .arg("--html")
        .arg(&html)
        .args([
            "--",
            crate::util::python3(),
            "-S",
            "tests/fixtures/chat_server.py",
        ])
        .output()
        .expect("selectlab runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(frames(&pcap, BROKEN, &["frame.number"]).is_empty());
    assert_eq!(syns(&dissect(&pcap)), 3, "one SYN per client");
    let page = std::fs::read_to_string(&html).expect("the page");
    assert!(
        page.contains(r#"data-lanes="4""#),
        "the program and three clients"
    );
}

#[test]
fn demo_and_scenario_write_their_traffic_and_their_page() {
    if !tshark() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let run = selectlab(&[
        "demo",
        "--adversary",
        "--seed",
        "3",
        "--pcap",
        &path("demo.pcap"),
        "--html",
        &path("demo.html"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let demo = Path::new(&path("demo.pcap")).to_path_buf();
    assert!(frames(&demo, BROKEN, &["frame.number"]).is_empty());
    let fins = dissect(&demo).iter().filter(|f| f.has('F')).count();
    assert_eq!(fins, 3, "each of the three clients exits: one FIN each");
    let page = std::fs::read_to_string(path("demo.html")).unwrap();
    assert!(page.contains(r#"data-lanes="4""#) && !page.contains(r#"data-arrows="0""#));

    let script = "tests/scenarios/09-rdhup-on-close.scn";
    let run = selectlab(&[
        "scenario",
        "--transport",
        "sim",
        "--pcap",
        &path("s.pcap"),
        script,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let dissected = dissect(Path::new(&path("s.pcap")));
    let flags = tcp_flags(&dissected);
    assert!(
        flags.iter().any(|f| f.contains('F')),
        "the close sends a FIN: {flags:?}"
    );
    assert!(
        flags.iter().any(|f| f.contains('R')),
        "data to a closed peer is reset: {flags:?}"
    );
    let two = selectlab(&["scenario", "--pcap", &path("x.pcap"), script, script]);
    assert_eq!(two.status.code(), Some(2), "one script per capture");
    let lt = selectlab(&["demo", "lt-vs-et", "--html", &path("lt.html")]);
    assert_eq!(
        lt.status.code(),
        Some(2),
        "the real-kernel demo has nothing simulated to draw"
    );
}

#[test]
fn check_sim_draws_and_captures_its_shrunk_counterexample() {
    if !tshark() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let pcap = dir.path().join("cx.pcap");
    let html = dir.path().join("cx.html");
    let run = selectlab(&[
        "check",
        "--sim",
        "--only",
        "slow-reader",
        "--pcap",
        pcap.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--",
        crate::util::python3(),
        "-S",
        "tests/tutorial/selectserver.py",
        "127.0.0.1",
        "0",
    ]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        report.contains("pcap: the shrunk case's traffic"),
        "{report}"
    );
    assert!(frames(&pcap, BROKEN, &["frame.number"]).is_empty());
    assert_eq!(syns(&dissect(&pcap)), 3, "the shrunk case's three clients");
    let page = std::fs::read_to_string(&html).expect("the page");
    assert!(
        page.contains("class=\"ev k-") && page.contains(" failure\""),
        "the failure is marked"
    );
}
