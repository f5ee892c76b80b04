//! The chat client in the simulator: what it sends of what is typed, how it waits for a full
//! socket, and where it gives up. These pin the client's limits and its write-interest
//! bookkeeping (found by cargo-mutants: nothing tested them).

use std::io::{self, Write};
use std::time::Duration;

use nix::errno::Errno;
use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::chat::client::{ChatClientApp, Ending, MAX_INPUT_LINE_BYTES, MAX_OUTBOX_BYTES};
use selectlab::chat::serve::listen;
use selectlab::kernel::{Fd, Kernel};
use selectlab::reactor::Reactor;
use selectlab::readiness::Backend;
use selectlab::sim::Sim;

/// The client's line limit as `docs/src/commands.md` documents it.
const LINE_LIMIT_BYTES: usize = 65_536;

/// Turns any one helper below may take: far more than any of them needs.
const MAX_TURNS: usize = 100_000;

/// Everything the client prints, one entry per `write` call.
#[derive(Default)]
struct Printed(Vec<Vec<u8>>);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Printed {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.concat()).into_owned()
    }
}

/// The client's ends: its socket and standard input, and the test's ends: the server's
/// accepted socket and the typist's end of the pipe.
struct Ends {
    sock: Fd,
    stdin: Fd,
    server_side: Fd,
    typist: Fd,
}

fn connected(sim: &mut Sim) -> Ends {
    let addr = SockAddr::Inet("127.0.0.1:4000".parse().unwrap());
    let listener = listen(sim, &addr, 8).unwrap();
    let sock = sim.socket(Family::Inet, SockType::Stream).unwrap();
    match sim.connect(sock, &addr) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => panic!("connect: {e}"),
    }
    let (server_side, _) = sim.accept(listener).unwrap();
    let (stdin, typist) = sim.pipe().unwrap();
    Ends {
        sock,
        stdin,
        server_side,
        typist,
    }
}

/// A simulator with a connected client's ends and a poll reactor for the client.
fn rig() -> (Sim, Ends, Reactor) {
    let mut sim = Sim::faithful();
    let ends = connected(&mut sim);
    let reactor = Reactor::new(&mut sim, Backend::Poll).unwrap();
    (sim, ends, reactor)
}

/// Types `bytes` into the client's standard input, turning the client until it has read all
/// of them (or has ended).
fn type_in(
    sim: &mut Sim,
    reactor: &mut Reactor,
    app: &mut ChatClientApp<'_>,
    typist: Fd,
    bytes: &[u8],
) {
    let mut rest = bytes;
    for _ in 0..MAX_TURNS {
        if !rest.is_empty() {
            match sim.send(typist, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EAGAIN) => {}
                Err(e) => panic!("typing: {e}"),
            }
        }
        let turn = reactor.turn(sim, app, Some(Duration::ZERO)).unwrap();
        if app.ending().is_some() || (rest.is_empty() && turn.events == 0) {
            return;
        }
    }
    panic!("the client did not read what was typed in {MAX_TURNS} turns");
}

/// Everything the server's side can read now.
fn drain(sim: &mut Sim, fd: Fd) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sim.recv(fd, &mut buf) {
            Ok(0) | Err(Errno::EAGAIN) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("server recv: {e}"),
        }
    }
}

/// Types lines of `line_bytes` (plus `\n`) until the server's socket is full and the client
/// holds some of them back; the server reads nothing meanwhile.
fn fill_the_socket(sim: &mut Sim, reactor: &mut Reactor, app: &mut ChatClientApp<'_>, typist: Fd) {
    let line = [vec![b'f'; 1000], vec![b'\n']].concat();
    for _ in 0..MAX_TURNS {
        if app.queued_bytes() > 0 {
            return;
        }
        type_in(sim, reactor, app, typist, &line);
    }
    panic!("the socket never filled");
}

#[test]
fn exit_ends_the_client_and_nothing_typed_after_it_is_sent() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    type_in(
        &mut sim,
        &mut reactor,
        &mut app,
        ends.typist,
        b"a\n Exit \nb\n",
    );
    assert_eq!(app.ending(), Some(Ending::ByeBye));
    assert_eq!(drain(&mut sim, ends.server_side), b"a\n");
    drop(app);
    assert_eq!(printed.text(), "ByeBye~~\n");
}

