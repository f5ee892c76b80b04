//! The chat room's properties, for any schedule of joins, leaves, lines (any bytes, newlines
//! anywhere), bursts, pauses, crowds, resets, slow readers (and the room held for them) and
//! the server going away, under the lawful adversary
//! (short reads and writes, spurious wakeups): every line a client sends while others are
//! connected reaches each of them exactly once, whole, in the sender's order; never the sender;
//! never a client that has left; nothing of a line cut short by its sender's reset or exit; the
//! server never busy-loops (each step settles within a bound, and wakeups stay proportional to
//! the work) and never queues past its cap. The checker is `selectlab::session::properties`, shared with
//! the `chat_adversary` fuzz target. On failure, proptest shrinks the schedule and the message
//! carries its transcript.

use crate::util;

use std::time::Duration;

use proptest::prelude::*;
use selectlab::chat::server::Limits;
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;
use selectlab::session::properties::check;
use selectlab::session::{Session, SessionConfig, Step};
use selectlab::sim::decide::{Adversity, Decider};

const CLIENTS: usize = 4;
const MAX_STEPS: usize = 30;
/// A soft limit a few bursts reach, so the server holds the room for a reader that stopped.
const SMALL_SOFT_BYTES: usize = 64 * 1024;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly text without newlines; sometimes any bytes, newlines and NULs included.
    prop_oneof![
        // Any byte but a newline, drawn directly: a filter would reject one byte in 256, and
        // proptest gives up after 65 536 rejections (a few hundred thousand cases).
        4 => proptest::collection::vec((0u8..=254).prop_map(|b| if b >= b'\n' { b + 1 } else { b }), 1..40),
        1 => proptest::collection::vec(any::<u8>(), 0..60),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let n = 0..CLIENTS;
    prop_oneof![
        3 => n.clone().prop_map(Step::Join),
        6 => (n.clone(), bytes()).prop_map(|(n, t)| Step::Say(n, t)),
        1 => (n.clone(), bytes()).prop_map(|(n, t)| Step::Raw(n, t)),
        1 => n.clone().prop_map(Step::Exit),
        1 => n.clone().prop_map(Step::Reset),
        1 => n.clone().prop_map(Step::StopReading),
        1 => (1u64..50).prop_map(|ms| Step::Sleep(Duration::from_millis(ms))),
        1 => Just(Step::StopServer),
        1 => n.clone().prop_map(Step::Pause),
        1 => n.clone().prop_map(Step::Resume),
        1 => (1..=CLIENTS).prop_map(Step::Crowd),
        // A burst: more than one flush sends, so partial sends, EAGAIN and (with a small soft
        // limit and a reader that stopped) a held room happen.
        1 => (n, 1usize..3000).prop_map(|(n, lines)| Step::Raw(n, b"z\n".repeat(lines))),
    ]
}

fn config() -> impl Strategy<Value = SessionConfig> {
    let modes = prop_oneof![
        Just((Backend::Select, Mode::LEVEL)),
        Just((Backend::Poll, Mode::LEVEL)),
        Just((Backend::Epoll, Mode::LEVEL)),
        Just((Backend::Epoll, Mode::EDGE)),
        Just((Backend::Epoll, Mode::ONESHOT)),
    ];
    let soft_bytes = prop_oneof![
        Just(Limits::default().outbound_soft_bytes),
        Just(SMALL_SOFT_BYTES)
    ];
    (modes, any::<u64>(), any::<bool>(), 8usize..200, soft_bytes).prop_map(
        |((backend, mode), seed, hostile, max_line_bytes, outbound_soft_bytes)| {
            let adversity = if hostile {
                Adversity {
                    spurious_per_mille: 200,
                    defer_per_mille: 300,
                    ..Adversity::PARTIAL_IO
                }
            } else {
                Adversity::NONE
            };
            let limits = Limits {
                max_line_bytes,
                outbound_soft_bytes,
                ..Limits::default()
            };
            SessionConfig {
                backend,
                mode,
                limits,
                decide: Decider::seeded(seed, adversity),
                ..SessionConfig::default()
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: util::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn every_line_reaches_every_other_present_client_exactly_once_in_order(
        config in config(),
        steps in proptest::collection::vec(step(), 1..MAX_STEPS),
    ) {
        let limits = config.limits;
        let outcome = Session::new(config).expect("server starts").run(&steps);
        let o = outcome.map_err(|e| TestCaseError::fail(format!("the session did not settle ({e}): a busy loop?")))?;
        check(&steps, &o, CLIENTS, &limits).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
