//! The chat room's server, sans-IO: connections, bytes and time in; lines to send, logs and
//! disconnections out. No syscalls; [`super::serve`] does the I/O.
//!
//! Fixed against the tutorial's `selectserver.py`: a failed read closes that client (the tutorial logged
//! it and replayed the previous message to everyone); a failed or slow recipient is removed
//! after the broadcast, not during it (the tutorial removed the wrong socket and changed the table
//! while iterating it); output is queued per client and sent as the kernel accepts it (the
//! tutorial's `sendall` on a non-blocking socket dropped slow clients mid-message); and lines are
//! framed (the tutorial broadcast raw 1024-byte chunks, splitting and merging lines).

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use super::clock::WallClock;
use super::framing::LineReader;
use super::outbound::Outbound;
use crate::addr::SockAddr;
use crate::bugs::{Bug, Bugs};

/// A client's identity: the reactor token of its connection.
pub type ClientId = usize;

/// The server's limits, each with a defined behaviour.
///
/// Output is the one resource a chat room's clients can make it spend without bound (one line
/// in, one line out to every other client), so it has a policy of its own, after Redis's
/// `client-output-buffer-limit` (hard limit, soft limit, seconds): while any client's queue is
/// above the soft limit the server stops reading input (TCP then slows every sender down:
/// back-pressure, not victims), and resumes once every queue is back under half of it. A
/// client that holds the room back for `slow_consumer_timeout` without a break (its queue
/// above the soft limit, or above half of it while input is paused), or passes the hard
/// limit at any time, has stopped reading: it is disconnected, and the room goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (without `\n`): a longer one gets its sender an error line and a disconnect;
    /// none of it is broadcast.
    pub max_line_bytes: usize,
    /// The hard limit: most bytes queued for one client; past it the client is disconnected at
    /// once (logged).
    pub outbound_cap_bytes: usize,
    /// The soft limit: while a queue is above it, the server reads no input.
    pub outbound_soft_bytes: usize,
    /// How long a client may hold the room back before it is disconnected (logged).
    pub slow_consumer_timeout: Duration,
    /// Most clients at once: one more gets `server full` and is closed.
    pub max_clients: usize,
}

/// Default longest line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4096;
/// Default hard limit per client (16 MiB): a bound on memory whatever clients do.
pub const DEFAULT_OUTBOUND_CAP_BYTES: usize = 16 << 20;
/// Default soft limit per client (1 MiB): where back-pressure starts.
pub const DEFAULT_OUTBOUND_SOFT_BYTES: usize = 1 << 20;
/// Default time a client may stay above the soft limit.
pub const DEFAULT_SLOW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default most clients (below select's FD_SETSIZE with room for the listener and stdio).
pub const DEFAULT_MAX_CLIENTS: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            outbound_cap_bytes: DEFAULT_OUTBOUND_CAP_BYTES,
            outbound_soft_bytes: DEFAULT_OUTBOUND_SOFT_BYTES,
            slow_consumer_timeout: DEFAULT_SLOW_CONSUMER_TIMEOUT,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

impl Limits {
    /// The soft limit in force: never above the hard one.
    pub fn soft_bytes(&self) -> usize {
        self.outbound_soft_bytes.min(self.outbound_cap_bytes)
    }
}

/// What the server sends a client that came one too many.
pub const SERVER_FULL_LINE: &[u8] = b"server full\n";

/// How the line the server sends a client whose line was too long begins (the limit follows).
pub const LINE_TOO_LONG_PREFIX: &str = "error: line longer than ";

/// Why a client left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It closed its end (end of stream).
    Closed,
    /// Its connection failed (reset, or another error).
    Failed,
    /// It sent a line over the limit.
    LineTooLong,
    /// It did not read fast enough: its queue passed the cap.
    SlowConsumer,
    /// The server is shutting down.
    ServerStopping,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A server log line.
    Log(String),
    /// Close this client's connection now, dropping whatever is queued for it.
    Close(ClientId),
    /// Close this client's connection once its queue is sent.
    CloseAfterFlush(ClientId),
}

#[derive(Debug)]
struct Client {
    peer: SockAddr,
    reader: LineReader,
    out: Outbound,
    /// Leaving: reads are ignored; it is closed after its queue is sent.
    leaving: bool,
}

