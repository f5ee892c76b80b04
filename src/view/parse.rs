//! Reading a transcript's text back into a [`Timeline`]: the simulator's call records (with or
//! without the `kernel: ` prefix a session adds), a session's notes, and the report lines
//! around them (a check's verdict, its replay line, the shrunk steps, the program's stderr).
//!
//! Deliveries are found the way the kernel made them: a connect names the address it connects
//! from and an accept names its peer, so both ends of each TCP connection are known; each
//! recv then takes the next bytes its peer's sends put in that direction.

use std::collections::BTreeMap;

use super::{Arrow, Event, Kind, MAX_VIEW_EVENTS, Timeline};

/// The lane of the program under test (records with no host label).
const MAIN_LANE: &str = "main";
/// How many events of a too-long transcript are drawn from its start (the rest from its end,
/// where a failure is).
const HEAD_EVENTS: usize = MAX_VIEW_EVENTS / 10;

/// One direction of a connection: the byte ranges each send put in it, and how far reads took.
#[derive(Default)]
struct Direction {
    /// (first byte, end, sending event).
    sends: Vec<(u64, u64, usize)>,
    written: u64,
    read: u64,
}

/// A descriptor's place: which connection (by its client's address) and which end.
#[derive(Clone)]
struct End {
    client_addr: String,
    is_client: bool,
}

#[derive(Default)]
struct Parser {
    timeline: Timeline,
    lanes: BTreeMap<String, usize>,
    /// Each lane's descriptors.
    fds: BTreeMap<(usize, i64), End>,
    /// Each connection's two directions, keyed by (client address, from the client).
    streams: BTreeMap<(String, bool), Direction>,
    /// A FAIL line came before the current transcript: its last event is the failure point.
    failing: bool,
    /// Every parsed event, before the bound cuts the middle out.
    all: Vec<Event>,
    arrows: Vec<Arrow>,
}

/// Parses `text`; lines that are neither records nor notes go to the page's header.
pub fn parse(text: &str) -> Timeline {
    let mut p = Parser::default();
    p.lane(MAIN_LANE);
    for line in strip_insta_header(text) {
        p.line(line);
    }
    p.mark_failure();
    p.finish()
}

/// An insta snapshot starts with a `---`-fenced header of metadata.
fn strip_insta_header(text: &str) -> impl Iterator<Item = &str> {
    let mut lines = text.lines().peekable();
    if lines.peek() == Some(&"---") {
        lines.next();
        for l in lines.by_ref() {
            if l == "---" {
                break;
            }
        }
    }
    lines
}

impl Parser {
    fn lane(&mut self, name: &str) -> usize {
        if let Some(i) = self.lanes.get(name) {
            return *i;
        }
        let i = self.timeline.lanes.len();
        self.timeline.lanes.push(name.to_string());
        self.lanes.insert(name.to_string(), i);
        i
    }

    fn line(&mut self, raw: &str) {
        let line = raw.trim_start();
        let body = line.strip_prefix("kernel: ").unwrap_or(line);
        if let Some((at_us, rest, micro)) = stamp(body) {
            if micro {
                self.record(at_us, rest);
            } else {
                self.note(at_us, rest);
            }
            return;
        }
        if line == "transcript:" {
            // A new run: its descriptors and connections are its own.
            self.mark_failure();
            self.fds.clear();
            self.streams.clear();
            self.failing = self.timeline.failed;
        }
        if line.starts_with("FAIL") {
            self.timeline.failed = true;
            self.failing = true;
        }
        if !line.is_empty() {
            self.timeline.header.push(line.to_string());
        }
    }

    /// The last event of a failing run is where it failed.
    fn mark_failure(&mut self) {
        if std::mem::take(&mut self.failing)
            && let Some(last) = self.all.last_mut()
        {
            last.failure = true;
        }
    }

    fn push(&mut self, event: Event) -> usize {
        self.all.push(event);
        self.all.len() - 1
    }

