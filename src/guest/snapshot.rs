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
//! second thread by then (fork copies one) or has child processes (every fork would share
//! them), and one whose second start made other calls.

use std::ffi::OsString;
use std::sync::Arc;

use selectlab_wire::Request;

use super::channel::Channel;
use super::replay::{Replay, ReplayWatch, Start, same_call};
use super::spawn::{self, Environment, Listener, Process, SpawnError};

/// A program parked at its first listen, serving forks.
pub struct Snapshot {
    start: Start,
    /// The parked program's channel, on which it takes fork orders.
    control: Channel,
    /// Killed (with everything it started) when the snapshot goes.
    _process: Process,
    /// Its directory (its standard error), kept while it runs.
    listener: Listener,
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
        if let Some(children) = children(process.pid()).filter(|c| !c.is_empty()) {
            return Err(format!(
                "it has child processes at its first listen ({children}), which every fork \
                 would share"
            ));
        }
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
            listener,
        })
    }

    /// Forks the parked program for a session: the child, its channel (replaying the start,
    /// telling `watch` how it goes) and its first request.
    pub fn fork(
        &mut self,
        listener: &Listener,
        watch: Arc<ReplayWatch>,
    ) -> Result<(Process, Channel, Request), SpawnError> {
        // What the program wrote before it was parked begins the session's standard error, as
        // it would in a fresh start.
        std::fs::copy(self.listener.stderr_path(), listener.stderr_path())
            .map_err(|e| SpawnError::Io("copying the parked program's standard error", e))?;
        let pid = self.control.order_fork(&listener.channel_path())?;
        let process = Process::forked(pid);
        let mut channel = listener.accept()?;
        channel.replay(Replay::new(&self.start, watch));
        let hello = channel.hello()?;
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

/// The child processes of process `pid`'s main thread, as `/proc` lists them.
fn children(pid: u32) -> Option<String> {
    let listed = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(listed.trim().to_string())
}

/// How many threads process `pid` runs.
fn threads(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}
