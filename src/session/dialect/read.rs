//! What clients heard, read back in a dialect into who said what.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::Dialect;
use super::frame::{Frame, find};
use crate::session::Step;
use crate::session::properties::{Heard, Said};
use crate::session::symptom::{Failure, Symptom};

/// One line a client heard, read in the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Greeting(Vec<u8>),
    Joined(Vec<u8>),
    Left(Vec<u8>),
    Relay(Vec<u8>, Vec<u8>),
}

/// Who is who in one session: each client's port, and who said each text.
pub struct Cast<'a> {
    /// Each client's port, by number (`None`: it never joined).
    pub ports: Vec<Option<u16>>,
    /// Each text said, and who said it (several: the text does not tell who).
    pub said_by: &'a BTreeMap<Vec<u8>, BTreeSet<usize>>,
    /// Some client's departure is not judged (the network reset it, or it stopped reading and
    /// the server may drop it): a departure notice about a name never bound may be about one
    /// of them, who may have gone before it was ever named.
    pub unjudged_departures: bool,
    /// Pairs `(a, b)`: client `a`'s connection ended (it exited or was reset) before client
    /// `b` joined, so a name of `a`'s may lawfully be `b`'s from then on (see [`succession`]).
    pub succession: BTreeSet<(usize, usize)>,
}

/// The pairs of clients of [`Cast::succession`] in `steps`: `(a, b)` when `a` exits or is
/// reset at a step before the one `b` joins at. A server that names a client after its
/// descriptor gives `b` `a`'s name when Linux gives `b` `a`'s number (the lowest free one),
/// and in a dialect without departure notices nothing else says so.
pub fn succession(steps: &[Step]) -> BTreeSet<(usize, usize)> {
    let mut ended: BTreeMap<usize, usize> = BTreeMap::new();
    let mut joined: BTreeMap<usize, usize> = BTreeMap::new();
    for (at, step) in steps.iter().enumerate() {
        match step {
            Step::Join(n) => {
                joined.entry(*n).or_insert(at);
            }
            Step::Crowd(k) => {
                for n in 0..*k {
                    joined.entry(n).or_insert(at);
                }
            }
            Step::Exit(n) | Step::Reset(n) => {
                ended.entry(*n).or_insert(at);
            }
            _ => {}
        }
    }
    let mut pairs = BTreeSet::new();
    for (&a, &end) in &ended {
        for (&b, _) in joined.iter().filter(|(_, join)| **join > end) {
            pairs.insert((a, b));
        }
    }
    pairs
}

impl Dialect {
    /// Reads each client's lines (`lines[m]`) into who said what. A line that fits no frame
    /// is an error, unless `tolerated(m)` (a client the server may answer in words of its own:
    /// the sender of an over-long line).
    pub fn heard(
        &self,
        lines: &[&[Vec<u8>]],
        cast: &Cast<'_>,
        want: &Heard,
        tolerated: impl Fn(usize) -> bool,
    ) -> Result<Heard, Failure> {
        let items = self.items(lines, cast, tolerated)?;
        let names = Names::bind(&items, cast, want);
        let reused = reused_names(&items);
        let mut all = Vec::with_capacity(items.len());
        for (m, mine) in items.iter().enumerate() {
            let want_m = want.get(m).map_or(&[][..], Vec::as_slice);
            let mut senders = Senders::new(want_m);
            let mut stream = Stream::new(m, want_m, &names, &reused);
            let mut out = Vec::new();
            for (at, item) in mine.iter().enumerate() {
                let (who, said) = match item {
                    Item::Greeting(w) => {
                        stream.holds(w, m);
                        continue;
                    }
                    // The newcomer's own arrival, announced to it as to the others.
                    Item::Joined(w) if at == 0 && self.hears_own_arrival() => {
                        stream.holds(w, m);
                        continue;
                    }
                    // An empty line in a frame that names nobody cannot be told apart.
                    Item::Relay(who, text) if who.is_empty() && text.is_empty() => continue,
                    Item::Left(who) if cast.unjudged_departures && stream.name(who).is_none() => {
                        continue;
                    }
                    Item::Joined(who) => (stream.arrival(who), Said::Entered),
                    Item::Left(who) => (stream.departure(who), Said::Left),
                    Item::Relay(who, text) => {
                        let said = Said::Line(Rc::from(text.as_slice()));
                        let candidates = cast.said_by.get(text);
                        let by = match stream.name(who) {
                            Some(by) => {
                                // Only where no notice says who comes and goes, and never a
                                // port (which names one connection for its whole life).
                                let unannounced = self.joined.is_none() && self.left.is_none();
                                let next = successor(by, candidates, cast)
                                    .filter(|_| unannounced && stream.names.port(who).is_none());
                                let by = match next {
                                    Some(next) => {
                                        stream.hand_over(who, next);
                                        next
                                    }
                                    None => by,
                                };
                                Some(senders.given(by, &said))
                            }
                            None => senders.pick(candidates, &said),
                        };
                        if let Some(by) = by {
                            stream.holds(who, by);
                        }
                        (by, said)
                    }
                };
                let Some(who) = who else {
                    let what = format!(
                        "c{} heard {} that nobody said: the server changed it or made it up",
                        m + 1,
                        describe(item)
                    );
                    return Err(Failure::new(Symptom::Extra, what));
                };
                if who == m && self.echo && matches!(said, Said::Line(_)) {
                    continue;
                }
                out.push((who, said));
            }
            all.push(out);
        }
        Ok(all)
    }

