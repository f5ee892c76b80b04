//! Checks with more than a few clients: a reader that pauses while others talk, and a crowd
//! joining at once.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::peer::{Peer, Room};
use super::{Check, Ctx, Judgement, Outcome, QUIET, contains, judge_stream};

/// How long the paused reader reads nothing.
pub const PAUSE: Duration = Duration::from_secs(2);
/// In `paused-reader`, the longest it waits past [`PAUSE`] for the others to finish first.
const PAUSE_LIMIT: Duration = Duration::from_secs(8);
/// The paused reader's SO_RCVBUF: small, so that its own kernel absorbs little and the
/// server has to hold (or drop) what it cannot send.
const PAUSED_RCVBUF_BYTES: usize = 4096;
/// Bytes of each line sent while a reader pauses, newline included.
const PAUSE_LINE_BYTES: usize = 1000;
/// Clients that join at once.
pub const CROWD: usize = 200;
/// How often the crowd's speaker repeats its line until everyone heard it.
const SPEAK_EVERY: Duration = Duration::from_millis(100);

/// A reader that pauses while another client is sent about 200 KB.
pub const PAUSED_READER: Check = Check {
    name: "paused-reader",
    about: "c3 reads nothing for 2 s while c1 sends 200 KB: c2 hears it all meanwhile; c3 then hears it all (or is dropped at a line's end)",
    run: |ctx| pause_while_sending(ctx, "paused-reader", 200, true),
};

/// A reader that pauses while more is sent than the kernel buffers on loopback (a TCP send
/// buffer autotunes up to `tcp_wmem`'s 4 MiB there): the server must queue, slow the senders,
/// or drop the paused client at a line's end.
pub const SLOW_READER: Check = Check {
    name: "slow-reader",
    about: "c3 reads nothing for 2 s while c1 sends 8 MB (past the kernel's buffers): c2 hears it all; c3 all of it or whole lines until it is dropped",
    run: |ctx| pause_while_sending(ctx, "slow-reader", 8000, false),
};

/// c1 sends `lines` lines while c3 (a small receive window) reads nothing for [`PAUSE`]. c2
/// must hear every line, within the pause when `others_unhindered`; c3 must hear every line
/// after its pause, or whole lines up to being dropped.
fn pause_while_sending(ctx: &Ctx, check: &str, lines: usize, others_unhindered: bool) -> Outcome {
    if others_unhindered && ctx.via_proxy {
        return Err(Judgement::Skip(
            "through a proxy, 200 KB fit in the proxy's own buffers: this would judge the proxy"
                .into(),
        ));
    }
    let windows = [None, None, Some(PAUSED_RCVBUF_BYTES)];
    let room = Room::gather_windows(ctx.server, &windows, &ctx.tag, ctx.until)?;
    let mut peers = room.peers;
    for p in &mut peers {
        p.heard.clear();
    }
    let sent = paused_lines(ctx, check, lines);
    let mark = ctx.mark(check, 1);
    let Ok([c1, c2, c3]) = <&mut [Peer; 3]>::try_from(&mut peers[..]) else {
        unreachable!("three peers")
    };
    let timing = send_while_paused([c1, c2, c3], &sent, &mark, ctx.until, others_unhindered);
    let pause = PauseRun {
        lines: &sent,
        mark: &mark,
        c2: &peers[1],
        c3: &peers[2],
    };
    if others_unhindered {
        pause.judge_c2_unhindered(timing)?;
    }
    judge_stream("c2", "c1", &pause.c2.heard, &mark, &sent).map_err(Judgement::Fail)?;
    pause.judge_c3(timing.c2_took.unwrap_or_default())
}

/// The lines c1 sends, each [`PAUSE_LINE_BYTES`] long with its newline.
fn paused_lines(ctx: &Ctx, check: &str, lines: usize) -> Vec<Vec<u8>> {
    let filler = [b'p'; PAUSE_LINE_BYTES];
    (0..lines)
        .map(|k| {
            let head = ctx.line(check, 1, k, b"");
            let room = PAUSE_LINE_BYTES.saturating_sub(head.len() + 1);
            ctx.line(check, 1, k, &filler[..room])
        })
        .collect()
}

