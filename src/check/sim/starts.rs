//! How each of a check's sessions starts the program: as a fork of it parked at its first
//! listen ([`Snapshot`]), or afresh. The first session starts it afresh and records its start;
//! the program is then started once more and parked, and each later session is a fork of it,
//! given the recorded start again so that its transcript is a fresh start's. Where that cannot
//! be (a second thread, a start that goes otherwise, `--fresh-starts`), every session starts
//! afresh, and [`Starts::summary`] says why.

use std::cell::RefCell;
use std::ffi::OsString;
use std::sync::Arc;

use super::served::GuestServer;
use crate::guest::replay::{MAX_START_CALLS, ReplayWatch, StartSink};
use crate::guest::snapshot::Snapshot;
use crate::guest::spawn::{Launch, SpawnError};
use crate::session::{Failure, Server, Session, SessionConfig, Symptom};
use crate::sim::Sim;

/// How a failure starts when the program never ran: nothing to judge (exit status 2).
const CANNOT_START: &str = "the program could not start";

/// The program under check, and how its sessions start.
pub struct Starts {
    command: Vec<OsString>,
    launch: Launch,
    state: RefCell<State>,
    counts: RefCell<Counts>,
}

enum State {
    /// No session has run: the next starts afresh and records its start.
    First,
    /// Sessions are forks of the parked program.
    Forking(Box<Snapshot>),
    /// Sessions start afresh, for this reason.
    Fresh(String),
}

#[derive(Default)]
struct Counts {
    fresh: u32,
    forked: u32,
}

impl Starts {
    /// `command` started as `launch` says; with `fresh`, every session starts it afresh.
    pub fn new(command: &[OsString], launch: &Launch, fresh: bool) -> Starts {
        let state = match fresh {
            true => State::Fresh("--fresh-starts".to_string()),
            false => State::First,
        };
        Starts {
            command: command.to_vec(),
            launch: launch.clone(),
            state: RefCell::new(state),
            counts: RefCell::default(),
        }
    }

    /// How the sessions so far started, in words.
    pub fn summary(&self) -> String {
        let Counts { fresh, forked } = *self.counts.borrow();
        let sessions = match fresh + forked {
            1 => "1 session".to_string(),
            n => format!("{n} sessions"),
        };
        let both = format!(
            "{sessions}: {fresh} started afresh, {forked} forked from the program parked at its \
             first listen"
        );
        match (&*self.state.borrow(), forked) {
            (State::Fresh(why), 0) if fresh == 1 => format!("{sessions}, started afresh: {why}"),
            (State::Fresh(why), 0) => format!("{sessions}, each started afresh: {why}"),
            (State::Fresh(why), _) => format!("{both}, then afresh: {why}"),
            _ => both,
        }
    }

    /// Starts a session with the program as its server.
    pub fn session(&self, config: SessionConfig) -> Result<Session, Failure> {
        let mut state = self.state.borrow_mut();
        if let State::Forking(snapshot) = &mut *state {
            match self.forked(config.clone(), snapshot) {
                Ok(opened) => {
                    self.counts.borrow_mut().forked += 1;
                    return opened;
                }
                Err(why) => *state = State::Fresh(why),
            }
        }
        self.counts.borrow_mut().fresh += 1;
        if !matches!(*state, State::First) {
            return self.fresh(config, None);
        }
        let sink = StartSink::default();
        let opened = self.fresh(config, Some(sink.clone()));
        let start = sink.lock().unwrap_or_else(|p| p.into_inner()).take();
        *state = match start {
            Some(start) => match Snapshot::park(&self.command, self.launch.env, start) {
                Ok(snapshot) => State::Forking(Box::new(snapshot)),
                Err(why) => State::Fresh(why),
            },
            None => State::Fresh(format!(
                "its first session saw no listen to park it at, within its first \
                 {MAX_START_CALLS} calls"
            )),
        };
        opened
    }

    /// A session with the program started afresh (its start recorded into `record`).
    fn fresh(&self, config: SessionConfig, record: Option<StartSink>) -> Result<Session, Failure> {
        open(config, |sim| {
            GuestServer::start(sim, &self.command, &self.launch, record)
        })
    }

    /// A session with the program forked from `snapshot`; `Err` (why) if the fork could not be
    /// made faithfully: the session is to start afresh.
    fn forked(
        &self,
        config: SessionConfig,
        snapshot: &mut Snapshot,
    ) -> Result<Result<Session, Failure>, String> {
        let watch = Arc::new(ReplayWatch::default());
        let mut failed = None;
        let opened = open(config, |sim| {
            let forked =
                GuestServer::fork(sim, &self.command, &self.launch, snapshot, watch.clone());
            if let Err(e) = &forked {
                failed = Some(e.to_string());
            }
            forked
        });
        if let Some(why) = failed {
            return Err(format!("a fork of the parked program failed: {why}"));
        }
        if watch.diverged() {
            return Err(
                "a forked session's start came out otherwise than the recorded one (the \
                 adversary shortened a send or a receive it made before it listened, say)"
                    .to_string(),
            );
        }
        if !watch.played_out() {
            return Err(
                "a forked session's start had not reached its listen when the session's steps \
                 began"
                    .to_string(),
            );
        }
        Ok(opened)
    }
}

/// Opens a session whose server `start` starts.
fn open(
    config: SessionConfig,
    start: impl FnOnce(&mut Sim) -> Result<GuestServer, SpawnError>,
) -> Result<Session, Failure> {
    let mut started = None;
    let session = Session::with_server(config, |sim| match start(sim) {
        Ok(server) => Ok(Box::new(server) as Box<dyn Server>),
        Err(e) => {
            started = Some(e.to_string());
            Err(nix::errno::Errno::ECHILD)
        }
    });
    session.map_err(|e| match started.take() {
        Some(why) => Failure::new(Symptom::CannotStart, format!("{CANNOT_START}: {why}")),
        None => Failure::new(
            Symptom::Hang,
            format!("the program's start did not settle ({e}): a busy loop or a hang"),
        ),
    })
}