/// The chat room.
#[derive(Debug)]
pub struct ChatServer {
    limits: Limits,
    clients: BTreeMap<ClientId, Client>,
    actions: VecDeque<Action>,
    /// Clients whose queues grew since the I/O layer last looked (sorted, deduplicated).
    dirty: Vec<ClientId>,
    /// The largest queue any client ever had, in bytes (for the cap property).
    peak_queue_bytes: usize,
    /// Switched-on bugs from the zoo (none unless a harness asks).
    bugs: Bugs,
    /// The last client accepted, and the last that sent bytes (what a buggy departure
    /// notice names instead of the departing client).
    last_joined: Option<SockAddr>,
    last_sender: Option<ClientId>,
    /// The face that stamps notices and lines (UTC unless [`ChatServer::in_time_zone`]).
    clock: WallClock,
}

impl ChatServer {
    /// An empty room.
    pub fn new(limits: Limits) -> ChatServer {
        ChatServer::with_bugs(limits, Bugs::NONE)
    }

    /// An empty room with some of the zoo's bugs switched on.
    pub fn with_bugs(limits: Limits, bugs: Bugs) -> ChatServer {
        ChatServer {
            limits,
            clients: BTreeMap::new(),
            actions: VecDeque::new(),
            dirty: Vec::new(),
            peak_queue_bytes: 0,
            bugs,
            last_joined: None,
            last_sender: None,
            clock: WallClock::new(jiff::tz::TimeZone::UTC),
        }
    }

    /// The same room, stamping its lines in `zone` (the kernel's local time zone).
    pub fn in_time_zone(mut self, zone: jiff::tz::TimeZone) -> ChatServer {
        self.clock = WallClock::new(zone);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The largest queue any client ever had.
    pub fn peak_queue_bytes(&self) -> usize {
        self.peak_queue_bytes
    }

    /// A connection arrived. `false`: the room is full; the caller sends [`SERVER_FULL_LINE`]
    /// and closes it (a log line says so).
    pub fn join(&mut self, id: ClientId, peer: SockAddr, now_unix_secs: u64) -> bool {
        assert!(
            !self.clients.contains_key(&id),
            "client ids are never reused"
        );
        if self.clients.len() >= self.limits.max_clients {
            self.log(format!(
                "{peer} refused: server full ({} clients)",
                self.limits.max_clients
            ));
            return false;
        }
        self.log(format!("{peer} connect."));
        self.last_joined = Some(peer.clone());
        let note = format!("{} {peer} entered room\n", self.clock.stamp(now_unix_secs));
        self.clients.insert(
            id,
            Client {
                peer,
                reader: LineReader::new(self.limits.max_line_bytes),
                out: Outbound::default(),
                leaving: false,
            },
        );
        self.broadcast(id, note.into_bytes(), now_unix_secs);
        true
    }

    /// Bytes arrived from a client.
    pub fn received(&mut self, id: ClientId, data: &[u8], now_unix_secs: u64) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.leaving {
            return;
        }
        // Formatted once per chunk: every complete line of it, each with the prefix, in one
        // buffer that every recipient's queue shares.
        let prefix = format!("{} {} say: ", self.clock.stamp(now_unix_secs), client.peer);
        let peer = client.peer.clone();
        self.last_sender = Some(id);
        if self.bugs.has(Bug::TutorialNoFraming) {
            // The tutorial: each chunk as it came, under its own header.
            let mut text = prefix.into_bytes();
            text.extend_from_slice(data);
            return self.broadcast(id, text, now_unix_secs);
        }
        let mut batch = Vec::new();
        let mut add = |line: &[u8]| {
            // An empty line says nothing: it is not broadcast.
            if !line.is_empty() {
                batch.reserve(prefix.len() + line.len() + 1);
                batch.extend_from_slice(prefix.as_bytes());
                batch.extend_from_slice(line);
                batch.push(b'\n');
            }
        };
        let mut result = client.reader.push(data, &mut add);
        if self.bugs.has(Bug::TornLineFrame) && result.is_ok() && client.reader.pending_bytes() > 0
        {
            // The chunk's end taken for a line's end.
            result = client.reader.push(b"\n", &mut add);
        }
        if !batch.is_empty() {
            self.broadcast(id, batch, now_unix_secs);
        }
        if let Err(e) = result {
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            let max = e.max_line_bytes;
            client.leaving = true;
            client.out.push(Rc::from(
                format!("{LINE_TOO_LONG_PREFIX}{max} bytes; disconnecting\n").into_bytes(),
            ));
            self.log(format!("{peer} disconnected: line longer than {max} bytes"));
            self.mark_dirty(id);
            self.actions.push_back(Action::CloseAfterFlush(id));
            self.announce_departure(id, now_unix_secs);
        }
    }

