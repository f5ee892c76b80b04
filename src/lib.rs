//! selectlab: the tutorial's socket and `select` lesson as a protocol-testing suite with a reference
//! implementation. One boundary trait stands for "the kernel"; the real Linux kernel and a
//! deterministic simulator implement it; everything else is written once above it.
//!
//! A map of the code, in layers from the bottom up. A module may use the modules of its own
//! layer and of the layers below it, never one above: a reader of the reactor never meets the
//! zoo, and the simulator never knows which program runs on it.
//!
//! 1. Values and switches:
//!    - [`error`], [`addr`]: the tutorial's exception table (`error`, `herror`, `gaierror`,
//!      `timeout`) and addresses, printed as Python prints them.
//!    - [`bugs`]: the zoo's switches ([`bugs::Bug`], [`bugs::Bugs`]), which the reference
//!      programs consult at the line where each original went wrong; off unless a harness turns
//!      one on.
//! 2. The boundary: [`kernel`] — the [`kernel::Kernel`] trait (descriptor-level socket calls,
//!    poll, select, epoll), [`kernel::Fd`], [`kernel::Events`], [`kernel::SockOpt`].
//! 3. The two kernels:
//!    - [`real_kernel`]: the kernel through `nix` (the oracle).
//!    - [`sim`]: the simulator — Linux's socket and readiness rules in memory, virtual time,
//!      one decision source (faithful, seeded adversary, fuzzer bytes), a transcript of every
//!      call.
//! 4. Above any kernel:
//!    - [`socket`]: the tutorial's Python-style socket API.
//!    - [`endpoints`]: building connected endpoints (TCP and UDP pairs, listeners, a closed
//!      port) on any kernel.
//!    - [`load`]: `selectlab load`, a real-socket load generator for any chat server.
//!    - [`readiness`]: one selector over select, poll and epoll (level, edge, one-shot).
//! 5. Drivers and runners:
//!    - [`reactor`]: a minimal deterministic reactor on top of the selector.
//!    - [`scenario`]: scenario scripts (format v1) on either transport.
//!    - [`differential`]: the same operations on the kernel and in the simulator, compared.
//!    - [`proxy`]: `selectlab proxy`, the lawful adversary on real TCP traffic.
//!    - [`pcap`]: the simulator's capture written as a pcap file.
//! 6. The reference program: [`chat`] — the tutorial's chat room (sans-IO server, its I/O on
//!    the reactor, the client).
//! 7. Above the room, side by side:
//!    - [`session`]: the harness — scripted sessions of any chat server in the simulator
//!      behind one `Server` boundary, the schedules and the fuzz script, the properties that
//!      judge them, the kinds of fault a failure shows, the one shrink every detector uses,
//!      and the dialects of other servers.
//!    - [`guest`]: other people's unmodified programs on the simulator, through the preloaded
//!      shim (`shim/`; its messages in `wire/`, which cross in the shared-memory slot of
//!      `slot/`: those two crates hold the project's only `unsafe` code), and a program
//!      parked at its first listen to be forked for each session.
//! 8. The tutorial's programs and the fuzz targets' logic: [`programs`] (good-bye TCP, UDP
//!    echo, level vs edge, the chat room on real sockets, the demo), [`fuzzing`].
//! 9. The tools that judge programs: [`check`] (`selectlab check`: conformance checks against
//!    any chat server on real sockets, and `check --sim`, a guest judged by the harness),
//!    [`zoo`] (the catalogue's provenance and the detectors that must catch every switched-on
//!    bug) and [`fuzz_campaign`] (cargo-fuzz runs, timed and read, for `bench fuzz` and
//!    `zoo --fuzz`); [`view`] (`selectlab view`, a transcript drawn as lanes and arrows, as
//!    HTML or SVG).
//!
//! 10. The command line: [`cli`], one module per subcommand (its arguments and its run; the
//!     benchmarks' bodies in [`cli::bench`]), on top of them all; `src/main.rs` only calls
//!     [`cli::main`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod bugs;
pub mod chat;
pub mod check;
pub mod cli;
pub mod differential;
pub mod endpoints;
pub mod error;
pub mod fuzz_campaign;
pub mod fuzzing;
pub mod guest;
pub mod json;
pub mod kernel;
pub mod load;
pub mod pcap;
pub mod programs;
pub mod proxy;
pub mod reactor;
pub mod readiness;
pub mod real_kernel;
pub mod scenario;
pub mod session;
pub mod sim;
pub mod socket;
pub mod view;
pub mod zoo;
