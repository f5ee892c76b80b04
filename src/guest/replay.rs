//! A program's start, recorded and replayed: the calls it makes before its first `listen`, each
//! with the reply it was given. A channel records them in a session that starts the program;
//! a session that starts as a fork of the parked program ([`super::snapshot`]) replays them to
//! its own simulator, answering each again, and the child goes on from the `listen`. Replies
//! that come out the same prove the fork faithful: its transcript is the one a fresh start
//! would give. One that differs (the adversary shortened a send the program made before it
//! listened, say) is a divergence, and the session is started afresh instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use selectlab_wire::{Op, Reply, Request};

/// Most calls a start may make before its first listen and still be recorded: a longer start is
/// run afresh for each session.
pub const MAX_START_CALLS: usize = 100_000;

/// The calls a program made before its first listen, each with its reply, and that listen.
#[derive(Debug, Clone)]
pub struct Start {
    /// Each call and its reply, the hello first.
    pub calls: Vec<(Request, Reply)>,
    /// The first `listen`: where the program is parked, and where each fork goes on.
    pub listen: Request,
}

/// Where a recording leaves the start it saw, once the program listens.
pub type StartSink = Arc<Mutex<Option<Start>>>;

/// A start being recorded.
pub(crate) struct Recording {
    calls: Vec<(Request, Reply)>,
    asked: Option<Request>,
    sink: StartSink,
}

impl Recording {
    pub(crate) fn new(sink: StartSink) -> Recording {
        Recording {
            calls: Vec::new(),
            asked: None,
            sink,
        }
    }

    /// Notes the program's request: true when the recording is over (it listens, or its start
    /// is longer than [`MAX_START_CALLS`] and is not kept).
    pub(crate) fn asked(&mut self, req: &Request) -> bool {
        if req.op == Op::Listen {
            let start = Start {
                calls: std::mem::take(&mut self.calls),
                listen: req.clone(),
            };
            *self
                .sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(start);
            return true;
        }
        if self.calls.len() >= MAX_START_CALLS {
            return true;
        }
        self.asked = Some(req.clone());
        false
    }

    /// Notes the reply to the request last asked.
    pub(crate) fn answered(&mut self, reply: &Reply) {
        if let Some(req) = self.asked.take() {
            self.calls.push((req, reply.clone()));
        }
    }
}

/// What a replay tells the session it starts: whether it played out to the listen, and whether
/// a reply came out otherwise than recorded.
#[derive(Debug, Default)]
pub struct ReplayWatch {
    played: AtomicBool,
    diverged: AtomicBool,
}

impl ReplayWatch {
    /// Whether a reply came out otherwise than recorded.
    pub fn diverged(&self) -> bool {
        self.diverged.load(Ordering::Relaxed)
    }

    /// Whether the whole start was replayed, its listen included.
    pub fn played_out(&self) -> bool {
        self.played.load(Ordering::Relaxed)
    }
}

/// A start being replayed to a forked program's session.
pub(crate) struct Replay {
    calls: VecDeque<(Request, Reply)>,
    listen: Option<Request>,
    owed: Option<Reply>,
    watch: Arc<ReplayWatch>,
}

impl Replay {
    /// Replays `start`, telling `watch` how it goes.
    pub(crate) fn new(start: &Start, watch: Arc<ReplayWatch>) -> Replay {
        Replay {
            calls: start.calls.iter().cloned().collect(),
            listen: Some(start.listen.clone()),
            owed: None,
            watch,
        }
    }

    /// The program's next request as recorded (its listen last); None once played out, or
    /// once a reply diverged.
    pub(crate) fn next(&mut self) -> Option<Request> {
        if self.diverged() {
            return None;
        }
        match self.calls.pop_front() {
            Some((req, reply)) => {
                self.owed = Some(reply);
                Some(req)
            }
            None => {
                let listen = self.listen.take();
                self.watch.played.store(true, Ordering::Relaxed);
                listen
            }
        }
    }

    /// Whether a reply came out otherwise than recorded.
    pub(crate) fn diverged(&self) -> bool {
        self.watch.diverged()
    }

    /// Whether the next reply is one the program was given already (so it is compared, not
    /// sent).
    pub(crate) fn owes(&self) -> bool {
        self.owed.is_some()
    }

    /// Compares `reply` with the recorded one.
    pub(crate) fn answered(&mut self, reply: &Reply) {
        if self.owed.take().is_some_and(|recorded| recorded != *reply) {
            self.watch.diverged.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether two starts made the same call: the same request, but for the hello's pid and thread
/// id (a fresh process has fresh ones).
pub(crate) fn same_call(a: &Request, b: &Request) -> bool {
    match (a.op, b.op) {
        (Op::Hello, Op::Hello) => a.data == b.data,
        _ => a == b,
    }
}