    /// A client's connection ended (or the server ended it): it leaves the room.
    pub fn left(&mut self, mut id: ClientId, why: Departure, now_unix_secs: u64) {
        if !self.clients.contains_key(&id) && self.bugs.has(Bug::WrongClientSpliced) {
            // splice(indexOf(gone) = -1, 1): the last client goes instead.
            let Some(&last) = self.clients.keys().next_back() else {
                return;
            };
            self.actions.push_back(Action::Close(last));
            id = last;
        }
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let (peer, leaving, pending) = (
            client.peer.clone(),
            client.leaving,
            client.reader.pending_bytes(),
        );
        if pending > 0 {
            self.log(format!(
                "{peer}: dropped {pending} bytes of an unfinished line ({why:?})"
            ));
        }
        self.clients.remove(&id);
        self.dirty.retain(|d| *d != id);
        if !leaving {
            let named = self.departure_name(peer, why);
            self.log(format!("Client:{named} Close."));
            let note = format!("{} {named} left room\n", self.clock.stamp(now_unix_secs));
            self.broadcast(id, note.into_bytes(), now_unix_secs);
        }
    }

    /// Whom a departure notice names: the departing client, unless a zoo bug names another.
    fn departure_name(&self, peer: SockAddr, why: Departure) -> SockAddr {
        let stale_sender = || {
            self.last_sender
                .and_then(|s| self.clients.get(&s))
                .map(|c| c.peer.clone())
        };
        if self.bugs.has(Bug::BtOfflineNamesLastClient) {
            self.last_joined.clone().unwrap_or(peer)
        } else if self.bugs.has(Bug::TutorialStaleNameInXlist) && why == Departure::Failed {
            stale_sender().unwrap_or(peer)
        } else {
            peer
        }
    }