/// When things happened in a pause run, from the burst's start.
#[derive(Clone, Copy)]
struct PauseTiming {
    /// When c2 had heard every line, if it did.
    c2_took: Option<Duration>,
    /// When c3 began to read again.
    resumed: Duration,
}

/// c1 sends `sent` in one burst; c2 listens throughout; c3 sleeps [`PAUSE`] first. When
/// `others_unhindered`, c3 stays paused past PAUSE until c2 has everything (or until
/// [`PAUSE_LIMIT`]): a slow but fair server passes on a busy machine, and a server that makes
/// c2 wait for c3 is still caught, since c3 never reads while c2 waits.
fn send_while_paused(
    [c1, c2, c3]: [&mut Peer; 3],
    sent: &[Vec<u8>],
    mark: &[u8],
    until: Instant,
    others_unhindered: bool,
) -> PauseTiming {
    let burst: Vec<u8> = sent
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    let started = Instant::now();
    let c2_done = AtomicBool::new(false);
    let mut c2_took = None;
    let mut resumed = PAUSE;
    let (_, writer) = c1.split();
    thread::scope(|s| {
        s.spawn(|| writer.send(&burst, until));
        s.spawn(|| {
            if c2.listen_until(until, heard_all(mark, sent.len())) {
                c2_took = Some(started.elapsed());
            }
            c2_done.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            thread::sleep(PAUSE);
            let limit = started + PAUSE_LIMIT;
            while others_unhindered && !c2_done.load(Ordering::SeqCst) && Instant::now() < limit {
                thread::sleep(Duration::from_millis(10));
            }
            resumed = started.elapsed();
            c3.listen_until(until, heard_all(mark, sent.len()));
            c3.listen_for(QUIET);
        });
    });
    PauseTiming { c2_took, resumed }
}

/// What a pause run left to judge.
struct PauseRun<'a> {
    lines: &'a [Vec<u8>],
    mark: &'a [u8],
    c2: &'a Peer,
    c3: &'a Peer,
}

impl PauseRun<'_> {
    fn kb(&self) -> usize {
        self.lines.len() * PAUSE_LINE_BYTES / 1000
    }

    /// c2 heard everything before c3 resumed.
    fn judge_c2_unhindered(&self, timing: PauseTiming) -> Result<(), Judgement> {
        if timing.c2_took.is_some_and(|t| t <= timing.resumed) {
            return Ok(());
        }
        let got = self
            .c2
            .heard
            .iter()
            .filter(|l| contains(l, self.mark))
            .count();
        Err(Judgement::fail(format!(
            "c2 was held back by the paused c3: it heard {got} of {} lines ({} KB) in the {:.1} s c3 paused{}",
            self.lines.len(),
            self.kb(),
            timing.resumed.as_secs_f64(),
            timing.c2_took.map_or(String::new(), |t| format!(
                ", all of them after {:.2} s",
                t.as_secs_f64()
            ))
        )))
    }

    /// c3 heard every line after its pause, or whole lines until it was dropped.
    fn judge_c3(&self, c2_took: Duration) -> Outcome {
        let (lines, kb, c3) = (self.lines.len(), self.kb(), self.c3);
        let c2_took = c2_took.as_secs_f64();
        let c3_got = c3.heard.iter().filter(|l| contains(l, self.mark)).count();
        judge_stream(
            "c3",
            "c1",
            &c3.heard,
            self.mark,
            &self.lines[..c3_got.min(lines)],
        )
        .map_err(Judgement::Fail)?;
        if c3_got == lines {
            return Ok(format!(
                "c2 heard all {lines} lines ({kb} KB) in {c2_took:.2} s; c3 heard them all after its pause (queued)"
            ));
        }
        match &c3.ended {
            Some(why) if c3.unfinished().is_empty() => Ok(format!(
                "c2 heard all {lines} lines ({kb} KB) in {c2_took:.2} s; c3 was dropped after {c3_got} whole lines ({why})"
            )),
            Some(why) => Err(Judgement::Fail(vec![
                format!(
                    "c3 was dropped in the middle of a line after {c3_got} whole lines ({why})"
                ),
                format!("unfinished {}", super::show(c3.unfinished())),
            ])),
            None => Err(Judgement::fail(format!(
                "c3 heard {c3_got} of {lines} lines by the deadline and was not dropped: the rest was lost"
            ))),
        }
    }
}

