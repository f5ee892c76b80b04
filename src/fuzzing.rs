//! The logic of the fuzz targets in `fuzz/`, kept here so that `cargo test` replays every
//! committed corpus file and regression input through the same functions, on stable, without
//! cargo-fuzz (`tests/it/fuzz_corpus.rs`). Each function panics when a property fails; any other
//! input returns quietly. Inputs are bounded (the `MAX_*` constants), so every run is short.

use arbitrary::{Arbitrary, Unstructured};
use nix::errno::Errno;

use crate::addr::{Family, SockType};
use crate::bugs::Bugs;
use crate::chat::framing::{LineReader, LineTooLong};
use crate::differential;
use crate::kernel::{Events, Fd, Kernel, PollFd, Shutdown};
use crate::readiness::BACKEND_MODES;
use crate::session::Failure;
use crate::session::script::{CHAT_FUZZ_SCHEDULE, CHAT_FUZZ_SCRIPT_BYTES, ChatScript};
use crate::sim::decide::{Adversity, Decider};
use crate::sim::{Sim, SimConfig};

/// Names of the targets, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 5] = [
    "chat_codec",
    "scenario_parse",
    "sim_sockets",
    "readiness_diff",
    "chat_adversary",
];

/// Whether cargo-fuzz builds `target` with compare tracing (`-sanitizer-coverage-trace-compares`,
/// its default). `chat_adversary` is built without: its bytes become choices through modular
/// arithmetic, never compared with a constant, so tracing the session's and the checker's own
/// comparisons guided nothing and took half its time (3 264 executions per second without,
/// 1 626 with, the same edges after 20 s). The parsers keep it: it finds their keywords.
pub fn traces_compares(target: &str) -> bool {
    target != "chat_adversary"
}

/// Runs the named target on one input (for the corpus replay); `false` for an unknown name.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match name {
        "chat_codec" => chat_codec(data),
        "scenario_parse" => scenario_parse(data),
        "sim_sockets" => sim_sockets(data),
        "readiness_diff" => readiness_diff(data),
        "chat_adversary" => chat_adversary(data),
        _ => return false,
    }
    true
}

// ----- chat_codec --------------------------------------------------------------------------------

/// The reference: lines of `stream` in order, and whether (and after how many lines) the limit
/// is exceeded.
fn reference_lines(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
    let mut lines = Vec::new();
    let mut parts = stream.split(|&b| b == b'\n').peekable();
    while let Some(part) = parts.next() {
        let complete = parts.peek().is_some();
        if part.len() > max {
            return (lines, true);
        }
        if complete {
            lines.push(part.to_vec());
        }
    }
    (lines, false)
}

/// Line framing: any split of the same stream gives the same lines, and the same verdict on
/// an over-long line, as the reference.
pub fn chat_codec(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let max = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 64) + 1;
    let cuts: Vec<u8> = u.arbitrary().unwrap_or_default();
    let stream = u.take_rest();
    let (want, want_too_long) = reference_lines(stream, max);
    let mut reader = LineReader::new(max);
    let mut got = Vec::new();
    let mut rest = stream;
    let mut verdict = Ok(());
    for cut in cuts.iter().chain(std::iter::once(&u8::MAX)) {
        let at = (usize::from(*cut) % 17).min(rest.len());
        let (chunk, tail) = if *cut == u8::MAX {
            (rest, &rest[rest.len()..])
        } else {
            rest.split_at(at)
        };
        verdict = reader.push(chunk, |l| got.push(l.to_vec()));
        rest = tail;
        if verdict.is_err() || rest.is_empty() {
            break;
        }
    }
    if verdict.is_ok() && !rest.is_empty() {
        verdict = reader.push(rest, |l| got.push(l.to_vec()));
    }
    assert_eq!(got, want, "lines differ (max {max})");
    assert_eq!(
        verdict.is_err(),
        want_too_long,
        "over-long verdict differs (max {max})"
    );
    if let Err(LineTooLong { max_line_bytes }) = verdict {
        assert_eq!(max_line_bytes, max);
    }
}

// ----- scenario_parse --------------------------------------------------------------------------

/// The scenario parser on arbitrary text: never panics; every error names a line of the text.
pub fn scenario_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match crate::scenario::parse::parse("fuzz.scn", &text) {
        Ok(script) => {
            for c in &script.commands {
                assert!(
                    c.line >= 1 && c.line <= lines,
                    "command line {} of {lines}",
                    c.line
                );
            }
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "error line {} of {lines}",
                e.line
            );
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("fuzz.scn:{}: error: ", e.line)),
                "{shown}"
            );
        }
    }
}

