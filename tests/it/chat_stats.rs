//! The server's counters count what happened (found by cargo-mutants: `+=` to `*=` survived in
//! every counter).

use selectlab::kernel::Mode;
use selectlab::readiness::{BACKEND_MODES, Backend};
use selectlab::session::{Outcome, Session, SessionConfig, Step};
use selectlab::sim::decide::{Adversity, Decider};

fn run(backend: Backend, mode: Mode, decide: Decider, steps: &[Step]) -> Outcome {
    let config = SessionConfig {
        backend,
        mode,
        decide,
        ..SessionConfig::default()
    };
    Session::new(config)
        .expect("server starts")
        .run(steps)
        .expect("session settles")
}

#[test]
fn bytes_sends_and_joins_are_counted_exactly() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Say(0, b"hello".to_vec()),
        Step::Say(1, b"hi there".to_vec()),
    ];
    for (backend, mode) in BACKEND_MODES {
        let o = run(backend, mode, Decider::faithful(), &steps);
        let heard: usize = o
            .clients
            .iter()
            .flat_map(|c| &c.lines)
            .map(|l| l.len() + 1)
            .sum();
        let s = o.stats;
        let what = format!("{backend} {mode:?}: {s:?}");
        assert_eq!(s.bytes_in, 6 + 9, "{what}");
        assert_eq!(s.bytes_out, heard as u64, "{what}");
        assert_eq!(s.joined, 3, "{what}");
        assert!(
            s.events >= 5,
            "{what}: three arrivals and two lines were events"
        );
        // One send per recipient per event: c2's and c3's arrivals (1 + 2), two lines (2 + 2).
        assert_eq!(s.sends, 7, "{what}");
        assert_eq!(
            s.empty_reads, 0,
            "{what}: faithful Linux has no wasted wakeups"
        );
    }
}

#[test]
fn spurious_wakeups_are_counted_as_empty_reads() {
    let spurious = Adversity {
        spurious_per_mille: 300,
        ..Adversity::NONE
    };
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Say(0, b"hello".to_vec()),
    ];
    let o = run(
        Backend::Poll,
        Mode::LEVEL,
        Decider::seeded(7, spurious),
        &steps,
    );
    assert!(o.stats.empty_reads > 0, "{:?}", o.stats);
}

/// Found by cargo-mutants: stopping twice is stopping once.
#[test]
fn the_server_goes_away_once() {
    let o = run(
        Backend::Poll,
        Mode::LEVEL,
        Decider::faithful(),
        &[Step::Join(0), Step::StopServer, Step::StopServer],
    );
    assert_eq!(
        o.transcript.matches("the server goes away").count(),
        1,
        "{}",
        o.transcript
    );
}

/// Found by cargo-mutants (mio#845's shape): more connections than one event's accept budget
/// arrive at once; under edge triggering the listener must be re-armed, or the rest wait for
/// ever.
#[test]
fn a_crowd_larger_than_the_accept_budget_is_admitted_under_every_mode() {
    let crowd = selectlab::chat::serve::MAX_ACCEPTS_PER_EVENT + 6;
    for (backend, mode) in BACKEND_MODES {
        let o = run(backend, mode, Decider::faithful(), &[Step::Crowd(crowd)]);
        assert_eq!(o.stats.joined, crowd as u64, "{backend} {mode:?}");
    }
}

/// The soft limit of the back-pressure test.
const SOFT_BYTES: usize = 64 * 1024;

/// Found by cargo-mutants: while a queue is over the soft limit the server reads no input at
/// all (back-pressure), so what a flooding client sends waits in its socket.
#[test]
fn over_the_soft_limit_the_server_stops_reading() {
    let limits = selectlab::chat::server::Limits {
        outbound_soft_bytes: SOFT_BYTES,
        ..Default::default()
    };
    let mut session = Session::new(SessionConfig {
        limits,
        ..SessionConfig::default()
    })
    .unwrap();
    let line = [vec![b'f'; 999], vec![b'\n']].concat();
    let flood = line.repeat(1000);
    for step in [
        Step::Join(0),
        Step::Join(1),
        Step::StopReading(0),
        Step::Raw(1, flood.clone()),
    ] {
        session.step(&step).unwrap();
    }
    let read = session.stats().bytes_in;
    assert!(session.stats().read_pauses >= 1);
    // It stops in the very read that took it over the limit: one chunk past it at most.
    let chunk = selectlab::chat::serve::READ_CHUNK_BYTES as u64;
    assert!(
        read <= SOFT_BYTES as u64 + chunk,
        "the server read {read} of {} bytes while it should have paused",
        flood.len()
    );
}