    /// Each client's lines read as items; a line that fits no frame is an error unless
    /// `tolerated(m)`.
    fn items(
        &self,
        lines: &[&[Vec<u8>]],
        cast: &Cast<'_>,
        tolerated: impl Fn(usize) -> bool,
    ) -> Result<Vec<Vec<Item>>, Failure> {
        let mut items = Vec::with_capacity(lines.len());
        for (m, heard) in lines.iter().enumerate() {
            let mut mine = Vec::with_capacity(heard.len());
            for line in heard.iter() {
                match self.read(line) {
                    Some(item) => mine.push(item),
                    None if tolerated(m) => {}
                    None => return Err(unframed(m, line, cast.said_by)),
                }
            }
            items.push(mine);
        }
        Ok(items)
    }

    /// A line read in the dialect: notices and greetings first (they are the more
    /// particular), then a relay.
    fn read(&self, line: &[u8]) -> Option<Item> {
        let who = |frame: &Option<Frame>| {
            (frame.as_ref())
                .and_then(|f| f.matches(line))
                .map(|m| m.who)
        };
        if let Some(w) = who(&self.joined) {
            return Some(Item::Joined(w));
        }
        if let Some(w) = who(&self.left) {
            return Some(Item::Left(w));
        }
        if let Some(m) = self.greeting.iter().find_map(|f| f.matches(line)) {
            return Some(Item::Greeting(m.who));
        }
        if let Some(m) = self.relay.matches(line) {
            return Some(Item::Relay(m.who, m.payload?.to_vec()));
        }
        (self.asides.iter().any(|f| f.matches(line).is_some())).then(|| Item::Greeting(Vec::new()))
    }

    /// Whether a newcomer hears its own arrival announced, as the others do (its greeting
    /// holds the join notice's frame): that notice is its greeting, not news.
    fn hears_own_arrival(&self) -> bool {
        (self.joined.as_ref()).is_some_and(|j| self.greeting.contains(j))
    }
}

/// What is wrong with a line client `m` heard that fits none of the dialect's frames: a line,
/// or a piece of one, that a client said, relayed without the frame the server gives relayed
/// lines (it framed what one read returned, not each line): torn; or a line nobody said:
/// unreadable.
fn unframed(m: usize, line: &[u8], said_by: &BTreeMap<Vec<u8>, BTreeSet<usize>>) -> Failure {
    let shown = String::from_utf8_lossy(line);
    let sender = |by: &BTreeSet<usize>| by.first().map_or(String::new(), |n| format!("c{}", n + 1));
    if let Some(by) = said_by.get(line) {
        let what = format!(
            "c{} heard {shown:?} without the frame of a relayed line, though {} said it as a \
             line of its own: the server frames what one read returns, not each line",
            m + 1,
            sender(by)
        );
        return Failure::new(Symptom::Torn, what);
    }
    let piece = (!line.is_empty())
        .then(|| said_by.iter().find(|(text, _)| find(text, line).is_some()))
        .flatten();
    if let Some((_, by)) = piece {
        let what = format!(
            "c{} heard a piece of {}'s line without the frame of a relayed line: {shown:?} \
             (the server frames what one read returns, not each line)",
            m + 1,
            sender(by)
        );
        return Failure::new(Symptom::Torn, what);
    }
    let what = format!(
        "c{} heard a line that is neither a relayed line nor a notice of the server's: {shown:?}",
        m + 1
    );
    Failure::new(Symptom::Unreadable, what)
}

