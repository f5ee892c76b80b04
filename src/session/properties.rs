//! The chat properties as a checker over a finished [`Session`](super::Session):
//! shared by the proptest, the `chat_adversary` fuzz target and the bug zoo.
//!
//! A model replays the steps: who is present when each line completes, who joins and leaves,
//! what each present client must hear. Then, for every client, what it heard must match:
//! - every `say` line, and every `entered room` / `left room` notice naming the right client,
//!   exactly once and in order; never its own;
//! - with two relaxations where the schedule, not the server, decides: a client that stopped
//!   reading (or was still paused at the end, or stayed paused while the slow-consumer
//!   timeout passed: the server may drop it), or whose connection the network reset, heard
//!   a prefix of its share; and what is
//!   said about such a client (its departure notice's moment, its lines after the reset) is
//!   compared per client, as a prefix, its departure notices not at all;
//! - once the server has held the room for a slow reader (paused reading), lines wait in
//!   their senders' sockets and reach it in an order the schedule picks: from the first step
//!   during which it held the room, only each sender's own order is exact;
//! - a client that left while the server held the room for a slow reader is judged like the
//!   loose ones; one that joined then may first hear lines said just before (they were waiting
//!   in their senders' sockets), so from each client what it should hear must end what it heard;
//! - where the schedule decided whom a client heard at all (the server cut it off for an
//!   over-long line after the room was held; it joined and left while the room was held),
//!   what it heard from each client must be part of what that client said: in order, once;
//!   and when the server went away after holding the room, lines still waiting in their
//!   senders' sockets were never read, so from the hold on each client is owed a prefix;
//! - no queue past the cap; no busy loop; the server never blocks (no virtual time passes
//!   while a step settles), and goes on to the end (another program does not exit, spin,
//!   block in a call, or do what the simulator refuses).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use super::symptom::{Failure, Symptom};
use super::{Outcome, Step};
use crate::chat::protocol::{self, What};
use crate::chat::server::{LINE_TOO_LONG_PREFIX, Limits, SERVER_FULL_LINE};

/// What a client can hear about another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// `... say: <text>` (shared: the model tells it to every client present, and the
    /// comparisons copy items about; a copy is a count, not the text).
    Line(Rc<[u8]>),
    /// `... entered room`.
    Entered,
    /// `... left room`.
    Left,
}

/// For each client, the (client number, what was said) pairs it heard, in order.
pub type Heard = Vec<Vec<(usize, Said)>>;

/// The server's events may not exceed this many per step, plus one per byte moved.
pub const EVENTS_PER_STEP_BOUND: u64 = 40;

/// The server's own choices, which the model follows: none of them is a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The others hear `entered room` (or the server's own words) when someone joins.
    pub entered: bool,
    /// The others hear `left room` (or the server's own words) when someone leaves.
    pub left: bool,
    /// An empty line is relayed like any other.
    pub empty_lines: bool,
    /// What becomes of a line over the limit.
    pub long_line: LongLine,
    /// A departure may be announced later than the model places it (when the server notices
    /// it: a send to the client fails in the middle of one read's lines, say), as long as
    /// nothing of the client's comes after it.
    pub late_departures: bool,
}

/// What a server does with a line over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongLine {
    /// Its sender is cut off (what it completed before still counts).
    CutOff,
    /// The line is dropped, up to its newline; its sender stays.
    Dropped,
}

impl Policy {
    /// The tutorial's room: both notices, empty lines dropped, an over-long line's sender cut
    /// off.
    pub const TUTORIAL: Policy = Policy {
        entered: true,
        left: true,
        empty_lines: false,
        long_line: LongLine::CutOff,
        late_departures: false,
    };
}

#[derive(Debug, Clone, Default)]
struct Member {
    joined: bool,
    present: bool,
    pending: Vec<u8>,
    /// Dropping the rest of an over-long line, up to its newline ([`LongLine::Dropped`]).
    dropping: bool,
    /// Paused: what it types waits (`typed`) until it carries on.
    paused: bool,
    typed: Vec<u8>,
}

