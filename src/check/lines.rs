//! Checks of what happens to one line on its way through the server.

use std::time::Duration;

use super::peer::Room;
use super::{Check, Ctx, Judgement, Outcome, QUIET, contains, delivers, judge_stream, show};
use crate::chat::protocol::{self, What};

/// Lines each client sends in `delivery`.
const LINES_EACH: usize = 20;
/// Bytes of an over-long line: far past any reasonable limit, and past one read.
pub const LONG_LINE_BYTES: usize = 100 * 1024;
/// Time between the one-byte writes of `split-writes`.
const SPLIT_GAP: Duration = Duration::from_millis(2);
/// How long c2 waits for the over-long line before it takes it as refused.
const LONG_LINE_WAIT: Duration = Duration::from_secs(2);

/// The server's exact form of a relayed line.
pub const PREFIX: Check = Check {
    name: "prefix",
    about: "a relayed line reads `<YYYY-mm-dd HH:MM:SS> ('<ip>', <port>) say: <text>`, naming its sender",
    run: prefix,
};

fn prefix(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let sent = ctx.line("prefix", 1, 0, b"hello");
    let line = one_line(&mut room, ctx, &sent)?;
    let sender = ctx.named(&room.peers[0]);
    let want = format!(
        "<YYYY-mm-dd HH:MM:SS> {} say: {}",
        protocol::who(sender),
        String::from_utf8_lossy(&sent)
    );
    match protocol::parse(&line) {
        Some(n) if n.what == What::Say(&sent) && protocol::parse_who(n.who) == Some(sender) => {
            Ok(format!("c2 heard {}", show(&line)))
        }
        _ => Err(Judgement::Fail(vec![
            "c2 heard c1's line, but not in the protocol's form".into(),
            format!("expected {want}"),
            format!("arrived  {}", show(&line)),
        ])),
    }
}

/// c1 sends `sent` (with its newline, one write); returns the line c2 heard carrying it.
fn one_line(room: &mut Room, ctx: &Ctx, sent: &[u8]) -> Result<Vec<u8>, Judgement> {
    let writes = vec![vec![[sent, b"\n"].concat()]];
    let failed = room.talk(&writes, Duration::ZERO, ctx.until, QUIET, |me, heard| {
        me != 1 || heard.iter().any(|l| delivers(l, sent))
    });
    super::all_sent(failed)?;
    let c2 = &room.peers[1];
    c2.heard
        .iter()
        .find(|l| delivers(l, sent))
        .cloned()
        .ok_or_else(|| {
            Judgement::Fail(vec![
                format!(
                    "c2 never heard c1's line whole{}",
                    ended(c2.ended.as_deref())
                ),
                format!("expected …{}", show(sent)),
                format!(
                    "last heard {}",
                    c2.heard.last().map_or("nothing".into(), |l| show(l))
                ),
            ])
        })
}

fn ended(why: Option<&str>) -> String {
    why.map_or(String::new(), |w| format!(" ({w})"))
}

/// Exactly once and in order, many clients at once.
pub const DELIVERY: Check = Check {
    name: "delivery",
    about: "every client sends 20 lines at once; each reaches every other client once, whole, in order",
    run: delivery,
};

