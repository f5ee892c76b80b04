//! A program parked at its first `listen`, from which each session starts as a fork: one
//! start of the interpreter for a whole check, not one per session.
//!
//! The program is started once more and given, call for call, the replies a recorded start
//! ([`Start`]) was given; at its listen selectlab parks it (the shim's fork server). For each
//! session it forks a child that goes on from that listen on a channel of its own, while the
//! session's simulator is given the recorded calls again (`Replay`): the transcript is the
//! one a fresh start would give, or the session starts afresh instead.
//!
//! Refused (each session then starts afresh, and the report says why): a program that runs a
//! second thread by then (fork copies one), and one whose second start made other calls.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use selectlab_wire::Request;

use super::replay::{Replay, Start, same_call};
use super::spawn::{self, Channel, Environment, Listener, Process, SpawnError};

/// A program parked at its first listen, serving forks.
pub struct Snapshot {
    start: Start,
    /// The parked program's channel, on which it takes fork orders.
    control: Channel,
    /// Killed (with everything it started) when the snapshot goes.
    _process: Process,
    /// Its directory (its standard error), kept while it runs.
    _listener: Listener,
}

impl Snapshot {
    /// Starts `command` and parks it at the listen of `start`, or says why it cannot be.
    pub fn park(command: &[OsString], env: Environment, start: Start) -> Result<Snapshot, String> {
        let failed = |e: SpawnError| format!("its second start failed: {e}");
        let shim = spawn::shim_path().map_err(failed)?;
        let listener = Listener::new().map_err(failed)?;
        let mut process = listener
            .spawn(command, env, &shim, None, true)
            .map_err(failed)?;
        let mut control = listener.accept().map_err(failed)?;
        for (i, (recorded, reply)) in start.calls.iter().enumerate() {
            expect(&mut control, &mut process, recorded, i)?;
            control.reply(reply);
        }
        expect(&mut control, &mut process, &start.listen, start.calls.len())?;
        match threads(process.pid()) {
            Some(1) => {}
            Some(n) => {
                return Err(format!(
                    "it runs {n} threads at its first listen, and a fork would copy one"
                ));
            }
            None => return Err("its threads cannot be counted (/proc)".to_string()),
        }
        control.park();
        Ok(Snapshot {
            start,
            control,
            _process: process,
            _listener: listener,
        })
    }

    /// Forks the parked program for a session: the child, its channel (replaying the start,
    /// so that a reply that comes out otherwise sets `diverged`) and its first request.
    pub fn fork(
        &mut self,
        listener: &Listener,
        diverged: Arc<AtomicBool>,
    ) -> Result<(Process, Channel, Request), SpawnError> {
        let pid = self.control.order_fork(&listener.channel_path())?;
        let process = Process::forked(pid);
        let mut channel = listener.accept()?;
        channel.replay(Replay::new(&self.start, diverged));
        let hello = channel
            .next_request(None)?
            .ok_or_else(|| SpawnError::Unfit("the recorded start is empty".to_string()))?;
        Ok((process, channel, hello))
    }
}

/// Reads the parked-to-be program's next call, which must be `recorded` (call `i`).
fn expect(
    control: &mut Channel,
    process: &mut Process,
    recorded: &Request,
    i: usize,
) -> Result<(), String> {
    let got = control
        .next_request(Some(process))
        .map_err(|e| format!("its second start failed: {e}"))?
        .ok_or_else(|| "it exited during its second start".to_string())?;
    if same_call(&got, recorded) {
        return Ok(());
    }
    Err(format!(
        "its second start went otherwise at call {i} ({:?}, not {:?})",
        got.op, recorded.op
    ))
}

/// How many threads process `pid` runs.
fn threads(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}