/// A `listen_until` test that is true once `lines` heard lines hold `mark`. It counts only
/// the lines heard since its last call: a listener may be called once per read, and
/// recounting 8 000 lines each time made the check quadratic.
fn heard_all(mark: &[u8], lines: usize) -> impl FnMut(&[Vec<u8>]) -> bool {
    let (mut looked_at, mut marked) = (0, 0);
    move |heard| {
        marked += heard[looked_at..]
            .iter()
            .filter(|l| contains(l, mark))
            .count();
        looked_at = heard.len();
        marked >= lines
    }
}

/// Many clients joining at once.
pub const MANY_JOINS: Check = Check {
    name: "many-joins",
    about: "200 clients connect at once: all are accepted and all hear a line said afterwards",
    run: many_joins,
};

fn many_joins(ctx: &Ctx) -> Outcome {
    let mut crowd = connect_crowd(ctx)?;
    let speaker = Peer::connect(format!("c{}", CROWD + 1), ctx.server, None)
        .map_err(|e| Judgement::fail(format!("c{} could not connect: {e}", CROWD + 1)))?;
    let said = ctx.line("many-joins", CROWD + 1, 0, b"hello, crowd");
    let line = [&said[..], b"\n"].concat();
    let heard = AtomicUsize::new(0);
    thread::scope(|s| {
        for p in &mut crowd {
            let (said, heard) = (&said, &heard);
            s.spawn(move || {
                if p.listen_until(ctx.until, |h| h.iter().any(|l| super::delivers(l, said))) {
                    heard.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Clients the server has not accepted yet miss a line: say it until all heard it.
        while heard.load(Ordering::SeqCst) < CROWD && Instant::now() < ctx.until {
            if speaker.send(&line, ctx.until).is_err() {
                break;
            }
            thread::sleep(SPEAK_EVERY);
        }
    });
    let deaf: Vec<&Peer> = crowd
        .iter()
        .filter(|p| !p.heard.iter().any(|l| super::delivers(l, &said)))
        .collect();
    if let Some(first) = deaf.first() {
        return Err(Judgement::Fail(vec![
            format!(
                "{} of {CROWD} clients never heard c{}'s line; {} first{}",
                deaf.len(),
                CROWD + 1,
                first.name,
                first
                    .ended
                    .as_deref()
                    .map_or(String::new(), |w| format!(" ({w})"))
            ),
            format!("expected …{}", super::show(&said)),
        ]));
    }
    Ok(format!(
        "{CROWD} clients joined at once; each heard c{}'s line",
        CROWD + 1
    ))
}

/// [`CROWD`] clients, connected at once, each from a thread of its own.
fn connect_crowd(ctx: &Ctx) -> Result<Vec<Peer>, Judgement> {
    let connected: Vec<std::io::Result<Peer>> = thread::scope(|s| {
        let handles: Vec<_> = (1..=CROWD)
            .map(|i| s.spawn(move || Peer::connect(format!("c{i}"), ctx.server, None)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(std::io::Error::other("the connecting thread panicked"))
                })
            })
            .collect()
    });
    let mut crowd = Vec::with_capacity(CROWD);
    for (i, peer) in connected.into_iter().enumerate() {
        match peer {
            Ok(p) => crowd.push(p),
            Err(e)
                if e.raw_os_error() == Some(nix::libc::EMFILE)
                    || e.raw_os_error() == Some(nix::libc::ENFILE) =>
            {
                return Err(Judgement::Skip(format!(
                    "this process may not open {CROWD} sockets ({e}); raise `ulimit -n`"
                )));
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                return Err(Judgement::fail(format!(
                    "c{} could not connect in {} s (is the listen backlog small?): {e}",
                    i + 1,
                    super::peer::CONNECT_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                return Err(Judgement::fail(format!(
                    "c{} could not connect: {e}",
                    i + 1
                )));
            }
        }
    }
    Ok(crowd)
}
