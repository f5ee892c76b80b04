//! Learning a dialect from a calm calibration run.

use std::collections::{BTreeMap, BTreeSet};

use super::Dialect;
use super::frame::{Class, Frame, Part, contains, find, tokens};

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
