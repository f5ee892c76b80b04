//! selectlab: the seed's socket and `select` lesson as a protocol-testing suite with a reference
//! implementation. One boundary trait stands for "the kernel"; the real Linux kernel and a
//! deterministic simulator implement it; everything else is written once above it.
//!
//! A map of the code:
//!
//! - [`kernel`]: the boundary — the [`kernel::Kernel`] trait (descriptor-level socket calls,
//!   poll, select, epoll), [`kernel::Fd`], [`kernel::Events`], [`kernel::SockOpt`].
//! - [`real`]: the kernel through `nix` (the oracle).
//! - [`sim`]: the simulator — Linux's socket and readiness rules in memory, virtual time, one
//!   decision source (faithful, seeded adversary, fuzzer bytes), a transcript of every call.
//! - [`error`], [`addr`]: the seed's exception table (`error`, `herror`, `gaierror`, `timeout`)
//!   and addresses, printed as Python prints them.
//! - [`socket`]: the seed's Python-style socket API over any kernel.
//! - [`pairs`]: building connected endpoints on any kernel.
//! - [`readiness`]: one selector over select, poll and epoll (level, edge, one-shot).
//! - [`reactor`]: a minimal deterministic reactor on top.
//! - [`chat`]: the seed's chat room — sans-IO server, its I/O, the client, scripted sessions.
//! - [`check`]: `selectlab check`, conformance checks against any chat server on real sockets.
//! - [`programs`]: the seed's other programs (good-bye TCP, UDP echo, level vs edge) and demos.
//! - [`proxy`]: `selectlab proxy`, the lawful adversary on real TCP traffic.
//! - [`scenario`]: scenario scripts (format v1) on either transport.
//! - [`diff`], [`fuzzing`]: the differential runner and the fuzz targets' logic.
//! - [`zoo`]: real bugs from public projects as runtime switches in the reference programs,
//!   and the detectors that must catch each one.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod chat;
pub mod check;
pub mod diff;
pub mod error;
pub mod fuzzing;
pub mod kernel;
pub mod pairs;
pub mod programs;
pub mod proxy;
pub mod reactor;
pub mod readiness;
pub mod real;
pub mod scenario;
pub mod sim;
pub mod socket;
pub mod zoo;
