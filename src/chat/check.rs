//! The chat properties as a checker over a finished [`Session`](super::session::Session):
//! shared by the proptest and the `chat_adversary` fuzz target.
//!
//! A model replays the steps: who is present when each line completes, what each present
//! client must hear. Then every client's received lines must match, exactly once and in order
//! (a client that stopped reading: a prefix of it); no queue past the cap; no busy loop.

use std::collections::BTreeSet;

use super::server::Limits;
use super::session::{Outcome, Step};

/// For each client, the (sender number, line) pairs it heard, in order.
pub type Heard = Vec<Vec<(usize, Vec<u8>)>>;

/// The server's events may not exceed this many per step, plus one per byte moved.
pub const EVENTS_PER_STEP_BOUND: u64 = 40;

#[derive(Debug, Clone, Default)]
struct Member {
    joined: bool,
    present: bool,
    reading: bool,
    pending: Vec<u8>,
}

/// What each client should have heard: (sender number, line), in order.
pub fn expected(steps: &[Step], clients: usize, limits: &Limits) -> Heard {
    let mut heard = vec![Vec::new(); clients];
    let mut m = vec![Member::default(); clients];
    let mut server_up = true;
    for s in steps {
        match s {
            Step::Join(n) if *n < clients && server_up && !m[*n].joined => {
                m[*n] = Member {
                    joined: true,
                    present: true,
                    reading: true,
                    pending: Vec::new(),
                };
            }
            Step::Say(n, text) | Step::Raw(n, text) if *n < clients && m[*n].present => {
                let mut bytes = text.clone();
                if matches!(s, Step::Say(..)) {
                    bytes.push(b'\n');
                }
                speak(&mut m, &mut heard, *n, &bytes, limits.max_line_bytes);
            }
            Step::Exit(n) | Step::Reset(n) if *n < clients => {
                m[*n].present = false;
                m[*n].pending.clear();
            }
            Step::StopReading(n) if *n < clients && m[*n].present => m[*n].reading = false,
            Step::StopServer => {
                server_up = false;
                for member in &mut m {
                    member.present = false;
                }
            }
            _ => {}
        }
    }
    heard
}

/// Client `n` sent `bytes`: each line it completes reaches the others present; a line over
/// the limit gets `n` disconnected (what it completed before still counts).
fn speak(
    m: &mut [Member],
    heard: &mut [Vec<(usize, Vec<u8>)>],
    n: usize,
    bytes: &[u8],
    max: usize,
) {
    for &b in bytes {
        if b != b'\n' {
            m[n].pending.push(b);
            if m[n].pending.len() > max {
                m[n].present = false;
                m[n].pending.clear();
                return;
            }
            continue;
        }
        let line = std::mem::take(&mut m[n].pending);
        if line.is_empty() {
            continue;
        }
        for (other, member) in m.iter().enumerate() {
            if other != n && member.present {
                heard[other].push((n, line.clone()));
            }
        }
    }
}

/// What each client did hear: its "say" lines parsed back to (sender number, text).
pub fn heard(o: &Outcome, clients: usize) -> Result<Heard, String> {
    let sender_of = |addr: &[u8]| {
        o.clients.iter().position(|c| {
            c.addr
                .as_ref()
                .is_some_and(|a| a.to_string().as_bytes() == addr)
        })
    };
    let mut all = Vec::with_capacity(clients);
    for m in 0..clients {
        let mut said = Vec::new();
        for l in o
            .clients
            .get(m)
            .map(|c| c.lines.as_slice())
            .unwrap_or_default()
        {
            // "YYYY-mm-dd HH:MM:SS ('ip', port) say: text"
            let Some(rest) = l.get(20..) else { continue };
            let Some(at) = rest.windows(6).position(|w| w == b" say: ") else {
                continue;
            };
            let who = sender_of(&rest[..at])
                .ok_or_else(|| format!("c{} heard an unknown sender: {l:?}", m + 1))?;
            said.push((who, rest[at + 6..].to_vec()));
        }
        all.push(said);
    }
    Ok(all)
}

/// Where what a client heard first departs from what it should have heard, in a few lines.
fn first_difference(got: &[(usize, Vec<u8>)], want: &[(usize, Vec<u8>)]) -> String {
    let at = got.iter().zip(want).take_while(|(g, w)| g == w).count();
    let show = |line: Option<&(usize, Vec<u8>)>| match line {
        Some((who, text)) => format!("c{} says {:?}", who + 1, String::from_utf8_lossy(text)),
        None => "nothing".to_string(),
    };
    format!(
        "heard {} lines but should have heard {}; line {} was {}, should be {}",
        got.len(),
        want.len(),
        at + 1,
        show(got.get(at)),
        show(want.get(at))
    )
}

/// Checks every property of a finished session; the error says which and carries the transcript.
pub fn check(steps: &[Step], o: &Outcome, clients: usize, limits: &Limits) -> Result<(), String> {
    let want = expected(steps, clients, limits);
    let got = heard(o, clients)?;
    let stopped_reading: BTreeSet<usize> = steps
        .iter()
        .filter_map(|s| {
            if let Step::StopReading(n) = s {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    for n in 0..clients {
        // A client that stopped reading heard what it read before: a prefix.
        let ok = if stopped_reading.contains(&n) {
            want[n].starts_with(&got[n])
        } else {
            got[n] == want[n]
        };
        if !ok {
            return Err(format!(
                "c{} {}\n{}",
                n + 1,
                first_difference(&got[n], &want[n]),
                o.transcript
            ));
        }
    }
    if o.peak_queue_bytes > limits.outbound_cap_bytes {
        return Err(format!(
            "a queue reached {} bytes, over the cap\n{}",
            o.peak_queue_bytes, o.transcript
        ));
    }
    let work =
        (steps.len() as u64 + 1) * EVENTS_PER_STEP_BOUND + o.stats.bytes_in + o.stats.bytes_out;
    if o.stats.events > work {
        return Err(format!(
            "{} events for {work} units of work: a busy loop?\n{}",
            o.stats.events, o.transcript
        ));
    }
    Ok(())
}
