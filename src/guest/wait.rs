//! What every answer of a waiting program shares: why a run stops ([`Halt`]), how a wait lets
//! the peers act first ([`settle`]), the bounds on waiting, and timeouts on the wire.

use std::time::Duration;

use selectlab_wire::Reply;

use crate::sim::Sim;
use crate::sim::interleave::{Interleaved, Peers, run_peers};

/// An answer to one request, or why the run cannot go on.
pub type Answered = Result<Reply, Halt>;

/// Most times one blocking call waits and retries (each wait lets virtual time pass) before
/// the run is stopped.
pub const MAX_BLOCKING_RETRIES: usize = 1 << 16;

/// Why a run cannot go on with the program's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The call cannot be simulated faithfully (the message says which and why).
    Refuse(String),
    /// The run is over: the program waits for something that can never happen.
    Stop(String),
}

/// Most rounds of the peers one wait lets run before it waits in the simulator.
pub const MAX_SETTLE_ROUNDS: usize = 1 << 16;

/// What a waiting program experiences: it sleeps while its peers act. The peers run (at least
/// once, as between any two calls) until `ready` holds or none of them can run; only then
/// does the program's wait go to the simulator, which moves virtual time if nothing is ready.
pub fn settle(k: &mut Interleaved<'_>, ready: impl Fn(&Sim) -> bool) {
    for _ in 0..MAX_SETTLE_ROUNDS {
        run_peers(k.sim, k.peers);
        if ready(k.sim) {
            return;
        }
        if !any_runnable(k.sim, k.peers) {
            return;
        }
    }
}

/// Whether any of the peers can run now.
pub fn any_runnable(sim: &mut Sim, peers: &mut dyn Peers) -> bool {
    let candidates = peers.candidates(sim);
    candidates.into_iter().any(|n| peers.runnable(sim, n))
}

/// A duration of `ns` nanoseconds; negative is none (wait for ever).
pub fn timeout_of_ns(ns: i64) -> Option<Duration> {
    u64::try_from(ns).ok().map(Duration::from_nanos)
}
