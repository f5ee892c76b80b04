//! A chat server's dialect: how it frames a relayed line, what it says when someone joins or
//! leaves (possibly nothing), what it greets a newcomer with, whether it echoes a line to its
//! sender and whether it relays an empty line. Learned from a calm calibration run
//! ([`learn`]), read from a file ([`Dialect::parse`]), and used to read what clients heard back
//! into who said what ([`Dialect::heard`]), so that a correct server passes whatever its
//! wording and a fault is named as what it is.
//!
//! A frame is a template: literal text, `{who}` (the part that names a client: its port, or a
//! name the server gave it), `{n}` (any number: a time stamp's fields, an address), `{w}` (any
//! word) and, in a relayed line, `{text}` (what the client said). The tutorial's own protocol
//! is `{n}-{n}-{n} {n}:{n}:{n} ('{n}.{n}.{n}.{n}', {who}) say: {text}`.
//!
//! Learning is by tokens: a line splits into runs of digits, runs of letters and runs of
//! anything else. Lines of one kind (every relay, every join notice) must split alike; where
//! they differ, a run is `{who}` if it stays the same for one client and differs between
//! clients (and, in a notice, is what names that client elsewhere), else `{n}` or `{w}`.
//! Digits are never literal: a clock's fields all look alike in a short calibration run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use super::check::{Heard, Said};

/// One part of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// These bytes, exactly.
    Text(Vec<u8>),
    /// The run that names a client: letters, digits and `_`.
    Who,
    /// Any run of this class (a number or a word that varies: a time stamp, say).
    Any(Class),
    /// What the client said (in a relayed line only, followed by nothing but text).
    Payload,
}

/// The kinds of byte a run is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// ASCII digits.
    Digits,
    /// ASCII letters.
    Letters,
    /// ASCII letters, digits and `_` (a name like `Guest7f3a`).
    Alnum,
    /// Anything else: literal text.
    Other,
}

impl Class {
    fn of(b: u8, coarse: bool) -> Class {
        match b {
            b'0'..=b'9' if coarse => Class::Alnum,
            b'0'..=b'9' => Class::Digits,
            b'a'..=b'z' | b'A'..=b'Z' if coarse => Class::Alnum,
            b'a'..=b'z' | b'A'..=b'Z' => Class::Letters,
            b'_' if coarse => Class::Alnum,
            _ => Class::Other,
        }
    }

    fn holds(self, b: u8) -> bool {
        match self {
            Class::Digits => b.is_ascii_digit(),
            Class::Letters => b.is_ascii_alphabetic(),
            Class::Alnum => b.is_ascii_alphanumeric() || b == b'_',
            Class::Other => false,
        }
    }
}

/// A template a line is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(pub Vec<Part>);

/// What a line says, matched against a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matched<'a> {
    /// The `{who}` runs, joined by a space (empty: the frame names nobody).
    who: Vec<u8>,
    /// The `{text}` part.
    payload: Option<&'a [u8]>,
}