fn describe(item: &Item) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match item {
        Item::Greeting(w) => format!("a greeting for {:?}", s(w)),
        Item::Joined(w) => format!("a join notice about {:?}", s(w)),
        Item::Left(w) => format!("a departure notice about {:?}", s(w)),
        Item::Relay(w, t) if w.is_empty() => format!("a relayed line {:?}", s(t)),
        Item::Relay(w, t) => format!("a relayed line {:?} from {:?}", s(t), s(w)),
    }
}

/// The names a server gave to more than one client in turn (one named after its descriptor,
/// say): some hearer heard the name arrive twice, or arrive after it left.
fn reused_names(items: &[Vec<Item>]) -> BTreeSet<Vec<u8>> {
    let mut reused = BTreeSet::new();
    for mine in items {
        let mut seen = BTreeSet::new();
        for item in mine {
            match item {
                Item::Joined(w) | Item::Left(w)
                    if !seen.insert((w, matches!(item, Item::Joined(_)))) =>
                {
                    reused.insert(w.clone());
                }
                Item::Joined(w) if seen.contains(&(w, false)) => {
                    reused.insert(w.clone());
                }
                _ => {}
            }
        }
    }
    reused
}

/// One hearer's reading of names, in the order it heard them: a name the server gave to
/// several clients in turn names, from each arrival it announces, the next client the hearer
/// should hear arrive, until that client's departure; any other name is the session's.
struct Stream<'a> {
    names: &'a Names,
    reused: &'a BTreeSet<Vec<u8>>,
    /// Who each reused name stands for now, for this hearer.
    now: BTreeMap<Vec<u8>, usize>,
    /// Who another name stands for, once a successor of its first holder spoke under it
    /// (see [`successor`]).
    successors: BTreeMap<Vec<u8>, usize>,
    /// The arrivals this hearer should hear, in order, less those it heard.
    arrivals: Vec<usize>,
}

impl<'a> Stream<'a> {
    fn new(
        hearer: usize,
        want: &[(usize, Said)],
        names: &'a Names,
        reused: &'a BTreeSet<Vec<u8>>,
    ) -> Stream<'a> {
        let arrivals = (want.iter())
            .filter(|(n, s)| *s == Said::Entered && *n != hearer)
            .map(|(n, _)| *n)
            .collect();
        Stream {
            names,
            reused,
            now: BTreeMap::new(),
            successors: BTreeMap::new(),
            arrivals,
        }
    }

    fn name(&self, who: &[u8]) -> Option<usize> {
        if self.reused.contains(who) {
            return self.now.get(who).copied().or_else(|| self.names.port(who));
        }
        self.successors
            .get(who)
            .copied()
            .or_else(|| self.names.get(who))
    }

    /// `who` stands for client `n`, a successor of its holder, from here on, for this hearer
    /// (a name the notices show reused is handed over by them instead: see [`Stream::name`]).
    fn hand_over(&mut self, who: &[u8], n: usize) {
        self.successors.insert(who.to_vec(), n);
    }

    /// `who` stands for client `n` (a greeting, or a relayed line told who).
    fn holds(&mut self, who: &[u8], n: usize) {
        if self.reused.contains(who) && !who.is_empty() {
            self.now.insert(who.to_vec(), n);
        }
    }

    fn arrival(&mut self, who: &[u8]) -> Option<usize> {
        let aligned = self.reused.contains(who) || self.names.get(who).is_none();
        let n = if aligned && self.names.port(who).is_none() {
            let n = (!self.arrivals.is_empty()).then(|| self.arrivals[0])?;
            self.now.insert(who.to_vec(), n);
            n
        } else {
            self.names.get(who)?
        };
        if let Some(i) = self.arrivals.iter().position(|&a| a == n) {
            self.arrivals.remove(i);
        }
        Some(n)
    }

    fn departure(&mut self, who: &[u8]) -> Option<usize> {
        let n = self.name(who);
        self.now.remove(who);
        n
    }
}

/// The client a name of `by`'s has passed to, if `by` never said the text relayed under it
/// and exactly one of those who did (`candidates`) joined after `by`'s connection ended (a
/// descriptor number reused). A line under a present client's name that someone else said
/// stays `by`'s, and is a fault.
fn successor(by: usize, candidates: Option<&BTreeSet<usize>>, cast: &Cast<'_>) -> Option<usize> {
    let candidates = candidates?;
    if candidates.contains(&by) {
        return None;
    }
    let mut after = (candidates.iter()).filter(|&&n| cast.succession.contains(&(by, n)));
    match (after.next(), after.next()) {
        (Some(&n), None) => Some(n),
        _ => None,
    }
}

