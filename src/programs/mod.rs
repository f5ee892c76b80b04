//! The tutorial's programs, written once over [`crate::socket::Socket`], so each runs on the real
//! kernel and in the simulator alike.
//!
//! - [`goodbye`]: the TCP server that answers the first message and hangs up, and its client.
//! - [`udp`]: the UDP echo pair.
//! - [`lt_vs_et`]: level- vs edge-triggered notification, one writer and one reader.
//! - [`chat_room`]: the chat room's server and client on real sockets.
//! - [`demo`]: the README's first command, a simulated session printed as a transcript.

pub mod chat_room;
pub mod demo;
pub mod goodbye;
pub mod lt_vs_et;
pub mod udp;