impl Frame {
    /// Whether the frame names a client.
    pub fn names_someone(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Who))
    }

    fn matches<'a>(&self, line: &'a [u8]) -> Option<Matched<'a>> {
        let mut pos = 0;
        let mut who: Vec<u8> = Vec::new();
        let mut parts = self.0.iter();
        while let Some(part) = parts.next() {
            match part {
                Part::Text(t) => {
                    if !line[pos..].starts_with(t) {
                        return None;
                    }
                    pos += t.len();
                }
                Part::Who | Part::Any(_) => {
                    let class = match part {
                        Part::Any(class) => *class,
                        _ => Class::Alnum,
                    };
                    let run = line[pos..].iter().take_while(|&&b| class.holds(b)).count();
                    if run == 0 {
                        return None;
                    }
                    if *part == Part::Who {
                        if !who.is_empty() {
                            who.push(b' ');
                        }
                        who.extend_from_slice(&line[pos..pos + run]);
                    }
                    pos += run;
                }
                Part::Payload => {
                    let suffix: &[u8] = match parts.next() {
                        Some(Part::Text(t)) => t,
                        None => b"",
                        Some(_) => return None,
                    };
                    let end = line.len().checked_sub(suffix.len())?;
                    if end < pos || !line.ends_with(suffix) {
                        return None;
                    }
                    return Some(Matched {
                        who,
                        payload: Some(&line[pos..end]),
                    });
                }
            }
        }
        (pos == line.len()).then_some(Matched { who, payload: None })
    }

    /// Reads a frame written as [`Display`](fmt::Display) writes it.
    pub fn parse(text: &str) -> Result<Frame, String> {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.extend_from_slice(&rest.as_bytes()[..open]);
            let close =
                (rest[open..].find('}')).ok_or_else(|| format!("an unclosed '{{' in {text:?}"))?;
            let part = match &rest[open + 1..open + close] {
                "who" => Part::Who,
                "n" => Part::Any(Class::Digits),
                "w" => Part::Any(Class::Alnum),
                "text" => Part::Payload,
                "{" => {
                    literal.push(b'{');
                    rest = &rest[open + close + 1..];
                    continue;
                }
                other => return Err(format!("unknown field {{{other}}} in {text:?}")),
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[open + close + 1..];
        }
        literal.extend_from_slice(rest.as_bytes());
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Frame(parts))
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.0 {
            match part {
                Part::Text(t) => write!(f, "{}", String::from_utf8_lossy(t).replace('{', "{{}"))?,
                Part::Who => f.write_str("{who}")?,
                Part::Any(Class::Digits) => f.write_str("{n}")?,
                Part::Any(_) => f.write_str("{w}")?,
                Part::Payload => f.write_str("{text}")?,
            }
        }
        Ok(())
    }
}

/// A server's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// A relayed line.
    pub relay: Frame,
    /// What the others hear when someone joins (`None`: nothing).
    pub joined: Option<Frame>,
    /// What the others hear when someone leaves (`None`: nothing).
    pub left: Option<Frame>,
    /// What a newcomer alone hears when it joins, line by line.
    pub greeting: Vec<Frame>,
    /// Lines the server says beside its notices that no check judges (a list of who is
    /// present, say), by how they begin: `<announce> already connected: {text}`.
    pub asides: Vec<Frame>,
    /// The sender hears its own line too.
    pub echo: bool,
    /// An empty line is relayed like any other.
    pub empty_lines: bool,
}

/// The keys of a dialect file, in the order [`Display`](fmt::Display) writes them.
const KEYS: [&str; 7] = [
    "relay",
    "joined",
    "left",
    "greeting",
    "aside",
    "echo",
    "empty-lines",
];

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_nothing =
            |frame: &Option<Frame>| frame.as_ref().map_or("-".into(), |x| x.to_string());
        writeln!(f, "relay: {}", self.relay)?;
        writeln!(f, "joined: {}", or_nothing(&self.joined))?;
        writeln!(f, "left: {}", or_nothing(&self.left))?;
        for line in &self.greeting {
            writeln!(f, "greeting: {line}")?;
        }
        for line in &self.asides {
            writeln!(f, "aside: {line}")?;
        }
        writeln!(f, "echo: {}", if self.echo { "yes" } else { "no" })?;
        write!(
            f,
            "empty-lines: {}",
            if self.empty_lines {
                "relayed"
            } else {
                "dropped"
            }
        )
    }
}

/// A dialect as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DialectRecord {
    /// The relay frame.
    pub relay: String,
    /// The join notice's frame, or null.
    pub joined: Option<String>,
    /// The departure notice's frame, or null.
    pub left: Option<String>,
    /// The greeting's frames.
    pub greeting: Vec<String>,
    /// The asides' frames.
    pub asides: Vec<String>,
    /// Whether the sender hears its own lines.
    pub echo: bool,
    /// Whether empty lines are relayed.
    pub empty_lines: bool,
}