    /// Drops everything queued for `id` (a zoo bug: sendall's EAGAIN swallowed).
    pub fn drop_queue(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.out.clear();
        }
    }

    /// Drops the unsent rest of the line `id`'s queue stopped in, if part of it went out (a
    /// zoo bug: a partial write abandoned).
    pub fn abandon_partial_line(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.out.abandon_partial_line();
        }
    }

    /// The kernel accepted `n` bytes of `id`'s queue.
    pub fn sent(&mut self, id: ClientId, n: usize) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.out.advance(n);
        }
    }

    /// `id`'s address, while it is in the room.
    pub fn peer(&self, id: ClientId) -> Option<&SockAddr> {
        self.clients.get(&id).map(|c| &c.peer)
    }

    /// Whether any of `ids` has more than `bytes` queued.
    pub fn any_queue_over(&self, ids: &[ClientId], bytes: usize) -> bool {
        ids.iter()
            .any(|id| self.clients.get(id).is_some_and(|c| c.out.bytes() > bytes))
    }

    /// Clients whose queues grew since the I/O layer last took them (without taking them).
    pub fn dirty(&self) -> &[ClientId] {
        &self.dirty
    }

    /// `id`'s queue, for the I/O layer to send from.
    pub fn outbound(&self, id: ClientId) -> Option<&Outbound> {
        self.clients.get(&id).map(|c| &c.out)
    }

    /// Clients with new output since the last call, in id order.
    pub fn take_dirty(&mut self, into: &mut Vec<ClientId>) {
        into.clear();
        into.append(&mut self.dirty);
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Everyone is asked to leave (the server is stopping): queues are dropped.
    pub fn stop(&mut self, now_unix_secs: u64) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.actions.push_back(Action::Close(id));
            self.left(id, Departure::ServerStopping, now_unix_secs);
        }
    }

    fn log(&mut self, line: String) {
        self.actions.push_back(Action::Log(line));
    }

    fn mark_dirty(&mut self, id: ClientId) {
        if let Err(at) = self.dirty.binary_search(&id) {
            self.dirty.insert(at, id);
        }
    }

    /// A leaving client's "left room" goes out now (it is still in the table, draining).
    fn announce_departure(&mut self, id: ClientId, now_unix_secs: u64) {
        let peer = self.departure_name(self.clients[&id].peer.clone(), Departure::LineTooLong);
        self.log(format!("Client:{peer} Close."));
        let note = format!("{} {peer} left room\n", self.clock.stamp(now_unix_secs));
        if self.bugs.has(Bug::BroadcastUafOnClose) {
            // The closing client is still in the table, and among the recipients.
            let c = self.clients.get_mut(&id).expect("still draining");
            c.out.push(Rc::from(note.clone().into_bytes()));
        }
        self.broadcast(id, note.into_bytes(), now_unix_secs);
    }

    /// Queues one shared copy of `line` for every client but `from` (and those leaving).
    /// Recipients past the cap are disconnected after the loop, never during it.
    fn broadcast(&mut self, from: ClientId, line: Vec<u8>, now_unix_secs: u64) {
        let line: Rc<[u8]> = Rc::from(line);
        let cap = self.limits.outbound_cap_bytes;
        let mut slow = Vec::new();
        let mut grew = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            if id == from || c.leaving {
                continue;
            }
            // InspIRCd#653 (missing_sendq): no sendq limit, so a flood queues without bound.
            let capped =
                !self.bugs.has(Bug::UnboundedReplyBuffer) && !self.bugs.has(Bug::MissingSendq);
            if c.out.bytes() + line.len() > cap && capped {
                slow.push(id);
                continue;
            }
            c.out.push(Rc::clone(&line));
            self.peak_queue_bytes = self.peak_queue_bytes.max(c.out.bytes());
            grew.push(id);
        }
        for id in grew {
            self.mark_dirty(id);
        }
        for id in slow {
            // An earlier departure in this loop may have cascaded and removed it already.
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            c.out.clear();
            let peer = c.peer.clone();
            self.log(format!(
                "{peer} disconnected: slow consumer (past the hard limit of {cap} bytes queued)"
            ));
            self.actions.push_back(Action::Close(id));
            // Leaving is announced as usual (which may find further slow consumers: each
            // recursion removes one client, so the depth is bounded by the room's size).
            self.left(id, Departure::SlowConsumer, now_unix_secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_767_225_600;

    fn lo(port: u16) -> SockAddr {
        SockAddr::Inet(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// How many of `ids` are in the room.
    fn members(s: &ChatServer, ids: std::ops::RangeInclusive<ClientId>) -> usize {
        ids.filter(|id| s.peer(*id).is_some()).count()
    }

    fn actions(s: &mut ChatServer) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn drain(s: &mut ChatServer, id: ClientId) {
        let n = s.outbound(id).map_or(0, Outbound::bytes);
        s.sent(id, n);
    }

    /// Regression (found in review): two queues within one "left room" of the cap. Removing
    /// the first slow consumer announces it, which overflows and removes the second while the
    /// outer loop still lists it.
    #[test]
    fn cascading_slow_consumers_do_not_panic() {
        let line_len = "2026-01-01 00:00:00 ('127.0.0.1', 3) say: 0123456789\n".len();
        let limits = Limits {
            max_line_bytes: 4096,
            outbound_cap_bytes: 3 * line_len + 5,
            max_clients: 10,
            ..Limits::default()
        };
        let mut s = ChatServer::new(limits);
        for id in 1..=3 {
            assert!(s.join(id, lo(id as u16), T));
        }
        drain(&mut s, 1);
        drain(&mut s, 2);
        for _ in 0..4 {
            s.received(3, b"0123456789\n", T);
        }
        assert_eq!(
            members(&s, 1..=3),
            1,
            "both slow consumers left; the sender stays"
        );
        assert!(s.peak_queue_bytes() <= limits.outbound_cap_bytes);
    }

    /// Regression (found in review): the cascade can remove the sender in the middle of its
    /// own chunk; the rest of the chunk (here an over-long line) is then ignored.
    #[test]
    fn a_sender_removed_mid_chunk_says_nothing_more() {
        let line_len = "2026-01-01 00:00:00 ('127.0.0.1', 2) say: 0123456789\n".len();
        let limits = Limits {
            max_line_bytes: 300,
            outbound_cap_bytes: 3 * line_len + 5,
            max_clients: 10,
            ..Limits::default()
        };
        let mut s = ChatServer::new(limits);
        assert!(s.join(1, lo(1), T));
        assert!(s.join(2, lo(2), T));
        drain(&mut s, 1);
        drain(&mut s, 2);
        for _ in 0..3 {
            s.received(2, b"0123456789\n", T);
        }
        let mut chunk = vec![b'y'; 200];
        chunk.push(b'\n');
        chunk.extend(std::iter::repeat_n(b'z', 400));
        s.received(1, &chunk, T);
        assert!(members(&s, 1..=3) <= 2);
    }

    /// The formatted length of `text` said by the client on port `port`.
    fn said_len(port: u16, text: &str) -> usize {
        format!("2026-01-01 00:00:00 ('127.0.0.1', {port}) say: {text}\n").len()
    }

    /// Found by cargo-mutants: a departure of someone not in the room changes nothing.
    #[test]
    fn leaving_twice_or_unknown_changes_nothing() {
        let mut s = ChatServer::new(Limits::default());
        for id in 1..=2 {
            assert!(s.join(id, lo(id as u16), T));
        }
        let _ = actions(&mut s);
        s.left(9, Departure::Closed, T);
        assert!(actions(&mut s).iter().all(|a| matches!(a, Action::Log(_))));
        assert_eq!(members(&s, 1..=2), 2);
    }

    /// Found by cargo-mutants: when a client that was already leaving goes, the others still
    /// have their new output to send.
    #[test]
    fn a_leaving_clients_departure_keeps_the_others_dirty() {
        let limits = Limits {
            max_line_bytes: 8,
            ..Limits::default()
        };
        let mut s = ChatServer::new(limits);
        for id in 1..=3 {
            assert!(s.join(id, lo(id as u16), T));
        }
        for id in 1..=3 {
            drain(&mut s, id);
        }
        let mut dirty = Vec::new();
        s.take_dirty(&mut dirty);
        s.received(2, b"far too long a line\n", T); // c2 is now leaving
        s.received(3, b"hi\n", T);
        s.left(2, Departure::Closed, T);
        s.take_dirty(&mut dirty);
        assert!(dirty.contains(&1), "{dirty:?}");
    }

    /// Found by cargo-mutants: a queue of exactly `bytes` is not over `bytes`.
    #[test]
    fn a_queue_is_over_only_past_the_mark() {
        let mut s = ChatServer::new(Limits::default());
        for id in 1..=2 {
            assert!(s.join(id, lo(id as u16), T));
        }
        drain(&mut s, 1);
        s.received(2, b"hi\n", T);
        let queued = s.outbound(1).map_or(0, Outbound::bytes);
        assert_eq!(queued, said_len(2, "hi"));
        assert!(!s.any_queue_over(&[1], queued));
        assert!(s.any_queue_over(&[1], queued - 1));
    }

    /// Found by cargo-mutants: a line that brings a queue to exactly the cap is queued; one
    /// byte more and its reader is dropped as a slow consumer.
    #[test]
    fn the_cap_is_inclusive() {
        // Longer than c2's arrival notice, which c1 hears first.
        let text = "a line longer than any notice";
        let len = said_len(2, text);
        for (cap, dropped) in [(len, false), (len - 1, true)] {
            let limits = Limits {
                outbound_cap_bytes: cap,
                ..Limits::default()
            };
            let mut s = ChatServer::new(limits);
            for id in 1..=2 {
                assert!(s.join(id, lo(id as u16), T));
            }
            drain(&mut s, 1);
            let _ = actions(&mut s);
            s.received(2, format!("{text}\n").as_bytes(), T);
            let closed = actions(&mut s)
                .iter()
                .any(|a| matches!(a, Action::Close(1)));
            assert_eq!(closed, dropped, "cap {cap}");
        }
    }
}
