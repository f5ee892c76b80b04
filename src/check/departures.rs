//! Checks of joins and departures: notices naming the right client, clean exits, resets after
//! and in the middle of a line, and resets while a broadcast is under way.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::peer::{Peer, Room};
use super::{Check, Ctx, Judgement, Outcome, QUIET, contains, judge_stream, show};
use crate::chat::protocol::{self, What};

/// Lines of the broadcast in `resets-during-broadcast`.
const BURST_LINES: usize = 300;
/// Lines a resetting client hears before it resets.
const HEARD_BEFORE_RESET: usize = 10;
/// How long a departure notice may take.
const NOTICE_WAIT: Duration = Duration::from_secs(3);

/// Whether `line` is the protocol's `what` notice about `addr`.
fn notice(line: &[u8], addr: SocketAddr, what: What<'_>) -> bool {
    protocol::parse(line)
        .is_some_and(|n| n.what == what && protocol::parse_who(n.who) == Some(addr))
}

fn expected_notice(addr: SocketAddr, what: &str) -> String {
    format!(
        "expected <YYYY-mm-dd HH:MM:SS> {} {what}",
        protocol::who(addr)
    )
}

/// Whatever `peer` heard last, for evidence.
fn last_heard(peer: &Peer) -> String {
    format!(
        "{} last heard {}",
        peer.name,
        peer.heard.last().map_or("nothing".into(), |l| show(l))
    )
}

/// A join is announced to the others, naming the newcomer.
pub const JOIN: Check = Check {
    name: "join-announced",
    about: "a newcomer is announced to the others as `('<ip>', <port>) entered room`, not to itself",
    run: join,
};

fn join(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let mut newcomer = Peer::connect("c3".into(), ctx.server, None)
        .map_err(|e| Judgement::fail(format!("c3 could not connect: {e}")))?;
    let wait = ctx.until.min(Instant::now() + NOTICE_WAIT);
    let c1 = &mut room.peers[0];
    let any_entry = |h: &[Vec<u8>]| {
        h.iter()
            .any(|l| protocol::parse(l).is_some_and(|n| n.what == What::Entered))
    };
    if !c1.listen_until(wait, any_entry) {
        return Err(Judgement::Fail(vec![
            "c1 heard no notice of c3's arrival".into(),
            expected_notice(newcomer.local, "entered room"),
            last_heard(c1),
        ]));
    }
    // Through a proxy, c3's name in the room is the one its own line is relayed under.
    let at = if ctx.via_proxy {
        let said = ctx.line("join-announced", 3, 0, b"it is me");
        newcomer
            .send(&[&said[..], b"\n"].concat(), ctx.until)
            .map_err(|e| Judgement::Skip(format!("c3 could not speak: {e}")))?;
        c1.listen_until(wait, |h| h.iter().any(|l| super::delivers(l, &said)));
        c1.heard
            .iter()
            .find(|l| super::delivers(l, &said))
            .and_then(|l| protocol::parse(l))
            .and_then(|n| protocol::parse_who(n.who))
            .ok_or_else(|| {
                Judgement::Skip(
                    "c3's line was not relayed in the protocol's form, so its name is unknown"
                        .into(),
                )
            })?
    } else {
        newcomer.local
    };
    if !c1.heard.iter().any(|l| notice(l, at, What::Entered)) {
        return Err(Judgement::Fail(vec![
            "c1 heard a notice of an arrival, but not naming c3".into(),
            expected_notice(at, "entered room"),
            last_heard(c1),
        ]));
    }
    newcomer.listen_for(QUIET);
    if let Some(own) = newcomer.heard.iter().find(|l| {
        protocol::parse(l)
            .is_some_and(|n| n.what == What::Entered && protocol::parse_who(n.who) == Some(at))
    }) {
        return Err(Judgement::Fail(vec![
            "c3 was told of its own arrival".into(),
            format!("arrived {}", show(own)),
        ]));
    }
    Ok(format!("c1 heard {} entered room", protocol::who(at)))
}