/// The model's replay of a session's steps.
struct Model {
    /// What each client should have heard: (client number, what was said), in order.
    share: Heard,
    /// Everything each client said (its lines and notices about it), in order, whoever heard.
    said: Vec<Vec<Said>>,
    /// The step at which the server disconnected each client for an over-long line, if it did.
    cut_off_at: Vec<Option<usize>>,
    members: Vec<Member>,
    last_line: LastLine,
    /// For each step asked for (see [`model_cut`]), how long each client's share was before
    /// it: the share of the steps before it, since the model only appends.
    share_lens_at: BTreeMap<usize, Vec<usize>>,
    policy: Policy,
}

/// The text of the last line made, kept to share with the next if it says the same (a burst
/// repeats one line thousands of times: one allocation instead of thousands).
#[derive(Default)]
struct LastLine(Option<Rc<[u8]>>);

impl LastLine {
    fn get(&mut self, text: &[u8]) -> Rc<[u8]> {
        match &self.0 {
            Some(last) if **last == *text => Rc::clone(last),
            _ => Rc::clone(self.0.insert(text.into())),
        }
    }
}

/// What each client should have heard from the tutorial's room: (client number, what was
/// said), in order.
pub fn expected(steps: &[Step], clients: usize, limits: &Limits) -> Heard {
    expected_with(steps, clients, limits, Policy::TUTORIAL)
}

/// What each client should have heard from a room with `policy`.
pub fn expected_with(steps: &[Step], clients: usize, limits: &Limits, policy: Policy) -> Heard {
    model_cut(steps, clients, limits, &BTreeSet::new(), policy).share
}

/// Replays the steps: who is present when each line completes, who joins and leaves, what
/// each present client must hear; and how long each share was before each step in `cuts`
/// (one replay instead of one per prefix the checker needs).
fn model_cut(
    steps: &[Step],
    clients: usize,
    limits: &Limits,
    cuts: &BTreeSet<usize>,
    policy: Policy,
) -> Model {
    let mut room = Model {
        share: vec![Vec::new(); clients],
        said: vec![Vec::new(); clients],
        cut_off_at: vec![None; clients],
        members: vec![Member::default(); clients],
        last_line: LastLine::default(),
        share_lens_at: BTreeMap::new(),
        policy,
    };
    let max = limits.max_line_bytes;
    let mut server_up = true;
    // A step about a client the model does not count is no step at all.
    for (at, s) in
        (steps.iter().enumerate()).filter(|(_, s)| s.client().is_none_or(|n| n < clients))
    {
        room.mark_cuts(cuts, at);
        let present = |n: usize| room.members[n].present;
        match s {
            Step::Join(n) if server_up => room.join(*n),
            Step::Crowd(k) if server_up => {
                for n in 0..(*k).min(clients) {
                    room.join(n);
                }
            }
            Step::Say(n, text) | Step::Raw(n, text) | Step::Drip(n, text) if present(*n) => {
                let mut bytes = text.clone();
                if matches!(s, Step::Say(..)) {
                    bytes.push(b'\n');
                }
                if room.members[*n].paused {
                    room.members[*n].typed.extend_from_slice(&bytes);
                } else {
                    room.speak(*n, &bytes, max, at);
                }
            }
            // Pausing an absent client changes nothing: joining resets it, and nothing is said
            // for a client that is not present.
            Step::Pause(n) => room.members[*n].paused = true,
            Step::Resume(n) => {
                // What it typed while paused goes out now (nothing, if it was not paused or is
                // not present: leaving clears it).
                room.members[*n].paused = false;
                let typed = std::mem::take(&mut room.members[*n].typed);
                room.speak(*n, &typed, max, at);
            }
            Step::Exit(n) | Step::Reset(n) if present(*n) => room.depart(*n),
            Step::StopServer => {
                server_up = false;
                for member in &mut room.members {
                    member.present = false;
                }
            }
            _ => {}
        }
    }
    room.mark_cuts(cuts, usize::MAX);
    room
}

impl Model {
    /// Notes each share's length for every cut up to `at` not noted yet.
    fn mark_cuts(&mut self, cuts: &BTreeSet<usize>, at: usize) {
        for &cut in cuts.range(..=at) {
            if !self.share_lens_at.contains_key(&cut) {
                let lens = self.share.iter().map(Vec::len).collect();
                self.share_lens_at.insert(cut, lens);
            }
        }
    }