impl Dialect {
    /// The tutorial's own protocol.
    pub fn tutorial() -> Dialect {
        let frame = |t: &str| Frame::parse(t).expect("a valid frame");
        let stamp = "{n}-{n}-{n} {n}:{n}:{n} ('{n}.{n}.{n}.{n}', {who})";
        Dialect {
            relay: frame(&format!("{stamp} say: {{text}}")),
            joined: Some(frame(&format!("{stamp} entered room"))),
            left: Some(frame(&format!("{stamp} left room"))),
            greeting: Vec::new(),
            asides: Vec::new(),
            echo: false,
            empty_lines: false,
        }
    }

    /// The dialect as a record.
    pub fn record(&self) -> DialectRecord {
        DialectRecord {
            relay: self.relay.to_string(),
            joined: self.joined.as_ref().map(ToString::to_string),
            left: self.left.as_ref().map(ToString::to_string),
            greeting: self.greeting.iter().map(ToString::to_string).collect(),
            asides: self.asides.iter().map(ToString::to_string).collect(),
            echo: self.echo,
            empty_lines: self.empty_lines,
        }
    }

    /// Reads a dialect file: `key: value` lines as [`Display`](fmt::Display) writes them
    /// (`-` for no notice; `#` starts a comment line). `relay` is required.
    pub fn parse(text: &str) -> Result<Dialect, String> {
        let mut relay = None;
        let mut dialect = Dialect {
            relay: Frame(vec![Part::Payload]),
            joined: None,
            left: None,
            greeting: Vec::new(),
            asides: Vec::new(),
            echo: false,
            empty_lines: false,
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", i + 1);
            let (key, value) = (line.split_once(": "))
                .ok_or_else(|| at(format!("not `key: value` (keys: {})", KEYS.join(", "))))?;
            let notice = |v: &str| (v != "-").then(|| Frame::parse(v)).transpose();
            let yes = |v: &str, yes: &str, no: &str| match v {
                v if v == yes => Ok(true),
                v if v == no => Ok(false),
                _ => Err(format!("{key} is `{yes}` or `{no}`")),
            };
            match key {
                "relay" => relay = Some(Frame::parse(value).map_err(at)?),
                "joined" => dialect.joined = notice(value).map_err(at)?,
                "left" => dialect.left = notice(value).map_err(at)?,
                "greeting" => dialect.greeting.push(Frame::parse(value).map_err(at)?),
                "aside" => dialect.asides.push(Frame::parse(value).map_err(at)?),
                "echo" => dialect.echo = yes(value, "yes", "no").map_err(at)?,
                "empty-lines" => {
                    dialect.empty_lines = yes(value, "relayed", "dropped").map_err(at)?
                }
                other => {
                    return Err(at(format!(
                        "unknown key {other:?} (keys: {})",
                        KEYS.join(", ")
                    )));
                }
            }
        }
        dialect.relay = relay.ok_or("a dialect needs a `relay:` line")?;
        let payloads = dialect
            .relay
            .0
            .iter()
            .filter(|p| **p == Part::Payload)
            .count();
        if payloads != 1 {
            return Err("the relay frame needs exactly one {text}".into());
        }
        Ok(dialect)
    }
}

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
    ) -> Result<Heard, String> {
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
                        let by = match stream.name(who) {
                            Some(by) => Some(senders.given(by, &said)),
                            None => senders.pick(cast.said_by.get(text), &said),
                        };
                        if let Some(by) = by {
                            stream.holds(who, by);
                        }
                        (by, said)
                    }
                };
                let Some(who) = who else {
                    return Err(format!(
                        "c{} heard {} that nobody said: the server changed it or made it up",
                        m + 1,
                        describe(item)
                    ));
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
    ) -> Result<Vec<Vec<Item>>, String> {
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
/// lines (it framed what one read returned, not each line); or a line nobody said.
fn unframed(m: usize, line: &[u8], said_by: &BTreeMap<Vec<u8>, BTreeSet<usize>>) -> String {
    let shown = String::from_utf8_lossy(line);
    let sender = |by: &BTreeSet<usize>| by.first().map_or(String::new(), |n| format!("c{}", n + 1));
    if let Some(by) = said_by.get(line) {
        return format!(
            "c{} heard {shown:?} without the frame of a relayed line, though {} said it as a \
             line of its own: the server frames what one read returns, not each line",
            m + 1,
            sender(by)
        );
    }
    let piece = (!line.is_empty())
        .then(|| said_by.iter().find(|(text, _)| find(text, line).is_some()))
        .flatten();
    if let Some((_, by)) = piece {
        return format!(
            "c{} heard a piece of {}'s line without the frame of a relayed line: {shown:?} \
             (the server frames what one read returns, not each line)",
            m + 1,
            sender(by)
        );
    }
    format!(
        "c{} heard a line that is neither a relayed line nor a notice of the server's: {shown:?}",
        m + 1
    )
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
            arrivals,
        }
    }

    fn name(&self, who: &[u8]) -> Option<usize> {
        if self.reused.contains(who) {
            return self.now.get(who).copied().or_else(|| self.names.port(who));
        }
        self.names.get(who)
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

/// What each client heard during each calibration step (`lines[step][client]`).
pub struct Calibration<'a> {
    /// The steps' meaning: who joined, said what, or left, at each step.
    pub acts: &'a [Act],
    /// The lines each client heard during each step.
    pub lines: &'a [Vec<Vec<Vec<u8>>>],
    /// Each client's port.
    pub ports: &'a [u16],
}