    /// A simulator record: `[s.micros] [cN ][fdN ]call(args) = result[  ~ adversary: ...]`.
    fn record(&mut self, at_us: u64, rest: &str) {
        let (call_text, choice) = match rest.split_once("  ~ ") {
            Some((c, choice)) => (c, Some(choice.to_string())),
            None => (rest, None),
        };
        let (host, after_host) = host_label(call_text);
        let (fd, after_fd) = fd_label(after_host);
        let Some((call, result)) = after_fd.rsplit_once(" = ") else {
            return self.note(at_us, rest);
        };
        let name = call.split('(').next().unwrap_or(call);
        let args = call
            .split_once('(')
            .and_then(|(_, a)| a.strip_suffix(')'))
            .unwrap_or("");
        let lane = self.lane(host.unwrap_or(MAIN_LANE));
        // A wait's count is followed by what it reported: `= 2 (fd5 in, fd6 out)`.
        let result = result.split(' ').next().unwrap_or(result);
        let number = result.parse::<i64>().ok();
        // A non-blocking socket's "not yet" is the normal answer, not a failure.
        let not_yet = matches!(result, "EAGAIN" | "EWOULDBLOCK" | "EINPROGRESS");
        let event = self.push(Event {
            lane,
            at_us,
            kind: Kind::of_call(name),
            text: after_host.to_string(),
            error: number.is_none() && !not_yet,
            choice,
            failure: false,
        });
        self.follow(lane, fd, name, args, number, event);
    }

    /// A session's note: `[s.millis] c1 types ...`, `[s.millis] server: ...`.
    fn note(&mut self, at_us: u64, rest: &str) {
        let word = rest.split([' ', '\'', ':']).next().unwrap_or("");
        let host = if is_host(word) { word } else { MAIN_LANE };
        let lane = self.lane(host);
        self.push(Event {
            lane,
            at_us,
            kind: Kind::Note,
            text: rest.to_string(),
            error: false,
            choice: None,
            failure: false,
        });
    }

    /// Keeps the descriptor table and the byte streams up to date with one call.
    fn follow(
        &mut self,
        lane: usize,
        fd: Option<i64>,
        name: &str,
        args: &str,
        result: Option<i64>,
        event: usize,
    ) {
        match (name, fd, result) {
            ("connect", Some(fd), _) => {
                if let Some((_, from)) = args.split_once(" from ") {
                    // A new connection from this address: its old streams are gone.
                    self.streams.remove(&(from.to_string(), true));
                    self.streams.remove(&(from.to_string(), false));
                    let end = End {
                        client_addr: from.to_string(),
                        is_client: true,
                    };
                    self.fds.insert((lane, fd), end);
                }
            }
            ("accept", _, Some(new_fd)) if !args.is_empty() => {
                let end = End {
                    client_addr: args.to_string(),
                    is_client: false,
                };
                self.fds.insert((lane, new_fd), end);
            }
            ("dup", Some(fd), Some(new_fd)) => {
                if let Some(end) = self.fds.get(&(lane, fd)).cloned() {
                    self.fds.insert((lane, new_fd), end);
                }
            }
            ("close", Some(fd), Some(0)) => {
                self.fds.remove(&(lane, fd));
            }
            ("send" | "sendto", Some(fd), Some(n)) if n > 0 => self.sent(lane, fd, n, event),
            ("recv" | "recvfrom", Some(fd), Some(n)) if n > 0 => self.received(lane, fd, n, event),
            _ => {}
        }
    }

    fn sent(&mut self, lane: usize, fd: i64, n: i64, event: usize) {
        let Some(end) = self.fds.get(&(lane, fd)) else {
            return;
        };
        let key = (end.client_addr.clone(), end.is_client);
        let dir = self.streams.entry(key).or_default();
        let start = dir.written;
        dir.written += n.unsigned_abs();
        dir.sends.push((start, dir.written, event));
    }

    fn received(&mut self, lane: usize, fd: i64, n: i64, event: usize) {
        let Some(end) = self.fds.get(&(lane, fd)) else {
            return;
        };
        // Bytes a client reads came from the server's end, and the other way round.
        let key = (end.client_addr.clone(), !end.is_client);
        let Some(dir) = self.streams.get_mut(&key) else {
            return;
        };
        let (from, to) = (dir.read, dir.read + n.unsigned_abs());
        dir.read = to;
        for &(start, end, send) in &dir.sends {
            let (lo, hi) = (start.max(from), end.min(to));
            if lo < hi {
                self.arrows.push(Arrow {
                    from: send,
                    to: event,
                    bytes: hi - lo,
                });
            }
        }
        // Sends read whole are done with.
        dir.sends.retain(|&(_, end, _)| end > to);
    }

