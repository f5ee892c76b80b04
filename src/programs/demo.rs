//! `selectlab demo`: the good-bye exchange of the seed, three clients in turn, run in the
//! simulator and printed as a transcript (the program's log, then every kernel call).

use std::io::Write;

use crate::addr::Target;
use crate::error::SockError;
use crate::programs::goodbye::{self, Reply};
use crate::sim::decide::{Adversity, Decider};
use crate::sim::{Sim, SimConfig};
use crate::socket::{Net, Socket, share};

/// The demo's server address inside the simulator (the seed's port, on loopback).
pub const DEMO_ADDR: &str = "127.0.0.1:33333";

/// What each demo client says.
pub const DEMO_MESSAGES: [&str; 3] = ["hello from client 1", "hi, it's client 2", "client 3 here"];

/// Runs the demo with a seed (0 is faithful Linux; any other seed adds the lawful adversary's
/// short reads and writes) and writes the transcript.
pub fn run(seed: u64, out: &mut dyn Write) -> Result<(), SockError> {
    let decide = if seed == 0 {
        Decider::faithful()
    } else {
        Decider::seeded(seed, Adversity::PARTIAL_IO)
    };
    let sim = share(Sim::new(SimConfig::default(), decide));
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
        "# selectlab demo: the seed's good-bye server and three clients, simulated"
    );
    let _ = writeln!(
        out,
        "# seed {seed}; virtual time; every kernel call below is replayable\n"
    );
    let _ = out.write_all(&log);
    let _ = writeln!(out, "\n# kernel transcript");
    let _ = write!(out, "{}", sim.borrow().transcript());
    Ok(())
}