    /// How long each client's share was before step `cut` (one of the model's cuts).
    fn lens_before(&self, cut: usize) -> &[usize] {
        self.share_lens_at
            .get(&cut)
            .expect("the model was cut there")
    }

    fn tell_others(&mut self, n: usize, said: Said) {
        let told = match said {
            Said::Entered => self.policy.entered,
            Said::Left => self.policy.left,
            Said::Line(_) => true,
        };
        if !told {
            return;
        }
        for (other, member) in self.members.iter().enumerate() {
            if other != n && member.present {
                self.share[other].push((n, said.clone()));
            }
        }
        self.said[n].push(said);
    }

    fn join(&mut self, n: usize) {
        if self.members[n].joined {
            return;
        }
        self.members[n] = Member {
            joined: true,
            present: true,
            ..Member::default()
        };
        self.tell_others(n, Said::Entered);
    }

    fn depart(&mut self, n: usize) {
        let member = &mut self.members[n];
        member.present = false;
        member.pending.clear();
        member.typed.clear();
        member.dropping = false;
        self.tell_others(n, Said::Left);
    }

    /// Client `n` sent `bytes` at step `at`: each line it completes reaches the others
    /// present; a line over `max` gets `n` disconnected (what it completed before still counts).
    fn speak(&mut self, n: usize, bytes: &[u8], max: usize, at: usize) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest);
            let (text, after) = match end {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            let member = &mut self.members[n];
            if member.dropping {
                member.dropping = end.is_none();
                rest = after;
                continue;
            }
            if member.pending.len() + text.len() > max {
                if self.policy.long_line == LongLine::Dropped {
                    member.pending.clear();
                    member.dropping = end.is_none();
                    rest = after;
                    continue;
                }
                self.cut_off_at[n] = Some(at);
                self.depart(n);
                return;
            }
            let pending = &mut member.pending;
            pending.extend_from_slice(text);
            if end.is_some() && (!pending.is_empty() || self.policy.empty_lines) {
                let line = self.last_line.get(pending);
                self.members[n].pending.clear();
                self.tell_others(n, Said::Line(line));
            }
            rest = after;
        }
    }
}

/// Moves each departure a client heard later than the model places it back to the model's
/// place, when nothing of the departed client's lies between: the server announced it when it
/// noticed. (Heard earlier than the model says, or out of turn, it stays put, and is judged.)
fn excuse_late_departures(got: &mut Heard, want: &Heard) {
    for (mine, want) in got.iter_mut().zip(want) {
        let mut used = 0;
        for (at, item) in want.iter().enumerate() {
            if item.1 != Said::Left {
                continue;
            }
            // The model's place: after this many items that are not departures.
            let before = want[..at].iter().filter(|i| i.1 != Said::Left).count();
            let Some(q) = (mine.iter().enumerate().skip(used))
                .position(|(_, i)| i == item)
                .map(|p| p + used)
            else {
                continue;
            };
            // The model's place in what was heard: after as many other items, and after the
            // departures already placed.
            let mut seen = 0;
            let place = (mine.iter().enumerate())
                .find(|(p, i)| {
                    let reached = seen == before && *p >= used;
                    if i.1 != Said::Left {
                        seen += 1;
                    }
                    reached
                })
                .map_or(mine.len(), |(p, _)| p);
            let theirs_between = mine[place.min(q)..q].iter().any(|i| i.0 == item.0);
            if place < q && !theirs_between {
                let moved = mine.remove(q);
                mine.insert(place, moved);
            }
            used = place.min(q) + 1;
        }
    }
}

