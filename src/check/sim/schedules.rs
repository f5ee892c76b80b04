//! `check --sim`'s checks: their names, their schedules, and the adversaries they run under.

use std::time::Duration;

use super::Case;
use super::descheduled::Descheduled;
use crate::session::schedules::{self, say};
use crate::session::script::{CHAT_FUZZ_CLIENT_RCVBUF_BYTES, ChatScript};
use crate::session::{Failure, Step, Symptom};
use crate::sim::decide::{Adversity, SplitMix64};

/// The adversary `check --sim` applies: everything lawful the chat properties can account
/// for (a reset client is owed only a prefix), EMFILE and ENFILE from accept included.
///
/// No spurious wake-ups: for a TCP socket Linux computes readiness when the program waits
/// (`tcp_poll` from `do_select` and `do_poll`; `ep_send_events` polls each ready item again
/// with `ep_item_poll` before reporting it), so a single-threaded program that reads after a
/// wait said readable finds data or the end of the stream, and a blocking read there is no
/// fault. (select(2) BUGS allows more, for other kernels; the reference's own tests keep it.)
pub const CHECK_ADVERSITY: Adversity = Adversity {
    short_io_per_mille: 300,
    eintr_per_mille: 100,
    reset_per_mille: 5,
    emfile_per_mille: 20,
    enfile_per_mille: 10,
    defer_per_mille: 100,
    hold_back_per_mille: 300,
    ..Adversity::NONE
};

/// The longest line a check sends: any server's limit is assumed to be at least this (an
/// over-long line is `selectlab check ADDR`'s `long-line`).
pub const MAX_SENT_LINE_BYTES: usize = 1000;
/// The long line of `long-line`: over any limit a server is likely to have, far under what a
/// server that delivers it whole must hold.
pub const LONG_LINE_BYTES: usize = 10_000;
/// The adversary of `resets-during-broadcast`: resets alone, often enough that some land on
/// the server's sends in the middle of a broadcast.
pub(super) const RESETS_ONLY: Adversity = Adversity {
    reset_per_mille: 20,
    ..Adversity::NONE
};
/// Sessions `resets-during-broadcast` runs, from `--seed` on: in about half of them a reset
/// lands on one of the server's sends in the middle of a broadcast (measured on the fixture
/// with seeds 1 to 6).
pub(super) const RESETS_RUNS: u32 = 6;

/// A named check.
pub struct SimCheck {
    /// Its name, for `--only`.
    pub name: &'static str,
    /// What it does, one line.
    pub about: &'static str,
}

/// Every check, in the order they run.
pub const SIM_CHECKS: &[SimCheck] = &[
    SimCheck {
        name: "conversation",
        about: "four clients talk; a two-line write, an exit, a reset and a late joiner",
    },
    SimCheck {
        name: "split-line",
        about: "a line arrives in three writes, and two lines in one",
    },
    SimCheck {
        name: "burst",
        about: "20 000 short lines in one write (more than one read takes)",
    },
    SimCheck {
        name: "crowd",
        about: "six clients join at once, then two speak",
    },
    SimCheck {
        name: "paused-reader",
        about: "a reader pauses while 5 000 lines pile up for it, types, and carries on",
    },
    SimCheck {
        name: "slow-reader",
        about: "a reader stops reading for good while the others talk",
    },
    SimCheck {
        name: "memory",
        about: "a reader stops for good and 16 MiB are sent to it: the server may queue some of \
                it or drop the reader, but its memory must not grow by half of it",
    },
    SimCheck {
        name: "reset-after-lines",
        about: "a client says two lines and its connection is reset; the other goes on",
    },
    SimCheck {
        name: "quick-close",
        about: "a client connects and closes at once, having said nothing; the room goes on, and takes a newcomer",
    },
    SimCheck {
        name: "many-joins",
        about: "200 clients join at once; the first and the last speak",
    },
    SimCheck {
        name: "fd-reuse",
        about: "one wait sees a line, a newcomer and a reset at once: the newcomer, perhaps at \
                the reset client's descriptor number, must keep its place in the room",
    },
    SimCheck {
        name: "long-line",
        about: "a 10 000-byte line: refused (its sender cut off) or delivered whole, the others go on",
    },
    SimCheck {
        name: "resets-during-broadcast",
        about: "five clients talk while the network resets connections, the server's sends included",
    },
    SimCheck {
        name: "idle",
        about: "the room is quiet for 5 s of virtual time: the server must block in its wait",
    },
    SimCheck {
        name: "adversary",
        about: "random schedules (--cases) under the seeded lawful adversary",
    },
    SimCheck {
        name: "portability",
        about: "the adversary's schedules with spurious wake-ups too, which Linux never gives \
                a TCP socket and select(2) BUGS allows elsewhere: a failure is a WARN",
    },
];