/// What a calibration step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Client `n` joined.
    Join(usize),
    /// Client `n` said a line.
    Say(usize, Vec<u8>),
    /// Client `n` left.
    Leave(usize),
    /// Time passed.
    Wait,
}

/// A line of a calibration step heard by a client, with the client it is about.
struct Instance<'a> {
    line: &'a [u8],
    subject: usize,
}

/// Learns a dialect from a calm calibration run, or says why it cannot.
pub fn learn(cal: &Calibration<'_>) -> Result<Dialect, String> {
    let Relays {
        frame: relay,
        known,
        echo,
    } = learn_relay(cal)?;
    let relay_matches = |line: &[u8]| relay.matches(line).is_some();
    let (joined, mut asides) = notice_frame(
        &cal.notices(|a| matches!(a, Act::Join(_)).then(|| subject(a))),
        &known,
        "join",
        &relay_matches,
    )?;
    let (left, more) = notice_frame(
        &cal.notices(|a| matches!(a, Act::Leave(_)).then(|| subject(a))),
        &known,
        "departure",
        &relay_matches,
    )?;
    asides.extend(more);
    let greeting = greeting_frames(cal, &known)?;
    let asides = asides_of(asides.iter().chain(&greeting), &relay);
    let empty_lines = empty_lines_relayed(cal, &relay);
    Ok(Dialect {
        relay,
        joined,
        left,
        asides,
        greeting,
        echo,
        empty_lines,
    })
}

impl Calibration<'_> {
    /// The lines client `m` heard during `step`.
    fn heard(&self, step: usize, m: usize) -> &[Vec<u8>] {
        (self.lines.get(step).and_then(|s| s.get(m))).map_or(&[], Vec::as_slice)
    }

    /// Each step, and who was present as it began.
    fn with_presence(&self) -> Vec<(usize, &Act, Vec<bool>)> {
        let mut present = vec![false; self.ports.len()];
        let mut out = Vec::with_capacity(self.acts.len());
        for (step, act) in self.acts.iter().enumerate() {
            out.push((step, act, present.clone()));
            match act {
                Act::Join(n) => present[*n] = true,
                Act::Leave(n) => present[*n] = false,
                _ => {}
            }
        }
        out
    }

    /// The lines the others present heard at each step `kind` says is about a client.
    fn notices(&self, kind: fn(&Act) -> Option<usize>) -> Vec<Instance<'_>> {
        let mut out = Vec::new();
        for (step, act, present) in self.with_presence() {
            let Some(n) = kind(act) else { continue };
            for m in (0..present.len()).filter(|&m| present[m] && m != n) {
                let lines = self.heard(step, m).iter();
                out.extend(lines.map(|line| Instance { line, subject: n }));
            }
        }
        out
    }
}

