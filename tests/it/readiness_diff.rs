//! The kernel is the oracle for readiness too: random sequences of I/O, shutdown, close, dup,
//! register, modify, deregister and wait over a socketpair, a pipe, a TCP connection and a
//! listener give the same wait results on the kernel and in the faithful simulator, for every
//! backend and mode (the sequences and their runner live in `selectlab::diff`, shared with the
//! `readiness_diff` fuzz target).
//!
//! One #[test] runs every backend-mode in turn: tests in one binary run on parallel threads,
//! and another thread reusing a just-closed descriptor number would make the kernel's answer
//! about a closed descriptor depend on timing.

use crate::util;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::diff::{How, Op, READINESS_MAX_OPS, compare_readiness};
use selectlab::readiness::BACKEND_MODES;

fn op() -> impl Strategy<Value = Op> {
    let e = any::<u8>();
    let how = prop_oneof![Just(How::Read), Just(How::Write), Just(How::Both)];
    prop_oneof![
        4 => (e, any::<u16>()).prop_map(|(e, n)| Op::Send(e, n)),
        4 => (e, any::<u16>()).prop_map(|(e, n)| Op::Recv(e, n)),
        1 => (e, how).prop_map(|(e, h)| Op::Shut(e, h)),
        1 => e.prop_map(Op::Close),
        1 => e.prop_map(Op::Dup),
        4 => (e, any::<u8>()).prop_map(|(e, i)| Op::Register(e, i)),
        2 => (e, any::<u8>()).prop_map(|(e, i)| Op::Modify(e, i)),
        1 => e.prop_map(Op::Deregister),
        5 => any::<u8>().prop_map(Op::Wait),
        1 => Just(Op::Connect),
        1 => Just(Op::Accept),
    ]
}

#[test]
fn readiness_matches_the_kernel_for_every_backend_and_mode() {
    let cases = util::cases(256);
    for (backend, mode) in BACKEND_MODES {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let strategy = proptest::collection::vec(op(), 1..READINESS_MAX_OPS);
        let outcome = runner.run(&strategy, |ops| {
            if let Err((real, sim)) = compare_readiness(backend, mode, &ops) {
                prop_assert_eq!(real, sim);
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{backend} {mode:?}: {e}");
        }
    }
}