/// What each client did hear: its "say" lines and notices parsed back to (client, what).
pub fn heard(o: &Outcome, clients: usize) -> Result<Heard, Failure> {
    // Each client's address as the server writes it, formatted once (not once per line heard):
    // the first client with an address owns it. Hashed, not ordered: an ordered search
    // compares the address with its unequal neighbours on every line, and under the fuzzer
    // each unequal comparison is traced (libFuzzer hooks memcmp), a twentieth of its time.
    let mut by_name = std::collections::HashMap::new();
    for (n, c) in o.clients.iter().enumerate() {
        if let Some(a) = &c.addr {
            by_name.entry(a.to_string().into_bytes()).or_insert(n);
        }
    }
    let who = |m: usize, addr: &[u8], line: &[u8]| {
        by_name.get(addr).copied().ok_or_else(|| {
            let what = format!("c{} heard an unknown client: {line:?}", m + 1);
            Failure::new(Symptom::Unreadable, what)
        })
    };
    let mut shared = LastLine::default();
    let mut all = Vec::with_capacity(clients);
    for m in 0..clients {
        let mut said = Vec::new();
        let lines = o.clients.get(m).map(|c| c.lines.as_slice());
        for l in lines.unwrap_or_default() {
            let Some(notice) = protocol::parse(l) else {
                if is_server_notice(l) {
                    continue;
                }
                let what = format!(
                    "c{} heard a line that is not the protocol's: {:?}",
                    m + 1,
                    String::from_utf8_lossy(l)
                );
                return Err(Failure::new(Symptom::Unreadable, what));
            };
            let said_what = match notice.what {
                What::Say(text) => Said::Line(shared.get(text)),
                What::Entered => Said::Entered,
                What::Left => Said::Left,
            };
            said.push((who(m, notice.who, l)?, said_what));
        }
        all.push(said);
    }
    Ok(all)
}

/// The lines the server says to one client about itself, outside the room's protocol: the
/// refusal of an over-long line, and a full room's answer.
fn is_server_notice(line: &[u8]) -> bool {
    line.starts_with(LINE_TOO_LONG_PREFIX.as_bytes())
        || Some(line) == SERVER_FULL_LINE.strip_suffix(b"\n")
}

/// Where what a client heard first departs from what it should have heard, in a few lines,
/// and the kind of that departure.
fn first_difference(got: &[(usize, Said)], want: &[(usize, Said)]) -> Failure {
    let at = got.iter().zip(want).take_while(|(g, w)| g == w).count();
    let show = |item: Option<&(usize, Said)>| item.map_or("nothing".to_string(), shown);
    let what = format!(
        "heard {} items but should have heard {}; item {} was {}, should be {}",
        got.len(),
        want.len(),
        at + 1,
        show(got.get(at)),
        show(want.get(at))
    );
    Failure::new(
        departure(&got[at.min(got.len())..], &want[at.min(want.len())..]),
        what,
    )
}

/// An item as a report shows it: `c1 says "hi"`, `c2 entered`, `c3 left`.
fn shown((who, said): &(usize, Said)) -> String {
    match said {
        Said::Line(text) => format!("c{} says {:?}", who + 1, String::from_utf8_lossy(text)),
        Said::Entered => format!("c{} entered", who + 1),
        Said::Left => format!("c{} left", who + 1),
    }
}

/// The kind of a departure, from the first items that differ on: nothing more heard, or an
/// item owed that never came, is a loss (before anything heard in its place); a line of the
/// right sender with other text is torn; an item never said is extra; both said, elsewhere, is
/// a reordering.
fn departure(got: &[(usize, Said)], want: &[(usize, Said)]) -> Symptom {
    match (got.first(), want.first()) {
        (None, _) => Symptom::Lost,
        (Some(_), None) => Symptom::Extra,
        (Some(g @ (gw, Said::Line(_))), Some((ww, Said::Line(_))))
            if gw == ww && !want.contains(g) =>
        {
            Symptom::Torn
        }
        (Some(_), Some(w)) if !got.contains(w) => Symptom::Lost,
        (Some(g), Some(_)) if !want.contains(g) => Symptom::Extra,
        _ => Symptom::Reordered,
    }
}

/// The items of `v` that client `who` said, in order.
fn from(who: usize, v: &[(usize, Said)]) -> Vec<(usize, Said)> {
    v.iter().filter(|(w, _)| *w == who).cloned().collect()
}

/// How much of its share a client may be missing at the end.
#[derive(Debug, Clone, Copy)]
struct Owed {
    /// Only a prefix of what came before the server first held the room (`n` is loose).
    head_prefix: bool,
    /// Only a prefix, per sender, of what came after (`n` is loose, or the server stopped
    /// after it held the room: lines still waiting in their senders' sockets were never read).
    tail_prefix: bool,
}