fn delivery(ctx: &Ctx) -> Outcome {
    let n = ctx.clients;
    let mut room = Room::gather(ctx.server, n, &ctx.tag, ctx.until)?;
    room.forget();
    let sent: Vec<Vec<Vec<u8>>> = (1..=n)
        .map(|c| {
            (0..LINES_EACH)
                .map(|k| ctx.line("delivery", c, k, &[b'.'; 40]))
                .collect()
        })
        .collect();
    let writes: Vec<Vec<Vec<u8>>> = sent
        .iter()
        .map(|lines| lines.iter().map(|l| [&l[..], b"\n"].concat()).collect())
        .collect();
    let all = format!("{} delivery c", ctx.tag).into_bytes();
    let want = (n - 1) * LINES_EACH;
    let failed = room.talk(&writes, Duration::ZERO, ctx.until, QUIET, |_, heard| {
        heard.iter().filter(|l| contains(l, &all)).count() >= want
    });
    super::all_sent(failed)?;
    for (r, listener) in room.peers.iter().enumerate() {
        for (s, lines) in sent.iter().enumerate() {
            let mark = ctx.mark("delivery", s + 1);
            if s == r {
                if let Some(echo) = listener.heard.iter().find(|l| contains(l, &mark)) {
                    return Err(Judgement::Fail(vec![
                        format!("{} heard its own line: an echo", listener.name),
                        format!("arrived {}", show(echo)),
                    ]));
                }
                continue;
            }
            judge_stream(
                &listener.name,
                &format!("c{}", s + 1),
                &listener.heard,
                &mark,
                lines,
            )
            .map_err(Judgement::Fail)?;
        }
    }
    Ok(format!(
        "{n} clients × {LINES_EACH} lines: each line reached the {} others once, in order",
        n - 1
    ))
}

/// No echo to the sender.
pub const NO_ECHO: Check = Check {
    name: "no-echo",
    about: "the sender does not hear its own line",
    run: no_echo,
};

fn no_echo(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let sent = ctx.line("no-echo", 1, 0, b"do not send this back");
    one_line(&mut room, ctx, &sent)?;
    // c2 has the line: an echo would be on its way to c1 by now.
    room.peers[0].listen_for(QUIET);
    let c1 = &room.peers[0];
    match c1.heard.iter().find(|l| contains(l, &sent)) {
        Some(echo) => Err(Judgement::Fail(vec![
            "c1 heard its own line back".into(),
            format!("arrived {}", show(echo)),
        ])),
        None => Ok(format!(
            "c2 heard c1's line; c1 heard nothing of it in {} ms more",
            QUIET.as_millis()
        )),
    }
}

/// Sends `sent` as c1 with `writes`, and requires c2 to hear exactly `sent`'s lines, whole,
/// in order, nothing else of them.
fn framed(
    ctx: &Ctx,
    check: &str,
    sent: &[Vec<u8>],
    writes: Vec<Vec<u8>>,
    gap: Duration,
) -> Result<(), Judgement> {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let mark = ctx.mark(check, 1);
    let failed = room.talk(&[writes], gap, ctx.until, QUIET, |me, heard| {
        me != 1 || sent.iter().all(|s| heard.iter().any(|l| delivers(l, s)))
    });
    super::all_sent(failed)?;
    let c2 = &room.peers[1];
    judge_stream("c2", "c1", &c2.heard, &mark, sent).map_err(Judgement::Fail)?;
    if !c2.unfinished().is_empty() {
        return Err(Judgement::Fail(vec![
            "c2 was left with an unfinished line".into(),
            format!("unfinished {}", show(c2.unfinished())),
        ]));
    }
    Ok(())
}

/// A line split into 1-byte writes.
pub const SPLIT_WRITES: Check = Check {
    name: "split-writes",
    about: "a line sent one byte per write arrives as one line",
    run: split_writes,
};

fn split_writes(ctx: &Ctx) -> Outcome {
    let sent = ctx.line("split-writes", 1, 0, b"one byte at a time");
    let line = [&sent[..], b"\n"].concat();
    // TCP_NODELAY is on: each write leaves as its own segment.
    let writes = line.chunks(1).map(<[u8]>::to_vec).collect();
    // Apart in time, so each byte is its own segment and, on any server, its own read.
    framed(
        ctx,
        "split-writes",
        std::slice::from_ref(&sent),
        writes,
        SPLIT_GAP,
    )?;
    Ok(format!(
        "{} one-byte writes arrived as one line",
        line.len()
    ))
}

/// Several lines merged into one write.
pub const MERGED_WRITES: Check = Check {
    name: "merged-writes",
    about: "five lines in one write arrive as five lines, each with its prefix",
    run: merged_writes,
};

