//! The session's clients: each a small program in the simulator making its own syscalls
//! (connect, send what it has, read what arrives) when the scheduler lets it run, and the
//! notes that become the transcript people read.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use nix::errno::Errno;

use super::{ClientView, Shown};
use crate::chat::framing::LineReader;
use crate::chat::serve::ServerLog;
use crate::kernel::{Events, Fd, Kernel};
use crate::sim::Sim;
use crate::sim::interleave::Peers;
use crate::sim::transcript::Host;

/// What a client typed and has not sent yet. Sent bytes leave the front without the rest
/// moving each time (a 16 MiB paste goes out in socket-sized pieces): the front is dropped
/// once it is half of what is held, so each byte moves a bounded number of times.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    bytes: Vec<u8>,
    sent: usize,
}

impl Outbox {
    /// What is still to send.
    pub(super) fn pending(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.sent == self.bytes.len()
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// The first `k` pending bytes went out.
    pub(super) fn sent(&mut self, k: usize) {
        assert!(
            k <= self.pending().len(),
            "a send takes no more than it is given"
        );
        self.sent += k;
        if self.sent * 2 >= self.bytes.len() {
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.sent = 0;
    }

    /// Everything still to send, leaving the outbox empty.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.drain(..std::mem::take(&mut self.sent));
        bytes
    }
}

pub(super) struct SimClient {
    pub(super) fd: Option<Fd>,
    pub(super) reader: LineReader,
    /// Bytes it still has to send (it keeps the unsent tail of a short send).
    pub(super) outbox: Outbox,
    /// Its last send was short.
    short: bool,
    /// It sends its outbox one line per call.
    pub(super) drip: bool,
    pub(super) reading: bool,
    pub(super) paused: bool,
    /// A byte went either way on its connection.
    exchanged: bool,
    pub(super) view: ClientView,
}

impl SimClient {
    pub(super) fn new() -> SimClient {
        SimClient {
            fd: None,
            // Clients accept any line length: they must see what the server sends.
            reader: LineReader::new(usize::MAX),
            outbox: Outbox::default(),
            short: false,
            drip: false,
            reading: true,
            paused: false,
            exchanged: false,
            view: ClientView::default(),
        }
    }

    /// What would wake this client from its poll: room for its outbox, or input while it reads.
    fn wants(&self) -> Events {
        let mut e = Events::NONE;
        if self.paused {
            return e;
        }
        if !self.outbox.is_empty() {
            e |= Events::OUT | Events::ERR | Events::HUP;
        }
        if self.reading {
            e |= Events::IN | Events::ERR | Events::HUP | Events::RDHUP;
        }
        e
    }
}

/// The people's side of the transcript: notes stamped with virtual time, and the kernel's
/// records (every call, or only the adversary's choices) copied in as they happen.
pub(super) struct Notes {
    pub(super) text: String,
    pub(super) enabled: bool,
    pub(super) kernel_calls: bool,
    pub(super) records_seen: usize,
    pub(super) server_log: ServerLog,
}

impl Notes {
    pub(super) fn add(&mut self, sim: &Sim, line: std::fmt::Arguments<'_>) {
        if self.enabled {
            self.sync(sim);
            let now = sim.now();
            let _ = writeln!(
                self.text,
                "[{:>3}.{:03}] {line}",
                now.as_secs(),
                now.subsec_millis()
            );
        }
    }

    /// Copies the kernel records and the server's log lines written since the last copy.
    pub(super) fn sync(&mut self, sim: &Sim) {
        for (at, line) in self.server_log.take() {
            if self.enabled {
                let _ = writeln!(
                    self.text,
                    "[{:>3}.{:03}] server: {line}",
                    at.as_secs(),
                    at.subsec_millis()
                );
            }
        }
        let records = sim.transcript().records();
        for r in &records[self.records_seen.min(records.len())..] {
            if self.kernel_calls || r.choice.is_some() {
                let _ = writeln!(self.text, "kernel: {r}");
            }
        }
        self.records_seen = records.len();
    }
}

/// The clients: the session's peers, each making its own syscalls when the scheduler lets it.
pub(super) struct Crowd {
    pub(super) clients: Vec<SimClient>,
    pub(super) read_buf: Vec<u8>,
    pub(super) notes: Notes,
    /// Calls the clients have made (progress, for settling).
    pub(super) calls: u64,
    /// Bytes the clients have received, in all.
    pub(super) received_bytes: u64,
    /// What the clients have given the server to relay: bytes typed, lines in them, and
    /// arrivals and departures (the bound on what they may hear: [`flood_bound`]).
    pub(super) given: Given,
    /// Whether clients keep their lines (else they only count them).
    pub(super) keep_lines: bool,
    /// Clients that may be runnable: woken by the simulator, given something to send, or
    /// still busy when last looked at. Every runnable client is in it.
    pub(super) busy: BTreeSet<usize>,
}

/// What the clients have given the server to relay so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Given {
    /// Bytes typed.
    pub(super) bytes: u64,
    /// Line ends typed.
    pub(super) lines: u64,
    /// Arrivals and departures.
    pub(super) comings_and_goings: u64,
}

