//! The server's counters count what happened (found by cargo-mutants: `+=` to `*=` survived in
//! every counter).

use selectlab::chat::session::{Outcome, Session, SessionConfig, Step};
use selectlab::kernel::Mode;
use selectlab::readiness::{BACKEND_MODES, Backend};
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