/// Compares what client `n` heard with its share, with the relaxations for `loose` clients
/// (stopped reading, or reset by the network) and what `owed` allows.
/// `ordered`: how many items of `want` came before the server first held the room; after
/// them, lines waited in their senders' sockets, so the order across senders is free and only
/// each sender's own order counts.
fn compare(
    got: &[(usize, Said)],
    want: &[(usize, Said)],
    loose: &BTreeSet<usize>,
    owed: Owed,
    ordered: usize,
    floor: impl Fn(usize) -> usize,
) -> Result<(), Failure> {
    let Owed {
        head_prefix,
        tail_prefix,
    } = owed;
    let strict = |v: &[(usize, Said)]| -> Vec<(usize, Said)> {
        v.iter()
            .filter(|(w, _)| !loose.contains(w))
            .cloned()
            .collect()
    };
    let (head, tail) = want.split_at(ordered.min(want.len()));
    let (g, head, tail) = (strict(got), strict(head), strict(tail));
    let cut = g.len().min(head.len());
    if g[..cut] != head[..cut] || (!head_prefix && cut < head.len()) {
        return Err(first_difference(&g, &[head, tail].concat()));
    }
    let senders: BTreeSet<usize> = (g[cut..].iter().chain(&tail)).map(|(w, _)| *w).collect();
    for who in senders {
        let (g, w) = (from(who, &g[cut..]), from(who, &tail));
        let ok = if tail_prefix {
            w.starts_with(&g)
        } else {
            g == w
        };
        if !ok {
            let held = if ordered < want.len() {
                "(after the room was held, per sender) "
            } else {
                ""
            };
            return Err(first_difference(&g, &w).after(held));
        }
    }
    for &l in loose {
        let about = |v: &[(usize, Said)]| -> Vec<(usize, Said)> {
            v.iter()
                .filter(|(w, s)| *w == l && *s != Said::Left)
                .cloned()
                .collect()
        };
        let (g, w) = (about(got), about(want));
        if !w.starts_with(&g) {
            return Err(first_difference(&g, &w));
        }
        // What it said before it went loose is owed in full to a client still reading.
        let owed_items = floor(l);
        if !head_prefix && !tail_prefix && g.len() < owed_items {
            let owed = format!(
                "heard {} items about c{} but is owed the {owed_items} it said before it went loose; ",
                g.len(),
                l + 1,
            );
            return Err(first_difference(&g, &w[..owed_items.min(w.len())]).after(&owed));
        }
    }
    Ok(())
}

/// A client that joined while the server held the room may also hear, first, lines said just
/// before it joined (they waited in their senders' sockets): from each client, what it should
/// hear ends what it heard, in order, exactly once. About a `loose` client it may hear
/// anything of that kind: lines from before it joined, then a prefix of its share (the rest
/// may never have left the loose client's socket), so nothing is judged there. (Echoes are
/// judged before any comparison, in [`check_heard`].)
fn compare_late(
    got: &[(usize, Said)],
    want: &[(usize, Said)],
    clients: usize,
    loose: &BTreeSet<usize>,
) -> Result<(), Failure> {
    for who in (0..clients).filter(|w| !loose.contains(w)) {
        let (g, w) = (from(who, got), from(who, want));
        if !g.ends_with(&w) {
            return Err(first_difference(&g, &w).after("(joined while the room was held) "));
        }
    }
    Ok(())
}

/// Where the schedule decided whom a client heard (the server cut it off for an over-long
/// line once the room had been held, so others' lines waiting in their sockets may have
/// reached it first; or it joined and left while the room was held), what it heard from each
/// client must still be part of what that client said: in order, each item at most once.
/// (The departure of a `loose` client is not judged: the server may drop a
/// slow reader, which the model does not foresee.)
fn compare_within(
    got: &[(usize, Said)],
    said: &[Vec<Said>],
    loose: &BTreeSet<usize>,
) -> Result<(), Failure> {
    let mut rest: Vec<std::slice::Iter<'_, Said>> = said.iter().map(|s| s.iter()).collect();
    for (who, item) in got {
        if *item == Said::Left && loose.contains(who) {
            continue;
        }
        if !rest.get_mut(*who).is_some_and(|r| r.any(|s| s == item)) {
            // Said, but not after what was heard before it from that client: out of order,
            // or heard twice.
            let said_at_all = said.get(*who).is_some_and(|s| s.contains(item));
            let symptom = match said_at_all {
                true => Symptom::Reordered,
                false => Symptom::Extra,
            };
            let what = format!(
                "heard c{} {item:?}, which is not, in order and once, among what it said",
                who + 1
            );
            return Err(Failure::new(symptom, what));
        }
    }
    Ok(())
}

