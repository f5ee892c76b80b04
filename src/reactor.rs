//! A minimal deterministic reactor: one readiness [`Selector`], timers on the kernel's clock,
//! and an application that gets events in token order.
//!
//! The application is sans-IO in spirit: it owns its state, and the reactor hands it an [`Io`]
//! (the kernel, the selector, the timers) for the duration of one callback. Nothing here knows
//! which transport or backend it runs on.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::errno::Errno;

use crate::bugs::{Bug, Bugs};
use crate::kernel::{Events, Fd, Kernel, Mode};
use crate::readiness::{Backend, Event, Selector, Token};

/// Most events one turn dispatches (the wait's `max`).
pub const MAX_EVENTS_PER_TURN: usize = 1024;
/// Most timers one turn fires (the rest fire on the next turn).
pub const MAX_TIMERS_PER_TURN: usize = 1024;

/// What the application implements.
pub trait App {
    /// `token`'s descriptor is ready for `events`.
    fn on_event(&mut self, io: &mut Io<'_>, token: Token, events: Events);
    /// A timer set with [`Io::set_timer`] for `token` fired.
    fn on_timer(&mut self, io: &mut Io<'_>, token: Token) {
        let _ = (io, token);
    }
    /// Every event and timer of a turn was dispatched: the place to flush output once per
    /// readiness round rather than once per event. Not called for a wait that found nothing.
    fn after_turn(&mut self, io: &mut Io<'_>) {
        let _ = io;
    }
}

/// Timers: deadline order, ties broken by the order they were set.
#[derive(Debug, Default)]
struct Timers {
    by_deadline: BTreeMap<(Duration, u64), Token>,
    by_token: BTreeMap<Token, (Duration, u64)>,
    seq: u64,
}

impl Timers {
    fn set(&mut self, token: Token, at: Duration) {
        self.cancel(token);
        self.seq += 1;
        self.by_deadline.insert((at, self.seq), token);
        self.by_token.insert(token, (at, self.seq));
    }

    fn cancel(&mut self, token: Token) {
        if let Some(key) = self.by_token.remove(&token) {
            self.by_deadline.remove(&key);
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.by_deadline.keys().next().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: Duration) -> Option<Token> {
        let (&key, &token) = self.by_deadline.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.by_deadline.remove(&key);
        self.by_token.remove(&token);
        Some(token)
    }
}

/// What a callback may do: I/O on the kernel, (de)registrations, timers.
pub struct Io<'a> {
    /// The kernel (real or simulated).
    pub kernel: &'a mut dyn Kernel,
    /// The selector, for registrations.
    pub selector: &'a mut Selector,
    timers: &'a mut Timers,
}

impl Io<'_> {
    /// Registers `fd` under `token`.
    pub fn register(
        &mut self,
        fd: Fd,
        token: Token,
        interest: Events,
        mode: Mode,
    ) -> Result<(), Errno> {
        self.selector
            .register(self.kernel, fd, token, interest, mode)
    }

    /// Changes `token`'s interest (also re-arms a one-shot registration).
    pub fn modify(&mut self, token: Token, interest: Events, mode: Mode) -> Result<(), Errno> {
        self.selector.modify(self.kernel, token, interest, mode)
    }

    /// Stops watching `token`.
    pub fn deregister(&mut self, token: Token) -> Result<(), Errno> {
        self.selector.deregister(self.kernel, token)
    }

    /// Fires [`App::on_timer`] for `token` after `delay` (replacing its previous timer).
    pub fn set_timer(&mut self, token: Token, delay: Duration) {
        let at = self.kernel.now() + delay;
        self.timers.set(token, at);
    }

    /// Cancels `token`'s timer, if any.
    pub fn cancel_timer(&mut self, token: Token) {
        self.timers.cancel(token);
    }

    /// The kernel's clock.
    pub fn now(&self) -> Duration {
        self.kernel.now()
    }
}

