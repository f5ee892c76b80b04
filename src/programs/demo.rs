//! `selectlab demo`: the tutorial's chat room with three clients, simulated and printed as a
//! transcript; `selectlab demo goodbye`: the good-bye exchange, three clients in turn, with the
//! program's log and then every kernel call.

use std::io::Write;

use crate::addr::Target;
use crate::error::SockError;
use crate::programs::goodbye::{self, Reply};
use crate::session::{Outcome, Session, SessionConfig, Step};
use crate::sim::capture::Capture;
use crate::sim::decide::{Adversity, Decider};
use crate::sim::{Sim, SimConfig};
use crate::socket::{Net, Socket, share};

/// The demo's server address inside the simulator (the tutorial's port, on loopback).
pub const DEMO_ADDR: &str = "127.0.0.1:33333";

/// What each demo client says.
pub const DEMO_MESSAGES: [&str; 3] = ["hello from client 1", "hi, it's client 2", "client 3 here"];

/// What the chat demo's clients do.
pub fn chat_script() -> Vec<Step> {
    let say = |n: usize, t: &str| Step::Say(n, t.as_bytes().to_vec());
    vec![
        Step::Join(0),
        Step::Join(1),
        say(0, "hello, is anyone here?"),
        Step::Join(2),
        say(1, "hi! c2 here"),
        say(2, "and c3, good evening"),
        Step::Sleep(std::time::Duration::from_secs(61)),
        say(0, "a minute later: I have to go"),
        Step::Exit(0),
        say(1, "bye c1"),
        Step::Exit(2),
        Step::Exit(1),
    ]
}

/// Who runs the demo's kernel: faithful Linux (None), or the lawful adversary with this seed.
pub type Adversary = Option<u64>;

/// How a demo's header names its kernel.
fn kernel_words(adversary: Adversary) -> String {
    match adversary {
        None => "faithful Linux".to_string(),
        Some(seed) => format!("the lawful adversary, seed {seed}"),
    }
}

/// The chat demo: three clients in the simulated room, on faithful Linux or under the lawful
/// adversary (short reads and writes, EINTR and spurious wakeups).
pub fn chat(adversary: Adversary, out: &mut dyn Write) -> Result<(), SockError> {
    let outcome = chat_session(adversary, false)?;
    let _ = writeln!(
        out,
        "# selectlab demo: the tutorial's select chat room, three clients, simulated"
    );
    let _ = writeln!(
        out,
        "# {}; virtual time from 2026-01-01 00:00:00 UTC; same seed, same bytes\n",
        kernel_words(adversary)
    );
    let _ = write!(out, "{}", outcome.transcript);
    Ok(())
}

/// The chat demo's session; with `detail`, its transcript lists every kernel call and its
/// traffic is captured (the same run as without: same seed, same calls).
pub fn chat_session(adversary: Adversary, detail: bool) -> Result<Outcome, SockError> {
    let decide = match adversary {
        None => Decider::faithful(),
        Some(seed) => Decider::seeded(
            seed,
            Adversity {
                spurious_per_mille: 100,
                defer_per_mille: 300,
                ..Adversity::PARTIAL_IO
            },
        ),
    };
    let session = Session::new(SessionConfig {
        decide,
        kernel_calls: detail,
        capture: detail,
        ..SessionConfig::default()
    })?;
    Ok(session.run(&chat_script())?)
}

/// Runs the good-bye demo, on faithful Linux or under the lawful adversary (short reads and
/// writes), and writes the transcript; its traffic, when `capture`.
pub fn run(adversary: Adversary, out: &mut dyn Write, capture: bool) -> Result<Capture, SockError> {
    let decide = match adversary {
        None => Decider::faithful(),
        Some(seed) => Decider::seeded(seed, Adversity::PARTIAL_IO),
    };
    let config = SimConfig {
        capture,
        ..SimConfig::default()
    };
    let sim = share(Sim::new(config, decide));
    let net: Net = sim.clone();
    let target = Target::parse(DEMO_ADDR)?;
    let mut log = Vec::new();
    let listener = goodbye::listen(&net, &target)?;
    let _ = writeln!(log, "i'm waiting for connection...");
    for message in DEMO_MESSAGES {
        let client = Socket::new(&net, listener.family(), crate::addr::SockType::Stream)?;
        client.connect(&target)?;
        client.sendall(message.as_bytes())?;
        client.shutdown(crate::kernel::Shutdown::Write)?;
        goodbye::serve_one(&listener, &mut log)?;
        let reply = goodbye::read_reply(&client)?;
        let text = match reply {
            Reply::GoodBye(r) | Reply::HungUp(r) => String::from_utf8_lossy(&r).into_owned(),
        };
        let _ = writeln!(log, "client got: {text}");
    }
    let _ = writeln!(
        out,
        "# selectlab demo: the tutorial's good-bye server and three clients, simulated"
    );
    let _ = writeln!(
        out,
        "# {}; virtual time; every kernel call below is replayable\n",
        kernel_words(adversary)
    );
    let _ = out.write_all(&log);
    let _ = writeln!(out, "\n# kernel transcript");
    let _ = write!(out, "{}", sim.borrow().transcript());
    Ok(sim.borrow().capture().clone())
}