/// Clients owed only part of their share, or whose own sayings are owed only in part, each
/// with the step from which it is loose (what it said before then is owed in full): those
/// that stopped reading (from that step), were paused at the end or when they or the server
/// left, or stayed paused while the slow-consumer timeout passed, so that the server may have
/// dropped them (from the pause), and those reset by the network or that left while the server
/// held the room (from the start: when is the schedule's to say).
pub fn loose_clients(steps: &[Step], o: &Outcome, timeout: Duration) -> BTreeMap<usize, usize> {
    let mut since = BTreeMap::new();
    let mut loose = |n: usize, at: usize| {
        let first = since.entry(n).or_insert(at);
        *first = (*first).min(at);
    };
    // Each paused client: the step of its pause, and the virtual time slept since. Paused
    // when the session ended or when it left, it had not read what was waiting.
    let mut paused: BTreeMap<usize, (usize, Duration)> = BTreeMap::new();
    for (at, s) in steps.iter().enumerate() {
        match s {
            Step::StopReading(n) => loose(*n, at),
            Step::Pause(n) => {
                paused.entry(*n).or_insert((at, Duration::ZERO));
            }
            Step::Resume(n) => {
                paused.remove(n);
            }
            Step::Sleep(d) => {
                for (&n, (p, slept)) in &mut paused {
                    *slept += *d;
                    if *slept >= timeout {
                        loose(n, *p);
                    }
                }
            }
            Step::Exit(n) | Step::Reset(n) => {
                if let Some(&(p, _)) = paused.get(n) {
                    loose(*n, p);
                }
            }
            // The server closes every connection, dropping what it had not sent yet.
            Step::StopServer => paused.iter().for_each(|(&n, &(p, _))| loose(n, p)),
            _ => {}
        }
    }
    paused.iter().for_each(|(&n, &(p, _))| loose(n, p));
    for (n, c) in o.clients.iter().enumerate() {
        if c.reset_by_network || c.left_while_held {
            loose(n, 0);
        }
    }
    since
}

/// For each loose client, how many items about it (its entry and lines, not its departure)
/// each client is owed in full: what it said before it went loose, and before the server
/// first held the room (after that, its lines may have waited unread in its socket).
fn owed_about_loose(
    model: &Model,
    since: &BTreeMap<usize, usize>,
    first_held_step: Option<usize>,
) -> BTreeMap<usize, Vec<usize>> {
    (since.iter())
        .map(|(&l, &at)| {
            let lens = model.lens_before(owed_cut(at, first_held_step));
            let counts = (model.share.iter().zip(lens))
                .map(|(v, &len)| {
                    v[..len]
                        .iter()
                        .filter(|(w, s)| *w == l && *s != Said::Left)
                        .count()
                })
                .collect();
            (l, counts)
        })
        .collect()
}

/// The step before which what a client that went loose at `at` said is owed in full.
fn owed_cut(at: usize, first_held_step: Option<usize>) -> usize {
    at.min(first_held_step.unwrap_or(usize::MAX))
}

/// Checks every property of a finished session of the tutorial's room; the error says which
/// and carries the transcript.
pub fn check(steps: &[Step], o: &Outcome, clients: usize, limits: &Limits) -> Result<(), Failure> {
    check_heard(steps, o, clients, limits, Policy::TUTORIAL, |_| {
        heard(o, clients)
    })
}

