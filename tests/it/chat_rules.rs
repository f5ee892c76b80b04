//! Bad input to the chat room, each case pinned to its rule.

use selectlab::chat::server::Limits;
use selectlab::session::{Outcome, Session, SessionConfig, Step};
use std::time::Duration;

fn run(limits: Limits, steps: &[Step]) -> Outcome {
    let config = SessionConfig {
        limits,
        ..SessionConfig::default()
    };
    Session::new(config)
        .expect("server starts")
        .run(steps)
        .expect("session settles")
}

fn said(o: &Outcome, n: usize) -> Vec<Vec<u8>> {
    o.clients[n]
        .lines
        .iter()
        .filter_map(|l| {
            l.windows(6)
                .position(|w| w == b" say: ")
                .map(|at| l[at + 6..].to_vec())
        })
        .collect()
}

#[test]
fn an_over_long_line_gets_an_error_line_and_a_disconnect_and_is_never_broadcast() {
    let long = vec![b'z'; 5000];
    let o = run(
        Limits::default(),
        &[
            Step::Join(0),
            Step::Join(1),
            Step::Say(0, long),
            Step::Say(0, b"after".to_vec()),
        ],
    );
    assert!(
        said(&o, 1).is_empty(),
        "neither the long line nor anything after it"
    );
    assert_eq!(
        o.clients[0].lines.last().map(Vec::as_slice),
        Some(&b"error: line longer than 4096 bytes; disconnecting"[..])
    );
    assert!(o.clients[0].server_gone);
    assert!(o.clients[1].lines.last().unwrap().ends_with(b"left room"));
}

#[test]
fn a_line_of_exactly_the_limit_is_fine() {
    let limits = Limits {
        max_line_bytes: 10,
        ..Limits::default()
    };
    let o = run(
        limits,
        &[
            Step::Join(0),
            Step::Join(1),
            Step::Say(0, b"0123456789".to_vec()),
        ],
    );
    assert_eq!(said(&o, 1), [b"0123456789".to_vec()]);
}

#[test]
fn bytes_that_are_not_utf8_and_nul_bytes_pass_through_unchanged() {
    let text = b"caf\xe9 \x00 \xff\xfe end".to_vec();
    let o = run(
        Limits::default(),
        &[Step::Join(0), Step::Join(1), Step::Say(0, text.clone())],
    );
    assert_eq!(said(&o, 1), [text]);
}

#[test]
fn an_empty_line_is_not_broadcast() {
    let o = run(
        Limits::default(),
        &[
            Step::Join(0),
            Step::Join(1),
            Step::Say(0, Vec::new()),
            Step::Say(0, b"x".to_vec()),
        ],
    );
    assert_eq!(said(&o, 1), [b"x".to_vec()]);
}

/// The hard limit: a queue that would pass it gets its client disconnected at once.
#[test]
fn a_client_that_sends_without_ever_reading_is_dropped_at_the_hard_limit_and_the_others_go_on() {
    let limits = Limits {
        outbound_cap_bytes: 4096,
        ..Limits::default()
    };
    let mut steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::StopReading(0),
    ];
    for i in 0..80 {
        steps.push(Step::Say(
            0,
            format!("I talk but never listen {i}").into_bytes(),
        ));
        steps.push(Step::Say(
            1,
            format!("{i}: {}", "blah ".repeat(100)).into_bytes(),
        ));
    }
    let o = run(limits, &steps);
    assert!(
        o.transcript
            .contains("('127.0.0.1', 32768) disconnected: slow consumer")
    );
    assert!(o.peak_queue_bytes <= 4096);
    // c3 heard everything c2 said, and what c1 said until it was dropped.
    assert_eq!(
        said(&o, 2)
            .iter()
            .filter(|l| l.starts_with(b"79: "))
            .count(),
        1
    );
    assert!(said(&o, 2).len() >= 80);
}

