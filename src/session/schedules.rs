//! Session schedules written for no one server and no one bug: the zoo's generic faithful
//! detectors run them on selectlab's own server, `check --sim` on someone else's.

use super::Step;

/// Client `n` says `text`.
pub fn say(n: usize, text: &str) -> Step {
    Step::Say(n, text.as_bytes().to_vec())
}

/// A short conversation with a two-line write, an exit, a reset and a late joiner.
pub fn conversation() -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        say(0, "hello, everyone"),
        say(1, "hi"),
        Step::Raw(2, b"two lines\nin one write\n".to_vec()),
        Step::Exit(1),
        say(0, "c2 has gone"),
        say(2, "so it seems"),
        Step::Reset(2),
        say(0, "alone"),
        Step::Join(3),
        say(3, "hello?"),
        say(0, "hi c4"),
    ]
}

/// Two clients; the first writes `lines` one-byte lines at once.
pub fn burst(lines: usize) -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Raw(0, b"a\n".repeat(lines)),
    ]
}

/// Six clients join at once; the first and the last speak.
pub fn crowd() -> Vec<Step> {
    vec![Step::Crowd(6), say(0, "is everyone here?"), say(5, "yes")]
}

/// A line of `bytes` bytes, and the others carrying on.
pub fn long_line(bytes: usize) -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Say(0, vec![b'y'; bytes]),
        say(1, "still here"),
        say(2, "me too"),
    ]
}

/// A reader that stops for good while the others say 400 lines.
pub fn slow_reader() -> Vec<Step> {
    let mut steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::StopReading(2),
    ];
    steps.extend((0..400).map(|i| say(i % 2, "a line for a slow reader, over and over")));
    steps
}

/// A reader stops long enough for `lines` lines to fill its socket (EAGAIN mid-line), types
/// meanwhile, and carries on: its input and its room come back in one wakeup. Nothing
/// follows, so output left behind stays behind.
pub fn paused(lines: usize) -> Vec<Step> {
    vec![
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Pause(1),
        Step::Raw(0, b"bb\n".repeat(lines)),
        say(1, "back"),
        Step::Resume(1),
    ]
}
