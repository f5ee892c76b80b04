//! The workload of `selectlab sim --clients N --lines K`: N simulated chat clients, peers of
//! the guest program, each making its own syscalls between the program's. They connect as
//! soon as the program listens, speak once the program has accepted them all (a chat room
//! relays a line only to those already in it), and each says K numbered lines. Each client
//! counts the other clients' lines it hears; the run is over when every client has heard every
//! line.

use std::collections::BTreeSet;

use nix::errno::Errno;
use selectlab_wire::{Op, Reply, Request};

use crate::addr::{Family, SockAddr, SockType};
use crate::chat::framing::LineReader;
use crate::kernel::{Events, Fd, Kernel};
use crate::sim::Sim;
use crate::sim::interleave::Peers;
use crate::sim::transcript::Host;

/// Most clients one run may have.
pub const MAX_CLIENTS: usize = 1_000;

/// Bytes one client reads per call.
const CLIENT_READ_BYTES: usize = 4096;

#[derive(Debug, Default)]
struct Client {
    fd: Option<Fd>,
    connected: bool,
    /// The connection ended (end of stream, reset): it hears nothing more.
    gone: bool,
    outbox: Vec<u8>,
    reader: Option<LineReader>,
    /// (speaker, line number) of every line of another client's it heard.
    heard: BTreeSet<(usize, usize)>,
}

/// How far delivery got, per client: lines heard of those owed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Lines each client heard from the others, in client order.
    pub heard: Vec<usize>,
    /// Lines each client is owed: (clients − 1) × lines.
    pub owed_each: usize,
}

impl Delivery {
    /// Whether every client heard every line owed to it.
    pub fn complete(&self) -> bool {
        self.heard.iter().all(|&h| h == self.owed_each)
    }
}

/// The clients, as the guest's peers.
#[derive(Debug, Default)]
pub struct Clients {
    clients: Vec<Client>,
    lines: usize,
    /// The program's listening socket, once it listens.
    listener: Option<(Fd, SockAddr)>,
    talking: bool,
}

/// The text of client `n`'s line `k`.
fn line(n: usize, k: usize) -> String {
    format!("c{}-{k}", n + 1)
}

/// (speaker, line number) of a relayed line: its last word, if it is one of the clients'.
fn parse_line(text: &[u8]) -> Option<(usize, usize)> {
    let word = text.rsplit(|&b| b == b' ').next()?;
    let word = std::str::from_utf8(word).ok()?.strip_prefix('c')?;
    let (n, k) = word.split_once('-')?;
    Some((n.parse::<usize>().ok()?.checked_sub(1)?, k.parse().ok()?))
}

impl Clients {
    /// `count` clients (at most [`MAX_CLIENTS`]) that will each say `lines` lines.
    pub fn new(count: usize, lines: usize) -> Clients {
        Clients {
            clients: (0..count.min(MAX_CLIENTS))
                .map(|_| Client::default())
                .collect(),
            lines,
            listener: None,
            talking: false,
        }
    }

    /// What the clients do after one of the program's calls: connect once it listens, start
    /// talking once it has accepted them all.
    pub fn after_call(&mut self, sim: &mut Sim, req: &Request, reply: &Reply) {
        if self.clients.is_empty() {
            return;
        }
        if self.listener.is_none() && req.op == Op::Listen && reply.ret == 0 {
            let fd = Fd(req.args[0] as i32);
            if let Some(addr) = sim.local_addr(fd) {
                self.listener = Some((fd, addr));
                self.join(sim);
            }
        }
        if !self.talking && self.all_accepted(sim) {
            self.talking = true;
            for (n, c) in self.clients.iter_mut().enumerate() {
                for k in 0..self.lines {
                    c.outbox.extend_from_slice(line(n, k).as_bytes());
                    c.outbox.push(b'\n');
                }
            }
        }
    }