/// What the relayed lines of a calibration run teach.
struct Relays {
    /// The relay frame, `{text}` and the text after it included.
    frame: Frame,
    /// What names each client: its port, and the `{who}` runs of its relayed lines.
    known: Vec<BTreeSet<Vec<u8>>>,
    /// Whether the sender heard its own lines.
    echo: bool,
}

/// Learns the relay frame: every other client present must have heard each non-empty line
/// exactly once, and every relayed line must end alike.
fn learn_relay(cal: &Calibration<'_>) -> Result<Relays, String> {
    let mut prefixes = Vec::new();
    let mut suffixes: BTreeSet<&[u8]> = BTreeSet::new();
    let mut echo = None;
    for (step, act, present) in cal.with_presence() {
        let Act::Say(n, text) = act else { continue };
        if text.is_empty() {
            continue;
        }
        for m in (0..present.len()).filter(|&m| present[m]) {
            let with: Vec<&Vec<u8>> = (cal.heard(step, m).iter())
                .filter(|l| contains(l, text))
                .collect();
            if m == *n {
                let echoed = !with.is_empty();
                if *echo.get_or_insert(echoed) != echoed {
                    return Err(
                        "the server echoed some lines to their sender and not others".into(),
                    );
                }
                continue;
            }
            let [line] = with.as_slice() else {
                return Err(format!(
                    "in a calm run, c{} heard c{}'s line {:?} {} times, not once",
                    m + 1,
                    n + 1,
                    String::from_utf8_lossy(text),
                    with.len()
                ));
            };
            let at = find(line, text).expect("contains it");
            prefixes.push(Instance {
                line: &line[..at],
                subject: *n,
            });
            suffixes.insert(&line[at + text.len()..]);
        }
    }
    if prefixes.is_empty() {
        return Err("the calibration run relayed nothing to learn from".into());
    }
    let [suffix] = suffixes.into_iter().collect::<Vec<_>>()[..] else {
        return Err("relayed lines end in different ways".into());
    };
    let mut known: Vec<BTreeSet<Vec<u8>>> = (cal.ports.iter())
        .map(|p| BTreeSet::from([p.to_string().into_bytes()]))
        .collect();
    let mut frame = learn_frame(&prefixes, &known, true)
        .ok_or("relayed lines are framed in ways that do not line up")?;
    // What names each client in its relays names it in notices too.
    for i in &prefixes {
        if let Some(m) = frame.matches(i.line) {
            known[i.subject].extend(m.who.split(|&b| b == b' ').map(<[u8]>::to_vec));
        }
    }
    frame.0.push(Part::Payload);
    if !suffix.is_empty() {
        frame.0.push(Part::Text(suffix.to_vec()));
    }
    Ok(Relays {
        frame,
        known,
        echo: echo.unwrap_or(false),
    })
}

/// What a greeting or a notice adds that names nobody (a list of who is present, which grows
/// with the room) is an aside, known by its beginning; one beginning that another begins with
/// covers it.
fn asides_of<'a>(frames: impl Iterator<Item = &'a Frame>, relay: &Frame) -> Vec<Frame> {
    let mut starts: Vec<Frame> = frames
        .filter(|f| !f.names_someone())
        .filter_map(|f| aside(f, relay))
        .collect();
    starts.sort_by_key(|f| f.to_string().len());
    let mut asides: Vec<Frame> = Vec::new();
    for frame in starts {
        let covered = |kept: &Frame| match (&kept.0[0], &frame.0[0]) {
            (Part::Text(a), Part::Text(b)) => b.starts_with(a),
            _ => false,
        };
        if !asides.iter().any(covered) {
            asides.push(frame);
        }
    }
    asides
}

