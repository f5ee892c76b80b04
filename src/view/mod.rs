//! `selectlab view`: a transcript as a picture. One lane per host (the program under test,
//! `c1`…`cN`), one row per call or note in the transcript's order with its virtual time, an
//! arrow for each byte range from the send that wrote it to the recv that took it, the
//! adversary's choices flagged, and a failing run's last call marked.
//!
//! - [`parse`]: the transcript's text (a `sim --transcript` file, an insta snapshot, a saved
//!   `check --sim` or `zoo` report) back into a [`Timeline`].
//! - `draw`: the timeline as SVG ([`svg`]), and as a self-contained HTML page ([`page`]) with
//!   filters by host and kind and a text search; nothing is fetched from the network.

mod draw;
pub mod parse;

pub use draw::{page, svg};

/// Most events a picture holds: a longer transcript shows its first tenth of this and its
/// last nine tenths (where a failure is), and says how many it left out.
pub const MAX_VIEW_EVENTS: usize = 20_000;
/// Largest transcript file `selectlab view` reads.
pub const MAX_VIEW_INPUT_BYTES: u64 = 512 << 20;

/// What the picture shows.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    /// Host names, one lane each, the program under test first.
    pub lanes: Vec<String>,
    /// Calls and notes in the transcript's order.
    pub events: Vec<Event>,
    /// Deliveries: bytes from a send to the recv that took them.
    pub arrows: Vec<Arrow>,
    /// The lines around the transcript (verdicts, replay line, shrunk steps, stderr).
    pub header: Vec<String>,
    /// A check or detector failed in this report.
    pub failed: bool,
    /// Events left out of the middle of a long transcript.
    pub elided: usize,
    /// Where they were left out (the index of the first event after the gap).
    pub elided_after: usize,
}

/// One call or note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its host's lane.
    pub lane: usize,
    /// Virtual time, in microseconds.
    pub at_us: u64,
    /// What kind of call.
    pub kind: Kind,
    /// The record's text (after the time and the host).
    pub text: String,
    /// The call failed (its result is an errno).
    pub error: bool,
    /// The adversary's choice, if it made one.
    pub choice: Option<String>,
    /// The last call of a failing run.
    pub failure: bool,
}

/// Kinds of event, for colours and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// socket, bind, listen, connect, accept, shutdown, close and the like.
    Connection,
    /// send, recv and their kin.
    Data,
    /// poll, select, epoll_wait: readiness waits.
    Wait,
    /// Anything else the simulator records (options, names, timers).
    Other,
    /// A session's note (a client types, receives, connects) or the server's log.
    Note,
}

impl Kind {
    fn of_call(name: &str) -> Kind {
        match name {
            "send" | "recv" | "sendto" | "recvfrom" | "ioctl_fionread" => Kind::Data,
            "poll" | "select" | "epoll_wait" => Kind::Wait,
            "socket" | "socketpair" | "bind" | "listen" | "connect" | "accept" | "shutdown"
            | "close" | "dup" | "pipe" | "eventfd" => Kind::Connection,
            _ => Kind::Other,
        }
    }

    /// Its name in the page's filters and classes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Data => "data",
            Kind::Wait => "wait",
            Kind::Other => "other",
            Kind::Note => "note",
        }
    }
}

/// Bytes a recv took from one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrow {
    /// The send (an index into [`Timeline::events`]).
    pub from: usize,
    /// The recv.
    pub to: usize,
    /// How many of its bytes.
    pub bytes: u64,
}
