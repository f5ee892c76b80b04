//! A scripted chat session from arbitrary bytes: what the `chat_adversary` fuzz target runs,
//! and what the zoo's adversary and `check --sim`'s random cases draw. The first
//! [`CHAT_FUZZ_SCRIPT_BYTES`] of an input are the script (backend and mode, the room's line
//! limit, up to [`CHAT_FUZZ_MAX_STEPS`] steps of up to [`CHAT_FUZZ_CLIENTS`] clients); the rest
//! decide the schedule.

use arbitrary::Unstructured;

use super::symptom::{Failure, Symptom};
use super::{Session, SessionConfig, Step, case, properties};
use crate::bugs::Bugs;
use crate::chat::server::Limits;
use crate::kernel::Mode;
use crate::readiness::{BACKEND_MODES, Backend};
use crate::sim::decide::{Adversity, Decider};

/// Clients in one `chat_adversary` session.
pub const CHAT_FUZZ_CLIENTS: usize = 4;
/// Most steps in one `chat_adversary` session.
pub const CHAT_FUZZ_MAX_STEPS: usize = 40;
/// How many of an input's bytes are the script; the rest are the schedule's decisions.
pub const CHAT_FUZZ_SCRIPT_BYTES: usize = 256;
/// SO_RCVBUF of a `chat_adversary` client: doubled by the kernel, to Linux's smallest
/// window (`sim::state::RCVBUF_MIN_BYTES`), so the server's sends run short and into EAGAIN
/// after a few hundred lines, not thousands.
pub const CHAT_FUZZ_CLIENT_RCVBUF_BYTES: i32 = 1152;
/// Lines a `chat_adversary` burst grows by per unit of its size byte: the largest burst,
/// 511 lines (some 23 KB, a line of a burst being about 45 bytes), is past a client's window
/// and the server's send buffer together (18.7 KB).
pub const CHAT_FUZZ_BURST_STEP_LINES: usize = 2;
/// Most burst lines in one `chat_adversary` session, all bursts together: two of the largest.
/// One burst fills every buffer on the way, and a second finds them still full; more only
/// repeats that at a cost. Without this budget, libFuzzer's mutations (which copy a burst's
/// bytes over and over) made inputs of 30 bursts and 28 000 lines, a few per cent of the
/// corpus that took more than half of the fuzzer's time.
pub const CHAT_FUZZ_MAX_BURST_LINES: usize = 2 * (1 + 255 * CHAT_FUZZ_BURST_STEP_LINES);

/// The kinds of choice the fuzzer's bytes make in a chat session: everything that loses
/// nothing (short reads and writes, EINTR, spurious wakeups, partial waits, which client runs
/// between the server's syscalls). Faults come from the script (exits, resets mid-line).
pub const CHAT_FUZZ_SCHEDULE: Adversity = Adversity {
    spurious_per_mille: 1,
    defer_per_mille: 1,
    ..Adversity::PARTIAL_IO
};

/// One step from the fuzzer's bytes; a burst takes its lines from `burst_lines_left`.
fn arbitrary_step(
    u: &mut Unstructured<'_>,
    burst_lines_left: &mut usize,
) -> arbitrary::Result<Step> {
    let n = usize::from(u.arbitrary::<u8>()?) % CHAT_FUZZ_CLIENTS;
    let text = |u: &mut Unstructured<'_>| -> arbitrary::Result<Vec<u8>> {
        let len = usize::from(u.arbitrary::<u8>()?) % 48;
        Ok(u.bytes(len)?.to_vec())
    };
    Ok(match u.arbitrary::<u8>()? % 15 {
        0 | 1 => Step::Join(n),
        2..=5 => Step::Say(n, text(u)?),
        6 => Step::Raw(n, text(u)?),
        7 => Step::Exit(n),
        8 => Step::Reset(n),
        9 => Step::Crowd(n + 1),
        10 => Step::StopReading(n),
        11 => Step::Pause(n),
        12 => Step::Resume(n),
        13 => {
            // A burst: more lines than one flush sends, so partial sends and EAGAIN happen.
            // Once the session's budget is spent, a burst is one line.
            let wanted = 1 + usize::from(u.arbitrary::<u8>()?) * CHAT_FUZZ_BURST_STEP_LINES;
            let lines = wanted.min(*burst_lines_left).max(1);
            *burst_lines_left = burst_lines_left.saturating_sub(lines);
            Step::Raw(n, b"z\n".repeat(lines))
        }
        _ => Step::Sleep(std::time::Duration::from_millis(u64::from(
            u.arbitrary::<u8>()?,
        ))),
    })
}

/// A chat session decoded from a script: backend and mode, limits, and the steps.
#[derive(Debug, Clone)]
pub struct ChatScript {
    /// The server's backend.
    pub backend: Backend,
    /// Its mode.
    pub mode: Mode,
    /// The room's limits.
    pub limits: Limits,
    /// What the clients do.
    pub steps: Vec<Step>,
}

impl ChatScript {
    /// Decodes a script (any bytes make one; running out of bytes ends it).
    pub fn decode(script: &[u8]) -> ChatScript {
        let mut u = Unstructured::new(script);
        let which = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % BACKEND_MODES.len();
        let (backend, mode) = BACKEND_MODES[which];
        let limits = Limits {
            max_line_bytes: usize::from(u.arbitrary::<u8>().unwrap_or(0)) + 8,
            ..Limits::default()
        };
        let mut steps = Vec::new();
        let mut burst_lines_left = CHAT_FUZZ_MAX_BURST_LINES;
        while steps.len() < CHAT_FUZZ_MAX_STEPS {
            let Ok(step) = arbitrary_step(&mut u, &mut burst_lines_left) else {
                break;
            };
            steps.push(step);
        }
        ChatScript {
            backend,
            mode,
            limits,
            steps,
        }
    }

    /// Runs it with `decide` and the zoo's `bugs`, and checks the chat properties. Quietly
    /// first; the session is deterministic, so a failure re-runs with its transcript, which the
    /// error carries.
    pub fn check(&self, decide: &Decider, bugs: Bugs) -> Result<(), Failure> {
        let run = |transcript: bool| -> Result<(), Failure> {
            let config = SessionConfig {
                backend: self.backend,
                mode: self.mode,
                limits: self.limits,
                decide: decide.clone(),
                transcript,
                bugs,
                client_rcvbuf_bytes: Some(CHAT_FUZZ_CLIENT_RCVBUF_BYTES),
                ..SessionConfig::default()
            };
            let session = Session::new(config).map_err(|e| {
                Failure::new(
                    Symptom::CannotStart,
                    format!("the server failed to start: {e}"),
                )
            })?;
            let (outcome, settled) = session.run_all(&self.steps);
            case::settled(&self.steps, settled, &outcome)?;
            properties::check(&self.steps, &outcome, CHAT_FUZZ_CLIENTS, &self.limits)
        };
        run(false).or_else(|_| run(true))
    }
}