fn subject(act: &Act) -> usize {
    match act {
        Act::Join(n) | Act::Say(n, _) | Act::Leave(n) => *n,
        Act::Wait => usize::MAX,
    }
}

/// The frame of a notice from its instances (none heard: no notice), and the frames of any
/// other lines the server says at the same moment (asides: a list of who is present, say).
/// The instances fall into groups of one shape each; the notice is the first group that names
/// its subject, or the only group.
fn notice_frame(
    instances: &[Instance<'_>],
    known: &[BTreeSet<Vec<u8>>],
    what: &str,
    is_relay: &dyn Fn(&[u8]) -> bool,
) -> Result<(Option<Frame>, Vec<Frame>), String> {
    if let Some(i) = instances.iter().find(|i| is_relay(i.line)) {
        return Err(format!(
            "a {what} notice looks like a relayed line: {:?}",
            String::from_utf8_lossy(i.line)
        ));
    }
    if instances.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut frames = shaped_frames(instances, known)
        .ok_or_else(|| format!("the {what} notices do not line up: {}", show(instances)))?;
    let Some(at) =
        (frames.iter().position(Frame::names_someone)).or_else(|| (frames.len() == 1).then_some(0))
    else {
        return Err(format!(
            "no {what} notice names who it is about: {}",
            show(instances)
        ));
    };
    let notice = frames.remove(at);
    Ok((Some(notice), frames))
}

/// A line's runs, with the text of the literal ones (lines of one shape differ only in their
/// numbers and words).
type Shape<'a> = Vec<(Class, &'a [u8])>;

/// One frame per shape of line among `instances` (`None` when a shape's lines differ in a
/// way no frame explains), in the order the shapes were first heard.
fn shaped_frames(instances: &[Instance<'_>], known: &[BTreeSet<Vec<u8>>]) -> Option<Vec<Frame>> {
    let mut groups: Vec<(Shape<'_>, Vec<Instance<'_>>)> = Vec::new();
    for i in instances {
        let shape: Shape<'_> = (tokens(i.line, false).into_iter())
            .map(|(class, text)| {
                (
                    class,
                    if class == Class::Other {
                        text
                    } else {
                        &b""[..]
                    },
                )
            })
            .collect();
        let copy = Instance {
            line: i.line,
            subject: i.subject,
        };
        match groups.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, group)) => group.push(copy),
            None => groups.push((shape, vec![copy])),
        }
    }
    (groups.iter())
        .map(|(_, group)| learn_frame(group, known, false))
        .collect()
}

/// A newcomer's greeting: the lines each joiner alone heard as it joined, one frame per shape
/// (a list of who is present grows with the room).
fn greeting_frames(
    cal: &Calibration<'_>,
    known: &[BTreeSet<Vec<u8>>],
) -> Result<Vec<Frame>, String> {
    let mut instances = Vec::new();
    for (step, act) in cal.acts.iter().enumerate() {
        let Act::Join(n) = act else { continue };
        let lines = (cal.lines.get(step).and_then(|s| s.get(*n))).map_or(&[][..], Vec::as_slice);
        instances.extend(lines.iter().map(|line| Instance { line, subject: *n }));
    }
    shaped_frames(&instances, known)
        .ok_or_else(|| format!("greetings do not line up: {}", show(&instances)))
}

/// An aside's frame: its literal beginning, then anything (a list grows with the room, so
/// only its beginning is known). `None` when it begins with no literal text, or with text a
/// relayed line may begin with: such a frame would hide faults.
fn aside(frame: &Frame, relay: &Frame) -> Option<Frame> {
    let Some(Part::Text(start)) = frame.0.first() else {
        return None;
    };
    let relay_start: &[u8] = match relay.0.first() {
        Some(Part::Text(t)) => t,
        _ => b"",
    };
    let clash = relay_start.starts_with(start) || start.starts_with(relay_start);
    (!clash).then(|| Frame(vec![Part::Text(start.clone()), Part::Payload]))
}