/// A clean exit is announced with the departing client's own address.
pub const EXIT: Check = Check {
    name: "exit-announced",
    about: "a client that closes cleanly is announced as `('<ip>', <port>) left room`, its own address",
    run: exit,
};

fn exit(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let leaver = room.peers.remove(1);
    let at = ctx.named(&leaver);
    leaver.exit();
    departure_heard(&mut room.peers[0], at, ctx.until, "closed cleanly")?;
    Ok(format!("c1 heard {} left room", protocol::who(at)))
}

/// `peer` must hear that `addr` left.
fn departure_heard(
    peer: &mut Peer,
    addr: SocketAddr,
    until: Instant,
    how: &str,
) -> Result<(), Judgement> {
    if peer.listen_until(until.min(Instant::now() + NOTICE_WAIT), |h| {
        h.iter().any(|l| notice(l, addr, What::Left))
    }) {
        return Ok(());
    }
    Err(Judgement::Fail(vec![
        format!(
            "{} heard no notice that the client which {how} left",
            peer.name
        ),
        expected_notice(addr, "left room"),
        last_heard(peer),
    ]))
}

/// A client sends complete lines, then resets.
pub const RESET_AFTER_LINES: Check = Check {
    name: "reset-after-lines",
    about: "a client sends 3 lines, then resets: each line arrives once, none is replayed, its departure is announced",
    run: reset_after_lines,
};

fn reset_after_lines(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 3, &ctx.tag, ctx.until)?;
    room.forget();
    let sent: Vec<Vec<u8>> = (0..3)
        .map(|k| ctx.line("reset-after-lines", 1, k, b"then reset"))
        .collect();
    let one: Vec<u8> = sent
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    let mark = ctx.mark("reset-after-lines", 1);
    let failed = room.talk(
        &[vec![one]],
        Duration::ZERO,
        ctx.until,
        Duration::ZERO,
        |me, heard| me == 0 || heard.iter().filter(|l| contains(l, &mark)).count() >= sent.len(),
    );
    super::all_sent(failed)?;
    let sender = room.peers.remove(0);
    let at = ctx.named(&sender);
    sender.reset();
    for listener in &mut room.peers {
        departure_heard(listener, at, ctx.until, "reset")?;
        listener.listen_for(QUIET);
        judge_stream(&listener.name, "c1", &listener.heard, &mark, &sent)
            .map_err(Judgement::Fail)?;
    }
    Ok("c2 and c3 heard each line once and c1's departure; nothing was replayed".into())
}

/// A reset in the middle of a line.
pub const RESET_MID_LINE: Check = Check {
    name: "reset-mid-line",
    about: "a client resets in the middle of a line: no fragment of it is broadcast, and its departure is announced",
    run: reset_mid_line,
};

fn reset_mid_line(ctx: &Ctx) -> Outcome {
    let mut room = Room::gather(ctx.server, 2, &ctx.tag, ctx.until)?;
    room.forget();
    let fragment = ctx.line("reset-mid-line", 1, 0, b"this line never ends");
    let sender = room.peers.remove(0);
    sender
        .send(&fragment, ctx.until)
        .map_err(|e| Judgement::Skip(format!("c1 could not send its fragment: {e}")))?;
    // Let the server read the fragment before the reset comes.
    thread::sleep(QUIET);
    let at = ctx.named(&sender);
    sender.reset();
    let c2 = &mut room.peers[0];
    let told = c2.listen_until(ctx.until.min(Instant::now() + NOTICE_WAIT), |h| {
        h.iter().any(|l| notice(l, at, What::Left))
    });
    c2.listen_for(QUIET);
    if let Some(leak) = c2
        .heard
        .iter()
        .find(|l| contains(l, &fragment[..fragment.len() / 2]))
    {
        return Err(Judgement::Fail(vec![
            "c2 heard the unfinished line of a client that reset".into(),
            format!("arrived {}", show(leak)),
        ]));
    }
    if let Some(why) = &c2.ended {
        return Err(Judgement::fail(format!(
            "c2's connection ended after c1 reset mid-line: {why}"
        )));
    }
    if !told {
        return Err(Judgement::Fail(vec![
            format!(
                "c1 reset in the middle of a line, and c2 heard no departure notice within {} s",
                NOTICE_WAIT.as_secs()
            ),
            expected_notice(at, "left room"),
            last_heard(c2),
        ]));
    }
    drop(room);
    super::room_goes_on(ctx, "the reset")?;
    Ok("nothing of the unfinished line reached c2; its departure was announced; two new clients chat afterwards".into())
}