/// Who said a text several clients said, for one hearer: the sender whose next such line
/// comes first in what the hearer should hear (so a correct server is read right, and a
/// faulty one still differs from the model somewhere).
struct Senders<'a> {
    want: &'a [(usize, Said)],
    /// How many lines of each (sender, text) this hearer has been given so far.
    used: BTreeMap<(usize, Rc<[u8]>), usize>,
}

impl<'a> Senders<'a> {
    fn new(want: &'a [(usize, Said)]) -> Senders<'a> {
        Senders {
            want,
            used: BTreeMap::new(),
        }
    }

    /// Notes that the frame named `by` as the sender of `said`: that line of theirs is taken.
    fn given(&mut self, by: usize, said: &Said) -> usize {
        if let Said::Line(text) = said {
            *self.used.entry((by, text.clone())).or_default() += 1;
        }
        by
    }

    fn pick(&mut self, candidates: Option<&BTreeSet<usize>>, said: &Said) -> Option<usize> {
        let candidates = candidates?;
        let Said::Line(text) = said else {
            return None;
        };
        let next = |s: usize, used: usize| {
            (self.want.iter().enumerate())
                .filter(|(_, item)| item.0 == s && item.1 == *said)
                .nth(used)
                .map_or(usize::MAX, |(at, _)| at)
        };
        let s = match candidates.len() {
            1 => *candidates.first()?,
            _ => *candidates.iter().min_by_key(|&&s| {
                next(s, self.used.get(&(s, text.clone())).copied().unwrap_or(0))
            })?,
        };
        *self.used.entry((s, text.clone())).or_default() += 1;
        Some(s)
    }
}

/// The one element of a set of one.
fn only(set: Option<&BTreeSet<usize>>) -> Option<usize> {
    set.filter(|s| s.len() == 1)
        .and_then(|s| s.first().copied())
}

/// Which client each `{who}` names.
struct Names(BTreeMap<Vec<u8>, usize>, BTreeMap<Vec<u8>, usize>);

impl Names {
    /// Binds names to clients: a client's port names it; a greeting names its hearer; a
    /// relayed text that one client alone said names its sender; and a notice about a name
    /// still unbound names the client the model says that notice is about, taken in order
    /// (a wrong guess shows as a difference later, never as a pass).
    fn bind(items: &[Vec<Item>], cast: &Cast<'_>, want: &Heard) -> Names {
        let mut names = BTreeMap::new();
        for (n, port) in cast.ports.iter().enumerate() {
            if let Some(p) = port {
                names.insert(p.to_string().into_bytes(), n);
            }
        }
        let mut bound: BTreeSet<usize> = BTreeSet::new();
        let bind = |names: &mut BTreeMap<Vec<u8>, usize>,
                    bound: &mut BTreeSet<usize>,
                    who: &[u8],
                    n: usize| {
            if !who.is_empty() && !names.contains_key(who) && bound.insert(n) {
                names.insert(who.to_vec(), n);
            }
        };
        for (m, mine) in items.iter().enumerate() {
            for item in mine {
                match item {
                    Item::Greeting(who) => bind(&mut names, &mut bound, who, m),
                    Item::Relay(who, text) => {
                        if let Some(n) = only(cast.said_by.get(text)) {
                            bind(&mut names, &mut bound, who, n);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Arrivals first, for every hearer: a departure may be of someone the model does not
        // foresee leaving (the network reset it), so it names someone only when nothing else
        // did.
        for kind in [Said::Entered, Said::Left] {
            for (m, mine) in items.iter().enumerate() {
                let unbound: Vec<&[u8]> = (mine.iter())
                    .filter_map(|item| match (item, &kind) {
                        (Item::Joined(w), Said::Entered) | (Item::Left(w), Said::Left) => {
                            Some(w.as_slice())
                        }
                        _ => None,
                    })
                    .collect();
                let mut order = (want.get(m).into_iter().flatten()).filter(|(_, s)| *s == kind);
                for who in unbound {
                    if names.contains_key(who) {
                        continue;
                    }
                    if let Some((n, _)) = order.find(|(n, _)| !bound.contains(n)) {
                        bind(&mut names, &mut bound, who, *n);
                    }
                }
            }
        }
        let ports = (cast.ports.iter().enumerate())
            .filter_map(|(n, p)| p.map(|p| (p.to_string().into_bytes(), n)))
            .collect();
        Names(names, ports)
    }

    fn get(&self, who: &[u8]) -> Option<usize> {
        self.0.get(who).copied()
    }

    /// The client whose port `who` is.
    fn port(&self, who: &[u8]) -> Option<usize> {
        self.1.get(who).copied()
    }
}
