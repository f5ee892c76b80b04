//! The tutorial's programs, written once over [`crate::socket::Socket`], so each runs on the real
//! kernel and in the simulator alike.
//!
//! - [`goodbye`]: the TCP server that answers the first message and hangs up, and its client.
//! - [`udp`]: the UDP echo pair.
//! - [`lt_vs_et`]: level- vs edge-triggered notification, one writer and one reader.
//! - [`bench`](mod@bench): `selectlab bench`, the simulator's speed on the chat workload.
//! - [`bench_guest`]: `selectlab bench guest`, a foreign program's speed inside the simulator.
//! - [`bench_readiness`]: `selectlab bench readiness`, one wait's cost for select, poll and epoll.
//! - [`chat_cli`]: the chat room's server and client on real sockets.
//! - [`demo`]: the README's first command, a simulated session printed as a transcript.
//! - [`load`]: `selectlab load`, a real-socket load generator for any chat server.

pub mod bench;
pub mod bench_guest;
pub mod bench_readiness;
pub mod chat_cli;
pub mod demo;
pub mod goodbye;
pub mod load;
pub mod lt_vs_et;
pub mod udp;
