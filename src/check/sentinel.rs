//! A quiet pair in the room that tells when the server went away: `check ADDR` holds it from
//! before the first check to after the last, reading (and dropping) whatever the server sends,
//! so that a server that dies in one check is named there, once, and the checks after it are
//! skipped with that reason instead of each failing on "connection refused".
//!
//! After each check the pair waits for the server to catch up with what the check's clients
//! did ([`Sentinel::server_gone`]): one member says a probe line and waits to hear it relayed
//! to the other, then the other says one back. The second probe is sent after the server
//! relayed the first, when the check's clients had long closed, so the server reads it in a
//! later turn of its loop than the one that found them gone. A server that dies of their
//! going has died by then, and its probe never comes back. No fixed wait can tell this on a
//! busy machine: a server may take any time to get to the closes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::peer::CONNECT_TIMEOUT;

/// Bytes a member reads per call, and the longest line it keeps looking into for a probe.
const READ_BYTES: usize = 64 * 1024;
/// Longest a member waits for one probe to come back from a server that has relayed the
/// pair's probes before ([`Sentinel::settle`] learns it before the first check). A server
/// still busy with a check's load, or dying slowly on a busy machine, gets this long; one that
/// stopped relaying costs this much after each check, and is then taken as alive unless it
/// closed the pair.
pub const PROBE_WAIT: Duration = Duration::from_secs(5);
/// How long the pair waits after a check on a server that never relayed its probes: then only
/// a fixed wait is left for a death to show.
pub const UNRELAYED_WAIT: Duration = Duration::from_millis(100);
/// Longest a server that closed every connection is given to exit, so that its report can
/// show its exit status.
pub const EXIT_WAIT: Duration = Duration::from_secs(2);
/// How often a member looks while it waits for a probe.
const LOOK_EVERY: Duration = Duration::from_millis(2);

/// The pair, and the probes said so far.
pub struct Sentinel {
    server: SocketAddr,
    tag: String,
    members: [Member; 2],
    /// Probes said so far: the next is numbered one more.
    probes: u64,
    /// Whether the server has relayed both probes of a settle.
    relays: bool,
}

impl Sentinel {
    /// Joins the room as two members (an error: nothing listens at `server`); `tag` marks the
    /// run's probe lines.
    pub fn join(server: SocketAddr, tag: &str) -> io::Result<Sentinel> {
        let marker: Arc<[u8]> = probe_marker(tag).into_bytes().into();
        Ok(Sentinel {
            server,
            tag: tag.to_string(),
            members: [
                Member::join(server, Arc::clone(&marker))?,
                Member::join(server, marker)?,
            ],
            probes: 0,
            relays: false,
        })
    }

    /// Whether the server went away (asked after each check, once it has caught up with the
    /// check's clients): it closed the pair's connections and takes no new one. (A server
    /// that dropped only the sentinel, as its own policy, gets a new one.)
    pub fn server_gone(&mut self) -> bool {
        self.settle();
        if !self.members.iter().any(Member::closed) {
            return false;
        }
        match Sentinel::join(self.server, &self.tag) {
            Ok(fresh) => {
                let relays = self.relays;
                *self = Sentinel { relays, ..fresh };
                false
            }
            Err(_) => true,
        }
    }

    /// Waits for the server to catch up: relays a probe from the first member to the second,
    /// then one back, each waited for at most [`PROBE_WAIT`] (the first time, or while the
    /// server relays them), else [`UNRELAYED_WAIT`] in all; stops early when a member is
    /// closed. Called once before the first check, it learns whether the server relays them.
    pub fn settle(&mut self) {
        let probing = self.relays || self.probes == 0;
        let wait = if probing { PROBE_WAIT } else { UNRELAYED_WAIT };
        let until = Instant::now() + wait;
        for (from, to) in [(0, 1), (1, 0)] {
            self.probes += 1;
            let probe = self.probes;
            if self.members[from].say(&self.tag, probe).is_err() {
                return;
            }
            let until = if probing {
                Instant::now() + wait
            } else {
                until
            };
            while !self.members[to].heard(probe) {
                if self.members.iter().any(Member::closed) || Instant::now() >= until {
                    return;
                }
                std::thread::sleep(LOOK_EVERY);
            }
        }
        self.relays = true;
    }

    /// Leaves the room: both connections shut down and their readers joined.
    pub fn leave(self) {
        drop(self);
    }
}

/// What every probe line of the run says before its number.
fn probe_marker(tag: &str) -> String {
    format!("{tag} aftermath #")
}

/// One member of the pair: its connection, and the thread that reads it.
struct Member {
    stream: TcpStream,
    /// Set by the reader when the server closed or reset the connection.
    closed: Arc<AtomicBool>,
    /// The highest probe number heard relayed.
    heard: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl Member {
    fn join(server: SocketAddr, marker: Arc<[u8]>) -> io::Result<Member> {
        let stream = TcpStream::connect_timeout(&server, CONNECT_TIMEOUT)?;
        stream.set_write_timeout(Some(PROBE_WAIT))?;
        let closed = Arc::new(AtomicBool::new(false));
        let heard = Arc::new(AtomicU64::new(0));
        let reader = {
            let stream = stream.try_clone()?;
            let closed = Arc::clone(&closed);
            let heard = Arc::clone(&heard);
            std::thread::spawn(move || {
                listen(stream, &marker, &heard);
                closed.store(true, Ordering::Release);
            })
        };
        Ok(Member {
            stream,
            closed,
            heard,
            reader: Some(reader),
        })
    }

    fn say(&self, tag: &str, probe: u64) -> io::Result<()> {
        let line = format!("{}{probe}\n", probe_marker(tag));
        (&self.stream).write_all(line.as_bytes())
    }

    fn heard(&self, probe: u64) -> bool {
        self.heard.load(Ordering::Acquire) >= probe
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Reads `stream` until the server closes or resets it (or the member leaves), noting in
/// `heard` the highest probe relayed to it.
fn listen(mut stream: TcpStream, marker: &[u8], heard: &AtomicU64) {
    let mut buf = vec![0; READ_BYTES];
    let mut partial: Vec<u8> = Vec::new();
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        partial.extend_from_slice(&buf[..n]);
        let Some(last) = partial.iter().rposition(|&b| b == b'\n') else {
            // A line this long is no probe: its end is looked into when it comes.
            if partial.len() > READ_BYTES {
                partial.clear();
            }
            continue;
        };
        for line in partial[..last].split(|&b| b == b'\n') {
            if let Some(probe) = probe_number(line, marker) {
                heard.fetch_max(probe, Ordering::AcqRel);
            }
        }
        partial.drain(..=last);
    }
}

/// The probe number `line` ends with, after `marker` (behind whatever prefix the server
/// relays lines under).
fn probe_number(line: &[u8], marker: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let at = line.windows(marker.len()).rposition(|w| w == marker)?;
    std::str::from_utf8(&line[at + marker.len()..])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_read_behind_any_prefix_and_nothing_else_is_one() {
        let marker = probe_marker("sl00c0ffee");
        let marker = marker.as_bytes();
        let number = |line: &str| probe_number(line.as_bytes(), marker);
        assert_eq!(number("sl00c0ffee aftermath #7"), Some(7));
        assert_eq!(
            number("[('127.0.0.1', 5)] sl00c0ffee aftermath #12\r"),
            Some(12)
        );
        assert_eq!(number("sl00c0ffee aftermath #"), None);
        assert_eq!(number("sl00c0ffee aftermath #7 and more"), None);
        assert_eq!(number("sl00beef aftermath #7"), None);
        assert_eq!(number("hello sl00c0ffee c1"), None);
    }
}
