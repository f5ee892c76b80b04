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
//!
//! In three parts: `frame` (templates, and the runs a line splits into), `learn` (the
//! calibration), `read` (what clients heard, back into who said what).

use std::fmt;

mod frame;
mod learn;
mod read;

pub use frame::{Class, Frame, Part};
pub use learn::{Act, Calibration, learn};
pub use read::{Cast, succession};

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

#[cfg(test)]
mod tests;