/// Resets while a broadcast is in progress.
pub const RESETS_DURING_BROADCAST: Check = Check {
    name: "resets-during-broadcast",
    about: "3 of 8 clients reset while c1's 300 lines are broadcast: the others get them all, and the room goes on",
    run: resets_during_broadcast,
};

fn resets_during_broadcast(ctx: &Ctx) -> Outcome {
    let room = Room::gather(ctx.server, 8, &ctx.tag, ctx.until)?;
    let mut peers = room.peers;
    for p in &mut peers {
        p.heard.clear();
    }
    let sent: Vec<Vec<u8>> = (0..BURST_LINES)
        .map(|k| ctx.line("resets-during-broadcast", 1, k, &[b'b'; 160]))
        .collect();
    let burst: Vec<u8> = sent
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    let mark = ctx.mark("resets-during-broadcast", 1);
    let mut sender = peers.remove(0);
    // c3, c5, c7 (now at 1, 3, 5) reset; c2, c4, c6, c8 stay.
    let (mut resetting, mut staying): (Vec<_>, Vec<_>) =
        peers.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let until = ctx.until;
    thread::scope(|s| {
        let (_, writer) = sender.split();
        s.spawn(move || writer.send(&burst, until));
        for (_, p) in resetting.drain(..) {
            let mark = &mark;
            s.spawn(move || {
                let mut p = p;
                p.listen_until(until, |h| {
                    h.iter().filter(|l| contains(l, mark)).count() >= HEARD_BEFORE_RESET
                });
                p.reset();
            });
        }
        for (_, p) in &mut staying {
            let mark = &mark;
            s.spawn(move || {
                p.listen_until(until, |h| {
                    h.iter().filter(|l| contains(l, mark)).count() >= BURST_LINES
                });
                p.listen_for(QUIET);
            });
        }
    });
    for (_, p) in &staying {
        judge_stream(&p.name, "c1", &p.heard, &mark, &sent).map_err(Judgement::Fail)?;
    }
    drop((sender, staying));
    super::room_goes_on(ctx, "the resets")?;
    Ok(format!(
        "c2, c4, c6 and c8 heard all {BURST_LINES} lines once, in order; two new clients chat afterwards"
    ))
}

/// Connections closed at once: `quick-close` opens this many, half closed cleanly, half reset.
const QUICK_CLOSES: usize = 10;

/// Clients that connect and close at once (before the server may have looked at them).
pub const QUICK_CLOSE: Check = Check {
    name: "quick-close",
    about: "10 clients connect and close at once (half with a reset): the server survives and two new clients chat",
    run: quick_close,
};

fn quick_close(ctx: &Ctx) -> Outcome {
    for i in 0..QUICK_CLOSES {
        let p = Peer::connect(format!("q{}", i + 1), ctx.server, None)
            .map_err(|e| Judgement::fail(format!("q{} could not connect: {e}", i + 1)))?;
        if i % 2 == 0 { p.exit() } else { p.reset() }
    }
    thread::sleep(QUIET);
    super::room_goes_on(ctx, &format!("{QUICK_CLOSES} connections closed at once"))?;
    Ok(format!(
        "{QUICK_CLOSES} connections closed at once; two new clients chat afterwards"
    ))
}