/// Bytes a relayed byte may become: a byte escaped in octal takes four (`ncat --chat` relays
/// control bytes so).
pub const RELAYED_BYTE_EXPANSION: u64 = 4;
/// Bytes of frame a server may add to each line or notice it tells (a time stamp, an address,
/// a name).
pub const FRAME_ALLOWANCE_BYTES: u64 = 256;
/// Bytes a server may tell each client of its own accord (a greeting, a banner, help).
pub const GREETING_ALLOWANCE_BYTES: u64 = 64 << 10;

/// The most bytes `clients` clients may hear in all, given what they gave the server: every
/// byte typed (escaped, at worst), every line and notice with a frame, told to every client,
/// and a greeting each. More is a flood: the server sends what nobody said.
fn flood_bound(clients: usize, g: Given) -> u64 {
    let told = RELAYED_BYTE_EXPANSION * g.bytes
        + FRAME_ALLOWANCE_BYTES * (g.lines + g.comings_and_goings)
        + GREETING_ALLOWANCE_BYTES;
    (clients as u64).saturating_mul(told)
}

impl Peers for Crowd {
    fn count(&self) -> usize {
        self.clients.len()
    }

    fn overwhelmed(&self) -> Option<String> {
        let bound = flood_bound(self.clients.len(), self.given);
        (self.keep_lines && self.received_bytes > bound).then(|| {
            format!(
                "the clients heard {} bytes, more than all they gave it could make (at most {bound}: \
                 each byte typed {} times over, each line and notice with {} bytes of frame, and \
                 {} KiB of greeting, told to every client): it floods",
                self.received_bytes,
                RELAYED_BYTE_EXPANSION,
                FRAME_ALLOWANCE_BYTES,
                GREETING_ALLOWANCE_BYTES >> 10,
            )
        })
    }

    fn candidates(&mut self, sim: &mut Sim) -> Vec<usize> {
        self.busy.extend(sim.take_woken_peers());
        self.busy.retain(|&n| n < self.clients.len());
        let now: Vec<usize> = self.busy.iter().copied().collect();
        // Who is not runnable now waits for the simulator's next wake-up of its socket (or
        // for the session to give it something to do).
        let clients = &self.clients;
        self.busy.retain(|&n| {
            let c = &clients[n];
            c.fd.is_some_and(|fd| sim.ready_now_as(Host::peer(n), fd).intersects(c.wants()))
        });
        now
    }

    fn runnable(&self, sim: &Sim, n: usize) -> bool {
        let c = &self.clients[n];
        c.fd.is_some_and(|fd| sim.ready_now_as(Host::peer(n), fd).intersects(c.wants()))
    }

    fn run(&mut self, sim: &mut Sim, n: usize) {
        let Some(fd) = self.clients[n].fd else {
            return;
        };
        self.calls += 1;
        let ready = sim.ready_now(fd);
        let c = &self.clients[n];
        if !c.outbox.is_empty() && ready.intersects(Events::OUT | Events::ERR | Events::HUP) {
            self.client_sends(sim, n, fd);
        } else {
            self.client_reads(sim, n, fd);
        }
    }
}

impl Crowd {
    pub(super) fn client(&mut self, n: usize) -> &mut SimClient {
        while self.clients.len() <= n {
            self.clients.push(SimClient::new());
        }
        &mut self.clients[n]
    }

