//! The chat client: standard input lines to the server, the server's bytes to standard output.
//! `exit` (trimmed, any case) closes the connection and prints `ByeBye~~`; if the server goes
//! away the client says so and ends with a failure status.
//!
//! Fixed against the tutorial's `selectclient.py`: it notices the server's end of stream (the tutorial
//! looped printing nothing), and it keeps the unsent tail of a short write.

use std::io::Write;

use nix::errno::Errno;

use super::framing::LineReader;
use crate::bugs::{Bug, Bugs};
use crate::kernel::{Events, Fd, Mode};
use crate::reactor::{App, Io};
use crate::readiness::Token;

/// Standard input's token.
pub const STDIN: Token = Token(0);
/// The server connection's token.
pub const SERVER: Token = Token(1);
/// Longest line the client reads from standard input.
pub const MAX_INPUT_LINE_BYTES: usize = 64 * 1024;
/// Most bytes the client queues for the server before it stops reading standard input.
pub const MAX_OUTBOX_BYTES: usize = 1 << 20;
/// Size of one read.
const READ_BYTES: usize = 16 * 1024;

/// How the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The user typed `exit` (or standard input ended).
    ByeBye,
    /// The server closed the connection or it failed.
    ServerGone,
}

/// The client as a reactor application.
pub struct ChatClientApp<'o> {
    stdin: Fd,
    sock: Fd,
    input: LineReader,
    outbox: Vec<u8>,
    watching_out: bool,
    out: &'o mut dyn Write,
    ending: Option<Ending>,
    bugs: Bugs,
}

/// Whether a typed line means "exit".
pub fn is_exit(line: &[u8]) -> bool {
    line.trim_ascii().eq_ignore_ascii_case(b"exit")
}

impl<'o> ChatClientApp<'o> {
    /// A client on a connected socket; registers both descriptors.
    pub fn new(
        io: &mut Io<'_>,
        stdin: Fd,
        sock: Fd,
        out: &'o mut dyn Write,
    ) -> Result<Self, Errno> {
        io.register(stdin, STDIN, Events::IN, Mode::LEVEL)?;
        io.register(sock, SERVER, Events::IN | Events::RDHUP, Mode::LEVEL)?;
        Ok(ChatClientApp {
            stdin,
            sock,
            input: LineReader::skipping(MAX_INPUT_LINE_BYTES),
            outbox: Vec::new(),
            watching_out: false,
            out,
            ending: None,
            bugs: Bugs::NONE,
        })
    }

    /// Switches on zoo bugs in the client (none by default).
    pub fn set_bugs(&mut self, bugs: Bugs) {
        self.bugs = bugs;
    }

    /// Bytes typed but not yet taken by the server's socket.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.len()
    }

    /// How it ended, once it has.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    fn finish(&mut self, io: &mut Io<'_>, ending: Ending, message: &str) {
        let _ = writeln!(self.out, "{message}");
        let _ = self.out.flush();
        let _ = io.deregister(STDIN);
        let _ = io.deregister(SERVER);
        self.ending = Some(ending);
    }

    fn typed(&mut self, io: &mut Io<'_>) {
        let mut buf = [0u8; READ_BYTES];
        let n = match io.kernel.recv(self.stdin, &mut buf) {
            Ok(0) => return self.finish(io, Ending::ByeBye, "ByeBye~~"),
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            Err(e) => {
                return self.finish(
                    io,
                    Ending::ByeBye,
                    &format!("standard input failed: {e}; ByeBye~~"),
                );
            }
        };
        let mut exit = false;
        let outbox = &mut self.outbox;
        let framed = self.input.push(&buf[..n], |line| {
            if exit || is_exit(line) {
                exit = true;
            } else {
                outbox.extend_from_slice(line);
                outbox.push(b'\n');
            }
        });
        if framed.is_err() {
            let _ = writeln!(
                self.out,
                "(line longer than {MAX_INPUT_LINE_BYTES} bytes not sent)"
            );
        }
        self.flush(io);
        if exit {
            self.finish(io, Ending::ByeBye, "ByeBye~~");
        } else if self.outbox.len() > MAX_OUTBOX_BYTES {
            self.finish(
                io,
                Ending::ServerGone,
                "the server is not reading; giving up",
            );
        }
    }

    fn flush(&mut self, io: &mut Io<'_>) {
        if !self.outbox.is_empty() {
            match io.kernel.send(self.sock, &self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => {
                    return self.finish(
                        io,
                        Ending::ServerGone,
                        &format!("connection to the server failed: {e}"),
                    );
                }
            }
        }
        let want_out = !self.outbox.is_empty();
        if want_out != self.watching_out {
            self.watching_out = want_out;
            let interest = if want_out {
                Events::IN | Events::OUT | Events::RDHUP
            } else {
                Events::IN | Events::RDHUP
            };
            let _ = io.modify(SERVER, interest, Mode::LEVEL);
        }
    }

    fn heard(&mut self, io: &mut Io<'_>) {
        let mut buf = [0u8; READ_BYTES];
        match io.kernel.recv(self.sock, &mut buf) {
            // The tutorial: `if data:` ... and b'' is just "nothing this time".
            Ok(0) if self.bugs.has(Bug::TutorialClientMissesServerExit) => {}
            Ok(0) => self.finish(io, Ending::ServerGone, "the server went away"),
            Ok(n) => {
                let _ = self.out.write_all(&buf[..n]);
                let _ = self.out.flush();
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => self.finish(
                io,
                Ending::ServerGone,
                &format!("connection to the server failed: {e}"),
            ),
        }
    }
}

impl App for ChatClientApp<'_> {
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, events: Events) {
        if self.ending.is_some() {
            return;
        }
        if token == STDIN {
            self.typed(io);
        } else {
            if events.contains(Events::OUT) {
                self.flush(io);
            }
            if events.intersects(Events::IN | Events::ERR | Events::HUP | Events::RDHUP)
                && self.ending.is_none()
            {
                self.heard(io);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_is_trimmed_and_case_blind() {
        for yes in [&b"exit"[..], b"EXIT", b"  Exit \r", b"\texit"] {
            assert!(is_exit(yes), "{yes:?}");
        }
        for no in [&b"exits"[..], b"e xit", b"", b"quit"] {
            assert!(!is_exit(no), "{no:?}");
        }
    }
}
