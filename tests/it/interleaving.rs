//! Sessions interleave at syscall granularity: a client may read between any two of the
//! server's syscalls, as on a real multi-core machine. These tests pin what that catches and
//! that it stays deterministic.

use selectlab::bugs::{Bug, Bugs};
use selectlab::chat::server::Limits;
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;
use selectlab::session::properties::check;
use selectlab::session::{Outcome, Session, SessionConfig, Step};
use selectlab::sim::decide::{Adversity, Decider};

/// One client sends this many one-byte lines in one go; the other must hear them all.
const BURST_LINES: usize = 20_000;
/// Lines an interactive client sends one by one while the other is paused: more than one
/// edge-triggered flush moves (64 sends of 256 one-line chunks).
const DRIP_LINES: usize = 30_000;

fn burst() -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Raw(0, b"a\n".repeat(BURST_LINES)),
    ]
}

fn run(config: SessionConfig, steps: &[Step]) -> Outcome {
    Session::new(config)
        .expect("the server starts")
        .run(steps)
        .expect("the session settles")
}

/// Regression (netty/netty#7730, found under real load): under edge triggering, a flush that
/// stopped after a budget of successful sends with output still queued waited for an edge that
/// never came, because the reader kept draining the socket between the server's sends and so
/// it never ran out of room. The reader must still hear every line; and with the old flush
/// (the zoo's `et_write_quantum_no_rearm`) the same session loses lines, so this test can fail.
#[test]
fn et_flush_budget_exhausted_while_reader_drains_still_delivers_everything() {
    let steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Pause(1),
        Step::Drip(0, b"a\n".repeat(DRIP_LINES)),
        Step::Resume(1),
    ];
    let limits = Limits {
        outbound_soft_bytes: 64 << 20,
        outbound_cap_bytes: 64 << 20,
        ..Limits::default()
    };
    let config = |bugs| SessionConfig {
        backend: Backend::Epoll,
        mode: Mode::EDGE,
        limits,
        transcript: false,
        bugs,
        ..SessionConfig::default()
    };
    let o = run(config(Bugs::NONE), &steps);
    let heard = o.clients[1].lines.len();
    assert_eq!(heard, DRIP_LINES, "c2 heard {heard} of {DRIP_LINES} lines");
    check(&steps, &o, 2, &limits).expect("the chat properties hold");
    let old = run(config(Bugs::only(Bug::EtWriteQuantumNoRearm)), &steps);
    assert!(
        old.clients[1].lines.len() < DRIP_LINES,
        "the old flush stalls in this session"
    );
}

/// The same burst on every backend and mode, under the seeded adversary's schedule.
#[test]
fn bursts_arrive_whole_under_adversarial_schedules() {
    let modes = [
        (Backend::Select, Mode::LEVEL),
        (Backend::Poll, Mode::LEVEL),
        (Backend::Epoll, Mode::LEVEL),
        (Backend::Epoll, Mode::EDGE),
    ];
    for (backend, mode) in modes {
        for seed in 0..4 {
            let steps = burst();
            let config = SessionConfig {
                backend,
                mode,
                decide: Decider::seeded(seed, Adversity::PARTIAL_IO),
                transcript: false,
                ..SessionConfig::default()
            };
            let o = run(config, &steps);
            check(&steps, &o, 2, &Limits::default()).unwrap_or_else(|e| {
                let e = e.to_string();
                panic!(
                    "{backend:?} {mode:?} seed {seed}: {}",
                    &e[..e.len().min(2000)]
                )
            });
        }
    }
}

/// Same seed, same transcript, byte for byte; and the transcript names who made each call.
#[test]
fn interleaved_sessions_are_deterministic_and_name_their_hosts() {
    let steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Say(0, b"hello".to_vec()),
        Step::Say(1, b"hi".to_vec()),
    ];
    let config = || SessionConfig {
        decide: Decider::seeded(7, Adversity::HOSTILE),
        kernel_calls: true,
        ..SessionConfig::default()
    };
    let a = run(config(), &steps).transcript;
    let b = run(config(), &steps).transcript;
    assert_eq!(a, b);
    assert!(a.contains("] c1 fd"), "client 1's calls are labelled:\n{a}");
    assert!(a.contains("] c2 fd"), "client 2's calls are labelled:\n{a}");
    let other_seed = run(
        SessionConfig {
            decide: Decider::seeded(8, Adversity::HOSTILE),
            ..config()
        },
        &steps,
    )
    .transcript;
    assert_ne!(a, other_seed, "the seed chooses the schedule");
}

/// Found by cargo-mutants: a dripping client sends one line per call, as typed, and says so
/// in the transcript; steps print as people read them.
#[test]
fn a_drip_is_one_line_per_send() {
    use selectlab::session::{Session, SessionConfig, Step};
    let config = SessionConfig {
        kernel_calls: true,
        ..SessionConfig::default()
    };
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Drip(0, b"a\nbb\n".to_vec()),
        // The drip is over: what comes next goes in one send again.
        Step::Raw(0, b"c\nd\n".to_vec()),
    ];
    let o = Session::new(config).unwrap().run(&steps).unwrap();
    let sends: Vec<&str> = o
        .transcript
        .lines()
        .filter(|l| l.contains("] c1 ") && l.contains(" send("))
        .collect();
    assert_eq!(sends.len(), 3, "{}", o.transcript);
    assert!(sends[2].contains("send(4) = 4"), "{sends:?}");
    assert!(
        sends[0].contains("send(2) = 2") && sends[1].contains("send(3) = 3"),
        "{sends:?}"
    );
    assert_eq!(
        Step::Drip(0, b"a\n".to_vec()).to_string(),
        "c1 sends \"a\\n\" line by line (2 bytes)"
    );
    assert_eq!(Step::Say(1, b"hi".to_vec()).to_string(), "c2 says \"hi\"");
    // Quotes and backslashes are escaped; a payload shows whole up to 96 bytes.
    assert_eq!(
        Step::Say(0, b"q\"b\\".to_vec()).to_string(),
        r#"c1 says "q\"b\\""#
    );
    let longest = vec![b'x'; selectlab::session::SHOW_MAX_BYTES];
    assert!(!Step::Say(0, longest.clone()).to_string().ends_with("..."));
    let longer = [longest, vec![b'x']].concat();
    assert!(Step::Say(0, longer).to_string().ends_with("..."));
}
