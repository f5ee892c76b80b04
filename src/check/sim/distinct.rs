//! Lines told apart by their text: where a dialect's frame does not name the sender by its
//! port, the same text said by two clients leaves who said which to guesswork. Before a check
//! reads a server in such a dialect, each line that more than one client says gets its
//! sender's name in front (`c3 z`), so every line names its sender; the rest stay as written.

use std::collections::{BTreeMap, BTreeSet};

use crate::session::Step;

/// Where a line begins: the step, and the offset in its bytes (a `Say`'s text).
type Start = (usize, usize);

/// The steps, with each line that several clients say prefixed by its sender's name.
pub fn distinct_senders(steps: &[Step]) -> Vec<Step> {
    let lines = lines_by_client(steps);
    let mut senders: BTreeMap<&[u8], BTreeSet<usize>> = BTreeMap::new();
    for (n, mine) in &lines {
        for (_, text) in mine {
            if !text.is_empty() {
                senders.entry(text).or_default().insert(*n);
            }
        }
    }
    let mut tags: BTreeMap<usize, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
    for (n, mine) in &lines {
        for ((step, at), text) in mine {
            if senders.get(text.as_slice()).is_some_and(|s| s.len() > 1) {
                let tag = format!("c{} ", n + 1).into_bytes();
                tags.entry(*step).or_default().push((*at, tag));
            }
        }
    }
    (steps.iter().enumerate())
        .map(|(i, step)| match tags.get(&i) {
            Some(inserts) => tagged(step, inserts),
            None => step.clone(),
        })
        .collect()
}

/// Each client's whole lines while it is in the room, where each begins (what a client sends
/// before it joins or after it left reaches nobody). Clients join once; a connection begins a
/// new line.
pub(super) fn lines_by_client(steps: &[Step]) -> BTreeMap<usize, Vec<(Start, Vec<u8>)>> {
    let mut lines: BTreeMap<usize, Vec<(Start, Vec<u8>)>> = BTreeMap::new();
    let mut open: BTreeMap<usize, (Start, Vec<u8>)> = BTreeMap::new();
    let (mut joined, mut present) = (BTreeSet::new(), BTreeSet::new());
    for (i, step) in steps.iter().enumerate() {
        let (n, bytes, newline) = match step {
            Step::Say(n, text) => (*n, text.as_slice(), true),
            Step::Raw(n, bytes) | Step::Drip(n, bytes) => (*n, bytes.as_slice(), false),
            Step::Join(n) => {
                if joined.insert(*n) {
                    present.insert(*n);
                }
                continue;
            }
            Step::Crowd(k) => {
                present.extend((0..*k).filter(|&n| joined.insert(n)));
                continue;
            }
            Step::Exit(n) | Step::Reset(n) => {
                present.remove(n);
                open.remove(n);
                continue;
            }
            _ => continue,
        };
        if !present.contains(&n) {
            continue;
        }
        let ends = bytes.iter().copied().chain(newline.then_some(b'\n'));
        for (at, b) in ends.enumerate() {
            let line = open.entry(n).or_insert_with(|| ((i, at), Vec::new()));
            if b == b'\n' {
                let (start, text) = open.remove(&n).expect("just opened");
                lines.entry(n).or_default().push((start, text));
            } else {
                line.1.push(b);
            }
        }
    }
    lines
}

/// `step` with each tag inserted at its offset.
fn tagged(step: &Step, inserts: &[(usize, Vec<u8>)]) -> Step {
    let with = |bytes: &[u8]| {
        let mut out = Vec::with_capacity(bytes.len() + inserts.len() * 4);
        let mut from = 0;
        for (at, tag) in inserts {
            out.extend_from_slice(&bytes[from..*at]);
            out.extend_from_slice(tag);
            from = *at;
        }
        out.extend_from_slice(&bytes[from..]);
        out
    };
    match step {
        Step::Say(n, text) => Step::Say(*n, with(text)),
        Step::Raw(n, bytes) => Step::Raw(*n, with(bytes)),
        Step::Drip(n, bytes) => Step::Drip(*n, with(bytes)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::schedules::say;

    #[test]
    fn only_a_text_two_clients_say_is_tagged_even_across_writes() {
        let steps = vec![
            Step::Crowd(3),
            say(0, "z"),
            Step::Raw(1, b"a\nz".to_vec()),
            Step::Raw(1, b"\n".to_vec()),
            say(2, "only mine"),
            say(2, ""),
        ];
        let tagged = distinct_senders(&steps);
        assert_eq!(
            tagged,
            vec![
                Step::Crowd(3),
                say(0, "c1 z"),
                Step::Raw(1, b"a\nc2 z".to_vec()),
                Step::Raw(1, b"\n".to_vec()),
                say(2, "only mine"),
                say(2, ""),
            ]
        );
        assert_eq!(
            distinct_senders(&tagged),
            tagged,
            "nothing left to tell apart"
        );
    }
}
