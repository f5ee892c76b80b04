//! The tutorial's select chat room, done right.
//!
//! - [`framing`]: bytes to lines, whatever the split; over-long lines refused whole.
//! - [`outbound`]: a client's queue of shared, formatted lines, sent with vectored writes.
//! - [`server`]: the room, sans-IO: joins, bytes, departures and time in; actions out.
//! - [`serve`]: the room's I/O, as a reactor application on any kernel and backend.
//! - [`protocol`]: the server's lines parsed: `say`, `entered room`, `left room`.
//! - [`dialect`]: another server's wording, learned from a calm run or read from a file, and
//!   the lines its clients heard read back into who said what.
//! - [`check`]: the chat properties, as a checker over a finished session.
//! - [`client`]: the chat client, standard input to the server and back.
//! - [`session`]: scripted sessions in the simulator, with transcripts for people.
//! - [`clock`]: `YYYY-mm-dd HH:MM:SS` from the transport's clock.

pub mod check;
pub mod client;
pub mod clock;
pub mod dialect;
pub mod framing;
pub mod outbound;
pub mod protocol;
pub mod schedules;
pub mod serve;
pub mod server;
pub mod session;
