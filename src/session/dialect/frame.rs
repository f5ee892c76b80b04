//! A frame: the template a line is matched against, and the runs a line splits into.

use std::fmt;

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
    pub(super) fn of(b: u8, coarse: bool) -> Class {
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
pub(super) struct Matched<'a> {
    /// The `{who}` runs, joined by a space (empty: the frame names nobody).
    pub(super) who: Vec<u8>,
    /// The `{text}` part.
    pub(super) payload: Option<&'a [u8]>,
}

impl Frame {
    /// Whether the frame names a client.
    pub fn names_someone(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Who))
    }

    /// What `line` says, if it fits the frame.
    pub(super) fn matches<'a>(&self, line: &'a [u8]) -> Option<Matched<'a>> {
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

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).position(|w| w == needle)
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Splits a line into runs of one class each.
pub(super) fn tokens(line: &[u8], coarse: bool) -> Vec<(Class, &[u8])> {
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