/// The soft limit's clock restarts when the queue drains (Redis#2063): a reader that is slow
/// for a moment, twice, the timeout apart, is never dropped.
#[test]
fn a_reader_slow_for_a_moment_twice_is_never_dropped() {
    let limits = Limits {
        outbound_soft_bytes: 8 * 1024,
        slow_consumer_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut steps = vec![Step::Join(0), Step::Join(1)];
    for round in 0..2 {
        steps.extend([
            Step::Pause(1),
            Step::Raw(0, format!("round {round}\n").repeat(4000).into_bytes()),
            Step::Resume(1),
            Step::Sleep(Duration::from_secs(11)),
        ]);
    }
    let o = run(limits, &steps);
    assert!(
        !o.transcript.contains("slow consumer"),
        "nobody was dropped"
    );
    assert_eq!(said(&o, 1).len(), 8000, "c2 heard every line");
}

/// Back-pressure: while one client's queue is above the soft limit nobody's input is read,
/// and nothing is lost; the others hear everything once the slow client catches up.
#[test]
fn while_a_queue_is_over_the_soft_limit_input_waits_and_nothing_is_lost() {
    let limits = Limits {
        outbound_soft_bytes: 8 * 1024,
        ..Limits::default()
    };
    let mut steps = vec![Step::Join(0), Step::Join(1), Step::Join(2), Step::Pause(2)];
    steps.push(Step::Raw(0, b"filler\n".repeat(4000)));
    steps.push(Step::Say(1, b"said while c3 was paused".to_vec()));
    // Step by step, and looked at before the session ends (a finished session would wait out
    // the slow-consumer timeout).
    let mut session = Session::new(SessionConfig {
        limits,
        ..SessionConfig::default()
    })
    .expect("the server starts");
    for step in &steps {
        session.step(step).expect("the step settles");
    }
    let paused = session.finish();
    assert!(paused.stats.read_pauses >= 1, "reading paused");
    assert!(
        !said(&paused, 0).contains(&b"said while c3 was paused".to_vec()),
        "c2's line waits in the kernel while the room is paused"
    );
    steps.push(Step::Resume(2));
    let o = run(limits, &steps);
    assert_eq!(said(&o, 0).len(), 1, "c1 hears c2's line once c3 caught up");
    assert_eq!(said(&o, 2).len(), 4001, "c3 heard everything");
}

#[test]
fn a_client_that_connects_and_says_nothing_stays_and_hears_everything() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Sleep(std::time::Duration::from_secs(3600)),
        Step::Say(1, b"still there?".to_vec()),
    ];
    let o = run(Limits::default(), &steps);
    assert_eq!(said(&o, 0), [b"still there?".to_vec()]);
    assert!(!o.clients[0].server_gone, "no idle timeout");
}

#[test]
fn one_client_too_many_gets_server_full_and_is_closed() {
    let limits = Limits {
        max_clients: 2,
        ..Limits::default()
    };
    let o = run(
        limits,
        &[
            Step::Join(0),
            Step::Join(1),
            Step::Join(2),
            Step::Say(0, b"hi".to_vec()),
        ],
    );
    assert_eq!(o.clients[2].lines, [b"server full".to_vec()]);
    assert!(o.clients[2].server_gone);
    assert_eq!(said(&o, 1), [b"hi".to_vec()]);
    assert!(o.transcript.contains("refused: server full"));
}

#[test]
fn a_line_split_across_many_writes_arrives_whole() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Raw(0, b"one ".to_vec()),
        Step::Raw(0, b"line in ".to_vec()),
        Step::Raw(0, b"pieces\ntwo lines in".to_vec()),
        Step::Raw(0, b" one write\n".to_vec()),
    ];
    let o = run(Limits::default(), &steps);
    assert_eq!(
        said(&o, 1),
        [
            b"one line in pieces".to_vec(),
            b"two lines in one write".to_vec()
        ]
    );
}
