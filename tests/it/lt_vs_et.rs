//! Level vs edge triggering, shown as properties (the tutorial's closing lesson), over the program
//! in `selectlab::programs::lt_vs_et`:
//! - a reader that takes one chunk per event and does not drain to EAGAIN gets every byte under
//!   level triggering and stalls under edge triggering — on the kernel and in the simulator;
//! - a reader that drains gets every byte under every backend and mode, under any schedule of
//!   the lawful adversary (short reads and writes, EINTR, spurious wakeups);
//! - a writer that ignores a short send loses bytes under the adversary; one that keeps its
//!   unsent tail does not.

use crate::util;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::kernel::{Kernel, Mode};
use selectlab::programs::lt_vs_et::{
    CHUNK_BYTES, MAX_TURNS, Outcome, Reader, TOTAL_BYTES, Writer, exchange, pattern,
};
use selectlab::readiness::{BACKEND_MODES, Backend};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::decide::{Adversity, Choice, Decider};
use selectlab::sim::{Sim, SimConfig};

fn expected() -> Vec<u8> {
    (0..TOTAL_BYTES).map(pattern).collect()
}

fn run(
    k: &mut dyn Kernel,
    backend: Backend,
    mode: Mode,
    reader: Reader,
    writer: Writer,
) -> Outcome {
    exchange(k, backend, mode, reader, writer, MAX_TURNS).expect("exchange")
}

#[test]
fn one_chunk_per_event_delivers_everything_under_lt_and_stalls_under_et() {
    let kernels: [fn() -> Box<dyn Kernel>; 2] =
        [|| Box::new(RealKernel::new()), || Box::new(Sim::faithful())];
    for make in kernels {
        for (backend, mode) in &BACKEND_MODES[..3] {
            let mut k = make();
            let o = run(
                k.as_mut(),
                *backend,
                *mode,
                Reader::OneChunk,
                Writer::Upfront,
            );
            assert!(
                o.finished,
                "{} {backend} LT: stalled at {} bytes",
                k.transport(),
                o.received.len()
            );
            assert_eq!(o.received, expected());
        }
        let mut k = make();
        let o = run(
            k.as_mut(),
            Backend::Epoll,
            Mode::EDGE,
            Reader::OneChunk,
            Writer::Upfront,
        );
        assert!(
            !o.finished,
            "{}: edge-triggered one-chunk reader should stall",
            k.transport()
        );
        assert_eq!(
            o.received.len(),
            CHUNK_BYTES,
            "{}: one event, one chunk, then silence",
            k.transport()
        );
    }
}

#[test]
fn a_draining_reader_delivers_everything_in_every_mode_under_any_adversary() {
    let adversity = Adversity {
        spurious_per_mille: 200,
        defer_per_mille: 300,
        ..Adversity::PARTIAL_IO
    };
    for (backend, mode) in BACKEND_MODES {
        let mut runner = TestRunner::new(Config {
            cases: util::cases(64),
            ..Config::default()
        });
        let outcome = runner.run(&any::<u64>(), |seed| {
            let mut sim = Sim::new(SimConfig::default(), Decider::seeded(seed, adversity));
            let o = run(&mut sim, backend, mode, Reader::Drain, Writer::KeepTail);
            prop_assert!(
                o.finished,
                "seed {seed}: stalled at {} bytes\n{}",
                o.received.len(),
                sim.transcript()
            );
            prop_assert_eq!(o.received, expected());
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{backend} {mode:?}: {e}");
        }
    }
}

#[test]
fn a_writer_that_ignores_short_sends_loses_bytes_and_one_that_keeps_its_tail_does_not() {
    let cases = util::cases(64);
    let seeds_with_short_sends = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            let seeded = || {
                Sim::new(
                    SimConfig::default(),
                    Decider::seeded(seed, Adversity::PARTIAL_IO),
                )
            };
            let careful = run(
                &mut seeded(),
                Backend::Epoll,
                Mode::LEVEL,
                Reader::Drain,
                Writer::KeepTail,
            );
            prop_assert_eq!(careful.received, expected());
            let mut sim = seeded();
            let naive = run(
                &mut sim,
                Backend::Epoll,
                Mode::LEVEL,
                Reader::Drain,
                Writer::AssumeWhole,
            );
            let short_sends = sim
                .transcript()
                .records()
                .iter()
                .filter(|r| matches!(r.choice, Some(Choice::ShortWrite { .. })))
                .count();
            if short_sends == 0 {
                // No short send in this schedule: the naive writer gets away with it.
                prop_assert_eq!(naive.received, expected());
            } else {
                // It skipped the unsent part of each short send: bytes are missing.
                seeds_with_short_sends.set(seeds_with_short_sends.get() + 1);
                prop_assert!(naive.received.len() < TOTAL_BYTES, "seed {seed}");
                prop_assert_ne!(naive.received, expected());
            }
            Ok(())
        })
        .unwrap();
    // With a 50% short-write rate and 8 sends, nearly every schedule has one.
    assert!(
        seeds_with_short_sends.get() * 2 > cases,
        "the adversary rarely struck: {}",
        seeds_with_short_sends.get()
    );
}
