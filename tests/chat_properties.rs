//! The chat room's properties, for any schedule of joins, leaves, lines, resets and partial
//! writes, under the lawful adversary (short reads and writes, spurious wakeups, EINTR):
//! every line a client sends while others are connected reaches each of them exactly once,
//! whole, in the sender's order; never the sender; never a client that has left; nothing of a
//! line cut short by its sender's reset or exit; the server never busy-loops (each step settles
//! within a bound, and wakeups stay proportional to the work) and never queues past its cap.
//! On failure, proptest shrinks the schedule and the message carries its transcript.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use selectlab::chat::session::{Outcome, Session, SessionConfig, Step};
use selectlab::kernel::Mode;
use selectlab::readiness::Backend;
use selectlab::sim::decide::{Adversity, Decider};

const CLIENTS: usize = 4;
const MAX_STEPS: usize = 30;

fn text() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but the newline (NULs and non-UTF-8 included), 1 to 40 of them.
    proptest::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        1..40,
    )
}

fn step() -> impl Strategy<Value = Step> {
    let n = 0..CLIENTS;
    prop_oneof![
        3 => n.clone().prop_map(Step::Join),
        6 => (n.clone(), text()).prop_map(|(n, t)| Step::Say(n, t)),
        1 => (n.clone(), text()).prop_map(|(n, t)| Step::Raw(n, t)),
        1 => n.clone().prop_map(Step::Exit),
        1 => n.prop_map(Step::Reset),
        1 => (1u64..50).prop_map(|ms| Step::Sleep(Duration::from_millis(ms))),
    ]
}

fn config() -> impl Strategy<Value = SessionConfig> {
    let modes = prop_oneof![
        Just((Backend::Select, Mode::LEVEL)),
        Just((Backend::Poll, Mode::LEVEL)),
        Just((Backend::Epoll, Mode::LEVEL)),
        Just((Backend::Epoll, Mode::EDGE)),
    ];
    (modes, any::<u64>(), any::<bool>()).prop_map(|((backend, mode), seed, hostile)| {
        let adversity = if hostile {
            Adversity {
                spurious_per_mille: 200,
                ..Adversity::PARTIAL_IO
            }
        } else {
            Adversity::NONE
        };
        SessionConfig {
            backend,
            mode,
            decide: Decider::seeded(seed, adversity),
            ..SessionConfig::default()
        }
    })
}

/// What each client should have heard: (sender number, line), in order.
fn expected(steps: &[Step]) -> Vec<Vec<(usize, Vec<u8>)>> {
    let mut heard = vec![Vec::new(); CLIENTS];
    let mut joined = BTreeSet::new();
    let mut present = BTreeSet::new();
    let mut pending: Vec<Vec<u8>> = vec![Vec::new(); CLIENTS];
    for s in steps {
        match s {
            Step::Join(n) if joined.insert(*n) => {
                present.insert(*n);
            }
            Step::Raw(n, bytes) if present.contains(n) => pending[*n].extend_from_slice(bytes),
            Step::Say(n, t) if present.contains(n) => {
                let mut line = std::mem::take(&mut pending[*n]);
                line.extend_from_slice(t);
                for m in present.iter().filter(|m| *m != n) {
                    heard[*m].push((*n, line.clone()));
                }
            }
            Step::Exit(n) | Step::Reset(n) => {
                present.remove(n);
                pending[*n].clear();
            }
            _ => {}
        }
    }
    heard
}

/// What each client did hear: "say" lines parsed back to (sender number, text).
fn heard(o: &Outcome) -> Vec<Vec<(usize, Vec<u8>)>> {
    let sender_of = |addr: &[u8]| {
        o.clients.iter().position(|c| {
            c.addr
                .as_ref()
                .is_some_and(|a| a.to_string().as_bytes() == addr)
        })
    };
    (0..CLIENTS)
        .map(|m| {
            let Some(c) = o.clients.get(m) else {
                return Vec::new();
            };
            c.lines
                .iter()
                .filter_map(|l| {
                    // "YYYY-mm-dd HH:MM:SS ('ip', port) say: text"
                    let rest = l.get(20..)?;
                    let at = rest.windows(6).position(|w| w == b" say: ")?;
                    let who = sender_of(&rest[..at]).expect("a known sender");
                    Some((who, rest[at + 6..].to_vec()))
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_line_reaches_every_other_present_client_exactly_once_in_order(
        config in config(),
        steps in proptest::collection::vec(step(), 1..MAX_STEPS),
    ) {
        let cap = config.limits.outbound_cap_bytes;
        let o = Session::new(config).expect("server starts").run(&steps);
        let o = match o {
            Ok(o) => o,
            Err(e) => return Err(TestCaseError::fail(format!("the session did not settle ({e}): a busy loop?"))),
        };
        prop_assert_eq!(heard(&o), expected(&steps), "\n{}", o.transcript);
        prop_assert!(o.peak_queue_bytes <= cap);
        let work = (steps.len() as u64 + 1) * 40 + o.stats.bytes_in + o.stats.bytes_out;
        prop_assert!(o.stats.events <= work, "{} events for {} units of work\n{}", o.stats.events, work, o.transcript);
    }
}