    /// Every client connects to the listening address (the loopback one for a wildcard).
    fn join(&mut self, sim: &mut Sim) {
        let Some((_, SockAddr::Inet(mut at))) = self.listener.clone() else {
            return;
        };
        if at.ip().is_unspecified() {
            at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let family = if at.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        };
        for n in 0..self.clients.len() {
            sim.set_host(Host::peer(n));
            if let Ok(fd) = sim.socket(family, SockType::Stream) {
                sim.tag_peer(fd, n);
                match sim.connect(fd, &SockAddr::Inet(at)) {
                    Ok(()) | Err(Errno::EINPROGRESS) => self.clients[n].fd = Some(fd),
                    Err(_) => self.clients[n].gone = true,
                }
            }
        }
        sim.set_host(Host::MAIN);
        for c in &mut self.clients {
            c.reader = Some(LineReader::new(usize::MAX));
        }
    }

    /// Every client is connected and the program's accept queue is empty.
    fn all_accepted(&self, sim: &Sim) -> bool {
        let Some((listener, _)) = &self.listener else {
            return false;
        };
        self.clients.iter().all(|c| c.connected || c.gone)
            && !sim.ready_now(*listener).contains(Events::IN)
    }

    /// How far delivery got.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            heard: self.clients.iter().map(|c| c.heard.len()).collect(),
            owed_each: self.clients.len().saturating_sub(1) * self.lines,
        }
    }

    /// Whether the workload is over: every client heard everything (or there are no clients).
    pub fn done(&self) -> bool {
        !self.clients.is_empty() && self.delivery().complete()
    }

    fn wants(&self, n: usize) -> Events {
        let c = &self.clients[n];
        let mut e = Events::IN | Events::ERR | Events::HUP;
        if !c.connected || (self.talking && !c.outbox.is_empty()) {
            e |= Events::OUT;
        }
        e
    }

    fn read(&mut self, sim: &mut Sim, n: usize, fd: Fd) {
        let mut buf = [0u8; CLIENT_READ_BYTES];
        let c = &mut self.clients[n];
        match sim.recv(fd, &mut buf) {
            Ok(0) | Err(Errno::ECONNRESET) => c.gone = true,
            Ok(got) => {
                let heard = &mut c.heard;
                let lines = self.lines;
                let reader = c.reader.get_or_insert_with(|| LineReader::new(usize::MAX));
                let _ = reader.push(&buf[..got], |text| {
                    if let Some((m, k)) = parse_line(text).filter(|&(m, k)| m != n && k < lines) {
                        heard.insert((m, k));
                    }
                });
            }
            Err(_) => {}
        }
    }
}

impl Peers for Clients {
    fn count(&self) -> usize {
        self.clients.len()
    }

    fn runnable(&self, sim: &Sim, n: usize) -> bool {
        let c = &self.clients[n];
        !c.gone
            && c.fd.is_some_and(|fd| {
                sim.ready_now_as(Host::peer(n), fd)
                    .intersects(self.wants(n))
            })
    }

    fn run(&mut self, sim: &mut Sim, n: usize) {
        let Some(fd) = self.clients[n].fd else {
            return;
        };
        let ready = sim.ready_now(fd);
        let c = &mut self.clients[n];
        if !c.connected && ready.contains(Events::OUT) {
            c.connected = true;
            return;
        }
        if self.talking && !c.outbox.is_empty() && ready.contains(Events::OUT) {
            if let Ok(k) = sim.send(fd, &c.outbox) {
                c.outbox.drain(..k);
            }
            return;
        }
        self.read(sim, n, fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_line_names_its_speaker_and_number_in_its_last_word() {
        assert_eq!(
            parse_line(b"2026-01-01 00:00:00 ('127.0.0.1', 40001) say: c2-17"),
            Some((1, 17))
        );
        assert_eq!(parse_line(b"('127.0.0.1', 40001) entered room"), None);
        assert_eq!(parse_line(b"c0-1"), None);
    }
}
