//! Chat transcripts, reviewed and kept in `snapshots/` (insta). Each session runs in the
//! simulator, so the same script gives the same transcript, byte for byte.

use std::time::Duration;

use selectlab::chat::server::Limits;
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;
use selectlab::session::{Outcome, Session, SessionConfig, Step};
use selectlab::sim::decide::{Adversity, Decider};

fn say(n: usize, text: &str) -> Step {
    Step::Say(n, text.as_bytes().to_vec())
}

fn run(config: SessionConfig, steps: &[Step]) -> Outcome {
    Session::new(config)
        .expect("server starts")
        .run(steps)
        .expect("session runs")
}

fn snapshot(name: &str, transcript: &str) {
    insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, transcript);
    });
}

/// The lines of `said` (by any client) that `client` received, as text.
fn said_lines(o: &Outcome, client: usize) -> Vec<String> {
    o.clients[client]
        .lines
        .iter()
        .filter_map(|l| {
            let l = String::from_utf8_lossy(l);
            l.split_once(" say: ").map(|(_, text)| text.to_string())
        })
        .collect()
}

fn three_clients() -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        say(0, "hello, everyone"),
        say(1, "hi c1!"),
        say(2, "good evening"),
        say(0, "see you"),
    ]
}

#[test]
fn three_clients_chatting() {
    let o = run(SessionConfig::default(), &three_clients());
    assert_eq!(said_lines(&o, 0), ["hi c1!", "good evening"]);
    assert_eq!(
        said_lines(&o, 1),
        ["hello, everyone", "good evening", "see you"]
    );
    assert_eq!(said_lines(&o, 2), ["hello, everyone", "hi c1!", "see you"]);
    snapshot("three_clients_chatting", &o.transcript);
}

#[test]
fn the_same_session_on_every_backend_and_mode() {
    // Identical at the application level: one snapshot, four runs.
    for (backend, mode) in [
        (Backend::Select, Mode::LEVEL),
        (Backend::Poll, Mode::LEVEL),
        (Backend::Epoll, Mode::LEVEL),
        (Backend::Epoll, Mode::EDGE),
    ] {
        let o = run(
            SessionConfig {
                backend,
                mode,
                ..SessionConfig::default()
            },
            &three_clients(),
        );
        snapshot("three_clients_chatting", &o.transcript);
    }
}

#[test]
fn a_client_types_exit() {
    let o = run(
        SessionConfig::default(),
        &[
            Step::Join(0),
            Step::Join(1),
            say(0, "I have to go"),
            Step::Exit(0),
            say(1, "bye?"),
        ],
    );
    assert!(o.clients[1].lines.iter().any(|l| l.ends_with(b"left room")));
    assert!(said_lines(&o, 0).is_empty(), "c1 left before c2 spoke");
    snapshot("client_types_exit", &o.transcript);
}

#[test]
fn a_client_reset_in_the_middle_of_a_line() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        say(0, "a whole line"),
        Step::Raw(0, b"half a li".to_vec()),
        Step::Reset(0),
        say(1, "anyone there?"),
    ];
    let o = run(SessionConfig::default(), &steps);
    assert_eq!(
        said_lines(&o, 1),
        ["a whole line"],
        "nothing of the cut line is broadcast"
    );
    snapshot("client_reset_mid_line", &o.transcript);
}

/// Back-pressure, then a disconnect: a client stops reading; once its queue passes the soft
/// limit the server stops reading input (c1's lines wait in the kernel), and when the
/// slow-consumer timeout has passed the non-reader is dropped and the room goes on; nobody
/// else loses a line, and no queue ever passes the hard limit.
#[test]
fn a_slow_consumer_hits_the_cap() {
    let limits = Limits {
        outbound_soft_bytes: 8 * 1024,
        outbound_cap_bytes: 64 * 1024,
        slow_consumer_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::StopReading(1),
    ];
    let long = "x".repeat(2000);
    for i in 0..16 {
        steps.push(say(0, &format!("{i:02} {long}")));
    }
    steps.push(Step::Sleep(Duration::from_secs(11)));
    let o = run(
        SessionConfig {
            limits,
            ..SessionConfig::default()
        },
        &steps,
    );
    assert_eq!(said_lines(&o, 2).len(), 16, "the others are unaffected");
    assert!(o.peak_queue_bytes <= limits.outbound_cap_bytes);
    assert!(
        o.transcript
            .contains("slow consumer (held the room back for 10 s, more than 4096 bytes queued)")
    );
    assert!(o.stats.read_pauses >= 1, "back-pressure was applied");
    snapshot("slow_consumer", &o.transcript);
}

#[test]
fn an_over_long_line() {
    let limits = Limits {
        max_line_bytes: 64,
        ..Limits::default()
    };
    let steps = [
        Step::Join(0),
        Step::Join(1),
        say(0, &"y".repeat(100)),
        say(1, "still here"),
    ];
    let o = run(
        SessionConfig {
            limits,
            ..SessionConfig::default()
        },
        &steps,
    );
    assert!(
        said_lines(&o, 1).is_empty(),
        "no part of the long line is broadcast"
    );
    assert!(
        o.clients[0]
            .lines
            .iter()
            .any(|l| l.starts_with(b"error: line longer than 64 bytes"))
    );
    snapshot("over_long_line", &o.transcript);
}

#[test]
fn the_server_goes_away() {
    let o = run(
        SessionConfig::default(),
        &[
            Step::Join(0),
            Step::Join(1),
            say(0, "is the server up?"),
            Step::StopServer,
        ],
    );
    assert!(
        o.clients.iter().all(|c| c.server_gone),
        "every client notices"
    );
    snapshot("server_goes_away", &o.transcript);
}

#[test]
fn an_adversarial_schedule_still_delivers_everything() {
    let adversity = Adversity {
        spurious_per_mille: 200,
        defer_per_mille: 300,
        ..Adversity::PARTIAL_IO
    };
    let config = SessionConfig {
        decide: Decider::seeded(11, adversity),
        ..SessionConfig::default()
    };
    let o = run(config, &three_clients());
    assert_eq!(
        said_lines(&o, 1),
        ["hello, everyone", "good evening", "see you"]
    );
    assert_eq!(said_lines(&o, 2), ["hello, everyone", "hi c1!", "see you"]);
    assert!(
        o.transcript.contains("adversary: short"),
        "the adversary struck"
    );
    snapshot("adversarial_schedule", &o.transcript);
}
