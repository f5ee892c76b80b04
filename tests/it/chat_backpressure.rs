//! The slow-consumer rules at their exact boundaries (found by cargo-mutants: `>` as `>=` or
//! `==` at the soft limit and at half of it survived, and so did the slow-consumer timer
//! re-arming an accept that EMFILE had paused).
//!
//! A client holds the room back while its queue is *above* the soft limit, or above half of it
//! while input is paused. The tests build queues of exactly those sizes: a client that stopped
//! reading has a socket that takes a fixed number of bytes (measured first, in the same room),
//! and what does not fit stays queued.

use std::time::Duration;

use selectlab::chat::server::Limits;
use selectlab::readiness::Backend;
use selectlab::session::{Outcome, Session, SessionConfig, Step};

/// The soft limit of these rooms.
const SOFT_BYTES: usize = 40_000;
/// How long a client may hold the room back here.
const TIMEOUT: Duration = Duration::from_millis(1_050);

fn limits() -> Limits {
    Limits {
        max_line_bytes: 100_000,
        outbound_soft_bytes: SOFT_BYTES,
        slow_consumer_timeout: TIMEOUT,
        ..Limits::default()
    }
}

fn run(config: SessionConfig, steps: &[Step]) -> Outcome {
    Session::new(config)
        .expect("server starts")
        .run(steps)
        .expect("session settles")
}

fn run_room(limits: Limits, steps: &[Step]) -> Outcome {
    let config = SessionConfig {
        limits,
        ..SessionConfig::default()
    };
    run(config, steps)
}

/// A line whose broadcast form (prefix, text, newline) is `total` bytes long; `overhead` is
/// the prefix and newline.
fn line_of(speaker: usize, total: usize, overhead: usize) -> Step {
    Step::Say(speaker, vec![b'x'; total - overhead])
}

/// What a broadcast line adds to its text, and how many bytes a reader that stopped reading
/// takes into its socket before the rest stays queued: measured in the room `setup` builds,
/// with lines from `speaker` to `hearers` readers that all stopped reading.
fn measure(setup: &[Step], speaker: usize, hearers: usize) -> (usize, usize) {
    // A soft limit nothing here reaches: no pause, no departure notice in the count.
    let unlimited = Limits {
        outbound_soft_bytes: 1 << 20,
        ..limits()
    };
    let sent = |text_bytes: usize| {
        let mut steps = setup.to_vec();
        steps.push(Step::Say(speaker, vec![b'x'; text_bytes]));
        let before = run_room(unlimited, setup).stats.bytes_out;
        let bytes = run_room(unlimited, &steps).stats.bytes_out - before;
        bytes / hearers as u64
    };
    let overhead = sent(100) as usize - 100;
    // Far more than any socket takes.
    let absorbed = sent(90_000) as usize;
    assert!(
        absorbed < 90_000 / 2 && absorbed > overhead,
        "a stopped reader's socket took {absorbed} bytes"
    );
    (overhead, absorbed)
}

/// The clients (by their server-side name) the server dropped as slow consumers, and when
/// (virtual seconds).
fn dropped(o: &Outcome) -> Vec<(String, f64)> {
    (o.transcript.lines())
        .filter(|l| l.contains("disconnected: slow consumer"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("server: ")?;
            let (peer, _) = rest.split_once(')')?;
            Some((format!("{peer})"), stamp(l)))
        })
        .collect()
}

/// The virtual time a transcript line starts with: `[  1.050] ...`.
fn stamp(line: &str) -> f64 {
    let inside = line.trim_start_matches('[').split(']').next().unwrap_or("");
    inside.trim().parse().expect("a time stamp")
}

fn peer(n: usize) -> String {
    format!("('127.0.0.1', {})", 32768 + n)
}