/// The adversary of `portability`: [`CHECK_ADVERSITY`] and spurious wake-ups, which only the
/// man pages allow (select(2) BUGS: a descriptor reported ready, then a read that blocks).
pub(super) const PORTABLE_ADVERSITY: Adversity = Adversity {
    spurious_per_mille: 100,
    ..CHECK_ADVERSITY
};

/// The check whose failures are portability hazards (WARN), not faults on Linux.
pub const PORTABILITY_CHECK: &str = "portability";

/// Virtual time `many-joins` lets pass after the crowd connects: every SYN retransmission
/// Linux makes (`tcp_syn_retries` = 6: at 1, 3, 7, 15, 31 and 63 s) for the clients a full
/// accept queue turned away. Those still outside then are not judged (on Linux their
/// connects time out at 127 s): the server chose its backlog.
const MANY_JOINS_SYN_RETRIES: Duration = Duration::from_secs(64);

/// Lines in `burst`: more than one read of most servers takes.
const BURST_LINES: usize = 20_000;
/// Lines sent while `paused-reader`'s reader is paused: more than its socket holds.
const PAUSE_LINES: usize = 5_000;

/// The steps of a named check (the zoo's generic schedules, and a few of its own).
pub(super) fn schedule(name: &str) -> Vec<Step> {
    match name {
        "conversation" => schedules::conversation(),
        "split-line" => vec![
            Step::Join(0),
            Step::Join(1),
            Step::Raw(0, b"a line in".to_vec()),
            Step::Raw(0, b" three wr".to_vec()),
            Step::Raw(0, b"ites\nand two\nin one\n".to_vec()),
            say(1, "heard"),
        ],
        "burst" => schedules::burst(BURST_LINES),
        "crowd" => schedules::crowd(),
        "paused-reader" => schedules::paused(PAUSE_LINES),
        "slow-reader" => schedules::slow_reader(),
        "reset-after-lines" => vec![
            Step::Join(0),
            Step::Join(1),
            say(0, "one line"),
            say(0, "and another"),
            Step::Reset(0),
            say(1, "still here"),
        ],
        "quick-close" => vec![
            Step::Join(0),
            Step::Join(1),
            Step::Join(2),
            Step::Exit(2),
            say(0, "did someone knock?"),
            say(1, "no one"),
            Step::Join(3),
            say(3, "someone now"),
        ],
        // A server may listen with a backlog smaller than the crowd: Linux then drops the
        // extra SYNs and the clients retry after 1 s and 3 s, which virtual time lets happen.
        "many-joins" => vec![
            Step::Crowd(200),
            Step::Sleep(MANY_JOINS_SYN_RETRIES),
            say(0, "hello, all"),
            say(199, "hi"),
        ],
        "long-line" => schedules::long_line(LONG_LINE_BYTES),
        "resets-during-broadcast" => {
            let mut steps = vec![Step::Crowd(8)];
            let lines: Vec<String> = (1..=8).map(|n| format!("c{n} to everyone")).collect();
            steps.extend((0..400).map(|i| say(i % 8, &lines[i % 8])));
            steps
        }
        "fd-reuse" => vec![
            Step::Join(0),
            Step::Join(1),
            // The server is descheduled for these three (FD_REUSE_OFF): the line comes first
            // in its next batch of events, the newcomer next, the reset last, so a server that
            // closes c2 on a failed send and then accepts may hand c3 the number whose
            // hang-up is still to come in the same batch.
            say(0, "first in the batch"),
            Step::Join(2),
            Step::Reset(1),
            say(2, "made it"),
            say(0, "welcome, c3"),
        ],
        "memory" => {
            let line = [vec![b'm'; MEMORY_LINE_BYTES - 1], vec![b'\n']].concat();
            vec![
                Step::Join(0),
                Step::Join(1),
                Step::StopReading(1),
                Step::Raw(0, line.repeat(MEMORY_SENT_BYTES / MEMORY_LINE_BYTES)),
            ]
        }
        "idle" => vec![
            Step::Join(0),
            Step::Join(1),
            say(0, "anyone?"),
            Step::Sleep(Duration::from_secs(5)),
            say(1, "still here"),
        ],
        _ => Vec::new(),
    }
}