    /// Bounds the events drawn (the start and the end of a long run), then renumbers arrows.
    fn finish(mut self) -> Timeline {
        let total = self.all.len();
        let keep = |i: usize| i < HEAD_EVENTS || i + (MAX_VIEW_EVENTS - HEAD_EVENTS) >= total;
        let mut index = vec![None; total];
        let mut kept = 0;
        for (i, slot) in index.iter_mut().enumerate() {
            if total <= MAX_VIEW_EVENTS || keep(i) {
                *slot = Some(kept);
                kept += 1;
            }
        }
        self.timeline.elided = total - kept;
        self.timeline.elided_after = HEAD_EVENTS.min(kept);
        self.timeline.events = (self.all.into_iter())
            .enumerate()
            .filter(|(i, _)| index[*i].is_some())
            .map(|(_, e)| e)
            .collect();
        self.timeline.arrows = (self.arrows.into_iter())
            .filter_map(|a| {
                Some(Arrow {
                    from: index[a.from]?,
                    to: index[a.to]?,
                    bytes: a.bytes,
                })
            })
            .collect();
        self.timeline
    }
}

/// `[   1.250000] rest` (a record, micro true) or `[  1.250] rest` (a note): the time in
/// microseconds and the rest.
fn stamp(line: &str) -> Option<(u64, &str, bool)> {
    let inner = line.strip_prefix('[')?;
    let (time, rest) = inner.split_once("] ")?;
    let (secs, frac) = time.trim().split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (micros, micro) = match frac.len() {
        6 => (frac.parse::<u64>().ok()?, true),
        3 => (frac.parse::<u64>().ok()? * 1000, false),
        _ => return None,
    };
    Some((
        secs.checked_mul(1_000_000)?.checked_add(micros)?,
        rest,
        micro,
    ))
}

