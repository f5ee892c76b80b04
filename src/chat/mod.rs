//! The tutorial's select chat room, done right.
//!
//! - [`framing`]: bytes to lines, whatever the split; over-long lines refused whole.
//! - [`outbound`]: a client's queue of shared, formatted lines, sent with vectored writes.
//! - [`server`]: the room, sans-IO: joins, bytes, departures and time in; actions out.
//! - [`serve`]: the room's I/O, as a reactor application on any kernel and backend.
//! - [`protocol`]: the server's lines parsed: `say`, `entered room`, `left room`.
//! - [`client`]: the chat client, standard input to the server and back.
//! - [`clock`]: `YYYY-mm-dd HH:MM:SS` from the transport's clock.
//!
//! The harness that runs a room in scripted sessions and judges it is [`crate::session`].

pub mod client;
pub mod clock;
pub mod framing;
pub mod outbound;
pub mod protocol;
pub mod serve;
pub mod server;