    fn client_sends(&mut self, sim: &mut Sim, n: usize, fd: Fd) {
        let c = &mut self.clients[n];
        let pending = c.outbox.pending();
        let offer = if c.drip {
            memchr::memchr(b'\n', pending).map_or(pending.len(), |nl| nl + 1)
        } else {
            pending.len()
        };
        match sim.send(fd, &pending[..offer]) {
            Ok(k) => {
                c.exchanged |= k > 0;
                let waiting = offer;
                c.drip &= pending.len() > k;
                c.outbox.sent(k);
                let was_short = std::mem::replace(&mut c.short, k < waiting);
                // A whole send says nothing new; a short one is worth a line.
                if k < waiting {
                    self.notes.add(
                        sim,
                        format_args!(
                            "c{}'s send took {k} of {waiting} bytes; it keeps the rest",
                            n + 1
                        ),
                    );
                } else if was_short {
                    self.notes.add(
                        sim,
                        format_args!("c{} sends the remaining {k} bytes", n + 1),
                    );
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                self.notes
                    .add(sim, format_args!("c{} send fails: {e}", n + 1));
                self.clients[n].outbox.clear();
            }
        }
    }

    fn client_reads(&mut self, sim: &mut Sim, n: usize, fd: Fd) {
        match sim.recv(fd, &mut self.read_buf) {
            Ok(0) => {
                self.notes
                    .add(sim, format_args!("c{}: the server went away", n + 1));
                self.lose_server(sim, n, fd);
            }
            Ok(k) => {
                self.received_bytes += k as u64;
                let got = &self.read_buf[..k];
                self.notes.add(
                    sim,
                    format_args!("c{} receives {} ({k} bytes)", n + 1, Shown(got)),
                );
                let c = &mut self.clients[n];
                c.exchanged = true;
                let (lines, heard) = (&mut c.view.lines, &mut c.view.lines_heard);
                let keep = self.keep_lines;
                c.reader
                    .push(got, |l| {
                        *heard += 1;
                        if keep {
                            lines.push(l.to_vec());
                        }
                    })
                    .expect("clients take any length");
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                self.notes
                    .add(sim, format_args!("c{}: connection failed: {e}", n + 1));
                self.lose_server(sim, n, fd);
            }
        }
    }

    /// Client `n` saw its connection end: it notes the server gone and closes its end.
    fn lose_server(&mut self, sim: &mut Sim, n: usize, fd: Fd) {
        let c = &mut self.clients[n];
        c.view.server_gone = true;
        c.view.reset_by_network = sim.reset_by_adversary(fd);
        c.view.turned_away = !c.exchanged && !c.view.reset_by_network;
        c.fd = None;
        let _ = sim.close(fd);
    }

    /// Every runnable client makes one call while the server waits (one round of the fixed
    /// fair order; the server's turn comes next).
    pub(super) fn act_once(&mut self, sim: &mut Sim) {
        for n in self.candidates(sim) {
            if self.runnable(sim, n) {
                sim.set_host(Host::peer(n));
                self.run(sim, n);
            }
        }
        sim.set_host(Host::MAIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by cargo-mutants: the bound is what `docs/src/testing-your-server.md` says.
    #[test]
    fn the_flood_bound_is_four_bytes_a_byte_a_frame_a_line_or_notice_and_a_greeting_each() {
        let given = Given {
            bytes: 10,
            lines: 2,
            comings_and_goings: 3,
        };
        assert_eq!(
            flood_bound(4, given),
            4 * (4 * 10 + 256 * (2 + 3) + 64 * 1024)
        );
        assert_eq!(flood_bound(0, given), 0);
    }

    #[test]
    fn an_outbox_sends_from_its_front_and_gives_back_exactly_what_is_left() {
        let mut o = Outbox::default();
        assert!(o.is_empty());
        o.push(b"abcdefghij");
        o.sent(3);
        assert_eq!(o.pending(), b"defghij");
        o.sent(4);
        // More than half is sent: the front is dropped, and what is pending is unchanged.
        assert_eq!((o.pending(), o.sent, o.bytes.len()), (&b"hij"[..], 0, 3));
        o.push(b"kl");
        o.sent(1);
        assert_eq!(o.take(), b"ijkl");
        assert!(o.is_empty());
        o.push(b"xy");
        o.clear();
        assert!(o.is_empty() && o.pending().is_empty());
    }
}