/// The reactor.
#[derive(Debug)]
pub struct Reactor {
    selector: Selector,
    timers: Timers,
    events: Vec<Event>,
    bugs: Bugs,
}

/// What one turn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Turn {
    /// Events dispatched.
    pub events: usize,
    /// Timers fired.
    pub timers: usize,
}

impl Reactor {
    /// A reactor over `backend`.
    pub fn new(kernel: &mut dyn Kernel, backend: Backend) -> Result<Reactor, Errno> {
        Ok(Reactor {
            selector: Selector::new(kernel, backend)?,
            timers: Timers::default(),
            events: Vec::new(),
            bugs: Bugs::NONE,
        })
    }

    /// Switches on zoo bugs in the reactor itself (none by default).
    pub fn set_bugs(&mut self, bugs: Bugs) {
        self.bugs = bugs;
    }

    /// The handle callbacks get, for setting up before the first turn.
    pub fn io<'a>(&'a mut self, kernel: &'a mut dyn Kernel) -> Io<'a> {
        Io {
            kernel,
            selector: &mut self.selector,
            timers: &mut self.timers,
        }
    }

    /// One wait (at most `timeout`, shortened to the next timer), then every event in token
    /// order, then every due timer. EINTR is a turn with nothing to do.
    pub fn turn(
        &mut self,
        kernel: &mut dyn Kernel,
        app: &mut dyn App,
        timeout: Option<Duration>,
    ) -> Result<Turn, Errno> {
        let now = kernel.now();
        let until_timer = self.timers.next_deadline().map(|at| at.saturating_sub(now));
        let wait = match (timeout, until_timer) {
            (Some(t), Some(u)) => Some(t.min(u)),
            (t, u) => t.or(u),
        };
        self.events.clear();
        match self
            .selector
            .wait(kernel, &mut self.events, MAX_EVENTS_PER_TURN, wait)
        {
            Ok(_) => {}
            // Pistache#565 threw it, and the loop died.
            Err(Errno::EINTR) if !self.bugs.has(Bug::EpollWaitEintrFatal) => {}
            Err(e) => return Err(e),
        }
        self.events.sort_by_key(|e| e.token);
        let events = std::mem::take(&mut self.events);
        let mut turn = Turn::default();
        for e in &events {
            app.on_event(&mut self.io(kernel), e.token, e.events);
            turn.events += 1;
        }
        self.events = events;
        let now = kernel.now();
        while turn.timers < MAX_TIMERS_PER_TURN {
            let Some(token) = self.timers.pop_due(now) else {
                break;
            };
            app.on_timer(&mut self.io(kernel), token);
            turn.timers += 1;
        }
        // A wait that found nothing is not a turn: a real loop blocked in its wait would not
        // have woken, so the application gets no free look (a harness that polls with a zero
        // timeout must not hide a loop that would sleep for ever).
        if turn.events > 0 || turn.timers > 0 {
            app.after_turn(&mut self.io(kernel));
        }
        Ok(turn)
    }

    /// Turns until `done` says so, or `max_turns` have run (then `ETIMEDOUT`): every loop here
    /// is bounded.
    pub fn run_until<A: App>(
        &mut self,
        kernel: &mut dyn Kernel,
        app: &mut A,
        timeout_per_turn: Option<Duration>,
        max_turns: usize,
        done: impl Fn(&A) -> bool,
    ) -> Result<usize, Errno> {
        for turns in 0..max_turns {
            if done(app) {
                return Ok(turns);
            }
            self.turn(kernel, app, timeout_per_turn)?;
        }
        if done(app) {
            Ok(max_turns)
        } else {
            Err(Errno::ETIMEDOUT)
        }
    }

    /// Closes the selector's own descriptor (epoll), if any.
    pub fn close(self, kernel: &mut dyn Kernel) {
        if let Some(ep) = self.selector.epoll_fd() {
            let _ = kernel.close(ep);
        }
    }
}