#[test]
fn a_line_of_the_limit_is_sent_and_a_longer_one_is_dropped_whole() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    // The documented limit (docs/src/commands.md: lines up to 64 KiB), not merely whatever the
    // constant says.
    assert_eq!(MAX_INPUT_LINE_BYTES, LINE_LIMIT_BYTES);
    let longest = [vec![b'x'; LINE_LIMIT_BYTES], vec![b'\n']].concat();
    // Longer than the limit by more than one read, and followed in the same write by a line.
    let too_long = [
        vec![b'y'; MAX_INPUT_LINE_BYTES + 20_000],
        b"\nafter\n".to_vec(),
    ]
    .concat();
    let mut heard = Vec::new();
    for typed in [&longest[..], &too_long] {
        type_in(&mut sim, &mut reactor, &mut app, ends.typist, typed);
        heard.extend(drain(&mut sim, ends.server_side));
    }
    for _ in 0..MAX_TURNS {
        if app.queued_bytes() == 0 {
            break;
        }
        reactor
            .turn(&mut sim, &mut app, Some(Duration::ZERO))
            .unwrap();
        heard.extend(drain(&mut sim, ends.server_side));
    }
    assert_eq!(app.ending(), None);
    assert_eq!(
        heard,
        [&longest[..], b"after\n"].concat(),
        "no y, not even its tail"
    );
    drop(app);
    assert_eq!(
        printed.text(),
        format!("(line longer than {MAX_INPUT_LINE_BYTES} bytes not sent)\n")
    );
}

#[test]
fn what_the_server_sends_is_printed_in_reads_of_16_kib() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    let said = vec![b's'; 16 * 1024 + 1];
    assert_eq!(sim.send(ends.server_side, &said), Ok(said.len()));
    for _ in 0..4 {
        reactor
            .turn(&mut sim, &mut app, Some(Duration::ZERO))
            .unwrap();
    }
    drop(app);
    let sizes: Vec<usize> = printed.0.iter().map(Vec::len).collect();
    assert_eq!(sizes, [16 * 1024, 1]);
}

#[test]
fn a_full_socket_is_waited_out_and_then_no_longer_watched() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    fill_the_socket(&mut sim, &mut reactor, &mut app, ends.typist);
    let mut heard = 0;
    // Nothing more is typed: only write readiness can move the held-back bytes.
    for _ in 0..MAX_TURNS {
        heard += drain(&mut sim, ends.server_side).len();
        if app.queued_bytes() == 0 {
            break;
        }
        reactor
            .turn(&mut sim, &mut app, Some(Duration::ZERO))
            .unwrap();
    }
    heard += drain(&mut sim, ends.server_side).len();
    assert_eq!(
        app.queued_bytes(),
        0,
        "the client flushed when the socket had room"
    );
    assert_eq!(heard % 1001, 0, "whole lines, {heard} bytes");
    // With nothing queued, a level-triggered OUT interest would report at every wait.
    let turn = reactor
        .turn(&mut sim, &mut app, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(
        turn.events, 0,
        "the client still watches an empty outbox's socket"
    );
    assert_eq!(app.ending(), None);
    // Found by cargo-mutants (the interest after the flush lost IN): it still hears the room.
    assert_eq!(sim.send(ends.server_side, b"still here\n"), Ok(11));
    reactor
        .turn(&mut sim, &mut app, Some(Duration::ZERO))
        .unwrap();
    drop(app);
    assert!(
        printed.text().ends_with("still here\n"),
        "{}",
        printed.text()
    );
}

#[test]
fn the_client_gives_up_one_byte_past_its_outbox_limit_and_not_before() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    fill_the_socket(&mut sim, &mut reactor, &mut app, ends.typist);
    // The server reads nothing: every typed byte now stays in the outbox.
    let mut room = MAX_OUTBOX_BYTES - app.queued_bytes();
    let line = [vec![b'q'; 999], vec![b'\n']].concat();
    while room >= line.len() {
        type_in(&mut sim, &mut reactor, &mut app, ends.typist, &line);
        room -= line.len();
    }
    let last = [vec![b'r'; room - 1], vec![b'\n']].concat();
    type_in(&mut sim, &mut reactor, &mut app, ends.typist, &last);
    assert_eq!(app.queued_bytes(), MAX_OUTBOX_BYTES);
    assert_eq!(app.ending(), None, "at the limit the client still waits");
    type_in(&mut sim, &mut reactor, &mut app, ends.typist, b"\n");
    assert_eq!(app.ending(), Some(Ending::ServerGone));
    drop(app);
    assert!(
        printed
            .text()
            .contains("the server is not reading; giving up")
    );
}

/// Found by cargo-mutants: when a flush finds the connection reset, the client ends there,
/// once; it does not go on to read the dead socket and end a second time.
#[test]
fn a_reset_found_while_flushing_ends_the_client_once() {
    let (mut sim, ends, mut reactor) = rig();
    let mut printed = Printed::default();
    let mut app = ChatClientApp::new(
        &mut reactor.io(&mut sim),
        ends.stdin,
        ends.sock,
        &mut printed,
    )
    .unwrap();
    fill_the_socket(&mut sim, &mut reactor, &mut app, ends.typist);
    // Unread bytes make the close a reset.
    sim.close(ends.server_side).unwrap();
    for _ in 0..10 {
        if app.ending().is_some() {
            break;
        }
        reactor
            .turn(&mut sim, &mut app, Some(Duration::ZERO))
            .unwrap();
    }
    assert_eq!(app.ending(), Some(Ending::ServerGone));
    drop(app);
    let text = printed.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("connection to the server failed"),
        "{text}"
    );
}