/// What `memory` sends a reader that stopped: far more than a server is likely to keep for
/// one client, so that all of it held is no bound.
const MEMORY_SENT_BYTES: usize = 16 << 20;
/// The lines `memory` sends, newline included: under [`MAX_SENT_LINE_BYTES`].
const MEMORY_LINE_BYTES: usize = 1000;
/// How much `memory` lets the server's peak memory grow once the reader stopped: half of what
/// is sent (a bounded queue of up to 8 MiB per client passes).
const MEMORY_HELD_LIMIT_BYTES: u64 = MEMORY_SENT_BYTES as u64 / 2;
/// The step of `memory` after which the reader has stopped: where its growth is counted from.
pub(super) const MEMORY_BASELINE_STEP: usize = 2;

/// Judges `memory`: the server's peak memory grew by less than [`MEMORY_HELD_LIMIT_BYTES`]
/// after its reader stopped.
pub(super) fn memory_held(o: &super::Outcome) -> Result<(), Failure> {
    let peak = |step: Option<&Option<u64>>| step.copied().flatten();
    let before = peak(o.server_peak_resident.get(MEMORY_BASELINE_STEP));
    let after = peak(o.server_peak_resident.last());
    let (Some(before), Some(after)) = (before, after) else {
        let what = "its memory could not be read (/proc/PID/status, VmHWM)";
        return Err(Failure::new(Symptom::Memory, what).with_transcript(&o.transcript));
    };
    let grew = after.saturating_sub(before);
    if grew > MEMORY_HELD_LIMIT_BYTES {
        let what = format!(
            "its memory grew by {} MiB while a reader that stopped was sent {} MiB: a queue \
             with no bound",
            grew >> 20,
            MEMORY_SENT_BYTES >> 20,
        );
        return Err(Failure::new(Symptom::Memory, what).with_transcript(&o.transcript));
    }
    Ok(())
}

/// The steps of `fd-reuse` during which the server is descheduled.
const FD_REUSE_OFF: std::ops::Range<usize> = 2..5;

/// The descheduled stretch of a named check, and what its clients must hear.
pub(super) fn descheduled(name: &str) -> Option<Descheduled> {
    (name == "fd-reuse").then_some(Descheduled {
        steps: FD_REUSE_OFF,
        must_hear: &[(0, "made it"), (2, "welcome, c3")],
    })
}

/// The seed of the `adversary` check's case `i`: `--seed` plus `i`, so a case replays alone
/// as `--seed <that> --cases 1`.
pub(super) fn case_seed(seed: u64, i: u32) -> u64 {
    seed.wrapping_add(u64::from(i))
}

/// A random schedule under the adversary, as the zoo's adversary makes them, less what a
/// foreign server cannot be judged on: stopping the server, and lines over
/// [`MAX_SENT_LINE_BYTES`].
pub(super) fn random_case(seed: u64, adversity: Adversity) -> Case {
    let mut rng = SplitMix64(seed);
    let script = ChatScript::decode(&rng.bytes(crate::session::script::CHAT_FUZZ_SCRIPT_BYTES));
    let steps = (script.steps.into_iter())
        .filter(|s| match s {
            Step::StopServer => false,
            Step::Say(_, b) | Step::Raw(_, b) | Step::Drip(_, b) => b
                .split(|&c| c == b'\n')
                .all(|line| line.len() <= MAX_SENT_LINE_BYTES),
            _ => true,
        })
        .collect();
    Case {
        steps,
        adversity: Some((rng.next(), adversity)),
        rcvbuf: Some(CHAT_FUZZ_CLIENT_RCVBUF_BYTES),
        long_line: false,
        crowded: false,
        descheduled: None,
        memory: false,
    }
}