/// A queue of exactly the soft limit is not above it: with input still flowing, nobody is
/// held or dropped. One byte more and the reader is dropped after the timeout.
#[test]
fn a_queue_of_exactly_the_soft_limit_holds_nothing_back() {
    let setup = [Step::Join(0), Step::Join(1), Step::StopReading(0)];
    let (overhead, absorbed) = measure(&setup, 1, 1);
    let first_queued = 10_000;
    for extra in [0, 1] {
        let mut steps = setup.to_vec();
        // Fills c1's socket and leaves `first_queued` bytes queued, under the soft limit.
        steps.push(line_of(1, absorbed + first_queued, overhead));
        // Brings the queue to the soft limit (plus `extra`); the socket takes nothing more.
        steps.push(line_of(1, SOFT_BYTES - first_queued + extra, overhead));
        steps.push(Step::Sleep(TIMEOUT * 2));
        let o = run_room(limits(), &steps);
        let want = if extra == 0 {
            vec![]
        } else {
            vec![(peer(0), TIMEOUT.as_secs_f64())]
        };
        assert_eq!(dropped(&o), want, "{extra} over\n{}", o.transcript);
    }
}

/// While input is paused, a queue of exactly half the soft limit does not keep it paused:
/// only the client above it is held and dropped.
#[test]
fn while_input_is_paused_a_queue_of_exactly_half_the_soft_limit_is_not_held() {
    // c1 and c3 stop reading; c2 speaks to both, then c3 speaks to c1 (never to itself).
    let setup = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::StopReading(0),
        Step::StopReading(2),
    ];
    let (overhead, absorbed) = measure(&setup, 1, 2);
    let half = SOFT_BYTES / 2;
    for extra in [0, 1] {
        let mut steps = setup.to_vec();
        // c1 and c3 each keep exactly half the soft limit (plus `extra`) queued.
        steps.push(line_of(1, absorbed + half + extra, overhead));
        // c1's queue goes above the soft limit: input pauses.
        steps.push(line_of(2, half + 1, overhead));
        steps.push(Step::Sleep(TIMEOUT * 2));
        let o = run_room(limits(), &steps);
        // Those held from the start go when their time is up. (c1's departure notice then
        // takes c3 over half the limit, so c3 is dropped a timeout later in any case.)
        let first: Vec<String> = (dropped(&o).into_iter())
            .filter(|(_, at)| *at == TIMEOUT.as_secs_f64())
            .map(|(who, _)| who)
            .collect();
        let mut want = vec![peer(0)];
        if extra == 1 {
            want.push(peer(2));
        }
        assert_eq!(first, want, "{extra} over half\n{}", o.transcript);
    }
}

/// When (in virtual seconds) the transcript first shows `needle`.
fn when(o: &Outcome, needle: &str) -> f64 {
    let line = (o.transcript.lines().find(|l| l.contains(needle)))
        .unwrap_or_else(|| panic!("no {needle:?} in\n{}", o.transcript));
    stamp(line)
}

/// After EMFILE the listener waits for its own backoff timer; the slow-consumer timer, firing
/// meanwhile, does not resume it early. The client that waited gets in at the first backoff
/// tick after a descriptor came free, not at once.
#[test]
fn only_the_backoff_timer_resumes_a_listener_paused_by_emfile() {
    let config = SessionConfig {
        backend: Backend::Poll,
        limits: limits(),
        // The listener, then each client's socket and its accepted twin: c3's socket fits,
        // its accepted twin does not.
        fd_limit: 6,
        ..SessionConfig::default()
    };
    let steps = [
        Step::Crowd(3),
        Step::StopReading(0),
        Step::Say(1, vec![b'x'; SOFT_BYTES * 2]),
        Step::Sleep(TIMEOUT * 2),
    ];
    let o = run(config, &steps);
    assert!(o.transcript.contains("EMFILE"), "{}", o.transcript);
    let freed = when(&o, "disconnected: slow consumer");
    let admitted = when(&o, &format!("{} connect.", peer(2)));
    let tick = selectlab::chat::serve::ACCEPT_BACKOFF.as_secs_f64();
    // The slow consumer's time is up at 1.050 s; the backoff ticks every 100 ms from 0.
    assert!(
        admitted > freed && (admitted / tick - (admitted / tick).round()).abs() < 1e-6,
        "freed at {freed} s, admitted at {admitted} s\n{}",
        o.transcript
    );
}
