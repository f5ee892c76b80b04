//! Some zoo bugs fire on a narrow trigger (the catalogue's): these pin the trigger, so that a
//! bug that starts to fire more widely, or never, is noticed (found by cargo-mutants: the
//! zoo still caught such a bug, with the same symptom, after its trigger had changed).

use selectlab::bugs::{Bug, Bugs};
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;
use selectlab::session::{Outcome, Session, SessionConfig, Step};

fn run(bug: Bug, backend: Backend, mode: Mode, steps: &[Step]) -> Outcome {
    let config = SessionConfig {
        backend,
        mode,
        bugs: Bugs::only(bug),
        ..SessionConfig::default()
    };
    Session::new(config)
        .expect("server starts")
        .run(steps)
        .expect("session settles")
}

/// How many of `client`'s received lines end with `text`.
fn heard(o: &Outcome, client: usize, text: &[u8]) -> usize {
    (o.clients[client].lines.iter())
        .filter(|l| l.ends_with(text))
        .count()
}

/// `et_short_read_heuristic` takes a short read for a drained socket; a read that fills the
/// buffer is not short, so input that arrives in whole buffers is read to the end.
#[test]
fn et_short_read_heuristic_is_fooled_by_short_reads_only() {
    let chunk = selectlab::chat::serve::READ_CHUNK_BYTES;
    let line = [vec![b'w'; 63], vec![b'\n']].concat();
    let whole_buffers = line.repeat(2 * chunk / line.len());
    let steps = [Step::Join(0), Step::Join(1), Step::Raw(1, whole_buffers)];
    let o = run(
        Bug::EtShortReadHeuristic,
        Backend::Epoll,
        Mode::EDGE,
        &steps,
    );
    assert_eq!(
        heard(&o, 0, b"www"),
        2 * chunk / line.len(),
        "{}",
        o.transcript
    );
}

/// `et_partial_write_no_epollout` sits on the edge-triggered write path (Netty's epoll
/// transport asks for OUT only while a write is incomplete, and forgot to after a short
/// write): a reader that drains as fast as the server sends sees short writes, and under edge
/// triggering its queue then waits for good; level triggering is not touched.
#[test]
fn et_partial_write_no_epollout_stalls_edge_triggering_only() {
    let lines = 30_000;
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Pause(1),
        Step::Drip(0, b"a\n".repeat(lines)),
        Step::Resume(1),
    ];
    let bug = Bug::EtPartialWriteNoEpollout;
    let edge = run(bug, Backend::Epoll, Mode::EDGE, &steps);
    assert!(heard(&edge, 1, b" a") < lines, "{:?}", edge.stats);
    let level = run(bug, Backend::Epoll, Mode::LEVEL, &steps);
    assert_eq!(heard(&level, 1, b" a"), lines);
}

/// Lines c2 says in [`short_writes`].
const SAID: usize = 600;

/// A reader paused while c2 sends [`SAID`] 4 000-byte lines (more than the kernel buffers),
/// then resumed: some of the server's sends to it are short, some with many lines offered.
fn short_writes(bug: Option<Bug>) -> Outcome {
    let mut steps = vec![Step::Join(0), Step::Join(1), Step::Pause(0)];
    // One write: the server reads it in chunks, and queues each chunk's lines as one batch.
    let line = [vec![b'b'; 3999], vec![b'\n']].concat();
    steps.push(Step::Raw(1, line.repeat(SAID)));
    steps.push(Step::Resume(0));
    let config = SessionConfig {
        backend: Backend::Poll,
        mode: Mode::LEVEL,
        bugs: bug.map_or(Bugs::NONE, Bugs::only),
        ..SessionConfig::default()
    };
    Session::new(config)
        .expect("server starts")
        .run(&steps)
        .expect("session settles")
}

/// The lengths of `client`'s lines that end with `text`, and how many differ from the usual.
fn odd_lengths(o: &Outcome, client: usize, text: &[u8]) -> Vec<usize> {
    let lens: Vec<usize> = (o.clients[client].lines.iter())
        .filter(|l| l.ends_with(text))
        .map(|l| l.len())
        .collect();
    let usual = lens.iter().copied().min().unwrap_or(0);
    lens.into_iter().filter(|&l| l != usual).collect()
}

/// `bt_send_not_sendall` (send's count ignored) and `partial_write_abandoned` (the rest given
/// up at EAGAIN) lose the rest of each line a short write cut, not a queue or a batch: each
/// cut line's prefix runs into the next line, and every other line arrives.
#[test]
fn a_cut_line_loses_only_its_rest() {
    assert_eq!(heard(&short_writes(None), 0, b"bbb"), SAID);
    for bug in [Bug::BtSendNotSendall, Bug::PartialWriteAbandoned] {
        let o = short_writes(Some(bug));
        let whole = heard(&o, 0, b"bbb");
        let carriers = odd_lengths(&o, 0, b"bbb").len();
        assert!(whole < SAID, "{bug}: no line was cut");
        assert_eq!(whole + carriers, SAID, "{bug}: lines lost whole");
    }
}

