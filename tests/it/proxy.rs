//! `selectlab proxy` on real loopback sockets: every byte arrives, in order, in the cuts the
//! seed planned (the same seed, the same plan), and its limits hold.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::util;

use selectlab::proxy::cutter::{MAX_PIECE_BYTES, Profile};
use selectlab::proxy::{self, ProxyConfig, ProxyStats};

/// How long each proxy these tests start runs: it stops by itself.
const PROXY_LIFETIME: Duration = Duration::from_secs(3);

/// A transcript sink the test can read afterwards.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts a proxy to `to` in a thread; returns where it listens, its transcript and its end.
fn start(
    to: SocketAddr,
    seed: u64,
    max_connections: usize,
) -> (SocketAddr, Shared, thread::JoinHandle<ProxyStats>) {
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        to,
        seed,
        profile: Profile::Adversary,
        resets: false,
        max_connections,
        max_buffered_bytes: 1 << 20,
        run_for: Some(PROXY_LIFETIME),
    };
    let transcript = Shared::default();
    let sink = Box::new(transcript.clone());
    let (tx, rx) = mpsc::channel();
    let ran = thread::spawn(move || {
        proxy::run(&config, sink, |addr| tx.send(addr).unwrap()).expect("the proxy runs")
    });
    (rx.recv().unwrap(), transcript, ran)
}

/// An upstream that takes one connection and returns all it read.
fn sink_server() -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let read = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PROXY_LIFETIME)).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    });
    (addr, read)
}

/// The planned size of each piece written upstream, in order, from the transcript.
fn plan(transcript: &Shared) -> Vec<usize> {
    let text = String::from_utf8(transcript.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|l| l.split(" send(").nth(1))
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect()
}

/// Sends `payload` through a fresh proxy with `seed`; returns what arrived and the plan.
fn through(seed: u64, payload: &[u8]) -> (Vec<u8>, Vec<usize>, ProxyStats) {
    let (upstream, read) = sink_server();
    let (addr, transcript, ran) = start(upstream, seed, 4);
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(payload).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let arrived = read.join().unwrap();
    let stats = ran.join().unwrap();
    (arrived, plan(&transcript), stats)
}

#[test]
fn every_byte_arrives_in_order_in_the_pieces_the_seed_planned() {
    let payload: Vec<u8> = (0..512 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    // Three proxies at once (each runs its fixed lifetime).
    let runs: Vec<_> = [42, 42, 43]
        .into_iter()
        .map(|seed| {
            let payload = payload.clone();
            thread::spawn(move || through(seed, &payload))
        })
        .collect();
    let mut runs = runs.into_iter().map(|r| r.join().unwrap());
    let (arrived, first, stats) = runs.next().unwrap();
    let (again, second, _) = runs.next().unwrap();
    let (_, other, _) = runs.next().unwrap();
    assert_eq!(arrived, payload);
    assert_eq!(stats.bytes, payload.len() as u64);
    assert!(
        first.iter().any(|&p| p < 64),
        "small pieces were planned: {first:?}"
    );
    assert!(first.iter().all(|&p| (1..=MAX_PIECE_BYTES).contains(&p)));
    // The same seed plans the same pieces (a piece is cut shorter only where fewer bytes had
    // arrived, which the transcript shows as its result, not its plan).
    assert_eq!(again, payload);
    let common = first.len().min(second.len());
    assert!(common >= 4, "{first:?}");
    assert_eq!(first[..common], second[..common]);
    assert_ne!(
        first[..common.min(other.len())],
        other[..common.min(other.len())]
    );
}

#[test]
fn a_refusing_upstream_and_the_connection_limit_close_the_client_at_once() {
    let (_held, dead) = util::refusing_addr();
    let (addr, transcript, ran) = start(dead, 1, 1);
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(PROXY_LIFETIME)).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)), "closed");
    let stats = ran.join().unwrap();
    assert_eq!((stats.connections, stats.refused), (0, 1));
    let text = String::from_utf8(transcript.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("= ECONNREFUSED"), "{text}");

    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let (addr, _, ran) = start(upstream.local_addr().unwrap(), 1, 1);
    let _first = TcpStream::connect(addr).unwrap();
    let (_held, _) = upstream.accept().unwrap();
    let mut second = TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(PROXY_LIFETIME)).unwrap();
    assert!(matches!(second.read(&mut buf), Ok(0) | Err(_)), "closed");
    let stats = ran.join().unwrap();
    assert_eq!((stats.connections, stats.refused), (1, 1));
}
