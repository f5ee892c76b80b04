//! The tutorial's closing lesson, level- vs edge-triggered notification, as a program: one writer
//! and one reader over an AF_UNIX stream pair, driven by the [`Reactor`] on any backend.
//!
//! The reader either takes one chunk per event or drains to EAGAIN; the writer either keeps
//! the unsent tail of a short send or (the classic bug) takes every send as whole. The tests
//! turn these into properties; `selectlab demo lt-vs-et` prints the same exchange under level
//! and edge triggering side by side.

use std::io::Write;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::SockType;
use crate::kernel::{Events, Fd, Kernel, Mode};
use crate::reactor::{App, Io, Reactor};
use crate::readiness::{Backend, Token};
use crate::sim::Sim;

/// Size of one write and of one read.
pub const CHUNK_BYTES: usize = 1_000;
/// Number of chunks in an exchange.
pub const CHUNKS: usize = 8;
/// Bytes in an exchange.
pub const TOTAL_BYTES: usize = CHUNK_BYTES * CHUNKS;
/// Bound on reactor turns per exchange in the tests; a stalled reader hits it.
pub const MAX_TURNS: usize = 200;
/// Turns the demo allows: enough for level triggering to finish, few enough to read.
pub const DEMO_TURNS: usize = 12;
/// Each turn's wait (virtual time in the simulator).
pub const TURN_WAIT: Duration = Duration::from_millis(5);

const WRITER: Token = Token(0);
const READER: Token = Token(1);

/// How the reader treats an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// One `recv` per event (correct only under level triggering).
    OneChunk,
    /// `recv` until EAGAIN (correct everywhere).
    Drain,
}

/// How the writer treats a short send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Keeps the unsent tail and sends it next (correct).
    KeepTail,
    /// Takes every send as whole (the bug partial writes expose).
    AssumeWhole,
    /// Writes everything before the reactor starts (the data is already there).
    Upfront,
}

/// The byte at position `i` of the exchange.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

struct Exchange {
    w: Fd,
    r: Fd,
    mode: Mode,
    reader: Reader,
    writer: Writer,
    written: usize,
    received: Vec<u8>,
    log: Vec<String>,
}

impl Exchange {
    fn rearm(&self, io: &mut Io<'_>, token: Token, interest: Events) {
        if self.mode.oneshot {
            io.modify(token, interest, self.mode)
                .expect("re-arming a registered descriptor");
        }
    }

    fn write(&mut self, io: &mut Io<'_>) {
        // Bounded: each pass moves at least one byte or stops.
        for _ in 0..TOTAL_BYTES {
            if self.written == TOTAL_BYTES {
                let _ = io.deregister(WRITER);
                return;
            }
            let end = (self.written + CHUNK_BYTES).min(TOTAL_BYTES);
            let data: Vec<u8> = (self.written..end).map(pattern).collect();
            match io.kernel.send(self.w, &data) {
                Ok(n) if self.writer == Writer::KeepTail => self.written += n,
                Ok(_) => self.written = end,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    self.log.push(format!("writer: send failed: {e}"));
                    return;
                }
            }
        }
        self.rearm(io, WRITER, Events::OUT);
    }

    fn read(&mut self, io: &mut Io<'_>, events: Events) {
        let mut buf = [0u8; CHUNK_BYTES];
        let passes = if self.reader == Reader::Drain {
            TOTAL_BYTES + 1
        } else {
            1
        };
        let mut got = 0;
        for _ in 0..passes {
            match io.kernel.recv(self.r, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    got += n;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    self.log.push(format!("reader: recv failed: {e}"));
                    return;
                }
            }
        }
        self.log.push(format!(
            "t={:?} reader event {events}: read {got}, total {}",
            io.now(),
            self.received.len()
        ));
        self.rearm(io, READER, Events::IN);
    }
}

impl App for Exchange {
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, events: Events) {
        if token == WRITER {
            self.write(io)
        } else {
            self.read(io, events)
        }
    }
}

