//! `check ADDR -- CMD`: the server started afresh for each check, on real sockets, so that a
//! server that dies is pinned to the check that killed it, and every other check still meets
//! a live server. Each start waits (at most [`START_TIMEOUT`]) until the sentinel joins the
//! room; each stop ends the server's whole process group.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sentinel::Sentinel;
use crate::guest::spawn::{code_of, describe_end, tail_lines};

/// Longest a started server may take to take its first connection.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a starting server is tried.
const TRY_EVERY: Duration = Duration::from_millis(20);
/// Lines of a dead server's standard error a report shows.
const STDERR_TAIL_LINES: usize = 20;

/// A server selectlab started for one check.
pub struct Started {
    child: Child,
    /// Its standard error, kept for the report if it dies.
    stderr: tempfile::NamedTempFile,
}

impl Started {
    /// Starts `command` and waits until `server` takes the sentinel's connections (`tag` marks
    /// its probes).
    pub fn start(
        command: &[OsString],
        server: SocketAddr,
        tag: &str,
    ) -> Result<(Started, Sentinel), String> {
        let (program, args) = command.split_first().ok_or("no program to run")?;
        let stderr = tempfile::NamedTempFile::new()
            .map_err(|e| format!("a file for its standard error: {e}"))?;
        let err = stderr
            .reopen()
            .map_err(|e| format!("a file for its standard error: {e}"))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.to_string_lossy()))?;
        let mut started = Started { child, stderr };
        let until = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(sentinel) = Sentinel::join(server, tag) {
                return Ok((started, sentinel));
            }
            if let Some(end) = started.ended() {
                return Err(format!("the server ended before it listened: {end}"));
            }
            if Instant::now() >= until {
                return Err(format!(
                    "the server took no connection at {server} within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(TRY_EVERY);
        }
    }

    /// How it ended, with its last words, if it has within `wait` (a server that closed every
    /// connection is usually exiting).
    pub fn ended_within(&mut self, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            if let Some(end) = self.ended() {
                return Some(end);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(TRY_EVERY);
        }
    }

    /// How it ended, with its last words, if it has.
    pub fn ended(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let words = tail_lines(self.stderr.path(), STDERR_TAIL_LINES);
        Some(describe_end(code_of(status), &words))
    }

    /// Stops it and everything it started.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