fn is_host(word: &str) -> bool {
    word.strip_prefix('c')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A leading `cN ` host label.
fn host_label(text: &str) -> (Option<&str>, &str) {
    match text.split_once(' ') {
        Some((word, rest)) if is_host(word) => (Some(word), rest),
        _ => (None, text),
    }
}

/// A leading `fdN ` descriptor.
fn fd_label(text: &str) -> (Option<i64>, &str) {
    let fd = text
        .split_once(' ')
        .and_then(|(word, rest)| Some((word.strip_prefix("fd")?.parse().ok()?, rest)));
    match fd {
        Some((n, rest)) => (Some(n), rest),
        None => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "\
[   0.000000] fd4 listen(256) = 0
[   0.000000] c1 fd3 connect(127.0.0.1:32768 from 127.0.0.1:32769) = EINPROGRESS
[   0.000000] fd4 accept(127.0.0.1:32769) = 5
[   0.000000] c1 fd3 send(10) = 10
[   0.000000] c1 fd3 send(6) = 6
[   0.000000] fd6 epoll_wait(max 8, for ever) = 1 (data 5 in)
[   0.000000] fd5 recv(4096) = 12  ~ adversary: short read 12 of 16
[   0.000000] fd5 recv(4096) = 4
[   0.250000] fd5 send(3) = 3
[   0.250000] c1 fd3 recv(4096) = 3
";

    #[test]
    fn each_recv_is_tied_to_the_sends_whose_bytes_it_took() {
        let t = parse(RUN);
        assert_eq!(t.lanes, ["main", "c1"]);
        let pairs: Vec<(usize, usize, u64)> =
            t.arrows.iter().map(|a| (a.from, a.to, a.bytes)).collect();
        // 10 bytes of the first send and 2 of the second in the short read, the second's
        // last 4 next, then the reply the other way.
        assert_eq!(pairs, [(3, 6, 10), (4, 6, 2), (4, 7, 4), (8, 9, 3)]);
        assert_eq!(
            t.events[6].choice.as_deref(),
            Some("adversary: short read 12 of 16")
        );
        assert_eq!(t.events[9].at_us, 250_000);
        assert_eq!(t.events[5].kind, Kind::Wait);
        assert!(!t.events[5].error, "a wait's report follows its count");
        assert!(
            !t.events[1].error,
            "EINPROGRESS is a non-blocking connect's normal answer"
        );
    }

    #[test]
    fn a_new_connection_from_a_reused_address_starts_its_streams_afresh() {
        let again = format!(
            "{RUN}[   1.000000] c1 fd3 close() = 0\n[   1.000000] fd5 close() = 0\n\
             [   1.000000] c1 fd3 connect(127.0.0.1:32768 from 127.0.0.1:32769) = EINPROGRESS\n\
             [   1.000000] fd4 accept(127.0.0.1:32769) = 5\n\
             [   1.000000] c1 fd3 send(2) = 2\n[   1.000000] fd5 recv(10) = 2\n"
        );
        let t = parse(&again);
        let last = t.arrows.last().expect("an arrow");
        assert_eq!((last.from, last.to, last.bytes), (14, 15, 2));
    }

    #[test]
    fn a_report_keeps_its_lines_and_marks_where_the_failing_run_ended() {
        let report = format!(
            "---\nsource: x\n---\nPASS dialect   ok\nFAIL slow-reader   it died\n  transcript:\n{}  [  0.000] c1 receives \"hi\\n\" (3 bytes)\n  stderr| boom\n",
            RUN.lines()
                .map(|l| format!("  kernel: {l}\n"))
                .collect::<String>()
        );
        let t = parse(&report);
        assert!(t.failed);
        assert_eq!(
            t.header,
            [
                "PASS dialect   ok",
                "FAIL slow-reader   it died",
                "transcript:",
                "stderr| boom"
            ]
        );
        let note = t.events.last().expect("events");
        assert_eq!(
            (note.kind, note.lane),
            (Kind::Note, 1),
            "a client's note is in its lane"
        );
        assert!(note.failure, "the failing run's last event is marked");
        assert_eq!(t.events.iter().filter(|e| e.failure).count(), 1);
    }

    #[test]
    fn a_long_transcript_keeps_its_start_and_its_end_and_counts_the_rest() {
        let n = MAX_VIEW_EVENTS + 500;
        let text: String = (0..n)
            .map(|i| format!("[   0.000000] fd3 getsockname() = {i}\n"))
            .collect();
        let t = parse(&text);
        assert_eq!(t.events.len(), MAX_VIEW_EVENTS);
        assert_eq!(t.elided, 500);
        assert_eq!(t.elided_after, HEAD_EVENTS);
        assert!(
            t.events[HEAD_EVENTS]
                .text
                .ends_with(&format!("= {}", HEAD_EVENTS + 500))
        );
        assert!(
            t.events
                .last()
                .unwrap()
                .text
                .ends_with(&format!("= {}", n - 1))
        );
    }

    proptest::proptest! {
        /// Whatever the file holds, reading it and drawing it do not panic, and every arrow
        /// joins two drawn events, a send to a later recv.
        #[test]
        fn any_text_is_read_and_drawn_without_panicking(lines in proptest::collection::vec(
            proptest::prop_oneof![
                "\\[ {0,4}[0-9]{1,3}\\.[0-9]{6}\\] (c[0-9] )?(fd[0-9] )?(send|recv|accept|connect|close|dup)\\([0-9a-z.: ]{0,30}\\) = -?[0-9]{1,3}( \\(fd[0-9] in\\))?",
                "\\[ {0,3}[0-9]\\.[0-9]{3}\\] (c[0-9]|server)[ :'a-z]{0,20}",
                "(FAIL|PASS|transcript:|---|kernel: )?.{0,40}",
            ],
            0..60,
        )) {
            let t = parse(&lines.join("\n"));
            for a in &t.arrows {
                proptest::prop_assert!(a.from < a.to && a.to < t.events.len());
            }
            let _ = crate::view::svg(&t);
            let _ = crate::view::page(&t, "any");
        }
    }

    #[test]
    fn lines_that_only_look_like_records_are_kept_as_header_text() {
        let t = parse("[x.000000] nope\n[   1.00] short\nplain words\n[   0.000000] garbled\n");
        assert_eq!(
            t.events.len(),
            1,
            "a stamped line without a result is a note"
        );
        assert_eq!(t.events[0].kind, Kind::Note);
        assert_eq!(
            t.header,
            ["[x.000000] nope", "[   1.00] short", "plain words"]
        );
    }
}