/// Checks every property of a finished session of a room with `policy`, reading what each
/// client heard with `read` (given what each should have heard, which it may need to tell
/// who is who: see [`dialect`](super::dialect)).
pub fn check_heard(
    steps: &[Step],
    o: &Outcome,
    clients: usize,
    limits: &Limits,
    policy: Policy,
    read: impl FnOnce(&dyn Fn() -> Heard) -> Result<Heard, Failure>,
) -> Result<(), Failure> {
    could_go_on(o)?;
    let share = || expected_with(steps, clients, limits, policy);
    let mut got = read(&share).map_err(|e| e.with_transcript(&o.transcript))?;
    if policy.late_departures {
        excuse_late_departures(&mut got, &share());
    }
    let loose_since = loose_clients(steps, o, limits.slow_consumer_timeout);
    let loose: BTreeSet<usize> = loose_since.keys().copied().collect();
    // The prefixes the checks below need: before the first hold, and before each loose
    // client's going loose (or the hold, if earlier).
    let held_cut = o.first_held_step.unwrap_or(usize::MAX);
    let cuts = (loose_since.values())
        .map(|&at| owed_cut(at, o.first_held_step))
        .chain([held_cut])
        .collect();
    let model = model_cut(steps, clients, limits, &cuts, policy);
    let want = &model.share;
    let floors = owed_about_loose(&model, &loose_since, o.first_held_step);
    // What each client should have heard before the server first held the room: the
    // model appends, so the steps before that one give a prefix of each client's share.
    let ordered = model.lens_before(held_cut).to_vec();
    let after_hold =
        |at: Option<usize>| at.is_some_and(|at| o.first_held_step.is_some_and(|h| at >= h));
    // The server went away after it had held the room: lines still waiting in their senders'
    // sockets then were never read, so everyone is owed a prefix from the hold on (and all of
    // what came before it).
    let stop = steps.iter().position(|s| matches!(s, Step::StopServer));
    let stopped_after_hold = after_hold(stop);
    for (n, (got, want)) in got.iter().zip(want).enumerate() {
        let late = o.clients.get(n).is_some_and(|c| c.joined_while_held);
        let owed = Owed {
            head_prefix: loose.contains(&n),
            tail_prefix: loose.contains(&n) || stopped_after_hold,
        };
        let verdict = if let Some(mine) = got.iter().find(|(w, _)| *w == n) {
            // Its own line back is an echo; its own arrival or departure told to it, news
            // that is no news to anyone.
            let symptom = match mine.1 {
                Said::Line(_) => Symptom::Echoed,
                _ => Symptom::Extra,
            };
            Err(Failure::new(
                symptom,
                format!("heard itself: {}", shown(mine)),
            ))
        } else if after_hold(model.cut_off_at[n]) || (late && owed.tail_prefix) {
            compare_within(got, &model.said, &loose)
        } else if late {
            compare_late(got, want, clients, &loose)
        } else {
            let floor = |l: usize| floors.get(&l).and_then(|v| v.get(n)).copied().unwrap_or(0);
            compare(got, want, &loose, owed, ordered[n], floor)
        };
        verdict.map_err(|e| {
            e.after(&format!("c{} ", n + 1))
                .with_transcript(&o.transcript)
        })?;
    }
    if o.peak_queue_bytes > limits.outbound_cap_bytes {
        let what = format!("a queue reached {} bytes, over the cap", o.peak_queue_bytes);
        return Err(Failure::new(Symptom::OverCap, what).with_transcript(&o.transcript));
    }
    check_liveness(steps.len(), o)
}

/// The properties a session must keep whatever it delivered (all that is judged when the
/// schedule, not the model, decides who gets in, as when descriptors run out): no more server
/// events than the work bound (a busy loop), and no virtual time passing while a step settles
/// (a server that blocks).
pub fn check_liveness(step_count: usize, o: &Outcome) -> Result<(), Failure> {
    let work =
        (step_count as u64 + 1) * EVENTS_PER_STEP_BOUND + o.stats.bytes_in + o.stats.bytes_out;
    let failure = if o.stats.events > work {
        let what = format!(
            "{} events for {work} units of work: a busy loop?",
            o.stats.events
        );
        Failure::new(Symptom::Spin, what)
    } else if !o.stalled.is_zero() {
        let what = format!(
            "the server blocked for {:?} while a step settled: the room stalled",
            o.stalled
        );
        Failure::new(Symptom::Blocked, what)
    } else {
        return Ok(());
    };
    Err(failure.with_transcript(&o.transcript))
}

/// The server went on to the end: it did not exit, spin, block in a call, or do what the
/// simulator refuses (another program's trouble, as [`Server::trouble`](super::Server::trouble)
/// names it).
pub fn could_go_on(o: &Outcome) -> Result<(), Failure> {
    match &o.server_trouble {
        Some(trouble) => Err((trouble.clone())
            .after("the server could not go on: ")
            .with_transcript(&o.transcript)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