/// Whether the empty line of the calibration run reached the others, framed as a relay.
fn empty_lines_relayed(cal: &Calibration<'_>, relay: &Frame) -> bool {
    (cal.acts.iter().enumerate()).any(|(step, act)| match act {
        Act::Say(n, text) if text.is_empty() => {
            (cal.lines.get(step).into_iter().flatten().enumerate()).any(|(m, lines)| {
                m != *n
                    && lines
                        .iter()
                        .any(|l| relay.matches(l).is_some_and(|x| x.payload == Some(b"")))
            })
        }
        _ => false,
    })
}

fn show(instances: &[Instance<'_>]) -> String {
    let lines: Vec<String> = instances
        .iter()
        .map(|i| format!("{:?}", String::from_utf8_lossy(i.line)))
        .collect();
    lines.join(", ")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Splits a line into runs of one class each.
fn tokens(line: &[u8], coarse: bool) -> Vec<(Class, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=line.len() {
        if i == line.len() || Class::of(line[i], coarse) != Class::of(line[start], coarse) {
            out.push((Class::of(line[start], coarse), &line[start..i]));
            start = i;
        }
    }
    out
}

/// A frame that every instance fits, or `None` if they do not split alike (first into fine
/// runs, then into coarse ones). A run that differs between instances is `{who}` when it is
/// the same for each subject and differs between subjects (in a relay: two lines of one sender
/// bracket the others', so a clock cannot pass for a name), or, in a notice or a greeting,
/// when it is what is `known` to name its subject; else it is any number or word.
fn learn_frame(
    instances: &[Instance<'_>],
    known: &[BTreeSet<Vec<u8>>],
    relay: bool,
) -> Option<Frame> {
    [false, true].into_iter().find_map(|coarse| {
        let split: Vec<Vec<(Class, &[u8])>> =
            instances.iter().map(|i| tokens(i.line, coarse)).collect();
        let first = split.first()?;
        let aligned = split.iter().all(|t| {
            t.len() == first.len()
                && t.iter()
                    .zip(first)
                    .all(|(a, b)| a.0 == b.0 && (a.0 != Class::Other || a.1 == b.1))
        });
        if !aligned {
            return None;
        }
        let parts = (0..first.len()).map(|i| {
            let (class, text) = first[i];
            let values: Vec<(usize, &[u8])> = instances
                .iter()
                .zip(&split)
                .map(|(inst, t)| (inst.subject, t[i].1))
                .collect();
            if class == Class::Other {
                return Part::Text(text.to_vec());
            }
            let all_same = values.iter().all(|(_, v)| *v == text);
            if all_same && class != Class::Digits {
                return Part::Text(text.to_vec());
            }
            let mut per_subject: BTreeMap<usize, BTreeSet<&[u8]>> = BTreeMap::new();
            for (s, v) in &values {
                per_subject.entry(*s).or_default().insert(v);
            }
            let constant = per_subject.values().all(|v| v.len() == 1);
            let distinct: BTreeSet<&[u8]> = per_subject.values().flatten().copied().collect();
            let names = constant && per_subject.len() > 1 && distinct.len() == per_subject.len();
            let is_known = values
                .iter()
                .all(|(s, v)| known.get(*s).is_some_and(|k| k.contains(*v)));
            if (relay && names) || (!relay && is_known) {
                Part::Who
            } else if class == Class::Digits {
                Part::Any(Class::Digits)
            } else {
                Part::Any(Class::Alnum)
            }
        });
        Some(Frame(merge_text(parts)))
    })
}

/// Joins adjacent literal parts.
fn merge_text(parts: impl Iterator<Item = Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        match (out.last_mut(), part) {
            (Some(Part::Text(a)), Part::Text(b)) => a.extend_from_slice(&b),
            (_, part) => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests;