/// `nonblocking_partial_send_lost` sends each cut line again whole: every line arrives, some
/// after a second copy of their own prefix, and nothing more is repeated.
#[test]
fn nonblocking_partial_send_lost_repeats_cut_lines_prefixes() {
    let o = short_writes(Some(Bug::NonblockingPartialSendLost));
    assert_eq!(heard(&o, 0, b"bbb"), SAID, "{}", o.transcript);
    let usual = odd_lengths(&short_writes(None), 0, b"bbb");
    assert!(
        usual.is_empty(),
        "the reference's lines are all alike: {usual:?}"
    );
    let line_bytes = o.clients[0].lines[1].len();
    let odd = odd_lengths(&o, 0, b"bbb");
    assert!(!odd.is_empty(), "no line was cut");
    assert!(
        odd.iter().all(|&l| l > line_bytes && l < 2 * line_bytes),
        "each longer by less than a line: {odd:?}"
    );
}

/// `eagain_as_failure_reconnect` takes a wakeup whose recv finds nothing for a failure: a
/// faithful room, whose wakeups always bring data, loses nobody; spurious wakeups (which
/// Linux may give) drop clients.
#[test]
fn eagain_as_failure_reconnect_drops_on_empty_wakeups_only() {
    use selectlab::sim::decide::{Adversity, Decider};
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Say(0, b"hi".to_vec()),
        Step::Say(1, b"ho".to_vec()),
        Step::Say(2, b"hu".to_vec()),
    ];
    let departures = |decide: Decider| {
        let config = SessionConfig {
            backend: Backend::Poll,
            mode: Mode::LEVEL,
            bugs: Bugs::only(Bug::EagainAsFailure),
            decide,
            ..SessionConfig::default()
        };
        let o = Session::new(config).expect("server starts").run(&steps);
        let o = o.expect("session settles");
        (0..3).map(|c| heard(&o, c, b"left room")).sum::<usize>()
    };
    assert_eq!(departures(Decider::faithful()), 0);
    let spurious = Adversity {
        spurious_per_mille: 300,
        ..Adversity::NONE
    };
    assert!(departures(Decider::seeded(1, spurious)) > 0);
}

/// `eof_misclassified_stale_errno` takes the end of stream for "nothing to read", so under
/// level triggering the closed connection reports for ever: the session never settles, and
/// the server's counters show the spin as empty reads.
#[test]
fn eof_misclassified_stale_errno_spins_on_empty_reads() {
    let config = SessionConfig {
        backend: Backend::Poll,
        mode: Mode::LEVEL,
        bugs: Bugs::only(Bug::EofMisclassifiedStaleErrno),
        ..SessionConfig::default()
    };
    let steps = [Step::Join(0), Step::Join(1), Step::Exit(1)];
    let (o, result) = Session::new(config).expect("server starts").run_all(&steps);
    assert!(matches!(result, Err((2, _))), "{result:?}");
    assert!(o.stats.empty_reads > 1000, "{:?}", o.stats);
}

/// `missing_sendq` drops only the cap: a reader that stops while the others talk is no longer
/// disconnected at the cap, and its queue grows past it; the reference never lets it.
#[test]
fn missing_sendq_lets_a_queue_pass_the_cap() {
    let cap = 4096;
    let peak = |bugs: Bugs| {
        let config = SessionConfig {
            limits: selectlab::chat::server::Limits {
                outbound_cap_bytes: cap,
                ..Default::default()
            },
            bugs,
            ..SessionConfig::default()
        };
        let steps = selectlab::session::schedules::slow_reader();
        let o = Session::new(config).expect("server starts").run(&steps);
        o.expect("session settles").peak_queue_bytes
    };
    assert!(peak(Bugs::NONE) <= cap);
    assert!(peak(Bugs::only(Bug::MissingSendq)) > cap);
}

/// `zero_mask_assumed_silent` ignores ERR and HUP on a descriptor parked with no interest:
/// while the room is held for a paused reader, a client that resets is reported at every wait
/// under level triggering, and the server spins instead of letting it go; the reference reads
/// it to its end.
#[test]
fn zero_mask_assumed_silent_spins_on_a_reset_while_parked() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Pause(1),
        Step::Raw(0, b"xx\n".repeat(20_000)),
        Step::Reset(2),
    ];
    let session = |bugs: Bugs| {
        let config = SessionConfig {
            backend: Backend::Poll,
            mode: Mode::LEVEL,
            limits: selectlab::chat::server::Limits {
                outbound_soft_bytes: 4096,
                ..Default::default()
            },
            bugs,
            ..SessionConfig::default()
        };
        Session::new(config).expect("server starts").run_all(&steps)
    };
    let (o, result) = session(Bugs::NONE);
    assert!(result.is_ok(), "{result:?}");
    assert!(
        o.first_held_step.is_some_and(|h| h < 5),
        "the room was held before the reset"
    );
    let (o, result) = session(Bugs::only(Bug::ZeroMaskAssumedSilent));
    assert!(
        matches!(result, Err((5, _))),
        "{result:?}\n{}",
        o.transcript
    );
}
