//! Some zoo bugs fire on a narrow trigger (the catalogue's): these pin the trigger, so that a
//! bug that starts to fire more widely, or never, is noticed (found by cargo-mutants: the
//! zoo still caught such a bug, with the same symptom, after its trigger had changed).

use selectlab::bugs::{Bug, Bugs};
use selectlab::chat::session::{Outcome, Session, SessionConfig, Step};
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;

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

/// `et_partial_write_no_epollout` forgets OUT after a short write (the rest waits for the
/// next line), but a send that found the socket full (EAGAIN) still asks for OUT.
#[test]
fn et_partial_write_no_epollout_forgets_out_after_a_short_write_only() {
    let big = vec![b'b'; 4000];
    let lines: Vec<Step> = (0..60).map(|_| Step::Say(1, big.clone())).collect();
    let mut steps = vec![Step::Join(0), Step::Join(1), Step::Pause(0)];
    steps.extend(lines.iter().cloned());
    steps.push(Step::Resume(0));
    let o = run(
        Bug::EtPartialWriteNoEpollout,
        Backend::Poll,
        Mode::LEVEL,
        &steps,
    );
    assert_eq!(heard(&o, 0, b"bbb"), lines.len(), "{}", o.transcript);
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