// ----- sim_sockets -----------------------------------------------------------------------------

/// Most operations one `sim_sockets` input runs.
pub const SIM_SOCKETS_MAX_OPS: usize = 64;

#[derive(Debug, Clone, Copy, Arbitrary)]
enum SockOp {
    Send(u8, u16),
    SendV(u8, u16, u16),
    Recv(u8, u16),
    Shut(u8, differential::How),
    Close(u8),
    Poll(u8),
}

/// Errnos Linux allows for each call, for connected streams and pipes (the man pages of each
/// call; `docs/src/simulator.md` has the exception table).
fn allowed(call: &str, e: Errno) -> bool {
    use Errno::*;
    match call {
        "send" => matches!(e, EAGAIN | EPIPE | ECONNRESET | ENOTCONN | EBADF | EINTR),
        "recv" => matches!(
            e,
            EAGAIN | ECONNRESET | ENOTCONN | ETIMEDOUT | EBADF | EINTR | EINVAL
        ),
        "shutdown" => matches!(e, ENOTCONN | EBADF | ENOTSOCK),
        "close" => matches!(e, EBADF),
        _ => false,
    }
}

/// Arbitrary operations on simulated streams (AF_UNIX, TCP, a pipe) with the fuzzer's bytes as
/// the decision source: no panic; per direction, the bytes received are a prefix of the bytes
/// sent; every errno is one Linux allows for that call.
pub fn sim_sockets(data: &[u8]) {
    let (ops_bytes, decisions) = data.split_at(data.len() / 2);
    let mut u = Unstructured::new(ops_bytes);
    let mut streams = Streams::new(decisions);
    for _ in 0..SIM_SOCKETS_MAX_OPS {
        let Ok(op) = u.arbitrary::<SockOp>() else {
            break;
        };
        streams.apply(op);
    }
}

/// The streams `sim_sockets` works on, and what each end sent and got.
struct Streams {
    k: Sim,
    /// Ends, and for each the end it sends to (the pipe's read end sends nowhere).
    ends: [(Fd, Option<usize>); 6],
    open: [bool; 6],
    /// sent[i]: bytes end i's kernel accepted; got[i]: bytes end i read.
    sent: [Vec<u8>; 6],
    got: [Vec<u8>; 6],
}

impl Streams {
    /// A socketpair, a TCP pair and a pipe, with `decisions` as the decision source.
    fn new(decisions: &[u8]) -> Streams {
        // Every choice on established streams: short reads and writes, EINTR, resets, spurious
        // wakeups (EMFILE and lost SYNs belong to set-up, which this target does not exercise).
        let choices = Adversity {
            emfile_per_mille: 0,
            syn_drop_per_mille: 0,
            ..Adversity::HOSTILE
        };
        let config = SimConfig {
            transcript: false,
            ..SimConfig::default()
        };
        let mut k = Sim::new(config, Decider::bytes_with(decisions, choices));
        let (a, b) = k.socketpair(SockType::Stream).expect("socketpair");
        let (c, s) = crate::endpoints::tcp_pair(&mut k, Family::Inet).expect("tcp pair");
        let (r, w) = k.pipe().expect("pipe");
        Streams {
            k,
            ends: [
                (a, Some(1)),
                (b, Some(0)),
                (c, Some(3)),
                (s, Some(2)),
                (r, None),
                (w, Some(4)),
            ],
            open: [true; 6],
            sent: Default::default(),
            got: Default::default(),
        }
    }

    fn apply(&mut self, op: SockOp) {
        let pick = |e: u8| usize::from(e) % 6;
        match op {
            SockOp::Send(e, n) => self.send(pick(e), usize::from(n) % 3000, 0),
            SockOp::SendV(e, n, m) => {
                self.send(pick(e), usize::from(n) % 3000, usize::from(m) % 3000);
            }
            SockOp::Recv(e, n) => self.recv(pick(e), usize::from(n) % 4000 + 1),
            SockOp::Shut(e, h) => {
                if let Err(e) = self.k.shutdown(self.ends[pick(e)].0, Shutdown::from(h)) {
                    assert!(allowed("shutdown", e), "shutdown: {e}");
                }
            }
            SockOp::Close(e) => {
                let i = pick(e);
                let r = self.k.close(self.ends[i].0);
                assert_eq!(r.is_ok(), self.open[i], "close on end {i}: {r:?}");
                self.open[i] = false;
            }
            SockOp::Poll(e) => {
                let events = Events::IN | Events::OUT | Events::RDHUP;
                let mut p = [PollFd::new(self.ends[pick(e)].0, events)];
                self.k
                    .poll(&mut p, Some(std::time::Duration::ZERO))
                    .expect("a zero-timeout poll never fails");
            }
        }
    }