/// What an exchange achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes the reader got, in order.
    pub received: Vec<u8>,
    /// Whether everything arrived within [`MAX_TURNS`].
    pub finished: bool,
    /// One line per reader event.
    pub log: Vec<String>,
}

/// Runs one exchange on `kernel` with the given backend, mode, reader and writer, for at most
/// `max_turns` reactor turns.
pub fn exchange(
    kernel: &mut dyn Kernel,
    backend: Backend,
    mode: Mode,
    reader: Reader,
    writer: Writer,
    max_turns: usize,
) -> Result<Outcome, Errno> {
    let (w, r) = kernel.socketpair(SockType::Stream)?;
    let mut app = Exchange {
        w,
        r,
        mode,
        reader,
        writer,
        written: 0,
        received: Vec::new(),
        log: Vec::new(),
    };
    let mut reactor = Reactor::new(kernel, backend)?;
    if writer == Writer::Upfront {
        for start in (0..TOTAL_BYTES).step_by(CHUNK_BYTES) {
            let data: Vec<u8> = (start..start + CHUNK_BYTES).map(pattern).collect();
            let n = kernel.send(w, &data)?;
            app.written += n;
        }
    } else {
        reactor.io(kernel).register(w, WRITER, Events::OUT, mode)?;
    }
    reactor.io(kernel).register(r, READER, Events::IN, mode)?;
    let done = |a: &Exchange| a.written == TOTAL_BYTES && a.received.len() == TOTAL_BYTES;
    let finished = match reactor.run_until(kernel, &mut app, Some(TURN_WAIT), max_turns, done) {
        Ok(_) => true,
        Err(Errno::ETIMEDOUT) => false,
        Err(e) => return Err(e),
    };
    reactor.close(kernel);
    kernel.close(w)?;
    kernel.close(r)?;
    Ok(Outcome {
        received: app.received,
        finished,
        log: app.log,
    })
}

/// Width of one column of the side-by-side demo.
const COLUMN_CHARS: usize = 58;

/// `selectlab demo lt-vs-et`: the same exchange (data written first, one chunk read per event)
/// under level and edge triggering, in the faithful simulator, side by side.
pub fn demo(out: &mut dyn Write) -> Result<(), Errno> {
    let mut columns = Vec::new();
    for (title, mode) in [
        ("epoll, level-triggered", Mode::LEVEL),
        ("epoll, edge-triggered (EPOLLET)", Mode::EDGE),
    ] {
        let mut sim = Sim::faithful();
        let o = exchange(
            &mut sim,
            Backend::Epoll,
            mode,
            Reader::OneChunk,
            Writer::Upfront,
            DEMO_TURNS,
        )?;
        let mut lines = vec![title.to_string(), "-".repeat(title.len())];
        lines.extend(o.log);
        lines.push(if o.finished {
            format!("all {TOTAL_BYTES} bytes delivered")
        } else {
            format!(
                "STALLED: {} of {TOTAL_BYTES} bytes after {DEMO_TURNS} waits",
                o.received.len()
            )
        });
        lines.push(String::new());
        lines.push("kernel calls:".into());
        lines.extend(sim.transcript().records().iter().map(|r| r.to_string()));
        columns.push(lines);
    }
    let _ = writeln!(
        out,
        "# {CHUNKS} chunks of {CHUNK_BYTES} bytes are queued; the reader takes one chunk per event."
    );
    let _ = writeln!(
        out,
        "# Level-triggered epoll reports again while data remains; edge-triggered reports the"
    );
    let _ = writeln!(
        out,
        "# arrival once, so a reader that does not drain to EAGAIN waits for ever.\n"
    );
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..rows {
        let cell = |c: &Vec<String>| {
            let s = c.get(i).map(String::as_str).unwrap_or("");
            let s: String = s.chars().take(COLUMN_CHARS).collect();
            format!("{s:<COLUMN_CHARS$}")
        };
        let _ = writeln!(
            out,
            "{} | {}",
            cell(&columns[0]),
            cell(&columns[1]).trim_end()
        );
    }
    Ok(())
}