/// Found by cargo-mutants: a one-shot registration re-armed after a send that filled the socket
/// must keep its OUT interest, or the rest of the queue never leaves.
#[test]
fn a_paused_reader_gets_everything_after_it_resumes_under_every_mode() {
    // More than the socket holds for the paused reader, less than the soft limit.
    let lines: Vec<Step> = (0..400)
        .map(|i| Step::Say(1, format!("{i:04} {}", "y".repeat(990)).into_bytes()))
        .collect();
    for (backend, mode) in BACKEND_MODES {
        let mut steps = vec![Step::Join(0), Step::Join(1), Step::Pause(0)];
        steps.extend(lines.iter().cloned());
        steps.push(Step::Resume(0));
        let o = run(backend, mode, Decider::faithful(), &steps);
        let heard = o.clients[0]
            .lines
            .iter()
            .filter(|l| l.ends_with(b"yyyy"))
            .count();
        assert_eq!(heard, lines.len(), "{backend} {mode:?}");
    }
}

/// Found by cargo-mutants (the baseline's `on_timer` survivor): after accept fails with EMFILE
/// the listener pauses, and its timer must resume it, so a client that waited in the backlog is
/// admitted once a descriptor is free.
#[test]
fn after_emfile_the_listener_resumes_and_the_waiting_client_gets_in() {
    for (backend, mode) in BACKEND_MODES {
        let config = SessionConfig {
            backend,
            mode,
            // The listener, epoll's descriptor (if any), then each client's socket and its
            // accepted twin: c3's socket fits, its accepted twin does not.
            fd_limit: if backend == Backend::Epoll { 7 } else { 6 },
            ..SessionConfig::default()
        };
        let steps = [
            Step::Crowd(3),
            Step::Exit(0),
            Step::Sleep(selectlab::chat::serve::ACCEPT_BACKOFF * 2),
            Step::Say(2, b"let in at last".to_vec()),
        ];
        let o = Session::new(config).unwrap().run(&steps).unwrap();
        assert!(
            o.transcript.contains("EMFILE"),
            "{backend} {mode:?}\n{}",
            o.transcript
        );
        assert_eq!(o.stats.joined, 3, "{backend} {mode:?}\n{}", o.transcript);
        assert!(
            o.clients[1]
                .lines
                .iter()
                .any(|l| l.ends_with(b"let in at last")),
            "{backend} {mode:?}\n{}",
            o.transcript
        );
    }
}

/// A room held for c1, which stopped reading while c2 flooded it, then `then`.
fn held_room(then: &[Step]) -> Outcome {
    let limits = selectlab::chat::server::Limits {
        outbound_soft_bytes: SOFT_BYTES,
        slow_consumer_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let line = [vec![b'f'; 999], vec![b'\n']].concat();
    let mut steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::StopReading(0),
        Step::Raw(1, line.repeat(500)),
    ];
    steps.extend_from_slice(then);
    Session::new(SessionConfig {
        limits,
        ..SessionConfig::default()
    })
    .unwrap()
    .run(&steps)
    .unwrap()
}

/// Found by cargo-mutants: a session that ends with the room held for a slow reader waits out
/// the slow-consumer timeout once (with a second to spare), not in short steps.
#[test]
fn a_held_room_is_let_go_in_one_wait() {
    let o = held_room(&[]);
    assert_eq!(
        o.transcript
            .matches("the room waits for a slow reader")
            .count(),
        1,
        "{}",
        o.transcript
    );
    assert!(o.transcript.contains("slow consumer"), "{}", o.transcript);
}

/// Found by cargo-mutants (the read budget as 256 + 1024 bytes survived): one event reads a
/// client that keeps sending for up to 256 KiB, in as many recv calls as that takes, then
/// stops so the others get a turn. A mebibyte sent in one go takes four read events: not one
/// per recv (sixteen, and as many wake-ups), and not one in all.
#[test]
fn a_client_that_keeps_sending_is_read_a_quarter_mebibyte_per_event() {
    let total = 1 << 20;
    let line = [vec![b'q'; 1023], vec![b'\n']].concat();
    let steps = [Step::Join(0), Step::Raw(0, line.repeat(total / line.len()))];
    for (backend, mode) in BACKEND_MODES {
        let o = run(backend, mode, Decider::faithful(), &steps);
        let what = format!("{backend} {mode:?}: {:?}", o.stats);
        assert_eq!(o.stats.bytes_in, total as u64, "{what}");
        // The accept, then the reads; edge triggering takes up to two more looks (the
        // wake-up that finds the socket drained, and the re-poll after a spent budget).
        let reads = o.stats.events - 1;
        let most = if mode.edge { 6 } else { 4 };
        assert!((4..=most).contains(&reads), "{reads} read events; {what}");
    }
}

/// A server that went away while it held the room has nothing left to let go: the session
/// ends without waiting out the slow-consumer timeout.
#[test]
fn a_stopped_server_is_not_waited_for() {
    let o = held_room(&[Step::StopServer]);
    assert!(o.stats.read_pauses >= 1, "{}", o.transcript);
    assert!(
        !o.transcript.contains("the room waits for a slow reader"),
        "{}",
        o.transcript
    );
}