    /// Sends `len + extra` bytes from end `i`: one buffer, or two (`extra` in the second).
    fn send(&mut self, i: usize, len: usize, extra: usize) {
        let start = self.sent[i].len();
        let bytes: Vec<u8> = (start..start + len + extra)
            .map(|x| (x % 251) as u8 ^ (i as u8))
            .collect();
        let fd = self.ends[i].0;
        let r = if extra > 0 {
            self.k.send_vectored(fd, &[&bytes[..len], &bytes[len..]])
        } else {
            self.k.send(fd, &bytes)
        };
        match r {
            Ok(m) => self.sent[i].extend_from_slice(&bytes[..m]),
            Err(e) => assert!(
                allowed("send", e) || (i == 4 && e == Errno::EBADF),
                "send on end {i}: {e}"
            ),
        }
    }

    /// Receives up to `len` bytes at end `i`; what arrived must be a prefix of what its peer
    /// sent.
    fn recv(&mut self, i: usize, len: usize) {
        let mut buf = vec![0; len];
        match self.k.recv(self.ends[i].0, &mut buf) {
            Ok(m) => self.got[i].extend_from_slice(&buf[..m]),
            Err(e) => assert!(allowed("recv", e), "recv on end {i}: {e}"),
        }
        if let Some(p) = self.ends.iter().position(|(_, to)| *to == Some(i)) {
            assert!(
                self.sent[p].starts_with(&self.got[i]),
                "end {i} received bytes end {p} never sent"
            );
        }
    }
}

// ----- readiness_diff --------------------------------------------------------------------------

/// Arbitrary readiness sequences on the kernel and in the faithful simulator: wait results (and
/// every other result) must be identical. Uses real descriptors; each input is bounded by
/// [`differential::READINESS_MAX_OPS`].
pub fn readiness_diff(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let pick = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % BACKEND_MODES.len();
    let (backend, mode) = BACKEND_MODES[pick];
    let mut ops = Vec::new();
    while ops.len() < differential::READINESS_MAX_OPS {
        let Ok(op) = u.arbitrary::<differential::Op>() else {
            break;
        };
        ops.push(op);
    }
    if let Err((real, sim)) = differential::compare_readiness(backend, mode, &ops) {
        assert_eq!(real, sim, "{backend} {mode:?}");
    }
}

// ----- chat_adversary --------------------------------------------------------------------------

/// A chat session of arbitrary clients, lines and faults (exits, resets mid-line) under a
/// schedule the fuzzer picks (its bytes decide every short read and write, EINTR, spurious
/// wakeup, and which client runs between two of the server's syscalls), with the chat
/// properties as assertions.
pub fn chat_adversary(data: &[u8]) {
    if let Err(why) = chat_session(data, zoo_bugs_from_env()) {
        panic!("chat property failed: {why}");
    }
}

/// The environment variable that switches zoo bugs on inside `chat_adversary` (names,
/// comma-separated), so that a fuzzing campaign can be timed to a known bug.
pub const ZOO_BUG_ENV: &str = "SELECTLAB_ZOO_BUG";

/// The bugs [`ZOO_BUG_ENV`] names, read once per process (none when it is unset). A name
/// that is no zoo bug stops the process with a message: a campaign against the wrong server
/// would run silently wrong.
fn zoo_bugs_from_env() -> Bugs {
    static BUGS: std::sync::OnceLock<Bugs> = std::sync::OnceLock::new();
    *BUGS.get_or_init(|| {
        let Ok(list) = std::env::var(ZOO_BUG_ENV) else {
            return Bugs::NONE;
        };
        Bugs::parse_list(&list).unwrap_or_else(|why| {
            eprintln!("selectlab: {ZOO_BUG_ENV}: {why}");
            std::process::exit(2)
        })
    })
}

/// `chat_adversary`'s check as a result, with zoo bugs switched on (the zoo's fuzzer
/// detector runs it).
pub fn chat_session(data: &[u8], bugs: Bugs) -> Result<(), Failure> {
    let (script, decisions) = data.split_at(data.len().min(CHAT_FUZZ_SCRIPT_BYTES));
    let decide = Decider::bytes_with(decisions, CHAT_FUZZ_SCHEDULE);
    ChatScript::decode(script).check(&decide, bugs)
}
