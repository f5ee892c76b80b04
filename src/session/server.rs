//! Who serves a session's room: selectlab's own chat server in its reactor ([`Reference`]), or
//! any other program that speaks the protocol (a guest, see `crate::check::sim::served`). The
//! session drives both the same way: it lets the server run until it waits with nothing to
//! do, runs the next step, and lets time pass when a step says so.

use std::time::Duration;

use nix::errno::Errno;

use super::SESSION_SERVER_ADDR;
use super::symptom::Failure;
use crate::addr::SockAddr;
use crate::chat::serve::{self, ChatApp, ServeConfig, ServerLog, Stats};
use crate::reactor::Reactor;
use crate::sim::Sim;
use crate::sim::interleave::{Interleaved, Peers};

/// The server side of a session.
pub trait Server {
    /// Where clients connect (`None` while it does not listen).
    fn address(&self) -> Option<SockAddr>;
    /// Lets the server run, the clients making calls between its calls, until it waits with
    /// nothing to do; it may wait up to `timeout` of virtual time for something to happen.
    /// Whether it did anything (handled an event, fired a timer, made a call).
    fn turn(
        &mut self,
        sim: &mut Sim,
        peers: &mut dyn Peers,
        timeout: Duration,
    ) -> Result<bool, Errno>;
    /// The server goes away: it closes every connection.
    fn stop(&mut self, sim: &mut Sim, peers: &mut dyn Peers);
    /// Whether it has gone away.
    fn stopped(&self) -> bool;
    /// Whether it holds the room for a slow reader (it stopped reading from everyone), and
    /// how long to let time pass for the slow-consumer rule to let it go.
    fn holding_room(&self) -> Option<Duration>;
    /// Its counters (a program selectlab cannot look inside reports none).
    fn stats(&self) -> Stats;
    /// The largest queue it held for one client (0 when it cannot be seen).
    fn peak_queue_bytes(&self) -> usize;
    /// Its log lines, for the transcript.
    fn log(&self) -> ServerLog;
    /// The most memory its process has held so far (its peak resident set), where that can
    /// be seen: another program's, not selectlab's own server, which shares selectlab's.
    fn peak_resident_bytes(&self) -> Option<u64> {
        None
    }
    /// Why it cannot go on, asked once the room has settled: it exited, spins, is blocked in
    /// a call, or did something the simulator refuses. (selectlab's own server reports its
    /// trouble as errors instead.)
    fn trouble(&self, sim: &Sim) -> Option<Failure> {
        let _ = sim;
        None
    }
}

/// selectlab's own chat server in its reactor.
pub struct Reference {
    reactor: Reactor,
    app: ChatApp,
}

impl Reference {
    /// Starts the server at [`SESSION_SERVER_ADDR`].
    pub fn start(
        sim: &mut Sim,
        backend: crate::readiness::Backend,
        serve: ServeConfig,
    ) -> Result<Reference, Errno> {
        let listener = serve::listen(sim, &address(), 128)?;
        let mut reactor = Reactor::new(sim, backend)?;
        reactor.set_bugs(serve.bugs);
        let app = ChatApp::new(&mut reactor.io(sim), listener, serve)?;
        Ok(Reference { reactor, app })
    }
}

fn address() -> SockAddr {
    SockAddr::Inet(SESSION_SERVER_ADDR.parse().expect("a valid address"))
}

impl Server for Reference {
    fn address(&self) -> Option<SockAddr> {
        Some(address())
    }

    fn turn(
        &mut self,
        sim: &mut Sim,
        peers: &mut dyn Peers,
        timeout: Duration,
    ) -> Result<bool, Errno> {
        let mut kernel = Interleaved { sim, peers };
        let turn = self
            .reactor
            .turn(&mut kernel, &mut self.app, Some(timeout))?;
        Ok(turn.events > 0 || turn.timers > 0)
    }

    fn stop(&mut self, sim: &mut Sim, peers: &mut dyn Peers) {
        let mut kernel = Interleaved { sim, peers };
        self.app.stop(&mut self.reactor.io(&mut kernel));
    }

    fn stopped(&self) -> bool {
        self.app.stopped()
    }

    fn holding_room(&self) -> Option<Duration> {
        let timeout = self.app.core().limits().slow_consumer_timeout;
        self.app
            .reading_paused()
            .then(|| timeout + Duration::from_secs(1))
    }

    fn stats(&self) -> Stats {
        self.app.stats()
    }

    fn peak_queue_bytes(&self) -> usize {
        self.app.core().peak_queue_bytes()
    }

    fn log(&self) -> ServerLog {
        self.app.log_handle()
    }
}