fn merged_writes(ctx: &Ctx) -> Outcome {
    let sent: Vec<Vec<u8>> = (0..5)
        .map(|k| ctx.line("merged-writes", 1, k, b"together"))
        .collect();
    let one: Vec<u8> = sent
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    framed(ctx, "merged-writes", &sent, vec![one], Duration::ZERO)?;
    Ok("one write of five lines arrived as five lines, in order".into())
}

/// Non-UTF-8 and NUL bytes.
pub const BINARY: Check = Check {
    name: "binary",
    about: "NUL and non-UTF-8 bytes pass through unchanged",
    run: binary,
};

fn binary(ctx: &Ctx) -> Outcome {
    let sent = ctx.line(
        "binary",
        1,
        0,
        b"nul\x00 ff\xff fe\xfe \xc3\x28 cr\r bell\x07 end",
    );
    framed(
        ctx,
        "binary",
        std::slice::from_ref(&sent),
        vec![[&sent[..], b"\n"].concat()],
        Duration::ZERO,
    )?;
    Ok(format!(
        "c2 heard {} unchanged",
        show(&sent[sent.len() - 27..])
    ))
}

/// An over-long line: refused or delivered whole, never in fragments.
pub const LONG_LINE: Check = Check {
    name: "long-line",
    about: "a 100 KiB line is refused or delivered whole, never in fragments; the room goes on",
    run: long_line,
};

fn long_line(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let head = ctx.line("long-line", 1, 0, b"");
    let sent = [head.clone(), vec![b'L'; LONG_LINE_BYTES - head.len()]].concat();
    let writes = vec![vec![[&sent[..], b"\n"].concat()]];
    // A refusal is silent: c2 waits a while for the line, not the whole deadline.
    let wait = ctx.until.min(std::time::Instant::now() + LONG_LINE_WAIT);
    // The sender may be cut off for its line: a policy, not the checker's trouble.
    let _ = room.talk(&writes, Duration::ZERO, wait, QUIET, |me, heard| {
        me != 1 || heard.iter().any(|l| delivers(l, &sent))
    });
    // A line still arriving (its start heard, its end not yet) gets the rest of the time.
    let c2 = &mut room.peers[1];
    if contains(c2.unfinished(), &head) {
        c2.listen_until(ctx.until, |heard| heard.iter().any(|l| contains(l, &head)));
    }
    if contains(c2.unfinished(), &head) && c2.ended.is_none() {
        return Err(Judgement::Skip(format!(
            "the long line was still arriving when the check's time ran out ({} bytes so far)",
            c2.unfinished().len()
        )));
    }
    let c2 = &room.peers[1];
    // A fragment: a line with the marker but not all of the line, or a run of filler alone.
    let fragment = c2.heard.iter().find(|l| {
        (contains(l, &head) && !delivers(l, &sent))
            || (!contains(l, &head) && contains(l, b"LLLLLLLL"))
    });
    if let Some(f) = fragment {
        return Err(Judgement::Fail(vec![
            format!("c2 heard a fragment of c1's {LONG_LINE_BYTES}-byte line"),
            format!("fragment {}", show(f)),
        ]));
    }
    if contains(c2.unfinished(), b"LLLLLLLL") {
        return Err(Judgement::Fail(vec![
            "c2 was left with an unfinished fragment of the long line".into(),
            format!("unfinished {}", show(c2.unfinished())),
        ]));
    }
    let policy = if c2.heard.iter().any(|l| delivers(l, &sent)) {
        "delivered whole"
    } else {
        "refused"
    };
    drop(room);
    // Whatever the policy, the server must go on relaying.
    super::room_goes_on(ctx, "the long line")?;
    Ok(format!(
        "the {LONG_LINE_BYTES}-byte line was {policy}, never in fragments; two new clients chat afterwards"
    ))
}
