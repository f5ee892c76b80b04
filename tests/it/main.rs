//! selectlab's integration tests, gathered in one crate so the suite links once and its tests
//! run in parallel (as cargo and rust-analyzer keep theirs). One module per theme; shared
//! helpers in [`util`]. Run one theme with `cargo test --test it -- THEME::`.

mod util;

// The kernel is the oracle: socket calls, readiness and scripts on both transports.
mod differential;
mod eventfd;
mod exceptions;
mod readiness_diff;
mod review_regressions;
mod scenario_cli;
mod scenarios;
mod timerfd;
mod unix_accounting;

// The readiness layer and the reactor.
mod bench_readiness;
mod lt_vs_et;
mod reactor;

// The chat room: properties, rules, transcripts, counters, real sockets.
mod chat_backpressure;
mod chat_client;
mod chat_load;
mod chat_properties;
mod chat_real;
mod chat_rules;
mod chat_snapshots;
mod chat_stats;
mod harness_views;
mod interleaving;
mod sim_scale;
mod sim_timers;

// The tutorial's other programs.
mod programs;

// The tools that judge other servers, and the detectors' own power.
mod check;
mod dialects;
mod escape;
mod forked_starts;
mod fuzz_corpus;
mod guest;
mod guest_beyond;
mod guest_check;
mod guest_tokio;
mod json_records;
mod pcap;
mod progress;
mod proxy;
mod view;
mod zoo;
mod zoo_triggers;

// The README and the manual, held to the repository and the binary.
mod docs;
